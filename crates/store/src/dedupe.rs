//! Duplicate detection: the blocking-key index, the check every write of a lead, contact or
//! account goes through (the company's policy: block, flag or allow), candidate lists on
//! demand, dismissed pairs, and the whole-base scan that reports clusters.
//!
//! Blocking keeps all of it linear. The keys of a record (`corvid_core::matching`) live in
//! `dedupe_keys`; a check reads the records sharing one of its keys in one indexed query, at
//! most `MAX_PER_KEY` per key (a key shared by more records, like a switchboard number or a
//! very common name, says nothing and is skipped), and scores only those. The scan finds the
//! blocks (keys shared by 2 to `MAX_PER_KEY` records) with one GROUP BY over the key table,
//! then reads and scores them a chunk at a time, each pair once; it never forms all pairs.
//!
//! People are matched across leads and contacts (a new lead may be an existing contact);
//! a contact is only compared with contacts, since every converted lead has its contact.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Backend, Db, Row, Tx, Q};
use crate::pipeline::Write;
use crate::records::Tenant;
use crate::{jobs, settings, Result, StoreError};
use corvid_core::matching::{compare_orgs, compare_prepared, org_keys, score_within_reach, Match, Org, Person, PreparedPerson, THRESHOLD};
use corvid_core::meta::ObjectDef;
use corvid_core::record::Record;
use corvid_core::validate::Changes;
use corvid_core::value::now_micros;
use corvid_core::{FieldError, SqlType, Value};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;
use uuid::Uuid;

/// Settings key of the company's policy.
pub const POLICY_KEY: &str = "dedupe.policy";
/// Write channel that asks for a fresh check of a record whatever changed (after a merge or
/// a dismissal), recording flags even under the block policy.
pub const RECHECK: &str = "dedupe";
/// Job kind of the whole-base scan.
pub const SCAN_JOB: &str = "dedupe.scan";
/// A key shared by more records than this is not used for blocking.
pub const MAX_PER_KEY: usize = 50;
/// Keys are cut to this many bytes (long names make long keys).
const MAX_KEY_BYTES: usize = 200;
/// At most this many records are scored per check.
const MAX_SCORED: usize = 200;
/// Blocks read and scored together by the scan.
const SCAN_CHUNK: usize = 500;
/// Records per page of a re-index.
const INDEX_PAGE: usize = 2000;
/// Bumped when the way keys are stored changes; part of the index fingerprint.
const INDEX_FORMAT: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Refuse the write (409 with the candidates; a failed row in imports).
    Block,
    /// Write it and mark the lead (`is_duplicate`, `duplicate_of_id`, score, reasons).
    #[default]
    Flag,
    /// Write it without checking.
    Allow,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::Block, Policy::Flag, Policy::Allow];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Block => "block",
            Policy::Flag => "flag",
            Policy::Allow => "allow",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Policy::Block => "Block: refuse likely duplicates",
            Policy::Flag => "Flag: save and mark as duplicate",
            Policy::Allow => "Allow: do not check",
        }
    }
}

/// The company's policy (`flag` when never set).
pub async fn policy(db: &Db, company_id: Uuid) -> Result<Policy> {
    Ok(settings::get::<Policy>(db, company_id, POLICY_KEY).await?.unwrap_or_default())
}

/// Changes the company's policy (audited as a settings change).
pub async fn set_policy(db: &Db, ctx: &AuditCtx, policy: Policy) -> Result<()> {
    settings::set(db, ctx, POLICY_KEY, &policy).await
}

async fn policy_in(tx: &mut Tx, company_id: Uuid) -> Result<Policy> {
    match settings::get_in::<Policy>(tx, company_id, POLICY_KEY).await {
        Ok(p) => Ok(p.unwrap_or_default()),
        // A value this version cannot read must not stop every write of the company.
        Err(StoreError::Corrupt(e)) => {
            tracing::warn!(company = %company_id, error = %e, "unreadable duplicate policy; flagging");
            Ok(Policy::Flag)
        }
        Err(e) => Err(e),
    }
}

/// People (leads, contacts) and organisations (accounts) have separate keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Person,
    Org,
}

impl Kind {
    pub fn of(object: &str) -> Option<Kind> {
        match object {
            "leads" | "contacts" => Some(Kind::Person),
            "accounts" => Some(Kind::Org),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Org => "org",
        }
    }
}

/// Objects whose records can be duplicates of a record of `object`.
fn candidate_objects(object: &str) -> &'static [&'static str] {
    match object {
        "leads" => &["leads", "contacts"],
        "contacts" => &["contacts"],
        "accounts" => &["accounts"],
        _ => &[],
    }
}

/// Fields a match depends on: a write that changes none of them needs no check.
fn match_fields(object: &str) -> &'static [&'static str] {
    match object {
        "leads" => &["first_name", "last_name", "email", "phone", "company_name"],
        "contacts" => &["first_name", "last_name", "email", "phone", "account_id"],
        "accounts" => &["name", "website", "gstin"],
        _ => &[],
    }
}

/// What is matched: a person or an organisation.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    /// Prepared once: a subject is compared with many others.
    Person(Box<PreparedPerson>),
    Org(Org),
}

impl Subject {
    pub fn person(p: Person) -> Subject {
        Subject::Person(Box::new(PreparedPerson::new(p)))
    }

    /// Blocking keys, cut to a bounded length, without repeats.
    pub fn keys(&self) -> Vec<String> {
        let raw = match self {
            Subject::Person(p) => p.keys().to_vec(),
            Subject::Org(o) => org_keys(o),
        };
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        for mut k in raw {
            if k.len() > MAX_KEY_BYTES {
                k.truncate(k.floor_char_boundary(MAX_KEY_BYTES));
            }
            if !k.is_empty() && !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    fn compare(&self, other: &Subject) -> Option<Match> {
        match (self, other) {
            // Every caller drops pairs under THRESHOLD: those that cannot reach it are not
            // scored further (their score reads 0), and reasons are only written for the
            // likely duplicates.
            (Subject::Person(a), Subject::Person(b)) => Some(match score_within_reach(a, b) {
                Some(score) if score >= THRESHOLD => compare_prepared(a, b),
                score => Match { score: score.unwrap_or(0), reasons: Vec::new() },
            }),
            (Subject::Org(a), Subject::Org(b)) => Some(compare_orgs(a, b)),
            _ => None,
        }
    }

    pub fn title(&self) -> String {
        match self {
            Subject::Person(p) => [p.first_name.as_deref(), p.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" "),
            Subject::Org(o) => o.name.clone().unwrap_or_default(),
        }
    }

    /// The field to name when an import row is refused as a duplicate.
    fn main_field(&self) -> &'static str {
        match self {
            Subject::Person(p) if p.email.is_some() => "email",
            Subject::Person(p) if p.phone.is_some() => "phone",
            Subject::Person(_) => "last_name",
            Subject::Org(o) if o.gstin.is_some() => "gstin",
            Subject::Org(o) if o.website.is_some() => "website",
            Subject::Org(_) => "name",
        }
    }
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Text(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// What a subject is made of, before it is prepared for comparing.
enum Values {
    Person(Person),
    Org(Org),
}

/// The values of a subject from field values (`get`) and, for contacts, their account's name.
fn values_from(object: &str, get: impl Fn(&str) -> Option<String>, account_name: Option<String>) -> Values {
    match object {
        "accounts" => Values::Org(Org { name: get("name"), website: get("website"), gstin: get("gstin") }),
        _ => Values::Person(Person {
            first_name: get("first_name"),
            last_name: get("last_name"),
            email: get("email"),
            phone: get("phone"),
            company_name: if object == "contacts" { account_name } else { get("company_name") },
        }),
    }
}

/// Builds the subject from field values (`get`) and, for contacts, their account's name.
fn subject_from(object: &str, get: impl Fn(&str) -> Option<String>, account_name: Option<String>) -> Subject {
    match values_from(object, get, account_name) {
        Values::Person(p) => Subject::person(p),
        Values::Org(o) => Subject::Org(o),
    }
}

/// Whether `subject` is the one `subject_of` would make of `rec`, without preparing
/// another (contacts take part of theirs from their account, so they are always made anew).
fn made_from(subject: &Subject, object: &str, rec: &Record) -> bool {
    if object == "contacts" {
        return false;
    }
    match (subject, values_from(object, |f| text_of(rec.get(f)), None)) {
        (Subject::Person(prepared), Values::Person(values)) => {
            let person: &Person = prepared;
            *person == values
        }
        (Subject::Org(org), Values::Org(values)) => *org == values,
        _ => false,
    }
}

/// The subject of a record about to be created from validated values, without the account
/// name a contact is matched with (it does not take part in the blocking keys). `None` for
/// objects that are not checked.
pub fn subject_of_new(object: &str, changes: &Changes) -> Option<Subject> {
    Kind::of(object)?;
    Some(subject_from(object, |f| text_of(changes.fields.get(f)), None))
}

/// A record that is likely a duplicate, with the score and the reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub object: String,
    pub id: Uuid,
    pub number: String,
    pub title: String,
    pub score: u8,
    pub reasons: Vec<String>,
}

/// Reads from the pool or from a transaction, so checks work inside writes and outside.
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

    fn backend(&self) -> Backend {
        match self {
            Conn::Db(db) => db.backend(),
            Conn::Tx(tx) => tx.backend(),
        }
    }
}

async fn account_name(conn: &mut Conn<'_>, company_id: Uuid, account_id: Option<Uuid>) -> Result<Option<String>> {
    let Some(id) = account_id else { return Ok(None) };
    let q = Q::new("SELECT name FROM accounts WHERE company_id = $1 AND id = $2").bind(Value::Uuid(company_id)).bind(Value::Uuid(id));
    Ok(conn.fetch(&q, &[SqlType::Text]).await?.first().and_then(|r| r.text(0)))
}

/// The subject of a stored record.
pub async fn subject_of(conn: &mut Conn<'_>, company_id: Uuid, object: &str, rec: &Record) -> Result<Subject> {
    let account =
        if object == "contacts" { account_name(conn, company_id, rec.get("account_id").and_then(Value::as_uuid)).await? } else { None };
    Ok(subject_from(object, |f| text_of(rec.get(f)), account))
}

/// A record loaded for scoring.
#[derive(Debug, Clone)]
struct Loaded {
    object: String,
    id: Uuid,
    number: String,
    subject: Subject,
    /// Leads: the contact the lead was converted into (never its duplicate).
    converted_contact_id: Option<Uuid>,
}

/// Column types of the rows `loaded_from` reads: object, id, number, five subject columns,
/// converted contact.
const LOADED_TYPES: &[SqlType] = &[
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Uuid,
];

fn loaded_from(row: &Row, offset: usize) -> Option<Loaded> {
    let object = row.text(offset)?;
    let id = row.uuid(offset + 1)?;
    let number = row.text(offset + 2)?;
    let col = |i: usize| row.text(offset + 3 + i).filter(|s| !s.trim().is_empty());
    let subject = match object.as_str() {
        "accounts" => Subject::Org(Org { name: col(0), website: col(1), gstin: col(2) }),
        _ => Subject::person(Person { first_name: col(0), last_name: col(1), email: col(2), phone: col(3), company_name: col(4) }),
    };
    Some(Loaded { object, id, number, subject, converted_contact_id: row.uuid(offset + 8) })
}

/// The SELECT list (after the object name) and FROM clause reading `LOADED_TYPES` rows of
/// one object; `alias` is the record table's alias.
fn loaded_select(object: &str) -> (&'static str, &'static str) {
    match object {
        "leads" => ("r.id, r.number, r.first_name, r.last_name, r.email, r.phone, r.company_name, r.converted_contact_id", "leads r"),
        "contacts" => (
            "r.id, r.number, r.first_name, r.last_name, r.email, r.phone, a.name, NULL",
            "contacts r LEFT JOIN accounts a ON a.company_id = r.company_id AND a.id = r.account_id",
        ),
        _ => ("r.id, r.number, r.name, r.website, r.gstin, NULL, NULL, NULL", "accounts r"),
    }
}

/// Records of `company_id` sharing a key with `keys`: (object, id), at most `MAX_PER_KEY` per
/// key, keys shared by more records left out. One query: a limited index range per key.
async fn ids_sharing_keys(
    conn: &mut Conn<'_>,
    company_id: Uuid,
    kind: Kind,
    objects: &[&str],
    keys: &[String],
) -> Result<Vec<(String, Uuid)>> {
    if keys.is_empty() || objects.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Q::new(String::new());
    let pc = q.param(Value::Uuid(company_id));
    let pk = q.param(Value::Text(kind.as_str().into()));
    // Object names are ours (from the metadata), never user input.
    let only = format!(" AND object IN ({})", objects.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", "));
    let parts: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let p = q.param(Value::Text(k.clone()));
            format!(
                "SELECT object, record_id, {i} AS n FROM (SELECT object, record_id FROM dedupe_keys \
                 WHERE company_id = {pc} AND kind = {pk} AND key = {p}{only} LIMIT {}) k{i}",
                MAX_PER_KEY + 1
            )
        })
        .collect();
    q.sql = parts.join(" UNION ALL ");
    let rows = conn.fetch(&q, &[SqlType::Text, SqlType::Uuid, SqlType::Int]).await?;
    let mut per_key = vec![0usize; keys.len()];
    for r in &rows {
        if let Some(n) = r.int(2).and_then(|n| usize::try_from(n).ok()).filter(|n| *n < per_key.len()) {
            per_key[n] += 1;
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for r in rows {
        let (Some(object), Some(id), Some(n)) = (r.text(0), r.uuid(1), r.int(2).and_then(|n| usize::try_from(n).ok())) else { continue };
        if per_key.get(n).is_some_and(|c| *c <= MAX_PER_KEY) && seen.insert(id) {
            out.push((object, id));
        }
    }
    Ok(out)
}

/// Loads live records by id for scoring, leaving out pairs dismissed with `dismissed_for`.
async fn load_for_scoring(
    conn: &mut Conn<'_>,
    company_id: Uuid,
    ids: &[(String, Uuid)],
    dismissed_for: Option<Uuid>,
) -> Result<Vec<Loaded>> {
    let mut by_object: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for (o, id) in ids {
        by_object.entry(o.as_str()).or_default().push(*id);
    }
    if by_object.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Q::new(String::new());
    let pc = q.param(Value::Uuid(company_id));
    let not_dismissed = match dismissed_for {
        Some(id) => {
            let p = q.param(Value::Uuid(id));
            format!(" AND r.id NOT IN (SELECT other_id FROM dedupe_dismissals WHERE company_id = {pc} AND record_id = {p})")
        }
        None => String::new(),
    };
    let build = json_array_fn(conn.backend());
    let mut parts = Vec::new();
    for (object, list) in by_object {
        let Some(def) = corvid_core::object(object) else { continue };
        let (cols, from) = loaded_select(&def.name);
        let ps: Vec<String> = crate::db::padded(&list).into_iter().map(|id| q.param(Value::Uuid(id))).collect();
        parts.push(format!(
            "SELECT {build}('{}', {cols}) AS x FROM {from} WHERE r.company_id = {pc} AND r.deleted_at IS NULL AND r.id IN ({}){not_dismissed}",
            def.name,
            ps.join(", ")
        ));
    }
    q.sql = parts.join(" UNION ALL ");
    let items = fetch_aggregated(conn, q).await?;
    Ok(items.iter().filter_map(|item| loaded_from(&row_of_json(item, LOADED_TYPES)?, 0)).collect())
}

/// The backend's function building a JSON array from values.
fn json_array_fn(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "json_array",
        Backend::Postgres => "json_build_array",
    }
}

/// Runs `q`, whose rows are one JSON array `x` each, with the rows aggregated into a single
/// JSON array by the database: one row to transfer instead of thousands (moving rows one by
/// one through the driver cost more than finding them). Returns the rows' arrays.
async fn fetch_aggregated(conn: &mut Conn<'_>, mut q: Q) -> Result<Vec<serde_json::Value>> {
    q.sql = match conn.backend() {
        // `json()`: a JSON value loses its JSON-ness passing through a subquery in SQLite.
        Backend::Sqlite => format!("SELECT json_group_array(json(x)) FROM ({}) t", q.sql),
        Backend::Postgres => format!("SELECT json_agg(x) FROM ({}) t", q.sql),
    };
    let rows = conn.fetch(&q, &[SqlType::Json]).await?;
    match rows.into_iter().next().and_then(|r| r.json(0)) {
        Some(serde_json::Value::Array(items)) => Ok(items),
        _ => Ok(Vec::new()),
    }
}

/// A row of `types` from a JSON array of its values (UUIDs as text).
fn row_of_json(item: &serde_json::Value, types: &[SqlType]) -> Option<Row> {
    let values = item.as_array()?;
    let mut out = Vec::with_capacity(types.len());
    for (t, v) in types.iter().zip(values) {
        out.push(match (t, v) {
            (_, serde_json::Value::Null) => Value::Null(*t),
            (SqlType::Uuid, serde_json::Value::String(s)) => Uuid::parse_str(s).map_or(Value::Null(*t), Value::Uuid),
            (_, serde_json::Value::String(s)) => Value::Text(s.clone()),
            (_, other) => Value::Text(other.to_string()),
        });
    }
    Some(Row(out))
}

/// Likely duplicates of `subject` (a record of `object`) among the company's live records,
/// best first. `exclude` are never candidates (the record itself, the contact a lead became);
/// with `dismissed_for`, pairs dismissed with that record are left out.
pub async fn find(
    conn: &mut Conn<'_>,
    company_id: Uuid,
    object: &str,
    subject: &Subject,
    exclude: &[Uuid],
    dismissed_for: Option<Uuid>,
) -> Result<Vec<Candidate>> {
    let Some(kind) = Kind::of(object) else { return Ok(Vec::new()) };
    let keys = subject.keys();
    let mut ids = ids_sharing_keys(conn, company_id, kind, candidate_objects(object), &keys).await?;
    ids.retain(|(_, id)| !exclude.contains(id));
    ids.truncate(MAX_SCORED);
    let loaded = load_for_scoring(conn, company_id, &ids, dismissed_for).await?;
    Ok(rank(subject, loaded.iter(), exclude.first().copied()))
}

/// Scores the loaded records against `subject`: likely duplicates, best first.
fn rank<'a>(subject: &Subject, loaded: impl Iterator<Item = &'a Loaded>, own_id: Option<Uuid>) -> Vec<Candidate> {
    rank_with(loaded, own_id, |l| subject.compare(&l.subject))
}

/// `rank` with the comparison supplied (a batch compares ahead, in parallel).
fn rank_with<'a>(
    loaded: impl Iterator<Item = &'a Loaded>,
    own_id: Option<Uuid>,
    compare: impl Fn(&Loaded) -> Option<Match>,
) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = loaded
        // A lead converted into the subject contact is its origin, not a duplicate.
        .filter(|l| own_id.is_none() || l.converted_contact_id != own_id)
        .filter_map(|l| {
            let m = compare(l)?;
            (m.score >= THRESHOLD).then(|| Candidate {
                title: l.subject.title(),
                object: l.object.clone(),
                id: l.id,
                number: l.number.clone(),
                score: m.score,
                reasons: m.reasons,
            })
        })
        .collect();
    out.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.number.cmp(&b.number)));
    out
}

/// Keys looked up per statement by the batch check (SQLite allows 500 parts in a compound
/// SELECT).
const KEYS_PER_QUERY: usize = 256;

/// The index entries of each of `keys` (records of `objects` only), in index order: `None`
/// for a key shared by more than `MAX_PER_KEY` records. Two statements per chunk of keys:
/// counts read at most `MAX_PER_KEY + 1` index entries per key, then the entries of the keys
/// that are rare enough to use (common name keys are many, and reading their 51 entries only
/// to drop them cost more than everything else).
async fn key_entries(
    conn: &mut Conn<'_>,
    company_id: Uuid,
    kind: Kind,
    objects: &[&str],
    keys: &[String],
) -> Result<HashMap<String, Option<Vec<(String, Uuid)>>>> {
    let mut out: HashMap<String, Option<Vec<(String, Uuid)>>> = HashMap::with_capacity(keys.len());
    if objects.is_empty() {
        return Ok(out);
    }
    // Object names are ours (from the metadata), never user input.
    let only = format!(" AND object IN ({})", objects.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", "));
    let array = json_array_fn(conn.backend());
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let chunk = crate::db::padded(chunk);
        let mut q = Q::new(String::new());
        let pc = q.param(Value::Uuid(company_id));
        let pk = q.param(Value::Text(kind.as_str().into()));
        let parts: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let p = q.param(Value::Text(k.clone()));
                format!(
                    "SELECT {array}({i}, COUNT(*)) AS x FROM (SELECT 1 AS one FROM dedupe_keys \
                     WHERE company_id = {pc} AND kind = {pk} AND key = {p}{only} LIMIT {}) k{i}",
                    MAX_PER_KEY + 1
                )
            })
            .collect();
        q.sql = parts.join(" UNION ALL ");
        let mut usable = Vec::new();
        for item in fetch_aggregated(conn, q).await? {
            let (Some(n), Some(c)) = (item.get(0).and_then(serde_json::Value::as_u64), item.get(1).and_then(serde_json::Value::as_i64))
            else {
                continue;
            };
            let Some(key) = usize::try_from(n).ok().and_then(|n| chunk.get(n)) else { continue };
            if c > MAX_PER_KEY as i64 {
                out.insert(key.clone(), None);
            } else {
                out.insert(key.clone(), Some(Vec::new()));
                if c > 0 {
                    usable.push(key.clone());
                }
            }
        }
        if usable.is_empty() {
            continue;
        }
        let mut q = Q::new(String::new());
        let pc = q.param(Value::Uuid(company_id));
        let pk = q.param(Value::Text(kind.as_str().into()));
        let ps: Vec<String> = crate::db::padded(&usable).into_iter().map(|k| q.param(Value::Text(k))).collect();
        // In index order within a key: callers rely on it for which candidates come first.
        q.sql = format!(
            "SELECT {array}(key, object, record_id) AS x FROM dedupe_keys WHERE company_id = {pc} AND kind = {pk} AND key IN ({}){only}",
            ps.join(", ")
        );
        for item in fetch_aggregated(conn, q).await? {
            let Some(row) = row_of_json(&item, &[SqlType::Text, SqlType::Text, SqlType::Uuid]) else { continue };
            let (Some(key), Some(object), Some(id)) = (row.text(0), row.text(1), row.uuid(2)) else { continue };
            if let Some(Some(list)) = out.get_mut(&key) {
                list.push((object, id));
            }
        }
        for list in out.values_mut().flatten() {
            list.sort_by_key(|(_, id)| *id);
        }
        // A key that grew past the cap between the two statements (PostgreSQL, another
        // writer) is too common now.
        for key in &usable {
            if out.get(key).is_some_and(|l| l.as_ref().is_some_and(|l| l.len() > MAX_PER_KEY)) {
                out.insert(key.clone(), None);
            }
        }
    }
    Ok(out)
}

/// What an import batch knows about the key index: entries read from the database (one
/// set-based lookup for the whole batch instead of two statements per row), candidate
/// records already loaded, and the keys of records written in this batch that are not in the
/// index yet (they are appended with one multi-row insert by `flush`).
#[derive(Debug, Default)]
struct Batch {
    /// Index entries per key as read from the database (`None`: too common).
    stored: HashMap<String, Option<Vec<(String, Uuid)>>>,
    /// Records loaded for scoring (`None`: not live any more).
    loaded: HashMap<Uuid, Option<Loaded>>,
    /// Entries of records written in this batch, per key, in write order.
    written: HashMap<String, Vec<(String, Uuid)>>,
    /// Rows for `dedupe_keys` not written yet: (kind, key, object, record).
    pending: Vec<(Kind, String, String, Uuid)>,
    /// Comparisons done ahead by `prefetch`: new subjects with their stored candidates.
    ahead: Vec<(Subject, HashMap<Uuid, Option<Match>>)>,
    /// Positions in `ahead` by the subject's blocking keys.
    ahead_by_keys: HashMap<Vec<String>, Vec<usize>>,
    /// Every key of the index that a check of this batch could read (see `KeyFilter`).
    filter: Option<KeyFilter>,
    /// Up to how many stored keys `prefetch` reads into a filter; 0: never.
    filter_limit: usize,
    /// The company had more keys than that when the filter was to be read.
    filter_refused: bool,
    /// The subject of the record `before_write` just checked, for its `after_write`: the
    /// same values make the same subject, and preparing one (name parts, keys) is among the
    /// dearer steps of a row.
    checked: Option<Subject>,
}

/// The keys of a company's duplicate index, as a set that can answer "certainly not there"
/// (a Bloom filter: ten bits and seven probes per key, under 1 % false positives). Most keys
/// of new records are new (emails, phone numbers), and each used to cost a lookup that found
/// nothing; a batch that holds the filter looks up only keys that may exist. It is read
/// once per import (`Step::want_filter`), kept current with the keys the import writes, and
/// handed from batch to batch with the rest of `KeptIndex`. A key wrongly reported present
/// costs a lookup, never a missed duplicate.
#[derive(Debug)]
struct KeyFilter {
    bits: Vec<u64>,
    len: usize,
    /// Keys the filter was sized for; past them it is dropped and read again, larger.
    capacity: usize,
}

const FILTER_PROBES: u64 = 7;

impl KeyFilter {
    fn with_capacity(capacity: usize) -> KeyFilter {
        let bits = (capacity.max(1024) * 10).div_ceil(64);
        KeyFilter { bits: vec![0; bits], len: 0, capacity }
    }

    fn probes(&self, key: &str) -> impl Iterator<Item = usize> {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        key.hash(&mut h);
        let h = h.finish();
        let (a, b) = (h & 0xffff_ffff, (h >> 32) | 1);
        let m = self.bits.len() as u64 * 64;
        (0..FILTER_PROBES).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % m) as usize)
    }

    fn insert(&mut self, key: &str) {
        let probes: Vec<usize> = self.probes(key).collect();
        for bit in probes {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
        self.len += 1;
    }

    fn may_contain(&self, key: &str) -> bool {
        self.probes(key).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }

    fn full(&self) -> bool {
        self.len > self.capacity
    }
}

/// Reads every key of the company's index that a check of `objects` could read into a
/// filter, unless there are more than `limit`; `None` then.
async fn read_filter(conn: &mut Conn<'_>, company_id: Uuid, kind: Kind, objects: &[&str], limit: usize) -> Result<Option<KeyFilter>> {
    let only = format!("object IN ({})", objects.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", "));
    let q = Q::new(format!(
        "SELECT COUNT(*) FROM (SELECT 1 AS one FROM dedupe_keys WHERE company_id = $1 AND kind = $2 AND {only} LIMIT {}) k",
        limit + 1
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Text(kind.as_str().into()));
    let count = conn.fetch(&q, &[SqlType::Int]).await?.first().and_then(|r| r.int(0)).unwrap_or(0);
    let count = usize::try_from(count).unwrap_or(0);
    if count > limit {
        return Ok(None);
    }
    // Room to grow: an import into a small company multiplies its keys, and reading them
    // again when the filter is full costs seconds at millions of keys (10 MB of bits
    // cover about a million leads).
    let mut filter = KeyFilter::with_capacity((count * 8).max(8_000_000).min(limit.max(1)));
    if count > 0 {
        let q = Q::new(format!("SELECT key FROM dedupe_keys WHERE company_id = $1 AND kind = $2 AND {only}"))
            .bind(Value::Uuid(company_id))
            .bind(Value::Text(kind.as_str().into()));
        for row in conn.fetch(&q, &[SqlType::Text]).await? {
            if let Some(k) = row.text(0) {
                filter.insert(&k);
            }
        }
    }
    Ok(Some(filter))
}

/// The key index entries and candidate records an import batch read, kept for the next batch
/// of the same import: consecutive batches share most keys (common names, company domains)
/// and candidates, which were otherwise read again for every batch.
#[derive(Debug)]
pub struct KeptIndex {
    stored: HashMap<String, Option<Vec<(String, Uuid)>>>,
    loaded: HashMap<Uuid, Option<Loaded>>,
    filter: Option<KeyFilter>,
}

/// Beyond these sizes an import starts over from the database rather than keep growing its
/// memory (a few hundred bytes per key or record).
const KEPT_KEYS: usize = 300_000;
const KEPT_RECORDS: usize = 150_000;

/// A new subject, its blocking keys and the stored candidates to compare it with.
type Ahead<'a> = (Subject, Vec<String>, Vec<&'a Loaded>);
/// A subject, its keys and its match (if any) with each candidate.
type Compared = (Subject, Vec<String>, HashMap<Uuid, Option<Match>>);

/// Comparisons worth spreading over threads (each is a few microseconds).
const PARALLEL_COMPARISONS: usize = 2_000;

/// Compares each subject with its candidates, on up to four threads: the comparisons are
/// most of a batch's CPU time and, against stored records, do not depend on the order of the
/// batch's rows.
fn compare_ahead(work: Vec<Ahead<'_>>) -> Vec<Compared> {
    let run = |part: Vec<Ahead<'_>>| -> Vec<Compared> {
        part.into_iter()
            .map(|(subject, keys, candidates)| {
                let scores = candidates.into_iter().map(|l| (l.id, subject.compare(&l.subject))).collect();
                (subject, keys, scores)
            })
            .collect()
    };
    let total: usize = work.iter().map(|(_, _, c)| c.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    if threads < 2 || total < PARALLEL_COMPARISONS {
        return run(work);
    }
    // Parts of about equal work.
    let per = total.div_ceil(threads);
    let mut parts: Vec<Vec<Ahead<'_>>> = Vec::new();
    let mut size = per;
    for item in work {
        if size >= per {
            parts.push(Vec::new());
            size = 0;
        }
        size += item.2.len();
        if let Some(part) = parts.last_mut() {
            part.push(item);
        }
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts.into_iter().map(|part| scope.spawn(move || run(part))).collect();
        // A thread that panicked leaves its subjects out: they are compared when checked.
        handles.into_iter().filter_map(|h| h.join().ok()).flatten().collect()
    })
}

impl Batch {
    /// Likely duplicates of a new record among stored records and those written earlier in
    /// the batch: the same candidates, caps and order as `find` would see if every earlier
    /// row had been written and indexed one by one.
    async fn find(&mut self, conn: &mut Conn<'_>, company_id: Uuid, kind: Kind, object: &str, subject: &Subject) -> Result<Vec<Candidate>> {
        let keys = subject.keys();
        let objects = candidate_objects(object);
        let mut missing: Vec<String> = keys.iter().filter(|k| !self.stored.contains_key(*k)).cloned().collect();
        self.skip_absent(&mut missing);
        if !missing.is_empty() {
            self.stored.extend(key_entries(conn, company_id, kind, objects, &missing).await?);
        }
        let mut seen = HashSet::new();
        let mut ids: Vec<(String, Uuid)> = Vec::new();
        for k in &keys {
            let Some(Some(stored)) = self.stored.get(k) else { continue };
            let written: Vec<&(String, Uuid)> =
                self.written.get(k).map(|w| w.iter().filter(|(o, _)| objects.contains(&o.as_str())).collect()).unwrap_or_default();
            if stored.len() + written.len() > MAX_PER_KEY {
                continue;
            }
            // Index order within a key is by record id, written records included.
            let mut entries: Vec<&(String, Uuid)> = stored.iter().chain(written).collect();
            entries.sort_by_key(|(_, id)| *id);
            for (o, id) in entries {
                if seen.insert(*id) {
                    ids.push((o.clone(), *id));
                }
            }
        }
        ids.truncate(MAX_SCORED);
        let unknown: Vec<(String, Uuid)> = ids.iter().filter(|(_, id)| !self.loaded.contains_key(id)).cloned().collect();
        if !unknown.is_empty() {
            for chunk in unknown.chunks(512) {
                let found = load_for_scoring(conn, company_id, chunk, None).await?;
                for (_, id) in chunk {
                    self.loaded.entry(*id).or_insert(None);
                }
                for l in found {
                    self.loaded.insert(l.id, Some(l));
                }
            }
        }
        let ahead = self
            .ahead_by_keys
            .get(&keys)
            .and_then(|at| at.iter().filter_map(|i| self.ahead.get(*i)).find(|(s, _)| s == subject))
            .map(|(_, scores)| scores);
        let loaded = ids.iter().filter_map(|(_, id)| self.loaded.get(id).and_then(Option::as_ref));
        Ok(rank_with(loaded, None, |l| match ahead.and_then(|a| a.get(&l.id)) {
            Some(m) => m.clone(),
            None => subject.compare(&l.subject),
        }))
    }

    /// Reads the index entries of many subjects' keys at once.
    async fn prefetch(&mut self, conn: &mut Conn<'_>, company_id: Uuid, kind: Kind, object: &str, subjects: &[Subject]) -> Result<()> {
        if self.filter.is_none() && self.filter_limit > 0 && !self.filter_refused {
            self.filter = read_filter(conn, company_id, kind, candidate_objects(object), self.filter_limit).await?;
            self.filter_refused = self.filter.is_none();
        }
        let mut keys: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for s in subjects {
            for k in s.keys() {
                if !self.stored.contains_key(&k) && seen.insert(k.clone()) {
                    keys.push(k);
                }
            }
        }
        self.skip_absent(&mut keys);
        let entries =
            if keys.is_empty() { HashMap::new() } else { key_entries(conn, company_id, kind, candidate_objects(object), &keys).await? };
        let ids: Vec<(String, Uuid)> = entries
            .values()
            .flatten()
            .flatten()
            .filter(|(_, id)| !self.loaded.contains_key(id))
            .map(|(o, id)| (*id, o.clone()))
            .collect::<HashMap<Uuid, String>>()
            .into_iter()
            .map(|(id, o)| (o, id))
            .collect();
        self.stored.extend(entries);
        for chunk in ids.chunks(512) {
            let found = load_for_scoring(conn, company_id, chunk, None).await?;
            for (_, id) in chunk {
                self.loaded.entry(*id).or_insert(None);
            }
            for l in found {
                self.loaded.insert(l.id, Some(l));
            }
        }
        // Each subject with the stored candidates its check will see (before the batch's own
        // rows join in), compared now and in parallel; `find` looks them up.
        let mut work: Vec<Ahead<'_>> = Vec::new();
        for subject in subjects {
            let keys = subject.keys();
            let mut seen = HashSet::new();
            let mut candidates = Vec::new();
            for k in &keys {
                let Some(Some(stored)) = self.stored.get(k) else { continue };
                for (_, id) in stored {
                    if seen.insert(*id) {
                        if let Some(Some(l)) = self.loaded.get(id) {
                            candidates.push(l);
                        }
                    }
                }
            }
            work.push((subject.clone(), keys, candidates));
        }
        self.ahead.clear();
        self.ahead_by_keys.clear();
        for (subject, keys, scores) in compare_ahead(work) {
            self.ahead_by_keys.entry(keys).or_default().push(self.ahead.len());
            self.ahead.push((subject, scores));
        }
        Ok(())
    }

    /// Takes the keys the filter knows are not stored out of `keys`, and notes them as
    /// stored without entries (as `key_entries` would read them).
    fn skip_absent(&mut self, keys: &mut Vec<String>) {
        let Some(filter) = &self.filter else { return };
        keys.retain(|k| {
            if filter.may_contain(k) {
                return true;
            }
            self.stored.insert(k.clone(), Some(Vec::new()));
            false
        });
    }

    /// Notes a record written in this batch: its keys go to the index with the batch, and
    /// later rows are compared with it.
    fn add(&mut self, kind: Kind, object: &str, rec: &Record, subject: Subject) {
        for k in subject.keys() {
            self.written.entry(k.clone()).or_default().push((object.to_string(), rec.id));
            self.pending.push((kind, k, object.to_string(), rec.id));
        }
        let converted = rec.get("converted_contact_id").and_then(Value::as_uuid);
        self.loaded.insert(
            rec.id,
            Some(Loaded { object: object.to_string(), id: rec.id, number: rec.number.clone(), subject, converted_contact_id: converted }),
        );
    }

    /// Writes the pending keys (multi-row inserts) and counts them as stored from now on.
    async fn flush(&mut self, tx: &mut Tx, company_id: Uuid) -> Result<()> {
        // Rows per statement: five values each, well under both backends' parameter limits.
        for range in crate::db::stable_chunks(self.pending.len(), 1024) {
            let chunk = &self.pending[range];
            let mut q = Q::new(String::new());
            let pc = q.param(Value::Uuid(company_id));
            let rows: Vec<String> = chunk
                .iter()
                .map(|(kind, key, object, id)| {
                    format!(
                        "({pc}, {}, {}, {}, {})",
                        q.param(Value::Text(kind.as_str().into())),
                        q.param(Value::Text(key.clone())),
                        q.param(Value::Text(object.clone())),
                        q.param(Value::Uuid(*id))
                    )
                })
                .collect();
            q.sql = format!(
                "INSERT INTO dedupe_keys (company_id, kind, key, object, record_id) VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            );
            tx.execute(&q).await?;
        }
        if let Some(filter) = self.filter.as_mut() {
            for (_, key, _, _) in &self.pending {
                filter.insert(key);
            }
            if filter.full() {
                // Read again, larger, by a later batch.
                self.filter = None;
            }
        }
        self.pending.clear();
        for (key, written) in self.written.drain() {
            if let Some(entry) = self.stored.get_mut(&key) {
                if let Some(stored) = entry {
                    stored.extend(written);
                    stored.sort_by_key(|(_, id)| *id);
                }
                // As `key_entries` would read it now.
                if entry.as_ref().is_some_and(|s| s.len() > MAX_PER_KEY) {
                    *entry = None;
                }
            }
        }
        Ok(())
    }
}

/// Likely duplicates of a stored record (404 for another company's id). Pairs dismissed
/// before are not shown.
pub async fn duplicates_of(db: &Db, tenant: &Tenant, object: &'static ObjectDef, id: Uuid) -> Result<(Record, Vec<Candidate>)> {
    let rec = tenant.records(db, object).get(id).await?;
    if Kind::of(&object.name).is_none() || rec.deleted_at.is_some() {
        return Ok((rec, Vec::new()));
    }
    let mut conn = Conn::Db(db);
    let subject = subject_of(&mut conn, tenant.company_id, &object.name, &rec).await?;
    let mut exclude = vec![rec.id];
    exclude.extend(rec.get("converted_contact_id").and_then(Value::as_uuid));
    let found = find(&mut conn, tenant.company_id, &object.name, &subject, &exclude, Some(rec.id)).await?;
    Ok((rec, found))
}

// ---------------------------------------------------------------------------------------
// The key index
// ---------------------------------------------------------------------------------------

/// Replaces the keys of one record.
async fn write_keys(tx: &mut Tx, company_id: Uuid, object: &str, id: Uuid, keys: &[String], replace: bool) -> Result<()> {
    let Some(kind) = Kind::of(object) else { return Ok(()) };
    if replace {
        forget(tx, company_id, &[id]).await?;
    }
    if keys.is_empty() {
        return Ok(());
    }
    let mut q = Q::new(String::new());
    let pc = q.param(Value::Uuid(company_id));
    let pk = q.param(Value::Text(kind.as_str().into()));
    let po = q.param(Value::Text(object.into()));
    let pi = q.param(Value::Uuid(id));
    let rows: Vec<String> = keys.iter().map(|k| format!("({pc}, {pk}, {}, {po}, {pi})", q.param(Value::Text(k.clone())))).collect();
    q.sql = format!("INSERT INTO dedupe_keys (company_id, kind, key, object, record_id) VALUES {} ON CONFLICT DO NOTHING", rows.join(", "));
    tx.execute(&q).await?;
    Ok(())
}

/// Removes the keys of records (deleted or merged ones).
pub async fn forget(tx: &mut Tx, company_id: Uuid, ids: &[Uuid]) -> Result<()> {
    for chunk in ids.chunks(500) {
        let mut q = Q::new(String::new());
        let pc = q.param(Value::Uuid(company_id));
        let ps: Vec<String> = chunk.iter().map(|id| q.param(Value::Uuid(*id))).collect();
        q.sql = format!("DELETE FROM dedupe_keys WHERE company_id = {pc} AND record_id IN ({})", ps.join(", "));
        tx.execute(&q).await?;
    }
    Ok(())
}

/// Indexes a record again (after a restore).
pub async fn index_record(tx: &mut Tx, company_id: Uuid, object: &str, rec: &Record) -> Result<()> {
    if Kind::of(object).is_none() {
        return Ok(());
    }
    let subject = subject_of(&mut Conn::Tx(tx), company_id, object, rec).await?;
    write_keys(tx, company_id, object, rec.id, &subject.keys(), true).await
}

/// Identifies the key algorithm: keys of fixed samples, hashed. When `corvid_core::matching`
/// changes how it builds keys, the fingerprint changes and the next scan re-indexes.
pub fn fingerprint() -> &'static str {
    static FP: OnceLock<String> = OnceLock::new();
    FP.get_or_init(|| {
        let s = |v: &str| Some(v.to_string());
        let people = [
            Person {
                first_name: s("Priya"),
                last_name: s("Shah"),
                email: s("Priya.Shah@Example.in"),
                phone: s("+919812345678"),
                company_name: s("Acme Pvt Ltd"),
            },
            Person {
                first_name: s("Jon"),
                last_name: s("Müller-Lüdenscheidt"),
                email: None,
                phone: s("+4915112345678"),
                company_name: s("Müller GmbH"),
            },
            Person { first_name: s("R."), last_name: s("Kumar"), email: s("rk@mail.example"), phone: None, company_name: None },
        ];
        let orgs = [
            Org { name: s("Acme Technologies Pvt. Ltd."), website: s("https://www.acme.example/about"), gstin: s("27AAPFU0939F1ZV") },
            Org { name: s("Zeta LLP"), website: None, gstin: None },
        ];
        let mut h = Sha256::new();
        h.update(INDEX_FORMAT);
        for p in &people {
            for k in Subject::person(p.clone()).keys() {
                h.update(k.as_bytes());
                h.update([0]);
            }
            h.update([1]);
        }
        for o in &orgs {
            for k in Subject::Org(o.clone()).keys() {
                h.update(k.as_bytes());
                h.update([0]);
            }
            h.update([1]);
        }
        hex::encode(&h.finalize()[..8])
    })
}

/// Rebuilds the company's key index if it was built with another key algorithm (or never,
/// for records written before duplicate detection). Streams the records page by page.
/// Returns how many records were indexed.
pub async fn ensure_index(db: &Db, company_id: Uuid, progress: &(dyn Fn(i64, &str) -> bool + Sync)) -> Result<Option<i64>> {
    let q = Q::new("SELECT fingerprint FROM dedupe_index_state WHERE company_id = $1").bind(Value::Uuid(company_id));
    if db.fetch_one(&q, &[SqlType::Text]).await?.and_then(|r| r.text(0)).as_deref() == Some(fingerprint()) {
        return Ok(Some(0));
    }
    let mut done = 0i64;
    for object in ["leads", "contacts", "accounts"] {
        let (cols, from) = loaded_select(object);
        let mut after = Uuid::nil();
        loop {
            let q = Q::new(format!(
                "SELECT '{object}', {cols}, r.deleted_at FROM {from} WHERE r.company_id = $1 AND r.id > $2 ORDER BY r.id LIMIT {INDEX_PAGE}"
            ))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(after));
            let mut types = LOADED_TYPES.to_vec();
            types.push(SqlType::Timestamp);
            let rows = db.fetch(&q, &types).await?;
            let Some(last) = rows.last().and_then(|r| r.uuid(1)) else { break };
            after = last;
            let mut tx = db.begin().await?;
            let ids: Vec<Uuid> = rows.iter().filter_map(|r| r.uuid(1)).collect();
            forget(&mut tx, company_id, &ids).await?;
            for r in &rows {
                let Some(l) = loaded_from(r, 0) else { continue };
                if r.timestamp(9).is_none() {
                    write_keys(&mut tx, company_id, object, l.id, &l.subject.keys(), false).await?;
                }
            }
            tx.commit().await?;
            done += rows.len() as i64;
            if !progress(done, &format!("indexing: {done} records")) {
                return Ok(None);
            }
        }
    }
    db.execute(
        &Q::new(
            "INSERT INTO dedupe_index_state (company_id, fingerprint, indexed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (company_id) DO UPDATE SET fingerprint = excluded.fingerprint, indexed_at = excluded.indexed_at",
        )
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(fingerprint().into()))
        .bind(Value::Timestamp(now_micros())),
    )
    .await?;
    Ok(Some(done))
}

// ---------------------------------------------------------------------------------------
// The pipeline step
// ---------------------------------------------------------------------------------------

/// The step's state for one transaction or import batch: the object's kind and the policy,
/// read once.
#[derive(Debug, Default)]
pub struct Step {
    kind: Option<Kind>,
    policy: Policy,
    /// Import batches: set-based lookups and deferred key writes (`for_batch`).
    batch: Option<Batch>,
}

fn is_set(v: Option<&Value>) -> bool {
    v.is_some_and(|v| !v.is_null())
}

/// Marks a lead as a duplicate of the best candidate, or clears marks the engine made
/// earlier (they carry a score) when nothing matches any more.
fn apply_flags(changes: &mut Changes, existing: Option<&Record>, found: &[Candidate]) {
    let f = &mut changes.fields;
    if let Some(best) = found.first() {
        let lead = found.iter().find(|c| c.object == "leads");
        let mut reasons: Vec<String> = Vec::new();
        if best.object != "leads" {
            reasons.push(format!(
                "matches {} {} ({})",
                corvid_core::object(&best.object).map_or("record", |o| o.singular.as_str()),
                best.number,
                best.title
            ));
        }
        reasons.extend(best.reasons.iter().cloned());
        f.insert("is_duplicate".into(), Value::Bool(true));
        f.insert("duplicate_of_id".into(), lead.map_or(Value::Null(SqlType::Uuid), |c| Value::Uuid(c.id)));
        f.insert("duplicate_score".into(), Value::Int(best.score.into()));
        f.insert("duplicate_reasons".into(), Value::Json(json!(reasons)));
    } else if existing.is_some_and(|e| is_set(e.fields.get("duplicate_score"))) {
        clear_flags(changes);
    }
}

fn clear_flags(changes: &mut Changes) {
    let f = &mut changes.fields;
    f.insert("is_duplicate".into(), Value::Bool(false));
    f.insert("duplicate_of_id".into(), Value::Null(SqlType::Uuid));
    f.insert("duplicate_score".into(), Value::Null(SqlType::Int));
    f.insert("duplicate_reasons".into(), Value::Null(SqlType::Json));
}

fn describe(c: &Candidate) -> String {
    format!("{} {} ({}; score {})", c.number, c.title, c.reasons.join(", "), c.score)
}

impl Step {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Step> {
        match Kind::of(&object.name) {
            None => Ok(Step::default()),
            Some(kind) => Ok(Step { kind: Some(kind), policy: policy_in(tx, tenant.company_id).await?, batch: None }),
        }
    }

    /// Batch mode (imports): checks of new records read the index set-based and keys of
    /// new records are written by `flush`. Updates keep the per-record path.
    pub fn for_batch(&mut self) {
        if self.kind.is_some() {
            self.batch = Some(Batch::default());
        }
    }

    /// Whether the step checks records of this object under the policy, i.e. whether
    /// `prefetch` is worth its queries.
    pub fn checks_new(&self, object: &str) -> bool {
        self.kind.is_some()
            && match self.policy {
                Policy::Allow => false,
                Policy::Flag => object == "leads",
                Policy::Block => true,
            }
    }

    /// Reads, for a batch of new records, the index entries of all their keys and the
    /// candidate records at once. Only a hint: a key not read here is read when its record
    /// is checked.
    pub async fn prefetch(&mut self, tx: &mut Tx, company_id: Uuid, object: &str, subjects: &[Subject]) -> Result<()> {
        let (Some(kind), Some(batch)) = (self.kind, self.batch.as_mut()) else { return Ok(()) };
        batch.prefetch(&mut Conn::Tx(tx), company_id, kind, object, subjects).await
    }

    /// Writes the keys of the batch's new records; lookups afterwards count them as stored.
    pub async fn flush(&mut self, tx: &mut Tx, company_id: Uuid) -> Result<()> {
        match self.batch.as_mut() {
            Some(b) => b.flush(tx, company_id).await,
            None => Ok(()),
        }
    }

    /// What this batch knows of the key index, to be handed to the next batch of the same
    /// import with `keep_index` once this batch has been flushed and committed. Pending keys
    /// must have been flushed (they are dropped otherwise, with everything read).
    pub fn kept_index(&mut self) -> Option<KeptIndex> {
        let mut b = self.batch.take()?;
        if !b.pending.is_empty() {
            return None;
        }
        // What was read is only a copy of the committed index: past the bounds it goes, and
        // the filter, which is small, stays.
        if b.stored.len() > KEPT_KEYS || b.loaded.len() > KEPT_RECORDS {
            b.stored.clear();
            b.loaded.clear();
        }
        Some(KeptIndex { stored: b.stored, loaded: b.loaded, filter: b.filter })
    }

    /// Lets this batch read the company's keys into a filter (`KeyFilter`) if there are at
    /// most `limit` of them and no earlier batch handed one over.
    pub fn want_filter(&mut self, limit: usize) {
        if let Some(b) = self.batch.as_mut() {
            b.filter_limit = limit;
        }
    }

    /// Whether this batch found more keys than it may read into a filter.
    pub fn filter_refused(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| b.filter_refused)
    }

    /// Starts this batch from what an earlier batch of the import read. The caller vouches
    /// that nobody else changed records since that batch committed (see `import`).
    pub fn keep_index(&mut self, kept: KeptIndex) {
        if let Some(b) = self.batch.as_mut() {
            b.stored = kept.stored;
            b.loaded = kept.loaded;
            b.filter = kept.filter;
        }
    }

    /// Forgets what the batch read (after an update changed the index under it).
    fn invalidate(&mut self) {
        if let Some(b) = self.batch.as_mut() {
            b.stored.clear();
            b.loaded.clear();
            b.ahead.clear();
            b.ahead_by_keys.clear();
            // The update wrote keys the filter does not know.
            b.filter = None;
            b.filter_refused = true;
        }
    }

    /// Checks the record about to be written against the company's records.
    pub async fn before_write(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &mut Changes, _audit: &mut Vec<Change>) -> Result<()> {
        if self.kind.is_none() {
            return Ok(());
        }
        let object = w.object.name.as_str();
        let is_lead = object == "leads";
        let recheck = w.channel == RECHECK;
        let changed = match w.existing {
            None => true,
            Some(e) => match_fields(object).iter().any(|f| changes.fields.get(*f).is_some_and(|v| e.fields.get(*f) != Some(v))),
        };
        if !changed && !recheck {
            // "Not a duplicate" from a person also drops what the engine had found.
            if is_lead && changes.fields.get("is_duplicate") == Some(&Value::Bool(false)) && !changes.fields.contains_key("duplicate_of_id")
            {
                clear_flags(changes);
            }
            return Ok(());
        }
        let policy = if recheck { Policy::Flag } else { self.policy };
        if policy == Policy::Allow || (policy == Policy::Flag && !is_lead) {
            return Ok(());
        }
        let company_id = w.tenant.company_id;
        let value = |f: &str| text_of(changes.fields.get(f).or_else(|| w.existing.and_then(|e| e.fields.get(f))));
        let mut conn = Conn::Tx(tx);
        let account = if object == "contacts" {
            let id =
                changes.fields.get("account_id").or_else(|| w.existing.and_then(|e| e.fields.get("account_id"))).and_then(Value::as_uuid);
            account_name(&mut conn, company_id, id).await?
        } else {
            None
        };
        let subject = subject_from(object, value, account);
        let mut exclude: Vec<Uuid> = w.existing.map(|e| e.id).into_iter().collect();
        exclude.extend(w.existing.and_then(|e| e.get("converted_contact_id")).and_then(Value::as_uuid));
        let found = match (self.batch.as_mut(), self.kind, w.existing) {
            (Some(batch), Some(kind), None) => batch.find(&mut conn, company_id, kind, object, &subject).await?,
            _ => find(&mut conn, company_id, object, &subject, &exclude, w.existing.map(|e| e.id)).await?,
        };
        if policy == Policy::Block && !found.is_empty() {
            if w.channel == "import" {
                let what = found.iter().take(3).map(describe).collect::<Vec<_>>().join("; ");
                return Err(StoreError::Invalid(vec![FieldError::new(subject.main_field(), format!("looks like a duplicate of {what}"))]));
            }
            return Err(StoreError::Duplicate(found));
        }
        if let (Some(batch), None) = (self.batch.as_mut(), w.existing) {
            batch.checked = Some(subject);
        }
        if is_lead {
            apply_flags(changes, w.existing, &found);
        }
        Ok(())
    }

    /// Keeps the record's keys in the index.
    pub async fn after_write(&mut self, tx: &mut Tx, w: &Write<'_>, record: &Record, _audit: &mut Vec<Change>) -> Result<()> {
        if self.kind.is_none() {
            return Ok(());
        }
        let object = w.object.name.as_str();
        if let Some(old) = w.existing {
            if match_fields(object).iter().all(|f| old.fields.get(*f) == record.fields.get(*f)) {
                return Ok(());
            }
        }
        if let (Some(batch), Some(kind), None) = (self.batch.as_mut(), self.kind, w.existing) {
            let subject = match batch.checked.take() {
                Some(checked) if made_from(&checked, object, record) => checked,
                _ => subject_of(&mut Conn::Tx(tx), w.tenant.company_id, object, record).await?,
            };
            batch.add(kind, object, record, subject);
            return Ok(());
        }
        let subject = subject_of(&mut Conn::Tx(tx), w.tenant.company_id, object, record).await?;
        write_keys(tx, w.tenant.company_id, object, record.id, &subject.keys(), w.existing.is_some()).await?;
        // The index changed under what the batch read.
        self.invalidate();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Dismissals
// ---------------------------------------------------------------------------------------

/// Records that `id` and `other_id` are not duplicates, so the pair is not shown or flagged
/// again, and checks the record again (its flag may go, or point at the next candidate).
/// Returns the record as it is now.
pub async fn dismiss(db: &Db, tenant: &Tenant, object: &'static ObjectDef, id: Uuid, other_id: Uuid) -> Result<Record> {
    let records = tenant.records(db, object);
    if !tenant.role.can_write() {
        return Err(StoreError::Forbidden("your role can read but not change records".into()));
    }
    if id == other_id {
        return Err(StoreError::invalid("other_id", "must be another record than the one dismissed from"));
    }
    let custom = records.custom_fields().await?;
    let mut tx = db.begin().await?;
    let lock = tx.for_update();
    let q = Q::new(format!("SELECT number FROM {} WHERE company_id = $1 AND id = $2 AND deleted_at IS NULL{lock}", object.name))
        .bind(Value::Uuid(tenant.company_id))
        .bind(Value::Uuid(id));
    let own = tx.fetch_one(&q, &[SqlType::Text]).await?.and_then(|r| r.text(0)).ok_or(StoreError::NotFound)?;
    // The other record: any object this one is matched against, in the same company.
    let mut other = None;
    for o in candidate_objects(&object.name) {
        let q = Q::new(format!("SELECT number FROM {o} WHERE company_id = $1 AND id = $2"))
            .bind(Value::Uuid(tenant.company_id))
            .bind(Value::Uuid(other_id));
        if let Some(n) = tx.fetch_one(&q, &[SqlType::Text]).await?.and_then(|r| r.text(0)) {
            other = Some((*o, n));
            break;
        }
    }
    let Some((other_object, other_number)) = other else {
        return Err(StoreError::NotFound);
    };
    let now = now_micros();
    let mut inserted = 0;
    for (a, b) in [(id, other_id), (other_id, id)] {
        inserted += tx
            .execute(
                &Q::new(
                    "INSERT INTO dedupe_dismissals (company_id, record_id, other_id, dismissed_at, dismissed_by) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(Value::Uuid(tenant.company_id))
                .bind(Value::Uuid(a))
                .bind(Value::Uuid(b))
                .bind(Value::Timestamp(now))
                .bind(Value::Uuid(tenant.user_id)),
            )
            .await?;
    }
    if inserted > 0 {
        let change = |obj: &str, rid: Uuid, number: &str| Change {
            object: obj.into(),
            record_id: Some(rid),
            action: "dismiss_duplicate".into(),
            field: Some("duplicate".into()),
            old: None,
            new: Some(format!("not a duplicate of {number}")),
        };
        audit::append(&mut tx, &tenant.audit, &[change(&object.name, id, &other_number), change(other_object, other_id, &own)]).await?;
    }
    let mut pipeline = records.pipeline(&mut tx).await?;
    let empty = serde_json::Map::new();
    let rec = records.update_in(&mut tx, &custom, &mut pipeline, id, &empty, RECHECK).await?;
    // The other lead may have been flagged against this one.
    if other_object == object.name {
        match records.update_in(&mut tx, &custom, &mut pipeline, other_id, &empty, RECHECK).await {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    pipeline.finish(&mut tx).await?;
    tx.commit().await?;
    Ok(rec)
}

// ---------------------------------------------------------------------------------------
// The whole-base scan
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct Scan {
    pub id: Uuid,
    pub state: String,
    pub job_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Records (re)indexed before scanning, when the key algorithm had changed.
    pub reindexed: i64,
    /// Keys shared by 2 to `MAX_PER_KEY` records; each is a block whose pairs are scored.
    pub blocks: i64,
    /// Keys shared by more records than that, left out.
    pub skipped_keys: i64,
    pub pairs_compared: i64,
    pub clusters: i64,
    pub records_in_clusters: i64,
    pub error: Option<String>,
}

const SCAN_COLS: &str = "id, state, job_id, created_by, created_at, started_at, finished_at, reindexed, blocks, skipped_keys, \
                         pairs_compared, clusters, records_in_clusters, error";
const SCAN_TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
];

fn ts(r: &Row, i: usize) -> Option<String> {
    r.timestamp(i).map(|t| corvid_core::value::format_timestamp(&t))
}

fn scan_from(r: &Row) -> Scan {
    Scan {
        id: r.uuid(0).unwrap_or_default(),
        state: r.text(1).unwrap_or_default(),
        job_id: r.uuid(2),
        created_by: r.uuid(3),
        created_at: ts(r, 4).unwrap_or_default(),
        started_at: ts(r, 5),
        finished_at: ts(r, 6),
        reindexed: r.int(7).unwrap_or(0),
        blocks: r.int(8).unwrap_or(0),
        skipped_keys: r.int(9).unwrap_or(0),
        pairs_compared: r.int(10).unwrap_or(0),
        clusters: r.int(11).unwrap_or(0),
        records_in_clusters: r.int(12).unwrap_or(0),
        error: r.text(13),
    }
}

/// A group of records that are likely one person (or organisation).
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub seq: i64,
    pub kind: String,
    pub size: i64,
    /// The best pair score inside the cluster.
    pub score: i64,
    /// `[{object, id, number, title}]`
    pub members: serde_json::Value,
    /// The matched pairs: `[{a, b, score, reasons}]`
    pub pairs: serde_json::Value,
}

impl Cluster {
    /// Ids of the members of one object (leads for the review page).
    pub fn ids_of(&self, object: &str) -> Vec<Uuid> {
        self.members
            .as_array()
            .map(|m| {
                m.iter().filter(|x| x["object"] == object).filter_map(|x| x["id"].as_str().and_then(|s| Uuid::parse_str(s).ok())).collect()
            })
            .unwrap_or_default()
    }
}

pub async fn get_scan(db: &Db, company_id: Uuid, id: Uuid) -> Result<Scan> {
    let q = Q::new(format!("SELECT {SCAN_COLS} FROM dedupe_scans WHERE company_id = $1 AND id = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    db.fetch_one(&q, SCAN_TYPES).await?.map(|r| scan_from(&r)).ok_or(StoreError::NotFound)
}

/// The company's latest scans, newest first.
pub async fn list_scans(db: &Db, company_id: Uuid, limit: usize) -> Result<Vec<Scan>> {
    let q = Q::new(format!(
        "SELECT {SCAN_COLS} FROM dedupe_scans WHERE company_id = $1 ORDER BY created_at DESC, id DESC LIMIT {}",
        limit.min(200)
    ))
    .bind(Value::Uuid(company_id));
    Ok(db.fetch(&q, SCAN_TYPES).await?.iter().map(scan_from).collect())
}

/// A page of a scan's clusters (best first) after `after_seq`, and the next cursor.
pub async fn clusters(db: &Db, company_id: Uuid, scan_id: Uuid, after_seq: i64, limit: usize) -> Result<(Vec<Cluster>, Option<i64>)> {
    let limit = limit.clamp(1, 200);
    let q = Q::new(format!(
        "SELECT seq, kind, size, score, members, pairs FROM dedupe_clusters WHERE company_id = $1 AND scan_id = $2 AND seq > $3 ORDER BY seq LIMIT {}",
        limit + 1
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(scan_id))
    .bind(Value::Int(after_seq));
    let types = [SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Int, SqlType::Json, SqlType::Json];
    let mut out: Vec<Cluster> = db
        .fetch(&q, &types)
        .await?
        .iter()
        .map(|r| Cluster {
            seq: r.int(0).unwrap_or(0),
            kind: r.text(1).unwrap_or_default(),
            size: r.int(2).unwrap_or(0),
            score: r.int(3).unwrap_or(0),
            members: r.json(4).unwrap_or_default(),
            pairs: r.json(5).unwrap_or_default(),
        })
        .collect();
    let next = if out.len() > limit {
        out.truncate(limit);
        out.last().map(|c| c.seq)
    } else {
        None
    };
    Ok((out, next))
}

/// Starts a scan: the scan row and its job in one transaction, audited. While a scan of the
/// company is queued or running, that one is returned instead (`false`).
pub async fn start_scan(db: &Db, ctx: &AuditCtx) -> Result<(Scan, bool)> {
    let mut tx = db.begin().await?;
    let q = Q::new(format!(
        "SELECT {SCAN_COLS} FROM dedupe_scans WHERE company_id = $1 AND state IN ('queued', 'running') ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(Value::Uuid(ctx.company_id));
    if let Some(r) = tx.fetch_one(&q, SCAN_TYPES).await? {
        return Ok((scan_from(&r), false));
    }
    let id = crate::new_id();
    let now = now_micros();
    tx.execute(
        &Q::new("INSERT INTO dedupe_scans (id, company_id, state, created_by, created_at) VALUES ($1, $2, 'queued', $3, $4)")
            .bind(Value::Uuid(id))
            .bind(Value::Uuid(ctx.company_id))
            .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
            .bind(Value::Timestamp(now)),
    )
    .await?;
    let job = jobs::NewJob::new(SCAN_JOB, json!({"scan_id": id}))
        .company(ctx.company_id)
        .idempotency_key(format!("dedupe.scan:{id}"))
        .max_attempts(3)
        .created_by(ctx.actor_id);
    let (job, _) = jobs::enqueue_tx(&mut tx, &job, now).await?;
    tx.execute(&Q::new("UPDATE dedupe_scans SET job_id = $1 WHERE id = $2").bind(Value::Uuid(job.id)).bind(Value::Uuid(id))).await?;
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "dedupe_scan".into(),
            record_id: Some(id),
            action: "create".into(),
            field: Some("job_id".into()),
            old: None,
            new: Some(job.id.to_string()),
        }],
    )
    .await?;
    let q = Q::new(format!("SELECT {SCAN_COLS} FROM dedupe_scans WHERE id = $1")).bind(Value::Uuid(id));
    let scan = tx.fetch_one(&q, SCAN_TYPES).await?.map(|r| scan_from(&r)).ok_or(StoreError::NotFound)?;
    tx.commit().await?;
    Ok((scan, true))
}

/// Union-find over the records that matched something.
#[derive(Default)]
struct Clusters {
    index: HashMap<Uuid, usize>,
    parent: Vec<usize>,
}

impl Clusters {
    fn slot(&mut self, id: Uuid) -> usize {
        let next = self.parent.len();
        let i = *self.index.entry(id).or_insert(next);
        if i == next {
            self.parent.push(next);
        }
        i
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: Uuid, b: Uuid) {
        let (x, y) = (self.slot(a), self.slot(b));
        let (rx, ry) = (self.root(x), self.root(y));
        if rx != ry {
            self.parent[rx] = ry;
        }
    }
}

fn pair_key(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b {
        (a, b)
    } else {
        (b, a)
    }
}

/// The keys of `kind` shared by 2 to `MAX_PER_KEY` records (the blocks), and how many keys
/// are shared by more (skipped). One aggregate pass over the key index: SQLite walks its
/// clustered primary key in order; PostgreSQL reads the table once (sequentially when it has
/// no statistics) instead of fetching rows in key order from all over the heap.
async fn block_keys(db: &Db, company_id: Uuid, kind: Kind) -> Result<(Vec<String>, i64)> {
    let q = Q::new("SELECT key, COUNT(*) FROM dedupe_keys WHERE company_id = $1 AND kind = $2 GROUP BY key HAVING COUNT(*) >= 2")
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(kind.as_str().into()));
    let mut keys = Vec::new();
    let mut skipped = 0;
    for r in db.fetch(&q, &[SqlType::Text, SqlType::Int]).await? {
        match (r.text(0), r.int(1)) {
            (Some(k), Some(n)) if n <= MAX_PER_KEY as i64 => keys.push(k),
            (Some(_), Some(_)) => skipped += 1,
            _ => {}
        }
    }
    keys.sort_unstable();
    Ok((keys, skipped))
}

/// The records sharing each of `keys` (object, id), by key: index lookups only.
async fn block_members(db: &Db, company_id: Uuid, kind: Kind, keys: &[String]) -> Result<Vec<Vec<(String, Uuid)>>> {
    let mut q = Q::new(String::new());
    let pc = q.param(Value::Uuid(company_id));
    let pk = q.param(Value::Text(kind.as_str().into()));
    let ps: Vec<String> = keys.iter().map(|k| q.param(Value::Text(k.clone()))).collect();
    q.sql =
        format!("SELECT key, object, record_id FROM dedupe_keys WHERE company_id = {pc} AND kind = {pk} AND key IN ({})", ps.join(", "));
    let mut by_key: HashMap<String, Vec<(String, Uuid)>> = HashMap::new();
    for r in db.fetch(&q, &[SqlType::Text, SqlType::Text, SqlType::Uuid]).await? {
        if let (Some(k), Some(o), Some(id)) = (r.text(0), r.text(1), r.uuid(2)) {
            by_key.entry(k).or_default().push((o, id));
        }
    }
    Ok(keys.iter().filter_map(|k| by_key.remove(k)).filter(|m| m.len() >= 2).collect())
}

struct Edge {
    a: Uuid,
    b: Uuid,
    score: u8,
    reasons: Vec<String>,
}

/// Runs scan `scan_id`: brings the key index up to date, then for people and organisations
/// finds the blocks, scores the pairs inside each block once (a chunk of blocks at a time),
/// joins matching records into clusters and stores them. `progress(done, message)` is called
/// between chunks;
/// returning `false` stops the scan (`Ok(None)`: cancelled). Running it again replaces the
/// scan's clusters, so a retried job does no harm.
pub async fn run_scan(db: &Db, company_id: Uuid, scan_id: Uuid, progress: &(dyn Fn(i64, &str) -> bool + Sync)) -> Result<Option<Scan>> {
    get_scan(db, company_id, scan_id).await?;
    db.execute(
        &Q::new("UPDATE dedupe_scans SET state = 'running', started_at = $1, error = NULL WHERE company_id = $2 AND id = $3")
            .bind(Value::Timestamp(now_micros()))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(scan_id)),
    )
    .await?;
    let Some(reindexed) = ensure_index(db, company_id, progress).await? else {
        return finish_cancelled(db, company_id, scan_id).await;
    };
    if db.backend() == Backend::Postgres {
        // Fresh statistics for the tables read below: without them (autovacuum off, or right
        // after a large import) the planner believes they are tiny and answers the lookups of
        // blocks and records by id with scans of the whole company. ANALYZE samples a fixed
        // number of rows; it costs about a second at a million leads.
        db.execute(&Q::new("ANALYZE dedupe_keys, leads, contacts, accounts")).await?;
    }
    let q = Q::new("SELECT record_id, other_id FROM dedupe_dismissals WHERE company_id = $1").bind(Value::Uuid(company_id));
    let dismissed: HashSet<(Uuid, Uuid)> =
        db.fetch(&q, &[SqlType::Uuid, SqlType::Uuid]).await?.iter().filter_map(|r| Some(pair_key(r.uuid(0)?, r.uuid(1)?))).collect();

    let mut uf = Clusters::default();
    let mut compared: HashSet<(Uuid, Uuid)> = HashSet::new();
    let mut edges: Vec<Edge> = Vec::new();
    let mut info: HashMap<Uuid, (String, String, String, &'static str)> = HashMap::new();
    let (mut blocks, mut skipped) = (0i64, 0i64);
    for kind in [Kind::Person, Kind::Org] {
        let (keys, too_common) = block_keys(db, company_id, kind).await?;
        skipped += too_common;
        for chunk in keys.chunks(SCAN_CHUNK) {
            let members = block_members(db, company_id, kind, chunk).await?;
            // The records of these blocks, loaded once (deleted ones drop out).
            let ids: Vec<(String, Uuid)> = members.iter().flatten().cloned().collect::<HashSet<_>>().into_iter().collect();
            let mut loaded: HashMap<Uuid, Loaded> = HashMap::new();
            for part in ids.chunks(500) {
                let mut conn = Conn::Db(db);
                loaded.extend(load_for_scoring(&mut conn, company_id, part, None).await?.into_iter().map(|l| (l.id, l)));
            }
            for block in &members {
                blocks += 1;
                let block: Vec<&Loaded> = block.iter().filter_map(|(_, id)| loaded.get(id)).collect();
                for (x, a) in block.iter().enumerate() {
                    for b in &block[x + 1..] {
                        let pk = pair_key(a.id, b.id);
                        if a.id == b.id || dismissed.contains(&pk) || !compared.insert(pk) {
                            continue;
                        }
                        // A lead and the contact it was converted into are one person on purpose.
                        if a.converted_contact_id == Some(b.id) || b.converted_contact_id == Some(a.id) {
                            continue;
                        }
                        let Some(m) = a.subject.compare(&b.subject) else { continue };
                        if m.score < THRESHOLD {
                            continue;
                        }
                        for x in [a, b] {
                            info.entry(x.id).or_insert_with(|| (x.object.clone(), x.number.clone(), x.subject.title(), kind.as_str()));
                        }
                        uf.union(a.id, b.id);
                        edges.push(Edge { a: a.id, b: b.id, score: m.score, reasons: m.reasons });
                    }
                }
            }
            if !progress(blocks, &format!("{blocks} blocks checked, {} matching pairs", edges.len())) {
                return finish_cancelled(db, company_id, scan_id).await;
            }
        }
    }

    // Group members and edges by cluster root; best clusters first.
    let mut groups: HashMap<usize, (Vec<Uuid>, Vec<Edge>)> = HashMap::new();
    let ids: Vec<Uuid> = uf.index.keys().copied().collect();
    for id in ids {
        let slot = uf.slot(id);
        let root = uf.root(slot);
        groups.entry(root).or_default().0.push(id);
    }
    for e in edges {
        let slot = uf.slot(e.a);
        let root = uf.root(slot);
        groups.entry(root).or_default().1.push(e);
    }
    let mut list: Vec<(Vec<Uuid>, Vec<Edge>)> = groups.into_values().collect();
    let best = |es: &[Edge]| es.iter().map(|e| e.score).max().unwrap_or(0);
    list.sort_by(|a, b| best(&b.1).cmp(&best(&a.1)).then(b.0.len().cmp(&a.0.len())).then(a.0.iter().min().cmp(&b.0.iter().min())));
    let total_records: usize = list.iter().map(|(m, _)| m.len()).sum();

    let mut tx = db.begin().await?;
    tx.execute(
        &Q::new("DELETE FROM dedupe_clusters WHERE company_id = $1 AND scan_id = $2")
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(scan_id)),
    )
    .await?;
    let mut seq = 0i64;
    for chunk in list.chunks(200) {
        let mut q = Q::new(String::new());
        let mut rows = Vec::new();
        for (members, es) in chunk {
            seq += 1;
            let mut members = members.clone();
            members.sort_by_key(|id| info.get(id).map(|i| i.1.clone()).unwrap_or_default());
            let kind = members.first().and_then(|id| info.get(id)).map_or("person", |i| i.3);
            let mj: Vec<serde_json::Value> = members
                .iter()
                .map(|id| {
                    let (o, n, t, _) = info.get(id).cloned().unwrap_or_default();
                    json!({"object": o, "id": id, "number": n, "title": t})
                })
                .collect();
            let pj: Vec<serde_json::Value> =
                es.iter().map(|e| json!({"a": e.a, "b": e.b, "score": e.score, "reasons": e.reasons})).collect();
            let vals = [
                Value::Uuid(scan_id),
                Value::Int(seq),
                Value::Uuid(company_id),
                Value::Text(kind.into()),
                Value::Int(members.len() as i64),
                Value::Int(best(es).into()),
                Value::Json(json!(mj)),
                Value::Json(json!(pj)),
            ];
            let ps: Vec<String> = vals.into_iter().map(|v| q.param(v)).collect();
            rows.push(format!("({})", ps.join(", ")));
        }
        q.sql =
            format!("INSERT INTO dedupe_clusters (scan_id, seq, company_id, kind, size, score, members, pairs) VALUES {}", rows.join(", "));
        tx.execute(&q).await?;
    }
    tx.execute(
        &Q::new(
            "UPDATE dedupe_scans SET state = 'succeeded', finished_at = $1, reindexed = $2, blocks = $3, skipped_keys = $4, \
             pairs_compared = $5, clusters = $6, records_in_clusters = $7 WHERE company_id = $8 AND id = $9",
        )
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Int(reindexed))
        .bind(Value::Int(blocks))
        .bind(Value::Int(skipped))
        .bind(Value::Int(compared.len() as i64))
        .bind(Value::Int(seq))
        .bind(Value::Int(total_records as i64))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(scan_id)),
    )
    .await?;
    tx.commit().await?;
    get_scan(db, company_id, scan_id).await.map(Some)
}

async fn finish_cancelled(db: &Db, company_id: Uuid, scan_id: Uuid) -> Result<Option<Scan>> {
    set_scan_state(db, company_id, scan_id, "cancelled", None).await?;
    Ok(None)
}

/// Marks a scan finished without a report (`failed` with the error, or `cancelled`).
pub async fn set_scan_state(db: &Db, company_id: Uuid, scan_id: Uuid, state: &str, error: Option<&str>) -> Result<()> {
    db.execute(
        &Q::new("UPDATE dedupe_scans SET state = $1, error = $2, finished_at = $3 WHERE company_id = $4 AND id = $5")
            .bind(Value::Text(state.into()))
            .bind(error.map_or(Value::Null(SqlType::Text), |e| Value::Text(e.chars().take(1000).collect())))
            .bind(Value::Timestamp(now_micros()))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(scan_id)),
    )
    .await?;
    Ok(())
}

/// Benchmark support (the ignored `dedupe_benchmark` test; `corvid bench` can call it): a
/// synthetic base of leads written straight to the tables with their keys, then timings of
/// single checks against it and of the whole-base scan. Never used by the app itself.
pub mod bench {
    use super::*;
    use std::time::Instant;

    #[derive(Debug, Clone, Serialize)]
    pub struct Report {
        pub backend: String,
        pub leads: u64,
        pub seeded_duplicates: u64,
        pub seed_secs: f64,
        pub checks: usize,
        pub check_p50_ms: f64,
        pub check_p99_ms: f64,
        pub check_max_ms: f64,
        pub checks_flagged: usize,
        pub scan_secs: f64,
        pub scan: Option<Scan>,
    }

    const FIRST: &[&str] = &[
        "Aarav", "Vivaan", "Aditya", "Vihaan", "Arjun", "Sai", "Reyansh", "Ayaan", "Krishna", "Ishaan", "Ananya", "Diya", "Saanvi",
        "Aadhya", "Pari", "Anika", "Navya", "Myra", "Sara", "Ira", "Rahul", "Priya", "Amit", "Neha", "Rohan", "Pooja", "Vikram", "Sneha",
        "Karan", "Kavya", "John", "Mary", "James", "Linda", "Robert", "Susan", "Michael", "Karen", "William", "Lisa", "David", "Nancy",
        "Richard", "Betty", "Thomas", "Sandra", "Mohammed", "Fatima", "Ali", "Aisha", "Wei", "Li", "Hiroshi", "Yuki", "Carlos", "Maria",
        "Jose", "Ana", "Lukas", "Emma",
    ];
    const LAST: &[&str] = &[
        "Sharma",
        "Verma",
        "Gupta",
        "Singh",
        "Kumar",
        "Patel",
        "Shah",
        "Mehta",
        "Iyer",
        "Nair",
        "Reddy",
        "Rao",
        "Joshi",
        "Kapoor",
        "Malhotra",
        "Chopra",
        "Banerjee",
        "Chatterjee",
        "Mukherjee",
        "Das",
        "Bose",
        "Sen",
        "Pillai",
        "Menon",
        "Kulkarni",
        "Deshpande",
        "Jain",
        "Agarwal",
        "Bansal",
        "Mittal",
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Rodriguez",
        "Martinez",
        "Wilson",
        "Anderson",
        "Taylor",
        "Thomas",
        "Moore",
        "Jackson",
        "Martin",
        "Lee",
        "Thompson",
        "White",
        "Khan",
        "Ahmed",
        "Chen",
        "Wang",
        "Tanaka",
        "Suzuki",
        "Silva",
        "Santos",
        "Müller",
        "Schmidt",
    ];
    const DUPLICATE_EVERY: u64 = 50;

    fn mix(mut x: u64) -> u64 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    /// Person `i` of the synthetic base: unique email and phone, names from small lists (so
    /// name keys make real blocks). Every 50th person repeats an earlier one with a variation.
    pub fn person(i: u64) -> Person {
        if i > 0 && i.is_multiple_of(DUPLICATE_EVERY) {
            let j = mix(i) % i;
            return variant(j, mix(i ^ 7));
        }
        original(i)
    }

    fn original(i: u64) -> Person {
        let h = mix(i);
        let first = FIRST[(h % FIRST.len() as u64) as usize];
        let last = LAST[((h >> 16) % LAST.len() as u64) as usize];
        Person {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            email: Some(format!("{}.{}{}@mail{}.example", first.to_lowercase(), last.to_lowercase(), i, h % 97)),
            phone: Some(format!("+91{}", 6_000_000_000u64 + i)),
            company_name: Some(format!("{} Traders", LAST[((h >> 32) % LAST.len() as u64) as usize])),
        }
    }

    /// Another record of person `j`: same email, or same phone, or typo'd name and same email.
    fn variant(j: u64, h: u64) -> Person {
        let mut p = original(j);
        match h % 3 {
            0 => p.email = p.email.map(|e| e.to_uppercase()),
            1 => {
                p.email = Some(format!("other{j}@elsewhere.example"));
            }
            _ => {
                p.first_name = p.first_name.map(|f| format!("{f}a"));
                p.phone = None;
            }
        }
        p
    }

    fn lead_values(company_id: Uuid, i: u64, p: &Person, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
        let t = |v: &Option<String>| v.clone().map_or(Value::Null(SqlType::Text), Value::Text);
        vec![
            Value::Uuid(crate::new_id()),
            Value::Uuid(company_id),
            Value::Text(format!("BENCH-{i:08}")),
            Value::Int(1),
            Value::Timestamp(now),
            Value::Timestamp(now),
            Value::Json(json!({})),
            t(&p.first_name),
            t(&p.last_name),
            t(&p.email),
            t(&p.phone),
            t(&p.company_name),
            Value::Text("new".into()),
        ]
    }

    /// Writes `n` synthetic leads of `company_id` with their keys, in batches.
    pub async fn seed(db: &Db, company_id: Uuid, n: u64, progress: &(dyn Fn(u64) + Sync)) -> Result<f64> {
        let started = Instant::now();
        let now = now_micros();
        let batch = 1000u64;
        let mut i = 0;
        while i < n {
            let end = (i + batch).min(n);
            let mut tx = db.begin().await?;
            let mut q = Q::new(String::new());
            let mut rows = Vec::new();
            let mut keys: Vec<(Uuid, String)> = Vec::new();
            for k in i..end {
                let p = person(k);
                let vals = lead_values(company_id, k, &p, now);
                let Value::Uuid(id) = vals[0] else { continue };
                for key in Subject::person(p).keys() {
                    keys.push((id, key));
                }
                let ps: Vec<String> = vals.into_iter().map(|v| q.param(v)).collect();
                rows.push(format!("({})", ps.join(", ")));
            }
            q.sql = format!(
                "INSERT INTO leads (id, company_id, number, version, created_at, updated_at, custom, first_name, last_name, email, phone, company_name, status) VALUES {}",
                rows.join(", ")
            );
            tx.execute(&q).await?;
            for chunk in keys.chunks(4000) {
                let mut q = Q::new(String::new());
                let pc = q.param(Value::Uuid(company_id));
                let rows: Vec<String> = chunk
                    .iter()
                    .map(|(id, key)| {
                        format!("({pc}, 'person', {}, 'leads', {})", q.param(Value::Text(key.clone())), q.param(Value::Uuid(*id)))
                    })
                    .collect();
                q.sql = format!(
                    "INSERT INTO dedupe_keys (company_id, kind, key, object, record_id) VALUES {} ON CONFLICT DO NOTHING",
                    rows.join(", ")
                );
                tx.execute(&q).await?;
            }
            tx.commit().await?;
            i = end;
            progress(i);
        }
        db.execute(
            &Q::new(
                "INSERT INTO dedupe_index_state (company_id, fingerprint, indexed_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (company_id) DO UPDATE SET fingerprint = excluded.fingerprint, indexed_at = excluded.indexed_at",
            )
            .bind(Value::Uuid(company_id))
            .bind(Value::Text(fingerprint().into()))
            .bind(Value::Timestamp(now_micros())),
        )
        .await?;
        Ok(started.elapsed().as_secs_f64())
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[i.min(sorted.len() - 1)]
    }

    /// Times `checks` duplicate checks of new leads (half of them duplicates of seeded ones)
    /// as the write pipeline runs them: inside a write transaction, policy read and candidate
    /// lookup and scoring. Returns (p50, p99, max) in milliseconds and how many were flagged.
    pub async fn time_checks(db: &Db, company_id: Uuid, seeded: u64, checks: usize) -> Result<(f64, f64, f64, usize)> {
        let mut times = Vec::with_capacity(checks);
        let mut flagged = 0;
        for k in 0..checks as u64 {
            let p = if k % 2 == 0 { variant(mix(k) % seeded.max(1), mix(k ^ 99)) } else { original(seeded + 1_000_000 + k) };
            let subject = Subject::person(p);
            let mut tx = db.begin().await?;
            let t = Instant::now();
            let policy = policy_in(&mut tx, company_id).await?;
            let found = find(&mut Conn::Tx(&mut tx), company_id, "leads", &subject, &[], None).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            drop(tx);
            if policy != Policy::Allow && !found.is_empty() {
                flagged += 1;
            }
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok((percentile(&times, 0.5), percentile(&times, 0.99), times.last().copied().unwrap_or(0.0), flagged))
    }

    /// Seeds `n` leads into `company_id`, times `checks` checks and one whole-base scan.
    pub async fn run(db: &Db, ctx: &AuditCtx, n: u64, checks: usize, progress: &(dyn Fn(&str) + Sync)) -> Result<Report> {
        let company_id = ctx.company_id;
        let seed_secs = seed(db, company_id, n, &|i| {
            if i % 100_000 == 0 || i == n {
                progress(&format!("seeded {i} leads"));
            }
        })
        .await?;
        progress("timing checks");
        let (p50, p99, max, flagged) = time_checks(db, company_id, n, checks).await?;
        progress("scanning");
        let (scan, _) = start_scan(db, ctx).await?;
        let started = Instant::now();
        let scan = run_scan(db, company_id, scan.id, &|_, _| true).await?;
        Ok(Report {
            backend: format!("{:?}", db.backend()).to_lowercase(),
            leads: n,
            seeded_duplicates: n.saturating_sub(1) / DUPLICATE_EVERY,
            seed_secs,
            checks,
            check_p50_ms: p50,
            check_p99_ms: p99,
            check_max_ms: max,
            checks_flagged: flagged,
            scan_secs: started.elapsed().as_secs_f64(),
            scan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_subject_is_reused_only_for_the_same_values() {
        let mut rec = Record {
            id: Uuid::now_v7(),
            number: "L-00001".into(),
            version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            created_by: None,
            updated_by: None,
            deleted_at: None,
            fields: Default::default(),
            custom: Default::default(),
            redacted: Vec::new(),
        };
        for (f, v) in [("first_name", "Priya"), ("last_name", "Shah"), ("email", "priya@shah.in"), ("company_name", "Shah Textiles")] {
            rec.fields.insert(f.into(), Value::Text(v.into()));
        }
        let checked = subject_from("leads", |f| text_of(rec.get(f)), None);
        let Subject::Person(person) = &checked else { panic!("a lead is a person") };
        assert_eq!(checked.keys(), corvid_core::matching::person_keys(person), "keys kept from the first use");
        assert!(made_from(&checked, "leads", &rec));
        // A contact's subject carries its account's name, which the record does not hold.
        assert!(!made_from(&checked, "contacts", &rec));
        rec.fields.insert("phone".into(), Value::Text("+919876543210".into()));
        assert!(!made_from(&checked, "leads", &rec), "a value the check did not see");
        let org = subject_from("accounts", |f| text_of(rec.get(f)), None);
        assert!(!made_from(&org, "leads", &rec));
    }

    #[test]
    fn the_key_filter_never_forgets_a_key_and_rarely_imagines_one() {
        let mut f = KeyFilter::with_capacity(100_000);
        for i in 0..100_000 {
            f.insert(&format!("e:person{i}@example.in"));
        }
        assert!((0..100_000).all(|i| f.may_contain(&format!("e:person{i}@example.in"))), "a stored key is never reported absent");
        let imagined = (0..100_000).filter(|i| f.may_contain(&format!("e:other{i}@example.in"))).count();
        assert!(imagined < 2_000, "{imagined} false positives in 100,000 (expected about 1 %)");
        assert!(!f.full());
        f.insert("one more");
        assert!(f.full(), "past its capacity the filter asks to be read again, larger");
    }

    #[test]
    fn keys_are_bounded_and_unique() {
        let long = "x".repeat(1000);
        let s = Subject::person(Person { email: Some(format!("{long}@example.in")), last_name: Some("Shah".into()), ..Default::default() });
        let keys = s.keys();
        assert!(keys.iter().all(|k| k.len() <= MAX_KEY_BYTES && !k.is_empty()));
        let mut dedup = keys.clone();
        dedup.dedup();
        assert_eq!(keys, dedup);
    }

    #[test]
    fn union_find_joins_transitively() {
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::now_v7()).collect();
        let mut uf = Clusters::default();
        uf.union(ids[0], ids[1]);
        uf.union(ids[2], ids[1]);
        let r: Vec<usize> = ids[..3]
            .iter()
            .map(|id| {
                let s = uf.slot(*id);
                uf.root(s)
            })
            .collect();
        assert!(r.iter().all(|x| *x == r[0]));
        let s = uf.slot(ids[3]);
        assert_ne!(uf.root(s), r[0]);
    }

    #[test]
    fn policy_names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).ok(), Some(json!(p.as_str())));
        }
        assert_eq!(Policy::parse("BLOCK"), None);
    }
}
