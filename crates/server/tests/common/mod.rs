//! Test harness: the real router over a real database. Every test runs on a fresh SQLite
//! file, and also on PostgreSQL (a fresh schema) when CORVID_TEST_POSTGRES_URL is set.
#![allow(dead_code)]

pub mod browser;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use corvid_core::SqlType;
use corvid_server::AppState;
use corvid_store::{Db, Q};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::str::FromStr;
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    pub db: Db,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// Uploads of this app, removed with it.
    pub data: tempfile::TempDir,
    /// The app's state (shares keys, limiter and settings with the router).
    pub state: AppState,
}

pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
    pub text: String,
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text.chars().take(2000).collect::<String>())
    }
}

/// A signed-in user with a company of their own.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub refresh: String,
    pub user_id: String,
    pub company_id: String,
    pub email: String,
}

impl Session {
    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/companies/{}/{}", self.company_id, rest.trim_start_matches('/'))
    }
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(&async |_: &mut AppState| {}).await
    }

    /// A SQLite app whose state `configure` adjusts first (limits, mail, keys, hosts).
    pub async fn sqlite_with(configure: &impl AsyncFn(&mut AppState)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("corvid.db").display());
        let db = Db::connect(&url).await.expect("sqlite");
        Self::finish(db, "sqlite", Some(dir), configure).await
    }

    pub async fn postgres() -> Option<TestApp> {
        Self::postgres_with(&async |_: &mut AppState| {}).await
    }

    pub async fn postgres_with(configure: &impl AsyncFn(&mut AppState)) -> Option<TestApp> {
        let url = std::env::var("CORVID_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())?;
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let admin = Db::connect(&url).await.expect("postgres");
        admin.execute(&Q::new(format!("CREATE SCHEMA {schema}"))).await.expect("create schema");
        admin.close().await;
        let opts = sqlx::postgres::PgConnectOptions::from_str(&url).expect("url").options([("search_path", schema.as_str())]);
        let db = Db::connect_postgres(opts, 5).await.expect("postgres pool");
        Some(Self::finish(db, "postgres", None, configure).await)
    }

    async fn finish(db: Db, backend: &'static str, dir: Option<tempfile::TempDir>, configure: &impl AsyncFn(&mut AppState)) -> TestApp {
        // Server errors show up in the failing test's output.
        let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
        corvid_store::migrate::run(&db).await.expect("migrate");
        let mut state = AppState::new(db.clone(), Some("test-secret".into())).await.expect("state");
        let data = tempfile::tempdir().expect("data dir");
        state.data_dir = data.path().to_path_buf();
        configure(&mut state).await;
        let router = corvid_server::router(state.clone()).layer(MockConnectInfo(SocketAddr::from(([10, 1, 2, 3], 40000))));
        TestApp { router, db, backend, _dir: dir, data, state }
    }

    /// SQLite always; PostgreSQL too when configured.
    pub async fn all() -> Vec<TestApp> {
        Self::all_with(&async |_: &mut AppState| {}).await
    }

    /// Like `all`, with the app state adjusted by `configure` before the router is built.
    pub async fn all_with(configure: &impl AsyncFn(&mut AppState)) -> Vec<TestApp> {
        let mut v = vec![Self::sqlite_with(configure).await];
        if let Some(pg) = Self::postgres_with(configure).await {
            v.push(pg);
        }
        v
    }

    pub async fn raw(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, body, headers, text }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>, headers: &[(&str, &str)]) -> Resp {
        let mut b = Request::builder().method(method).uri(path).header("user-agent", "corvid-tests/1.0");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request");
        self.raw(req).await
    }

    pub async fn get(&self, s: &Session, path: &str) -> Resp {
        self.call(Method::GET, path, Some(&s.token), None, &[]).await
    }
    pub async fn post(&self, s: &Session, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&s.token), Some(body), &[]).await
    }
    pub async fn patch(&self, s: &Session, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&s.token), Some(body), &[]).await
    }
    pub async fn delete(&self, s: &Session, path: &str) -> Resp {
        self.call(Method::DELETE, path, Some(&s.token), None, &[]).await
    }

    pub async fn register(&self, email: &str, company: &str) -> Session {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"email": email, "password": PASSWORD, "name": "Test User", "company_name": company})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        Session {
            token: r.body["access_token"].as_str().expect("token").into(),
            refresh: r.body["refresh_token"].as_str().expect("refresh").into(),
            user_id: r.body["user"]["id"].as_str().expect("user").into(),
            company_id: r.body["companies"][0]["id"].as_str().expect("company").into(),
            email: email.into(),
        }
    }

    /// Adds a member with `role` to the admin's company and signs them in.
    pub async fn member(&self, admin: &Session, email: &str, role: &str) -> Session {
        let r =
            self.post(admin, &admin.path("members"), json!({"email": email, "name": "Member", "password": PASSWORD, "role": role})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let l = self.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": PASSWORD})), &[]).await;
        assert_eq!(l.status, StatusCode::OK, "{l:?}");
        Session {
            token: l.body["access_token"].as_str().expect("token").into(),
            refresh: l.body["refresh_token"].as_str().expect("refresh").into(),
            user_id: l.body["user"]["id"].as_str().expect("user").into(),
            company_id: admin.company_id.clone(),
            email: email.into(),
        }
    }

    /// Puts `member` under `manager` in the reporting lines (as the admin's reporting
    /// settings would), so the manager's team scope covers the member's records.
    pub async fn reports_to(&self, member: &Session, manager: &Session) {
        let q = Q::new("UPDATE memberships SET manager_id = $1 WHERE company_id = $2 AND user_id = $3")
            .bind(corvid_core::Value::Uuid(manager.user_id.parse().expect("manager id")))
            .bind(corvid_core::Value::Uuid(member.company_id.parse().expect("company id")))
            .bind(corvid_core::Value::Uuid(member.user_id.parse().expect("member id")));
        assert_eq!(self.db.execute(&q).await.expect("reporting line"), 1);
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.db.fetch_one(&Q::new(sql), &[SqlType::Int]).await.expect("count").and_then(|r| r.int(0)).unwrap_or(-1)
    }

    /// A fingerprint of everything a failed request must not change.
    pub async fn snapshot(&self) -> Vec<i64> {
        let mut out = Vec::new();
        for t in ["leads", "accounts", "contacts", "deals", "tasks", "activities", "audit_log", "custom_fields", "memberships", "users"] {
            out.push(self.count(&format!("SELECT COUNT(*) FROM {t}")).await);
        }
        for t in ["leads", "accounts", "contacts", "deals", "tasks", "activities"] {
            out.push(self.count(&format!("SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM {t}")).await);
        }
        out
    }
}

pub fn errors_name(r: &Resp, field: &str) -> bool {
    r.body["errors"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["field"].as_str().is_some_and(|f| f == field || f.ends_with(&format!(".{field}")))))
}

pub fn is_problem(r: &Resp) -> bool {
    r.headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/problem+json")
        && r.body["status"].as_u64() == Some(r.status.as_u16() as u64)
}

/// A browser-like session for handler tests of the web app: the session cookie and the
/// CSRF token the pages carry.
pub struct WebSession {
    pub cookie: String,
    pub csrf: String,
}

pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).map(|i| i + marker.len()).expect("csrf token in page");
    html[start..].split('"').next().expect("token").to_string()
}

impl TestApp {
    /// Signs in through the form, as a browser would, and picks up the CSRF token.
    pub async fn web_sign_in(&self, email: &str) -> WebSession {
        let body = serde_urlencoded::to_string([("email", email), ("password", PASSWORD)]).expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req");
        let r = self.raw(req).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let set = r.headers.get("set-cookie").and_then(|v| v.to_str().ok()).expect("cookie").to_string();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"), "{set}");
        let mut b = WebSession { cookie: set.split(';').next().expect("pair").to_string(), csrf: String::new() };
        b.csrf = csrf_of(&self.web_get(&b, "/profile", &[]).await.text);
        b
    }

    pub async fn web_get(&self, b: &WebSession, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder().uri(path).header("cookie", &b.cookie);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.raw(req.body(Body::empty()).expect("req")).await
    }

    /// Posts a form; `with_csrf` adds the session's token.
    pub async fn web_post(&self, b: &WebSession, path: &str, fields: &[(&str, &str)], with_csrf: bool) -> Resp {
        let mut pairs: Vec<(&str, &str)> = fields.to_vec();
        if with_csrf {
            pairs.push(("_csrf", &b.csrf));
        }
        let body = serde_urlencoded::to_string(&pairs).expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("cookie", &b.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("req");
        self.raw(req).await
    }
}
