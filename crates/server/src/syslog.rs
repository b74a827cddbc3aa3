//! The system log: a `tracing` layer that keeps structured events (level, target, message,
//! fields, request id, company, time) in the database for Admins to browse.
//!
//! Why the database: several processes may serve one database, and an Admin needs one view
//! of all of them; the table is pruned by age (`CORVID_LOG_RETENTION_DAYS`, default 14) and
//! a row cap (`CORVID_LOG_MAX_ROWS`, default one million). Events travel from the layer to a
//! writer task through a bounded channel: logging never waits for the database, and if the
//! writer falls behind, events are dropped and counted rather than piling up in memory.
//!
//! Which database: each app state owns a [`Sink`]; the request middleware makes it the
//! sink of the request's task (`SINK`), so events of a request go to that app's database
//! (tests run many apps in one process). Events outside requests (background jobs) go to
//! the process default set by the binary ([`set_default`]).
//!
//! Which company: the request span carries `company_id` once the caller's membership of
//! the company in the path has been checked ([`note_company`]); Admins see only entries of
//! their company. Warnings and errors without a company stay for operators; request lines
//! without one are not kept.

use chrono::Utc;
use corvid_store::syslog::NewEntry;
use corvid_store::Db;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Events waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 10_000;
/// Events written per transaction.
const BATCH: usize = 500;
/// How long the writer gathers events before it writes them.
const LINGER: Duration = Duration::from_millis(200);
const MAX_MESSAGE: usize = 2000;
const MAX_FIELD: usize = 1000;
const MAX_FIELDS: usize = 40;
/// The target of the writer's own complaints, which the layer never records (no feedback).
const SELF_TARGET: &str = "corvid::syslog";
/// Mail that could not be sent (demo links) is logged here and never stored: a reset link
/// in the database would let anyone who reads it take over the account.
pub const OUTBOX_TARGET: &str = "corvid::outbox";
/// One event per finished request (status and duration).
pub const ACCESS_TARGET: &str = "corvid::access";

#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub days: i64,
    pub max_rows: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { days: 14, max_rows: 1_000_000 }
    }
}

/// Where events of one app go. Cloning shares the queue.
#[derive(Clone, Debug)]
pub struct Sink {
    tx: mpsc::Sender<NewEntry>,
    dropped: Arc<AtomicU64>,
}

tokio::task_local! {
    /// The sink of the request being served.
    pub static SINK: Sink;
}

static DEFAULT: OnceLock<Sink> = OnceLock::new();

/// Makes `sink` receive events that happen outside any request (workers, start-up).
pub fn set_default(sink: Sink) {
    let _ = DEFAULT.set(sink);
}

fn node_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    format!("{host}:{}", std::process::id())
}

impl Sink {
    /// Starts the writer task for `db` (needs a Tokio runtime).
    pub fn start(db: Db, retention: Retention) -> Sink {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(db, rx, dropped.clone(), retention));
        Sink { tx, dropped }
    }

    fn offer(&self, e: NewEntry) {
        if self.tx.try_send(e).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `f` with this sink as the current one (for events emitted synchronously).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        SINK.sync_scope(self.clone(), f)
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<NewEntry>, dropped: Arc<AtomicU64>, retention: Retention) {
    let node = node_name();
    let prune_every = Duration::from_secs(600);
    let mut last_prune: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        // Events arrive a few at a time (one per request): gathering them for a moment makes
        // a busy server's log a few write transactions a second, instead of one after every
        // write of records that the records' next write then waits behind.
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) | Err(_) => break,
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.push(NewEntry {
                at: Utc::now(),
                severity: 2,
                target: SELF_TARGET.into(),
                message: format!("{lost} log events were dropped because the log writer fell behind"),
                fields: Value::Object(Map::new()),
                request_id: None,
                company_id: None,
            });
        }
        if let Err(e) = corvid_store::syslog::insert(&db, &node, &batch).await {
            tracing::warn!(target: "corvid::syslog", error = %e, lost = batch.len(), "system log write failed");
        }
        if last_prune.is_none_or(|t| t.elapsed() >= prune_every) {
            last_prune = Some(tokio::time::Instant::now());
            let before = Utc::now() - chrono::Duration::days(retention.days.max(1));
            if let Err(e) = corvid_store::syslog::prune(&db, before, retention.max_rows).await {
                tracing::warn!(target: "corvid::syslog", error = %e, "system log pruning failed");
            }
        }
    }
}

/// Records the company whose membership a request has proven, for the system log.
pub fn note_company(company_id: uuid::Uuid) {
    tracing::Span::current().record("company_id", tracing::field::display(company_id));
}

/// What the layer records: our crates from `info`, request summaries, warnings and errors
/// from everything else; never the database driver (its warnings would be written by the
/// database driver again), the writer itself or undelivered mail.
pub fn filter() -> Targets {
    Targets::new()
        .with_default(LevelFilter::WARN)
        .with_target("corvid", LevelFilter::INFO)
        .with_target(ACCESS_TARGET, LevelFilter::DEBUG)
        .with_target(SELF_TARGET, LevelFilter::OFF)
        .with_target(OUTBOX_TARGET, LevelFilter::OFF)
        .with_target("sqlx", LevelFilter::OFF)
}

/// The layer with its filter, to add to the process's subscriber.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    SyslogLayer.with_filter(filter())
}

pub struct SyslogLayer;

/// Field values of a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

#[derive(Default)]
struct Visitor {
    message: Option<String>,
    fields: Map<String, Value>,
}

fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Visitor {
    fn put(&mut self, field: &Field, v: Value) {
        if field.name() == "message" {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.message = Some(clip(&text, MAX_MESSAGE));
        } else if self.fields.len() < MAX_FIELDS {
            self.fields.insert(field.name().to_string(), v);
        }
    }
}

impl Visit for Visitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        self.put(field, Value::String(clip(&s, MAX_FIELD)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(clip(value, MAX_FIELD)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(clip(&value.to_string(), MAX_FIELD)));
    }
}

fn severity(level: &Level) -> i64 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

impl<S> Layer<S> for SyslogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut v = Visitor::default();
        attrs.record(&mut v);
        span.extensions_mut().insert(SpanFields(v.fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut v = Visitor::default();
        values.record(&mut v);
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(f) => f.0.extend(v.fields),
            None => ext.insert(SpanFields(v.fields)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let sink = SINK.try_with(Clone::clone).ok().or_else(|| DEFAULT.get().cloned());
        let Some(sink) = sink else { return };
        // Span fields first (outermost to innermost), then the event's own.
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    fields.extend(f.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut v = Visitor::default();
        event.record(&mut v);
        fields.extend(v.fields);
        let request_id = fields.remove("request_id").and_then(|v| v.as_str().map(|s| clip(s, 100)));
        let company_id = fields.remove("company_id").and_then(|v| v.as_str().and_then(|c| uuid::Uuid::parse_str(c).ok()));
        let meta = event.metadata();
        // Request lines are kept for companies only: pages before sign-in, assets and health
        // checks would otherwise fill the table with lines no Admin can see.
        if company_id.is_none() && meta.target() == ACCESS_TARGET {
            return;
        }
        sink.offer(NewEntry {
            at: Utc::now(),
            severity: severity(meta.level()),
            target: clip(meta.target(), 200),
            message: v.message.unwrap_or_default(),
            fields: Value::Object(fields),
            request_id,
            company_id,
        });
    }
}
