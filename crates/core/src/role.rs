//! Membership roles. The full permission matrix builds on these; until then the rules are:
//! Read Only members never write, only Admins manage members and custom fields.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    SalesRep,
    SupportAgent,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Manager, Role::SalesRep, Role::SupportAgent, Role::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::SalesRep => "sales_rep",
            Role::SupportAgent => "support_agent",
            Role::ReadOnly => "read_only",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::Manager => "Manager",
            Role::SalesRep => "Sales Rep",
            Role::SupportAgent => "Support Agent",
            Role::ReadOnly => "Read Only",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn can_write(self) -> bool {
        self != Role::ReadOnly
    }

    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}
