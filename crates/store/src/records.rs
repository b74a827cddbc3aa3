//! The metadata-driven record repository. Every object is served by this one code path:
//! it is always scoped to the caller's company (a `Tenant` can only be made after the
//! membership check), validates through core, and writes the audit rows in the same
//! transaction as the change.

use crate::access::{self, Access};
use crate::audit::{self, AuditCtx, Change};
use crate::custom_fields;
use crate::db::{Backend, Db, Tx, Q};
use crate::listing::{self, ListQuery, Resolver};
use crate::pipeline::{Pipeline, Write};
use crate::{new_id, Result, StoreError};
use corvid_core::access::{owner_column, Action, Scope};
use corvid_core::meta::{DeleteMode, ObjectDef, SYSTEM_COLUMNS};
use corvid_core::record::{derive, Record};
use corvid_core::role::Role;
use corvid_core::validate::{Changes, Mode, Validator};
use corvid_core::value::now_micros;
use corvid_core::{money, Field, FieldError, FieldKind, SqlType, Value};
use serde_json::Map;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The caller inside one company: who they are, their role, and where the request came from.
/// Handlers obtain it only from the membership check, so holding one means access was granted.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub company_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub calling_code: String,
    pub audit: AuditCtx,
    /// What this member may do (role matrix, field access, team).
    pub access: Access,
}

impl Tenant {
    /// A tenant handle for the system or the command line: unrestricted access.
    pub fn system(company_id: Uuid, user_id: Uuid, calling_code: String, audit: AuditCtx) -> Tenant {
        Tenant { company_id, user_id, role: Role::Admin, calling_code, audit, access: Access::unrestricted(user_id) }
    }

    pub fn records<'a>(&'a self, db: &'a Db, object: &'static ObjectDef) -> Records<'a> {
        Records { db, object, tenant: self }
    }
}

pub struct Records<'a> {
    db: &'a Db,
    object: &'static ObjectDef,
    tenant: &'a Tenant,
}

/// An idempotency key and a digest of the request that carried it.
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub request_hash: &'a str,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum BulkRequest {
    Create { records: Vec<Map<String, serde_json::Value>> },
    Update { ids: Vec<String>, changes: Map<String, serde_json::Value> },
    Delete { ids: Vec<String> },
    Restore { ids: Vec<String> },
}

pub const MAX_BULK: usize = 500;

fn columns(object: &ObjectDef) -> (String, Vec<SqlType>) {
    let mut names: Vec<String> = SYSTEM_COLUMNS.iter().filter(|(c, _)| *c != "company_id").map(|(c, _)| c.to_string()).collect();
    let mut types: Vec<SqlType> = SYSTEM_COLUMNS.iter().filter(|(c, _)| *c != "company_id").map(|(_, t)| *t).collect();
    for f in &object.fields {
        names.push(f.name.clone());
        types.push(f.kind.sql_type());
    }
    (names.join(", "), types)
}

fn to_record(object: &ObjectDef, row: crate::db::Row) -> Record {
    // Column order: id, number, version, created_at, updated_at, created_by, updated_by,
    // deleted_at, custom, then the object's fields.
    let custom = row.json(8).and_then(|j| j.as_object().cloned()).unwrap_or_default();
    let mut vals = row.clone().take().into_iter().skip(9);
    let mut fields = BTreeMap::new();
    for f in &object.fields {
        fields.insert(f.name.clone(), vals.next().unwrap_or(Value::Null(f.kind.sql_type())));
    }
    Record {
        id: row.uuid(0).unwrap_or_default(),
        number: row.text(1).unwrap_or_default(),
        version: row.int(2).unwrap_or(0),
        created_at: row.timestamp(3).unwrap_or_default(),
        updated_at: row.timestamp(4).unwrap_or_default(),
        created_by: row.uuid(5),
        updated_by: row.uuid(6),
        deleted_at: row.timestamp(7),
        fields,
        custom,
        redacted: Vec::new(),
    }
}

/// The audit text of a value: money as an amount in its currency, everything else as JSON text.
fn audit_text(field: &Field, value: &Value, currency: Option<&str>) -> Option<String> {
    match (&field.kind, value) {
        (FieldKind::Money { .. }, Value::Int(minor)) => {
            let cur = currency.unwrap_or("INR");
            Some(format!("{} {cur}", money::format_minor(*minor, money::currency_exponent(cur).unwrap_or(2))))
        }
        _ => value.audit_text(),
    }
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Records<'_> {
    pub fn object(&self) -> &'static ObjectDef {
        self.object
    }

    fn table(&self) -> &str {
        &self.object.name
    }

    pub async fn custom_fields(&self) -> Result<Vec<Field>> {
        custom_fields::list(self.db, self.tenant.company_id, &self.object.name).await
    }

    fn validator<'v>(&'v self, custom: &'v [Field]) -> Validator<'v> {
        Validator { object: self.object, custom_fields: custom, default_calling_code: &self.tenant.calling_code }
    }

    fn ensure_writer(&self) -> Result<()> {
        if self.tenant.access.may_write(&self.object.name) {
            Ok(())
        } else {
            Err(StoreError::Forbidden(format!(
                "the {} role can read but not change {}",
                self.tenant.access.role_label,
                self.object.label_plural.to_lowercase()
            )))
        }
    }

    fn access(&self) -> &Access {
        &self.tenant.access
    }

    /// A record as this member may see it: outside the read scope it does not exist (404,
    /// as for another company's ids); hidden fields are withheld.
    fn visible(&self, mut rec: Record) -> Result<Record> {
        self.access().require(self.object, Action::Read)?;
        if !self.access().allows_record(self.object, Action::Read, &rec) {
            return Err(StoreError::NotFound);
        }
        self.access().redact(self.object, &mut rec);
        Ok(rec)
    }

    fn shown(&self, mut rec: Record) -> Record {
        self.access().redact(self.object, &mut rec);
        rec
    }

    /// A refusal as this member may read it: duplicate candidates outside their scope lose
    /// their titles.
    async fn explain(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Duplicate(found) => match access::visible_candidates(self.db, self.tenant, found).await {
                Ok(found) => StoreError::Duplicate(found),
                Err(e) => e,
            },
            other => other,
        }
    }

    /// Checks that the member may `action` the stored `rec`: out of read scope is a 404,
    /// readable but out of the action's scope a 403.
    fn check_record(&self, action: Action, rec: &Record, channel: &str) -> Result<()> {
        if access::is_system_channel(channel) {
            return Ok(());
        }
        if !self.access().allows_record(self.object, Action::Read, rec) {
            return Err(StoreError::NotFound);
        }
        self.access().require(self.object, action)?;
        if !self.access().allows_record(self.object, action, rec) {
            return Err(StoreError::Forbidden(format!(
                "the {} role cannot {} this {}: it is outside the records it may {}",
                self.access().role_label,
                action.verb(),
                self.object.singular,
                action.verb()
            )));
        }
        Ok(())
    }

    /// Checks that the member may `action` the stored `rec` (for workflows such as merges
    /// that change records outside the generic paths): 404 outside the read scope, else 403.
    pub fn authorize(&self, action: Action, rec: &Record) -> Result<()> {
        self.check_record(action, rec, "interactive")
    }

    /// Checks the owner a write would leave on a record against the action's scope.
    fn check_owner(&self, action: Action, changes: &Changes, channel: &str) -> Result<()> {
        if access::is_system_channel(channel) {
            return Ok(());
        }
        let col = owner_column(&self.object.name);
        let Some(value) = changes.fields.get(col) else { return Ok(()) };
        let owner = match value {
            Value::Uuid(u) => Some(*u),
            _ => None,
        };
        if self.access().allows(&self.object.name, action, owner) {
            return Ok(());
        }
        let scope = self.access().scope(&self.object.name, action);
        Err(StoreError::FieldForbidden(vec![FieldError::new(
            col,
            match scope {
                Scope::Own => "your role may only give these records to yourself",
                _ => "your role may only give these records to yourself or your team",
            },
        )]))
    }

    pub async fn get(&self, id: Uuid) -> Result<Record> {
        let rec = self.get_in(None, id, true).await?;
        self.visible(rec)
    }

    async fn get_in(&self, tx: Option<&mut Tx>, id: Uuid, include_deleted: bool) -> Result<Record> {
        let (cols, types) = columns(self.object);
        let lock = tx.as_ref().map_or("", |t| t.for_update());
        let deleted = if include_deleted { "" } else { " AND deleted_at IS NULL" };
        let q = Q::new(format!("SELECT {cols} FROM {} WHERE company_id = $1 AND id = $2{deleted}{lock}", self.table()))
            .bind(Value::Uuid(self.tenant.company_id))
            .bind(Value::Uuid(id));
        let row = match tx {
            Some(tx) => tx.fetch_one(&q, &types).await?,
            None => self.db.fetch_one(&q, &types).await?,
        };
        row.map(|r| to_record(self.object, r)).ok_or(StoreError::NotFound)
    }

    /// A page of records and the cursor of the next page.
    pub async fn list(&self, lq: &ListQuery) -> Result<(Vec<Record>, Option<String>, Vec<Field>)> {
        self.list_for(lq, Action::Read).await
    }

    /// A page of the records within `action`'s scope (`Export` for exports).
    pub async fn list_for(&self, lq: &ListQuery, action: Action) -> Result<(Vec<Record>, Option<String>, Vec<Field>)> {
        self.access().require(self.object, Action::Read)?;
        self.access().require(self.object, action)?;
        self.check_query_fields(lq)?;
        let custom = self.custom_fields().await?;
        let resolver = Resolver { object: self.object, custom: &custom };
        let limit = lq.limit.unwrap_or(listing::DEFAULT_LIMIT);
        if limit == 0 || limit > listing::MAX_LIMIT {
            return Err(StoreError::invalid("limit", "must be from 1 to 200"));
        }
        if let Some(f) = &lq.fields {
            resolver.check_fields(f).map_err(StoreError::Invalid)?;
        }
        let keys = listing::sort_targets(&resolver, &lq.sort).map_err(StoreError::Invalid)?;
        let backend = self.db.backend();
        let (cols, types) = columns(self.object);
        let mut q = Q::new(format!("SELECT {cols} FROM {} WHERE company_id = ", self.table()));
        let p = q.param(Value::Uuid(self.tenant.company_id));
        q.push(&p);
        let plan = self.search_plan(lq, &keys).await?;
        listing::push_where(&mut q, backend, &resolver, lq, plan).map_err(StoreError::Invalid)?;
        self.access().push_filter(&mut q, self.object, action, None)?;
        if let Some(c) = &lq.cursor {
            let values = listing::decode_cursor(c, &keys).map_err(|e| StoreError::Invalid(vec![e]))?;
            listing::push_after(&mut q, backend, &keys, &values);
        }
        listing::push_order(&mut q, backend, &keys);
        q.push(&format!(" LIMIT {}", limit + 1));
        let mut records: Vec<Record> =
            self.db.fetch(&q, &types).await?.into_iter().map(|r| self.shown(to_record(self.object, r))).collect();
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|r| listing::encode_cursor(&listing::cursor_values(&keys, r)))
        } else {
            None
        };
        Ok((records, next, custom))
    }

    /// How SQLite should read a search: when the list is sorted by an indexed column and the
    /// words match more than `FEW_MATCHES` records, in the list's order (see `SearchPlan`).
    /// Counting stops at that bound, so the count costs a few milliseconds at most.
    async fn search_plan(&self, lq: &ListQuery, keys: &[(listing::Target, bool)]) -> Result<listing::SearchPlan> {
        let text = lq.q.as_deref().map(str::trim).unwrap_or("");
        let indexed_order =
            matches!(keys.first(), Some((listing::Target::Column { name, .. }, _)) if matches!(name.as_str(), "created_at" | "updated_at"));
        if self.db.backend() != Backend::Sqlite || text.is_empty() || text.chars().count() > 200 || !indexed_order {
            return Ok(listing::SearchPlan::Matches);
        }
        let Some(expr) = listing::search_expr(Backend::Sqlite, text) else { return Ok(listing::SearchPlan::Matches) };
        let q = listing::count_matches_query(&self.object.name, &expr);
        let matches = self.db.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0);
        Ok(if matches > listing::FEW_MATCHES { listing::SearchPlan::InOrder } else { listing::SearchPlan::Matches })
    }

    /// Hidden fields may not be filtered, sorted, projected or searched on: the answer would
    /// reveal their values.
    fn check_query_fields(&self, lq: &ListQuery) -> Result<()> {
        let hidden = self.access().hidden_fields(&self.object.name);
        if hidden.is_empty() {
            return Ok(());
        }
        let filters: Vec<&str> = lq.groups.iter().flatten().map(|c| c.field.as_str()).collect();
        self.access().check_readable(&self.object.name, &filters, "filters")?;
        let sorts: Vec<&str> = lq.sort.iter().map(|k| k.field.as_str()).collect();
        self.access().check_readable(&self.object.name, &sorts, "sorting")?;
        if let Some(f) = &lq.fields {
            let names: Vec<&str> = f.iter().map(String::as_str).collect();
            self.access().check_readable(&self.object.name, &names, "a field list")?;
        }
        if lq.q.as_deref().is_some_and(|q| !q.trim().is_empty()) {
            let searched: Vec<&str> =
                self.object.fields.iter().filter(|f| f.searchable && hidden.contains(&f.name)).map(|f| f.name.as_str()).collect();
            self.access().check_readable(&self.object.name, &searched, "search (search covers it)")?;
        }
        Ok(())
    }

    /// Creates a record. With an idempotency key, a repeat returns the first record
    /// (`true` in the second place) instead of creating another.
    pub async fn create(&self, input: &Map<String, serde_json::Value>, idem: Option<Idempotency<'_>>) -> Result<(Record, bool)> {
        let custom = self.custom_fields().await?;
        self.create_with(custom, input, idem).await
    }

    /// `create` with the object's custom fields as the caller already read them (`custom_fields`),
    /// for callers that need them again to render the record.
    pub async fn create_with(
        &self,
        custom: Vec<Field>,
        input: &Map<String, serde_json::Value>,
        idem: Option<Idempotency<'_>>,
    ) -> Result<(Record, bool)> {
        self.ensure_writer()?;
        let out = match idem {
            // Written in one transaction with concurrent creates of the company (same rules,
            // own audit context; see `pipeline::grouped_create`).
            None => crate::pipeline::grouped_create(self.db, self.tenant, self.object, custom, input.clone()).await.map(|r| (r, false)),
            Some(idem) => self.create_alone(&custom, input, Some(idem)).await,
        };
        match out {
            Ok((rec, replayed)) => Ok((self.shown(rec), replayed)),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// A create in a transaction of its own.
    async fn create_alone(
        &self,
        custom: &[Field],
        input: &Map<String, serde_json::Value>,
        idem: Option<Idempotency<'_>>,
    ) -> Result<(Record, bool)> {
        let mut tx = self.db.begin().await?;
        let mut pipeline = Pipeline::load(&mut tx, self.tenant, self.object).await?;
        let out = self.create_tx(&mut tx, custom, &mut pipeline, input, idem, "interactive").await?;
        pipeline.finish(&mut tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// A create of a failed group, again in a transaction of its own.
    pub(crate) async fn create_single(&self, custom: &[Field], input: &Map<String, serde_json::Value>) -> Result<Record> {
        Ok(self.create_alone(custom, input, None).await?.0)
    }

    async fn create_tx(
        &self,
        tx: &mut Tx,
        custom: &[Field],
        pipeline: &mut Pipeline,
        input: &Map<String, serde_json::Value>,
        idem: Option<Idempotency<'_>>,
        channel: &str,
    ) -> Result<(Record, bool)> {
        if let Some(i) = &idem {
            let q =
                Q::new("SELECT object, record_id, request_hash FROM idempotency_keys WHERE company_id = $1 AND user_id = $2 AND key = $3")
                    .bind(Value::Uuid(self.tenant.company_id))
                    .bind(Value::Uuid(self.tenant.user_id))
                    .bind(Value::Text(i.key.into()));
            if let Some(r) = tx.fetch_one(&q, &[SqlType::Text, SqlType::Uuid, SqlType::Text]).await? {
                if r.text(0).as_deref() != Some(self.object.name.as_str()) || r.text(2).as_deref() != Some(i.request_hash) {
                    return Err(StoreError::Conflict("this Idempotency-Key was already used for a different request".into()));
                }
                let id = r.uuid(1).ok_or(StoreError::NotFound)?;
                return Ok((self.get_in(Some(tx), id, true).await?, true));
            }
        }
        let action = if channel == "import" { Action::Import } else { Action::Create };
        if !access::is_system_channel(channel) {
            self.access().require(self.object, action)?;
        }
        if access::is_member_input(channel) {
            self.access().check_input(self.object, input)?;
        }
        let mut changes = match pipeline.validated.take() {
            Some(validated) => validated,
            None => self.validator(custom).validate(input, Mode::Create).map_err(StoreError::Invalid)?,
        };
        let now = now_micros();
        derive(self.object, &mut changes, None, now).map_err(StoreError::Invalid)?;
        crate::convert::guard_status(self.object, channel, None, &changes)?;
        // The owner the member asked for; assignment rules may route the record further.
        self.check_owner(action, &changes, channel)?;
        let write = Write { tenant: self.tenant, object: self.object, existing: None, channel };
        let pipeline_audit = pipeline.before_write(tx, &write, &mut changes).await?;
        self.apply_owner_defaults(&mut changes);
        self.check_references(tx, &changes, None, &mut pipeline.verified).await?;

        let number = self.next_number(tx, pipeline).await?;
        let number_for_record = number.clone();
        let id = new_id();
        let mut names = vec!["id", "company_id", "number", "version", "created_at", "updated_at", "created_by", "updated_by", "custom"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        let custom_json =
            serde_json::Value::Object(changes.custom.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect());
        let mut q = Q::new(String::new());
        let mut ps = vec![
            q.param(Value::Uuid(id)),
            q.param(Value::Uuid(self.tenant.company_id)),
            q.param(Value::Text(number)),
            q.param(Value::Int(1)),
            q.param(Value::Timestamp(now)),
            q.param(Value::Timestamp(now)),
            q.param(Value::Uuid(self.tenant.user_id)),
            q.param(Value::Uuid(self.tenant.user_id)),
            q.param(Value::Json(custom_json)),
        ];
        for (name, value) in &changes.fields {
            names.push(name.clone());
            ps.push(q.param(value.clone()));
        }
        if pipeline.defers_insert(self.object) {
            // Batches insert their rows together (`Pipeline::flush`).
            pipeline.defer_insert(self.object, id, names, q.params);
        } else {
            q.sql = format!("INSERT INTO {} ({}) VALUES ({})", self.table(), names.join(", "), ps.join(", "));
            tx.execute(&q).await?;
        }

        let currency = changes.fields.get("currency").and_then(Value::as_str).map(str::to_string);
        // A record's creation is audited as one row holding all its values (readers see it
        // field by field, `AuditRow::expand_create`): a lead is one hashed audit row, not
        // twenty-odd, for single creates, grouped API creates and imports alike.
        let mut values = Map::new();
        for field in &self.object.fields {
            if let Some(v) = changes.fields.get(&field.name).filter(|v| !v.is_null()) {
                if let Some(text) = audit_text(field, v, currency.as_deref()) {
                    values.insert(field.name.clone(), serde_json::Value::String(text));
                }
            }
        }
        for (k, v) in changes.custom.iter().filter(|(_, v)| !v.is_null()) {
            values.insert(k.clone(), v.clone());
        }
        let mut audit_rows = vec![Change {
            object: self.object.name.clone(),
            record_id: Some(id),
            action: "create".into(),
            field: None,
            old: None,
            new: Some(serde_json::Value::Object(values).to_string()),
        }];
        if pipeline.batch {
            audit_rows.extend(pipeline_audit);
            pipeline.defer_audit(&self.tenant.audit, audit_rows);
            // The record as stored: batches insert it later (`Pipeline::flush`).
            let record = Record {
                id,
                number: number_for_record,
                version: 1,
                created_at: now,
                updated_at: now,
                created_by: Some(self.tenant.user_id),
                updated_by: Some(self.tenant.user_id),
                deleted_at: None,
                fields: self
                    .object
                    .fields
                    .iter()
                    .map(|f| (f.name.clone(), changes.fields.get(&f.name).cloned().unwrap_or(Value::Null(f.kind.sql_type()))))
                    .collect(),
                custom: changes.custom.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect(),
                redacted: Vec::new(),
            };
            let after = pipeline.after_write(tx, &write, &record).await?;
            pipeline.defer_audit(&self.tenant.audit, after);
            return Ok((record, false));
        }
        audit_rows.extend(pipeline_audit);
        audit::append(tx, &self.tenant.audit, &audit_rows).await?;
        if let Some(i) = &idem {
            let q = Q::new("INSERT INTO idempotency_keys (company_id, user_id, key, request_hash, object, record_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(Value::Uuid(self.tenant.company_id))
                .bind(Value::Uuid(self.tenant.user_id))
                .bind(Value::Text(i.key.into()))
                .bind(Value::Text(i.request_hash.into()))
                .bind(Value::Text(self.object.name.clone()))
                .bind(Value::Uuid(id))
                .bind(Value::Timestamp(now));
            match tx.execute(&q).await {
                Ok(_) => {}
                Err(e) if e.is_unique_violation() => {
                    return Err(StoreError::Conflict("a request with this Idempotency-Key is in progress".into()))
                }
                Err(e) => return Err(e),
            }
        }
        let record = self.get_in(Some(tx), id, true).await?;
        let after = pipeline.after_write(tx, &write, &record).await?;
        if !after.is_empty() {
            audit::append(tx, &self.tenant.audit, &after).await?;
            return Ok((self.get_in(Some(tx), id, true).await?, false));
        }
        Ok((record, false))
    }

    /// Creates a record inside the caller's transaction with the caller's pipeline (imports
    /// batch many rows in one and call `Pipeline::finish` once per batch).
    pub async fn create_in(
        &self,
        tx: &mut Tx,
        custom: &[Field],
        pipeline: &mut Pipeline,
        input: &Map<String, serde_json::Value>,
        channel: &str,
    ) -> Result<Record> {
        self.ensure_writer()?;
        Ok(self.create_tx(tx, custom, pipeline, input, None, channel).await?.0)
    }

    /// `create_in` for an input the caller already validated with `validate_new` (imports
    /// validate a batch up front to look up its duplicates at once).
    pub async fn create_in_validated(
        &self,
        tx: &mut Tx,
        custom: &[Field],
        pipeline: &mut Pipeline,
        input: &Map<String, serde_json::Value>,
        validated: Changes,
        channel: &str,
    ) -> Result<Record> {
        pipeline.validated = Some(validated);
        let out = self.create_in(tx, custom, pipeline, input, channel).await;
        // Never left for another row, whatever stopped this one.
        pipeline.validated = None;
        out
    }

    /// The values of a new record from `input`, validated as `create_in` validates them.
    pub fn validate_new(&self, custom: &[Field], input: &Map<String, serde_json::Value>) -> Result<Changes> {
        self.validator(custom).validate(input, Mode::Create).map_err(StoreError::Invalid)
    }

    /// Updates the current version of a record inside the caller's transaction.
    pub async fn update_in(
        &self,
        tx: &mut Tx,
        custom: &[Field],
        pipeline: &mut Pipeline,
        id: Uuid,
        input: &Map<String, serde_json::Value>,
        channel: &str,
    ) -> Result<Record> {
        self.ensure_writer()?;
        self.update_tx(tx, custom, pipeline, id, input, None, channel).await
    }

    /// Reads a record inside the caller's transaction, locking its row where the backend has
    /// row locks (workflows such as lead conversion read, decide and write under one lock).
    /// Deleted records are returned too; callers check `deleted_at`.
    pub async fn get_in_tx(&self, tx: &mut Tx, id: Uuid) -> Result<Record> {
        self.get_in(Some(tx), id, true).await
    }

    /// Reads a record (deleted ones too) inside the caller's transaction, locked for a change.
    pub async fn get_for_update(&self, tx: &mut Tx, id: Uuid) -> Result<Record> {
        self.get_in(Some(tx), id, true).await
    }

    /// Loads the governance pipeline for writes of this object inside `tx`.
    pub async fn pipeline(&self, tx: &mut Tx) -> Result<Pipeline> {
        Pipeline::load(tx, self.tenant, self.object).await
    }

    fn change(&self, action: &str, id: Option<Uuid>, field: &str, old: Option<String>, new: Option<String>) -> Change {
        Change { object: self.object.name.clone(), record_id: id, action: action.into(), field: Some(field.into()), old, new }
    }

    /// New records are owned by their creator unless an owner is given; activities belong to
    /// the user who logs them.
    fn apply_owner_defaults(&self, changes: &mut Changes) {
        for name in ["owner_id", "user_id"] {
            if self.object.field(name).is_some() && changes.fields.get(name).is_none_or(Value::is_null) {
                changes.fields.insert(name.into(), Value::Uuid(self.tenant.user_id));
            }
        }
    }

    /// The next human number. Batches reserve a block at a time (a failed row leaves a gap,
    /// as a database sequence would).
    async fn next_number(&self, tx: &mut Tx, pipeline: &mut Pipeline) -> Result<String> {
        if pipeline.numbers.0 >= pipeline.numbers.1 {
            let block: i64 = pipeline.number_block.max(1);
            let q = Q::new(
                "INSERT INTO counters (company_id, object, next) VALUES ($1, $2, $3) \
                 ON CONFLICT (company_id, object) DO UPDATE SET next = counters.next + $3 RETURNING next",
            )
            .bind(Value::Uuid(self.tenant.company_id))
            .bind(Value::Text(self.object.name.clone()))
            .bind(Value::Int(block));
            let last = tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(block);
            pipeline.numbers = (last - block + 1, last + 1);
        }
        let n = pipeline.numbers.0;
        pipeline.numbers.0 += 1;
        Ok(format!("{}-{n:05}", self.object.number_prefix))
    }

    /// Every reference must point at a live record (or an active member) of the same company;
    /// another company's id reads as "not found", like everywhere else.
    async fn check_references(
        &self,
        tx: &mut Tx,
        changes: &Changes,
        existing: Option<&Record>,
        verified: &mut std::collections::HashSet<(String, Uuid)>,
    ) -> Result<()> {
        let mut errors = Vec::new();
        for field in &self.object.fields {
            let Some(Value::Uuid(target)) = changes.fields.get(&field.name) else { continue };
            let table = match &field.kind {
                FieldKind::User => None,
                FieldKind::Reference { object } if object == "*" => {
                    let related = changes
                        .fields
                        .get("related_object")
                        .cloned()
                        .or_else(|| existing.and_then(|r| r.fields.get("related_object").cloned()));
                    match related.as_ref().and_then(Value::as_str).and_then(corvid_core::object) {
                        Some(o) => Some(o.name.clone()),
                        None => {
                            errors.push(FieldError::new(&field.name, "needs related_object"));
                            continue;
                        }
                    }
                }
                FieldKind::Reference { object } => Some(object.clone()),
                _ => continue,
            };
            if existing.is_some_and(|r| r.id == *target) && table.as_deref() == Some(self.object.name.as_str()) {
                errors.push(FieldError::new(&field.name, "cannot point at the record itself"));
                continue;
            }
            let seen_key = (table.clone().unwrap_or_else(|| "members".into()), *target);
            if verified.contains(&seen_key) {
                continue;
            }
            let q = match &table {
                None => Q::new("SELECT 1 FROM memberships WHERE company_id = $1 AND user_id = $2 AND is_active = $3")
                    .bind(Value::Uuid(self.tenant.company_id))
                    .bind(Value::Uuid(*target))
                    .bind(Value::Bool(true)),
                Some(t) => Q::new(format!("SELECT 1 FROM {t} WHERE company_id = $1 AND id = $2 AND deleted_at IS NULL"))
                    .bind(Value::Uuid(self.tenant.company_id))
                    .bind(Value::Uuid(*target)),
            };
            if tx.fetch_one(&q, &[SqlType::Int]).await?.is_none() {
                let what = if table.is_none() { "is not an active member of this company" } else { "does not exist" };
                errors.push(FieldError::new(&field.name, what));
            } else {
                verified.insert(seen_key);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid(errors))
        }
    }

    /// Applies a change if `expected_version` is still current; a stale version changes
    /// nothing and reports the current one.
    pub async fn update(&self, id: Uuid, input: &Map<String, serde_json::Value>, expected_version: i64) -> Result<Record> {
        self.ensure_writer()?;
        let custom = self.custom_fields().await?;
        let mut tx = self.db.begin().await?;
        let mut pipeline = Pipeline::load(&mut tx, self.tenant, self.object).await?;
        let rec = match self.update_tx(&mut tx, &custom, &mut pipeline, id, input, Some(expected_version), "interactive").await {
            Ok(rec) => rec,
            Err(e) => return Err(self.explain(e).await),
        };
        pipeline.finish(&mut tx).await?;
        tx.commit().await?;
        Ok(self.shown(rec))
    }

    #[allow(clippy::too_many_arguments)]
    async fn update_tx(
        &self,
        tx: &mut Tx,
        custom: &[Field],
        pipeline: &mut Pipeline,
        id: Uuid,
        input: &Map<String, serde_json::Value>,
        expected: Option<i64>,
        channel: &str,
    ) -> Result<Record> {
        let existing = self.get_in(Some(tx), id, false).await?;
        self.check_record(Action::Edit, &existing, channel)?;
        if access::is_member_input(channel) {
            self.access().check_input(self.object, input)?;
        }
        let mut changes = self.validator(custom).validate(input, Mode::Update).map_err(StoreError::Invalid)?;
        if let Some(v) = expected {
            if existing.version != v {
                return Err(StoreError::Stale { current: existing.version });
            }
        }
        let now = now_micros();
        derive(self.object, &mut changes, Some(&existing), now).map_err(StoreError::Invalid)?;
        crate::convert::guard_status(self.object, channel, Some(&existing), &changes)?;
        self.check_owner(Action::Edit, &changes, channel)?;
        let write = Write { tenant: self.tenant, object: self.object, existing: Some(&existing), channel };
        let pipeline_audit = pipeline.before_write(tx, &write, &mut changes).await?;
        // Only real differences are written and audited.
        changes.fields.retain(|k, v| existing.fields.get(k) != Some(v));
        changes.custom.retain(|k, v| existing.custom.get(k).unwrap_or(&serde_json::Value::Null) != v);
        if changes.fields.is_empty() && changes.custom.is_empty() {
            return Ok(existing);
        }
        self.check_references(tx, &changes, Some(&existing), &mut pipeline.verified).await?;

        let mut q = Q::new(String::new());
        let mut sets = Vec::new();
        for (name, value) in &changes.fields {
            let p = q.param(value.clone());
            sets.push(format!("{name} = {p}"));
        }
        if !changes.custom.is_empty() {
            let mut merged = existing.custom.clone();
            for (k, v) in &changes.custom {
                if v.is_null() {
                    merged.remove(k);
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
            let p = q.param(Value::Json(serde_json::Value::Object(merged)));
            sets.push(format!("custom = {p}"));
        }
        let pv = q.param(Value::Timestamp(now));
        let pu = q.param(Value::Uuid(self.tenant.user_id));
        let pc = q.param(Value::Uuid(self.tenant.company_id));
        let pi = q.param(Value::Uuid(id));
        let pe = q.param(Value::Int(existing.version));
        q.sql = format!(
            "UPDATE {} SET {}, version = version + 1, updated_at = {pv}, updated_by = {pu} WHERE company_id = {pc} AND id = {pi} AND version = {pe}",
            self.table(),
            sets.join(", ")
        );
        if tx.execute(&q).await? == 0 {
            return Err(StoreError::Stale { current: existing.version });
        }

        let old_cur = existing.text("currency").map(str::to_string);
        let new_cur = changes.fields.get("currency").and_then(Value::as_str).map(str::to_string).or(old_cur.clone());
        let mut rows = Vec::new();
        for field in &self.object.fields {
            if let Some(v) = changes.fields.get(&field.name) {
                let old = existing.fields.get(&field.name).and_then(|o| audit_text(field, o, old_cur.as_deref()));
                rows.push(self.change("update", Some(id), &field.name, old, audit_text(field, v, new_cur.as_deref())));
            }
        }
        for (k, v) in &changes.custom {
            rows.push(self.change("update", Some(id), k, existing.custom.get(k).and_then(json_text), json_text(v)));
        }
        rows.extend(pipeline_audit);
        audit::append(tx, &self.tenant.audit, &rows).await?;
        let record = self.get_in(Some(tx), id, true).await?;
        let after = pipeline.after_write(tx, &write, &record).await?;
        if !after.is_empty() {
            audit::append(tx, &self.tenant.audit, &after).await?;
            return self.get_in(Some(tx), id, true).await;
        }
        Ok(record)
    }

    /// Soft-deletes (or, for accounts, deactivates) a record.
    pub async fn delete(&self, id: Uuid, expected: Option<i64>) -> Result<Record> {
        self.ensure_writer()?;
        let mut tx = self.db.begin().await?;
        let rec = self.delete_tx(&mut tx, id, expected).await?;
        tx.commit().await?;
        Ok(self.shown(rec))
    }

    async fn delete_tx(&self, tx: &mut Tx, id: Uuid, expected: Option<i64>) -> Result<Record> {
        let existing = self.get_in(Some(tx), id, false).await?;
        self.check_record(Action::Delete, &existing, "interactive")?;
        if expected.is_some_and(|v| v != existing.version) {
            return Err(StoreError::Stale { current: existing.version });
        }
        match self.object.delete_mode {
            DeleteMode::Deactivate => {
                if existing.fields.get("is_active") == Some(&Value::Bool(false)) {
                    return Ok(existing);
                }
                self.set_flag(tx, &existing, "is_active = $1", Value::Bool(false)).await?;
                audit::append(
                    tx,
                    &self.tenant.audit,
                    &[self.change("deactivate", Some(id), "is_active", Some("true".into()), Some("false".into()))],
                )
                .await?;
            }
            DeleteMode::SoftDelete => {
                let now = now_micros();
                self.set_flag(tx, &existing, "deleted_at = $1", Value::Timestamp(now)).await?;
                let stamp = Value::Timestamp(now).audit_text();
                audit::append(tx, &self.tenant.audit, &[self.change("delete", Some(id), "deleted_at", None, stamp)]).await?;
                crate::dedupe::forget(tx, self.tenant.company_id, &[id]).await?;
            }
        }
        self.get_in(Some(tx), id, true).await
    }

    async fn set_flag(&self, tx: &mut Tx, existing: &Record, set: &str, value: Value) -> Result<()> {
        let q = Q::new(format!(
            "UPDATE {} SET {set}, version = version + 1, updated_at = $2, updated_by = $3 WHERE company_id = $4 AND id = $5 AND version = $6",
            self.table()
        ))
        .bind(value)
        .bind(Value::Timestamp(now_micros()))
        .bind(Value::Uuid(self.tenant.user_id))
        .bind(Value::Uuid(self.tenant.company_id))
        .bind(Value::Uuid(existing.id))
        .bind(Value::Int(existing.version));
        if tx.execute(&q).await? == 0 {
            return Err(StoreError::Stale { current: existing.version });
        }
        Ok(())
    }

    /// Brings back a deleted record (or reactivates an account).
    pub async fn restore(&self, id: Uuid) -> Result<Record> {
        self.ensure_writer()?;
        let mut tx = self.db.begin().await?;
        let rec = self.restore_tx(&mut tx, id).await?;
        tx.commit().await?;
        Ok(self.shown(rec))
    }

    async fn restore_tx(&self, tx: &mut Tx, id: Uuid) -> Result<Record> {
        let existing = self.get_in(Some(tx), id, true).await?;
        self.check_record(Action::Delete, &existing, "interactive")?;
        match self.object.delete_mode {
            DeleteMode::Deactivate => {
                if existing.fields.get("is_active") == Some(&Value::Bool(true)) && existing.deleted_at.is_none() {
                    return Ok(existing);
                }
                self.set_flag(tx, &existing, "is_active = $1", Value::Bool(true)).await?;
                audit::append(
                    tx,
                    &self.tenant.audit,
                    &[self.change("restore", Some(id), "is_active", Some("false".into()), Some("true".into()))],
                )
                .await?;
            }
            DeleteMode::SoftDelete => {
                let Some(at) = existing.deleted_at else { return Ok(existing) };
                crate::merge::refuse_restore(tx, self.object, self.tenant.company_id, &existing).await?;
                self.set_flag(tx, &existing, "deleted_at = $1", Value::Null(SqlType::Timestamp)).await?;
                audit::append(
                    tx,
                    &self.tenant.audit,
                    &[self.change("restore", Some(id), "deleted_at", Value::Timestamp(at).audit_text(), None)],
                )
                .await?;
                let restored = self.get_in(Some(tx), id, true).await?;
                crate::dedupe::index_record(tx, self.tenant.company_id, &self.object.name, &restored).await?;
            }
        }
        self.get_in(Some(tx), id, true).await
    }

    /// Runs a bulk action in one transaction: all items succeed or nothing changes. Errors
    /// name the failing item as `items[i].field`.
    pub async fn bulk(&self, req: &BulkRequest) -> Result<Vec<Record>> {
        self.ensure_writer()?;
        let count = match req {
            BulkRequest::Create { records } => records.len(),
            BulkRequest::Update { ids, .. } | BulkRequest::Delete { ids } | BulkRequest::Restore { ids } => ids.len(),
        };
        if count == 0 || count > MAX_BULK {
            return Err(StoreError::invalid("items", &format!("must have 1 to {MAX_BULK} items")));
        }
        let parse_ids = |ids: &[String]| -> Result<Vec<Uuid>> {
            let mut out: Vec<Uuid> = Vec::new();
            for (i, s) in ids.iter().enumerate() {
                let id = Uuid::parse_str(s).map_err(|_| StoreError::invalid(&format!("ids[{i}]"), "must be a valid id (UUID)"))?;
                if out.contains(&id) {
                    return Err(StoreError::invalid(&format!("ids[{i}]"), "is listed twice"));
                }
                out.push(id);
            }
            Ok(out)
        };
        let custom = self.custom_fields().await?;
        let mut tx = self.db.begin().await?;
        let mut pipeline = Pipeline::load(&mut tx, self.tenant, self.object).await?;
        let mut out = Vec::with_capacity(count);
        let prefix = |i: usize, e: StoreError, key: &str| match e {
            StoreError::Invalid(errs) => {
                StoreError::Invalid(errs.into_iter().map(|x| FieldError::new(format!("{key}[{i}].{}", x.field), x.reason)).collect())
            }
            StoreError::NotFound => StoreError::invalid(&format!("{key}[{i}]"), "does not exist"),
            other => other,
        };
        match req {
            BulkRequest::Create { records } => {
                for (i, input) in records.iter().enumerate() {
                    out.push(
                        self.create_tx(&mut tx, &custom, &mut pipeline, input, None, "bulk").await.map_err(|e| prefix(i, e, "records"))?.0,
                    );
                }
            }
            BulkRequest::Update { ids, changes } => {
                if changes.contains_key("version") {
                    return Err(StoreError::invalid("changes.version", "bulk updates apply to the current version; leave version out"));
                }
                for (i, id) in parse_ids(ids)?.into_iter().enumerate() {
                    out.push(
                        self.update_tx(&mut tx, &custom, &mut pipeline, id, changes, None, "bulk")
                            .await
                            .map_err(|e| prefix(i, e, "ids"))?,
                    );
                }
            }
            BulkRequest::Delete { ids } => {
                for (i, id) in parse_ids(ids)?.into_iter().enumerate() {
                    out.push(self.delete_tx(&mut tx, id, None).await.map_err(|e| prefix(i, e, "ids"))?);
                }
            }
            BulkRequest::Restore { ids } => {
                for (i, id) in parse_ids(ids)?.into_iter().enumerate() {
                    out.push(self.restore_tx(&mut tx, id).await.map_err(|e| prefix(i, e, "ids"))?);
                }
            }
        }
        tx.commit().await?;
        Ok(out.into_iter().map(|r| self.shown(r)).collect())
    }

    /// Records of this object that link to `(column, id)`, newest first (related lists).
    pub async fn linked(&self, column: &str, id: Uuid, limit: usize) -> Result<Vec<Record>> {
        if self.object.field(column).is_none() || self.access().scope(&self.object.name, Action::Read) == Scope::None {
            return Ok(Vec::new());
        }
        let (cols, types) = columns(self.object);
        let mut q = Q::new(format!("SELECT {cols} FROM {} WHERE company_id = $1 AND {column} = $2 AND deleted_at IS NULL", self.table()))
            .bind(Value::Uuid(self.tenant.company_id))
            .bind(Value::Uuid(id));
        self.access().push_filter(&mut q, self.object, Action::Read, None)?;
        q.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {}", limit.min(500)));
        Ok(self.db.fetch(&q, &types).await?.into_iter().map(|r| self.shown(to_record(self.object, r))).collect())
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }
}

/// Display titles of records of one object, by id, for showing references (one query).
pub async fn titles(db: &Db, company_id: Uuid, object: &ObjectDef, ids: &[Uuid]) -> Result<BTreeMap<Uuid, String>> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(500) {
        let mut q = Q::new(format!("SELECT id, number, {} FROM {} WHERE company_id = ", object.title_fields.join(", "), object.name));
        let p = q.param(Value::Uuid(company_id));
        q.push(&p);
        let ps: Vec<String> = chunk.iter().map(|id| q.param(Value::Uuid(*id))).collect();
        q.push(&format!(" AND id IN ({})", ps.join(", ")));
        let mut types = vec![SqlType::Uuid, SqlType::Text];
        types.extend(object.title_fields.iter().map(|_| SqlType::Text));
        for r in db.fetch(&q, &types).await? {
            let Some(id) = r.uuid(0) else { continue };
            let parts: Vec<String> = (2..types.len()).filter_map(|i| r.text(i)).collect();
            out.insert(id, if parts.is_empty() { r.text(1).unwrap_or_default() } else { parts.join(" ") });
        }
    }
    Ok(out)
}
