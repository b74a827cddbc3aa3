//! Column types per backend, and the generator that wrote the record tables of the first
//! migration. Migrations are the truth once written; `tests/schema.rs` checks that both
//! backends' migrated schemas still match the object metadata.

use crate::db::Backend;
use corvid_core::meta::{ObjectDef, SYSTEM_COLUMNS};
use corvid_core::SqlType;

pub fn column_type(t: SqlType, backend: Backend) -> &'static str {
    match (backend, t) {
        (Backend::Sqlite, SqlType::Text | SqlType::Uuid | SqlType::Date | SqlType::Timestamp | SqlType::Json) => "TEXT",
        (Backend::Sqlite, SqlType::Int | SqlType::Bool) => "INTEGER",
        (Backend::Sqlite, SqlType::Float) => "REAL",
        (Backend::Postgres, SqlType::Text) => "TEXT",
        (Backend::Postgres, SqlType::Int) => "BIGINT",
        (Backend::Postgres, SqlType::Float) => "DOUBLE PRECISION",
        (Backend::Postgres, SqlType::Bool) => "BOOLEAN",
        (Backend::Postgres, SqlType::Uuid) => "UUID",
        (Backend::Postgres, SqlType::Date) => "DATE",
        (Backend::Postgres, SqlType::Timestamp) => "TIMESTAMPTZ",
        (Backend::Postgres, SqlType::Json) => "JSONB",
    }
}

/// The columns a record table must have, in order: system columns, then fields.
pub fn expected_columns(object: &ObjectDef) -> Vec<(String, SqlType)> {
    SYSTEM_COLUMNS
        .iter()
        .map(|(n, t)| (n.to_string(), *t))
        .chain(object.fields.iter().map(|f| (f.name.clone(), f.kind.sql_type())))
        .collect()
}

pub fn record_table_ddl(object: &ObjectDef, backend: Backend) -> String {
    let mut cols = Vec::new();
    for (name, t) in expected_columns(object) {
        let ty = column_type(t, backend);
        let extra = match name.as_str() {
            "id" => " PRIMARY KEY",
            "company_id" => " NOT NULL REFERENCES companies(id)",
            "number" => " NOT NULL",
            "version" => " NOT NULL DEFAULT 1",
            "created_at" | "updated_at" => " NOT NULL",
            "custom" => match backend {
                Backend::Sqlite => " NOT NULL DEFAULT '{}'",
                Backend::Postgres => " NOT NULL DEFAULT '{}'::jsonb",
            },
            _ => "",
        };
        cols.push(format!("    {name} {ty}{extra}"));
    }
    let t = &object.name;
    let mut sql = format!("CREATE TABLE {t} (\n{}\n);\n", cols.join(",\n"));
    sql.push_str(&format!("CREATE UNIQUE INDEX {t}_number ON {t} (company_id, number);\n"));
    sql.push_str(&format!("CREATE INDEX {t}_created ON {t} (company_id, created_at, id);\n"));
    sql.push_str(&format!("CREATE INDEX {t}_updated ON {t} (company_id, updated_at, id);\n"));
    let indexed = [
        "owner_id",
        "status",
        "source",
        "email",
        "phone",
        "stage",
        "account_id",
        "lead_id",
        "contact_id",
        "deal_id",
        "task_id",
        "related_id",
        "assignee_id",
        "activity_date",
        "name",
        "last_name",
    ];
    for col in indexed {
        if object.field(col).is_some() {
            sql.push_str(&format!("CREATE INDEX {t}_{col} ON {t} (company_id, {col});\n"));
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first migration's record tables are exactly what the metadata declares. A field
    /// added to the metadata needs a new migration (and this test then points at it).
    #[test]
    fn first_migration_matches_metadata() {
        let files = [
            (Backend::Sqlite, include_str!("../migrations/sqlite/0001_init.sql")),
            (Backend::Postgres, include_str!("../migrations/postgres/0001_init.sql")),
        ];
        for (backend, sql) in files {
            for o in corvid_core::objects() {
                let ddl = record_table_ddl(o, backend);
                assert!(sql.contains(&ddl), "{backend:?} migration differs from metadata for {}:\n{ddl}", o.name);
            }
        }
    }
}
