//! Duplicate review in a real browser: open a flagged lead, compare it with its duplicate,
//! pick a field from the other record, merge, and land on the survivor with the picked value
//! and the other lead's activity; under the block policy, the new-lead form shows the lead it
//! would duplicate instead of saving. Runs when CORVID_TEST_CHROMEDRIVER (and optionally
//! CORVID_TEST_CHROMIUM) are set; screenshots land in `target/screenshots/`.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, wait_text, Options};
use common::TestApp;
use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;

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
    let c = browser(&driver, profile.path(), &Options::default()).await;
    sign_in(&c, &url, "owner@browser-dedupe.test").await;
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

    // Under the block policy the new-lead form comes back with the typed values and a link
    // to the lead it would duplicate.
    let r = app.call(axum::http::Method::PUT, &s.path("data/dedupe/policy"), Some(&s.token), Some(json!({"policy": "block"})), &[]).await;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    c.goto(&format!("{base}/leads/new")).await.expect("new lead form");
    for (field, value) in
        [("f-first_name", "Ritu"), ("f-last_name", "Kapoor"), ("f-email", "ritu@kapoor.example"), ("f-job_title", "Typed in the form")]
    {
        c.find(Locator::Id(field)).await.expect(field).send_keys(value).await.expect("type");
    }
    c.find(Locator::Css("form.record-form button[type=submit]")).await.expect("create").click().await.expect("click");
    wait_text(&c, "[data-testid=form-duplicates]", a["number"].as_str().expect("number")).await;
    wait_text(&c, "[data-testid=form-error]", "Not saved").await;
    let kept = c.find(Locator::Id("f-job_title")).await.expect("job title").prop("value").await.expect("value");
    assert_eq!(kept.as_deref(), Some("Typed in the form"), "the input is kept");
    shot(&c, "dedupe-form-blocked").await;
    c.find(Locator::Css("[data-testid=form-duplicates] a")).await.expect("duplicate link").click().await.expect("click");
    for _ in 0..100 {
        if c.current_url().await.is_ok_and(|u| u.path().ends_with(&a_id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.current_url().await.expect("url").path().ends_with(&a_id), "the link opens the existing lead");
    assert_eq!(app.count("SELECT COUNT(*) FROM leads WHERE deleted_at IS NULL").await, 1, "nothing was created");
    c.close().await.expect("close");
}
