-- PostgreSQL only: SQLite's FTS5 tables (0012) already store each record's words.
SELECT 1;
