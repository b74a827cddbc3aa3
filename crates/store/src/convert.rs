//! Account-first lead conversion. One transaction creates (or links) the account, then the
//! contact under it, optionally a deal and a first activity, and marks the lead converted
//! with links to all of them; every lead field is kept. All records are written through
//! `Records` (validation, governance pipeline, audit); the lead's read-only conversion links
//! are written here with their own audit rows.
//!
//! A repeated conversion of the same lead returns the first one's result and creates
//! nothing. A lead that does not meet the company's eligibility rules is refused unless an
//! Admin or Manager overrides, which is audited. Existing accounts are suggested from the
//! lead by the matching engine (`corvid_core::matching`).

use crate::audit::{self, Change};
use crate::db::{Db, Row, Tx, Q};
use crate::qualification::{self, leads_def, ConversionRules};
use crate::records::{Idempotency, Records, Tenant};
use crate::{companies, privacy, Result, StoreError};
use chrono::{DateTime, Utc};
use corvid_core::matching::{self, Org, Person};
use corvid_core::meta::ObjectDef;
use corvid_core::role::Role;
use corvid_core::validate::Changes;
use corvid_core::value::now_micros;
use corvid_core::{FieldError, Record, SqlType, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

/// `object` of the idempotency rows of conversions (their `record_id` is the lead).
pub const IDEMPOTENCY_OBJECT: &str = "lead_conversions";
/// The write channel of conversions: the only one that may mark a lead converted.
pub const CHANNEL: &str = "convert";

/// Refuses a write of a lead that would mark it converted, or move a converted lead out of
/// converted, by any path but the conversion (API and web edits, inline edits, bulk changes,
/// imports, merges). A converted lead links the account and contact it became; an edit of
/// `status` or `stage` cannot create those links, nor undo them. A lead marked converted
/// without a recorded conversion (older data) may be moved back, so it can be converted.
pub fn guard_status(object: &ObjectDef, channel: &str, existing: Option<&Record>, changes: &Changes) -> Result<()> {
    if object.name != "leads" || channel == CHANNEL {
        return Ok(());
    }
    let recorded = existing.is_some_and(|r| r.get("converted_at").is_some() || r.get("converted_contact_id").is_some());
    let mut errors = Vec::new();
    for field in ["status", "stage"] {
        let Some(new) = changes.fields.get(field) else { continue };
        let (new, old) = (new.as_str(), existing.and_then(|r| r.text(field)));
        if new == old {
            continue;
        }
        if new == Some("converted") {
            errors.push(FieldError::new(
                field,
                "cannot be set to converted by an edit: use Convert on the lead (POST .../leads/{id}/convert), which creates or links \
                 the account and contact",
            ));
        } else if old == Some("converted") && recorded {
            errors.push(FieldError::new(
                field,
                "cannot change: this lead was converted (see converted_account_id and converted_contact_id) and stays converted",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

fn def(name: &str) -> Result<&'static ObjectDef> {
    corvid_core::object(name).ok_or_else(|| StoreError::Config(format!("object {name} is not declared")))
}

// ---------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------

/// Either a new record (fields over the values prefilled from the lead) or an existing one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PickInput {
    pub new: Option<Map<String, Json>>,
    pub existing_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    pub name: Option<String>,
    /// A decimal string (or number) in major units of `currency`.
    pub amount: Option<Json>,
    pub currency: Option<String>,
    pub stage: Option<String>,
    pub close_date: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub notes: Option<String>,
}

/// `POST .../leads/{id}/convert`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertRequest {
    /// Default: a new account from the lead.
    pub account: Option<PickInput>,
    /// Default: a new contact from the lead.
    pub contact: Option<PickInput>,
    pub deal: Option<DealInput>,
    pub activity: Option<ActivityInput>,
    #[serde(default)]
    pub override_qualification: bool,
}

enum Pick {
    New(Map<String, Json>),
    Existing(Uuid),
}

fn pick(section: &str, p: Option<&PickInput>) -> Result<Pick, FieldError> {
    match p {
        None => Ok(Pick::New(Map::new())),
        Some(PickInput { new: Some(m), existing_id: None }) => Ok(Pick::New(m.clone())),
        Some(PickInput { new: None, existing_id: Some(id) }) => Uuid::parse_str(id.trim())
            .map(Pick::Existing)
            .map_err(|_| FieldError::new(format!("{section}.existing_id"), "must be a valid id (UUID)")),
        Some(PickInput { new: Some(_), existing_id: Some(_) }) => Err(FieldError::new(section, "give either new or existing_id, not both")),
        Some(PickInput { new: None, existing_id: None }) => Err(FieldError::new(section, "give new (fields) or existing_id")),
    }
}

/// Names a repository error as the request names it: `account.new.name`, `deal.amount`.
fn named<'a>(section: &str, rename: &'a [(&'a str, &'a str)]) -> impl Fn(StoreError) -> StoreError + 'a {
    let section = section.to_string();
    move |e| match e {
        StoreError::Invalid(errs) => StoreError::Invalid(
            errs.into_iter()
                .map(|x| {
                    let f = rename.iter().find(|(from, _)| *from == x.field).map_or(x.field.as_str(), |(_, to)| to);
                    FieldError::new(format!("{section}.{f}"), x.reason)
                })
                .collect(),
        ),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// Prefill from the lead
// ---------------------------------------------------------------------------------------

/// Free mail providers: their domains say nothing about the lead's company.
const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.in",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "protonmail.com",
    "proton.me",
    "rediffmail.com",
    "gmx.com",
    "gmx.de",
    "mail.com",
    "yandex.com",
    "zohomail.com",
];

/// The company domain of an email address (none for free mail providers).
pub fn company_domain(email: &str) -> Option<String> {
    let domain = email.rsplit_once('@')?.1.trim().to_lowercase();
    (!domain.is_empty() && domain.contains('.') && !FREE_MAIL.contains(&domain.as_str())).then_some(domain)
}

/// The host of a URL without `www.`.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#', ':']).next()?.trim().to_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
    (!host.is_empty()).then_some(host)
}

fn size_bucket(n: i64) -> &'static str {
    match n {
        ..=10 => "1-10",
        11..=50 => "11-50",
        51..=100 => "51-100",
        101..=500 => "101-500",
        _ => "500+",
    }
}

fn put(m: &mut Map<String, Json>, k: &str, v: Option<&Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        m.insert(k.into(), v.to_json());
    }
}

/// A new account's fields as the lead suggests them.
pub fn account_prefill(lead: &Record) -> Map<String, Json> {
    let mut m = Map::new();
    put(&mut m, "name", lead.get("company_name"));
    if let Some(domain) = lead.text("email").and_then(company_domain) {
        m.insert("website".into(), format!("https://{domain}").into());
    }
    put(&mut m, "billing_city", lead.get("city"));
    put(&mut m, "billing_state", lead.get("state"));
    put(&mut m, "billing_country", lead.get("country"));
    if let Some(n) = lead.get("company_size").and_then(Value::as_i64) {
        m.insert("company_size".into(), size_bucket(n).into());
    }
    put(&mut m, "owner_id", lead.get("owner_id"));
    m
}

/// A new contact's fields as the lead gives them.
pub fn contact_prefill(lead: &Record) -> Map<String, Json> {
    let mut m = Map::new();
    for f in ["first_name", "last_name", "email", "phone", "job_title", "owner_id"] {
        put(&mut m, f, lead.get(f));
    }
    let role = match lead.text("authority_level") {
        Some("decision_maker") => Some("decision_maker"),
        Some("influencer") => Some("influencer"),
        Some("user") => Some("end_user"),
        _ => None,
    };
    if let Some(r) = role {
        m.insert("role".into(), r.into());
    }
    m
}

// ---------------------------------------------------------------------------------------
// Suggestions of existing accounts and contacts
// ---------------------------------------------------------------------------------------

/// What is known about the lead's organisation; the wizard may refine the lead's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrgHint {
    pub name: Option<String>,
    pub website: Option<String>,
    pub gstin: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountSuggestion {
    pub id: Uuid,
    pub number: String,
    pub name: String,
    pub website: Option<String>,
    pub gstin: Option<String>,
    pub score: u8,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContactSuggestion {
    pub id: Uuid,
    pub number: String,
    pub full_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub account_id: Option<Uuid>,
    pub score: u8,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestions {
    pub accounts: Vec<AccountSuggestion>,
    pub contacts: Vec<ContactSuggestion>,
    /// The new account and contact as the lead would create them.
    pub account_prefill: Map<String, Json>,
    pub contact_prefill: Map<String, Json>,
}

/// Words of a company name that do not tell companies apart.
const NAME_NOISE: &[&str] = &[
    "pvt",
    "private",
    "ltd",
    "limited",
    "llp",
    "llc",
    "inc",
    "incorporated",
    "gmbh",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "sa",
    "ag",
    "bv",
    "the",
    "and",
    "of",
    "india",
    "group",
    "technologies",
    "solutions",
];

/// The distinctive words of a company name, lower-cased.
pub fn name_words(name: &str) -> Vec<String> {
    name.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2 && !NAME_NOISE.contains(w))
        .map(str::to_string)
        .collect()
}

fn like_pattern(s: &str) -> String {
    let escaped: String = s.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    format!("%{escaped}%")
}

/// Where suggestion queries run: the pool (pages) or the conversion's transaction.
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
}

/// Most candidates a suggestion looks at; blocking keeps it far below this in practice.
const CANDIDATES: usize = 200;
/// Suggestions below this score are not shown.
const MIN_SCORE: u8 = 50;

/// Existing accounts that look like the lead's organisation, best first. Candidates are found
/// by blocking keys (GSTIN, website or email domain, a distinctive name word), never by
/// scanning every account, then scored by `matching::compare_orgs`.
pub async fn account_suggestions(conn: &mut Conn<'_>, company_id: Uuid, lead: &Record, hint: &OrgHint) -> Result<Vec<AccountSuggestion>> {
    let name = hint.name.clone().or_else(|| lead.text("company_name").map(str::to_string)).filter(|s| !s.trim().is_empty());
    let domain = hint.website.as_deref().and_then(url_host).or_else(|| lead.text("email").and_then(company_domain));
    let gstin = hint.gstin.clone().map(|g| g.trim().to_uppercase()).filter(|g| !g.is_empty());
    let ours = Org { name: name.clone(), website: domain.as_ref().map(|d| format!("https://{d}")), gstin: gstin.clone() };

    let mut q = Q::new("SELECT id, number, name, website, gstin, email FROM accounts WHERE company_id = ");
    let p = q.param(Value::Uuid(company_id));
    q.push(&p);
    q.push(" AND deleted_at IS NULL AND is_active = ");
    let p = q.param(Value::Bool(true));
    q.push(&p);
    let mut ors = Vec::new();
    if let Some(g) = &gstin {
        ors.push(format!("gstin = {}", q.param(Value::Text(g.clone()))));
    }
    if let Some(d) = &domain {
        ors.push(format!("LOWER(website) LIKE {} ESCAPE '\\'", q.param(Value::Text(like_pattern(d)))));
        ors.push(format!("LOWER(email) LIKE {} ESCAPE '\\'", q.param(Value::Text(like_pattern(&format!("@{d}"))))));
    }
    // The longest distinctive word is the most selective block.
    if let Some(w) = name.as_deref().map(name_words).and_then(|ws| ws.into_iter().max_by_key(|w| w.chars().count())) {
        if w.chars().count() >= 3 {
            ors.push(format!("LOWER(name) LIKE {} ESCAPE '\\'", q.param(Value::Text(like_pattern(&w)))));
        }
    }
    if ors.is_empty() {
        return Ok(Vec::new());
    }
    q.push(&format!(" AND ({}) ORDER BY updated_at DESC LIMIT {CANDIDATES}", ors.join(" OR ")));
    let rows = conn.fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text]).await?;

    let our_keys = matching::org_keys(&ours);
    let our_words = name.as_deref().map(name_words).unwrap_or_default();
    let mut out = Vec::new();
    for r in rows {
        let (Some(id), Some(cname)) = (r.uuid(0), r.text(2)) else { continue };
        let theirs = Org { name: Some(cname.clone()), website: r.text(3), gstin: r.text(4) };
        let m = matching::compare_orgs(&ours, &theirs);
        let (mut score, mut reasons) = (m.score, m.reasons);
        let mentions = |reasons: &[String], what: &str| reasons.iter().any(|x| x.to_lowercase().contains(what));
        if let Some(d) = &domain {
            let site = theirs.website.as_deref().and_then(url_host);
            let mail = r.text(5).as_deref().and_then(company_domain);
            if (site.as_deref() == Some(d.as_str()) || mail.as_deref() == Some(d.as_str())) && !mentions(&reasons, "domain") {
                reasons.push(format!("same domain ({d})"));
                score = score.max(85);
            }
        }
        if !our_words.is_empty() && name_words(&cname) == our_words && !mentions(&reasons, "name") {
            reasons.push("same name without legal suffixes".to_string());
            score = score.max(75);
        }
        let shares_key = matching::org_keys(&theirs).iter().any(|k| our_keys.contains(k));
        if shares_key && reasons.is_empty() {
            reasons.push("shares a matching key".to_string());
            score = score.max(MIN_SCORE);
        }
        if score >= MIN_SCORE {
            out.push(AccountSuggestion {
                id,
                number: r.text(1).unwrap_or_default(),
                name: cname,
                website: theirs.website,
                gstin: theirs.gstin,
                score,
                reasons,
            });
        }
    }
    out.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    out.truncate(5);
    Ok(out)
}

/// Existing contacts with the lead's email or phone.
pub async fn contact_suggestions(conn: &mut Conn<'_>, company_id: Uuid, lead: &Record) -> Result<Vec<ContactSuggestion>> {
    let email = lead.text("email").map(str::to_string);
    let phone = lead.text("phone").map(str::to_string);
    let mut q = Q::new("SELECT id, number, full_name, email, phone, account_id, first_name, last_name FROM contacts WHERE company_id = ");
    let p = q.param(Value::Uuid(company_id));
    q.push(&p);
    q.push(" AND deleted_at IS NULL");
    let mut ors = Vec::new();
    if let Some(e) = &email {
        ors.push(format!("LOWER(email) = {}", q.param(Value::Text(e.to_lowercase()))));
    }
    if let Some(ph) = &phone {
        ors.push(format!("phone = {}", q.param(Value::Text(ph.clone()))));
    }
    if ors.is_empty() {
        return Ok(Vec::new());
    }
    q.push(&format!(" AND ({}) ORDER BY updated_at DESC LIMIT 20", ors.join(" OR ")));
    let types = [SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Uuid, SqlType::Text, SqlType::Text];
    let ours = Person {
        first_name: lead.text("first_name").map(str::to_string),
        last_name: lead.text("last_name").map(str::to_string),
        email,
        phone,
        company_name: lead.text("company_name").map(str::to_string),
    };
    let mut out = Vec::new();
    for r in conn.fetch(&q, &types).await? {
        let Some(id) = r.uuid(0) else { continue };
        let theirs = Person { first_name: r.text(6), last_name: r.text(7), email: r.text(3), phone: r.text(4), company_name: None };
        let m = matching::compare_people(&ours, &theirs);
        if m.score == 0 {
            continue;
        }
        out.push(ContactSuggestion {
            id,
            number: r.text(1).unwrap_or_default(),
            full_name: r.text(2).unwrap_or_default(),
            email: theirs.email,
            phone: theirs.phone,
            account_id: r.uuid(5),
            score: m.score,
            reasons: m.reasons,
        });
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.score));
    out.truncate(5);
    Ok(out)
}

/// Suggestions and prefills for converting `lead_id` (`GET .../leads/{id}/convert`).
pub async fn suggestions(db: &Db, tenant: &Tenant, lead_id: Uuid, hint: &OrgHint) -> Result<(Record, Suggestions)> {
    let lead = tenant.records(db, leads_def()?).get(lead_id).await?;
    if lead.deleted_at.is_some() {
        return Err(StoreError::NotFound);
    }
    let mut conn = Conn::Db(db);
    let accounts = account_suggestions(&mut conn, tenant.company_id, &lead, hint).await?;
    let contacts = contact_suggestions(&mut conn, tenant.company_id, &lead).await?;
    let s = Suggestions { accounts, contacts, account_prefill: account_prefill(&lead), contact_prefill: contact_prefill(&lead) };
    Ok((lead, s))
}

// ---------------------------------------------------------------------------------------
// Converting
// ---------------------------------------------------------------------------------------

/// The result of a conversion, the same on every repeat.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub lead: Record,
    pub account: Record,
    pub contact: Record,
    pub deal: Option<Record>,
    pub activity: Option<Record>,
    pub account_created: bool,
    pub contact_created: bool,
    pub overridden: bool,
    pub automatic: bool,
    pub converted_at: DateTime<Utc>,
    pub converted_by: Option<Uuid>,
    /// True when this call found the lead already converted and created nothing.
    pub replayed: bool,
}

/// Who may convert a lead that does not meet the rules.
pub fn may_override(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Manager)
}

/// Converts a lead in its own transaction (`POST .../leads/{id}/convert`).
pub async fn convert(db: &Db, tenant: &Tenant, lead_id: Uuid, req: &ConvertRequest, idem: Option<Idempotency<'_>>) -> Result<Conversion> {
    let mut tx = db.begin().await?;
    let out = convert_in(db, &mut tx, tenant, lead_id, req, idem, false).await?;
    tx.commit().await?;
    Ok(out)
}

/// The automatic conversion after qualifying (the caller holds the transaction and checked
/// eligibility): links the best existing account and contact when the match is strong,
/// otherwise creates them from the lead; a deal when the rules ask for one.
pub async fn auto_convert_in(db: &Db, tx: &mut Tx, tenant: &Tenant, lead_id: Uuid, rules: &ConversionRules) -> Result<Conversion> {
    let lead = tenant.records(db, leads_def()?).get_in_tx(tx, lead_id).await?;
    let accounts = account_suggestions(&mut Conn::Tx(&mut *tx), tenant.company_id, &lead, &OrgHint::default()).await?;
    let account = match accounts.first().filter(|a| a.score >= matching::THRESHOLD) {
        Some(a) => PickInput { new: None, existing_id: Some(a.id.to_string()) },
        None => PickInput { new: Some(Map::new()), existing_id: None },
    };
    let contacts = contact_suggestions(&mut Conn::Tx(&mut *tx), tenant.company_id, &lead).await?;
    let strong_account = accounts.first().filter(|a| a.score >= matching::THRESHOLD).map(|a| a.id);
    let contact =
        match contacts.iter().find(|c| c.score >= matching::THRESHOLD && (c.account_id.is_none() || c.account_id == strong_account)) {
            Some(c) => PickInput { new: None, existing_id: Some(c.id.to_string()) },
            None => PickInput { new: Some(Map::new()), existing_id: None },
        };
    let req = ConvertRequest {
        account: Some(account),
        contact: Some(contact),
        deal: rules.auto_create_deal.then(DealInput::default),
        activity: Some(ActivityInput {
            kind: Some("note".into()),
            subject: Some("Lead converted automatically".into()),
            notes: Some("Converted when the lead was qualified and met the company's conversion rules.".into()),
        }),
        override_qualification: false,
    };
    convert_in(db, tx, tenant, lead_id, &req, None, true).await
}

#[derive(Debug, Clone, Copy)]
struct Stored {
    account_id: Uuid,
    contact_id: Uuid,
    deal_id: Option<Uuid>,
    activity_id: Option<Uuid>,
    account_created: bool,
    contact_created: bool,
    overridden: bool,
    automatic: bool,
    converted_by: Option<Uuid>,
    converted_at: DateTime<Utc>,
}

async fn stored(tx: &mut Tx, company_id: Uuid, lead_id: Uuid) -> Result<Option<Stored>> {
    let q = Q::new(
        "SELECT account_id, contact_id, deal_id, activity_id, account_created, contact_created, overridden, automatic, converted_by, converted_at \
         FROM lead_conversions WHERE company_id = $1 AND lead_id = $2",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(lead_id));
    let types = [
        SqlType::Uuid,
        SqlType::Uuid,
        SqlType::Uuid,
        SqlType::Uuid,
        SqlType::Bool,
        SqlType::Bool,
        SqlType::Bool,
        SqlType::Bool,
        SqlType::Uuid,
        SqlType::Timestamp,
    ];
    let Some(r) = tx.fetch_one(&q, &types).await? else { return Ok(None) };
    let (Some(account_id), Some(contact_id), Some(converted_at)) = (r.uuid(0), r.uuid(1), r.timestamp(9)) else {
        return Err(StoreError::Corrupt(format!("conversion of lead {lead_id} is incomplete")));
    };
    Ok(Some(Stored {
        account_id,
        contact_id,
        deal_id: r.uuid(2),
        activity_id: r.uuid(3),
        account_created: r.bool(4).unwrap_or(false),
        contact_created: r.bool(5).unwrap_or(false),
        overridden: r.bool(6).unwrap_or(false),
        automatic: r.bool(7).unwrap_or(false),
        converted_by: r.uuid(8),
        converted_at,
    }))
}

/// The first conversion's result, read again.
async fn replay(db: &Db, tx: &mut Tx, tenant: &Tenant, lead: Record, s: Stored) -> Result<Conversion> {
    let get = |name: &'static str| -> Result<Records<'_>> { Ok(tenant.records(db, def(name)?)) };
    let account = get("accounts")?.get_in_tx(tx, s.account_id).await?;
    let contact = get("contacts")?.get_in_tx(tx, s.contact_id).await?;
    let deal = match s.deal_id {
        Some(id) => Some(get("deals")?.get_in_tx(tx, id).await?),
        None => None,
    };
    let activity = match s.activity_id {
        Some(id) => Some(get("activities")?.get_in_tx(tx, id).await?),
        None => None,
    };
    Ok(Conversion {
        lead,
        account,
        contact,
        deal,
        activity,
        account_created: s.account_created,
        contact_created: s.contact_created,
        overridden: s.overridden,
        automatic: s.automatic,
        converted_at: s.converted_at,
        converted_by: s.converted_by,
        replayed: true,
    })
}

/// An idempotency key seen before: the same conversion replays, anything else conflicts.
async fn check_key(tx: &mut Tx, tenant: &Tenant, lead_id: Uuid, i: &Idempotency<'_>) -> Result<()> {
    let q = Q::new("SELECT object, record_id, request_hash FROM idempotency_keys WHERE company_id = $1 AND user_id = $2 AND key = $3")
        .bind(Value::Uuid(tenant.company_id))
        .bind(Value::Uuid(tenant.user_id))
        .bind(Value::Text(i.key.into()));
    if let Some(r) = tx.fetch_one(&q, &[SqlType::Text, SqlType::Uuid, SqlType::Text]).await? {
        let same =
            r.text(0).as_deref() == Some(IDEMPOTENCY_OBJECT) && r.uuid(1) == Some(lead_id) && r.text(2).as_deref() == Some(i.request_hash);
        if !same {
            return Err(StoreError::Conflict("this Idempotency-Key was already used for a different request".into()));
        }
    }
    Ok(())
}

/// Refuses a lead that misses the company's rules, unless an Admin or Manager overrides.
/// Returns whether the conversion goes ahead by override (and the unmet checks).
fn gate(lead: &Record, rules: &ConversionRules, tenant: &Tenant, override_asked: bool) -> Result<Option<Vec<String>>> {
    let e = qualification::eligibility(lead, rules);
    if e.eligible {
        return Ok(None);
    }
    let unmet: Vec<String> = e.unmet().map(|c| format!("{} ({})", c.label, c.detail)).collect();
    if !override_asked {
        let hint = if may_override(tenant.role) {
            "; an Admin or Manager may convert anyway with override_qualification: true"
        } else {
            "; qualify the lead first, or ask an Admin or Manager to override"
        };
        let errors = e.unmet().map(|c| FieldError::new(c.field, format!("{}: {}{hint}", c.label, c.detail))).collect();
        return Err(StoreError::Invalid(errors));
    }
    if !may_override(tenant.role) {
        return Err(StoreError::Forbidden(format!(
            "only Admins and Managers can convert a lead that does not meet the conversion rules; unmet: {}",
            unmet.join(", ")
        )));
    }
    Ok(Some(unmet))
}

/// An active member of the company (owners of new records must be).
async fn active_member(tx: &mut Tx, company_id: Uuid, user: Uuid) -> Result<bool> {
    let q = Q::new("SELECT 1 FROM memberships WHERE company_id = $1 AND user_id = $2 AND is_active = $3")
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(user))
        .bind(Value::Bool(true));
    Ok(tx.fetch_one(&q, &[SqlType::Int]).await?.is_some())
}

#[allow(clippy::too_many_arguments)] // the two entry points differ only in these values
async fn convert_in(
    db: &Db,
    tx: &mut Tx,
    tenant: &Tenant,
    lead_id: Uuid,
    req: &ConvertRequest,
    idem: Option<Idempotency<'_>>,
    automatic: bool,
) -> Result<Conversion> {
    if !tenant.role.can_write() {
        return Err(StoreError::Forbidden("your role can read but not change records".into()));
    }
    let leads = tenant.records(db, leads_def()?);
    let lead = leads.get_in_tx(tx, lead_id).await?;
    if lead.deleted_at.is_some() {
        return Err(StoreError::NotFound);
    }
    if let Some(i) = &idem {
        check_key(tx, tenant, lead_id, i).await?;
    }
    if let Some(s) = stored(tx, tenant.company_id, lead_id).await? {
        return replay(db, tx, tenant, lead, s).await;
    }
    if lead.text("status") == Some("converted") {
        return Err(StoreError::Conflict(
            "this lead is marked converted but has no recorded conversion; set its status back before converting it".into(),
        ));
    }

    // Everything the request says, checked before anything is written.
    let mut errors = Vec::new();
    let account_pick = pick("account", req.account.as_ref()).map_err(|e| errors.push(e)).ok();
    let contact_pick = pick("contact", req.contact.as_ref()).map_err(|e| errors.push(e)).ok();
    if let Some(Pick::New(m)) = &contact_pick {
        if m.contains_key("account_id") {
            errors.push(FieldError::new("contact.new.account_id", "is set by the conversion to the chosen account"));
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    let (Some(account_pick), Some(contact_pick)) = (account_pick, contact_pick) else {
        return Err(StoreError::invalid("account", "give new (fields) or existing_id"));
    };
    let rules = qualification::rules_in(tx, tenant.company_id).await?;
    let overridden = gate(&lead, &rules, tenant, req.override_qualification)?;

    let now = now_micros();
    // New records belong to the lead's owner while they are an active member.
    let owner = match lead.get("owner_id").and_then(Value::as_uuid) {
        Some(o) if active_member(tx, tenant.company_id, o).await? => Some(o),
        _ => None,
    };

    // 1. Account.
    let accounts = tenant.records(db, def("accounts")?);
    let (account, account_created) = match account_pick {
        Pick::Existing(id) => {
            let a = accounts.get_in_tx(tx, id).await?;
            if a.deleted_at.is_some() {
                return Err(StoreError::NotFound);
            }
            if a.get("is_active") == Some(&Value::Bool(false)) {
                return Err(StoreError::invalid("account.existing_id", "is deactivated; reactivate the account first"));
            }
            (a, false)
        }
        Pick::New(fields) => {
            let mut input = account_prefill(&lead);
            input.remove("owner_id");
            if let Some(o) = owner {
                input.insert("owner_id".into(), o.to_string().into());
            }
            input.extend(fields);
            let custom = accounts.custom_fields().await?;
            let mut pipeline = accounts.pipeline(tx).await?;
            let a = accounts.create_in(tx, &custom, &mut pipeline, &input, CHANNEL).await.map_err(named("account.new", &[]))?;
            pipeline.finish(tx).await?;
            (a, true)
        }
    };

    // 2. Contact, under the account.
    let contacts = tenant.records(db, def("contacts")?);
    let contact_custom = contacts.custom_fields().await?;
    let (contact, contact_created) = match contact_pick {
        Pick::Existing(id) => {
            let c = contacts.get_in_tx(tx, id).await?;
            if c.deleted_at.is_some() {
                return Err(StoreError::NotFound);
            }
            match c.get("account_id").and_then(Value::as_uuid) {
                Some(a) if a == account.id => (c, false),
                Some(_) => {
                    return Err(StoreError::invalid(
                        "contact.existing_id",
                        "belongs to another account; pick that account or a contact of this one",
                    ))
                }
                None => {
                    let mut input = Map::new();
                    input.insert("account_id".into(), account.id.to_string().into());
                    let mut pipeline = contacts.pipeline(tx).await?;
                    let c =
                        contacts.update_in(tx, &contact_custom, &mut pipeline, id, &input, CHANNEL).await.map_err(named("contact", &[]))?;
                    pipeline.finish(tx).await?;
                    (c, false)
                }
            }
        }
        Pick::New(fields) => {
            let mut input = contact_prefill(&lead);
            input.remove("owner_id");
            if let Some(o) = owner {
                input.insert("owner_id".into(), o.to_string().into());
            }
            input.extend(fields);
            input.insert("account_id".into(), account.id.to_string().into());
            let mut pipeline = contacts.pipeline(tx).await?;
            let c = contacts.create_in(tx, &contact_custom, &mut pipeline, &input, CHANNEL).await.map_err(named("contact.new", &[]))?;
            pipeline.finish(tx).await?;
            (c, true)
        }
    };

    // The person's consent and do-not-disturb go with them to the contact.
    let carried = privacy::carry_consent(tx, tenant, &lead, &contact).await?;
    let contact = if carried == privacy::Carried::default() { contact } else { contacts.get_in_tx(tx, contact.id).await? };

    // 3. Deal.
    let deal = match &req.deal {
        None => None,
        Some(d) => {
            let deals = tenant.records(db, def("deals")?);
            let mut input = Map::new();
            let product = lead.text("interest_product").unwrap_or("New business");
            let account_title = account.title(def("accounts")?);
            let name = d.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("{account_title} - {product}"));
            input.insert("name".into(), name.into());
            if let Some(a) = &d.amount {
                input.insert("value".into(), a.clone());
            }
            let currency = match (&d.currency, account.text("currency")) {
                (Some(c), _) => c.clone(),
                (None, Some(c)) => c.to_string(),
                (None, None) => companies::get(db, tenant.company_id).await?.map_or_else(|| "INR".to_string(), |c| c.default_currency),
            };
            input.insert("currency".into(), currency.into());
            input.insert("stage".into(), d.stage.clone().unwrap_or_else(|| "qualification".into()).into());
            if let Some(cd) = &d.close_date {
                input.insert("expected_close_date".into(), cd.clone().into());
            }
            if let Some(desc) = &d.description {
                input.insert("description".into(), desc.clone().into());
            }
            input.insert("account_id".into(), account.id.to_string().into());
            input.insert("primary_contact_id".into(), contact.id.to_string().into());
            input.insert("lead_id".into(), lead_id.to_string().into());
            if let Some(o) = owner {
                input.insert("owner_id".into(), o.to_string().into());
            }
            let custom = deals.custom_fields().await?;
            let mut pipeline = deals.pipeline(tx).await?;
            let rename = [("value", "amount"), ("expected_close_date", "close_date")];
            let rec = deals.create_in(tx, &custom, &mut pipeline, &input, CHANNEL).await.map_err(named("deal", &rename))?;
            pipeline.finish(tx).await?;
            Some(rec)
        }
    };

    // 4. First activity.
    let activity = match &req.activity {
        None => None,
        Some(a) => {
            let acts = tenant.records(db, def("activities")?);
            let mut input = Map::new();
            input.insert("activity_type".into(), a.kind.clone().unwrap_or_else(|| "note".into()).into());
            input.insert(
                "title".into(),
                a.subject.clone().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "Lead converted".into()).into(),
            );
            if let Some(n) = &a.notes {
                input.insert("description".into(), n.clone().into());
            }
            input.insert("lead_id".into(), lead_id.to_string().into());
            input.insert("account_id".into(), account.id.to_string().into());
            input.insert("contact_id".into(), contact.id.to_string().into());
            if let Some(d) = &deal {
                input.insert("deal_id".into(), d.id.to_string().into());
            }
            let custom = acts.custom_fields().await?;
            let mut pipeline = acts.pipeline(tx).await?;
            let rename = [("activity_type", "type"), ("title", "subject"), ("description", "notes")];
            let rec = acts.create_in(tx, &custom, &mut pipeline, &input, CHANNEL).await.map_err(named("activity", &rename))?;
            pipeline.finish(tx).await?;
            Some(rec)
        }
    };

    // 5. The lead: status and stage through the repository, then its read-only links.
    let lead_custom = leads.custom_fields().await?;
    let mut input = Map::new();
    input.insert("status".into(), "converted".into());
    input.insert("stage".into(), "converted".into());
    let mut pipeline = leads.pipeline(tx).await?;
    let updated = leads.update_in(tx, &lead_custom, &mut pipeline, lead_id, &input, CHANNEL).await.map_err(named("lead", &[]))?;
    pipeline.finish(tx).await?;
    write_links(tx, tenant, &updated, now, account.id, contact.id, deal.as_ref().map(|d| d.id)).await?;

    let mut audit_rows = Vec::new();
    if let Some(unmet) = &overridden {
        audit_rows.push(Change {
            object: "leads".into(),
            record_id: Some(lead_id),
            action: "conversion_override".into(),
            field: Some("status".into()),
            old: Some(format!("{}; unmet: {}", lead.text("status").unwrap_or("new"), unmet.join(", "))),
            new: Some(format!("converted by {} override", tenant.role.label())),
        });
    }
    if automatic {
        audit_rows.push(Change {
            object: "leads".into(),
            record_id: Some(lead_id),
            action: "auto_convert".into(),
            field: None,
            old: None,
            new: Some("converted automatically by the company's conversion rules".into()),
        });
    }
    audit::append(tx, &tenant.audit, &audit_rows).await?;

    let activity_id = activity.as_ref().map(|a| a.id);
    tx.execute(
        &Q::new(
            "INSERT INTO lead_conversions (company_id, lead_id, account_id, contact_id, deal_id, activity_id, account_created, contact_created, \
             overridden, automatic, converted_by, converted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(Value::Uuid(tenant.company_id))
        .bind(Value::Uuid(lead_id))
        .bind(Value::Uuid(account.id))
        .bind(Value::Uuid(contact.id))
        .bind(deal.as_ref().map_or(Value::Null(SqlType::Uuid), |d| Value::Uuid(d.id)))
        .bind(activity_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
        .bind(Value::Bool(account_created))
        .bind(Value::Bool(contact_created))
        .bind(Value::Bool(overridden.is_some()))
        .bind(Value::Bool(automatic))
        .bind(Value::Uuid(tenant.user_id))
        .bind(Value::Timestamp(now)),
    )
    .await?;
    if let Some(i) = &idem {
        let q = Q::new(
            "INSERT INTO idempotency_keys (company_id, user_id, key, request_hash, object, record_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Value::Uuid(tenant.company_id))
        .bind(Value::Uuid(tenant.user_id))
        .bind(Value::Text(i.key.into()))
        .bind(Value::Text(i.request_hash.into()))
        .bind(Value::Text(IDEMPOTENCY_OBJECT.into()))
        .bind(Value::Uuid(lead_id))
        .bind(Value::Timestamp(now));
        match tx.execute(&q).await {
            Ok(_) => {}
            Err(e) if e.is_unique_violation() => {
                return Err(StoreError::Conflict("a request with this Idempotency-Key is in progress".into()));
            }
            Err(e) => return Err(e),
        }
    }
    let lead = leads.get_in_tx(tx, lead_id).await?;
    tracing::info!(lead = %lead_id, account = %account.id, contact = %contact.id, overridden = overridden.is_some(), automatic, "lead converted");
    Ok(Conversion {
        lead,
        account,
        contact,
        deal,
        activity,
        account_created,
        contact_created,
        overridden: overridden.is_some(),
        automatic,
        converted_at: now,
        converted_by: Some(tenant.user_id),
        replayed: false,
    })
}

/// Writes the lead's read-only conversion links (one version step) and audits each one.
async fn write_links(
    tx: &mut Tx,
    tenant: &Tenant,
    lead: &Record,
    at: DateTime<Utc>,
    account: Uuid,
    contact: Uuid,
    deal: Option<Uuid>,
) -> Result<()> {
    let q = Q::new(
        "UPDATE leads SET converted_at = $1, converted_account_id = $2, converted_contact_id = $3, converted_deal_id = $4, \
         version = version + 1, updated_at = $5, updated_by = $6 WHERE company_id = $7 AND id = $8 AND version = $9",
    )
    .bind(Value::Timestamp(at))
    .bind(Value::Uuid(account))
    .bind(Value::Uuid(contact))
    .bind(deal.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(Value::Timestamp(at))
    .bind(Value::Uuid(tenant.user_id))
    .bind(Value::Uuid(tenant.company_id))
    .bind(Value::Uuid(lead.id))
    .bind(Value::Int(lead.version));
    if tx.execute(&q).await? == 0 {
        return Err(StoreError::Stale { current: lead.version });
    }
    let mut rows = vec![
        ("converted_at", Value::Timestamp(at).audit_text()),
        ("converted_account_id", Some(account.to_string())),
        ("converted_contact_id", Some(contact.to_string())),
    ];
    if let Some(d) = deal {
        rows.push(("converted_deal_id", Some(d.to_string())));
    }
    let changes: Vec<Change> = rows
        .into_iter()
        .map(|(field, new)| Change {
            object: "leads".into(),
            record_id: Some(lead.id),
            action: "convert".into(),
            field: Some(field.into()),
            old: lead.get(field).and_then(Value::audit_text),
            new,
        })
        .collect();
    audit::append(tx, &tenant.audit, &changes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_names_normalise() {
        assert_eq!(company_domain("Priya@Acme.co.in").as_deref(), Some("acme.co.in"));
        assert_eq!(company_domain("someone@gmail.com"), None);
        assert_eq!(url_host("https://www.Acme.com/about?x=1").as_deref(), Some("acme.com"));
        assert_eq!(url_host("acme.com:8080").as_deref(), Some("acme.com"));
        assert_eq!(name_words("Acme Technologies Pvt. Ltd."), ["acme"]);
        assert_eq!(name_words("The Tata & Sons Private Limited"), ["tata", "sons"]);
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(size_bucket(7), "1-10");
        assert_eq!(size_bucket(501), "500+");
    }

    #[test]
    fn picks_need_exactly_one_choice() {
        assert!(matches!(pick("account", None), Ok(Pick::New(_))));
        let both = PickInput { new: Some(Map::new()), existing_id: Some(Uuid::nil().to_string()) };
        assert_eq!(pick("account", Some(&both)).err().map(|e| e.field), Some("account".to_string()));
        let bad = PickInput { new: None, existing_id: Some("nope".into()) };
        assert_eq!(pick("contact", Some(&bad)).err().map(|e| e.field), Some("contact.existing_id".to_string()));
        assert!(pick("contact", Some(&PickInput::default())).is_err());
    }
}
