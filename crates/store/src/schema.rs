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

/// The DDL of a record table as the first migration created it (fields added later by
/// `ALTER TABLE` are left out).
pub fn record_table_ddl(object: &ObjectDef, backend: Backend) -> String {
    let mut cols = Vec::new();
    let first: Vec<(String, SqlType)> = SYSTEM_COLUMNS
        .iter()
        .map(|(n, t)| (n.to_string(), *t))
        .chain(object.fields.iter().filter(|f| f.since == 1).map(|f| (f.name.clone(), f.kind.sql_type())))
        .collect();
    for (name, t) in first {
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

/// Characters folded before indexing for search on PostgreSQL: Latin accents to their base
/// letter and punctuation to spaces, so "Müller", "mueller@x.de" and "LEAD-00042" split into
/// the same words on both backends (SQLite's FTS5 `unicode61` tokenizer does this itself).
pub const SEARCH_FOLD_FROM: &str = "àáâãäåāçćčèéêëēęìíîïīñńòóôõöøōùúûüūýÿžš@._-+/,;:()&'\"#";
pub const SEARCH_FOLD_TO: &str = "aaaaaaaccceeeeeeiiiiinnooooooouuuuuyyzs               ";

/// The columns whose words are indexed for `q` search: the searchable fields and the number.
pub fn search_columns(object: &ObjectDef) -> Vec<String> {
    let mut cols: Vec<String> = object.fields.iter().filter(|f| f.searchable).map(|f| f.name.clone()).collect();
    cols.push("number".into());
    cols
}

/// PostgreSQL: the indexed expression. Queries must repeat it verbatim to use the index.
pub fn search_vector_pg(object: &ObjectDef) -> String {
    let doc = search_columns(object).iter().map(|c| format!("coalesce({c}, '')")).collect::<Vec<_>>().join(" || ' ' || ");
    format!("to_tsvector('simple'::regconfig, translate(lower({doc}), '{}', '{SEARCH_FOLD_TO}'))", SEARCH_FOLD_FROM.replace('\'', "''"))
}

/// PostgreSQL: the generated column holding a record's search document (`search_vector_pg`),
/// which the search index covers and queries match (migration 0015).
pub const SEARCH_DOC_PG: &str = "search_doc";

/// PostgreSQL: adds the stored search document of one object and moves its index onto it.
pub fn search_doc_ddl_pg(object: &ObjectDef) -> String {
    let t = &object.name;
    format!(
        "ALTER TABLE {t} ADD COLUMN {SEARCH_DOC_PG} tsvector GENERATED ALWAYS AS ({}) STORED;\n\
         DROP INDEX {t}_search;\nCREATE INDEX {t}_search ON {t} USING GIN ({SEARCH_DOC_PG});\n",
        search_vector_pg(object)
    )
}

/// The search index of one object: an FTS5 table kept by triggers on SQLite, a GIN
/// expression index on PostgreSQL.
pub fn search_ddl(object: &ObjectDef, backend: Backend) -> String {
    let t = &object.name;
    let cols = search_columns(object);
    match backend {
        Backend::Postgres => format!("CREATE INDEX {t}_search ON {t} USING GIN ({});\n", search_vector_pg(object)),
        Backend::Sqlite => {
            let doc = |p: &str| cols.iter().map(|c| format!("coalesce({p}{c}, '')")).collect::<Vec<_>>().join(" || ' ' || ");
            let changed = cols.join(", ");
            format!(
                "CREATE VIRTUAL TABLE {t}_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2');\n\
                 INSERT INTO {t}_fts (rowid, body) SELECT rowid, {all} FROM {t};\n\
                 CREATE TRIGGER {t}_fts_insert AFTER INSERT ON {t} BEGIN\n    INSERT INTO {t}_fts (rowid, body) VALUES (new.rowid, {new});\nEND;\n\
                 CREATE TRIGGER {t}_fts_update AFTER UPDATE OF {changed} ON {t} BEGIN\n    \
                 INSERT INTO {t}_fts ({t}_fts, rowid, body) VALUES ('delete', old.rowid, {old});\n    \
                 INSERT INTO {t}_fts (rowid, body) VALUES (new.rowid, {new});\nEND;\n\
                 CREATE TRIGGER {t}_fts_delete AFTER DELETE ON {t} BEGIN\n    \
                 INSERT INTO {t}_fts ({t}_fts, rowid, body) VALUES ('delete', old.rowid, {old});\nEND;\n",
                all = doc(""),
                new = doc("new."),
                old = doc("old."),
            )
        }
    }
}

/// SQLite: rebuilds one object's FTS5 table with indexes of word prefixes of one to three
/// characters (migration 0018). Without them a short word of a search ("com" or "in" of an
/// email address, an initial) had FTS5 merge the lists of every indexed word it starts, 15
/// to 30 ms at a million records for every search holding one. The triggers of 0012 name
/// the table, so they keep it up to date unchanged.
pub fn search_prefix_ddl_sqlite(object: &ObjectDef) -> String {
    let t = &object.name;
    let all = search_columns(object).iter().map(|c| format!("coalesce({c}, '')")).collect::<Vec<_>>().join(" || ' ' || ");
    format!(
        "DROP TABLE {t}_fts;\n\
         CREATE VIRTUAL TABLE {t}_fts USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3');\n\
         INSERT INTO {t}_fts (rowid, body) SELECT rowid, {all} FROM {t};\n"
    )
}

#[cfg(test)]
mod search_tests {
    use super::*;

    #[test]
    fn fold_tables_line_up() {
        assert_eq!(SEARCH_FOLD_FROM.chars().count(), SEARCH_FOLD_TO.chars().count());
    }

    /// The search migration is what `search_ddl` generates for every object.
    #[test]
    fn search_migration_matches_generator() {
        let files = [
            (Backend::Sqlite, include_str!("../migrations/sqlite/0012_search.sql")),
            (Backend::Postgres, include_str!("../migrations/postgres/0012_search.sql")),
        ];
        for (backend, sql) in files {
            for o in corvid_core::objects() {
                let ddl = search_ddl(o, backend);
                assert!(sql.contains(&ddl), "{backend:?} search migration differs for {}:\n{ddl}", o.name);
            }
        }
    }

    #[test]
    fn search_doc_migration_matches_generator() {
        let sql = include_str!("../migrations/postgres/0015_search_doc.sql");
        for o in corvid_core::objects() {
            let ddl = search_doc_ddl_pg(o);
            assert!(sql.contains(&ddl), "search document migration differs for {}:\n{ddl}", o.name);
        }
    }

    #[test]
    fn search_prefix_migration_matches_generator() {
        let sql = include_str!("../migrations/sqlite/0018_search_prefixes.sql");
        for o in corvid_core::objects() {
            let ddl = search_prefix_ddl_sqlite(o);
            assert!(sql.contains(&ddl), "search prefix migration differs for {}:\n{ddl}", o.name);
        }
    }
}
