//! What one member may do: their role's matrix (object × action → scope, field access) and
//! the people their "team" scope covers. Loaded once per request with the membership, so
//! every path (API, pages, bulk, import, export, search, statistics) asks the same object.

use crate::db::{Db, Q};
use crate::{Result, StoreError};
use corvid_core::access::{default_permissions, in_scope, owner_column, Action, FieldAccess, Matrix, ObjectPermissions, Scope};
use corvid_core::meta::{ObjectDef, OBJECT_NAMES};
use corvid_core::role::Role;
use corvid_core::{FieldError, Record, SqlType, Value};
use serde_json::Map;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

/// Channels through which the system, not the member, changes records (background jobs,
/// duplicate re-checks): neither scopes nor field access apply to them.
const SYSTEM_CHANNELS: &[&str] = &["recycle_job", crate::dedupe::RECHECK];

/// Channels whose input comes from the member, so field access applies to each key.
const MEMBER_INPUT_CHANNELS: &[&str] = &["interactive", "bulk", "import", "qualification"];

pub fn is_system_channel(channel: &str) -> bool {
    SYSTEM_CHANNELS.contains(&channel)
}

pub fn is_member_input(channel: &str) -> bool {
    MEMBER_INPUT_CHANNELS.contains(&channel)
}

#[derive(Debug, Clone)]
pub struct Access {
    pub user_id: Uuid,
    /// `admin`, `sales_rep`, ... or a custom role's key.
    pub role_key: String,
    pub role_label: String,
    matrix: Arc<Matrix>,
    /// Whose records "team" covers: the member, their team mates and everyone below them in
    /// the reporting lines.
    team: Arc<BTreeSet<Uuid>>,
}

impl Access {
    /// Everything, for the system and the command line (which runs as an Admin).
    pub fn unrestricted(user_id: Uuid) -> Access {
        Access::defaults(user_id, Role::Admin)
    }

    /// A built-in role's defaults, with a team of one.
    pub fn defaults(user_id: Uuid, role: Role) -> Access {
        let matrix = OBJECT_NAMES.iter().map(|o| ((*o).to_string(), default_permissions(role, o))).collect();
        Access {
            user_id,
            role_key: role.as_str().into(),
            role_label: role.label().into(),
            matrix: Arc::new(matrix),
            team: Arc::new(BTreeSet::from([user_id])),
        }
    }

    pub fn matrix(&self) -> &Matrix {
        &self.matrix
    }

    pub fn team(&self) -> impl Iterator<Item = &Uuid> {
        self.team.iter()
    }

    pub fn permissions(&self, object: &str) -> Option<&ObjectPermissions> {
        self.matrix.get(object)
    }

    pub fn scope(&self, object: &str, action: Action) -> Scope {
        self.permissions(object).map_or(Scope::None, |p| p.scope(action))
    }

    /// The scope of `action`, or 403 when the role has none.
    pub fn require(&self, object: &ObjectDef, action: Action) -> Result<Scope> {
        match self.scope(&object.name, action) {
            Scope::None => Err(StoreError::Forbidden(format!(
                "the {} role cannot {} {}",
                self.role_label,
                action.verb(),
                object.label_plural.to_lowercase()
            ))),
            s => Ok(s),
        }
    }

    /// Whether the role may change anything at all in `object` (an early, cheap refusal).
    pub fn may_write(&self, object: &str) -> bool {
        [Action::Create, Action::Edit, Action::Delete, Action::Import].into_iter().any(|a| self.scope(object, a) != Scope::None)
    }

    pub fn allows(&self, object: &str, action: Action, owner: Option<Uuid>) -> bool {
        match self.scope(object, action) {
            Scope::Team => owner.is_none_or(|o| self.team.contains(&o)),
            scope => in_scope(scope, self.user_id, &[], owner),
        }
    }

    /// Whether `record` is within `action`'s scope.
    pub fn allows_record(&self, object: &ObjectDef, action: Action, record: &Record) -> bool {
        self.allows(&object.name, action, owner_of(object, record))
    }

    pub fn field(&self, object: &str, name: &str) -> FieldAccess {
        self.permissions(object).map_or(FieldAccess::Editable, |p| p.field(name))
    }

    pub fn is_hidden(&self, object: &str, name: &str) -> bool {
        self.field(object, name) == FieldAccess::Hidden
    }

    pub fn hidden_fields(&self, object: &str) -> Vec<String> {
        self.permissions(object)
            .map(|p| p.fields.iter().filter(|(_, a)| **a == FieldAccess::Hidden).map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether an audit row about `field` of `object` may be shown.
    pub fn audit_visible(&self, object: &str, field: Option<&str>) -> bool {
        if OBJECT_NAMES.contains(&object) && self.scope(object, Action::Read) == Scope::None {
            return false;
        }
        field.is_none_or(|f| !self.is_hidden(object, f))
    }

    /// The audit rows this member may see: rows about objects they cannot read and changes of
    /// hidden fields are dropped; a row holding several values as JSON (a record's creation)
    /// loses the hidden fields' keys.
    /// `visible_audit` for one record's history: its creation shown field by field, like its
    /// updates (`AuditRow::expand_create`).
    pub fn visible_history(&self, rows: Vec<crate::audit::AuditRow>) -> Vec<crate::audit::AuditRow> {
        self.visible_audit(rows).into_iter().flat_map(crate::audit::AuditRow::expand_create).collect()
    }

    pub fn visible_audit(&self, rows: Vec<crate::audit::AuditRow>) -> Vec<crate::audit::AuditRow> {
        rows.into_iter()
            .filter(|r| self.audit_visible(&r.object, r.field.as_deref()))
            .map(|mut r| {
                if r.field.is_none() {
                    let hidden = self.hidden_fields(&r.object);
                    if !hidden.is_empty() {
                        for v in [&mut r.old_value, &mut r.new_value] {
                            let Some(text) = v.as_deref() else { continue };
                            if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str::<serde_json::Value>(text) {
                                m.retain(|k, _| !hidden.contains(k));
                                *v = Some(serde_json::Value::Object(m).to_string());
                            }
                        }
                    }
                }
                r
            })
            .collect()
    }

    /// Removes hidden fields' values from a record about to be shown.
    pub fn redact(&self, object: &ObjectDef, record: &mut Record) {
        let hidden = self.hidden_fields(&object.name);
        if hidden.is_empty() {
            return;
        }
        for name in &hidden {
            if let (Some(v), Some(f)) = (record.fields.get_mut(name), object.field(name)) {
                *v = Value::Null(f.kind.sql_type());
            }
            record.custom.remove(name);
        }
        record.redacted = hidden;
    }

    /// Refuses input that writes a hidden or read-only field (403 naming each field).
    pub fn check_input(&self, object: &ObjectDef, input: &Map<String, serde_json::Value>) -> Result<()> {
        let Some(p) = self.permissions(&object.name) else { return Ok(()) };
        if p.fields.is_empty() {
            return Ok(());
        }
        let errors: Vec<FieldError> = input
            .keys()
            .filter_map(|k| match p.field(k) {
                FieldAccess::Editable => None,
                FieldAccess::ReadOnly => Some(FieldError::new(k, "is read-only for your role")),
                FieldAccess::Hidden => Some(FieldError::new(k, "is not available to your role")),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StoreError::FieldForbidden(errors))
        }
    }

    /// Refuses filtering, sorting, projecting or searching on a hidden field, which would let
    /// its value be inferred.
    pub fn check_readable(&self, object: &str, names: &[&str], what: &str) -> Result<()> {
        let errors: Vec<FieldError> = names
            .iter()
            .filter(|n| self.is_hidden(object, n))
            .map(|n| FieldError::new(*n, format!("is not available to your role, so it cannot be used in {what}")))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StoreError::FieldForbidden(errors))
        }
    }

    /// Appends the scope of `action` on `object` to a WHERE clause (`table` qualifies the
    /// owner column when the query joins). 403 when the role has no such scope.
    pub fn push_filter(&self, q: &mut Q, object: &ObjectDef, action: Action, table: Option<&str>) -> Result<()> {
        let scope = self.require(object, action)?;
        let col = match table {
            Some(t) => format!("{t}.{}", owner_column(&object.name)),
            None => owner_column(&object.name).to_string(),
        };
        match scope {
            Scope::All | Scope::None => {}
            Scope::Own => {
                let p = q.param(Value::Uuid(self.user_id));
                q.push(&format!(" AND {col} = {p}"));
            }
            Scope::Team => {
                let ps: Vec<String> = self.team.iter().map(|u| q.param(Value::Uuid(*u))).collect();
                q.push(&format!(" AND ({col} IS NULL OR {col} IN ({}))", ps.join(", ")));
            }
        }
        Ok(())
    }

    /// The scope condition as SQL text with literal ids (for statistics queries built as
    /// strings); ids are UUIDs, so literals are safe. `None` means no restriction.
    pub fn owner_condition(&self, object: &str, action: Action, table: Option<&str>) -> Option<String> {
        let col = match table {
            Some(t) => format!("{t}.{}", owner_column(object)),
            None => owner_column(object).to_string(),
        };
        match self.scope(object, action) {
            Scope::All => None,
            Scope::None => Some("1 = 0".into()),
            Scope::Own => Some(format!("{col} = '{}'", self.user_id)),
            Scope::Team => {
                let ids: Vec<String> = self.team.iter().map(|u| format!("'{u}'")).collect();
                Some(format!("({col} IS NULL OR {col} IN ({}))", ids.join(", ")))
            }
        }
    }
}

/// Likely duplicates as this member may see them: a candidate outside their read scope keeps
/// its score and reasons (the duplicate policy must still be explainable) but not its number
/// or title.
pub async fn visible_candidates(
    db: &Db,
    tenant: &crate::Tenant,
    found: Vec<crate::dedupe::Candidate>,
) -> Result<Vec<crate::dedupe::Candidate>> {
    let mut out = Vec::with_capacity(found.len());
    for mut c in found {
        let Some(def) = corvid_core::object(&c.object) else { continue };
        if tenant.access.scope(&def.name, Action::Read) != Scope::All {
            let q = Q::new(format!("SELECT {} FROM {} WHERE company_id = $1 AND id = $2", owner_column(&def.name), def.name))
                .bind(Value::Uuid(tenant.company_id))
                .bind(Value::Uuid(c.id));
            let owner = db.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0));
            if !tenant.access.allows(&def.name, Action::Read, owner) {
                c.number = String::new();
                c.title = format!("A {} outside your access", def.singular);
            }
        }
        out.push(c);
    }
    Ok(out)
}

pub fn owner_of(object: &ObjectDef, record: &Record) -> Option<Uuid> {
    match record.fields.get(owner_column(&object.name)) {
        Some(Value::Uuid(u)) => Some(*u),
        _ => None,
    }
}

/// A member's role, company calling code and access, if they are an active member.
pub struct Membership {
    pub role: Role,
    pub calling_code: String,
    pub access: Access,
}

/// Loads an active member's access (the tenancy gate: `None` for non-members).
pub async fn load(db: &Db, company_id: Uuid, user_id: Uuid) -> Result<Option<Membership>> {
    let q = Q::new(
        "SELECT m.role, c.calling_code, m.custom_role, r.label, r.permissions FROM memberships m \
         JOIN users u ON u.id = m.user_id JOIN companies c ON c.id = m.company_id \
         LEFT JOIN roles r ON r.company_id = m.company_id AND r.key = COALESCE(m.custom_role, m.role) \
         WHERE m.company_id = $1 AND m.user_id = $2 AND m.is_active = $3 AND u.is_active = $3",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(user_id))
    .bind(Value::Bool(true));
    let types = [SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Json];
    let Some(row) = db.fetch_one(&q, &types).await? else { return Ok(None) };
    let Some(role) = row.text(0).as_deref().and_then(Role::parse) else { return Ok(None) };
    let calling_code = row.text(1).unwrap_or_default();
    let key = row.text(2).unwrap_or_else(|| role.as_str().into());
    let label = row.text(3).unwrap_or_else(|| role.label().into());
    let matrix = resolve_matrix(role, row.json(4).as_ref());
    let needs_team = matrix.values().any(|p| [p.read, p.create, p.edit, p.delete, p.import, p.export].contains(&Scope::Team));
    let team = if needs_team { team_of(db, company_id, user_id).await? } else { BTreeSet::from([user_id]) };
    Ok(Some(Membership {
        role,
        calling_code,
        access: Access { user_id, role_key: key, role_label: label, matrix: Arc::new(matrix), team: Arc::new(team) },
    }))
}

/// A stored matrix completed with the base role's defaults for objects it leaves out, and
/// normalised (writing never beyond reading). Unreadable JSON falls back to the defaults.
pub fn resolve_matrix(base: Role, stored: Option<&serde_json::Value>) -> Matrix {
    let mut stored: BTreeMap<String, ObjectPermissions> = match stored {
        Some(j) => serde_json::from_value(j.clone()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a stored role matrix is unreadable; using the role's defaults");
            BTreeMap::new()
        }),
        None => BTreeMap::new(),
    };
    OBJECT_NAMES
        .iter()
        .map(|o| {
            let p = stored.remove(*o).unwrap_or_else(|| default_permissions(base, o));
            ((*o).to_string(), p.normalised())
        })
        .collect()
}

/// The member, their team mates, and everyone below them in the reporting lines (through
/// `memberships.manager_id` and the teams they manage), transitively.
pub async fn team_of(db: &Db, company_id: Uuid, user_id: Uuid) -> Result<BTreeSet<Uuid>> {
    let members = db
        .fetch(
            &Q::new("SELECT user_id, team_id, manager_id FROM memberships WHERE company_id = $1").bind(Value::Uuid(company_id)),
            &[SqlType::Uuid, SqlType::Uuid, SqlType::Uuid],
        )
        .await?;
    let teams = db
        .fetch(
            &Q::new("SELECT id, manager_id FROM teams WHERE company_id = $1").bind(Value::Uuid(company_id)),
            &[SqlType::Uuid, SqlType::Uuid],
        )
        .await?;
    let rows: Vec<(Uuid, Option<Uuid>, Option<Uuid>)> = members.iter().filter_map(|r| Some((r.uuid(0)?, r.uuid(1), r.uuid(2)))).collect();
    let team_managers: Vec<(Uuid, Uuid)> = teams.iter().filter_map(|r| Some((r.uuid(0)?, r.uuid(1)?))).collect();
    Ok(reach(user_id, &rows, &team_managers))
}

/// Pure part of [`team_of`]: `members` are (user, team, manager), `teams` (team, manager).
pub fn reach(user_id: Uuid, members: &[(Uuid, Option<Uuid>, Option<Uuid>)], teams: &[(Uuid, Uuid)]) -> BTreeSet<Uuid> {
    let mut out = BTreeSet::from([user_id]);
    if let Some(my_team) = members.iter().find(|m| m.0 == user_id).and_then(|m| m.1) {
        out.extend(members.iter().filter(|m| m.1 == Some(my_team)).map(|m| m.0));
    }
    // Reporting lines, breadth first; the visited set makes a cycle harmless.
    let mut queue = vec![user_id];
    let mut seen = BTreeSet::from([user_id]);
    while let Some(boss) = queue.pop() {
        let led: Vec<Uuid> = teams.iter().filter(|t| t.1 == boss).map(|t| t.0).collect();
        for m in members {
            if m.2 == Some(boss) || m.1.is_some_and(|t| led.contains(&t)) {
                out.insert(m.0);
                if seen.insert(m.0) {
                    queue.push(m.0);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporting_lines_are_transitive_and_cycles_end() {
        let ids: Vec<Uuid> = (0..6).map(|_| Uuid::now_v7()).collect();
        let (vp, mgr, rep1, rep2, other, peer) = (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
        let team = Uuid::now_v7();
        let members = vec![
            (vp, None, Some(rep2)), // a cycle through the data must not loop
            (mgr, None, Some(vp)),
            (rep1, Some(team), None),
            (rep2, Some(team), None),
            (other, None, None),
            (peer, Some(team), None),
        ];
        let teams = vec![(team, mgr)];
        let vp_sees = reach(vp, &members, &teams);
        assert!([vp, mgr, rep1, rep2, peer].iter().all(|u| vp_sees.contains(u)));
        assert!(!vp_sees.contains(&other));
        let rep_sees = reach(rep1, &members, &teams);
        assert_eq!(rep_sees, BTreeSet::from([rep1, rep2, peer]));
        assert_eq!(reach(other, &members, &teams), BTreeSet::from([other]));
    }

    #[test]
    fn stored_matrices_are_completed_and_normalised() {
        let stored = serde_json::json!({"leads": {"read": "own", "create": "all", "edit": "all", "delete": "team", "import": "none", "export": "all"}});
        let m = resolve_matrix(Role::SalesRep, Some(&stored));
        let leads = &m["leads"];
        assert_eq!((leads.read, leads.edit, leads.delete, leads.export), (Scope::Own, Scope::Own, Scope::Own, Scope::Own));
        assert_eq!(m["deals"], default_permissions(Role::SalesRep, "deals"));
        let broken = serde_json::json!({"leads": {"read": "everything"}});
        assert_eq!(resolve_matrix(Role::Manager, Some(&broken))["leads"], default_permissions(Role::Manager, "leads"));
    }
}
