-- Lead columns for governance, scoring, qualification and consent.
ALTER TABLE leads ADD COLUMN city TEXT;
ALTER TABLE leads ADD COLUMN state TEXT;
ALTER TABLE leads ADD COLUMN company_size INTEGER;
ALTER TABLE leads ADD COLUMN validation_reasons TEXT;
ALTER TABLE leads ADD COLUMN spam_reasons TEXT;
ALTER TABLE leads ADD COLUMN duplicate_score INTEGER;
ALTER TABLE leads ADD COLUMN duplicate_reasons TEXT;
ALTER TABLE leads ADD COLUMN score_explanation TEXT;
ALTER TABLE leads ADD COLUMN predictive_score INTEGER;
ALTER TABLE leads ADD COLUMN last_activity_at TEXT;
ALTER TABLE leads ADD COLUMN qualification_reason TEXT;
ALTER TABLE leads ADD COLUMN recycle_date TEXT;
ALTER TABLE leads ADD COLUMN gdpr_consent_at TEXT;
ALTER TABLE leads ADD COLUMN gdpr_consent_source TEXT;
ALTER TABLE leads ADD COLUMN gdpr_consent_version TEXT;

-- Per-company settings of the governance features (policies, thresholds, switches),
-- one JSON value per key; absent keys mean the built-in default.
CREATE TABLE company_settings (
    company_id TEXT NOT NULL REFERENCES companies(id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (company_id, key)
);

-- Duplicate detection. Blocking keys of people (leads, contacts: kind 'person') and
-- organisations (accounts: kind 'org'), kept by the write pipeline; a check looks up the
-- records sharing a key instead of comparing all pairs. Clustered by the key (WITHOUT ROWID)
-- so a lookup and the scan's GROUP BY read one index.
CREATE TABLE dedupe_keys (
    company_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    object TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (company_id, kind, key, record_id)
) WITHOUT ROWID;
CREATE INDEX dedupe_keys_record ON dedupe_keys (company_id, record_id);

-- Which key algorithm a company's index was built with; a scan rebuilds it when it changed.
CREATE TABLE dedupe_index_state (
    company_id TEXT PRIMARY KEY REFERENCES companies(id),
    fingerprint TEXT NOT NULL,
    indexed_at TEXT NOT NULL
);

-- Pairs a user said are not duplicates, stored both ways round.
CREATE TABLE dedupe_dismissals (
    company_id TEXT NOT NULL REFERENCES companies(id),
    record_id TEXT NOT NULL,
    other_id TEXT NOT NULL,
    dismissed_at TEXT NOT NULL,
    dismissed_by TEXT,
    PRIMARY KEY (company_id, record_id, other_id)
);

-- Merged records: the old id keeps resolving to the survivor (chains are collapsed).
CREATE TABLE record_merges (
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    merged_id TEXT NOT NULL,
    survivor_id TEXT NOT NULL,
    merged_at TEXT NOT NULL,
    merged_by TEXT,
    fields TEXT NOT NULL,
    PRIMARY KEY (company_id, merged_id)
);
CREATE INDEX record_merges_survivor ON record_merges (company_id, survivor_id);

-- Whole-base duplicate scans (run as the `dedupe.scan` job) and the clusters they found.
CREATE TABLE dedupe_scans (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    state TEXT NOT NULL,
    job_id TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    reindexed INTEGER NOT NULL DEFAULT 0,
    blocks INTEGER NOT NULL DEFAULT 0,
    skipped_keys INTEGER NOT NULL DEFAULT 0,
    pairs_compared INTEGER NOT NULL DEFAULT 0,
    clusters INTEGER NOT NULL DEFAULT 0,
    records_in_clusters INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX dedupe_scans_company ON dedupe_scans (company_id, created_at);

CREATE TABLE dedupe_clusters (
    scan_id TEXT NOT NULL REFERENCES dedupe_scans(id),
    seq INTEGER NOT NULL,
    company_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    score INTEGER NOT NULL,
    members TEXT NOT NULL,
    pairs TEXT NOT NULL,
    PRIMARY KEY (scan_id, seq)
);

-- Tenant-scoped lookups by id: duplicate checks load candidates by id within the company, the
-- key index is rebuilt page by page in id order, and scans join keys to their records.
CREATE INDEX leads_company_id ON leads (company_id, id);
CREATE INDEX contacts_company_id ON contacts (company_id, id);
CREATE INDEX accounts_company_id ON accounts (company_id, id);
