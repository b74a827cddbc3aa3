-- Each record table stores its search document (the words of its searchable fields and
-- number, folded as in 0012) in a generated column, and the search index covers that column:
-- plans that filter rows by the document read it instead of recomputing it for every row.
ALTER TABLE leads ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(company_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(number, '')), 'àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&''"#', 'aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               '))) STORED;
DROP INDEX leads_search;
CREATE INDEX leads_search ON leads USING GIN (search_doc);
ALTER TABLE accounts ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(lower(coalesce(name, '') || ' ' || coalesce(website, '') || ' ' || coalesce(gstin, '') || ' ' || coalesce(number, '')), 'àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&''"#', 'aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               '))) STORED;
DROP INDEX accounts_search;
CREATE INDEX accounts_search ON accounts USING GIN (search_doc);
ALTER TABLE contacts ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(lower(coalesce(first_name, '') || ' ' || coalesce(last_name, '') || ' ' || coalesce(full_name, '') || ' ' || coalesce(email, '') || ' ' || coalesce(phone, '') || ' ' || coalesce(number, '')), 'àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&''"#', 'aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               '))) STORED;
DROP INDEX contacts_search;
CREATE INDEX contacts_search ON contacts USING GIN (search_doc);
ALTER TABLE deals ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(lower(coalesce(name, '') || ' ' || coalesce(number, '')), 'àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&''"#', 'aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               '))) STORED;
DROP INDEX deals_search;
CREATE INDEX deals_search ON deals USING GIN (search_doc);
ALTER TABLE tasks ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(lower(coalesce(title, '') || ' ' || coalesce(number, '')), 'àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&''"#', 'aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               '))) STORED;
DROP INDEX tasks_search;
CREATE INDEX tasks_search ON tasks USING GIN (search_doc);
ALTER TABLE activities ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, translate(lower(coalesce(title, '') || ' ' || coalesce(description, '') || ' ' || coalesce(number, '')), 'àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&''"#', 'aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               '))) STORED;
DROP INDEX activities_search;
CREATE INDEX activities_search ON activities USING GIN (search_doc);
