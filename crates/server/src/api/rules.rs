//! Lead scoring and assignment rules through the API: scoring rule sets (CRUD, activation,
//! preview), the predictive model (status, training as a job), a lead's score card and
//! engagement events, assignment rules (CRUD, order, preview), and the background jobs that
//! rescore leads daily (decay) and retrain models weekly.
//!
//! Reading rules and previews is open to every member; changing rules, training and
//! rescoring is for Admins. Rule bodies are validated in `corvid_core` with errors naming the
//! failing part (`rules[0].conditions[1].op`).

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, JsonBody, Member, Params};
use crate::jobs::{JobContext, JobError, JobResult};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use corvid_core::rules::EngagementKind;
use corvid_core::validate::{Mode, Validator};
use corvid_core::value::now_micros;
use corvid_store::assignment::{self, RuleInput, RulePatch};
use corvid_store::audit::AuditCtx;
use corvid_store::jobs::{self as store_jobs, NewJob, NewSchedule};
use corvid_store::scoring::{self, RuleSetInput, RuleSetPatch};
use corvid_store::{companies, custom_fields, predictive, Db, StoreError, Tenant};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

pub const RESCORE_KIND: &str = scoring::RESCORE_JOB;
pub const TRAIN_KIND: &str = predictive::TRAIN_JOB;
/// Daily rescore of every company with an active rule set: decay and engagement windows.
pub const RESCORE_SCHEDULE: &str = "scoring.rescore.daily";
pub const RESCORE_CRON: &str = "30 2 * * *";
/// Weekly retraining of predictive models (Mondays 04:00 UTC).
pub const TRAIN_SCHEDULE: &str = "scoring.predictive.weekly";
pub const TRAIN_CRON: &str = "0 4 * * 1";

fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Scoring rule sets
// ---------------------------------------------------------------------------------------

pub async fn list_sets(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": scoring::list_sets(&st.db, t.company_id).await?})))
}

pub async fn create_set(
    State(st): State<AppState>,
    Admin(t): Admin,
    JsonBody(b, _): JsonBody<RuleSetInput>,
) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(scoring::create_set(&st.db, &t, b).await?)))
}

pub async fn show_set(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_set_id")?;
    Ok(Json(scoring::get_set(&st.db, t.company_id, id).await.map_err(not_found("rule set"))?))
}

pub async fn update_set(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<RuleSetPatch>,
) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_set_id")?;
    Ok(Json(scoring::update_set(&st.db, &t, id, b).await.map_err(not_found("rule set"))?))
}

pub async fn delete_set(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_set_id")?;
    scoring::delete_set(&st.db, &t, id).await.map_err(not_found("rule set"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn activate_set(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_set_id")?;
    Ok(Json(scoring::activate_set(&st.db, &t, id, true).await.map_err(not_found("rule set"))?))
}

/// Sample lead values as the API writes leads, validated and normalised the same way (errors
/// name `values.field`), as rule conditions read them.
pub async fn sample_facts(db: &Db, t: &Tenant, values: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let def = corvid_core::object("leads").ok_or(ApiError::Internal)?;
    let custom = custom_fields::list(db, t.company_id, "leads").await?;
    let v = Validator { object: def, custom_fields: &custom, default_calling_code: &t.calling_code };
    // Read-only outputs may be given in a sample (to see what a score would do to assignment).
    let mut input = values.clone();
    let lead_score = input.remove("lead_score");
    input.remove("predictive_score");
    let changes = v.validate(&input, Mode::Update).map_err(|errs| {
        ApiError::Invalid(errs.into_iter().map(|e| corvid_core::FieldError::new(format!("values.{}", e.field), e.reason)).collect())
    })?;
    let mut facts = scoring::facts_of(&changes.fields, &changes.custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    match lead_score {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|s| (0..=100).contains(&s)) => {
            facts.insert("lead_score".into(), Value::Number(n));
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(ApiError::invalid("values.lead_score", "must be a whole number from 0 to 100")),
    }
    Ok(facts)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorePreviewBody {
    #[serde(default)]
    pub values: Map<String, Value>,
    /// Recent engagement to assume, e.g. `{"email_opened": 2}`.
    #[serde(default)]
    pub engagement: BTreeMap<EngagementKind, i64>,
    /// Preview an inactive set; the active one by default.
    #[serde(default)]
    pub rule_set_id: Option<Uuid>,
}

fn check_engagement(e: &BTreeMap<EngagementKind, i64>) -> ApiResult<()> {
    for (k, n) in e {
        if !(0..=1000).contains(n) {
            return Err(ApiError::invalid(&format!("engagement.{}", k.as_str()), "must be from 0 to 1000"));
        }
    }
    Ok(())
}

pub async fn score_preview(
    State(st): State<AppState>,
    Member(t): Member,
    JsonBody(b, _): JsonBody<ScorePreviewBody>,
) -> ApiResult<impl IntoResponse> {
    check_engagement(&b.engagement)?;
    let facts = sample_facts(&st.db, &t, &b.values).await?;
    let set = match b.rule_set_id {
        Some(id) => Some(scoring::get_set(&st.db, t.company_id, id).await.map_err(|e| match e {
            StoreError::NotFound => ApiError::invalid("rule_set_id", "is not a rule set of this company"),
            other => other.into(),
        })?),
        None => scoring::active_set_db(&st.db, t.company_id, "leads").await?,
    };
    Ok(Json(scoring::preview(set.as_ref(), &facts, &b.engagement)))
}

pub async fn rescore(State(st): State<AppState>, Admin(t): Admin) -> ApiResult<impl IntoResponse> {
    let job = NewJob::new(RESCORE_KIND, json!({"reason": "rescore requested"}));
    let (job, _) = store_jobs::enqueue_audited(&st.db, &t.audit, &job, now_micros()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job": job}))))
}

// ---------------------------------------------------------------------------------------
// Predictive model
// ---------------------------------------------------------------------------------------

pub async fn predictive_status(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    let status = predictive::status(&st.db, t.company_id).await?;
    let (positives, negatives) = predictive::labelled_counts(&st.db, t.company_id).await?;
    let mut body = serde_json::to_value(&status).map_err(|_| ApiError::Internal)?;
    body["available"] = json!({"converted": positives, "lost": negatives, "enough": positives >= status.min_per_class as i64 && negatives >= status.min_per_class as i64});
    Ok(Json(body))
}

pub async fn train(State(st): State<AppState>, Admin(t): Admin) -> ApiResult<impl IntoResponse> {
    let (positives, negatives) = predictive::labelled_counts(&st.db, t.company_id).await?;
    let min = corvid_core::scoring::MIN_PER_CLASS as i64;
    let job = NewJob::new(TRAIN_KIND, json!({}));
    let (job, _) = store_jobs::enqueue_audited(&st.db, &t.audit, &job, now_micros()).await?;
    let note = if positives >= min && negatives >= min {
        format!("Training on {positives} converted and {negatives} lost leads; 20% are held out to measure AUC.")
    } else {
        format!(
            "Only {positives} converted and {negatives} lost leads: at least {min} of each are needed, so this run will record a fallback to rule scores."
        )
    };
    Ok((StatusCode::ACCEPTED, Json(json!({"job": job, "message": note, "fallback": positives < min || negatives < min}))))
}

// ---------------------------------------------------------------------------------------
// A lead's score and engagement
// ---------------------------------------------------------------------------------------

/// The lead through the record repository first, so its access checks apply here too.
async fn visible_lead(st: &AppState, t: &Tenant, id: Uuid) -> ApiResult<()> {
    let leads = corvid_core::object("leads").ok_or(ApiError::Internal)?;
    t.records(&st.db, leads).get(id).await.map_err(not_found("lead"))?;
    Ok(())
}

pub async fn lead_score(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("id")?;
    visible_lead(&st, &t, id).await?;
    Ok(Json(scoring::score_card(&st.db, t.company_id, id).await.map_err(not_found("lead"))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementBody {
    #[serde(rename = "type")]
    pub kind: EngagementKind,
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub source: Option<String>,
}

pub async fn engagement(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    JsonBody(b, _): JsonBody<EngagementBody>,
) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("id")?;
    visible_lead(&st, &t, id).await?;
    scoring::record_engagement(&st.db, &t, id, b.kind, b.occurred_at, b.source.as_deref()).await.map_err(not_found("lead"))?;
    Ok((StatusCode::CREATED, Json(scoring::score_card(&st.db, t.company_id, id).await.map_err(not_found("lead"))?)))
}

// ---------------------------------------------------------------------------------------
// Assignment rules
// ---------------------------------------------------------------------------------------

pub async fn list_rules(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": assignment::list(&st.db, t.company_id).await?})))
}

pub async fn create_rule(State(st): State<AppState>, Admin(t): Admin, JsonBody(b, _): JsonBody<RuleInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(assignment::create(&st.db, &t, b).await?)))
}

pub async fn show_rule(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_id")?;
    Ok(Json(assignment::get(&st.db, t.company_id, id).await.map_err(not_found("assignment rule"))?))
}

pub async fn update_rule(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<RulePatch>,
) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_id")?;
    Ok(Json(assignment::update(&st.db, &t, id, b).await.map_err(not_found("assignment rule"))?))
}

pub async fn delete_rule(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("rule_id")?;
    assignment::delete(&st.db, &t, id).await.map_err(not_found("assignment rule"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReorderBody {
    pub ids: Vec<Uuid>,
}

pub async fn reorder_rules(
    State(st): State<AppState>,
    Admin(t): Admin,
    JsonBody(b, _): JsonBody<ReorderBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": assignment::reorder(&st.db, &t, "leads", &b.ids).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignPreviewBody {
    #[serde(default)]
    pub values: Map<String, Value>,
    #[serde(default)]
    pub engagement: BTreeMap<EngagementKind, i64>,
}

/// What a sample lead would get: the rule score first (assignment rules may test it), then
/// the assignment rule that would fire and the user it would pick now.
pub async fn preview_both(
    db: &Db,
    t: &Tenant,
    values: &Map<String, Value>,
    engagement: &BTreeMap<EngagementKind, i64>,
) -> ApiResult<Value> {
    check_engagement(engagement)?;
    let mut facts = sample_facts(db, t, values).await?;
    let set = scoring::active_set_db(db, t.company_id, "leads").await?;
    let score = scoring::preview(set.as_ref(), &facts, engagement);
    if let (Some(s), false) = (score.score, facts.contains_key("lead_score")) {
        facts.insert("lead_score".into(), s.into());
    }
    let decision = assignment::preview(db, t, &facts).await?;
    let user = match &decision {
        Some(d) => {
            companies::member(db, t.company_id, d.user_id).await?.map(|m| json!({"id": m.user_id, "name": m.name, "email": m.email}))
        }
        None => None,
    };
    Ok(json!({
        "assignment": decision,
        "user": user,
        "message": if decision.is_none() { Some("No assignment rule matches; the creator would keep the lead.") } else { None },
        "score": score,
    }))
}

pub async fn assign_preview(
    State(st): State<AppState>,
    Member(t): Member,
    JsonBody(b, _): JsonBody<AssignPreviewBody>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(preview_both(&st.db, &t, &b.values, &b.engagement).await?))
}

// ---------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------

fn job_ctx(ctx: &JobContext, company_id: Uuid) -> AuditCtx {
    AuditCtx {
        company_id,
        actor_id: ctx.job().created_by,
        ip: None,
        user_agent: Some("corvid scoring".into()),
        request_id: Some(format!("job:{}", ctx.job().id)),
    }
}

/// `scoring.rescore`: one company (payload reason), or every company with an active rule set.
pub async fn rescore_job(ctx: JobContext) -> JobResult {
    let reason = ctx.payload()["reason"].as_str().unwrap_or("daily rescore").chars().take(100).collect::<String>();
    let companies = match ctx.company_id() {
        Some(c) => vec![c],
        None => scoring::companies_to_rescore(ctx.db()).await?,
    };
    let total = companies.len() as i64;
    let (mut leads, mut changed) = (0, 0);
    for (i, company) in companies.into_iter().enumerate() {
        ctx.progress(i as i64, Some(total), "rescoring leads").await?;
        let report = scoring::rescore_company(ctx.db(), &job_ctx(&ctx, company), &reason, &|_| {}).await?;
        leads += report.leads;
        changed += report.changed;
    }
    ctx.progress(total, Some(total), "done").await?;
    Ok(json!({"companies": total, "leads": leads, "changed": changed}))
}

/// `scoring.predictive.train`: one company, or (weekly) every company with a model or enough
/// labelled leads.
pub async fn train_job(ctx: JobContext) -> JobResult {
    let companies = match ctx.company_id() {
        Some(c) => vec![c],
        None => predictive::companies_to_train(ctx.db()).await?,
    };
    let total = companies.len() as i64;
    let mut results = Vec::new();
    for (i, company) in companies.into_iter().enumerate() {
        ctx.progress(i as i64, Some(total), "training").await?;
        let status = predictive::train(ctx.db(), &job_ctx(&ctx, company), Some(ctx.job().id), &|_| {}).await?;
        results.push(json!({"company_id": company, "status": status.status, "auc": status.auc, "message": status.message}));
    }
    ctx.progress(total, Some(total), "done").await?;
    if ctx.company_id().is_some() {
        results.into_iter().next().ok_or_else(|| JobError::permanent("nothing was trained"))
    } else {
        Ok(json!({"companies": results}))
    }
}

/// The system schedules of scoring: the daily rescore and the weekly retraining.
pub async fn install_schedules(db: &Db, now: DateTime<Utc>) -> Result<(), StoreError> {
    for (name, kind, cron) in [(RESCORE_SCHEDULE, RESCORE_KIND, RESCORE_CRON), (TRAIN_SCHEDULE, TRAIN_KIND, TRAIN_CRON)] {
        let s = NewSchedule {
            company_id: None,
            name: name.into(),
            kind: kind.into(),
            payload: json!({"reason": "scheduled"}),
            cron: cron.into(),
            timezone: "UTC".into(),
            enabled: true,
            created_by: None,
        };
        if store_jobs::ensure_schedule(db, &s, now).await? {
            tracing::info!(name, cron, "created a scoring schedule");
        }
    }
    Ok(())
}
