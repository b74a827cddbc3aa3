//! Accounts: password reset by email (through a real SMTP conversation with a tiny server
//! run by the test), sessions and sign-out everywhere, TOTP two-step sign-in with recovery
//! codes, in the API and the web pages, on every backend.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use common::*;
use corvid_server::AppState;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------
// A tiny SMTP server: enough of RFC 5321 to accept a message and hand it to the test.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct Captured {
    ehlo: String,
    auth: Option<(String, String)>,
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
}

async fn smtp_server() -> (u16, mpsc::UnboundedReceiver<Captured>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                let mut c = Captured::default();
                let _ = w.write_all(b"220 mx.test ESMTP ready\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_string();
                    let upper = cmd.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        c.ehlo = cmd[4..].trim().to_string();
                        b"250-mx.test greets you\r\n250-SIZE 10000000\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME\r\n"
                    } else if let Some(b64) = cmd.strip_prefix("AUTH PLAIN ") {
                        let raw = base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default();
                        let parts: Vec<String> = raw.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).to_string()).collect();
                        if parts.len() == 3 {
                            c.auth = Some((parts[1].clone(), parts[2].clone()));
                        }
                        b"235 2.7.0 Authentication successful\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        c.mail_from = cmd[10..].trim().to_string();
                        b"250 2.1.0 Ok\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        c.rcpt_to.push(cmd[8..].trim().to_string());
                        b"250 2.1.5 Ok\r\n"
                    } else if upper == "DATA" {
                        let _ = w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await;
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            // Undo dot-stuffing.
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                        }
                        c.data = data;
                        let _ = tx.send(c.clone());
                        b"250 2.0.0 Ok: queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = w.write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        b"502 5.5.2 Error: command not recognized\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, rx)
}

fn qp_decode(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() + 1 {
            if let Ok(v) = u8::from_str_radix(joined.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

/// The reset link in a captured message's text part.
fn reset_link(data: &str) -> String {
    let text = qp_decode(data);
    let start = text.find("https://crm.example.test/reset-password?token=").expect("link in the message");
    text[start..].split(|c: char| c.is_whitespace() || c == '"' || c == '<').next().expect("link").to_string()
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).expect("token").to_string()
}

async fn next_mail(rx: &mut mpsc::UnboundedReceiver<Captured>) -> Captured {
    tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("a message within 10 s").expect("server alive")
}

fn with_smtp(port: u16) -> impl AsyncFn(&mut AppState) {
    async move |s: &mut AppState| {
        let smtp = corvid_server::mail::SmtpConfig::parse(&format!("smtp://relay%40crm.test:s3cret@127.0.0.1:{port}")).expect("url");
        s.mailer =
            Arc::new(corvid_server::mail::Mailer { smtp: Some(smtp), from: "Corvid CRM <no-reply@crm.example.test>".into(), demo: false });
        s.public_url = Some("https://crm.example.test".into());
    }
}

async fn login(app: &TestApp, email: &str, password: &str) -> Resp {
    app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": password})), &[]).await
}

async fn resets(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM password_resets").await
}

// ---------------------------------------------------------------------------------------
// Password reset
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn password_reset_by_email_end_to_end() {
    let (port, mut mail) = smtp_server().await;
    for app in TestApp::all_with(&with_smtp(port)).await {
        let s = app.register("reset.me@accounts.test", "Reset Co").await;
        let other_login = login(&app, "reset.me@accounts.test", PASSWORD).await;
        assert_eq!(other_login.status, StatusCode::OK);
        let web = app.web_sign_in("reset.me@accounts.test").await;
        let pat = app.post(&s, "/api/v1/me/tokens", json!({"name": "ci"})).await.body["token"].as_str().expect("pat").to_string();

        // Unknown address: the same 202 and nothing stored or sent.
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "nobody@accounts.test"})), &[]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let unknown_body = r.body.clone();
        assert_eq!(resets(&app).await, 0);

        // Malformed requests are 4xx naming the field and change nothing.
        let before = app.snapshot().await;
        for (body, field) in [
            (json!({"email": 5}), "email"),
            (json!({}), "email"),
            (json!({"email": format!("{}@x.test", "a".repeat(300))}), "email"),
            (json!({"email": "not an email"}), "email"),
            (json!({"email": "reset.me@accounts.test", "admin": true}), "admin"),
        ] {
            let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(body.clone()), &[]).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {r:?}");
            assert!(is_problem(&r) && errors_name(&r, field), "{body} {r:?}");
        }
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/password-reset")
            .header("content-type", "application/json")
            .body(Body::from("{\"email\":"))
            .expect("req");
        assert_eq!(app.raw(req).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.snapshot().await, before);
        assert_eq!(resets(&app).await, 0);

        // The real address (typed in another case) gets a mail, by SMTP with AUTH PLAIN.
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "  Reset.Me@Accounts.TEST "})), &[]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        assert_eq!(r.body, unknown_body, "the answer does not say whether the account exists");
        let m = next_mail(&mut mail).await;
        assert_eq!(m.auth, Some(("relay@crm.test".to_string(), "s3cret".to_string())));
        assert_eq!(m.ehlo, "crm.example.test");
        assert_eq!(m.mail_from, "<no-reply@crm.example.test>");
        assert_eq!(m.rcpt_to, vec!["<reset.me@accounts.test>".to_string()]);
        for header in [
            "\r\nTo: reset.me@accounts.test\r\n",
            "From: Corvid CRM <no-reply@crm.example.test>\r\n",
            "Subject: Set a new Corvid password\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/alternative; boundary=",
            "Content-Transfer-Encoding: quoted-printable",
            "Message-ID: <",
        ] {
            assert!(m.data.contains(header), "{header:?} in {}", m.data);
        }
        let link = reset_link(&m.data);
        let token = token_of(&link);
        assert!(token.starts_with("cvp_") && token.len() > 40, "{link}");
        // Stored hashed only.
        assert_eq!(resets(&app).await, 1);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM password_resets WHERE token_hash = '{token}'")).await, 0);

        // Bad tokens and bad passwords change nothing (and do not spend the token).
        let before = app.snapshot().await;
        for (body, status, field) in [
            (json!({"token": "cvp_wrong", "new_password": "a brand new password"}), StatusCode::BAD_REQUEST, "token"),
            (json!({"token": token, "new_password": "short"}), StatusCode::UNPROCESSABLE_ENTITY, "new_password"),
            (json!({"token": token, "new_password": "x".repeat(201)}), StatusCode::UNPROCESSABLE_ENTITY, "new_password"),
            (json!({"token": token}), StatusCode::UNPROCESSABLE_ENTITY, "new_password"),
            (json!({"token": 7, "new_password": "a brand new password"}), StatusCode::UNPROCESSABLE_ENTITY, "token"),
            (json!({"token": "x".repeat(10_000), "new_password": "a brand new password"}), StatusCode::BAD_REQUEST, "token"),
        ] {
            let r = app.call(Method::POST, "/api/v1/auth/password-reset/confirm", None, Some(body.clone()), &[]).await;
            assert_eq!(r.status, status, "{r:?}");
            assert!(is_problem(&r) && errors_name(&r, field), "{body} {r:?}");
        }
        assert_eq!(app.snapshot().await, before);
        assert_eq!(login(&app, "reset.me@accounts.test", PASSWORD).await.status, StatusCode::OK, "old password still works");

        // The web page shows a form for a live token.
        let page = app.raw(Request::builder().uri(format!("/reset-password?token={token}")).body(Body::empty()).expect("req")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("name=\"new_password\"") && page.text.contains(&token));

        // Spend it: the password changes and every session ends; API tokens are separate.
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/password-reset/confirm",
                None,
                Some(json!({"token": token, "new_password": "a brand new password"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(login(&app, "reset.me@accounts.test", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(login(&app, "reset.me@accounts.test", "a brand new password").await.status, StatusCode::OK);
        assert_eq!(app.get(&s, "/api/v1/me").await.status, StatusCode::UNAUTHORIZED, "the old access token's session ended");
        let r = app
            .call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": other_login.body["refresh_token"]})), &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = app.web_get(&web, "/profile", &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "the browser session ended");
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&pat), None, &[]).await.status, StatusCode::OK);

        // Single use.
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/password-reset/confirm",
                None,
                Some(json!({"token": token, "new_password": "another new password"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(errors_name(&r, "token"));
        let page = app.raw(Request::builder().uri(format!("/reset-password?token={token}")).body(Body::empty()).expect("req")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.text.contains("expired or was already used"));

        // An expired link does not work either (30 minutes).
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "reset.me@accounts.test"})), &[]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let late = token_of(&reset_link(&next_mail(&mut mail).await.data));
        let past = corvid_core::value::format_timestamp(&(chrono::Utc::now() - chrono::Duration::minutes(31)));
        let sql = match app.backend {
            "postgres" => format!("UPDATE password_resets SET expires_at = '{past}'::timestamptz WHERE used_at IS NULL"),
            _ => format!("UPDATE password_resets SET expires_at = '{past}' WHERE used_at IS NULL"),
        };
        app.db.execute(&corvid_store::Q::new(sql)).await.expect("age the link");
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/password-reset/confirm",
                None,
                Some(json!({"token": late, "new_password": "another new password"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(login(&app, "reset.me@accounts.test", "a brand new password").await.status, StatusCode::OK);

        // Three links an hour per account: more requests still answer 202 but send nothing.
        for _ in 0..3 {
            let r =
                app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "reset.me@accounts.test"})), &[]).await;
            assert_eq!(r.status, StatusCode::ACCEPTED);
        }
        assert_eq!(resets(&app).await, 3, "two links earlier this hour, one more allowed");
        let m = next_mail(&mut mail).await;
        assert!(reset_link(&m.data).contains("token=cvp_"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(mail.try_recv().is_err(), "no mail beyond the hourly allowance");

        // The owner sees it in their security log.
        let fresh = login(&app, "reset.me@accounts.test", "a brand new password").await;
        let token = fresh.body["access_token"].as_str().expect("token");
        let ev = app.call(Method::GET, "/api/v1/me/security-events", Some(token), None, &[]).await;
        let actions: Vec<&str> = ev.body["data"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"password_reset") && actions.contains(&"password_reset_requested"), "{actions:?}");
    }
}

#[tokio::test]
async fn password_reset_web_pages() {
    let (port, mut mail) = smtp_server().await;
    for app in TestApp::all_with(&with_smtp(port)).await {
        app.register("web.reset@accounts.test", "Web Reset Co").await;
        let login_page = app.raw(Request::builder().uri("/login").body(Body::empty()).expect("req")).await;
        assert!(login_page.text.contains("href=\"/forgot-password\""));
        let page = app.raw(Request::builder().uri("/forgot-password").body(Body::empty()).expect("req")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("action=\"/forgot-password\""));

        let post = |path: &'static str, fields: Vec<(&'static str, String)>| {
            let body = serde_urlencoded::to_string(&fields).expect("form");
            Request::builder()
                .method(Method::POST)
                .uri(path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("req")
        };
        let r = app.raw(post("/forgot-password", vec![("email", "not-an-email".into())])).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(resets(&app).await, 0);
        // A cross-site post is refused before anything happens.
        let mut cross = post("/forgot-password", vec![("email", "web.reset@accounts.test".into())]);
        cross.headers_mut().insert("origin", "https://evil.example".parse().expect("origin"));
        cross.headers_mut().insert("host", "crm.example.test".parse().expect("host"));
        assert_eq!(app.raw(cross).await.status, StatusCode::FORBIDDEN);
        assert_eq!(resets(&app).await, 0);

        let r = app.raw(post("/forgot-password", vec![("email", "web.reset@accounts.test".into())])).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("data-testid=\"reset-sent\""));
        let unknown = app.raw(post("/forgot-password", vec![("email", "ghost@accounts.test".into())])).await;
        assert_eq!(unknown.text.replace("ghost@accounts.test", ""), r.text.replace("web.reset@accounts.test", ""), "same page either way");

        let token = token_of(&reset_link(&next_mail(&mut mail).await.data));
        let page = app.raw(Request::builder().uri(format!("/reset-password?token={token}")).body(Body::empty()).expect("req")).await;
        assert_eq!(page.status, StatusCode::OK);
        let r = app
            .raw(post(
                "/reset-password",
                vec![("token", token.clone()), ("new_password", "mended password 1".into()), ("confirm", "mended password 2".into())],
            ))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("not the same"));
        let r = app
            .raw(post("/reset-password", vec![("token", token.clone()), ("new_password", "short".into()), ("confirm", "short".into())]))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(login(&app, "web.reset@accounts.test", PASSWORD).await.status, StatusCode::OK, "nothing changed yet");

        let r = app
            .raw(post(
                "/reset-password",
                vec![("token", token.clone()), ("new_password", "mended password 1".into()), ("confirm", "mended password 1".into())],
            ))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some("/login?reset=1"));
        let notice = app.raw(Request::builder().uri("/login?reset=1").body(Body::empty()).expect("req")).await;
        assert!(notice.text.contains("Your password was changed"));
        assert_eq!(login(&app, "web.reset@accounts.test", "mended password 1").await.status, StatusCode::OK);
        let again = app
            .raw(post(
                "/reset-password",
                vec![("token", token.clone()), ("new_password", "mended password 3".into()), ("confirm", "mended password 3".into())],
            ))
            .await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert_eq!(login(&app, "web.reset@accounts.test", "mended password 1").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn password_reset_without_mail_or_with_a_dead_server() {
    // No SMTP configured: the same answer, the link is stored but nothing is sent.
    for app in TestApp::all().await {
        app.register("nomail@accounts.test", "No Mail Co").await;
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "nomail@accounts.test"})), &[]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        assert_eq!(resets(&app).await, 1);
    }
    // An SMTP server that is down: the request still answers 202 at once (mail is sent in the
    // background) and the server logs the failure.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = dead.local_addr().expect("addr").port();
    drop(dead);
    for app in TestApp::all_with(&with_smtp(port)).await {
        app.register("deadmail@accounts.test", "Dead Mail Co").await;
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "deadmail@accounts.test"})), &[]).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
}

#[tokio::test]
async fn reset_requests_are_rate_limited_per_address() {
    let limits = async |s: &mut AppState| {
        s.limiter = Arc::new(corvid_server::ratelimit::Limiter::new(corvid_server::ratelimit::Limits {
            per_ip: 1000,
            per_user: 1000,
            auth_per_ip: 3,
        }));
    };
    for app in TestApp::all_with(&limits).await {
        app.register("limited@accounts.test", "Limited Co").await;
        for i in 0..3 {
            let r = app
                .call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": format!("x{i}@accounts.test")})), &[])
                .await;
            assert_eq!(r.status, StatusCode::ACCEPTED);
        }
        let r = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "limited@accounts.test"})), &[]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
        assert!(is_problem(&r));
        assert!(r.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok()).is_some_and(|s| s >= 1));
        assert_eq!(resets(&app).await, 0, "refused requests issue no link");
    }
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sessions_list_revoke_and_sign_out_everywhere() {
    for app in TestApp::all().await {
        let a = app.register("sess@accounts.test", "Sessions Co").await;
        let b = login(&app, "sess@accounts.test", PASSWORD).await;
        let b_token = b.body["access_token"].as_str().expect("b").to_string();
        let web = app.web_sign_in("sess@accounts.test").await;
        let stranger = app.register("stranger@accounts.test", "Stranger Co").await;

        for (m, path) in [(Method::GET, "/api/v1/auth/sessions"), (Method::POST, "/api/v1/auth/logout-all")] {
            let r = app.call(m, path, None, None, &[]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert!(is_problem(&r));
        }

        let list = app.get(&a, "/api/v1/auth/sessions").await;
        assert_eq!(list.status, StatusCode::OK, "{list:?}");
        let data = list.body["data"].as_array().expect("data").clone();
        assert_eq!(data.len(), 3, "{data:?}");
        assert_eq!(data.iter().filter(|s| s["current"] == true).count(), 1);
        assert_eq!(data.iter().filter(|s| s["kind"] == "web").count(), 1);
        for s in &data {
            assert_eq!(s["ip"], "10.1.2.3");
            assert!(s["created_at"].is_string() && s["last_used_at"].is_string());
        }
        assert!(data.iter().any(|s| s["user_agent"] == "corvid-tests/1.0"));
        assert!(!list.text.contains(&a.refresh) && !list.text.contains(&web.cookie));
        let current = data.iter().find(|s| s["current"] == true).expect("current");
        assert_eq!(current["kind"], "api");
        let b_id = data.iter().find(|s| s["kind"] == "api" && s["current"] == false).expect("b")["id"].as_str().expect("id").to_string();
        let web_id = data.iter().find(|s| s["kind"] == "web").expect("web")["id"].as_str().expect("id").to_string();

        // Another person's session, unknown ids and junk are 404s that change nothing.
        let theirs = app.get(&stranger, "/api/v1/auth/sessions").await.body["data"][0]["id"].as_str().expect("id").to_string();
        for bad in [theirs.as_str(), "0190f7a2-c3b4-7c0e-9d1f-2a3b4c5d6e7f", "not-a-session", &"f".repeat(64), "%2e%2e"] {
            let r = app.delete(&a, &format!("/api/v1/auth/sessions/{bad}")).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad} {r:?}");
        }
        let r = app.delete(&a, &format!("/api/v1/auth/sessions/{}", "a".repeat(65))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.get(&stranger, "/api/v1/me").await.status, StatusCode::OK);
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&b_token), None, &[]).await.status, StatusCode::OK);

        // Revoke B: its access token and refresh token stop working at once.
        let r = app.delete(&a, &format!("/api/v1/auth/sessions/{b_id}")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&b_token), None, &[]).await.status, StatusCode::UNAUTHORIZED);
        let r = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": b.body["refresh_token"]})), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.delete(&a, &format!("/api/v1/auth/sessions/{b_id}")).await.status, StatusCode::NOT_FOUND, "already ended");

        // Revoke the browser from the API.
        assert_eq!(app.web_get(&web, "/profile", &[]).await.status, StatusCode::OK);
        assert_eq!(app.delete(&a, &format!("/api/v1/auth/sessions/{web_id}")).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.web_get(&web, "/profile", &[]).await.status, StatusCode::SEE_OTHER);

        // Sign out everywhere ends this session too; personal API tokens stay.
        let pat = app.post(&a, "/api/v1/me/tokens", json!({"name": "stays"})).await.body["token"].as_str().expect("pat").to_string();
        let c = login(&app, "sess@accounts.test", PASSWORD).await;
        let r = app.call(Method::POST, "/api/v1/auth/logout-all", Some(&a.token), None, &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get(&a, "/api/v1/me").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.call(Method::GET, "/api/v1/me", c.body["access_token"].as_str(), None, &[]).await.status, StatusCode::UNAUTHORIZED);
        let pat_sessions = app.call(Method::GET, "/api/v1/auth/sessions", Some(&pat), None, &[]).await;
        assert_eq!(pat_sessions.status, StatusCode::OK);
        assert_eq!(pat_sessions.body["data"].as_array().map(Vec::len), Some(0));
        assert_eq!(app.get(&stranger, "/api/v1/me").await.status, StatusCode::OK, "other people are not affected");

        let ev = app.call(Method::GET, "/api/v1/me/security-events", Some(&pat), None, &[]).await;
        let actions: Vec<&str> = ev.body["data"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"signed_out_everywhere") && actions.contains(&"session_revoked"), "{actions:?}");
    }
}

#[tokio::test]
async fn security_page_lists_and_revokes_sessions() {
    for app in TestApp::all().await {
        app.register("page@accounts.test", "Page Co").await;
        let one = app.web_sign_in("page@accounts.test").await;
        let two = app.web_sign_in("page@accounts.test").await;
        let profile = app.web_get(&one, "/profile", &[]).await;
        assert!(profile.text.contains("href=\"/profile/security\""));
        let page = app.web_get(&one, "/profile/security", &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("data-testid=\"sessions-table\"") && page.text.contains("This browser"));
        assert_eq!(page.text.matches("This browser").count(), 1);
        assert!(page.text.contains("Sign out everywhere"));
        // Revoke buttons for the other browser and the API sign-in of the registration, not
        // for this browser.
        let marker = "action=\"/profile/sessions/";
        let all: Vec<&str> = page.text.match_indices(marker).filter_map(|(i, _)| page.text[i + marker.len()..].split('"').next()).collect();
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all.contains(&"revoke-all"));
        let ids: Vec<&str> = all.iter().filter_map(|a| a.strip_suffix("/revoke")).filter(|id| id.len() == 64).collect();
        assert_eq!(ids.len(), 1, "one other browser: {all:?}");
        assert_eq!(all.iter().filter(|a| a.len() == 36 + "/revoke".len()).count(), 1, "one API session: {all:?}");

        // Without the CSRF token nothing happens.
        let r = app.web_post(&one, &format!("/profile/sessions/{}/revoke", ids[0]), &[], false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.web_get(&two, "/profile", &[]).await.status, StatusCode::OK);
        // Another user's browser cannot revoke it either.
        app.register("other@accounts.test", "Other Co").await;
        let other = app.web_sign_in("other@accounts.test").await;
        let r = app.web_post(&other, &format!("/profile/sessions/{}/revoke", ids[0]), &[], true).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.web_get(&two, "/profile", &[]).await.status, StatusCode::OK);

        let r = app.web_post(&one, &format!("/profile/sessions/{}/revoke", ids[0]), &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(app.web_get(&two, "/profile", &[]).await.status, StatusCode::SEE_OTHER, "the other browser is signed out");
        assert_eq!(app.web_get(&one, "/profile", &[]).await.status, StatusCode::OK);

        let three = app.web_sign_in("page@accounts.test").await;
        let r = app.web_post(&one, "/profile/sessions/revoke-all", &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some("/login"));
        assert_eq!(app.web_get(&one, "/profile", &[]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(app.web_get(&three, "/profile", &[]).await.status, StatusCode::SEE_OTHER);
        assert_eq!(app.web_get(&other, "/profile", &[]).await.status, StatusCode::OK);
    }
}

// ---------------------------------------------------------------------------------------
// TOTP two-step sign-in
// ---------------------------------------------------------------------------------------

fn code(secret: &str, steps_from_now: i64) -> String {
    let key = corvid_server::totp::base32_decode(secret).expect("secret");
    corvid_server::totp::code_at(&key, corvid_server::totp::step_of(chrono::Utc::now().timestamp()) + steps_from_now)
}

/// A six-digit code that matches no step in the window.
fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = (-2..=2).map(|d| code(secret, d)).collect();
    (0..1000).map(|n| format!("{:06}", 123_457 + n * 7)).find(|c| !near.contains(c)).expect("a wrong code")
}

async fn mfa_login(app: &TestApp, body: Value) -> Resp {
    app.call(Method::POST, "/api/v1/auth/login/mfa", None, Some(body), &[]).await
}

#[tokio::test]
async fn totp_enrol_sign_in_recovery_codes_and_disable() {
    for app in TestApp::all().await {
        let s = app.register("totp@accounts.test", "TOTP Co").await;
        let st = app.get(&s, "/api/v1/auth/mfa").await;
        assert_eq!(st.body["totp_enabled"], false);
        assert_eq!(app.call(Method::GET, "/api/v1/auth/mfa", None, None, &[]).await.status, StatusCode::UNAUTHORIZED);

        // Confirming before enrolling is a conflict; so is disabling when off.
        assert_eq!(app.post(&s, "/api/v1/auth/mfa/totp/confirm", json!({"code": "123456"})).await.status, StatusCode::CONFLICT);
        let r = app.post(&s, "/api/v1/auth/mfa/totp/disable", json!({"password": PASSWORD, "code": "123456"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT);

        let e = app.post(&s, "/api/v1/auth/mfa/totp", json!({})).await;
        assert_eq!(e.status, StatusCode::CREATED, "{e:?}");
        let secret = e.body["secret"].as_str().expect("secret").to_string();
        let uri = e.body["otpauth_uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/Corvid:totp%40accounts.test?secret=") && uri.contains(&secret) && uri.contains("period=30")
        );
        assert_eq!(corvid_server::totp::base32_decode(&secret).map(|k| k.len()), Some(20));

        // Wrong, malformed and missing codes: named, and two-factor stays off.
        for (body, field) in [
            (json!({"code": wrong_code(&secret)}), "code"),
            (json!({"code": 123456}), "code"),
            (json!({}), "code"),
            (json!({"code": "12345a"}), "code"),
        ] {
            let r = app.post(&s, "/api/v1/auth/mfa/totp/confirm", body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {r:?}");
            assert!(errors_name(&r, field));
        }
        assert_eq!(app.get(&s, "/api/v1/auth/mfa").await.body["totp_enabled"], false);
        assert_eq!(login(&app, "totp@accounts.test", PASSWORD).await.body["mfa_required"], Value::Null);

        let c = app.post(&s, "/api/v1/auth/mfa/totp/confirm", json!({"code": code(&secret, 0)})).await;
        assert_eq!(c.status, StatusCode::OK, "{c:?}");
        let codes: Vec<String> =
            c.body["recovery_codes"].as_array().expect("codes").iter().map(|v| v.as_str().expect("code").to_string()).collect();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<std::collections::HashSet<_>>().len(), 10);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{}'", codes[0])).await, 0, "stored hashed");
        assert_eq!(app.post(&s, "/api/v1/auth/mfa/totp", json!({})).await.status, StatusCode::CONFLICT);
        let st = app.get(&s, "/api/v1/auth/mfa").await;
        assert_eq!((st.body["totp_enabled"].clone(), st.body["recovery_codes_left"].clone()), (json!(true), json!(10)));

        // The password alone now gives a challenge, not tokens.
        let first = login(&app, "totp@accounts.test", PASSWORD).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.body["mfa_required"], true);
        assert!(first.body.get("access_token").is_none() && first.body.get("refresh_token").is_none());
        let mfa_token = first.body["mfa_token"].as_str().expect("mfa token").to_string();
        assert_eq!(login(&app, "totp@accounts.test", "wrong password!!").await.status, StatusCode::UNAUTHORIZED);

        // Bad shapes.
        for body in [
            json!({"mfa_token": mfa_token}),
            json!({"mfa_token": mfa_token, "code": code(&secret, 1), "recovery_code": codes[0]}),
            json!({"mfa_token": mfa_token, "code": 5}),
            json!({"code": code(&secret, 1)}),
        ] {
            let r = mfa_login(&app, body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {r:?}");
        }
        // The code used to confirm cannot be replayed; a wrong code fails; the next step works.
        let r = mfa_login(&app, json!({"mfa_token": mfa_token, "code": code(&secret, 0)})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "replayed code {r:?}");
        let r = mfa_login(&app, json!({"mfa_token": "cvm_forged", "code": code(&secret, 1)})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = mfa_login(&app, json!({"mfa_token": mfa_token, "code": code(&secret, 1)})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body["access_token"].is_string() && r.body["refresh_token"].is_string());
        let r = mfa_login(&app, json!({"mfa_token": mfa_token, "code": code(&secret, 1)})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a challenge is spent once");

        // A recovery code works, typed loosely.
        let t = login(&app, "totp@accounts.test", PASSWORD).await.body["mfa_token"].as_str().expect("t").to_string();
        let loose = format!(" {} ", codes[0].to_uppercase().replace('-', " "));
        let r = mfa_login(&app, json!({"mfa_token": t, "recovery_code": loose})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        // Five wrong codes end a challenge, and the account then waits before the next try.
        let t = login(&app, "totp@accounts.test", PASSWORD).await.body["mfa_token"].as_str().expect("t").to_string();
        for _ in 0..5 {
            let r = mfa_login(&app, json!({"mfa_token": t, "code": wrong_code(&secret)})).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
        }
        let r = mfa_login(&app, json!({"mfa_token": t, "recovery_code": codes[1]})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the challenge is used up even for a good code");
        let t2 = login(&app, "totp@accounts.test", PASSWORD).await.body["mfa_token"].as_str().expect("t").to_string();
        let r = mfa_login(&app, json!({"mfa_token": t2, "recovery_code": codes[1]})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
        assert!(r.headers.get("retry-after").is_some());
        assert_eq!(app.get(&s, "/api/v1/auth/mfa").await.body["recovery_codes_left"], 9, "a locked attempt spends nothing");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = mfa_login(&app, json!({"mfa_token": t2, "recovery_code": codes[1]})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        // Each recovery code works once.
        let t = login(&app, "totp@accounts.test", PASSWORD).await.body["mfa_token"].as_str().expect("t").to_string();
        assert_eq!(mfa_login(&app, json!({"mfa_token": t, "recovery_code": codes[0]})).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get(&s, "/api/v1/auth/mfa").await.body["recovery_codes_left"], 8);

        // New recovery codes need the password and a code; the old ones stop working.
        let r = app.post(&s, "/api/v1/auth/mfa/recovery-codes", json!({"password": "not my password", "recovery_code": codes[2]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "password"));
        let r = app.post(&s, "/api/v1/auth/mfa/recovery-codes", json!({"password": PASSWORD, "recovery_code": codes[2]})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let new_codes: Vec<String> =
            r.body["recovery_codes"].as_array().expect("codes").iter().map(|v| v.as_str().expect("c").to_string()).collect();
        assert_eq!(app.get(&s, "/api/v1/auth/mfa").await.body["recovery_codes_left"], 10);
        let t = login(&app, "totp@accounts.test", PASSWORD).await.body["mfa_token"].as_str().expect("t").to_string();
        assert_eq!(mfa_login(&app, json!({"mfa_token": t, "recovery_code": codes[3]})).await.status, StatusCode::UNAUTHORIZED);

        // Turning it off needs the password and a code.
        let before = app.count("SELECT COUNT(*) FROM user_totp").await;
        for (body, field) in [
            (json!({"password": "not my password", "recovery_code": new_codes[0]}), "password"),
            (json!({"password": PASSWORD, "code": wrong_code(&secret)}), "code"),
            (json!({"password": PASSWORD, "recovery_code": "aaaa-bbbb-cccc-dddd"}), "recovery_code"),
            (json!({"code": code(&secret, 0)}), "password"),
        ] {
            let r = app.post(&s, "/api/v1/auth/mfa/totp/disable", body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} {r:?}");
            assert!(errors_name(&r, field), "{body} {r:?}");
        }
        assert_eq!(app.count("SELECT COUNT(*) FROM user_totp").await, before, "still on");
        assert_eq!(app.get(&s, "/api/v1/auth/mfa").await.body["recovery_codes_left"], 10, "the refused attempt kept the code");
        let r = app.post(&s, "/api/v1/auth/mfa/totp/disable", json!({"password": PASSWORD, "recovery_code": new_codes[1]})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
        assert_eq!(app.get(&s, "/api/v1/auth/mfa").await.body["totp_enabled"], false);
        assert_eq!(app.count("SELECT COUNT(*) FROM recovery_codes").await, 0);
        let r = login(&app, "totp@accounts.test", PASSWORD).await;
        assert!(r.body["access_token"].is_string(), "{r:?}");

        let ev = app.get(&s, "/api/v1/me/security-events").await;
        let actions: Vec<&str> = ev.body["data"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
        for a in ["two_factor_enabled", "two_factor_disabled", "second_factor_failed", "recovery_codes_replaced", "signed_in"] {
            assert!(actions.contains(&a), "{a} in {actions:?}");
        }
    }
}

fn testid(html: &str, id: &str) -> String {
    let marker = format!("data-testid=\"{id}\">");
    let start = html.find(&marker).map(|i| i + marker.len()).expect("marker");
    html[start..].split('<').next().expect("text").to_string()
}

#[tokio::test]
async fn totp_in_the_web_app() {
    for app in TestApp::all().await {
        app.register("webtotp@accounts.test", "Web TOTP Co").await;
        let b = app.web_sign_in("webtotp@accounts.test").await;
        let page = app.web_get(&b, "/profile/security", &[]).await;
        assert!(page.text.contains("Set up two-step sign-in"));
        let r = app.web_post(&b, "/profile/mfa/enroll", &[], true).await;
        assert_eq!(r.status, StatusCode::OK);
        let secret = testid(&r.text, "totp-secret");
        assert!(testid(&r.text, "totp-uri").contains(&secret));
        let r = app.web_post(&b, "/profile/mfa/confirm", &[("code", &wrong_code(&secret))], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(testid(&r.text, "totp-secret"), secret, "the same key stays on screen");
        let r = app.web_post(&b, "/profile/mfa/confirm", &[("code", &code(&secret, 0))], true).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("data-testid=\"recovery-codes\""));
        let codes: Vec<String> =
            r.text.match_indices("<li><code>").map(|(i, _)| r.text[i + 10..].split('<').next().unwrap_or("").to_string()).collect();
        assert_eq!(codes.len(), 10);

        // Sign in: password, then the code page.
        let form =
            serde_urlencoded::to_string([("email", "webtotp@accounts.test"), ("password", PASSWORD), ("next", "/profile")]).expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .expect("req");
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some("/login/mfa?next=%2Fprofile"));
        let set: Vec<String> = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
        assert_eq!(set.len(), 1, "no session yet: {set:?}");
        assert!(set[0].starts_with("corvid_mfa=cvm_") && set[0].contains("HttpOnly") && set[0].contains("Path=/login"));
        let mfa_cookie = set[0].split(';').next().expect("pair").to_string();

        let get =
            |cookie: &str| Request::builder().uri("/login/mfa?next=%2Fprofile").header("cookie", cookie).body(Body::empty()).expect("req");
        let page = app.raw(get(&mfa_cookie)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("name=\"code\""));
        let page = app.raw(get("corvid_mfa=cvm_forged")).await;
        assert!(page.text.contains("expired"));

        let post = |cookie: &str, code: &str| {
            let body = serde_urlencoded::to_string([("code", code), ("next", "/profile")]).expect("form");
            Request::builder()
                .method(Method::POST)
                .uri("/login/mfa")
                .header("cookie", cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("req")
        };
        let r = app.raw(post(&mfa_cookie, &wrong_code(&secret))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.text.contains("not right"));
        assert!(r.headers.get("set-cookie").is_none());
        let r = app.raw(post("corvid_mfa=cvm_forged", &codes[0])).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = app.raw(post(&mfa_cookie, &codes[0])).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some("/profile"));
        let cookies: Vec<String> = r.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
        let session =
            cookies.iter().find(|c| c.starts_with("corvid_session=")).expect("session cookie").split(';').next().expect("pair").to_string();
        assert!(cookies.iter().any(|c| c.starts_with("corvid_mfa=;") && c.contains("Max-Age=0")));
        let mut signed = WebSession { cookie: session, csrf: String::new() };
        let r = app.web_get(&signed, "/profile", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        signed.csrf = csrf_of(&r.text);

        // Turning it off from the page needs the password and a code.
        let r = app.web_post(&signed, "/profile/mfa/disable", &[("password", "not my password"), ("code", &codes[1])], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(app.web_get(&signed, "/profile/security", &[]).await.text.contains("badge green\">On"));
        let r = app.web_post(&signed, "/profile/mfa/disable", &[("password", PASSWORD), ("code", &codes[1])], true).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.text.contains("Two-step sign-in is off"));
        assert_eq!(app.count("SELECT COUNT(*) FROM user_totp").await, 0);
    }
}
