//! The governance pipeline. Every write of a record (API, UI forms, bulk, import) passes
//! through here inside the write's own transaction, so a rule can never be skipped by taking
//! another door in.
//!
//! A `Pipeline` is loaded once per transaction (imports load one per batch): rule sets,
//! policies and round-robin positions are read once, applied to every record of the batch,
//! and written back by `finish`. The configuration is cached between transactions and read
//! again when its stamp moves (`config`). Each step lives in its own module.
//!
//! In batch mode the rows of new records, their duplicate keys, score history and audit rows
//! are kept in memory and written with multi-row statements by `flush` and `finish`, so a
//! batch of 500 rows costs a handful of statements instead of several per row. Every step
//! still sees every record in order: checks of later rows find the earlier rows of the batch
//! in the steps' memory. Imports use batch mode per batch of rows; concurrent API creates of
//! one company use it per group (`grouped_create`).

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Tx, Q};
use crate::records::Tenant;
use crate::{assignment, dedupe, governance, privacy, scoring, settings, Result, StoreError};
use corvid_core::meta::{Field, ObjectDef};
use corvid_core::record::Record;
use corvid_core::validate::Changes;
use corvid_core::{SqlType, Value};
use serde_json::Map;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// One record being written.
pub struct Write<'a> {
    pub tenant: &'a Tenant,
    pub object: &'static ObjectDef,
    /// The stored record for updates; `None` on create.
    pub existing: Option<&'a Record>,
    /// Where the write came from ("api", "web", "import", "bulk"), for rules that care.
    pub channel: &'a str,
}

pub struct Pipeline {
    /// Batch mode (imports, grouped creates): new records, their keys, score history and
    /// audit rows are collected and written by `flush` and `finish`; record numbers are
    /// reserved in blocks.
    pub batch: bool,
    object: &'static ObjectDef,
    pub(crate) audit_ctx: AuditCtx,
    /// Batch mode: audit rows to append in `finish`, with the context of the request that
    /// made them.
    deferred_audit: Vec<(AuditCtx, Vec<Change>)>,
    /// Reserved record numbers: the next one and the end of the block (exclusive).
    pub(crate) numbers: (i64, i64),
    /// How many numbers `next_number` reserves at a time.
    pub(crate) number_block: i64,
    /// References already checked in this transaction (column, id).
    pub(crate) verified: HashSet<(String, Uuid)>,
    /// Whether assignment rules run on created records. On by default; an import may turn it
    /// off (its "run assignment rules" option), and new records then keep the importer as owner.
    pub run_assignment: bool,
    pub governance: governance::Step,
    pub dedupe: dedupe::Step,
    pub scoring: scoring::Step,
    pub assignment: assignment::Step,
    pub privacy: privacy::Step,
    /// Batch mode: rows of new records not inserted yet (`flush`).
    pending_rows: Vec<PendingRow>,
    /// The validated values of the row `create_in_validated` is creating, so the row is
    /// not validated twice (batches validate their rows up front for their lookups).
    pub(crate) validated: Option<Changes>,
    /// The company's audit sequence number when `take_over` ran (`finish_handing_over`).
    start_seq: Option<i64>,
}

/// A new record's row: its table, column names and values (the same as its single-row
/// INSERT would have).
struct PendingRow {
    object: &'static ObjectDef,
    columns: Vec<String>,
    values: Vec<Value>,
}

/// What one batch of an import or group of creates read of the duplicate-key index and of
/// the recent leads (burst counts), with the audit sequence number after it: see
/// `Pipeline::take_over`.
pub struct HandOver {
    seq: i64,
    index: Option<dedupe::KeptIndex>,
    recent: Option<governance::Recent>,
}

/// Parameters per multi-row INSERT: under SQLite's limit of 32,766 and PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;

/// What the steps read of a company's configuration for one object: all its settings (the
/// policies of governance, duplicates and consent), the active scoring rule set and model,
/// and the active assignment rules.
struct Config {
    stamp: settings::Stamp,
    settings: Arc<settings::Snapshot>,
    active: Option<scoring::Active>,
    rules: Vec<assignment::Rule>,
}

/// Configurations by (company, object), shared by the transactions of this process. Every
/// write used to read them again (six queries before the record's own work); now a write
/// reads the company's stamp (one indexed query) and reloads only when it changed. Every
/// change of the configuration moves the stamp in its own transaction (`settings::touch`),
/// so other processes and nodes see a change on their next write, as they did before.
type ConfigCache = HashMap<(Uuid, &'static str), Arc<Config>>;
static CONFIGS: LazyLock<Mutex<ConfigCache>> = LazyLock::new(Default::default);

/// A bound on cached configurations (a few per company); past it the cache starts over.
const MAX_CONFIGS: usize = 10_000;

async fn config(tx: &mut Tx, company_id: Uuid, object: &'static ObjectDef) -> Result<Arc<Config>> {
    let stamp = settings::stamp_in(tx, company_id).await?;
    let key = (company_id, object.name.as_str());
    let cached = CONFIGS.lock().ok().and_then(|m| m.get(&key).filter(|c| c.stamp == stamp).cloned());
    if let Some(c) = cached {
        return Ok(c);
    }
    let snapshot = settings::snapshot_in(tx, company_id).await?;
    let active = if scoring::scores(object) { Some(scoring::load_active(tx, company_id).await?) } else { None };
    let rules = assignment::active_rules(tx, company_id, object).await?;
    let c = Arc::new(Config { stamp, settings: Arc::new(snapshot), active, rules });
    if let Ok(mut m) = CONFIGS.lock() {
        if m.len() >= MAX_CONFIGS {
            m.clear();
        }
        m.insert(key, c.clone());
    }
    Ok(c)
}

impl Pipeline {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Pipeline> {
        let config = config(tx, tenant.company_id, object).await?;
        // The steps read their policies through `settings::get_in`, answered from the snapshot.
        let (governance, dedupe, privacy) = settings::with_snapshot(config.settings.clone(), async {
            Ok::<_, StoreError>((
                governance::Step::load(tx, tenant, object).await?,
                dedupe::Step::load(tx, tenant, object).await?,
                privacy::Step::load(tx, tenant, object).await?,
            ))
        })
        .await?;
        Ok(Pipeline {
            batch: false,
            object,
            audit_ctx: tenant.audit.clone(),
            deferred_audit: Vec::new(),
            start_seq: None,
            numbers: (0, 0),
            number_block: 1,
            verified: HashSet::new(),
            run_assignment: true,
            governance,
            dedupe,
            scoring: scoring::Step::with_active(config.active.clone()),
            assignment: assignment::Step::with_rules(tenant.company_id, config.rules.clone()),
            privacy,
            pending_rows: Vec::new(),
            validated: None,
        })
    }

    /// Runs before the row is written: may change `changes` (normalised values, flags, score,
    /// owner) or refuse the write. Returned audit rows are appended after the record's own.
    pub async fn before_write(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &mut Changes) -> Result<Vec<Change>> {
        let mut audit = Vec::new();
        self.governance.before_write(tx, w, changes, &mut audit).await?;
        self.privacy.before_write(tx, w, changes, &mut audit).await?;
        self.dedupe.before_write(tx, w, changes, &mut audit).await?;
        self.scoring.before_write(tx, w, changes, &mut audit).await?;
        if w.existing.is_none() && self.run_assignment {
            self.assignment.before_create(tx, w, changes, &mut audit).await?;
        }
        Ok(audit)
    }

    /// Runs after the row is written (indexes, histories, engagement on related records).
    pub async fn after_write(&mut self, tx: &mut Tx, w: &Write<'_>, record: &Record) -> Result<Vec<Change>> {
        let mut audit = Vec::new();
        self.dedupe.after_write(tx, w, record, &mut audit).await?;
        self.scoring.after_write(tx, w, record, &mut audit).await?;
        self.assignment.after_write(tx, w, record, &mut audit).await?;
        self.privacy.after_write(tx, w, record, &mut audit).await?;
        if w.existing.is_none() {
            self.governance.note_created(w.object, record);
        }
        Ok(audit)
    }

    /// Batch mode for imports (see `batch`): numbers in blocks of 500.
    pub fn for_batch(mut self) -> Pipeline {
        self.batch = true;
        self.number_block = 500;
        self.governance.for_batch();
        self.dedupe.for_batch();
        self.scoring.for_batch();
        self
    }

    /// Batch mode for a group of `n` API creates: numbers reserved for the group at once.
    fn for_group(mut self, n: usize) -> Pipeline {
        self = self.for_batch();
        self.number_block = i64::try_from(n).unwrap_or(1).max(1);
        self
    }

    /// Whether a new record of `object` is inserted by `flush` rather than at once: in batch
    /// mode, except activities, which scoring reads back right after they are written (the
    /// lead's engagement).
    pub(crate) fn defers_insert(&self, object: &ObjectDef) -> bool {
        self.batch && object.name != "activities"
    }

    /// Batch mode: keeps a new record's row for `flush` instead of inserting it now. The
    /// record counts as existing for reference checks of later rows of the batch.
    pub(crate) fn defer_insert(&mut self, object: &'static ObjectDef, id: Uuid, columns: Vec<String>, values: Vec<Value>) {
        self.verified.insert((object.name.clone(), id));
        self.pending_rows.push(PendingRow { object, columns, values });
    }

    /// Batch mode: keeps audit rows for `finish`, with the context of the request.
    pub(crate) fn defer_audit(&mut self, ctx: &AuditCtx, rows: Vec<Change>) {
        if rows.is_empty() {
            return;
        }
        match self.deferred_audit.last_mut() {
            Some((last, pending)) if last == ctx => pending.extend(rows),
            _ => self.deferred_audit.push((ctx.clone(), rows)),
        }
    }

    /// Writes what batch mode kept in memory: new records (multi-row INSERTs, in the order
    /// they were created), then their duplicate keys and score history.
    pub async fn flush(&mut self, tx: &mut Tx, company_id: Uuid) -> Result<()> {
        let rows = std::mem::take(&mut self.pending_rows);
        let mut start = 0;
        while start < rows.len() {
            let object = rows[start].object;
            let end = rows[start..].iter().position(|r| !std::ptr::eq(r.object, object)).map_or(rows.len(), |n| start + n);
            // The rows of one table go in with the union of their columns (a column a row did
            // not set is NULL, as it would be without it: record tables have no column
            // defaults besides version and custom, which are always set).
            let mut columns: Vec<&str> = Vec::new();
            let mut seen: HashSet<&str> = HashSet::new();
            for row in &rows[start..end] {
                for c in &row.columns {
                    if seen.insert(c) {
                        columns.push(c);
                    }
                }
            }
            let per_statement = (MAX_PARAMS / columns.len().max(1)).max(1);
            let per_statement = 1usize << per_statement.ilog2();
            for range in crate::db::stable_chunks(end - start, per_statement) {
                insert_rows(tx, object, &columns, &rows[start + range.start..start + range.end]).await?;
            }
            start = end;
        }
        self.dedupe.flush(tx, company_id).await?;
        self.scoring.flush(tx, company_id).await?;
        Ok(())
    }

    /// Starts the duplicate check and the burst counts from what an earlier batch or group
    /// read of the key index and of the recent leads (`finish_handing_over`), if no record of
    /// the company changed since that one committed.
    /// Every change of a record is audited, so an unchanged audit sequence number means no
    /// other writer changed anything in between; otherwise the index is read again.
    pub async fn take_over(&mut self, tx: &mut Tx, handed: Option<HandOver>) -> Result<()> {
        let seq = audit::head_seq(tx, self.audit_ctx.company_id).await?;
        if let Some(h) = handed {
            if seq == Some(h.seq) {
                if let Some(index) = h.index {
                    self.dedupe.keep_index(index);
                }
                if let Some(recent) = h.recent {
                    self.governance.keep_recent(recent);
                }
            }
        }
        self.start_seq = seq;
        Ok(())
    }

    /// `finish`, and what the next batch or group may start from once this transaction has
    /// committed (`take_over`): the key index and the recent leads this one read and wrote,
    /// and the audit sequence number it leaves.
    pub async fn finish_handing_over(mut self, tx: &mut Tx) -> Result<Option<HandOver>> {
        let company_id = self.audit_ctx.company_id;
        // Keys still pending would be dropped with the index.
        self.flush(tx, company_id).await?;
        let index = self.dedupe.kept_index();
        let recent = self.governance.kept_recent();
        let start = self.start_seq;
        let own = self.deferred_audit.iter().map(|(_, rows)| rows.len() as i64).sum::<i64>();
        self.finish(tx).await?;
        let seq = audit::head_seq(tx, company_id).await?;
        // PostgreSQL lets another writer of the company commit while this transaction reads
        // (the audit head is only locked when this one appends): its rows then sit between
        // `start` and `seq`, and what this transaction read may predate its change. So may
        // this transaction's own direct appends (updates), which change the index too.
        if start.zip(seq).is_none_or(|(start, end)| end - start != own) {
            return Ok(None);
        }
        if index.is_none() && recent.is_none() {
            return Ok(None);
        }
        Ok(seq.map(|seq| HandOver { seq, index, recent }))
    }

    /// Writes back state kept in memory for the batch (rows, round-robin positions, audit)
    /// and returns the record numbers reserved but not used.
    pub async fn finish(mut self, tx: &mut Tx) -> Result<()> {
        let company_id = self.audit_ctx.company_id;
        self.flush(tx, company_id).await?;
        // Numbers are handed out in order, so the unused ones are the end of the block; this
        // transaction still holds the counter (its row lock, or SQLite's write lock), so
        // giving them back leaves no gap between this batch and the next write.
        let unused = self.numbers.1 - self.numbers.0;
        if unused > 0 {
            tx.execute(
                &Q::new("UPDATE counters SET next = next - $1 WHERE company_id = $2 AND object = $3 AND next = $4")
                    .bind(Value::Int(unused))
                    .bind(Value::Uuid(company_id))
                    .bind(Value::Text(self.object.name.clone()))
                    .bind(Value::Int(self.numbers.1 - 1)),
            )
            .await?;
        }
        self.assignment.finish(tx).await?;
        let entries: Vec<(&AuditCtx, &[Change])> = self.deferred_audit.iter().map(|(ctx, rows)| (ctx, rows.as_slice())).collect();
        audit::append_many(tx, company_id, &entries).await?;
        Ok(())
    }
}

/// The type of a record table's column (system columns, then the object's fields; custom
/// fields live in `custom`).
fn column_type(object: &ObjectDef, column: &str) -> SqlType {
    corvid_core::meta::SYSTEM_COLUMNS
        .iter()
        .find(|(c, _)| *c == column)
        .map(|(_, t)| *t)
        .or_else(|| object.field(column).map(|f| f.kind.sql_type()))
        .unwrap_or(SqlType::Text)
}

async fn insert_rows(tx: &mut Tx, object: &ObjectDef, columns: &[&str], rows: &[PendingRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let nulls: Vec<Value> = columns.iter().map(|c| Value::Null(column_type(object, c))).collect();
    let at: HashMap<&str, usize> = columns.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    let mut q = Q::new(String::new());
    let mut tuples = Vec::with_capacity(rows.len());
    let mut cells: Vec<Option<&Value>> = Vec::with_capacity(columns.len());
    for row in rows {
        cells.clear();
        cells.resize(columns.len(), None);
        for (c, v) in row.columns.iter().zip(&row.values) {
            if let Some(i) = at.get(c.as_str()) {
                cells[*i] = Some(v);
            }
        }
        let ps: Vec<String> = cells.iter().zip(&nulls).map(|(v, null)| q.param(v.unwrap_or(null).clone())).collect();
        tuples.push(format!("({})", ps.join(", ")));
    }
    q.sql = format!("INSERT INTO {} ({}) VALUES {}", object.name, columns.join(", "), tuples.join(", "));
    tx.execute(&q).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Grouped creates
// ---------------------------------------------------------------------------------------
//
// A write transaction costs far more than the record: on SQLite only one runs at a time, and
// the begin, configuration stamp, audit chain head, commit and WAL write are paid per
// transaction. Concurrent API creates of one company and object therefore queue here, and
// one task (the leader) writes whatever has queued in one batch-mode transaction: every
// create still goes through the whole pipeline, in arrival order, with its own tenant,
// permissions and audit context, and later creates of the group see the earlier ones (as
// duplicates, in burst counts, for round-robin turns). A create the pipeline refuses fails
// alone, before anything of it was written. If the group's own writes fail, the transaction
// rolls back and each create that had succeeded runs again alone, in its own transaction.

/// One queued create.
struct Job {
    tenant: Tenant,
    custom: Vec<Field>,
    input: Map<String, serde_json::Value>,
    /// The input validated by the request's own task, so that the one writer of the group
    /// does not (`None`: invalid, left to `create_in` to report as it always does).
    validated: Option<Changes>,
    reply: tokio::sync::oneshot::Sender<Result<Record>>,
}

type GroupKey = (u64, Uuid, &'static str);

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// Whether a leader is writing this queue's groups.
    leading: bool,
    /// What the last leader's last group read of the duplicate-key index, and when: creates
    /// often arrive just after a leader ran out of work, and the next leader starts from it.
    kept: Option<(Instant, HandOver)>,
}

/// How long a queue without creates keeps what its last group read.
const KEEP_INDEX_FOR: Duration = Duration::from_secs(30);

static GROUPS: LazyLock<Mutex<HashMap<GroupKey, Queue>>> = LazyLock::new(Default::default);

/// The most creates one transaction takes.
const MAX_GROUP: usize = 64;

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Config("the queue of grouped writes is unusable after a crash; restart the server".into())
}

/// Creates a record of `object` for `tenant` together with the concurrent creates of the
/// same company and object (see above). Returns the record, or why this create was refused.
pub(crate) async fn grouped_create(
    db: &Db,
    tenant: &Tenant,
    object: &'static ObjectDef,
    custom: Vec<Field>,
    input: Map<String, serde_json::Value>,
) -> Result<Record> {
    let key = (db.id(), tenant.company_id, object.name.as_str());
    let validated = tenant.records(db, object).validate_new(&custom, &input).ok().map(|mut c| {
        governance::tidy_names(&object.name, &mut c);
        c
    });
    let (reply, answer) = tokio::sync::oneshot::channel();
    let lead = {
        let mut groups = GROUPS.lock().map_err(poisoned)?;
        let queue = groups.entry(key).or_default();
        queue.jobs.push(Job { tenant: tenant.clone(), custom, input, validated, reply });
        !std::mem::replace(&mut queue.leading, true)
    };
    if lead {
        // A task of its own: the leader writes for others too, so it must not stop when the
        // request that started it goes away.
        tokio::spawn(lead_groups(db.clone(), key, object));
    }
    answer.await.map_err(|_| StoreError::Config("the write stopped before it was saved; try again".into()))?
}

/// Leaves the queue without a leader if the leader stops abnormally (its queued creates
/// then fail instead of waiting forever).
struct Leading(Option<GroupKey>);

impl Drop for Leading {
    fn drop(&mut self) {
        if let Some(key) = self.0.take() {
            if let Ok(mut groups) = GROUPS.lock() {
                groups.remove(&key);
            }
        }
    }
}

/// What a group read of the duplicate-key index, kept for the next group of the same leader.
type KeptIndex = Option<HandOver>;

async fn lead_groups(db: Db, key: GroupKey, object: &'static ObjectDef) {
    let mut leading = Leading(Some(key));
    let mut kept: KeptIndex = None;
    loop {
        // The turn to write first: creates arriving meanwhile join this group.
        let tx = db.begin().await;
        let jobs = match GROUPS.lock() {
            Ok(mut groups) => {
                let Some(queue) = groups.get_mut(&key) else { break };
                if kept.is_none() {
                    kept = queue.kept.take().filter(|(at, _)| at.elapsed() < KEEP_INDEX_FOR).map(|(_, k)| k);
                }
                if queue.jobs.is_empty() {
                    queue.leading = false;
                    queue.kept = kept.take().map(|k| (Instant::now(), k));
                    // Queues idle for long (this one too, if it kept nothing) go.
                    groups.retain(|_, q| {
                        q.leading || !q.jobs.is_empty() || q.kept.as_ref().is_some_and(|(at, _)| at.elapsed() < KEEP_INDEX_FOR)
                    });
                    leading.0 = None;
                    return;
                }
                let n = queue.jobs.len().min(MAX_GROUP);
                queue.jobs.drain(..n).collect::<Vec<Job>>()
            }
            Err(_) => break,
        };
        match tx {
            Ok(tx) => kept = write_group(&db, tx, object, jobs, kept.take()).await,
            Err(e) => {
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Config(msg.clone())));
                }
            }
        }
    }
}

async fn write_group(db: &Db, mut tx: Tx, object: &'static ObjectDef, mut jobs: Vec<Job>, kept: KeptIndex) -> KeptIndex {
    let first = jobs.first().map(|j| j.tenant.clone())?;
    let mut keep = None;
    let outcomes = match create_group(db, &mut tx, object, &first, &mut jobs, kept).await {
        Ok((outcomes, index)) => match tx.commit().await {
            Ok(()) => {
                keep = index;
                Ok(outcomes)
            }
            Err(e) => Err((e, outcomes.into_iter().map(Some).collect())),
        },
        Err((e, outcomes)) => {
            // Rolls the group back.
            drop(tx);
            Err((e, outcomes))
        }
    };
    match outcomes {
        Ok(outcomes) => {
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
        Err((e, outcomes)) => {
            tracing::warn!(error = %e, creates = jobs.len(), "a grouped write failed; writing its creates one by one");
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let answer = match outcome {
                    // Refused by the pipeline: nothing of it was written, and the answer stands.
                    Some(Err(refused)) => Err(refused),
                    _ => job.tenant.records(db, object).create_single(&job.custom, &job.input).await,
                };
                let _ = job.reply.send(answer);
            }
        }
    }
    keep
}

/// Outcomes of a group's creates; `None` for creates not reached when the group failed.
type Outcomes = Vec<Option<Result<Record>>>;

async fn create_group(
    db: &Db,
    tx: &mut Tx,
    object: &'static ObjectDef,
    first: &Tenant,
    jobs: &mut [Job],
    kept: KeptIndex,
) -> std::result::Result<(Vec<Result<Record>>, KeptIndex), (StoreError, Outcomes)> {
    let count = jobs.len();
    let none = || (0..count).map(|_| None).collect::<Outcomes>();
    let mut pipeline = match Pipeline::load(tx, first, object).await {
        Ok(p) => p.for_group(jobs.len()),
        Err(e) => return Err((e, none())),
    };
    if let Err(e) = pipeline.take_over(tx, kept).await {
        return Err((e, none()));
    }
    // Validated up front (by each request), so the duplicate check reads the key index for
    // the group.
    let mut validated: Vec<Option<Changes>> = jobs.iter_mut().map(|j| j.validated.take()).collect();
    if pipeline.dedupe.checks_new(&object.name) {
        let subjects: Vec<dedupe::Subject> = validated.iter().flatten().filter_map(|c| dedupe::subject_of_new(&object.name, c)).collect();
        if let Err(e) = pipeline.dedupe.prefetch(tx, first.company_id, &object.name, &subjects).await {
            return Err((e, none()));
        }
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (job, checked) in jobs.iter().zip(validated.iter_mut()) {
        let records = job.tenant.records(db, object);
        let outcome = match checked.take() {
            Some(c) => records.create_in_validated(tx, &job.custom, &mut pipeline, &job.input, c, "interactive").await,
            None => records.create_in(tx, &job.custom, &mut pipeline, &job.input, "interactive").await,
        };
        if let Err(e) = &outcome {
            if !is_refusal(e) {
                // A database error: the transaction cannot be trusted any more.
                let mut all: Outcomes = outcomes.into_iter().map(Some).collect();
                all.resize_with(jobs.len(), || None);
                let msg = e.to_string();
                return Err((StoreError::Config(msg), all));
            }
        }
        outcomes.push(outcome);
    }
    match pipeline.finish_handing_over(tx).await {
        Ok(handed) => Ok((outcomes, handed)),
        Err(e) => Err((e, outcomes.into_iter().map(Some).collect())),
    }
}

/// Whether the pipeline refused a create (before anything of it was written), as opposed to
/// the database failing under it.
fn is_refusal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotFound
            | StoreError::Stale { .. }
            | StoreError::Invalid(_)
            | StoreError::Conflict(_)
            | StoreError::Duplicate(_)
            | StoreError::Forbidden(_)
            | StoreError::FieldForbidden(_)
    )
}
