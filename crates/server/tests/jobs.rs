//! Background jobs on SQLite (and PostgreSQL when CORVID_TEST_POSTGRES_URL is set): claiming is
//! exclusive even across processes, failures back off and end dead, expired leases are
//! reclaimed, cancellation reaches queued and running jobs, idempotency keys and schedule slots
//! dedupe, and the API and admin page are tenant-scoped and for Admins only. Time is injected
//! into the store functions instead of slept through.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use corvid_server::jobs::{self as rt, BoxFuture, JobContext, JobError, JobHandler, JobResult, Registry, WorkerConfig};
use corvid_store::jobs::{self, Job, JobState, NewJob, NewSchedule};
use corvid_store::{Db, Q};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use uuid::Uuid;

const LEASE: i64 = 30;

fn lease() -> Duration {
    Duration::seconds(LEASE)
}

fn kinds(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

fn cid(s: &Session) -> Uuid {
    Uuid::parse_str(&s.company_id).expect("company id")
}

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, h, m, s).single().expect("time")
}

/// A second connection pool on the same database: another "process" for concurrency tests.
async fn second_pool(app: &TestApp) -> Db {
    match app.backend {
        "sqlite" => {
            let rows = app
                .db
                .fetch(
                    &Q::new("SELECT seq, name, file FROM pragma_database_list WHERE name = 'main'"),
                    &[SqlType::Int, SqlType::Text, SqlType::Text],
                )
                .await
                .expect("database list");
            let file = rows.first().and_then(|r| r.text(2)).expect("database file");
            Db::connect(&format!("sqlite://{file}")).await.expect("second sqlite pool")
        }
        _ => {
            let schema = app
                .db
                .fetch_one(&Q::new("SELECT current_schema()"), &[SqlType::Text])
                .await
                .expect("schema")
                .and_then(|r| r.text(0))
                .expect("schema");
            let url = std::env::var("CORVID_TEST_POSTGRES_URL").expect("postgres url");
            let opts = sqlx::postgres::PgConnectOptions::from_str(&url).expect("url").options([("search_path", schema.as_str())]);
            Db::connect_postgres(opts, 5).await.expect("second postgres pool")
        }
    }
}

async fn job(db: &Db, id: Uuid) -> Job {
    jobs::get_any(db, id).await.expect("job")
}

/// Waits (up to a minute, polling) until the job satisfies `pred`. A deadline, not a timing
/// assertion: it only fails when the job never gets there.
async fn wait_for(db: &Db, id: Uuid, what: &str, pred: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..1200 {
        let j = job(db, id).await;
        if pred(&j) {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} never became {what}: {:?}", job(db, id).await);
}

fn test_config(node: &str) -> WorkerConfig {
    WorkerConfig {
        poll: std::time::Duration::from_millis(20),
        lease: std::time::Duration::from_secs(5),
        grace: std::time::Duration::from_secs(2),
        node: node.into(),
    }
}

/// Counts runs per job id.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<HashMap<Uuid, usize>>>);

impl JobHandler for Counter {
    fn run(&self, ctx: JobContext) -> BoxFuture<JobResult> {
        let runs = self.0.clone();
        Box::pin(async move {
            {
                let mut m = runs.lock().expect("lock");
                *m.entry(ctx.job().id).or_default() += 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            Ok(json!({"ran": ctx.job().id}))
        })
    }
}

async fn wait_for_cancel(ctx: JobContext) -> JobResult {
    ctx.progress(0, Some(10), "waiting to be cancelled").await?;
    loop {
        ctx.cancelled().await?;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn always_fails(_ctx: JobContext) -> JobResult {
    Err(JobError::retry("the remote end said no"))
}

async fn bad_payload(_ctx: JobContext) -> JobResult {
    Err(JobError::permanent("the payload names no file"))
}

async fn panics(_ctx: JobContext) -> JobResult {
    panic!("handler bug")
}

type Browser = WebSession;

async fn sign_in(app: &TestApp, email: &str) -> Browser {
    app.web_sign_in(email).await
}

async fn page(app: &TestApp, b: &Browser, path: &str) -> Resp {
    app.web_get(b, path, &[]).await
}

async fn post_form(app: &TestApp, b: &Browser, path: &str, fields: &[(&str, &str)], csrf: bool) -> Resp {
    app.web_post(b, path, fields, csrf).await
}

/// Pages must not carry inline script or style (the CSP would block them).
fn csp_clean(html: &str) {
    assert!(!html.contains(" style="), "no style attributes");
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').expect("tag end")];
        assert!(tag.contains(" src="), "no inline script: {tag}");
    }
}

#[tokio::test]
async fn enqueue_claim_complete() {
    for app in TestApp::all().await {
        let db = &app.db;
        let t0 = now_micros();
        let (queued, created) = jobs::enqueue(db, &NewJob::new("test.work", json!({"n": 1})), t0).await.expect("enqueue");
        assert!(created);
        assert_eq!((queued.state, queued.attempts, queued.company_id), (JobState::Queued, 0, None), "{}", app.backend);
        // Only workers that know the kind claim it.
        assert!(jobs::claim(db, "w1", &kinds(&["other.kind"]), lease(), t0).await.expect("claim").is_none());
        // Not before run_at.
        let later = NewJob::new("test.work", json!({})).run_at(t0 + Duration::hours(1));
        let (future, _) = jobs::enqueue(db, &later, t0).await.expect("enqueue");

        let claimed = jobs::claim(db, "w1", &kinds(&["test.work"]), lease(), t0).await.expect("claim").expect("a job");
        assert_eq!(claimed.id, queued.id);
        assert_eq!(claimed.state, JobState::Running);
        assert_eq!(claimed.attempts, 1);
        assert_eq!(claimed.locked_by.as_deref(), Some("w1"));
        assert_eq!(claimed.locked_until, Some(t0 + lease()));
        assert!(jobs::claim(db, "w2", &kinds(&["test.work"]), lease(), t0).await.expect("claim").is_none(), "{}", app.backend);

        let l = claimed.lease().expect("lease");
        let p = jobs::Progress { done: 5, total: Some(10), message: Some("half way".into()) };
        assert_eq!(jobs::heartbeat(db, &l, t0 + Duration::seconds(60), Some(&p), t0).await.expect("beat"), Some(false));
        let mid = job(db, queued.id).await;
        assert_eq!((mid.progress_done, mid.progress_total, mid.progress_message.as_deref()), (5, Some(10), Some("half way")));
        assert!(jobs::complete(db, &l, &json!({"sum": 3}), None, t0).await.expect("complete"));
        let done = job(db, queued.id).await;
        assert_eq!(done.state, JobState::Succeeded);
        assert_eq!(done.result, Some(json!({"sum": 3})));
        assert_eq!(done.finished_at, Some(t0));
        assert_eq!(done.locked_until, None);
        // Completing twice changes nothing.
        assert!(!jobs::complete(db, &l, &json!({"sum": 4}), None, t0).await.expect("complete"));

        let at_run = jobs::claim(db, "w1", &kinds(&["test.work"]), lease(), t0 + Duration::hours(1)).await.expect("claim").expect("job");
        assert_eq!(at_run.id, future.id);

        // Through the runtime: a registered handler runs and its result is kept.
        let counter = Counter::default();
        let mut reg = Registry::new();
        reg.register("test.count", counter.clone());
        let (stop, rx) = watch::channel(false);
        let handles = rt::spawn_workers_with(db.clone(), reg, 2, test_config("enqueue"), rx);
        let (j, _) = jobs::enqueue(db, &NewJob::new("test.count", json!({})), now_micros()).await.expect("enqueue");
        let finished = wait_for(db, j.id, "succeeded", |j| j.state == JobState::Succeeded).await;
        assert_eq!(finished.result, Some(json!({"ran": j.id})));
        let _ = stop.send(true);
        for h in handles {
            h.await.expect("worker");
        }
        assert_eq!(counter.0.lock().expect("lock").get(&j.id), Some(&1));
    }
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_job() {
    for app in TestApp::all().await {
        let other = second_pool(&app).await;
        let t0 = now_micros();
        let mut ids = HashSet::new();
        for i in 0..20 {
            let (j, _) = jobs::enqueue(&app.db, &NewJob::new("test.race", json!({"i": i})), t0).await.expect("enqueue");
            ids.insert(j.id);
        }
        let mut tasks = Vec::new();
        for n in 0..8 {
            let db = if n % 2 == 0 { app.db.clone() } else { other.clone() };
            tasks.push(tokio::spawn(async move {
                let worker = format!("claimer-{n}");
                let mut got = Vec::new();
                while let Some(j) = jobs::claim(&db, &worker, &kinds(&["test.race"]), lease(), t0).await.expect("claim") {
                    let l = j.lease().expect("lease");
                    assert!(jobs::complete(&db, &l, &json!({"by": worker}), None, t0).await.expect("complete"));
                    got.push(j.id);
                    tokio::task::yield_now().await;
                }
                got
            }));
        }
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        for task in tasks {
            for id in task.await.expect("task") {
                *seen.entry(id).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), 20, "{}: every job claimed", app.backend);
        assert!(seen.values().all(|n| *n == 1), "{}: a job was claimed twice: {seen:?}", app.backend);
        assert_eq!(seen.keys().copied().collect::<HashSet<_>>(), ids);
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND attempts = 1").await, 20);
        other.close().await;
    }
}

#[tokio::test]
async fn workers_of_two_processes_run_each_job_once() {
    for app in TestApp::all().await {
        let other = second_pool(&app).await;
        let counter = Counter::default();
        let mut reg = Registry::new();
        reg.register("test.count", counter.clone());
        let (stop, rx) = watch::channel(false);
        let mut handles = rt::spawn_workers_with(app.db.clone(), reg.clone(), 4, test_config("node-a"), rx.clone());
        handles.extend(rt::spawn_workers_with(other.clone(), reg, 4, test_config("node-b"), rx));
        let mut ids = Vec::new();
        for i in 0..20 {
            let (j, _) = jobs::enqueue(&app.db, &NewJob::new("test.count", json!({"i": i})), now_micros()).await.expect("enqueue");
            ids.push(j.id);
        }
        for id in &ids {
            wait_for(&app.db, *id, "succeeded", |j| j.state == JobState::Succeeded).await;
        }
        let _ = stop.send(true);
        for h in handles {
            h.await.expect("worker");
        }
        let runs = counter.0.lock().expect("lock").clone();
        assert_eq!(runs.len(), 20, "{}", app.backend);
        assert!(runs.values().all(|n| *n == 1), "{}: {runs:?}", app.backend);
        other.close().await;
    }
}

#[tokio::test]
async fn failures_back_off_then_go_dead() {
    for app in TestApp::all().await {
        let s = app.register(&format!("backoff-{}@example.com", app.backend), "Backoff Ltd").await;
        let db = &app.db;
        let k = kinds(&["test.flaky"]);
        let t0 = t(10, 0, 0);
        let (j, _) = jobs::enqueue(db, &NewJob::new("test.flaky", json!({})).company(cid(&s)).max_attempts(3), t0).await.expect("enqueue");

        let mut now = t0;
        for attempt in 1..=2i64 {
            let c = jobs::claim(db, "w", &k, lease(), now).await.expect("claim").expect("due");
            assert_eq!(c.attempts, attempt);
            let state = jobs::fail(db, &c.lease().expect("lease"), c.max_attempts, "timeout", true, now).await.expect("fail");
            assert_eq!(state, Some(JobState::Queued));
            let after = job(db, j.id).await;
            let wait = Duration::seconds(1 << attempt);
            assert!(
                after.run_at >= now + wait && after.run_at <= now + wait + wait / 10,
                "{}: backoff {:?}",
                app.backend,
                after.run_at - now
            );
            assert_eq!(after.last_error.as_deref(), Some("timeout"));
            assert_eq!(after.finished_at, None);
            // Not claimable before the backoff is over.
            assert!(jobs::claim(db, "w", &k, lease(), now + wait - Duration::milliseconds(1)).await.expect("claim").is_none());
            now = after.run_at;
        }
        let last = jobs::claim(db, "w", &k, lease(), now).await.expect("claim").expect("third attempt");
        assert_eq!(last.attempts, 3);
        assert_eq!(
            jobs::fail(db, &last.lease().expect("lease"), 3, "still timing out", true, now).await.expect("fail"),
            Some(JobState::Dead)
        );
        let dead = job(db, j.id).await;
        assert_eq!((dead.state, dead.attempts, dead.finished_at), (JobState::Dead, 3, Some(now)));
        assert!(jobs::claim(db, "w", &k, lease(), now + Duration::days(1)).await.expect("claim").is_none());

        // A permanent error fails at once.
        let (p, _) = jobs::enqueue(db, &NewJob::new("test.flaky", json!({})), now).await.expect("enqueue");
        let c = jobs::claim(db, "w", &k, lease(), now).await.expect("claim").expect("job");
        assert_eq!(c.id, p.id);
        assert_eq!(jobs::fail(db, &c.lease().expect("lease"), 5, "bad payload", false, now).await.expect("fail"), Some(JobState::Failed));

        // Retry from the API: back in the queue with attempts reset.
        let r = app.post(&s, &s.path(&format!("jobs/{}/retry", j.id)), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!((r.body["state"].as_str(), r.body["attempts"].as_i64()), (Some("queued"), Some(0)));
        assert_eq!(r.body["last_error"], "still timing out");

        // The runtime does the same with real handlers: retries end dead, permanent errors
        // fail, panics count as failures.
        let mut reg = Registry::new();
        reg.register("test.fails", always_fails).register("test.bad", bad_payload).register("test.panics", panics);
        let (stop, rx) = watch::channel(false);
        let handles = rt::spawn_workers_with(db.clone(), reg, 2, test_config("fail"), rx);
        let n = now_micros();
        let (a, _) = jobs::enqueue(db, &NewJob::new("test.fails", json!({})).max_attempts(1), n).await.expect("enqueue");
        let (b, _) = jobs::enqueue(db, &NewJob::new("test.bad", json!({})), n).await.expect("enqueue");
        let (c, _) = jobs::enqueue(db, &NewJob::new("test.panics", json!({})).max_attempts(1), n).await.expect("enqueue");
        let a = wait_for(db, a.id, "dead", |j| j.state == JobState::Dead).await;
        assert_eq!(a.last_error.as_deref(), Some("the remote end said no"));
        let b = wait_for(db, b.id, "failed", |j| j.state == JobState::Failed).await;
        assert_eq!((b.attempts, b.last_error.as_deref()), (1, Some("the payload names no file")));
        let c = wait_for(db, c.id, "dead", |j| j.state == JobState::Dead).await;
        assert!(c.last_error.as_deref().is_some_and(|e| e.contains("handler bug")), "{c:?}");
        let _ = stop.send(true);
        for h in handles {
            h.await.expect("worker");
        }
    }
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again() {
    for app in TestApp::all().await {
        let db = &app.db;
        let k = kinds(&["test.crash"]);
        let t0 = t(9, 0, 0);
        let (j, _) = jobs::enqueue(db, &NewJob::new("test.crash", json!({})), t0).await.expect("enqueue");
        let a = jobs::claim(db, "node-a/w0", &k, lease(), t0).await.expect("claim").expect("job");
        // The lease holds: nobody else gets it.
        assert!(jobs::claim(db, "node-b/w0", &k, lease(), t0 + Duration::seconds(1)).await.expect("claim").is_none());
        // node-a dies without heartbeats; its lease runs out.
        app.db
            .execute(
                &Q::new("UPDATE jobs SET locked_until = $1 WHERE id = $2")
                    .bind(Value::Timestamp(t0 - Duration::seconds(1)))
                    .bind(Value::Uuid(j.id)),
            )
            .await
            .expect("expire");
        let b = jobs::claim(db, "node-b/w0", &k, lease(), t0 + Duration::seconds(1)).await.expect("claim").expect("reclaimed");
        assert_eq!(b.id, j.id);
        assert_eq!((b.attempts, b.locked_by.as_deref()), (2, Some("node-b/w0")));
        // The stale worker's writes are fenced off.
        let stale = a.lease().expect("lease");
        assert_eq!(jobs::heartbeat(db, &stale, t0 + lease(), None, t0).await.expect("beat"), None);
        assert!(!jobs::complete(db, &stale, &json!({"from": "a"}), None, t0).await.expect("complete"));
        assert_eq!(jobs::fail(db, &stale, 5, "late", true, t0).await.expect("fail"), None);
        assert!(jobs::complete(db, &b.lease().expect("lease"), &json!({"from": "b"}), None, t0).await.expect("complete"));
        assert_eq!(job(db, j.id).await.result, Some(json!({"from": "b"})));

        // A job that used its last attempt when its worker died is not run again: it is dead.
        let (d, _) = jobs::enqueue(db, &NewJob::new("test.crash", json!({})).max_attempts(1), t0).await.expect("enqueue");
        jobs::claim(db, "node-a/w0", &k, lease(), t0).await.expect("claim").expect("job");
        let later = t0 + lease() + Duration::seconds(1);
        assert!(jobs::claim(db, "node-b/w0", &k, lease(), later).await.expect("claim").is_none());
        assert_eq!(jobs::reap(db, later).await.expect("reap"), 1);
        let d = job(db, d.id).await;
        assert_eq!(d.state, JobState::Dead);
        assert!(d.last_error.as_deref().is_some_and(|e| e.contains("lease")), "{d:?}");

        // Shutdown hands a job back without spending the attempt.
        let (r, _) = jobs::enqueue(db, &NewJob::new("test.crash", json!({})), later).await.expect("enqueue");
        let c = jobs::claim(db, "node-a/w0", &k, lease(), later).await.expect("claim").expect("job");
        assert_eq!(c.id, r.id);
        assert!(jobs::release(db, &c.lease().expect("lease"), later).await.expect("release"));
        let r = job(db, r.id).await;
        assert_eq!((r.state, r.attempts), (JobState::Queued, 0));
    }
}

#[tokio::test]
async fn cancel_queued_and_running_jobs() {
    for app in TestApp::all().await {
        let s = app.register(&format!("cancel-{}@example.com", app.backend), "Cancel Ltd").await;
        let db = &app.db;
        let company = cid(&s);

        // Queued: cancelled at once.
        let r = app.post(&s, &s.path("jobs"), json!({"kind": "audit.verify", "run_at": "2099-01-01T00:00:00Z"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["id"].as_str().expect("id").to_string();
        let c = app.post(&s, &s.path(&format!("jobs/{id}/cancel")), json!({})).await;
        assert_eq!(c.status, StatusCode::OK, "{c:?}");
        assert_eq!(c.body["state"], "cancelled");
        assert!(c.body["finished_at"].is_string());
        let again = app.post(&s, &s.path(&format!("jobs/{id}/cancel")), json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{again:?}");
        assert!(is_problem(&again));

        // Running (store level): the flag is set and the handler's heartbeat sees it.
        let t0 = now_micros();
        let (j, _) = jobs::enqueue(db, &NewJob::new("test.slow", json!({})).company(company), t0).await.expect("enqueue");
        let claimed = jobs::claim(db, "w", &kinds(&["test.slow"]), lease(), t0).await.expect("claim").expect("job");
        let c = app.post(&s, &s.path(&format!("jobs/{}/cancel", j.id)), json!({})).await;
        assert_eq!(c.status, StatusCode::OK, "{c:?}");
        assert_eq!((c.body["state"].as_str(), c.body["cancel_requested"].as_bool()), (Some("running"), Some(true)));
        let l = claimed.lease().expect("lease");
        assert_eq!(jobs::heartbeat(db, &l, t0 + lease(), None, t0).await.expect("beat"), Some(true));
        assert!(jobs::mark_cancelled(db, &l, t0).await.expect("cancelled"));
        assert_eq!(job(db, j.id).await.state, JobState::Cancelled);

        // A running job whose worker died with a pending cancel ends cancelled, not re-run.
        let (d, _) = jobs::enqueue(db, &NewJob::new("test.slow", json!({})).company(company), t0).await.expect("enqueue");
        jobs::claim(db, "w", &kinds(&["test.slow"]), lease(), t0).await.expect("claim").expect("job");
        assert_eq!(app.post(&s, &s.path(&format!("jobs/{}/cancel", d.id)), json!({})).await.status, StatusCode::OK);
        let later = t0 + lease() + Duration::seconds(1);
        assert!(jobs::claim(db, "w2", &kinds(&["test.slow"]), lease(), later).await.expect("claim").is_none());
        jobs::reap(db, later).await.expect("reap");
        assert_eq!(job(db, d.id).await.state, JobState::Cancelled);

        // Running (runtime): the handler's `ctx.cancelled().await?` ends it as cancelled.
        let mut reg = Registry::new();
        reg.register("test.wait", wait_for_cancel);
        let (stop, rx) = watch::channel(false);
        let handles = rt::spawn_workers_with(db.clone(), reg, 1, test_config("cancel"), rx);
        let (w, _) = jobs::enqueue(db, &NewJob::new("test.wait", json!({})).company(company), now_micros()).await.expect("enqueue");
        let running = wait_for(db, w.id, "running with progress", |j| j.state == JobState::Running && j.progress_total == Some(10)).await;
        assert_eq!(running.progress_message.as_deref(), Some("waiting to be cancelled"));
        let c = app.post(&s, &s.path(&format!("jobs/{}/cancel", w.id)), json!({})).await;
        assert_eq!(c.status, StatusCode::OK, "{c:?}");
        let done = wait_for(db, w.id, "cancelled", |j| j.state == JobState::Cancelled).await;
        assert!(done.finished_at.is_some());
        let _ = stop.send(true);
        for h in handles {
            h.await.expect("worker");
        }
        // Cancels are audited.
        assert!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'job' AND action = 'cancel'").await >= 4);
    }
}

#[tokio::test]
async fn idempotency_keys_dedupe() {
    for app in TestApp::all().await {
        let a = app.register(&format!("idem-a-{}@example.com", app.backend), "Idem A").await;
        let b = app.register(&format!("idem-b-{}@example.com", app.backend), "Idem B").await;
        let db = &app.db;
        let t0 = now_micros();
        let job = |company: Option<Uuid>, kind: &str| {
            let j = NewJob::new(kind, json!({"x": 1})).idempotency_key("nightly-2030-01-01");
            match company {
                Some(c) => j.company(c),
                None => j,
            }
        };
        let (first, created) = jobs::enqueue(db, &job(Some(cid(&a)), "test.k"), t0).await.expect("enqueue");
        assert!(created);
        let (again, created) = jobs::enqueue(db, &job(Some(cid(&a)), "test.k"), t0).await.expect("enqueue");
        assert!(!created);
        assert_eq!(again.id, first.id);
        // Same key, other kind or other company: separate jobs.
        assert!(jobs::enqueue(db, &job(Some(cid(&a)), "test.other"), t0).await.expect("enqueue").1);
        assert!(jobs::enqueue(db, &job(Some(cid(&b)), "test.k"), t0).await.expect("enqueue").1);
        // System jobs dedupe too (no company).
        let (sys, created) = jobs::enqueue(db, &job(None, "test.k"), t0).await.expect("enqueue");
        assert!(created);
        let (sys2, created) = jobs::enqueue(db, &job(None, "test.k"), t0).await.expect("enqueue");
        assert_eq!((sys2.id, created), (sys.id, false));

        // Racing enqueues of one key create one job.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let db = db.clone();
            let j = NewJob::new("test.race", json!({})).company(cid(&a)).idempotency_key("race");
            tasks.push(tokio::spawn(async move { jobs::enqueue(&db, &j, t0).await.expect("enqueue") }));
        }
        let mut ids = HashSet::new();
        let mut creations = 0;
        for task in tasks {
            let (j, created) = task.await.expect("task");
            ids.insert(j.id);
            creations += usize::from(created);
        }
        assert_eq!((ids.len(), creations), (1, 1), "{}", app.backend);
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs WHERE idempotency_key = 'race'").await, 1);

        // Through the API: the Idempotency-Key header (201 first, then 200 with the same job).
        let h = [("idempotency-key", "verify-once")];
        let r1 = app.call(Method::POST, &a.path("jobs"), Some(&a.token), Some(json!({"kind": "audit.verify"})), &h).await;
        assert_eq!(r1.status, StatusCode::CREATED, "{r1:?}");
        let r2 = app.call(Method::POST, &a.path("jobs"), Some(&a.token), Some(json!({"kind": "audit.verify"})), &h).await;
        assert_eq!(r2.status, StatusCode::OK, "{r2:?}");
        assert_eq!(r1.body["id"], r2.body["id"]);
        assert_eq!(r2.body["idempotency_key"], "verify-once");
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'job' AND action = 'create'").await, 1);
    }
}

#[tokio::test]
async fn schedules_enqueue_each_slot_once() {
    for app in TestApp::all().await {
        let s = app.register(&format!("sched-{}@example.com", app.backend), "Sched Ltd").await;
        let other = second_pool(&app).await;
        let db = &app.db;
        let new = NewSchedule {
            company_id: Some(cid(&s)),
            name: "every five".into(),
            kind: "test.tick".into(),
            payload: json!({"report": "pipeline"}),
            cron: "*/5 * * * *".into(),
            timezone: "UTC".into(),
            enabled: true,
            created_by: None,
        };
        let sched = jobs::create_schedule(db, None, &new, t(10, 2, 0)).await.expect("schedule");
        assert_eq!(sched.next_run_at, t(10, 5, 0));
        assert!(jobs::run_due_schedules(db, t(10, 4, 59)).await.expect("tick").is_empty());

        // Several nodes tick at once for the same slot: one job.
        let mut ticks = Vec::new();
        for n in 0..6 {
            let db = if n % 2 == 0 { app.db.clone() } else { other.clone() };
            ticks.push(tokio::spawn(async move { jobs::run_due_schedules(&db, t(10, 5, 30)).await.expect("tick") }));
        }
        let mut created = Vec::new();
        for tick in ticks {
            created.extend(tick.await.expect("tick task"));
        }
        assert_eq!(created.len(), 1, "{}: {created:?}", app.backend);
        let run = &created[0];
        assert_eq!((run.kind.as_str(), run.company_id, run.schedule_id), ("test.tick", Some(cid(&s)), Some(sched.id)));
        assert_eq!(run.run_at, t(10, 5, 0));
        assert_eq!(run.payload, json!({"report": "pipeline"}));
        assert_eq!(run.idempotency_key.as_deref(), Some(jobs::slot_key(sched.id, t(10, 5, 0)).as_str()));
        let after = jobs::get_schedule(db, cid(&s), sched.id).await.expect("schedule");
        assert_eq!((after.next_run_at, after.last_run_at), (t(10, 10, 0), Some(t(10, 5, 0))));

        // A node that read the schedule before another advanced it enqueues nothing new.
        db.execute(
            &Q::new("UPDATE job_schedules SET next_run_at = $1 WHERE id = $2")
                .bind(Value::Timestamp(t(10, 5, 0)))
                .bind(Value::Uuid(sched.id)),
        )
        .await
        .expect("rewind");
        assert!(jobs::run_due_schedules(db, t(10, 5, 40)).await.expect("tick").is_empty());
        assert_eq!(jobs::get_schedule(db, cid(&s), sched.id).await.expect("schedule").next_run_at, t(10, 10, 0));

        // Missed slots (no node running) collapse into one run, then the schedule moves on.
        let late = jobs::run_due_schedules(db, t(10, 21, 0)).await.expect("tick");
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].run_at, t(10, 10, 0));
        assert_eq!(jobs::get_schedule(db, cid(&s), sched.id).await.expect("schedule").next_run_at, t(10, 25, 0));
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'test.tick'").await, 2);

        // Disabled schedules do not run.
        let off = NewSchedule { name: "off".into(), enabled: false, ..new.clone() };
        jobs::create_schedule(db, None, &off, t(10, 2, 0)).await.expect("schedule");
        assert_eq!(jobs::run_due_schedules(db, t(10, 25, 0)).await.expect("tick").len(), 1);

        // Time zones: 03:00 in Kolkata is 21:30 UTC.
        let kol = NewSchedule { name: "kolkata".into(), cron: "0 3 * * *".into(), timezone: "Asia/Kolkata".into(), ..new.clone() };
        assert_eq!(jobs::create_schedule(db, None, &kol, t(10, 0, 0)).await.expect("schedule").next_run_at, t(21, 30, 0));

        // The default system schedules are created once, however many nodes start.
        rt::install_defaults(db, t(10, 0, 0)).await.expect("defaults");
        let system = app.count("SELECT COUNT(*) FROM job_schedules WHERE company_id IS NULL").await;
        assert!(system >= 1);
        rt::install_defaults(&other, t(10, 0, 0)).await.expect("defaults again");
        assert_eq!(app.count("SELECT COUNT(*) FROM job_schedules WHERE company_id IS NULL").await, system);
        let cleanup = jobs::system_schedule(db, rt::CLEANUP_SCHEDULE).await.expect("read").expect("cleanup schedule");
        assert_eq!(
            (cleanup.kind.as_str(), cleanup.cron.as_str(), cleanup.next_run_at),
            (rt::MAINTENANCE_CLEANUP, "0 3 * * *", Utc.with_ymd_and_hms(2030, 1, 2, 3, 0, 0).single().expect("t"))
        );
        other.close().await;
    }
}

#[tokio::test]
async fn schedule_api_validates_cron() {
    for app in TestApp::all().await {
        let s = app.register(&format!("cron-{}@example.com", app.backend), "Cron Ltd").await;
        let intruder = app.register(&format!("cron-x-{}@example.com", app.backend), "Other Co").await;
        let path = s.path("job-schedules");
        for bad in ["every day", "61 * * * *", "* * * *", "0 0 0 * * *"] {
            let r = app.post(&s, &path, json!({"name": "nightly", "kind": "audit.verify", "cron": bad})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {r:?}");
            assert!(is_problem(&r) && errors_name(&r, "cron"), "{r:?}");
        }
        let r = app.post(&s, &path, json!({"name": "nightly", "kind": "audit.verify", "cron": "0 2 * * *", "timezone": "Mars/Base"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "timezone"), "{r:?}");
        let r = app.post(&s, &path, json!({"name": "nightly", "kind": "maintenance.cleanup", "cron": "0 2 * * *"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "kind"), "{r:?}");
        assert_eq!(app.count("SELECT COUNT(*) FROM job_schedules").await, 0);

        let r = app.post(&s, &path, json!({"name": "nightly", "kind": "audit.verify", "cron": "0 2 * * *"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["timezone"], "Asia/Kolkata", "defaults to the company's zone");
        assert!(r.body["next_run_at"].is_string());
        let id = r.body["id"].as_str().expect("id").to_string();
        let dup = app.post(&s, &path, json!({"name": "nightly", "kind": "audit.verify", "cron": "0 4 * * *"})).await;
        assert_eq!(dup.status, StatusCode::CONFLICT, "{dup:?}");
        let list = app.get(&s, &path).await;
        assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1));

        let one = s.path(&format!("job-schedules/{id}"));
        let r = app.patch(&s, &one, json!({"cron": "whenever"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "cron"), "{r:?}");
        let r = app.patch(&s, &one, json!({"enabled": false, "cron": "30 6 * * MON-FRI"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!((r.body["enabled"].as_bool(), r.body["cron"].as_str()), (Some(false), Some("30 6 * * MON-FRI")));
        // Another company's schedule does not exist for you.
        let foreign = intruder.path(&format!("job-schedules/{id}"));
        assert_eq!(app.patch(&intruder, &foreign, json!({"enabled": true})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&intruder, &foreign).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&s, &one).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&s, &one).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'job_schedule'").await, 4);
    }
}

#[tokio::test]
async fn api_is_for_admins_of_the_company() {
    for app in TestApp::all().await {
        let s = app.register(&format!("api-{}@example.com", app.backend), "Api Ltd").await;
        let rep = app.member(&s, &format!("rep-{}@example.com", app.backend), "sales_rep").await;
        let other = app.register(&format!("api-other-{}@example.com", app.backend), "Other Ltd").await;

        let r = app.post(&s, &s.path("jobs"), json!({"kind": "audit.verify", "payload": {"note": "quarterly"}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!((r.body["state"].as_str(), r.body["company_id"].as_str()), (Some("queued"), Some(s.company_id.as_str())));
        assert_eq!(r.body["created_by"], s.user_id.as_str());
        let id = r.body["id"].as_str().expect("id").to_string();
        for bad in [json!({"kind": "maintenance.cleanup"}), json!({"kind": "nope"})] {
            let r = app.post(&s, &s.path("jobs"), bad).await;
            assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && is_problem(&r) && errors_name(&r, "kind"), "{r:?}");
        }
        let r = app.post(&s, &s.path("jobs"), json!({"kind": "audit.verify", "max_attempts": 0})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "max_attempts"), "{r:?}");
        let r = app.post(&s, &s.path("jobs"), json!({"kind": "audit.verify", "colour": "red"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");

        let shown = app.get(&s, &s.path(&format!("jobs/{id}"))).await;
        assert_eq!(shown.status, StatusCode::OK, "{shown:?}");
        assert_eq!(shown.body["payload"], json!({"note": "quarterly"}));

        // Listing: newest first, filters, paging.
        for _ in 0..4 {
            assert_eq!(app.post(&s, &s.path("jobs"), json!({"kind": "audit.verify"})).await.status, StatusCode::CREATED);
        }
        let all = app.get(&s, &s.path("jobs")).await;
        let data = all.body["data"].as_array().expect("data");
        assert_eq!(data.len(), 5);
        assert_eq!(data[4]["id"], id.as_str(), "oldest last");
        let mut seen = Vec::new();
        let mut url = s.path("jobs?limit=2");
        loop {
            let page = app.get(&s, &url).await;
            assert_eq!(page.status, StatusCode::OK, "{page:?}");
            seen.extend(page.body["data"].as_array().expect("data").iter().map(|j| j["id"].as_str().expect("id").to_string()));
            match page.body["next_cursor"].as_str() {
                Some(c) => url = s.path(&format!("jobs?limit=2&cursor={c}")),
                None => break,
            }
        }
        assert_eq!(seen, data.iter().map(|j| j["id"].as_str().expect("id").to_string()).collect::<Vec<_>>());
        assert_eq!(app.get(&s, &s.path("jobs?state=queued&kind=audit.verify")).await.body["data"].as_array().map(Vec::len), Some(5));
        assert_eq!(app.get(&s, &s.path("jobs?state=dead")).await.body["data"].as_array().map(Vec::len), Some(0));
        for (q, field) in [("state=paused", "state"), ("limit=500", "limit"), ("limit=0", "limit"), ("cursor=zzz", "cursor")] {
            let r = app.get(&s, &s.path(&format!("jobs?{q}"))).await;
            assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, field), "{q}: {r:?}");
        }

        // Cancel, then retry; retrying a queued job is a conflict.
        assert_eq!(app.post(&s, &s.path(&format!("jobs/{id}/cancel")), json!({})).await.body["state"], "cancelled");
        let r = app.post(&s, &s.path(&format!("jobs/{id}/retry")), json!({})).await;
        assert_eq!((r.status, r.body["state"].as_str()), (StatusCode::OK, Some("queued")), "{r:?}");
        let r = app.post(&s, &s.path(&format!("jobs/{id}/retry")), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");

        // Tenant isolation: another company's admin sees nothing.
        for path in [format!("jobs/{id}"), format!("jobs/{id}/cancel"), format!("jobs/{id}/retry")] {
            let own = other.path(&path);
            let r = if path.ends_with(&id) { app.get(&other, &own).await } else { app.post(&other, &own, json!({})).await };
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {r:?}");
            assert!(is_problem(&r));
            let theirs =
                if path.ends_with(&id) { app.get(&other, &s.path(&path)).await } else { app.post(&other, &s.path(&path), json!({})).await };
            assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{path}: {theirs:?}");
        }
        assert_eq!(app.get(&other, &other.path("jobs")).await.body["data"].as_array().map(Vec::len), Some(0));
        assert_eq!(app.get(&s, &s.path(&format!("jobs/{}", Uuid::now_v7()))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&s, &s.path("jobs/not-a-uuid")).await.status, StatusCode::BAD_REQUEST);

        // Members who are not Admins: 403.
        for r in [
            app.get(&rep, &rep.path("jobs")).await,
            app.get(&rep, &rep.path(&format!("jobs/{id}"))).await,
            app.post(&rep, &rep.path("jobs"), json!({"kind": "audit.verify"})).await,
            app.post(&rep, &rep.path(&format!("jobs/{id}/cancel")), json!({})).await,
            app.get(&rep, &rep.path("job-schedules")).await,
        ] {
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
            assert!(is_problem(&r));
        }
        assert_eq!(app.call(Method::GET, &s.path("jobs"), None, None, &[]).await.status, StatusCode::UNAUTHORIZED);

        // Every change went to the audit trail, and the trail still verifies.
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'job' AND action = 'create'").await, 5);
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'job' AND action IN ('cancel', 'retry')").await, 2);
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);
    }
}

#[tokio::test]
async fn builtin_jobs_run() {
    for app in TestApp::all().await {
        let s = app.register(&format!("builtin-{}@example.com", app.backend), "Builtin Ltd").await;
        let _browser = sign_in(&app, &s.email).await;
        let lead = app
            .call(Method::POST, &s.path("leads"), Some(&s.token), Some(json!({"last_name": "Keyed"})), &[("idempotency-key", "lead-1")])
            .await;
        assert_eq!(lead.status, StatusCode::CREATED, "{lead:?}");

        let (stop, rx) = watch::channel(false);
        let handles = rt::spawn_workers_with(app.db.clone(), Registry::builtin(), 2, test_config("builtin"), rx);
        let r = app.post(&s, &s.path("jobs"), json!({"kind": "audit.verify"})).await;
        let id = Uuid::parse_str(r.body["id"].as_str().expect("id")).expect("uuid");
        let done = wait_for(&app.db, id, "succeeded", |j| j.state == JobState::Succeeded).await;
        let result = done.result.expect("result");
        assert_eq!(result["ok"], true, "{result}");
        assert!(result["rows"].as_i64().is_some_and(|n| n > 0));
        assert_eq!((done.progress_done, done.progress_total), (1, Some(1)));

        // maintenance.cleanup is a system job; right now there is nothing old to delete.
        let (c, _) = jobs::enqueue(&app.db, &NewJob::new(rt::MAINTENANCE_CLEANUP, json!({})), now_micros()).await.expect("enqueue");
        let c = wait_for(&app.db, c.id, "succeeded", |j| j.state == JobState::Succeeded).await;
        assert_eq!(c.result, Some(json!({"web_sessions": 0, "refresh_tokens": 0, "idempotency_keys": 0, "jobs": 0})));
        let _ = stop.send(true);
        for h in handles {
            h.await.expect("worker");
        }

        // Two months on, expired sessions and tokens, old idempotency keys and old finished
        // jobs go; dead jobs stay for inspection.
        let (d, _) = jobs::enqueue(&app.db, &NewJob::new("test.dead", json!({})).max_attempts(1), now_micros()).await.expect("enqueue");
        let dj = jobs::claim(&app.db, "w", &kinds(&["test.dead"]), lease(), now_micros()).await.expect("claim").expect("job");
        jobs::fail(&app.db, &dj.lease().expect("lease"), 1, "x", true, now_micros()).await.expect("fail");
        let report = jobs::cleanup(&app.db, now_micros() + Duration::days(60)).await.expect("cleanup");
        assert!(report.web_sessions >= 1 && report.refresh_tokens >= 1 && report.idempotency_keys >= 1, "{report:?}");
        assert_eq!(report.jobs, 2, "{report:?}");
        assert_eq!(job(&app.db, d.id).await.state, JobState::Dead);
        assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
    }
}

#[tokio::test]
async fn admin_page_shows_and_controls_jobs() {
    for app in TestApp::all().await {
        let s = app.register(&format!("page-{}@example.com", app.backend), "Page Ltd").await;
        let rep_email = format!("page-rep-{}@example.com", app.backend);
        app.member(&s, &rep_email, "sales_rep").await;
        let b = sign_in(&app, &s.email).await;
        let url = format!("/app/{}/settings/jobs", s.company_id);

        let empty = page(&app, &b, &url).await;
        assert_eq!(empty.status, StatusCode::OK, "{empty:?}");
        assert!(empty.text.contains("Background jobs") && empty.text.contains("No background jobs yet."));
        assert!(empty.text.contains("Enqueue audit check"));
        assert!(!empty.text.contains("hx-trigger=\"every 3s\""), "nothing to poll for");
        csp_clean(&empty.text);

        // The button queues an audit check (audited, like the API).
        let r = post_form(&app, &b, &url, &[("action", "enqueue")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'audit.verify'").await, 1);
        assert_eq!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'job'").await, 1);
        let queued = page(&app, &b, &format!("{url}?notice=An+audit+check+was+queued.")).await;
        assert!(queued.text.contains("An audit check was queued."));
        assert!(queued.text.contains("hx-trigger=\"every 3s\"") && queued.text.contains("hx-select=\"#jobs-table\""), "polls while queued");
        assert!(queued.text.contains("data-state=\"queued\"") && queued.text.contains(">Cancel</button>"));

        // Running with progress: a <progress> with value and max.
        let t0 = now_micros();
        let j = jobs::claim(&app.db, "w", &kinds(&["audit.verify"]), lease(), t0).await.expect("claim").expect("job");
        let p = jobs::Progress { done: 3, total: Some(10), message: Some("checking <rows>".into()) };
        jobs::heartbeat(&app.db, &j.lease().expect("lease"), t0 + lease(), Some(&p), t0).await.expect("beat");
        let running = page(&app, &b, &url).await;
        assert!(running.text.contains("<progress value=\"3\" max=\"10\""), "{}", running.text);
        assert!(running.text.contains("checking &#60;rows&#62;") || running.text.contains("checking &lt;rows&gt;"), "escaped");
        csp_clean(&running.text);

        // Cancel from the page: a running job is asked to stop.
        let id = j.id.to_string();
        let r = post_form(&app, &b, &url, &[("action", "cancel"), ("job_id", &id)], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert!(job(&app.db, j.id).await.cancel_requested);
        assert!(page(&app, &b, &url).await.text.contains("Cancelling"));
        jobs::fail(&app.db, &j.lease().expect("lease"), 1, "network down", true, t0).await.expect("fail");

        // Dead: the error shows, polling stops, Retry is offered and works.
        let dead = page(&app, &b, &url).await;
        assert!(dead.text.contains("network down") && dead.text.contains(">Retry</button>"));
        assert!(!dead.text.contains("hx-trigger=\"every 3s\""));
        let r = post_form(&app, &b, &url, &[("action", "retry"), ("job_id", &id)], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(job(&app.db, j.id).await.state, JobState::Queued);
        // Retrying again is refused with a message, not an error page.
        let r = post_form(&app, &b, &url, &[("action", "retry"), ("job_id", &id)], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let loc = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("location").to_string();
        assert!(loc.contains("error="), "{loc}");
        assert!(page(&app, &b, &loc).await.text.contains("Only failed, dead or cancelled jobs can be retried"));

        // htmx polls get the page, from which hx-select takes the table.
        let polled = app
            .raw(Request::builder().uri(&url).header("cookie", &b.cookie).header("hx-request", "true").body(Body::empty()).expect("req"))
            .await;
        assert!(polled.status == StatusCode::OK && polled.text.contains("id=\"jobs-table\""));

        // Forms need the CSRF token; other companies' jobs are not found; non-admins get 403.
        assert_eq!(post_form(&app, &b, &url, &[("action", "enqueue")], false).await.status, StatusCode::FORBIDDEN);
        let stranger = app.register(&format!("page-x-{}@example.com", app.backend), "Stranger Ltd").await;
        let (theirs, _) =
            jobs::enqueue(&app.db, &NewJob::new("audit.verify", json!({})).company(cid(&stranger)), t0).await.expect("enqueue");
        let r = post_form(&app, &b, &url, &[("action", "cancel"), ("job_id", &theirs.id.to_string())], true).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert_eq!(job(&app.db, theirs.id).await.state, JobState::Queued);
        assert!(!page(&app, &b, &url).await.text.contains(&theirs.id.to_string()));
        let rep = sign_in(&app, &rep_email).await;
        let r = page(&app, &rep, &url).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert_eq!(post_form(&app, &rep, &url, &[("action", "enqueue")], true).await.status, StatusCode::FORBIDDEN);
    }
}
