-- Lead columns for governance, scoring, qualification and consent.
ALTER TABLE leads ADD COLUMN city TEXT;
ALTER TABLE leads ADD COLUMN state TEXT;
ALTER TABLE leads ADD COLUMN company_size BIGINT;
ALTER TABLE leads ADD COLUMN validation_reasons JSONB;
ALTER TABLE leads ADD COLUMN spam_reasons JSONB;
ALTER TABLE leads ADD COLUMN duplicate_score BIGINT;
ALTER TABLE leads ADD COLUMN duplicate_reasons JSONB;
ALTER TABLE leads ADD COLUMN score_explanation JSONB;
ALTER TABLE leads ADD COLUMN predictive_score BIGINT;
ALTER TABLE leads ADD COLUMN last_activity_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN qualification_reason TEXT;
ALTER TABLE leads ADD COLUMN recycle_date DATE;
ALTER TABLE leads ADD COLUMN gdpr_consent_at TIMESTAMPTZ;
ALTER TABLE leads ADD COLUMN gdpr_consent_source TEXT;
ALTER TABLE leads ADD COLUMN gdpr_consent_version TEXT;

-- Per-company settings of the governance features (policies, thresholds, switches),
-- one JSON value per key; absent keys mean the built-in default.
CREATE TABLE company_settings (
    company_id UUID NOT NULL REFERENCES companies(id),
    key TEXT NOT NULL,
    value JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    updated_by UUID,
    PRIMARY KEY (company_id, key)
);

-- Duplicate detection. Blocking keys of people (leads, contacts: kind 'person') and
-- organisations (accounts: kind 'org'), kept by the write pipeline; a check looks up the
-- records sharing a key instead of comparing all pairs. Keys compare bytewise (COLLATE "C"):
-- cheaper, and the scan pages through them in that order.
CREATE TABLE dedupe_keys (
    company_id UUID NOT NULL,
    kind TEXT NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    object TEXT NOT NULL,
    record_id UUID NOT NULL,
    PRIMARY KEY (company_id, kind, key, record_id)
);
CREATE INDEX dedupe_keys_record ON dedupe_keys (company_id, record_id);

-- Which key algorithm a company's index was built with; a scan rebuilds it when it changed.
CREATE TABLE dedupe_index_state (
    company_id UUID PRIMARY KEY REFERENCES companies(id),
    fingerprint TEXT NOT NULL,
    indexed_at TIMESTAMPTZ NOT NULL
);

-- Pairs a user said are not duplicates, stored both ways round.
CREATE TABLE dedupe_dismissals (
    company_id UUID NOT NULL REFERENCES companies(id),
    record_id UUID NOT NULL,
    other_id UUID NOT NULL,
    dismissed_at TIMESTAMPTZ NOT NULL,
    dismissed_by UUID,
    PRIMARY KEY (company_id, record_id, other_id)
);

-- Merged records: the old id keeps resolving to the survivor (chains are collapsed).
CREATE TABLE record_merges (
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    merged_id UUID NOT NULL,
    survivor_id UUID NOT NULL,
    merged_at TIMESTAMPTZ NOT NULL,
    merged_by UUID,
    fields JSONB NOT NULL,
    PRIMARY KEY (company_id, merged_id)
);
CREATE INDEX record_merges_survivor ON record_merges (company_id, survivor_id);

-- Whole-base duplicate scans (run as the `dedupe.scan` job) and the clusters they found.
CREATE TABLE dedupe_scans (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    state TEXT NOT NULL,
    job_id UUID,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    reindexed BIGINT NOT NULL DEFAULT 0,
    blocks BIGINT NOT NULL DEFAULT 0,
    skipped_keys BIGINT NOT NULL DEFAULT 0,
    pairs_compared BIGINT NOT NULL DEFAULT 0,
    clusters BIGINT NOT NULL DEFAULT 0,
    records_in_clusters BIGINT NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX dedupe_scans_company ON dedupe_scans (company_id, created_at);

CREATE TABLE dedupe_clusters (
    scan_id UUID NOT NULL REFERENCES dedupe_scans(id),
    seq BIGINT NOT NULL,
    company_id UUID NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT NOT NULL,
    score BIGINT NOT NULL,
    members JSONB NOT NULL,
    pairs JSONB NOT NULL,
    PRIMARY KEY (scan_id, seq)
);

-- Tenant-scoped lookups by id: duplicate checks load candidates by id within the company, the
-- key index is rebuilt page by page in id order, and scans join keys to their records.
CREATE INDEX leads_company_id ON leads (company_id, id);
CREATE INDEX contacts_company_id ON contacts (company_id, id);
CREATE INDEX accounts_company_id ON accounts (company_id, id);
