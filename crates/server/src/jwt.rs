//! Access tokens: JWT with one fixed algorithm (HS256). The header's `alg` must be exactly
//! HS256 and its `kid` must name a known key, so `alg: none` and key confusion are refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

#[derive(Clone)]
pub struct Keys {
    kid: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("kid", &self.kid).finish_non_exhaustive()
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
    pub fn new(secret: &[u8]) -> Keys {
        let kid = hex::encode(&Sha256::digest(secret)[..6]);
        Keys { kid, secret: secret.to_vec() }
    }

    pub fn sign(&self, user: Uuid, session: Uuid, now: i64) -> String {
        let header = Header { alg: "HS256".into(), typ: Some("JWT".into()), kid: Some(self.kid.clone()) };
        let claims = Claims { sub: user, sid: session, iat: now, exp: now + ACCESS_TTL_SECS, iss: ISSUER.into() };
        let h = B64.encode(serde_json::to_vec(&header).unwrap_or_default());
        let c = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{h}.{c}");
        format!("{signing_input}.{}", B64.encode(self.mac(signing_input.as_bytes())))
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!());
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

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
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(JwtError::UnknownKey);
        }
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut m = <HmacSha256 as Mac>::new_from_slice(&self.secret).map_err(|_| JwtError::Signature)?;
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
}
