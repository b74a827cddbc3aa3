-- Lead qualification history and account-first conversions.

-- Every qualification save or decision on a lead (answers, outcome, reason), newest last.
-- The lead's own columns hold the current answers; this keeps how they came to be.
CREATE TABLE lead_qualifications (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    lead_id TEXT NOT NULL,
    framework TEXT,
    outcome TEXT,
    action TEXT,
    reason TEXT,
    recycle_date TEXT,
    answers TEXT NOT NULL,
    suggestion TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX lead_qualifications_lead ON lead_qualifications (company_id, lead_id, created_at);

-- One row per converted lead: what the conversion created or linked, so that a repeated
-- conversion answers with the first one's result and creates nothing.
CREATE TABLE lead_conversions (
    company_id TEXT NOT NULL REFERENCES companies(id),
    lead_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    deal_id TEXT,
    activity_id TEXT,
    account_created INTEGER NOT NULL,
    contact_created INTEGER NOT NULL,
    overridden INTEGER NOT NULL DEFAULT 0,
    automatic INTEGER NOT NULL DEFAULT 0,
    converted_by TEXT,
    converted_at TEXT NOT NULL,
    PRIMARY KEY (company_id, lead_id)
);
CREATE INDEX lead_conversions_account ON lead_conversions (company_id, account_id);
