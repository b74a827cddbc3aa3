//! Aggregates for dashboards and the statistics endpoints, scoped to one company.

use crate::db::{Db, Q};
use crate::Result;
use corvid_core::{money, SqlType, Value};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub key: Option<String>,
    pub count: i64,
}

/// Counts of live records of `table` grouped by `column` (a metadata field name).
pub async fn count_by(db: &Db, company_id: Uuid, table: &str, column: &str) -> Result<Vec<Bucket>> {
    let ty = corvid_core::object(table).and_then(|o| o.field(column)).map(|f| f.kind.sql_type()).unwrap_or(SqlType::Text);
    let q = Q::new(format!(
        "SELECT {column}, COUNT(*) FROM {table} WHERE company_id = $1 AND deleted_at IS NULL GROUP BY {column} ORDER BY COUNT(*) DESC, {column}"
    ))
    .bind(Value::Uuid(company_id));
    Ok(db
        .fetch(&q, &[ty, SqlType::Int])
        .await?
        .into_iter()
        .map(|r| {
            let key = r.0.first().and_then(|v| v.audit_text());
            Bucket { key, count: r.int(1).unwrap_or(0) }
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageSum {
    pub stage: String,
    pub currency: String,
    pub count: i64,
    /// Decimal strings in major units, like every amount in the API.
    pub value: String,
    pub weighted_value: String,
}

/// Open and closed deals by stage and currency, with value and probability-weighted value.
pub async fn deals_by_stage(db: &Db, company_id: Uuid) -> Result<Vec<StageSum>> {
    let q = Q::new(
        "SELECT stage, currency, COUNT(*), CAST(COALESCE(SUM(value), 0) AS BIGINT), \
         CAST(COALESCE(SUM(value * COALESCE(probability, 0)), 0) AS BIGINT) \
         FROM deals WHERE company_id = $1 AND deleted_at IS NULL GROUP BY stage, currency ORDER BY stage, currency",
    )
    .bind(Value::Uuid(company_id));
    let rows = db.fetch(&q, &[SqlType::Text, SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Int]).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let currency = r.text(1).unwrap_or_else(|| "INR".into());
            let exp = money::currency_exponent(&currency).unwrap_or(2);
            let weighted = (Decimal::from(r.int(4).unwrap_or(0)) / Decimal::from(100)).round_dp(0);
            StageSum {
                stage: r.text(0).unwrap_or_default(),
                count: r.int(2).unwrap_or(0),
                value: money::format_minor(r.int(3).unwrap_or(0), exp),
                weighted_value: money::format_minor(i64::try_from(weighted).unwrap_or(i64::MAX), exp),
                currency,
            }
        })
        .collect())
}
