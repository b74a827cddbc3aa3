-- SQLite only: the FTS5 tables gain indexes of word prefixes of one to three characters.
-- PostgreSQL's GIN index finds the words a prefix starts from its own sorted entries.
SELECT 1;
