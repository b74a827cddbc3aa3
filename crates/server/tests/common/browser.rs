//! What every browser test needs: chromedriver, a headless Chromium session, the app on a
//! loopback port, signing in through the form, screenshots and waiting for text. The tests
//! run when CORVID_TEST_CHROMEDRIVER (and optionally CORVID_TEST_CHROMIUM) are set, as
//! `.ci/run` does; without them `start_driver` returns None and the test skips itself.

use super::{TestApp, PASSWORD};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running chromedriver, stopped (and reaped) when dropped.
pub struct Driver {
    child: Child,
    pub port: u16,
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

/// Starts chromedriver when CORVID_TEST_CHROMEDRIVER names it; None means "skip the test".
pub async fn start_driver() -> Option<Driver> {
    let path = std::env::var("CORVID_TEST_CHROMEDRIVER").ok().filter(|p| !p.is_empty())?;
    let port = free_port();
    let child =
        Command::new(path).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver starts");
    // Owned by the guard from here on, so the process is reaped on every path.
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

/// How a browser session is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Window width in CSS pixels; below 500 the session emulates a phone.
    pub width: u32,
    /// Where downloads land (set it to check a downloaded file).
    pub downloads: Option<PathBuf>,
    /// Leave `confirm()` dialogs open until the test answers them.
    pub keep_prompts: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { width: 1280, downloads: None, keep_prompts: false }
    }
}

impl Options {
    pub fn width(width: u32) -> Options {
        Options { width, ..Options::default() }
    }
}

/// A headless Chromium session with its own profile folder.
pub async fn browser(driver: &Driver, profile: &Path, opts: &Options) -> Client {
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
        format!("--window-size={},1000", opts.width),
        format!("--user-data-dir={}", profile.display()),
        "--lang=en-GB".into(),
    ];
    let mut chrome = json!({"args": args});
    // Headless windows are never narrower than 500px; phone widths need device emulation.
    if opts.width < 500 {
        chrome["mobileEmulation"] = json!({"deviceMetrics": {"width": opts.width, "height": 812, "pixelRatio": 2.0}});
    }
    if let Some(dir) = &opts.downloads {
        chrome["prefs"] = json!({"download.default_directory": dir.display().to_string()});
    }
    if let Ok(bin) = std::env::var("CORVID_TEST_CHROMIUM") {
        if !bin.is_empty() {
            chrome["binary"] = bin.into();
        }
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), chrome);
    if opts.keep_prompts {
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
    }
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("browser session")
}

/// Serves the app (over the test's database, keeping uploads in its data folder) on a
/// loopback port for the browser; returns the base URL.
pub async fn serve(app: &TestApp) -> String {
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

/// Saves a screenshot as `target/screenshots/<name>.png` (best effort).
pub async fn shot(c: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

/// Signs in through the login form and waits until the browser has left it.
pub async fn sign_in(c: &Client, url: &str, email: &str) {
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

/// Waits (up to ten seconds) until the element matching `css` contains `want`; on failure
/// says what it showed and how the page began.
pub async fn wait_text(c: &Client, css: &str, want: &str) {
    let mut last = None;
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return;
                }
                last = Some(t);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = c.source().await.unwrap_or_default();
    panic!(
        "{css} never showed {want:?}; it shows {}; page: {}",
        last.map_or_else(|| "(not on the page)".to_string(), |t| format!("{t:?}")),
        page.chars().take(3000).collect::<String>()
    );
}

/// The text of the first element matching `css`.
pub async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css}")).text().await.expect("text")
}
