//! Duplicate review in a real browser: open a flagged lead, compare it with its duplicate,
//! pick a field from the other record, merge, and land on the survivor with the picked value
//! and the other lead's activity. Runs when CORVID_TEST_CHROMEDRIVER (and optionally
//! CORVID_TEST_CHROMIUM) are set; screenshots land in `target/screenshots/`.

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

async fn start_driver() -> Option<Driver> {
    let path = std::env::var("CORVID_TEST_CHROMEDRIVER").ok().filter(|p| !p.is_empty())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
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
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-extensions".into(),
        "--window-size=1280,1000".into(),
        format!("--user-data-dir={}", profile.display()),
        "--lang=en-GB".into(),
    ];
    let mut opts = json!({"args": args});
    if let Ok(bin) = std::env::var("CORVID_TEST_CHROMIUM") {
        if !bin.is_empty() {
            opts["binary"] = bin.into();
        }
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), opts);
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

async fn shot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
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
    let html = c.source().await.unwrap_or_default();
    panic!("{css} never showed {want:?}; page: {}", html.chars().take(3000).collect::<String>());
}

#[tokio::test]
async fn review_and_merge_a_flagged_lead_in_a_browser() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@browser-dedupe.test", "Dedupe Browser Co").await;
    let a = app
        .post(
            &s,
            &s.path("leads"),
            json!({"first_name": "Ritu", "last_name": "Kapoor", "email": "ritu@kapoor.example", "job_title": "Buyer"}),
        )
        .await
        .body;
    let b = app
        .post(
            &s,
            &s.path("leads"),
            json!({"first_name": "Ritu", "last_name": "Kapoor", "email": "ritu@kapoor.example", "job_title": "Head of Purchasing"}),
        )
        .await
        .body;
    assert_eq!(b["is_duplicate"], true, "{b}");
    let (a_id, b_id) = (a["id"].as_str().expect("a").to_string(), b["id"].as_str().expect("b").to_string());
    let act = app.post(&s, &s.path("activities"), json!({"activity_type": "meeting", "title": "Demo with Ritu", "lead_id": b_id})).await;
    assert_eq!(act.status.as_u16(), 201, "{act:?}");

    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path()).await;
    c.goto(&format!("{url}/login")).await.expect("login");
    c.find(Locator::Id("email")).await.expect("email").send_keys("owner@browser-dedupe.test").await.expect("type");
    c.find(Locator::Id("password")).await.expect("password").send_keys(PASSWORD).await.expect("type");
    c.find(Locator::Css("button[type=submit]")).await.expect("submit").click().await.expect("click");
    for _ in 0..100 {
        if c.current_url().await.is_ok_and(|u| !u.path().starts_with("/login")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let base = format!("{url}/app/{}", s.company_id);

    // The flagged lead shows its duplicate in the panel (loaded by htmx).
    c.goto(&format!("{base}/leads/{b_id}")).await.expect("lead page");
    wait_text(&c, "#duplicates-panel", a["number"].as_str().expect("number")).await;
    shot(&c, "dedupe-panel").await;
    c.find(Locator::Css("#duplicates-panel a[data-testid=compare]")).await.expect("compare link").click().await.expect("click");

    // Side by side: keep A (the original), but take B's job title.
    wait_text(&c, "h1", "Compare 2 leads").await;
    wait_text(&c, "[data-testid=compare-table]", "Head of Purchasing").await;
    let survivor = c.find(Locator::Id(&format!("survivor-{a_id}"))).await.expect("survivor radio");
    assert_eq!(survivor.prop("checked").await.expect("checked").as_deref(), Some("true"), "the older lead survives by default");
    c.find(Locator::Id(&format!("pick-job_title-{b_id}"))).await.expect("job title radio").click().await.expect("pick");
    shot(&c, "dedupe-review").await;
    c.find(Locator::Id("merge-button")).await.expect("merge").click().await.expect("click");

    // The survivor has the picked value and the merged lead's activity.
    for _ in 0..100 {
        if c.current_url().await.is_ok_and(|u| u.path().ends_with(&a_id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.current_url().await.expect("url").path().ends_with(&a_id), "landed on the survivor");
    wait_text(&c, ".alert.ok", "Merged 1 lead").await;
    wait_text(&c, "#fv-job_title .value", "Head of Purchasing").await;
    wait_text(&c, "#timeline", "Demo with Ritu").await;
    wait_text(&c, "#duplicates-panel", "No likely duplicates").await;
    shot(&c, "dedupe-merged").await;

    // The merged lead's old address leads to the survivor.
    c.goto(&format!("{base}/leads/{b_id}")).await.expect("old page");
    wait_text(&c, ".alert.ok", "was merged into this lead").await;
    assert!(c.current_url().await.expect("url").path().ends_with(&a_id));
    let api = app.get(&s, &s.path(&format!("leads/{a_id}"))).await;
    assert_eq!(api.body["job_title"], "Head of Purchasing");
    c.close().await.expect("close");
}
