-- SQLite only: the FTS5 tables gain indexes of one- and two-character word prefixes.
-- PostgreSQL's GIN index finds the words a prefix starts from its own sorted entries.
SELECT 1;
