//! Authentication, tenant isolation, roles, bad input and the audit chain, on every backend.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::json;

#[tokio::test]
async fn sign_in_refresh_rotation_logout_and_api_tokens() {
    for app in TestApp::all().await {
        let s = app.register("Owner@Auth.test", "Auth Co").await;
        let me = app.get(&s, "/api/v1/me").await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["user"]["email"], "owner@auth.test");
        assert_eq!(me.body["companies"][0]["role"], "admin");
        assert!(me.body["user"].get("password_hash").is_none());

        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"email": "owner@auth.test", "password": PASSWORD, "name": "X", "company_name": "Y"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"email": "short@auth.test", "password": "short", "name": "X", "company_name": "Y"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "password"));

        let login =
            app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": "owner@auth.test", "password": PASSWORD})), &[]).await;
        assert_eq!(login.status, StatusCode::OK);
        assert_eq!(login.body["expires_in"], 900);
        let refresh = login.body["refresh_token"].as_str().expect("refresh").to_string();

        let rotated = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh})), &[]).await;
        assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
        let new_access = rotated.body["access_token"].as_str().expect("access").to_string();
        assert_ne!(rotated.body["refresh_token"].as_str(), Some(refresh.as_str()));
        // Reusing the old refresh token revokes the whole family, including the new access token.
        let reuse = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh})), &[]).await;
        assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
        let r = app.call(Method::GET, "/api/v1/me", Some(&new_access), None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // Personal API tokens work until revoked, and are shown once.
        let t = app.post(&s, "/api/v1/me/tokens", json!({"name": "zapier"})).await;
        assert_eq!(t.status, StatusCode::CREATED, "{t:?}");
        let pat = t.body["token"].as_str().expect("pat").to_string();
        assert!(pat.starts_with("cvd_"));
        let r = app.call(Method::GET, &s.path("leads"), Some(&pat), None, &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let list = app.get(&s, "/api/v1/me/tokens").await;
        assert!(list.text.contains("zapier") && !list.text.contains(&pat));
        let r = app.delete(&s, &format!("/api/v1/me/tokens/{}", t.body["id"].as_str().expect("id"))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.call(Method::GET, &s.path("leads"), Some(&pat), None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        // Logout ends the session.
        let r = app.call(Method::POST, "/api/v1/auth/logout", Some(&s.token), None, &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.get(&s, "/api/v1/me").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(is_problem(&r));

        // Garbage tokens.
        for bad in ["", "Bearer", "Bearer abc.def.ghi", "Basic Zm9vOmJhcg==", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."] {
            let req = Request::builder().uri("/api/v1/me").header("authorization", bad).body(Body::empty()).expect("req");
            assert_eq!(app.raw(req).await.status, StatusCode::UNAUTHORIZED, "{bad}");
        }
    }
}

#[tokio::test]
async fn login_throttling_locks_out_after_repeated_failures() {
    for app in TestApp::all().await {
        app.register("victim@lock.test", "Lock Co").await;
        let mut statuses = Vec::new();
        for _ in 0..7 {
            let r = app
                .call(
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(json!({"email": "victim@lock.test", "password": "wrong password!"})),
                    &[],
                )
                .await;
            statuses.push(r.status.as_u16());
        }
        assert_eq!(&statuses[..5], &[401; 5]);
        assert_eq!(statuses[6], 429, "{statuses:?}");
        let r =
            app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": "victim@lock.test", "password": PASSWORD})), &[]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits out the lock");
        assert!(r.headers.get("retry-after").is_some());
    }
}

/// Every object route, for an id of company A, as a member of company B: 404 and no change.
#[tokio::test]
async fn tenant_isolation_on_every_object_route() {
    for app in TestApp::all().await {
        let a = app.register("a@iso.test", "Company A").await;
        let b = app.register("b@iso.test", "Company B").await;
        let acc = app.post(&a, &a.path("accounts"), json!({"name": "A Account"})).await.body["id"].as_str().expect("acc").to_string();
        let mut a_ids = vec![];
        for (obj, body) in [
            ("leads", json!({"last_name": "Secret"})),
            ("accounts", json!({"name": "Secret Account"})),
            ("contacts", json!({"last_name": "Secret", "account_id": acc})),
            ("deals", json!({"name": "Secret Deal", "account_id": acc})),
            ("tasks", json!({"title": "Secret task"})),
            ("activities", json!({"activity_type": "note", "title": "Secret note"})),
        ] {
            let r = app.post(&a, &a.path(obj), body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{obj} {r:?}");
            a_ids.push((obj, r.body["id"].as_str().expect("id").to_string()));
        }
        let before = app.snapshot().await;
        for (obj, id) in &a_ids {
            // B using A's ids under B's own company.
            for (method, path, body) in [
                (Method::GET, format!("{obj}/{id}"), None),
                (Method::PATCH, format!("{obj}/{id}"), Some(json!({"version": 1}))),
                (Method::DELETE, format!("{obj}/{id}"), None),
                (Method::POST, format!("{obj}/{id}/restore"), Some(json!({}))),
                (Method::GET, format!("{obj}/{id}/history"), None),
                (Method::GET, format!("{obj}/{id}/timeline"), None),
            ] {
                let r = app.call(method.clone(), &b.path(&path), Some(&b.token), body.clone(), &[]).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {r:?}");
                // And under A's company id, which B is not a member of.
                let r = app.call(method.clone(), &a.path(&path), Some(&b.token), body, &[]).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} A/{path}: {r:?}");
                assert!(is_problem(&r));
            }
            for (method, path, body) in [
                (Method::GET, obj.to_string(), None),
                (Method::POST, obj.to_string(), Some(json!({}))),
                (Method::POST, format!("{obj}/search"), Some(json!({}))),
                (Method::POST, format!("{obj}/bulk"), Some(json!({"action": "delete", "ids": [id]}))),
            ] {
                let r = app.call(method.clone(), &a.path(&path), Some(&b.token), body, &[]).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} A/{path}: {r:?}");
            }
            let r = app.post(&b, &b.path(&format!("{obj}/bulk")), json!({"action": "delete", "ids": [id]})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{obj} bulk with a foreign id: {r:?}");
            let list = app.get(&b, &b.path(obj)).await;
            assert_eq!(list.body["data"].as_array().map(Vec::len), Some(0));
        }
        for path in ["members", "teams", "audit", "metadata/objects", "stats/leads", "stats/deals", "stats/activities", ""] {
            let r = app.call(Method::GET, &a.path(path), Some(&b.token), None, &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        }
        // References to another company's records are refused.
        let r = app.post(&b, &b.path("contacts"), json!({"last_name": "X", "account_id": acc})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "account_id"));
        let r = app.post(&b, &b.path("leads"), json!({"last_name": "X", "owner_id": a.user_id})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "owner_id"));
        assert_eq!(app.snapshot().await, before);
        // No credentials at all.
        let r = app.call(Method::GET, &a.path("leads"), None, None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn roles_read_only_and_admin_only_actions() {
    for app in TestApp::all().await {
        let admin = app.register("admin@roles.test", "Roles Co").await;
        let ro = app.member(&admin, "ro@roles.test", "read_only").await;
        let rep = app.member(&admin, "rep@roles.test", "sales_rep").await;
        let lead = app.post(&rep, &rep.path("leads"), json!({"last_name": "Lead"})).await;
        assert_eq!(lead.status, StatusCode::CREATED);
        let id = lead.body["id"].as_str().expect("id");
        let before = app.snapshot().await;
        assert_eq!(app.get(&ro, &ro.path("leads")).await.status, StatusCode::OK);
        assert_eq!(app.post(&ro, &ro.path("leads"), json!({"last_name": "No"})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.patch(&ro, &ro.path(&format!("leads/{id}")), json!({"version": 1, "status": "contacted"})).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.delete(&ro, &ro.path(&format!("leads/{id}"))).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.post(&ro, &ro.path("leads/bulk"), json!({"action": "delete", "ids": [id]})).await.status, StatusCode::FORBIDDEN);
        for s in [&ro, &rep] {
            let r = app.post(s, &s.path("members"), json!({"email": "x@roles.test", "password": PASSWORD, "role": "admin"})).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
            let r = app.patch(s, &s.path(&format!("members/{}", s.user_id)), json!({"role": "admin"})).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "no one promotes themselves");
            assert_eq!(app.get(s, &s.path("audit")).await.status, StatusCode::FORBIDDEN);
        }
        assert_eq!(app.snapshot().await, before);

        // Admins manage members; the last Admin cannot be demoted.
        let r = app.patch(&admin, &admin.path(&format!("members/{}", admin.user_id)), json!({"role": "manager"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let r = app.patch(&admin, &admin.path(&format!("members/{}", rep.user_id)), json!({"role": "manager"})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["role"], "manager");
        let r = app.delete(&admin, &admin.path(&format!("members/{}", rep.user_id))).await;
        assert_eq!(r.body["is_active"], false);
        assert_eq!(app.get(&rep, &rep.path("leads")).await.status, StatusCode::NOT_FOUND, "a deactivated member sees nothing");
        let team = app.post(&admin, &admin.path("teams"), json!({"name": "West", "manager_id": admin.user_id})).await;
        assert_eq!(team.status, StatusCode::CREATED, "{team:?}");
        let r = app
            .patch(
                &admin,
                &admin.path(&format!("members/{}", ro.user_id)),
                json!({"team_id": team.body["id"], "manager_id": admin.user_id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["team_id"], team.body["id"]);
        let audit = app.get(&admin, &admin.path("audit?object=membership")).await;
        assert!(audit.body["data"].as_array().expect("rows").iter().any(|r| r["field"] == "role" && r["new_value"] == "manager"));
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    for app in TestApp::all().await {
        let s = app.register("owner@bad.test", "Bad Co").await;
        let before = app.snapshot().await;
        let send = |body: &'static str| {
            Request::builder()
                .method(Method::POST)
                .uri(s.path("leads"))
                .header("authorization", format!("Bearer {}", s.token))
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("req")
        };
        for (body, status) in [("{\"last_name\": ", 400), ("", 400), ("[1,2]", 422), ("\"text\"", 422), ("null", 422)] {
            let r = app.raw(send(body)).await;
            assert_eq!(r.status.as_u16(), status, "{body}: {r:?}");
            assert!(is_problem(&r), "{r:?}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r = app
            .raw(
                Request::builder()
                    .method(Method::POST)
                    .uri(s.path("leads"))
                    .header("authorization", format!("Bearer {}", s.token))
                    .body(Body::from(deep))
                    .expect("req"),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let huge = format!("{{\"last_name\": \"{}\"}}", "x".repeat(5 * 1024 * 1024));
        let r = app
            .raw(
                Request::builder()
                    .method(Method::POST)
                    .uri(s.path("leads"))
                    .header("authorization", format!("Bearer {}", s.token))
                    .header("content-type", "application/json")
                    .body(Body::from(huge))
                    .expect("req"),
            )
            .await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(is_problem(&r));
        let r = app
            .raw(
                Request::builder()
                    .method(Method::POST)
                    .uri(s.path("leads"))
                    .header("authorization", format!("Bearer {}", s.token))
                    .header("content-type", "text/plain")
                    .body(Body::from("{}"))
                    .expect("req"),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        for (body, field) in [
            (json!({}), "last_name"),
            (json!({"last_name": 42}), "last_name"),
            (json!({"last_name": "x".repeat(256)}), "last_name"),
            (json!({"last_name": "ok", "status": "hot"}), "status"),
            (json!({"last_name": "ok", "lead_score": "90"}), "lead_score"),
            (json!({"last_name": "ok", "lead_score": 101}), "lead_score"),
            (json!({"last_name": "ok", "email": "not-an-email"}), "email"),
            (json!({"last_name": "ok", "phone": "call me maybe"}), "phone"),
            (json!({"last_name": "ok", "country": "India"}), "country"),
            (json!({"last_name": "ok", "gdpr_consent": "yes"}), "gdpr_consent"),
            (json!({"last_name": "ok", "opt_in_date": "yesterday"}), "opt_in_date"),
            (json!({"last_name": "ok", "tags": "a,b"}), "tags"),
            (json!({"last_name": "ok", "owner_id": "not-a-uuid"}), "owner_id"),
            (json!({"last_name": "ok", "company_id": "00000000-0000-0000-0000-000000000000"}), "company_id"),
            (json!({"last_name": "ok", "id": "00000000-0000-0000-0000-000000000000"}), "id"),
            (json!({"last_name": "ok", "created_by": "00000000-0000-0000-0000-000000000000"}), "created_by"),
            (json!({"last_name": "ok", "converted_at": "2026-01-01T00:00:00Z"}), "converted_at"),
            (json!({"last_name": "ok", "nonsense": 1}), "nonsense"),
            (json!({"last_name": "nul\u{0000}byte"}), "last_name"),
        ] {
            let r = app.post(&s, &s.path("leads"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
            assert!(errors_name(&r, field), "{body}: {r:?}");
        }
        let r = app.post(&s, &s.path("accounts"), json!({"name": "X", "gstin": "27AAPFU0939F1ZA"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "gstin"), "{r:?}");
        let r = app.post(&s, &s.path("accounts"), json!({"name": "X", "website": "javascript:alert(1)"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "website"), "{r:?}");
        let r = app.post(&s, &s.path("widgets"), json!({"name": "X"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("widgets")));
        let r = app.get(&s, &s.path("leads/not-a-uuid")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(errors_name(&r, "id"));
        let r = app.get(&s, "/api/v1/companies/not-a-uuid/leads").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(errors_name(&r, "company_id"));
        let r = app.call(Method::PUT, &s.path("leads"), Some(&s.token), Some(json!({})), &[]).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(is_problem(&r));
        assert_eq!(app.get(&s, "/api/v1/nowhere").await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.snapshot().await, before, "nothing was written");

        // Unicode is kept as sent.
        let r =
            app.post(&s, &s.path("leads"), json!({"first_name": "निखिल", "last_name": "O'Brien-Zoë 🚀", "notes": "line 1\nline 2"})).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.body["last_name"], "O'Brien-Zoë 🚀");
    }
}

#[tokio::test]
async fn audit_chain_verifies_and_detects_tampering() {
    for app in TestApp::all().await {
        let s = app.register("owner@audit.test", "Audit Co").await;
        for i in 0..3 {
            let r = app.post(&s, &s.path("leads"), json!({"last_name": format!("L{i}"), "email": format!("l{i}@x.io")})).await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true, "{v:?}");
        assert!(v.body["rows"].as_i64().unwrap_or(0) >= 3);
        let filtered = app.get(&s, &s.path(&format!("audit?actor_id={}&object=leads&limit=2", s.user_id))).await;
        assert_eq!(filtered.body["data"].as_array().map(Vec::len), Some(2));
        assert!(filtered.body["next_cursor"].is_string());
        // Someone edits a stored value behind Corvid's back.
        app.db
            .execute(&corvid_store::Q::new(
                "UPDATE audit_log SET new_value = REPLACE(new_value, 'l1@x.io', 'evil@x.io') WHERE new_value LIKE '%l1@x.io%'",
            ))
            .await
            .expect("tamper");
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], false);
        assert!(v.body["problem"].as_str().is_some_and(|p| p.contains("hash")), "{v:?}");
    }
}

#[tokio::test]
async fn health_metrics_and_request_ids() {
    let app = TestApp::sqlite().await;
    let r = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("x-request-id").is_some());
    assert_eq!(app.call(Method::GET, "/readyz", None, None, &[]).await.status, StatusCode::OK);
    let r = app.call(Method::GET, "/api/v1/me", None, None, &[]).await;
    assert_eq!(r.body["request_id"].as_str(), r.headers.get("x-request-id").and_then(|v| v.to_str().ok()));
    let m = app.call(Method::GET, "/metrics", None, None, &[]).await;
    assert!(m.text.contains("corvid_http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"401\"} 1"), "{}", m.text);
}
