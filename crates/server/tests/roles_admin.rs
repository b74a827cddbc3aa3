//! Roles, teams, reporting lines and record transfers through the real API (and the settings
//! pages), on SQLite and on PostgreSQL when CORVID_TEST_POSTGRES_URL is set: every endpoint,
//! the ugly inputs, the audit rows, and the effects members feel on their next request.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use corvid_core::SqlType;
use corvid_store::Q;
use serde_json::{json, Value};

/// (field, old, new) of the audit rows about `object`, oldest first.
async fn audit(app: &TestApp, s: &Session, object: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let q = Q::new(format!(
        "SELECT field, old_value, new_value FROM audit_log WHERE company_id = '{}' AND object = '{object}' ORDER BY seq",
        s.company_id
    ));
    app.db
        .fetch(&q, &[SqlType::Text, SqlType::Text, SqlType::Text])
        .await
        .expect("audit")
        .into_iter()
        .map(|r| (r.text(0).unwrap_or_default(), r.text(1), r.text(2)))
        .collect()
}

async fn audit_count(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM audit_log").await
}

async fn company_audit(app: &TestApp, s: &Session) -> i64 {
    app.count(&format!("SELECT COUNT(*) FROM audit_log WHERE company_id = '{}'", s.company_id)).await
}

async fn role_rows(app: &TestApp, s: &Session) -> i64 {
    app.count(&format!("SELECT COUNT(*) FROM roles WHERE company_id = '{}'", s.company_id)).await
}

async fn stored_permissions(app: &TestApp, s: &Session, key: &str) -> Option<Value> {
    let q = Q::new(format!("SELECT permissions FROM roles WHERE company_id = '{}' AND key = '{key}'", s.company_id));
    app.db.fetch_one(&q, &[SqlType::Json]).await.expect("row").and_then(|r| r.json(0))
}

async fn membership(app: &TestApp, s: &Session, user: &str) -> (String, Option<String>) {
    let q = Q::new(format!("SELECT role, custom_role FROM memberships WHERE company_id = '{}' AND user_id = '{user}'", s.company_id));
    let r = app.db.fetch_one(&q, &[SqlType::Text, SqlType::Text]).await.expect("row").expect("membership");
    (r.text(0).unwrap_or_default(), r.text(1))
}

fn json_of(text: &Option<String>) -> Value {
    text.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null)
}

async fn put(app: &TestApp, s: &Session, path: &str, body: Value) -> Resp {
    app.call(Method::PUT, path, Some(&s.token), Some(body), &[]).await
}

fn id_of(r: &Resp) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id: {r:?}")).to_string()
}

async fn lead(app: &TestApp, s: &Session, last: &str, owner: &str, extra: Value) -> String {
    let mut body = json!({"last_name": last, "owner_id": owner});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    id_of(&r)
}

fn names(r: &Resp) -> Vec<String> {
    let mut v: Vec<String> =
        r.body["data"].as_array().expect("data").iter().filter_map(|x| x["last_name"].as_str().map(str::to_string)).collect();
    v.sort();
    v
}

#[tokio::test]
async fn built_in_roles_list_change_guard_and_reset() {
    for app in TestApp::all().await {
        let s = app.register("owner@roles.test", "Roles Co").await;
        let rep = app.member(&s, "rep@roles.test", "sales_rep").await;
        let other = app.register("owner@other-roles.test", "Other Roles Co").await;

        let r = app.get(&s, &s.path("roles")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let keys: Vec<&str> = r.body["data"].as_array().expect("data").iter().filter_map(|x| x["key"].as_str()).collect();
        assert_eq!(keys, ["admin", "manager", "sales_rep", "support_agent", "read_only"], "{}", app.backend);
        let sales = &r.body["data"][2];
        assert_eq!(
            (sales["builtin"].as_bool(), sales["customised"].as_bool(), sales["members"].as_i64()),
            (Some(true), Some(false), Some(1))
        );
        assert_eq!(sales["permissions"]["leads"]["read"], "team");
        assert_eq!(r.body["data"][0]["members"], 1);

        // A partial change: one object, one action.
        let before = audit_count(&app).await;
        let r = app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"leads": {"read": "own"}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["permissions"]["leads"]["read"], "own");
        assert_eq!(r.body["permissions"]["leads"]["edit"], "own");
        assert_eq!(r.body["permissions"]["deals"]["read"], "team", "other objects keep theirs");
        assert_eq!(r.body["customised"], true);
        let stored = stored_permissions(&app, &s, "sales_rep").await.expect("row");
        assert_eq!(
            stored.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["leads".to_string()]),
            "only changes are stored"
        );
        assert_eq!(audit_count(&app).await, before + 1);
        let rows = audit(&app, &s, "role").await;
        let (field, old, new) = rows.last().expect("audit row");
        assert_eq!(field, "sales_rep.permissions");
        assert_eq!(json_of(old)["leads"]["read"], "team");
        assert_eq!(json_of(new)["leads"]["read"], "own");
        assert_eq!(json_of(new)["deals"]["read"], "team", "the whole matrix is in the audit");

        // Normalisation: edit beyond read is lowered.
        let r = app
            .patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"deals": {"read": "own", "edit": "all", "export": "all"}}}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(
            (r.body["permissions"]["deals"]["edit"].as_str(), r.body["permissions"]["deals"]["export"].as_str()),
            (Some("own"), Some("own"))
        );

        // Fields: standard and this company's custom fields; another company's are unknown.
        let cf = app.post(&s, &s.path("metadata/objects/leads/fields"), json!({"name": "region", "type": "text"})).await;
        assert_eq!(cf.status, StatusCode::CREATED, "{cf:?}");
        let ocf = app.post(&other, &other.path("metadata/objects/leads/fields"), json!({"name": "secret", "type": "text"})).await;
        assert_eq!(ocf.status, StatusCode::CREATED, "{ocf:?}");
        let r = app.get(&s, &s.path("roles/sales_rep")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let lead_fields: Vec<&str> =
            r.body["fields"]["leads"].as_array().expect("fields").iter().filter_map(|f| f["name"].as_str()).collect();
        assert!(
            lead_fields.contains(&"email") && lead_fields.contains(&"cf_region") && !lead_fields.contains(&"cf_secret"),
            "{lead_fields:?}"
        );
        let r = app
            .patch(
                &s,
                &s.path("roles/sales_rep"),
                json!({"permissions": {"leads": {"fields": {"cf_region": "read_only", "phone": "hidden"}}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["permissions"]["leads"]["fields"], json!({"cf_region": "read_only", "phone": "hidden"}));
        let r = app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"leads": {"fields": {"phone": "editable"}}}})).await;
        assert_eq!(r.body["permissions"]["leads"]["fields"], json!({"cf_region": "read_only"}), "editable clears a restriction");

        // The ugly inputs: each is a 422 naming the cell, and nothing changes.
        let snapshot = (audit_count(&app).await, stored_permissions(&app, &s, "sales_rep").await);
        for (body, field) in [
            (json!({"permissions": {"widgets": {"read": "all"}}}), "permissions.widgets"),
            (json!({"permissions": {"leads": {"read": "everyone"}}}), "permissions.leads.read"),
            (json!({"permissions": {"leads": {"read": 3}}}), "permissions.leads.read"),
            (json!({"permissions": {"leads": {"fly": "all"}}}), "permissions.leads.fly"),
            (json!({"permissions": {"leads": {"fields": {"nope": "hidden"}}}}), "permissions.leads.fields.nope"),
            (json!({"permissions": {"leads": {"fields": {"cf_secret": "hidden"}}}}), "permissions.leads.fields.cf_secret"),
            (json!({"permissions": {"leads": {"fields": {"email": "invisible"}}}}), "permissions.leads.fields.email"),
            (json!({"permissions": {"leads": {"fields": ["email"]}}}), "permissions.leads.fields"),
            (json!({"permissions": {"leads": "all"}}), "permissions.leads"),
            (json!({"permissions": ["leads"]}), "permissions"),
            (json!({"label": "Closers"}), "label"),
            (json!({}), "body"),
            (json!({"colour": "red"}), "colour"),
        ] {
            let r = app.patch(&s, &s.path("roles/sales_rep"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {r:?}");
            assert!(is_problem(&r), "{r:?}");
            assert!(errors_name(&r, field) || r.body["errors"][0]["field"] == field, "{body}: {field} not named in {r:?}");
        }
        // Unknown object and a bad scope at once: both named.
        let r = app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"widgets": {}, "deals": {"edit": "most"}}})).await;
        assert!(errors_name(&r, "permissions.widgets") && errors_name(&r, "permissions.deals.edit"), "{r:?}");
        assert_eq!((audit_count(&app).await, stored_permissions(&app, &s, "sales_rep").await), snapshot);

        // Nobody can lock the Admins out.
        for (body, field) in [
            (json!({"permissions": {"leads": {"read": "team"}}}), "permissions.leads.read"),
            (json!({"permissions": {"deals": {"edit": "own"}}}), "permissions.deals.edit"),
            (json!({"permissions": {"tasks": {"read": "none"}}}), "permissions.tasks.read"),
            (json!({"permissions": {"leads": {"fields": {"email": "hidden"}}}}), "permissions.leads.fields.email"),
        ] {
            let r = app.patch(&s, &s.path("roles/admin"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {r:?}");
            assert!(errors_name(&r, field), "{body}: {r:?}");
        }
        assert!(stored_permissions(&app, &s, "admin").await.is_none());
        // What does not lock anyone out is fine.
        let r = app
            .patch(&s, &s.path("roles/admin"), json!({"permissions": {"leads": {"delete": "own", "fields": {"email": "read_only"}}}}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["permissions"]["leads"]["delete"], "own");

        // Back to the defaults by hand: the row goes, "customised" with it.
        let r = app
            .patch(&s, &s.path("roles/admin"), json!({"permissions": {"leads": {"delete": "all", "fields": {"email": "editable"}}}}))
            .await;
        assert_eq!(r.body["customised"], false, "{r:?}");
        assert!(stored_permissions(&app, &s, "admin").await.is_none());

        // Reset a built-in role with DELETE.
        let before = audit_count(&app).await;
        let r = app.delete(&s, &s.path("roles/sales_rep")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["customised"], false);
        assert_eq!(r.body["permissions"]["leads"]["read"], "team");
        assert!(stored_permissions(&app, &s, "sales_rep").await.is_none());
        assert_eq!(audit_count(&app).await, before + 1);
        let rows = audit(&app, &s, "role").await;
        let (field, old, new) = rows.last().expect("reset row");
        assert_eq!(field, "sales_rep.permissions");
        assert_eq!((json_of(old)["leads"]["read"].as_str(), json_of(new)["leads"]["read"].as_str()), (Some("own"), Some("team")));
        // Resetting a role at its defaults changes and audits nothing.
        let r = app.delete(&s, &s.path("roles/manager")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(audit_count(&app).await, before + 1);

        // Unknown roles, other companies, non-admins.
        for key in ["nope", "custom_nope", "ADMIN", "custom_%F0%9F%A6%80", "admin%00"] {
            let r = app.get(&s, &s.path(&format!("roles/{key}"))).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{key} {r:?}");
            assert!(is_problem(&r));
            let r = app.patch(&s, &s.path(&format!("roles/{key}")), json!({"permissions": {}})).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{key} {r:?}");
        }
        assert_eq!(app.delete(&s, &s.path("roles/custom_nope")).await.status, StatusCode::NOT_FOUND);
        let r = app.get(&s, &other.path("roles")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "another company's roles: {r:?}");
        assert_eq!(
            app.patch(&s, &other.path("roles/sales_rep"), json!({"permissions": {"leads": {"read": "none"}}})).await.status,
            StatusCode::NOT_FOUND
        );
        assert!(stored_permissions(&app, &other, "sales_rep").await.is_none());
        let rows_before = role_rows(&app, &s).await;
        for (m, path, body) in [
            (Method::GET, "roles", None),
            (Method::GET, "roles/sales_rep", None),
            (Method::PATCH, "roles/sales_rep", Some(json!({"permissions": {"leads": {"read": "all"}}}))),
            (Method::DELETE, "roles/sales_rep", None),
            (Method::POST, "roles", Some(json!({"label": "Mine", "base_role": "admin"}))),
        ] {
            let r = app.call(m.clone(), &s.path(path), Some(&rep.token), body, &[]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{m} {path} {r:?}");
            assert!(is_problem(&r));
        }
        assert_eq!(role_rows(&app, &s).await, rows_before);
        // Without a token.
        assert_eq!(app.call(Method::GET, &s.path("roles"), None, None, &[]).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn custom_roles_create_rename_assign_and_delete() {
    for app in TestApp::all().await {
        let s = app.register("owner@custom.test", "Custom Co").await;
        let rep = app.member(&s, "rep@custom.test", "sales_rep").await;
        let other = app.register("owner@other-custom.test", "Other Custom Co").await;
        let stranger = app.member(&other, "stranger@other-custom.test", "sales_rep").await;

        // The copy starts from the company's version of the base role.
        let r = app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"accounts": {"read": "team"}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let before = audit_count(&app).await;
        let r = app
            .post(
                &s,
                &s.path("roles"),
                json!({"label": "  Field Sales  ", "base_role": "sales_rep", "permissions": {"deals": {"read": "own"}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["key"], "custom_field_sales");
        assert_eq!(r.body["label"], "Field Sales");
        assert_eq!(
            (r.body["builtin"].as_bool(), r.body["base_role"].as_str(), r.body["members"].as_i64()),
            (Some(false), Some("sales_rep"), Some(0))
        );
        assert_eq!(r.body["permissions"]["accounts"]["read"], "team", "copied from the company's Sales Rep");
        assert_eq!(r.body["permissions"]["deals"]["read"], "own");
        assert_eq!(r.body["permissions"]["leads"]["read"], "team");
        let stored = stored_permissions(&app, &s, "custom_field_sales").await.expect("row");
        assert_eq!(stored.as_object().map(|m| m.len()), Some(6), "a custom role stores its whole matrix");
        assert_eq!(audit_count(&app).await, before + 1);
        let (field, old, new) = audit(&app, &s, "role").await.pop().expect("create row");
        assert_eq!((field.as_str(), old), ("custom_field_sales", None));
        assert_eq!(json_of(&new)["base_role"], "sales_rep");
        assert_eq!(json_of(&new)["permissions"]["deals"]["read"], "own");

        // Names: unique (any case, built-ins too), bounded, any script, no control characters.
        let rows = role_rows(&app, &s).await;
        for (body, status, field) in [
            (json!({"label": "field sales", "base_role": "manager"}), StatusCode::CONFLICT, ""),
            (json!({"label": "Admin", "base_role": "manager"}), StatusCode::CONFLICT, ""),
            (json!({"label": "x".repeat(101), "base_role": "manager"}), StatusCode::UNPROCESSABLE_ENTITY, "label"),
            (json!({"label": "   ", "base_role": "manager"}), StatusCode::UNPROCESSABLE_ENTITY, "label"),
            (json!({"label": "bell\u{7}", "base_role": "manager"}), StatusCode::UNPROCESSABLE_ENTITY, "label"),
            (json!({"label": "Boss", "base_role": "owner"}), StatusCode::UNPROCESSABLE_ENTITY, "base_role"),
            (json!({"label": "Boss"}), StatusCode::UNPROCESSABLE_ENTITY, "base_role"),
            (
                json!({"label": "Boss", "base_role": "manager", "permissions": {"leads": {"read": "mine"}}}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "permissions.leads.read",
            ),
            (json!({"label": "Boss", "base_role": "manager", "key": "custom_boss"}), StatusCode::UNPROCESSABLE_ENTITY, "key"),
        ] {
            let r = app.post(&s, &s.path("roles"), body.clone()).await;
            assert_eq!(r.status, status, "{body} {r:?}");
            assert!(is_problem(&r));
            if !field.is_empty() {
                assert!(errors_name(&r, field), "{body}: {r:?}");
            }
        }
        assert_eq!(role_rows(&app, &s).await, rows);
        let r = app.post(&s, &s.path("roles"), json!({"label": "販売チーム", "base_role": "read_only"})).await;
        assert_eq!((r.status, r.body["key"].as_str()), (StatusCode::CREATED, Some("custom_role")), "{r:?}");
        assert_eq!(r.body["label"], "販売チーム");
        let r = app.post(&s, &s.path("roles"), json!({"label": "Équipe 🦀", "base_role": "read_only"})).await;
        assert_eq!((r.status, r.body["key"].as_str()), (StatusCode::CREATED, Some("custom_equipe")), "{r:?}");
        let long = "é".repeat(100);
        let r = app.post(&s, &s.path("roles"), json!({"label": long, "base_role": "support_agent"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "100 characters are fine however many bytes: {r:?}");
        assert_eq!(r.body["key"], format!("custom_{}", "e".repeat(40)), "keys are folded and bounded");
        let r = app.post(&s, &s.path("roles"), json!({"label": "ロール", "base_role": "support_agent"})).await;
        assert_eq!(r.body["key"], "custom_role_2", "{r:?}");

        // Rename.
        let r = app.patch(&s, &s.path("roles/custom_field_sales"), json!({"label": "Field Sales North"})).await;
        assert_eq!((r.status, r.body["label"].as_str()), (StatusCode::OK, Some("Field Sales North")), "{r:?}");
        let (field, old, new) = audit(&app, &s, "role").await.pop().expect("rename row");
        assert_eq!(
            (field.as_str(), old.as_deref(), new.as_deref()),
            ("custom_field_sales.label", Some("Field Sales"), Some("Field Sales North"))
        );
        let r = app.patch(&s, &s.path("roles/custom_field_sales"), json!({"label": "販売チーム"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        let r = app.patch(&s, &s.path("roles/custom_field_sales"), json!({"label": ""})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "label"), "{r:?}");

        // The list shows custom roles after the built-ins.
        let r = app.get(&s, &s.path("roles")).await;
        let keys: Vec<&str> = r.body["data"].as_array().expect("data").iter().filter_map(|x| x["key"].as_str()).collect();
        assert_eq!(keys.len(), 10, "{keys:?}");
        assert!(keys[..5].iter().all(|k| !k.starts_with("custom_")));

        // Assign it to a member.
        let before = audit_count(&app).await;
        let r = put(&app, &s, &s.path(&format!("members/{}/role", rep.user_id)), json!({"role": "custom_field_sales"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(
            (r.body["role"].as_str(), r.body["role_key"].as_str(), r.body["role_label"].as_str()),
            (Some("sales_rep"), Some("custom_field_sales"), Some("Field Sales North"))
        );
        assert_eq!(membership(&app, &s, &rep.user_id).await, ("sales_rep".into(), Some("custom_field_sales".into())));
        assert_eq!(audit_count(&app).await, before + 1);
        let (field, old, new) = audit(&app, &s, "membership").await.pop().expect("role row");
        assert_eq!((field.as_str(), old.as_deref(), new.as_deref()), ("role", Some("sales_rep"), Some("custom_field_sales")));
        let r = app.get(&s, &s.path("roles/custom_field_sales")).await;
        assert_eq!(r.body["members"], 1);
        // Their next request uses it.
        let me = app.get(&rep, &s.path("me/permissions")).await;
        assert_eq!(me.status, StatusCode::OK, "{me:?}");
        assert_eq!(
            (me.body["role"].as_str(), me.body["label"].as_str(), me.body["base_role"].as_str()),
            (Some("custom_field_sales"), Some("Field Sales North"), Some("sales_rep"))
        );
        assert_eq!(me.body["permissions"]["deals"]["read"], "own");

        // Bad assignments change nothing.
        let before = (company_audit(&app, &s).await, membership(&app, &s, &rep.user_id).await);
        for (body, status) in [
            (json!({"role": "owner"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"role": "custom_nope"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"role": ""}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"role": 7}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let r = put(&app, &s, &s.path(&format!("members/{}/role", rep.user_id)), body.clone()).await;
            assert_eq!(r.status, status, "{body} {r:?}");
            assert!(errors_name(&r, "role"), "{body} {r:?}");
        }
        // Another company's custom role is not one of ours.
        let theirs = app.post(&other, &other.path("roles"), json!({"label": "Theirs", "base_role": "manager"})).await;
        assert_eq!(theirs.body["key"], "custom_theirs");
        let r = put(&app, &s, &s.path(&format!("members/{}/role", rep.user_id)), json!({"role": "custom_theirs"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "role"), "{r:?}");
        // Another company's member, a malformed id, a non-admin, another company's path.
        let r = put(&app, &s, &s.path(&format!("members/{}/role", stranger.user_id)), json!({"role": "manager"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = put(&app, &s, &s.path("members/not-a-uuid/role"), json!({"role": "manager"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
        let r = put(&app, &rep, &s.path(&format!("members/{}/role", rep.user_id)), json!({"role": "admin"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = put(&app, &s, &other.path(&format!("members/{}/role", stranger.user_id)), json!({"role": "admin"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert_eq!(membership(&app, &other, &stranger.user_id).await, ("sales_rep".into(), None));
        assert_eq!((company_audit(&app, &s).await, membership(&app, &s, &rep.user_id).await), before);

        // The last Admin stays an Admin.
        let r = put(&app, &s, &s.path(&format!("members/{}/role", s.user_id)), json!({"role": "custom_field_sales"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(membership(&app, &s, &s.user_id).await, ("admin".into(), None));

        // A used custom role cannot be deleted, active member or not.
        let r = app.delete(&s, &s.path("roles/custom_field_sales")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("1 member")), "{r:?}");
        assert_eq!(app.delete(&s, &s.path(&format!("members/{}", rep.user_id))).await.status, StatusCode::OK);
        assert_eq!(app.delete(&s, &s.path("roles/custom_field_sales")).await.status, StatusCode::CONFLICT);
        assert!(stored_permissions(&app, &s, "custom_field_sales").await.is_some());
        assert_eq!(app.patch(&s, &s.path(&format!("members/{}", rep.user_id)), json!({"is_active": true})).await.status, StatusCode::OK);

        // A built-in role (also through the older member PATCH) clears the custom role.
        let r = app.patch(&s, &s.path(&format!("members/{}", rep.user_id)), json!({"role": "manager"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(membership(&app, &s, &rep.user_id).await, ("manager".into(), None));
        let me = app.get(&rep, &s.path("me/permissions")).await;
        assert_eq!(me.body["role"], "manager");

        // Now it can go.
        let before = audit_count(&app).await;
        let r = app.delete(&s, &s.path("roles/custom_field_sales")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert!(stored_permissions(&app, &s, "custom_field_sales").await.is_none());
        assert_eq!(audit_count(&app).await, before + 1);
        let (field, old, new) = audit(&app, &s, "role").await.pop().expect("delete row");
        assert_eq!((field.as_str(), new), ("custom_field_sales", None));
        assert_eq!(json_of(&old)["label"], "Field Sales North");
        assert_eq!(app.delete(&s, &s.path("roles/custom_field_sales")).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&s, &s.path("roles/custom_field_sales")).await.status, StatusCode::NOT_FOUND);
        // Another company's custom role cannot be read or deleted from here.
        assert_eq!(app.get(&s, &s.path("roles/custom_theirs")).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&s, &s.path("roles/custom_theirs")).await.status, StatusCode::NOT_FOUND);
        assert!(stored_permissions(&app, &other, "custom_theirs").await.is_some());
    }
}

#[tokio::test]
async fn a_custom_role_takes_effect_on_the_next_request() {
    for app in TestApp::all().await {
        let s = app.register("owner@effect.test", "Effect Co").await;
        let rep = app.member(&s, "rep@effect.test", "sales_rep").await;
        let id = lead(&app, &s, "Visible", &rep.user_id, json!({})).await;
        assert_eq!(app.get(&rep, &s.path("leads")).await.status, StatusCode::OK);
        let r = app
            .post(
                &s,
                &s.path("roles"),
                json!({"label": "No leads", "base_role": "sales_rep", "permissions": {"leads": {"read": "none", "create": "none"}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let r = put(&app, &s, &s.path(&format!("members/{}/role", rep.user_id)), json!({"role": "custom_no_leads"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Same token, next request.
        let r = app.get(&rep, &s.path("leads")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("No leads")), "the refusal names the role: {r:?}");
        assert_eq!(app.get(&rep, &s.path(&format!("leads/{id}"))).await.status, StatusCode::FORBIDDEN);
        // Changing the custom role's matrix also applies at once.
        let r = app.patch(&s, &s.path("roles/custom_no_leads"), json!({"permissions": {"leads": {"read": "own"}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.get(&rep, &s.path("leads")).await;
        assert_eq!((r.status, names(&r)), (StatusCode::OK, vec!["Visible".to_string()]), "{r:?}");
    }
}

#[tokio::test]
async fn teams_and_reporting_lines() {
    for app in TestApp::all().await {
        let s = app.register("owner@teams.test", "Teams Co").await;
        let mgr = app.member(&s, "mgr@teams.test", "manager").await;
        let rep = app.member(&s, "rep@teams.test", "sales_rep").await;
        let gone = app.member(&s, "gone@teams.test", "sales_rep").await;
        assert_eq!(app.delete(&s, &s.path(&format!("members/{}", gone.user_id))).await.status, StatusCode::OK);
        let other = app.register("owner@other-teams.test", "Other Teams Co").await;
        let their_team = app.post(&other, &other.path("teams"), json!({"name": "Theirs"})).await;
        let their_team = id_of(&their_team);

        // Create.
        let before = audit_count(&app).await;
        let r = app.post(&s, &s.path("teams"), json!({"name": "North", "manager_id": mgr.user_id})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(
            (r.body["name"].as_str(), r.body["manager_id"].as_str(), r.body["members"].as_i64()),
            (Some("North"), Some(mgr.user_id.as_str()), Some(0))
        );
        let north = id_of(&r);
        assert_eq!(audit_count(&app).await, before + 2);
        let rows = audit(&app, &s, "team").await;
        assert!(rows.iter().any(|(f, o, n)| f == "name" && o.is_none() && n.as_deref() == Some("North")), "{rows:?}");
        assert!(rows.iter().any(|(f, _, n)| f == "manager_id" && n.as_deref() == Some(mgr.user_id.as_str())), "{rows:?}");
        let teams_before = app.count("SELECT COUNT(*) FROM teams").await;
        for (body, status, field) in [
            (json!({"name": "north"}), StatusCode::CREATED, ""),
            (json!({"name": "North"}), StatusCode::CONFLICT, ""),
            (json!({"name": "y".repeat(101)}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
            (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
            (json!({"name": "Tab\tteam"}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
            (json!({"name": "South", "manager_id": other.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
            (json!({"name": "South", "manager_id": gone.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
            (json!({"name": "South", "manager_id": "nope"}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
        ] {
            let r = app.post(&s, &s.path("teams"), body.clone()).await;
            assert_eq!(r.status, status, "{body} {r:?}");
            if !field.is_empty() {
                assert!(errors_name(&r, field), "{body} {r:?}");
            }
        }
        assert_eq!(app.count("SELECT COUNT(*) FROM teams").await, teams_before + 1, "only the lower-case one was made");
        let r = app.post(&s, &s.path("teams"), json!({"name": "Süd · 南"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let south = id_of(&r);
        assert_eq!(app.post(&rep, &s.path("teams"), json!({"name": "Mine"})).await.status, StatusCode::FORBIDDEN);
        // Members may list them.
        let r = app.get(&rep, &s.path("teams")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["data"].as_array().map(Vec::len), Some(3));

        // Rename and change the manager; null clears.
        let r = app.patch(&s, &s.path(&format!("teams/{south}")), json!({"name": "South", "manager_id": s.user_id})).await;
        assert_eq!(
            (r.status, r.body["name"].as_str(), r.body["manager_id"].as_str()),
            (StatusCode::OK, Some("South"), Some(s.user_id.as_str())),
            "{r:?}"
        );
        let r = app.patch(&s, &s.path(&format!("teams/{south}")), json!({"manager_id": null})).await;
        assert_eq!(
            (r.status, r.body["manager_id"].clone(), r.body["name"].as_str()),
            (StatusCode::OK, Value::Null, Some("South")),
            "{r:?}"
        );
        let rows = audit(&app, &s, "team").await;
        assert!(rows.iter().any(|(f, o, n)| f == "name" && o.as_deref() == Some("Süd · 南") && n.as_deref() == Some("South")), "{rows:?}");
        assert!(rows.iter().any(|(f, o, n)| f == "manager_id" && o.as_deref() == Some(s.user_id.as_str()) && n.is_none()), "{rows:?}");
        for (path, body, status) in [
            (format!("teams/{south}"), json!({"name": "North"}), StatusCode::CONFLICT),
            (format!("teams/{south}"), json!({}), StatusCode::UNPROCESSABLE_ENTITY),
            (format!("teams/{south}"), json!({"manager_id": gone.user_id}), StatusCode::UNPROCESSABLE_ENTITY),
            (format!("teams/{their_team}"), json!({"name": "Ours now"}), StatusCode::NOT_FOUND),
            ("teams/not-a-uuid".to_string(), json!({"name": "X"}), StatusCode::BAD_REQUEST),
        ] {
            let r = app.patch(&s, &s.path(&path), body.clone()).await;
            assert_eq!(r.status, status, "{path} {body} {r:?}");
            assert!(is_problem(&r));
        }
        assert_eq!(app.patch(&rep, &s.path(&format!("teams/{south}")), json!({"name": "Rep's"})).await.status, StatusCode::FORBIDDEN);

        // Reporting lines.
        let path = |u: &str| s.path(&format!("members/{u}/reporting"));
        let r = app.patch(&s, &path(&rep.user_id), json!({"team_id": north})).await;
        assert_eq!(
            (r.status, r.body["team_id"].as_str(), r.body["manager_id"].clone()),
            (StatusCode::OK, Some(north.as_str()), Value::Null),
            "{r:?}"
        );
        let (field, old, new) = audit(&app, &s, "membership").await.pop().expect("team row");
        assert_eq!((field.as_str(), old, new.as_deref()), ("team_id", None, Some(north.as_str())));
        assert_eq!(app.get(&s, &s.path(&format!("teams/{north}"))).await.status, StatusCode::METHOD_NOT_ALLOWED);
        let snapshot = audit_count(&app).await;
        for (user, body, status, field) in [
            (&rep.user_id, json!({"manager_id": rep.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
            (&rep.user_id, json!({"manager_id": gone.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
            (&rep.user_id, json!({"manager_id": other.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
            (&rep.user_id, json!({"team_id": their_team}), StatusCode::UNPROCESSABLE_ENTITY, "team_id"),
            (&rep.user_id, json!({"team_id": "zzz"}), StatusCode::UNPROCESSABLE_ENTITY, "team_id"),
            (&rep.user_id, json!({}), StatusCode::UNPROCESSABLE_ENTITY, "body"),
            (&rep.user_id, json!({"role": "admin"}), StatusCode::UNPROCESSABLE_ENTITY, "role"),
            // The manager of the rep's team reporting to the rep: a loop through the team.
            (&mgr.user_id, json!({"manager_id": rep.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "manager_id"),
        ] {
            let r = app.patch(&s, &path(user), body.clone()).await;
            assert_eq!(r.status, status, "{body} {r:?}");
            assert!(errors_name(&r, field), "{body} {r:?}");
        }
        assert_eq!(audit_count(&app).await, snapshot, "refused changes are not audited");
        // A direct loop: mgr → admin, then admin → mgr.
        assert_eq!(app.patch(&s, &path(&mgr.user_id), json!({"manager_id": s.user_id})).await.status, StatusCode::OK);
        let r = app.patch(&s, &path(&s.user_id), json!({"manager_id": mgr.user_id})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "manager_id"), "{r:?}");
        // A loop closed by joining a team: mgr manages South; rep → mgr; admin manages... the
        // rep reports to mgr, and mgr would report to the rep through South's manager.
        assert_eq!(app.patch(&s, &s.path(&format!("teams/{south}")), json!({"manager_id": rep.user_id})).await.status, StatusCode::OK);
        let r = app.patch(&s, &path(&mgr.user_id), json!({"team_id": south})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "team_id"), "{r:?}");
        // …and a team manager who reports to one of the team's members.
        let r = app.patch(&s, &s.path(&format!("teams/{north}")), json!({"manager_id": s.user_id})).await;
        assert_eq!(r.status, StatusCode::OK, "admin reports to nobody: {r:?}");
        assert_eq!(app.patch(&s, &path(&s.user_id), json!({"manager_id": rep.user_id})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Explicit null clears; a missing key keeps.
        let r = app.patch(&s, &path(&rep.user_id), json!({"manager_id": mgr.user_id})).await;
        assert_eq!((r.status, r.body["team_id"].as_str()), (StatusCode::OK, Some(north.as_str())), "{r:?}");
        let r = app.patch(&s, &path(&rep.user_id), json!({"team_id": null})).await;
        assert_eq!((r.body["team_id"].clone(), r.body["manager_id"].as_str()), (Value::Null, Some(mgr.user_id.as_str())), "{r:?}");
        // The member PATCH route clears with null too, and refuses loops.
        let r = app.patch(&s, &s.path(&format!("members/{}", rep.user_id)), json!({"manager_id": null})).await;
        assert_eq!((r.status, r.body["manager_id"].clone()), (StatusCode::OK, Value::Null), "{r:?}");
        let r = app.patch(&s, &s.path(&format!("members/{}", rep.user_id)), json!({"manager_id": rep.user_id})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "manager_id"), "{r:?}");
        // Other companies' members, malformed ids, non-admins.
        assert_eq!(app.patch(&s, &path(&other.user_id), json!({"team_id": null})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.patch(&s, &path("nope"), json!({"team_id": null})).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.patch(&rep, &path(&rep.user_id), json!({"team_id": null})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.patch(&s, &other.path(&format!("members/{}/reporting", other.user_id)), json!({"team_id": null})).await.status,
            StatusCode::NOT_FOUND
        );

        // Delete: only empty teams no assignment rule uses.
        assert_eq!(app.patch(&s, &path(&rep.user_id), json!({"team_id": north})).await.status, StatusCode::OK);
        let r = app.delete(&s, &s.path(&format!("teams/{north}"))).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("North")), "{r:?}");
        let rule =
            app.post(&s, &s.path("assignment/rules"), json!({"name": "South RR", "strategy": "round_robin", "team_id": south})).await;
        assert_eq!(rule.status, StatusCode::CREATED, "{rule:?}");
        let r = app.delete(&s, &s.path(&format!("teams/{south}"))).await;
        assert!(r.status == StatusCode::CONFLICT && r.body["detail"].as_str().is_some_and(|d| d.contains("South RR")), "{r:?}");
        assert_eq!(app.delete(&s, &s.path(&format!("assignment/rules/{}", id_of(&rule)))).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&rep, &s.path(&format!("teams/{south}"))).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.delete(&s, &s.path(&format!("teams/{their_team}"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM teams WHERE id = '{their_team}'")).await, 1);
        let before = audit_count(&app).await;
        assert_eq!(app.delete(&s, &s.path(&format!("teams/{south}"))).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM teams WHERE id = '{south}'")).await, 0);
        assert_eq!(audit_count(&app).await, before + 1);
        let (field, old, new) = audit(&app, &s, "team").await.pop().expect("delete row");
        assert_eq!((field.as_str(), old.as_deref(), new), ("name", Some("South"), None));
        assert_eq!(app.delete(&s, &s.path(&format!("teams/{south}"))).await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn transfer_moves_records_in_one_step() {
    for app in TestApp::all().await {
        let s = app.register("owner@transfer.test", "Transfer Co").await;
        let leaver = app.member(&s, "leaver@transfer.test", "sales_rep").await;
        let heir = app.member(&s, "heir@transfer.test", "sales_rep").await;
        let gone = app.member(&s, "gone@transfer.test", "sales_rep").await;
        let other = app.register("owner@other-transfer.test", "Other Transfer Co").await;
        // Only own records are visible to reps from here on, so seeing them proves the owner.
        let r =
            app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"leads": {"read": "own"}, "tasks": {"read": "own"}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        let open1 = lead(&app, &s, "Open1", &leaver.user_id, json!({})).await;
        let open2 = lead(&app, &s, "Open2", &leaver.user_id, json!({"status": "contacted"})).await;
        let closed = lead(&app, &s, "Closed", &leaver.user_id, json!({"status": "disqualified"})).await;
        let mine = lead(&app, &s, "Mine", &s.user_id, json!({})).await;
        let task = app.post(&s, &s.path("tasks"), json!({"title": "Call back", "assignee_id": leaver.user_id})).await;
        assert_eq!(task.status, StatusCode::CREATED, "{task:?}");
        let task = id_of(&task);
        let act =
            app.post(&s, &s.path("activities"), json!({"activity_type": "note", "title": "Met them", "user_id": leaver.user_id})).await;
        assert_eq!(act.status, StatusCode::CREATED, "{act:?}");
        assert_eq!(app.delete(&s, &s.path(&format!("members/{}", gone.user_id))).await.status, StatusCode::OK);
        assert_eq!(app.get(&heir, &s.path(&format!("leads/{open1}"))).await.status, StatusCode::NOT_FOUND);

        // The ugly requests first: nothing moves.
        let snapshot = app.snapshot().await;
        let t = |u: &str| s.path(&format!("members/{u}/transfer"));
        for (path, token, body, status, field) in [
            (t(&leaver.user_id), &s, json!({"to_user_id": gone.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "to_user_id"),
            (t(&leaver.user_id), &s, json!({"to_user_id": other.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "to_user_id"),
            (t(&leaver.user_id), &s, json!({"to_user_id": leaver.user_id}), StatusCode::UNPROCESSABLE_ENTITY, "to_user_id"),
            (t(&leaver.user_id), &s, json!({"to_user_id": "x"}), StatusCode::UNPROCESSABLE_ENTITY, "to_user_id"),
            (t(&leaver.user_id), &s, json!({}), StatusCode::UNPROCESSABLE_ENTITY, "to_user_id"),
            (
                t(&leaver.user_id),
                &s,
                json!({"to_user_id": heir.user_id, "objects": ["leads", "widgets"]}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "objects[1]",
            ),
            (t(&leaver.user_id), &s, json!({"to_user_id": heir.user_id, "objects": []}), StatusCode::UNPROCESSABLE_ENTITY, "objects"),
            (
                t(&leaver.user_id),
                &s,
                json!({"to_user_id": heir.user_id, "only_open": "yes"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "only_open",
            ),
            (t(&other.user_id), &s, json!({"to_user_id": heir.user_id}), StatusCode::NOT_FOUND, ""),
            (t("nope"), &s, json!({"to_user_id": heir.user_id}), StatusCode::BAD_REQUEST, "user_id"),
            (t(&leaver.user_id), &heir, json!({"to_user_id": heir.user_id}), StatusCode::FORBIDDEN, ""),
            (
                other.path(&format!("members/{}/transfer", leaver.user_id)),
                &other,
                json!({"to_user_id": other.user_id}),
                StatusCode::NOT_FOUND,
                "",
            ),
        ] {
            let r = app.post(token, &path, body.clone()).await;
            assert_eq!(r.status, status, "{path} {body} {r:?}");
            assert!(is_problem(&r), "{r:?}");
            if !field.is_empty() {
                assert!(errors_name(&r, field), "{body} {r:?}");
            }
        }
        assert_eq!(app.snapshot().await, snapshot);

        // Only open leads.
        let before = audit_count(&app).await;
        let r = app.post(&s, &t(&leaver.user_id), json!({"to_user_id": heir.user_id, "objects": ["leads"], "only_open": true})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!((r.body["moved"].clone(), r.body["total"].as_i64()), (json!({"leads": 2}), Some(2)));
        assert_eq!(audit_count(&app).await, before + 2);
        let owner = |id: &str| {
            format!(
                "SELECT COUNT(*) FROM leads WHERE id = '{id}' AND owner_id = '{}' AND version = 2 AND updated_by = '{}'",
                heir.user_id, s.user_id
            )
        };
        assert_eq!(app.count(&owner(&open1)).await, 1);
        assert_eq!(app.count(&owner(&open2)).await, 1);
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM leads WHERE id = '{closed}' AND owner_id = '{}' AND version = 1", leaver.user_id))
                .await,
            1
        );
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM leads WHERE id = '{mine}' AND owner_id = '{}'", s.user_id)).await, 1);
        let rows: Vec<_> = audit(&app, &s, "leads").await.into_iter().filter(|(f, _, _)| f == "owner_id").collect();
        let moved: Vec<_> = rows
            .iter()
            .filter(|(_, o, n)| o.as_deref() == Some(leaver.user_id.as_str()) && n.as_deref() == Some(heir.user_id.as_str()))
            .collect();
        assert_eq!(moved.len(), 2, "{rows:?}");
        // The new owner sees them; the old one no longer does.
        let r = app.get(&heir, &s.path("leads")).await;
        assert_eq!(names(&r), vec!["Open1", "Open2"], "{r:?}");
        assert_eq!(app.get(&heir, &s.path(&format!("leads/{open1}"))).await.status, StatusCode::OK);
        assert_eq!(app.get(&leaver, &s.path(&format!("leads/{open1}"))).await.status, StatusCode::NOT_FOUND);
        let history = app.get(&s, &s.path(&format!("leads/{open1}/history"))).await;
        assert!(history.text.contains(&heir.user_id), "the history shows the new owner: {history:?}");

        // Everything else, by default all objects; works for a deactivated member too.
        assert_eq!(app.delete(&s, &s.path(&format!("members/{}", leaver.user_id))).await.status, StatusCode::OK);
        let r = app.post(&s, &t(&leaver.user_id), json!({"to_user_id": heir.user_id})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["moved"], json!({"leads": 1, "accounts": 0, "contacts": 0, "deals": 0, "tasks": 1, "activities": 1}));
        assert_eq!(r.body["total"], 3);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM tasks WHERE id = '{task}' AND assignee_id = '{}'", heir.user_id)).await, 1);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM activities WHERE user_id = '{}'", heir.user_id)).await, 1);
        let rows = audit(&app, &s, "tasks").await;
        assert!(
            rows.iter().any(|(f, o, n)| f == "assignee_id"
                && o.as_deref() == Some(leaver.user_id.as_str())
                && n.as_deref() == Some(heir.user_id.as_str())),
            "{rows:?}"
        );
        let rows = audit(&app, &s, "activities").await;
        assert!(rows.iter().any(|(f, _, n)| f == "user_id" && n.as_deref() == Some(heir.user_id.as_str())), "{rows:?}");
        assert_eq!(app.get(&heir, &s.path(&format!("tasks/{task}"))).await.status, StatusCode::OK);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM leads WHERE owner_id = '{}'", leaver.user_id)).await, 0);
        // Nothing left: a second transfer moves nothing and audits nothing.
        let before = audit_count(&app).await;
        let r = app.post(&s, &t(&leaver.user_id), json!({"to_user_id": heir.user_id})).await;
        assert_eq!(r.body["total"], 0, "{r:?}");
        assert_eq!(audit_count(&app).await, before);
    }
}

#[tokio::test]
async fn scopes_and_hidden_fields_bite_on_the_next_request() {
    for app in TestApp::all().await {
        let s = app.register("owner@bite.test", "Bite Co").await;
        let rep1 = app.member(&s, "rep1@bite.test", "sales_rep").await;
        let rep2 = app.member(&s, "rep2@bite.test", "sales_rep").await;
        let team = app.post(&s, &s.path("teams"), json!({"name": "Reps"})).await;
        let team = id_of(&team);
        for r in [&rep1, &rep2] {
            let x = app.patch(&s, &s.path(&format!("members/{}/reporting", r.user_id)), json!({"team_id": team})).await;
            assert_eq!(x.status, StatusCode::OK, "{x:?}");
        }
        let me = app.get(&rep1, &s.path("me/permissions")).await;
        assert_eq!(me.status, StatusCode::OK, "{me:?}");
        assert_eq!((me.body["role"].as_str(), me.body["label"].as_str()), (Some("sales_rep"), Some("Sales Rep")));
        let mates: Vec<&str> = me.body["team"].as_array().expect("team").iter().filter_map(Value::as_str).collect();
        assert!(mates.contains(&rep1.user_id.as_str()) && mates.contains(&rep2.user_id.as_str()), "{me:?}");
        assert_eq!(me.body["permissions"]["leads"]["read"], "team");

        let theirs = lead(&app, &s, "Mate", &rep2.user_id, json!({"email": "mate@example.com", "phone": "+919812345678"})).await;
        let own = lead(&app, &s, "Own", &rep1.user_id, json!({"email": "own@example.com"})).await;
        assert_eq!(names(&app.get(&rep1, &s.path("leads")).await), vec!["Mate", "Own"]);
        assert_eq!(app.get(&rep1, &s.path(&format!("leads/{theirs}"))).await.status, StatusCode::OK);

        // Reads narrowed to own: the team mate's lead disappears, from lists and by id.
        let r = app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"leads": {"read": "own"}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.get(&rep1, &s.path("leads")).await;
        assert_eq!(names(&r), vec!["Own"], "{r:?}");
        assert_eq!(app.get(&rep1, &s.path(&format!("leads/{theirs}"))).await.status, StatusCode::NOT_FOUND);
        let r = app.post(&rep1, &s.path("leads/search"), json!({"q": "Mate"})).await;
        assert_eq!(r.body["data"].as_array().map(Vec::len), Some(0), "{r:?}");
        assert_eq!(names(&app.get(&rep2, &s.path("leads")).await), vec!["Mate"]);
        assert_eq!(names(&app.get(&s, &s.path("leads")).await), vec!["Mate", "Own"], "the Admin still sees everything");

        // Email hidden from Sales Reps.
        let r = app.patch(&s, &s.path("roles/sales_rep"), json!({"permissions": {"leads": {"fields": {"email": "hidden"}}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.get(&rep1, &s.path(&format!("leads/{own}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body.get("email").is_none(), "email is not shown: {r:?}");
        assert!(!r.text.contains("own@example.com"), "{r:?}");
        assert_eq!(r.body["last_name"], "Own");
        let list = app.get(&rep1, &s.path("leads")).await;
        assert!(list.body["data"][0].get("email").is_none() && !list.text.contains("own@example.com"), "{list:?}");
        for q in [
            "leads?filter[email]=own@example.com",
            "leads?filter[email][contains]=own",
            "leads?sort=email",
            "leads?sort=-email",
            "leads?fields=last_name,email",
        ] {
            let r = app.get(&rep1, &s.path(q)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{q} {r:?}");
            assert!(errors_name(&r, "email"), "{q} {r:?}");
        }
        let version = r.body["version"].as_i64().unwrap_or(1).to_string();
        let r = app
            .call(
                Method::PATCH,
                &s.path(&format!("leads/{own}")),
                Some(&rep1.token),
                Some(json!({"email": "new@example.com"})),
                &[("if-match", &format!("\"{version}\""))],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert!(errors_name(&r, "email"), "{r:?}");
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM leads WHERE id = '{own}' AND email = 'own@example.com' AND version = 1")).await,
            1
        );
        // Other fields still change; the Admin still sees the email.
        let r = app
            .call(
                Method::PATCH,
                &s.path(&format!("leads/{own}")),
                Some(&rep1.token),
                Some(json!({"job_title": "CTO"})),
                &[("if-match", &format!("\"{version}\""))],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body.get("email").is_none(), "{r:?}");
        let r = app.get(&s, &s.path(&format!("leads/{own}"))).await;
        assert_eq!(r.body["email"], "own@example.com");

        // Reset: everything is back.
        assert_eq!(app.delete(&s, &s.path("roles/sales_rep")).await.status, StatusCode::OK);
        let r = app.get(&rep1, &s.path(&format!("leads/{own}"))).await;
        assert_eq!(r.body["email"], "own@example.com", "{r:?}");
        assert_eq!(names(&app.get(&rep1, &s.path("leads")).await), vec!["Mate", "Own"]);
    }
}

#[tokio::test]
async fn settings_pages_for_roles_teams_and_transfers() {
    for app in TestApp::all().await {
        let s = app.register("owner@pages.test", "Pages Co").await;
        let rep = app.member(&s, "rep@pages.test", "sales_rep").await;
        let heir = app.member(&s, "heir@pages.test", "manager").await;
        let b = app.web_sign_in("owner@pages.test").await;
        let base = format!("/app/{}", s.company_id);

        let r = app.web_get(&b, &format!("{base}/settings/roles"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.text.contains("Sales Rep") && r.text.contains("Create a custom role"), "{}", r.text);
        let r = app.web_get(&b, &format!("{base}/settings/roles/sales_rep"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(
            r.text.contains("name=\"scope.leads.read\"") && r.text.contains("name=\"field.leads.email\""),
            "the editor has cells and fields"
        );
        assert!(!r.text.contains("<script>") && !r.text.contains(" style="), "no inline script or style");

        // Save a cell and a field from the form.
        let r = app
            .web_post(
                &b,
                &format!("{base}/settings/roles/sales_rep"),
                &[("scope.leads.read", "own"), ("field.leads.phone", "read_only")],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let role = app.get(&s, &s.path("roles/sales_rep")).await;
        assert_eq!(
            (role.body["permissions"]["leads"]["read"].as_str(), role.body["permissions"]["leads"]["fields"]["phone"].as_str()),
            (Some("own"), Some("read_only"))
        );
        // Errors show on the form, and nothing is saved.
        let before = audit_count(&app).await;
        let r = app
            .web_post(&b, &format!("{base}/settings/roles/admin"), &[("scope.deals.read", "team"), ("field.leads.email", "hidden")], true)
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("data-testid=\"form-error\"") && r.text.contains("must stay all for the Admin role"), "{}", r.text);
        assert!(r.text.contains("cannot be hidden from Admins"));
        assert_eq!(audit_count(&app).await, before);
        let r = app.web_post(&b, &format!("{base}/settings/roles/sales_rep"), &[("scope.leads.read", "widely")], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        // Without the CSRF token the form is refused.
        let r = app.web_post(&b, &format!("{base}/settings/roles/sales_rep"), &[("scope.leads.read", "all")], false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Reset from the page.
        let r = app.web_post(&b, &format!("{base}/settings/roles/sales_rep/reset"), &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert!(stored_permissions(&app, &s, "sales_rep").await.is_none());

        // Create a custom role, give it to the rep from the Members page, delete it.
        let r = app.web_post(&b, &format!("{base}/settings/roles"), &[("label", "Closers"), ("base_role", "sales_rep")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert!(r.headers.get("location").and_then(|v| v.to_str().ok()).is_some_and(|l| l.contains("/settings/roles/custom_closers")));
        let r = app.web_post(&b, &format!("{base}/settings/roles"), &[("label", "closers"), ("base_role", "sales_rep")], true).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.text.contains("a role called"), "the error is on the form");
        let members = app.web_get(&b, &format!("{base}/settings/members"), &[]).await;
        assert!(members.text.contains("value=\"custom_closers\"") && members.text.contains("Transfer records"), "{}", members.text);
        let r = app.web_post(&b, &format!("{base}/settings/members/{}", rep.user_id), &[("role", "custom_closers")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(membership(&app, &s, &rep.user_id).await, ("sales_rep".into(), Some("custom_closers".into())));
        let r = app.web_post(&b, &format!("{base}/settings/roles/custom_closers/delete"), &[], true).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.text.contains("still has"), "{}", r.text);
        assert_eq!(
            app.web_post(&b, &format!("{base}/settings/members/{}", rep.user_id), &[("role", "sales_rep")], true).await.status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            app.web_post(&b, &format!("{base}/settings/roles/custom_closers/delete"), &[], true).await.status,
            StatusCode::SEE_OTHER
        );
        assert!(stored_permissions(&app, &s, "custom_closers").await.is_none());

        // Teams page: create, set reporting lines, refuse a loop, delete.
        let r = app.web_post(&b, &format!("{base}/settings/teams"), &[("name", "East"), ("manager_id", &heir.user_id)], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let teams = app.get(&s, &s.path("teams")).await;
        let east = teams.body["data"][0]["id"].as_str().expect("team").to_string();
        let r = app
            .web_post(&b, &format!("{base}/settings/teams/members/{}", rep.user_id), &[("team_id", &east), ("manager_id", "")], true)
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let r = app
            .web_post(
                &b,
                &format!("{base}/settings/teams/members/{}", heir.user_id),
                &[("team_id", ""), ("manager_id", &rep.user_id)],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("reporting cycle"), "{}", r.text);
        let page = app.web_get(&b, &format!("{base}/settings/teams"), &[]).await;
        assert!(page.text.contains("East") && page.text.contains("Reporting lines"), "{}", page.text);
        let r = app.web_post(&b, &format!("{base}/settings/teams/{east}/delete"), &[], true).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");

        // Transfer with a confirmation page.
        let id = lead(&app, &s, "Handover", &rep.user_id, json!({})).await;
        let r = app.web_get(&b, &format!("{base}/settings/members/{}/transfer", rep.user_id), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.text.contains("data-confirm") && r.text.contains(&heir.user_id), "{}", r.text);
        let r = app.web_post(&b, &format!("{base}/settings/members/{}/transfer", rep.user_id), &[("objects", "leads")], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("choose whom the records go to"), "{}", r.text);
        let r = app
            .web_post(
                &b,
                &format!("{base}/settings/members/{}/transfer", rep.user_id),
                &[("objects", "leads"), ("objects", "tasks"), ("to_user_id", &heir.user_id)],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM leads WHERE id = '{id}' AND owner_id = '{}'", heir.user_id)).await, 1);

        // Not for non-admins.
        let rb = app.web_sign_in("rep@pages.test").await;
        for path in ["settings/roles", "settings/roles/sales_rep", "settings/teams", &format!("settings/members/{}/transfer", heir.user_id)]
        {
            let r = app.web_get(&rb, &format!("{base}/{path}"), &[]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
        }
        let r = app.web_post(&rb, &format!("{base}/settings/roles/sales_rep"), &[("scope.leads.read", "all")], true).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(stored_permissions(&app, &s, "sales_rep").await.is_none());
        // Unknown roles are 404 pages.
        assert_eq!(app.web_get(&b, &format!("{base}/settings/roles/custom_ghost"), &[]).await.status, StatusCode::NOT_FOUND);
    }
}
