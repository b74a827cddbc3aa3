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
use std::collections::HashMap;
use std::sync::Arc;
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
    if let Ok(Some(value)) = SNAPSHOT.try_with(|s| (s.company_id == company_id).then(|| s.values.get(key).cloned())) {
        return decode(key, value.map(|j| crate::db::Row(vec![Value::Json(j)])));
    }
    decode(key, tx.fetch_one(&select(company_id, key), &[SqlType::Json]).await?)
}

/// All settings of one company, as read in one query.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub company_id: Uuid,
    pub values: HashMap<String, serde_json::Value>,
}

tokio::task_local! {
    /// Settings already read for the write pipeline being loaded: `get_in` answers from
    /// here instead of querying, so each step's loader keeps reading its own keys while the
    /// pipeline reads them all once (and caches them between transactions).
    static SNAPSHOT: Arc<Snapshot>;
}

/// Reads every setting of the company in one query.
pub async fn snapshot_in(tx: &mut Tx, company_id: Uuid) -> Result<Snapshot> {
    let q = Q::new("SELECT key, value FROM company_settings WHERE company_id = $1").bind(Value::Uuid(company_id));
    let values = tx.fetch(&q, &[SqlType::Text, SqlType::Json]).await?.into_iter().filter_map(|r| Some((r.text(0)?, r.json(1)?))).collect();
    Ok(Snapshot { company_id, values })
}

/// Runs `f` with `get_in` answering from `snapshot`.
pub async fn with_snapshot<F: std::future::Future>(snapshot: Arc<Snapshot>, f: F) -> F::Output {
    SNAPSHOT.scope(snapshot, f).await
}

/// The row of `counters` whose value changes with every change of the configuration the
/// write pipeline reads (settings, scoring rule sets, assignment rules). Its value is random,
/// never a count: a transaction that changed the configuration and rolled back must not
/// leave a stamp that a later, different change could reuse.
const STAMP_ROW: &str = "~pipeline-config";

/// Marks the company's pipeline configuration as changed, in the transaction of the change
/// (processes that cached the configuration read it again on their next write).
pub async fn touch(tx: &mut Tx, company_id: Uuid) -> Result<()> {
    tx.execute(
        &Q::new(
            "INSERT INTO counters (company_id, object, next) VALUES ($1, $2, $3) \
             ON CONFLICT (company_id, object) DO UPDATE SET next = excluded.next",
        )
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(STAMP_ROW.into()))
        .bind(Value::Int(rand::random::<i64>())),
    )
    .await?;
    Ok(())
}

/// What identifies the current configuration: the stamp of `touch`, and the predictive
/// model's training time and status (the model is written by training, not through here).
pub type Stamp = (Option<i64>, Option<String>);

/// Reads the stamp in one query.
pub async fn stamp_in(tx: &mut Tx, company_id: Uuid) -> Result<Stamp> {
    let q = Q::new(
        "SELECT (SELECT next FROM counters WHERE company_id = $1 AND object = $2), \
         (SELECT status || ' ' || coalesce(cast(trained_at AS TEXT), '') FROM predictive_models WHERE company_id = $1 AND object = $3)",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Text(STAMP_ROW.into()))
    .bind(Value::Text("leads".into()));
    let row = tx.fetch_one(&q, &[SqlType::Int, SqlType::Text]).await?;
    Ok(row.map_or((None, None), |r| (r.int(0), r.text(1))))
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
    touch(tx, ctx.company_id).await?;
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
