//! Both backends, migrated from empty, have exactly the columns the object metadata declares.

mod common;

use common::TestApp;
use corvid_core::SqlType;
use corvid_store::schema::{column_type, expected_columns};
use corvid_store::{Backend, Q};

fn pg_name(declared: &str) -> &str {
    match declared {
        "TEXT" => "text",
        "BIGINT" => "bigint",
        "DOUBLE PRECISION" => "double precision",
        "BOOLEAN" => "boolean",
        "UUID" => "uuid",
        "DATE" => "date",
        "TIMESTAMPTZ" => "timestamp with time zone",
        "JSONB" => "jsonb",
        other => other,
    }
}

#[tokio::test]
async fn migrated_schema_matches_metadata() {
    for app in TestApp::all().await {
        let backend = app.db.backend();
        for object in corvid_core::objects() {
            let q = match backend {
                Backend::Sqlite => Q::new(format!("SELECT name, type FROM pragma_table_info('{}') ORDER BY cid", object.name)),
                Backend::Postgres => Q::new(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(corvid_core::Value::Text(object.name.clone())),
            };
            let actual: Vec<(String, String)> = app
                .db
                .fetch(&q, &[SqlType::Text, SqlType::Text])
                .await
                .expect("introspect")
                .into_iter()
                .map(|r| (r.text(0).unwrap_or_default(), r.text(1).unwrap_or_default()))
                .collect();
            let mut expected: Vec<(String, String)> = expected_columns(object)
                .into_iter()
                .map(|(name, ty)| {
                    let declared = column_type(ty, backend);
                    let shown = if backend == Backend::Postgres { pg_name(declared) } else { declared };
                    (name, shown.to_string())
                })
                .collect();
            if backend == Backend::Postgres {
                // Computed by the database from the searchable fields, never written by Corvid.
                expected.push((corvid_store::schema::SEARCH_DOC_PG.into(), "tsvector".into()));
            }
            assert_eq!(actual, expected, "{} table {} drifted from its metadata", app.backend, object.name);
        }
        // Migrating again is a no-op.
        assert!(corvid_store::migrate::run(&app.db).await.expect("migrate").is_empty());
    }
}
