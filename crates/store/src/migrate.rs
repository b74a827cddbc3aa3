//! Migrations, one tree per backend, embedded in the binary and applied in order on start.

use crate::db::{Backend, Db, Q};
use crate::Result;
use corvid_core::{SqlType, Value};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "web",
        sqlite: include_str!("../migrations/sqlite/0002_web.sql"),
        postgres: include_str!("../migrations/postgres/0002_web.sql"),
    },
    Migration {
        version: 3,
        name: "jobs",
        sqlite: include_str!("../migrations/sqlite/0003_jobs.sql"),
        postgres: include_str!("../migrations/postgres/0003_jobs.sql"),
    },
    Migration {
        version: 4,
        name: "imports",
        sqlite: include_str!("../migrations/sqlite/0004_imports.sql"),
        postgres: include_str!("../migrations/postgres/0004_imports.sql"),
    },
    Migration {
        version: 5,
        name: "governance",
        sqlite: include_str!("../migrations/sqlite/0005_governance.sql"),
        postgres: include_str!("../migrations/postgres/0005_governance.sql"),
    },
    Migration {
        version: 6,
        name: "security",
        sqlite: include_str!("../migrations/sqlite/0006_security.sql"),
        postgres: include_str!("../migrations/postgres/0006_security.sql"),
    },
    Migration {
        version: 7,
        name: "scoring_assignment",
        sqlite: include_str!("../migrations/sqlite/0007_scoring_assignment.sql"),
        postgres: include_str!("../migrations/postgres/0007_scoring_assignment.sql"),
    },
    Migration {
        version: 8,
        name: "privacy",
        sqlite: include_str!("../migrations/sqlite/0008_privacy.sql"),
        postgres: include_str!("../migrations/postgres/0008_privacy.sql"),
    },
    Migration {
        version: 9,
        name: "qualification",
        sqlite: include_str!("../migrations/sqlite/0009_qualification.sql"),
        postgres: include_str!("../migrations/postgres/0009_qualification.sql"),
    },
    Migration {
        version: 10,
        name: "permissions",
        sqlite: include_str!("../migrations/sqlite/0010_permissions.sql"),
        postgres: include_str!("../migrations/postgres/0010_permissions.sql"),
    },
    Migration {
        version: 12,
        name: "search",
        sqlite: include_str!("../migrations/sqlite/0012_search.sql"),
        postgres: include_str!("../migrations/postgres/0012_search.sql"),
    },
    Migration {
        version: 11,
        name: "import_templates",
        sqlite: include_str!("../migrations/sqlite/0011_import_templates.sql"),
        postgres: include_str!("../migrations/postgres/0011_import_templates.sql"),
    },
    Migration {
        version: 13,
        name: "list_indexes",
        sqlite: include_str!("../migrations/sqlite/0013_list_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0013_list_indexes.sql"),
    },
    Migration {
        version: 14,
        name: "roles",
        sqlite: include_str!("../migrations/sqlite/0014_roles.sql"),
        postgres: include_str!("../migrations/postgres/0014_roles.sql"),
    },
    Migration {
        version: 15,
        name: "search_doc",
        sqlite: include_str!("../migrations/sqlite/0015_search_doc.sql"),
        postgres: include_str!("../migrations/postgres/0015_search_doc.sql"),
    },
    Migration {
        version: 16,
        name: "drop_prefix_indexes",
        sqlite: include_str!("../migrations/sqlite/0016_drop_prefix_indexes.sql"),
        postgres: include_str!("../migrations/postgres/0016_drop_prefix_indexes.sql"),
    },
    Migration {
        version: 17,
        name: "list_indexes_id",
        sqlite: include_str!("../migrations/sqlite/0017_list_indexes_id.sql"),
        postgres: include_str!("../migrations/postgres/0017_list_indexes_id.sql"),
    },
    Migration {
        version: 18,
        name: "search_prefixes",
        sqlite: include_str!("../migrations/sqlite/0018_search_prefixes.sql"),
        postgres: include_str!("../migrations/postgres/0018_search_prefixes.sql"),
    },
];

/// Applies every migration not yet recorded. Each runs in its own transaction together with
/// its bookkeeping row, so a failure leaves the database at the previous version.
pub async fn run(db: &Db) -> Result<Vec<i64>> {
    db.execute(&Q::new(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
    ))
    .await?;
    let done: Vec<i64> =
        db.fetch(&Q::new("SELECT version FROM schema_migrations"), &[SqlType::Int]).await?.iter().filter_map(|r| r.int(0)).collect();
    let mut applied = Vec::new();
    for m in MIGRATIONS {
        if done.contains(&m.version) {
            continue;
        }
        let sql = match db.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        let script = format!(
            "BEGIN;\n{sql}\nINSERT INTO schema_migrations (version, name, applied_at) VALUES ({}, '{}', '{}');\nCOMMIT;",
            m.version,
            m.name,
            chrono::Utc::now().to_rfc3339()
        );
        tracing::info!(version = m.version, name = m.name, "applying migration");
        db.execute_script(&script).await?;
        applied.push(m.version);
    }
    Ok(applied)
}

pub fn latest_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Reads a stored setting (e.g. the token signing key shared by all nodes).
pub async fn get_setting(db: &Db, key: &str) -> Result<Option<String>> {
    Ok(db
        .fetch_one(&Q::new("SELECT value FROM schema_settings WHERE key = $1").bind(Value::Text(key.into())), &[SqlType::Text])
        .await?
        .and_then(|r| r.text(0)))
}

/// Stores a setting unless one exists; returns the value that won.
pub async fn init_setting(db: &Db, key: &str, value: &str) -> Result<String> {
    db.execute(
        &Q::new("INSERT INTO schema_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(Value::Text(key.into()))
            .bind(Value::Text(value.into())),
    )
    .await?;
    Ok(get_setting(db, key).await?.unwrap_or_else(|| value.to_string()))
}
