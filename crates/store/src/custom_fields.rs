//! Per-company custom fields: defined in a table, stored in each record's `custom` JSON
//! column, validated, filtered and sorted by the same code as standard fields.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Q};
use crate::{new_id, Result, StoreError};
use corvid_core::meta::EnumOption;
use corvid_core::validate::{custom_field_api_name, custom_kind};
use corvid_core::value::now_micros;
use corvid_core::{Field, FieldError, SqlType, Value};
use serde::Deserialize;
use uuid::Uuid;

pub const MAX_PER_OBJECT: usize = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCustomField {
    pub name: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub options: Vec<OptionInput>,
    pub max_len: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OptionInput {
    Value(String),
    Full { value: String, label: Option<String>, colour: Option<String> },
}

fn to_field(
    name: String,
    label: String,
    field_type: &str,
    required: bool,
    options: Vec<EnumOption>,
    max_len: Option<usize>,
) -> Option<Field> {
    let kind = custom_kind(field_type, &options, max_len).ok()?;
    Some(Field {
        name,
        label,
        kind,
        required,
        read_only: false,
        searchable: false,
        custom: true,
        section: "Custom fields".into(),
        default: None,
        since: 1,
    })
}

const COLS: &str = "name, label, field_type, required, options, max_len, object";
const TYPES: &[SqlType] = &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Bool, SqlType::Json, SqlType::Int, SqlType::Text];

fn from_row(r: crate::db::Row) -> Option<(String, Field)> {
    let options: Vec<EnumOption> = r
        .json(4)
        .and_then(|j| j.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|o| {
            Some(EnumOption {
                value: o.get("value")?.as_str()?.into(),
                label: o.get("label")?.as_str()?.into(),
                colour: o.get("colour").and_then(|c| c.as_str()).unwrap_or("grey").into(),
            })
        })
        .collect();
    let field = to_field(r.text(0)?, r.text(1)?, &r.text(2)?, r.bool(3)?, options, r.int(5).map(|m| m as usize))?;
    Some((r.text(6)?, field))
}

pub async fn list(db: &Db, company_id: Uuid, object: &str) -> Result<Vec<Field>> {
    let q = Q::new(format!("SELECT {COLS} FROM custom_fields WHERE company_id = $1 AND object = $2 ORDER BY position, created_at"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(object.into()));
    Ok(db.fetch(&q, TYPES).await?.into_iter().filter_map(from_row).map(|(_, f)| f).collect())
}

pub async fn create(db: &Db, ctx: &AuditCtx, object: &str, input: NewCustomField) -> Result<Field> {
    let mut errors = Vec::new();
    let name = custom_field_api_name(&input.name).map_err(|e| errors.push(FieldError::new("name", e))).ok();
    let label = input.label.clone().unwrap_or_else(|| input.name.clone()).trim().to_string();
    if label.is_empty() || label.chars().count() > 100 {
        errors.push(FieldError::new("label", "must be 1 to 100 characters"));
    }
    if input.options.len() > 200 {
        errors.push(FieldError::new("options", "must have at most 200 options"));
    }
    let mut options: Vec<EnumOption> = Vec::new();
    for o in &input.options {
        let (value, label, colour) = match o {
            OptionInput::Value(v) => (v.clone(), v.clone(), "grey".to_string()),
            OptionInput::Full { value, label, colour } => {
                (value.clone(), label.clone().unwrap_or_else(|| value.clone()), colour.clone().unwrap_or_else(|| "grey".into()))
            }
        };
        let value = value.trim().to_string();
        if value.is_empty() || value.chars().count() > 100 || label.chars().count() > 100 || colour.chars().count() > 20 {
            errors.push(FieldError::new("options", "each option needs a value and label of at most 100 characters"));
            break;
        }
        if options.iter().any(|x| x.value == value) {
            errors.push(FieldError::new("options", format!("\"{value}\" is listed twice")));
            break;
        }
        options.push(EnumOption { value, label: label.trim().to_string(), colour });
    }
    if let Err(e) = custom_kind(&input.field_type, &options, input.max_len) {
        errors.push(FieldError::new("type", e));
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    let name = name.unwrap_or_default();
    let existing = list(db, ctx.company_id, object).await?;
    if existing.len() >= MAX_PER_OBJECT {
        return Err(StoreError::Conflict(format!("an object can have at most {MAX_PER_OBJECT} custom fields")));
    }
    let options_json = serde_json::Value::Array(
        options.iter().map(|o| serde_json::json!({"value": o.value, "label": o.label, "colour": o.colour})).collect(),
    );
    let mut tx = db.begin().await?;
    let q = Q::new(
        "INSERT INTO custom_fields (id, company_id, object, name, label, field_type, required, options, max_len, position, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(Value::Uuid(new_id()))
    .bind(Value::Uuid(ctx.company_id))
    .bind(Value::Text(object.into()))
    .bind(Value::Text(name.clone()))
    .bind(Value::Text(label.clone()))
    .bind(Value::Text(input.field_type.clone()))
    .bind(Value::Bool(input.required))
    .bind(Value::Json(options_json))
    .bind(input.max_len.map_or(Value::Null(SqlType::Int), |m| Value::Int(m as i64)))
    .bind(Value::Int(existing.len() as i64))
    .bind(Value::Timestamp(now_micros()))
    .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid));
    match tx.execute(&q).await {
        Ok(_) => {}
        Err(e) if e.is_unique_violation() => return Err(StoreError::Conflict(format!("a custom field named {name} exists"))),
        Err(e) => return Err(e),
    }
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "custom_field".into(),
            record_id: None,
            action: "create".into(),
            field: Some(format!("{object}.{name}")),
            old: None,
            new: Some(input.field_type.clone()),
        }],
    )
    .await?;
    tx.commit().await?;
    to_field(name, label, &input.field_type, input.required, options, input.max_len).ok_or(StoreError::NotFound)
}

/// Removes a definition. Stored values stay in the JSON column (and in the audit trail) but
/// are no longer shown, validated or filterable; re-creating the field brings them back.
pub async fn delete(db: &Db, ctx: &AuditCtx, object: &str, name: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    let n = tx
        .execute(
            &Q::new("DELETE FROM custom_fields WHERE company_id = $1 AND object = $2 AND name = $3")
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Text(object.into()))
                .bind(Value::Text(name.into())),
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "custom_field".into(),
            record_id: None,
            action: "delete".into(),
            field: Some(format!("{object}.{name}")),
            old: None,
            new: None,
        }],
    )
    .await?;
    tx.commit().await
}
