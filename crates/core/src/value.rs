//! Typed field values, as they travel between validation, storage and rendering.

use crate::meta::SqlType;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(SqlType),
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Uuid(Uuid),
    Date(NaiveDate),
    Timestamp(DateTime<Utc>),
    Json(serde_json::Value),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null(_))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Value::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// A plain JSON rendering (money is rendered by the caller, which knows the currency).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null(_) => serde_json::Value::Null,
            Value::Text(s) => s.clone().into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
            Value::Bool(b) => (*b).into(),
            Value::Uuid(u) => u.to_string().into(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string().into(),
            Value::Timestamp(t) => format_timestamp(t).into(),
            Value::Json(j) => j.clone(),
        }
    }

    /// Text used in the audit trail for old and new values.
    pub fn audit_text(&self) -> Option<String> {
        match self {
            Value::Null(_) => None,
            Value::Text(s) => Some(s.clone()),
            Value::Json(j) => Some(j.to_string()),
            other => match other.to_json() {
                serde_json::Value::String(s) => Some(s),
                j => Some(j.to_string()),
            },
        }
    }
}

/// RFC 3339 in UTC with microseconds, fixed width so that text order is time order.
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Timestamps in storage and comparison are truncated to microseconds, as PostgreSQL keeps them.
pub fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
