//! The system log: structured server log events kept in the database, so every process on
//! it writes to one place and Admins can read their company's entries. Bounded by age and by
//! a row cap (see [`prune`]).

use crate::db::{Backend, Db, Q};
use crate::{new_id, Result};
use chrono::{DateTime, Utc};
use corvid_core::{SqlType, Value};
use serde::Serialize;
use uuid::Uuid;

/// Severity as stored: lower is more severe.
pub const LEVELS: &[(&str, i64)] = &[("error", 1), ("warn", 2), ("info", 3), ("debug", 4), ("trace", 5)];

pub fn severity_of(level: &str) -> Option<i64> {
    LEVELS.iter().find(|(l, _)| l.eq_ignore_ascii_case(level)).map(|(_, s)| *s)
}

pub fn level_of(severity: i64) -> &'static str {
    LEVELS.iter().find(|(_, s)| *s == severity).map_or("info", |(l, _)| l)
}

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub at: DateTime<Utc>,
    pub severity: i64,
    pub target: String,
    pub message: String,
    pub fields: serde_json::Value,
    pub request_id: Option<String>,
    pub company_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub level: &'static str,
    pub target: String,
    pub message: String,
    pub fields: serde_json::Value,
    pub request_id: Option<String>,
    pub node: String,
}

/// Writes a batch in one transaction.
pub async fn insert(db: &Db, node: &str, entries: &[NewEntry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for e in entries {
        tx.execute(
            &Q::new(
                "INSERT INTO system_logs (id, company_id, at, severity, target, message, fields, request_id, node) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(Value::Uuid(new_id()))
            .bind(e.company_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
            .bind(Value::Timestamp(e.at))
            .bind(Value::Int(e.severity))
            .bind(Value::Text(e.target.clone()))
            .bind(Value::Text(e.message.clone()))
            .bind(Value::Json(e.fields.clone()))
            .bind(e.request_id.clone().map_or(Value::Null(SqlType::Text), Value::Text))
            .bind(Value::Text(node.into())),
        )
        .await?;
    }
    tx.commit().await
}

/// Deletes entries older than `before`, then the oldest beyond `max_rows`. Safe to run from
/// several processes at once.
pub async fn prune(db: &Db, before: DateTime<Utc>, max_rows: i64) -> Result<u64> {
    let mut n = db.execute(&Q::new("DELETE FROM system_logs WHERE at < $1").bind(Value::Timestamp(before))).await?;
    n += db
        .execute(
            &Q::new("DELETE FROM system_logs WHERE at < (SELECT at FROM system_logs ORDER BY at DESC LIMIT 1 OFFSET $1)")
                .bind(Value::Int(max_rows.max(1))),
        )
        .await?;
    Ok(n)
}

/// What an Admin asks for; always one company's entries.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub company_id: Uuid,
    /// At least this severe (`warn` shows warnings and errors).
    pub max_severity: Option<i64>,
    /// Text searched case-insensitively in the message, target and fields.
    pub q: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Entries strictly older than this (time, id): the previous page's last entry.
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

fn like_pattern(s: &str) -> String {
    let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// Newest first.
pub async fn list(db: &Db, f: &Filter) -> Result<Vec<Entry>> {
    let mut q = Q::new("SELECT id, at, severity, target, message, fields, request_id, node FROM system_logs WHERE company_id = ");
    let p = q.param(Value::Uuid(f.company_id));
    q.push(&p);
    if let Some(s) = f.max_severity {
        let p = q.param(Value::Int(s));
        q.push(&format!(" AND severity <= {p}"));
    }
    if let Some(r) = &f.request_id {
        let p = q.param(Value::Text(r.clone()));
        q.push(&format!(" AND request_id = {p}"));
    }
    if let Some(t) = f.since {
        let p = q.param(Value::Timestamp(t));
        q.push(&format!(" AND at >= {p}"));
    }
    if let Some(t) = f.until {
        let p = q.param(Value::Timestamp(t));
        q.push(&format!(" AND at <= {p}"));
    }
    if let Some(text) = f.q.as_deref().filter(|t| !t.is_empty()) {
        let p = q.param(Value::Text(like_pattern(text)));
        let fields = match db.backend() {
            Backend::Sqlite => "fields",
            Backend::Postgres => "fields::text",
        };
        q.push(&format!(
            " AND (LOWER(message) LIKE {p} ESCAPE '\\' OR LOWER(target) LIKE {p} ESCAPE '\\' OR LOWER({fields}) LIKE {p} ESCAPE '\\')"
        ));
    }
    if let Some((at, id)) = f.before {
        let pa = q.param(Value::Timestamp(at));
        let pi = q.param(Value::Uuid(id));
        q.push(&format!(" AND (at < {pa} OR (at = {pa} AND id < {pi}))"));
    }
    let pl = q.param(Value::Int(f.limit.clamp(1, 1000)));
    q.push(&format!(" ORDER BY at DESC, id DESC LIMIT {pl}"));
    let types =
        [SqlType::Uuid, SqlType::Timestamp, SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Json, SqlType::Text, SqlType::Text];
    Ok(db
        .fetch(&q, &types)
        .await?
        .into_iter()
        .map(|r| Entry {
            id: r.uuid(0).unwrap_or_default(),
            at: r.timestamp(1).unwrap_or_default(),
            level: level_of(r.int(2).unwrap_or(3)),
            target: r.text(3).unwrap_or_default(),
            message: r.text(4).unwrap_or_default(),
            fields: r.json(5).unwrap_or(serde_json::Value::Null),
            request_id: r.text(6),
            node: r.text(7).unwrap_or_default(),
        })
        .collect())
}
