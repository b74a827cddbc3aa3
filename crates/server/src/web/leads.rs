//! Lead pages beyond the generic record page: the qualification panel (BANT sliders, MEDDICC
//! answers, outcome buttons, eligibility checklist, risk score), loaded into the lead page by
//! htmx or shown on its own, and the conversion wizard (account, contact, deal, first
//! activity, confirm). Both call the same store services as the API.

use super::{is_htmx, redirect, render, render_status, Ctx, Page, WebError, WebResult};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use corvid_core::meta::{DEAL_STAGE, LEAD_STATUS};
use corvid_core::value::now_micros;
use corvid_core::{Record, Value};
use corvid_store::convert::{self, AccountSuggestion, ActivityInput, ContactSuggestion, ConvertRequest, DealInput, OrgHint, PickInput};
use corvid_store::qualification::{
    self as qual, AutoConversion, Check, Completeness, Decision, Framework, Outcome, Risk, UnqualifiedAction,
};
use corvid_store::{companies, records, StoreError};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn lead_id(p: &crate::extract::Params) -> WebResult<Uuid> {
    Uuid::parse_str(p.str("id")).map_err(|_| WebError::not_found())
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

fn store_not_found(e: StoreError) -> WebError {
    match e {
        StoreError::NotFound => WebError::not_found(),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------
// The qualification panel
// ---------------------------------------------------------------------------------------

pub struct ScoreRow {
    pub field: &'static str,
    pub label: &'static str,
    pub value: String,
    pub unset: bool,
    pub notes_field: &'static str,
    pub notes: String,
}

pub struct TextRow {
    pub field: &'static str,
    pub label: &'static str,
    pub value: String,
}

pub struct Link {
    pub label: &'static str,
    pub href: String,
    pub title: String,
}

pub struct Panel {
    pub href: String,
    pub action: String,
    pub convert_href: String,
    pub version: i64,
    pub status_label: String,
    pub status_colour: String,
    pub converted: bool,
    pub links: Vec<Link>,
    pub suggestion: &'static str,
    pub reasons: Vec<String>,
    pub completeness: Completeness,
    pub bant: Vec<ScoreRow>,
    pub meddicc: Vec<TextRow>,
    pub reason: String,
    pub recycle_date: String,
    pub tomorrow: String,
    pub checks: Vec<Check>,
    pub eligible: bool,
    pub risk: Risk,
    pub notice: String,
    pub error: String,
    pub can_write: bool,
    /// The answers form starts open until the lead has an outcome (or after an error).
    pub open: bool,
}

impl Panel {
    pub fn suggestion_colour(&self) -> &'static str {
        match self.suggestion {
            "qualified" => "green",
            "unqualified" => "red",
            _ => "grey",
        }
    }
    pub fn risk_colour(&self) -> &'static str {
        match self.risk.level {
            "low" => "green",
            "medium" => "orange",
            _ => "red",
        }
    }
}

#[derive(Template)]
#[template(path = "lead_qualification.html")]
struct PanelFragment {
    ctx: Ctx,
    p: Panel,
}

#[derive(Template)]
#[template(path = "lead_qualification_page.html")]
struct PanelPage {
    ctx: Ctx,
    p: Panel,
    title: String,
}

fn status_badge(status: &str) -> (String, String) {
    LEAD_STATUS
        .iter()
        .find(|(v, _, _)| *v == status)
        .map_or_else(|| (status.to_string(), "grey".to_string()), |(_, l, c)| (l.to_string(), c.to_string()))
}

/// The links of a converted lead, with titles.
async fn conversion_links(st: &AppState, page: &Page, lead: &Record) -> WebResult<Vec<Link>> {
    let base = page.ctx.base();
    let mut out = Vec::new();
    for (field, object, label) in [
        ("converted_account_id", "accounts", "Account"),
        ("converted_contact_id", "contacts", "Contact"),
        ("converted_deal_id", "deals", "Deal"),
    ] {
        let Some(id) = lead.get(field).and_then(Value::as_uuid) else { continue };
        let Some(def) = corvid_core::object(object) else { continue };
        let titles = records::titles(&st.db, page.tenant.company_id, def, &[id]).await?;
        out.push(Link { label, href: format!("{base}/{object}/{id}"), title: titles.get(&id).cloned().unwrap_or_else(|| id.to_string()) });
    }
    Ok(out)
}

/// Builds the panel from the lead; `form` (after a failed save) keeps what the user typed.
async fn panel(st: &AppState, page: &Page, id: Uuid, form: Option<&Pairs>) -> WebResult<Panel> {
    let q = qual::qualification(&st.db, &page.tenant, id).await.map_err(store_not_found)?;
    let lead = page.tenant.records(&st.db, qual::leads_def()?).get(id).await?;
    let risk = qual::risk_score(&st.db, &page.tenant, id, qual::DEFAULT_INACTIVE_DAYS, now_micros()).await?;
    let today = qual::company_today(&st.db, page.tenant.company_id, now_micros()).await?;
    let typed = |field: &str| form.and_then(|f| first(f, field)).map(str::to_string);
    let bant = qual::BANT
        .chunks(2)
        .filter_map(|pair| match pair {
            [s, n] => {
                let stored = lead.get(s.field).and_then(Value::as_i64);
                let unset = match form {
                    Some(f) => first(f, &format!("{}_unset", s.field)).is_some(),
                    None => stored.is_none(),
                };
                Some(ScoreRow {
                    field: s.field,
                    label: s.label,
                    value: typed(s.field).unwrap_or_else(|| stored.map_or_else(|| "5".to_string(), |v| v.to_string())),
                    unset,
                    notes_field: n.field,
                    notes: typed(n.field).unwrap_or_else(|| lead.text(n.field).unwrap_or("").to_string()),
                })
            }
            _ => None,
        })
        .collect();
    let meddicc = qual::MEDDICC
        .iter()
        .map(|m| TextRow {
            field: m.field,
            label: m.label,
            value: typed(m.field).unwrap_or_else(|| lead.text(m.field).unwrap_or("").to_string()),
        })
        .collect();
    let (status_label, status_colour) = status_badge(&q.status);
    let base = page.ctx.base();
    let href = format!("{base}/leads/{id}");
    Ok(Panel {
        action: format!("{href}/qualification"),
        convert_href: format!("{href}/convert"),
        href,
        version: lead.version,
        status_label,
        status_colour,
        converted: q.status == "converted",
        links: conversion_links(st, page, &lead).await?,
        suggestion: q.assessment.suggestion.outcome,
        reasons: q.assessment.suggestion.reasons.clone(),
        completeness: q.assessment.completeness,
        bant,
        meddicc,
        reason: typed("reason").unwrap_or_else(|| q.qualification_reason.clone().unwrap_or_default()),
        recycle_date: typed("recycle_date").unwrap_or_else(|| q.recycle_date.map(|d| d.to_string()).unwrap_or_default()),
        tomorrow: (today + chrono::Duration::days(1)).to_string(),
        eligible: q.eligibility.eligible,
        checks: q.eligibility.checks,
        risk,
        notice: String::new(),
        error: String::new(),
        can_write: page.ctx.can_write(),
        open: form.is_some() || !matches!(q.status.as_str(), "qualified" | "recycled" | "disqualified" | "converted"),
    })
}

fn show_panel(page: &Page, headers: &HeaderMap, p: Panel, status: StatusCode) -> WebResult<Response> {
    if is_htmx(headers) {
        render_status(status, &PanelFragment { ctx: page.ctx.clone(), p })
    } else {
        render_status(status, &PanelPage { ctx: page.ctx.clone(), p, title: "Qualification".into() })
    }
}

/// `GET /app/{c}/leads/{id}/qualification`: the panel (a fragment for htmx, else a page).
pub async fn qualification(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let id = lead_id(&p)?;
    let panel = panel(&st, &page, id, None).await?;
    show_panel(&page, &headers, panel, StatusCode::OK)
}

/// The decision of the panel's form: answers of both frameworks, and the button pressed.
fn decision_from(form: &Pairs) -> Result<Decision, String> {
    let mut d = Decision { frameworks: vec![Framework::Bant, Framework::Meddicc], ..Default::default() };
    for q in qual::BANT.iter().chain(qual::MEDDICC) {
        let Some(raw) = first(form, q.field) else { continue };
        let value = if q.score {
            if first(form, &format!("{}_unset", q.field)).is_some() {
                Json::Null
            } else {
                raw.trim().parse::<i64>().map_or_else(|_| Json::String(raw.to_string()), Json::from)
            }
        } else {
            Json::String(raw.to_string())
        };
        d.answers.push((q.field, value));
    }
    d.version = first(form, "version").and_then(|v| v.parse().ok());
    d.reason = first(form, "reason").map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    match first(form, "decision").unwrap_or("save") {
        "qualified" => d.outcome = Some(Outcome::Qualified),
        "recycle" => {
            d.outcome = Some(Outcome::Unqualified);
            d.action = Some(UnqualifiedAction::Recycle);
            let raw = first(form, "recycle_date").unwrap_or("").trim();
            if !raw.is_empty() {
                d.recycle_date =
                    Some(chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| "recycle date must be a date".to_string())?);
            }
        }
        "disqualify" => {
            d.outcome = Some(Outcome::Unqualified);
            d.action = Some(UnqualifiedAction::Disqualify);
        }
        _ => {}
    }
    Ok(d)
}

fn readable(errs: &[corvid_core::FieldError]) -> String {
    errs.iter()
        .map(|e| {
            let f = e.field.trim_start_matches("answers.").replace('_', " ");
            format!("{f} {}", e.reason)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `POST /app/{c}/leads/{id}/qualification`: saves answers and the outcome pressed.
pub async fn save_qualification(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let id = lead_id(&p)?;
    let today = qual::company_today(&st.db, page.tenant.company_id, now_micros()).await?;
    let decided = decision_from(&form).and_then(|d| {
        let errs = d.check(today);
        if errs.is_empty() {
            Ok(d)
        } else {
            Err(readable(&errs))
        }
    });
    let outcome = match decided {
        Err(msg) => Err(msg),
        Ok(d) => match qual::qualify(&st.db, &page.tenant, id, &d).await {
            Ok(done) => Ok(match done.auto {
                AutoConversion::Converted(_) => "Saved. The lead met the conversion rules and was converted automatically.".to_string(),
                AutoConversion::Skipped(why) => format!("Saved. Automatic conversion was skipped: {why}."),
                AutoConversion::NotAttempted => match done.lead.text("status") {
                    Some("qualified") if d.outcome.is_some() => "Lead qualified.".to_string(),
                    Some("recycled") if d.outcome.is_some() => {
                        format!("Lead recycled: back to nurturing on {}.", d.recycle_date.map(|x| x.to_string()).unwrap_or_default())
                    }
                    Some("disqualified") if d.outcome.is_some() => "Lead disqualified.".to_string(),
                    _ => "Answers saved.".to_string(),
                },
            }),
            Err(StoreError::Invalid(errs)) => Err(readable(&errs)),
            Err(StoreError::Stale { .. }) => {
                Err("Someone else changed this lead while you were answering. Check the answers below and save again.".into())
            }
            Err(StoreError::Conflict(m) | StoreError::Forbidden(m)) => Err(m),
            Err(e) => return Err(store_not_found(e)),
        },
    };
    match outcome {
        Ok(notice) => {
            if !is_htmx(&headers) {
                return Ok(redirect(&headers, &format!("{}/leads/{id}?notice={}", page.ctx.base(), urlencode(&notice))));
            }
            let mut panel = panel(&st, &page, id, None).await?;
            panel.notice = notice;
            show_panel(&page, &headers, panel, StatusCode::OK)
        }
        Err(error) => {
            let mut panel = panel(&st, &page, id, Some(&form)).await?;
            panel.error = error;
            show_panel(&page, &headers, panel, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The conversion wizard
// ---------------------------------------------------------------------------------------

const STEPS: &[(&str, &str)] =
    &[("account", "Account"), ("contact", "Contact"), ("deal", "Deal"), ("activity", "First activity"), ("confirm", "Confirm")];

/// The form fields each step owns; the other steps' values travel as hidden inputs.
fn step_keys(step: &str) -> &'static [&'static str] {
    match step {
        "account" => &["account_choice", "a_name", "a_website", "a_gstin", "a_industry", "a_billing_city", "a_billing_country"],
        "contact" => &["contact_choice", "c_first_name", "c_last_name", "c_email", "c_phone", "c_job_title"],
        "deal" => &["deal_create", "d_name", "d_amount", "d_currency", "d_stage", "d_close_date"],
        "activity" => &["act_create", "act_type", "act_subject", "act_notes"],
        "confirm" => &["override"],
        _ => &[],
    }
}

fn all_keys() -> impl Iterator<Item = &'static str> {
    STEPS.iter().flat_map(|(s, _)| step_keys(s).iter().copied())
}

pub struct StepItem {
    pub key: &'static str,
    pub label: &'static str,
    pub state: &'static str,
}

pub struct Opt {
    pub value: String,
    pub label: String,
}

/// One input of the current step.
pub struct WizInput {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub error: String,
    pub options: Vec<Opt>,
}

#[derive(Template)]
#[template(path = "lead_convert.html")]
struct Wizard {
    ctx: Ctx,
    title: String,
    lead_href: String,
    action: String,
    step: &'static str,
    steps: Vec<StepItem>,
    state: BTreeMap<String, String>,
    hidden: Vec<(String, String)>,
    accounts: Vec<AccountSuggestion>,
    contacts: Vec<ContactSuggestion>,
    errors: Vec<String>,
    field_errors: BTreeMap<String, String>,
    checks: Vec<Check>,
    eligible: bool,
    can_override: bool,
    summary: Vec<(String, String)>,
    inputs: Vec<WizInput>,
    converted: bool,
    links: Vec<Link>,
}

impl Wizard {
    fn v(&self, key: &str) -> &str {
        self.state.get(key).map_or("", String::as_str)
    }
    fn is(&self, key: &str, value: &str) -> bool {
        self.v(key) == value
    }
    fn on(&self, key: &str) -> bool {
        self.v(key) == "yes"
    }
    fn chose(&self, key: &str, id: &Uuid) -> bool {
        self.v(key) == id.to_string()
    }
    fn err(&self, key: &str) -> &str {
        self.field_errors.get(key).map_or("", String::as_str)
    }
    fn prev(&self) -> &'static str {
        let i = STEPS.iter().position(|(s, _)| *s == self.step).unwrap_or(0);
        STEPS[i.saturating_sub(1)].0
    }
    fn next(&self) -> &'static str {
        let i = STEPS.iter().position(|(s, _)| *s == self.step).unwrap_or(0);
        STEPS[(i + 1).min(STEPS.len() - 1)].0
    }
}

fn text_of(m: &Map<String, Json>, key: &str) -> String {
    match m.get(key) {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The wizard's starting values, from the lead.
async fn initial_state(st: &AppState, page: &Page, lead: &Record) -> WebResult<BTreeMap<String, String>> {
    let mut s = BTreeMap::new();
    let a = convert::account_prefill(lead);
    let c = convert::contact_prefill(lead);
    s.insert("account_choice".into(), "new".into());
    for k in ["name", "website", "gstin", "industry", "billing_city", "billing_country"] {
        s.insert(format!("a_{k}"), text_of(&a, k));
    }
    s.insert("contact_choice".into(), "new".into());
    for k in ["first_name", "last_name", "email", "phone", "job_title"] {
        s.insert(format!("c_{k}"), text_of(&c, k));
    }
    let company = companies::get(&st.db, page.tenant.company_id).await?;
    let product = lead.text("interest_product").unwrap_or("New business");
    let org = lead.text("company_name").unwrap_or_else(|| lead.text("last_name").unwrap_or(""));
    s.insert("deal_create".into(), String::new());
    s.insert("d_name".into(), format!("{org} - {product}"));
    s.insert("d_amount".into(), String::new());
    s.insert("d_currency".into(), company.map_or_else(|| "INR".into(), |c| c.default_currency));
    s.insert("d_stage".into(), "qualification".into());
    s.insert("d_close_date".into(), String::new());
    s.insert("act_create".into(), "yes".into());
    s.insert("act_type".into(), "note".into());
    s.insert("act_subject".into(), "Lead converted".into());
    s.insert("act_notes".into(), String::new());
    s.insert("override".into(), String::new());
    Ok(s)
}

fn state_from(form: &Pairs) -> BTreeMap<String, String> {
    all_keys().map(|k| (k.to_string(), first(form, k).unwrap_or("").chars().take(20_000).collect())).collect()
}

fn opts(list: &[(&str, &str, &str)]) -> Vec<Opt> {
    list.iter().map(|(v, l, _)| Opt { value: v.to_string(), label: l.to_string() }).collect()
}

/// The text inputs of a step: (name, label, kind).
fn step_fields(step: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match step {
        "account" => &[
            ("a_name", "Account name", "text"),
            ("a_website", "Website", "url"),
            ("a_gstin", "GSTIN", "text"),
            ("a_industry", "Industry", "text"),
            ("a_billing_city", "City", "text"),
            ("a_billing_country", "Country (ISO code)", "text"),
        ],
        "contact" => &[
            ("c_first_name", "First name", "text"),
            ("c_last_name", "Last name", "text"),
            ("c_email", "Email", "email"),
            ("c_phone", "Phone", "tel"),
            ("c_job_title", "Job title", "text"),
        ],
        "deal" => &[
            ("d_name", "Deal name", "text"),
            ("d_amount", "Amount", "decimal"),
            ("d_currency", "Currency", "select"),
            ("d_stage", "Stage", "select"),
            ("d_close_date", "Expected close", "date"),
        ],
        "activity" => &[("act_type", "Type", "select"), ("act_subject", "Subject", "text"), ("act_notes", "Notes", "textarea")],
        _ => &[],
    }
}

fn step_inputs(step: &str, state: &BTreeMap<String, String>, errors: &BTreeMap<String, String>) -> Vec<WizInput> {
    step_fields(step)
        .iter()
        .map(|(name, label, kind)| WizInput {
            name,
            label,
            kind,
            value: state.get(*name).cloned().unwrap_or_default(),
            error: errors.get(*name).cloned().unwrap_or_default(),
            options: match *name {
                "d_currency" => corvid_core::money::currencies().map(|c| Opt { value: c.into(), label: c.into() }).collect(),
                "d_stage" => opts(DEAL_STAGE),
                "act_type" => ["call", "email", "meeting", "note", "whatsapp"]
                    .iter()
                    .map(|t| Opt { value: t.to_string(), label: t.replace('_', " ") })
                    .collect(),
                _ => Vec::new(),
            },
        })
        .collect()
}

#[allow(clippy::too_many_arguments)] // one call shape for every step
async fn wizard(
    st: &AppState,
    page: &Page,
    lead: &Record,
    step: &'static str,
    state: BTreeMap<String, String>,
    errors: Vec<String>,
    field_errors: BTreeMap<String, String>,
) -> WebResult<Wizard> {
    let base = page.ctx.base();
    let lead_def = qual::leads_def()?;
    let hint = OrgHint {
        name: state.get("a_name").cloned().filter(|s| !s.trim().is_empty()),
        website: state.get("a_website").cloned().filter(|s| !s.trim().is_empty()),
        gstin: state.get("a_gstin").cloned().filter(|s| !s.trim().is_empty()),
    };
    let (_, suggestions) = convert::suggestions(&st.db, &page.tenant, lead.id, &hint).await.map_err(store_not_found)?;
    let rules = qual::rules(&st.db, page.tenant.company_id).await?;
    let elig = qual::eligibility(lead, &rules);
    let pos = STEPS.iter().position(|(s, _)| *s == step).unwrap_or(0);
    let steps = STEPS
        .iter()
        .enumerate()
        .map(|(i, (key, label))| StepItem {
            key,
            label,
            state: match i.cmp(&pos) {
                std::cmp::Ordering::Less => "done",
                std::cmp::Ordering::Equal => "current",
                std::cmp::Ordering::Greater => "todo",
            },
        })
        .collect();
    let own = step_keys(step);
    let hidden = state.iter().filter(|(k, _)| !own.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let summary =
        if step == "confirm" { summary(st, page, &state, &suggestions.accounts, &suggestions.contacts).await? } else { Vec::new() };
    let inputs = step_inputs(step, &state, &field_errors);
    let href = format!("{base}/leads/{}", lead.id);
    Ok(Wizard {
        ctx: page.ctx.clone(),
        title: format!("Convert {}", lead.title(lead_def)),
        action: format!("{href}/convert"),
        lead_href: href,
        step,
        steps,
        state,
        hidden,
        accounts: suggestions.accounts,
        contacts: suggestions.contacts,
        errors,
        field_errors,
        checks: elig.checks.clone(),
        eligible: elig.eligible,
        can_override: convert::may_override(page.tenant.role),
        summary,
        inputs,
        converted: lead.text("status") == Some("converted"),
        links: conversion_links(st, page, lead).await?,
    })
}

async fn title_of(st: &AppState, page: &Page, object: &str, id: &str) -> WebResult<String> {
    let (Ok(id), Some(def)) = (Uuid::parse_str(id), corvid_core::object(object)) else { return Ok("(unknown)".into()) };
    Ok(records::titles(&st.db, page.tenant.company_id, def, &[id]).await?.get(&id).cloned().unwrap_or_else(|| "(not found)".into()))
}

/// The confirm step's account of what will happen.
async fn summary(
    st: &AppState,
    page: &Page,
    s: &BTreeMap<String, String>,
    accounts: &[AccountSuggestion],
    contacts: &[ContactSuggestion],
) -> WebResult<Vec<(String, String)>> {
    let v = |k: &str| s.get(k).map_or("", String::as_str).trim().to_string();
    let account = if v("account_choice") == "new" {
        format!("New account: {}", v("a_name"))
    } else {
        let id = v("account_choice");
        let name = match accounts.iter().find(|a| a.id.to_string() == id) {
            Some(a) => a.name.clone(),
            None => title_of(st, page, "accounts", &id).await?,
        };
        format!("Existing account: {name}")
    };
    let contact = if v("contact_choice") == "new" {
        format!("New contact: {} {}", v("c_first_name"), v("c_last_name")).trim().to_string()
    } else {
        let id = v("contact_choice");
        let name = match contacts.iter().find(|c| c.id.to_string() == id) {
            Some(c) => c.full_name.clone(),
            None => title_of(st, page, "contacts", &id).await?,
        };
        format!("Existing contact: {name}")
    };
    let deal = if v("deal_create") == "yes" {
        let mut parts = vec![v("d_name")];
        if !v("d_amount").is_empty() {
            parts.push(format!("{} {}", v("d_amount"), v("d_currency")));
        }
        let stage = v("d_stage");
        parts.push(DEAL_STAGE.iter().find(|(k, _, _)| *k == stage).map_or(stage.clone(), |(_, l, _)| l.to_string()));
        if !v("d_close_date").is_empty() {
            parts.push(format!("closes {}", v("d_close_date")));
        }
        parts.join(" · ")
    } else {
        "No deal".into()
    };
    let activity = if v("act_create") == "yes" { format!("{}: {}", v("act_type"), v("act_subject")) } else { "None".into() };
    Ok(vec![("Account".into(), account), ("Contact".into(), contact), ("Deal".into(), deal), ("First activity".into(), activity)])
}

async fn convertible_lead(st: &AppState, page: &Page, p: &crate::extract::Params) -> WebResult<Record> {
    let id = lead_id(p)?;
    let lead = page.tenant.records(&st.db, qual::leads_def()?).get(id).await?;
    if lead.deleted_at.is_some() {
        return Err(WebError::not_found());
    }
    Ok(lead)
}

/// `GET /app/{c}/leads/{id}/convert`: the wizard's first step (or the links, once converted).
pub async fn convert_page(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    let lead = convertible_lead(&st, &page, &p).await?;
    if !page.ctx.can_write() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Your role can read leads but not convert them."));
    }
    let state = initial_state(&st, &page, &lead).await?;
    render(&wizard(&st, &page, &lead, "account", state, Vec::new(), BTreeMap::new()).await?)
}

fn empty_as_null(v: &str) -> Json {
    if v.trim().is_empty() {
        Json::Null
    } else {
        Json::String(v.trim().to_string())
    }
}

fn request_from(s: &BTreeMap<String, String>) -> ConvertRequest {
    let v = |k: &str| s.get(k).map_or("", String::as_str).trim().to_string();
    let some = |k: &str| Some(v(k)).filter(|x| !x.is_empty());
    let pick = |choice: &str, prefix: &str, fields: &[&str]| {
        if v(choice) == "new" || v(choice).is_empty() {
            let m: Map<String, Json> = fields.iter().map(|f| (f.to_string(), empty_as_null(&v(&format!("{prefix}{f}"))))).collect();
            PickInput { new: Some(m), existing_id: None }
        } else {
            PickInput { new: None, existing_id: Some(v(choice)) }
        }
    };
    ConvertRequest {
        account: Some(pick("account_choice", "a_", &["name", "website", "gstin", "industry", "billing_city", "billing_country"])),
        contact: Some(pick("contact_choice", "c_", &["first_name", "last_name", "email", "phone", "job_title"])),
        deal: (v("deal_create") == "yes").then(|| DealInput {
            name: some("d_name"),
            amount: some("d_amount").map(Json::String),
            currency: some("d_currency"),
            stage: some("d_stage"),
            close_date: some("d_close_date"),
            description: None,
        }),
        activity: (v("act_create") == "yes").then(|| ActivityInput {
            kind: some("act_type"),
            subject: some("act_subject"),
            notes: some("act_notes"),
        }),
        override_qualification: v("override") == "yes",
    }
}

/// Where an error of the conversion request belongs in the wizard: (step, form field).
fn place(field: &str) -> (&'static str, Option<String>) {
    let map = |prefix: &str, rest: &str| Some(format!("{prefix}{rest}"));
    if let Some(rest) = field.strip_prefix("account.new.") {
        ("account", map("a_", rest))
    } else if field == "account" || field == "account.existing_id" {
        ("account", Some("account_choice".into()))
    } else if let Some(rest) = field.strip_prefix("contact.new.") {
        ("contact", map("c_", rest))
    } else if field == "contact" || field == "contact.existing_id" {
        ("contact", Some("contact_choice".into()))
    } else if let Some(rest) = field.strip_prefix("deal.") {
        ("deal", map("d_", rest))
    } else if let Some(rest) = field.strip_prefix("activity.") {
        ("activity", map("act_", rest))
    } else {
        ("confirm", None)
    }
}

/// `POST /app/{c}/leads/{id}/convert`: moves between steps (`go`), or converts (`go=convert`).
pub async fn convert_step(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let lead = convertible_lead(&st, &page, &p).await?;
    let state = state_from(&form);
    let go = first(&form, "go").unwrap_or("account");
    if go != "convert" {
        let step = STEPS.iter().map(|(s, _)| *s).find(|s| *s == go).unwrap_or("account");
        return render(&wizard(&st, &page, &lead, step, state, Vec::new(), BTreeMap::new()).await?);
    }
    let req = request_from(&state);
    let errors = match convert::convert(&st.db, &page.tenant, lead.id, &req, None).await {
        Ok(c) => {
            let mut parts = vec![format!("account {}", c.account.title(corvid_core::object("accounts").ok_or_else(WebError::not_found)?))];
            parts.push(format!("contact {}", c.contact.title(corvid_core::object("contacts").ok_or_else(WebError::not_found)?)));
            if let Some(d) = &c.deal {
                parts.push(format!("deal {}", d.title(corvid_core::object("deals").ok_or_else(WebError::not_found)?)));
            }
            let verb = if c.replayed { "was already converted" } else { "converted" };
            let notice = format!("Lead {verb}: {}.", parts.join(", "));
            return Ok(redirect(&headers, &format!("{}/leads/{}?notice={}", page.ctx.base(), lead.id, urlencode(&notice))));
        }
        Err(StoreError::Invalid(errs)) => errs,
        Err(StoreError::Forbidden(m) | StoreError::Conflict(m)) => vec![corvid_core::FieldError::new("", m)],
        Err(StoreError::Duplicate(found)) => found
            .iter()
            .take(3)
            .map(|c| {
                let section = if c.object == "accounts" { "account" } else { "contact" };
                let what = format!(
                    "looks like a duplicate of {} {} ({}); pick it from the matches instead",
                    c.number,
                    c.title,
                    c.reasons.join(", ")
                );
                corvid_core::FieldError::new(format!("{section}.new.name"), what)
            })
            .collect(),
        Err(StoreError::NotFound) => {
            vec![corvid_core::FieldError::new("account", "a chosen account or contact no longer exists; pick again")]
        }
        Err(e) => return Err(e.into()),
    };
    let mut step = "confirm";
    let mut field_errors = BTreeMap::new();
    let mut messages = Vec::new();
    for e in &errors {
        let (s, f) = place(&e.field);
        if STEPS.iter().position(|(k, _)| *k == s) < STEPS.iter().position(|(k, _)| *k == step) {
            step = s;
        }
        let label = e.field.rsplit('.').next().unwrap_or("").replace('_', " ");
        messages.push(if label.is_empty() { e.reason.clone() } else { format!("{label}: {}", e.reason) });
        if let Some(f) = f {
            field_errors.insert(f, e.reason.clone());
        }
    }
    let w = wizard(&st, &page, &lead, step, state, messages, field_errors).await?;
    render_status(StatusCode::UNPROCESSABLE_ENTITY, &w)
}
