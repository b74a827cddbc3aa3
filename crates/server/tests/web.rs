//! The web app's record pages through the real router: sign-in, lists, forms with errors,
//! inline edit with version conflicts, escaping, CSRF and tenant isolation.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use serde_json::json;

type Browser = WebSession;

async fn sign_in(app: &TestApp, email: &str) -> Browser {
    app.web_sign_in(email).await
}

/// The XSS payload appears only as escaped text (askama writes `<` as `&#60;`).
fn escaped(html: &str) -> bool {
    html.contains("&#60;script&#62;alert(1)") || html.contains("&lt;script&gt;alert(1)")
}

async fn get(app: &TestApp, b: &Browser, path: &str) -> Resp {
    app.web_get(b, path, &[]).await
}

async fn post_form(app: &TestApp, b: &Browser, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> Resp {
    app.web_post(b, path, fields, with_csrf).await
}

#[tokio::test]
async fn pages_forms_inline_edit_and_conflicts() {
    for app in TestApp::all().await {
        let s = app.register("owner@web.test", "Web Co").await;
        let b = sign_in(&app, "owner@web.test").await;
        let base = format!("/app/{}", s.company_id);

        // Every list and new-record page renders, with a strict CSP.
        for obj in ["leads", "accounts", "contacts", "deals", "tasks", "activities"] {
            let r = get(&app, &b, &format!("{base}/{obj}")).await;
            assert_eq!(r.status, StatusCode::OK, "{obj} {r:?}");
            assert!(r.text.contains("<h1>"), "{obj}");
            let csp = r.headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("");
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
            let r = get(&app, &b, &format!("{base}/{obj}/new")).await;
            assert_eq!(r.status, StatusCode::OK, "{obj}/new");
        }
        assert_eq!(get(&app, &b, "/").await.status, StatusCode::SEE_OTHER);

        // A form error keeps the input and names the field.
        let r =
            post_form(&app, &b, &format!("{base}/leads"), &[("first_name", "Asha"), ("last_name", ""), ("email", "not-an-email")], true)
                .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("value=\"Asha\""), "input kept");
        assert!(r.text.contains("is required") && r.text.contains("is not a valid email address"));
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 0);
        let r = post_form(
            &app,
            &b,
            &format!("{base}/leads"),
            &[
                ("first_name", "Asha"),
                ("last_name", "<script>alert(1)</script>"),
                ("email", "asha@example.in"),
                ("gdpr_consent", "false"),
                ("gdpr_consent", "true"),
            ],
            true,
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let href = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("location").to_string();
        let page = get(&app, &b, &href).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.text.contains("<script>alert(1)</script>"), "record text is escaped");
        assert!(escaped(&page.text));
        let list = get(&app, &b, &format!("{base}/leads")).await;
        assert!(!list.text.contains("<script>alert(1)</script>") && escaped(&list.text));

        // Inline edit: the edit partial carries the version; saving returns the display.
        let edit = get(&app, &b, &format!("{href}/field/status")).await;
        assert_eq!(edit.status, StatusCode::OK);
        assert!(edit.text.contains("name=\"version\" value=\"1\""));
        let saved = post_form(&app, &b, &format!("{href}/field/status"), &[("status", "contacted"), ("version", "1")], true).await;
        assert_eq!(saved.status, StatusCode::OK, "{saved:?}");
        assert!(saved.text.contains("Contacted"));
        let bad = post_form(&app, &b, &format!("{href}/field/lead_score"), &[("lead_score", "abc"), ("version", "2")], true).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.text.contains("must be a whole number"));
        // Someone else saves first: a stale inline edit shows both values and changes nothing.
        let id = href.rsplit('/').next().expect("id");
        let other = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"status": "nurturing", "version": 2})).await;
        assert_eq!(other.status, StatusCode::OK);
        let stale = post_form(&app, &b, &format!("{href}/field/status"), &[("status", "qualified"), ("version", "2")], true).await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert!(
            stale.text.contains("Saved by someone else")
                && stale.text.contains("nurturing")
                && stale.text.contains("name=\"version\" value=\"3\"")
        );
        let now = app.get(&s, &s.path(&format!("leads/{id}"))).await;
        assert_eq!(now.body["status"], "nurturing");
        // The full edit form shows a conflict too.
        let r =
            post_form(&app, &b, &href, &[("first_name", "Asha"), ("last_name", "Rao"), ("status", "new"), ("version", "1")], true).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r.text.contains("Someone else saved this record"));
        assert_eq!(app.get(&s, &s.path(&format!("leads/{id}"))).await.body["version"], 3);

        // Log an activity and add a task from the record; both show on its timeline.
        let r = post_form(
            &app,
            &b,
            &format!("{href}/log"),
            &[("activity_type", "call"), ("title", "Intro call"), ("outcome", "positive")],
            true,
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = post_form(&app, &b, &format!("{href}/task"), &[("title", "Send brochure"), ("priority", "high")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let page = get(&app, &b, &href).await;
        assert!(page.text.contains("Intro call") && page.text.contains("Send brochure") && page.text.contains("History"));

        // Lists filter, sort and search through the UI's query form.
        let r = get(&app, &b, &format!("{base}/leads?ff=status&fo=eq&fv=nurturing&sort=-last_name&q=asha")).await;
        assert!(escaped(&r.text));
        let r = get(&app, &b, &format!("{base}/leads?ff=status&fo=eq&fv=converted")).await;
        assert!(r.text.contains("No leads here yet"));
        let r = get(&app, &b, &format!("{base}/leads?ff=lead_score&fo=gt&fv=abc")).await;
        assert!(r.text.contains("must be a whole number"), "bad filters are explained");

        // Bulk delete from the list, then restore.
        let r = post_form(&app, &b, &format!("{base}/leads/bulk"), &[("ids", id), ("action", "delete"), ("back", "")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(app.get(&s, &s.path(&format!("leads/{id}"))).await.body["deleted_at"].is_string());
        let r = post_form(&app, &b, &format!("{href}/restore"), &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);

        // Saved views.
        let r =
            post_form(&app, &b, &format!("{base}/leads/views"), &[("name", "Nurturing"), ("query", "ff=status&fo=eq&fv=nurturing")], true)
                .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(get(&app, &b, &format!("{base}/leads")).await.text.contains("Nurturing"));
    }
}

#[tokio::test]
async fn csrf_sessions_and_tenancy() {
    for app in TestApp::all().await {
        let a = app.register("a@webiso.test", "Alpha").await;
        let _b = app.register("b@webiso.test", "Beta").await;
        let lead = app.post(&a, &a.path("leads"), json!({"last_name": "Hidden"})).await.body["id"].as_str().expect("id").to_string();
        let ba = sign_in(&app, "a@webiso.test").await;
        let bb = sign_in(&app, "b@webiso.test").await;
        let alpha = format!("/app/{}", a.company_id);

        // Not signed in: sent to sign-in, remembering the page.
        let r = app.call(Method::GET, &format!("{alpha}/leads"), None, None, &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(r.headers.get("location").and_then(|v| v.to_str().ok()).is_some_and(|l| l.starts_with("/login?next=")));

        // Another company's pages and records are 404s, also by guessed URLs.
        for path in [
            format!("{alpha}/leads"),
            format!("{alpha}/leads/{lead}"),
            format!("{alpha}/dashboard"),
            format!("/app/{}/leads/{lead}", _b.company_id),
        ] {
            let r = get(&app, &bb, &path).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert!(r.text.contains("Request id"), "friendly page with a request id");
        }
        // Without the CSRF token nothing changes.
        let before = app.snapshot().await;
        let r = post_form(&app, &ba, &format!("{alpha}/leads"), &[("last_name", "Forged")], false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = post_form(&app, &ba, &format!("{alpha}/leads/{lead}/delete"), &[("_csrf", "wrong")], false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        // Cross-site origin refused even with a token.
        let body = serde_urlencoded::to_string([("last_name", "X"), ("_csrf", ba.csrf.as_str())]).expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{alpha}/leads"))
            .header("cookie", &ba.cookie)
            .header("host", "corvid.example")
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req");
        assert_eq!(app.raw(req).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.snapshot().await, before);

        // Sign out ends the session.
        let r = post_form(&app, &ba, "/logout", &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = get(&app, &ba, &format!("{alpha}/leads")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "old cookie no longer works");

        // Wrong password on the form: a visible message, no session.
        let body = serde_urlencoded::to_string([("email", "a@webiso.test"), ("password", "nope nope nope")]).expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req");
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(
            r.text.contains("don&#x27;t match") || r.text.contains("don&#39;t match") || r.text.contains("match an account"),
            "{}",
            r.text
        );
        assert!(r.headers.get("set-cookie").is_none());

        // Registering through the form signs in to the new company.
        let body = serde_urlencoded::to_string([
            ("name", "New Person"),
            ("email", "new@webiso.test"),
            ("password", "short"),
            ("company_name", "Gamma"),
        ])
        .expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri("/register")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req");
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("value=\"Gamma\"") && r.text.contains("10 to 200"));
        // Assets are served from the binary; unknown ones are 404.
        for asset in ["app.css", "app.js", "htmx.min.js", "favicon.svg"] {
            assert_eq!(app.call(Method::GET, &format!("/assets/{asset}"), None, None, &[]).await.status, StatusCode::OK, "{asset}");
        }
        assert_eq!(app.call(Method::GET, "/assets/..%2fCargo.toml", None, None, &[]).await.status, StatusCode::NOT_FOUND);
    }
}
