//! Web app persistence: server-side sessions and saved list views.

use crate::auth::token_hash;
use crate::db::{Db, Q};
use crate::{new_id, Result, StoreError};
use base64::Engine;
use chrono::Duration;
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use rand::RngCore;
use serde::Serialize;
use uuid::Uuid;

pub const SESSION_DAYS: i64 = 14;

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Clone)]
pub struct WebSession {
    pub user_id: Uuid,
    pub csrf_token: String,
}

/// Starts a session; returns the cookie value (shown once, stored only hashed).
pub async fn create_session(db: &Db, user_id: Uuid, ip: Option<&str>, ua: Option<&str>) -> Result<(String, WebSession)> {
    let id = random();
    let csrf = random();
    let now = now_micros();
    let opt = |s: Option<&str>| s.map_or(Value::Null(SqlType::Text), |s| Value::Text(s.chars().take(512).collect()));
    db.execute(
        &Q::new(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7)",
        )
        .bind(Value::Text(token_hash(&id)))
        .bind(Value::Uuid(user_id))
        .bind(Value::Text(csrf.clone()))
        .bind(Value::Timestamp(now))
        .bind(Value::Timestamp(now + Duration::days(SESSION_DAYS)))
        .bind(opt(ip))
        .bind(opt(ua)),
    )
    .await?;
    Ok((id, WebSession { user_id, csrf_token: csrf }))
}

/// The live session for a cookie value. Sliding expiry, refreshed at most every few minutes.
pub async fn session(db: &Db, cookie: &str) -> Result<Option<WebSession>> {
    if cookie.len() > 100 {
        return Ok(None);
    }
    let hash = token_hash(cookie);
    let q = Q::new(
        "SELECT s.user_id, s.csrf_token, s.expires_at, s.last_seen_at FROM web_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id_hash = $1 AND s.revoked_at IS NULL AND u.is_active = $2",
    )
    .bind(Value::Text(hash.clone()))
    .bind(Value::Bool(true));
    let Some(r) = db.fetch_one(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Timestamp, SqlType::Timestamp]).await? else {
        return Ok(None);
    };
    let now = now_micros();
    if r.timestamp(2).is_none_or(|e| e < now) {
        return Ok(None);
    }
    if r.timestamp(3).is_none_or(|t| now - t > Duration::minutes(5)) {
        db.execute(
            &Q::new("UPDATE web_sessions SET last_seen_at = $1, expires_at = $2 WHERE id_hash = $3")
                .bind(Value::Timestamp(now))
                .bind(Value::Timestamp(now + Duration::days(SESSION_DAYS)))
                .bind(Value::Text(hash)),
        )
        .await?;
    }
    Ok(Some(WebSession { user_id: r.uuid(0).ok_or(StoreError::NotFound)?, csrf_token: r.text(1).unwrap_or_default() }))
}

pub async fn end_session(db: &Db, cookie: &str) -> Result<()> {
    db.execute(
        &Q::new("UPDATE web_sessions SET revoked_at = $1 WHERE id_hash = $2 AND revoked_at IS NULL")
            .bind(Value::Timestamp(now_micros()))
            .bind(Value::Text(token_hash(cookie))),
    )
    .await?;
    Ok(())
}

/// Ends every web session and API session of a user (after a password change).
pub async fn end_all_sessions(db: &Db, user_id: Uuid, except_cookie: Option<&str>) -> Result<()> {
    let now = Value::Timestamp(now_micros());
    let keep = except_cookie.map(token_hash).unwrap_or_default();
    db.execute(
        &Q::new("UPDATE web_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id_hash <> $3")
            .bind(now.clone())
            .bind(Value::Uuid(user_id))
            .bind(Value::Text(keep)),
    )
    .await?;
    db.execute(
        &Q::new("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL").bind(now).bind(Value::Uuid(user_id)),
    )
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct SavedView {
    pub id: Uuid,
    pub name: String,
    pub query: String,
    pub columns: Vec<String>,
}

pub async fn views(db: &Db, company_id: Uuid, user_id: Uuid, object: &str) -> Result<Vec<SavedView>> {
    let q = Q::new("SELECT id, name, query, columns FROM saved_views WHERE company_id = $1 AND user_id = $2 AND object = $3 ORDER BY name")
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(user_id))
        .bind(Value::Text(object.into()));
    Ok(db
        .fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Json])
        .await?
        .into_iter()
        .filter_map(|r| {
            Some(SavedView {
                id: r.uuid(0)?,
                name: r.text(1)?,
                query: r.text(2)?,
                columns: r.json(3)?.as_array()?.iter().filter_map(|c| c.as_str().map(str::to_string)).collect(),
            })
        })
        .collect())
}

/// Saves (or replaces, by name) a list view: its query string and chosen columns.
pub async fn save_view(db: &Db, company_id: Uuid, user_id: Uuid, object: &str, name: &str, query: &str, columns: &[String]) -> Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(StoreError::invalid("name", "must be 1 to 80 characters"));
    }
    if query.len() > 4000 || columns.len() > 60 {
        return Err(StoreError::invalid("query", "is too long"));
    }
    let mut tx = db.begin().await?;
    tx.execute(
        &Q::new("DELETE FROM saved_views WHERE company_id = $1 AND user_id = $2 AND object = $3 AND name = $4")
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(user_id))
            .bind(Value::Text(object.into()))
            .bind(Value::Text(name.into())),
    )
    .await?;
    tx.execute(
        &Q::new("INSERT INTO saved_views (id, company_id, user_id, object, name, query, columns, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(Value::Uuid(new_id()))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(user_id))
            .bind(Value::Text(object.into()))
            .bind(Value::Text(name.into()))
            .bind(Value::Text(query.into()))
            .bind(Value::Json(serde_json::json!(columns)))
            .bind(Value::Timestamp(now_micros())),
    )
    .await?;
    tx.commit().await
}

pub async fn delete_view(db: &Db, company_id: Uuid, user_id: Uuid, id: Uuid) -> Result<()> {
    db.execute(
        &Q::new("DELETE FROM saved_views WHERE company_id = $1 AND user_id = $2 AND id = $3")
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(user_id))
            .bind(Value::Uuid(id)),
    )
    .await?;
    Ok(())
}
