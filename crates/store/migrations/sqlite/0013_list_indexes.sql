-- Indexes for the common list views: a filter on one column, newest first, so a page is
-- read in order from the index instead of sorting every match.
CREATE INDEX leads_status_created ON leads (company_id, status, created_at);
CREATE INDEX leads_source_created ON leads (company_id, source, created_at);
CREATE INDEX leads_owner_created ON leads (company_id, owner_id, created_at);
CREATE INDEX leads_country_created ON leads (company_id, country, created_at);
CREATE INDEX leads_score ON leads (company_id, lead_score);
CREATE INDEX deals_stage_created ON deals (company_id, stage, created_at);
CREATE INDEX deals_owner_created ON deals (company_id, owner_id, created_at);
