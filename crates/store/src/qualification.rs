//! Lead qualification: BANT and MEDDICC answers, a suggested outcome, the decision
//! (qualified; or unqualified and either recycled back to nurturing on a date or
//! disqualified), the explained risk score, the company's conversion eligibility rules, and
//! the daily job that brings recycled leads back to nurturing.
//!
//! The assessments (`assess`, `eligibility`, `risk`) are pure functions of a lead record and
//! explain themselves. Writes go through `Records` inside one transaction, so validation, the
//! governance pipeline and the audit apply exactly as for any other change of a lead.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Row, Tx, Q};
use crate::records::Tenant;
use crate::{companies, convert, new_id, settings, Result, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use corvid_core::meta::ObjectDef;
use corvid_core::value::now_micros;
use corvid_core::{FieldError, Record, SqlType, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

/// The settings key of the company's conversion eligibility rules.
pub const RULES_KEY: &str = "conversion.rules";
/// Without activity for this many days a lead counts as going cold (risk score).
pub const DEFAULT_INACTIVE_DAYS: i64 = 14;
/// Longest qualification reason (the lead's `qualification_reason` column).
pub const MAX_REASON: usize = 255;

pub fn leads_def() -> Result<&'static ObjectDef> {
    corvid_core::object("leads").ok_or_else(|| StoreError::Config("the leads object is not declared".into()))
}

// ---------------------------------------------------------------------------------------
// Questions
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    Bant,
    Meddicc,
}

impl Framework {
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Bant => "bant",
            Framework::Meddicc => "meddicc",
        }
    }

    pub fn questions(self) -> &'static [Question] {
        match self {
            Framework::Bant => BANT,
            Framework::Meddicc => MEDDICC,
        }
    }
}

/// One answer a framework asks for, and the lead field that keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// Name in the API's `answers` object.
    pub key: &'static str,
    pub field: &'static str,
    pub label: &'static str,
    /// A 0-10 score rather than text.
    pub score: bool,
}

const fn q(key: &'static str, field: &'static str, label: &'static str, score: bool) -> Question {
    Question { key, field, label, score }
}

pub const BANT: &[Question] = &[
    q("budget_score", "bant_budget_score", "Budget", true),
    q("budget_notes", "bant_budget_notes", "Budget notes", false),
    q("authority_score", "bant_authority_score", "Authority", true),
    q("authority_notes", "bant_authority_notes", "Authority notes", false),
    q("need_score", "bant_need_score", "Need", true),
    q("need_notes", "bant_need_notes", "Need notes", false),
    q("timeline_score", "bant_timeline_score", "Timeline", true),
    q("timeline_notes", "bant_timeline_notes", "Timeline notes", false),
];

pub const MEDDICC: &[Question] = &[
    q("metrics", "meddicc_metrics", "Metrics", false),
    q("economic_buyer", "meddicc_economic_buyer", "Economic buyer", false),
    q("decision_criteria", "meddicc_decision_criteria", "Decision criteria", false),
    q("decision_process", "meddicc_decision_process", "Decision process", false),
    q("identify_pain", "meddicc_identify_pain", "Identified pain", false),
    q("champion", "meddicc_champion", "Champion", false),
    q("competition", "meddicc_competition", "Competition", false),
];

fn blank(s: Option<&str>) -> bool {
    s.is_none_or(|s| s.trim().is_empty())
}

fn score_of(lead: &Record, field: &str) -> Option<i64> {
    lead.get(field).and_then(Value::as_i64)
}

// ---------------------------------------------------------------------------------------
// Assessment: answers, completeness and a suggested outcome
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct BantItem {
    pub key: &'static str,
    pub label: &'static str,
    pub score: Option<i64>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeddiccItem {
    pub key: &'static str,
    pub label: &'static str,
    pub value: Option<String>,
}

/// Percent of questions answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Completeness {
    pub bant: u8,
    pub meddicc: u8,
    pub overall: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// `qualified`, `unqualified` or `undecided`.
    pub outcome: &'static str,
    /// Sum of the four BANT scores when all are given (0-40).
    pub bant_total: Option<i64>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    pub bant: Vec<BantItem>,
    pub meddicc: Vec<MeddiccItem>,
    pub completeness: Completeness,
    pub suggestion: Suggestion,
}

fn percent(done: usize, of: usize) -> u8 {
    (done * 100 + of / 2).checked_div(of).map_or(0, |p| p.min(100) as u8)
}

/// The lead's answers, how complete they are, and what they suggest.
pub fn assess(lead: &Record) -> Assessment {
    let bant: Vec<BantItem> = BANT
        .chunks(2)
        .filter_map(|pair| match pair {
            [score, notes] => Some(BantItem {
                key: score.key.trim_end_matches("_score"),
                label: score.label,
                score: score_of(lead, score.field),
                notes: lead.text(notes.field).map(str::to_string),
            }),
            _ => None,
        })
        .collect();
    let meddicc: Vec<MeddiccItem> =
        MEDDICC.iter().map(|m| MeddiccItem { key: m.key, label: m.label, value: lead.text(m.field).map(str::to_string) }).collect();
    let bant_done = BANT.iter().filter(|q| if q.score { score_of(lead, q.field).is_some() } else { !blank(lead.text(q.field)) }).count();
    let meddicc_done = meddicc.iter().filter(|m| !blank(m.value.as_deref())).count();
    let completeness = Completeness {
        bant: percent(bant_done, BANT.len()),
        meddicc: percent(meddicc_done, MEDDICC.len()),
        overall: percent(bant_done + meddicc_done, BANT.len() + MEDDICC.len()),
    };
    let suggestion = suggest(&bant, &meddicc);
    Assessment { bant, meddicc, completeness, suggestion }
}

/// BANT decides when it is fully scored: an average of 7 with no score under 4 qualifies, an
/// average under 4 or a need of 2 or less does not. A strong MEDDICC (five of seven answered,
/// economic buyer and pain among them) qualifies when BANT is silent or mixed.
fn suggest(bant: &[BantItem], meddicc: &[MeddiccItem]) -> Suggestion {
    let mut reasons = Vec::new();
    let scores: Vec<(&str, i64)> = bant.iter().filter_map(|b| b.score.map(|s| (b.label, s))).collect();
    let total: i64 = scores.iter().map(|(_, s)| s).sum();
    let all_scored = scores.len() == bant.len() && !bant.is_empty();
    let need = bant.iter().find(|b| b.key == "need").and_then(|b| b.score);
    let filled = |key: &str| meddicc.iter().any(|m| m.key == key && !blank(m.value.as_deref()));
    let meddicc_done = meddicc.iter().filter(|m| !blank(m.value.as_deref())).count();
    let meddicc_strong = meddicc_done >= 5 && filled("economic_buyer") && filled("identify_pain");

    let mut outcome = "undecided";
    if need.is_some_and(|n| n <= 2) {
        outcome = "unqualified";
        reasons.push(format!("Need scores {}/10: there is no clear need", need.unwrap_or(0)));
    } else if scores.len() >= 2 && total * 10 < 4 * 10 * scores.len() as i64 {
        outcome = "unqualified";
        reasons.push(format!("BANT scores average under 4/10 ({total} from {} answers)", scores.len()));
    } else if all_scored {
        let min = scores.iter().map(|(_, s)| *s).min().unwrap_or(0);
        if total >= 28 && min >= 4 {
            outcome = "qualified";
            reasons.push(format!("BANT total {total}/40 with every score at least 4"));
        } else if min < 4 {
            let weak: Vec<String> = scores.iter().filter(|(_, s)| *s < 4).map(|(l, s)| format!("{l} {s}/10")).collect();
            reasons.push(format!("Weak BANT answers: {}", weak.join(", ")));
        } else {
            reasons.push(format!("BANT total {total}/40 is under the 28 that suggests qualified"));
        }
    } else {
        let missing: Vec<&str> = bant.iter().filter(|b| b.score.is_none()).map(|b| b.label).collect();
        reasons.push(format!("BANT not fully scored: {} missing", missing.join(", ")));
    }
    if outcome == "undecided" && meddicc_strong {
        outcome = "qualified";
        reasons.push(format!("MEDDICC {meddicc_done}/7 answered, economic buyer and pain identified"));
    } else if meddicc_done > 0 && !filled("economic_buyer") {
        reasons.push("MEDDICC: no economic buyer named yet".to_string());
    }
    Suggestion { outcome, bant_total: all_scored.then_some(total), reasons }
}

// ---------------------------------------------------------------------------------------
// Conversion eligibility rules
// ---------------------------------------------------------------------------------------

/// When a lead may be converted (per company, setting `conversion.rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversionRules {
    /// The lead's status must be `qualified`.
    pub require_qualified: bool,
    /// The lead score must be at least this (0-100).
    pub min_score: Option<i64>,
    /// GDPR consent must be recorded.
    pub require_consent: bool,
    /// Convert automatically when a lead is qualified and meets every rule.
    pub auto_convert: bool,
    /// Automatic conversions also open a deal.
    pub auto_create_deal: bool,
}

impl Default for ConversionRules {
    fn default() -> Self {
        ConversionRules { require_qualified: true, min_score: None, require_consent: false, auto_convert: false, auto_create_deal: false }
    }
}

impl ConversionRules {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        match self.min_score {
            Some(s) if !(0..=100).contains(&s) => Err(vec![FieldError::new("min_score", "must be from 0 to 100")]),
            _ => Ok(()),
        }
    }
}

pub async fn rules(db: &Db, company_id: Uuid) -> Result<ConversionRules> {
    Ok(settings::get(db, company_id, RULES_KEY).await?.unwrap_or_default())
}

pub async fn rules_in(tx: &mut Tx, company_id: Uuid) -> Result<ConversionRules> {
    Ok(settings::get_in(tx, company_id, RULES_KEY).await?.unwrap_or_default())
}

/// Stores the rules (audited by the settings module).
pub async fn set_rules(db: &Db, ctx: &AuditCtx, rules: &ConversionRules) -> Result<ConversionRules> {
    rules.validate().map_err(StoreError::Invalid)?;
    settings::set(db, ctx, RULES_KEY, rules).await?;
    Ok(rules.clone())
}

/// One line of the eligibility checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub key: &'static str,
    /// The lead field the check looks at (named in errors when conversion is refused).
    pub field: &'static str,
    pub label: String,
    /// Whether the company's rules demand it; optional checks are shown for information.
    pub required: bool,
    pub met: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Eligibility {
    pub eligible: bool,
    pub checks: Vec<Check>,
    pub auto_convert: bool,
}

impl Eligibility {
    pub fn unmet(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.required && !c.met)
    }
}

/// The checklist of `rules` for `lead`.
pub fn eligibility(lead: &Record, rules: &ConversionRules) -> Eligibility {
    let status = lead.text("status").unwrap_or("new");
    let score = score_of(lead, "lead_score").unwrap_or(0);
    let consent = lead.get("gdpr_consent") == Some(&Value::Bool(true));
    let mut checks = vec![
        Check {
            key: "not_converted",
            field: "status",
            label: "Not converted yet".into(),
            required: true,
            met: status != "converted",
            detail: if status == "converted" { "This lead is already converted".into() } else { String::new() },
        },
        Check {
            key: "qualified",
            field: "status",
            label: "Lead is qualified".into(),
            required: rules.require_qualified,
            met: status == "qualified",
            detail: format!("Status is {}", status.replace('_', " ")),
        },
    ];
    checks.push(match rules.min_score {
        Some(min) => Check {
            key: "min_score",
            field: "lead_score",
            label: format!("Lead score at least {min}"),
            required: true,
            met: score >= min,
            detail: format!("Lead score is {score}"),
        },
        None => Check {
            key: "min_score",
            field: "lead_score",
            label: "Lead score".into(),
            required: false,
            met: true,
            detail: format!("Lead score is {score}; no minimum is set"),
        },
    });
    checks.push(Check {
        key: "consent",
        field: "gdpr_consent",
        label: "GDPR consent recorded".into(),
        required: rules.require_consent,
        met: consent,
        detail: if consent { "Consent given".into() } else { "No consent recorded".into() },
    });
    let eligible = checks.iter().all(|c| !c.required || c.met);
    Eligibility { eligible, checks, auto_convert: rules.auto_convert }
}

// ---------------------------------------------------------------------------------------
// Risk score
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Factor {
    pub key: &'static str,
    pub label: &'static str,
    pub applies: bool,
    /// Points this factor adds now.
    pub points: u8,
    /// Points it adds at most.
    pub max: u8,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// 0..=100, higher is riskier.
    pub score: u8,
    /// `low`, `medium` or `high`.
    pub level: &'static str,
    pub inactive_days: i64,
    pub factors: Vec<Factor>,
}

/// Contacts of the converted account, as (role, influence score).
pub type Influence = Vec<(Option<String>, Option<i64>)>;

/// What the risk score needs beyond the lead itself.
#[derive(Debug, Clone)]
pub struct RiskInputs {
    /// The newest activity linked to the lead.
    pub last_activity: Option<DateTime<Utc>>,
    pub contacts: Influence,
    pub inactive_days: i64,
    pub now: DateTime<Utc>,
}

fn factor(key: &'static str, label: &'static str, max: u8, points: u8, detail: String) -> Factor {
    Factor { key, label, applies: points > 0, points: points.min(max), max, detail }
}

const NO_COMPETITION: &[&str] = &["none", "no", "n/a", "na", "-", "nil", "no competition", "none known"];

/// The risk that the lead does not turn into revenue, from explained factors.
pub fn risk(lead: &Record, inp: &RiskInputs) -> Risk {
    let mut factors = Vec::new();
    let authority = lead.text("authority_level");

    // Economic buyer.
    let buyer = lead.text("meddicc_economic_buyer");
    factors.push(if !blank(buyer) {
        factor("no_economic_buyer", "No economic buyer", 25, 0, format!("Economic buyer: {}", clip(buyer.unwrap_or(""), 80)))
    } else if authority == Some("decision_maker") {
        factor("no_economic_buyer", "No economic buyer", 25, 10, "No economic buyer named; the lead is a decision maker".into())
    } else {
        factor("no_economic_buyer", "No economic buyer", 25, 25, "No economic buyer identified".into())
    });

    // Inactivity.
    let last = [inp.last_activity, lead.get("last_activity_at").and_then(|v| if let Value::Timestamp(t) = v { Some(*t) } else { None })]
        .into_iter()
        .flatten()
        .max();
    let (since, what) = match last {
        Some(t) => (t, "since the last activity"),
        None => (lead.created_at, "and no activity was ever logged"),
    };
    let days = (inp.now - since).num_days().max(0);
    let cold = days > inp.inactive_days;
    factors.push(factor(
        "no_recent_activity",
        "No recent activity",
        20,
        if cold { 20 } else { 0 },
        format!("{days} days {what} (limit {} days)", inp.inactive_days),
    ));

    // Budget.
    let budget_score = score_of(lead, "bant_budget_score");
    let budget_known = budget_score.is_some() || !blank(lead.text("budget_range")) || !blank(lead.text("bant_budget_notes"));
    factors.push(match budget_score {
        _ if !budget_known => factor("unknown_budget", "Unknown budget", 15, 15, "No budget score, range or notes".into()),
        Some(s) if s <= 3 => factor("unknown_budget", "Unknown budget", 15, 10, format!("Budget is weak ({s}/10)")),
        _ => factor("unknown_budget", "Unknown budget", 15, 0, "Budget is known".into()),
    });

    // Competition.
    let competition = lead.text("meddicc_competition").map(str::trim).filter(|c| !c.is_empty());
    factors.push(match competition {
        Some(c) if !NO_COMPETITION.contains(&c.to_lowercase().as_str()) => {
            factor("competitor_present", "Competitor present", 15, 15, format!("Competition: {}", clip(c, 80)))
        }
        _ => factor("competitor_present", "Competitor present", 15, 0, "No competitor recorded".into()),
    });

    // Influence of the people engaged.
    factors.push(influence_factor(authority, &inp.contacts));

    // Age.
    let age = (inp.now - lead.created_at).num_days().max(0);
    let open = !matches!(lead.text("status"), Some("converted"));
    let age_points = match age {
        _ if !open => 0,
        a if a > 90 => 10,
        a if a > 45 => 5,
        _ => 0,
    };
    factors.push(factor("lead_age", "Lead age", 10, age_points, format!("Created {age} days ago")));

    let score = factors.iter().map(|f| u32::from(f.points)).sum::<u32>().min(100) as u8;
    let level = match score {
        0..=29 => "low",
        30..=59 => "medium",
        _ => "high",
    };
    Risk { score, level, inactive_days: inp.inactive_days, factors }
}

fn influence_factor(authority: Option<&str>, contacts: &Influence) -> Factor {
    const LABEL: &str = "Only low-influence contacts";
    if !contacts.is_empty() {
        let strong = contacts.iter().any(|(role, inf)| {
            matches!(role.as_deref(), Some("decision_maker" | "executive" | "champion")) || inf.is_some_and(|i| i >= 60)
        });
        return if strong {
            factor("low_influence", LABEL, 15, 0, "A decision maker, executive or champion is engaged".into())
        } else {
            factor("low_influence", LABEL, 15, 15, format!("None of the {} contacts is a decision maker or influential", contacts.len()))
        };
    }
    match authority {
        Some("user") => factor("low_influence", LABEL, 15, 15, "The lead is an end user (authority: User)".into()),
        None => factor("low_influence", LABEL, 15, 8, "Authority level unknown".into()),
        Some(a) => factor("low_influence", LABEL, 15, 0, format!("Authority: {}", a.replace('_', " "))),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The risk score of a lead, reading its linked activities and (once converted) the contacts
/// of its account.
pub async fn risk_score(db: &Db, tenant: &Tenant, lead_id: Uuid, inactive_days: i64, now: DateTime<Utc>) -> Result<Risk> {
    let lead = live_lead(db, tenant, lead_id).await?;
    let q = Q::new("SELECT MAX(activity_date) FROM activities WHERE company_id = $1 AND lead_id = $2 AND deleted_at IS NULL")
        .bind(Value::Uuid(tenant.company_id))
        .bind(Value::Uuid(lead_id));
    let last_activity = db.fetch_one(&q, &[SqlType::Timestamp]).await?.and_then(|r| r.timestamp(0));
    let mut contacts = Vec::new();
    if let Some(account) = lead.get("converted_account_id").and_then(Value::as_uuid) {
        let q =
            Q::new("SELECT role, influence_score FROM contacts WHERE company_id = $1 AND account_id = $2 AND deleted_at IS NULL LIMIT 500")
                .bind(Value::Uuid(tenant.company_id))
                .bind(Value::Uuid(account));
        contacts = db.fetch(&q, &[SqlType::Text, SqlType::Int]).await?.into_iter().map(|r| (r.text(0), r.int(1))).collect();
    }
    Ok(risk(&lead, &RiskInputs { last_activity, contacts, inactive_days, now }))
}

async fn live_lead(db: &Db, tenant: &Tenant, id: Uuid) -> Result<Record> {
    let lead = tenant.records(db, leads_def()?).get(id).await?;
    if lead.deleted_at.is_some() {
        return Err(StoreError::NotFound);
    }
    Ok(lead)
}

// ---------------------------------------------------------------------------------------
// Reading the qualification of a lead
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: Uuid,
    pub framework: Option<String>,
    pub outcome: Option<String>,
    pub action: Option<String>,
    pub reason: Option<String>,
    pub recycle_date: Option<NaiveDate>,
    pub answers: Json,
    pub suggestion: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Qualification {
    pub lead_id: Uuid,
    pub version: i64,
    pub status: String,
    pub qualification_reason: Option<String>,
    pub recycle_date: Option<NaiveDate>,
    #[serde(flatten)]
    pub assessment: Assessment,
    pub eligibility: Eligibility,
    pub history: Vec<HistoryEntry>,
}

fn date_of(lead: &Record, field: &str) -> Option<NaiveDate> {
    match lead.get(field) {
        Some(Value::Date(d)) => Some(*d),
        _ => None,
    }
}

const HISTORY_COLS: &str = "id, framework, outcome, action, reason, recycle_date, answers, suggestion, created_by, created_at";
const HISTORY_TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Date,
    SqlType::Json,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
];

fn history_from(r: &Row) -> HistoryEntry {
    HistoryEntry {
        id: r.uuid(0).unwrap_or_default(),
        framework: r.text(1),
        outcome: r.text(2),
        action: r.text(3),
        reason: r.text(4),
        recycle_date: match r.0.get(5) {
            Some(Value::Date(d)) => Some(*d),
            _ => None,
        },
        answers: r.json(6).unwrap_or(Json::Null),
        suggestion: r.text(7),
        created_by: r.uuid(8),
        created_at: r.timestamp(9).unwrap_or_default(),
    }
}

pub async fn history(db: &Db, company_id: Uuid, lead_id: Uuid, limit: usize) -> Result<Vec<HistoryEntry>> {
    let q = Q::new(format!(
        "SELECT {HISTORY_COLS} FROM lead_qualifications WHERE company_id = $1 AND lead_id = $2 ORDER BY created_at DESC, id DESC LIMIT {}",
        limit.min(200)
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(lead_id));
    Ok(db.fetch(&q, HISTORY_TYPES).await?.iter().map(history_from).collect())
}

/// The qualification of a lead as the panel and `GET .../qualification` show it.
pub async fn qualification(db: &Db, tenant: &Tenant, lead_id: Uuid) -> Result<Qualification> {
    let lead = live_lead(db, tenant, lead_id).await?;
    let rules = rules(db, tenant.company_id).await?;
    Ok(Qualification {
        lead_id,
        version: lead.version,
        status: lead.text("status").unwrap_or("new").to_string(),
        qualification_reason: lead.text("qualification_reason").map(str::to_string),
        recycle_date: date_of(&lead, "recycle_date"),
        assessment: assess(&lead),
        eligibility: eligibility(&lead, &rules),
        history: history(db, tenant.company_id, lead_id, 50).await?,
    })
}

// ---------------------------------------------------------------------------------------
// Qualifying
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Qualified,
    Unqualified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnqualifiedAction {
    Recycle,
    Disqualify,
}

/// `POST .../leads/{id}/qualify` as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualifyRequest {
    pub framework: Option<Framework>,
    #[serde(default)]
    pub answers: Map<String, Json>,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub unqualified_action: Option<UnqualifiedAction>,
    pub recycle_date: Option<String>,
    /// Optional optimistic-concurrency check: the lead version the answers are based on.
    pub version: Option<i64>,
}

/// A checked qualification: answers as lead fields, and the decision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub frameworks: Vec<Framework>,
    /// (lead field, raw JSON value), validated by the record repository on write.
    pub answers: Vec<(&'static str, Json)>,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub action: Option<UnqualifiedAction>,
    pub recycle_date: Option<NaiveDate>,
    pub version: Option<i64>,
}

/// Maps an `answers` object of one framework to lead fields; unknown keys are errors naming
/// `answers.<key>`.
pub fn parse_answers(framework: Framework, answers: &Map<String, Json>) -> Result<Vec<(&'static str, Json)>, Vec<FieldError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (k, v) in answers {
        match framework.questions().iter().find(|q| q.key == k) {
            Some(q) => out.push((q.field, v.clone())),
            None => {
                let keys: Vec<&str> = framework.questions().iter().map(|q| q.key).collect();
                errors.push(FieldError::new(
                    format!("answers.{}", k.chars().take(64).collect::<String>()),
                    format!("is not a {} question; they are {}", framework.as_str().to_uppercase(), keys.join(", ")),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl QualifyRequest {
    /// Checks the request's shape; `today` is the company's date (a recycle date must be later).
    pub fn into_decision(self, today: NaiveDate) -> Result<Decision, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut d = Decision { outcome: self.outcome, action: self.unqualified_action, version: self.version, ..Default::default() };
        match (self.framework, self.answers.is_empty()) {
            (Some(f), _) => {
                d.frameworks.push(f);
                match parse_answers(f, &self.answers) {
                    Ok(a) => d.answers = a,
                    Err(e) => errors.extend(e),
                }
            }
            (None, false) => errors.push(FieldError::new("framework", "is required with answers: bant or meddicc")),
            (None, true) => {}
        }
        d.reason = self.reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
        if d.reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON) {
            errors.push(FieldError::new("reason", format!("must be at most {MAX_REASON} characters")));
        }
        if let Some(raw) = &self.recycle_date {
            match NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
                Ok(date) => d.recycle_date = Some(date),
                Err(_) => errors.push(FieldError::new("recycle_date", "must be a date as YYYY-MM-DD")),
            }
        }
        // Answers that could not be read already have their error; "send answers" would mislead.
        let sent_answers = !self.answers.is_empty();
        errors.extend(d.check(today).into_iter().filter(|e| !(sent_answers && e.field == "outcome" && d.outcome.is_none())));
        if errors.is_empty() {
            Ok(d)
        } else {
            Err(errors)
        }
    }
}

impl Decision {
    /// The rules between outcome, action, reason and date.
    pub fn check(&self, today: NaiveDate) -> Vec<FieldError> {
        let mut errors = Vec::new();
        match self.outcome {
            None => {
                if self.answers.is_empty() {
                    errors.push(FieldError::new("outcome", "send answers, an outcome (qualified or unqualified), or both"));
                }
                if self.action.is_some() {
                    errors.push(FieldError::new("unqualified_action", "only applies with outcome unqualified"));
                }
                if self.recycle_date.is_some() {
                    errors.push(FieldError::new("recycle_date", "only applies when recycling an unqualified lead"));
                }
            }
            Some(Outcome::Qualified) => {
                if self.action.is_some() {
                    errors.push(FieldError::new("unqualified_action", "only applies with outcome unqualified"));
                }
                if self.recycle_date.is_some() {
                    errors.push(FieldError::new("recycle_date", "only applies when recycling an unqualified lead"));
                }
            }
            Some(Outcome::Unqualified) => {
                if self.reason.is_none() {
                    errors.push(FieldError::new("reason", "is required when a lead is unqualified"));
                }
                match self.action {
                    None => {
                        errors.push(FieldError::new("unqualified_action", "is required with outcome unqualified: recycle or disqualify"))
                    }
                    Some(UnqualifiedAction::Recycle) => match self.recycle_date {
                        None => errors.push(FieldError::new("recycle_date", "is required to recycle a lead")),
                        Some(d) if d <= today => errors.push(FieldError::new("recycle_date", format!("must be after today ({today})"))),
                        Some(_) => {}
                    },
                    Some(UnqualifiedAction::Disqualify) => {
                        if self.recycle_date.is_some() {
                            errors.push(FieldError::new("recycle_date", "only applies when recycling; a disqualified lead stays closed"));
                        }
                    }
                }
            }
        }
        errors
    }

    fn status(&self) -> Option<&'static str> {
        match (self.outcome, self.action) {
            (Some(Outcome::Qualified), _) => Some("qualified"),
            (Some(Outcome::Unqualified), Some(UnqualifiedAction::Recycle)) => Some("recycled"),
            (Some(Outcome::Unqualified), Some(UnqualifiedAction::Disqualify)) => Some("disqualified"),
            (Some(Outcome::Unqualified), None) => Some("unqualified"),
            (None, _) => None,
        }
    }

    fn action_name(&self) -> Option<&'static str> {
        match (self.outcome, self.action) {
            (Some(Outcome::Qualified), _) => Some("qualify"),
            (Some(Outcome::Unqualified), Some(UnqualifiedAction::Recycle)) => Some("recycle"),
            (Some(Outcome::Unqualified), Some(UnqualifiedAction::Disqualify)) => Some("disqualify"),
            (Some(Outcome::Unqualified), None) => Some("unqualify"),
            (None, _) => Some("save_answers"),
        }
    }
}

/// What happened to an automatic conversion attempted after qualifying.
#[derive(Debug)]
pub enum AutoConversion {
    /// Rules do not ask for it, or the lead is not eligible.
    NotAttempted,
    Converted(Box<convert::Conversion>),
    /// Attempted and rolled back; the qualification stands. The reason is audited.
    Skipped(String),
}

#[derive(Debug)]
pub struct Qualified {
    pub lead: Record,
    pub auto: AutoConversion,
}

/// Today in the company's time zone.
pub async fn company_today(db: &Db, company_id: Uuid, now: DateTime<Utc>) -> Result<NaiveDate> {
    let tz = companies::get(db, company_id).await?.and_then(|c| c.time_zone.parse::<chrono_tz::Tz>().ok()).unwrap_or(chrono_tz::UTC);
    Ok(now.with_timezone(&tz).date_naive())
}

/// Errors of the lead update named as the request names them.
fn request_names(e: StoreError) -> StoreError {
    match e {
        StoreError::Invalid(errs) => StoreError::Invalid(
            errs.into_iter()
                .map(|x| {
                    let field = match x.field.as_str() {
                        "qualification_reason" => "reason".to_string(),
                        "status" => "outcome".to_string(),
                        f => match BANT.iter().chain(MEDDICC).find(|q| q.field == f) {
                            Some(q) => format!("answers.{}", q.key),
                            None => f.to_string(),
                        },
                    };
                    FieldError::new(field, x.reason)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Stores answers and the decision in one transaction: the lead's fields through the record
/// repository, a history row, an audit row for the decision, and (when the company's rules
/// say so and the lead is eligible) an automatic conversion.
pub async fn qualify(db: &Db, tenant: &Tenant, lead_id: Uuid, d: &Decision) -> Result<Qualified> {
    let def = leads_def()?;
    let records = tenant.records(db, def);
    let custom = records.custom_fields().await?;
    let mut tx = db.begin().await?;
    let lead = records.get_in_tx(&mut tx, lead_id).await?;
    if lead.deleted_at.is_some() {
        return Err(StoreError::NotFound);
    }
    if !tenant.role.can_write() {
        return Err(StoreError::Forbidden("your role can read but not change records".into()));
    }
    if let Some(v) = d.version.filter(|v| *v != lead.version) {
        tracing::debug!(lead = %lead_id, sent = v, current = lead.version, "stale qualification");
        return Err(StoreError::Stale { current: lead.version });
    }
    if lead.text("status") == Some("converted") {
        return Err(StoreError::Conflict("this lead is already converted; its qualification is closed".into()));
    }
    let mut input: Map<String, Json> = d.answers.iter().map(|(f, v)| (f.to_string(), v.clone())).collect();
    if let Some(status) = d.status() {
        input.insert("status".into(), status.into());
        input.insert("qualification_reason".into(), d.reason.clone().map_or(Json::Null, Json::String));
        input.insert("recycle_date".into(), d.recycle_date.map_or(Json::Null, |x| Json::String(x.format("%Y-%m-%d").to_string())));
    }
    let mut pipeline = records.pipeline(&mut tx).await?;
    let updated = records.update_in(&mut tx, &custom, &mut pipeline, lead_id, &input, "qualification").await.map_err(request_names)?;
    pipeline.finish(&mut tx).await?;

    let suggestion = assess(&updated).suggestion;
    if d.outcome.is_some() || updated.version != lead.version {
        let answers: Map<String, Json> =
            d.answers.iter().map(|(f, _)| (f.to_string(), updated.get(f).map_or(Json::Null, Value::to_json))).collect();
        let framework = match d.frameworks.as_slice() {
            [one] => Some(one.as_str().to_string()),
            [] => None,
            _ => Some("bant+meddicc".to_string()),
        };
        let h = NewHistory {
            framework,
            outcome: d.outcome.map(|o| match o {
                Outcome::Qualified => "qualified",
                Outcome::Unqualified => "unqualified",
            }),
            action: d.action_name(),
            reason: d.reason.clone(),
            recycle_date: d.recycle_date,
            answers: Json::Object(answers),
            suggestion: suggestion.outcome,
            by: Some(tenant.user_id),
        };
        insert_history(&mut tx, tenant.company_id, lead_id, h).await?;
    }
    if let Some(action) = d.action_name().filter(|_| d.outcome.is_some()) {
        let detail = match (&d.reason, d.recycle_date) {
            (Some(r), Some(date)) => format!("{r} (back to nurturing on {date})"),
            (Some(r), None) => r.clone(),
            (None, _) => String::new(),
        };
        let row = Change {
            object: def.name.clone(),
            record_id: Some(lead_id),
            action: action.into(),
            field: Some("qualification".into()),
            old: lead.text("status").map(str::to_string),
            new: Some(if detail.is_empty() {
                d.status().unwrap_or("").to_string()
            } else {
                format!("{}: {detail}", d.status().unwrap_or(""))
            }),
        };
        audit::append(&mut tx, &tenant.audit, &[row]).await?;
    }

    let mut auto = AutoConversion::NotAttempted;
    if d.outcome == Some(Outcome::Qualified) {
        let rules = rules_in(&mut tx, tenant.company_id).await?;
        if rules.auto_convert && eligibility(&updated, &rules).eligible {
            auto = auto_convert(db, &mut tx, tenant, lead_id, &rules).await?;
        }
    }
    let lead = records.get_in_tx(&mut tx, lead_id).await?;
    tx.commit().await?;
    Ok(Qualified { lead, auto })
}

/// Converts inside a savepoint: a conversion that cannot be done (no company name for the
/// account, an invalid default) is rolled back and recorded, and the qualification stands.
async fn auto_convert(db: &Db, tx: &mut Tx, tenant: &Tenant, lead_id: Uuid, rules: &ConversionRules) -> Result<AutoConversion> {
    tx.execute(&Q::new("SAVEPOINT auto_convert")).await?;
    match convert::auto_convert_in(db, tx, tenant, lead_id, rules).await {
        Ok(c) => {
            tx.execute(&Q::new("RELEASE SAVEPOINT auto_convert")).await?;
            Ok(AutoConversion::Converted(Box::new(c)))
        }
        Err(
            e @ (StoreError::Invalid(_)
            | StoreError::Conflict(_)
            | StoreError::Duplicate(_)
            | StoreError::NotFound
            | StoreError::Forbidden(_)),
        ) => {
            tx.execute(&Q::new("ROLLBACK TO SAVEPOINT auto_convert")).await?;
            tx.execute(&Q::new("RELEASE SAVEPOINT auto_convert")).await?;
            let reason = match &e {
                StoreError::Invalid(errs) => errs.iter().map(|x| format!("{} {}", x.field, x.reason)).collect::<Vec<_>>().join("; "),
                other => other.to_string(),
            };
            audit::append(
                tx,
                &tenant.audit,
                &[Change {
                    object: "leads".into(),
                    record_id: Some(lead_id),
                    action: "auto_convert_skipped".into(),
                    field: None,
                    old: None,
                    new: Some(reason.clone()),
                }],
            )
            .await?;
            Ok(AutoConversion::Skipped(reason))
        }
        Err(e) => Err(e),
    }
}

/// One row of the qualification history.
struct NewHistory<'a> {
    framework: Option<String>,
    outcome: Option<&'a str>,
    action: Option<&'a str>,
    reason: Option<String>,
    recycle_date: Option<NaiveDate>,
    answers: Json,
    suggestion: &'a str,
    by: Option<Uuid>,
}

async fn insert_history(tx: &mut Tx, company_id: Uuid, lead_id: Uuid, h: NewHistory<'_>) -> Result<()> {
    let text = |v: Option<&str>| v.map_or(Value::Null(SqlType::Text), |s| Value::Text(s.into()));
    let q = Q::new(format!(
        "INSERT INTO lead_qualifications ({HISTORY_COLS}, company_id, lead_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    ))
    .bind(Value::Uuid(new_id()))
    .bind(text(h.framework.as_deref()))
    .bind(text(h.outcome))
    .bind(text(h.action))
    .bind(text(h.reason.as_deref()))
    .bind(h.recycle_date.map_or(Value::Null(SqlType::Date), Value::Date))
    .bind(Value::Json(h.answers))
    .bind(Value::Text(h.suggestion.into()))
    .bind(h.by.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(Value::Timestamp(now_micros()))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(lead_id));
    tx.execute(&q).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Recycling: back to nurturing on the date
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecycleReport {
    pub companies: usize,
    pub moved: usize,
    pub skipped: Vec<String>,
}

/// Leads of one pass per company; a later run picks up the rest.
const RECYCLE_BATCH: usize = 1000;

/// Moves every recycled lead whose date has come (in its company's time zone) back to
/// `nurturing`. The change is made through the record repository on behalf of the member who
/// recycled the lead (or its owner), and audited as a system change of this job.
pub async fn recycle_due(db: &Db, now: DateTime<Utc>, job: &str) -> Result<RecycleReport> {
    let def = leads_def()?;
    let mut report = RecycleReport::default();
    for company_id in companies::all_ids(db).await? {
        let today = company_today(db, company_id, now).await?;
        let q = Q::new(format!(
            "SELECT id, owner_id FROM leads WHERE company_id = $1 AND status = $2 AND recycle_date <= $3 AND deleted_at IS NULL \
             ORDER BY recycle_date, id LIMIT {RECYCLE_BATCH}"
        ))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text("recycled".into()))
        .bind(Value::Date(today));
        let due = db.fetch(&q, &[SqlType::Uuid, SqlType::Uuid]).await?;
        if due.is_empty() {
            continue;
        }
        report.companies += 1;
        for row in due {
            let Some(lead_id) = row.uuid(0) else { continue };
            let Some(tenant) = recycle_actor(db, company_id, lead_id, row.uuid(1), job).await? else {
                report.skipped.push(format!("{lead_id}: neither the member who recycled it nor its owner can change leads"));
                continue;
            };
            match return_to_nurturing(db, &tenant, def, lead_id, today).await {
                Ok(true) => report.moved += 1,
                Ok(false) => {}
                Err(StoreError::Invalid(errs)) => {
                    let why = errs.iter().map(|e| format!("{} {}", e.field, e.reason)).collect::<Vec<_>>().join("; ");
                    report.skipped.push(format!("{lead_id}: {why}"));
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

/// The member the job acts for: who recycled the lead, else its owner, if still an active
/// member who may write. Audit rows carry no actor: the change is the system's.
async fn recycle_actor(db: &Db, company_id: Uuid, lead_id: Uuid, owner: Option<Uuid>, job: &str) -> Result<Option<Tenant>> {
    let q = Q::new(
        "SELECT created_by FROM lead_qualifications WHERE company_id = $1 AND lead_id = $2 AND action = $3 \
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(lead_id))
    .bind(Value::Text("recycle".into()));
    let recycler = db.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0));
    for user_id in [recycler, owner].into_iter().flatten() {
        if let Some(member) = crate::access::load(db, company_id, user_id).await? {
            if member.role.can_write() {
                return Ok(Some(Tenant {
                    company_id,
                    user_id,
                    role: member.role,
                    calling_code: member.calling_code,
                    access: member.access,
                    audit: AuditCtx {
                        company_id,
                        actor_id: None,
                        ip: None,
                        user_agent: Some("corvid leads.recycle".into()),
                        request_id: Some(job.to_string()),
                    },
                }));
            }
        }
    }
    Ok(None)
}

/// One lead back to nurturing, if it is still recycled and due (checked under the row lock).
async fn return_to_nurturing(db: &Db, tenant: &Tenant, def: &'static ObjectDef, lead_id: Uuid, today: NaiveDate) -> Result<bool> {
    let records = tenant.records(db, def);
    let custom = records.custom_fields().await?;
    let mut tx = db.begin().await?;
    let lead = records.get_in_tx(&mut tx, lead_id).await?;
    let due = date_of(&lead, "recycle_date").is_some_and(|d| d <= today);
    if lead.deleted_at.is_some() || lead.text("status") != Some("recycled") || !due {
        return Ok(false);
    }
    let mut input = Map::new();
    input.insert("status".into(), "nurturing".into());
    input.insert("recycle_date".into(), Json::Null);
    let mut pipeline = records.pipeline(&mut tx).await?;
    records.update_in(&mut tx, &custom, &mut pipeline, lead_id, &input, "recycle_job").await?;
    pipeline.finish(&mut tx).await?;
    let h = NewHistory {
        framework: None,
        outcome: None,
        action: Some("return_to_nurturing"),
        reason: lead.text("qualification_reason").map(str::to_string),
        recycle_date: date_of(&lead, "recycle_date"),
        answers: Json::Object(Map::new()),
        suggestion: assess(&lead).suggestion.outcome,
        by: None,
    };
    insert_history(&mut tx, tenant.company_id, lead_id, h).await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use std::collections::BTreeMap;

    fn lead(fields: &[(&str, Value)], age_days: i64) -> Record {
        let now = Utc::now();
        let mut map = BTreeMap::new();
        for (k, v) in fields {
            map.insert(k.to_string(), v.clone());
        }
        Record {
            id: Uuid::nil(),
            number: "LEAD-00001".into(),
            version: 1,
            created_at: now - Duration::days(age_days),
            updated_at: now,
            created_by: None,
            updated_by: None,
            deleted_at: None,
            fields: map,
            custom: Map::new(),
            redacted: Vec::new(),
        }
    }

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn strong_bant_suggests_qualified_and_weak_need_unqualified() {
        let scores = |b: i64, a: i64, n: i64, ti: i64| {
            lead(
                &[
                    ("bant_budget_score", Value::Int(b)),
                    ("bant_authority_score", Value::Int(a)),
                    ("bant_need_score", Value::Int(n)),
                    ("bant_timeline_score", Value::Int(ti)),
                ],
                1,
            )
        };
        let a = assess(&scores(8, 7, 9, 7));
        assert_eq!(a.suggestion.outcome, "qualified", "{:?}", a.suggestion);
        assert_eq!(a.suggestion.bant_total, Some(31));
        assert_eq!(a.completeness.bant, 50);
        assert_eq!(assess(&scores(9, 9, 2, 9)).suggestion.outcome, "unqualified");
        assert_eq!(assess(&scores(3, 3, 4, 3)).suggestion.outcome, "unqualified");
        let mixed = assess(&scores(9, 9, 9, 3));
        assert_eq!(mixed.suggestion.outcome, "undecided");
        assert!(mixed.suggestion.reasons[0].contains("Timeline 3/10"), "{:?}", mixed.suggestion);
        let empty = assess(&lead(&[], 1));
        assert_eq!((empty.suggestion.outcome, empty.completeness.overall), ("undecided", 0));
    }

    #[test]
    fn strong_meddicc_qualifies_when_bant_is_silent() {
        let mut fields: Vec<(&str, Value)> = MEDDICC.iter().take(5).map(|q| (q.field, t("known"))).collect();
        fields.push(("meddicc_economic_buyer", t("CFO")));
        let a = assess(&lead(&fields, 1));
        assert_eq!(a.suggestion.outcome, "qualified", "{:?}", a.suggestion);
        assert_eq!(a.completeness.meddicc, 71);
    }

    #[test]
    fn eligibility_follows_the_rules() {
        let l = lead(&[("status", t("nurturing")), ("lead_score", Value::Int(40))], 1);
        let rules = ConversionRules { min_score: Some(50), require_consent: true, ..Default::default() };
        let e = eligibility(&l, &rules);
        assert!(!e.eligible);
        let unmet: Vec<&str> = e.unmet().map(|c| c.key).collect();
        assert_eq!(unmet, ["qualified", "min_score", "consent"]);
        let ok = lead(&[("status", t("qualified")), ("lead_score", Value::Int(50)), ("gdpr_consent", Value::Bool(true))], 1);
        assert!(eligibility(&ok, &rules).eligible);
        let lax = ConversionRules { require_qualified: false, ..Default::default() };
        assert!(eligibility(&l, &lax).eligible);
        let done = lead(&[("status", t("converted"))], 1);
        assert!(!eligibility(&done, &lax).eligible);
        assert!(ConversionRules { min_score: Some(101), ..Default::default() }.validate().is_err());
    }

    #[test]
    fn risk_explains_every_factor() {
        let now = Utc::now();
        let inputs = RiskInputs { last_activity: None, contacts: Vec::new(), inactive_days: 14, now };
        let bare = risk(&lead(&[("authority_level", t("user")), ("meddicc_competition", t("Zoho CRM"))], 100), &inputs);
        assert_eq!(bare.score, 100, "{bare:?}");
        assert_eq!(bare.level, "high");
        assert!(bare.factors.iter().all(|f| f.applies), "{bare:?}");

        let good = lead(
            &[
                ("authority_level", t("decision_maker")),
                ("meddicc_economic_buyer", t("Priya, CFO")),
                ("bant_budget_score", Value::Int(8)),
                ("meddicc_competition", t("none")),
            ],
            3,
        );
        let fresh = RiskInputs { last_activity: Some(now - Duration::days(2)), ..inputs.clone() };
        let r = risk(&good, &fresh);
        assert_eq!((r.score, r.level), (0, "low"), "{r:?}");
        let stale = risk(&good, &RiskInputs { last_activity: Some(now - Duration::days(30)), ..inputs.clone() });
        assert_eq!(stale.score, 20);
        assert!(stale.factors.iter().any(|f| f.key == "no_recent_activity" && f.applies && f.detail.starts_with("30 days")));
        let weak_contacts = RiskInputs { contacts: vec![(Some("end_user".into()), Some(10))], ..fresh.clone() };
        assert_eq!(risk(&good, &weak_contacts).score, 15);
        let strong_contacts = RiskInputs { contacts: vec![(Some("executive".into()), None)], ..fresh };
        assert_eq!(risk(&good, &strong_contacts).score, 0);
    }

    #[test]
    fn decisions_are_checked() {
        let today = NaiveDate::from_ymd_opt(2030, 1, 10).expect("date");
        let req = |j: Json| serde_json::from_value::<QualifyRequest>(j).expect("shape").into_decision(today);
        let names = |r: Result<Decision, Vec<FieldError>>| r.expect_err("invalid").into_iter().map(|e| e.field).collect::<Vec<_>>();
        assert_eq!(names(req(serde_json::json!({}))), ["outcome"]);
        assert_eq!(names(req(serde_json::json!({"answers": {"budget_score": 3}}))), ["framework"]);
        assert_eq!(names(req(serde_json::json!({"framework": "bant", "answers": {"metrics": "x"}}))), ["answers.metrics"]);
        assert_eq!(names(req(serde_json::json!({"outcome": "unqualified"}))), ["reason", "unqualified_action"]);
        assert_eq!(
            names(req(
                serde_json::json!({"outcome": "unqualified", "reason": "later", "unqualified_action": "recycle", "recycle_date": "2030-01-10"})
            )),
            ["recycle_date"]
        );
        assert_eq!(names(req(serde_json::json!({"outcome": "qualified", "recycle_date": "2030-02-01"}))), ["recycle_date"]);
        let ok = req(serde_json::json!({"framework": "meddicc", "answers": {"champion": "Ravi"}, "outcome": "unqualified",
            "reason": "No budget this year", "unqualified_action": "recycle", "recycle_date": "2030-04-01"}))
        .expect("valid");
        assert_eq!(ok.status(), Some("recycled"));
        assert_eq!(ok.answers, vec![("meddicc_champion", Json::String("Ravi".into()))]);
    }
}
