//! Consent and privacy.
//!
//! - The pipeline step: a change of `gdpr_consent` on a lead or contact (any write path)
//!   stamps `gdpr_consent_at`, applies the company's consent policy (source and consent-text
//!   version) and appends to the consent log; do-not-disturb (`dnd_status`) refuses call,
//!   email and WhatsApp tasks and outbound activities for that person.
//! - The consent log of a person, and consent decisions recorded explicitly.
//! - Data-subject rights: export everything about a person, and erase (anonymise) them across
//!   leads, contacts, activities and tasks while keeping the records and their figures.

use crate::audit::{self, Change, Redaction};
use crate::db::{Db, Row, Tx, Q};
use crate::listing::ListQuery;
use crate::pipeline::{Pipeline, Write};
use crate::records::Tenant;
use crate::{custom_fields, dedupe, new_id, settings, Result, StoreError};
use corvid_core::meta::ObjectDef;
use corvid_core::record::{to_json, Record};
use corvid_core::validate::Changes;
use corvid_core::value::{format_timestamp, now_micros};
use corvid_core::{FieldError, FieldKind, SqlType, Value};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Objects that are people: they carry consent and do-not-disturb.
pub const PERSON_OBJECTS: &[&str] = &["leads", "contacts"];
/// Task kinds and activity types that reach out to a person.
pub const OUTREACH_TYPES: &[&str] = &["call", "email", "whatsapp"];
/// Where a consent decision recorded through the consent API was captured.
pub const CONSENT_CHANNELS: &[&str] = &["web_form", "email", "phone", "whatsapp", "in_person", "paper", "import", "api", "other"];
/// Settings key of the company's consent policy.
pub const POLICY_KEY: &str = "consent.policy";

/// What a company requires when consent is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentPolicy {
    /// Consent given without a source (`gdpr_consent_source`) is refused.
    pub require_source: bool,
    /// Consent given without the version of the consent text is refused (unless
    /// `current_text_version` fills it in).
    pub require_version: bool,
    /// The consent text currently shown to people: fills `gdpr_consent_version` when a grant
    /// leaves it out.
    pub current_text_version: Option<String>,
}

impl ConsentPolicy {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        match &self.current_text_version {
            Some(v) if v.trim().is_empty() || v.chars().count() > 255 => {
                Err(vec![FieldError::new("current_text_version", "must be 1 to 255 characters, or null")])
            }
            _ => Ok(()),
        }
    }
}

/// The company's consent policy (nothing required when never set).
pub async fn consent_policy(db: &Db, company_id: Uuid) -> Result<ConsentPolicy> {
    Ok(settings::get(db, company_id, POLICY_KEY).await?.unwrap_or_default())
}

/// Changes the consent policy (audited as a settings change).
pub async fn set_consent_policy(db: &Db, ctx: &audit::AuditCtx, policy: &ConsentPolicy) -> Result<()> {
    policy.validate().map_err(StoreError::Invalid)?;
    settings::set(db, ctx, POLICY_KEY, policy).await
}

async fn policy_in(tx: &mut Tx, company_id: Uuid) -> Result<ConsentPolicy> {
    match settings::get_in::<ConsentPolicy>(tx, company_id, POLICY_KEY).await {
        Ok(p) => Ok(p.unwrap_or_default()),
        // A value this version cannot read must not stop every write of the company.
        Err(StoreError::Corrupt(e)) => {
            tracing::warn!(company = %company_id, error = %e, "unreadable consent policy; requiring nothing");
            Ok(ConsentPolicy::default())
        }
        Err(e) => Err(e),
    }
}

fn is_person(object: &str) -> bool {
    PERSON_OBJECTS.contains(&object)
}

/// A consent decision recorded through the consent API: where it was captured and a note.
#[derive(Debug, Clone)]
pub struct Explicit {
    pub channel: String,
    pub note: Option<String>,
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Person,
    Task,
    Activity,
    Other,
}

/// The step's state for one transaction or import batch.
#[derive(Debug)]
pub struct Step {
    kind: Kind,
    policy: ConsentPolicy,
    /// Do-not-disturb people seen in this batch: (object, id) → their number when DND.
    dnd: HashMap<(String, Uuid), Option<String>>,
    /// Set by the consent API before its write; the log entry then carries its channel.
    pub explicit: Option<Explicit>,
    /// The log entry the last write appended, if any.
    pub logged: Option<ConsentEntry>,
}

impl Step {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Step> {
        let kind = match object.name.as_str() {
            o if is_person(o) => Kind::Person,
            "tasks" => Kind::Task,
            "activities" => Kind::Activity,
            _ => Kind::Other,
        };
        let policy = if kind == Kind::Person { policy_in(tx, tenant.company_id).await? } else { ConsentPolicy::default() };
        Ok(Step { kind, policy, dnd: HashMap::new(), explicit: None, logged: None })
    }

    pub async fn before_write(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &mut Changes, _audit: &mut Vec<Change>) -> Result<()> {
        match self.kind {
            Kind::Person => self.consent_before(w, changes),
            Kind::Task => self.dnd_task(tx, w, changes).await,
            Kind::Activity => self.dnd_activity(tx, w, changes).await,
            Kind::Other => Ok(()),
        }
    }

    pub async fn after_write(&mut self, tx: &mut Tx, w: &Write<'_>, record: &Record, audit: &mut Vec<Change>) -> Result<()> {
        if self.kind != Kind::Person {
            return Ok(());
        }
        let was = w.existing.is_some_and(|r| consent_of(r.fields.get("gdpr_consent")));
        let is = consent_of(record.fields.get("gdpr_consent"));
        let changed = if w.existing.is_some() { was != is } else { is };
        if !changed && self.explicit.is_none() {
            return Ok(());
        }
        let (channel, note, ip) = match &self.explicit {
            Some(e) => (e.channel.clone(), e.note.clone(), e.ip.clone().or_else(|| w.tenant.audit.ip.clone())),
            None => (w.channel.to_string(), None, w.tenant.audit.ip.clone()),
        };
        let entry = ConsentEntry {
            id: new_id(),
            object: w.object.name.clone(),
            record_id: record.id,
            at: format_timestamp(&now_micros()),
            given: is,
            decision: decision(is).into(),
            channel,
            source: record.text("gdpr_consent_source").map(str::to_string),
            text_version: record.text("gdpr_consent_version").map(str::to_string),
            actor_id: Some(w.tenant.user_id),
            ip,
            note,
        };
        insert_entry(tx, w.tenant.company_id, &entry).await?;
        audit.push(entry.audit_change());
        self.logged = Some(entry);
        Ok(())
    }

    /// Stamps the time of a consent change and applies the consent policy.
    fn consent_before(&mut self, w: &Write<'_>, changes: &mut Changes) -> Result<()> {
        self.logged = None;
        let Some(new) = changes.fields.get("gdpr_consent") else { return Ok(()) };
        let given = consent_of(Some(new));
        let was = w.existing.is_some_and(|r| consent_of(r.fields.get("gdpr_consent")));
        let changed = if w.existing.is_some() { given != was } else { given };
        // A grant recorded through the consent API re-stamps even when consent already stood
        // (for example agreeing to a new version of the text).
        if !(changed || given && self.explicit.is_some()) {
            return Ok(());
        }
        let now = now_micros();
        if !given {
            changes.fields.insert("gdpr_consent_at".into(), Value::Null(SqlType::Timestamp));
            return Ok(());
        }
        changes.fields.insert("gdpr_consent_at".into(), Value::Timestamp(now));
        // The value the record will have: this write's, else the stored one.
        let current = |name: &str, changes: &Changes| -> Option<Value> {
            match changes.fields.get(name) {
                Some(v) => Some(v.clone()),
                None => w.existing.and_then(|r| r.get(name).cloned()),
            }
            .filter(|v| !v.is_null())
        };
        let mut errors = Vec::new();
        if current("gdpr_consent_version", changes).is_none() {
            match &self.policy.current_text_version {
                Some(v) => {
                    changes.fields.insert("gdpr_consent_version".into(), Value::Text(v.clone()));
                }
                None if self.policy.require_version => errors.push(FieldError::new(
                    "gdpr_consent_version",
                    "is required when consent is given: the version of the consent text the person agreed to",
                )),
                None => {}
            }
        }
        if current("gdpr_consent_source", changes).is_none() && self.policy.require_source {
            errors.push(FieldError::new(
                "gdpr_consent_source",
                "is required when consent is given: where the person gave it (web form, call, event …)",
            ));
        }
        if current("opt_in_date", changes).is_none() && w.object.field("opt_in_date").is_some() {
            changes.fields.insert("opt_in_date".into(), Value::Timestamp(now));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid(errors))
        }
    }

    async fn dnd_task(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &Changes) -> Result<()> {
        if !touches(w, changes, &["task_type", "related_object", "related_id"]) {
            return Ok(());
        }
        let kind = merged(w, changes, "task_type");
        let Some(kind) = kind.as_ref().and_then(Value::as_str).filter(|k| OUTREACH_TYPES.contains(k)) else { return Ok(()) };
        let related = merged(w, changes, "related_object");
        let Some(object) = related.as_ref().and_then(Value::as_str).filter(|o| is_person(o)) else { return Ok(()) };
        let Some(id) = merged(w, changes, "related_id").as_ref().and_then(Value::as_uuid) else { return Ok(()) };
        if let Some(number) = self.dnd_person(tx, w.tenant, object, id).await? {
            return Err(StoreError::Invalid(vec![FieldError::new(
                "related_id",
                format!("is {number}, who is do-not-disturb (dnd_status): {} tasks for this person are not allowed", label(kind)),
            )]));
        }
        Ok(())
    }

    async fn dnd_activity(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &Changes) -> Result<()> {
        if !touches(w, changes, &["activity_type", "direction", "lead_id", "contact_id"]) {
            return Ok(());
        }
        let kind = merged(w, changes, "activity_type");
        let Some(kind) = kind.as_ref().and_then(Value::as_str).filter(|k| OUTREACH_TYPES.contains(k)) else { return Ok(()) };
        // Empty means outbound: someone logging a call or an email usually made or sent it.
        if merged(w, changes, "direction").as_ref().and_then(Value::as_str) == Some("inbound") {
            return Ok(());
        }
        for (field, object) in [("lead_id", "leads"), ("contact_id", "contacts")] {
            let Some(id) = merged(w, changes, field).as_ref().and_then(Value::as_uuid) else { continue };
            if let Some(number) = self.dnd_person(tx, w.tenant, object, id).await? {
                return Err(StoreError::Invalid(vec![FieldError::new(
                    field,
                    format!(
                        "is {number}, who is do-not-disturb (dnd_status): outbound {} activities are not allowed (log inbound contact with direction \"inbound\", or a note)",
                        label(kind)
                    ),
                )]));
            }
        }
        Ok(())
    }

    /// The person's number when they are do-not-disturb; read once per batch.
    async fn dnd_person(&mut self, tx: &mut Tx, tenant: &Tenant, object: &str, id: Uuid) -> Result<Option<String>> {
        let key = (object.to_string(), id);
        if let Some(hit) = self.dnd.get(&key) {
            return Ok(hit.clone());
        }
        // `object` is one of PERSON_OBJECTS, never user text.
        let q = Q::new(format!("SELECT number, dnd_status FROM {object} WHERE company_id = $1 AND id = $2"))
            .bind(Value::Uuid(tenant.company_id))
            .bind(Value::Uuid(id));
        let row = tx.fetch_one(&q, &[SqlType::Text, SqlType::Bool]).await?;
        let hit = row.filter(|r| r.bool(1) == Some(true)).map(|r| r.text(0).unwrap_or_default());
        self.dnd.insert(key, hit.clone());
        Ok(hit)
    }
}

fn consent_of(v: Option<&Value>) -> bool {
    matches!(v, Some(Value::Bool(true)))
}

fn decision(given: bool) -> &'static str {
    if given {
        "given"
    } else {
        "withdrawn"
    }
}

fn label(kind: &str) -> &str {
    match kind {
        "call" => "call",
        "email" => "email",
        "whatsapp" => "WhatsApp",
        other => other,
    }
}

/// A field's value after the write: the change, else the stored value.
fn merged(w: &Write<'_>, changes: &Changes, name: &str) -> Option<Value> {
    match changes.fields.get(name) {
        Some(v) => Some(v.clone()),
        None => w.existing.and_then(|r| r.fields.get(name).cloned()),
    }
    .filter(|v| !v.is_null())
}

/// Whether a write creates the record or really changes one of `fields`.
fn touches(w: &Write<'_>, changes: &Changes, fields: &[&str]) -> bool {
    match w.existing {
        None => true,
        Some(r) => fields.iter().any(|f| changes.fields.get(*f).is_some_and(|v| r.fields.get(*f) != Some(v))),
    }
}

// ---------------------------------------------------------------------------------------
// The consent log
// ---------------------------------------------------------------------------------------

/// One consent decision about a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentEntry {
    pub id: Uuid,
    pub object: String,
    pub record_id: Uuid,
    pub at: String,
    pub given: bool,
    /// "given" or "withdrawn".
    pub decision: String,
    pub channel: String,
    pub source: Option<String>,
    pub text_version: Option<String>,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub note: Option<String>,
}

impl ConsentEntry {
    fn audit_change(&self) -> Change {
        let mut what = format!("{} via {}", self.decision, self.channel);
        if let Some(v) = &self.text_version {
            what.push_str(&format!(", text version {v}"));
        }
        Change {
            object: self.object.clone(),
            record_id: Some(self.record_id),
            action: "consent".into(),
            field: Some("gdpr_consent".into()),
            old: None,
            new: Some(what),
        }
    }
}

fn opt_text(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null(SqlType::Text), Value::Text)
}

async fn insert_entry(tx: &mut Tx, company_id: Uuid, e: &ConsentEntry) -> Result<()> {
    let at = corvid_core::validate::parse_timestamp(&e.at).unwrap_or_else(now_micros);
    tx.execute(
        &Q::new(
            "INSERT INTO consent_log (id, company_id, object, record_id, at, given, channel, source, text_version, actor_id, ip, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(Value::Uuid(e.id))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(e.object.clone()))
        .bind(Value::Uuid(e.record_id))
        .bind(Value::Timestamp(at))
        .bind(Value::Bool(e.given))
        .bind(Value::Text(e.channel.clone()))
        .bind(opt_text(&e.source))
        .bind(opt_text(&e.text_version))
        .bind(e.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
        .bind(opt_text(&e.ip))
        .bind(opt_text(&e.note)),
    )
    .await?;
    Ok(())
}

const ENTRY_TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
    SqlType::Bool,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
];

fn to_entry(r: &Row) -> ConsentEntry {
    let given = r.bool(4).unwrap_or(false);
    ConsentEntry {
        id: r.uuid(0).unwrap_or_default(),
        object: r.text(1).unwrap_or_default(),
        record_id: r.uuid(2).unwrap_or_default(),
        at: r.timestamp(3).map(|t| format_timestamp(&t)).unwrap_or_default(),
        given,
        decision: decision(given).into(),
        channel: r.text(5).unwrap_or_default(),
        source: r.text(6),
        text_version: r.text(7),
        actor_id: r.uuid(8),
        ip: r.text(9),
        note: r.text(10),
    }
}

fn person_def(object: &'static ObjectDef) -> Result<&'static ObjectDef> {
    if is_person(&object.name) {
        Ok(object)
    } else {
        Err(StoreError::NotFound)
    }
}

async fn entries(db: &Db, company_id: Uuid, object: &str, id: Uuid) -> Result<Vec<ConsentEntry>> {
    let q = Q::new(
        "SELECT id, object, record_id, at, given, channel, source, text_version, actor_id, ip, note FROM consent_log \
         WHERE company_id = $1 AND object = $2 AND record_id = $3 ORDER BY at, id LIMIT 10000",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Text(object.into()))
    .bind(Value::Uuid(id));
    Ok(db.fetch(&q, ENTRY_TYPES).await?.iter().map(to_entry).collect())
}

/// The consent log of a lead or contact, oldest first (404 for another company's record).
pub async fn consent_log(db: &Db, tenant: &Tenant, object: &'static ObjectDef, id: Uuid) -> Result<(Record, Vec<ConsentEntry>)> {
    let object = person_def(object)?;
    let rec = tenant.records(db, object).get(id).await?;
    Ok((rec, entries(db, tenant.company_id, &object.name, id).await?))
}

/// A consent decision sent to the consent API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    /// true: consent given; false: withdrawn.
    pub consent: bool,
    pub channel: String,
    pub source: Option<String>,
    pub text_version: Option<String>,
    pub note: Option<String>,
    /// The person's IP address when the decision came from them online (default: the caller's).
    pub ip: Option<String>,
}

fn clean(field: &str, v: &Option<String>, max: usize, errors: &mut Vec<FieldError>) -> Option<String> {
    let s = v.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
    if s.chars().count() > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
        return None;
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        errors.push(FieldError::new(field, "must not contain control characters"));
        return None;
    }
    Some(s.to_string())
}

/// Records a consent decision: sets the person's consent fields through the write pipeline
/// (policy, stamp, audit) and appends to the log, also when the decision repeats the current
/// state. Returns the record and the log entry.
pub async fn record_consent(
    db: &Db,
    tenant: &Tenant,
    object: &'static ObjectDef,
    id: Uuid,
    input: &ConsentInput,
) -> Result<(Record, ConsentEntry)> {
    let object = person_def(object)?;
    let mut errors = Vec::new();
    if !CONSENT_CHANNELS.contains(&input.channel.as_str()) {
        errors.push(FieldError::new("channel", format!("must be one of {}", CONSENT_CHANNELS.join(", "))));
    }
    let source = clean("source", &input.source, 255, &mut errors);
    let version = clean("text_version", &input.text_version, 255, &mut errors);
    let note = clean("note", &input.note, 2000, &mut errors);
    let ip = match input.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<std::net::IpAddr>() {
            Ok(a) => Some(a.to_string()),
            Err(_) => {
                errors.push(FieldError::new("ip", "must be an IPv4 or IPv6 address"));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    let records = tenant.records(db, object);
    let custom = records.custom_fields().await?;
    let mut tx = db.begin().await?;
    let mut pipeline: Pipeline = records.pipeline(&mut tx).await?;
    pipeline.privacy.explicit = Some(Explicit { channel: input.channel.clone(), note, ip });
    let mut body = Map::new();
    body.insert("gdpr_consent".into(), Json::Bool(input.consent));
    if let Some(s) = source {
        body.insert("gdpr_consent_source".into(), Json::String(s));
    }
    if let Some(v) = version {
        body.insert("gdpr_consent_version".into(), Json::String(v));
    }
    let rec = records.update_in(&mut tx, &custom, &mut pipeline, id, &body, "interactive").await?;
    let entry = match pipeline.privacy.logged.take() {
        Some(e) => e,
        None => {
            // Nothing on the record changed (the decision repeats the current state): the log
            // still records that it was made.
            let explicit = pipeline.privacy.explicit.clone().unwrap_or(Explicit { channel: input.channel.clone(), note: None, ip: None });
            let e = ConsentEntry {
                id: new_id(),
                object: object.name.clone(),
                record_id: rec.id,
                at: format_timestamp(&now_micros()),
                given: input.consent,
                decision: decision(input.consent).into(),
                channel: explicit.channel,
                source: rec.text("gdpr_consent_source").map(str::to_string),
                text_version: rec.text("gdpr_consent_version").map(str::to_string),
                actor_id: Some(tenant.user_id),
                ip: explicit.ip.or_else(|| tenant.audit.ip.clone()),
                note: explicit.note,
            };
            insert_entry(&mut tx, tenant.company_id, &e).await?;
            audit::append(&mut tx, &tenant.audit, &[e.audit_change()]).await?;
            e
        }
    };
    pipeline.finish(&mut tx).await?;
    tx.commit().await?;
    Ok((rec, entry))
}

// ---------------------------------------------------------------------------------------
// Data-subject export
// ---------------------------------------------------------------------------------------

/// Most records of one kind an export lists (pages of 200).
const EXPORT_MAX: usize = 10_000;

/// Every record of `object` matching the filter pairs, paging through the list API's query.
async fn all_matching(db: &Db, tenant: &Tenant, object: &'static ObjectDef, filter: &[(String, String)]) -> Result<Vec<Json>> {
    let records = tenant.records(db, object);
    let mut out = Vec::new();
    let mut pairs: Vec<(String, String)> = filter.to_vec();
    pairs.push(("limit".into(), "200".into()));
    let mut lq = ListQuery::from_pairs(&pairs).map_err(StoreError::Invalid)?;
    loop {
        let (page, next, custom) = records.list(&lq).await?;
        out.extend(page.iter().map(|r| to_json(object, &custom, r, None)));
        match next {
            Some(c) if out.len() < EXPORT_MAX => lq.cursor = Some(c),
            _ => break,
        }
    }
    Ok(out)
}

fn def(name: &str) -> Result<&'static ObjectDef> {
    corvid_core::object(name).ok_or_else(|| StoreError::Config(format!("object {name} is not declared")))
}

fn pair(k: &str, v: impl ToString) -> Vec<(String, String)> {
    vec![(k.to_string(), v.to_string())]
}

/// Everything Corvid holds about a person, as one JSON document: the record, its linked
/// activities, tasks and deals, the consent log, the record's audit history, and the other
/// leads and contacts with the same email address or phone number.
pub async fn export_subject(db: &Db, tenant: &Tenant, object: &'static ObjectDef, id: Uuid) -> Result<Json> {
    let object = person_def(object)?;
    let records = tenant.records(db, object);
    let rec = records.get(id).await?;
    let custom = records.custom_fields().await?;
    let link = if object.name == "leads" { "lead_id" } else { "contact_id" };
    let activities = all_matching(db, tenant, def("activities")?, &pair(&format!("filter[{link}]"), id)).await?;
    let mut task_filter = pair("filter[related_object]", &object.name);
    task_filter.extend(pair("filter[related_id]", id));
    let tasks = all_matching(db, tenant, def("tasks")?, &task_filter).await?;
    let deal_link = if object.name == "leads" { "lead_id" } else { "primary_contact_id" };
    let deals = all_matching(db, tenant, def("deals")?, &pair(&format!("filter[{deal_link}]"), id)).await?;
    let consent = entries(db, tenant.company_id, &object.name, id).await?;
    let mut history = Vec::new();
    let mut f = audit::AuditFilter { object: Some(object.name.clone()), record_id: Some(id), limit: 1000, ..Default::default() };
    loop {
        let rows = audit::list(db, tenant.company_id, &f).await?;
        let done = rows.len() < f.limit;
        f.before_seq = rows.last().map(|r| r.seq);
        history.extend(rows);
        if done || history.len() >= EXPORT_MAX {
            break;
        }
    }
    history.reverse();
    let mut matches = Map::new();
    for person in PERSON_OBJECTS {
        let pdef = def(person)?;
        let mut found: BTreeMap<String, Json> = BTreeMap::new();
        for key in ["email", "phone"] {
            let Some(v) = rec.text(key) else { continue };
            for m in all_matching(db, tenant, pdef, &pair(&format!("filter[{key}]"), v)).await? {
                let mid = m["id"].as_str().unwrap_or_default().to_string();
                if !(pdef.name == object.name && mid == id.to_string()) {
                    found.insert(mid, m);
                }
            }
        }
        matches.insert(person.to_string(), Json::Array(found.into_values().collect()));
    }
    let subject = json!({"object": object.name, "id": id, "number": rec.number});
    // Who exported a person's data is itself worth knowing.
    let mut tx = db.begin().await?;
    let change =
        Change { object: object.name.clone(), record_id: Some(id), action: "privacy_export".into(), field: None, old: None, new: None };
    audit::append(&mut tx, &tenant.audit, &[change]).await?;
    tx.commit().await?;
    Ok(json!({
        "subject": subject,
        "exported_at": format_timestamp(&now_micros()),
        "record": to_json(object, &custom, &rec, None),
        "activities": activities,
        "tasks": tasks,
        "deals": deals,
        "consent_log": consent,
        "audit_history": history,
        "matching_records": matches,
    }))
}

// ---------------------------------------------------------------------------------------
// Erasure
// ---------------------------------------------------------------------------------------

/// Personal fields per object: replaced (required ones) or emptied on erasure. Everything
/// else (status, source, stage, scores, amounts, dates, owners, links) stays, so reports keep
/// their figures.
fn personal_fields(object: &str) -> &'static [&'static str] {
    match object {
        "leads" => &[
            "first_name",
            "last_name",
            "email",
            "phone",
            "job_title",
            "city",
            "state",
            "notes",
            "bant_budget_notes",
            "bant_authority_notes",
            "bant_need_notes",
            "bant_timeline_notes",
            "meddicc_metrics",
            "meddicc_economic_buyer",
            "meddicc_decision_criteria",
            "meddicc_decision_process",
            "meddicc_identify_pain",
            "meddicc_champion",
            "meddicc_competition",
            "qualification_reason",
            "validation_reasons",
            "spam_reasons",
            "duplicate_reasons",
            "score_explanation",
            "gdpr_consent_source",
        ],
        "contacts" => {
            &["first_name", "last_name", "full_name", "email", "phone", "job_title", "department", "language", "gdpr_consent_source"]
        }
        "activities" | "tasks" => &["title", "description"],
        _ => &[],
    }
}

/// What an erased field becomes: required text gets a neutral placeholder, the rest NULL.
fn placeholder(object: &str, field: &str, kind: Option<&str>) -> Option<String> {
    match (object, field) {
        ("leads" | "contacts", "last_name" | "full_name") => Some("Erased".into()),
        ("activities", "title") => {
            let t = kind.and_then(|k| def("activities").ok()?.field("activity_type")?.kind.options().iter().find(|o| o.value == k));
            Some(format!("{} (erased)", t.map_or("Activity", |o| o.label.as_str())))
        }
        ("tasks", "title") => Some("Task (erased)".into()),
        _ => None,
    }
}

/// Custom fields that may hold personal data (free text and contact details).
fn personal_custom(fields: &[corvid_core::Field]) -> Vec<String> {
    fields
        .iter()
        .filter(|f| {
            matches!(f.kind, FieldKind::Text { .. } | FieldKind::LongText { .. } | FieldKind::Email | FieldKind::Phone | FieldKind::Url)
        })
        .map(|f| f.name.clone())
        .collect()
}

/// One anonymised record.
#[derive(Debug, Clone, Serialize)]
pub struct Erased {
    pub object: String,
    pub id: Uuid,
    pub number: String,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErasureReport {
    pub subject: Json,
    /// Leads and contacts anonymised (the subject and those with the same email or phone).
    pub people: Vec<Erased>,
    pub activities: usize,
    pub tasks: usize,
    pub audit: Redaction,
    pub consent_entries: u64,
    /// Qualification history entries whose free text was removed.
    pub qualification_entries: u64,
}

/// Anonymises a person in one transaction: the lead or contact, every lead and contact with
/// the same email address or phone number (and the contact a lead was converted to), and the
/// free text of their activities and tasks. Records, links, statuses and amounts stay. The
/// audit trail gets an `erase` row per erased field, without values, and earlier rows' values
/// of those fields are redacted (the chain still verifies). Admins only.
pub async fn erase_subject(db: &Db, tenant: &Tenant, object: &'static ObjectDef, id: Uuid) -> Result<ErasureReport> {
    let object = person_def(object)?;
    if !tenant.role.is_admin() {
        return Err(StoreError::Forbidden("only Admins can erase personal data".into()));
    }
    let mut customs: HashMap<&str, Vec<String>> = HashMap::new();
    for name in ["leads", "contacts", "activities", "tasks"] {
        customs.insert(name, personal_custom(&custom_fields::list(db, tenant.company_id, name).await?));
    }
    let mut tx = db.begin().await?;
    let cid = Value::Uuid(tenant.company_id);
    let lock = tx.for_update();
    let q = Q::new(format!("SELECT number, email, phone FROM {} WHERE company_id = $1 AND id = $2{lock}", object.name))
        .bind(cid.clone())
        .bind(Value::Uuid(id));
    let subject = tx.fetch_one(&q, &[SqlType::Text, SqlType::Text, SqlType::Text]).await?.ok_or(StoreError::NotFound)?;
    let number = subject.text(0).unwrap_or_default();
    let mut emails: BTreeSet<String> = BTreeSet::new();
    if let Some(e) = subject.text(1) {
        emails.insert(e.to_lowercase());
        emails.insert(e);
    }
    let phones: Vec<String> = subject.text(2).into_iter().collect();

    // The people to anonymise.
    let mut people: BTreeMap<&'static str, BTreeSet<Uuid>> = BTreeMap::new();
    for person in PERSON_OBJECTS {
        let mut q = Q::new(format!("SELECT id FROM {person} WHERE company_id = "));
        let p = q.param(cid.clone());
        q.push(&p);
        let mut ors = Vec::new();
        if *person == object.name.as_str() {
            ors.push(format!("id = {}", q.param(Value::Uuid(id))));
        }
        if !emails.is_empty() {
            let ps: Vec<String> = emails.iter().map(|e| q.param(Value::Text(e.clone()))).collect();
            ors.push(format!("email IN ({})", ps.join(", ")));
        }
        if !phones.is_empty() {
            let ps: Vec<String> = phones.iter().map(|e| q.param(Value::Text(e.clone()))).collect();
            ors.push(format!("phone IN ({})", ps.join(", ")));
        }
        // A converted lead and its contact are the same person.
        match (object.name.as_str(), *person) {
            ("leads", "contacts") => ors.push(format!(
                "id IN (SELECT converted_contact_id FROM leads WHERE company_id = {p} AND id = {})",
                q.param(Value::Uuid(id))
            )),
            ("contacts", "leads") => ors.push(format!("converted_contact_id = {}", q.param(Value::Uuid(id)))),
            _ => {}
        }
        if ors.is_empty() {
            continue;
        }
        q.push(&format!(" AND ({})", ors.join(" OR ")));
        let ids: BTreeSet<Uuid> = tx.fetch(&q, &[SqlType::Uuid]).await?.iter().filter_map(|r| r.uuid(0)).collect();
        people.insert(person, ids);
    }

    let mut audit_rows = Vec::new();
    let mut erased_people = Vec::new();
    let mut redaction = Redaction::default();
    let lead_ids: Vec<Uuid> = people.get("leads").map(|s| s.iter().copied().collect()).unwrap_or_default();
    let contact_ids: Vec<Uuid> = people.get("contacts").map(|s| s.iter().copied().collect()).unwrap_or_default();
    for (person, ids) in &people {
        let ids: Vec<Uuid> = ids.iter().copied().collect();
        let custom = customs.get(person).cloned().unwrap_or_default();
        let (done, rows, red) = erase_rows(&mut tx, tenant, def(person)?, &ids, &custom).await?;
        erased_people.extend(done);
        audit_rows.extend(rows);
        redaction.redacted += red.redacted;
        redaction.not_redactable += red.not_redactable;
    }

    // Activities and tasks about them.
    let mut linked: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for (table, conds) in [
        ("activities", vec![("lead_id", None, &lead_ids), ("contact_id", None, &contact_ids)]),
        ("tasks", vec![("related_id", Some("leads"), &lead_ids), ("related_id", Some("contacts"), &contact_ids)]),
    ] {
        let mut found = BTreeSet::new();
        for (col, related, ids) in conds {
            for chunk in ids.chunks(200) {
                let mut q = Q::new(format!("SELECT id FROM {table} WHERE company_id = "));
                let p = q.param(cid.clone());
                q.push(&p);
                if let Some(r) = related {
                    let p = q.param(Value::Text(r.into()));
                    q.push(&format!(" AND related_object = {p}"));
                }
                let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
                q.push(&format!(" AND {col} IN ({})", ps.join(", ")));
                found.extend(tx.fetch(&q, &[SqlType::Uuid]).await?.iter().filter_map(|r| r.uuid(0)));
            }
        }
        linked.insert(table, found.into_iter().collect());
    }
    let mut counts = HashMap::new();
    for (table, ids) in &linked {
        let custom = customs.get(table).cloned().unwrap_or_default();
        let (done, rows, red) = erase_rows(&mut tx, tenant, def(table)?, ids, &custom).await?;
        counts.insert(*table, done.len());
        audit_rows.extend(rows);
        redaction.redacted += red.redacted;
        redaction.not_redactable += red.not_redactable;
    }

    // The consent log keeps the decisions, not where they came from.
    let mut consent_entries = 0;
    for (person, ids) in &people {
        for chunk in ids.iter().copied().collect::<Vec<_>>().chunks(200) {
            let mut q = Q::new("UPDATE consent_log SET ip = NULL, note = NULL, source = NULL WHERE company_id = ");
            let p = q.param(cid.clone());
            q.push(&p);
            let p = q.param(Value::Text(person.to_string()));
            let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
            q.push(&format!(
                " AND object = {p} AND record_id IN ({}) AND (ip IS NOT NULL OR note IS NOT NULL OR source IS NOT NULL)",
                ps.join(", ")
            ));
            consent_entries += tx.execute(&q).await?;
        }
    }
    let qualification_entries = erase_qualification_notes(&mut tx, tenant, &lead_ids).await?;
    // Duplicate-detection keys are derived from names, emails and phones.
    let all_people: Vec<Uuid> = lead_ids.iter().chain(&contact_ids).copied().collect();
    dedupe::forget(&mut tx, tenant.company_id, &all_people).await?;

    audit_rows.push(Change {
        object: object.name.clone(),
        record_id: Some(id),
        action: "erase".into(),
        field: None,
        old: None,
        new: Some(format!(
            "{} people, {} activities, {} tasks anonymised",
            erased_people.len(),
            counts.get("activities").copied().unwrap_or(0),
            counts.get("tasks").copied().unwrap_or(0)
        )),
    });
    audit::append(&mut tx, &tenant.audit, &audit_rows).await?;
    tx.commit().await?;
    tracing::info!(company = %tenant.company_id, object = %object.name, record = %id, people = erased_people.len(), "personal data erased");
    Ok(ErasureReport {
        subject: json!({"object": object.name, "id": id, "number": number}),
        people: erased_people,
        activities: counts.get("activities").copied().unwrap_or(0),
        tasks: counts.get("tasks").copied().unwrap_or(0),
        audit: redaction,
        consent_entries,
        qualification_entries,
    })
}

/// Whether a table exists: tables of other features are handled only when they are there.
async fn table_exists(tx: &mut Tx, table: &str) -> Result<bool> {
    let q = match tx.backend() {
        crate::db::Backend::Sqlite => Q::new("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1"),
        crate::db::Backend::Postgres => {
            Q::new("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1")
        }
    }
    .bind(Value::Text(table.into()));
    Ok(tx.fetch_one(&q, &[SqlType::Int]).await?.is_some())
}

/// Qualification history keeps the scores and outcomes of the leads, not the free text
/// (BANT notes, MEDDICC answers, reasons), which may describe the person; engagement events
/// reported from outside lose their details.
async fn erase_qualification_notes(tx: &mut Tx, tenant: &Tenant, lead_ids: &[Uuid]) -> Result<u64> {
    if lead_ids.is_empty() {
        return Ok(0);
    }
    // Engagement reported from outside keeps its kind and time, not its details.
    if table_exists(tx, "lead_engagement_events").await? {
        for chunk in lead_ids.chunks(200) {
            let mut q = Q::new("UPDATE lead_engagement_events SET details = NULL WHERE company_id = ");
            let p = q.param(Value::Uuid(tenant.company_id));
            q.push(&p);
            let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
            q.push(&format!(" AND lead_id IN ({}) AND details IS NOT NULL", ps.join(", ")));
            tx.execute(&q).await?;
        }
    }
    if !table_exists(tx, "lead_qualifications").await? {
        return Ok(0);
    }
    let mut changed = 0;
    for chunk in lead_ids.chunks(200) {
        let mut q = Q::new("SELECT id, answers, reason FROM lead_qualifications WHERE company_id = ");
        let p = q.param(Value::Uuid(tenant.company_id));
        q.push(&p);
        let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
        q.push(&format!(" AND lead_id IN ({})", ps.join(", ")));
        for r in tx.fetch(&q, &[SqlType::Uuid, SqlType::Json, SqlType::Text]).await? {
            let answers = r.json(1).and_then(|j| j.as_object().cloned()).unwrap_or_default();
            let kept: Map<String, Json> =
                answers.iter().filter(|(_, v)| v.is_number() || v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
            if kept.len() == answers.len() && r.text(2).is_none() {
                continue;
            }
            tx.execute(
                &Q::new("UPDATE lead_qualifications SET answers = $1, reason = NULL WHERE company_id = $2 AND id = $3")
                    .bind(Value::Json(Json::Object(kept)))
                    .bind(Value::Uuid(tenant.company_id))
                    .bind(r.uuid(0).map_or(Value::Null(SqlType::Uuid), Value::Uuid)),
            )
            .await?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Anonymises the personal fields of some records of one object; returns what was erased,
/// the audit rows (field names only) and what happened to older audit values.
async fn erase_rows(
    tx: &mut Tx,
    tenant: &Tenant,
    object: &'static ObjectDef,
    ids: &[Uuid],
    custom_personal: &[String],
) -> Result<(Vec<Erased>, Vec<Change>, Redaction)> {
    let fields: Vec<&corvid_core::Field> = personal_fields(&object.name).iter().filter_map(|f| object.field(f)).collect();
    let kind_col = object.field("activity_type").map(|_| "activity_type");
    let mut done = Vec::new();
    let mut audit_rows = Vec::new();
    let now = now_micros();
    for chunk in ids.chunks(200) {
        let mut cols = vec!["id".to_string(), "number".into(), "custom".into(), kind_col.unwrap_or("NULL").to_string()];
        let mut types = vec![SqlType::Uuid, SqlType::Text, SqlType::Json, SqlType::Text];
        for f in &fields {
            cols.push(f.name.clone());
            types.push(f.kind.sql_type());
        }
        let mut q = Q::new(format!("SELECT {} FROM {} WHERE company_id = ", cols.join(", "), object.name));
        let p = q.param(Value::Uuid(tenant.company_id));
        q.push(&p);
        let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
        q.push(&format!(" AND id IN ({})", ps.join(", ")));
        for row in tx.fetch(&q, &types).await? {
            let Some(rid) = row.uuid(0) else { continue };
            let kind = row.text(3);
            let mut q = Q::new(String::new());
            let mut sets = Vec::new();
            let mut erased = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let current = row.0.get(4 + i).cloned().unwrap_or(Value::Null(f.kind.sql_type()));
                let target = placeholder(&object.name, &f.name, kind.as_deref());
                let new = target.clone().map_or(Value::Null(f.kind.sql_type()), Value::Text);
                if current.is_null() || current == new {
                    continue;
                }
                sets.push(format!("{} = {}", f.name, q.param(new)));
                erased.push(f.name.clone());
            }
            let mut custom = row.json(2).and_then(|j| j.as_object().cloned()).unwrap_or_default();
            let before = custom.len();
            custom.retain(|k, v| !custom_personal.contains(k) || v.is_null());
            if custom.len() != before {
                let removed: Vec<String> = row
                    .json(2)
                    .and_then(|j| j.as_object().cloned())
                    .unwrap_or_default()
                    .keys()
                    .filter(|k| !custom.contains_key(*k))
                    .cloned()
                    .collect();
                erased.extend(removed);
                sets.push(format!("custom = {}", q.param(Value::Json(Json::Object(custom)))));
            }
            if sets.is_empty() {
                continue;
            }
            let pn = q.param(Value::Timestamp(now));
            let pu = q.param(Value::Uuid(tenant.user_id));
            let pc = q.param(Value::Uuid(tenant.company_id));
            let pi = q.param(Value::Uuid(rid));
            q.sql = format!(
                "UPDATE {} SET {}, version = version + 1, updated_at = {pn}, updated_by = {pu} WHERE company_id = {pc} AND id = {pi}",
                object.name,
                sets.join(", ")
            );
            tx.execute(&q).await?;
            for f in &erased {
                audit_rows.push(Change {
                    object: object.name.clone(),
                    record_id: Some(rid),
                    action: "erase".into(),
                    field: Some(f.clone()),
                    old: None,
                    new: None,
                });
            }
            done.push(Erased { object: object.name.clone(), id: rid, number: row.text(1).unwrap_or_default(), fields: erased });
        }
    }
    // Earlier audit rows of these records keep no personal values either.
    let mut names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
    names.extend(custom_personal.iter().cloned());
    let red = audit::redact(tx, tenant.company_id, &object.name, ids, &names).await?;
    Ok((done, audit_rows, red))
}
