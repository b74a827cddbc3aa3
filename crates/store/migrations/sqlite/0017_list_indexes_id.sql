-- Lists sort by (column, id), and an index that ends before `id` cannot give that order
-- whole: the planner then preferred walking the creation-order index and filtering while it
-- walked, which read the whole table for a filter that matched no row (an owner without
-- leads took a second at a million leads). Ending every list index in `id` lets a
-- filtered page be read in order from its own index, whatever the filter matches.
DROP INDEX IF EXISTS leads_status_created;
DROP INDEX IF EXISTS leads_source_created;
DROP INDEX IF EXISTS leads_owner_created;
DROP INDEX IF EXISTS leads_country_created;
DROP INDEX IF EXISTS leads_score;
DROP INDEX IF EXISTS deals_stage_created;
DROP INDEX IF EXISTS deals_owner_created;
CREATE INDEX leads_status_created ON leads (company_id, status, created_at, id);
CREATE INDEX leads_source_created ON leads (company_id, source, created_at, id);
CREATE INDEX leads_owner_created ON leads (company_id, owner_id, created_at, id);
CREATE INDEX leads_country_created ON leads (company_id, country, created_at, id);
CREATE INDEX leads_score ON leads (company_id, lead_score, id);
CREATE INDEX deals_stage_created ON deals (company_id, stage, created_at, id);
CREATE INDEX deals_owner_created ON deals (company_id, owner_id, created_at, id);
