//! Turning typed values into what a person reads: names instead of ids, amounts with their
//! currency, local times, and the badges (score bands, stages, roles, health).

use corvid_core::meta::{Field, FieldKind, ObjectDef};
use corvid_core::{money, Record, Value};
use corvid_store::{companies, records, Db, Result};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Names of users and titles of referenced records for one page.
#[derive(Default)]
pub struct Lookups {
    pub users: HashMap<Uuid, String>,
    pub refs: BTreeMap<Uuid, String>,
    pub tz: chrono_tz::Tz,
}

impl Lookups {
    /// Loads member names and the titles of every record the given records point at.
    pub async fn load(db: &Db, company_id: Uuid, object: &ObjectDef, recs: &[&Record]) -> Result<Lookups> {
        let users = companies::members(db, company_id).await?.into_iter().map(|m| (m.user_id, m.name)).collect();
        let mut wanted: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for f in &object.fields {
            let FieldKind::Reference { object: target } = &f.kind else { continue };
            for r in recs {
                let Some(id) = r.get(&f.name).and_then(Value::as_uuid) else { continue };
                let target = if target == "*" { r.text("related_object").unwrap_or("").to_string() } else { target.clone() };
                wanted.entry(target).or_default().push(id);
            }
        }
        let mut refs = BTreeMap::new();
        for (target, ids) in wanted {
            if let Some(def) = corvid_core::object(&target) {
                refs.extend(records::titles(db, company_id, def, &ids).await?);
            }
        }
        let tz = match corvid_store::companies::get(db, company_id).await? {
            Some(c) => c.time_zone.parse().unwrap_or(chrono_tz::Asia::Kolkata),
            None => chrono_tz::Asia::Kolkata,
        };
        Ok(Lookups { users, refs, tz })
    }
}

/// One value ready for a template.
#[derive(Clone, Debug, Default)]
pub struct Shown {
    pub text: String,
    /// Badge colour class, when the value is shown as a badge.
    pub badge: String,
    pub icon: String,
    pub href: String,
}

impl Shown {
    fn plain(text: impl Into<String>) -> Self {
        Shown { text: text.into(), ..Default::default() }
    }
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// Lead score bands: 0–30 Cold, 31–50 Warm, 51–70 Hot, 71–100 Very Hot.
pub fn score_band(score: i64) -> (&'static str, &'static str) {
    match score {
        ..=30 => ("Cold", "red"),
        31..=50 => ("Warm", "orange"),
        51..=70 => ("Hot", "yellow"),
        _ => ("Very Hot", "green"),
    }
}

fn role_icon(role: &str) -> &'static str {
    match role {
        "decision_maker" => "★",
        "influencer" => "◆",
        "champion" => "♛",
        "end_user" => "●",
        "technical" => "⚙",
        "executive" => "▲",
        _ => "",
    }
}

pub fn format_amount(minor: i64, currency: &str) -> String {
    let text = money::format_minor(minor, money::currency_exponent(currency).unwrap_or(2));
    // Group the integer part: Indian grouping for INR (12,34,567.00), thousands otherwise.
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let digits: Vec<char> = int.chars().collect();
    let mut grouped = String::new();
    let n = digits.len();
    for (i, c) in digits.iter().enumerate() {
        grouped.push(*c);
        let left = n - i - 1;
        let sep =
            if currency == "INR" { left == 3 || (left > 3 && (left - 3).is_multiple_of(2)) } else { left > 0 && left.is_multiple_of(3) };
        if sep && left > 0 {
            grouped.push(',');
        }
    }
    let symbol = match currency {
        "INR" => "₹",
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        _ => "",
    };
    let body = match frac {
        Some(f) => format!("{grouped}.{f}"),
        None => grouped,
    };
    if symbol.is_empty() {
        format!("{body} {currency}")
    } else {
        format!("{symbol}{body}")
    }
}

pub fn local_time(t: &chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    t.with_timezone(&tz).format("%d %b %Y, %H:%M").to_string()
}

/// Shows a field of a record (standard or custom).
pub fn display(base: &str, field: &Field, rec: &Record, lk: &Lookups) -> Shown {
    let value = if field.custom {
        match rec.custom.get(&field.name) {
            None | Some(serde_json::Value::Null) => return Shown::default(),
            Some(j) => corvid_store::listing::coerce(Some(&field.kind), field.kind.sql_type(), j).unwrap_or(Value::Json(j.clone())),
        }
    } else {
        match rec.get(&field.name) {
            Some(v) => v.clone(),
            None => return Shown::default(),
        }
    };
    match (&field.kind, &value) {
        (FieldKind::Enum { options }, Value::Text(s)) => {
            let opt = options.iter().find(|o| &o.value == s);
            Shown {
                text: opt.map_or(s.clone(), |o| o.label.clone()),
                badge: opt.map_or("grey".into(), |o| o.colour.clone()),
                icon: if field.name == "role" { role_icon(s).into() } else { String::new() },
                href: String::new(),
            }
        }
        (FieldKind::Integer { .. }, Value::Int(i)) if field.name == "lead_score" => {
            let (band, colour) = score_band(*i);
            Shown { text: format!("{i} · {band}"), badge: colour.into(), ..Default::default() }
        }
        (FieldKind::Percent, Value::Int(i)) => Shown::plain(format!("{i}%")),
        (FieldKind::Money { currency_field }, Value::Int(minor)) => {
            Shown::plain(format_amount(*minor, rec.text(currency_field).unwrap_or("INR")))
        }
        (FieldKind::Boolean, Value::Bool(b)) => Shown::plain(if *b { "Yes" } else { "No" }),
        (FieldKind::DateTime, Value::Timestamp(t)) => Shown::plain(local_time(t, lk.tz)),
        (FieldKind::DateTime, Value::Text(s)) => Shown::plain(s.clone()),
        (FieldKind::Date, Value::Date(d)) => Shown::plain(d.format("%d %b %Y").to_string()),
        (FieldKind::User, Value::Uuid(u)) => Shown::plain(lk.users.get(u).cloned().unwrap_or_else(|| "Former member".into())),
        (FieldKind::Reference { object }, Value::Uuid(u)) => {
            let target = if object == "*" { rec.text("related_object").unwrap_or("").to_string() } else { object.clone() };
            Shown {
                text: lk.refs.get(u).cloned().unwrap_or_else(|| "(removed)".into()),
                href: format!("{base}/{target}/{u}"),
                ..Default::default()
            }
        }
        (FieldKind::Url, Value::Text(s)) => Shown { text: s.clone(), href: s.clone(), ..Default::default() },
        (FieldKind::Email, Value::Text(s)) => Shown { text: s.clone(), href: format!("mailto:{s}"), ..Default::default() },
        (FieldKind::Phone, Value::Text(s)) => Shown { text: s.clone(), href: format!("tel:{s}"), ..Default::default() },
        (FieldKind::Tags | FieldKind::MultiEnum { .. }, Value::Json(serde_json::Value::Array(items))) => {
            Shown::plain(items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(", "))
        }
        (_, v) => Shown::plain(v.audit_text().unwrap_or_default()),
    }
}

/// The value to put in an edit input for a field.
pub fn input_value(field: &Field, rec: Option<&Record>, tz: chrono_tz::Tz) -> String {
    let Some(rec) = rec else {
        return match &field.default {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::Bool(b)) => b.to_string(),
            _ => String::new(),
        };
    };
    if field.custom {
        return match rec.custom.get(&field.name) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "),
            Some(serde_json::Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
    }
    match (&field.kind, rec.get(&field.name)) {
        (_, None) => String::new(),
        (FieldKind::Money { currency_field }, Some(Value::Int(m))) => {
            money::format_minor(*m, money::currency_exponent(rec.text(currency_field).unwrap_or("INR")).unwrap_or(2))
        }
        (FieldKind::DateTime, Some(Value::Timestamp(t))) => t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string(),
        (FieldKind::Tags | FieldKind::MultiEnum { .. }, Some(Value::Json(serde_json::Value::Array(items)))) => {
            items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
        }
        (_, Some(v)) => match v.to_json() {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        },
    }
}

/// Converts a submitted form value into the JSON the validator expects, by field type.
/// Conversion never fails: a value of the wrong shape is passed on so that validation
/// reports it against the field.
pub fn form_to_json(field: &Field, raw: &str, tz: chrono_tz::Tz) -> serde_json::Value {
    use serde_json::Value as J;
    let t = raw.trim();
    if t.is_empty() && !matches!(field.kind, FieldKind::Boolean) {
        return J::Null;
    }
    match &field.kind {
        FieldKind::Integer { .. } | FieldKind::Percent => t.parse::<i64>().map(J::from).unwrap_or_else(|_| J::String(t.into())),
        FieldKind::Decimal => {
            t.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(J::Number).unwrap_or_else(|| J::String(t.into()))
        }
        FieldKind::Boolean => J::Bool(matches!(t, "true" | "on" | "1" | "yes")),
        FieldKind::Tags | FieldKind::MultiEnum { .. } => {
            J::Array(t.split(',').map(|s| J::String(s.trim().into())).filter(|s| s.as_str() != Some("")).collect())
        }
        FieldKind::DateTime => {
            // `datetime-local` inputs carry the company's local time without a zone.
            match chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M") {
                Ok(naive) => match naive.and_local_timezone(tz).earliest() {
                    Some(local) => J::String(local.with_timezone(&chrono::Utc).to_rfc3339()),
                    None => J::String(t.into()),
                },
                Err(_) => J::String(t.into()),
            }
        }
        FieldKind::LongText { .. } => J::String(raw.replace("\r\n", "\n")),
        _ => J::String(t.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_group_by_currency() {
        assert_eq!(format_amount(150_000_000, "INR"), "₹15,00,000.00");
        assert_eq!(format_amount(123_456_789, "USD"), "$1,234,567.89");
        assert_eq!(format_amount(1234, "JPY"), "1,234 JPY");
        assert_eq!(format_amount(99, "INR"), "₹0.99");
    }

    #[test]
    fn bands() {
        assert_eq!(score_band(0).0, "Cold");
        assert_eq!(score_band(30).0, "Cold");
        assert_eq!(score_band(31).0, "Warm");
        assert_eq!(score_band(51).0, "Hot");
        assert_eq!(score_band(71).0, "Very Hot");
    }
}
