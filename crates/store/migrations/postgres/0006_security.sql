-- Accounts and the edge: password resets, TOTP two-factor with recovery codes, sign-in
-- challenges, the per-user security log and the system log. Secrets are stored hashed
-- (SHA-256 of high-entropy random tokens); the TOTP secret must be readable to verify codes.

CREATE TABLE password_resets (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ,
    ip TEXT
);
CREATE UNIQUE INDEX password_resets_hash ON password_resets (token_hash);
CREATE INDEX password_resets_user ON password_resets (user_id, created_at);

-- One TOTP secret per user; enabled_at is NULL while enrolment waits for a first code.
-- last_step is the newest 30-second step accepted, so a code cannot be replayed.
CREATE TABLE user_totp (
    user_id UUID PRIMARY KEY REFERENCES users(id),
    secret TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    enabled_at TIMESTAMPTZ,
    last_step BIGINT
);

CREATE TABLE recovery_codes (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    code_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id, code_hash);

-- The second step of a sign-in: issued after the password, spent by a TOTP or recovery code.
CREATE TABLE mfa_challenges (
    token_hash TEXT PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    used_at TIMESTAMPTZ
);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);

-- Account changes that belong to a person rather than a company (password, second factor,
-- sessions); append-only.
CREATE TABLE security_events (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users(id),
    at TIMESTAMPTZ NOT NULL,
    action TEXT NOT NULL,
    detail TEXT,
    ip TEXT,
    user_agent TEXT,
    request_id TEXT
);
CREATE INDEX security_events_user ON security_events (user_id, at);

-- Structured server logs, shared by every process on this database; pruned by age.
-- severity: 1 error, 2 warn, 3 info, 4 debug, 5 trace.
CREATE TABLE system_logs (
    id UUID PRIMARY KEY,
    company_id UUID,
    at TIMESTAMPTZ NOT NULL,
    severity BIGINT NOT NULL,
    target TEXT NOT NULL,
    message TEXT NOT NULL,
    fields JSONB NOT NULL,
    request_id TEXT,
    node TEXT NOT NULL
);
CREATE INDEX system_logs_company ON system_logs (company_id, at);
CREATE INDEX system_logs_request ON system_logs (company_id, request_id);
CREATE INDEX system_logs_at ON system_logs (at);
