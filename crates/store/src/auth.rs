//! Users, password hashes, refresh-token families, personal API tokens and login throttling.

use crate::db::{Db, Tx, Q};
use crate::{new_id, Result, StoreError};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub is_active: bool,
}

const USER_COLS: &str = "id, email, name, password_hash, is_active";
const USER_TYPES: &[SqlType] = &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Bool];

fn user_from(r: crate::db::Row) -> User {
    User {
        id: r.uuid(0).unwrap_or_default(),
        email: r.text(1).unwrap_or_default(),
        name: r.text(2).unwrap_or_default(),
        password_hash: r.text(3).unwrap_or_default(),
        is_active: r.bool(4).unwrap_or(false),
    }
}

pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Config(format!("password hashing failed: {e}")))
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash that never verifies, used so that unknown emails cost as much as wrong passwords.
pub fn dummy_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("corvid-timing-equaliser").unwrap_or_default());
    let _ = verify_password(hash, password);
}

pub async fn create_user(tx: &mut Tx, email: &str, name: &str, password: &str) -> Result<User> {
    let email = normalise_email(email);
    let hash = hash_password(password)?;
    let id = new_id();
    let now = now_micros();
    let q =
        Q::new("INSERT INTO users (id, email, name, password_hash, is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(Value::Uuid(id))
            .bind(Value::Text(email.clone()))
            .bind(Value::Text(name.trim().to_string()))
            .bind(Value::Text(hash.clone()))
            .bind(Value::Bool(true))
            .bind(Value::Timestamp(now));
    match tx.execute(&q).await {
        Ok(_) => Ok(User { id, email, name: name.trim().to_string(), password_hash: hash, is_active: true }),
        Err(e) if e.is_unique_violation() => Err(StoreError::Conflict("a user with this email already exists".into())),
        Err(e) => Err(e),
    }
}

pub async fn user_by_email(db: &Db, email: &str) -> Result<Option<User>> {
    let q = Q::new(format!("SELECT {USER_COLS} FROM users WHERE email = $1")).bind(Value::Text(normalise_email(email)));
    Ok(db.fetch_one(&q, USER_TYPES).await?.map(user_from))
}

pub async fn user_by_id(db: &Db, id: Uuid) -> Result<Option<User>> {
    let q = Q::new(format!("SELECT {USER_COLS} FROM users WHERE id = $1")).bind(Value::Uuid(id));
    Ok(db.fetch_one(&q, USER_TYPES).await?.map(user_from))
}

pub async fn set_password(db: &Db, user_id: Uuid, password: &str) -> Result<()> {
    let q = Q::new("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(Value::Text(hash_password(password)?))
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Uuid(user_id));
    db.execute(&q).await?;
    Ok(())
}

pub async fn touch_login(db: &Db, user_id: Uuid) -> Result<()> {
    db.execute(
        &Q::new("UPDATE users SET last_login_at = $1 WHERE id = $2").bind(Value::Timestamp(now_micros())).bind(Value::Uuid(user_id)),
    )
    .await?;
    Ok(())
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub const REFRESH_DAYS: i64 = 30;

/// Issues a refresh token in a family (a new family at login). Returns (token, family id).
pub async fn issue_refresh(db: &Db, user_id: Uuid, family: Option<Uuid>, ip: Option<&str>, ua: Option<&str>) -> Result<(String, Uuid)> {
    let token = random_token("cvr_");
    let family = family.unwrap_or_else(new_id);
    let now = now_micros();
    let opt = |s: Option<&str>| s.map_or(Value::Null(SqlType::Text), |s| Value::Text(s.chars().take(512).collect()));
    let q = Q::new("INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(Value::Uuid(new_id()))
        .bind(Value::Uuid(family))
        .bind(Value::Uuid(user_id))
        .bind(Value::Text(token_hash(&token)))
        .bind(Value::Timestamp(now))
        .bind(Value::Timestamp(now + Duration::days(REFRESH_DAYS)))
        .bind(opt(ip))
        .bind(opt(ua));
    db.execute(&q).await?;
    Ok((token, family))
}

#[derive(Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    Rotated {
        user_id: Uuid,
        family: Uuid,
        token: String,
    },
    Invalid,
    /// An already-used token came back: the whole family is revoked (likely theft).
    Reused,
}

pub async fn rotate_refresh(db: &Db, token: &str, ip: Option<&str>, ua: Option<&str>) -> Result<RefreshOutcome> {
    let mut tx = db.begin().await?;
    let sql = format!(
        "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1{}",
        tx.for_update()
    );
    let row = tx
        .fetch_one(
            &Q::new(sql).bind(Value::Text(token_hash(token))),
            &[SqlType::Uuid, SqlType::Uuid, SqlType::Uuid, SqlType::Timestamp, SqlType::Timestamp, SqlType::Timestamp],
        )
        .await?;
    let Some(r) = row else { return Ok(RefreshOutcome::Invalid) };
    let (id, family, user_id) = (r.uuid(0).unwrap_or_default(), r.uuid(1).unwrap_or_default(), r.uuid(2).unwrap_or_default());
    let now = now_micros();
    if r.timestamp(5).is_some() || r.timestamp(3).is_some_and(|e| e < now) {
        return Ok(RefreshOutcome::Invalid);
    }
    if r.timestamp(4).is_some() {
        revoke_family_tx(&mut tx, family).await?;
        tx.commit().await?;
        return Ok(RefreshOutcome::Reused);
    }
    tx.execute(&Q::new("UPDATE refresh_tokens SET used_at = $1 WHERE id = $2").bind(Value::Timestamp(now)).bind(Value::Uuid(id))).await?;
    tx.commit().await?;
    let (token, family) = issue_refresh(db, user_id, Some(family), ip, ua).await?;
    Ok(RefreshOutcome::Rotated { user_id, family, token })
}

async fn revoke_family_tx(tx: &mut Tx, family: Uuid) -> Result<()> {
    tx.execute(
        &Q::new("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(Value::Timestamp(now_micros()))
            .bind(Value::Uuid(family)),
    )
    .await?;
    Ok(())
}

pub async fn revoke_family(db: &Db, family: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    revoke_family_tx(&mut tx, family).await?;
    tx.commit().await
}

/// A session (refresh family) stays valid for access tokens until it is revoked.
pub async fn family_active(db: &Db, family: Uuid) -> Result<bool> {
    let q = Q::new("SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL LIMIT 1").bind(Value::Uuid(family));
    Ok(db.fetch_one(&q, &[SqlType::Int]).await?.is_some())
}

pub async fn family_of(db: &Db, token: &str) -> Result<Option<(Uuid, Uuid)>> {
    let q = Q::new("SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1").bind(Value::Text(token_hash(token)));
    Ok(db.fetch_one(&q, &[SqlType::Uuid, SqlType::Uuid]).await?.and_then(|r| Some((r.uuid(0)?, r.uuid(1)?))))
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Creates a personal API token; the plain token is returned once and stored only hashed.
pub async fn create_api_token(db: &Db, user_id: Uuid, name: &str, expires_at: Option<DateTime<Utc>>) -> Result<(ApiToken, String)> {
    let token = random_token("cvd_");
    let prefix: String = token.chars().take(10).collect();
    let t =
        ApiToken { id: new_id(), name: name.to_string(), prefix: prefix.clone(), created_at: now_micros(), expires_at, last_used_at: None };
    let q = Q::new(
        "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Value::Uuid(t.id))
    .bind(Value::Uuid(user_id))
    .bind(Value::Text(t.name.clone()))
    .bind(Value::Text(token_hash(&token)))
    .bind(Value::Text(prefix))
    .bind(Value::Timestamp(t.created_at))
    .bind(expires_at.map_or(Value::Null(SqlType::Timestamp), Value::Timestamp));
    db.execute(&q).await?;
    Ok((t, token))
}

pub async fn list_api_tokens(db: &Db, user_id: Uuid) -> Result<Vec<ApiToken>> {
    let q = Q::new(
        "SELECT id, name, prefix, created_at, expires_at, last_used_at FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC",
    )
    .bind(Value::Uuid(user_id));
    let rows =
        db.fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Timestamp, SqlType::Timestamp, SqlType::Timestamp]).await?;
    Ok(rows
        .into_iter()
        .map(|r| ApiToken {
            id: r.uuid(0).unwrap_or_default(),
            name: r.text(1).unwrap_or_default(),
            prefix: r.text(2).unwrap_or_default(),
            created_at: r.timestamp(3).unwrap_or_default(),
            expires_at: r.timestamp(4),
            last_used_at: r.timestamp(5),
        })
        .collect())
}

pub async fn revoke_api_token(db: &Db, user_id: Uuid, id: Uuid) -> Result<bool> {
    let q = Q::new("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Uuid(id))
        .bind(Value::Uuid(user_id));
    Ok(db.execute(&q).await? > 0)
}

/// Resolves a personal API token to its user; records its use at most once a minute.
pub async fn api_token_user(db: &Db, token: &str) -> Result<Option<Uuid>> {
    let q = Q::new("SELECT id, user_id, expires_at, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(Value::Text(token_hash(token)));
    let Some(r) = db.fetch_one(&q, &[SqlType::Uuid, SqlType::Uuid, SqlType::Timestamp, SqlType::Timestamp]).await? else {
        return Ok(None);
    };
    let now = now_micros();
    if r.timestamp(2).is_some_and(|e| e < now) {
        return Ok(None);
    }
    if r.timestamp(3).is_none_or(|t| now - t > Duration::minutes(1)) {
        db.execute(
            &Q::new("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(Value::Timestamp(now))
                .bind(Value::Uuid(r.uuid(0).unwrap_or_default())),
        )
        .await?;
    }
    Ok(r.uuid(1))
}

/// Failed logins allowed before a lockout starts; each further failure doubles the wait.
pub const FREE_FAILURES: i64 = 5;

/// Seconds the caller must wait before another login attempt for this key, if locked.
pub async fn login_locked(db: &Db, key: &str) -> Result<Option<i64>> {
    let q = Q::new("SELECT locked_until FROM login_failures WHERE key = $1").bind(Value::Text(key.into()));
    let until = db.fetch_one(&q, &[SqlType::Timestamp]).await?.and_then(|r| r.timestamp(0));
    let now = now_micros();
    Ok(until.filter(|u| *u > now).map(|u| (u - now).num_seconds().max(1)))
}

pub async fn login_failed(db: &Db, key: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    let sql = format!("SELECT failures, updated_at FROM login_failures WHERE key = $1{}", tx.for_update());
    let row = tx.fetch_one(&Q::new(sql).bind(Value::Text(key.into())), &[SqlType::Int, SqlType::Timestamp]).await?;
    let now = now_micros();
    // Failures older than an hour are forgiven.
    let failures = match row {
        Some(r) if r.timestamp(1).is_some_and(|t| now - t < Duration::hours(1)) => r.int(0).unwrap_or(0) + 1,
        _ => 1,
    };
    let locked = if failures >= FREE_FAILURES {
        let secs = 2i64.saturating_pow((failures - FREE_FAILURES).min(10) as u32).min(900);
        Value::Timestamp(now + Duration::seconds(secs))
    } else {
        Value::Null(SqlType::Timestamp)
    };
    tx.execute(
        &Q::new(
            "INSERT INTO login_failures (key, failures, locked_until, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until, updated_at = excluded.updated_at",
        )
        .bind(Value::Text(key.into()))
        .bind(Value::Int(failures))
        .bind(locked)
        .bind(Value::Timestamp(now)),
    )
    .await?;
    tx.commit().await
}

pub async fn login_succeeded(db: &Db, key: &str) -> Result<()> {
    db.execute(&Q::new("DELETE FROM login_failures WHERE key = $1").bind(Value::Text(key.into()))).await?;
    Ok(())
}
