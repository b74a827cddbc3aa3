//! Assignment rules end to end on both databases: round robin that is fair across users,
//! keeps its position across transactions, bulk and imports and skips inactive members;
//! load balancing; territories; rule order; no match → the creator; explicit owners win;
//! each assignment audited with the rule's name; previews; bad bodies, roles and tenancy.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use corvid_server::jobs::{Registry, Runtime};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::time::Duration;

struct Team {
    admin: Session,
    users: Vec<Session>,
    team_id: String,
}

/// An admin and three sales reps in one team.
async fn setup(app: &TestApp, tag: &str) -> Team {
    let admin = app.register(&format!("admin@{tag}.test"), &format!("{tag} Co")).await;
    let mut users = Vec::new();
    for i in 1..=3 {
        users.push(app.member(&admin, &format!("rep{i}@{tag}.test"), "sales_rep").await);
    }
    let t = app.post(&admin, &admin.path("teams"), json!({"name": "Inside sales"})).await;
    assert_eq!(t.status, StatusCode::CREATED, "{t:?}");
    let team_id = t.body["id"].as_str().expect("team").to_string();
    for u in &users {
        let r = app.patch(&admin, &admin.path(&format!("members/{}", u.user_id)), json!({"team_id": team_id})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    Team { admin, users, team_id }
}

async fn new_lead(app: &TestApp, s: &Session, body: Json) -> Json {
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body
}

fn owner(l: &Json) -> String {
    l["owner_id"].as_str().unwrap_or("").to_string()
}

async fn owners(app: &TestApp, s: &Session) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => s.path(&format!("leads?limit=200&cursor={c}")),
            None => s.path("leads?limit=200"),
        };
        let r = app.get(s, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        for l in r.body["data"].as_array().cloned().unwrap_or_default() {
            *out.entry(owner(&l)).or_default() += 1;
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out
}

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "corvidassignmentboundaryX7yZ";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn import(app: &TestApp, s: &Session, csv: &str, options: &str) -> Json {
    let (ct, body) = multipart(&[("object", "leads"), ("options", options)], "leads.csv", csv.as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri(s.path("data/import"))
        .header("authorization", format!("Bearer {}", s.token))
        .header("content-type", ct)
        .body(Body::from(body))
        .expect("req");
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let id = r.body["id"].as_str().expect("id").to_string();
    for _ in 0..600 {
        let r = app.get(s, &s.path(&format!("data/import/{id}"))).await;
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

#[tokio::test]
async fn round_robin_is_fair_persistent_and_skips_inactive_members() {
    for app in TestApp::all().await {
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let t = setup(&app, "rr").await;
        let a = &t.admin;
        let r = app
            .post(a, &a.path("assignment/rules"), json!({"name": "India inbound", "conditions": [{"field": "country", "op": "eq", "value": "IN"}], "strategy": "round_robin", "team_id": t.team_id}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let rule_id = r.body["id"].as_str().expect("id").to_string();
        let mut ids: Vec<String> = t.users.iter().map(|u| u.user_id.clone()).collect();
        ids.sort();

        // Nine leads, one transaction each: everyone gets three, in a fixed turn order.
        let mut got = Vec::new();
        for i in 0..9 {
            got.push(owner(
                &new_lead(&app, a, json!({"last_name": format!("Api{i}"), "email": format!("api{i}@rr.example"), "country": "IN"})).await,
            ));
        }
        let expected: Vec<String> = (0..9).map(|i| ids[i % 3].clone()).collect();
        assert_eq!(got, expected, "strict turns across transactions");
        let r = app.get(a, &a.path(&format!("assignment/rules/{rule_id}"))).await;
        assert_eq!(r.body["last_assigned_user_id"], ids[2].as_str());

        // Audited with the rule that fired.
        let lead0 = app.get(a, &a.path("leads?filter[last_name]=Api0")).await.body["data"][0].clone();
        let h = app.get(a, &a.path(&format!("leads/{}/history", lead0["id"].as_str().expect("id")))).await;
        let assign: Vec<Json> =
            h.body["data"].as_array().cloned().unwrap_or_default().into_iter().filter(|r| r["action"] == "assign").collect();
        assert_eq!(assign.len(), 1, "{h:?}");
        assert_eq!(assign[0]["field"], "owner_id");
        assert_eq!(assign[0]["new_value"], ids[0].as_str());
        assert!(assign[0]["old_value"].as_str().is_some_and(|v| v.contains("India inbound")), "{assign:?}");

        // Six in one bulk transaction continue the same turns.
        let records: Vec<Json> =
            (0..6).map(|i| json!({"last_name": format!("Bulk{i}"), "email": format!("bulk{i}@rr.example"), "country": "IN"})).collect();
        let r = app.post(a, &a.path("leads/bulk"), json!({"action": "create", "records": records})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let bulk: Vec<String> = r.body["data"].as_array().expect("data").iter().map(owner).collect();
        assert_eq!(bulk, (0..6).map(|i| ids[i % 3].clone()).collect::<Vec<_>>());

        // An import with assignment on continues them too (and its batch writes the position back).
        let mut csv = String::from("Last name,Email,Country\n");
        for i in 0..4 {
            csv.push_str(&format!("Imp{i},imp{i}@rr.example,IN\n"));
        }
        let done = import(&app, a, &csv, r#"{"run_assignment": true}"#).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        let mut imp_owners = Vec::new();
        for i in 0..4 {
            imp_owners.push(owner(&app.get(a, &a.path(&format!("leads?filter[last_name]=Imp{i}"))).await.body["data"][0]));
        }
        assert_eq!(imp_owners, (0..4).map(|i| ids[i % 3].clone()).collect::<Vec<_>>());
        let assigned = app.count("SELECT COUNT(*) FROM audit_log WHERE action = 'assign' AND field = 'owner_id'").await;
        assert_eq!(assigned, 19, "every assignment audited");
        // An import with assignment off leaves the importer as owner and takes no turn.
        let done = import(&app, a, "Last name,Email,Country\nNoAssign,noassign@rr.example,IN\n", r#"{"run_assignment": false}"#).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(owner(&app.get(a, &a.path("leads?filter[last_name]=NoAssign")).await.body["data"][0]), a.user_id);

        // Deactivate the next in turn: it is skipped, the others alternate.
        let next = ids[1].clone();
        assert_eq!(app.delete(a, &a.path(&format!("members/{next}"))).await.status, StatusCode::OK);
        let mut after = Vec::new();
        for i in 0..4 {
            after.push(owner(
                &new_lead(&app, a, json!({"last_name": format!("After{i}"), "email": format!("after{i}@rr.example"), "country": "IN"}))
                    .await,
            ));
        }
        assert!(!after.contains(&next), "{after:?}");
        assert_eq!(after, vec![ids[2].clone(), ids[0].clone(), ids[2].clone(), ids[0].clone()]);

        // An explicit owner wins; a lead no rule matches stays with its creator.
        let given = new_lead(&app, a, json!({"last_name": "Given", "country": "IN", "owner_id": ids[0]})).await;
        assert_eq!(owner(&given), ids[0]);
        let elsewhere = new_lead(&app, a, json!({"last_name": "Elsewhere", "country": "US"})).await;
        assert_eq!(owner(&elsewhere), a.user_id);
        let hist = app.get(a, &a.path(&format!("leads/{}/history", given["id"].as_str().expect("id")))).await;
        assert!(!hist.body["data"].as_array().expect("data").iter().any(|r| r["action"] == "assign"));

        // Manual reassignment is an ordinary owner update.
        let r = app
            .patch(
                a,
                &a.path(&format!("leads/{}", elsewhere["id"].as_str().expect("id"))),
                json!({"version": elsewhere["version"], "owner_id": ids[2]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(owner(&r.body), ids[2]);

        let counts = owners(&app, a).await;
        assert_eq!(counts.get(&ids[0]).copied(), Some(10), "3 + 2 + 2 + 2 turns and the explicit one: {counts:?}");
        assert_eq!(counts.get(&a.user_id).copied(), Some(1), "the import without assignment: {counts:?}");
        assert_eq!(counts.get(&ids[1]).copied(), Some(6), "{counts:?}");
        assert_eq!(counts.get(&ids[2]).copied(), Some(9), "{counts:?}");
        let v = app.get(a, &a.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true, "{v:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn load_balance_territories_order_and_preview() {
    for app in TestApp::all().await {
        let t = setup(&app, "lb").await;
        let a = &t.admin;
        let mut ids: Vec<String> = t.users.iter().map(|u| u.user_id.clone()).collect();
        ids.sort();
        // Existing open load: 3 for the first, 1 for the second; closed leads do not count.
        for i in 0..3 {
            new_lead(&app, a, json!({"last_name": format!("Load{i}"), "owner_id": ids[0]})).await;
        }
        new_lead(&app, a, json!({"last_name": "LoadB", "owner_id": ids[1]})).await;
        for i in 0..3 {
            new_lead(&app, a, json!({"last_name": format!("Closed{i}"), "owner_id": ids[2], "status": "disqualified"})).await;
        }
        let r = app
            .post(a, &a.path("assignment/rules"), json!({"name": "Partners by load", "conditions": [{"field": "source", "op": "eq", "value": "partner"}], "strategy": "load_balanced", "user_ids": ids}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let mut got = Vec::new();
        for i in 0..5 {
            got.push(owner(&new_lead(&app, a, json!({"last_name": format!("Partner{i}"), "source": "partner"})).await));
        }
        // Open loads 3/1/0 → the third gets two, then the second and third alternate; the first none.
        assert!(!got.contains(&ids[0]), "{got:?}");
        assert_eq!(got[0], ids[2]);
        let n1 = got.iter().filter(|u| **u == ids[1]).count();
        let n2 = got.iter().filter(|u| **u == ids[2]).count();
        assert_eq!((1 + n1, n2), (3, 3), "{got:?}");

        // Territories: Karnataka → first, rest of India → second, Sri Lanka → third.
        let r = app
            .post(
                a,
                &a.path("assignment/rules"),
                json!({"name": "Territories", "strategy": "territory", "territories": [
                    {"name": "South", "countries": ["in"], "states": ["Karnataka", "Kerala"], "user_id": ids[0]},
                    {"countries": ["IN"], "user_id": ids[1]},
                    {"name": "Island", "countries": ["LK"], "user_id": ids[2]}
                ]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["territories"][0]["countries"], json!(["IN"]), "codes normalised");
        let territory = r.body["id"].as_str().expect("id").to_string();
        let cases = [
            ("IN", Some("karnataka"), ids[0].clone()),
            ("IN", Some("Goa"), ids[1].clone()),
            ("LK", None, ids[2].clone()),
            ("US", None, a.user_id.clone()),
        ];
        for (i, (country, state, want)) in cases.iter().enumerate() {
            let mut body = json!({"last_name": format!("Geo{i}"), "country": country});
            if let Some(s) = state {
                body["state"] = json!(s);
            }
            assert_eq!(&owner(&new_lead(&app, a, body).await), want, "{country} {state:?}");
        }
        let geo = app.get(a, &a.path("leads?filter[last_name]=Geo0")).await.body["data"][0]["id"].as_str().expect("id").to_string();
        let h = app.get(a, &a.path(&format!("leads/{geo}/history"))).await;
        assert!(
            h.body["data"]
                .as_array()
                .expect("data")
                .iter()
                .any(|r| r["action"] == "assign"
                    && r["old_value"].as_str().is_some_and(|v| v.contains("Territories") && v.contains("South"))),
            "{h:?}"
        );

        // Order matters: a partner lead from Kerala hits the first matching rule.
        let kerala = json!({"last_name": "Order", "source": "partner", "country": "IN", "state": "Kerala"});
        let rules = app.get(a, &a.path("assignment/rules")).await.body["data"].as_array().cloned().expect("rules");
        assert_eq!(rules.iter().map(|r| r["position"].as_i64().unwrap_or(0)).collect::<Vec<_>>(), vec![1, 2]);
        let order: Vec<String> = rules.iter().rev().map(|r| r["id"].as_str().expect("id").to_string()).collect();
        let r = app.post(a, &a.path("assignment/rules/reorder"), json!({"ids": order})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["data"][0]["id"], territory.as_str());
        // Preview says which rule and who, without taking a turn or writing anything.
        let before = app.snapshot().await;
        let p =
            app.post(a, &a.path("assignment/preview"), json!({"values": {"source": "partner", "country": "IN", "state": "Kerala"}})).await;
        assert_eq!(p.status, StatusCode::OK, "{p:?}");
        assert_eq!(p.body["assignment"]["rule_name"], "Territories");
        assert_eq!(p.body["user"]["id"], ids[0].as_str());
        let none = app.post(a, &a.path("assignment/preview"), json!({"values": {"country": "FR"}})).await;
        assert!(none.body["assignment"].is_null());
        assert!(none.body["message"].as_str().is_some_and(|m| m.contains("creator")), "{none:?}");
        assert_eq!(app.snapshot().await, before);
        assert_eq!(owner(&new_lead(&app, a, kerala).await), ids[0]);

        // Rules can test the score computed on the same create.
        let r = app.post(a, &a.path("scoring/rule-sets"), json!({"name": "S", "active": true, "rules": [{"name": "Big", "points": 80, "conditions": [{"field": "company_size", "op": "gte", "value": 1000}]}]})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let r = app
            .post(a, &a.path("assignment/rules"), json!({"name": "Hot to the lead rep", "position": 1, "conditions": [{"field": "lead_score", "op": "gte", "value": 70}], "strategy": "user", "user_id": ids[2]}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["position"], 1);
        let hot = new_lead(&app, a, json!({"last_name": "Whale", "country": "IN", "state": "Kerala", "company_size": 5000})).await;
        assert_eq!(hot["lead_score"], 80);
        assert_eq!(owner(&hot), ids[2]);
        let p = app.post(a, &a.path("assignment/preview"), json!({"values": {"company_size": 5000}})).await;
        assert_eq!(p.body["assignment"]["rule_name"], "Hot to the lead rep", "{p:?}");
        assert_eq!(p.body["score"]["score"], 80);
        // A "user" rule whose user left does not fire; the next rule does.
        assert_eq!(app.delete(a, &a.path(&format!("members/{}", ids[2]))).await.status, StatusCode::OK);
        let whale2 = new_lead(&app, a, json!({"last_name": "Whale2", "country": "IN", "state": "Goa", "company_size": 5000})).await;
        assert_eq!(owner(&whale2), ids[1]);
    }
}

async fn rule_snapshot(app: &TestApp) -> Vec<i64> {
    let mut v = app.snapshot().await;
    v.push(app.count("SELECT COUNT(*) FROM assignment_rules").await);
    v.push(app.count("SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM assignment_rules").await);
    v
}

#[tokio::test]
async fn bad_rules_roles_and_tenancy() {
    for app in TestApp::all().await {
        let t = setup(&app, "val").await;
        let a = &t.admin;
        let other = app.register("admin@elsewhere.test", "Elsewhere").await;
        let viewer = app.member(a, "viewer@val.test", "read_only").await;
        let rep = &t.users[0];
        let r = app.post(a, &a.path("assignment/rules"), json!({"name": "Me", "strategy": "user", "user_id": rep.user_id})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let rule = r.body["id"].as_str().expect("id").to_string();
        let before = rule_snapshot(&app).await;
        let cases: Vec<(Json, &str)> = vec![
            (json!({"name": "X", "strategy": "user"}), "user_id"),
            (json!({"name": "X", "strategy": "user", "user_id": other.user_id}), "user_id"),
            (json!({"name": "X", "strategy": "telepathy"}), "strategy"),
            (json!({"name": "X", "strategy": "round_robin"}), "team_id"),
            (json!({"name": "X", "strategy": "round_robin", "team_id": other.company_id}), "team_id"),
            (json!({"name": "X", "strategy": "load_balanced", "user_ids": [rep.user_id, rep.user_id]}), "user_ids[1]"),
            (json!({"name": "X", "strategy": "territory", "territories": []}), "territories"),
            (
                json!({"name": "X", "strategy": "territory", "territories": [{"countries": ["Atlantis"], "user_id": rep.user_id}]}),
                "territories[0].countries[0]",
            ),
            (
                json!({"name": "X", "strategy": "territory", "territories": [{"countries": ["IN"], "user_id": other.user_id}]}),
                "territories[0].user_id",
            ),
            (
                json!({"name": "X", "strategy": "user", "user_id": rep.user_id, "conditions": [{"field": "shoe_size", "op": "eq", "value": 9}]}),
                "conditions[0].field",
            ),
            (
                json!({"name": "X", "strategy": "user", "user_id": rep.user_id, "conditions": [{"field": "country", "op": "in", "value": []}]}),
                "conditions[0].value",
            ),
            (json!({"name": "X", "strategy": "user", "user_id": "not-a-uuid"}), "user_id"),
            (json!({"name": "  ", "strategy": "user", "user_id": rep.user_id}), "name"),
            (json!({"name": "é".repeat(101), "strategy": "user", "user_id": rep.user_id}), "name"),
            (json!({"strategy": "user", "user_id": rep.user_id}), "name"),
            (json!({"name": "X", "strategy": "user", "user_id": rep.user_id, "position": 0}), "position"),
        ];
        for (body, field) in cases {
            let r = app.post(a, &a.path("assignment/rules"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {r:?}");
            assert!(errors_name(&r, field), "{field} not named for {body}: {r:?}");
        }
        let r = app.post(a, &a.path("assignment/rules"), json!({"name": "Me", "strategy": "user", "user_id": rep.user_id})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        let r = app.patch(a, &a.path(&format!("assignment/rules/{rule}")), json!({"strategy": "territory"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "territories"));
        let r = app.patch(a, &a.path(&format!("assignment/rules/{rule}")), json!({"name": "Renamed", "version": 42})).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{r:?}");
        let r = app.post(a, &a.path("assignment/rules/reorder"), json!({"ids": []})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "ids"));
        let r = app.post(a, &a.path("assignment/rules/reorder"), json!({"ids": [rule, rule]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");

        // Sales Reps and Read Only members read but cannot change rules.
        for who in [rep, &viewer] {
            assert_eq!(
                app.post(who, &who.path("assignment/rules"), json!({"name": "Y", "strategy": "user", "user_id": who.user_id})).await.status,
                StatusCode::FORBIDDEN
            );
            assert_eq!(
                app.patch(who, &who.path(&format!("assignment/rules/{rule}")), json!({"name": "Y"})).await.status,
                StatusCode::FORBIDDEN
            );
            assert_eq!(app.delete(who, &who.path(&format!("assignment/rules/{rule}"))).await.status, StatusCode::FORBIDDEN);
            assert_eq!(app.post(who, &who.path("assignment/rules/reorder"), json!({"ids": [rule]})).await.status, StatusCode::FORBIDDEN);
            assert_eq!(app.get(who, &who.path("assignment/rules")).await.status, StatusCode::OK);
            assert_eq!(app.post(who, &who.path("assignment/preview"), json!({"values": {}})).await.status, StatusCode::OK);
        }
        // Another company's rule ids are not found.
        assert_eq!(app.get(&other, &other.path(&format!("assignment/rules/{rule}"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.patch(&other, &other.path(&format!("assignment/rules/{rule}")), json!({"name": "Mine"})).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.delete(&other, &other.path(&format!("assignment/rules/{rule}"))).await.status, StatusCode::NOT_FOUND);
        let r = app.post(&other, &other.path("assignment/rules/reorder"), json!({"ids": [rule]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert_eq!(app.get(&other, &other.path("assignment/rules/not-a-uuid")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(rule_snapshot(&app).await, before, "refused requests changed nothing");

        // The rule still works, and deleting it stops it.
        assert_eq!(owner(&new_lead(&app, a, json!({"last_name": "Mine"})).await), rep.user_id);
        assert_eq!(app.delete(a, &a.path(&format!("assignment/rules/{rule}"))).await.status, StatusCode::NO_CONTENT);
        assert_eq!(owner(&new_lead(&app, a, json!({"last_name": "Creator"})).await), a.user_id);
        assert!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'assignment_rule' AND action = 'delete'").await == 1);
    }
}

#[tokio::test]
async fn settings_assignment_page_edits_orders_and_previews() {
    for app in TestApp::all().await {
        let t = setup(&app, "webas").await;
        let a = &t.admin;
        let rep = &t.users[0];
        let b = app.web_sign_in(&a.email).await;
        let base = format!("/app/{}/settings/assignment", a.company_id);
        let page = app.web_get(&b, &base, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert!(page.text.contains("Assignment rules") && page.text.contains("No assignment rules yet"));

        let r = app
            .web_post(
                &b,
                &base,
                &[
                    ("action", "save"),
                    ("name", "India to rep"),
                    ("strategy", "user"),
                    ("user_id", rep.user_id.as_str()),
                    ("c0_subject", "field:country"),
                    ("c0_op", "eq"),
                    ("c0_value", "IN"),
                    ("active", "1"),
                ],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let r = app
            .web_post(
                &b,
                &base,
                &[
                    ("action", "save"),
                    ("name", "Team turns"),
                    ("strategy", "round_robin"),
                    ("team_id", t.team_id.as_str()),
                    ("active", "1"),
                ],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let rules = app.get(a, &a.path("assignment/rules")).await.body["data"].as_array().cloned().expect("rules");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["conditions"], json!([{"field": "country", "op": "eq", "value": "IN"}]));
        assert_eq!(rules[1]["strategy"], "round_robin");

        // A rule without its user: a message on the form, the name kept, nothing saved.
        let r = app.web_post(&b, &base, &[("action", "save"), ("name", "Nobody"), ("strategy", "user"), ("active", "1")], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("user id: is required for the user strategy") && r.text.contains("value=\"Nobody\""), "{}", r.text);
        let r =
            app.web_post(&b, &base, &[("action", "save"), ("name", "Geo"), ("strategy", "territory"), ("t0_countries", "IN")], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("Territory 1: choose its user."), "{}", r.text);
        assert_eq!(app.get(a, &a.path("assignment/rules")).await.body["data"].as_array().map(Vec::len), Some(2));

        // Preview: which rule would fire and who would get the lead.
        let r = app.web_post(&b, &base, &[("action", "preview"), ("p_country", "IN")], true).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(
            r.text.contains("Rule <strong>India to rep</strong> would give it to <strong>Member (rep1@webas.test)</strong>"),
            "{}",
            r.text
        );

        // Move the team rule up, then turn the first rule off.
        let team_rule = rules[1]["id"].as_str().expect("id").to_string();
        let r = app.web_post(&b, &base, &[("action", "move_up"), ("rule_id", team_rule.as_str())], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let rules = app.get(a, &a.path("assignment/rules")).await.body["data"].as_array().cloned().expect("rules");
        assert_eq!(rules[0]["id"], team_rule.as_str());
        let r = app.web_post(&b, &base, &[("action", "toggle"), ("rule_id", team_rule.as_str())], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.get(a, &a.path(&format!("assignment/rules/{team_rule}"))).await.body["active"], false);
        let l = app.post(a, &a.path("leads"), json!({"last_name": "Routed", "country": "IN"})).await;
        assert_eq!(l.body["owner_id"], rep.user_id.as_str(), "the inactive rule is skipped");
        // Leads made in the UI are assigned too (the form's empty owner means "not given").
        let r = app
            .web_post(&b, &format!("/app/{}/leads", a.company_id), &[("last_name", "WebMade"), ("country", "IN"), ("owner_id", "")], true)
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.get(a, &a.path("leads?filter[last_name]=WebMade")).await.body["data"][0]["owner_id"], rep.user_id.as_str());
        // The edit form shows a rule's values.
        let edit = app.web_get(&b, &format!("{base}?edit={team_rule}"), &[]).await;
        assert!(edit.text.contains("Edit Team turns"), "{}", edit.text);

        // Only Admins; another company's rule is not found.
        let rb = app.web_sign_in(&rep.email).await;
        assert_eq!(app.web_get(&rb, &base, &[]).await.status, StatusCode::FORBIDDEN);
        let other = app.register("z@other-webas.test", "Other").await;
        let ob = app.web_sign_in(&other.email).await;
        let r = app
            .web_post(
                &ob,
                &format!("/app/{}/settings/assignment", other.company_id),
                &[("action", "delete"), ("rule_id", team_rule.as_str())],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert_eq!(app.get(a, &a.path("assignment/rules")).await.body["data"].as_array().map(Vec::len), Some(2));
    }
}
