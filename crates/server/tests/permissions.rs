//! The permission matrix enforced end to end: scopes (own/team/all) with reporting lines,
//! field-level access (hidden, read-only), custom roles, on every path (get, list, search,
//! bulk, export, statistics, history, pages), on every backend.

mod common;

use axum::http::StatusCode;
use common::*;
use corvid_core::Value as V;
use corvid_store::Q;
use serde_json::{json, Value};

fn ids(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["data"].as_array().expect("data").iter().map(|x| x["id"].as_str().expect("id").to_string()).collect()
}

fn uuid(s: &str) -> V {
    V::Uuid(s.parse().expect("uuid"))
}

/// Puts members in one team led by `manager` (and reporting to them).
async fn team(app: &TestApp, manager: &Session, members: &[&Session]) {
    let team = uuid::Uuid::now_v7();
    let q = Q::new("INSERT INTO teams (id, company_id, name, manager_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(V::Uuid(team))
        .bind(uuid(&manager.company_id))
        .bind(V::Text(format!("Team {team}")))
        .bind(uuid(&manager.user_id))
        .bind(V::Timestamp(chrono::Utc::now()));
    app.db.execute(&q).await.expect("team");
    for m in members {
        let q = Q::new("UPDATE memberships SET team_id = $1 WHERE company_id = $2 AND user_id = $3")
            .bind(V::Uuid(team))
            .bind(uuid(&m.company_id))
            .bind(uuid(&m.user_id));
        assert_eq!(app.db.execute(&q).await.expect("member"), 1);
    }
}

/// Stores a role's matrix as the roles admin would.
async fn set_role(app: &TestApp, admin: &Session, key: &str, base: &str, permissions: Value) {
    let now = V::Timestamp(chrono::Utc::now());
    let q = Q::new(
        "INSERT INTO roles (company_id, key, label, base_role, permissions, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (company_id, key) DO UPDATE SET permissions = excluded.permissions",
    )
    .bind(uuid(&admin.company_id))
    .bind(V::Text(key.into()))
    .bind(V::Text(format!("Role {key}")))
    .bind(V::Text(base.into()))
    .bind(V::Json(permissions))
    .bind(now);
    app.db.execute(&q).await.expect("role");
}

async fn lead(app: &TestApp, s: &Session, body: Value) -> String {
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().expect("id").to_string()
}

struct Org {
    admin: Session,
    manager: Session,
    rep1: Session,
    rep2: Session,
    outsider: Session,
    support: Session,
    viewer: Session,
}

async fn org(app: &TestApp) -> Org {
    let admin = app.register("admin@perm.test", "Perm Co").await;
    let manager = app.member(&admin, "manager@perm.test", "manager").await;
    let rep1 = app.member(&admin, "rep1@perm.test", "sales_rep").await;
    let rep2 = app.member(&admin, "rep2@perm.test", "sales_rep").await;
    let outsider = app.member(&admin, "rep3@perm.test", "sales_rep").await;
    let support = app.member(&admin, "support@perm.test", "support_agent").await;
    let viewer = app.member(&admin, "viewer@perm.test", "read_only").await;
    team(app, &manager, &[&rep1, &rep2]).await;
    Org { admin, manager, rep1, rep2, outsider, support, viewer }
}

async fn list(app: &TestApp, s: &Session) -> Vec<String> {
    ids(&app.get(s, &s.path("leads?limit=200")).await)
}

#[tokio::test]
async fn scopes_follow_teams_and_reporting_lines() {
    for app in TestApp::all().await {
        let o = org(&app).await;
        let l1 = lead(&app, &o.rep1, json!({"last_name": "One", "email": "one@acme.in"})).await;
        let l2 = lead(&app, &o.rep2, json!({"last_name": "Two"})).await;
        let l3 = lead(&app, &o.outsider, json!({"last_name": "Three"})).await;

        // Reading: a rep reads the team's, the manager the team below them, the outsider its own.
        let seen = list(&app, &o.rep1).await;
        assert!(seen.contains(&l1) && seen.contains(&l2) && !seen.contains(&l3), "{seen:?}");
        let seen = list(&app, &o.manager).await;
        assert!(seen.contains(&l1) && seen.contains(&l2) && !seen.contains(&l3), "{seen:?}");
        assert_eq!(list(&app, &o.outsider).await, vec![l3.clone()]);
        assert_eq!(list(&app, &o.admin).await.len(), 3);
        assert_eq!(list(&app, &o.viewer).await.len(), 3);
        // Search and the POST search endpoint apply the same scope.
        let r = app.get(&o.outsider, &o.outsider.path("leads?q=one")).await;
        assert!(ids(&r).is_empty());
        let r = app.post(&o.outsider, &o.outsider.path("leads/search"), json!({"q": "one"})).await;
        assert!(ids(&r).is_empty(), "{r:?}");

        // Out of scope is "not found", like another company's id: no hint that it exists.
        let snap = app.snapshot().await;
        for (s, id) in [(&o.outsider, &l1), (&o.rep1, &l3)] {
            for path in [format!("leads/{id}"), format!("leads/{id}/history"), format!("leads/{id}/timeline")] {
                let r = app.get(s, &s.path(&path)).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {r:?}");
            }
            let r = app.patch(s, &s.path(&format!("leads/{id}")), json!({"status": "contacted", "version": 1})).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        }
        // Readable but not editable: 403.
        let r = app.patch(&o.rep1, &o.rep1.path(&format!("leads/{l2}")), json!({"status": "contacted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // Reps delete their own leads only.
        let r = app.delete(&o.rep1, &o.rep1.path(&format!("leads/{l2}"))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // Bulk: one item out of scope refuses the whole request.
        let r = app
            .post(&o.rep1, &o.rep1.path("leads/bulk"), json!({"action": "update", "ids": [l1, l2], "changes": {"status": "contacted"}}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // Giving a record to someone outside the scope.
        let r = app.post(&o.rep1, &o.rep1.path("leads"), json!({"last_name": "Gift", "owner_id": o.outsider.user_id})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert!(errors_name(&r, "owner_id"), "{r:?}");
        let r = app.patch(&o.rep1, &o.rep1.path(&format!("leads/{l1}")), json!({"owner_id": o.rep2.user_id, "version": 1})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // Support agents do not work on leads; Read Only changes nothing.
        let r = app.get(&o.support, &o.support.path("leads")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.get(&o.support, &o.support.path(&format!("leads/{l1}"))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.post(&o.support, &o.support.path("leads"), json!({"last_name": "No"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.patch(&o.viewer, &o.viewer.path(&format!("leads/{l1}")), json!({"status": "contacted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert_eq!(app.snapshot().await, snap, "refusals change nothing");

        // Allowed changes go through: own record, and the manager on the team's.
        let r = app.patch(&o.rep1, &o.rep1.path(&format!("leads/{l1}")), json!({"status": "contacted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.patch(&o.manager, &o.manager.path(&format!("leads/{l2}")), json!({"owner_id": o.rep1.user_id, "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.patch(&o.manager, &o.manager.path(&format!("leads/{l3}")), json!({"status": "contacted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = app.delete(&o.manager, &o.manager.path(&format!("leads/{l2}"))).await;
        assert!(r.status.is_success(), "{r:?}");

        // Statistics count what the member may read.
        let r = app.get(&o.outsider, &o.outsider.path("stats/leads")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let total: i64 = r.body["by_status"].as_array().expect("buckets").iter().map(|b| b["count"].as_i64().unwrap_or(0)).sum();
        assert_eq!(total, 1, "{r:?}");
        let r = app.get(&o.support, &o.support.path("stats/leads")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

        // Exports: a rep exports its own records only.
        let r = app.get(&o.rep1, &o.rep1.path("data/export?object=leads&format=csv")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.text.contains(&l1) && !r.text.contains(&l3), "{}", r.text);
        let r = app.get(&o.support, &o.support.path("data/export?object=leads&format=csv")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    }
}

#[tokio::test]
async fn hidden_fields_never_show_and_cannot_be_inferred() {
    for app in TestApp::all().await {
        let o = org(&app).await;
        set_role(&app, &o.admin, "sales_rep", "sales_rep", json!({"leads": {"read": "team", "create": "own", "edit": "own", "delete": "none", "import": "none", "export": "own", "fields": {"email": "hidden", "phone": "read_only"}}})).await;
        let id = lead(
            &app,
            &o.manager,
            json!({"last_name": "Secret", "email": "secret.person@hidden.in", "phone": "+919812345678", "owner_id": o.rep1.user_id}),
        )
        .await;
        let path = o.rep1.path(&format!("leads/{id}"));

        // Absent from every response of the rep, present for the manager.
        let r = app.get(&o.rep1, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body.get("email").is_none(), "{r:?}");
        assert_eq!(r.body["phone"], "+919812345678");
        let r = app.get(&o.manager, &o.manager.path(&format!("leads/{id}"))).await;
        assert_eq!(r.body["email"], "secret.person@hidden.in");
        for p in ["leads", "leads?fields=last_name,phone"] {
            let r = app.get(&o.rep1, &o.rep1.path(p)).await;
            assert!(!r.text.contains("secret.person"), "{p}: {}", r.text);
        }
        for p in [format!("leads/{id}/history"), format!("leads/{id}/timeline"), "data/export?object=leads&format=csv".to_string()] {
            let r = app.get(&o.rep1, &o.rep1.path(&p)).await;
            assert_eq!(r.status, StatusCode::OK, "{p}: {r:?}");
            assert!(!r.text.contains("secret.person") && !r.text.contains("hidden.in"), "{p}: {}", r.text);
        }
        let r = app.get(&o.rep1, &o.rep1.path("data/export?object=leads&format=csv")).await;
        assert!(!r.text.lines().next().unwrap_or("").contains("email"), "no email column: {}", r.text);

        // Filtering, sorting, projecting and searching on it are refused, naming the field.
        let snap = app.snapshot().await;
        for p in [
            "leads?filter[email][eq]=secret.person@hidden.in",
            "leads?filter[email][contains]=secret",
            "leads?sort=email",
            "leads?fields=email",
            "leads?q=secret",
        ] {
            let r = app.get(&o.rep1, &o.rep1.path(p)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{p}: {r:?}");
            assert!(errors_name(&r, "email"), "{p}: {r:?}");
        }
        let r = app
            .post(&o.rep1, &o.rep1.path("leads/search"), json!({"filter_groups": [[{"field": "email", "op": "eq", "value": "x"}]]}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.get(&o.rep1, &o.rep1.path("data/export?object=leads&format=csv&fields=last_name,email")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // Writing it (or the read-only phone) answers 403 naming the field.
        for body in [json!({"email": "new@x.in", "version": 1}), json!({"phone": "+919800000000", "version": 1})] {
            let r = app.patch(&o.rep1, &path, body.clone()).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
            let field = body.as_object().and_then(|m| m.keys().find(|k| *k != "version").cloned()).expect("field");
            assert!(errors_name(&r, &field), "{r:?}");
        }
        let r = app.post(&o.rep1, &o.rep1.path("leads"), json!({"last_name": "New", "email": "x@y.in"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        assert_eq!(app.snapshot().await, snap, "refusals change nothing");
        // Other fields stay editable.
        let r = app.patch(&o.rep1, &path, json!({"job_title": "CTO", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body.get("email").is_none(), "{r:?}");

        // The pages: no value, no input.
        let web = app.web_sign_in("rep1@perm.test").await;
        let page = app.web_get(&web, &format!("/app/{}/leads/{id}", o.rep1.company_id), &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.text.contains("secret.person") && page.text.contains("Secret"), "{}", page.text);
        let form = app.web_get(&web, &format!("/app/{}/leads/{id}/edit", o.rep1.company_id), &[]).await;
        assert!(!form.text.contains("name=\"email\"") && !form.text.contains("name=\"phone\""), "{}", form.text);
        let list = app.web_get(&web, &format!("/app/{}/leads?cols=last_name,email", o.rep1.company_id), &[]).await;
        assert!(!list.text.contains("secret.person"), "{}", list.text);
    }
}

#[tokio::test]
async fn custom_roles_and_changed_defaults_take_effect_on_the_next_request() {
    for app in TestApp::all().await {
        let o = org(&app).await;
        let l3 = lead(&app, &o.outsider, json!({"last_name": "Far"})).await;
        assert!(ids(&app.get(&o.rep1, &o.rep1.path("leads")).await).is_empty());
        // A custom role based on Sales Rep that reads every lead.
        set_role(
            &app,
            &o.admin,
            "custom_lead_desk",
            "sales_rep",
            json!({"leads": {"read": "all", "create": "own", "edit": "own", "delete": "none", "import": "none", "export": "none"}}),
        )
        .await;
        let q = Q::new("UPDATE memberships SET custom_role = $1 WHERE company_id = $2 AND user_id = $3")
            .bind(V::Text("custom_lead_desk".into()))
            .bind(uuid(&o.rep1.company_id))
            .bind(uuid(&o.rep1.user_id));
        app.db.execute(&q).await.expect("assign");
        assert_eq!(ids(&app.get(&o.rep1, &o.rep1.path("leads")).await), vec![l3.clone()]);
        // Its export scope is none: the export is refused, and edits stay within "own".
        let r = app.get(&o.rep1, &o.rep1.path("data/export?object=leads&format=csv")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.patch(&o.rep1, &o.rep1.path(&format!("leads/{l3}")), json!({"status": "contacted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        // Narrowing the built-in Manager role to "own" hides the team's records from managers.
        lead(&app, &o.rep2, json!({"last_name": "Near"})).await;
        assert_eq!(ids(&app.get(&o.manager, &o.manager.path("leads")).await).len(), 1);
        set_role(
            &app,
            &o.admin,
            "manager",
            "manager",
            json!({"leads": {"read": "own", "create": "own", "edit": "own", "delete": "own", "import": "own", "export": "own"}}),
        )
        .await;
        assert!(ids(&app.get(&o.manager, &o.manager.path("leads")).await).is_empty());
        // A broken stored matrix falls back to the role's defaults instead of failing requests.
        set_role(&app, &o.admin, "manager", "manager", json!({"leads": {"read": "everything"}})).await;
        assert_eq!(ids(&app.get(&o.manager, &o.manager.path("leads")).await).len(), 1);
    }
}

#[tokio::test]
async fn duplicate_candidates_outside_the_scope_keep_their_reasons_but_not_their_titles() {
    for app in TestApp::all().await {
        let o = org(&app).await;
        let r = app
            .call(axum::http::Method::PUT, &o.admin.path("data/dedupe/policy"), Some(&o.admin.token), Some(json!({"policy": "block"})), &[])
            .await;
        assert!(r.status.is_success(), "{r:?}");
        let theirs = lead(&app, &o.outsider, json!({"first_name": "Kavya", "last_name": "Narayanan", "email": "kavya.n@lotus.in"})).await;
        let snap = app.snapshot().await;
        let r = app
            .post(&o.rep1, &o.rep1.path("leads"), json!({"first_name": "Kavya", "last_name": "Narayanan", "email": "kavya.n@lotus.in"}))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        let c = &r.body["candidates"][0];
        assert_eq!(c["id"], theirs.as_str());
        assert!(c["title"].as_str().is_some_and(|t| t.contains("outside your access")), "{r:?}");
        assert!(!r.text.contains("LEAD-0"), "no number of the hidden record: {}", r.text);
        assert!(!c["reasons"].as_array().expect("reasons").is_empty());
        assert_eq!(app.snapshot().await, snap);
        // An Admin, who reads every lead, opens the candidate list itself.
        let r = app.get(&o.admin, &o.admin.path(&format!("leads/{theirs}/duplicates"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
}

/// Every GET route of the API, as the rep from whom `email` is hidden: the secret appears in
/// no answer (lists, records, timelines, history, statistics, exports, duplicates, reports...).
#[tokio::test]
async fn a_hidden_field_appears_in_no_response_of_any_route() {
    for app in TestApp::all().await {
        let o = org(&app).await;
        set_role(&app, &o.admin, "sales_rep", "sales_rep", json!({"leads": {"read": "team", "create": "own", "edit": "own", "delete": "own", "import": "none", "export": "own", "fields": {"email": "hidden"}}})).await;
        let secret = "zq.hidden.person@secretmail.in";
        let id =
            lead(&app, &o.manager, json!({"first_name": "Hidden", "last_name": "Person", "email": secret, "owner_id": o.rep1.user_id}))
                .await;
        // Give the lead a timeline and a history.
        let r = app
            .patch(&o.manager, &o.manager.path(&format!("leads/{id}")), json!({"email": "zq.changed@secretmail.in", "version": 1}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let doc = app.call(axum::http::Method::GET, "/api/openapi.json", None, None, &[]).await;
        let paths = doc.body["paths"].as_object().expect("paths").clone();
        let mut checked = 0;
        for (path, ops) in paths {
            if ops.get("get").is_none() || !path.starts_with("/api/v1/companies/{company_id}") {
                continue;
            }
            let mut url = path.replace("{company_id}", &o.rep1.company_id).replace("{object}", "leads").replace("{id}", &id);
            url = url.replace("{user_id}", &o.rep1.user_id);
            if url.contains('{') {
                continue;
            }
            let url = if url.ends_with("/data/export") { format!("{url}?object=leads&format=csv") } else { url };
            let r = app.get(&o.rep1, &url).await;
            assert!(!r.status.is_server_error(), "{url}: {r:?}");
            assert!(!r.text.contains("secretmail"), "{url} shows the hidden email: {}", r.text);
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} routes checked");
    }
}
