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
use chrono::{DateTime, Utc};
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
// Consent across a conversion
// ---------------------------------------------------------------------------------------

/// A person's current consent decision: given or withdrawn, and when it was made. None when
/// the person never decided (no consent and no logged withdrawal).
async fn decision_of(tx: &mut Tx, company_id: Uuid, object: &str, rec: &Record) -> Result<Option<(bool, Option<DateTime<Utc>>)>> {
    if consent_of(rec.get("gdpr_consent")) {
        let at = match rec.get("gdpr_consent_at") {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        };
        return Ok(Some((true, at)));
    }
    let q = Q::new(
        "SELECT at FROM consent_log WHERE company_id = $1 AND object = $2 AND record_id = $3 AND given = $4 ORDER BY at DESC LIMIT 1",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Text(object.into()))
    .bind(Value::Uuid(rec.id))
    .bind(Value::Bool(false));
    Ok(tx.fetch_one(&q, &[SqlType::Timestamp]).await?.map(|r| (false, r.timestamp(0))))
}

/// What a conversion carried over to the contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Carried {
    /// Contact fields whose values changed.
    pub fields: Vec<String>,
    /// The consent-log entry written for the contact, when the lead's decision was taken.
    pub logged: Option<ConsentEntry>,
}

/// Carries a converted lead's consent and do-not-disturb to its contact, inside the
/// conversion's transaction. A new contact takes the lead's values. An existing contact is
/// merged conservatively: do-not-disturb stands if either has it, and the newer consent
/// decision (given or withdrawn) wins with its time, source and text version; the contact's
/// own decision stays when it is newer. Taking the lead's decision is logged on the contact.
/// Every changed field is audited.
pub async fn carry_consent(tx: &mut Tx, tenant: &Tenant, lead: &Record, contact: &Record) -> Result<Carried> {
    let mut target: BTreeMap<&str, Value> = BTreeMap::new();
    let lead_dnd = lead.get("dnd_status") == Some(&Value::Bool(true));
    if lead_dnd {
        target.insert("dnd_status", Value::Bool(true));
    }
    let from_lead = decision_of(tx, tenant.company_id, "leads", lead).await?;
    let own = decision_of(tx, tenant.company_id, "contacts", contact).await?;
    // An undated decision counts as the oldest.
    let adopt = match (&from_lead, &own) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some((_, l)), Some((_, c))) => l.is_some() && (c.is_none() || l > c),
    };
    let contacts = def("contacts")?;
    if adopt {
        for f in ["gdpr_consent", "gdpr_consent_at", "gdpr_consent_source", "gdpr_consent_version"] {
            let kind = contacts.field(f).map_or(SqlType::Text, |x| x.kind.sql_type());
            target.insert(f, lead.get(f).cloned().unwrap_or(Value::Null(kind)));
        }
        if lead.get("gdpr_consent") != Some(&Value::Bool(true)) {
            target.insert("gdpr_consent", Value::Bool(false));
        }
        if let Some(v) = lead.get("opt_in_date") {
            target.insert("opt_in_date", v.clone());
        }
    }
    // Nulls of any type are the same absence.
    let changed: Vec<(&str, Value)> = target.into_iter().filter(|(f, v)| contact.get(f) != Some(v).filter(|v| !v.is_null())).collect();
    let decision_taken = adopt && (own.is_none() || changed.iter().any(|(f, _)| f.starts_with("gdpr_consent")));
    let mut out = Carried::default();
    if changed.is_empty() && !decision_taken {
        return Ok(out);
    }
    let mut audit_rows = Vec::new();
    if !changed.is_empty() {
        let mut q = Q::new(String::new());
        let sets: Vec<String> = changed.iter().map(|(f, v)| format!("{f} = {}", q.param(v.clone()))).collect();
        let pn = q.param(Value::Timestamp(now_micros()));
        let pu = q.param(Value::Uuid(tenant.user_id));
        let pc = q.param(Value::Uuid(tenant.company_id));
        let pi = q.param(Value::Uuid(contact.id));
        let pv = q.param(Value::Int(contact.version));
        q.sql = format!(
            "UPDATE contacts SET {}, version = version + 1, updated_at = {pn}, updated_by = {pu} WHERE company_id = {pc} AND id = {pi} AND version = {pv}",
            sets.join(", ")
        );
        if tx.execute(&q).await? == 0 {
            return Err(StoreError::Stale { current: contact.version });
        }
        for (f, v) in &changed {
            audit_rows.push(Change {
                object: "contacts".into(),
                record_id: Some(contact.id),
                action: "update".into(),
                field: Some((*f).into()),
                old: contact.get(f).and_then(Value::audit_text),
                new: v.audit_text(),
            });
            out.fields.push((*f).to_string());
        }
    }
    if let (true, Some((given, at))) = (decision_taken, from_lead) {
        let entry = ConsentEntry {
            id: new_id(),
            object: "contacts".into(),
            record_id: contact.id,
            // The decision keeps the time the person made it.
            at: format_timestamp(&at.unwrap_or_else(now_micros)),
            given,
            decision: decision(given).into(),
            channel: crate::convert::CHANNEL.into(),
            source: lead.text("gdpr_consent_source").map(str::to_string),
            text_version: lead.text("gdpr_consent_version").map(str::to_string),
            actor_id: Some(tenant.user_id),
            ip: None,
            note: Some(format!("Carried over from lead {} when it was converted", lead.number)),
        };
        insert_entry(tx, tenant.company_id, &entry).await?;
        audit_rows.push(entry.audit_change());
        out.logged = Some(entry);
    }
    audit::append(tx, &tenant.audit, &audit_rows).await?;
    Ok(out)
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
    // A data-subject export must be complete, and it is an export: it needs the export scope
    // and a role from which no field of the records it gathers is hidden.
    tenant.access.require(object, corvid_core::access::Action::Export)?;
    if !tenant.access.allows_record(object, corvid_core::access::Action::Export, &rec) {
        return Err(StoreError::Forbidden(format!("the {} role cannot export this {}", tenant.access.role_label, object.singular)));
    }
    let hidden: Vec<String> = ["leads", "contacts", "activities", "tasks", "deals"]
        .iter()
        .flat_map(|o| tenant.access.hidden_fields(o).into_iter().map(move |f| format!("{o}.{f}")))
        .collect();
    if !hidden.is_empty() {
        return Err(StoreError::Forbidden(format!(
            "a data-subject export must be complete, and {} are hidden from the {} role; ask an Admin",
            hidden.join(", "),
            tenant.access.role_label
        )));
    }
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
        history.extend(rows.into_iter().flat_map(audit::AuditRow::expand_create));
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
    /// Mentions of the person's details outside their records, replaced.
    pub elsewhere: Elsewhere,
}

/// Anonymises a person in one transaction: the lead or contact, every lead and contact with
/// the same email address or phone number (and the contact a lead was converted to), and the
/// free text of their activities and tasks. Records, links, statuses and amounts stay. The
/// audit trail gets an `erase` row per erased field, without values, and earlier rows' values
/// of those fields are redacted (the chain still verifies). Their email and phone are also
/// replaced where other records' text mentions them (and those audit values redacted), and
/// their email, phone and name in failed import rows, the system log and other free text
/// (see `SPOTS`). Admins only.
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

    // What identifies them elsewhere, read before their records are erased.
    let needles = Needles::collect(&mut tx, tenant.company_id, &people).await?;

    let mut audit_rows = Vec::new();
    let mut erased_people = Vec::new();
    let mut redaction = Redaction::default();
    let add = |total: &mut Redaction, r: Redaction| {
        total.redacted += r.redacted;
        total.not_redactable += r.not_redactable;
    };
    let lead_ids: Vec<Uuid> = people.get("leads").map(|s| s.iter().copied().collect()).unwrap_or_default();
    let contact_ids: Vec<Uuid> = people.get("contacts").map(|s| s.iter().copied().collect()).unwrap_or_default();
    for (person, ids) in &people {
        let ids: Vec<Uuid> = ids.iter().copied().collect();
        let custom = customs.get(person).cloned().unwrap_or_default();
        let (done, rows, red) = erase_rows(&mut tx, tenant, def(person)?, &ids, &custom).await?;
        erased_people.extend(done);
        audit_rows.extend(rows);
        add(&mut redaction, red);
        add(&mut redaction, redact_whole_rows(&mut tx, tenant.company_id, person, &ids).await?);
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
        add(&mut redaction, red);
        add(&mut redaction, redact_whole_rows(&mut tx, tenant.company_id, table, ids).await?);
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

    // Their details elsewhere: other records' text, failed import rows, the system log and
    // other free text, then any audit value that still mentions their email or phone.
    let mut elsewhere = Elsewhere::default();
    if !needles.is_empty() {
        let (records, rows, red) = scrub_records(db, &mut tx, tenant, &needles).await?;
        elsewhere.records = records;
        audit_rows.extend(rows);
        add(&mut redaction, red);
        elsewhere.rows = scrub_spots(&mut tx, tenant.company_id, &needles).await?;
        add(&mut redaction, redact_mentions(&mut tx, tenant.company_id, &needles).await?);
    }

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
        elsewhere,
    })
}

// ---------------------------------------------------------------------------------------
// Erasure: traces of the person outside their records
// ---------------------------------------------------------------------------------------

/// What replaces a mention of an erased person in free text.
const ERASED_MARK: &str = "[erased]";

/// What identifies an erased person in free text elsewhere, read before they are erased:
/// email addresses (lower case), phone numbers (digits) and names (lower case).
#[derive(Debug, Clone, Default)]
struct Needles {
    emails: BTreeSet<String>,
    phones: BTreeSet<String>,
    /// (first name, last name) of people with both.
    names: BTreeSet<(String, String)>,
}

/// Lower-cases character by character where that keeps the byte length, so that positions
/// in the result are positions in `s`.
fn lower_aligned(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(x), None) if x.len_utf8() == c.len_utf8() => x,
                _ => c,
            }
        })
        .collect()
}

/// A LIKE pattern for a value inside any text (`\` escapes).
fn contains_pattern(s: &str) -> String {
    let escaped: String = s.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    format!("%{escaped}%")
}

impl Needles {
    async fn collect(tx: &mut Tx, company_id: Uuid, people: &BTreeMap<&'static str, BTreeSet<Uuid>>) -> Result<Needles> {
        let mut n = Needles::default();
        for (person, ids) in people {
            let ids: Vec<Uuid> = ids.iter().copied().collect();
            for chunk in ids.chunks(200) {
                let mut q = Q::new(format!("SELECT email, phone, first_name, last_name FROM {person} WHERE company_id = "));
                let p = q.param(Value::Uuid(company_id));
                q.push(&p);
                let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
                q.push(&format!(" AND id IN ({})", ps.join(", ")));
                for r in tx.fetch(&q, &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text]).await? {
                    if let Some(e) = r.text(0).map(|e| lower_aligned(e.trim())).filter(|e| e.contains('@') && e.len() >= 3) {
                        n.emails.insert(e);
                    }
                    let digits: String = r.text(1).unwrap_or_default().chars().filter(char::is_ascii_digit).collect();
                    if digits.len() >= 7 {
                        n.phones.insert(digits);
                    }
                    let name = |i: usize| r.text(i).map(|s| lower_aligned(s.trim())).filter(|s| s.chars().count() >= 2 && s != "erased");
                    if let (Some(first), Some(last)) = (name(2), name(3)) {
                        n.names.insert((first, last));
                    }
                }
            }
        }
        Ok(n)
    }

    fn is_empty(&self) -> bool {
        self.emails.is_empty() && self.phones.is_empty() && self.names.is_empty()
    }

    /// SQL that finds candidate text in `col` (lower-cased text): any email, a phone number
    /// however it is punctuated, and with `names` both parts of a name. False positives are
    /// dropped by `scrub`.
    fn condition(&self, q: &mut Q, col: &str, names: bool) -> Vec<String> {
        let text = format!("LOWER(CAST({col} AS TEXT))");
        let mut ors = Vec::new();
        for e in &self.emails {
            ors.push(format!("{text} LIKE {} ESCAPE '\\'", q.param(Value::Text(contains_pattern(e)))));
        }
        if !self.phones.is_empty() {
            // Digits as written, without the separators people put in numbers; the last seven
            // digits are in every written form of the number (with or without country code).
            let digits = ["' '", "'-'", "'.'", "'('", "')'", "'/'"].iter().fold(text.clone(), |t, sep| format!("REPLACE({t}, {sep}, '')"));
            for p in &self.phones {
                let tail = &p[p.len().saturating_sub(7)..];
                ors.push(format!("{digits} LIKE {}", q.param(Value::Text(format!("%{tail}%")))));
            }
        }
        if names {
            for (first, last) in &self.names {
                let a = q.param(Value::Text(contains_pattern(first)));
                let b = q.param(Value::Text(contains_pattern(last)));
                ors.push(format!("({text} LIKE {a} ESCAPE '\\' AND {text} LIKE {b} ESCAPE '\\')"));
            }
        }
        ors
    }

    /// `text` with every mention of the person replaced; None when there is none. Names are
    /// matched as "first last" only with `names`: a name alone does not identify anyone.
    fn scrub(&self, text: &str, names: bool) -> Option<String> {
        let mut out = text.to_string();
        let mut hit = false;
        let full: Vec<String> = if names { self.names.iter().map(|(f, l)| format!("{f} {l}")).collect() } else { Vec::new() };
        for needle in self.emails.iter().chain(&full) {
            if let Some(r) = replace_ci(&out, needle) {
                out = r;
                hit = true;
            }
        }
        if let Some(r) = replace_phones(&out, &self.phones) {
            out = r;
            hit = true;
        }
        hit.then_some(out)
    }

    /// Whether a string is exactly one of the person's names (a cell of a row that is known
    /// to be about them).
    fn is_name_part(&self, s: &str) -> bool {
        let s = lower_aligned(s.trim());
        self.names.iter().any(|(f, l)| *f == s || *l == s)
    }

    /// A JSON value with mentions replaced; None when unchanged. A row that mentions the
    /// person (an email, a phone, a full name, or first and last name in adjacent cells)
    /// also loses the cells that hold just their first or last name.
    fn scrub_json(&self, v: &Json, names: bool) -> Option<Json> {
        let mut found = false;
        let mut out = self.scrub_json_inner(v, names, &mut found);
        if names && !found {
            found = self.adjacent_names(v);
        }
        if found && names {
            out = Some(self.drop_name_cells(out.as_ref().unwrap_or(v)));
        }
        out.filter(|o| o != v)
    }

    fn scrub_json_inner(&self, v: &Json, names: bool, found: &mut bool) -> Option<Json> {
        match v {
            Json::String(s) => self.scrub(s, names).map(|x| {
                *found = true;
                Json::String(x)
            }),
            Json::Array(a) => {
                let new: Vec<Option<Json>> = a.iter().map(|x| self.scrub_json_inner(x, names, found)).collect();
                new.iter()
                    .any(Option::is_some)
                    .then(|| Json::Array(new.into_iter().zip(a).map(|(n, o)| n.unwrap_or_else(|| o.clone())).collect()))
            }
            Json::Object(m) => {
                let mut changed = false;
                let mut out = Map::new();
                for (k, x) in m {
                    match self.scrub_json_inner(x, names, found) {
                        Some(y) => {
                            changed = true;
                            out.insert(k.clone(), y);
                        }
                        None => {
                            out.insert(k.clone(), x.clone());
                        }
                    }
                }
                changed.then_some(Json::Object(out))
            }
            _ => None,
        }
    }

    fn adjacent_names(&self, v: &Json) -> bool {
        match v {
            Json::Array(a) => {
                a.windows(2).any(|w| match (&w[0], &w[1]) {
                    (Json::String(x), Json::String(y)) => {
                        let (x, y) = (lower_aligned(x.trim()), lower_aligned(y.trim()));
                        self.names.iter().any(|(f, l)| (*f == x && *l == y) || (*l == x && *f == y))
                    }
                    _ => false,
                }) || a.iter().any(|x| self.adjacent_names(x))
            }
            Json::Object(m) => {
                let get = |k: &str| m.get(k).and_then(Json::as_str).map(|s| lower_aligned(s.trim()));
                let pair = get("first_name").zip(get("last_name")).is_some_and(|fl| self.names.contains(&fl));
                pair || m.values().any(|x| self.adjacent_names(x))
            }
            _ => false,
        }
    }

    fn drop_name_cells(&self, v: &Json) -> Json {
        match v {
            Json::String(s) if self.is_name_part(s) => Json::String(ERASED_MARK.into()),
            Json::Array(a) => Json::Array(a.iter().map(|x| self.drop_name_cells(x)).collect()),
            Json::Object(m) => Json::Object(m.iter().map(|(k, x)| (k.clone(), self.drop_name_cells(x))).collect()),
            other => other.clone(),
        }
    }
}

/// `hay` with each case-insensitive occurrence of `needle` (lower case) replaced.
fn replace_ci(hay: &str, needle: &str) -> Option<String> {
    if needle.is_empty() {
        return None;
    }
    let lower = lower_aligned(hay);
    if !lower.contains(needle) {
        return None;
    }
    let mut out = String::with_capacity(hay.len());
    let mut last = 0;
    for (i, _) in lower.match_indices(needle) {
        out.push_str(&hay[last..i]);
        out.push_str(ERASED_MARK);
        last = i + needle.len();
    }
    out.push_str(&hay[last..]);
    Some(out)
}

/// Separators people write inside phone numbers (a number may also open with `+` or `(`).
fn phone_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')' | '/')
}

/// `hay` with each written form of one of `phones` (digits with their country code) replaced:
/// "+91 98765 43210", "098765-43210" and "9876543210" are all +919876543210.
fn replace_phones(hay: &str, phones: &BTreeSet<String>) -> Option<String> {
    if phones.is_empty() {
        return None;
    }
    let chars: Vec<(usize, char)> = hay.char_indices().collect();
    let (mut out, mut last, mut hit, mut i) = (String::new(), 0, false, 0);
    while i < chars.len() {
        let (start, c) = chars[i];
        let after_digit = i > 0 && chars[i - 1].1.is_ascii_digit();
        if !(c.is_ascii_digit() || c == '+' || c == '(') || after_digit {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && (chars[j].1.is_ascii_digit() || phone_separator(chars[j].1)) {
            j += 1;
        }
        while j > i + 1 && !chars[j - 1].1.is_ascii_digit() {
            j -= 1;
        }
        let end = chars.get(j).map_or(hay.len(), |x| x.0);
        if let Some(from) = phone_in(&hay[start..end], phones) {
            out.push_str(&hay[last..start + from]);
            out.push_str(ERASED_MARK);
            last = end;
            hit = true;
        }
        i = j;
    }
    if !hit {
        return None;
    }
    out.push_str(&hay[last..]);
    Some(out)
}

/// Where in a run of digits and separators one of `phones` starts, when the run ends with
/// it: a run may carry the country code or a trunk zero, or start with other digits.
fn phone_in(run: &str, phones: &BTreeSet<String>) -> Option<usize> {
    let mut prev_digit = false;
    for (k, c) in run.char_indices() {
        let starts_group = (c.is_ascii_digit() || c == '+' || c == '(') && !prev_digit;
        prev_digit = c.is_ascii_digit();
        if !starts_group {
            continue;
        }
        let digits: String = run[k..].chars().filter(char::is_ascii_digit).collect();
        let d = digits.trim_start_matches('0');
        if d.len() < 7 {
            return None;
        }
        // The whole number, or the national number without a country code of up to 3 digits.
        if phones.iter().any(|p| p == d || (p.ends_with(d) && d.len() + 3 >= p.len())) {
            return Some(k);
        }
    }
    None
}

/// Drops the values of audit rows (keeping their digests, so the chain verifies); rows
/// written before salted digests are counted and keep their values.
async fn redact_audit_rows(tx: &mut Tx, company_id: Uuid, rows: &[Row]) -> Result<Redaction> {
    // Columns: id, hash_v, value_salt, old_value, new_value, old_digest, new_digest.
    let mut out = Redaction::default();
    for r in rows {
        if r.int(1).unwrap_or(1) < 2 {
            out.not_redactable += 1;
            continue;
        }
        let salt = r.text(2).unwrap_or_default();
        let digest = |value: Option<String>, stored: Option<String>| match value {
            Some(v) => audit::value_digest(&salt, Some(&v)),
            None => stored,
        };
        let opt_text = |v: Option<String>| v.map_or(Value::Null(SqlType::Text), Value::Text);
        tx.execute(
            &Q::new(
                "UPDATE audit_log SET old_digest = $1, new_digest = $2, old_value = NULL, new_value = NULL, value_salt = NULL \
                 WHERE company_id = $3 AND id = $4",
            )
            .bind(opt_text(digest(r.text(3), r.text(5))))
            .bind(opt_text(digest(r.text(4), r.text(6))))
            .bind(Value::Uuid(company_id))
            .bind(r.uuid(0).map_or(Value::Null(SqlType::Uuid), Value::Uuid)),
        )
        .await?;
        out.redacted += 1;
    }
    Ok(out)
}

const AUDIT_REDACT_COLS: &str = "id, hash_v, value_salt, old_value, new_value, old_digest, new_digest";
const AUDIT_REDACT_TYPES: &[SqlType] =
    &[SqlType::Uuid, SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text];

/// Audit rows of the erased records that hold a whole record's values at once (imports
/// audit a created record in one row without a field; merges summarise in one): their
/// values go too, whatever they mention (not the summaries of earlier erasures).
async fn redact_whole_rows(tx: &mut Tx, company_id: Uuid, object: &str, ids: &[Uuid]) -> Result<Redaction> {
    let mut out = Redaction::default();
    for chunk in ids.chunks(200) {
        let mut q = Q::new(format!("SELECT {AUDIT_REDACT_COLS} FROM audit_log WHERE company_id = "));
        let p = q.param(Value::Uuid(company_id));
        q.push(&p);
        let p = q.param(Value::Text(object.into()));
        let ps: Vec<String> = chunk.iter().map(|i| q.param(Value::Uuid(*i))).collect();
        q.push(&format!(
            " AND object = {p} AND record_id IN ({}) AND field IS NULL AND action <> 'erase' AND (old_value IS NOT NULL OR new_value IS NOT NULL)",
            ps.join(", ")
        ));
        let rows = tx.fetch(&q, AUDIT_REDACT_TYPES).await?;
        let r = redact_audit_rows(tx, company_id, &rows).await?;
        out.redacted += r.redacted;
        out.not_redactable += r.not_redactable;
    }
    Ok(out)
}

/// Audit rows of any record whose old or new value mentions the person's email or phone.
async fn redact_mentions(tx: &mut Tx, company_id: Uuid, n: &Needles) -> Result<Redaction> {
    let mut q = Q::new(format!("SELECT {AUDIT_REDACT_COLS} FROM audit_log WHERE company_id = "));
    let p = q.param(Value::Uuid(company_id));
    q.push(&p);
    let mut ors = n.condition(&mut q, "old_value", false);
    ors.extend(n.condition(&mut q, "new_value", false));
    if ors.is_empty() {
        return Ok(Redaction::default());
    }
    q.push(&format!(" AND ({})", ors.join(" OR ")));
    let rows: Vec<Row> = tx
        .fetch(&q, AUDIT_REDACT_TYPES)
        .await?
        .into_iter()
        .filter(|r| [r.text(3), r.text(4)].iter().flatten().any(|v| n.scrub(v, false).is_some()))
        .collect();
    redact_audit_rows(tx, company_id, &rows).await
}

/// Text and JSON fields of any record (other people's notes, deals, activities, accounts …)
/// that mention the person's email or phone: the mention is replaced (an email, phone or URL
/// field that holds it is emptied), audited as an `erase` without values, and earlier audit
/// values of those fields are redacted. Names are left: a name alone is not the person.
async fn scrub_records(db: &Db, tx: &mut Tx, tenant: &Tenant, n: &Needles) -> Result<(Vec<Erased>, Vec<Change>, Redaction)> {
    let mut done = Vec::new();
    let mut audit_rows = Vec::new();
    let mut red = Redaction::default();
    if n.emails.is_empty() && n.phones.is_empty() {
        return Ok((done, audit_rows, red));
    }
    let now = now_micros();
    for object in corvid_core::objects() {
        let fields: Vec<&corvid_core::Field> = object
            .fields
            .iter()
            .filter(|f| {
                matches!(f.kind, FieldKind::Text { .. } | FieldKind::LongText { .. } | FieldKind::Email | FieldKind::Phone | FieldKind::Url)
            })
            .collect();
        let mut q = Q::new(String::new());
        let pc = q.param(Value::Uuid(tenant.company_id));
        let mut ors = Vec::new();
        for f in &fields {
            ors.extend(n.condition(&mut q, &f.name, false));
        }
        ors.extend(n.condition(&mut q, "custom", false));
        let cols: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
        q.sql = format!(
            "SELECT id, number, custom{}{} FROM {} WHERE company_id = {pc} AND ({})",
            if cols.is_empty() { "" } else { ", " },
            cols.join(", "),
            object.name,
            ors.join(" OR ")
        );
        let mut types = vec![SqlType::Uuid, SqlType::Text, SqlType::Json];
        types.extend(fields.iter().map(|_| SqlType::Text));
        for row in tx.fetch(&q, &types).await? {
            let Some(id) = row.uuid(0) else { continue };
            let mut q = Q::new(String::new());
            let mut sets = Vec::new();
            let mut erased = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let Some(text) = row.text(3 + i) else { continue };
                let Some(new) = n.scrub(&text, false) else { continue };
                // A contact detail with a mark in it would not be valid: it goes.
                let v = match f.kind {
                    FieldKind::Email | FieldKind::Phone | FieldKind::Url if !f.required => Value::Null(SqlType::Text),
                    FieldKind::Email | FieldKind::Phone | FieldKind::Url => Value::Text(ERASED_MARK.into()),
                    _ => Value::Text(new),
                };
                sets.push(format!("{} = {}", f.name, q.param(v)));
                erased.push(f.name.clone());
            }
            if let Some(custom) = row.json(2).filter(|j| j.is_object()) {
                if let Some(new) = n.scrub_json(&custom, false) {
                    if let (Some(a), Some(b)) = (custom.as_object(), new.as_object()) {
                        erased.extend(a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, _)| k.clone()));
                    }
                    sets.push(format!("custom = {}", q.param(Value::Json(new))));
                }
            }
            if sets.is_empty() {
                continue;
            }
            write_erasure(tx, tenant, object, id, q, &sets, &erased, now, &mut audit_rows).await?;
            let r = audit::redact(tx, tenant.company_id, &object.name, &[id], &erased).await?;
            red.redacted += r.redacted;
            red.not_redactable += r.not_redactable;
            // Duplicate-detection keys are built from emails and phones.
            let rec = tenant.records(db, object).get_in_tx(tx, id).await?;
            if rec.deleted_at.is_none() {
                dedupe::index_record(tx, tenant.company_id, &object.name, &rec).await?;
            } else {
                dedupe::forget(tx, tenant.company_id, &[id]).await?;
            }
            done.push(Erased { object: object.name.clone(), id, number: row.text(1).unwrap_or_default(), fields: erased });
        }
    }
    Ok((done, audit_rows, red))
}

/// A table outside the records that may hold a person's details in free text.
struct Spot {
    table: &'static str,
    /// The columns that identify a row.
    keys: &'static [(&'static str, SqlType)],
    texts: &'static [&'static str],
    jsons: &'static [&'static str],
    /// Which rows belong to the company; `{c}` is the company id.
    scope: &'static str,
}

const COMPANY: &str = "company_id = {c}";

/// Where else a person shows up: rows of failed imports (the file's cells), the system log
/// (messages and fields; entries without a company too), job payloads and results, score
/// and engagement history, consent notes, duplicate-scan reports, saved list queries.
const SPOTS: &[Spot] = &[
    Spot {
        table: "import_errors",
        keys: &[("import_id", SqlType::Uuid), ("row_number", SqlType::Int), ("field", SqlType::Text)],
        texts: &["reason"],
        jsons: &["raw"],
        scope: "import_id IN (SELECT id FROM imports WHERE company_id = {c})",
    },
    Spot {
        table: "system_logs",
        keys: &[("id", SqlType::Uuid)],
        texts: &["message"],
        jsons: &["fields"],
        scope: "(company_id = {c} OR company_id IS NULL)",
    },
    Spot {
        table: "jobs",
        keys: &[("id", SqlType::Uuid)],
        texts: &["progress_message", "last_error"],
        jsons: &["payload", "result"],
        scope: COMPANY,
    },
    Spot { table: "imports", keys: &[("id", SqlType::Uuid)], texts: &["error"], jsons: &[], scope: COMPANY },
    Spot { table: "lead_score_history", keys: &[("id", SqlType::Uuid)], texts: &["reason"], jsons: &[], scope: COMPANY },
    Spot { table: "lead_engagement_events", keys: &[("id", SqlType::Uuid)], texts: &["source"], jsons: &["details"], scope: COMPANY },
    Spot { table: "consent_log", keys: &[("id", SqlType::Uuid)], texts: &["note", "source"], jsons: &[], scope: COMPANY },
    Spot {
        table: "dedupe_clusters",
        keys: &[("scan_id", SqlType::Uuid), ("seq", SqlType::Int)],
        texts: &[],
        jsons: &["members", "pairs"],
        scope: COMPANY,
    },
    Spot { table: "saved_views", keys: &[("id", SqlType::Uuid)], texts: &["query"], jsons: &[], scope: COMPANY },
];

/// Replaces the person's details in the rows of `SPOTS`; returns rows changed per table.
async fn scrub_spots(tx: &mut Tx, company_id: Uuid, n: &Needles) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for spot in SPOTS {
        let mut q = Q::new(String::new());
        let pc = q.param(Value::Uuid(company_id));
        let mut ors = Vec::new();
        for col in spot.texts.iter().chain(spot.jsons) {
            ors.extend(n.condition(&mut q, col, true));
        }
        if ors.is_empty() {
            continue;
        }
        let keys: Vec<&str> = spot.keys.iter().map(|(k, _)| *k).collect();
        let cols: Vec<&str> = keys.iter().chain(spot.texts).chain(spot.jsons).copied().collect();
        q.sql =
            format!("SELECT {} FROM {} WHERE {} AND ({})", cols.join(", "), spot.table, spot.scope.replace("{c}", &pc), ors.join(" OR "));
        let mut types: Vec<SqlType> = spot.keys.iter().map(|(_, t)| *t).collect();
        types.extend(spot.texts.iter().map(|_| SqlType::Text));
        types.extend(spot.jsons.iter().map(|_| SqlType::Json));
        let mut changed = 0;
        for row in tx.fetch(&q, &types).await? {
            let mut q = Q::new(String::new());
            let mut sets = Vec::new();
            for (i, col) in spot.texts.iter().enumerate() {
                if let Some(new) = row.text(keys.len() + i).and_then(|t| n.scrub(&t, true)) {
                    sets.push(format!("{col} = {}", q.param(Value::Text(new))));
                }
            }
            for (i, col) in spot.jsons.iter().enumerate() {
                if let Some(new) = row.json(keys.len() + spot.texts.len() + i).and_then(|j| n.scrub_json(&j, true)) {
                    sets.push(format!("{col} = {}", q.param(Value::Json(new))));
                }
            }
            if sets.is_empty() {
                continue;
            }
            let mut wheres = Vec::new();
            for (i, (k, _)) in spot.keys.iter().enumerate() {
                let v = row.0.get(i).cloned().unwrap_or(Value::Null(SqlType::Text));
                wheres.push(format!("{k} = {}", q.param(v)));
            }
            q.sql = format!("UPDATE {} SET {} WHERE {}", spot.table, sets.join(", "), wheres.join(" AND "));
            changed += tx.execute(&q).await?;
        }
        if changed > 0 {
            out.insert(spot.table.to_string(), changed);
        }
    }
    Ok(out)
}

/// What erasure removed outside the person's own records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Elsewhere {
    /// Other records whose text mentioned the person's email or phone.
    pub records: Vec<Erased>,
    /// Rows changed per table (failed import rows, system log entries, jobs …).
    pub rows: BTreeMap<String, u64>,
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
            write_erasure(tx, tenant, object, rid, q, &sets, &erased, now, &mut audit_rows).await?;
            done.push(Erased { object: object.name.clone(), id: rid, number: row.text(1).unwrap_or_default(), fields: erased });
        }
    }
    // Earlier audit rows of these records keep no personal values either.
    let mut names: Vec<String> = fields.iter().map(|f| f.name.clone()).collect();
    names.extend(custom_personal.iter().cloned());
    let red = audit::redact(tx, tenant.company_id, &object.name, ids, &names).await?;
    Ok((done, audit_rows, red))
}

/// Writes the scrubbed columns `sets` (parameters already in `q`) of record `id`, as a new
/// version, and audits one `erase` row per erased field (without values).
#[allow(clippy::too_many_arguments)]
async fn write_erasure(
    tx: &mut Tx,
    tenant: &Tenant,
    object: &ObjectDef,
    id: Uuid,
    mut q: Q,
    sets: &[String],
    erased: &[String],
    now: DateTime<Utc>,
    audit_rows: &mut Vec<Change>,
) -> Result<()> {
    let pn = q.param(Value::Timestamp(now));
    let pu = q.param(Value::Uuid(tenant.user_id));
    let pc = q.param(Value::Uuid(tenant.company_id));
    let pi = q.param(Value::Uuid(id));
    q.sql = format!(
        "UPDATE {} SET {}, version = version + 1, updated_at = {pn}, updated_by = {pu} WHERE company_id = {pc} AND id = {pi}",
        object.name,
        sets.join(", ")
    );
    tx.execute(&q).await?;
    audit_rows.extend(erased.iter().map(|f| Change {
        object: object.name.clone(),
        record_id: Some(id),
        action: "erase".into(),
        field: Some(f.clone()),
        old: None,
        new: None,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needles() -> Needles {
        Needles {
            emails: BTreeSet::from(["meera.pillai@wipe.test".to_string()]),
            phones: BTreeSet::from(["919811122233".to_string()]),
            names: BTreeSet::from([("meera".to_string(), "pillai".to_string())]),
        }
    }

    #[test]
    fn emails_and_phones_are_found_however_they_are_written() {
        let n = needles();
        assert_eq!(n.scrub("Mail MEERA.Pillai@wipe.test today", false).as_deref(), Some("Mail [erased] today"));
        for written in ["+91 98111 22233", "+919811122233", "098111-22233", "9811122233", "(98111) 22233"] {
            assert_eq!(n.scrub(&format!("call {written}."), false).as_deref(), Some("call [erased]."), "{written}");
        }
        // Other numbers, and numbers that merely end alike, stay.
        assert_eq!(n.scrub("order 12 and 5919811122233 and 22233", false), None);
        assert_eq!(n.scrub("ref 12 9811122233", false).as_deref(), Some("ref 12 [erased]"));
        // Names only with `names`, and only the full name.
        assert_eq!(n.scrub("Meera Pillai called", false), None);
        assert_eq!(n.scrub("Meera Pillai called", true).as_deref(), Some("[erased] called"));
        assert_eq!(n.scrub("Meera called", true), None);
        // Unicode around a match keeps its place.
        assert_eq!(n.scrub("Ärger: meera.pillai@wipe.test ✓", false).as_deref(), Some("Ärger: [erased] ✓"));
    }

    #[test]
    fn rows_about_the_person_lose_their_name_cells() {
        let n = needles();
        let row = json!(["MEERA.PILLAI@wipe.test", "Meera", "Pillai", "98111 22233", "lots"]);
        assert_eq!(n.scrub_json(&row, true), Some(json!(["[erased]", "[erased]", "[erased]", "[erased]", "lots"])));
        // First and last name side by side identify the row too.
        assert_eq!(n.scrub_json(&json!(["Meera", "Pillai", "x@y.test"]), true), Some(json!(["[erased]", "[erased]", "x@y.test"])));
        // A lone first name in someone else's row stays.
        assert_eq!(n.scrub_json(&json!(["Meera", "Shah", "m@shah.test"]), true), None);
        assert_eq!(
            n.scrub_json(&json!({"first_name": "Meera", "last_name": "Pillai"}), true),
            Some(json!({"first_name": "[erased]", "last_name": "[erased]"}))
        );
        assert_eq!(n.scrub_json(&json!({"n": 3}), true), None);
    }
}
