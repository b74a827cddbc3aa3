-- Imports: the uploaded file, its mapping and options, and progress committed with each batch
-- (so an interrupted import resumes after its last committed batch); failed rows with reasons.

CREATE TABLE imports (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    state TEXT NOT NULL,
    file_name TEXT NOT NULL,
    file_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    encoding TEXT NOT NULL,
    headers JSONB NOT NULL,
    mapping JSONB NOT NULL,
    options JSONB NOT NULL,
    idempotency_key TEXT,
    rows_done BIGINT NOT NULL,
    created_count BIGINT NOT NULL,
    updated_count BIGINT NOT NULL,
    skipped_count BIGINT NOT NULL,
    failed_count BIGINT NOT NULL,
    error TEXT,
    job_id UUID,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX imports_idempotency ON imports (company_id, idempotency_key);
CREATE INDEX imports_created ON imports (company_id, created_at);

CREATE TABLE import_errors (
    import_id UUID NOT NULL REFERENCES imports(id),
    row_number BIGINT NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw JSONB NOT NULL
);
CREATE INDEX import_errors_row ON import_errors (import_id, row_number);

CREATE TABLE import_templates (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    mapping JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX import_templates_name ON import_templates (company_id, object, name);
