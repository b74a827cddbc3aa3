-- Roles: a company's changes to a built-in role's matrix (key = the built-in role) and its
-- custom roles (key `custom_...`, acting as `base_role` wherever a coarse role is needed).
-- `permissions` is the matrix as JSON: object -> {read, create, edit, delete, import, export,
-- fields}; objects it leaves out keep the base role's defaults.
CREATE TABLE roles (
    company_id TEXT NOT NULL REFERENCES companies(id),
    key TEXT NOT NULL,
    label TEXT NOT NULL,
    base_role TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (company_id, key)
);
-- A member's custom role, if any; `role` stays the built-in role it is based on.
ALTER TABLE memberships ADD COLUMN custom_role TEXT;
CREATE INDEX memberships_manager ON memberships (company_id, manager_id);
CREATE INDEX memberships_team ON memberships (company_id, team_id);
