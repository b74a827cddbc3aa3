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
///
/// The user of a live session (a refresh-token family not revoked) of `user_id`, with whether
/// the user is active; `None` when the session has ended.
pub async fn session_user(db: &Db, family: Uuid, user_id: Uuid) -> Result<Option<TokenUser>> {
    let q = Q::new(
        "SELECT u.is_active FROM refresh_tokens r JOIN users u ON u.id = r.user_id \
         WHERE r.family_id = $1 AND r.user_id = $2 AND r.revoked_at IS NULL LIMIT 1",
    )
    .bind(Value::Uuid(family))
    .bind(Value::Uuid(user_id));
    Ok(db.fetch_one(&q, &[SqlType::Bool]).await?.map(|r| TokenUser { user_id, active: r.bool(0).unwrap_or(false) }))
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
pub async fn api_token_user(db: &Db, token: &str) -> Result<Option<TokenUser>> {
    // The user's state comes with the token: every API request asks both, and one query
    // instead of two is a measurable share of a small request.
    let q = Q::new(
        "SELECT t.id, t.user_id, t.expires_at, t.last_used_at, u.is_active FROM api_tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(Value::Text(token_hash(token)));
    let types = [SqlType::Uuid, SqlType::Uuid, SqlType::Timestamp, SqlType::Timestamp, SqlType::Bool];
    let Some(r) = db.fetch_one(&q, &types).await? else {
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
    Ok(r.uuid(1).map(|user_id| TokenUser { user_id, active: r.bool(4).unwrap_or(false) }))
}

/// The user an API token or a session acts for, and whether that user is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUser {
    pub user_id: Uuid,
    pub active: bool,
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

// ---------------------------------------------------------------------------------------
// Security log of a person (not of a company): password, second factor, sessions.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct SecurityEvent {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub action: String,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

fn opt_text(s: Option<&str>, max: usize) -> Value {
    s.map_or(Value::Null(SqlType::Text), |s| Value::Text(s.chars().take(max).collect()))
}

/// Appends to a user's security log (append-only; shown to the user on their Security page).
pub async fn record_event(db: &Db, user_id: Uuid, action: &str, detail: Option<&str>, ctx: &crate::audit::AuditCtx) -> Result<()> {
    let q = Q::new(
        "INSERT INTO security_events (id, user_id, at, action, detail, ip, user_agent, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Value::Uuid(new_id()))
    .bind(Value::Uuid(user_id))
    .bind(Value::Timestamp(now_micros()))
    .bind(Value::Text(action.into()))
    .bind(opt_text(detail, 500))
    .bind(opt_text(ctx.ip.as_deref(), 100))
    .bind(opt_text(ctx.user_agent.as_deref(), 512))
    .bind(opt_text(ctx.request_id.as_deref(), 100));
    db.execute(&q).await?;
    Ok(())
}

pub async fn security_events(db: &Db, user_id: Uuid, limit: i64) -> Result<Vec<SecurityEvent>> {
    let q = Q::new(
        "SELECT id, at, action, detail, ip, user_agent, request_id FROM security_events WHERE user_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(Value::Uuid(user_id))
    .bind(Value::Int(limit.clamp(1, 500)));
    let types = [SqlType::Uuid, SqlType::Timestamp, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text];
    Ok(db
        .fetch(&q, &types)
        .await?
        .into_iter()
        .map(|r| SecurityEvent {
            id: r.uuid(0).unwrap_or_default(),
            at: r.timestamp(1).unwrap_or_default(),
            action: r.text(2).unwrap_or_default(),
            detail: r.text(3),
            ip: r.text(4),
            user_agent: r.text(5),
            request_id: r.text(6),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------
// Password reset by emailed link
// ---------------------------------------------------------------------------------------

/// How long a reset link works.
pub const RESET_MINUTES: i64 = 30;
/// Reset links sent per account per hour; more requests are silently ignored, so a stranger
/// cannot flood someone's mailbox (and the answer never says whether an account exists).
pub const RESETS_PER_HOUR: i64 = 3;

/// Issues a single-use reset token for a user (older unused links stop working). `None` when
/// the hourly allowance is spent.
pub async fn create_password_reset(db: &Db, user_id: Uuid, ip: Option<&str>) -> Result<Option<String>> {
    let now = now_micros();
    let mut tx = db.begin().await?;
    let recent = tx
        .fetch_one(
            &Q::new("SELECT COUNT(*) FROM password_resets WHERE user_id = $1 AND created_at > $2")
                .bind(Value::Uuid(user_id))
                .bind(Value::Timestamp(now - Duration::hours(1))),
            &[SqlType::Int],
        )
        .await?
        .and_then(|r| r.int(0))
        .unwrap_or(0);
    if recent >= RESETS_PER_HOUR {
        return Ok(None);
    }
    tx.execute(
        &Q::new("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
            .bind(Value::Timestamp(now))
            .bind(Value::Uuid(user_id)),
    )
    .await?;
    let token = random_token("cvp_");
    tx.execute(
        &Q::new("INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at, ip) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(Value::Uuid(new_id()))
            .bind(Value::Uuid(user_id))
            .bind(Value::Text(token_hash(&token)))
            .bind(Value::Timestamp(now))
            .bind(Value::Timestamp(now + Duration::minutes(RESET_MINUTES)))
            .bind(opt_text(ip, 100)),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(token))
}

/// Whether a reset token would be accepted now (for the "set a new password" page).
pub async fn password_reset_valid(db: &Db, token: &str) -> Result<bool> {
    if token.len() > 200 {
        return Ok(false);
    }
    let q = Q::new("SELECT 1 FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
        .bind(Value::Text(token_hash(token)))
        .bind(Value::Timestamp(now_micros()));
    Ok(db.fetch_one(&q, &[SqlType::Int]).await?.is_some())
}

/// Spends a reset token: sets the password and ends every session and refresh family of the
/// user, in one transaction. `None` if the token is unknown, used or expired. Spending is a
/// conditional update, so two concurrent uses cannot both succeed.
pub async fn reset_password(db: &Db, token: &str, new_password: &str) -> Result<Option<Uuid>> {
    if token.len() > 200 {
        return Ok(None);
    }
    let hash = hash_password(new_password)?;
    let now = now_micros();
    let mut tx = db.begin().await?;
    let spent = tx
        .execute(
            &Q::new("UPDATE password_resets SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1")
                .bind(Value::Timestamp(now))
                .bind(Value::Text(token_hash(token))),
        )
        .await?;
    if spent != 1 {
        return Ok(None);
    }
    let Some(user_id) = tx
        .fetch_one(
            &Q::new("SELECT user_id FROM password_resets WHERE token_hash = $1").bind(Value::Text(token_hash(token))),
            &[SqlType::Uuid],
        )
        .await?
        .and_then(|r| r.uuid(0))
    else {
        return Ok(None);
    };
    tx.execute(
        &Q::new("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND is_active = $4")
            .bind(Value::Text(hash))
            .bind(Value::Timestamp(now))
            .bind(Value::Uuid(user_id))
            .bind(Value::Bool(true)),
    )
    .await?;
    for sql in [
        "UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
        "UPDATE web_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        "UPDATE mfa_challenges SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
    ] {
        tx.execute(&Q::new(sql).bind(Value::Timestamp(now)).bind(Value::Uuid(user_id))).await?;
    }
    tx.commit().await?;
    Ok(Some(user_id))
}

// ---------------------------------------------------------------------------------------
// Sessions: API sign-ins (refresh families) and browser sessions, listed and revoked together.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// A refresh family id (API) or the stored hash of the cookie (web); never the secret.
    pub id: String,
    /// `api` or `web`.
    pub kind: &'static str,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// The user's live sessions, most recently used first. `current_*` mark the caller's own.
pub async fn list_sessions(db: &Db, user_id: Uuid, current_family: Option<Uuid>, current_web: Option<&str>) -> Result<Vec<SessionInfo>> {
    let now = now_micros();
    let api = Q::new(
        "SELECT t.family_id, f.first_at, f.last_at, t.ip, t.user_agent FROM refresh_tokens t \
         JOIN (SELECT family_id, MIN(created_at) AS first_at, MAX(created_at) AS last_at, MAX(expires_at) AS until_at \
               FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL GROUP BY family_id) f \
           ON f.family_id = t.family_id AND t.created_at = f.last_at \
         WHERE t.user_id = $1 AND t.revoked_at IS NULL AND f.until_at > $2",
    )
    .bind(Value::Uuid(user_id))
    .bind(Value::Timestamp(now));
    let mut out: Vec<SessionInfo> = db
        .fetch(&api, &[SqlType::Uuid, SqlType::Timestamp, SqlType::Timestamp, SqlType::Text, SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| {
            let family = r.uuid(0)?;
            Some(SessionInfo {
                id: family.to_string(),
                kind: "api",
                created_at: r.timestamp(1).unwrap_or_default(),
                last_used_at: r.timestamp(2).unwrap_or_default(),
                ip: r.text(3),
                user_agent: r.text(4),
                current: current_family == Some(family),
            })
        })
        .collect();
    let current_hash = current_web.map(token_hash);
    let web = Q::new(
        "SELECT id_hash, created_at, last_seen_at, ip, user_agent FROM web_sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(Value::Uuid(user_id))
    .bind(Value::Timestamp(now));
    for r in db.fetch(&web, &[SqlType::Text, SqlType::Timestamp, SqlType::Timestamp, SqlType::Text, SqlType::Text]).await? {
        let id = r.text(0).unwrap_or_default();
        out.push(SessionInfo {
            current: current_hash.as_deref() == Some(id.as_str()),
            id,
            kind: "web",
            created_at: r.timestamp(1).unwrap_or_default(),
            last_used_at: r.timestamp(2).unwrap_or_default(),
            ip: r.text(3),
            user_agent: r.text(4),
        });
    }
    out.sort_by(|a, b| b.last_used_at.cmp(&a.last_used_at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Ends one of the user's sessions by the id `list_sessions` gave. False when it is not
/// theirs, unknown or already ended.
pub async fn revoke_session(db: &Db, user_id: Uuid, id: &str) -> Result<bool> {
    let now = Value::Timestamp(now_micros());
    let q = if let Ok(family) = Uuid::parse_str(id) {
        Q::new("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(Value::Uuid(family))
            .bind(Value::Uuid(user_id))
    } else if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Q::new("UPDATE web_sessions SET revoked_at = $1 WHERE id_hash = $2 AND user_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(Value::Text(id.to_ascii_lowercase()))
            .bind(Value::Uuid(user_id))
    } else {
        return Ok(false);
    };
    Ok(db.execute(&q).await? > 0)
}

/// Signs the user out everywhere: every browser session and every API session. Personal API
/// tokens are separate credentials and stay until revoked one by one.
pub async fn revoke_all_sessions(db: &Db, user_id: Uuid) -> Result<()> {
    crate::web::end_all_sessions(db, user_id, None).await
}

// ---------------------------------------------------------------------------------------
// TOTP second factor and recovery codes
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Totp {
    /// Base32 secret, as shown to the user at enrolment.
    pub secret: String,
    pub enabled: bool,
    pub last_step: Option<i64>,
}

pub async fn totp(db: &Db, user_id: Uuid) -> Result<Option<Totp>> {
    let q = Q::new("SELECT secret, enabled_at, last_step FROM user_totp WHERE user_id = $1").bind(Value::Uuid(user_id));
    Ok(db.fetch_one(&q, &[SqlType::Text, SqlType::Timestamp, SqlType::Int]).await?.map(|r| Totp {
        secret: r.text(0).unwrap_or_default(),
        enabled: r.timestamp(1).is_some(),
        last_step: r.int(2),
    }))
}

pub async fn totp_enabled(db: &Db, user_id: Uuid) -> Result<bool> {
    Ok(totp(db, user_id).await?.is_some_and(|t| t.enabled))
}

/// Starts (or restarts) enrolment with a new secret. False if two-factor is already on.
pub async fn totp_begin(db: &Db, user_id: Uuid, secret: &str) -> Result<bool> {
    let q = Q::new(
        "INSERT INTO user_totp (user_id, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = NULL \
         WHERE user_totp.enabled_at IS NULL",
    )
    .bind(Value::Uuid(user_id))
    .bind(Value::Text(secret.into()))
    .bind(Value::Timestamp(now_micros()));
    Ok(db.execute(&q).await? > 0)
}

/// Ten fresh recovery codes (80 random bits each, shown once, stored hashed).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| {
            let mut bytes = [0u8; 16];
            rng.fill_bytes(&mut bytes);
            let chars: String = bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
            format!("{}-{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12], &chars[12..16])
        })
        .collect()
}

/// A recovery code as typed: case, spaces and dashes do not matter.
pub fn recovery_code_hash(code: &str) -> String {
    let clean: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
    token_hash(&format!("recovery:{clean}"))
}

async fn store_recovery_codes(tx: &mut Tx, user_id: Uuid, codes: &[String]) -> Result<()> {
    tx.execute(&Q::new("DELETE FROM recovery_codes WHERE user_id = $1").bind(Value::Uuid(user_id))).await?;
    let now = now_micros();
    for c in codes {
        tx.execute(
            &Q::new("INSERT INTO recovery_codes (id, user_id, code_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(Value::Uuid(new_id()))
                .bind(Value::Uuid(user_id))
                .bind(Value::Text(recovery_code_hash(c)))
                .bind(Value::Timestamp(now)),
        )
        .await?;
    }
    Ok(())
}

/// Turns two-factor on after the first good code (its step is remembered so it cannot be
/// replayed) and stores the recovery codes. False if there is no pending enrolment.
pub async fn totp_enable(db: &Db, user_id: Uuid, step: i64, codes: &[String]) -> Result<bool> {
    let mut tx = db.begin().await?;
    let n = tx
        .execute(
            &Q::new("UPDATE user_totp SET enabled_at = $1, last_step = $2 WHERE user_id = $3 AND enabled_at IS NULL")
                .bind(Value::Timestamp(now_micros()))
                .bind(Value::Int(step))
                .bind(Value::Uuid(user_id)),
        )
        .await?;
    if n != 1 {
        return Ok(false);
    }
    store_recovery_codes(&mut tx, user_id, codes).await?;
    tx.commit().await?;
    Ok(true)
}

/// Accepts a verified code's time step once: a step at or before the last accepted one is a
/// replay. Atomic, so two requests with the same code cannot both pass.
pub async fn totp_accept_step(db: &Db, user_id: Uuid, step: i64) -> Result<bool> {
    let q = Q::new(
        "UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND enabled_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)",
    )
    .bind(Value::Int(step))
    .bind(Value::Uuid(user_id));
    Ok(db.execute(&q).await? == 1)
}

/// Spends a recovery code. False if it is not one of the user's unused codes.
pub async fn use_recovery_code(db: &Db, user_id: Uuid, code: &str) -> Result<bool> {
    if code.len() > 100 {
        return Ok(false);
    }
    let q = Q::new("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Uuid(user_id))
        .bind(Value::Text(recovery_code_hash(code)));
    Ok(db.execute(&q).await? > 0)
}

pub async fn recovery_codes_left(db: &Db, user_id: Uuid) -> Result<i64> {
    let q = Q::new("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL").bind(Value::Uuid(user_id));
    Ok(db.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0))
}

/// Replaces the recovery codes (the old ones stop working).
pub async fn replace_recovery_codes(db: &Db, user_id: Uuid, codes: &[String]) -> Result<()> {
    let mut tx = db.begin().await?;
    store_recovery_codes(&mut tx, user_id, codes).await?;
    tx.commit().await
}

/// Turns two-factor off and forgets the secret and recovery codes.
pub async fn totp_disable(db: &Db, user_id: Uuid) -> Result<bool> {
    let mut tx = db.begin().await?;
    let n = tx.execute(&Q::new("DELETE FROM user_totp WHERE user_id = $1").bind(Value::Uuid(user_id))).await?;
    tx.execute(&Q::new("DELETE FROM recovery_codes WHERE user_id = $1").bind(Value::Uuid(user_id))).await?;
    tx.commit().await?;
    Ok(n > 0)
}

/// How long the second step of a sign-in may take, and how many codes it may try.
pub const MFA_CHALLENGE_MINUTES: i64 = 5;
pub const MFA_MAX_ATTEMPTS: i64 = 5;

/// Issued when the password was right and a second factor is needed.
pub async fn create_mfa_challenge(db: &Db, user_id: Uuid) -> Result<String> {
    let token = random_token("cvm_");
    let now = now_micros();
    db.execute(
        &Q::new("INSERT INTO mfa_challenges (token_hash, user_id, created_at, expires_at, attempts) VALUES ($1, $2, $3, $4, 0)")
            .bind(Value::Text(token_hash(&token)))
            .bind(Value::Uuid(user_id))
            .bind(Value::Timestamp(now))
            .bind(Value::Timestamp(now + Duration::minutes(MFA_CHALLENGE_MINUTES))),
    )
    .await?;
    Ok(token)
}

/// The user of a live challenge (unused, unexpired, attempts left).
pub async fn mfa_challenge_user(db: &Db, token: &str) -> Result<Option<Uuid>> {
    if token.len() > 200 {
        return Ok(None);
    }
    let q = Q::new("SELECT user_id FROM mfa_challenges WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3")
        .bind(Value::Text(token_hash(token)))
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Int(MFA_MAX_ATTEMPTS));
    Ok(db.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0)))
}

pub async fn mfa_challenge_failed(db: &Db, token: &str) -> Result<()> {
    db.execute(&Q::new("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE token_hash = $1").bind(Value::Text(token_hash(token))))
        .await?;
    Ok(())
}

/// Spends a challenge once it is answered. False if it was spent meanwhile.
pub async fn mfa_challenge_spend(db: &Db, token: &str) -> Result<bool> {
    let q = Q::new("UPDATE mfa_challenges SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1")
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Text(token_hash(token)));
    Ok(db.execute(&q).await? == 1)
}

// ---------------------------------------------------------------------------------------
// Access-token signing keys, kept in `schema_settings` so every node shares them.
// ---------------------------------------------------------------------------------------

pub const JWT_CURRENT: &str = "jwt_secret";
pub const JWT_PREVIOUS: &str = "jwt_secret_previous";

/// The stored signing secrets: (current, previous).
pub async fn jwt_secrets(db: &Db) -> Result<(Option<String>, Option<String>)> {
    Ok((crate::migrate::get_setting(db, JWT_CURRENT).await?, crate::migrate::get_setting(db, JWT_PREVIOUS).await?))
}

/// Makes `new_secret` the signing key; the current one becomes the previous key, which is
/// still accepted, so tokens already issued keep working until they expire.
pub async fn rotate_jwt_secret(db: &Db, new_secret: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    let sql = format!("SELECT value FROM schema_settings WHERE key = $1{}", tx.for_update());
    let current = tx.fetch_one(&Q::new(sql).bind(Value::Text(JWT_CURRENT.into())), &[SqlType::Text]).await?.and_then(|r| r.text(0));
    let upsert = "INSERT INTO schema_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
    if let Some(current) = current {
        tx.execute(&Q::new(upsert).bind(Value::Text(JWT_PREVIOUS.into())).bind(Value::Text(current))).await?;
    }
    tx.execute(&Q::new(upsert).bind(Value::Text(JWT_CURRENT.into())).bind(Value::Text(new_secret.into()))).await?;
    tx.commit().await
}
