-- Imports: the uploaded file, its mapping and options, and progress committed with each batch
-- (so an interrupted import resumes after its last committed batch); failed rows with reasons.

CREATE TABLE imports (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    state TEXT NOT NULL,
    file_name TEXT NOT NULL,
    file_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    encoding TEXT NOT NULL,
    headers TEXT NOT NULL,
    mapping TEXT NOT NULL,
    options TEXT NOT NULL,
    idempotency_key TEXT,
    rows_done INTEGER NOT NULL,
    created_count INTEGER NOT NULL,
    updated_count INTEGER NOT NULL,
    skipped_count INTEGER NOT NULL,
    failed_count INTEGER NOT NULL,
    error TEXT,
    job_id TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE UNIQUE INDEX imports_idempotency ON imports (company_id, idempotency_key);
CREATE INDEX imports_created ON imports (company_id, created_at);

CREATE TABLE import_errors (
    import_id TEXT NOT NULL REFERENCES imports(id),
    row_number INTEGER NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX import_errors_row ON import_errors (import_id, row_number);

CREATE TABLE import_templates (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    mapping TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX import_templates_name ON import_templates (company_id, object, name);
