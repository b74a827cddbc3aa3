//! Merging duplicates into one surviving record, in one transaction: each field takes the
//! value of the record the user picked, everything that pointed at the merged records
//! (activities, tasks, deals, duplicate marks) moves to the survivor, the merged records are
//! soft-deleted with `record_merges` remembering where they went, and every step is audited.
//!
//! An old id keeps resolving: [`merged_into`] says which record it became (chains of merges
//! are collapsed, so that is always the final survivor). The API answers a GET of a merged id
//! with `308 Permanent Redirect` to the survivor; the web app redirects to its page.

use crate::audit::{self, Change};
use crate::db::{Db, Tx, Q};
use crate::dedupe;
use crate::records::Tenant;
use crate::{Result, StoreError};
use corvid_core::access::Action;
use corvid_core::meta::{DeleteMode, Field, FieldKind, ObjectDef};
use corvid_core::record::{to_json, Record};
use corvid_core::value::now_micros;
use corvid_core::{FieldError, SqlType, Value};
use serde::Deserialize;
use serde_json::{json, Map};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Most records merged into one survivor at a time.
pub const MAX_MERGED: usize = 10;

/// Fields the engine owns: never copied from a merged record (they are checked again).
const ENGINE_FIELDS: &[&str] = &["is_duplicate", "duplicate_of_id"];

/// `POST .../leads/merge`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub survivor_id: String,
    pub merged_ids: Vec<String>,
    /// `{field: id of the record whose value the survivor takes}`; unlisted fields keep the
    /// survivor's value.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Optional `{id: version}` the caller saw; a record changed since is a 412.
    #[serde(default)]
    pub versions: BTreeMap<String, i64>,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct Merged {
    pub survivor: Record,
    pub merged_ids: Vec<Uuid>,
    /// Records re-pointed at the survivor, per object.
    pub moved: BTreeMap<String, i64>,
}

/// Whether a field's value can be picked from another record.
pub fn mergeable(field: &Field) -> bool {
    !field.read_only && !ENGINE_FIELDS.contains(&field.name.as_str())
}

/// A validated request: ids parsed and checked against each other.
struct Plan {
    survivor: Uuid,
    merged: Vec<Uuid>,
    fields: BTreeMap<String, Uuid>,
    versions: BTreeMap<Uuid, i64>,
}

fn parse_id(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    match Uuid::parse_str(s.trim()) {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push(FieldError::new(field, "must be a valid id (UUID)"));
            None
        }
    }
}

fn plan(object: &ObjectDef, custom: &[Field], req: &MergeRequest) -> Result<Plan> {
    let mut errors = Vec::new();
    let survivor = parse_id("survivor_id", &req.survivor_id, &mut errors);
    if req.merged_ids.is_empty() || req.merged_ids.len() > MAX_MERGED {
        errors.push(FieldError::new("merged_ids", format!("must list 1 to {MAX_MERGED} ids")));
    }
    let mut merged: Vec<Uuid> = Vec::new();
    for (i, s) in req.merged_ids.iter().take(MAX_MERGED).enumerate() {
        let name = format!("merged_ids[{i}]");
        let Some(id) = parse_id(&name, s, &mut errors) else { continue };
        if Some(id) == survivor {
            errors.push(FieldError::new(name, "is the survivor: a record cannot be merged into itself"));
        } else if merged.contains(&id) {
            errors.push(FieldError::new(name, "is listed twice"));
        } else {
            merged.push(id);
        }
    }
    let mut fields = BTreeMap::new();
    for (name, src) in &req.fields {
        let key = format!("fields.{}", name.chars().take(64).collect::<String>());
        let field = object.field(name).or_else(|| custom.iter().find(|f| &f.name == name));
        if !field.is_some_and(mergeable) {
            errors.push(FieldError::new(key, "is not a field whose value can be picked"));
            continue;
        }
        let Some(id) = parse_id(&key, src, &mut errors) else { continue };
        if Some(id) != survivor && !merged.contains(&id) {
            errors.push(FieldError::new(key, "must name the survivor or one of merged_ids"));
            continue;
        }
        fields.insert(name.clone(), id);
    }
    let mut versions = BTreeMap::new();
    for (id, v) in &req.versions {
        let key = format!("versions.{}", id.chars().take(40).collect::<String>());
        let Some(id) = parse_id(&key, id, &mut errors) else { continue };
        if Some(id) != survivor && !merged.contains(&id) {
            errors.push(FieldError::new(key, "must name the survivor or one of merged_ids"));
            continue;
        }
        versions.insert(id, *v);
    }
    match survivor {
        Some(survivor) if errors.is_empty() => Ok(Plan { survivor, merged, fields, versions }),
        _ => Err(StoreError::Invalid(errors)),
    }
}

/// The survivor a merged record became, if it was merged.
pub async fn merged_into(db: &Db, company_id: Uuid, id: Uuid) -> Result<Option<Uuid>> {
    let q = Q::new("SELECT survivor_id FROM record_merges WHERE company_id = $1 AND merged_id = $2")
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    Ok(db.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0)))
}

/// The number of the record a merged record became (for messages).
async fn merged_into_tx(tx: &mut Tx, object: &ObjectDef, company_id: Uuid, id: Uuid) -> Result<Option<String>> {
    let q = Q::new(format!(
        "SELECT r.number FROM record_merges m JOIN {} r ON r.company_id = m.company_id AND r.id = m.survivor_id \
         WHERE m.company_id = $1 AND m.merged_id = $2",
        object.name
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(id));
    Ok(tx.fetch_one(&q, &[SqlType::Text]).await?.and_then(|r| r.text(0)))
}

/// Refuses to restore a record that was merged: its values, links and history went to the
/// survivor, and bringing it back would make the duplicate the merge removed (restore,
/// bulk restore and the web's restore button all come here through the repository).
pub async fn refuse_restore(tx: &mut Tx, object: &ObjectDef, company_id: Uuid, rec: &Record) -> Result<()> {
    let q = Q::new(format!(
        "SELECT m.survivor_id, r.number FROM record_merges m LEFT JOIN {} r ON r.company_id = m.company_id AND r.id = m.survivor_id \
         WHERE m.company_id = $1 AND m.merged_id = $2",
        object.name
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(rec.id));
    let Some(row) = tx.fetch_one(&q, &[SqlType::Uuid, SqlType::Text]).await? else { return Ok(()) };
    let survivor = row.uuid(0).map(|u| u.to_string()).unwrap_or_default();
    let name = row.text(1).unwrap_or_else(|| survivor.clone());
    Err(StoreError::Conflict(format!(
        "{} was merged into {name} (id {survivor}) and cannot be restored; its values, activities and history are on {name}",
        rec.number
    )))
}

/// (table, column, extra condition) of every reference to records of `object`: reference
/// fields of any object, and the generic `related_id` of tasks.
fn references_to(object: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for o in corvid_core::objects() {
        for f in &o.fields {
            match &f.kind {
                FieldKind::Reference { object: target } if target == object => out.push((o.name.clone(), f.name.clone(), String::new())),
                FieldKind::Reference { object: target } if target == "*" => {
                    out.push((o.name.clone(), f.name.clone(), format!(" AND related_object = '{object}'")))
                }
                _ => {}
            }
        }
    }
    out
}

/// Re-points one reference column from the merged records to the survivor, bumping the
/// version of each changed record and auditing it. Returns how many records changed.
#[allow(clippy::too_many_arguments)]
async fn move_references(
    tx: &mut Tx,
    tenant: &Tenant,
    table: &str,
    column: &str,
    extra: &str,
    survivor: Uuid,
    merged: &[Uuid],
    skip: &[Uuid],
) -> Result<i64> {
    let mut q = Q::new(String::new());
    let pc = q.param(Value::Uuid(tenant.company_id));
    let ps: Vec<String> = merged.iter().map(|id| q.param(Value::Uuid(*id))).collect();
    let skip_sql = if skip.is_empty() {
        String::new()
    } else {
        let ks: Vec<String> = skip.iter().map(|id| q.param(Value::Uuid(*id))).collect();
        format!(" AND id NOT IN ({})", ks.join(", "))
    };
    q.sql = format!("SELECT id, {column} FROM {table} WHERE company_id = {pc} AND {column} IN ({}){extra}{skip_sql}", ps.join(", "));
    let rows = tx.fetch(&q, &[SqlType::Uuid, SqlType::Uuid]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let now = now_micros();
    let mut changes = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(500) {
        let mut q = Q::new(String::new());
        let pv = q.param(Value::Uuid(survivor));
        let pn = q.param(Value::Timestamp(now));
        let pu = q.param(Value::Uuid(tenant.user_id));
        let pc = q.param(Value::Uuid(tenant.company_id));
        let ids: Vec<String> = chunk.iter().filter_map(|r| r.uuid(0)).map(|id| q.param(Value::Uuid(id))).collect();
        q.sql = format!(
            "UPDATE {table} SET {column} = {pv}, version = version + 1, updated_at = {pn}, updated_by = {pu} WHERE company_id = {pc} AND id IN ({})",
            ids.join(", ")
        );
        tx.execute(&q).await?;
        for r in chunk {
            changes.push(Change {
                object: table.into(),
                record_id: r.uuid(0),
                action: "update".into(),
                field: Some(column.into()),
                old: r.uuid(1).map(|u| u.to_string()),
                new: Some(survivor.to_string()),
            });
        }
    }
    audit::append(tx, &tenant.audit, &changes).await?;
    Ok(rows.len() as i64)
}

/// Merges `req.merged_ids` into `req.survivor_id` (records of `object`), all or nothing.
///
/// Do-not-disturb on any of the records stays on the survivor. Contacts: only contacts of
/// one account merge, the survivor stays primary contact if a merged one was, and recorded
/// conversions that created a merged contact name the survivor.
///
/// Errors: 422 for a bad request (bad ids, a record merged into itself, an unknown or
/// read-only field, a source that is not part of the merge, a converted lead as merged
/// record, contacts of different accounts); 404 when a record does not exist in this company; 409 when one is deleted or was
/// merged already; 412 when `versions` is stale; 403 for read-only roles.
pub async fn merge(db: &Db, tenant: &Tenant, object: &'static ObjectDef, req: &MergeRequest) -> Result<Merged> {
    if !tenant.role.can_write() {
        return Err(StoreError::Forbidden("your role can read but not change records".into()));
    }
    if object.delete_mode != DeleteMode::SoftDelete {
        return Err(StoreError::Config(format!("{} cannot be merged", object.label_plural)));
    }
    let records = tenant.records(db, object);
    let custom = records.custom_fields().await?;
    let plan = plan(object, &custom, req)?;
    let mut tx = db.begin().await?;

    // Load and lock every record; check they may be merged.
    let mut all = vec![plan.survivor];
    all.extend(&plan.merged);
    let mut loaded: BTreeMap<Uuid, Record> = BTreeMap::new();
    for id in &all {
        let rec = records.get_for_update(&mut tx, *id).await?;
        // The survivor is edited, the others end as deleted: each within the member's scope.
        let action = if *id == plan.survivor { Action::Edit } else { Action::Delete };
        records.authorize(action, &rec)?;
        if rec.deleted_at.is_some() {
            let msg = match merged_into_tx(&mut tx, object, tenant.company_id, *id).await? {
                Some(to) => format!("{} was already merged into {to}", rec.number),
                None => format!("{} is deleted; restore it before merging", rec.number),
            };
            return Err(StoreError::Conflict(msg));
        }
        if let Some(v) = plan.versions.get(id) {
            if *v != rec.version {
                return Err(StoreError::Stale { current: rec.version });
            }
        }
        loaded.insert(*id, rec);
    }
    if object.name == "leads" {
        let converted = |r: &Record| r.text("status") == Some("converted") || r.get("converted_at").is_some();
        let errors: Vec<FieldError> = plan
            .merged
            .iter()
            .enumerate()
            .filter(|(_, id)| loaded.get(id).is_some_and(converted))
            .map(|(i, _)| FieldError::new(format!("merged_ids[{i}]"), "is a converted lead: only the survivor may be converted"))
            .collect();
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
    }

    if object.name == "contacts" {
        // Contacts of two accounts are two relationships (a person who changed companies),
        // and the merged one's deals would end up on a contact of another account.
        let account = |id: &Uuid| loaded.get(id).and_then(|r| r.get("account_id")).and_then(Value::as_uuid);
        let ours = account(&plan.survivor);
        let errors: Vec<FieldError> = plan
            .merged
            .iter()
            .enumerate()
            .filter(|(_, id)| matches!((ours, account(id)), (Some(a), Some(b)) if a != b))
            .map(|(i, _)| {
                FieldError::new(
                    format!("merged_ids[{i}]"),
                    "belongs to another account than the survivor; only contacts of one account can be merged",
                )
            })
            .collect();
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
    }

    // The survivor's new values, read before anything changes.
    let mut input = Map::new();
    for (field, src) in &plan.fields {
        if *src == plan.survivor {
            continue;
        }
        let Some(rec) = loaded.get(src) else { continue };
        let json = to_json(object, &custom, rec, Some(std::slice::from_ref(field)));
        input.insert(field.clone(), json.get(field).cloned().unwrap_or(serde_json::Value::Null));
    }
    // Do-not-disturb is the person's wish, not a value to choose: if any of the records
    // carries it, the survivor does.
    if object.field("dnd_status").is_some() && loaded.values().any(|r| r.get("dnd_status") == Some(&Value::Bool(true))) {
        input.insert("dnd_status".into(), serde_json::Value::Bool(true));
    }
    // An account keeps its primary contact when that contact is merged into another.
    if object.name == "contacts"
        && !plan.fields.contains_key("is_primary")
        && plan.merged.iter().any(|id| loaded.get(id).and_then(|r| r.get("is_primary")) == Some(&Value::Bool(true)))
    {
        input.insert("is_primary".into(), serde_json::Value::Bool(true));
    }

    // Retire the merged records.
    let now = now_micros();
    let stamp = Value::Timestamp(now).audit_text();
    let mut rows = Vec::new();
    for id in &plan.merged {
        let rec = &loaded[id];
        let q = Q::new(format!(
            "UPDATE {} SET deleted_at = $1, version = version + 1, updated_at = $1, updated_by = $2 WHERE company_id = $3 AND id = $4 AND version = $5",
            object.name
        ))
        .bind(Value::Timestamp(now))
        .bind(Value::Uuid(tenant.user_id))
        .bind(Value::Uuid(tenant.company_id))
        .bind(Value::Uuid(*id))
        .bind(Value::Int(rec.version));
        if tx.execute(&q).await? == 0 {
            return Err(StoreError::Stale { current: rec.version });
        }
        tx.execute(
            &Q::new(
                "INSERT INTO record_merges (company_id, object, merged_id, survivor_id, merged_at, merged_by, fields) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(Value::Uuid(tenant.company_id))
            .bind(Value::Text(object.name.clone()))
            .bind(Value::Uuid(*id))
            .bind(Value::Uuid(plan.survivor))
            .bind(Value::Timestamp(now))
            .bind(Value::Uuid(tenant.user_id))
            .bind(Value::Json(json!(plan.fields.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<BTreeMap<_, _>>()))),
        )
        .await?;
        let change = |action: &str, field: &str, new: Option<String>| Change {
            object: object.name.clone(),
            record_id: Some(*id),
            action: action.into(),
            field: Some(field.into()),
            old: None,
            new,
        };
        rows.push(change("merge", "merged_into_id", Some(plan.survivor.to_string())));
        rows.push(change("delete", "deleted_at", stamp.clone()));
    }
    audit::append(&mut tx, &tenant.audit, &rows).await?;
    // Earlier merges into a merged record now lead to the survivor.
    let mut q = Q::new(String::new());
    let ps = q.param(Value::Uuid(plan.survivor));
    let pc = q.param(Value::Uuid(tenant.company_id));
    let ids: Vec<String> = plan.merged.iter().map(|id| q.param(Value::Uuid(*id))).collect();
    q.sql = format!("UPDATE record_merges SET survivor_id = {ps} WHERE company_id = {pc} AND survivor_id IN ({})", ids.join(", "));
    tx.execute(&q).await?;
    dedupe::forget(&mut tx, tenant.company_id, &plan.merged).await?;

    // Everything that pointed at a merged record points at the survivor.
    let mut moved: BTreeMap<String, i64> = BTreeMap::new();
    let mut skip = plan.merged.clone();
    skip.push(plan.survivor);
    for (table, column, extra) in references_to(&object.name) {
        let own = if table == object.name { skip.as_slice() } else { &[] };
        let n = move_references(&mut tx, tenant, &table, &column, &extra, plan.survivor, &plan.merged, own).await?;
        if n > 0 {
            *moved.entry(table).or_default() += n;
        }
    }

    // A conversion that created or linked a merged contact now names the survivor (the
    // leads' own links moved with the references above).
    if object.name == "contacts" {
        let mut q = Q::new(String::new());
        let ps = q.param(Value::Uuid(plan.survivor));
        let pc = q.param(Value::Uuid(tenant.company_id));
        let ids: Vec<String> = plan.merged.iter().map(|id| q.param(Value::Uuid(*id))).collect();
        q.sql = format!("UPDATE lead_conversions SET contact_id = {ps} WHERE company_id = {pc} AND contact_id IN ({})", ids.join(", "));
        tx.execute(&q).await?;
    }

    // The survivor takes the picked values and is checked for duplicates again.
    let mut pipeline = records.pipeline(&mut tx).await?;
    let survivor = match records.update_in(&mut tx, &custom, &mut pipeline, plan.survivor, &input, dedupe::RECHECK).await {
        Ok(r) => r,
        Err(StoreError::Invalid(errs)) => {
            return Err(StoreError::Invalid(errs.into_iter().map(|e| FieldError::new(format!("fields.{}", e.field), e.reason)).collect()))
        }
        Err(e) => return Err(e),
    };
    pipeline.finish(&mut tx).await?;
    let summary = json!({
        "merged_ids": plan.merged,
        "fields": plan.fields.iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "moved": moved,
    });
    audit::append(
        &mut tx,
        &tenant.audit,
        &[Change {
            object: object.name.clone(),
            record_id: Some(plan.survivor),
            action: "merge".into(),
            field: Some("merged_ids".into()),
            old: None,
            new: Some(summary.to_string()),
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(Merged { survivor, merged_ids: plan.merged, moved })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leads() -> &'static ObjectDef {
        corvid_core::object("leads").expect("leads")
    }

    #[test]
    fn plan_rejects_self_merge_duplicates_and_foreign_sources() {
        let a = Uuid::now_v7().to_string();
        let b = Uuid::now_v7().to_string();
        let c = Uuid::now_v7().to_string();
        let req = MergeRequest {
            survivor_id: a.clone(),
            merged_ids: vec![a.clone(), b.clone(), b.clone()],
            fields: BTreeMap::from([("email".into(), c), ("duplicate_score".into(), b.clone()), ("nope".into(), b.clone())]),
            versions: BTreeMap::new(),
        };
        let Err(StoreError::Invalid(errs)) = plan(leads(), &[], &req) else { panic!("must be invalid") };
        let named = |f: &str| errs.iter().any(|e| e.field == f);
        assert!(named("merged_ids[0]") && named("merged_ids[2]"), "{errs:?}");
        assert!(named("fields.email") && named("fields.duplicate_score") && named("fields.nope"), "{errs:?}");
    }

    #[test]
    fn plan_accepts_a_good_request() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let req = MergeRequest {
            survivor_id: a.to_string(),
            merged_ids: vec![b.to_string()],
            fields: BTreeMap::from([("email".into(), b.to_string())]),
            versions: BTreeMap::from([(b.to_string(), 3)]),
        };
        let p = plan(leads(), &[], &req).expect("valid");
        assert_eq!((p.survivor, p.merged.clone(), p.fields["email"], p.versions[&b]), (a, vec![b], b, 3));
    }

    #[test]
    fn references_to_leads_include_activities_deals_and_tasks() {
        let refs = references_to("leads");
        let has = |t: &str, c: &str| refs.iter().any(|(tt, cc, _)| tt == t && cc == c);
        assert!(has("activities", "lead_id") && has("deals", "lead_id") && has("tasks", "related_id") && has("leads", "duplicate_of_id"));
    }
}
