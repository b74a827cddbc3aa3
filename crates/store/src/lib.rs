//! Corvid persistence: SQLite and PostgreSQL behind one code path, migrations, the
//! metadata-driven record repository, the hash-chained audit trail, users and tokens.

pub mod access;
pub mod assignment;
pub mod audit;
pub mod auth;
pub mod companies;
pub mod convert;
pub mod custom_fields;
pub mod db;
pub mod dedupe;
pub mod demo;
pub mod governance;
pub mod import;
pub mod jobs;
pub mod listing;
pub mod merge;
pub mod migrate;
pub mod pipeline;
pub mod predictive;
pub mod privacy;
pub mod qualification;
pub mod quality;
pub mod records;
pub mod roles;
pub mod schema;
pub mod scoring;
pub mod settings;
pub mod stats;
pub mod syslog;
pub mod timeline;
pub mod web;

pub use db::{Backend, Db, Q};
pub use records::{Records, Tenant};

use corvid_core::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("stale version: the record is at version {current}")]
    Stale { current: i64 },
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The company's duplicate policy refused the write: the likely duplicates, best first.
    #[error("likely duplicate of {} existing record(s)", .0.len())]
    Duplicate(Vec<crate::dedupe::Candidate>),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Field-level permissions refused these fields (hidden or read-only for the role).
    #[error("forbidden fields")]
    FieldForbidden(Vec<FieldError>),
    #[error("configuration: {0}")]
    Config(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    pub fn invalid(field: &str, reason: &str) -> Self {
        StoreError::Invalid(vec![FieldError::new(field, reason)])
    }

    /// A unique-constraint violation, which callers turn into 409 rather than 500.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// New ids are UUIDv7: time-ordered, so the primary key index stays append-mostly.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
