-- Word prefixes of one to three characters get their own index entries in every FTS5
-- table: without them a short word of a search ("com" or "in" of an email address, an
-- initial) had FTS5 merge the lists of every word it starts, 15 to 30 ms at a million leads
-- for each search holding one. The triggers of 0012 name the tables and keep the new ones
-- up to date unchanged.
DROP TABLE leads_fts;
CREATE VIRTUAL TABLE leads_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
INSERT INTO leads_fts (rowid, body) SELECT rowid, coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(company_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(number, '') FROM leads;
DROP TABLE accounts_fts;
CREATE VIRTUAL TABLE accounts_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
INSERT INTO accounts_fts (rowid, body) SELECT rowid, coalesce(name, '') || ' ' || coalesce(website, '') || ' ' || coalesce(gstin, '') || ' ' || coalesce(number, '') FROM accounts;
DROP TABLE contacts_fts;
CREATE VIRTUAL TABLE contacts_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
INSERT INTO contacts_fts (rowid, body) SELECT rowid, coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(full_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(number, '') FROM contacts;
DROP TABLE deals_fts;
CREATE VIRTUAL TABLE deals_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
INSERT INTO deals_fts (rowid, body) SELECT rowid, coalesce(name, '') || ' ' || coalesce(number, '') FROM deals;
DROP TABLE tasks_fts;
CREATE VIRTUAL TABLE tasks_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
INSERT INTO tasks_fts (rowid, body) SELECT rowid, coalesce(title, '') || ' ' || coalesce(number, '') FROM tasks;
DROP TABLE activities_fts;
CREATE VIRTUAL TABLE activities_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');
INSERT INTO activities_fts (rowid, body) SELECT rowid, coalesce(title, '') || ' ' || coalesce(description, '') || ' ' || coalesce(number, '') FROM activities;
