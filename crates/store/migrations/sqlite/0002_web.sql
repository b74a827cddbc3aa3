-- Web app: server-side sessions (the cookie holds a random id; only its hash is stored) and
-- saved list views.

CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

CREATE TABLE saved_views (
    id TEXT PRIMARY KEY,
    company_id TEXT NOT NULL REFERENCES companies(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    object TEXT NOT NULL,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    columns TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX saved_views_name ON saved_views (company_id, user_id, object, name);
