//! The import wizard in headless Chromium (runs when CORVID_TEST_CHROMEDRIVER is set, as
//! `.ci/run` does): upload a small CSV, check the suggested mapping, preview, start, watch
//! the progress page poll its way to 100 %, read the result and find the leads in the list.
//! Screenshots land in `target/screenshots/`.

mod common;

use common::{TestApp, PASSWORD};
use corvid_server::jobs::{Registry, Runtime};
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

async fn browser(driver: &Driver, profile: &std::path::Path, downloads: &std::path::Path) -> Client {
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-extensions".into(),
        "--window-size=1280,1000".into(),
        format!("--user-data-dir={}", profile.display()),
        "--lang=en-GB".into(),
    ];
    let mut opts = json!({"args": args, "prefs": {"download.default_directory": downloads.display().to_string()}});
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

/// Serves the app on a loopback port, keeping uploads in the test's data directory.
async fn serve(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut state = corvid_server::AppState::new(app.db.clone(), Some("browser-secret".into())).await.expect("state");
    state.data_dir = app.data.path().to_path_buf();
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
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.text().await.is_ok_and(|t| t.contains(want)) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => "(missing)".into(),
    };
    panic!("{css} never showed {want:?}; it shows {got:?}");
}

async fn value_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css}")).prop("value").await.expect("value").unwrap_or_default()
}

#[tokio::test]
async fn import_a_csv_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@browser-import.test", "Browser Import Co").await;
    let base = format!("{url}/app/{}", s.company_id);
    let files = tempfile::tempdir().expect("files");
    let csv = files.path().join("fair-leads.csv");
    std::fs::write(
        &csv,
        "First Name,Surname,E-mail,Mobile,Lead Source\n\
         Kavya,Iyer,kavya@example.in,9876511111,Website form\n\
         Rohan,Mehta,rohan@example.in,9876522222,Referral\n\
         Broken,Row,not-an-email,1,Website form\n",
    )
    .expect("csv");

    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path(), files.path()).await;
    sign_in(&c, &url, "owner@browser-import.test").await;

    // From the leads list's toolbar to the upload form.
    c.goto(&format!("{base}/leads")).await.expect("leads");
    c.find(Locator::Css("[data-testid=import-link]")).await.expect("import link").click().await.expect("click");
    c.wait().for_element(Locator::Css("form[data-testid=import-upload]")).await.expect("upload form");
    assert_eq!(value_of(&c, "#imp-object").await, "leads");
    c.find(Locator::Id("imp-file")).await.expect("file input").send_keys(&csv.display().to_string()).await.expect("choose file");
    shot(&c, "import-upload").await;
    c.find(Locator::Css("form[data-testid=import-upload] button[type=submit]")).await.expect("upload").click().await.expect("click");

    // The suggested mapping.
    c.wait().for_element(Locator::Css("[data-testid=mapping-table]")).await.expect("mapping page");
    assert_eq!(value_of(&c, "#col0").await, "first_name");
    assert_eq!(value_of(&c, "#col1").await, "last_name");
    assert_eq!(value_of(&c, "#col2").await, "email");
    assert_eq!(value_of(&c, "#col3").await, "phone");
    assert_eq!(value_of(&c, "#col4").await, "source");
    shot(&c, "import-mapping").await;
    c.find(Locator::Css("button[name=action][value=preview]")).await.expect("preview").click().await.expect("click");

    // The preview shows the bad row's problem beside its cell.
    c.wait().for_element(Locator::Css("[data-testid=preview-table]")).await.expect("preview page");
    wait_text(&c, "[data-testid=preview-summary]", "1 of the first 3 rows have problems").await;
    wait_text(&c, "tr[data-row='4'] td.cell-invalid", "is not a valid email address").await;
    shot(&c, "import-preview").await;
    c.find(Locator::Css("input[name=duplicate_policy][value=skip]")).await.expect("skip").click().await.expect("click");
    c.find(Locator::Css("#default-campaign")).await.expect("campaign").send_keys("Mumbai fair").await.expect("type");
    c.find(Locator::Css("#options-form button[type=submit]")).await.expect("start").click().await.expect("click");

    // Queued: no worker yet, the page polls. Then a worker starts and the page reaches 100 %.
    c.wait().for_element(Locator::Css("#import-status[data-polling]")).await.expect("polling progress page");
    wait_text(&c, "[data-testid=import-state]", "Queued").await;
    shot(&c, "import-queued").await;
    let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
    wait_text(&c, "[data-testid=import-percent]", "100 %").await;
    wait_text(&c, "[data-testid=import-state]", "Finished with errors").await;
    wait_text(&c, "[data-count=created]", "2").await;
    wait_text(&c, "[data-count=failed]", "1").await;
    wait_text(&c, "[data-testid=import-errors]", "not a valid email address").await;
    let polling = c.find_all(Locator::Css("#import-status[data-polling]")).await.expect("query");
    assert!(polling.is_empty(), "polling stops when the import is done");
    let href = c.find(Locator::Css("[data-testid=errors-csv]")).await.expect("errors link").attr("href").await.expect("href");
    assert!(href.is_some_and(|h| h.ends_with("/errors.csv")));
    shot(&c, "import-result").await;
    runtime.shutdown().await;

    // The new leads are in the list, with the default campaign.
    c.find(Locator::Css("[data-testid=import-result] a.button.primary")).await.expect("view leads").click().await.expect("click");
    wait_text(&c, "table.list tbody", "Kavya").await;
    wait_text(&c, "table.list tbody", "Rohan").await;
    shot(&c, "import-leads").await;
    let lead = app.get(&s, &s.path("leads?filter[email]=rohan@example.in")).await;
    assert_eq!(lead.body["data"][0]["campaign"], "Mumbai fair");
    assert_eq!(lead.body["data"][0]["source"], "referral");
    c.close().await.expect("close");
}
