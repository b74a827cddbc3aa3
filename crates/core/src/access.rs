//! The permission model: for every role, object × action → scope, and per field hidden,
//! read-only or editable. Pure data and decisions; the store loads a member's role and
//! reporting lines and asks these types what the member may do.
//!
//! Scopes nest: `none` < `own` (records the member owns) < `team` (records owned by the
//! member's team mates, by anyone below them in the reporting lines, or by nobody) < `all`.

use crate::role::Role;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    None,
    Own,
    Team,
    All,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::None, Scope::Own, Scope::Team, Scope::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::None => "none",
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::All => "all",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Scope::None => "None",
            Scope::Own => "Own",
            Scope::Team => "Team",
            Scope::All => "All",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Create,
    Edit,
    Delete,
    Import,
    Export,
}

impl Action {
    pub const ALL: [Action; 6] = [Action::Read, Action::Create, Action::Edit, Action::Delete, Action::Import, Action::Export];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Edit => "edit",
            Action::Delete => "delete",
            Action::Import => "import",
            Action::Export => "export",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Action::Read => "Read",
            Action::Create => "Create",
            Action::Edit => "Edit",
            Action::Delete => "Delete",
            Action::Import => "Import",
            Action::Export => "Export",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The verb used in refusals ("your role cannot edit leads").
    pub fn verb(self) -> &'static str {
        self.as_str()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    Hidden,
    ReadOnly,
    #[default]
    Editable,
}

impl FieldAccess {
    pub const ALL: [FieldAccess; 3] = [FieldAccess::Hidden, FieldAccess::ReadOnly, FieldAccess::Editable];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldAccess::Hidden => "hidden",
            FieldAccess::ReadOnly => "read_only",
            FieldAccess::Editable => "editable",
        }
    }

    pub fn parse(s: &str) -> Option<FieldAccess> {
        FieldAccess::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What a role may do with one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectPermissions {
    pub read: Scope,
    pub create: Scope,
    pub edit: Scope,
    pub delete: Scope,
    pub import: Scope,
    pub export: Scope,
    /// Fields that are not editable; a field absent here is editable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, FieldAccess>,
}

impl ObjectPermissions {
    fn uniform(read: Scope, write: Scope, delete: Scope, import: Scope, export: Scope) -> Self {
        ObjectPermissions { read, create: write, edit: write, delete, import, export, fields: BTreeMap::new() }
    }

    pub fn scope(&self, action: Action) -> Scope {
        match action {
            Action::Read => self.read,
            Action::Create => self.create,
            Action::Edit => self.edit,
            Action::Delete => self.delete,
            Action::Import => self.import,
            Action::Export => self.export,
        }
    }

    pub fn set_scope(&mut self, action: Action, scope: Scope) {
        match action {
            Action::Read => self.read = scope,
            Action::Create => self.create = scope,
            Action::Edit => self.edit = scope,
            Action::Delete => self.delete = scope,
            Action::Import => self.import = scope,
            Action::Export => self.export = scope,
        }
    }

    pub fn field(&self, name: &str) -> FieldAccess {
        self.fields.get(name).copied().unwrap_or_default()
    }

    /// Writing needs reading: a role that may edit or delete what it cannot see would act
    /// blind, and export or import beyond the read scope would leak. Scopes above the read
    /// scope are lowered to it.
    pub fn normalised(mut self) -> Self {
        for a in [Action::Edit, Action::Delete, Action::Export] {
            let s = self.scope(a).min(self.read);
            self.set_scope(a, s);
        }
        self.fields.retain(|_, v| *v != FieldAccess::Editable);
        self
    }
}

/// A role's whole matrix: object name → permissions.
pub type Matrix = BTreeMap<String, ObjectPermissions>;

/// The column holding a record's owner, by object.
pub fn owner_column(object: &str) -> &'static str {
    match object {
        "tasks" => "assignee_id",
        "activities" => "user_id",
        _ => "owner_id",
    }
}

/// The defaults of each built-in role: an Admin does everything; a Manager works on the team's
/// records; a Sales Rep reads the team's and changes its own; a Support Agent serves customers
/// (accounts, contacts, tasks, activities) and sees the pipeline without changing it; Read Only
/// reads everything and changes nothing.
pub fn default_permissions(role: Role, object: &str) -> ObjectPermissions {
    use Scope::*;
    let p = ObjectPermissions::uniform;
    let customer_record = matches!(object, "accounts" | "contacts");
    match role {
        Role::Admin => p(All, All, All, All, All),
        Role::Manager if customer_record => ObjectPermissions { read: All, ..p(All, Team, Team, Team, Team) },
        Role::Manager => p(Team, Team, Team, Team, Team),
        Role::SalesRep => match object {
            // Accounts are shared: a rep finds any customer, and changes those it owns.
            "accounts" => p(All, Own, None, None, Own),
            "contacts" => p(All, Own, Own, None, Own),
            _ => p(Team, Own, Own, None, Own),
        },
        Role::SupportAgent => match object {
            "leads" => p(None, None, None, None, None),
            "deals" => p(Team, None, None, None, None),
            "accounts" | "contacts" => p(All, Own, None, None, None),
            _ => p(Team, Own, Own, None, None),
        },
        Role::ReadOnly => p(All, None, None, None, None),
    }
}

pub fn default_matrix(role: Role, objects: &[&str]) -> Matrix {
    objects.iter().map(|o| ((*o).to_string(), default_permissions(role, o))).collect()
}

/// Whether a record owned by `owner` falls within `scope` for `user`, whose team (including
/// the user) is `team`. Unowned records are the team's shared pool.
pub fn in_scope(scope: Scope, user: uuid::Uuid, team: &[uuid::Uuid], owner: Option<uuid::Uuid>) -> bool {
    match scope {
        Scope::None => false,
        Scope::Own => owner == Some(user),
        Scope::Team => owner.is_none_or(|o| o == user || team.contains(&o)),
        Scope::All => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn defaults_follow_the_brief() {
        let rep = default_permissions(Role::SalesRep, "leads");
        assert_eq!((rep.read, rep.edit, rep.create), (Scope::Team, Scope::Own, Scope::Own));
        let mgr = default_permissions(Role::Manager, "deals");
        assert_eq!((mgr.read, mgr.edit), (Scope::Team, Scope::Team));
        assert_eq!(default_permissions(Role::ReadOnly, "deals").edit, Scope::None);
        assert_eq!(default_permissions(Role::SupportAgent, "leads").read, Scope::None);
        for o in ["leads", "accounts", "contacts", "deals", "tasks", "activities"] {
            for r in Role::ALL {
                let p = default_permissions(r, o);
                assert_eq!(p.clone().normalised(), p, "{r:?} {o} defaults are already normalised");
            }
        }
    }

    #[test]
    fn writing_never_exceeds_reading() {
        let p = ObjectPermissions { read: Scope::Own, ..default_permissions(Role::Admin, "leads") }.normalised();
        assert_eq!((p.edit, p.delete, p.export, p.create), (Scope::Own, Scope::Own, Scope::Own, Scope::All));
    }

    #[test]
    fn scopes_nest() {
        let (me, mate, stranger) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let team = [me, mate];
        assert!(in_scope(Scope::Own, me, &team, Some(me)));
        assert!(!in_scope(Scope::Own, me, &team, Some(mate)));
        assert!(!in_scope(Scope::Own, me, &team, None));
        assert!(in_scope(Scope::Team, me, &team, Some(mate)));
        assert!(in_scope(Scope::Team, me, &team, None));
        assert!(!in_scope(Scope::Team, me, &team, Some(stranger)));
        assert!(in_scope(Scope::All, me, &team, Some(stranger)));
        assert!(!in_scope(Scope::None, me, &team, Some(me)));
    }

    #[test]
    fn field_access_round_trips() {
        let mut p = default_permissions(Role::SalesRep, "leads");
        p.fields.insert("email".into(), FieldAccess::Hidden);
        p.fields.insert("phone".into(), FieldAccess::Editable);
        let p = p.normalised();
        assert_eq!(p.field("email"), FieldAccess::Hidden);
        assert_eq!(p.field("phone"), FieldAccess::Editable);
        assert!(!p.fields.contains_key("phone"));
        let json = serde_json::to_string(&p).unwrap_or_default();
        let back: ObjectPermissions = serde_json::from_str(&json).unwrap_or_else(|_| default_permissions(Role::Admin, "leads"));
        assert_eq!(back, p);
    }
}
