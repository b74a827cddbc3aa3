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
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
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
                .busy_timeout(Duration::from_secs(15))
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-65536");
            let path = opts.get_filename().to_path_buf();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
            }
            let pool = SqlitePoolOptions::new().max_connections(8).min_connections(1).connect_with(opts).await?;
            Ok(Db::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("bad PostgreSQL URL: {e}")))?;
            Self::connect_postgres(opts, 16).await
        } else {
            Err(StoreError::Config("database URL must start with sqlite:// or postgres://".into()))
        }
    }

    pub async fn connect_postgres(opts: PgConnectOptions, max: u32) -> Result<Db, StoreError> {
        let pool = PgPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(30)).connect_with(opts).await?;
        Ok(Db::Postgres(pool))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. SQLite takes the write lock up front (BEGIN IMMEDIATE):
    /// a deferred transaction that reads before writing can fail to upgrade under WAL.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    pub async fn fetch(&self, q: &Q, types: &[SqlType]) -> Result<Vec<Row>, StoreError> {
        match self {
            Db::Sqlite(p) => {
                let rows = sqlite_query(q).fetch_all(p).await?;
                rows.iter().map(|r| decode_sqlite(r, types)).collect()
            }
            Db::Postgres(p) => {
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
            Db::Sqlite(p) => sqlite_query(q).execute(p).await?.rows_affected(),
            Db::Postgres(p) => pg_query(q).execute(p).await?.rows_affected(),
        })
    }

    /// Runs a script of statements separated by `;` lines (migrations).
    pub async fn execute_script(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Db::Sqlite(p) => {
                sqlx::raw_sql(sql).execute(p).await?;
            }
            Db::Postgres(p) => {
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
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn fetch(&mut self, q: &Q, types: &[SqlType]) -> Result<Vec<Row>, StoreError> {
        match self {
            Tx::Sqlite(t) => {
                let rows = sqlite_query(q).fetch_all(&mut **t).await?;
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
            Tx::Sqlite(t) => sqlite_query(q).execute(&mut **t).await?.rows_affected(),
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
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR UPDATE",
        }
    }
}

fn sqlite_query(q: &Q) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    let mut query = sqlx::query(&q.sql);
    for v in &q.params {
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
