//! Browser check of the consent and privacy UI: the consent panel loaded into a lead's page,
//! recording a decision, erasing with the confirm dialog, the dashboard's data quality widget
//! and the Data quality settings page. Runs when CORVID_TEST_CHROMEDRIVER is set (like
//! `tests/browser.rs`).

mod common;

use common::{TestApp, PASSWORD};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

async fn start_driver() -> Option<Driver> {
    let path = std::env::var("CORVID_TEST_CHROMEDRIVER").ok().filter(|p| !p.is_empty())?;
    let port = free_port();
    let child =
        Command::new(path).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver starts");
    let driver = Driver { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(driver);
    panic!("chromedriver did not start");
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-extensions".into(),
        "--window-size=1280,1000".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let mut opts = json!({"args": args});
    if let Ok(bin) = std::env::var("CORVID_TEST_CHROMIUM") {
        if !bin.is_empty() {
            opts["binary"] = bin.into();
        }
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), opts);
    // Confirm dialogs stay open until the test answers them.
    caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("browser session")
}

async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = corvid_server::AppState::new(app.db.clone(), Some("browser-secret".into())).await.expect("state");
    let router = corvid_server::router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

async fn sign_in(c: &Client, url: &str, email: &str) {
    c.goto(&format!("{url}/login")).await.expect("login page");
    c.find(Locator::Id("email")).await.expect("email").send_keys(email).await.expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys(PASSWORD).await.expect("type");
    c.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    for _ in 0..100 {
        if c.current_url().await.is_ok_and(|u| !u.path().starts_with("/login")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sign-in did not leave the login page");
}

async fn wait_text(c: &Client, css: &str, want: &str) {
    for _ in 0..80 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.text().await.is_ok_and(|t| t.contains(want)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => "(not on the page)".into(),
    };
    panic!("{css} never showed {want:?}; it shows {shown:?}");
}

#[tokio::test]
async fn consent_panel_erasure_and_quality_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@privacy-browser.test", "Privacy Browser Co").await;
    let r = app
        .post(
            &s,
            &s.path("leads"),
            json!({"first_name": "Kavya", "last_name": "Menon", "email": "kavya@privacy-browser.test", "gdpr_consent": true, "gdpr_consent_source": "trade fair"}),
        )
        .await;
    let lid = r.body["id"].as_str().expect("lead id").to_string();
    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path()).await;
    sign_in(&c, &url, "owner@privacy-browser.test").await;
    let base = format!("{url}/app/{}", s.company_id);

    // The panel arrives through htmx and shows the consent state and the log.
    c.goto(&format!("{base}/leads/{lid}")).await.expect("lead page");
    wait_text(&c, "[data-testid=consent-state]", "Consent given").await;
    wait_text(&c, "[data-testid=consent-log]", "trade fair").await;

    // Record a withdrawal from the panel's form.
    c.find(Locator::Css("[data-testid=privacy-panel] details summary")).await.expect("summary").click().await.expect("open");
    c.find(Locator::Css("#consent-decision option[value=withdrawn]")).await.expect("option").click().await.expect("choose");
    c.find(Locator::Css("#consent-channel option[value=phone]")).await.expect("channel").click().await.expect("choose");
    c.find(Locator::Css("[data-testid=privacy-panel] form button[type=submit]")).await.expect("record").click().await.expect("click");
    wait_text(&c, ".alert", "Consent withdrawn recorded").await;
    wait_text(&c, "[data-testid=consent-state]", "No consent").await;

    // Erase: the confirm dialog first (dismissed: nothing happens), then accepted.
    c.find(Locator::Css("[data-testid=privacy-erase]")).await.expect("erase button").click().await.expect("click");
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.dismiss_alert().await.expect("a confirm dialog");
    let still = app.get(&s, &s.path(&format!("leads/{lid}"))).await;
    assert_eq!(still.body["email"], "kavya@privacy-browser.test", "dismissing the dialog erases nothing");
    c.find(Locator::Css("[data-testid=privacy-erase]")).await.expect("erase button").click().await.expect("click");
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.accept_alert().await.expect("a confirm dialog");
    wait_text(&c, ".alert", "Personal data erased").await;
    wait_text(&c, "h1", "Erased").await;
    let gone = app.get(&s, &s.path(&format!("leads/{lid}"))).await;
    assert!(gone.body["email"].is_null());

    // The dashboard widget and the settings page.
    c.goto(&format!("{base}/dashboard")).await.expect("dashboard");
    wait_text(&c, "[data-testid=quality-widget]", "1 leads").await;
    c.goto(&format!("{base}/settings/quality")).await.expect("settings");
    wait_text(&c, "[data-testid=policies]", "Do not disturb").await;
    let _ = c.close().await;
}
