-- Lead scoring (rule sets, score history, engagement events, predictive models) and
-- assignment rules. Rule definitions are JSON validated by corvid_core::{rules, scoring}.

-- A rule set: rules (conditions -> points, weight), bands and decay in `definition`.
-- At most one active set per company and object.
CREATE TABLE scoring_rule_sets (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    is_active INTEGER NOT NULL DEFAULT 0,
    definition TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT
);
CREATE UNIQUE INDEX scoring_rule_sets_name ON scoring_rule_sets (company_id, object, name);
CREATE UNIQUE INDEX scoring_rule_sets_active ON scoring_rule_sets (company_id, object) WHERE is_active = 1;

-- Every change of a lead's rule score, with why it changed.
CREATE TABLE lead_score_history (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    lead_id TEXT NOT NULL,
    at TEXT NOT NULL,
    score INTEGER NOT NULL,
    previous_score INTEGER,
    reason TEXT NOT NULL,
    rule_set_id TEXT
);
CREATE INDEX lead_score_history_lead ON lead_score_history (company_id, lead_id, at);

-- Engagement reported from outside (email opened/clicked, form submitted, meeting held).
-- Activities logged against a lead count too, read from the activities table.
CREATE TABLE lead_engagement_events (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    lead_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    source TEXT,
    details TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT
);
CREATE INDEX lead_engagement_events_lead ON lead_engagement_events (company_id, lead_id, occurred_at);

-- The company's predictive model (the latest training run) per object.
CREATE TABLE predictive_models (
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    status TEXT NOT NULL,
    model TEXT,
    auc REAL,
    positives INTEGER NOT NULL DEFAULT 0,
    negatives INTEGER NOT NULL DEFAULT 0,
    train_count INTEGER NOT NULL DEFAULT 0,
    test_count INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    trained_at TEXT NOT NULL,
    trained_by TEXT,
    job_id TEXT,
    PRIMARY KEY (company_id, object)
);

-- Ordered assignment rules: conditions -> a user, or a team/list by round robin or load,
-- or territories. `rr_last_user_id` is the round-robin position, kept across transactions.
CREATE TABLE assignment_rules (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 1,
    conditions TEXT NOT NULL,
    strategy TEXT NOT NULL,
    user_id TEXT,
    team_id TEXT,
    user_ids TEXT NOT NULL,
    territories TEXT NOT NULL,
    rr_last_user_id TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT
);
CREATE UNIQUE INDEX assignment_rules_name ON assignment_rules (company_id, object, name);
CREATE INDEX assignment_rules_position ON assignment_rules (company_id, object, position);
