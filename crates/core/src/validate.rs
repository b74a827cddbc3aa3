//! Input validation and normalisation for every object, standard and custom fields alike.
//!
//! The same code serves the API, the UI forms and imports: a JSON object goes in, typed
//! values or a list of per-field errors come out. Nothing here touches the database; checks
//! that need it (references exist in the same company) run in the store.

use crate::meta::{Field, FieldKind, ObjectDef, SqlType, SYSTEM_COLUMNS};
use crate::money;
use crate::value::Value;
use chrono::{DateTime, NaiveDate, Utc};
use once_cell::sync::Lazy;
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Update,
}

/// Validated changes: standard fields as typed column values, custom fields as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub fields: BTreeMap<String, Value>,
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// Keys a client may send that are not fields.
const CONTROL_KEYS: &[&str] = &["version"];

/// Largest serialised JSON field value (json kind).
const MAX_JSON_BYTES: usize = 64 * 1024;

pub struct Validator<'a> {
    pub object: &'a ObjectDef,
    pub custom_fields: &'a [Field],
    /// Calling code used for phone numbers written without one, e.g. "91".
    pub default_calling_code: &'a str,
}

impl Validator<'_> {
    fn lookup(&self, name: &str) -> Option<&Field> {
        self.object.field(name).or_else(|| self.custom_fields.iter().find(|f| f.name == name))
    }

    pub fn validate(&self, input: &serde_json::Map<String, serde_json::Value>, mode: Mode) -> Result<Changes, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut changes = Changes::default();
        for (key, raw) in input {
            if CONTROL_KEYS.contains(&key.as_str()) {
                continue;
            }
            let Some(field) = self.lookup(key) else {
                let reason = if SYSTEM_COLUMNS.iter().any(|(c, _)| c == key) {
                    "is set by the system and cannot be written"
                } else {
                    "is not a field of this object"
                };
                errors.push(FieldError::new(truncate_name(key), reason));
                continue;
            };
            if field.read_only {
                errors.push(FieldError::new(key, "is read-only"));
                continue;
            }
            match parse_value(field, raw, self.default_calling_code) {
                Ok(v) => {
                    if field.required && v.is_null() {
                        errors.push(FieldError::new(key, "is required"));
                    } else if field.custom {
                        changes.custom.insert(key.clone(), v.to_json());
                    } else {
                        changes.fields.insert(key.clone(), v);
                    }
                }
                Err(reason) => errors.push(FieldError::new(key, reason)),
            }
        }
        if mode == Mode::Create {
            for field in self.object.fields.iter().chain(self.custom_fields) {
                let present = changes.fields.contains_key(&field.name) || changes.custom.contains_key(&field.name);
                if present || field.read_only {
                    continue;
                }
                if let Some(default) = &field.default {
                    match parse_value(field, default, self.default_calling_code) {
                        Ok(v) if field.custom => {
                            changes.custom.insert(field.name.clone(), v.to_json());
                        }
                        Ok(v) => {
                            changes.fields.insert(field.name.clone(), v);
                        }
                        Err(reason) => errors.push(FieldError::new(&field.name, reason)),
                    }
                } else if field.required && !errors.iter().any(|e| e.field == field.name) {
                    errors.push(FieldError::new(&field.name, "is required"));
                }
            }
        }
        // Money needs its currency to know the minor unit: re-check with the final currency.
        if errors.is_empty() {
            Ok(changes)
        } else {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            Err(errors)
        }
    }
}

fn truncate_name(key: &str) -> String {
    key.chars().take(64).collect()
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn expect_str<'v>(raw: &'v serde_json::Value, what: &str) -> Result<&'v str, String> {
    raw.as_str().ok_or_else(|| format!("must be {what}, not {}", type_name(raw)))
}

static EMAIL: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
        .expect("email regex")
});
static URL: Lazy<Regex> = Lazy::new(|| Regex::new(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$").expect("url regex"));
static GSTIN: Lazy<Regex> = Lazy::new(|| Regex::new(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$").expect("gstin regex"));

/// Parses and normalises one raw JSON value for a field. JSON null (and an empty string for
/// text-like fields) clears the field.
pub fn parse_value(field: &Field, raw: &serde_json::Value, calling_code: &str) -> Result<Value, String> {
    let sql = field.kind.sql_type();
    if raw.is_null() {
        return Ok(Value::Null(sql));
    }
    let blank = raw.as_str().is_some_and(|s| s.trim().is_empty());
    match &field.kind {
        FieldKind::Text { max_len } | FieldKind::LongText { max_len } => {
            let s = expect_str(raw, "text")?;
            let single_line = matches!(field.kind, FieldKind::Text { .. });
            let s = if single_line { s.trim() } else { s.trim_end() };
            if s.is_empty() {
                return Ok(Value::Null(sql));
            }
            if s.chars().count() > *max_len {
                return Err(format!("must be at most {max_len} characters"));
            }
            if s.chars().any(|c| c == '\0' || (single_line && (c == '\n' || c == '\r'))) {
                return Err("contains characters that are not allowed".into());
            }
            Ok(Value::Text(s.to_string()))
        }
        _ if blank => Ok(Value::Null(sql)),
        FieldKind::Email => parse_email(expect_str(raw, "an email address")?).map(Value::Text),
        FieldKind::Phone => parse_phone(expect_str(raw, "a phone number")?, calling_code).map(Value::Text),
        FieldKind::Url => parse_url(expect_str(raw, "a URL")?).map(Value::Text),
        FieldKind::Integer { min, max } => {
            let i = as_integer(raw)?;
            if i < *min || i > *max {
                return Err(format!("must be between {min} and {max}"));
            }
            Ok(Value::Int(i))
        }
        FieldKind::Percent => {
            let i = as_integer(raw)?;
            if !(0..=100).contains(&i) {
                return Err("must be between 0 and 100".into());
            }
            Ok(Value::Int(i))
        }
        FieldKind::Decimal => {
            let f = match raw {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("must be a number, not {}", type_name(raw)))?;
            Ok(Value::Float(f))
        }
        FieldKind::Money { .. } => {
            // Exponent 3 is the widest any supported currency uses; the store re-checks the
            // amount against the record's own currency once it is known.
            let text = match raw {
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                other => return Err(format!("must be a decimal amount, not {}", type_name(other))),
            };
            money::parse_minor(&text, 3).map_err(|e| e.to_string())?;
            Ok(Value::Text(text.trim().to_string()))
        }
        FieldKind::Date => {
            let s = expect_str(raw, "a date (YYYY-MM-DD)")?;
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map(Value::Date).map_err(|_| "must be a date (YYYY-MM-DD)".into())
        }
        FieldKind::DateTime => {
            let s = expect_str(raw, "a date-time (RFC 3339)")?;
            parse_timestamp(s).map(Value::Timestamp).ok_or_else(|| "must be a date-time (RFC 3339)".into())
        }
        FieldKind::Boolean => raw.as_bool().map(Value::Bool).ok_or_else(|| format!("must be true or false, not {}", type_name(raw))),
        FieldKind::Enum { options } => {
            let s = expect_str(raw, "one of the listed options")?.trim();
            if options.iter().any(|o| o.value == s) {
                Ok(Value::Text(s.to_string()))
            } else {
                Err(format!("must be one of: {}", options.iter().map(|o| o.value.as_str()).collect::<Vec<_>>().join(", ")))
            }
        }
        FieldKind::MultiEnum { options } => {
            let items = raw.as_array().ok_or_else(|| format!("must be an array, not {}", type_name(raw)))?;
            let mut out: Vec<String> = Vec::new();
            for item in items {
                let s = item.as_str().ok_or("must contain only strings")?.trim();
                if !options.iter().any(|o| o.value == s) {
                    return Err(format!("contains \"{}\", which is not an option", s.chars().take(40).collect::<String>()));
                }
                if !out.iter().any(|x| x == s) {
                    out.push(s.to_string());
                }
            }
            Ok(Value::Json(out.into()))
        }
        FieldKind::Tags => {
            let items = raw.as_array().ok_or_else(|| format!("must be an array of strings, not {}", type_name(raw)))?;
            if items.len() > 50 {
                return Err("must have at most 50 tags".into());
            }
            let mut out: Vec<String> = Vec::new();
            for item in items {
                let s = item.as_str().ok_or("must contain only strings")?.trim();
                if s.is_empty() {
                    continue;
                }
                if s.chars().count() > 50 {
                    return Err("tags must be at most 50 characters".into());
                }
                if !out.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                    out.push(s.to_string());
                }
            }
            Ok(Value::Json(out.into()))
        }
        FieldKind::Reference { .. } | FieldKind::User => {
            let s = expect_str(raw, "an id")?;
            Uuid::parse_str(s.trim()).map(Value::Uuid).map_err(|_| "must be a valid id (UUID)".into())
        }
        FieldKind::Json => {
            if raw.to_string().len() > MAX_JSON_BYTES {
                return Err("is too large".into());
            }
            Ok(Value::Json(raw.clone()))
        }
        FieldKind::Currency => {
            let s = expect_str(raw, "an ISO 4217 currency code")?.trim().to_ascii_uppercase();
            if money::currency_exponent(&s).is_some() {
                Ok(Value::Text(s))
            } else {
                Err("must be a supported ISO 4217 currency code such as INR or USD".into())
            }
        }
        FieldKind::Country => {
            let s = expect_str(raw, "an ISO 3166 country code")?.trim().to_ascii_uppercase();
            if crate::country::is_country(&s) {
                Ok(Value::Text(s))
            } else {
                Err("must be an ISO 3166-1 alpha-2 country code such as IN or US".into())
            }
        }
        FieldKind::Gstin => {
            let s = expect_str(raw, "a GSTIN")?.trim().to_ascii_uppercase();
            if gstin_is_valid(&s) {
                Ok(Value::Text(s))
            } else {
                Err("is not a valid GSTIN (15 characters with a correct check digit)".into())
            }
        }
    }
}

fn as_integer(raw: &serde_json::Value) -> Result<i64, String> {
    match raw {
        serde_json::Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
            .ok_or_else(|| "must be a whole number".into()),
        other => Err(format!("must be a whole number, not {}", type_name(other))),
    }
}

pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s.trim()).ok()?.with_timezone(&Utc);
    DateTime::from_timestamp_micros(t.timestamp_micros())
}

pub fn parse_email(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() > 254 {
        return Err("must be at most 254 characters".into());
    }
    if !EMAIL.is_match(s) {
        return Err("is not a valid email address".into());
    }
    let (local, domain) = s.rsplit_once('@').ok_or("is not a valid email address")?;
    // RFC 5321 limits, and dots only between characters of the local part.
    if local.len() > 64 || local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("is not a valid email address".into());
    }
    // The top-level domain is letters (or an IDN "xn--" label), never digits alone.
    let tld = domain.rsplit('.').next().unwrap_or("");
    if tld.len() < 2 || !(tld.chars().all(|c| c.is_ascii_alphabetic()) || tld.to_ascii_lowercase().starts_with("xn--")) {
        return Err("is not a valid email address".into());
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Normalises a phone number to E.164 and checks it against the numbering plan of its
/// country (libphonenumber metadata). Numbers without a country code take the company's
/// default one.
pub fn parse_phone(s: &str, calling_code: &str) -> Result<String, String> {
    crate::phone::parse(s, calling_code).map(|p| p.e164)
}

pub fn parse_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let with_scheme = if s.contains("://") { s.to_string() } else { format!("https://{s}") };
    let lower_scheme = with_scheme.to_ascii_lowercase();
    if !(lower_scheme.starts_with("http://") || lower_scheme.starts_with("https://")) || !URL.is_match(&with_scheme) {
        return Err("is not a valid http(s) URL".into());
    }
    let host = with_scheme.split("://").nth(1).and_then(|r| r.split(['/', '?', '#', ':']).next()).unwrap_or("");
    if !host.contains('.') && host != "localhost" {
        return Err("is not a valid http(s) URL".into());
    }
    Ok(with_scheme)
}

const GSTIN_CHARS: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// GSTIN: state code, PAN, entity number, 'Z', and a base-36 check character.
pub fn gstin_is_valid(s: &str) -> bool {
    if !GSTIN.is_match(s) {
        return false;
    }
    let state: u32 = s[..2].parse().unwrap_or(0);
    if !(1..=38).contains(&state) && state != 97 && state != 99 {
        return false;
    }
    gstin_check_char(&s[..14]) == s.chars().nth(14)
}

pub fn gstin_check_char(first14: &str) -> Option<char> {
    let mut sum = 0u32;
    for (i, c) in first14.chars().enumerate() {
        let v = GSTIN_CHARS.find(c)? as u32;
        let p = v * if i % 2 == 0 { 1 } else { 2 };
        sum += p / 36 + p % 36;
    }
    GSTIN_CHARS.chars().nth(((36 - sum % 36) % 36) as usize)
}

/// Makes the name an admin gives a custom field into its API name (`cf_` prefix keeps
/// custom fields from ever colliding with standard ones added later).
pub fn custom_field_api_name(raw: &str) -> Result<String, String> {
    let base: String = raw.trim().to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let base = base.trim_matches('_').to_string();
    let name = if base.starts_with("cf_") { base } else { format!("cf_{base}") };
    if name.len() <= 3 || name.len() > 60 || !name[3..].starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a letter and be 1 to 57 letters, digits or underscores".into());
    }
    Ok(name)
}

/// Field types an admin may give a custom field.
pub fn custom_kind(type_name: &str, options: &[crate::meta::EnumOption], max_len: Option<usize>) -> Result<FieldKind, String> {
    Ok(match type_name {
        "text" => FieldKind::Text { max_len: max_len.unwrap_or(255).clamp(1, 255) },
        "long_text" => FieldKind::LongText { max_len: max_len.unwrap_or(20_000).clamp(1, 20_000) },
        "email" => FieldKind::Email,
        "phone" => FieldKind::Phone,
        "url" => FieldKind::Url,
        "integer" => FieldKind::Integer { min: i64::MIN / 2, max: i64::MAX / 2 },
        "decimal" => FieldKind::Decimal,
        "percent" => FieldKind::Percent,
        "date" => FieldKind::Date,
        "datetime" => FieldKind::DateTime,
        "boolean" => FieldKind::Boolean,
        "enum" | "multi_enum" => {
            if options.is_empty() {
                return Err("needs at least one option".into());
            }
            if type_name == "enum" {
                FieldKind::Enum { options: options.to_vec() }
            } else {
                FieldKind::MultiEnum { options: options.to_vec() }
            }
        }
        _ => {
            return Err(
                "must be one of: text, long_text, email, phone, url, integer, decimal, percent, date, datetime, boolean, enum, multi_enum"
                    .into(),
            )
        }
    })
}

/// Storage class of a custom field's JSON value, for filtering and sorting.
pub fn custom_sql_type(kind: &FieldKind) -> SqlType {
    kind.sql_type()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::object;
    use serde_json::json;

    fn v() -> Validator<'static> {
        Validator { object: object("leads").expect("leads"), custom_fields: &[], default_calling_code: "91" }
    }

    fn map(j: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        j.as_object().cloned().expect("object")
    }

    #[test]
    fn gstin_checksum() {
        assert!(gstin_is_valid("27AAPFU0939F1ZV"));
        assert!(gstin_is_valid("29AAGCB7383J1Z4"));
        assert!(!gstin_is_valid("27AAPFU0939F1ZA"));
        assert!(!gstin_is_valid("27AAPFU0939F1Z"));
        assert!(!gstin_is_valid("00AAPFU0939F1ZV"));
    }

    #[test]
    fn emails_and_phones_normalise() {
        assert_eq!(parse_email(" Priya.Shah@Example.COM "), Ok("Priya.Shah@example.com".into()));
        assert!(parse_email("not an email").is_err());
        assert!(parse_email("a@b").is_err());
        assert!(parse_email("a..b@example.com").is_err());
        assert!(parse_email(".a@example.com").is_err());
        assert!(parse_email("a@example.c0m1").is_err());
        assert!(parse_email("a@192.168.0.1").is_err());
        assert_eq!(parse_email("x@Bücher.xn--p1ai").ok(), None, "raw unicode domains are not accepted");
        assert_eq!(parse_email("Ravi+crm@XN--P1AI.xn--p1ai"), Ok("Ravi+crm@xn--p1ai.xn--p1ai".into()));
        assert!(parse_phone("+44 7700 900123", "91").is_err());
        assert_eq!(parse_phone("98765 43210", "91"), Ok("+919876543210".into()));
        assert_eq!(parse_phone("+1 (415) 555-0100", "91"), Ok("+14155550100".into()));
        assert_eq!(parse_phone("0044 20 7946 0958", "91"), Ok("+442079460958".into()));
        assert!(parse_phone("call me", "91").is_err());
        assert!(parse_phone("123", "91").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(parse_url("acme.in"), Ok("https://acme.in".into()));
        assert!(parse_url("javascript:alert(1)").is_err());
        assert!(parse_url("ftp://x.com").is_err());
    }

    #[test]
    fn create_applies_defaults_and_requires() {
        let err = v().validate(&map(json!({"first_name": "A"})), Mode::Create).expect_err("last_name required");
        assert_eq!(err, vec![FieldError::new("last_name", "is required")]);
        let ok = v().validate(&map(json!({"last_name": "Rao"})), Mode::Create).expect("valid");
        assert_eq!(ok.fields.get("status"), Some(&Value::Text("new".into())));
        assert_eq!(ok.fields.get("lead_score"), Some(&Value::Int(0)));
    }

    #[test]
    fn rejects_bad_types_unknown_and_system_fields() {
        let err = v()
            .validate(
                &map(json!({"last_name": 5, "lead_score": "high", "status": "bogus", "nope": 1, "company_id": "x", "converted_at": "2026-01-01T00:00:00Z"})),
                Mode::Update,
            )
            .expect_err("invalid");
        let fields: Vec<_> = err.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["company_id", "converted_at", "last_name", "lead_score", "nope", "status"]);
    }

    #[test]
    fn limits_and_unicode() {
        let long = "é".repeat(255);
        assert!(v().validate(&map(json!({"last_name": long})), Mode::Update).is_ok());
        let too_long = "é".repeat(256);
        assert!(v().validate(&map(json!({"last_name": too_long})), Mode::Update).is_err());
        assert!(v().validate(&map(json!({"lead_score": 101})), Mode::Update).is_err());
        assert!(v().validate(&map(json!({"lead_score": 1.5})), Mode::Update).is_err());
    }

    #[test]
    fn custom_names() {
        assert_eq!(custom_field_api_name("Discount %"), Ok("cf_discount".into()));
        assert_eq!(custom_field_api_name("cf_region"), Ok("cf_region".into()));
        assert!(custom_field_api_name("9lives").is_err());
        assert!(custom_field_api_name("!!!").is_err());
    }
}
