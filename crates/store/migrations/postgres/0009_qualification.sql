-- Lead qualification history and account-first conversions.

-- Every qualification save or decision on a lead (answers, outcome, reason), newest last.
-- The lead's own columns hold the current answers; this keeps how they came to be.
CREATE TABLE lead_qualifications (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    lead_id UUID NOT NULL,
    framework TEXT,
    outcome TEXT,
    action TEXT,
    reason TEXT,
    recycle_date DATE,
    answers JSONB NOT NULL,
    suggestion TEXT,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX lead_qualifications_lead ON lead_qualifications (company_id, lead_id, created_at);

-- One row per converted lead: what the conversion created or linked, so that a repeated
-- conversion answers with the first one's result and creates nothing.
CREATE TABLE lead_conversions (
    company_id UUID NOT NULL REFERENCES companies(id),
    lead_id UUID NOT NULL,
    account_id UUID NOT NULL,
    contact_id UUID NOT NULL,
    deal_id UUID,
    activity_id UUID,
    account_created BOOLEAN NOT NULL,
    contact_created BOOLEAN NOT NULL,
    overridden BOOLEAN NOT NULL DEFAULT FALSE,
    automatic BOOLEAN NOT NULL DEFAULT FALSE,
    converted_by UUID,
    converted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (company_id, lead_id)
);
CREATE INDEX lead_conversions_account ON lead_conversions (company_id, account_id);
