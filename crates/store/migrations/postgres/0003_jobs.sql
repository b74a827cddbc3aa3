-- Background jobs: a database-backed queue (claimed with a lease, retried with backoff, dead
-- letters kept for inspection) and recurring schedules. System jobs have no company.

CREATE TABLE jobs (
    id UUID PRIMARY KEY,
    company_id UUID REFERENCES companies(id),
    kind TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL DEFAULT 5,
    run_at TIMESTAMPTZ NOT NULL,
    locked_by TEXT,
    locked_until TIMESTAMPTZ,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    progress_done BIGINT NOT NULL DEFAULT 0,
    progress_total BIGINT,
    progress_message TEXT,
    last_error TEXT,
    result JSONB,
    idempotency_key TEXT,
    schedule_id UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    created_by UUID REFERENCES users(id)
);
-- Claiming: queued jobs that are due, and running jobs whose lease ran out.
CREATE INDEX jobs_claim ON jobs (state, run_at);
CREATE INDEX jobs_company_created ON jobs (company_id, created_at, id);
CREATE INDEX jobs_company_state ON jobs (company_id, state, created_at);
-- One job per idempotency key, per company (system jobs share the all-zero company) and kind.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (COALESCE(company_id, '00000000-0000-0000-0000-000000000000'::uuid), kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_schedules (
    id UUID PRIMARY KEY,
    company_id UUID REFERENCES companies(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload JSONB NOT NULL DEFAULT '{}',
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    next_run_at TIMESTAMPTZ NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    last_run_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID REFERENCES users(id)
);
CREATE UNIQUE INDEX job_schedules_name ON job_schedules (COALESCE(company_id, '00000000-0000-0000-0000-000000000000'::uuid), name);
CREATE INDEX job_schedules_due ON job_schedules (enabled, next_run_at);
