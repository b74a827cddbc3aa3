//! Scoring and assignment rules in a real browser (headless Chromium via chromedriver): an
//! Admin creates a rule set and a rule, previews a sample lead, adds an assignment rule, and
//! the lead page shows the score band, the explanation and the owner the rule chose. Runs
//! when CORVID_TEST_CHROMEDRIVER (and optionally CORVID_TEST_CHROMIUM) are set.

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

async fn browser(driver: &Driver, profile: &std::path::Path, width: u32) -> Client {
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-extensions".into(),
        format!("--window-size={width},1000"),
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
    let mut last = String::new();
    for _ in 0..80 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return;
                }
                last = t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {want:?}; last: {last:?}");
}

async fn fill(c: &Client, id: &str, text: &str) {
    let e = c.find(Locator::Id(id)).await.unwrap_or_else(|_| panic!("#{id}"));
    e.clear().await.expect("clear");
    e.send_keys(text).await.expect("type");
}

async fn choose(c: &Client, id: &str, value: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|_| panic!("#{id}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|_| panic!("{id} = {value}"));
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css}")).click().await.expect("click");
}

#[tokio::test]
async fn scoring_and_assignment_rules_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@rules-browser.test", "Rules Browser Co").await;
    let rep = app.member(&s, "rep@rules-browser.test", "sales_rep").await;
    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path(), 1280).await;
    sign_in(&c, &url, "owner@rules-browser.test").await;
    let base = format!("{url}/app/{}", s.company_id);

    // Settings → Scoring: create an active set, then a rule.
    c.goto(&format!("{base}/settings/scoring")).await.expect("scoring page");
    fill(&c, "new-set-name", "Browser set").await;
    click(&c, "[data-testid=new-set] input[name=active]").await;
    click(&c, "[data-testid=new-set] button[value=create_set]").await;
    wait_text(&c, "[data-testid=set-editor] h2", "Browser set").await;
    wait_text(&c, "[data-testid=rule-sets]", "Active").await;
    fill(&c, "new-name", "India").await;
    fill(&c, "new-points", "45").await;
    choose(&c, "new-c0-subject", "field:country").await;
    choose(&c, "new-c0-op", "eq").await;
    fill(&c, "new-c0-value", "IN").await;
    click(&c, "[data-testid=add-rule] button[value=add_rule]").await;
    wait_text(&c, "[role=status]", "The rule was added.").await;
    wait_text(&c, "[data-testid=score-rules]", "When country is IN").await;
    // A bad rule: the message is shown and the typed name kept.
    fill(&c, "new-name", "Broken").await;
    fill(&c, "new-points", "5").await;
    fill(&c, "new-weight", "heavy").await;
    click(&c, "[data-testid=add-rule] button[value=add_rule]").await;
    wait_text(&c, "[data-testid=form-error]", "Weight must be a number").await;
    assert_eq!(c.find(Locator::Id("new-name")).await.expect("name").prop("value").await.expect("value").as_deref(), Some("Broken"));
    shot(&c, "settings-scoring").await;

    // Preview a sample lead.
    fill(&c, "p-country", "IN").await;
    click(&c, "[data-testid=preview-form] button[type=submit]").await;
    wait_text(&c, "[data-testid=preview-score]", "45 · Warm").await;
    wait_text(&c, "[data-testid=preview-explanation]", "India").await;

    // Settings → Assignment: Indian leads go to the rep.
    c.goto(&format!("{base}/settings/assignment")).await.expect("assignment page");
    fill(&c, "a-name", "India to the rep").await;
    choose(&c, "a-strategy", "user").await;
    choose(&c, "a-user", &rep.user_id).await;
    choose(&c, "a-c0-subject", "field:country").await;
    choose(&c, "a-c0-op", "eq").await;
    fill(&c, "a-c0-value", "IN").await;
    click(&c, "[data-testid=assignment-form] button[type=submit]").await;
    wait_text(&c, "[data-testid=assignment-rules]", "India to the rep").await;
    fill(&c, "p-country", "IN").await;
    click(&c, "[data-testid=preview-form] button[type=submit]").await;
    wait_text(&c, "[data-testid=preview-rule]", "India to the rep").await;
    shot(&c, "settings-assignment").await;

    // A new Indian lead: owned by the rep, and its page explains the score.
    let lead = app.post(&s, &s.path("leads"), json!({"last_name": "Iyer", "country": "IN"})).await;
    assert_eq!(lead.body["owner_id"], rep.user_id.as_str(), "{lead:?}");
    assert_eq!(lead.body["lead_score"], 45);
    let id = lead.body["id"].as_str().expect("id").to_string();
    c.goto(&format!("{base}/leads/{id}")).await.expect("lead page");
    wait_text(&c, "[data-testid=score-badge]", "45 · Warm").await;
    wait_text(&c, "[data-testid=score-explanation]", "India").await;
    shot(&c, "lead-score-panel").await;

    // A Sales Rep cannot open the rules pages.
    c.goto(&format!("{url}/logout")).await.expect("logout page");
    let _ = c.delete_all_cookies().await;
    sign_in(&c, &url, "rep@rules-browser.test").await;
    c.goto(&format!("{base}/settings/scoring")).await.expect("page");
    wait_text(&c, "main", "Only Admins can change scoring and assignment rules").await;
    c.close().await.expect("close");
}
