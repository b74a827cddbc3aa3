//! The edge: allowed hosts, CORS, security headers and cookies, session fixation, request
//! rate limits, access-token keys (fixed algorithm, rotation) and the system log, on every
//! backend. Refused requests are checked to change nothing.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use common::*;
use corvid_server::edge::EdgeConfig;
use corvid_server::ratelimit::{Limiter, Limits};
use corvid_server::AppState;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The system log layer must be in the process's subscriber for the log tests; every test
/// here installs it first (the harness's own subscriber then stays out).
fn init_logging() {
    use tracing_subscriber::prelude::*;
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_filter(tracing_subscriber::EnvFilter::new("warn")))
        .with(corvid_server::syslog::layer())
        .try_init();
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------------------------------
// Hosts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn only_allowed_hosts_are_answered() {
    init_logging();
    let cfg = async |s: &mut AppState| {
        s.edge = Arc::new(EdgeConfig::parse(Some("crm.example.test, .corp.test"), None).expect("cfg"));
    };
    for app in TestApp::all_with(&cfg).await {
        let get = |host: Option<&str>, path: &str| {
            let mut b = Request::builder().uri(path);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            b.body(Body::empty()).expect("req")
        };
        for ok in ["crm.example.test", "CRM.example.test:8443", "eu.corp.test", "localhost:8080", "127.0.0.1"] {
            assert_eq!(app.raw(get(Some(ok), "/api/openapi.json")).await.status, StatusCode::OK, "{ok}");
        }
        for bad in [Some("evil.test"), Some("crm.example.test.evil.test"), Some("xcorp.test"), None] {
            let r = app.raw(get(bad, "/api/openapi.json")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(is_problem(&r) && errors_name(&r, "Host"), "{r:?}");
            let page = app.raw(get(bad, "/login")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST);
        }
        // Health checks answer whatever the host (load balancers use addresses).
        assert_eq!(app.raw(get(Some("10.0.0.7:8080"), "/healthz")).await.status, StatusCode::OK);

        // A refused sign-up creates nothing.
        let before = app.snapshot().await;
        let body = json!({"email": "host@edge.test", "password": PASSWORD, "name": "H", "company_name": "Host Co"});
        let r = app.call(Method::POST, "/api/v1/auth/register", None, Some(body.clone()), &[("host", "evil.test")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.snapshot().await, before);
        let r = app.call(Method::POST, "/api/v1/auth/register", None, Some(body), &[("host", "crm.example.test")]).await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    // Unset: any host.
    for app in TestApp::all().await {
        let r = app.call(Method::GET, "/api/openapi.json", None, None, &[("host", "anything.example")]).await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

// ---------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cors_for_listed_origins_on_the_api_only() {
    init_logging();
    let cfg = async |s: &mut AppState| {
        s.edge = Arc::new(EdgeConfig::parse(None, Some("https://app.example.test")).expect("cfg"));
    };
    for app in TestApp::all_with(&cfg).await {
        let s = app.register("cors@edge.test", "CORS Co").await;
        let preflight = |origin: &str, path: &str| {
            Request::builder()
                .method(Method::OPTIONS)
                .uri(path)
                .header("origin", origin)
                .header("access-control-request-method", "PATCH")
                .header("access-control-request-headers", "authorization, content-type, if-match")
                .body(Body::empty())
                .expect("req")
        };
        let r = app.raw(preflight("https://app.example.test", &s.path("leads"))).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://app.example.test"));
        assert!(header(&r, "access-control-allow-methods").is_some_and(|m| m.contains("PATCH") && m.contains("DELETE")));
        assert!(header(&r, "access-control-allow-headers").is_some_and(|h| h.contains("authorization") && h.contains("if-match")));
        assert!(header(&r, "access-control-max-age").is_some());
        assert!(r.headers.get("access-control-allow-credentials").is_none(), "credentials are never allowed");
        assert!(r.headers.get_all("vary").iter().any(|v| v.to_str().is_ok_and(|v| v.contains("Origin"))));

        let r = app.raw(preflight("https://evil.example", &s.path("leads"))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(is_problem(&r));
        assert!(r.headers.get("access-control-allow-origin").is_none());

        // Actual requests: the listed origin gets the headers, others do not.
        let r = app.call(Method::GET, "/api/v1/me", Some(&s.token), None, &[("origin", "https://app.example.test")]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://app.example.test"));
        assert!(header(&r, "access-control-expose-headers").is_some_and(|h| h.contains("x-request-id") && h.contains("etag")));
        assert!(r.headers.get("access-control-allow-credentials").is_none());
        let r = app.call(Method::GET, "/api/v1/me", Some(&s.token), None, &[("origin", "https://evil.example")]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.headers.get("access-control-allow-origin").is_none());
        // Error answers carry the headers too, so the browser app can read the problem.
        let r = app.call(Method::GET, "/api/v1/me", None, None, &[("origin", "https://app.example.test")]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(header(&r, "access-control-allow-origin"), Some("https://app.example.test"));
        // Pages are not part of CORS.
        let r = app.call(Method::GET, "/login", None, None, &[("origin", "https://app.example.test")]).await;
        assert!(r.headers.get("access-control-allow-origin").is_none());
        let r = app.raw(preflight("https://app.example.test", "/login")).await;
        assert!(r.headers.get("access-control-allow-origin").is_none());
    }
    // Unset: no origin is allowed.
    for app in TestApp::all().await {
        let req = Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/v1/me")
            .header("origin", "https://app.example.test")
            .header("access-control-request-method", "GET")
            .body(Body::empty())
            .expect("req");
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.headers.get("access-control-allow-origin").is_none());
    }
}

// ---------------------------------------------------------------------------------------
// Headers, cookies, session fixation
// ---------------------------------------------------------------------------------------

fn login_form(email: &str, cookie: Option<&str>, https: bool) -> Request<Body> {
    let body = serde_urlencoded::to_string([("email", email), ("password", PASSWORD)]).expect("form");
    let mut b = Request::builder().method(Method::POST).uri("/login").header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    if https {
        b = b.header("x-forwarded-proto", "https");
    }
    b.body(Body::from(body)).expect("req")
}

fn session_pair(r: &Resp) -> String {
    let set = header(r, "set-cookie").expect("set-cookie");
    set.split(';').next().expect("pair").to_string()
}

#[tokio::test]
async fn security_headers_and_cookie_flags() {
    init_logging();
    for app in TestApp::all().await {
        app.register("headers@edge.test", "Headers Co").await;
        let page = app.call(Method::GET, "/login", None, None, &[]).await;
        let csp = header(&page, "content-security-policy").expect("csp");
        let script = csp.split(';').find(|d| d.trim().starts_with("script-src")).expect("script-src");
        assert_eq!(script.trim(), "script-src 'self'", "no inline script");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'") && csp.contains("default-src 'self'"));
        assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&page, "x-frame-options"), Some("DENY"));
        assert_eq!(header(&page, "referrer-policy"), Some("same-origin"));
        assert!(page.headers.get("strict-transport-security").is_none(), "no HSTS over plain HTTP");
        assert!(page.headers.get("x-request-id").is_some());

        let tls = app.call(Method::GET, "/login", None, None, &[("x-forwarded-proto", "https")]).await;
        assert!(header(&tls, "strict-transport-security").is_some_and(|h| h.starts_with("max-age=") && h.contains("includeSubDomains")));

        let api = app.call(Method::GET, "/api/v1/me", None, None, &[]).await;
        assert_eq!(header(&api, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&api, "cache-control"), Some("no-store"));
        assert_eq!(header(&api, "content-type"), Some("application/problem+json"));

        // The session cookie: HttpOnly, SameSite, Path=/, Secure behind TLS.
        let plain = app.raw(login_form("headers@edge.test", None, false)).await;
        let set = header(&plain, "set-cookie").expect("cookie");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/") && !set.contains("Secure"), "{set}");
        let secure = app.raw(login_form("headers@edge.test", None, true)).await;
        let set = header(&secure, "set-cookie").expect("cookie");
        assert!(set.contains("HttpOnly") && set.contains("Secure"), "{set}");
        assert!(header(&secure, "strict-transport-security").is_some());
    }
}

#[tokio::test]
async fn sign_in_always_starts_a_new_session() {
    init_logging();
    for app in TestApp::all().await {
        app.register("victim@fixation.test", "Fixation Co").await;
        app.register("attacker@fixation.test", "Attacker Co").await;

        // A cookie value chosen by an attacker is never adopted.
        let planted = "corvid_session=Zm9yZ2VkLXNlc3Npb24tdmFsdWUtY2hvc2VuLWJ5LWF0dGFja2Vy";
        let r = app.raw(login_form("victim@fixation.test", Some(planted), false)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let fresh = session_pair(&r);
        assert_ne!(fresh, planted);
        let probe = |cookie: &str| Request::builder().uri("/profile").header("cookie", cookie).body(Body::empty()).expect("req");
        assert_eq!(app.raw(probe(planted)).await.status, StatusCode::SEE_OTHER, "the planted id is not signed in");
        assert_eq!(app.raw(probe(&fresh)).await.status, StatusCode::OK);

        // A live session the browser already had (say, the attacker's own, left in a shared
        // browser) is ended and replaced, not carried over.
        let theirs = session_pair(&app.raw(login_form("attacker@fixation.test", None, false)).await);
        let r = app.raw(login_form("victim@fixation.test", Some(&theirs), false)).await;
        let victims = session_pair(&r);
        assert_ne!(victims, theirs);
        assert_eq!(app.raw(probe(&theirs)).await.status, StatusCode::SEE_OTHER, "the old session ended");
        let page = app.raw(probe(&victims)).await;
        assert!(page.text.contains("victim@fixation.test"));
        // Each session has its own CSRF token.
        let t1 = csrf_of(&app.raw(probe(&fresh)).await.text);
        let t2 = csrf_of(&page.text);
        assert_ne!(t1, t2);
        assert_eq!(app.count("SELECT COUNT(*) FROM web_sessions WHERE revoked_at IS NULL").await, 2);
    }
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

fn limits(per_ip: u32, per_user: u32) -> impl AsyncFn(&mut AppState) {
    async move |s: &mut AppState| {
        s.limiter = Arc::new(Limiter::new(Limits { per_ip, per_user, auth_per_ip: 1000 }));
    }
}

#[tokio::test]
async fn rate_limits_per_address() {
    init_logging();
    for app in TestApp::all_with(&limits(6, 1000)).await {
        let s = app.register("ip@limits.test", "IP Co").await;
        for _ in 0..5 {
            assert_eq!(app.get(&s, "/api/v1/me").await.status, StatusCode::OK);
        }
        let before = app.snapshot().await;
        let r = app.post(&s, &s.path("leads"), json!({"last_name": "Throttled"})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
        assert!(is_problem(&r));
        assert_eq!(r.body["type"], "/problems/throttled");
        let wait: i64 = header(&r, "retry-after").and_then(|v| v.parse().ok()).expect("retry-after");
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(app.snapshot().await, before);
        // Pages get a page, with Retry-After too.
        let page = app.call(Method::GET, "/login", None, None, &[]).await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(header(&page, "content-type").is_some_and(|c| c.starts_with("text/html")));
        assert!(page.headers.get("retry-after").is_some());
        // Health checks and assets are never throttled.
        assert_eq!(app.call(Method::GET, "/healthz", None, None, &[]).await.status, StatusCode::OK);
        assert_eq!(app.call(Method::GET, "/assets/app.css", None, None, &[]).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn rate_limits_per_caller() {
    init_logging();
    for app in TestApp::all_with(&limits(1000, 4)).await {
        let a = app.register("a@limits.test", "A Co").await;
        let b = app.register("b@limits.test", "B Co").await;
        let pat = app.post(&a, "/api/v1/me/tokens", json!({"name": "own bucket"})).await.body["token"].as_str().expect("pat").to_string();
        for _ in 0..3 {
            assert_eq!(app.get(&a, "/api/v1/me").await.status, StatusCode::OK);
        }
        let r = app.get(&a, "/api/v1/me").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers.get("retry-after").is_some());
        // A new access token of the same user shares the user's bucket.
        let again =
            app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": "a@limits.test", "password": PASSWORD})), &[]).await;
        let r = app.call(Method::GET, "/api/v1/me", again.body["access_token"].as_str(), None, &[]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        // Other callers are not affected: another user, an API token, no credentials.
        assert_eq!(app.get(&b, "/api/v1/me").await.status, StatusCode::OK);
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&pat), None, &[]).await.status, StatusCode::OK);
        assert_eq!(app.call(Method::GET, "/api/openapi.json", None, None, &[]).await.status, StatusCode::OK);
        // Browser sessions have a bucket of their own as well.
        let web = app.web_sign_in("b@limits.test").await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(app.web_get(&web, "/profile", &[]).await.status.as_u16());
        }
        assert_eq!(statuses, vec![200, 200, 200, 429], "one page was used by the sign-in helper");
    }
}

// ---------------------------------------------------------------------------------------
// Access tokens: fixed algorithm, key ids, rotation
// ---------------------------------------------------------------------------------------

fn parts(token: &str) -> (Value, Value) {
    let p: Vec<&str> = token.split('.').collect();
    let h = serde_json::from_slice(&B64.decode(p[0]).expect("b64")).expect("header");
    let c = serde_json::from_slice(&B64.decode(p[1]).expect("b64")).expect("claims");
    (h, c)
}

fn forge(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = B64.encode(header.to_string());
    let c = B64.encode(claims.to_string());
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("key");
    m.update(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", B64.encode(m.finalize().into_bytes()))
}

fn forge512(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = B64.encode(header.to_string());
    let c = B64.encode(claims.to_string());
    let mut m = <Hmac<sha2::Sha512> as Mac>::new_from_slice(secret).expect("key");
    m.update(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", B64.encode(m.finalize().into_bytes()))
}

#[tokio::test]
async fn access_tokens_refuse_forgeries_and_survive_key_rotation() {
    init_logging();
    let stored = async |s: &mut AppState| {
        s.keys = corvid_server::jwt::Keys::stored(&s.db).await.expect("stored keys");
    };
    for app in TestApp::all_with(&stored).await {
        let s = app.register("keys@edge.test", "Keys Co").await;
        let other = app.register("other@edge.test", "Other Keys Co").await;
        let (h1, c1) = parts(&s.token);
        assert_eq!(h1["alg"], "HS256");
        let kid1 = h1["kid"].as_str().expect("kid").to_string();
        let (current, _) = corvid_store::auth::jwt_secrets(&app.db).await.expect("secrets");
        let secret = current.expect("stored secret");

        // Forgeries, even with the real secret, and expired tokens are all 401 and change nothing.
        let mut tampered = c1.clone();
        tampered["sub"] = json!(other.user_id);
        let mut late = c1.clone();
        late["exp"] = json!(chrono::Utc::now().timestamp() - 1);
        let mut foreign = c1.clone();
        foreign["iss"] = json!("someone-else");
        let p: Vec<&str> = s.token.split('.').collect();
        let forged = [
            format!("{}.{}.", B64.encode(json!({"alg": "none", "typ": "JWT", "kid": kid1}).to_string()), p[1]),
            format!("{}.{}.{}", B64.encode(json!({"alg": "none"}).to_string()), p[1], p[2]),
            forge512(&json!({"alg": "HS512", "kid": kid1}), &c1, secret.as_bytes()),
            forge(&json!({"alg": "HS256", "kid": "0123456789ab"}), &c1, secret.as_bytes()),
            forge(&json!({"alg": "HS256"}), &c1, secret.as_bytes()),
            forge(&json!({"alg": "HS256", "kid": kid1}), &c1, b"a guessed secret"),
            forge(&json!({"alg": "RS256", "kid": kid1}), &c1, secret.as_bytes()),
            format!("{}.{}.{}", p[0], B64.encode(tampered.to_string()), p[2]),
            forge(&json!({"alg": "HS256", "kid": kid1}), &late, secret.as_bytes()),
            forge(&json!({"alg": "HS256", "kid": kid1}), &foreign, secret.as_bytes()),
            format!("{}.{}", p[0], p[1]),
            format!("{}x", s.token),
        ];
        let before = app.snapshot().await;
        for t in &forged {
            let r = app.call(Method::POST, &s.path("leads"), Some(t), Some(json!({"last_name": "Forged"})), &[]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{t} {r:?}");
            assert!(is_problem(&r));
        }
        assert_eq!(app.snapshot().await, before);
        // The well-formed control: the same construction with the right everything works.
        let control = forge(&json!({"alg": "HS256", "typ": "JWT", "kid": kid1}), &c1, secret.as_bytes());
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&control), None, &[]).await.status, StatusCode::OK);

        // Rotation: new tokens get the new key; tokens of the previous key still work.
        corvid_store::auth::rotate_jwt_secret(&app.db, &corvid_server::jwt::new_secret()).await.expect("rotate");
        assert!(app.state.keys.reload(&app.db).await.expect("reload"));
        assert_eq!(app.get(&s, "/api/v1/me").await.status, StatusCode::OK, "previous key still accepted");
        let login =
            app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": "keys@edge.test", "password": PASSWORD})), &[]).await;
        let t2 = login.body["access_token"].as_str().expect("t2").to_string();
        let kid2 = parts(&t2).0["kid"].as_str().expect("kid").to_string();
        assert_ne!(kid1, kid2);
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&t2), None, &[]).await.status, StatusCode::OK);
        // Another node reading the same database agrees on the keys.
        let node2 = corvid_server::jwt::Keys::stored(&app.db).await.expect("node 2");
        assert_eq!(node2.current_kid(), kid2);
        assert!(node2.verify(&s.token, chrono::Utc::now().timestamp()).is_ok());

        // After the next rotation the first key is gone.
        corvid_store::auth::rotate_jwt_secret(&app.db, &corvid_server::jwt::new_secret()).await.expect("rotate");
        assert!(app.state.keys.reload(&app.db).await.expect("reload"));
        let r = app.get(&s, "/api/v1/me").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("UnknownKey")), "{r:?}");
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&t2), None, &[]).await.status, StatusCode::OK);
        // Refresh tokens are not JWTs: the session goes on with a token of the newest key.
        let r = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": s.refresh})), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(parts(r.body["access_token"].as_str().expect("access")).0["kid"], json!(app.state.keys.current_kid()));
    }
}

// ---------------------------------------------------------------------------------------
// System log
// ---------------------------------------------------------------------------------------

/// Waits for the log writer (it batches in the background).
async fn logs_until(app: &TestApp, s: &Session, query: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..100 {
        let r = app.get(s, &s.path(&format!("admin/logs?{query}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let data = r.body["data"].as_array().cloned().unwrap_or_default();
        if want(&data) {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the system log never showed what was expected for {query}");
}

/// Makes a request of `s`'s company and waits until its line is in the log: everything
/// logged before it has then been handled by the writer.
async fn settle(app: &TestApp, s: &Session) {
    let r = app.get(s, &s.path("leads")).await;
    let rid = header(&r, "x-request-id").expect("rid").to_string();
    logs_until(app, s, &format!("request_id={rid}"), |d| !d.is_empty()).await;
}

#[tokio::test]
async fn system_log_per_company_for_admins() {
    init_logging();
    let demo_mail = async |s: &mut AppState| {
        s.mailer = Arc::new(corvid_server::mail::Mailer { demo: true, ..Default::default() });
    };
    for app in TestApp::all_with(&demo_mail).await {
        let a = app.register("admin@logs.test", "Logs A").await;
        let rep = app.member(&a, "rep@logs.test", "sales_rep").await;
        let b = app.register("admin@logsb.test", "Logs B").await;

        let r = app.get(&a, &a.path("leads?q=findme")).await;
        assert_eq!(r.status, StatusCode::OK);
        let rid = header(&r, "x-request-id").expect("request id").to_string();
        let entries = logs_until(&app, &a, &format!("request_id={rid}"), |d| !d.is_empty()).await;
        let e = &entries[0];
        assert_eq!(e["request_id"], rid.as_str());
        assert_eq!(e["target"], "corvid::access");
        assert_eq!(e["level"], "debug");
        assert_eq!(e["fields"]["status"], 200);
        assert_eq!(e["fields"]["method"], "GET");
        assert_eq!(e["fields"]["route"], "/api/v1/companies/{company_id}/{object}");
        assert!(e["at"].is_string() && e["node"].is_string());
        assert!(e["fields"].get("company_id").is_none() && e["fields"].get("request_id").is_none());

        // Another company's Admin sees none of it, and cannot ask for it.
        let theirs = app.get(&b, &b.path(&format!("admin/logs?request_id={rid}"))).await;
        assert_eq!(theirs.status, StatusCode::OK);
        assert_eq!(theirs.body["data"], json!([]));
        let r = app.get(&b, &a.path("admin/logs")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let probe_rid = header(&r, "x-request-id").expect("rid").to_string();
        let r = app.get(&rep, &a.path("admin/logs")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.call(Method::GET, &a.path("admin/logs"), None, None, &[]).await.status, StatusCode::UNAUTHORIZED);
        let page = app.call(Method::GET, "/login", None, None, &[]).await;
        let page_rid = header(&page, "x-request-id").expect("rid").to_string();
        // The probe's line is not kept under company A: its membership was never proven.
        // (The writer keeps order, so once a later request of A shows, the probe was handled.)
        settle(&app, &a).await;
        let kept = format!("SELECT COUNT(*) FROM system_logs WHERE request_id = '{page_rid}'");
        assert_eq!(app.count(&kept).await, 0, "request lines without a company are not kept");
        assert_eq!(
            app.count(&format!("SELECT COUNT(*) FROM system_logs WHERE request_id = '{probe_rid}' AND company_id IS NOT NULL")).await,
            0
        );
        assert_eq!(app.get(&a, &a.path(&format!("admin/logs?request_id={probe_rid}"))).await.body["data"], json!([]));

        // Filters: level, text, time, paging.
        let all = logs_until(&app, &a, "level=debug&limit=200", |d| d.len() >= 3).await;
        assert!(all.iter().all(|e| e["request_id"].is_string()));
        let warn = app.get(&a, &a.path("admin/logs?level=warn")).await;
        assert_eq!(warn.status, StatusCode::OK);
        assert!(warn.body["data"].as_array().expect("data").iter().all(|e| e["level"] == "warn" || e["level"] == "error"));
        let text = logs_until(&app, &a, "q=ADMIN%2FLOGS", |d| !d.is_empty()).await;
        assert!(text.iter().all(|e| e["fields"].to_string().to_lowercase().contains("admin/logs")), "{text:?}");
        let none = app.get(&a, &a.path("admin/logs?q=%25_no_such_text_%25")).await;
        assert_eq!(none.body["data"], json!([]));
        let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let r = app.get(&a, &a.path(&format!("admin/logs?since={}", urlencode(&future)))).await;
        assert_eq!(r.body["data"], json!([]));
        let page1 = app.get(&a, &a.path("admin/logs?limit=1")).await;
        let cursor = page1.body["next_cursor"].as_str().expect("cursor").to_string();
        let page2 = app.get(&a, &a.path(&format!("admin/logs?limit=1&cursor={cursor}"))).await;
        assert_eq!(page2.status, StatusCode::OK);
        assert_ne!(page1.body["data"][0]["id"], page2.body["data"][0]["id"]);
        assert!(page1.body["data"][0]["at"].as_str() >= page2.body["data"][0]["at"].as_str());

        // Bad parameters are 400s naming the parameter.
        for (q, field) in [
            ("level=loud", "level"),
            ("since=yesterday", "since"),
            ("until=2025-13-01", "until"),
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=ten", "limit"),
            ("cursor=zzz", "cursor"),
            ("colour=red", "colour"),
        ] {
            let r = app.get(&a, &a.path(&format!("admin/logs?{q}"))).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q} {r:?}");
            assert!(errors_name(&r, field), "{q} {r:?}");
        }
        let r = app.get(&a, &a.path(&format!("admin/logs?q={}", "x".repeat(201)))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        // Demo mode writes reset links to the console only, never to the stored log.
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "admin@logs.test"})), &[]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        settle(&app, &a).await;
        let leaks = match app.backend {
            "postgres" => "SELECT COUNT(*) FROM system_logs WHERE message LIKE '%reset-password%' OR fields::text LIKE '%token=%'",
            _ => "SELECT COUNT(*) FROM system_logs WHERE message LIKE '%reset-password%' OR fields LIKE '%token=%'",
        };
        assert_eq!(app.count(leaks).await, 0);

        // The Settings page.
        let web = app.web_sign_in("admin@logs.test").await;
        let page = app.web_get(&web, &format!("/app/{}/settings/logs?request_id={rid}", a.company_id), &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("data-testid=\"logs-table\"") && page.text.contains(&rid));
        assert!(page.text.contains("System log"));
        let nav = app.web_get(&web, &format!("/app/{}/settings/members", a.company_id), &[]).await;
        assert!(nav.text.contains("/settings/logs"));
        let bad = app.web_get(&web, &format!("/app/{}/settings/logs?since=soon", a.company_id), &[]).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        let rep_web = app.web_sign_in("rep@logs.test").await;
        let r = app.web_get(&rep_web, &format!("/app/{}/settings/logs", a.company_id), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let b_web = app.web_sign_in("admin@logsb.test").await;
        let r = app.web_get(&b_web, &format!("/app/{}/settings/logs", a.company_id), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).expect("enc").trim_start_matches("x=").to_string()
}
