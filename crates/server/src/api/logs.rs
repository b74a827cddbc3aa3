//! The system log of a company, for its Admins:
//! `GET /api/v1/companies/{company_id}/admin/logs?level=&q=&request_id=&since=&until=&cursor=&limit=`.
//!
//! The path is under the company rather than a global `/api/v1/admin/logs`: Admins are
//! Admins of a company, not of the server, and a log entry belongs to the company whose
//! membership the request proved. A global view would need an operator role that Corvid does
//! not have; operators read the server's own output (or the table) instead.

use crate::error::{ApiError, ApiResult};
use crate::extract::Admin;
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use corvid_store::syslog::{self, Filter};
use serde_json::json;
use uuid::Uuid;

pub const PAGE: i64 = 100;

/// A page position: the last entry's time (microseconds) and id.
pub fn cursor_of(e: &syslog::Entry) -> String {
    format!("{}_{}", e.at.timestamp_micros(), e.id.simple())
}

pub fn parse_cursor(s: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = s.split_once('_')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, Uuid::parse_str(id).ok()?))
}

/// Parses the query into a filter for `company_id`; errors name the parameter.
pub fn filter_from_query(company_id: Uuid, raw: Option<&str>) -> ApiResult<Filter> {
    // Shared reading of query strings (refuses NUL, which PostgreSQL cannot search for).
    let pairs = crate::api::records::query_pairs(raw)?;
    let mut f = Filter { company_id, limit: PAGE, ..Default::default() };
    for (k, v) in pairs {
        let v = v.trim().to_string();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "level" => {
                f.max_severity = Some(
                    syslog::severity_of(&v)
                        .ok_or_else(|| ApiError::bad_field("level", "must be one of error, warn, info, debug, trace"))?,
                )
            }
            "q" => {
                if v.chars().count() > 200 {
                    return Err(ApiError::bad_field("q", "must be at most 200 characters"));
                }
                f.q = Some(v);
            }
            "request_id" => {
                if v.len() > 100 {
                    return Err(ApiError::bad_field("request_id", "must be at most 100 characters"));
                }
                f.request_id = Some(v);
            }
            "since" | "until" => {
                let t = DateTime::parse_from_rfc3339(&v)
                    .map_err(|_| ApiError::bad_field(&k, "must be a date-time such as 2025-01-31T09:00:00Z"))?
                    .with_timezone(&Utc);
                if k == "since" {
                    f.since = Some(t);
                } else {
                    f.until = Some(t);
                }
            }
            "cursor" => f.before = Some(parse_cursor(&v).ok_or_else(|| ApiError::bad_field("cursor", "is not a cursor from this list"))?),
            "limit" => {
                f.limit = v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=200).contains(n))
                    .ok_or_else(|| ApiError::bad_field("limit", "must be a whole number from 1 to 200"))?
            }
            other => {
                return Err(ApiError::bad_field(
                    &other.chars().take(40).collect::<String>(),
                    "is not a parameter of this list (level, q, request_id, since, until, cursor, limit)",
                ))
            }
        }
    }
    Ok(f)
}

pub async fn list(State(st): State<AppState>, Admin(t): Admin, RawQuery(raw): RawQuery) -> ApiResult<impl IntoResponse> {
    let mut f = filter_from_query(t.company_id, raw.as_deref())?;
    let limit = f.limit;
    f.limit = limit + 1;
    let mut rows = syslog::list(&st.db, &f).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(cursor_of) } else { None };
    Ok(Json(json!({ "data": rows, "next_cursor": next })))
}
