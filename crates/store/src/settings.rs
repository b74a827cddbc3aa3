//! Per-company settings: one JSON value per key (`dedupe.policy`, `conversion.rules`, ...).
//! Readers supply the default, so a company that never changed a setting needs no row.
//! Changes are audited like record changes.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Tx, Q};
use crate::Result;
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

fn select(company_id: Uuid, key: &str) -> Q {
    Q::new("SELECT value FROM company_settings WHERE company_id = $1 AND key = $2")
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(key.into()))
}

fn decode<T: DeserializeOwned>(key: &str, row: Option<crate::db::Row>) -> Result<Option<T>> {
    match row.and_then(|r| r.json(0)) {
        None => Ok(None),
        Some(j) => serde_json::from_value(j).map(Some).map_err(|e| crate::StoreError::Corrupt(format!("setting {key}: {e}"))),
    }
}

/// The stored value of `key`, or `None` when the company kept the default.
pub async fn get<T: DeserializeOwned>(db: &Db, company_id: Uuid, key: &str) -> Result<Option<T>> {
    decode(key, db.fetch_one(&select(company_id, key), &[SqlType::Json]).await?)
}

pub async fn get_in<T: DeserializeOwned>(tx: &mut Tx, company_id: Uuid, key: &str) -> Result<Option<T>> {
    decode(key, tx.fetch_one(&select(company_id, key), &[SqlType::Json]).await?)
}

/// Stores `value` under `key` and audits the change (object `settings`, field = key).
pub async fn set<T: Serialize>(db: &Db, ctx: &AuditCtx, key: &str, value: &T) -> Result<()> {
    let mut tx = db.begin().await?;
    set_in(&mut tx, ctx, key, value).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn set_in<T: Serialize>(tx: &mut Tx, ctx: &AuditCtx, key: &str, value: &T) -> Result<()> {
    let json = serde_json::to_value(value).map_err(|e| crate::StoreError::Config(e.to_string()))?;
    let old = tx.fetch_one(&select(ctx.company_id, key), &[SqlType::Json]).await?.and_then(|r| r.json(0));
    if old.as_ref() == Some(&json) {
        return Ok(());
    }
    tx.execute(
        &Q::new(
            "INSERT INTO company_settings (company_id, key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (company_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Text(key.into()))
        .bind(Value::Json(json.clone()))
        .bind(Value::Timestamp(now_micros()))
        .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid)),
    )
    .await?;
    audit::append(
        tx,
        ctx,
        &[Change {
            object: "settings".into(),
            record_id: None,
            action: "update".into(),
            field: Some(key.into()),
            old: old.map(|o| o.to_string()),
            new: Some(json.to_string()),
        }],
    )
    .await?;
    Ok(())
}
