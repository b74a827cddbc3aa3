-- Imports: the number of data rows in the file (counted before the first batch, for progress
-- bars), and who last saved a mapping template and when (templates are replaced by name).
ALTER TABLE imports ADD COLUMN rows_total INTEGER;
ALTER TABLE import_templates ADD COLUMN created_by TEXT;
ALTER TABLE import_templates ADD COLUMN updated_at TEXT;
