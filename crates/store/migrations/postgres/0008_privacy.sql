-- Consent and privacy.

-- Contacts carry consent and do-not-disturb like leads; tasks have a kind and activities a
-- direction, so that do-not-disturb can refuse outreach (calls, emails, WhatsApp) and still
-- let inbound contact be logged.
ALTER TABLE contacts ADD COLUMN gdpr_consent BOOLEAN;
ALTER TABLE contacts ADD COLUMN dnd_status BOOLEAN;
ALTER TABLE contacts ADD COLUMN opt_in_date TIMESTAMPTZ;
ALTER TABLE contacts ADD COLUMN gdpr_consent_at TIMESTAMPTZ;
ALTER TABLE contacts ADD COLUMN gdpr_consent_source TEXT;
ALTER TABLE contacts ADD COLUMN gdpr_consent_version TEXT;
UPDATE contacts SET gdpr_consent = FALSE, dnd_status = FALSE;
ALTER TABLE tasks ADD COLUMN task_type TEXT;
UPDATE tasks SET task_type = 'todo';
ALTER TABLE activities ADD COLUMN direction TEXT;

-- Every consent decision about a person (a lead or a contact), oldest first; append-only.
-- given: consent given (true) or withdrawn (false). channel: where the decision was captured.
CREATE TABLE consent_log (
    id UUID PRIMARY KEY,
    company_id UUID NOT NULL REFERENCES companies(id),
    object TEXT NOT NULL,
    record_id UUID NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    given BOOLEAN NOT NULL,
    channel TEXT NOT NULL,
    source TEXT,
    text_version TEXT,
    actor_id UUID,
    ip TEXT,
    note TEXT
);
CREATE INDEX consent_log_record ON consent_log (company_id, object, record_id, at);

-- Audit rows from this migration on (hash_v = 2) hash a salted digest of their old and new
-- values instead of the values, so erasure can redact a value (dropping it and its salt,
-- keeping the digest) and the chain still verifies. Rows written before keep hash_v = 1.
ALTER TABLE audit_log ADD COLUMN hash_v BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN value_salt TEXT;
ALTER TABLE audit_log ADD COLUMN old_digest TEXT;
ALTER TABLE audit_log ADD COLUMN new_digest TEXT;
