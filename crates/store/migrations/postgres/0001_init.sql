-- Corvid schema, first version. The record tables at the end were generated from the
-- object metadata (see src/schema.rs); everything is scoped by company_id, which leads keys.

CREATE TABLE schema_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE companies (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    default_currency TEXT NOT NULL DEFAULT 'INR',
    default_country TEXT NOT NULL DEFAULT 'IN',
    calling_code TEXT NOT NULL DEFAULT '91',
    time_zone TEXT NOT NULL DEFAULT 'Asia/Kolkata',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE teams (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    name TEXT NOT NULL,
    manager_id UUID REFERENCES users(id),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX teams_name ON teams (company_id, name);

CREATE TABLE memberships (
    company_id UUID NOT NULL REFERENCES companies(id),
    user_id UUID NOT NULL REFERENCES users(id),
    role TEXT NOT NULL,
    team_id UUID REFERENCES teams(id),
    manager_id UUID REFERENCES users(id),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (company_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE refresh_tokens (
    id UUID PRIMARY KEY,
    family_id UUID NOT NULL,
    user_id UUID NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    ip TEXT,
    user_agent TEXT
);
CREATE UNIQUE INDEX refresh_tokens_hash ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE api_tokens (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    locked_until TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE custom_fields (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    field_type TEXT NOT NULL,
    required BOOLEAN NOT NULL DEFAULT FALSE,
    options JSONB NOT NULL,
    max_len BIGINT,
    position BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    created_by UUID
);
CREATE UNIQUE INDEX custom_fields_name ON custom_fields (company_id, object, name);

CREATE TABLE counters (
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    next BIGINT NOT NULL,
    PRIMARY KEY (company_id, object)
);

CREATE TABLE idempotency_keys (
    company_id UUID NOT NULL REFERENCES companies(id),
    user_id UUID NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    object TEXT NOT NULL,
    record_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (company_id, user_id, key)
);

-- Append-only; each row's hash covers the previous row's hash, per company.
CREATE TABLE audit_log (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    seq BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    actor_id UUID,
    object TEXT NOT NULL,
    record_id UUID,
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
    company_id UUID PRIMARY KEY REFERENCES companies(id),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

-- Record tables, generated from the object metadata.

CREATE TABLE leads (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID,
    deleted_at TIMESTAMPTZ,
    custom JSONB NOT NULL DEFAULT '{}'::jsonb,
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
    owner_id UUID,
    status TEXT,
    stage TEXT,
    lead_score BIGINT,
    priority TEXT,
    interest_product TEXT,
    budget_range TEXT,
    authority_level TEXT,
    timeline TEXT,
    bant_budget_score BIGINT,
    bant_budget_notes TEXT,
    bant_authority_score BIGINT,
    bant_authority_notes TEXT,
    bant_need_score BIGINT,
    bant_need_notes TEXT,
    bant_timeline_score BIGINT,
    bant_timeline_notes TEXT,
    meddicc_metrics TEXT,
    meddicc_economic_buyer TEXT,
    meddicc_decision_criteria TEXT,
    meddicc_decision_process TEXT,
    meddicc_identify_pain TEXT,
    meddicc_champion TEXT,
    meddicc_competition TEXT,
    gdpr_consent BOOLEAN,
    dnd_status BOOLEAN,
    opt_in_date TIMESTAMPTZ,
    is_duplicate BOOLEAN,
    duplicate_of_id UUID,
    spam_score TEXT,
    validation_status TEXT,
    converted_at TIMESTAMPTZ,
    converted_account_id UUID,
    converted_contact_id UUID,
    converted_deal_id UUID,
    tags JSONB,
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
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID,
    deleted_at TIMESTAMPTZ,
    custom JSONB NOT NULL DEFAULT '{}'::jsonb,
    name TEXT,
    account_type TEXT,
    industry TEXT,
    company_size TEXT,
    annual_revenue BIGINT,
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
    is_active BOOLEAN,
    owner_id UUID,
    parent_account_id UUID,
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
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID,
    deleted_at TIMESTAMPTZ,
    custom JSONB NOT NULL DEFAULT '{}'::jsonb,
    account_id UUID,
    first_name TEXT,
    last_name TEXT,
    full_name TEXT,
    email TEXT,
    phone TEXT,
    job_title TEXT,
    department TEXT,
    role TEXT,
    influence_score BIGINT,
    preferred_channel TEXT,
    is_primary BOOLEAN,
    reports_to_id UUID,
    language TEXT,
    owner_id UUID
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
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID,
    deleted_at TIMESTAMPTZ,
    custom JSONB NOT NULL DEFAULT '{}'::jsonb,
    name TEXT,
    account_id UUID,
    primary_contact_id UUID,
    lead_id UUID,
    value BIGINT,
    currency TEXT,
    stage TEXT,
    probability BIGINT,
    forecast_category TEXT,
    deal_type TEXT,
    expected_close_date DATE,
    actual_close_date DATE,
    status TEXT,
    loss_reason TEXT,
    competitors TEXT,
    owner_id UUID,
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
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID,
    deleted_at TIMESTAMPTZ,
    custom JSONB NOT NULL DEFAULT '{}'::jsonb,
    title TEXT,
    description TEXT,
    due_at TIMESTAMPTZ,
    priority TEXT,
    status TEXT,
    assignee_id UUID,
    related_object TEXT,
    related_id UUID,
    completed_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX tasks_number ON tasks (company_id, number);
CREATE INDEX tasks_created ON tasks (company_id, created_at, id);
CREATE INDEX tasks_updated ON tasks (company_id, updated_at, id);
CREATE INDEX tasks_status ON tasks (company_id, status);
CREATE INDEX tasks_related_id ON tasks (company_id, related_id);
CREATE INDEX tasks_assignee_id ON tasks (company_id, assignee_id);

CREATE TABLE activities (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    number TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID,
    deleted_at TIMESTAMPTZ,
    custom JSONB NOT NULL DEFAULT '{}'::jsonb,
    activity_type TEXT,
    title TEXT,
    description TEXT,
    duration_minutes BIGINT,
    outcome TEXT,
    activity_date TIMESTAMPTZ,
    user_id UUID,
    lead_id UUID,
    account_id UUID,
    contact_id UUID,
    deal_id UUID,
    task_id UUID
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
