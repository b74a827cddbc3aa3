-- Each of these indexes is a prefix of a list index added in 0013 (company, column,
-- created_at), which answers every query it answered. Every insert paid for both.
DROP INDEX IF EXISTS leads_owner_id;
DROP INDEX IF EXISTS leads_status;
DROP INDEX IF EXISTS leads_source;
DROP INDEX IF EXISTS deals_owner_id;
DROP INDEX IF EXISTS deals_stage;
