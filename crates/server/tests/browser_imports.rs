//! The import wizard in headless Chromium (runs when CORVID_TEST_CHROMEDRIVER is set, as
//! `.ci/run` does): upload a small CSV, check the suggested mapping, preview, start, watch
//! the progress page poll its way to 100 %, read the result and find the leads in the list.
//! Screenshots land in `target/screenshots/`.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, wait_text, Options};
use common::TestApp;
use corvid_server::jobs::{Registry, Runtime};
use fantoccini::{Client, Locator};

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
    let c = browser(&driver, profile.path(), &Options { downloads: Some(files.path().to_path_buf()), ..Options::default() }).await;
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
