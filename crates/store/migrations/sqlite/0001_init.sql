-- Corvid schema, first version. The record tables at the end were generated from the
-- object metadata (see src/schema.rs); everything is scoped by company_id, which leads keys.

CREATE TABLE schema_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE companies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    default_currency TEXT NOT NULL DEFAULT 'INR',
    default_country TEXT NOT NULL DEFAULT 'IN',
    calling_code TEXT NOT NULL DEFAULT '91',
    time_zone TEXT NOT NULL DEFAULT 'Asia/Kolkata',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_login_at TEXT
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE teams (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    name TEXT NOT NULL,
    manager_id TEXT REFERENCES users(id),
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX teams_name ON teams (company_id, name);

CREATE TABLE memberships (
    company_id TEXT NOT NULL REFERENCES companies(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    team_id TEXT REFERENCES teams(id),
    manager_id TEXT REFERENCES users(id),
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (company_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    revoked_at TEXT,
    ip TEXT,
    user_agent TEXT
);
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE custom_fields (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    field_type TEXT NOT NULL,
    required INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL,
    max_len INTEGER,
    position INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    created_by TEXT
);
CREATE UNIQUE INDEX custom_fields_name ON custom_fields (company_id, object, name);

CREATE TABLE counters (
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (company_id, object)
);

CREATE TABLE idempotency_keys (
    company_id TEXT NOT NULL REFERENCES companies(id),
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    object TEXT NOT NULL,
    record_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (company_id, user_id, key)
);

-- Append-only; each row's hash covers the previous row's hash, per company.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor_id TEXT,
    object TEXT NOT NULL,
    record_id TEXT,
    action TEXT NOT NULL,
    field TEXT,
    old_value TEXT,
    new_value TEXT,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_log_seq ON audit_log (company_id, seq);
CREATE INDEX audit_log_record ON audit_log (company_id, object, record_id, seq);
CREATE INDEX audit_log_actor ON audit_log (company_id, actor_id, seq);
CREATE INDEX audit_log_at ON audit_log (company_id, at);

CREATE TABLE audit_heads (
    company_id TEXT PRIMARY KEY REFERENCES companies(id),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);

-- Record tables, generated from the object metadata.

CREATE TABLE leads (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    first_name TEXT,
    last_name TEXT,
    company_name TEXT,
    email TEXT,
    phone TEXT,
    country TEXT,
    job_title TEXT,
    source TEXT,
    campaign TEXT,
    medium TEXT,
    term TEXT,
    owner_id TEXT,
    status TEXT,
    stage TEXT,
    lead_score INTEGER,
    priority TEXT,
    interest_product TEXT,
    budget_range TEXT,
    authority_level TEXT,
    timeline TEXT,
    bant_budget_score INTEGER,
    bant_budget_notes TEXT,
    bant_authority_score INTEGER,
    bant_authority_notes TEXT,
    bant_need_score INTEGER,
    bant_need_notes TEXT,
    bant_timeline_score INTEGER,
    bant_timeline_notes TEXT,
    meddicc_metrics TEXT,
    meddicc_economic_buyer TEXT,
    meddicc_decision_criteria TEXT,
    meddicc_decision_process TEXT,
    meddicc_identify_pain TEXT,
    meddicc_champion TEXT,
    meddicc_competition TEXT,
    gdpr_consent INTEGER,
    dnd_status INTEGER,
    opt_in_date TEXT,
    is_duplicate INTEGER,
    duplicate_of_id TEXT,
    spam_score TEXT,
    validation_status TEXT,
    converted_at TEXT,
    converted_account_id TEXT,
    converted_contact_id TEXT,
    converted_deal_id TEXT,
    tags TEXT,
    notes TEXT
);
CREATE UNIQUE INDEX leads_number ON leads (company_id, number);
CREATE INDEX leads_created ON leads (company_id, created_at, id);
CREATE INDEX leads_updated ON leads (company_id, updated_at, id);
CREATE INDEX leads_owner_id ON leads (company_id, owner_id);
CREATE INDEX leads_status ON leads (company_id, status);
CREATE INDEX leads_source ON leads (company_id, source);
CREATE INDEX leads_email ON leads (company_id, email);
CREATE INDEX leads_phone ON leads (company_id, phone);
CREATE INDEX leads_stage ON leads (company_id, stage);
CREATE INDEX leads_last_name ON leads (company_id, last_name);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    name TEXT,
    account_type TEXT,
    industry TEXT,
    company_size TEXT,
    annual_revenue INTEGER,
    currency TEXT,
    website TEXT,
    phone TEXT,
    email TEXT,
    gstin TEXT,
    billing_street TEXT,
    billing_city TEXT,
    billing_state TEXT,
    billing_postal_code TEXT,
    billing_country TEXT,
    shipping_street TEXT,
    shipping_city TEXT,
    shipping_state TEXT,
    shipping_postal_code TEXT,
    shipping_country TEXT,
    health_score TEXT,
    lifecycle_stage TEXT,
    is_active INTEGER,
    owner_id TEXT,
    parent_account_id TEXT,
    territory TEXT,
    description TEXT
);
CREATE UNIQUE INDEX accounts_number ON accounts (company_id, number);
CREATE INDEX accounts_created ON accounts (company_id, created_at, id);
CREATE INDEX accounts_updated ON accounts (company_id, updated_at, id);
CREATE INDEX accounts_owner_id ON accounts (company_id, owner_id);
CREATE INDEX accounts_email ON accounts (company_id, email);
CREATE INDEX accounts_phone ON accounts (company_id, phone);
CREATE INDEX accounts_name ON accounts (company_id, name);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    account_id TEXT,
    first_name TEXT,
    last_name TEXT,
    full_name TEXT,
    email TEXT,
    phone TEXT,
    job_title TEXT,
    department TEXT,
    role TEXT,
    influence_score INTEGER,
    preferred_channel TEXT,
    is_primary INTEGER,
    reports_to_id TEXT,
    language TEXT,
    owner_id TEXT
);
CREATE UNIQUE INDEX contacts_number ON contacts (company_id, number);
CREATE INDEX contacts_created ON contacts (company_id, created_at, id);
CREATE INDEX contacts_updated ON contacts (company_id, updated_at, id);
CREATE INDEX contacts_owner_id ON contacts (company_id, owner_id);
CREATE INDEX contacts_email ON contacts (company_id, email);
CREATE INDEX contacts_phone ON contacts (company_id, phone);
CREATE INDEX contacts_account_id ON contacts (company_id, account_id);
CREATE INDEX contacts_last_name ON contacts (company_id, last_name);

CREATE TABLE deals (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    name TEXT,
    account_id TEXT,
    primary_contact_id TEXT,
    lead_id TEXT,
    value INTEGER,
    currency TEXT,
    stage TEXT,
    probability INTEGER,
    forecast_category TEXT,
    deal_type TEXT,
    expected_close_date TEXT,
    actual_close_date TEXT,
    status TEXT,
    loss_reason TEXT,
    competitors TEXT,
    owner_id TEXT,
    description TEXT
);
CREATE UNIQUE INDEX deals_number ON deals (company_id, number);
CREATE INDEX deals_created ON deals (company_id, created_at, id);
CREATE INDEX deals_updated ON deals (company_id, updated_at, id);
CREATE INDEX deals_owner_id ON deals (company_id, owner_id);
CREATE INDEX deals_status ON deals (company_id, status);
CREATE INDEX deals_stage ON deals (company_id, stage);
CREATE INDEX deals_account_id ON deals (company_id, account_id);
CREATE INDEX deals_lead_id ON deals (company_id, lead_id);
CREATE INDEX deals_name ON deals (company_id, name);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    title TEXT,
    description TEXT,
    due_at TEXT,
    priority TEXT,
    status TEXT,
    assignee_id TEXT,
    related_object TEXT,
    related_id TEXT,
    completed_at TEXT
);
CREATE UNIQUE INDEX tasks_number ON tasks (company_id, number);
CREATE INDEX tasks_created ON tasks (company_id, created_at, id);
CREATE INDEX tasks_updated ON tasks (company_id, updated_at, id);
CREATE INDEX tasks_status ON tasks (company_id, status);
CREATE INDEX tasks_related_id ON tasks (company_id, related_id);
CREATE INDEX tasks_assignee_id ON tasks (company_id, assignee_id);

CREATE TABLE activities (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT,
    deleted_at TEXT,
    custom TEXT NOT NULL DEFAULT '{}',
    activity_type TEXT,
    title TEXT,
    description TEXT,
    duration_minutes INTEGER,
    outcome TEXT,
    activity_date TEXT,
    user_id TEXT,
    lead_id TEXT,
    account_id TEXT,
    contact_id TEXT,
    deal_id TEXT,
    task_id TEXT
);
CREATE UNIQUE INDEX activities_number ON activities (company_id, number);
CREATE INDEX activities_created ON activities (company_id, created_at, id);
CREATE INDEX activities_updated ON activities (company_id, updated_at, id);
CREATE INDEX activities_account_id ON activities (company_id, account_id);
CREATE INDEX activities_lead_id ON activities (company_id, lead_id);
CREATE INDEX activities_contact_id ON activities (company_id, contact_id);
CREATE INDEX activities_deal_id ON activities (company_id, deal_id);
CREATE INDEX activities_task_id ON activities (company_id, task_id);
CREATE INDEX activities_activity_date ON activities (company_id, activity_date);
