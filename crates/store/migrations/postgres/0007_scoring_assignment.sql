-- Lead scoring (rule sets, score history, engagement events, predictive models) and
-- assignment rules. Rule definitions are JSON validated by corvid_core::{rules, scoring}.

-- A rule set: rules (conditions -> points, weight), bands and decay in `definition`.
-- At most one active set per company and object.
CREATE TABLE scoring_rule_sets (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    is_active BOOLEAN NOT NULL DEFAULT FALSE,
    definition JSONB NOT NULL,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID
);
CREATE UNIQUE INDEX scoring_rule_sets_name ON scoring_rule_sets (company_id, object, name);
CREATE UNIQUE INDEX scoring_rule_sets_active ON scoring_rule_sets (company_id, object) WHERE is_active;

-- Every change of a lead's rule score, with why it changed.
CREATE TABLE lead_score_history (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    lead_id UUID NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    score BIGINT NOT NULL,
    previous_score BIGINT,
    reason TEXT NOT NULL,
    rule_set_id UUID
);
CREATE INDEX lead_score_history_lead ON lead_score_history (company_id, lead_id, at);

-- Engagement reported from outside (email opened/clicked, form submitted, meeting held).
-- Activities logged against a lead count too, read from the activities table.
CREATE TABLE lead_engagement_events (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    lead_id UUID NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    source TEXT,
    details JSONB,
    created_at TIMESTAMPTZ NOT NULL,
    created_by UUID
);
CREATE INDEX lead_engagement_events_lead ON lead_engagement_events (company_id, lead_id, occurred_at);

-- The company's predictive model (the latest training run) per object.
CREATE TABLE predictive_models (
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    status TEXT NOT NULL,
    model JSONB,
    auc DOUBLE PRECISION,
    positives BIGINT NOT NULL DEFAULT 0,
    negatives BIGINT NOT NULL DEFAULT 0,
    train_count BIGINT NOT NULL DEFAULT 0,
    test_count BIGINT NOT NULL DEFAULT 0,
    message TEXT,
    trained_at TIMESTAMPTZ NOT NULL,
    trained_by UUID,
    job_id UUID,
    PRIMARY KEY (company_id, object)
);

-- Ordered assignment rules: conditions -> a user, or a team/list by round robin or load,
-- or territories. `rr_last_user_id` is the round-robin position, kept across transactions.
CREATE TABLE assignment_rules (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    conditions JSONB NOT NULL,
    strategy TEXT NOT NULL,
    user_id UUID,
    team_id UUID,
    user_ids JSONB NOT NULL,
    territories JSONB NOT NULL,
    rr_last_user_id UUID,
    version BIGINT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    updated_by UUID
);
CREATE UNIQUE INDEX assignment_rules_name ON assignment_rules (company_id, object, name);
CREATE INDEX assignment_rules_position ON assignment_rules (company_id, object, position);
