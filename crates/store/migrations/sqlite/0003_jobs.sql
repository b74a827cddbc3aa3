-- Background jobs: a database-backed queue (claimed with a lease, retried with backoff, dead
-- letters kept for inspection) and recurring schedules. System jobs have no company.

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    company_id TEXT REFERENCES companies(id),
    kind TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 5,
    run_at TEXT NOT NULL,
    locked_by TEXT,
    locked_until TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER,
    progress_message TEXT,
    last_error TEXT,
    result TEXT,
    idempotency_key TEXT,
    schedule_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    created_by TEXT REFERENCES users(id)
);
-- Claiming: queued jobs that are due, and running jobs whose lease ran out.
CREATE INDEX jobs_claim ON jobs (state, run_at);
CREATE INDEX jobs_company_created ON jobs (company_id, created_at, id);
CREATE INDEX jobs_company_state ON jobs (company_id, state, created_at);
-- One job per idempotency key, per company (system jobs share the all-zero company) and kind.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (COALESCE(company_id, '00000000-0000-0000-0000-000000000000'), kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE job_schedules (
    id TEXT PRIMARY KEY,
    company_id TEXT REFERENCES companies(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    next_run_at TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_run_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT REFERENCES users(id)
);
CREATE UNIQUE INDEX job_schedules_name ON job_schedules (COALESCE(company_id, '00000000-0000-0000-0000-000000000000'), name);
CREATE INDEX job_schedules_due ON job_schedules (enabled, next_run_at);
