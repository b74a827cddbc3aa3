//! Lead scoring: rule sets (at most one active per object), the pipeline step that scores a
//! lead on every create and update, engagement (activities logged against a lead, events
//! reported from outside) that rescores the lead, the score history, and the company-wide
//! rescore that applies inactivity decay (a daily job).
//!
//! The score itself is computed in `corvid_core::scoring`; this module feeds it the lead's
//! values and engagement events and stores what comes out.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Row, Tx, Q};
use crate::pipeline::Write;
use crate::records::Tenant;
use crate::{custom_fields, jobs, new_id, predictive, settings, Result, StoreError};
use chrono::{DateTime, Duration, Utc};
use corvid_core::meta::ObjectDef;
use corvid_core::record::Record;
use corvid_core::rules::{EngagementKind, Event, Facts};
use corvid_core::scoring::{Band, Bands, Decay, Model, ScoreRule, ScoringDef};
use corvid_core::validate::Changes;
use corvid_core::value::now_micros;
use corvid_core::{FieldError, SqlType, Value};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The job that rescores every lead of a company (or, without a company, of every company
/// with an active rule set): inactivity decay and engagement windows move with time.
pub const RESCORE_JOB: &str = "scoring.rescore";
/// Objects that can have scoring rule sets.
pub const SCORED_OBJECTS: &[&str] = &["leads"];
/// Fields a scoring rule may not test: the score's own outputs.
const SCORE_OUTPUTS: &[&str] = &["lead_score", "score_explanation", "predictive_score"];
/// Leads rescored per transaction by the company-wide rescore.
const PAGE: usize = 500;

fn leads_def() -> Result<&'static ObjectDef> {
    corvid_core::object("leads").ok_or_else(|| StoreError::Config("the leads object is not declared".into()))
}

// ---------------------------------------------------------------------------------------
// Rule sets
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct RuleSet {
    pub id: Uuid,
    pub object: String,
    pub name: String,
    pub description: Option<String>,
    pub active: bool,
    #[serde(flatten)]
    pub def: ScoringDef,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub updated_by: Option<Uuid>,
}

/// A new rule set. Bands default to Cold < 40 ≤ Warm < 70 ≤ Hot < 90 ≤ Very Hot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetInput {
    pub name: String,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub rules: Vec<ScoreRule>,
    #[serde(default)]
    pub bands: Option<Bands>,
    #[serde(default)]
    pub decay: Option<Decay>,
    /// Make this the object's active set (the previous one is deactivated).
    #[serde(default)]
    pub active: bool,
}

/// `Some(None)` for an explicit `null`, `None` when the key is absent.
pub fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A change to a rule set; absent keys stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSetPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub rules: Option<Vec<ScoreRule>>,
    #[serde(default)]
    pub bands: Option<Bands>,
    #[serde(default, deserialize_with = "double_option")]
    pub decay: Option<Option<Decay>>,
    #[serde(default)]
    pub active: Option<bool>,
    /// The version the change is based on; a stale one is refused.
    #[serde(default)]
    pub version: Option<i64>,
}

const SET_COLS: &str = "id, object, name, description, is_active, definition, version, created_at, updated_at, created_by, updated_by";
const SET_TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Bool,
    SqlType::Json,
    SqlType::Int,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Uuid,
    SqlType::Uuid,
];

fn set_from(r: &Row) -> Result<RuleSet> {
    let def: ScoringDef = serde_json::from_value(r.json(5).unwrap_or(Json::Null))
        .map_err(|e| StoreError::Corrupt(format!("scoring rule set definition: {e}")))?;
    Ok(RuleSet {
        id: r.uuid(0).unwrap_or_default(),
        object: r.text(1).unwrap_or_default(),
        name: r.text(2).unwrap_or_default(),
        description: r.text(3),
        active: r.bool(4).unwrap_or(false),
        def,
        version: r.int(6).unwrap_or(1),
        created_at: r.timestamp(7).unwrap_or_default(),
        updated_at: r.timestamp(8).unwrap_or_default(),
        created_by: r.uuid(9),
        updated_by: r.uuid(10),
    })
}

pub async fn list_sets(db: &Db, company_id: Uuid) -> Result<Vec<RuleSet>> {
    let q = Q::new(format!("SELECT {SET_COLS} FROM scoring_rule_sets WHERE company_id = $1 ORDER BY object, is_active DESC, name"))
        .bind(Value::Uuid(company_id));
    db.fetch(&q, SET_TYPES).await?.iter().map(set_from).collect()
}

pub async fn get_set(db: &Db, company_id: Uuid, id: Uuid) -> Result<RuleSet> {
    let q = Q::new(format!("SELECT {SET_COLS} FROM scoring_rule_sets WHERE company_id = $1 AND id = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    db.fetch_one(&q, SET_TYPES).await?.as_ref().map(set_from).transpose()?.ok_or(StoreError::NotFound)
}

async fn get_set_tx(tx: &mut Tx, company_id: Uuid, id: Uuid) -> Result<RuleSet> {
    let q = Q::new(format!("SELECT {SET_COLS} FROM scoring_rule_sets WHERE company_id = $1 AND id = $2{}", tx.for_update()))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    tx.fetch_one(&q, SET_TYPES).await?.as_ref().map(set_from).transpose()?.ok_or(StoreError::NotFound)
}

/// The active rule set of `object`, if any.
pub async fn active_set(tx: &mut Tx, company_id: Uuid, object: &str) -> Result<Option<RuleSet>> {
    let q = Q::new(format!("SELECT {SET_COLS} FROM scoring_rule_sets WHERE company_id = $1 AND object = $2 AND is_active = $3"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(object.into()))
        .bind(Value::Bool(true));
    tx.fetch_one(&q, SET_TYPES).await?.as_ref().map(set_from).transpose()
}

pub async fn active_set_db(db: &Db, company_id: Uuid, object: &str) -> Result<Option<RuleSet>> {
    let q = Q::new(format!("SELECT {SET_COLS} FROM scoring_rule_sets WHERE company_id = $1 AND object = $2 AND is_active = $3"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(object.into()))
        .bind(Value::Bool(true));
    db.fetch_one(&q, SET_TYPES).await?.as_ref().map(set_from).transpose()
}

/// Names a rule condition may test on leads: standard fields (but not the score itself) and
/// the company's custom fields.
async fn condition_fields(db: &Db, company_id: Uuid, exclude: &[&str]) -> Result<Vec<String>> {
    let mut names: Vec<String> = leads_def()?.fields.iter().map(|f| f.name.clone()).filter(|n| !exclude.contains(&n.as_str())).collect();
    names.extend(custom_fields::list(db, company_id, "leads").await?.into_iter().map(|f| f.name));
    Ok(names)
}

/// Lead fields an assignment or scoring condition may name.
pub async fn lead_condition_fields(db: &Db, company_id: Uuid, for_scoring: bool) -> Result<Vec<String>> {
    condition_fields(db, company_id, if for_scoring { SCORE_OUTPUTS } else { &[] }).await
}

fn check_text(errors: &mut Vec<FieldError>, field: &str, v: Option<&str>, max: usize) {
    if let Some(s) = v {
        if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
            errors.push(FieldError::new(field, format!("must be at most {max} characters of text")));
        }
    }
}

async fn validate_def(db: &Db, company_id: Uuid, name: &str, description: Option<&str>, def: &ScoringDef) -> Result<()> {
    let fields = condition_fields(db, company_id, SCORE_OUTPUTS).await?;
    let mut errors = Vec::new();
    if let Some(e) = corvid_core::rules::validate_name(name, "name") {
        errors.push(e);
    }
    check_text(&mut errors, "description", description, 1000);
    errors.extend(def.validate(&|f| fields.iter().any(|n| n == f)));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

fn set_change(id: Uuid, action: &str, field: &str, old: Option<String>, new: Option<String>) -> Change {
    Change { object: "scoring_rule_set".into(), record_id: Some(id), action: action.into(), field: Some(field.into()), old, new }
}

fn def_text(def: &ScoringDef) -> String {
    serde_json::to_string(def).unwrap_or_default()
}

/// Queues a rescore of the company's leads, once per rule-set version.
async fn queue_rescore(tx: &mut Tx, ctx: &AuditCtx, set: &RuleSet, reason: &str) -> Result<()> {
    let job = jobs::NewJob::new(RESCORE_JOB, json!({"reason": reason, "rule_set_id": set.id}))
        .company(ctx.company_id)
        .created_by(ctx.actor_id)
        .idempotency_key(format!("rescore:{}:v{}:{}", set.id, set.version, if set.active { "on" } else { "off" }));
    jobs::enqueue_tx(tx, &job, now_micros()).await?;
    Ok(())
}

fn conflict_name(e: StoreError, name: &str) -> StoreError {
    if e.is_unique_violation() {
        StoreError::Conflict(format!("a rule set called \"{}\" already exists", name.trim()))
    } else {
        e
    }
}

/// Makes `id` the only active set of its object (or deactivates it), in the caller's
/// transaction, and queues a rescore.
async fn set_active_tx(tx: &mut Tx, ctx: &AuditCtx, set: &mut RuleSet, active: bool) -> Result<()> {
    if set.active == active {
        return Ok(());
    }
    let now = now_micros();
    if active {
        let q = Q::new("UPDATE scoring_rule_sets SET is_active = $1, version = version + 1, updated_at = $2, updated_by = $3 WHERE company_id = $4 AND object = $5 AND is_active = $6 RETURNING id")
            .bind(Value::Bool(false))
            .bind(Value::Timestamp(now))
            .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
            .bind(Value::Uuid(ctx.company_id))
            .bind(Value::Text(set.object.clone()))
            .bind(Value::Bool(true));
        let off: Vec<Uuid> = tx.fetch(&q, &[SqlType::Uuid]).await?.iter().filter_map(|r| r.uuid(0)).collect();
        let rows: Vec<Change> =
            off.into_iter().map(|o| set_change(o, "deactivate", "is_active", Some("true".into()), Some("false".into()))).collect();
        audit::append(tx, ctx, &rows).await?;
    }
    let q = Q::new("UPDATE scoring_rule_sets SET is_active = $1, version = version + 1, updated_at = $2, updated_by = $3 WHERE company_id = $4 AND id = $5")
        .bind(Value::Bool(active))
        .bind(Value::Timestamp(now))
        .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Uuid(set.id));
    tx.execute(&q).await?;
    let action = if active { "activate" } else { "deactivate" };
    audit::append(tx, ctx, &[set_change(set.id, action, "is_active", Some((!active).to_string()), Some(active.to_string()))]).await?;
    set.active = active;
    set.version += 1;
    set.updated_at = now;
    queue_rescore(tx, ctx, set, if active { "rule set activated" } else { "rule set deactivated" }).await
}

pub async fn create_set(db: &Db, t: &Tenant, input: RuleSetInput) -> Result<RuleSet> {
    let object = input.object.clone().unwrap_or_else(|| "leads".into());
    if !SCORED_OBJECTS.contains(&object.as_str()) {
        return Err(StoreError::invalid("object", "must be leads"));
    }
    let def = ScoringDef { rules: input.rules, bands: input.bands.unwrap_or_default(), decay: input.decay };
    let description = input.description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
    validate_def(db, t.company_id, &input.name, description.as_deref(), &def).await?;
    let id = new_id();
    let now = now_micros();
    let mut tx = db.begin().await?;
    let q = Q::new(
        "INSERT INTO scoring_rule_sets (id, company_id, object, name, description, is_active, definition, version, created_at, updated_at, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9, $9)",
    )
    .bind(Value::Uuid(id))
    .bind(Value::Uuid(t.company_id))
    .bind(Value::Text(object.clone()))
    .bind(Value::Text(input.name.trim().to_string()))
    .bind(description.clone().map_or(Value::Null(SqlType::Text), Value::Text))
    .bind(Value::Bool(false))
    .bind(Value::Json(serde_json::to_value(&def).map_err(|e| StoreError::Config(e.to_string()))?))
    .bind(Value::Timestamp(now))
    .bind(Value::Uuid(t.user_id));
    tx.execute(&q).await.map_err(|e| conflict_name(e, &input.name))?;
    audit::append(
        &mut tx,
        &t.audit,
        &[
            set_change(id, "create", "name", None, Some(input.name.trim().to_string())),
            set_change(id, "create", "definition", None, Some(def_text(&def))),
        ],
    )
    .await?;
    let mut set = get_set_tx(&mut tx, t.company_id, id).await?;
    if input.active {
        set_active_tx(&mut tx, &t.audit, &mut set, true).await?;
    }
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await?;
    Ok(set)
}

pub async fn update_set(db: &Db, t: &Tenant, id: Uuid, patch: RuleSetPatch) -> Result<RuleSet> {
    let mut tx = db.begin().await?;
    let current = get_set_tx(&mut tx, t.company_id, id).await?;
    if patch.version.is_some_and(|v| v != current.version) {
        return Err(StoreError::Stale { current: current.version });
    }
    let name = patch.name.clone().unwrap_or_else(|| current.name.clone());
    let description = match &patch.description {
        Some(d) => d.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
        None => current.description.clone(),
    };
    let def = ScoringDef {
        rules: patch.rules.clone().unwrap_or_else(|| current.def.rules.clone()),
        bands: patch.bands.unwrap_or(current.def.bands),
        decay: patch.decay.unwrap_or(current.def.decay),
    };
    validate_def(db, t.company_id, &name, description.as_deref(), &def).await?;
    let mut rows = Vec::new();
    if name.trim() != current.name {
        rows.push(set_change(id, "update", "name", Some(current.name.clone()), Some(name.trim().to_string())));
    }
    if description != current.description {
        rows.push(set_change(id, "update", "description", current.description.clone(), description.clone()));
    }
    if def != current.def {
        rows.push(set_change(id, "update", "definition", Some(def_text(&current.def)), Some(def_text(&def))));
    }
    let mut set = current.clone();
    if !rows.is_empty() {
        let q = Q::new(
            "UPDATE scoring_rule_sets SET name = $1, description = $2, definition = $3, version = version + 1, updated_at = $4, updated_by = $5 \
             WHERE company_id = $6 AND id = $7 AND version = $8",
        )
        .bind(Value::Text(name.trim().to_string()))
        .bind(description.clone().map_or(Value::Null(SqlType::Text), Value::Text))
        .bind(Value::Json(serde_json::to_value(&def).map_err(|e| StoreError::Config(e.to_string()))?))
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Uuid(t.user_id))
        .bind(Value::Uuid(t.company_id))
        .bind(Value::Uuid(id))
        .bind(Value::Int(current.version));
        if tx.execute(&q).await.map_err(|e| conflict_name(e, &name))? == 0 {
            return Err(StoreError::Stale { current: current.version });
        }
        audit::append(&mut tx, &t.audit, &rows).await?;
        set = get_set_tx(&mut tx, t.company_id, id).await?;
        if set.active && def != current.def {
            queue_rescore(&mut tx, &t.audit, &set, "rule set changed").await?;
        }
    }
    if let Some(active) = patch.active {
        set_active_tx(&mut tx, &t.audit, &mut set, active).await?;
    }
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await?;
    Ok(set)
}

pub async fn activate_set(db: &Db, t: &Tenant, id: Uuid, active: bool) -> Result<RuleSet> {
    let mut tx = db.begin().await?;
    let mut set = get_set_tx(&mut tx, t.company_id, id).await?;
    set_active_tx(&mut tx, &t.audit, &mut set, active).await?;
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await?;
    Ok(set)
}

/// Deletes a rule set. Leads keep the scores it gave them; with the active set gone, scores
/// stop changing until another set is activated.
pub async fn delete_set(db: &Db, t: &Tenant, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    let set = get_set_tx(&mut tx, t.company_id, id).await?;
    tx.execute(
        &Q::new("DELETE FROM scoring_rule_sets WHERE company_id = $1 AND id = $2").bind(Value::Uuid(t.company_id)).bind(Value::Uuid(id)),
    )
    .await?;
    audit::append(&mut tx, &t.audit, &[set_change(id, "delete", "definition", Some(def_text(&set.def)), None)]).await?;
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await
}

// ---------------------------------------------------------------------------------------
// Leads as scoring sees them
// ---------------------------------------------------------------------------------------

/// A lead's stored values.
#[derive(Debug, Clone)]
pub struct LeadRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub fields: BTreeMap<String, Value>,
    pub custom: Map<String, Json>,
}

impl LeadRow {
    pub fn from_record(r: &Record) -> LeadRow {
        LeadRow { id: r.id, created_at: r.created_at, fields: r.fields.clone(), custom: r.custom.clone() }
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.fields.get(name).and_then(Value::as_i64)
    }

    fn timestamp(&self, name: &str) -> Option<DateTime<Utc>> {
        match self.fields.get(name) {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        }
    }

    /// Values by name as rule conditions read them (standard and custom fields).
    pub fn facts(&self) -> Map<String, Json> {
        facts_of(&self.fields, &self.custom)
    }
}

pub fn facts_of(fields: &BTreeMap<String, Value>, custom: &Map<String, Json>) -> Map<String, Json> {
    let mut m: Map<String, Json> = fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    for (k, v) in custom {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn lead_select(def: &ObjectDef) -> (String, Vec<SqlType>) {
    let mut cols = vec!["id".to_string(), "created_at".into(), "custom".into()];
    let mut types = vec![SqlType::Uuid, SqlType::Timestamp, SqlType::Json];
    for f in &def.fields {
        cols.push(f.name.clone());
        types.push(f.kind.sql_type());
    }
    (cols.join(", "), types)
}

fn lead_from(def: &ObjectDef, r: Row) -> LeadRow {
    let id = r.uuid(0).unwrap_or_default();
    let created_at = r.timestamp(1).unwrap_or_default();
    let custom = r.json(2).and_then(|j| j.as_object().cloned()).unwrap_or_default();
    let mut vals = r.take().into_iter().skip(3);
    let fields = def.fields.iter().map(|f| (f.name.clone(), vals.next().unwrap_or(Value::Null(f.kind.sql_type())))).collect();
    LeadRow { id, created_at, fields, custom }
}

/// Where a read runs: the pool (read-only paths) or the caller's write transaction.
pub enum Conn<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl Conn<'_> {
    async fn fetch(&mut self, q: &Q, types: &[SqlType]) -> Result<Vec<Row>> {
        match self {
            Conn::Db(db) => db.fetch(q, types).await,
            Conn::Tx(tx) => tx.fetch(q, types).await,
        }
    }

    /// Row locks for rows about to be rewritten (PostgreSQL; SQLite's writer already holds the lock).
    fn lock(&self) -> &'static str {
        match self {
            Conn::Db(_) => "",
            Conn::Tx(tx) => tx.for_update(),
        }
    }
}

/// Live leads by id (deleted ones are left out).
pub async fn load_leads(tx: &mut Tx, company_id: Uuid, ids: &[Uuid]) -> Result<Vec<LeadRow>> {
    leads_by_id(Conn::Tx(tx), company_id, ids).await
}

pub async fn leads_by_id(mut conn: Conn<'_>, company_id: Uuid, ids: &[Uuid]) -> Result<Vec<LeadRow>> {
    let def = leads_def()?;
    let (cols, types) = lead_select(def);
    let mut out = Vec::new();
    for chunk in ids.chunks(PAGE) {
        let mut q = Q::new(format!("SELECT {cols} FROM leads WHERE deleted_at IS NULL AND company_id = "));
        let p = q.param(Value::Uuid(company_id));
        q.push(&p);
        let ps: Vec<String> = chunk.iter().map(|id| q.param(Value::Uuid(*id))).collect();
        q.push(&format!(" AND id IN ({}){}", ps.join(", "), conn.lock()));
        out.extend(conn.fetch(&q, &types).await?.into_iter().map(|r| lead_from(def, r)));
    }
    Ok(out)
}

/// A page of live leads after `after` in id order (`extra_where` is trusted SQL such as
/// `" AND status IN ('converted')"`), locked for rewriting when read in a transaction.
pub async fn lead_page(mut conn: Conn<'_>, company_id: Uuid, after: Option<Uuid>, extra_where: &str, limit: usize) -> Result<Vec<LeadRow>> {
    let def = leads_def()?;
    let (cols, types) = lead_select(def);
    let mut q = Q::new(format!("SELECT {cols} FROM leads WHERE deleted_at IS NULL{extra_where} AND company_id = "));
    let p = q.param(Value::Uuid(company_id));
    q.push(&p);
    if let Some(a) = after {
        let p = q.param(Value::Uuid(a));
        q.push(&format!(" AND id > {p}"));
    }
    q.push(&format!(" ORDER BY id LIMIT {limit}{}", conn.lock()));
    Ok(conn.fetch(&q, &types).await?.into_iter().map(|r| lead_from(def, r)).collect())
}

/// Engagement events of leads: their live activities (every one is `activity_logged`,
/// meetings are also `meeting_held`) and the events reported from outside.
pub async fn load_events(tx: &mut Tx, company_id: Uuid, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<Event>>> {
    events_of(Conn::Tx(tx), company_id, ids).await
}

pub async fn events_of(mut conn: Conn<'_>, company_id: Uuid, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<Event>>> {
    let mut out: HashMap<Uuid, Vec<Event>> = HashMap::new();
    for chunk in ids.chunks(PAGE) {
        for (sql, from_activities) in [
            ("SELECT lead_id, activity_type, activity_date FROM activities WHERE deleted_at IS NULL AND company_id = ", true),
            ("SELECT lead_id, kind, occurred_at FROM lead_engagement_events WHERE company_id = ", false),
        ] {
            let mut q = Q::new(sql);
            let p = q.param(Value::Uuid(company_id));
            q.push(&p);
            let ps: Vec<String> = chunk.iter().map(|id| q.param(Value::Uuid(*id))).collect();
            q.push(&format!(" AND lead_id IN ({})", ps.join(", ")));
            for r in conn.fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Timestamp]).await? {
                let (Some(lead), Some(kind), Some(at)) = (r.uuid(0), r.text(1), r.timestamp(2)) else { continue };
                let list = out.entry(lead).or_default();
                if from_activities {
                    list.push(Event { kind: EngagementKind::ActivityLogged, at });
                    if kind == "meeting" {
                        list.push(Event { kind: EngagementKind::MeetingHeld, at });
                    }
                } else if let Some(k) = EngagementKind::parse(&kind) {
                    list.push(Event { kind: k, at });
                }
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Scoring a lead
// ---------------------------------------------------------------------------------------

/// What scores a company's leads right now.
#[derive(Debug, Clone, Default)]
pub struct Active {
    pub set: Option<RuleSet>,
    pub model: Option<Model>,
}

pub async fn load_active(tx: &mut Tx, company_id: Uuid) -> Result<Active> {
    Ok(Active { set: active_set(tx, company_id, "leads").await?, model: predictive::active_model(tx, company_id).await? })
}

fn audit_of(v: &Value) -> Option<String> {
    v.audit_text()
}

fn lead_change(id: Uuid, field: &str, old: &Value, new: &Value) -> Change {
    Change {
        object: "leads".into(),
        record_id: Some(id),
        action: "update".into(),
        field: Some(field.into()),
        old: audit_of(old),
        new: audit_of(new),
    }
}

async fn write_history(
    tx: &mut Tx,
    company_id: Uuid,
    lead_id: Uuid,
    score: i64,
    previous: Option<i64>,
    reason: &str,
    set: Option<Uuid>,
) -> Result<()> {
    let q = Q::new(
        "INSERT INTO lead_score_history (id, company_id, lead_id, at, score, previous_score, reason, rule_set_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Value::Uuid(new_id()))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(lead_id))
    .bind(Value::Timestamp(now_micros()))
    .bind(Value::Int(score))
    .bind(previous.map_or(Value::Null(SqlType::Int), Value::Int))
    .bind(Value::Text(reason.chars().take(200).collect()))
    .bind(set.map_or(Value::Null(SqlType::Uuid), Value::Uuid));
    tx.execute(&q).await?;
    Ok(())
}

/// Recomputes a stored lead's scores and last activity from its events and writes what
/// changed (a new version, score history, audit rows returned to the caller).
pub async fn apply(tx: &mut Tx, company_id: Uuid, active: &Active, lead: &LeadRow, events: &[Event], reason: &str) -> Result<Vec<Change>> {
    let now = now_micros();
    let mut sets: Vec<(&str, Value, Value)> = Vec::new();
    let stored_last = lead.timestamp("last_activity_at");
    let newest = events.iter().filter(|e| e.at <= now).map(|e| e.at).max();
    let last = stored_last.max(newest);
    if last != stored_last {
        if let Some(t) = last {
            sets.push((
                "last_activity_at",
                lead.fields.get("last_activity_at").cloned().unwrap_or(Value::Null(SqlType::Timestamp)),
                Value::Timestamp(t),
            ));
        }
    }
    let facts_map = lead.facts();
    let facts = Facts { fields: &facts_map, events, now };
    let mut new_score = None;
    if let Some(set) = &active.set {
        let scored = set.def.score(&facts, last.unwrap_or(lead.created_at));
        let old_score = lead.fields.get("lead_score").cloned().unwrap_or(Value::Null(SqlType::Int));
        if old_score != Value::Int(scored.score) {
            sets.push(("lead_score", old_score, Value::Int(scored.score)));
            new_score = Some(scored.score);
        }
        let old_expl = lead.fields.get("score_explanation").cloned().unwrap_or(Value::Null(SqlType::Json));
        let expl = Value::Json(scored.explanation_json());
        if old_expl != expl {
            sets.push(("score_explanation", old_expl, expl));
        }
    }
    let old_pred = lead.fields.get("predictive_score").cloned().unwrap_or(Value::Null(SqlType::Int));
    let new_pred = match &active.model {
        Some(m) => Value::Int(m.score(&corvid_core::scoring::lead_features(&facts_map, events, now))),
        None => Value::Null(SqlType::Int),
    };
    if old_pred != new_pred {
        sets.push(("predictive_score", old_pred, new_pred));
    }
    if sets.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Q::new(String::new());
    let mut assigns = Vec::new();
    for (col, _, v) in &sets {
        let p = q.param(v.clone());
        assigns.push(format!("{col} = {p}"));
    }
    let pn = q.param(Value::Timestamp(now));
    let pc = q.param(Value::Uuid(company_id));
    let pi = q.param(Value::Uuid(lead.id));
    q.sql =
        format!("UPDATE leads SET {}, version = version + 1, updated_at = {pn} WHERE company_id = {pc} AND id = {pi}", assigns.join(", "));
    tx.execute(&q).await?;
    if let Some(s) = new_score {
        write_history(tx, company_id, lead.id, s, lead.int("lead_score"), reason, active.set.as_ref().map(|s| s.id)).await?;
    }
    Ok(sets.iter().map(|(col, old, new)| lead_change(lead.id, col, old, new)).collect())
}

/// Rescores one lead inside the caller's transaction (after engagement).
pub async fn rescore_lead(tx: &mut Tx, company_id: Uuid, active: &Active, lead_id: Uuid, reason: &str) -> Result<Vec<Change>> {
    let Some(lead) = load_leads(tx, company_id, &[lead_id]).await?.into_iter().next() else { return Ok(Vec::new()) };
    let events = load_events(tx, company_id, &[lead_id]).await?.remove(&lead_id).unwrap_or_default();
    apply(tx, company_id, active, &lead, &events, reason).await
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RescoreReport {
    pub leads: i64,
    pub changed: i64,
}

/// Rescores every live lead of a company, a page per transaction; the audit rows carry `ctx`
/// (the system for scheduled runs). `on_progress` gets the leads done so far.
pub async fn rescore_company(db: &Db, ctx: &AuditCtx, reason: &str, on_progress: &(dyn Fn(i64) + Send + Sync)) -> Result<RescoreReport> {
    let company_id = ctx.company_id;
    let mut report = RescoreReport::default();
    let mut after = None;
    loop {
        let mut tx = db.begin().await?;
        let active = load_active(&mut tx, company_id).await?;
        let page = lead_page(Conn::Tx(&mut tx), company_id, after, "", PAGE).await?;
        let Some(last) = page.last().map(|l| l.id) else { break };
        let ids: Vec<Uuid> = page.iter().map(|l| l.id).collect();
        let mut events = load_events(&mut tx, company_id, &ids).await?;
        let mut rows = Vec::new();
        for lead in &page {
            let ev = events.remove(&lead.id).unwrap_or_default();
            let changed = apply(&mut tx, company_id, &active, lead, &ev, reason).await?;
            if !changed.is_empty() {
                report.changed += 1;
            }
            rows.extend(changed);
        }
        audit::append(&mut tx, ctx, &rows).await?;
        tx.commit().await?;
        report.leads += page.len() as i64;
        on_progress(report.leads);
        after = Some(last);
        if page.len() < PAGE {
            break;
        }
    }
    Ok(report)
}

/// Companies with an active scoring rule set or a trained model (what the daily rescore visits).
pub async fn companies_to_rescore(db: &Db) -> Result<Vec<Uuid>> {
    let q = Q::new(
        "SELECT company_id FROM scoring_rule_sets WHERE is_active = $1 UNION SELECT company_id FROM predictive_models WHERE status = 'trained'",
    )
    .bind(Value::Bool(true));
    Ok(db.fetch(&q, &[SqlType::Uuid]).await?.iter().filter_map(|r| r.uuid(0)).collect())
}

// ---------------------------------------------------------------------------------------
// Engagement from outside
// ---------------------------------------------------------------------------------------

/// Records an engagement event on a lead and rescores it, in one transaction.
pub async fn record_engagement(
    db: &Db,
    t: &Tenant,
    lead_id: Uuid,
    kind: EngagementKind,
    at: Option<DateTime<Utc>>,
    source: Option<&str>,
) -> Result<()> {
    if !t.role.can_write() {
        return Err(StoreError::Forbidden("your role can read but not change records".into()));
    }
    let now = now_micros();
    let at = at.unwrap_or(now);
    if at > now + Duration::minutes(5) {
        return Err(StoreError::invalid("occurred_at", "cannot be in the future"));
    }
    if at < now - Duration::days(3650) {
        return Err(StoreError::invalid("occurred_at", "is more than ten years ago"));
    }
    if kind == EngagementKind::ActivityLogged {
        return Err(StoreError::invalid(
            "type",
            "activities are logged as activity records; use email_opened, email_clicked, form_submitted or meeting_held",
        ));
    }
    if source.is_some_and(|s| s.chars().count() > 200) {
        return Err(StoreError::invalid("source", "must be at most 200 characters"));
    }
    let mut tx = db.begin().await?;
    if load_leads(&mut tx, t.company_id, &[lead_id]).await?.is_empty() {
        return Err(StoreError::NotFound);
    }
    let q = Q::new(
        "INSERT INTO lead_engagement_events (id, company_id, lead_id, kind, occurred_at, source, details, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Value::Uuid(new_id()))
    .bind(Value::Uuid(t.company_id))
    .bind(Value::Uuid(lead_id))
    .bind(Value::Text(kind.as_str().into()))
    .bind(Value::Timestamp(at))
    .bind(source.map_or(Value::Null(SqlType::Text), |s| Value::Text(s.into())))
    .bind(Value::Null(SqlType::Json))
    .bind(Value::Timestamp(now))
    .bind(Value::Uuid(t.user_id));
    tx.execute(&q).await?;
    let active = load_active(&mut tx, t.company_id).await?;
    let mut rows = vec![Change {
        object: "leads".into(),
        record_id: Some(lead_id),
        action: "engagement".into(),
        field: Some(kind.as_str().into()),
        old: None,
        new: Value::Timestamp(at).audit_text(),
    }];
    rows.extend(rescore_lead(&mut tx, t.company_id, &active, lead_id, &format!("engagement: {}", kind.as_str())).await?);
    audit::append(&mut tx, &t.audit, &rows).await?;
    tx.commit().await
}

// ---------------------------------------------------------------------------------------
// Score history and the lead's score card
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub score: i64,
    pub previous_score: Option<i64>,
    pub reason: String,
    pub rule_set_id: Option<Uuid>,
}

pub async fn history(db: &Db, company_id: Uuid, lead_id: Uuid, limit: usize) -> Result<Vec<HistoryEntry>> {
    let q = Q::new(format!(
        "SELECT at, score, previous_score, reason, rule_set_id FROM lead_score_history WHERE company_id = $1 AND lead_id = $2 ORDER BY at DESC, id DESC LIMIT {}",
        limit.min(500)
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(lead_id));
    Ok(db
        .fetch(&q, &[SqlType::Timestamp, SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Uuid])
        .await?
        .into_iter()
        .filter_map(|r| {
            Some(HistoryEntry {
                at: r.timestamp(0)?,
                score: r.int(1)?,
                previous_score: r.int(2),
                reason: r.text(3)?,
                rule_set_id: r.uuid(4),
            })
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct BandView {
    pub value: &'static str,
    pub label: &'static str,
    pub colour: &'static str,
}

impl From<Band> for BandView {
    fn from(b: Band) -> Self {
        BandView { value: b.as_str(), label: b.label(), colour: b.colour() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EngagementCount {
    pub kind: &'static str,
    pub label: &'static str,
    pub total: i64,
    pub last_30_days: i64,
}

/// Everything about one lead's score: the rule score with band and explanation, the
/// predictive score with its strongest features, engagement counts and the history.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreCard {
    pub lead_id: Uuid,
    pub lead_score: Option<i64>,
    pub band: BandView,
    pub bands: Bands,
    pub explanation: Json,
    pub rule_set: Option<Json>,
    pub predictive: predictive::LeadPrediction,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub engagement: Vec<EngagementCount>,
    pub history: Vec<HistoryEntry>,
}

pub async fn score_card(db: &Db, company_id: Uuid, lead_id: Uuid) -> Result<ScoreCard> {
    let lead = leads_by_id(Conn::Db(db), company_id, &[lead_id]).await?.into_iter().next().ok_or(StoreError::NotFound)?;
    let events = events_of(Conn::Db(db), company_id, &[lead_id]).await?.remove(&lead_id).unwrap_or_default();
    let active = Active { set: active_set_db(db, company_id, "leads").await?, model: predictive::model_db(db, company_id).await? };
    let now = now_micros();
    let bands = active.set.as_ref().map(|s| s.def.bands).unwrap_or_default();
    let score = lead.int("lead_score");
    let facts = lead.facts();
    let predictive = predictive::explain(active.model.as_ref(), &facts, &events, lead.int("predictive_score"));
    Ok(ScoreCard {
        lead_id,
        lead_score: score,
        band: bands.band(score.unwrap_or(0)).into(),
        bands,
        explanation: lead.fields.get("score_explanation").map(Value::to_json).filter(|j| !j.is_null()).unwrap_or_else(|| json!([])),
        rule_set: active.set.as_ref().map(|s| json!({"id": s.id, "name": s.name})),
        predictive,
        last_activity_at: lead.timestamp("last_activity_at"),
        engagement: EngagementKind::ALL
            .iter()
            .map(|k| EngagementCount {
                kind: k.as_str(),
                label: k.label(),
                total: corvid_core::rules::count_events(&events, *k, None, now),
                last_30_days: corvid_core::rules::count_events(&events, *k, Some(30), now),
            })
            .collect(),
        history: history(db, company_id, lead_id, 50).await?,
    })
}

/// What a sample lead would score under a rule set (the active one when `set` is `None`).
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub rule_set: Option<Json>,
    pub score: Option<i64>,
    pub band: Option<BandView>,
    pub explanation: Vec<corvid_core::scoring::Contribution>,
    pub message: Option<String>,
}

/// Scores sample values (already validated) with engagement counts given as numbers of
/// recent events; nothing is written.
pub fn preview(set: Option<&RuleSet>, facts: &Map<String, Json>, engagement: &BTreeMap<EngagementKind, i64>) -> Preview {
    let now = now_micros();
    // Counted events are taken as happening now, so every window includes them.
    let events: Vec<Event> =
        engagement.iter().flat_map(|(k, n)| (0..(*n).clamp(0, 1000)).map(move |_| Event { kind: *k, at: now })).collect();
    match set {
        None => Preview {
            rule_set: None,
            score: None,
            band: None,
            explanation: Vec::new(),
            message: Some("No scoring rule set is active; create one and activate it.".into()),
        },
        Some(s) => {
            let scored = s.def.score(&Facts { fields: facts, events: &events, now }, now);
            Preview {
                rule_set: Some(json!({"id": s.id, "name": s.name, "active": s.active})),
                score: Some(scored.score),
                band: Some(scored.band.into()),
                explanation: scored.explanation,
                message: None,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The pipeline step
// ---------------------------------------------------------------------------------------

/// A score change waiting for the record's id (creates) to go into the history.
#[derive(Debug)]
struct Pending {
    score: i64,
    previous: Option<i64>,
    reason: &'static str,
}

/// A score-history row kept for a batch: record, time, score, previous score, reason.
type HistoryRow = (Uuid, DateTime<Utc>, i64, Option<i64>, &'static str);

/// The step's state for one transaction or import batch: the active rule set and model,
/// loaded once.
#[derive(Debug, Default)]
pub struct Step {
    active: Option<Active>,
    pending: Option<Pending>,
    /// Batch mode: score history rows kept for `flush` (lead, time, score, previous, reason).
    history: Option<Vec<HistoryRow>>,
}

/// Whether writes of `object` are scored (leads) or rescore a lead (activities).
pub fn scores(object: &ObjectDef) -> bool {
    matches!(object.name.as_str(), "leads" | "activities")
}

impl Step {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Step> {
        let active = if scores(object) { Some(load_active(tx, tenant.company_id).await?) } else { None };
        Ok(Step::with_active(active))
    }

    /// The step with an active rule set and model already read (the pipeline's cache).
    pub fn with_active(active: Option<Active>) -> Step {
        Step { active, pending: None, history: None }
    }

    /// Batch mode: history rows of new leads are written together by `flush`.
    pub fn for_batch(&mut self) {
        self.history = Some(Vec::new());
    }

    /// Writes the history rows kept in batch mode (multi-row INSERTs).
    pub async fn flush(&mut self, tx: &mut Tx, company_id: Uuid) -> Result<()> {
        let Some(rows) = self.history.as_mut().filter(|h| !h.is_empty()) else { return Ok(()) };
        let set = self.active.as_ref().and_then(|a| a.set.as_ref()).map(|s| s.id);
        // Eight values per row: well under both backends' parameter limits.
        for range in crate::db::stable_chunks(rows.len(), 2048) {
            let chunk = &rows[range];
            let mut q = Q::new(String::new());
            let pc = q.param(Value::Uuid(company_id));
            let ps = q.param(set.map_or(Value::Null(SqlType::Uuid), Value::Uuid));
            let tuples: Vec<String> = chunk
                .iter()
                .map(|(lead, at, score, previous, reason)| {
                    format!(
                        "({}, {pc}, {}, {}, {}, {}, {}, {ps})",
                        q.param(Value::Uuid(new_id())),
                        q.param(Value::Uuid(*lead)),
                        q.param(Value::Timestamp(*at)),
                        q.param(Value::Int(*score)),
                        q.param(previous.map_or(Value::Null(SqlType::Int), Value::Int)),
                        q.param(Value::Text((*reason).into())),
                    )
                })
                .collect();
            q.sql = format!(
                "INSERT INTO lead_score_history (id, company_id, lead_id, at, score, previous_score, reason, rule_set_id) VALUES {}",
                tuples.join(", ")
            );
            tx.execute(&q).await?;
        }
        rows.clear();
        Ok(())
    }

    /// Scores a lead being created or updated: `lead_score`, `score_explanation` and
    /// `predictive_score` are computed (a score sent by the caller is replaced while a rule set
    /// is active).
    pub async fn before_write(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &mut Changes, _audit: &mut Vec<Change>) -> Result<()> {
        self.pending = None;
        if w.object.name != "leads" {
            return Ok(());
        }
        let Some(active) = &self.active else { return Ok(()) };
        if active.set.is_none() && active.model.is_none() {
            return Ok(());
        }
        let now = now_micros();
        let mut fields = w.existing.map(|r| r.fields.clone()).unwrap_or_default();
        let mut custom = w.existing.map(|r| r.custom.clone()).unwrap_or_default();
        for (k, v) in &changes.fields {
            fields.insert(k.clone(), v.clone());
        }
        for (k, v) in &changes.custom {
            custom.insert(k.clone(), v.clone());
        }
        let facts_map = facts_of(&fields, &custom);
        // A new lead has no engagement yet.
        let events = match w.existing {
            Some(r) => load_events(tx, w.tenant.company_id, &[r.id]).await?.remove(&r.id).unwrap_or_default(),
            None => Vec::new(),
        };
        if let Some(set) = &active.set {
            let quiet_since = match fields.get("last_activity_at") {
                Some(Value::Timestamp(t)) => *t,
                _ => w.existing.map_or(now, |r| r.created_at),
            };
            let scored = set.def.score(&Facts { fields: &facts_map, events: &events, now }, quiet_since);
            let previous = w.existing.and_then(|r| r.fields.get("lead_score")).and_then(Value::as_i64);
            changes.fields.insert("lead_score".into(), Value::Int(scored.score));
            changes.fields.insert("score_explanation".into(), Value::Json(scored.explanation_json()));
            if w.existing.is_none() || previous != Some(scored.score) {
                self.pending =
                    Some(Pending { score: scored.score, previous, reason: if w.existing.is_none() { "created" } else { "updated" } });
            }
        }
        if let Some(m) = &active.model {
            let x = corvid_core::scoring::lead_features(&facts_map, &events, now);
            changes.fields.insert("predictive_score".into(), Value::Int(m.score(&x)));
        }
        Ok(())
    }

    /// Leads: writes the score history. Activities: the lead they were logged against gets its
    /// last activity time and a new score.
    pub async fn after_write(&mut self, tx: &mut Tx, w: &Write<'_>, record: &Record, audit: &mut Vec<Change>) -> Result<()> {
        let company_id = w.tenant.company_id;
        match w.object.name.as_str() {
            "leads" => {
                if let Some(p) = self.pending.take() {
                    if record.fields.get("lead_score").and_then(Value::as_i64) == Some(p.score) {
                        match self.history.as_mut() {
                            Some(rows) if w.existing.is_none() => rows.push((record.id, now_micros(), p.score, p.previous, p.reason)),
                            _ => {
                                let set = self.active.as_ref().and_then(|a| a.set.as_ref()).map(|s| s.id);
                                write_history(tx, company_id, record.id, p.score, p.previous, p.reason, set).await?;
                            }
                        }
                    }
                }
            }
            "activities" => {
                let Some(active) = &self.active else { return Ok(()) };
                let mut leads: Vec<Uuid> = record.get("lead_id").and_then(Value::as_uuid).into_iter().collect();
                if let Some(old) = w.existing.and_then(|e| e.get("lead_id")).and_then(Value::as_uuid) {
                    if !leads.contains(&old) {
                        leads.push(old);
                    }
                }
                let what = record.text("activity_type").unwrap_or("activity").to_string();
                let reason = if w.existing.is_none() { format!("activity logged: {what}") } else { format!("activity changed: {what}") };
                for lead in leads {
                    audit.extend(rescore_lead(tx, company_id, active, lead, &reason).await?);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
