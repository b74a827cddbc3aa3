//! The governance pipeline. Every write of a record (API, UI forms, bulk, import) passes
//! through here inside the write's own transaction, so a rule can never be skipped by taking
//! another door in.
//!
//! A `Pipeline` is loaded once per transaction (imports load one per batch): rule sets,
//! policies and round-robin positions are read once, applied to every record of the batch,
//! and written back by `finish`. Each step lives in its own module.

use crate::audit::{self, AuditCtx, Change};
use crate::db::Tx;
use crate::records::Tenant;
use crate::{assignment, dedupe, governance, privacy, scoring, Result};
use corvid_core::meta::ObjectDef;
use corvid_core::record::Record;
use corvid_core::validate::Changes;
use std::collections::HashSet;
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
    /// Batch mode (imports): audit rows are collected and appended once in `finish`, record
    /// numbers are reserved in blocks, and each created record is audited as one row.
    pub batch: bool,
    pub(crate) audit_ctx: AuditCtx,
    pub(crate) deferred_audit: Vec<Change>,
    /// Reserved record numbers: the next one and the end of the block (exclusive).
    pub(crate) numbers: (i64, i64),
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
}

impl Pipeline {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Pipeline> {
        Ok(Pipeline {
            batch: false,
            audit_ctx: tenant.audit.clone(),
            deferred_audit: Vec::new(),
            numbers: (0, 0),
            verified: HashSet::new(),
            run_assignment: true,
            governance: governance::Step::load(tx, tenant, object).await?,
            dedupe: dedupe::Step::load(tx, tenant, object).await?,
            scoring: scoring::Step::load(tx, tenant, object).await?,
            assignment: assignment::Step::load(tx, tenant, object).await?,
            privacy: privacy::Step::load(tx, tenant, object).await?,
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
        Ok(audit)
    }

    /// Batch mode for imports (see `batch`).
    pub fn for_batch(mut self) -> Pipeline {
        self.batch = true;
        self
    }

    /// Writes back state kept in memory for the batch (round-robin positions and the like).
    pub async fn finish(self, tx: &mut Tx) -> Result<()> {
        self.assignment.finish(tx).await?;
        audit::append(tx, &self.audit_ctx, &self.deferred_audit).await?;
        Ok(())
    }
}
