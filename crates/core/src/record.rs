//! A stored record, the derivations every write goes through, and its JSON form.

use crate::meta::{stage_forecast, stage_probability, stage_status, Field, FieldKind, ObjectDef};
use crate::money;
use crate::validate::{Changes, FieldError};
use crate::value::{format_timestamp, Value};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: Uuid,
    pub number: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub fields: BTreeMap<String, Value>,
    pub custom: Map<String, Json>,
    /// Fields withheld from the reader by field-level permissions: their values are removed
    /// and their names are left out of every rendering, so not even "empty" shows.
    pub redacted: Vec<String>,
}

impl Record {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Display title from the object's title fields ("Priya Shah", "Acme Pvt Ltd").
    pub fn title(&self, object: &ObjectDef) -> String {
        let parts: Vec<&str> = object.title_fields.iter().filter_map(|f| self.text(f)).collect();
        if parts.is_empty() {
            self.number.clone()
        } else {
            parts.join(" ")
        }
    }
}

/// Computes what follows from a change: money in minor units of the record's currency,
/// contact full names, deal probability/status/forecast from the stage, task completion time.
pub fn derive(object: &ObjectDef, changes: &mut Changes, existing: Option<&Record>, now: DateTime<Utc>) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let current = |name: &str, changes: &Changes| -> Option<Value> {
        match changes.fields.get(name) {
            Some(v) => Some(v.clone()),
            None => existing.and_then(|r| r.fields.get(name).cloned()),
        }
        .filter(|v| !v.is_null())
    };

    for field in &object.fields {
        let FieldKind::Money { currency_field } = &field.kind else { continue };
        let currency = current(currency_field, changes).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "INR".into());
        let exponent = money::currency_exponent(&currency).unwrap_or(2);
        match changes.fields.get(&field.name) {
            Some(Value::Text(amount)) => match money::parse_minor(amount, exponent) {
                Ok(minor) => {
                    changes.fields.insert(field.name.clone(), Value::Int(minor));
                }
                Err(e) => errors.push(FieldError::new(&field.name, e.to_string())),
            },
            Some(_) => {}
            None => {
                // A currency change reinterprets stored minor units: only allowed when the
                // minor unit is the same, otherwise the amount must be sent again.
                if let (Some(Value::Text(new_cur)), Some(rec)) = (changes.fields.get(currency_field), existing) {
                    let old_cur = rec.text(currency_field).unwrap_or("INR");
                    let has_amount = rec.get(&field.name).is_some();
                    if has_amount && money::currency_exponent(old_cur) != money::currency_exponent(new_cur) {
                        errors.push(FieldError::new(
                            &field.name,
                            "must be sent again when changing to a currency with different minor units",
                        ));
                    }
                }
            }
        }
    }

    match object.name.as_str() {
        "contacts" if changes.fields.contains_key("first_name") || changes.fields.contains_key("last_name") || existing.is_none() => {
            let first = current("first_name", changes);
            let last = current("last_name", changes);
            let full: Vec<String> = [first, last].into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
            let full = full.join(" ");
            let v = if full.is_empty() { Value::Null(crate::meta::SqlType::Text) } else { Value::Text(full) };
            changes.fields.insert("full_name".into(), v);
        }
        "deals" => {
            if let Some(Value::Text(stage)) = changes.fields.get("stage").cloned() {
                let was = existing.and_then(|r| r.text("stage")).map(str::to_string);
                let stage_changed = was.as_deref() != Some(stage.as_str());
                changes.fields.insert("status".into(), Value::Text(stage_status(&stage).into()));
                if stage_changed {
                    if !changes.fields.contains_key("probability") {
                        if let Some(p) = stage_probability(&stage) {
                            changes.fields.insert("probability".into(), Value::Int(p));
                        }
                    }
                    if !changes.fields.contains_key("forecast_category") {
                        if let Some(fc) = stage_forecast(&stage) {
                            changes.fields.insert("forecast_category".into(), Value::Text(fc.into()));
                        }
                    }
                    let closed = stage_status(&stage) != "open";
                    if closed && current("actual_close_date", changes).is_none() {
                        changes.fields.insert("actual_close_date".into(), Value::Date(now.date_naive()));
                    }
                    if !closed && !changes.fields.contains_key("actual_close_date") && existing.is_some() {
                        changes.fields.insert("actual_close_date".into(), Value::Null(crate::meta::SqlType::Date));
                    }
                }
            }
        }
        "tasks" => {
            if let Some(Value::Text(status)) = changes.fields.get("status").cloned() {
                let was_done = existing.and_then(|r| r.text("status")) == Some("completed");
                if status == "completed" && !was_done {
                    changes.fields.insert("completed_at".into(), Value::Timestamp(now));
                } else if status != "completed" {
                    changes.fields.insert("completed_at".into(), Value::Null(crate::meta::SqlType::Timestamp));
                }
            }
            let obj = current("related_object", changes);
            let id = current("related_id", changes);
            if obj.is_some() != id.is_some() {
                let missing = if obj.is_none() { "related_object" } else { "related_id" };
                errors.push(FieldError::new(missing, "related_object and related_id must be given together"));
            }
        }
        "activities" if existing.is_none() && current("activity_date", changes).is_none() => {
            changes.fields.insert("activity_date".into(), Value::Timestamp(now));
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Renders a record as the API shows it. `only` restricts the fields (id and version stay).
pub fn to_json(object: &ObjectDef, custom_fields: &[Field], record: &Record, only: Option<&[String]>) -> Json {
    let wanted = |name: &str| only.is_none_or(|list| list.iter().any(|f| f == name)) && !record.redacted.iter().any(|f| f == name);
    let mut out = Map::new();
    out.insert("id".into(), record.id.to_string().into());
    out.insert("object".into(), object.singular.clone().into());
    if wanted("number") {
        out.insert("number".into(), record.number.clone().into());
    }
    out.insert("version".into(), record.version.into());
    for (name, value) in [
        ("created_at", Some(format_timestamp(&record.created_at))),
        ("updated_at", Some(format_timestamp(&record.updated_at))),
        ("deleted_at", record.deleted_at.as_ref().map(format_timestamp)),
    ] {
        if wanted(name) {
            out.insert(name.into(), value.map_or(Json::Null, Json::from));
        }
    }
    for (name, value) in [("created_by", record.created_by), ("updated_by", record.updated_by)] {
        if wanted(name) {
            out.insert(name.into(), value.map_or(Json::Null, |u| u.to_string().into()));
        }
    }
    for field in &object.fields {
        if !wanted(&field.name) {
            continue;
        }
        let value = record.fields.get(&field.name);
        let json = match (&field.kind, value) {
            (FieldKind::Money { currency_field }, Some(Value::Int(minor))) => {
                let currency = record.text(currency_field).unwrap_or("INR");
                money::format_minor(*minor, money::currency_exponent(currency).unwrap_or(2)).into()
            }
            (_, Some(v)) => v.to_json(),
            (_, None) => Json::Null,
        };
        out.insert(field.name.clone(), json);
    }
    for field in custom_fields {
        if wanted(&field.name) {
            out.insert(field.name.clone(), record.custom.get(&field.name).cloned().unwrap_or(Json::Null));
        }
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::object;
    use crate::validate::{Mode, Validator};
    use serde_json::json;

    fn changes(obj: &str, j: Json) -> Changes {
        let v = Validator { object: object(obj).expect("obj"), custom_fields: &[], default_calling_code: "91" };
        v.validate(j.as_object().expect("map"), Mode::Create).expect("valid")
    }

    #[test]
    fn deal_stage_sets_probability_status_and_minor_units() {
        let deals = object("deals").expect("deals");
        let mut c =
            changes("deals", json!({"name": "X", "account_id": Uuid::nil().to_string(), "value": "1500000.50", "stage": "negotiation"}));
        derive(deals, &mut c, None, Utc::now()).expect("derive");
        assert_eq!(c.fields["value"], Value::Int(150_000_050));
        assert_eq!(c.fields["probability"], Value::Int(75));
        assert_eq!(c.fields["forecast_category"], Value::Text("commit".into()));
        assert_eq!(c.fields["status"], Value::Text("open".into()));
    }

    #[test]
    fn jpy_rejects_fractions() {
        let deals = object("deals").expect("deals");
        let mut c = changes("deals", json!({"name": "X", "account_id": Uuid::nil().to_string(), "value": 10.5, "currency": "JPY"}));
        assert!(derive(deals, &mut c, None, Utc::now()).is_err());
    }

    #[test]
    fn contact_full_name() {
        let contacts = object("contacts").expect("contacts");
        let mut c = changes("contacts", json!({"first_name": "Anil", "last_name": "Kumar"}));
        derive(contacts, &mut c, None, Utc::now()).expect("derive");
        assert_eq!(c.fields["full_name"], Value::Text("Anil Kumar".into()));
    }
}
