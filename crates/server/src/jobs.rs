//! The background job runtime: workers that claim jobs from the database queue
//! ([`corvid_store::jobs`]) and run their handlers, and the scheduler that turns recurring
//! schedules into jobs. Every process runs both; the database makes sure each job runs once
//! at a time and each schedule slot is enqueued once, however many nodes there are.
//!
//! # Adding a job kind
//!
//! 1. Write a handler: anything implementing [`JobHandler`], most simply an async closure
//!    taking a [`JobContext`] and returning the job's JSON result:
//!
//!    ```ignore
//!    registry.register("imports.csv", |ctx: JobContext| async move {
//!        let company = ctx.company_id().ok_or_else(|| JobError::permanent("imports need a company"))?;
//!        let rows = load_rows(ctx.db(), company, ctx.payload()).await?;
//!        for (i, row) in rows.iter().enumerate() {
//!            ctx.progress(i as i64, Some(rows.len() as i64), "importing").await?; // also checks cancel
//!            import_row(ctx.db(), company, row).await?;
//!        }
//!        Ok(serde_json::json!({"imported": rows.len()}))
//!    });
//!    ```
//!
//! 2. Register it in [`Registry::builtin`] (or on the registry handed to [`spawn_workers`]).
//!    Workers only claim kinds they have a handler for, so nodes of an older version leave new
//!    kinds to the nodes that know them.
//! 3. Enqueue with [`corvid_store::jobs::enqueue`], or `enqueue_tx` inside the transaction of
//!    the change that needs the job, so the job exists exactly when the change commits. For
//!    recurring work create a schedule (`corvid_store::jobs::create_schedule`).
//! 4. If tenants may start it themselves through the API, add it to [`TENANT_KINDS`].
//!
//! # Handlers must be idempotent
//!
//! A job can run more than once: a worker can die after doing the work but before recording
//! success (the lease expires and another worker runs it again), a failed attempt is retried,
//! and an admin can retry a finished job. Write handlers so that running them twice has the
//! effect of running them once: upsert rather than insert, key outbound messages by the job id,
//! skip items already done. Long handlers should call [`JobContext::progress`] (which also
//! extends the lease) or [`JobContext::cancelled`] regularly so they can be cancelled and so
//! that shutdown does not have to wait for them.
//!
//! # Errors
//!
//! Return [`JobError::Retry`] (the default for `?` on store errors) for transient problems:
//! the job is retried with exponential backoff until its attempts run out, then it is `dead`.
//! Return [`JobError::Permanent`] when retrying cannot help (bad payload): the job is `failed`.
//! A panicking handler counts as a transient failure.

use corvid_store::jobs::{self as store, Job, JobState, Lease, NewJob, NewSchedule, Progress};
use corvid_store::{Db, StoreError};
use futures_util::FutureExt;
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Kinds a company's admins may enqueue and schedule through the API.
pub const TENANT_KINDS: &[&str] = &[AUDIT_VERIFY];
pub const AUDIT_VERIFY: &str = "audit.verify";
pub const MAINTENANCE_CLEANUP: &str = "maintenance.cleanup";
/// The system schedule created on start when missing: daily at 03:00 UTC.
pub const CLEANUP_SCHEDULE: &str = "maintenance.cleanup.daily";
pub const CLEANUP_CRON: &str = "0 3 * * *";

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub type JobResult = Result<Json, JobError>;

/// Why a handler stopped without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Transient: retried with backoff while attempts remain, then the job is dead.
    Retry(String),
    /// Retrying cannot help: the job is failed at once.
    Permanent(String),
    /// Cancellation was requested and the handler stopped.
    Cancelled,
    /// The process is shutting down: the job goes back to the queue.
    Interrupted,
    /// Another worker owns the job now (this one stalled past its lease).
    LeaseLost,
}

impl JobError {
    pub fn retry(msg: impl Into<String>) -> Self {
        JobError::Retry(msg.into())
    }
    pub fn permanent(msg: impl Into<String>) -> Self {
        JobError::Permanent(msg.into())
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Retry(m) | JobError::Permanent(m) => f.write_str(m),
            JobError::Cancelled => f.write_str("cancelled"),
            JobError::Interrupted => f.write_str("interrupted by shutdown"),
            JobError::LeaseLost => f.write_str("the lease was lost to another worker"),
        }
    }
}

impl std::error::Error for JobError {}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(errs) => {
                JobError::Permanent(errs.iter().map(|x| format!("{} {}", x.field, x.reason)).collect::<Vec<_>>().join("; "))
            }
            other => JobError::Retry(other.to_string()),
        }
    }
}

/// Runs jobs of one kind. Object-safe: handlers live in the registry as `Arc<dyn JobHandler>`.
/// Async closures `|ctx: JobContext| async move { … }` implement it.
pub trait JobHandler: Send + Sync + 'static {
    fn run(&self, ctx: JobContext) -> BoxFuture<JobResult>;
}

impl<F, Fut> JobHandler for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    fn run(&self, ctx: JobContext) -> BoxFuture<JobResult> {
        Box::pin(self(ctx))
    }
}

/// Job kinds and their handlers.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn JobHandler>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The handlers Corvid ships: `audit.verify` and `maintenance.cleanup`.
    pub fn builtin() -> Registry {
        let mut r = Registry::new();
        r.register(AUDIT_VERIFY, audit_verify);
        r.register(MAINTENANCE_CLEANUP, maintenance_cleanup);
        r.register(crate::api::imports::KIND, crate::api::imports::run_job);
        r.register(crate::api::rules::RESCORE_KIND, crate::api::rules::rescore_job);
        r.register(crate::api::rules::TRAIN_KIND, crate::api::rules::train_job);
        r.register(crate::api::dedupe::SCAN_KIND, crate::api::dedupe::run_scan_job);
        r.register(crate::api::leads::RECYCLE_KIND, crate::api::leads::recycle_job);
        r
    }

    /// Adds (or replaces) the handler of `kind`.
    pub fn register(&mut self, kind: &str, handler: impl JobHandler) -> &mut Registry {
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(kind).cloned()
    }
}

/// What a handler gets: the job, the database, progress reporting and cancellation.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<CtxInner>,
}

struct CtxInner {
    db: Db,
    job: Job,
    lease: Lease,
    lease_for: chrono::Duration,
    cancel: AtomicBool,
    lost: AtomicBool,
    shutdown: watch::Receiver<bool>,
    last_check: Mutex<Instant>,
    last_write: Mutex<Option<Instant>>,
    progress: Mutex<Option<Progress>>,
}

/// Progress is written at most this often (and always when a handler reports it complete).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// [`JobContext::cancelled`] asks the database at most this often.
const CANCEL_CHECK_EVERY: Duration = Duration::from_secs(1);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl JobContext {
    fn new(db: Db, job: Job, lease: Lease, lease_for: chrono::Duration, shutdown: watch::Receiver<bool>) -> JobContext {
        let cancel = AtomicBool::new(job.cancel_requested);
        JobContext {
            inner: Arc::new(CtxInner {
                db,
                job,
                lease,
                lease_for,
                cancel,
                lost: AtomicBool::new(false),
                shutdown,
                last_check: Mutex::new(Instant::now()),
                last_write: Mutex::new(None),
                progress: Mutex::new(None),
            }),
        }
    }

    /// The job as it was claimed (state `running`, `attempts` counting this attempt).
    pub fn job(&self) -> &Job {
        &self.inner.job
    }
    pub fn db(&self) -> &Db {
        &self.inner.db
    }
    pub fn payload(&self) -> &Json {
        &self.inner.job.payload
    }
    pub fn company_id(&self) -> Option<Uuid> {
        self.inner.job.company_id
    }
    /// 1 for the first attempt.
    pub fn attempt(&self) -> i64 {
        self.inner.lease.attempt
    }

    fn status(&self) -> Result<(), JobError> {
        if *self.inner.shutdown.borrow() {
            Err(JobError::Interrupted)
        } else if self.inner.lost.load(Ordering::Relaxed) {
            Err(JobError::LeaseLost)
        } else if self.inner.cancel.load(Ordering::Relaxed) {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Extends the lease, writing `progress` with it; updates the cancel and lost flags.
    async fn beat(&self, progress: Option<&Progress>) {
        let now = corvid_core::value::now_micros();
        match store::heartbeat(&self.inner.db, &self.inner.lease, now + self.inner.lease_for, progress, now).await {
            Ok(Some(cancel)) => self.inner.cancel.store(cancel, Ordering::Relaxed),
            Ok(None) => self.inner.lost.store(true, Ordering::Relaxed),
            Err(e) => tracing::warn!(job = %self.inner.job.id, error = %e, "job heartbeat failed"),
        }
        *lock(&self.inner.last_check) = Instant::now();
    }

    /// `Ok(())` while the job should go on; `Err(JobError::Cancelled)` once cancellation was
    /// requested (or `Interrupted` on shutdown, `LeaseLost` if another worker took over), so
    /// `ctx.cancelled().await?` ends the handler at a safe point. Asks the database at most
    /// once a second.
    pub async fn cancelled(&self) -> Result<(), JobError> {
        self.status()?;
        let due = lock(&self.inner.last_check).elapsed() >= CANCEL_CHECK_EVERY;
        if due {
            self.beat(None).await;
        }
        self.status()
    }

    /// Reports progress (`done` of `total` items) and extends the lease. Writes are throttled
    /// to one every half second; the last report is always kept. Fails like
    /// [`cancelled`](Self::cancelled) when the job should stop.
    pub async fn progress(&self, done: i64, total: Option<i64>, message: &str) -> Result<(), JobError> {
        let p = Progress { done, total, message: (!message.is_empty()).then(|| message.to_string()) };
        *lock(&self.inner.progress) = Some(p.clone());
        let finished = total.is_some_and(|t| done >= t);
        let due = lock(&self.inner.last_write).is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if due || finished {
            *lock(&self.inner.last_write) = Some(Instant::now());
            self.beat(Some(&p)).await;
        }
        self.status()
    }

    fn last_progress(&self) -> Option<Progress> {
        lock(&self.inner.progress).clone()
    }
}

/// How workers behave. `Default` suits production; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Sleep between polls when the queue is empty.
    pub poll: Duration,
    /// How long a claim is valid without a heartbeat. Heartbeats go out every third of it.
    pub lease: Duration,
    /// On shutdown, how long a running handler may take to finish before it is dropped and its
    /// job released.
    pub grace: Duration,
    /// Identity of this process in `locked_by` (host, pid and a random tag by default).
    pub node: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig { poll: Duration::from_secs(1), lease: Duration::from_secs(60), grace: Duration::from_secs(20), node: node_name() }
    }
}

/// `host:pid:tag`; the random tag keeps identities unique across restarts with reused pids.
pub fn node_name() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "node".into());
    format!("{host}:{}:{:04x}", std::process::id(), rand::random::<u16>())
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::seconds(60))
}

/// Starts `n` workers (none when `n` is 0) with the default configuration. They stop when
/// `shutdown` turns true; await the handles to let them finish.
pub fn spawn_workers(db: Db, registry: Registry, n: usize, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    spawn_workers_with(db, registry, n, WorkerConfig::default(), shutdown)
}

pub fn spawn_workers_with(db: Db, registry: Registry, n: usize, cfg: WorkerConfig, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let worker = Worker {
                db: db.clone(),
                registry: registry.clone(),
                kinds: registry.kinds(),
                id: format!("{}/w{i}", cfg.node),
                cfg: cfg.clone(),
                shutdown: shutdown.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect()
}

struct Worker {
    db: Db,
    registry: Registry,
    kinds: Vec<String>,
    id: String,
    cfg: WorkerConfig,
    shutdown: watch::Receiver<bool>,
}

/// Resolves once `rx` says shutdown (at once if it already does, or if the sender is gone).
async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Worker {
    async fn run(mut self) {
        tracing::debug!(worker = %self.id, kinds = ?self.kinds, "job worker started");
        let mut last_reap: Option<Instant> = None;
        while !*self.shutdown.borrow() {
            let now = corvid_core::value::now_micros();
            if last_reap.is_none_or(|t| t.elapsed() >= self.cfg.lease / 2) {
                last_reap = Some(Instant::now());
                if let Err(e) = store::reap(&self.db, now).await {
                    tracing::warn!(error = %e, "could not settle expired jobs");
                }
            }
            let claimed = store::claim(&self.db, &self.id, &self.kinds, chrono_dur(self.cfg.lease), now).await;
            match claimed {
                Ok(Some(job)) => self.execute(job).await,
                Ok(None) => self.idle(self.cfg.poll).await,
                Err(e) => {
                    tracing::warn!(worker = %self.id, error = %e, "could not claim a job");
                    self.idle(self.cfg.poll * 5).await;
                }
            }
        }
        tracing::debug!(worker = %self.id, "job worker stopped");
    }

    async fn idle(&mut self, d: Duration) {
        // A little jitter so that idle workers of many nodes do not poll in step.
        let d = d + Duration::from_millis(rand::random::<u64>() % 200);
        let mut rx = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(d) => {},
            () = wait_shutdown(&mut rx) => {},
        }
    }

    async fn execute(&self, job: Job) {
        let Some(lease) = job.lease() else { return };
        let Some(handler) = self.registry.get(&job.kind) else { return };
        let (id, kind, max_attempts) = (job.id, job.kind.clone(), job.max_attempts);
        tracing::info!(job = %id, kind = %kind, attempt = lease.attempt, "job started");
        let ctx = JobContext::new(self.db.clone(), job, lease.clone(), chrono_dur(self.cfg.lease), self.shutdown.clone());

        // Keep the lease alive while the handler works, whatever the handler does.
        let beat_ctx = ctx.clone();
        let every = (self.cfg.lease / 3).max(Duration::from_millis(50));
        let heart = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                beat_ctx.beat(None).await;
            }
        });

        let run = std::panic::AssertUnwindSafe(handler.run(ctx.clone())).catch_unwind();
        let mut rx = self.shutdown.clone();
        let grace = self.cfg.grace;
        let outcome = tokio::select! {
            r = run => match r {
                Ok(r) => r,
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "the handler panicked".into());
                    Err(JobError::Retry(format!("the handler panicked: {msg}")))
                }
            },
            () = async { wait_shutdown(&mut rx).await; tokio::time::sleep(grace).await } => Err(JobError::Interrupted),
        };
        heart.abort();

        let now = corvid_core::value::now_micros();
        let recorded = match &outcome {
            Ok(result) => {
                store::complete(&self.db, &lease, result, ctx.last_progress().as_ref(), now).await.map(|ok| ok.then_some("succeeded"))
            }
            Err(JobError::Cancelled) => store::mark_cancelled(&self.db, &lease, now).await.map(|ok| ok.then_some("cancelled")),
            Err(JobError::Interrupted) => store::release(&self.db, &lease, now).await.map(|ok| ok.then_some("released")),
            Err(JobError::LeaseLost) => Ok(None),
            Err(JobError::Permanent(msg)) => {
                store::fail(&self.db, &lease, max_attempts, msg, false, now).await.map(|s| s.map(JobState::as_str))
            }
            Err(JobError::Retry(msg)) => store::fail(&self.db, &lease, max_attempts, msg, true, now).await.map(|s| s.map(JobState::as_str)),
        };
        match recorded {
            Ok(Some(state)) => match &outcome {
                Err(e) if state != "succeeded" => tracing::info!(job = %id, kind = %kind, state, error = %e, "job stopped"),
                _ => tracing::info!(job = %id, kind = %kind, state, "job finished"),
            },
            Ok(None) => tracing::warn!(job = %id, kind = %kind, "job outcome dropped: another worker holds the job now"),
            Err(e) => tracing::error!(job = %id, kind = %kind, error = %e, "could not record the job outcome; it will run again"),
        }
    }
}

/// Starts the scheduler: creates the default system schedules if missing, then every `every`
/// enqueues the runs of due schedules. Safe on every node at once.
pub fn spawn_scheduler(db: Db, every: Duration, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut defaults_done = false;
        while !*shutdown.borrow() {
            let now = corvid_core::value::now_micros();
            if !defaults_done {
                match install_defaults(&db, now).await {
                    Ok(()) => defaults_done = true,
                    Err(e) => tracing::warn!(error = %e, "could not create the default job schedules"),
                }
            }
            match store::run_due_schedules(&db, now).await {
                Ok(jobs) => {
                    for j in jobs {
                        tracing::info!(job = %j.id, kind = %j.kind, schedule = ?j.schedule_id, "scheduled job queued");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "scheduler pass failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {},
                () = wait_shutdown(&mut shutdown) => {},
            }
        }
    })
}

/// The system schedules every installation has: `maintenance.cleanup` daily at 03:00 UTC and
/// `leads.recycle` daily at 00:15 UTC.
pub async fn install_defaults(db: &Db, now: chrono::DateTime<chrono::Utc>) -> Result<(), StoreError> {
    let s = NewSchedule {
        company_id: None,
        name: CLEANUP_SCHEDULE.into(),
        kind: MAINTENANCE_CLEANUP.into(),
        payload: json!({}),
        cron: CLEANUP_CRON.into(),
        timezone: "UTC".into(),
        enabled: true,
        created_by: None,
    };
    if store::ensure_schedule(db, &s, now).await? {
        tracing::info!(name = CLEANUP_SCHEDULE, cron = CLEANUP_CRON, "created the default cleanup schedule");
    }
    // Lead scoring: daily rescore (inactivity decay) and weekly predictive retraining.
    crate::api::rules::install_schedules(db, now).await?;
    // Recycled leads go back to nurturing on their date (each company's own date).
    use crate::api::leads::{RECYCLE_CRON, RECYCLE_KIND, RECYCLE_SCHEDULE};
    let recycle = NewSchedule { name: RECYCLE_SCHEDULE.into(), kind: RECYCLE_KIND.into(), cron: RECYCLE_CRON.into(), ..s };
    if store::ensure_schedule(db, &recycle, now).await? {
        tracing::info!(name = RECYCLE_SCHEDULE, cron = RECYCLE_CRON, "created the daily lead recycling schedule");
    }
    Ok(())
}

/// Workers and scheduler of one process, stopped together.
pub struct Runtime {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// Starts `workers` workers (0 for none) and the scheduler (always: it only enqueues).
    pub fn start(db: Db, registry: Registry, workers: usize) -> Runtime {
        let (stop, rx) = watch::channel(false);
        let mut handles = spawn_workers(db.clone(), registry, workers, rx.clone());
        handles.push(spawn_scheduler(db, Duration::from_secs(15), rx));
        Runtime { stop, handles }
    }

    /// Signals shutdown and waits for workers to finish or release their jobs.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            if let Err(e) = h.await {
                tracing::warn!(error = %e, "a job task ended abnormally");
            }
        }
    }
}

/// Enqueues a job of a kind tenants may start (see [`TENANT_KINDS`]); an unknown kind is a
/// validation error naming `kind`.
pub fn tenant_job(kind: &str, payload: Json) -> Result<NewJob, StoreError> {
    if !TENANT_KINDS.contains(&kind) {
        return Err(StoreError::invalid("kind", &format!("must be one of: {}", TENANT_KINDS.join(", "))));
    }
    Ok(NewJob::new(kind, payload))
}

async fn audit_verify(ctx: JobContext) -> JobResult {
    let company = ctx.company_id().ok_or_else(|| JobError::permanent("audit.verify needs a company"))?;
    ctx.progress(0, Some(1), "verifying the audit chain").await?;
    let report = corvid_store::audit::verify(ctx.db(), company).await?;
    ctx.progress(1, Some(1), if report.ok { "the audit chain is intact" } else { "the audit chain is broken" }).await?;
    serde_json::to_value(report).map_err(|e| JobError::permanent(e.to_string()))
}

async fn maintenance_cleanup(ctx: JobContext) -> JobResult {
    let report = store::cleanup(ctx.db(), corvid_core::value::now_micros()).await?;
    serde_json::to_value(report).map_err(|e| JobError::permanent(e.to_string()))
}
