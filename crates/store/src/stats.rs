//! Aggregates for dashboards and the statistics endpoints, scoped to one company and to the
//! records the member may read.

use crate::db::{Db, Q};
use crate::{Result, Tenant};
use corvid_core::access::Action;
use corvid_core::{money, SqlType, Value};
use rust_decimal::Decimal;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub key: Option<String>,
    pub count: i64,
}

/// The member's read scope on `table` as an extra condition (`1 = 0` without read access, so
/// a dashboard shows nothing rather than failing).
fn scope_sql(t: &Tenant, table: &str) -> String {
    t.access.owner_condition(table, Action::Read, None).map(|c| format!(" AND {c}")).unwrap_or_default()
}

/// Counts of the member's visible live records of `table` grouped by `column` (a metadata
/// field name; a field hidden from the member cannot be grouped on).
pub async fn count_by(db: &Db, t: &Tenant, table: &str, column: &str) -> Result<Vec<Bucket>> {
    t.access.check_readable(table, &[column], "statistics")?;
    let ty = corvid_core::object(table).and_then(|o| o.field(column)).map(|f| f.kind.sql_type()).unwrap_or(SqlType::Text);
    let scope = scope_sql(t, table);
    let q = Q::new(format!(
        "SELECT {column}, COUNT(*) FROM {table} WHERE company_id = $1 AND deleted_at IS NULL{scope} GROUP BY {column} ORDER BY COUNT(*) DESC, {column}"
    ))
    .bind(Value::Uuid(t.company_id));
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
pub async fn deals_by_stage(db: &Db, t: &Tenant) -> Result<Vec<StageSum>> {
    t.access.check_readable("deals", &["stage", "value", "currency", "probability"], "statistics")?;
    let scope = scope_sql(t, "deals");
    let q = Q::new(format!(
        "SELECT stage, currency, COUNT(*), CAST(COALESCE(SUM(value), 0) AS BIGINT), \
         CAST(COALESCE(SUM(value * COALESCE(probability, 0)), 0) AS BIGINT) \
         FROM deals WHERE company_id = $1 AND deleted_at IS NULL{scope} GROUP BY stage, currency ORDER BY stage, currency",
    ))
    .bind(Value::Uuid(t.company_id));
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
