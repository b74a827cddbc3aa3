//! Background jobs and schedules of a company, for its Admins: list and inspect jobs, cancel
//! and retry them, start the kinds tenants may start, and manage recurring schedules. Every
//! change is audited (objects `job` and `job_schedule`).

use crate::api::records::query_pairs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, JsonBody, Params};
use crate::jobs::{tenant_job, TENANT_KINDS};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use corvid_core::value::now_micros;
use corvid_store::jobs::{self, JobFilter, JobState, NewSchedule, SchedulePatch};
use corvid_store::{companies, StoreError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

fn not_found_as(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

/// `GET …/jobs?state=&kind=&cursor=&limit=`: newest first, `{data, next_cursor}`.
pub async fn list(State(st): State<AppState>, Admin(t): Admin, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let mut f = JobFilter { limit: 50, ..Default::default() };
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "state" if !v.is_empty() => {
                let states = JobState::ALL.map(JobState::as_str).join(", ");
                f.state = Some(JobState::parse(&v).ok_or_else(|| ApiError::invalid("state", format!("must be one of {states}")))?);
            }
            "kind" if !v.is_empty() => {
                if v.chars().count() > 100 {
                    return Err(ApiError::invalid("kind", "must be at most 100 characters"));
                }
                f.kind = Some(v);
            }
            "cursor" if !v.is_empty() => f.cursor = Some(v),
            "limit" => {
                f.limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=jobs::MAX_LIMIT).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", "must be a number from 1 to 200"))?;
            }
            _ => {}
        }
    }
    let (data, next) = jobs::list(&st.db, t.company_id, &f).await?;
    Ok(Json(json!({"data": data, "next_cursor": next})).into_response())
}

pub async fn show(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<Response> {
    let id = p.uuid("job_id")?;
    Ok(Json(jobs::get(&st.db, t.company_id, id).await.map_err(not_found_as("job"))?).into_response())
}

pub async fn cancel(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<Response> {
    let id = p.uuid("job_id")?;
    Ok(Json(jobs::cancel(&st.db, &t.audit, id, now_micros()).await.map_err(not_found_as("job"))?).into_response())
}

pub async fn retry(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<Response> {
    let id = p.uuid("job_id")?;
    Ok(Json(jobs::retry(&st.db, &t.audit, id, now_micros()).await.map_err(not_found_as("job"))?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJobBody {
    kind: String,
    payload: Option<Map<String, Value>>,
    run_at: Option<DateTime<Utc>>,
    max_attempts: Option<i64>,
    idempotency_key: Option<String>,
}

fn idempotency_header(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::bad_field("Idempotency-Key", "must be visible ASCII"))?.trim();
    if s.is_empty() || s.len() > 255 {
        return Err(ApiError::bad_field("Idempotency-Key", "must be 1 to 255 characters"));
    }
    Ok(Some(s.to_string()))
}

/// `POST …/jobs`: starts a job of a kind tenants may start. 201 with the job, or 200 with the
/// existing job when the idempotency key (body or `Idempotency-Key` header) was seen before.
pub async fn enqueue(
    State(st): State<AppState>,
    Admin(t): Admin,
    headers: HeaderMap,
    JsonBody(b, _): JsonBody<NewJobBody>,
) -> ApiResult<Response> {
    let mut job = tenant_job(&b.kind, Value::Object(b.payload.unwrap_or_default()))?;
    if let Some(n) = b.max_attempts {
        job = job.max_attempts(n);
    }
    if let Some(at) = b.run_at {
        job = job.run_at(at);
    }
    if let Some(key) = b.idempotency_key.or(idempotency_header(&headers)?) {
        job = job.idempotency_key(key);
    }
    let (job, created) = jobs::enqueue_audited(&st.db, &t.audit, &job, now_micros()).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(job)).into_response())
}

pub async fn schedules(State(st): State<AppState>, Admin(t): Admin) -> ApiResult<Response> {
    Ok(Json(json!({"data": jobs::list_schedules(&st.db, t.company_id).await?})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScheduleBody {
    name: String,
    kind: String,
    cron: String,
    /// Defaults to the company's time zone.
    timezone: Option<String>,
    payload: Option<Map<String, Value>>,
    enabled: Option<bool>,
}

/// `POST …/job-schedules`: 201 with the schedule and its first `next_run_at`; an invalid cron
/// expression is a 422 naming `cron`.
pub async fn create_schedule(
    State(st): State<AppState>,
    Admin(t): Admin,
    JsonBody(b, _): JsonBody<NewScheduleBody>,
) -> ApiResult<Response> {
    if !TENANT_KINDS.contains(&b.kind.as_str()) {
        return Err(ApiError::invalid("kind", format!("must be one of: {}", TENANT_KINDS.join(", "))));
    }
    let timezone = match b.timezone {
        Some(tz) => tz,
        None => companies::get(&st.db, t.company_id).await?.map(|c| c.time_zone).unwrap_or_else(|| "UTC".into()),
    };
    let s = NewSchedule {
        company_id: Some(t.company_id),
        name: b.name,
        kind: b.kind,
        payload: Value::Object(b.payload.unwrap_or_default()),
        cron: b.cron,
        timezone,
        enabled: b.enabled.unwrap_or(true),
        created_by: Some(t.user_id),
    };
    let created = jobs::create_schedule(&st.db, Some(&t.audit), &s, now_micros()).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePatchBody {
    cron: Option<String>,
    timezone: Option<String>,
    enabled: Option<bool>,
    payload: Option<Map<String, Value>>,
}

pub async fn update_schedule(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<SchedulePatchBody>,
) -> ApiResult<Response> {
    let id = p.uuid("schedule_id")?;
    let patch = SchedulePatch { cron: b.cron, timezone: b.timezone, enabled: b.enabled, payload: b.payload.map(Value::Object) };
    let s = jobs::update_schedule(&st.db, &t.audit, id, &patch, now_micros()).await.map_err(not_found_as("schedule"))?;
    Ok(Json(s).into_response())
}

pub async fn delete_schedule(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<Response> {
    let id = p.uuid("schedule_id")?;
    jobs::delete_schedule(&st.db, &t.audit, id).await.map_err(not_found_as("schedule"))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
