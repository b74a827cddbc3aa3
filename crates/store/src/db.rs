//! One code path, two databases. SQL is written once with `$n` placeholders (SQLite reads
//! them as numbered parameters); values are bound and decoded through the storage classes of
//! the object metadata, so each backend gets its native column types.

use crate::StoreError;
use chrono::{DateTime, NaiveDate, Utc};
use corvid_core::value::format_timestamp;
use corvid_core::{SqlType, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Row as _, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How long a write transaction waits for its turn (SQLite's busy timeout, the same bound).
const WRITE_WAIT: Duration = Duration::from_secs(15);
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool, Arc<Gate>),
    Postgres(PgPool, Arc<Gate>),
}

/// What a connected database carries besides its pool: an id unique in this process (work
/// that is grouped per database uses it as a key) and, for SQLite, the one connection its
/// write transactions take in turn (see `Db::begin`).
#[derive(Debug)]
pub struct Gate {
    pub id: u64,
    /// SQLite: a pool of one connection that only write transactions use.
    write_pool: Option<SqlitePool>,
}

impl Default for Gate {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Gate { id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed), write_pool: None }
    }
}

/// A query under construction: SQL text plus its bound values. User input only ever
/// reaches the database as a bound value.
#[derive(Debug, Default, Clone)]
pub struct Q {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Q {
    pub fn new(sql: impl Into<String>) -> Self {
        Q { sql: sql.into(), params: Vec::new() }
    }

    /// Adds a parameter and returns its placeholder.
    pub fn param(&mut self, v: Value) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }

    pub fn bind(mut self, v: Value) -> Self {
        self.params.push(v);
        self
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }
}

/// Splits `n` items into runs of `max` (a power of two) and then of falling powers of two.
/// Multi-row statements of these lengths repeat the same SQL text, which each connection's
/// statement cache keeps prepared; a statement of any other length is parsed and planned
/// again, and for the small, varying batches of grouped creates that parsing cost more than
/// the rows.
pub fn stable_chunks(n: usize, max: usize) -> Vec<std::ops::Range<usize>> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    while n - start >= max {
        out.push(start..start + max);
        start += max;
    }
    let mut size = max;
    while start < n {
        while size > n - start {
            size /= 2;
        }
        out.push(start..start + size);
        start += size;
    }
    out
}

/// `items` padded to a power of two by repeating the last one (for `IN` lists, where a
/// repeat changes nothing): the statement's text then repeats across calls, see
/// `stable_chunks`.
pub fn padded<T: Clone>(items: &[T]) -> Vec<T> {
    let mut out = items.to_vec();
    if let Some(last) = items.last() {
        out.resize(items.len().next_power_of_two(), last.clone());
    }
    out
}

/// A decoded row: one `Value` per requested column.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    pub fn uuid(&self, i: usize) -> Option<Uuid> {
        self.0.get(i).and_then(Value::as_uuid)
    }
    pub fn text(&self, i: usize) -> Option<String> {
        self.0.get(i).and_then(|v| v.as_str().map(str::to_string))
    }
    pub fn int(&self, i: usize) -> Option<i64> {
        self.0.get(i).and_then(Value::as_i64)
    }
    pub fn float(&self, i: usize) -> Option<f64> {
        match self.0.get(i) {
            Some(Value::Float(f)) => Some(*f),
            Some(Value::Int(i)) => Some(*i as f64),
            _ => None,
        }
    }
    pub fn bool(&self, i: usize) -> Option<bool> {
        match self.0.get(i) {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Int(i)) => Some(*i != 0),
            _ => None,
        }
    }
    pub fn timestamp(&self, i: usize) -> Option<DateTime<Utc>> {
        match self.0.get(i) {
            Some(Value::Timestamp(t)) => Some(*t),
            _ => None,
        }
    }
    pub fn json(&self, i: usize) -> Option<serde_json::Value> {
        match self.0.get(i) {
            Some(Value::Json(j)) => Some(j.clone()),
            _ => None,
        }
    }
    pub fn take(self) -> Vec<Value> {
        self.0
    }
}

/// How often the checkpointer looks at the size of SQLite's write-ahead log. SQLite reuses
/// the log file from its start after a checkpoint without shrinking it below
/// `journal_size_limit`, so once the log has grown the size test below always passes and
/// this interval alone sets how often pages are copied. Every 2 s instead cut the bytes a
/// 100,000-lead import wrote by a quarter (a page written again within the interval is
/// copied once), but at a million leads each checkpoint became a burst of writes that
/// commits waited behind: the import got no faster (6 % slower, within the spread of runs)
/// and the p99 of HTTP creates rose from 208 to 352 ms.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The log size from which the checkpointer copies it into the database (1,000 pages,
/// SQLite's own default threshold).
const CHECKPOINT_FROM_BYTES: u64 = 4 << 20;

/// Copies SQLite's write-ahead log into the database file from a connection of its own.
/// SQLite otherwise checkpoints inside the commit that crosses the threshold, so a writer
/// (an import batch, a group of creates) waited for the copy and its `fsync`: about a
/// third of an import's time. Here the copy runs beside the writers (a passive checkpoint
/// never blocks them) and on another core. The task ends when the last handle of the
/// database is dropped; if it cannot run, SQLite's own checkpoints still bound the log.
async fn checkpoint_in_background(opts: SqliteConnectOptions, path: &std::path::Path, alive: std::sync::Weak<Gate>) {
    use sqlx::{ConnectOptions as _, Connection as _};
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    // A checkpoint of a large log takes a second or more beside the writers, as intended;
    // sqlx would report each as a slow statement.
    let mut conn = match opts.disable_statement_logging().connect().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no background checkpoints: cannot open a connection for them");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if alive.strong_count() == 0 {
                break;
            }
            if std::fs::metadata(&wal).map_or(0, |m| m.len()) < CHECKPOINT_FROM_BYTES {
                continue;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
                tracing::debug!(error = %e, "background checkpoint did not run");
            }
        }
        let _ = conn.close().await;
    });
}

impl Db {
    /// Connects by URL scheme: `sqlite://path` (file created on first use) or `postgres://`.
    pub async fn connect(url: &str) -> Result<Db, StoreError> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("bad SQLite URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(WRITE_WAIT)
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-65536")
                // A safety net: `checkpoint_in_background` normally keeps the log far smaller.
                .pragma("wal_autocheckpoint", "100000")
                .pragma("journal_size_limit", "67108864");
            let path = opts.get_filename().to_path_buf();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
            }
            // No ping before each use: a SQLite connection is a file handle in this process
            // and cannot go stale like a network connection, and every ping is a round trip
            // to the connection's thread before the statement's own.
            let pool_of = |size: u32, wait: Duration| {
                SqlitePoolOptions::new()
                    .max_connections(size)
                    .min_connections(1)
                    .acquire_timeout(wait)
                    .test_before_acquire(false)
                    .connect_with(opts.clone())
            };
            let pool = pool_of(8, Duration::from_secs(30)).await?;
            // Write transactions take turns on a connection of their own (see `begin`). On the
            // shared pool a writer that had its turn still queued for a connection behind every
            // read of the moment (under concurrent API requests, 2 to 8 ms per transaction with
            // the write lock idle). And as the connection that does nearly all the writing, its
            // page cache usually stays valid from one write to the next: SQLite drops a
            // connection's cache when another one has written since.
            let write_pool = pool_of(1, WRITE_WAIT).await?;
            let gate = Arc::new(Gate { write_pool: Some(write_pool), ..Gate::default() });
            checkpoint_in_background(opts, &path, Arc::downgrade(&gate)).await;
            Ok(Db::Sqlite(pool, gate))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
            Self::connect_postgres(opts, 16).await
        } else {
            Err(StoreError::Config("database URL must start with sqlite:// or postgres://".into()))
        }
    }

    pub async fn connect_postgres(opts: PgConnectOptions, max: u32) -> Result<Db, StoreError> {
        let pool = PgPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(30)).connect_with(opts).await?;
        Ok(Db::Postgres(pool, Arc::default()))
    }

    /// This database's id in this process.
    pub fn id(&self) -> u64 {
        match self {
            Db::Sqlite(_, g) | Db::Postgres(_, g) => g.id,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(..) => Backend::Sqlite,
            Db::Postgres(..) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. SQLite takes the write lock up front (BEGIN IMMEDIATE):
    /// a deferred transaction that reads before writing can fail to upgrade under WAL.
    ///
    /// SQLite has one writer at a time. The writers of this process queue for the write
    /// connection (a fair pool of one), in arrival order, before they ask SQLite: SQLite's
    /// own busy handler lets waiting connections sleep and poll (1, 2, 5, 10 ... ms), so
    /// under concurrent writes the lock sat idle between holders and throughput collapsed
    /// while latency grew to seconds.
    /// Writers of other processes still meet SQLite's busy timeout. Waiting here is bounded
    /// like that timeout, so a writer that waits on itself fails as it did, not forever.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(p, gate) => match gate.write_pool.as_ref().unwrap_or(p).begin_with("BEGIN IMMEDIATE").await {
                Ok(t) => Tx::Sqlite(t),
                Err(sqlx::Error::PoolTimedOut) => {
                    return Err(StoreError::Config("the database stayed busy with other writes; try again".into()))
                }
                Err(e) => return Err(e.into()),
            },
            Db::Postgres(p, _) => Tx::Postgres(p.begin().await?),
        })
    }

    pub async fn fetch(&self, q: &Q, types: &[SqlType]) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Sqlite(p, _) => {
                let text = sqlite_text(&q.sql);
                let rows = sqlite_query(q, &text).fetch_all(p).await?;
                rows.iter().map(|r| decode_sqlite(r, types)).collect()
            }
            Db::Postgres(p, _) => {
                let rows = pg_query(q).fetch_all(p).await?;
                rows.iter().map(|r| decode_pg(r, types)).collect()
            }
        }
    }

    pub async fn fetch_one(&self, q: &Q, types: &[SqlType]) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch(q, types).await?.into_iter().next())
    }

    pub async fn execute(&self, q: &Q) -> Result<u64, StoreError> {
        Ok(match self {
            Db::Sqlite(p, _) => {
                let text = sqlite_text(&q.sql);
                sqlite_query(q, &text).execute(p).await?.rows_affected()
            }
            Db::Postgres(p, _) => pg_query(q).execute(p).await?.rows_affected(),
        })
    }

    /// Runs a script of statements separated by `;` lines (migrations).
    pub async fn execute_script(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(p, _) => {
                sqlx::raw_sql(sql).execute(p).await?;
            }
            Db::Postgres(p, _) => {
                sqlx::raw_sql(sql).execute(p).await?;
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.execute(&Q::new("SELECT 1")).await.map(|_| ())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p, gate) => {
                if let Some(w) = &gate.write_pool {
                    w.close().await;
                }
                p.close().await
            }
            Db::Postgres(p, _) => p.close().await,
        }
    }
}

pub enum Tx {
    /// The transaction on the write connection (this process's turn to write, until it ends).
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn fetch(&mut self, q: &Q, types: &[SqlType]) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(t) => {
                let text = sqlite_text(&q.sql);
                let rows = sqlite_query(q, &text).fetch_all(&mut **t).await?;
                rows.iter().map(|r| decode_sqlite(r, types)).collect()
            }
            Tx::Postgres(t) => {
                let rows = pg_query(q).fetch_all(&mut **t).await?;
                rows.iter().map(|r| decode_pg(r, types)).collect()
            }
        }
    }

    pub async fn fetch_one(&mut self, q: &Q, types: &[SqlType]) -> Result<Option<Row>, StoreError> {
        Ok(self.fetch(q, types).await?.into_iter().next())
    }

    pub async fn execute(&mut self, q: &Q) -> Result<u64, StoreError> {
        Ok(match self {
            Tx::Sqlite(t) => {
                let text = sqlite_text(&q.sql);
                sqlite_query(q, &text).execute(&mut **t).await?.rows_affected()
            }
            Tx::Postgres(t) => pg_query(q).execute(&mut **t).await?.rows_affected(),
        })
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// `FOR UPDATE` where the backend has row locks; SQLite already holds the write lock.
    pub fn for_update(&self) -> &'static str {
        match self {
            Tx::Sqlite(..) => "",
            Tx::Postgres(_) => " FOR UPDATE",
        }
    }
}

/// The SQL text for SQLite with every `$n` turned into an anonymous `?`, and the order in
/// which the values bind to them.
///
/// sqlx looks up the name of every numbered parameter when it binds, and SQLite finds a name
/// by walking the list of all names: binding `$n` parameters costs O(n²) per statement. A
/// 500-row insert has tens of thousands of parameters, so the quadratic part dominated bulk
/// writes. Anonymous parameters have no names and bind in O(n). Quoted text (string
/// literals, quoted identifiers) is copied unchanged.
struct SqliteText<'a> {
    sql: std::borrow::Cow<'a, str>,
    /// `order[i]` is the index into `Q::params` of the i-th `?` (absent when the SQL has no
    /// `$n` and the values bind in their own order).
    order: Option<Vec<usize>>,
}

fn sqlite_text(sql: &str) -> SqliteText<'_> {
    if !sql.contains('$') {
        return SqliteText { sql: sql.into(), order: None };
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut quote: Option<u8> = None;
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let mut j = i + 1;
                let mut n = 0usize;
                while let Some(d) = bytes.get(j).filter(|d| d.is_ascii_digit()) {
                    n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                    j += 1;
                }
                out.push_str(&sql[start..i]);
                out.push('?');
                order.push(n.saturating_sub(1));
                start = j;
                i = j;
                continue;
            }
            None => {}
        }
        i += 1;
    }
    out.push_str(&sql[start..]);
    SqliteText { sql: out.into(), order: Some(order) }
}

static UNBOUND: Value = Value::Null(SqlType::Text);

fn sqlite_query<'q>(q: &'q Q, text: &'q SqliteText<'_>) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let mut query = sqlx::query(&text.sql);
    let values: Box<dyn Iterator<Item = &'q Value> + 'q> = match &text.order {
        // A placeholder past the last value reads as NULL, as SQLite does for unbound ones.
        Some(order) => Box::new(order.iter().map(|i| q.params.get(*i).unwrap_or(&UNBOUND))),
        None => Box::new(q.params.iter()),
    };
    for v in values {
        query = match v {
            Value::Null(_) => query.bind(None::<String>),
            Value::Text(s) => query.bind(s.as_str()),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Bool(b) => query.bind(*b),
            Value::Uuid(u) => query.bind(u.to_string()),
            Value::Date(d) => query.bind(d.format("%Y-%m-%d").to_string()),
            Value::Timestamp(t) => query.bind(format_timestamp(t)),
            Value::Json(j) => query.bind(j.to_string()),
        };
    }
    query
}

fn pg_query(q: &Q) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
    let mut query = sqlx::query(&q.sql);
    for v in &q.params {
        query = match v {
            Value::Null(t) => match t {
                SqlType::Text => query.bind(None::<String>),
                SqlType::Int => query.bind(None::<i64>),
                SqlType::Float => query.bind(None::<f64>),
                SqlType::Bool => query.bind(None::<bool>),
                SqlType::Uuid => query.bind(None::<Uuid>),
                SqlType::Date => query.bind(None::<NaiveDate>),
                SqlType::Timestamp => query.bind(None::<DateTime<Utc>>),
                SqlType::Json => query.bind(None::<sqlx::types::Json<serde_json::Value>>),
            },
            Value::Text(s) => query.bind(s.as_str()),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Bool(b) => query.bind(*b),
            Value::Uuid(u) => query.bind(*u),
            Value::Date(d) => query.bind(*d),
            Value::Timestamp(t) => query.bind(*t),
            Value::Json(j) => query.bind(sqlx::types::Json(j.clone())),
        };
    }
    query
}

fn corrupt(what: &str, raw: &str) -> StoreError {
    StoreError::Corrupt(format!("cannot read {what} from {:?}", raw.chars().take(60).collect::<String>()))
}

fn decode_sqlite(row: &SqliteRow, types: &[SqlType]) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let v = match t {
            SqlType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            SqlType::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            SqlType::Float => row.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            SqlType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            SqlType::Uuid => match row.try_get::<Option<String>, _>(i)? {
                Some(s) => Some(Value::Uuid(Uuid::parse_str(&s).map_err(|_| corrupt("uuid", &s))?)),
                None => None,
            },
            SqlType::Date => match row.try_get::<Option<String>, _>(i)? {
                Some(s) => Some(Value::Date(NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| corrupt("date", &s))?)),
                None => None,
            },
            SqlType::Timestamp => match row.try_get::<Option<String>, _>(i)? {
                Some(s) => {
                    Some(Value::Timestamp(DateTime::parse_from_rfc3339(&s).map_err(|_| corrupt("timestamp", &s))?.with_timezone(&Utc)))
                }
                None => None,
            },
            SqlType::Json => match row.try_get::<Option<String>, _>(i)? {
                Some(s) => Some(Value::Json(serde_json::from_str(&s).map_err(|_| corrupt("json", &s))?)),
                None => None,
            },
        };
        out.push(v.unwrap_or(Value::Null(*t)));
    }
    Ok(Row(out))
}

fn decode_pg(row: &PgRow, types: &[SqlType]) -> Result<Row, StoreError> {
    let mut out = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let v = match t {
            SqlType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            // Literals and some functions come back as INT4; columns are always BIGINT.
            SqlType::Int => match row.try_get::<Option<i64>, _>(i) {
                Ok(v) => v.map(Value::Int),
                Err(_) => row.try_get::<Option<i32>, _>(i)?.map(|v| Value::Int(v.into())),
            },
            SqlType::Float => row.try_get::<Option<f64>, _>(i)?.map(Value::Float),
            SqlType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            SqlType::Uuid => row.try_get::<Option<Uuid>, _>(i)?.map(Value::Uuid),
            SqlType::Date => row.try_get::<Option<NaiveDate>, _>(i)?.map(Value::Date),
            SqlType::Timestamp => row.try_get::<Option<DateTime<Utc>>, _>(i)?.map(Value::Timestamp),
            SqlType::Json => row.try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(i)?.map(|j| Value::Json(j.0)),
        };
        out.push(v.unwrap_or(Value::Null(*t)));
    }
    Ok(Row(out))
}

#[cfg(test)]
mod tests {
    use super::sqlite_text;

    #[test]
    fn chunks_repeat_a_few_lengths() {
        let lens = |n, max| super::stable_chunks(n, max).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(lens(0, 8), Vec::<usize>::new());
        assert_eq!(lens(21, 8), vec![8, 8, 4, 1]);
        assert_eq!(lens(7, 8), vec![4, 2, 1]);
        assert_eq!(super::stable_chunks(13, 4).last(), Some(&(12..13)));
        assert_eq!(super::padded(&[1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(super::padded::<u8>(&[]), Vec::<u8>::new());
    }

    #[test]
    fn numbered_parameters_become_anonymous_in_binding_order() {
        let t = sqlite_text("SELECT a FROM t WHERE x = $2 AND y = $1 AND z = $2 AND w = '$3' AND \"$4\" = $10");
        assert_eq!(t.sql, "SELECT a FROM t WHERE x = ? AND y = ? AND z = ? AND w = '$3' AND \"$4\" = ?");
        assert_eq!(t.order, Some(vec![1, 0, 1, 9]));
        let plain = sqlite_text("SELECT 1 WHERE a = 'it''s $1'");
        assert_eq!(plain.sql, "SELECT 1 WHERE a = 'it''s $1'");
        assert_eq!(plain.order, Some(vec![]));
        assert_eq!(sqlite_text("SELECT ?").order, None);
    }
}
