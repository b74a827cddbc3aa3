//! Background jobs: a queue and a scheduler kept in the database, so they work the same on one
//! SQLite file and on several nodes sharing PostgreSQL, and survive restarts.
//!
//! Life of a job: `queued` → (claimed by a worker) `running` → `succeeded`; a failed attempt goes
//! back to `queued` with an exponential backoff (`run_at` in the future) until `max_attempts`,
//! then `dead` (the dead letter, kept for inspection and manual retry). A handler can also fail
//! for good (`failed`: retrying cannot help). Cancelling a queued job makes it `cancelled` at
//! once; a running job gets `cancel_requested`, which its handler sees, and ends `cancelled`.
//!
//! Claiming is exclusive: one `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING …` statement,
//! with `FOR UPDATE SKIP LOCKED` on PostgreSQL (concurrent claimers skip each other's row) and
//! inside `BEGIN IMMEDIATE` on SQLite (one writer at a time). A worker holds a job through a lease
//! (`locked_until`) that it extends while it works; a job whose lease ran out (the process died)
//! is claimed again. Every later write by the worker is fenced by its [`Lease`] (worker identity
//! and attempt number), so a worker that lost its lease cannot overwrite the new owner's state.
//!
//! Every function takes `now` from the caller, so tests move time instead of sleeping.

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Backend, Db, Row, Tx, Q};
use crate::{new_id, Result, StoreError};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use corvid_core::value::format_timestamp;
use corvid_core::{SqlType, Value};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

/// Attempts a job gets unless it asks for another number.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;
/// Upper bound of `max_attempts`.
pub const MAX_ATTEMPTS_LIMIT: i64 = 25;
/// Longest wait between two attempts.
pub const MAX_BACKOFF_SECS: i64 = 3600;
/// Largest page of [`list`].
pub const MAX_LIMIT: usize = 200;
/// Finished web sessions, refresh tokens and idempotency keys are kept this long.
pub const CLEANUP_AFTER_DAYS: i64 = 7;
/// Succeeded and cancelled jobs are kept this long; failed and dead ones until retried.
pub const KEEP_FINISHED_JOBS_DAYS: i64 = 30;

const MAX_ERROR_LEN: usize = 4000;
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 6] =
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Dead, JobState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Finished for good unless someone retries it.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Dead | JobState::Cancelled)
    }

    /// States an admin can send back to the queue.
    pub fn is_retryable(self) -> bool {
        matches!(self, JobState::Failed | JobState::Dead | JobState::Cancelled)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub kind: String,
    pub payload: Json,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: DateTime<Utc>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub progress_message: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<Json>,
    pub idempotency_key: Option<String>,
    pub schedule_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
}

impl Job {
    /// The lease of a running job: what fences the worker's later writes.
    pub fn lease(&self) -> Option<Lease> {
        (self.state == JobState::Running).then(|| Lease {
            job_id: self.id,
            worker: self.locked_by.clone().unwrap_or_default(),
            attempt: self.attempts,
        })
    }
}

/// Proof of ownership of a running job: the worker that claimed it and the attempt number the
/// claim produced. Writes carrying a stale lease change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: Uuid,
    pub worker: String,
    pub attempt: i64,
}

const COLS: &str = "id, company_id, kind, payload, state, attempts, max_attempts, run_at, locked_by, locked_until, cancel_requested, \
     progress_done, progress_total, progress_message, last_error, result, idempotency_key, schedule_id, created_at, updated_at, \
     started_at, finished_at, created_by";

const TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Json,
    SqlType::Text,
    SqlType::Int,
    SqlType::Int,
    SqlType::Timestamp,
    SqlType::Text,
    SqlType::Timestamp,
    SqlType::Bool,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Json,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Uuid,
];

fn to_job(r: &Row) -> Result<Job> {
    let state_text = r.text(4).unwrap_or_default();
    let state = JobState::parse(&state_text).ok_or_else(|| StoreError::Corrupt(format!("unknown job state {state_text:?}")))?;
    Ok(Job {
        id: r.uuid(0).ok_or_else(|| StoreError::Corrupt("job without id".into()))?,
        company_id: r.uuid(1),
        kind: r.text(2).unwrap_or_default(),
        payload: r.json(3).unwrap_or(Json::Null),
        state,
        attempts: r.int(5).unwrap_or(0),
        max_attempts: r.int(6).unwrap_or(DEFAULT_MAX_ATTEMPTS),
        run_at: r.timestamp(7).unwrap_or_default(),
        locked_by: r.text(8),
        locked_until: r.timestamp(9),
        cancel_requested: r.bool(10).unwrap_or(false),
        progress_done: r.int(11).unwrap_or(0),
        progress_total: r.int(12),
        progress_message: r.text(13),
        last_error: r.text(14),
        result: r.json(15),
        idempotency_key: r.text(16),
        schedule_id: r.uuid(17),
        created_at: r.timestamp(18).unwrap_or_default(),
        updated_at: r.timestamp(19).unwrap_or_default(),
        started_at: r.timestamp(20),
        finished_at: r.timestamp(21),
        created_by: r.uuid(22),
    })
}

fn first_job(rows: Vec<Row>) -> Result<Option<Job>> {
    rows.first().map(to_job).transpose()
}

fn opt_uuid(v: Option<Uuid>) -> Value {
    v.map_or(Value::Null(SqlType::Uuid), Value::Uuid)
}

fn opt_text(v: Option<&str>) -> Value {
    v.map_or(Value::Null(SqlType::Text), |s| Value::Text(s.to_string()))
}

fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::Null(SqlType::Int), Value::Int)
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_string()
    } else {
        format!("{}…", &s[..s.floor_char_boundary(max)])
    }
}

// ---------------------------------------------------------------------------------------
// Enqueueing
// ---------------------------------------------------------------------------------------

/// A job to add to the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// The tenant; `None` for system jobs (maintenance).
    pub company_id: Option<Uuid>,
    pub kind: String,
    pub payload: Json,
    /// Not before this time; `None` for now.
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i64,
    /// With a key, enqueueing again (same company and kind) returns the first job.
    pub idempotency_key: Option<String>,
    pub schedule_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: Json) -> NewJob {
        NewJob {
            company_id: None,
            kind: kind.into(),
            payload,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            idempotency_key: None,
            schedule_id: None,
            created_by: None,
        }
    }
    pub fn company(mut self, company_id: Uuid) -> Self {
        self.company_id = Some(company_id);
        self
    }
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.max_attempts = n;
        self
    }
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    pub fn created_by(mut self, user: Option<Uuid>) -> Self {
        self.created_by = user;
        self
    }

    fn validate(&self) -> Result<()> {
        let kind_ok = !self.kind.is_empty()
            && self.kind.len() <= 100
            && self.kind.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
        if !kind_ok {
            return Err(StoreError::invalid("kind", "must be 1 to 100 letters, digits, '.', '_', '-' or ':'"));
        }
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err(StoreError::invalid("max_attempts", &format!("must be from 1 to {MAX_ATTEMPTS_LIMIT}")));
        }
        if let Some(k) = &self.idempotency_key {
            if k.is_empty() || k.chars().count() > 255 {
                return Err(StoreError::invalid("idempotency_key", "must be 1 to 255 characters"));
            }
        }
        if self.payload.to_string().len() > MAX_PAYLOAD_BYTES {
            return Err(StoreError::invalid("payload", "is larger than 256 KiB"));
        }
        Ok(())
    }
}

/// Adds a job. Returns the job and whether it was created (`false`: an earlier job with the
/// same idempotency key was returned instead).
pub async fn enqueue(db: &Db, job: &NewJob, now: DateTime<Utc>) -> Result<(Job, bool)> {
    let mut tx = db.begin().await?;
    let out = enqueue_tx(&mut tx, job, now).await?;
    tx.commit().await?;
    Ok(out)
}

/// [`enqueue`] inside the caller's transaction, so a job is queued exactly when the change
/// that needs it commits.
pub async fn enqueue_tx(tx: &mut Tx, job: &NewJob, now: DateTime<Utc>) -> Result<(Job, bool)> {
    job.validate()?;
    let insert = Q::new(format!(
        "INSERT INTO jobs (id, company_id, kind, payload, state, attempts, max_attempts, run_at, progress_done, idempotency_key, \
         schedule_id, created_at, updated_at, created_by) \
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, 0, $7, $8, $9, $9, $10) ON CONFLICT DO NOTHING RETURNING {COLS}"
    ))
    .bind(Value::Uuid(new_id()))
    .bind(opt_uuid(job.company_id))
    .bind(Value::Text(job.kind.clone()))
    .bind(Value::Json(job.payload.clone()))
    .bind(Value::Int(job.max_attempts))
    .bind(Value::Timestamp(job.run_at.unwrap_or(now)))
    .bind(opt_text(job.idempotency_key.as_deref()))
    .bind(opt_uuid(job.schedule_id))
    .bind(Value::Timestamp(now))
    .bind(opt_uuid(job.created_by));
    if let Some(created) = first_job(tx.fetch(&insert, TYPES).await?)? {
        return Ok((created, true));
    }
    // The insert hit the idempotency index: hand back the job that holds the key.
    let Some(key) = &job.idempotency_key else {
        return Err(StoreError::Conflict("the job could not be added".into()));
    };
    let mut q = Q::new(format!("SELECT {COLS} FROM jobs WHERE "));
    match job.company_id {
        Some(c) => {
            let p = q.param(Value::Uuid(c));
            q.push(&format!("company_id = {p}"));
        }
        None => {
            q.push("company_id IS NULL");
        }
    }
    let k = q.param(Value::Text(job.kind.clone()));
    let i = q.param(Value::Text(key.clone()));
    q.push(&format!(" AND kind = {k} AND idempotency_key = {i}"));
    match first_job(tx.fetch(&q, TYPES).await?)? {
        Some(existing) => Ok((existing, false)),
        None => Err(StoreError::Conflict("the job could not be added".into())),
    }
}

/// Enqueues for a tenant and writes the audit row in the same transaction (only when a job is
/// created; a repeated idempotency key changes nothing).
pub async fn enqueue_audited(db: &Db, ctx: &AuditCtx, job: &NewJob, now: DateTime<Utc>) -> Result<(Job, bool)> {
    let job = NewJob { company_id: Some(ctx.company_id), created_by: ctx.actor_id, ..job.clone() };
    let mut tx = db.begin().await?;
    let (created, is_new) = enqueue_tx(&mut tx, &job, now).await?;
    if is_new {
        let change = Change {
            object: "job".into(),
            record_id: Some(created.id),
            action: "create".into(),
            field: Some("kind".into()),
            old: None,
            new: Some(created.kind.clone()),
        };
        audit::append(&mut tx, ctx, &[change]).await?;
    }
    tx.commit().await?;
    Ok((created, is_new))
}

// ---------------------------------------------------------------------------------------
// Claiming and the worker's side
// ---------------------------------------------------------------------------------------

/// Takes the next due job of one of `kinds` for `worker`, leased until `now + lease`.
///
/// Due means queued with `run_at <= now`, or running with an expired lease (its worker died)
/// and attempts left. Exactly one concurrent caller gets a given job: PostgreSQL locks the
/// chosen row with `FOR UPDATE SKIP LOCKED` (other claimers pass over it to the next one), and
/// SQLite runs the statement inside `BEGIN IMMEDIATE`, which admits one writer at a time.
pub async fn claim(db: &Db, worker: &str, kinds: &[String], lease: Duration, now: DateTime<Utc>) -> Result<Option<Job>> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let mut q = Q::new("");
    let w = q.param(Value::Text(worker.to_string()));
    let until = q.param(Value::Timestamp(now + lease));
    let n = q.param(Value::Timestamp(now));
    let no = q.param(Value::Bool(false));
    let kind_params: Vec<String> = kinds.iter().map(|k| q.param(Value::Text(k.clone()))).collect();
    let skip_locked = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    q.sql = format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = {w}, locked_until = {until}, \
         started_at = {n}, updated_at = {n} \
         WHERE id = (SELECT id FROM jobs WHERE ((state = 'queued' AND run_at <= {n}) \
         OR (state = 'running' AND locked_until < {n} AND attempts < max_attempts AND cancel_requested = {no})) \
         AND kind IN ({}) ORDER BY run_at, id LIMIT 1{skip_locked}) RETURNING {COLS}",
        kind_params.join(", ")
    );
    let mut tx = db.begin().await?;
    let job = first_job(tx.fetch(&q, TYPES).await?)?;
    tx.commit().await?;
    Ok(job)
}

/// Settles running jobs whose lease expired and that must not run again: those with no
/// attempts left become `dead`, those with a pending cancel become `cancelled`. Returns how
/// many changed.
pub async fn reap(db: &Db, now: DateTime<Utc>) -> Result<u64> {
    let dead = Q::new(
        "UPDATE jobs SET state = 'dead', locked_until = NULL, finished_at = $1, updated_at = $1, \
         last_error = $2 WHERE state = 'running' AND locked_until < $1 AND attempts >= max_attempts",
    )
    .bind(Value::Timestamp(now))
    .bind(Value::Text("the worker stopped while running the last attempt (its lease expired)".into()));
    let cancelled = Q::new(
        "UPDATE jobs SET state = 'cancelled', locked_until = NULL, finished_at = $1, updated_at = $1 \
         WHERE state = 'running' AND locked_until < $1 AND cancel_requested = $2",
    )
    .bind(Value::Timestamp(now))
    .bind(Value::Bool(true));
    Ok(db.execute(&dead).await? + db.execute(&cancelled).await?)
}

/// Appends ` AND <the lease matches>` to a query.
fn push_fence(q: &mut Q, lease: &Lease) {
    let id = q.param(Value::Uuid(lease.job_id));
    let w = q.param(Value::Text(lease.worker.clone()));
    let a = q.param(Value::Int(lease.attempt));
    q.push(&format!(" WHERE id = {id} AND state = 'running' AND locked_by = {w} AND attempts = {a}"));
}

/// Progress as a handler reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: i64,
    pub total: Option<i64>,
    pub message: Option<String>,
}

/// Extends the lease (and, with `progress`, records it). Returns whether cancellation was
/// requested, or `None` when the lease is no longer this worker's.
pub async fn heartbeat(
    db: &Db,
    lease: &Lease,
    until: DateTime<Utc>,
    progress: Option<&Progress>,
    now: DateTime<Utc>,
) -> Result<Option<bool>> {
    let mut q = Q::new("UPDATE jobs SET ");
    let u = q.param(Value::Timestamp(until));
    let n = q.param(Value::Timestamp(now));
    q.push(&format!("locked_until = {u}, updated_at = {n}"));
    if let Some(p) = progress {
        let d = q.param(Value::Int(p.done.max(0)));
        let t = q.param(opt_int(p.total.map(|t| t.max(0))));
        let m = q.param(opt_text(p.message.as_deref().map(|m| clip(m, 500)).as_deref()));
        q.push(&format!(", progress_done = {d}, progress_total = {t}, progress_message = {m}"));
    }
    push_fence(&mut q, lease);
    q.push(" RETURNING cancel_requested");
    Ok(db.fetch_one(&q, &[SqlType::Bool]).await?.map(|r| r.bool(0).unwrap_or(false)))
}

/// Records success. `false` when the lease was lost (another worker owns the job now).
pub async fn complete(db: &Db, lease: &Lease, result: &Json, progress: Option<&Progress>, now: DateTime<Utc>) -> Result<bool> {
    let mut q = Q::new("UPDATE jobs SET state = 'succeeded', locked_until = NULL, ");
    let r = q.param(Value::Json(result.clone()));
    let n = q.param(Value::Timestamp(now));
    q.push(&format!("result = {r}, finished_at = {n}, updated_at = {n}"));
    if let Some(p) = progress {
        let d = q.param(Value::Int(p.done.max(0)));
        let t = q.param(opt_int(p.total.map(|t| t.max(0))));
        let m = q.param(opt_text(p.message.as_deref().map(|m| clip(m, 500)).as_deref()));
        q.push(&format!(", progress_done = {d}, progress_total = {t}, progress_message = {m}"));
    }
    push_fence(&mut q, lease);
    Ok(db.execute(&q).await? == 1)
}

/// Seconds to wait before the next attempt, after `attempt` attempts failed: 2^attempt capped
/// at an hour, plus up to 10% jitter so that a burst of failures does not retry in lockstep.
/// `jitter` is a number in [0, 1).
pub fn backoff(attempt: i64, jitter: f64) -> Duration {
    let base = 1i64.checked_shl(attempt.clamp(0, 30) as u32).unwrap_or(MAX_BACKOFF_SECS).min(MAX_BACKOFF_SECS);
    let extra_ms = (base as f64 * 1000.0 * 0.1 * jitter.clamp(0.0, 1.0)) as i64;
    Duration::seconds(base) + Duration::milliseconds(extra_ms)
}

/// Records a failed attempt. With `retry`, the job goes back to the queue after a backoff
/// unless it used its last attempt (then `dead`); without, it is `failed` for good. Returns the
/// new state, or `None` when the lease was lost.
pub async fn fail(db: &Db, lease: &Lease, max_attempts: i64, error: &str, retry: bool, now: DateTime<Utc>) -> Result<Option<JobState>> {
    let state = if !retry {
        JobState::Failed
    } else if lease.attempt >= max_attempts {
        JobState::Dead
    } else {
        JobState::Queued
    };
    let mut q = Q::new("UPDATE jobs SET locked_until = NULL, ");
    let s = q.param(Value::Text(state.as_str().into()));
    let e = q.param(Value::Text(clip(error, MAX_ERROR_LEN)));
    let n = q.param(Value::Timestamp(now));
    q.push(&format!("state = {s}, last_error = {e}, updated_at = {n}"));
    if state == JobState::Queued {
        let at = q.param(Value::Timestamp(now + backoff(lease.attempt, rand::random::<f64>())));
        q.push(&format!(", run_at = {at}, finished_at = NULL"));
    } else {
        q.push(&format!(", finished_at = {n}"));
    }
    push_fence(&mut q, lease);
    Ok((db.execute(&q).await? == 1).then_some(state))
}

/// The handler stopped because cancellation was requested.
pub async fn mark_cancelled(db: &Db, lease: &Lease, now: DateTime<Utc>) -> Result<bool> {
    let mut q = Q::new("UPDATE jobs SET state = 'cancelled', locked_until = NULL, ");
    let n = q.param(Value::Timestamp(now));
    q.push(&format!("finished_at = {n}, updated_at = {n}"));
    push_fence(&mut q, lease);
    Ok(db.execute(&q).await? == 1)
}

/// Gives a job back unfinished (the process is shutting down): queued again at once, and the
/// interrupted attempt does not count.
pub async fn release(db: &Db, lease: &Lease, now: DateTime<Utc>) -> Result<bool> {
    let mut q = Q::new("UPDATE jobs SET state = 'queued', locked_until = NULL, attempts = attempts - 1, ");
    let n = q.param(Value::Timestamp(now));
    q.push(&format!("run_at = {n}, updated_at = {n}"));
    push_fence(&mut q, lease);
    Ok(db.execute(&q).await? == 1)
}

// ---------------------------------------------------------------------------------------
// Reading, cancelling and retrying (tenant side)
// ---------------------------------------------------------------------------------------

/// A job of one company; another company's job is `NotFound`.
pub async fn get(db: &Db, company_id: Uuid, id: Uuid) -> Result<Job> {
    let q =
        Q::new(format!("SELECT {COLS} FROM jobs WHERE company_id = $1 AND id = $2")).bind(Value::Uuid(company_id)).bind(Value::Uuid(id));
    first_job(db.fetch(&q, TYPES).await?)?.ok_or(StoreError::NotFound)
}

/// Any job, system jobs included (operators and tests; never for tenant requests).
pub async fn get_any(db: &Db, id: Uuid) -> Result<Job> {
    let q = Q::new(format!("SELECT {COLS} FROM jobs WHERE id = $1")).bind(Value::Uuid(id));
    first_job(db.fetch(&q, TYPES).await?)?.ok_or(StoreError::NotFound)
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    pub limit: usize,
}

fn encode_cursor(job: &Job) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{}", format_timestamp(&job.created_at), job.id))
}

fn decode_cursor(c: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc), Uuid::parse_str(id).ok()?))
}

/// A company's jobs, newest first, and the cursor of the next page.
pub async fn list(db: &Db, company_id: Uuid, f: &JobFilter) -> Result<(Vec<Job>, Option<String>)> {
    if f.limit == 0 || f.limit > MAX_LIMIT {
        return Err(StoreError::invalid("limit", "must be from 1 to 200"));
    }
    let mut q = Q::new(format!("SELECT {COLS} FROM jobs WHERE company_id = "));
    let p = q.param(Value::Uuid(company_id));
    q.push(&p);
    if let Some(s) = f.state {
        let p = q.param(Value::Text(s.as_str().into()));
        q.push(&format!(" AND state = {p}"));
    }
    if let Some(k) = &f.kind {
        let p = q.param(Value::Text(k.clone()));
        q.push(&format!(" AND kind = {p}"));
    }
    if let Some(c) = &f.cursor {
        let (at, id) = decode_cursor(c).ok_or_else(|| StoreError::invalid("cursor", "is not a cursor from a previous page"))?;
        let a = q.param(Value::Timestamp(at));
        let i = q.param(Value::Uuid(id));
        q.push(&format!(" AND (created_at < {a} OR (created_at = {a} AND id < {i}))"));
    }
    q.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", f.limit + 1));
    let mut jobs = db.fetch(&q, TYPES).await?.iter().map(to_job).collect::<Result<Vec<_>>>()?;
    let next = if jobs.len() > f.limit {
        jobs.truncate(f.limit);
        jobs.last().map(encode_cursor)
    } else {
        None
    };
    Ok((jobs, next))
}

async fn lock_job(tx: &mut Tx, company_id: Uuid, id: Uuid) -> Result<Job> {
    let q = Q::new(format!("SELECT {COLS} FROM jobs WHERE company_id = $1 AND id = $2{}", tx.for_update()))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    first_job(tx.fetch(&q, TYPES).await?)?.ok_or(StoreError::NotFound)
}

fn state_change(job: Uuid, action: &str, old: &str, new: &str) -> Change {
    Change {
        object: "job".into(),
        record_id: Some(job),
        action: action.into(),
        field: Some("state".into()),
        old: Some(old.into()),
        new: Some(new.into()),
    }
}

/// Cancels a company's job: a queued one at once, a running one by setting the flag its
/// handler watches. Finished jobs are a `Conflict`. Audited.
pub async fn cancel(db: &Db, ctx: &AuditCtx, id: Uuid, now: DateTime<Utc>) -> Result<Job> {
    let mut tx = db.begin().await?;
    let job = lock_job(&mut tx, ctx.company_id, id).await?;
    let (sql, new) = match job.state {
        JobState::Queued => (
            format!(
                "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1, cancel_requested = $2 WHERE id = $3 RETURNING {COLS}"
            ),
            "cancelled",
        ),
        JobState::Running if job.cancel_requested => {
            return Ok(job);
        }
        JobState::Running => {
            (format!("UPDATE jobs SET updated_at = $1, cancel_requested = $2 WHERE id = $3 RETURNING {COLS}"), "cancel_requested")
        }
        other => return Err(StoreError::Conflict(format!("the job has already finished ({})", other.as_str()))),
    };
    let q = Q::new(sql).bind(Value::Timestamp(now)).bind(Value::Bool(true)).bind(Value::Uuid(id));
    let updated = first_job(tx.fetch(&q, TYPES).await?)?.ok_or(StoreError::NotFound)?;
    audit::append(&mut tx, ctx, &[state_change(id, "cancel", job.state.as_str(), new)]).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Sends a failed, dead or cancelled job back to the queue with its attempts reset. Audited.
pub async fn retry(db: &Db, ctx: &AuditCtx, id: Uuid, now: DateTime<Utc>) -> Result<Job> {
    let mut tx = db.begin().await?;
    let job = lock_job(&mut tx, ctx.company_id, id).await?;
    if !job.state.is_retryable() {
        return Err(StoreError::Conflict(format!(
            "only failed, dead or cancelled jobs can be retried; this one is {}",
            job.state.as_str()
        )));
    }
    let q = Q::new(format!(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, updated_at = $1, cancel_requested = $2, locked_until = NULL, \
         finished_at = NULL, result = NULL, progress_done = 0, progress_total = NULL, progress_message = NULL \
         WHERE id = $3 RETURNING {COLS}"
    ))
    .bind(Value::Timestamp(now))
    .bind(Value::Bool(false))
    .bind(Value::Uuid(id));
    let updated = first_job(tx.fetch(&q, TYPES).await?)?.ok_or(StoreError::NotFound)?;
    audit::append(&mut tx, ctx, &[state_change(id, "retry", job.state.as_str(), "queued")]).await?;
    tx.commit().await?;
    Ok(updated)
}

// ---------------------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CleanupReport {
    pub web_sessions: u64,
    pub refresh_tokens: u64,
    pub idempotency_keys: u64,
    pub jobs: u64,
}

/// Deletes web sessions and refresh tokens that expired or were revoked more than
/// [`CLEANUP_AFTER_DAYS`] ago, idempotency keys older than that, and succeeded or cancelled
/// jobs finished more than [`KEEP_FINISHED_JOBS_DAYS`] ago. Safe to run again at any time.
pub async fn cleanup(db: &Db, now: DateTime<Utc>) -> Result<CleanupReport> {
    let cutoff = Value::Timestamp(now - Duration::days(CLEANUP_AFTER_DAYS));
    let old = |sql: &str| Q::new(sql).bind(cutoff.clone());
    Ok(CleanupReport {
        web_sessions: db.execute(&old("DELETE FROM web_sessions WHERE expires_at < $1 OR revoked_at < $1")).await?,
        refresh_tokens: db.execute(&old("DELETE FROM refresh_tokens WHERE expires_at < $1 OR revoked_at < $1")).await?,
        idempotency_keys: db.execute(&old("DELETE FROM idempotency_keys WHERE created_at < $1")).await?,
        jobs: db
            .execute(
                &Q::new("DELETE FROM jobs WHERE state IN ('succeeded', 'cancelled') AND finished_at < $1")
                    .bind(Value::Timestamp(now - Duration::days(KEEP_FINISHED_JOBS_DAYS))),
            )
            .await?,
    })
}

// ---------------------------------------------------------------------------------------
// Schedules
// ---------------------------------------------------------------------------------------

/// Parses a five-field cron expression (minute hour day-of-month month day-of-week; names such
/// as MON and JAN, ranges, lists, steps, and `@daily`-style aliases).
pub fn parse_cron(expr: &str) -> std::result::Result<Cron, String> {
    let expr = expr.trim();
    if expr.is_empty() || expr.len() > 100 {
        return Err("must be a cron expression such as \"0 3 * * *\"".into());
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("is not a valid five-field cron expression (minute hour day month weekday): {e}"))
}

pub fn parse_timezone(tz: &str) -> std::result::Result<chrono_tz::Tz, String> {
    tz.trim().parse::<chrono_tz::Tz>().map_err(|_| "must be an IANA time zone such as Asia/Kolkata or UTC".to_string())
}

/// The first slot of `cron` in `tz` strictly after `after`.
pub fn next_slot(cron: &Cron, tz: chrono_tz::Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false).ok().map(|t| t.with_timezone(&Utc))
}

fn validate_schedule(cron: &str, tz: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let parsed = parse_cron(cron).map_err(|e| StoreError::invalid("cron", &e))?;
    let zone = parse_timezone(tz).map_err(|e| StoreError::invalid("timezone", &e))?;
    next_slot(&parsed, zone, after).ok_or_else(|| StoreError::invalid("cron", "never matches a date"))
}

#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    pub id: Uuid,
    pub company_id: Option<Uuid>,
    pub name: String,
    pub kind: String,
    pub payload: Json,
    pub cron: String,
    pub timezone: String,
    pub next_run_at: DateTime<Utc>,
    pub enabled: bool,
    pub last_run_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
}

const SCOLS: &str =
    "id, company_id, name, kind, payload, cron, timezone, next_run_at, enabled, last_run_at, created_at, updated_at, created_by";
const STYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Json,
    SqlType::Text,
    SqlType::Text,
    SqlType::Timestamp,
    SqlType::Bool,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Uuid,
];

fn to_schedule(r: &Row) -> Result<Schedule> {
    Ok(Schedule {
        id: r.uuid(0).ok_or_else(|| StoreError::Corrupt("schedule without id".into()))?,
        company_id: r.uuid(1),
        name: r.text(2).unwrap_or_default(),
        kind: r.text(3).unwrap_or_default(),
        payload: r.json(4).unwrap_or(Json::Null),
        cron: r.text(5).unwrap_or_default(),
        timezone: r.text(6).unwrap_or_default(),
        next_run_at: r.timestamp(7).unwrap_or_default(),
        enabled: r.bool(8).unwrap_or(false),
        last_run_at: r.timestamp(9),
        created_at: r.timestamp(10).unwrap_or_default(),
        updated_at: r.timestamp(11).unwrap_or_default(),
        created_by: r.uuid(12),
    })
}

#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub company_id: Option<Uuid>,
    pub name: String,
    pub kind: String,
    pub payload: Json,
    pub cron: String,
    pub timezone: String,
    pub enabled: bool,
    pub created_by: Option<Uuid>,
}

impl NewSchedule {
    fn validate(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
        }
        NewJob::new(self.kind.clone(), self.payload.clone()).validate()?;
        validate_schedule(&self.cron, &self.timezone, now)
    }

    fn insert(&self, next: DateTime<Utc>, now: DateTime<Utc>, on_conflict: &str) -> Q {
        Q::new(format!(
            "INSERT INTO job_schedules (id, company_id, name, kind, payload, cron, timezone, next_run_at, enabled, created_at, updated_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11){on_conflict} RETURNING {SCOLS}"
        ))
        .bind(Value::Uuid(new_id()))
        .bind(opt_uuid(self.company_id))
        .bind(Value::Text(self.name.trim().to_string()))
        .bind(Value::Text(self.kind.clone()))
        .bind(Value::Json(self.payload.clone()))
        .bind(Value::Text(self.cron.trim().to_string()))
        .bind(Value::Text(self.timezone.trim().to_string()))
        .bind(Value::Timestamp(next))
        .bind(Value::Bool(self.enabled))
        .bind(Value::Timestamp(now))
        .bind(opt_uuid(self.created_by))
    }
}

fn schedule_audit(id: Uuid, action: &str, field: &str, old: Option<String>, new: Option<String>) -> Change {
    Change { object: "job_schedule".into(), record_id: Some(id), action: action.into(), field: Some(field.into()), old, new }
}

/// Creates a schedule; its first run is the first slot after `now`. Invalid cron expressions
/// and time zones are `Invalid` naming `cron` / `timezone`; a taken name is a `Conflict`.
/// With an audit context the creation is audited (tenant schedules).
pub async fn create_schedule(db: &Db, ctx: Option<&AuditCtx>, s: &NewSchedule, now: DateTime<Utc>) -> Result<Schedule> {
    let next = s.validate(now)?;
    let mut tx = db.begin().await?;
    let created = match tx.fetch(&s.insert(next, now, ""), STYPES).await {
        Ok(rows) => rows.first().map(to_schedule).transpose()?.ok_or(StoreError::NotFound)?,
        Err(e) if e.is_unique_violation() => {
            return Err(StoreError::Conflict(format!("a schedule called \"{}\" already exists", s.name.trim())));
        }
        Err(e) => return Err(e),
    };
    if let Some(ctx) = ctx {
        audit::append(&mut tx, ctx, &[schedule_audit(created.id, "create", "cron", None, Some(created.cron.clone()))]).await?;
    }
    tx.commit().await?;
    Ok(created)
}

/// Creates the schedule unless one with its name exists (system defaults on start; every
/// node may call it). Returns whether it was created.
pub async fn ensure_schedule(db: &Db, s: &NewSchedule, now: DateTime<Utc>) -> Result<bool> {
    let next = s.validate(now)?;
    Ok(!db.fetch(&s.insert(next, now, " ON CONFLICT DO NOTHING"), STYPES).await?.is_empty())
}

pub async fn list_schedules(db: &Db, company_id: Uuid) -> Result<Vec<Schedule>> {
    let q = Q::new(format!("SELECT {SCOLS} FROM job_schedules WHERE company_id = $1 ORDER BY name")).bind(Value::Uuid(company_id));
    db.fetch(&q, STYPES).await?.iter().map(to_schedule).collect()
}

/// A system schedule by name.
pub async fn system_schedule(db: &Db, name: &str) -> Result<Option<Schedule>> {
    let q = Q::new(format!("SELECT {SCOLS} FROM job_schedules WHERE company_id IS NULL AND name = $1")).bind(Value::Text(name.into()));
    db.fetch(&q, STYPES).await?.first().map(to_schedule).transpose()
}

pub async fn get_schedule(db: &Db, company_id: Uuid, id: Uuid) -> Result<Schedule> {
    let q = Q::new(format!("SELECT {SCOLS} FROM job_schedules WHERE company_id = $1 AND id = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    db.fetch(&q, STYPES).await?.first().map(to_schedule).transpose()?.ok_or(StoreError::NotFound)
}

/// Changes to a schedule; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub enabled: Option<bool>,
    pub payload: Option<Json>,
}

/// Updates a company's schedule and recomputes its next run from `now`. Audited.
pub async fn update_schedule(db: &Db, ctx: &AuditCtx, id: Uuid, patch: &SchedulePatch, now: DateTime<Utc>) -> Result<Schedule> {
    let mut tx = db.begin().await?;
    let q = Q::new(format!("SELECT {SCOLS} FROM job_schedules WHERE company_id = $1 AND id = $2{}", tx.for_update()))
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Uuid(id));
    let old = tx.fetch(&q, STYPES).await?.first().map(to_schedule).transpose()?.ok_or(StoreError::NotFound)?;
    let cron = patch.cron.as_deref().map(str::trim).unwrap_or(&old.cron).to_string();
    let timezone = patch.timezone.as_deref().map(str::trim).unwrap_or(&old.timezone).to_string();
    let enabled = patch.enabled.unwrap_or(old.enabled);
    let payload = patch.payload.clone().unwrap_or_else(|| old.payload.clone());
    NewJob::new(old.kind.clone(), payload.clone()).validate()?;
    let next = validate_schedule(&cron, &timezone, now)?;
    let q = Q::new(format!(
        "UPDATE job_schedules SET cron = $1, timezone = $2, enabled = $3, payload = $4, next_run_at = $5, updated_at = $6 \
         WHERE id = $7 RETURNING {SCOLS}"
    ))
    .bind(Value::Text(cron))
    .bind(Value::Text(timezone))
    .bind(Value::Bool(enabled))
    .bind(Value::Json(payload))
    .bind(Value::Timestamp(next))
    .bind(Value::Timestamp(now))
    .bind(Value::Uuid(id));
    let updated = tx.fetch(&q, STYPES).await?.first().map(to_schedule).transpose()?.ok_or(StoreError::NotFound)?;
    let mut changes = Vec::new();
    for (field, before, after) in [
        ("cron", old.cron.clone(), updated.cron.clone()),
        ("timezone", old.timezone.clone(), updated.timezone.clone()),
        ("enabled", old.enabled.to_string(), updated.enabled.to_string()),
        ("payload", old.payload.to_string(), updated.payload.to_string()),
    ] {
        if before != after {
            changes.push(schedule_audit(id, "update", field, Some(before), Some(after)));
        }
    }
    audit::append(&mut tx, ctx, &changes).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Deletes a company's schedule (jobs it already queued stay). Audited.
pub async fn delete_schedule(db: &Db, ctx: &AuditCtx, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    let q = Q::new(format!("DELETE FROM job_schedules WHERE company_id = $1 AND id = $2 RETURNING {SCOLS}"))
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Uuid(id));
    let gone = tx.fetch(&q, STYPES).await?.first().map(to_schedule).transpose()?.ok_or(StoreError::NotFound)?;
    audit::append(&mut tx, ctx, &[schedule_audit(id, "delete", "name", Some(gone.name), None)]).await?;
    tx.commit().await
}

/// The idempotency key of one slot of a schedule: whichever node enqueues it first wins.
pub fn slot_key(schedule_id: Uuid, slot: DateTime<Utc>) -> String {
    format!("schedule:{schedule_id}:{}", format_timestamp(&slot))
}

/// One scheduler pass: for every enabled schedule that is due, enqueues the run of its slot
/// (keyed by schedule id and slot time, so nodes racing on the same slot enqueue it once) and
/// advances `next_run_at` to the first slot after `now`. Slots missed while no node ran are
/// not replayed one by one: the overdue slot runs once. Returns the jobs created.
pub async fn run_due_schedules(db: &Db, now: DateTime<Utc>) -> Result<Vec<Job>> {
    let q = Q::new(format!("SELECT {SCOLS} FROM job_schedules WHERE enabled = $1 AND next_run_at <= $2 ORDER BY next_run_at LIMIT 100"))
        .bind(Value::Bool(true))
        .bind(Value::Timestamp(now));
    let due = db.fetch(&q, STYPES).await?.iter().map(to_schedule).collect::<Result<Vec<_>>>()?;
    let mut created = Vec::new();
    for s in due {
        let slot = s.next_run_at;
        let next = match validate_schedule(&s.cron, &s.timezone, now.max(slot)) {
            Ok(next) => next,
            Err(e) => {
                // Stored before a parser change, say: stop it rather than fail every pass.
                tracing::warn!(schedule = %s.id, name = %s.name, error = ?e, "disabling a schedule whose cron expression no longer parses");
                db.execute(
                    &Q::new("UPDATE job_schedules SET enabled = $1, updated_at = $2 WHERE id = $3")
                        .bind(Value::Bool(false))
                        .bind(Value::Timestamp(now))
                        .bind(Value::Uuid(s.id)),
                )
                .await?;
                continue;
            }
        };
        let mut tx = db.begin().await?;
        let job = NewJob {
            company_id: s.company_id,
            kind: s.kind.clone(),
            payload: s.payload.clone(),
            run_at: Some(slot),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            idempotency_key: Some(slot_key(s.id, slot)),
            schedule_id: Some(s.id),
            created_by: s.created_by,
        };
        let (job, is_new) = enqueue_tx(&mut tx, &job, now).await?;
        // Compare-and-set: a node that read a stale slot leaves the newer one alone.
        tx.execute(
            &Q::new("UPDATE job_schedules SET next_run_at = $1, last_run_at = $2, updated_at = $3 WHERE id = $4 AND next_run_at = $2")
                .bind(Value::Timestamp(next))
                .bind(Value::Timestamp(slot))
                .bind(Value::Timestamp(now))
                .bind(Value::Uuid(s.id)),
        )
        .await?;
        tx.commit().await?;
        if is_new {
            created.push(job);
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 0.0), Duration::seconds(2));
        assert_eq!(backoff(2, 0.0), Duration::seconds(4));
        assert_eq!(backoff(10, 0.0), Duration::seconds(1024));
        assert_eq!(backoff(12, 0.0), Duration::seconds(3600));
        assert_eq!(backoff(500, 0.0), Duration::seconds(3600));
        assert_eq!(backoff(3, 0.999), Duration::seconds(8) + Duration::milliseconds(799));
        assert!(backoff(40, 0.99) <= Duration::seconds(3960));
    }

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("paused"), None);
        assert!(JobState::Dead.is_retryable() && !JobState::Succeeded.is_retryable());
    }

    #[test]
    fn cron_slots_in_a_time_zone() {
        let cron = parse_cron("0 3 * * *").expect("daily");
        let kolkata: chrono_tz::Tz = parse_timezone("Asia/Kolkata").expect("tz");
        let after = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).single().expect("time");
        // 03:00 in Kolkata is 21:30 UTC the day before.
        assert_eq!(next_slot(&cron, kolkata, after), Utc.with_ymd_and_hms(2025, 1, 1, 21, 30, 0).single());
        assert_eq!(next_slot(&cron, chrono_tz::UTC, after), Utc.with_ymd_and_hms(2025, 1, 1, 3, 0, 0).single());
        let every5 = parse_cron("*/5 * * * *").expect("5 min");
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 10, 5, 0).single().expect("time");
        assert_eq!(next_slot(&every5, chrono_tz::UTC, at), Utc.with_ymd_and_hms(2025, 1, 1, 10, 10, 0).single());
        assert!(parse_cron("@daily").is_ok());
        assert!(parse_cron("0 9 * * MON-FRI").is_ok());
        for bad in ["", "every day", "61 * * * *", "* * * *", "0 0 0 * * *", "* * 32 * *"] {
            assert!(parse_cron(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let id = new_id();
        let at = Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).single().expect("time");
        let job = Job {
            id,
            company_id: None,
            kind: "x".into(),
            payload: Json::Null,
            state: JobState::Queued,
            attempts: 0,
            max_attempts: 1,
            run_at: at,
            locked_by: None,
            locked_until: None,
            cancel_requested: false,
            progress_done: 0,
            progress_total: None,
            progress_message: None,
            last_error: None,
            result: None,
            idempotency_key: None,
            schedule_id: None,
            created_at: at,
            updated_at: at,
            started_at: None,
            finished_at: None,
            created_by: None,
        };
        assert_eq!(decode_cursor(&encode_cursor(&job)), Some((at, id)));
        assert_eq!(decode_cursor("nonsense!"), None);
    }
}
