//! Rule conditions, shared by lead scoring and assignment rules: a condition tests one field
//! of a record (`country eq IN`) or an engagement count in a time window (`email_opened gte 2
//! within 30 days`). Pure: the store supplies the record's values and its engagement events.
//!
//! Text compares case-insensitively and trimmed ("in" equals "IN"), numbers numerically, and a
//! list value (tags) matches `eq`/`contains` when any element does.

use crate::validate::FieldError;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Longest text a condition value may hold.
pub const MAX_VALUE_CHARS: usize = 255;
/// Most entries of an `in` / `not_in` list.
pub const MAX_LIST: usize = 200;
/// Most conditions of one rule.
pub const MAX_CONDITIONS: usize = 20;
/// Longest engagement window.
pub const MAX_WINDOW_DAYS: i64 = 3650;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Neq,
    In,
    NotIn,
    Contains,
    NotContains,
    StartsWith,
    Gt,
    Gte,
    Lt,
    Lte,
    IsSet,
    IsNotSet,
}

impl Op {
    pub const ALL: [Op; 13] = [
        Op::Eq,
        Op::Neq,
        Op::In,
        Op::NotIn,
        Op::Contains,
        Op::NotContains,
        Op::StartsWith,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::IsSet,
        Op::IsNotSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::NotContains => "not_contains",
            Op::StartsWith => "starts_with",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::IsSet => "is_set",
            Op::IsNotSet => "is_not_set",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// How the operator reads in a sentence ("country is IN").
    pub fn label(self) -> &'static str {
        match self {
            Op::Eq => "is",
            Op::Neq => "is not",
            Op::In => "is one of",
            Op::NotIn => "is none of",
            Op::Contains => "contains",
            Op::NotContains => "does not contain",
            Op::StartsWith => "starts with",
            Op::Gt => ">",
            Op::Gte => "≥",
            Op::Lt => "<",
            Op::Lte => "≤",
            Op::IsSet => "is set",
            Op::IsNotSet => "is empty",
        }
    }

    fn takes_value(self) -> bool {
        !matches!(self, Op::IsSet | Op::IsNotSet)
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Neq | Op::Gt | Op::Gte | Op::Lt | Op::Lte)
    }
}

/// Kinds of engagement a lead can show. Activities logged against a lead count as
/// `activity_logged` (meetings also as `meeting_held`); the rest arrive as events from outside
/// (email tracking, web forms) through the engagement endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngagementKind {
    ActivityLogged,
    EmailOpened,
    EmailClicked,
    FormSubmitted,
    MeetingHeld,
}

impl EngagementKind {
    pub const ALL: [EngagementKind; 5] = [
        EngagementKind::ActivityLogged,
        EngagementKind::EmailOpened,
        EngagementKind::EmailClicked,
        EngagementKind::FormSubmitted,
        EngagementKind::MeetingHeld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EngagementKind::ActivityLogged => "activity_logged",
            EngagementKind::EmailOpened => "email_opened",
            EngagementKind::EmailClicked => "email_clicked",
            EngagementKind::FormSubmitted => "form_submitted",
            EngagementKind::MeetingHeld => "meeting_held",
        }
    }

    pub fn parse(s: &str) -> Option<EngagementKind> {
        EngagementKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            EngagementKind::ActivityLogged => "Activities logged",
            EngagementKind::EmailOpened => "Emails opened",
            EngagementKind::EmailClicked => "Email links clicked",
            EngagementKind::FormSubmitted => "Forms submitted",
            EngagementKind::MeetingHeld => "Meetings held",
        }
    }
}

/// One engagement event of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub kind: EngagementKind,
    pub at: DateTime<Utc>,
}

/// Counts of `kind` at or before `now`, within the last `within_days` days when given.
/// Future events (a meeting planned for next week) have not happened yet and do not count.
pub fn count_events(events: &[Event], kind: EngagementKind, within_days: Option<i64>, now: DateTime<Utc>) -> i64 {
    let since = within_days.map(|d| now - Duration::days(d));
    events.iter().filter(|e| e.kind == kind && e.at <= now && since.is_none_or(|s| e.at >= s)).count() as i64
}

/// A condition on a field (`field` set) or on engagement (`engagement` set), never both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engagement: Option<EngagementKind>,
    pub op: Op,
    #[serde(default, skip_serializing_if = "Json::is_null")]
    pub value: Json,
    /// Engagement only: count events of the last N days (all time when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_days: Option<i64>,
}

/// What conditions are tested against: the record's values by field name (standard and
/// custom, as JSON) and its engagement events.
pub struct Facts<'a> {
    pub fields: &'a Map<String, Json>,
    pub events: &'a [Event],
    pub now: DateTime<Utc>,
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn is_set(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::String(s) => !s.trim().is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn as_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Equality of two scalars: numbers numerically, text case-insensitively, booleans as is.
fn scalar_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::String(x), Json::String(y)) => norm(x) == norm(y),
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::Bool(x), Json::String(y)) | (Json::String(y), Json::Bool(x)) => norm(y) == x.to_string(),
        _ => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// `actual` equals `expected`; a list matches when one of its elements does.
fn value_eq(actual: &Json, expected: &Json) -> bool {
    match actual {
        Json::Array(items) => items.iter().any(|i| scalar_eq(i, expected)),
        other => scalar_eq(other, expected),
    }
}

fn text_of(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(norm(s)),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn order(actual: &Json, expected: &Json) -> Option<std::cmp::Ordering> {
    match (as_number(actual), as_number(expected)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        // Dates and times are fixed-width text, so text order is time order.
        _ => match (actual, expected) {
            (Json::String(a), Json::String(b)) => Some(a.trim().cmp(b.trim())),
            _ => None,
        },
    }
}

/// Whether one value satisfies `op value`.
pub fn test_value(actual: &Json, op: Op, expected: &Json) -> bool {
    use std::cmp::Ordering::{Greater, Less};
    match op {
        Op::IsSet => is_set(actual),
        Op::IsNotSet => !is_set(actual),
        Op::Eq => value_eq(actual, expected),
        Op::Neq => !value_eq(actual, expected),
        Op::In => expected.as_array().is_some_and(|list| list.iter().any(|e| value_eq(actual, e))),
        Op::NotIn => !expected.as_array().is_some_and(|list| list.iter().any(|e| value_eq(actual, e))),
        Op::Contains | Op::NotContains => {
            let hit = match actual {
                Json::Array(items) => items.iter().any(|i| scalar_eq(i, expected)),
                other => match (text_of(other), text_of(expected)) {
                    (Some(a), Some(b)) => a.contains(&b),
                    _ => false,
                },
            };
            hit == (op == Op::Contains)
        }
        Op::StartsWith => matches!((text_of(actual), text_of(expected)), (Some(a), Some(b)) if a.starts_with(&b)),
        Op::Gt => order(actual, expected) == Some(Greater),
        Op::Gte => matches!(order(actual, expected), Some(o) if o != Less),
        Op::Lt => order(actual, expected) == Some(Less),
        Op::Lte => matches!(order(actual, expected), Some(o) if o != Greater),
    }
}

impl Condition {
    pub fn field(name: &str, op: Op, value: Json) -> Condition {
        Condition { field: Some(name.into()), engagement: None, op, value, within_days: None }
    }

    pub fn engagement(kind: EngagementKind, op: Op, count: i64, within_days: Option<i64>) -> Condition {
        Condition { field: None, engagement: Some(kind), op, value: count.into(), within_days }
    }

    pub fn matches(&self, facts: &Facts<'_>) -> bool {
        match (&self.field, self.engagement) {
            (Some(f), _) => test_value(facts.fields.get(f).unwrap_or(&Json::Null), self.op, &self.value),
            (None, Some(kind)) => {
                let n = count_events(facts.events, kind, self.within_days, facts.now);
                test_value(&Json::from(n), self.op, &self.value)
            }
            (None, None) => false,
        }
    }

    /// A sentence for people: "country is IN", "email_opened ≥ 2 in 30 days".
    pub fn describe(&self) -> String {
        let subject = match (&self.field, self.engagement) {
            (Some(f), _) => f.clone(),
            (None, Some(k)) => k.as_str().to_string(),
            (None, None) => "?".into(),
        };
        let value = match &self.value {
            Json::Null => String::new(),
            Json::String(s) => format!(" {s}"),
            Json::Array(a) => format!(" {}", a.iter().map(shown).collect::<Vec<_>>().join(", ")),
            other => format!(" {other}"),
        };
        let window = self.within_days.map(|d| format!(" in {d} days")).unwrap_or_default();
        format!("{subject} {}{value}{window}", self.op.label())
    }
}

fn shown(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// True when every condition holds (a rule without conditions always matches).
pub fn all_match(conditions: &[Condition], facts: &Facts<'_>) -> bool {
    conditions.iter().all(|c| c.matches(facts))
}

fn scalar_ok(v: &Json) -> Result<(), &'static str> {
    match v {
        Json::String(s) if s.chars().count() > MAX_VALUE_CHARS => Err("is longer than 255 characters"),
        Json::String(_) | Json::Bool(_) => Ok(()),
        Json::Number(n) if n.as_f64().is_some_and(f64::is_finite) => Ok(()),
        _ => Err("must be text, a number or true/false"),
    }
}

/// Checks conditions, naming failures `{path}[i].part`. `is_field` says whether a name is a
/// field of the object the rules apply to.
pub fn validate_conditions(conditions: &[Condition], path: &str, is_field: &dyn Fn(&str) -> bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if conditions.len() > MAX_CONDITIONS {
        errors.push(FieldError::new(path, format!("may have at most {MAX_CONDITIONS} conditions")));
        return errors;
    }
    for (i, c) in conditions.iter().enumerate() {
        let at = |part: &str| format!("{path}[{i}].{part}");
        match (&c.field, c.engagement) {
            (Some(_), Some(_)) => errors.push(FieldError::new(at("field"), "give either field or engagement, not both")),
            (None, None) => errors.push(FieldError::new(at("field"), "is required (or engagement)")),
            (Some(f), None) => {
                if !is_field(f) {
                    let shown: String = f.chars().take(60).collect();
                    errors.push(FieldError::new(at("field"), format!("\"{shown}\" is not a field")));
                }
                if c.within_days.is_some() {
                    errors.push(FieldError::new(at("within_days"), "only applies to engagement conditions"));
                }
            }
            (None, Some(_)) => {
                if !c.op.is_comparison() {
                    errors.push(FieldError::new(at("op"), "must be eq, neq, gt, gte, lt or lte for engagement counts"));
                }
                if !c.value.as_i64().is_some_and(|n| (0..=1_000_000).contains(&n)) {
                    errors.push(FieldError::new(at("value"), "must be a whole number of events from 0 to 1000000"));
                }
                if let Some(d) = c.within_days {
                    if !(1..=MAX_WINDOW_DAYS).contains(&d) {
                        errors.push(FieldError::new(at("within_days"), format!("must be from 1 to {MAX_WINDOW_DAYS}")));
                    }
                }
                continue;
            }
        }
        if !c.op.takes_value() {
            if !c.value.is_null() {
                errors.push(FieldError::new(at("value"), format!("must be left out for {}", c.op.as_str())));
            }
            continue;
        }
        match (c.op, &c.value) {
            (_, Json::Null) => errors.push(FieldError::new(at("value"), "is required")),
            (Op::In | Op::NotIn, Json::Array(list)) => {
                if list.is_empty() || list.len() > MAX_LIST {
                    errors.push(FieldError::new(at("value"), format!("must list 1 to {MAX_LIST} values")));
                }
                for (j, v) in list.iter().enumerate() {
                    if let Err(e) = scalar_ok(v) {
                        errors.push(FieldError::new(format!("{}[{j}]", at("value")), e));
                        break;
                    }
                }
            }
            (Op::In | Op::NotIn, _) => errors.push(FieldError::new(at("value"), "must be a list of values")),
            (Op::Gt | Op::Gte | Op::Lt | Op::Lte, v) if !(v.is_number() || v.is_string()) => {
                errors.push(FieldError::new(at("value"), "must be a number (or a date as text)"))
            }
            (_, v) => {
                if let Err(e) = scalar_ok(v) {
                    errors.push(FieldError::new(at("value"), e));
                }
            }
        }
    }
    errors
}

/// Checks a rule or rule-set name.
pub fn validate_name(name: &str, path: &str) -> Option<FieldError> {
    let n = name.trim().chars().count();
    (n == 0 || n > 100 || name.chars().any(char::is_control))
        .then(|| FieldError::new(path, "must be 1 to 100 characters, without control characters"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("time")
    }

    fn facts(fields: Json) -> Map<String, Json> {
        fields.as_object().cloned().expect("map")
    }

    #[test]
    fn field_conditions() {
        let f = facts(json!({"country": "IN", "company_size": 120, "tags": ["vip", "Expo"], "job_title": "Head of Sales", "email": null}));
        let ev: Vec<Event> = Vec::new();
        let facts = Facts { fields: &f, events: &ev, now: now() };
        let yes = |c: Condition| assert!(c.matches(&facts), "{c:?}");
        let no = |c: Condition| assert!(!c.matches(&facts), "{c:?}");
        yes(Condition::field("country", Op::Eq, json!("in")));
        no(Condition::field("country", Op::Neq, json!("IN")));
        yes(Condition::field("country", Op::In, json!(["US", "IN"])));
        yes(Condition::field("country", Op::NotIn, json!(["US"])));
        yes(Condition::field("company_size", Op::Gte, json!(120)));
        yes(Condition::field("company_size", Op::Gt, json!("100")));
        no(Condition::field("company_size", Op::Lt, json!(50)));
        yes(Condition::field("tags", Op::Contains, json!("expo")));
        yes(Condition::field("tags", Op::Eq, json!("VIP")));
        yes(Condition::field("job_title", Op::Contains, json!("sales")));
        yes(Condition::field("job_title", Op::StartsWith, json!("head")));
        no(Condition::field("job_title", Op::NotContains, json!("SALES")));
        yes(Condition::field("email", Op::IsNotSet, Json::Null));
        no(Condition::field("email", Op::IsSet, Json::Null));
        yes(Condition::field("missing", Op::Neq, json!("x")));
        no(Condition::field("missing", Op::Gt, json!(1)));
    }

    #[test]
    fn engagement_counts_in_a_window() {
        let t = now();
        let ev = vec![
            Event { kind: EngagementKind::EmailOpened, at: t - Duration::days(2) },
            Event { kind: EngagementKind::EmailOpened, at: t - Duration::days(40) },
            Event { kind: EngagementKind::EmailOpened, at: t + Duration::days(1) },
            Event { kind: EngagementKind::MeetingHeld, at: t - Duration::days(1) },
        ];
        assert_eq!(count_events(&ev, EngagementKind::EmailOpened, None, t), 2);
        assert_eq!(count_events(&ev, EngagementKind::EmailOpened, Some(30), t), 1);
        let f = Map::new();
        let facts = Facts { fields: &f, events: &ev, now: t };
        assert!(Condition::engagement(EngagementKind::EmailOpened, Op::Gte, 2, None).matches(&facts));
        assert!(!Condition::engagement(EngagementKind::EmailOpened, Op::Gte, 2, Some(30)).matches(&facts));
        assert!(Condition::engagement(EngagementKind::MeetingHeld, Op::Eq, 1, Some(7)).matches(&facts));
    }

    #[test]
    fn validation_names_the_part() {
        let is_field = |f: &str| matches!(f, "country" | "company_size");
        let bad = vec![
            Condition::field("nope", Op::Eq, json!("x")),
            Condition::field("country", Op::In, json!("IN")),
            Condition::field("country", Op::IsSet, json!("x")),
            Condition {
                field: None,
                engagement: Some(EngagementKind::EmailOpened),
                op: Op::Contains,
                value: json!(-1),
                within_days: Some(0),
            },
            Condition { field: None, engagement: None, op: Op::Eq, value: json!(1), within_days: None },
            Condition::field("country", Op::Eq, json!("x".repeat(300))),
            Condition::field("company_size", Op::Gt, json!([1])),
        ];
        let errs = validate_conditions(&bad, "conditions", &is_field);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "conditions[0].field",
            "conditions[1].value",
            "conditions[2].value",
            "conditions[3].op",
            "conditions[3].value",
            "conditions[3].within_days",
            "conditions[4].field",
            "conditions[5].value",
            "conditions[6].value",
        ] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
        let good = vec![
            Condition::field("country", Op::In, json!(["IN", "LK"])),
            Condition::engagement(EngagementKind::FormSubmitted, Op::Gte, 1, Some(30)),
        ];
        assert!(validate_conditions(&good, "c", &is_field).is_empty());
    }

    #[test]
    fn descriptions_read_well() {
        assert_eq!(Condition::field("country", Op::In, json!(["IN", "LK"])).describe(), "country is one of IN, LK");
        assert_eq!(Condition::engagement(EngagementKind::EmailOpened, Op::Gte, 2, Some(30)).describe(), "email_opened ≥ 2 in 30 days");
    }
}
