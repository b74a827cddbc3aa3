//! Browser check of the consent and privacy UI: the consent panel loaded into a lead's page,
//! recording a decision, erasing with the confirm dialog, the dashboard's data quality widget
//! and the Data quality settings page. Runs when CORVID_TEST_CHROMEDRIVER is set (like
//! `tests/browser.rs`).

mod common;

use common::browser::{browser, serve, sign_in, start_driver, wait_text, Options};
use common::TestApp;
use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;

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
    let c = browser(&driver, profile.path(), &Options { keep_prompts: true, ..Options::default() }).await;
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
