//! Access tokens: JWT with one fixed algorithm (HS256). The header's `alg` must be exactly
//! HS256 and its `kid` must name a known key, so `alg: none` and key confusion are refused.
//! Keys rotate: the current key signs, the previous one still verifies (see [`Keys`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

pub const ACCESS_TTL_SECS: i64 = 15 * 60;
const ISSUER: &str = "corvid";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: Uuid,
    /// The session (refresh-token family); revoking it ends the access token's validity too.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

/// One signing key: its id (derived from the secret, so every node agrees) and the secret.
#[derive(Clone)]
struct Key {
    kid: String,
    secret: Vec<u8>,
}

impl Key {
    fn new(secret: &[u8]) -> Key {
        Key { kid: hex::encode(&Sha256::digest(secret)[..6]), secret: secret.to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }
}

/// The keys in use: tokens are signed with `current`; tokens signed with `previous` (the key
/// before the last rotation) still verify until they expire.
#[derive(Clone)]
struct Ring {
    current: Key,
    previous: Option<Key>,
}

/// Where the keys come from: fixed by configuration, or stored in the database (shared by
/// every node, rotated with `corvid admin rotate-jwt-key` and picked up by [`Keys::reload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    Stored,
}

/// The signing key ring, shared by every clone (the app state holds one).
#[derive(Clone)]
pub struct Keys {
    ring: Arc<RwLock<Ring>>,
    source: KeySource,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("kid", &self.current_kid()).field("source", &self.source).finish_non_exhaustive()
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    Algorithm,
    UnknownKey,
    Signature,
    Expired,
}

impl Keys {
    /// One configured key.
    pub fn new(secret: &[u8]) -> Keys {
        Keys::with_previous(secret, None)
    }

    /// A configured key and the one before it (`CORVID_JWT_PREVIOUS_SECRET`) during a rotation.
    pub fn with_previous(secret: &[u8], previous: Option<&[u8]>) -> Keys {
        let ring = Ring { current: Key::new(secret), previous: previous.filter(|p| !p.is_empty() && *p != secret).map(Key::new) };
        Keys { ring: Arc::new(RwLock::new(ring)), source: KeySource::Configured }
    }

    /// The keys stored in the database, creating the first one if there is none.
    pub async fn stored(db: &corvid_store::Db) -> Result<Keys, corvid_store::StoreError> {
        let current = corvid_store::migrate::init_setting(db, corvid_store::auth::JWT_CURRENT, &new_secret()).await?;
        let mut keys = Keys::new(current.as_bytes());
        keys.source = KeySource::Stored;
        keys.reload(db).await?;
        Ok(keys)
    }

    pub fn source(&self) -> KeySource {
        self.source
    }

    /// Re-reads stored keys (after a rotation by any node or the CLI). Returns whether the
    /// current key changed. Configured keys never change.
    pub async fn reload(&self, db: &corvid_store::Db) -> Result<bool, corvid_store::StoreError> {
        if self.source != KeySource::Stored {
            return Ok(false);
        }
        let (current, previous) = corvid_store::auth::jwt_secrets(db).await?;
        let Some(current) = current else { return Ok(false) };
        let ring =
            Ring { current: Key::new(current.as_bytes()), previous: previous.filter(|p| *p != current).map(|p| Key::new(p.as_bytes())) };
        let mut guard = self.ring.write().unwrap_or_else(|e| e.into_inner());
        let changed = guard.current.kid != ring.current.kid;
        *guard = ring;
        Ok(changed)
    }

    fn ring(&self) -> Ring {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Id of the key new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.ring().current.kid
    }

    pub fn sign(&self, user: Uuid, session: Uuid, now: i64) -> String {
        let key = self.ring().current;
        let header = Header { alg: "HS256".into(), typ: Some("JWT".into()), kid: Some(key.kid.clone()) };
        let claims = Claims { sub: user, sid: session, iat: now, exp: now + ACCESS_TTL_SECS, iss: ISSUER.into() };
        let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let c = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{h}.{c}");
        let mut mac = key.mac();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Verifies a token: exactly HS256, a `kid` naming the current or previous key, a valid
    /// signature (checked before the claims are read), our issuer, not expired.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, JwtError> {
        if token.len() > 4096 {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header: Header = B64.decode(h).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(JwtError::Malformed)?;
        if header.alg != "HS256" {
            return Err(JwtError::Algorithm);
        }
        let ring = self.ring();
        let key = match header.kid.as_deref() {
            Some(kid) if kid == ring.current.kid => ring.current,
            Some(kid) if ring.previous.as_ref().is_some_and(|p| p.kid == kid) => ring.previous.ok_or(JwtError::UnknownKey)?,
            _ => return Err(JwtError::UnknownKey),
        };
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut m = key.mac();
        m.update(format!("{h}.{c}").as_bytes());
        m.verify_slice(&sig).map_err(|_| JwtError::Signature)?;
        let claims: Claims = B64.decode(c).ok().and_then(|b| serde_json::from_slice(&b).ok()).ok_or(JwtError::Malformed)?;
        if claims.iss != ISSUER {
            return Err(JwtError::Malformed);
        }
        if claims.exp <= now {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

/// How often stored keys are re-read; a rotation reaches every node within this time.
pub const RELOAD_SECS: u64 = 30;

/// Keeps stored keys in step with the database (another node or the CLI may rotate them).
pub fn spawn_reloader(keys: Keys, db: corvid_store::Db) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(RELOAD_SECS));
        tick.tick().await;
        loop {
            tick.tick().await;
            match keys.reload(&db).await {
                Ok(true) => tracing::info!(kid = %keys.current_kid(), "token signing key rotated"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not re-read the token signing keys"),
            }
        }
    });
}

/// A new random secret for `rotate_jwt_secret`.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_attacks() {
        let k = Keys::new(b"secret-one");
        let (u, s) = (Uuid::now_v7(), Uuid::now_v7());
        let t = k.sign(u, s, 1000);
        assert_eq!(k.verify(&t, 1001).map(|c| c.sub), Ok(u));
        assert_eq!(k.verify(&t, 1000 + ACCESS_TTL_SECS), Err(JwtError::Expired));
        assert_eq!(Keys::new(b"other").verify(&t, 1001), Err(JwtError::UnknownKey));
        // alg none with no signature
        let parts: Vec<&str> = t.split('.').collect();
        let none = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(k.verify(&format!("{none}.{}.", parts[1]), 1001), Err(JwtError::Algorithm));
        // tampered claims
        let mut claims: Claims = serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("claims");
        claims.sub = Uuid::now_v7();
        let forged = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&claims).expect("json")), parts[2]);
        assert_eq!(k.verify(&forged, 1001), Err(JwtError::Signature));
        assert_eq!(k.verify("a.b", 1), Err(JwtError::Malformed));
    }

    fn forge(header: &str, claims: &[u8], secret: &[u8]) -> String {
        let h = B64.encode(header.as_bytes());
        let c = B64.encode(claims);
        let mut m = <HmacSha256 as Mac>::new_from_slice(secret).expect("key");
        m.update(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", B64.encode(m.finalize().into_bytes()))
    }

    #[test]
    fn only_hs256_with_a_known_kid() {
        let k = Keys::new(b"secret-one");
        let kid = k.current_kid();
        let claims = serde_json::to_vec(&Claims { sub: Uuid::now_v7(), sid: Uuid::now_v7(), iat: 0, exp: 5000, iss: "corvid".into() })
            .expect("claims");
        // The right key and alg verify.
        let good = forge(&format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &claims, b"secret-one");
        assert!(k.verify(&good, 1).is_ok());
        // Other algorithms, even correctly MACed with the secret, are refused.
        for alg in ["HS512", "HS384", "RS256", "ES256", "none", "hs256", "NONE", ""] {
            let t = forge(&format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#), &claims, b"secret-one");
            assert_eq!(k.verify(&t, 1), Err(JwtError::Algorithm), "{alg}");
        }
        // No kid, or a kid we do not have.
        let t = forge(r#"{"alg":"HS256"}"#, &claims, b"secret-one");
        assert_eq!(k.verify(&t, 1), Err(JwtError::UnknownKey));
        let t = forge(r#"{"alg":"HS256","kid":"000000000000"}"#, &claims, b"secret-one");
        assert_eq!(k.verify(&t, 1), Err(JwtError::UnknownKey));
        // The right kid but signed with another secret.
        let t = forge(&format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &claims, b"secret-two");
        assert_eq!(k.verify(&t, 1), Err(JwtError::Signature));
        // A foreign issuer.
        let other = serde_json::to_vec(&Claims { sub: Uuid::now_v7(), sid: Uuid::now_v7(), iat: 0, exp: 5000, iss: "elsewhere".into() })
            .expect("c");
        let t = forge(&format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), &other, b"secret-one");
        assert_eq!(k.verify(&t, 1), Err(JwtError::Malformed));
        // A changed or truncated signature, an extra part, an oversized token.
        let mut flipped = good.clone().into_bytes();
        let at = good.len() - 10;
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(k.verify(&String::from_utf8(flipped).expect("ascii"), 1), Err(JwtError::Signature));
        assert!(k.verify(&good[..good.len() - 2], 1).is_err());
        assert_eq!(k.verify(&format!("{good}.x"), 1), Err(JwtError::Malformed));
        assert_eq!(k.verify(&"a".repeat(5000), 1), Err(JwtError::Malformed));
    }

    #[test]
    fn rotation_keeps_the_previous_key_only() {
        let (u, s) = (Uuid::now_v7(), Uuid::now_v7());
        let one = Keys::new(b"key-one");
        let t1 = one.sign(u, s, 1000);
        let two = Keys::with_previous(b"key-two", Some(b"key-one"));
        let t2 = two.sign(u, s, 1000);
        assert_ne!(one.current_kid(), two.current_kid());
        assert_eq!(two.verify(&t1, 1001).map(|c| c.sub), Ok(u), "the previous key still verifies");
        assert_eq!(two.verify(&t2, 1001).map(|c| c.sub), Ok(u));
        assert_eq!(one.verify(&t2, 1001), Err(JwtError::UnknownKey), "a node on the old key does not know the new one");
        let three = Keys::with_previous(b"key-three", Some(b"key-two"));
        assert_eq!(three.verify(&t1, 1001), Err(JwtError::UnknownKey), "two rotations later the first key is gone");
        assert!(three.verify(&t2, 1001).is_ok());
        // Expiry applies to tokens of the previous key as well.
        assert_eq!(two.verify(&t1, 1000 + ACCESS_TTL_SECS), Err(JwtError::Expired));
    }
}
