//! Data quality and governance: a report of how complete and trustworthy the records are
//! (one set-based pass per object, so it stays fast on a million leads), and the list of the
//! policies in effect for a company.

use crate::db::{Backend, Db, Q};
use crate::privacy::{self, OUTREACH_TYPES, PERSON_OBJECTS};
use crate::{settings, Result};
use chrono::Duration;
use corvid_core::meta::ObjectDef;
use corvid_core::value::{format_timestamp, now_micros};
use corvid_core::{FieldKind, SqlType, Value};
use serde::Serialize;
use serde_json::{json, Value as Json};
use uuid::Uuid;

/// Objects the report covers.
pub const OBJECTS: &[&str] = &["leads", "contacts", "accounts"];
/// Lead statuses that still need work (the dashboard's "open leads").
pub const OPEN_LEAD_STATUSES: &[&str] = &["new", "contacted", "nurturing", "qualified", "recycled"];
/// The lead fields the dashboard widget measures.
pub const KEY_LEAD_FIELDS: &[&str] = &["email", "phone", "company_name", "country", "source", "owner_id"];
/// Ages after which an open lead with no update and no activity counts as stale.
pub const STALE_DAYS: [i64; 3] = [30, 60, 90];

#[derive(Debug, Clone, Serialize)]
pub struct Completeness {
    pub field: String,
    pub label: String,
    /// Records with a value.
    pub filled: i64,
    /// Share of records with a value, 0-100 with one decimal; null when there are no records.
    pub percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stale {
    pub days: i64,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectQuality {
    pub object: String,
    /// Records that are not deleted.
    pub total: i64,
    /// Average of the fields' percentages.
    pub completeness_percent: Option<f64>,
    pub completeness: Vec<Completeness>,
    /// `validation_status` counts, where the object has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_validation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spam_high: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub do_not_disturb: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_consent: Option<i64>,
    /// Leads only: open leads, and those with no update or activity for 30, 60 and 90 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<Vec<Stale>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub generated_at: String,
    pub objects: Vec<ObjectQuality>,
}

/// The fields whose completeness is measured: what a user fills in. Booleans always have a
/// value and system-set fields say nothing about data entry.
fn measured(object: &ObjectDef) -> Vec<&corvid_core::Field> {
    object.fields.iter().filter(|f| !f.read_only && !matches!(f.kind, FieldKind::Boolean)).collect()
}

fn percent(part: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| ((part as f64) * 1000.0 / (total as f64)).round() / 10.0)
}

/// The report for one company, computed now.
pub async fn report(db: &Db, company_id: Uuid) -> Result<QualityReport> {
    let mut objects = Vec::new();
    for name in OBJECTS {
        let Some(object) = corvid_core::object(name) else { continue };
        objects.push(object_report(db, company_id, object, None).await?);
    }
    Ok(QualityReport { generated_at: format_timestamp(&now_micros()), objects })
}

/// Counting expressions (aliases `t.` for the object's table) and what each one is.
enum Metric {
    Filled(usize),
    Invalid,
    Pending,
    Duplicates,
    SpamHigh,
    Dnd,
    Consent,
    Open,
    Stale(usize),
}

/// One pass over the object's rows: every count is a column of one aggregate query. Leads
/// join the latest activity per lead (one grouped pass over activities) for staleness.
///
/// `only` limits completeness to some fields (the dashboard widget measures a few key ones,
/// which keeps it cheap on large tables).
pub async fn object_report(db: &Db, company_id: Uuid, object: &'static ObjectDef, only: Option<&[&str]>) -> Result<ObjectQuality> {
    let mut fields = measured(object);
    if let Some(only) = only {
        fields.retain(|f| only.contains(&f.name.as_str()));
    }
    let mut q = Q::new(String::new());
    let pc = q.param(Value::Uuid(company_id));
    let pt = q.param(Value::Bool(true));
    let mut exprs = vec!["COUNT(*)".to_string()];
    let mut metrics = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        exprs.push(format!("COUNT(t.{})", f.name));
        metrics.push(Metric::Filled(i));
    }
    let sum = |cond: String| format!("COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0)");
    let has = |f: &str| object.field(f).is_some();
    if has("validation_status") {
        let pi = q.param(Value::Text("invalid".into()));
        let pp = q.param(Value::Text("pending".into()));
        exprs.push(sum(format!("t.validation_status = {pi}")));
        metrics.push(Metric::Invalid);
        exprs.push(sum(format!("t.validation_status = {pp}")));
        metrics.push(Metric::Pending);
    }
    if has("is_duplicate") {
        exprs.push(sum(format!("t.is_duplicate = {pt}")));
        metrics.push(Metric::Duplicates);
    }
    if has("spam_score") {
        let ph = q.param(Value::Text("high".into()));
        exprs.push(sum(format!("t.spam_score = {ph}")));
        metrics.push(Metric::SpamHigh);
    }
    if has("dnd_status") {
        exprs.push(sum(format!("t.dnd_status = {pt}")));
        metrics.push(Metric::Dnd);
    }
    if has("gdpr_consent") {
        exprs.push(sum(format!("t.gdpr_consent = {pt}")));
        metrics.push(Metric::Consent);
    }
    let leads = object.name == "leads";
    let mut join = String::new();
    if leads {
        let statuses: Vec<String> = OPEN_LEAD_STATUSES.iter().map(|s| q.param(Value::Text((*s).into()))).collect();
        let open = format!("t.status IN ({})", statuses.join(", "));
        exprs.push(sum(open.clone()));
        metrics.push(Metric::Open);
        let now = now_micros();
        for (i, days) in STALE_DAYS.iter().enumerate() {
            let cut = q.param(Value::Timestamp(now - Duration::days(*days)));
            let mut cond = format!("{open} AND t.updated_at < {cut} AND (a.last_at IS NULL OR a.last_at < {cut})");
            if has("last_activity_at") {
                cond.push_str(&format!(" AND (t.last_activity_at IS NULL OR t.last_activity_at < {cut})"));
            }
            exprs.push(sum(cond));
            metrics.push(Metric::Stale(i));
        }
        join = format!(
            " LEFT JOIN (SELECT lead_id, MAX(activity_date) AS last_at FROM activities \
             WHERE company_id = {pc} AND deleted_at IS NULL AND lead_id IS NOT NULL GROUP BY lead_id) a ON a.lead_id = t.id"
        );
    }
    q.sql = format!("SELECT {} FROM {} t{join} WHERE t.company_id = {pc} AND t.deleted_at IS NULL", exprs.join(", "), object.name);
    let types = vec![SqlType::Int; exprs.len()];
    let row = db.fetch_one(&q, &types).await?;
    let at = |i: usize| row.as_ref().and_then(|r| r.int(i)).unwrap_or(0);
    let total = at(0);
    let mut out = ObjectQuality {
        object: object.name.clone(),
        total,
        completeness_percent: None,
        completeness: Vec::new(),
        invalid: None,
        pending_validation: None,
        duplicates: None,
        spam_high: None,
        do_not_disturb: None,
        with_consent: None,
        open: None,
        stale: None,
    };
    let mut stale = Vec::new();
    for (k, m) in metrics.iter().enumerate() {
        let v = at(k + 1);
        match m {
            Metric::Filled(i) => {
                let f = fields[*i];
                out.completeness.push(Completeness {
                    field: f.name.clone(),
                    label: f.label.clone(),
                    filled: v,
                    percent: percent(v, total),
                });
            }
            Metric::Invalid => out.invalid = Some(v),
            Metric::Pending => out.pending_validation = Some(v),
            Metric::Duplicates => out.duplicates = Some(v),
            Metric::SpamHigh => out.spam_high = Some(v),
            Metric::Dnd => out.do_not_disturb = Some(v),
            Metric::Consent => out.with_consent = Some(v),
            Metric::Open => out.open = Some(v),
            Metric::Stale(i) => stale.push(Stale { days: STALE_DAYS[*i], count: v }),
        }
    }
    if leads {
        out.stale = Some(stale);
    }
    if total > 0 && !out.completeness.is_empty() {
        let sum: f64 = out.completeness.iter().filter_map(|c| c.percent).sum();
        out.completeness_percent = Some((sum * 10.0 / out.completeness.len() as f64).round() / 10.0);
    }
    Ok(out)
}

async fn table_exists(db: &Db, table: &str) -> Result<bool> {
    let q = match db.backend() {
        Backend::Sqlite => Q::new("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1"),
        Backend::Postgres => Q::new("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"),
    }
    .bind(Value::Text(table.into()));
    Ok(db.fetch_one(&q, &[SqlType::Int]).await?.is_some())
}

/// A setting as stored (JSON), or `None` when the company kept the default. Read as plain
/// JSON so this list never depends on another module's types.
async fn setting(db: &Db, company_id: Uuid, key: &str) -> Result<Option<Json>> {
    match settings::get::<Json>(db, company_id, key).await {
        Ok(v) => Ok(v),
        Err(crate::StoreError::Corrupt(e)) => {
            tracing::warn!(company = %company_id, key, error = %e, "unreadable setting");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The active scoring rule sets, read defensively: the scoring tables may not exist (yet) or
/// have another shape, which shows as "not available" instead of failing the whole list.
async fn scoring_sets(db: &Db, company_id: Uuid) -> Json {
    match table_exists(db, "scoring_rule_sets").await {
        Ok(true) => {}
        Ok(false) => return json!({"available": false}),
        Err(e) => return json!({"available": false, "error": e.to_string()}),
    }
    let q = Q::new("SELECT id, name, object FROM scoring_rule_sets WHERE company_id = $1 AND is_active = $2 ORDER BY object, name")
        .bind(Value::Uuid(company_id))
        .bind(Value::Bool(true));
    match db.fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Text]).await {
        Ok(rows) => json!({
            "available": true,
            "active": rows.iter().map(|r| json!({"id": r.uuid(0), "name": r.text(1), "object": r.text(2)})).collect::<Vec<_>>(),
        }),
        Err(e) => {
            tracing::warn!(company = %company_id, error = %e, "scoring rule sets could not be read");
            json!({"available": false})
        }
    }
}

/// The active assignment rules in the order they are tried, read defensively like the
/// scoring rule sets.
async fn assignment_rules(db: &Db, company_id: Uuid) -> Json {
    if !table_exists(db, "assignment_rules").await.unwrap_or(false) {
        return json!({"available": false});
    }
    let q = Q::new(
        "SELECT id, name, object, strategy FROM assignment_rules WHERE company_id = $1 AND is_active = $2 ORDER BY object, position",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Bool(true));
    match db.fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Text]).await {
        Ok(rows) => json!({
            "available": true,
            "active": rows.iter().map(|r| json!({"id": r.uuid(0), "name": r.text(1), "object": r.text(2), "strategy": r.text(3)})).collect::<Vec<_>>(),
        }),
        Err(e) => {
            tracing::warn!(company = %company_id, error = %e, "assignment rules could not be read");
            json!({"available": false})
        }
    }
}

/// The governance policies in effect for a company, each with where its value comes from
/// (`settings` when the company set it, `default` otherwise).
pub async fn policies(db: &Db, company_id: Uuid, calling_code: &str) -> Result<Json> {
    let origin = |v: &Option<Json>| if v.is_some() { "settings" } else { "default" };
    let dedupe = setting(db, company_id, "dedupe.policy").await?;
    let conversion = setting(db, company_id, "conversion.rules").await?;
    let consent = privacy::consent_policy(db, company_id).await.unwrap_or_default();
    let consent_set = setting(db, company_id, privacy::POLICY_KEY).await?;
    let mut other: Vec<Json> = Vec::new();
    let q = Q::new("SELECT key, value FROM company_settings WHERE company_id = $1 ORDER BY key").bind(Value::Uuid(company_id));
    for r in db.fetch(&q, &[SqlType::Text, SqlType::Json]).await? {
        let key = r.text(0).unwrap_or_default();
        if !["dedupe.policy", "conversion.rules", privacy::POLICY_KEY].contains(&key.as_str()) {
            other.push(json!({"key": key, "value": r.json(1)}));
        }
    }
    Ok(json!({
        "data": [
            {
                "id": "dedupe",
                "name": "Duplicate detection",
                "source": origin(&dedupe),
                "value": {"policy": dedupe.clone().unwrap_or_else(|| json!("flag"))},
                "description": "Likely duplicates among leads and contacts (and accounts) on create, update and import: block refuses them (409), flag saves and marks them, allow does not check.",
            },
            {
                "id": "conversion",
                "name": "Conversion rules",
                "source": origin(&conversion),
                "value": conversion.clone().unwrap_or(Json::Null),
                "description": "What a lead must meet before it is converted to an account, contact and deal.",
            },
            {
                "id": "scoring",
                "name": "Lead scoring",
                "source": "tables",
                "value": scoring_sets(db, company_id).await,
                "description": "The active scoring rule set per object.",
            },
            {
                "id": "assignment",
                "name": "Assignment rules",
                "source": "tables",
                "value": assignment_rules(db, company_id).await,
                "description": "Ordered rules that give new and imported leads an owner; the first that matches wins.",
            },
            {
                "id": "consent",
                "name": "Consent",
                "source": origin(&consent_set),
                "value": consent,
                "description": "When gdpr_consent changes on a lead or contact its time is stamped and the decision is logged; a grant may require a source and the consent-text version.",
            },
            {
                "id": "dnd",
                "name": "Do not disturb",
                "source": "built-in",
                "value": {
                    "enforced": true,
                    "objects": PERSON_OBJECTS,
                    "blocked_task_types": OUTREACH_TYPES,
                    "blocked_activity_types": OUTREACH_TYPES,
                    "allowed": ["inbound activities", "notes", "meetings", "to-do tasks"],
                },
                "description": "People with dnd_status set get no call, email or WhatsApp tasks and no outbound activities (422).",
            },
            {
                "id": "validation",
                "name": "Validation and normalisation",
                "source": "built-in",
                "value": {
                    "email": "syntax checked, domain lower-cased, disposable domains flagged",
                    "phone": format!("normalised to E.164; numbers without a country code get +{calling_code}"),
                    "names": "trimmed",
                    "country": "ISO 3166-1 alpha-2",
                    "gstin": "format and checksum",
                    "url": "http(s) only",
                    "hard_errors": "422 naming the field",
                    "soft_problems": "validation_status pending or invalid with the reasons stored",
                },
                "description": "Checks every write path runs (API, forms, bulk, import).",
            },
            {
                "id": "erasure",
                "name": "Data-subject erasure",
                "source": "built-in",
                "value": {"who": "Admins", "scope": ["leads", "contacts with the same email or phone", "their activities and tasks", "qualification notes", "consent log sources and IP addresses", "duplicate-detection keys"], "keeps": "records, statuses, sources, amounts, dates"},
                "description": "Personal fields are replaced or emptied in one transaction; the audit trail records which fields, without values, and earlier values are redacted.",
            },
        ],
        "other_settings": other,
    }))
}
