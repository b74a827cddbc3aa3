//! Settings → Scoring and Settings → Assignment (Admins): scoring rule sets with their rules,
//! bands and decay, activation, the predictive model's status and a Train button; assignment
//! rules in order with their strategy and targets. Both pages carry a preview form: sample lead
//! values → the score with its explanation and the assignment rule that would fire.
//!
//! Plus the score panel on a lead's page (loaded by htmx): band badge, explanation, the
//! predictive score with its strongest features, engagement and the score history.
//!
//! Forms edit the same store services as the API, so validation and audit are the same; a
//! rule in a form has up to three condition slots (rules with more, made through the API,
//! keep their extra conditions when edited here).

use super::format::local_time;
use super::records::Choice;
use super::{redirect, render, render_status, Ctx, Page, WebError, WebResult};
use crate::api::rules::{preview_both, RESCORE_KIND, TRAIN_KIND};
use crate::error::ApiError;
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use corvid_core::meta::LEAD_SOURCE;
use corvid_core::rules::{Condition, EngagementKind, Op};
use corvid_core::scoring::{Bands, Decay, ScoreRule};
use corvid_core::value::now_micros;
use corvid_store::assignment::{self, RuleInput, RulePatch, Strategy, Territory};
use corvid_store::jobs::{self as store_jobs, NewJob};
use corvid_store::scoring::{self, RuleSet, RuleSetInput, RuleSetPatch};
use corvid_store::{companies, custom_fields, predictive, StoreError};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

/// Condition slots a rule form offers.
const SLOTS: usize = 3;
/// Territory slots the assignment form offers.
const TERRITORY_SLOTS: usize = 3;

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn get(pairs: &Pairs, key: &str) -> String {
    first(pairs, key).unwrap_or("").trim().to_string()
}

fn all<'a>(pairs: &'a Pairs, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

fn admin_only(page: &Page) -> WebResult<Ctx> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can change scoring and assignment rules."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    Ok(ctx)
}

/// "rules[2].conditions[0].value must be …" → "Rule 3, condition 1: value must be …".
fn readable(errs: &[corvid_core::FieldError]) -> String {
    let re = |s: &str| {
        let mut out = s.to_string();
        for (prefix, word) in [("rules[", "Rule"), ("conditions[", "condition"), ("territories[", "territory"), ("user_ids[", "user")] {
            while let Some(at) = out.find(prefix) {
                let rest = &out[at + prefix.len()..];
                let Some(end) = rest.find(']') else { break };
                let n: usize = rest[..end].parse().unwrap_or(0);
                let after = rest[end + 1..].trim_start_matches('.').to_string();
                out = format!("{}{word} {}, {after}", &out[..at], n + 1);
            }
        }
        out.trim_end_matches([',', ' ']).replace('_', " ")
    };
    errs.iter().map(|e| format!("{}: {}", re(&e.field), e.reason)).collect::<Vec<_>>().join("; ")
}

fn store_message(e: &StoreError) -> Option<(StatusCode, String)> {
    match e {
        StoreError::Invalid(errs) => Some((StatusCode::UNPROCESSABLE_ENTITY, readable(errs))),
        StoreError::Conflict(m) => Some((StatusCode::CONFLICT, m.clone())),
        StoreError::Stale { .. } => {
            Some((StatusCode::PRECONDITION_FAILED, "Someone else changed these rules meanwhile. Reload the page and try again.".into()))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Condition slots
// ---------------------------------------------------------------------------------------

/// One condition as a form shows it.
#[derive(Clone, Default)]
pub struct Slot {
    pub subject: String,
    pub op: String,
    pub value: String,
    pub days: String,
}

fn json_text(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(a) => a.iter().map(json_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn slot_of(c: &Condition) -> Slot {
    let subject = match (&c.field, c.engagement) {
        (Some(f), _) => format!("field:{f}"),
        (None, Some(k)) => format!("engagement:{}", k.as_str()),
        _ => String::new(),
    };
    Slot { subject, op: c.op.as_str().into(), value: json_text(&c.value), days: c.within_days.map(|d| d.to_string()).unwrap_or_default() }
}

fn slots_of(conditions: &[Condition]) -> Vec<Slot> {
    let mut out: Vec<Slot> = conditions.iter().take(SLOTS).map(slot_of).collect();
    out.resize(SLOTS, Slot::default());
    out
}

/// A typed form value: numbers and true/false as such, the rest as text.
fn typed(s: &str) -> Json {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return i.into();
    }
    if let Some(n) = s.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(serde_json::Number::from_f64) {
        return Json::Number(n);
    }
    match s {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        _ => Json::String(s.to_string()),
    }
}

/// Reads condition slot `i` (`c{i}_subject`, `c{i}_op`, `c{i}_value`, `c{i}_days`); an empty
/// subject means no condition.
fn read_slot(f: &Pairs, i: usize) -> Result<Option<Condition>, String> {
    let subject = get(f, &format!("c{i}_subject"));
    if subject.is_empty() {
        return Ok(None);
    }
    let n = i + 1;
    let op_text = get(f, &format!("c{i}_op"));
    let op = Op::parse(&op_text).ok_or_else(|| format!("Condition {n}: choose an operator."))?;
    let raw = first(f, &format!("c{i}_value")).unwrap_or("").to_string();
    let value = match op {
        Op::IsSet | Op::IsNotSet => Json::Null,
        Op::In | Op::NotIn => Json::Array(raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(typed).collect()),
        _ if raw.trim().is_empty() => Json::Null,
        _ => typed(&raw),
    };
    let days = get(f, &format!("c{i}_days"));
    let within_days =
        if days.is_empty() { None } else { Some(days.parse::<i64>().map_err(|_| format!("Condition {n}: days must be a whole number."))?) };
    if let Some(field) = subject.strip_prefix("field:") {
        return Ok(Some(Condition { field: Some(field.into()), engagement: None, op, value, within_days }));
    }
    if let Some(kind) = subject.strip_prefix("engagement:").and_then(EngagementKind::parse) {
        return Ok(Some(Condition { field: None, engagement: Some(kind), op, value, within_days }));
    }
    Err(format!("Condition {n}: choose a field or an engagement."))
}

/// The form's conditions, keeping any beyond the slots from `existing`.
fn read_conditions(f: &Pairs, existing: &[Condition]) -> Result<Vec<Condition>, String> {
    let mut out = Vec::new();
    for i in 0..SLOTS {
        if let Some(c) = read_slot(f, i)? {
            out.push(c);
        }
    }
    out.extend(existing.iter().skip(SLOTS).cloned());
    Ok(out)
}

async fn subjects(st: &AppState, company_id: Uuid, for_scoring: bool) -> WebResult<Vec<Choice>> {
    let def = corvid_core::object("leads").ok_or_else(WebError::not_found)?;
    let allowed = scoring::lead_condition_fields(&st.db, company_id, for_scoring).await?;
    let custom = custom_fields::list(&st.db, company_id, "leads").await?;
    let mut out = vec![Choice { value: String::new(), label: "— none —".into() }];
    for f in def.fields.iter().chain(custom.iter()) {
        if allowed.contains(&f.name) && !matches!(f.kind.name(), "json" | "long_text") {
            out.push(Choice { value: format!("field:{}", f.name), label: format!("Field: {}", f.label) });
        }
    }
    if for_scoring {
        for k in EngagementKind::ALL {
            out.push(Choice { value: format!("engagement:{}", k.as_str()), label: format!("Engagement: {}", k.label()) });
        }
    }
    Ok(out)
}

fn ops() -> Vec<Choice> {
    Op::ALL.iter().map(|o| Choice { value: o.as_str().into(), label: o.label().into() }).collect()
}

fn describe(conditions: &[Condition]) -> String {
    if conditions.is_empty() {
        "always".into()
    } else {
        conditions.iter().map(Condition::describe).collect::<Vec<_>>().join(" and ")
    }
}

// ---------------------------------------------------------------------------------------
// Preview (both pages)
// ---------------------------------------------------------------------------------------

pub struct PreviewInput {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub options: Vec<Choice>,
}

pub struct PreviewEngagement {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
}

#[derive(Default)]
pub struct PreviewResult {
    pub shown: bool,
    pub error: String,
    pub score: String,
    pub band: String,
    pub colour: String,
    pub rule_set: String,
    pub explanation: Vec<(String, String)>,
    pub rule: String,
    pub user: String,
    pub message: String,
}

pub struct Preview {
    pub inputs: Vec<PreviewInput>,
    pub engagement: Vec<PreviewEngagement>,
    pub result: PreviewResult,
}

fn choices(list: &[(&str, &str, &str)]) -> Vec<Choice> {
    let mut out = vec![Choice { value: String::new(), label: "—".into() }];
    out.extend(list.iter().map(|(v, l, _)| Choice { value: (*v).into(), label: (*l).into() }));
    out
}

fn preview_form(f: Option<&Pairs>) -> Preview {
    let val = |k: &str| f.map(|f| first(f, &format!("p_{k}")).unwrap_or("").to_string()).unwrap_or_default();
    let input = |name: &'static str, label: &'static str, kind: &'static str, options: Vec<Choice>| PreviewInput {
        name,
        label,
        kind,
        value: val(name),
        options,
    };
    let authority = [("decision_maker", "Decision Maker", ""), ("influencer", "Influencer", ""), ("user", "User", "")];
    Preview {
        inputs: vec![
            input("country", "Country (ISO code)", "text", vec![]),
            input("state", "State / region", "text", vec![]),
            input("city", "City", "text", vec![]),
            input("source", "Source", "select", choices(LEAD_SOURCE)),
            input("interest_product", "Product of interest", "text", vec![]),
            input("company_size", "Company size (employees)", "number", vec![]),
            input("job_title", "Job title", "text", vec![]),
            input("email", "Email", "text", vec![]),
            input("authority_level", "Authority", "select", choices(&authority)),
            input("bant_budget_score", "BANT budget score (0–10)", "number", vec![]),
            input("lead_score", "Lead score (leave empty to compute)", "number", vec![]),
        ],
        engagement: EngagementKind::ALL
            .iter()
            .map(|k| PreviewEngagement { name: k.as_str(), label: k.label(), value: val(&format!("e_{}", k.as_str())) })
            .collect(),
        result: PreviewResult::default(),
    }
}

async fn run_preview(st: &AppState, page: &Page, f: &Pairs) -> Preview {
    let mut p = preview_form(Some(f));
    let mut values = Map::new();
    for i in &p.inputs {
        let v = i.value.trim();
        if v.is_empty() {
            continue;
        }
        let json = if i.kind == "number" { typed(v) } else { Json::String(v.to_string()) };
        values.insert(i.name.to_string(), json);
    }
    let mut engagement = BTreeMap::new();
    for e in &p.engagement {
        let v = e.value.trim();
        if v.is_empty() {
            continue;
        }
        match (EngagementKind::parse(e.name), v.parse::<i64>()) {
            (Some(k), Ok(n)) => {
                engagement.insert(k, n);
            }
            _ => {
                p.result = PreviewResult { shown: true, error: format!("{} must be a whole number.", e.label), ..Default::default() };
                return p;
            }
        }
    }
    p.result = match preview_both(&st.db, &page.tenant, &values, &engagement).await {
        Ok(v) => result_of(&v),
        Err(ApiError::Invalid(errs)) => PreviewResult {
            shown: true,
            error: errs
                .iter()
                .map(|e| format!("{} {}", e.field.trim_start_matches("values.").replace('_', " "), e.reason))
                .collect::<Vec<_>>()
                .join("; "),
            ..Default::default()
        },
        Err(e) => {
            tracing::warn!(error = ?e, "preview failed");
            PreviewResult { shown: true, error: "The preview could not be computed.".into(), ..Default::default() }
        }
    };
    p
}

fn result_of(v: &Json) -> PreviewResult {
    let s = &v["score"];
    let a = &v["assignment"];
    PreviewResult {
        shown: true,
        error: String::new(),
        score: s["score"].as_i64().map(|n| n.to_string()).unwrap_or_else(|| "—".into()),
        band: s["band"]["label"].as_str().unwrap_or("").into(),
        colour: s["band"]["colour"].as_str().unwrap_or("grey").into(),
        rule_set: s["rule_set"]["name"]
            .as_str()
            .map_or_else(|| s["message"].as_str().unwrap_or("").to_string(), |n| format!("Rule set: {n}")),
        explanation: s["explanation"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| (c["rule"].as_str().unwrap_or("").to_string(), format!("{:+}", c["points"].as_i64().unwrap_or(0))))
                    .collect()
            })
            .unwrap_or_default(),
        rule: a["rule_name"]
            .as_str()
            .map(|n| match a["territory"].as_str() {
                Some(t) => format!("{n} (territory {t})"),
                None => n.to_string(),
            })
            .unwrap_or_default(),
        user: v["user"]["name"].as_str().map(|n| format!("{n} ({})", v["user"]["email"].as_str().unwrap_or(""))).unwrap_or_default(),
        message: v["message"].as_str().unwrap_or("").into(),
    }
}

// ---------------------------------------------------------------------------------------
// Settings → Scoring
// ---------------------------------------------------------------------------------------

pub struct SetRow {
    pub id: Uuid,
    pub name: String,
    pub rules: usize,
    pub bands: String,
    pub decay: String,
    pub active: bool,
    pub selected: bool,
}

pub struct SetForm {
    pub id: Uuid,
    pub version: i64,
    pub name: String,
    pub description: String,
    pub active: bool,
    pub warm: i64,
    pub hot: i64,
    pub very_hot: i64,
    pub decay_points: String,
    pub decay_grace: String,
}

pub struct RuleRow {
    pub index: usize,
    pub name: String,
    pub points: String,
    pub weight: String,
    pub slots: Vec<Slot>,
    pub extra: usize,
    pub summary: String,
    pub first: bool,
    pub last: bool,
}

impl RuleRow {
    /// Prefix of the element ids of this rule's form.
    pub fn pfx(&self) -> String {
        format!("r{}", self.index)
    }

    fn blank() -> RuleRow {
        RuleRow {
            index: 0,
            name: String::new(),
            points: String::new(),
            weight: "1".into(),
            slots: slots_of(&[]),
            extra: 0,
            summary: String::new(),
            first: true,
            last: true,
        }
    }
}

pub struct PredictiveView {
    pub status: String,
    pub using: String,
    pub message: String,
    pub auc: String,
    pub trained_at: String,
    pub available: String,
    pub features: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "rules_scoring.html")]
struct ScoringPage {
    ctx: Ctx,
    section: &'static str,
    notice: String,
    error: String,
    sets: Vec<SetRow>,
    selected: Option<SetForm>,
    rules: Vec<RuleRow>,
    new_rule: RuleRow,
    subjects: Vec<Choice>,
    ops: Vec<Choice>,
    predictive: PredictiveView,
    preview: Preview,
}

async fn scoring_page(st: &AppState, page: &Page, ctx: Ctx, want: Option<Uuid>) -> WebResult<ScoringPage> {
    let cid = page.tenant.company_id;
    let sets = scoring::list_sets(&st.db, cid).await?;
    let chosen: Option<&RuleSet> =
        want.and_then(|id| sets.iter().find(|s| s.id == id)).or_else(|| sets.iter().find(|s| s.active)).or_else(|| sets.first());
    let rows = sets
        .iter()
        .map(|s| SetRow {
            id: s.id,
            name: s.name.clone(),
            rules: s.def.rules.len(),
            bands: format!("Warm ≥ {}, Hot ≥ {}, Very Hot ≥ {}", s.def.bands.warm, s.def.bands.hot, s.def.bands.very_hot),
            decay: s.def.decay.map_or_else(|| "none".into(), |d| format!("−{} / week after {} days", d.points_per_week, d.grace_days)),
            active: s.active,
            selected: chosen.is_some_and(|c| c.id == s.id),
        })
        .collect();
    let (selected, rules) = match chosen {
        None => (None, Vec::new()),
        Some(s) => {
            let n = s.def.rules.len();
            let rules = s
                .def
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| RuleRow {
                    index: i,
                    name: r.name.clone(),
                    points: r.points.to_string(),
                    weight: r.weight.to_string(),
                    slots: slots_of(&r.conditions),
                    extra: r.conditions.len().saturating_sub(SLOTS),
                    summary: describe(&r.conditions),
                    first: i == 0,
                    last: i + 1 == n,
                })
                .collect();
            let form = SetForm {
                id: s.id,
                version: s.version,
                name: s.name.clone(),
                description: s.description.clone().unwrap_or_default(),
                active: s.active,
                warm: s.def.bands.warm,
                hot: s.def.bands.hot,
                very_hot: s.def.bands.very_hot,
                decay_points: s.def.decay.map(|d| d.points_per_week.to_string()).unwrap_or_default(),
                decay_grace: s.def.decay.map(|d| d.grace_days.to_string()).unwrap_or_default(),
            };
            (Some(form), rules)
        }
    };
    let status = predictive::status(&st.db, cid).await?;
    let (pos, neg) = predictive::labelled_counts(&st.db, cid).await?;
    let tz = companies::get(&st.db, cid).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata);
    let predictive = PredictiveView {
        status: status.status.replace('_', " "),
        using: status.using.into(),
        message: status.message.clone(),
        auc: status.auc.map(|a| format!("{a:.3}")).unwrap_or_else(|| "—".into()),
        trained_at: status.trained_at.map(|t| local_time(&t, tz)).unwrap_or_default(),
        available: format!("{pos} converted and {neg} lost leads now (at least {} of each are needed)", status.min_per_class),
        features: status.top_features.iter().map(|f| (f.label.clone(), format!("{:+.2}", f.weight))).collect(),
    };
    Ok(ScoringPage {
        ctx,
        section: "scoring",
        notice: String::new(),
        error: String::new(),
        sets: rows,
        selected,
        rules,
        new_rule: RuleRow::blank(),
        subjects: subjects(st, cid, true).await?,
        ops: ops(),
        predictive,
        preview: preview_form(None),
    })
}

fn uuid_param(f: &Pairs, key: &str) -> Option<Uuid> {
    first(f, key).and_then(|s| Uuid::parse_str(s.trim()).ok())
}

pub async fn scoring(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let q: Pairs = serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let mut p = scoring_page(&st, &page, ctx, uuid_param(&q, "set")).await?;
    p.notice = first(&q, "notice").unwrap_or("").chars().take(300).collect();
    p.error = first(&q, "error").unwrap_or("").chars().take(300).collect();
    render(&p)
}

/// A scoring rule from the rule form.
fn read_score_rule(f: &Pairs, existing: Option<&ScoreRule>) -> Result<ScoreRule, String> {
    let points =
        get(f, "points").parse::<i64>().map_err(|_| "Points must be a whole number (negative to take points away).".to_string())?;
    let weight_text = get(f, "weight");
    let weight = if weight_text.is_empty() {
        1.0
    } else {
        weight_text.parse::<f64>().map_err(|_| "Weight must be a number such as 1 or 1.5.".to_string())?
    };
    let conditions = read_conditions(f, existing.map_or(&[][..], |r| &r.conditions))?;
    Ok(ScoreRule { name: get(f, "name"), conditions, points, weight })
}

fn keep_rule_form(f: &Pairs) -> RuleRow {
    let mut r = RuleRow::blank();
    r.name = get(f, "name");
    r.points = get(f, "points");
    r.weight = get(f, "weight");
    r.slots = (0..SLOTS)
        .map(|i| Slot {
            subject: get(f, &format!("c{i}_subject")),
            op: get(f, &format!("c{i}_op")),
            value: first(f, &format!("c{i}_value")).unwrap_or("").to_string(),
            days: get(f, &format!("c{i}_days")),
        })
        .collect();
    r
}

pub async fn scoring_post(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let base = format!("{}/settings/scoring", page.ctx.base());
    let t = &page.tenant;
    let set_id = uuid_param(&f, "set_id");
    let version = first(&f, "version").and_then(|v| v.trim().parse::<i64>().ok());
    let action = get(&f, "action");
    let current = match set_id {
        Some(id) => Some(scoring::get_set(&st.db, t.company_id, id).await.map_err(|e| match e {
            StoreError::NotFound => WebError::not_found(),
            other => other.into(),
        })?),
        None => None,
    };
    let need_set = || current.clone().ok_or_else(WebError::not_found);
    let index = first(&f, "index").and_then(|i| i.trim().parse::<usize>().ok());
    let rules_patch = |rules: Vec<ScoreRule>| RuleSetPatch { rules: Some(rules), version, ..Default::default() };
    // Each action yields the change to make, or a message for the form.
    let outcome: Result<(Option<Uuid>, String), StoreError> = match action.as_str() {
        "preview" => {
            let mut p = scoring_page(&st, &page, ctx, set_id).await?;
            p.preview = run_preview(&st, &page, &f).await;
            return render(&p);
        }
        "create_set" => {
            let input = RuleSetInput {
                name: get(&f, "name"),
                object: None,
                description: None,
                rules: Vec::new(),
                bands: None,
                decay: None,
                active: first(&f, "active").is_some(),
            };
            scoring::create_set(&st.db, t, input)
                .await
                .map(|s| (Some(s.id), format!("Rule set \"{}\" was created. Add its rules below.", s.name)))
        }
        "update_set" => {
            let s = need_set()?;
            let num = |k: &str, d: i64| -> Result<i64, StoreError> {
                let v = get(&f, k);
                if v.is_empty() {
                    Ok(d)
                } else {
                    v.parse::<i64>().map_err(|_| StoreError::invalid(k, "must be a whole number"))
                }
            };
            let parsed = (|| -> Result<RuleSetPatch, StoreError> {
                let bands = Bands { warm: num("warm", 40)?, hot: num("hot", 70)?, very_hot: num("very_hot", 90)? };
                let decay = if get(&f, "decay_points").is_empty() {
                    None
                } else {
                    Some(Decay { points_per_week: num("decay_points", 0)?, grace_days: num("decay_grace", 0)? })
                };
                let description = get(&f, "description");
                Ok(RuleSetPatch {
                    name: Some(get(&f, "name")),
                    description: Some((!description.is_empty()).then_some(description)),
                    bands: Some(bands),
                    decay: Some(decay),
                    version,
                    ..Default::default()
                })
            })();
            match parsed {
                Ok(patch) => scoring::update_set(&st.db, t, s.id, patch).await.map(|s| (Some(s.id), "The rule set was saved.".to_string())),
                Err(e) => Err(e),
            }
        }
        "activate" | "deactivate" => {
            let s = need_set()?;
            let on = action == "activate";
            scoring::activate_set(&st.db, t, s.id, on).await.map(|s| {
                let msg = if on {
                    format!("\"{}\" is now the active rule set; every lead is being rescored.", s.name)
                } else {
                    format!("\"{}\" was deactivated.", s.name)
                };
                (Some(s.id), msg)
            })
        }
        "delete_set" => {
            let s = need_set()?;
            scoring::delete_set(&st.db, t, s.id).await.map(|_| (None, format!("Rule set \"{}\" was deleted.", s.name)))
        }
        "add_rule" | "save_rule" => {
            let s = need_set()?;
            let existing = index.and_then(|i| s.def.rules.get(i));
            match read_score_rule(&f, existing) {
                Err(msg) => {
                    let mut p = scoring_page(&st, &page, ctx, Some(s.id)).await?;
                    p.error = msg;
                    if action == "add_rule" {
                        p.new_rule = keep_rule_form(&f);
                    }
                    return render_status(StatusCode::UNPROCESSABLE_ENTITY, &p);
                }
                Ok(rule) => {
                    let mut rules = s.def.rules.clone();
                    match (action.as_str(), index) {
                        ("save_rule", Some(i)) if i < rules.len() => rules[i] = rule,
                        ("save_rule", _) => return Err(WebError::not_found()),
                        _ => rules.push(rule),
                    }
                    let done = if action == "add_rule" { "The rule was added." } else { "The rule was saved." };
                    match scoring::update_set(&st.db, t, s.id, rules_patch(rules)).await {
                        Ok(s) => Ok((Some(s.id), done.to_string())),
                        Err(e) => {
                            if let (Some((status, msg)), "add_rule") = (store_message(&e), action.as_str()) {
                                let mut p = scoring_page(&st, &page, ctx, Some(s.id)).await?;
                                p.error = msg;
                                p.new_rule = keep_rule_form(&f);
                                return render_status(status, &p);
                            }
                            Err(e)
                        }
                    }
                }
            }
        }
        "delete_rule" | "move_up" | "move_down" => {
            let s = need_set()?;
            let mut rules = s.def.rules.clone();
            let i = index.filter(|i| *i < rules.len()).ok_or_else(WebError::not_found)?;
            let msg = match action.as_str() {
                "delete_rule" => {
                    let r = rules.remove(i);
                    format!("Rule \"{}\" was removed.", r.name)
                }
                "move_up" if i > 0 => {
                    rules.swap(i, i - 1);
                    "The rule moved up.".to_string()
                }
                "move_down" if i + 1 < rules.len() => {
                    rules.swap(i, i + 1);
                    "The rule moved down.".to_string()
                }
                _ => "The rule is already there.".to_string(),
            };
            scoring::update_set(&st.db, t, s.id, rules_patch(rules)).await.map(|s| (Some(s.id), msg))
        }
        "train" => {
            let job = NewJob::new(TRAIN_KIND, json!({}));
            store_jobs::enqueue_audited(&st.db, &t.audit, &job, now_micros())
                .await
                .map(|_| (set_id, "Training was queued; the status below updates when it finishes (see Settings → Jobs).".to_string()))
        }
        "rescore" => {
            let job = NewJob::new(RESCORE_KIND, json!({"reason": "rescore requested"}));
            store_jobs::enqueue_audited(&st.db, &t.audit, &job, now_micros())
                .await
                .map(|_| (set_id, "Every lead is being rescored.".to_string()))
        }
        _ => return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Unknown action.")),
    };
    match outcome {
        Ok((id, msg)) => {
            let set = id.map(|i| format!("set={i}&")).unwrap_or_default();
            Ok(redirect(&headers, &format!("{base}?{set}notice={}", urlencode(&msg))))
        }
        Err(e) => match store_message(&e) {
            Some((status, msg)) => {
                let mut p = scoring_page(&st, &page, ctx, set_id).await?;
                p.error = msg;
                render_status(status, &p)
            }
            None => Err(e.into()),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Settings → Assignment
// ---------------------------------------------------------------------------------------

pub struct AssignRow {
    pub id: Uuid,
    pub position: i64,
    pub name: String,
    pub when: String,
    pub strategy: String,
    pub target: String,
    pub active: bool,
    pub first: bool,
    pub last: bool,
}

pub struct TerritorySlot {
    pub name: String,
    pub countries: String,
    pub states: String,
    pub user_id: String,
}

pub struct AssignForm {
    pub id: String,
    pub version: i64,
    pub name: String,
    pub slots: Vec<Slot>,
    pub strategy: String,
    pub user_id: String,
    pub team_id: String,
    pub user_ids: Vec<String>,
    pub territories: Vec<TerritorySlot>,
    pub active: bool,
}

impl AssignForm {
    fn blank() -> AssignForm {
        AssignForm {
            id: String::new(),
            version: 0,
            name: String::new(),
            slots: slots_of(&[]),
            strategy: "round_robin".into(),
            user_id: String::new(),
            team_id: String::new(),
            user_ids: Vec::new(),
            territories: (0..TERRITORY_SLOTS)
                .map(|_| TerritorySlot { name: String::new(), countries: String::new(), states: String::new(), user_id: String::new() })
                .collect(),
            active: true,
        }
    }

    fn of(r: &assignment::Rule) -> AssignForm {
        let mut territories: Vec<TerritorySlot> = r
            .territories
            .iter()
            .map(|t| TerritorySlot {
                name: t.name.clone().unwrap_or_default(),
                countries: t.countries.join(", "),
                states: t.states.join(", "),
                user_id: t.user_id.to_string(),
            })
            .collect();
        while territories.len() < TERRITORY_SLOTS {
            territories.push(TerritorySlot {
                name: String::new(),
                countries: String::new(),
                states: String::new(),
                user_id: String::new(),
            });
        }
        AssignForm {
            id: r.id.to_string(),
            version: r.version,
            name: r.name.clone(),
            slots: slots_of(&r.conditions),
            strategy: r.strategy.as_str().into(),
            user_id: r.user_id.map(|u| u.to_string()).unwrap_or_default(),
            team_id: r.team_id.map(|u| u.to_string()).unwrap_or_default(),
            user_ids: r.user_ids.iter().map(Uuid::to_string).collect(),
            territories,
            active: r.active,
        }
    }

    fn has_user(&self, id: &str) -> bool {
        self.user_ids.iter().any(|u| u == id)
    }
}

#[derive(Template)]
#[template(path = "rules_assignment.html")]
struct AssignmentPage {
    ctx: Ctx,
    section: &'static str,
    notice: String,
    error: String,
    rows: Vec<AssignRow>,
    form: AssignForm,
    subjects: Vec<Choice>,
    ops: Vec<Choice>,
    strategies: Vec<Choice>,
    users: Vec<Choice>,
    teams: Vec<Choice>,
    preview: Preview,
}

async fn assignment_page(st: &AppState, page: &Page, ctx: Ctx, form: Option<AssignForm>, edit: Option<Uuid>) -> WebResult<AssignmentPage> {
    let cid = page.tenant.company_id;
    let rules = assignment::list(&st.db, cid).await?;
    let members = companies::members(&st.db, cid).await?;
    let teams = companies::teams(&st.db, cid).await?;
    let names: HashMap<Uuid, String> =
        members.iter().map(|m| (m.user_id, if m.is_active { m.name.clone() } else { format!("{} (inactive)", m.name) })).collect();
    let team_names: HashMap<Uuid, String> = teams.iter().map(|t| (t.id, t.name.clone())).collect();
    let who = |u: &Uuid| names.get(u).cloned().unwrap_or_else(|| "a former member".into());
    let n = rules.len();
    let rows = rules
        .iter()
        .enumerate()
        .map(|(i, r)| AssignRow {
            id: r.id,
            position: r.position,
            name: r.name.clone(),
            when: describe(&r.conditions),
            strategy: r.strategy.label().into(),
            target: match r.strategy {
                Strategy::User => r.user_id.as_ref().map(who).unwrap_or_default(),
                Strategy::RoundRobin | Strategy::LoadBalanced => {
                    if r.user_ids.is_empty() {
                        format!("team {}", r.team_id.and_then(|t| team_names.get(&t).cloned()).unwrap_or_default())
                    } else {
                        r.user_ids.iter().map(who).collect::<Vec<_>>().join(", ")
                    }
                }
                Strategy::Territory => r
                    .territories
                    .iter()
                    .map(|t| {
                        format!("{} → {}", t.countries.iter().chain(&t.states).cloned().collect::<Vec<_>>().join("/"), who(&t.user_id))
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            active: r.active,
            first: i == 0,
            last: i + 1 == n,
        })
        .collect();
    let form = match (form, edit.and_then(|id| rules.iter().find(|r| r.id == id))) {
        (Some(f), _) => f,
        (None, Some(r)) => AssignForm::of(r),
        (None, None) => AssignForm::blank(),
    };
    let mut users = vec![Choice { value: String::new(), label: "—".into() }];
    users.extend(
        members.iter().filter(|m| m.is_active).map(|m| Choice { value: m.user_id.to_string(), label: format!("{} ({})", m.name, m.email) }),
    );
    let mut team_choices = vec![Choice { value: String::new(), label: "—".into() }];
    team_choices.extend(teams.iter().map(|t| Choice { value: t.id.to_string(), label: t.name.clone() }));
    Ok(AssignmentPage {
        ctx,
        section: "assignment",
        notice: String::new(),
        error: String::new(),
        rows,
        form,
        subjects: subjects(st, cid, false).await?,
        ops: ops(),
        strategies: Strategy::ALL.iter().map(|s| Choice { value: s.as_str().into(), label: s.label().into() }).collect(),
        users,
        teams: team_choices,
        preview: preview_form(None),
    })
}

pub async fn assignment(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let q: Pairs = serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let mut p = assignment_page(&st, &page, ctx, None, uuid_param(&q, "edit")).await?;
    p.notice = first(&q, "notice").unwrap_or("").chars().take(300).collect();
    p.error = first(&q, "error").unwrap_or("").chars().take(300).collect();
    render(&p)
}

fn keep_assign_form(f: &Pairs) -> AssignForm {
    let mut form = AssignForm::blank();
    form.id = get(f, "rule_id");
    form.version = first(f, "version").and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    form.name = get(f, "name");
    form.slots = (0..SLOTS)
        .map(|i| Slot {
            subject: get(f, &format!("c{i}_subject")),
            op: get(f, &format!("c{i}_op")),
            value: first(f, &format!("c{i}_value")).unwrap_or("").to_string(),
            days: String::new(),
        })
        .collect();
    form.strategy = get(f, "strategy");
    form.user_id = get(f, "user_id");
    form.team_id = get(f, "team_id");
    form.user_ids = all(f, "user_ids").map(str::to_string).collect();
    form.territories = (0..TERRITORY_SLOTS)
        .map(|i| TerritorySlot {
            name: get(f, &format!("t{i}_name")),
            countries: get(f, &format!("t{i}_countries")),
            states: get(f, &format!("t{i}_states")),
            user_id: get(f, &format!("t{i}_user")),
        })
        .collect();
    form.active = first(f, "active").is_some();
    form
}

fn list_of(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
}

/// The rule parts from the form; a malformed id is a message, not a 500.
fn read_assign(f: &Pairs, existing: &[Condition]) -> Result<RuleInput, String> {
    let strategy = Strategy::parse(&get(f, "strategy")).ok_or("Choose a strategy.")?;
    let opt_uuid = |k: &str, what: &str| -> Result<Option<Uuid>, String> {
        let v = get(f, k);
        if v.is_empty() {
            Ok(None)
        } else {
            Uuid::parse_str(&v).map(Some).map_err(|_| format!("Choose {what} from the list."))
        }
    };
    let user_ids = all(f, "user_ids")
        .filter(|v| !v.trim().is_empty())
        .map(|v| Uuid::parse_str(v.trim()).map_err(|_| "Choose users from the list.".to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut territories = Vec::new();
    for i in 0..TERRITORY_SLOTS {
        let countries = list_of(&get(f, &format!("t{i}_countries")));
        let states = list_of(&get(f, &format!("t{i}_states")));
        let user = opt_uuid(&format!("t{i}_user"), "the territory's user")?;
        if countries.is_empty() && states.is_empty() && user.is_none() {
            continue;
        }
        let user_id = user.ok_or_else(|| format!("Territory {}: choose its user.", i + 1))?;
        let name = get(f, &format!("t{i}_name"));
        territories.push(Territory { name: (!name.is_empty()).then_some(name), countries, states, user_id });
    }
    Ok(RuleInput {
        name: get(f, "name"),
        object: None,
        conditions: read_conditions(f, existing)?,
        strategy,
        user_id: opt_uuid("user_id", "a user")?,
        team_id: opt_uuid("team_id", "a team")?,
        user_ids,
        territories,
        active: first(f, "active").is_some(),
        position: None,
    })
}

pub async fn assignment_post(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let base = format!("{}/settings/assignment", page.ctx.base());
    let t = &page.tenant;
    let action = get(&f, "action");
    let rule_id = uuid_param(&f, "rule_id");
    let current = match rule_id {
        Some(id) => Some(assignment::get(&st.db, t.company_id, id).await.map_err(|e| match e {
            StoreError::NotFound => WebError::not_found(),
            other => other.into(),
        })?),
        None => None,
    };
    let need = || current.clone().ok_or_else(WebError::not_found);
    let outcome: Result<String, StoreError> = match action.as_str() {
        "preview" => {
            let mut p = assignment_page(&st, &page, ctx, None, None).await?;
            p.preview = run_preview(&st, &page, &f).await;
            return render(&p);
        }
        "save" => {
            let existing = current.as_ref().map_or(&[][..], |r| &r.conditions[..]);
            let input = match read_assign(&f, existing) {
                Ok(i) => i,
                Err(msg) => {
                    let mut p = assignment_page(&st, &page, ctx, Some(keep_assign_form(&f)), None).await?;
                    p.error = msg;
                    return render_status(StatusCode::UNPROCESSABLE_ENTITY, &p);
                }
            };
            let saved = match &current {
                None => assignment::create(&st.db, t, input).await,
                Some(r) => {
                    let patch = RulePatch {
                        name: Some(input.name),
                        conditions: Some(input.conditions),
                        strategy: Some(input.strategy),
                        user_id: Some(input.user_id),
                        team_id: Some(input.team_id),
                        user_ids: Some(input.user_ids),
                        territories: Some(input.territories),
                        active: Some(input.active),
                        position: None,
                        version: first(&f, "version").and_then(|v| v.trim().parse().ok()),
                    };
                    assignment::update(&st.db, t, r.id, patch).await
                }
            };
            match saved {
                Ok(r) => Ok(format!("Rule \"{}\" was saved.", r.name)),
                Err(e) => match store_message(&e) {
                    Some((status, msg)) => {
                        let mut p = assignment_page(&st, &page, ctx, Some(keep_assign_form(&f)), None).await?;
                        p.error = msg;
                        return render_status(status, &p);
                    }
                    None => Err(e),
                },
            }
        }
        "delete" => {
            let r = need()?;
            assignment::delete(&st.db, t, r.id).await.map(|_| format!("Rule \"{}\" was deleted.", r.name))
        }
        "toggle" => {
            let r = need()?;
            let patch = RulePatch { active: Some(!r.active), ..Default::default() };
            assignment::update(&st.db, t, r.id, patch)
                .await
                .map(|r| format!("Rule \"{}\" is now {}.", r.name, if r.active { "on" } else { "off" }))
        }
        "move_up" | "move_down" => {
            let r = need()?;
            let mut ids: Vec<Uuid> =
                assignment::list(&st.db, t.company_id).await?.into_iter().filter(|x| x.object == r.object).map(|x| x.id).collect();
            if let Some(i) = ids.iter().position(|x| *x == r.id) {
                match action.as_str() {
                    "move_up" if i > 0 => ids.swap(i, i - 1),
                    "move_down" if i + 1 < ids.len() => ids.swap(i, i + 1),
                    _ => {}
                }
            }
            assignment::reorder(&st.db, t, &r.object, &ids).await.map(|_| format!("Rule \"{}\" moved.", r.name))
        }
        _ => return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Unknown action.")),
    };
    match outcome {
        Ok(msg) => Ok(redirect(&headers, &format!("{base}?notice={}", urlencode(&msg)))),
        Err(e) => match store_message(&e) {
            Some((status, msg)) => {
                let mut p = assignment_page(&st, &page, ctx, None, None).await?;
                p.error = msg;
                render_status(status, &p)
            }
            None => Err(e.into()),
        },
    }
}

// ---------------------------------------------------------------------------------------
// The score panel on a lead's page
// ---------------------------------------------------------------------------------------

pub struct HistoryLine {
    pub when: String,
    pub score: i64,
    pub change: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "rules_panel.html")]
struct ScorePanel {
    score: String,
    band: String,
    colour: String,
    rule_set: String,
    explanation: Vec<(String, String)>,
    predictive: String,
    predictive_note: String,
    features: Vec<(String, String)>,
    engagement: Vec<(String, i64, i64)>,
    last_activity: String,
    history: Vec<HistoryLine>,
}

pub async fn panel(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    let id = Uuid::parse_str(p.str("id")).map_err(|_| WebError::not_found())?;
    let cid = page.tenant.company_id;
    let leads = corvid_core::object("leads").ok_or_else(WebError::not_found)?;
    page.tenant.records(&st.db, leads).get(id).await?;
    let card = scoring::score_card(&st.db, cid, id).await.map_err(|e| match e {
        StoreError::NotFound => WebError::not_found(),
        other => other.into(),
    })?;
    let tz = companies::get(&st.db, cid).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata);
    let panel = ScorePanel {
        score: card.lead_score.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
        band: card.band.label.into(),
        colour: card.band.colour.into(),
        rule_set: card.rule_set.as_ref().and_then(|r| r["name"].as_str()).map(str::to_string).unwrap_or_default(),
        explanation: card
            .explanation
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|c| (c["rule"].as_str().unwrap_or("").to_string(), format!("{:+}", c["points"].as_i64().unwrap_or(0))))
                    .collect()
            })
            .unwrap_or_default(),
        predictive: card.predictive.score.map(|s| s.to_string()).unwrap_or_default(),
        predictive_note: card.predictive.message.clone().unwrap_or_default(),
        features: card.predictive.top_features.iter().map(|f| (f.label.clone(), format!("{:+.2}", f.contribution))).collect(),
        engagement: card.engagement.iter().filter(|e| e.total > 0).map(|e| (e.label.to_string(), e.total, e.last_30_days)).collect(),
        last_activity: card.last_activity_at.map(|t| local_time(&t, tz)).unwrap_or_default(),
        history: card
            .history
            .iter()
            .take(20)
            .map(|h| HistoryLine {
                when: local_time(&h.at, tz),
                score: h.score,
                change: h.previous_score.map(|p| format!("{:+}", h.score - p)).unwrap_or_default(),
                reason: h.reason.clone(),
            })
            .collect(),
    };
    render(&panel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Pairs {
        v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn slots_read_back_what_they_show() {
        let f = pairs(&[
            ("c0_subject", "field:country"),
            ("c0_op", "in"),
            ("c0_value", "IN, LK"),
            ("c1_subject", "engagement:email_opened"),
            ("c1_op", "gte"),
            ("c1_value", "2"),
            ("c1_days", "30"),
            ("c2_subject", ""),
        ]);
        let c = read_conditions(&f, &[]).expect("conditions");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], Condition::field("country", Op::In, json!(["IN", "LK"])));
        assert_eq!(c[1], Condition::engagement(EngagementKind::EmailOpened, Op::Gte, 2, Some(30)));
        let shown = slots_of(&c);
        assert_eq!(shown[0].value, "IN, LK");
        assert_eq!(shown[1].days, "30");
        assert!(read_slot(&pairs(&[("c0_subject", "field:x"), ("c0_op", "bogus")]), 0).is_err());
    }

    #[test]
    fn error_paths_read_as_sentences() {
        let e = vec![corvid_core::FieldError::new("rules[2].conditions[0].value", "is required")];
        assert_eq!(readable(&e), "Rule 3, condition 1, value: is required");
    }
}
