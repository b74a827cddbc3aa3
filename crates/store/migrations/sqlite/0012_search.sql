-- Word search: an FTS5 index over the searchable fields of every object, kept by triggers.
CREATE VIRTUAL TABLE leads_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO leads_fts (rowid, body) SELECT rowid, coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(company_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(number, '') FROM leads;
CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads BEGIN
    INSERT INTO leads_fts (rowid, body) VALUES (new.rowid, coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '') || ' ' || coalesce(new.company_name, '') || ' ' || coalesce(new.email, '') || ' ' || coalesce(new.phone, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER leads_fts_update AFTER UPDATE OF first_name, last_name, company_name, email, phone, number ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.first_name, '') || ' ' || coalesce(old.last_name, '') || ' ' || coalesce(old.company_name, '') || ' ' || coalesce(old.email, '') || ' ' || coalesce(old.phone, '') || ' ' || coalesce(old.number, ''));
    INSERT INTO leads_fts (rowid, body) VALUES (new.rowid, coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '') || ' ' || coalesce(new.company_name, '') || ' ' || coalesce(new.email, '') || ' ' || coalesce(new.phone, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_fts (leads_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.first_name, '') || ' ' || coalesce(old.last_name, '') || ' ' || coalesce(old.company_name, '') || ' ' || coalesce(old.email, '') || ' ' || coalesce(old.phone, '') || ' ' || coalesce(old.number, ''));
END;
CREATE VIRTUAL TABLE accounts_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO accounts_fts (rowid, body) SELECT rowid, coalesce(name, '') || ' ' || coalesce(website, '') || ' ' || coalesce(gstin, '') || ' ' || coalesce(number, '') FROM accounts;
CREATE TRIGGER accounts_fts_insert AFTER INSERT ON accounts BEGIN
    INSERT INTO accounts_fts (rowid, body) VALUES (new.rowid, coalesce(new.name, '') || ' ' || coalesce(new.website, '') || ' ' || coalesce(new.gstin, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER accounts_fts_update AFTER UPDATE OF name, website, gstin, number ON accounts BEGIN
    INSERT INTO accounts_fts (accounts_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.name, '') || ' ' || coalesce(old.website, '') || ' ' || coalesce(old.gstin, '') || ' ' || coalesce(old.number, ''));
    INSERT INTO accounts_fts (rowid, body) VALUES (new.rowid, coalesce(new.name, '') || ' ' || coalesce(new.website, '') || ' ' || coalesce(new.gstin, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER accounts_fts_delete AFTER DELETE ON accounts BEGIN
    INSERT INTO accounts_fts (accounts_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.name, '') || ' ' || coalesce(old.website, '') || ' ' || coalesce(old.gstin, '') || ' ' || coalesce(old.number, ''));
END;
CREATE VIRTUAL TABLE contacts_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO contacts_fts (rowid, body) SELECT rowid, coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(full_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(number, '') FROM contacts;
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contacts_fts (rowid, body) VALUES (new.rowid, coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '') || ' ' || coalesce(new.full_name, '') || ' ' || coalesce(new.email, '') || ' ' || coalesce(new.phone, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER contacts_fts_update AFTER UPDATE OF first_name, last_name, full_name, email, phone, number ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.first_name, '') || ' ' || coalesce(old.last_name, '') || ' ' || coalesce(old.full_name, '') || ' ' || coalesce(old.email, '') || ' ' || coalesce(old.phone, '') || ' ' || coalesce(old.number, ''));
    INSERT INTO contacts_fts (rowid, body) VALUES (new.rowid, coalesce(new.first_name, '') || ' ' || coalesce(new.last_name, '') || ' ' || coalesce(new.full_name, '') || ' ' || coalesce(new.email, '') || ' ' || coalesce(new.phone, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.first_name, '') || ' ' || coalesce(old.last_name, '') || ' ' || coalesce(old.full_name, '') || ' ' || coalesce(old.email, '') || ' ' || coalesce(old.phone, '') || ' ' || coalesce(old.number, ''));
END;
CREATE VIRTUAL TABLE deals_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO deals_fts (rowid, body) SELECT rowid, coalesce(name, '') || ' ' || coalesce(number, '') FROM deals;
CREATE TRIGGER deals_fts_insert AFTER INSERT ON deals BEGIN
    INSERT INTO deals_fts (rowid, body) VALUES (new.rowid, coalesce(new.name, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER deals_fts_update AFTER UPDATE OF name, number ON deals BEGIN
    INSERT INTO deals_fts (deals_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.name, '') || ' ' || coalesce(old.number, ''));
    INSERT INTO deals_fts (rowid, body) VALUES (new.rowid, coalesce(new.name, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER deals_fts_delete AFTER DELETE ON deals BEGIN
    INSERT INTO deals_fts (deals_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.name, '') || ' ' || coalesce(old.number, ''));
END;
CREATE VIRTUAL TABLE tasks_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO tasks_fts (rowid, body) SELECT rowid, coalesce(title, '') || ' ' || coalesce(number, '') FROM tasks;
CREATE TRIGGER tasks_fts_insert AFTER INSERT ON tasks BEGIN
    INSERT INTO tasks_fts (rowid, body) VALUES (new.rowid, coalesce(new.title, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER tasks_fts_update AFTER UPDATE OF title, number ON tasks BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.title, '') || ' ' || coalesce(old.number, ''));
    INSERT INTO tasks_fts (rowid, body) VALUES (new.rowid, coalesce(new.title, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER tasks_fts_delete AFTER DELETE ON tasks BEGIN
    INSERT INTO tasks_fts (tasks_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.title, '') || ' ' || coalesce(old.number, ''));
END;
CREATE VIRTUAL TABLE activities_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');
INSERT INTO activities_fts (rowid, body) SELECT rowid, coalesce(title, '') || ' ' || coalesce(description, '') || ' ' || coalesce(number, '') FROM activities;
CREATE TRIGGER activities_fts_insert AFTER INSERT ON activities BEGIN
    INSERT INTO activities_fts (rowid, body) VALUES (new.rowid, coalesce(new.title, '') || ' ' || coalesce(new.description, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER activities_fts_update AFTER UPDATE OF title, description, number ON activities BEGIN
    INSERT INTO activities_fts (activities_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.title, '') || ' ' || coalesce(old.description, '') || ' ' || coalesce(old.number, ''));
    INSERT INTO activities_fts (rowid, body) VALUES (new.rowid, coalesce(new.title, '') || ' ' || coalesce(new.description, '') || ' ' || coalesce(new.number, ''));
END;
CREATE TRIGGER activities_fts_delete AFTER DELETE ON activities BEGIN
    INSERT INTO activities_fts (activities_fts, rowid, body) VALUES ('delete', old.rowid, coalesce(old.title, '') || ' ' || coalesce(old.description, '') || ' ' || coalesce(old.number, ''));
END;
