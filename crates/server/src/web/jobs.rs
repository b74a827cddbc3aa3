//! Settings → Background jobs: the company's jobs with their state, progress, attempts and
//! last error; Cancel and Retry; a button to start an audit check. While any job is queued or
//! running the table refreshes itself every 3 s (htmx polling of this same page, `hx-select`
//! picking the table out of it). Admins only.

use super::format::local_time;
use super::records::Choice;
use super::{redirect, render, Ctx, Page, WebError, WebResult};
use crate::jobs::{tenant_job, AUDIT_VERIFY};
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use corvid_core::value::now_micros;
use corvid_store::jobs::{self, Job, JobFilter, JobState};
use corvid_store::{companies, StoreError};
use serde_json::json;
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

const PAGE_SIZE: usize = 50;

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

fn admin_only(page: &Page) -> WebResult<Ctx> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can see and manage background jobs."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    Ok(ctx)
}

pub struct JobLine {
    pub id: Uuid,
    pub kind: String,
    pub state: String,
    pub state_label: String,
    pub badge: &'static str,
    pub attempts: i64,
    pub max_attempts: i64,
    /// A `<progress>` with value/max when the total is known.
    pub has_total: bool,
    /// An indeterminate `<progress>` (running, total unknown).
    pub busy: bool,
    pub progress_done: i64,
    pub progress_total: i64,
    pub progress_text: String,
    pub last_error: String,
    pub created: String,
    pub finished: String,
    pub next_run: String,
    pub can_cancel: bool,
    pub can_retry: bool,
}

fn badge(state: JobState, cancel_requested: bool) -> &'static str {
    match state {
        JobState::Queued => "blue",
        JobState::Running if cancel_requested => "orange",
        JobState::Running => "purple",
        JobState::Succeeded => "green",
        JobState::Failed => "red",
        JobState::Dead => "black",
        JobState::Cancelled => "grey",
    }
}

fn state_label(job: &Job) -> String {
    match job.state {
        JobState::Queued if job.attempts > 0 => "Waiting to retry".into(),
        JobState::Queued => "Queued".into(),
        JobState::Running if job.cancel_requested => "Cancelling".into(),
        JobState::Running => "Running".into(),
        JobState::Succeeded => "Succeeded".into(),
        JobState::Failed => "Failed".into(),
        JobState::Dead => "Dead".into(),
        JobState::Cancelled => "Cancelled".into(),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

fn line(job: &Job, tz: chrono_tz::Tz, now: chrono::DateTime<chrono::Utc>) -> JobLine {
    let total = job.progress_total.filter(|t| *t > 0);
    let mut progress_text = match total {
        Some(t) => format!("{} of {t}", job.progress_done.min(t)),
        None if job.progress_done > 0 => job.progress_done.to_string(),
        None => String::new(),
    };
    if let Some(m) = job.progress_message.as_deref().filter(|m| !m.is_empty()) {
        progress_text = if progress_text.is_empty() { clip(m, 120) } else { format!("{progress_text} · {}", clip(m, 120)) };
    }
    JobLine {
        id: job.id,
        kind: job.kind.clone(),
        state: job.state.as_str().into(),
        state_label: state_label(job),
        badge: badge(job.state, job.cancel_requested),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        has_total: total.is_some(),
        busy: total.is_none() && job.state == JobState::Running,
        progress_done: total.map_or(0, |t| job.progress_done.clamp(0, t)),
        progress_total: total.unwrap_or(0),
        progress_text,
        last_error: clip(job.last_error.as_deref().unwrap_or(""), 300),
        created: local_time(&job.created_at, tz),
        finished: job.finished_at.map(|t| local_time(&t, tz)).unwrap_or_default(),
        next_run: if job.state == JobState::Queued && job.run_at > now { local_time(&job.run_at, tz) } else { String::new() },
        can_cancel: matches!(job.state, JobState::Queued) || (job.state == JobState::Running && !job.cancel_requested),
        can_retry: job.state.is_retryable(),
    }
}

#[derive(Template)]
#[template(path = "settings_jobs.html")]
struct JobsPage {
    ctx: Ctx,
    section: &'static str,
    rows: Vec<JobLine>,
    states: Vec<Choice>,
    state: String,
    /// Any job queued or running: the table polls for changes.
    active: bool,
    refresh_href: String,
    older_href: String,
    newest_href: String,
    is_first: bool,
    notice: String,
    error: String,
    tz_name: String,
}

pub async fn page(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let cid = page.tenant.company_id;
    let base = page.ctx.base();
    let qp: Pairs = serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let tz = companies::get(&st.db, cid).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::UTC);
    let mut error = first(&qp, "error").unwrap_or("").chars().take(200).collect::<String>();
    let state_text = first(&qp, "state").unwrap_or("").trim().to_string();
    let state = match JobState::parse(&state_text) {
        Some(s) => Some(s),
        None if state_text.is_empty() => None,
        None => {
            error = "Choose one of the listed states.".into();
            None
        }
    };
    let cursor = first(&qp, "cursor").filter(|c| !c.is_empty()).map(str::to_string);
    let f = JobFilter { state, kind: None, cursor: cursor.clone(), limit: PAGE_SIZE };
    let (list, next) = match jobs::list(&st.db, cid, &f).await {
        Ok(r) => r,
        Err(StoreError::Invalid(_)) => {
            error = "The page link is not valid; showing the newest jobs.".into();
            jobs::list(&st.db, cid, &JobFilter { cursor: None, ..f }).await?
        }
        Err(e) => return Err(e.into()),
    };
    let now = now_micros();
    let rows: Vec<JobLine> = list.iter().map(|j| line(j, tz, now)).collect();
    let active = list.iter().any(|j| matches!(j.state, JobState::Queued | JobState::Running));
    let href = |extra: Option<(&str, &str)>| {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if !state_text.is_empty() {
            q.push(("state", state_text.as_str()));
        }
        if let Some(kv) = extra {
            q.push(kv);
        }
        let s = serde_urlencoded::to_string(&q).unwrap_or_default();
        format!("{base}/settings/jobs{}{s}", if s.is_empty() { "" } else { "?" })
    };
    let older_href = next.as_deref().map(|c| href(Some(("cursor", c)))).unwrap_or_default();
    let refresh_href = match &cursor {
        Some(c) => href(Some(("cursor", c.as_str()))),
        None => href(None),
    };
    let mut states = vec![Choice { value: String::new(), label: "Any state".into() }];
    states.extend(JobState::ALL.iter().map(|s| Choice { value: s.as_str().into(), label: s.as_str().into() }));
    render(&JobsPage {
        ctx,
        section: "jobs",
        rows,
        states,
        state: state_text.clone(),
        active,
        refresh_href,
        older_href,
        newest_href: href(None),
        is_first: cursor.is_none(),
        notice: first(&qp, "notice").unwrap_or("").chars().take(200).collect(),
        error,
        tz_name: tz.name().to_string(),
    })
}

/// The page's buttons: `action` = `enqueue` (an audit check), `cancel` or `retry` (with
/// `job_id`). Every change is audited through the store.
pub async fn action(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    admin_only(&page)?;
    let base = format!("{}/settings/jobs", page.ctx.base());
    let audit = &page.tenant.audit;
    let now = now_micros();
    let job_id = || first(&f, "job_id").and_then(|s| Uuid::parse_str(s.trim()).ok()).ok_or_else(WebError::not_found);
    let outcome = match first(&f, "action").unwrap_or("") {
        "enqueue" => {
            let job = tenant_job(AUDIT_VERIFY, json!({}))?;
            jobs::enqueue_audited(&st.db, audit, &job, now).await.map(|_| "An audit check was queued.".to_string())
        }
        "cancel" => jobs::cancel(&st.db, audit, job_id()?, now).await.map(|j| {
            if j.state == JobState::Cancelled {
                "The job was cancelled.".to_string()
            } else {
                "Cancellation was requested; the job stops at its next checkpoint.".to_string()
            }
        }),
        "retry" => jobs::retry(&st.db, audit, job_id()?, now).await.map(|_| "The job was queued again.".to_string()),
        _ => return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Unknown action.")),
    };
    match outcome {
        Ok(msg) => Ok(redirect(&headers, &format!("{base}?notice={}", urlencode(&msg)))),
        Err(StoreError::Conflict(msg)) => {
            let mut chars = msg.chars();
            let msg = chars.next().map(|c| format!("{}{}.", c.to_uppercase(), chars.as_str())).unwrap_or_default();
            Ok(redirect(&headers, &format!("{base}?error={}", urlencode(&msg))))
        }
        Err(e) => Err(e.into()),
    }
}
