//! Administration of the permission model: role matrices (the five built-in roles, changed
//! per company, and custom roles), members' roles, teams and reporting lines, and moving a
//! member's records to someone else.
//!
//! A `roles` row whose key is a built-in role holds only the objects the company changed;
//! without one the built-in defaults apply, and a change back to the defaults removes the
//! row, so "customised" always means "differs from the defaults". A custom role (`custom_…`)
//! stores its whole matrix, because objects missing from a stored matrix fall back to the
//! base role's *built-in* defaults (see [`crate::access::resolve_matrix`]), not to the
//! company's version of the base role.
//!
//! Every change is audited: object `role` (field `<key>` for creation and deletion,
//! `<key>.permissions` or `<key>.label` for changes, matrices as JSON text), `membership`
//! (record = the member, fields `role`, `team_id`, `manager_id`) and `team` (record = the
//! team), the names the rest of the audit trail already uses for members and teams.

use crate::access::resolve_matrix;
use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Tx, Q};
use crate::{new_id, Result, StoreError};
use chrono::{DateTime, Utc};
use corvid_core::access::{default_permissions, owner_column, Action, FieldAccess, Matrix, Scope};
use corvid_core::meta::OBJECT_NAMES;
use corvid_core::role::Role;
use corvid_core::value::now_micros;
use corvid_core::{FieldError, SqlType, Value};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Longest role or team name.
pub const MAX_LABEL: usize = 100;
/// Custom roles a company may have.
pub const MAX_CUSTOM_ROLES: usize = 50;
/// Prefix of custom role keys; built-in keys never start with it.
pub const CUSTOM_PREFIX: &str = "custom_";
/// Validation errors reported at most per request (a hostile body could name thousands).
const MAX_ERRORS: usize = 50;

/// One role as the admin pages and the API show it.
#[derive(Debug, Clone, Serialize)]
pub struct RoleInfo {
    pub key: String,
    pub label: String,
    /// The built-in role this one is (or is based on): what decides Admin-only pages.
    pub base_role: Role,
    pub builtin: bool,
    /// A built-in role the company changed (custom roles are always `false`).
    pub customised: bool,
    /// Active members with this role.
    pub members: i64,
    /// The effective matrix, every object present.
    pub permissions: Matrix,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
}

struct RoleRow {
    key: String,
    label: String,
    base_role: Role,
    permissions: Option<Json>,
    updated_at: Option<DateTime<Utc>>,
    updated_by: Option<Uuid>,
}

const ROLE_COLS: &str = "key, label, base_role, permissions, updated_at, updated_by";
const ROLE_TYPES: &[SqlType] = &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Json, SqlType::Timestamp, SqlType::Uuid];

fn role_row(r: crate::db::Row) -> Option<RoleRow> {
    Some(RoleRow {
        key: r.text(0)?,
        label: r.text(1)?,
        base_role: Role::parse(&r.text(2)?)?,
        permissions: r.json(3),
        updated_at: r.timestamp(4),
        updated_by: r.uuid(5),
    })
}

pub fn is_custom_key(key: &str) -> bool {
    key.starts_with(CUSTOM_PREFIX)
}

async fn rows(db: &Db, company_id: Uuid) -> Result<Vec<RoleRow>> {
    let q = Q::new(format!("SELECT {ROLE_COLS} FROM roles WHERE company_id = $1 ORDER BY created_at, key")).bind(Value::Uuid(company_id));
    Ok(db.fetch(&q, ROLE_TYPES).await?.into_iter().filter_map(role_row).collect())
}

async fn row_in(tx: &mut Tx, company_id: Uuid, key: &str) -> Result<Option<RoleRow>> {
    let sql = format!("SELECT {ROLE_COLS} FROM roles WHERE company_id = $1 AND key = $2{}", tx.for_update());
    Ok(tx.fetch_one(&Q::new(sql).bind(Value::Uuid(company_id)).bind(Value::Text(key.into())), ROLE_TYPES).await?.and_then(role_row))
}

/// Active members per effective role key.
async fn member_counts(db: &Db, company_id: Uuid) -> Result<BTreeMap<String, i64>> {
    let q = Q::new(
        "SELECT COALESCE(custom_role, role), COUNT(*) FROM memberships WHERE company_id = $1 AND is_active = $2 \
         GROUP BY COALESCE(custom_role, role)",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Bool(true));
    Ok(db.fetch(&q, &[SqlType::Text, SqlType::Int]).await?.into_iter().filter_map(|r| Some((r.text(0)?, r.int(1)?))).collect())
}

fn info(row: Option<&RoleRow>, builtin: Option<Role>, counts: &BTreeMap<String, i64>) -> Option<RoleInfo> {
    let (key, label, base) = match (builtin, row) {
        (Some(r), _) => (r.as_str().to_string(), r.label().to_string(), r),
        (None, Some(row)) => (row.key.clone(), row.label.clone(), row.base_role),
        (None, None) => return None,
    };
    Some(RoleInfo {
        members: counts.get(&key).copied().unwrap_or(0),
        key,
        label,
        base_role: base,
        builtin: builtin.is_some(),
        customised: builtin.is_some() && row.is_some(),
        permissions: resolve_matrix(base, row.and_then(|r| r.permissions.as_ref())),
        updated_at: row.and_then(|r| r.updated_at),
        updated_by: row.and_then(|r| r.updated_by),
    })
}

/// The five built-in roles (in their usual order) with the company's changes, then the
/// custom roles by name.
pub async fn list(db: &Db, company_id: Uuid) -> Result<Vec<RoleInfo>> {
    let rows = rows(db, company_id).await?;
    let counts = member_counts(db, company_id).await?;
    let mut out: Vec<RoleInfo> =
        Role::ALL.iter().filter_map(|r| info(rows.iter().find(|x| x.key == r.as_str()), Some(*r), &counts)).collect();
    let mut custom: Vec<RoleInfo> = rows.iter().filter(|r| is_custom_key(&r.key)).filter_map(|r| info(Some(r), None, &counts)).collect();
    custom.sort_by_key(|r| r.label.to_lowercase());
    out.extend(custom);
    Ok(out)
}

/// One role by key; `NotFound` for keys the company does not have.
pub async fn get(db: &Db, company_id: Uuid, key: &str) -> Result<RoleInfo> {
    let builtin = Role::parse(key);
    if builtin.is_none() && !is_custom_key(key) {
        return Err(StoreError::NotFound);
    }
    let q = Q::new(format!("SELECT {ROLE_COLS} FROM roles WHERE company_id = $1 AND key = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Text(key.into()));
    let row = db.fetch_one(&q, ROLE_TYPES).await?.and_then(role_row);
    let counts = member_counts(db, company_id).await?;
    info(row.as_ref(), builtin, &counts).ok_or(StoreError::NotFound)
}

/// A field an Admin can restrict, standard or custom.
#[derive(Debug, Clone, Serialize)]
pub struct FieldInfo {
    pub name: String,
    pub label: String,
    pub custom: bool,
}

/// Every object's fields (standard, then the company's custom fields).
pub async fn fields(db: &Db, company_id: Uuid) -> Result<BTreeMap<String, Vec<FieldInfo>>> {
    let mut out = BTreeMap::new();
    for o in corvid_core::objects() {
        let mut list: Vec<FieldInfo> =
            o.fields.iter().map(|f| FieldInfo { name: f.name.clone(), label: f.label.clone(), custom: false }).collect();
        for f in crate::custom_fields::list(db, company_id, &o.name).await? {
            list.push(FieldInfo { name: f.name, label: f.label, custom: true });
        }
        out.insert(o.name.clone(), list);
    }
    Ok(out)
}

fn field_names(fields: &BTreeMap<String, Vec<FieldInfo>>) -> BTreeMap<String, BTreeSet<String>> {
    fields.iter().map(|(o, list)| (o.clone(), list.iter().map(|f| f.name.clone()).collect())).collect()
}

/// A name from input, shortened for an error path (a hostile key could be megabytes).
fn clip(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Applies a matrix change to `current`: `{object: {read?, create?, edit?, delete?, import?,
/// export?, fields?: {field: hidden|read_only|editable}}}`. Objects, actions and fields not
/// named keep their value. The result is normalised (writing never beyond reading) and has
/// no entries for fields that no longer exist. Errors name `permissions.<object>.<key>`.
pub fn apply_patch(current: &Matrix, patch: &Json, known: &BTreeMap<String, BTreeSet<String>>) -> Result<Matrix, Vec<FieldError>> {
    let mut out = current.clone();
    let mut errors = Vec::new();
    let Some(objects) = patch.as_object() else {
        return Err(vec![FieldError::new("permissions", "must be an object: object name → its permissions")]);
    };
    let actions = Action::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
    let scopes = Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let accesses = FieldAccess::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    for (object, perms) in objects {
        let path = format!("permissions.{}", clip(object));
        let (Some(entry), Some(names)) = (out.get_mut(object.as_str()), known.get(object.as_str())) else {
            errors.push(FieldError::new(path, format!("is not an object; objects are {}", OBJECT_NAMES.join(", "))));
            continue;
        };
        let Some(perms) = perms.as_object() else {
            errors.push(FieldError::new(path, format!("must be an object with any of {actions} and fields")));
            continue;
        };
        for (k, v) in perms {
            if k == "fields" {
                let Some(fields) = v.as_object() else {
                    errors.push(FieldError::new(format!("{path}.fields"), "must be an object: field name → access"));
                    continue;
                };
                for (name, access) in fields {
                    let fpath = format!("{path}.fields.{}", clip(name));
                    if !names.contains(name) {
                        errors.push(FieldError::new(fpath, format!("is not a field of {object}")));
                    } else {
                        match access.as_str().and_then(FieldAccess::parse) {
                            Some(a) => {
                                entry.fields.insert(name.clone(), a);
                            }
                            None => errors.push(FieldError::new(fpath, format!("must be one of {accesses}"))),
                        }
                    }
                }
            } else if let Some(action) = Action::parse(k) {
                match v.as_str().and_then(Scope::parse) {
                    Some(s) => entry.set_scope(action, s),
                    None => errors.push(FieldError::new(format!("{path}.{k}"), format!("must be one of {scopes}"))),
                }
            } else {
                errors.push(FieldError::new(format!("{path}.{}", clip(k)), format!("is not an action; use {actions} or fields")));
            }
        }
    }
    if !errors.is_empty() {
        errors.truncate(MAX_ERRORS);
        return Err(errors);
    }
    Ok(out
        .into_iter()
        .map(|(o, mut p)| {
            if let Some(names) = known.get(&o) {
                p.fields.retain(|f, _| names.contains(f));
            }
            (o, p.normalised())
        })
        .collect())
}

/// An Admin must never lock everyone out: the `admin` role keeps reading and editing every
/// record of every object, and sees every field.
pub fn admin_guard(key: &str, m: &Matrix) -> Vec<FieldError> {
    if key != Role::Admin.as_str() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    for (o, p) in m {
        if p.read != Scope::All {
            errors.push(FieldError::new(
                format!("permissions.{o}.read"),
                "must stay all for the Admin role, so that someone can reach every record",
            ));
        } else if p.edit != Scope::All {
            errors.push(FieldError::new(
                format!("permissions.{o}.edit"),
                "must stay all for the Admin role, so that someone can fix every record",
            ));
        }
        for (f, a) in &p.fields {
            if *a == FieldAccess::Hidden {
                errors.push(FieldError::new(format!("permissions.{o}.fields.{f}"), "cannot be hidden from Admins"));
            }
        }
    }
    errors
}

fn matrix_json(m: &Matrix) -> Json {
    serde_json::to_value(m).unwrap_or(Json::Null)
}

/// What a built-in role's row stores: the objects that differ from the defaults.
fn builtin_delta(role: Role, m: &Matrix) -> Matrix {
    m.iter().filter(|(o, p)| **p != default_permissions(role, o)).map(|(o, p)| (o.clone(), p.clone())).collect()
}

fn defaults(role: Role) -> Matrix {
    resolve_matrix(role, None)
}

/// Role and team changes of one company happen one at a time (the audit chain head is the
/// company's lock), so two concurrent partial changes cannot overwrite each other.
async fn lock_company(tx: &mut Tx, company_id: Uuid) -> Result<()> {
    let sql = format!("SELECT seq FROM audit_heads WHERE company_id = $1{}", tx.for_update());
    tx.fetch_one(&Q::new(sql).bind(Value::Uuid(company_id)), &[SqlType::Int]).await?;
    Ok(())
}

fn role_change(action: &str, field: String, old: Option<String>, new: Option<String>) -> Change {
    Change { object: "role".into(), record_id: None, action: action.into(), field: Some(field), old, new }
}

/// Trims and checks a role or team name; `field` names it in the error.
pub fn clean_label(field: &str, label: &str) -> Result<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL {
        return Err(StoreError::invalid(field, &format!("must be 1 to {MAX_LABEL} characters")));
    }
    if label.chars().any(char::is_control) {
        return Err(StoreError::invalid(field, "must not contain control characters"));
    }
    Ok(label.to_string())
}

async fn ensure_unique_label(tx: &mut Tx, company_id: Uuid, label: &str, except: Option<&str>) -> Result<()> {
    let lower = label.to_lowercase();
    if Role::ALL.iter().any(|r| r.label().to_lowercase() == lower && Some(r.as_str()) != except) {
        return Err(StoreError::Conflict(format!("a role called \"{label}\" exists")));
    }
    let q = Q::new("SELECT key, label FROM roles WHERE company_id = $1").bind(Value::Uuid(company_id));
    for r in tx.fetch(&q, &[SqlType::Text, SqlType::Text]).await? {
        let (Some(key), Some(l)) = (r.text(0), r.text(1)) else { continue };
        if is_custom_key(&key) && l.to_lowercase() == lower && Some(key.as_str()) != except {
            return Err(StoreError::Conflict(format!("a role called \"{label}\" exists")));
        }
    }
    Ok(())
}

async fn known_fields(db: &Db, company_id: Uuid) -> Result<BTreeMap<String, BTreeSet<String>>> {
    Ok(field_names(&fields(db, company_id).await?))
}

/// Changes a role's name (custom roles only) and/or matrix (full or some objects).
pub async fn update(db: &Db, ctx: &AuditCtx, key: &str, label: Option<&str>, permissions: Option<&Json>) -> Result<RoleInfo> {
    let builtin = Role::parse(key);
    if builtin.is_none() && !is_custom_key(key) {
        return Err(StoreError::NotFound);
    }
    let label = match (label, builtin) {
        (Some(_), Some(_)) => return Err(StoreError::invalid("label", "built-in roles keep their names; create a custom role instead")),
        (Some(l), None) => Some(clean_label("label", l)?),
        (None, _) => None,
    };
    let known = known_fields(db, ctx.company_id).await?;
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    let row = row_in(&mut tx, ctx.company_id, key).await?;
    let base = match (builtin, &row) {
        (Some(r), _) => r,
        (None, Some(row)) => row.base_role,
        (None, None) => return Err(StoreError::NotFound),
    };
    let current = resolve_matrix(base, row.as_ref().and_then(|r| r.permissions.as_ref()));
    let next = match permissions {
        Some(p) => apply_patch(&current, p, &known).map_err(StoreError::Invalid)?,
        None => current.clone(),
    };
    let guard = admin_guard(key, &next);
    if !guard.is_empty() {
        return Err(StoreError::Invalid(guard));
    }
    let mut changes = Vec::new();
    let now = now_micros();
    if let Some(l) = &label {
        let old = row.as_ref().map(|r| r.label.clone()).unwrap_or_default();
        if *l != old {
            ensure_unique_label(&mut tx, ctx.company_id, l, Some(key)).await?;
            changes.push(role_change("update", format!("{key}.label"), Some(old), Some(l.clone())));
        }
    }
    if next != current {
        changes.push(role_change(
            "update",
            format!("{key}.permissions"),
            Some(matrix_json(&current).to_string()),
            Some(matrix_json(&next).to_string()),
        ));
    }
    if changes.is_empty() {
        tx.commit().await?;
        return get(db, ctx.company_id, key).await;
    }
    let actor = ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid);
    match builtin {
        Some(role) => {
            let delta = builtin_delta(role, &next);
            if delta.is_empty() {
                tx.execute(
                    &Q::new("DELETE FROM roles WHERE company_id = $1 AND key = $2")
                        .bind(Value::Uuid(ctx.company_id))
                        .bind(Value::Text(key.into())),
                )
                .await?;
            } else {
                tx.execute(
                    &Q::new(
                        "INSERT INTO roles (company_id, key, label, base_role, permissions, created_at, updated_at, updated_by) \
                         VALUES ($1, $2, $3, $2, $4, $5, $5, $6) ON CONFLICT (company_id, key) DO UPDATE SET \
                         permissions = excluded.permissions, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    )
                    .bind(Value::Uuid(ctx.company_id))
                    .bind(Value::Text(key.into()))
                    .bind(Value::Text(role.label().into()))
                    .bind(Value::Json(matrix_json(&delta)))
                    .bind(Value::Timestamp(now))
                    .bind(actor),
                )
                .await?;
            }
        }
        None => {
            let q = Q::new(
                "UPDATE roles SET label = $1, permissions = $2, updated_at = $3, updated_by = $4 WHERE company_id = $5 AND key = $6",
            )
            .bind(Value::Text(label.clone().or_else(|| row.as_ref().map(|r| r.label.clone())).unwrap_or_default()))
            .bind(Value::Json(matrix_json(&next)))
            .bind(Value::Timestamp(now))
            .bind(actor)
            .bind(Value::Uuid(ctx.company_id))
            .bind(Value::Text(key.into()));
            tx.execute(&q).await?;
        }
    }
    audit::append(&mut tx, ctx, &changes).await?;
    tx.commit().await?;
    get(db, ctx.company_id, key).await
}

/// Puts a built-in role back to its defaults.
pub async fn reset(db: &Db, ctx: &AuditCtx, key: &str) -> Result<RoleInfo> {
    let Some(role) = Role::parse(key) else { return Err(StoreError::NotFound) };
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    if let Some(row) = row_in(&mut tx, ctx.company_id, key).await? {
        let old = resolve_matrix(role, row.permissions.as_ref());
        tx.execute(
            &Q::new("DELETE FROM roles WHERE company_id = $1 AND key = $2").bind(Value::Uuid(ctx.company_id)).bind(Value::Text(key.into())),
        )
        .await?;
        let new = defaults(role);
        if old != new {
            let change = role_change(
                "update",
                format!("{key}.permissions"),
                Some(matrix_json(&old).to_string()),
                Some(matrix_json(&new).to_string()),
            );
            audit::append(&mut tx, ctx, &[change]).await?;
        }
    }
    tx.commit().await?;
    get(db, ctx.company_id, key).await
}

/// A key for a new custom role: `custom_` and the label in lower-case ASCII letters, digits
/// and underscores (Latin accents folded; labels in other scripts become `custom_role`),
/// numbered when taken.
fn slug(label: &str) -> String {
    let mut s = String::new();
    for c in corvid_core::names::fold(label).chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    let s: String = s.trim_matches('_').chars().take(40).collect();
    let s = s.trim_end_matches('_');
    if s.is_empty() {
        "role".into()
    } else {
        s.to_string()
    }
}

/// Creates a custom role acting as `base_role`; its matrix starts as the company's version
/// of the base role, with `permissions` applied on top.
pub async fn create(db: &Db, ctx: &AuditCtx, label: &str, base_role: &str, permissions: Option<&Json>) -> Result<RoleInfo> {
    let mut errors = Vec::new();
    let label = match clean_label("label", label) {
        Ok(l) => Some(l),
        Err(StoreError::Invalid(v)) => {
            errors.extend(v);
            None
        }
        Err(e) => return Err(e),
    };
    let base = Role::parse(base_role);
    if base.is_none() {
        let names = Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
        errors.push(FieldError::new("base_role", format!("must be one of {names}")));
    }
    let (Some(label), Some(base)) = (label, base) else { return Err(StoreError::Invalid(errors)) };
    let known = known_fields(db, ctx.company_id).await?;
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    ensure_unique_label(&mut tx, ctx.company_id, &label, None).await?;
    let existing: Vec<String> = tx
        .fetch(&Q::new("SELECT key FROM roles WHERE company_id = $1").bind(Value::Uuid(ctx.company_id)), &[SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| r.text(0))
        .collect();
    if existing.iter().filter(|k| is_custom_key(k)).count() >= MAX_CUSTOM_ROLES {
        return Err(StoreError::Conflict(format!("a company can have at most {MAX_CUSTOM_ROLES} custom roles")));
    }
    let stem = format!("{CUSTOM_PREFIX}{}", slug(&label));
    let key = (1..)
        .map(|n| if n == 1 { stem.clone() } else { format!("{stem}_{n}") })
        .find(|k| !existing.contains(k))
        .unwrap_or_else(|| format!("{CUSTOM_PREFIX}{}", new_id().simple()));
    let base_row = row_in(&mut tx, ctx.company_id, base.as_str()).await?;
    let start = resolve_matrix(base, base_row.as_ref().and_then(|r| r.permissions.as_ref()));
    let matrix = match permissions {
        Some(p) => apply_patch(&start, p, &known).map_err(StoreError::Invalid)?,
        None => start,
    };
    let now = now_micros();
    tx.execute(
        &Q::new(
            "INSERT INTO roles (company_id, key, label, base_role, permissions, created_at, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Text(key.clone()))
        .bind(Value::Text(label.clone()))
        .bind(Value::Text(base.as_str().into()))
        .bind(Value::Json(matrix_json(&matrix)))
        .bind(Value::Timestamp(now))
        .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid)),
    )
    .await?;
    let created = serde_json::json!({"label": label, "base_role": base.as_str(), "permissions": matrix_json(&matrix)});
    audit::append(&mut tx, ctx, &[role_change("create", key.clone(), None, Some(created.to_string()))]).await?;
    tx.commit().await?;
    get(db, ctx.company_id, &key).await
}

/// Deletes a custom role nobody has (409 otherwise, active or not: a reactivated member
/// would otherwise come back with a role that no longer exists).
pub async fn delete(db: &Db, ctx: &AuditCtx, key: &str) -> Result<()> {
    if !is_custom_key(key) {
        return Err(StoreError::NotFound);
    }
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    let Some(row) = row_in(&mut tx, ctx.company_id, key).await? else { return Err(StoreError::NotFound) };
    let q = Q::new("SELECT COUNT(*) FROM memberships WHERE company_id = $1 AND custom_role = $2")
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Text(key.into()));
    let n = tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0);
    if n > 0 {
        let who = if n == 1 { "1 member still has".to_string() } else { format!("{n} members still have") };
        return Err(StoreError::Conflict(format!("{who} the role {}; give them another role first", row.label)));
    }
    tx.execute(
        &Q::new("DELETE FROM roles WHERE company_id = $1 AND key = $2").bind(Value::Uuid(ctx.company_id)).bind(Value::Text(key.into())),
    )
    .await?;
    let matrix = resolve_matrix(row.base_role, row.permissions.as_ref());
    let old = serde_json::json!({"label": row.label, "base_role": row.base_role.as_str(), "permissions": matrix_json(&matrix)});
    audit::append(&mut tx, ctx, &[role_change("delete", key.to_string(), Some(old.to_string()), None)]).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Members: role, team and manager
// ---------------------------------------------------------------------------------------

/// A member with their effective role and reporting lines.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRole {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub is_active: bool,
    /// The built-in role (a custom role's base).
    pub role: Role,
    /// The built-in role's key, or the custom role's.
    pub role_key: String,
    pub role_label: String,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
}

const MEMBER_SQL: &str = "SELECT u.id, u.email, u.name, m.is_active, m.role, m.custom_role, r.label, m.team_id, m.manager_id \
     FROM memberships m JOIN users u ON u.id = m.user_id \
     LEFT JOIN roles r ON r.company_id = m.company_id AND r.key = m.custom_role WHERE m.company_id = $1";
const MEMBER_TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Bool,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Uuid,
];

fn member_from(r: crate::db::Row) -> Option<MemberRole> {
    let role = Role::parse(&r.text(4)?)?;
    let custom = r.text(5);
    Some(MemberRole {
        user_id: r.uuid(0)?,
        email: r.text(1)?,
        name: r.text(2)?,
        is_active: r.bool(3)?,
        role,
        role_label: match &custom {
            Some(_) => r.text(6).unwrap_or_else(|| role.label().into()),
            None => role.label().into(),
        },
        role_key: custom.unwrap_or_else(|| role.as_str().into()),
        team_id: r.uuid(7),
        manager_id: r.uuid(8),
    })
}

pub async fn members(db: &Db, company_id: Uuid) -> Result<Vec<MemberRole>> {
    let q = Q::new(format!("{MEMBER_SQL} ORDER BY u.name, u.email")).bind(Value::Uuid(company_id));
    Ok(db.fetch(&q, MEMBER_TYPES).await?.into_iter().filter_map(member_from).collect())
}

pub async fn member(db: &Db, company_id: Uuid, user_id: Uuid) -> Result<Option<MemberRole>> {
    let q = Q::new(format!("{MEMBER_SQL} AND m.user_id = $2")).bind(Value::Uuid(company_id)).bind(Value::Uuid(user_id));
    Ok(db.fetch_one(&q, MEMBER_TYPES).await?.and_then(member_from))
}

fn membership_change(user_id: Uuid, field: &str, old: Option<String>, new: Option<String>) -> Change {
    Change { object: "membership".into(), record_id: Some(user_id), action: "update".into(), field: Some(field.into()), old, new }
}

/// Gives a member a role: a built-in key (clearing any custom role) or a custom role's key
/// (its base becomes the member's built-in role). The last active Admin keeps their role.
pub async fn assign(db: &Db, ctx: &AuditCtx, user_id: Uuid, key: &str) -> Result<MemberRole> {
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    let sql = format!("SELECT role, custom_role, is_active FROM memberships WHERE company_id = $1 AND user_id = $2{}", tx.for_update());
    let q = Q::new(sql).bind(Value::Uuid(ctx.company_id)).bind(Value::Uuid(user_id));
    let Some(row) = tx.fetch_one(&q, &[SqlType::Text, SqlType::Text, SqlType::Bool]).await? else { return Err(StoreError::NotFound) };
    let old_role = row.text(0).and_then(|r| Role::parse(&r)).unwrap_or(Role::ReadOnly);
    let old_key = row.text(1).unwrap_or_else(|| old_role.as_str().into());
    let active = row.bool(2).unwrap_or(false);
    let (new_role, custom) = match Role::parse(key) {
        Some(r) => (r, None),
        None => {
            let found = if is_custom_key(key) { row_in(&mut tx, ctx.company_id, key).await? } else { None };
            match found {
                Some(r) => (r.base_role, Some(key.to_string())),
                None => return Err(StoreError::invalid("role", "is not a role of this company")),
            }
        }
    };
    if old_key != key {
        if old_role == Role::Admin && active && new_role != Role::Admin {
            let q = Q::new("SELECT COUNT(*) FROM memberships WHERE company_id = $1 AND role = $2 AND is_active = $3")
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Text(Role::Admin.as_str().into()))
                .bind(Value::Bool(true));
            if tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0) <= 1 {
                return Err(StoreError::Conflict("a company needs at least one active Admin".into()));
            }
        }
        tx.execute(
            &Q::new("UPDATE memberships SET role = $1, custom_role = $2, updated_at = $3 WHERE company_id = $4 AND user_id = $5")
                .bind(Value::Text(new_role.as_str().into()))
                .bind(custom.map_or(Value::Null(SqlType::Text), Value::Text))
                .bind(Value::Timestamp(now_micros()))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Uuid(user_id)),
        )
        .await?;
        audit::append(&mut tx, ctx, &[membership_change(user_id, "role", Some(old_key), Some(key.to_string()))]).await?;
    }
    tx.commit().await?;
    member(db, ctx.company_id, user_id).await?.ok_or(StoreError::NotFound)
}

/// Who reports to whom: (member, team, manager) and (team, manager).
struct Lines {
    members: Vec<(Uuid, Option<Uuid>, Option<Uuid>)>,
    teams: Vec<(Uuid, Option<Uuid>)>,
}

impl Lines {
    async fn load(tx: &mut Tx, company_id: Uuid) -> Result<Lines> {
        let q = Q::new("SELECT user_id, team_id, manager_id FROM memberships WHERE company_id = $1").bind(Value::Uuid(company_id));
        let members = tx
            .fetch(&q, &[SqlType::Uuid, SqlType::Uuid, SqlType::Uuid])
            .await?
            .iter()
            .filter_map(|r| Some((r.uuid(0)?, r.uuid(1), r.uuid(2))))
            .collect();
        let q = Q::new("SELECT id, manager_id FROM teams WHERE company_id = $1").bind(Value::Uuid(company_id));
        let teams = tx.fetch(&q, &[SqlType::Uuid, SqlType::Uuid]).await?.iter().filter_map(|r| Some((r.uuid(0)?, r.uuid(1)))).collect();
        Ok(Lines { members, teams })
    }

    /// Whom `user` reports to: their manager, and their team's manager (unless that is them).
    fn bosses(&self, user: Uuid) -> Vec<Uuid> {
        let Some((_, team, manager)) = self.members.iter().find(|m| m.0 == user) else { return Vec::new() };
        let team_boss = team.and_then(|t| self.teams.iter().find(|x| x.0 == t).and_then(|x| x.1)).filter(|b| *b != user);
        manager.iter().copied().chain(team_boss).collect()
    }

    /// Whether following the reporting lines up from `user` comes back to them.
    fn cycles_through(&self, user: Uuid) -> bool {
        let mut seen = BTreeSet::new();
        let mut queue = self.bosses(user);
        while let Some(b) = queue.pop() {
            if b == user {
                return true;
            }
            if seen.insert(b) {
                queue.extend(self.bosses(b));
            }
        }
        false
    }

    fn set_member(&mut self, user: Uuid, team: Option<Uuid>, manager: Option<Uuid>) {
        if let Some(m) = self.members.iter_mut().find(|m| m.0 == user) {
            m.1 = team;
            m.2 = manager;
        }
    }
}

async fn active_member(tx: &mut Tx, company_id: Uuid, user_id: Uuid) -> Result<bool> {
    let q = Q::new(
        "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.company_id = $1 AND m.user_id = $2 AND m.is_active = $3 AND u.is_active = $3",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(user_id))
    .bind(Value::Bool(true));
    Ok(tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0) > 0)
}

async fn team_exists(tx: &mut Tx, company_id: Uuid, team_id: Uuid) -> Result<bool> {
    let q = Q::new("SELECT COUNT(*) FROM teams WHERE company_id = $1 AND id = $2").bind(Value::Uuid(company_id)).bind(Value::Uuid(team_id));
    Ok(tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0) > 0)
}

/// Sets a member's team and/or manager (`None` = keep, `Some(None)` = clear). A member
/// cannot manage themself, and reporting lines (managers, and teams' managers) never loop.
pub async fn set_reporting(
    db: &Db,
    ctx: &AuditCtx,
    user_id: Uuid,
    team: Option<Option<Uuid>>,
    manager: Option<Option<Uuid>>,
) -> Result<MemberRole> {
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    let mut lines = Lines::load(&mut tx, ctx.company_id).await?;
    let Some(&(_, old_team, old_manager)) = lines.members.iter().find(|m| m.0 == user_id) else { return Err(StoreError::NotFound) };
    let new_team = team.unwrap_or(old_team);
    let new_manager = manager.unwrap_or(old_manager);
    let mut errors = Vec::new();
    if let Some(t) = new_team.filter(|t| Some(*t) != old_team) {
        if !team_exists(&mut tx, ctx.company_id, t).await? {
            errors.push(FieldError::new("team_id", "is not a team of this company"));
        }
    }
    if let Some(m) = new_manager.filter(|m| Some(*m) != old_manager) {
        if m == user_id {
            errors.push(FieldError::new("manager_id", "cannot be the member themself"));
        } else if !active_member(&mut tx, ctx.company_id, m).await? {
            errors.push(FieldError::new("manager_id", "is not an active member of this company"));
        }
    }
    if !errors.is_empty() {
        return Err(StoreError::Invalid(errors));
    }
    // Which change closes the loop decides which field the error names.
    lines.set_member(user_id, old_team, new_manager);
    if lines.cycles_through(user_id) {
        return Err(StoreError::invalid(
            "manager_id",
            "would make a reporting cycle: this manager already reports, directly or not, to the member",
        ));
    }
    lines.set_member(user_id, new_team, new_manager);
    if lines.cycles_through(user_id) {
        return Err(StoreError::invalid(
            "team_id",
            "would make a reporting cycle: the team's manager already reports, directly or not, to the member",
        ));
    }
    let mut changes = Vec::new();
    for (field, old, new) in [("team_id", old_team, new_team), ("manager_id", old_manager, new_manager)] {
        if old != new {
            changes.push(membership_change(user_id, field, old.map(|u| u.to_string()), new.map(|u| u.to_string())));
        }
    }
    if !changes.is_empty() {
        tx.execute(
            &Q::new("UPDATE memberships SET team_id = $1, manager_id = $2, updated_at = $3 WHERE company_id = $4 AND user_id = $5")
                .bind(new_team.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
                .bind(new_manager.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
                .bind(Value::Timestamp(now_micros()))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Uuid(user_id)),
        )
        .await?;
        audit::append(&mut tx, ctx, &changes).await?;
    }
    tx.commit().await?;
    member(db, ctx.company_id, user_id).await?.ok_or(StoreError::NotFound)
}

// ---------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct TeamInfo {
    pub id: Uuid,
    pub name: String,
    pub manager_id: Option<Uuid>,
    /// Members in the team, active or not.
    pub members: i64,
}

const TEAM_SQL: &str =
    "SELECT t.id, t.name, t.manager_id, (SELECT COUNT(*) FROM memberships m WHERE m.company_id = t.company_id AND m.team_id = t.id) \
     FROM teams t WHERE t.company_id = $1";
const TEAM_TYPES: &[SqlType] = &[SqlType::Uuid, SqlType::Text, SqlType::Uuid, SqlType::Int];

fn team_from(r: crate::db::Row) -> Option<TeamInfo> {
    Some(TeamInfo { id: r.uuid(0)?, name: r.text(1)?, manager_id: r.uuid(2), members: r.int(3).unwrap_or(0) })
}

pub async fn teams(db: &Db, company_id: Uuid) -> Result<Vec<TeamInfo>> {
    let q = Q::new(format!("{TEAM_SQL} ORDER BY t.name")).bind(Value::Uuid(company_id));
    Ok(db.fetch(&q, TEAM_TYPES).await?.into_iter().filter_map(team_from).collect())
}

pub async fn team(db: &Db, company_id: Uuid, team_id: Uuid) -> Result<TeamInfo> {
    let q = Q::new(format!("{TEAM_SQL} AND t.id = $2")).bind(Value::Uuid(company_id)).bind(Value::Uuid(team_id));
    db.fetch_one(&q, TEAM_TYPES).await?.and_then(team_from).ok_or(StoreError::NotFound)
}

fn team_change(team_id: Uuid, action: &str, field: &str, old: Option<String>, new: Option<String>) -> Change {
    Change { object: "team".into(), record_id: Some(team_id), action: action.into(), field: Some(field.into()), old, new }
}

fn duplicate_team(e: StoreError) -> StoreError {
    if e.is_unique_violation() {
        StoreError::Conflict("a team with this name exists".into())
    } else {
        e
    }
}

pub async fn create_team(db: &Db, ctx: &AuditCtx, name: &str, manager_id: Option<Uuid>) -> Result<TeamInfo> {
    let name = clean_label("name", name)?;
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    if let Some(m) = manager_id {
        if !active_member(&mut tx, ctx.company_id, m).await? {
            return Err(StoreError::invalid("manager_id", "is not an active member of this company"));
        }
    }
    let id = new_id();
    tx.execute(
        &Q::new("INSERT INTO teams (id, company_id, name, manager_id, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(Value::Uuid(id))
            .bind(Value::Uuid(ctx.company_id))
            .bind(Value::Text(name.clone()))
            .bind(manager_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
            .bind(Value::Timestamp(now_micros())),
    )
    .await
    .map_err(duplicate_team)?;
    let mut changes = vec![team_change(id, "create", "name", None, Some(name))];
    if let Some(m) = manager_id {
        changes.push(team_change(id, "create", "manager_id", None, Some(m.to_string())));
    }
    audit::append(&mut tx, ctx, &changes).await?;
    tx.commit().await?;
    team(db, ctx.company_id, id).await
}

/// Renames a team and/or changes its manager (`Some(None)` clears it).
pub async fn update_team(db: &Db, ctx: &AuditCtx, team_id: Uuid, name: Option<&str>, manager_id: Option<Option<Uuid>>) -> Result<TeamInfo> {
    let name = name.map(|n| clean_label("name", n)).transpose()?;
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    let mut lines = Lines::load(&mut tx, ctx.company_id).await?;
    let sql = format!("SELECT name, manager_id FROM teams WHERE company_id = $1 AND id = $2{}", tx.for_update());
    let q = Q::new(sql).bind(Value::Uuid(ctx.company_id)).bind(Value::Uuid(team_id));
    let Some(row) = tx.fetch_one(&q, &[SqlType::Text, SqlType::Uuid]).await? else { return Err(StoreError::NotFound) };
    let (old_name, old_manager) = (row.text(0).unwrap_or_default(), row.uuid(1));
    let new_name = name.unwrap_or_else(|| old_name.clone());
    let new_manager = manager_id.unwrap_or(old_manager);
    if let Some(m) = new_manager.filter(|m| Some(*m) != old_manager) {
        if !active_member(&mut tx, ctx.company_id, m).await? {
            return Err(StoreError::invalid("manager_id", "is not an active member of this company"));
        }
        if let Some(t) = lines.teams.iter_mut().find(|t| t.0 == team_id) {
            t.1 = Some(m);
        }
        // The team's members now report to `m`: a loop would pass through `m`.
        if lines.cycles_through(m) {
            return Err(StoreError::invalid(
                "manager_id",
                "would make a reporting cycle: this manager already reports, directly or not, to a member of the team",
            ));
        }
    }
    let mut changes = Vec::new();
    if new_name != old_name {
        changes.push(team_change(team_id, "update", "name", Some(old_name), Some(new_name.clone())));
    }
    if new_manager != old_manager {
        changes.push(team_change(team_id, "update", "manager_id", old_manager.map(|u| u.to_string()), new_manager.map(|u| u.to_string())));
    }
    if !changes.is_empty() {
        tx.execute(
            &Q::new("UPDATE teams SET name = $1, manager_id = $2 WHERE company_id = $3 AND id = $4")
                .bind(Value::Text(new_name))
                .bind(new_manager.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Uuid(team_id)),
        )
        .await
        .map_err(duplicate_team)?;
        audit::append(&mut tx, ctx, &changes).await?;
    }
    tx.commit().await?;
    team(db, ctx.company_id, team_id).await
}

/// Deletes an empty team that no assignment rule uses (409 otherwise).
pub async fn delete_team(db: &Db, ctx: &AuditCtx, team_id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    lock_company(&mut tx, ctx.company_id).await?;
    let sql = format!("SELECT name FROM teams WHERE company_id = $1 AND id = $2{}", tx.for_update());
    let q = Q::new(sql).bind(Value::Uuid(ctx.company_id)).bind(Value::Uuid(team_id));
    let Some(name) = tx.fetch_one(&q, &[SqlType::Text]).await?.and_then(|r| r.text(0)) else { return Err(StoreError::NotFound) };
    let count = |sql: &str| Q::new(sql).bind(Value::Uuid(ctx.company_id)).bind(Value::Uuid(team_id));
    let members = tx
        .fetch_one(&count("SELECT COUNT(*) FROM memberships WHERE company_id = $1 AND team_id = $2"), &[SqlType::Int])
        .await?
        .and_then(|r| r.int(0))
        .unwrap_or(0);
    if members > 0 {
        let who = if members == 1 { "1 member is".to_string() } else { format!("{members} members are") };
        return Err(StoreError::Conflict(format!("{who} still in the team {name}; move them to another team first")));
    }
    let rules: Vec<String> = tx
        .fetch(&count("SELECT name FROM assignment_rules WHERE company_id = $1 AND team_id = $2 ORDER BY name"), &[SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| r.text(0))
        .collect();
    if !rules.is_empty() {
        return Err(StoreError::Conflict(format!(
            "the assignment rule(s) {} share records in this team; change them first",
            rules.join(", ")
        )));
    }
    tx.execute(&count("DELETE FROM teams WHERE company_id = $1 AND id = $2")).await?;
    audit::append(&mut tx, ctx, &[team_change(team_id, "delete", "name", Some(name), None)]).await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Moving records to another member
// ---------------------------------------------------------------------------------------

/// What "open" means per object when only open records move: leads still being worked,
/// active accounts, contacts, open deals, tasks not done, and activities still to come.
fn open_condition(object: &str, q: &mut Q, now: DateTime<Utc>) -> String {
    let extra = match object {
        "leads" => " AND status IN ('new', 'contacted', 'nurturing', 'qualified', 'recycled')".to_string(),
        "deals" => " AND status = 'open'".to_string(),
        "tasks" => " AND status IN ('open', 'in_progress')".to_string(),
        "accounts" => {
            let p = q.param(Value::Bool(true));
            format!(" AND is_active = {p}")
        }
        "activities" => {
            let p = q.param(Value::Timestamp(now));
            format!(" AND activity_date > {p}")
        }
        _ => String::new(),
    };
    format!(" AND deleted_at IS NULL{extra}")
}

/// Moves every record `from` owns (tasks: is assigned; activities: logged) in `objects` to
/// `to`, in one transaction: owner column, version, `updated_at`/`updated_by`, and one audit
/// row per record. Returns how many moved per object. `to` must be an active member.
pub async fn transfer(db: &Db, ctx: &AuditCtx, from: Uuid, to: Uuid, objects: &[String], only_open: bool) -> Result<BTreeMap<String, i64>> {
    let mut errors = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        if !OBJECT_NAMES.contains(&o.as_str()) {
            errors.push(FieldError::new(format!("objects[{i}]"), format!("is not an object; objects are {}", OBJECT_NAMES.join(", "))));
        }
    }
    if objects.is_empty() {
        errors.push(FieldError::new("objects", "must name at least one object"));
    }
    let mut tx = db.begin().await?;
    let q = Q::new("SELECT COUNT(*) FROM memberships WHERE company_id = $1 AND user_id = $2")
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Uuid(from));
    if tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0) == 0 {
        return Err(StoreError::NotFound);
    }
    if from == to {
        errors.push(FieldError::new("to_user_id", "is the member the records come from"));
    } else if !active_member(&mut tx, ctx.company_id, to).await? {
        errors.push(FieldError::new("to_user_id", "is not an active member of this company"));
    }
    if !errors.is_empty() {
        errors.truncate(MAX_ERRORS);
        return Err(StoreError::Invalid(errors));
    }
    // In the fixed order, each once however often the request names it.
    let wanted: Vec<&str> = OBJECT_NAMES.iter().copied().filter(|o| objects.iter().any(|x| x == o)).collect();
    let now = now_micros();
    let mut moved = BTreeMap::new();
    for object in wanted {
        let col = owner_column(object);
        let mut q = Q::new(String::new());
        let pt = q.param(Value::Uuid(to));
        let pn = q.param(Value::Timestamp(now));
        let pa = q.param(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid));
        let pc = q.param(Value::Uuid(ctx.company_id));
        let pf = q.param(Value::Uuid(from));
        let open = if only_open { open_condition(object, &mut q, now) } else { String::new() };
        // `object` and `col` come from the fixed object list, never from input.
        q.sql = format!(
            "UPDATE {object} SET {col} = {pt}, version = version + 1, updated_at = {pn}, updated_by = {pa} \
             WHERE company_id = {pc} AND {col} = {pf}{open} RETURNING id"
        );
        let ids: Vec<Uuid> = tx.fetch(&q, &[SqlType::Uuid]).await?.iter().filter_map(|r| r.uuid(0)).collect();
        let changes: Vec<Change> = ids
            .iter()
            .map(|id| Change {
                object: object.into(),
                record_id: Some(*id),
                action: "update".into(),
                field: Some(col.into()),
                old: Some(from.to_string()),
                new: Some(to.to_string()),
            })
            .collect();
        audit::append(&mut tx, ctx, &changes).await?;
        moved.insert(object.to_string(), ids.len() as i64);
    }
    tx.commit().await?;
    tracing::info!(company_id = %ctx.company_id, from = %from, to = %to, total = moved.values().sum::<i64>(), "records transferred");
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known() -> BTreeMap<String, BTreeSet<String>> {
        corvid_core::objects().iter().map(|o| (o.name.clone(), o.fields.iter().map(|f| f.name.clone()).collect())).collect()
    }

    #[test]
    fn patches_merge_normalise_and_name_bad_keys() {
        let current = defaults(Role::SalesRep);
        let m = apply_patch(&current, &json!({"leads": {"read": "own", "fields": {"email": "hidden", "phone": "editable"}}}), &known())
            .expect("valid");
        assert_eq!(m["leads"].read, Scope::Own);
        assert_eq!(m["leads"].edit, Scope::Own);
        assert_eq!(m["leads"].field("email"), FieldAccess::Hidden);
        assert!(!m["leads"].fields.contains_key("phone"));
        assert_eq!(m["deals"], current["deals"]);
        // Edit above read is lowered to read.
        let m = apply_patch(&current, &json!({"deals": {"read": "own", "edit": "all"}}), &known()).expect("valid");
        assert_eq!(m["deals"].edit, Scope::Own);

        let bad = json!({"widgets": {}, "leads": {"read": "everyone", "fly": "all", "fields": {"nope": "hidden", "email": "secret"}}});
        let errs = apply_patch(&current, &bad, &known()).expect_err("invalid");
        let fields: BTreeSet<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "permissions.widgets",
            "permissions.leads.read",
            "permissions.leads.fly",
            "permissions.leads.fields.nope",
            "permissions.leads.fields.email",
        ] {
            assert!(fields.contains(f), "{f} missing from {fields:?}");
        }
        assert!(apply_patch(&current, &json!([1]), &known()).is_err());
    }

    #[test]
    fn admin_keeps_everything() {
        let m = apply_patch(&defaults(Role::Admin), &json!({"deals": {"read": "team"}}), &known()).expect("valid");
        let e = admin_guard("admin", &m);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "permissions.deals.read");
        let m = apply_patch(&defaults(Role::Admin), &json!({"leads": {"fields": {"email": "hidden", "phone": "read_only"}}}), &known())
            .expect("valid");
        let e = admin_guard("admin", &m);
        assert_eq!(e.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), vec!["permissions.leads.fields.email"]);
        assert!(admin_guard("manager", &m).is_empty());
    }

    #[test]
    fn slugs_are_safe_keys() {
        assert_eq!(slug("Field Sales (North)"), "field_sales_north");
        assert_eq!(slug("販売"), "role");
        assert_eq!(slug("Équipe Süd 🦀"), "equipe_sud");
        assert_eq!(slug(&"x".repeat(90)).len(), 40);
    }

    #[test]
    fn reporting_cycles_are_found() {
        let (a, b, c) = (new_id(), new_id(), new_id());
        let t = new_id();
        let mut lines = Lines { members: vec![(a, None, Some(b)), (b, None, None), (c, Some(t), None)], teams: vec![(t, Some(a))] };
        assert!(!lines.cycles_through(a));
        lines.set_member(b, None, Some(a));
        assert!(lines.cycles_through(b));
        // Through a team: c is in a's team, a reports to c.
        lines.set_member(b, None, None);
        lines.set_member(a, None, Some(c));
        assert!(lines.cycles_through(a));
        // A team's manager inside their own team is no loop.
        lines.set_member(a, Some(t), None);
        assert!(!lines.cycles_through(a));
    }
}
