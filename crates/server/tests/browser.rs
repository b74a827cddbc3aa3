//! Browser tests: the real server on 127.0.0.1 driven by headless Chromium through
//! chromedriver. They run when CORVID_TEST_CHROMEDRIVER (and optionally CORVID_TEST_CHROMIUM)
//! are set, as `.ci/run` does; screenshots of the main pages land in
//! `target/screenshots/`.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, text, wait_text, Options};
use common::TestApp;
use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_crm_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@browser.test", "Browser Co").await;
    let other = app.register("other@browser.test", "Other Co").await;
    app.post(&other, &other.path("leads"), json!({"last_name": "OtherCompanySecret"})).await;
    // The owner also belongs to the other company (reading everything there), to switch
    // between them.
    let r = app.post(&other, &other.path("members"), json!({"email": "owner@browser.test", "role": "read_only"})).await;
    assert_eq!(r.status.as_u16(), 201, "{r:?}");
    let xss = "<img src=x onerror=\"window.__xss=1\"><script>window.__xss=1</script>";
    app.post(&s, &s.path("leads"), json!({"first_name": xss, "last_name": "Injector", "source": "website"})).await;
    let acc = app.post(&s, &s.path("accounts"), json!({"name": "Wayne Enterprises"})).await.body["id"].as_str().expect("acc").to_string();
    let deal = app
        .post(&s, &s.path("deals"), json!({"name": "Batmobile fleet", "account_id": acc, "value": "250000.00", "stage": "prospecting"}))
        .await;
    let deal_id = deal.body["id"].as_str().expect("deal").to_string();

    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path(), &Options::width(1280)).await;
    sign_in(&c, &url, "owner@browser.test").await;
    let base = format!("{url}/app/{}", s.company_id);

    // Create a lead: a validation error is shown beside the field, the input is kept, then fixed.
    c.goto(&format!("{base}/leads/new")).await.expect("new lead");
    c.find(Locator::Id("f-first_name")).await.expect("first").send_keys("Meera").await.expect("type");
    c.find(Locator::Id("f-email")).await.expect("email").send_keys("meera-at-example").await.expect("type");
    shot(&c, "lead-form").await;
    c.find(Locator::Css("form.record-form button[type=submit]")).await.expect("save").click().await.expect("click");
    wait_text(&c, "#e-last_name", "required").await;
    wait_text(&c, "#e-email", "not a valid email").await;
    assert_eq!(c.find(Locator::Id("f-first_name")).await.expect("first").prop("value").await.expect("value").as_deref(), Some("Meera"));
    c.find(Locator::Id("f-last_name")).await.expect("last").send_keys("Nair").await.expect("type");
    let email = c.find(Locator::Id("f-email")).await.expect("email");
    email.clear().await.expect("clear");
    email.send_keys("meera@example.in").await.expect("type");
    c.find(Locator::Css("form.record-form button[type=submit]")).await.expect("save").click().await.expect("click");
    wait_text(&c, "h1", "Meera Nair").await;
    shot(&c, "lead-record").await;

    // Inline-edit a field.
    c.find(Locator::Css("#fv-job_title .edit-btn")).await.expect("edit button").click().await.expect("click");
    let input = c.wait().for_element(Locator::Css("#fv-job_title input[name=job_title]")).await.expect("inline input");
    input.send_keys("Head of Procurement").await.expect("type");
    c.find(Locator::Css("#fv-job_title button[type=submit]")).await.expect("save").click().await.expect("click");
    wait_text(&c, "#fv-job_title .value", "Head of Procurement").await;
    let list = app.get(&s, &s.path("leads?filter[job_title]=Head%20of%20Procurement")).await;
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1), "inline edit persisted");

    // The XSS lead renders as text, and nothing ran.
    c.goto(&format!("{base}/leads")).await.expect("leads");
    shot(&c, "leads-list").await;
    let cell = text(&c, "table.list tbody").await;
    assert!(cell.contains("<img src=x"), "payload shown as text: {cell}");
    let ran = c.execute("return window.__xss === 1;", vec![]).await.expect("js");
    assert_eq!(ran, json!(false));
    let injected = c.find_all(Locator::Css("table.list img")).await.expect("query");
    assert!(injected.is_empty(), "no element was injected");

    // Drag a deal to another stage; the move is saved.
    c.goto(&format!("{url}/app/{}/pipeline", s.company_id)).await.expect("pipeline");
    c.wait().for_element(Locator::Css(&format!("[data-deal-id='{deal_id}']"))).await.expect("card");
    shot(&c, "pipeline").await;
    let js = r#"
        const card = document.querySelector(`[data-deal-id='${arguments[0]}']`);
        const column = document.querySelector(`[data-stage='negotiation']`);
        const dt = new DataTransfer();
        card.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: dt}));
        column.dispatchEvent(new DragEvent('dragenter', {bubbles: true, dataTransfer: dt}));
        column.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: dt}));
        column.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: dt}));
        card.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: dt}));
    "#;
    c.execute(js, vec![json!(deal_id)]).await.expect("drag");
    let mut stage = String::new();
    for _ in 0..50 {
        stage = app.get(&s, &s.path(&format!("deals/{deal_id}"))).await.body["stage"].as_str().unwrap_or("").to_string();
        if stage == "negotiation" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stage, "negotiation", "the drop was saved");
    c.refresh().await.expect("reload");
    c.wait()
        .for_element(Locator::Css(&format!("[data-stage='negotiation'] [data-deal-id='{deal_id}']")))
        .await
        .expect("card in its new column after reload");
    let history = app.get(&s, &s.path(&format!("deals/{deal_id}/history"))).await;
    assert!(history.text.contains("\"new_value\":\"negotiation\""), "the move was audited");

    // Dashboard numbers equal the API's.
    c.goto(&format!("{base}/dashboard")).await.expect("dashboard");
    shot(&c, "dashboard").await;
    let stats = app.get(&s, &s.path("stats/leads")).await;
    let total: i64 = stats.body["by_status"].as_array().expect("rows").iter().map(|r| r["count"].as_i64().unwrap_or(0)).sum();
    let open_leads = text(&c, "[data-kpi=open_leads]").await;
    assert_eq!(open_leads.trim(), total.to_string(), "all leads here are open");
    let deals = app.get(&s, &s.path("stats/deals")).await;
    let neg =
        deals.body["by_stage"].as_array().expect("rows").iter().find(|r| r["stage"] == "negotiation").cloned().expect("negotiation row");
    assert_eq!(neg["value"], "250000.00");
    let pipeline = text(&c, "[data-kpi=pipeline_value]").await;
    assert!(pipeline.contains("2,50,000.00"), "pipeline value {pipeline}");
    let weighted = text(&c, "[data-kpi=weighted_pipeline]").await;
    assert!(weighted.contains("1,87,500.00"), "weighted {weighted} vs API {}", neg["weighted_value"]);

    // Other main pages render; screenshots for the record.
    for (page, name) in [
        ("accounts", "accounts"),
        ("contacts", "contacts"),
        ("deals", "deals"),
        ("tasks", "tasks"),
        ("activities", "activities"),
        ("settings/members", "settings-members"),
        ("settings/audit", "settings-audit"),
    ] {
        c.goto(&format!("{base}/{page}")).await.expect("page");
        c.wait().for_element(Locator::Css("main h1")).await.expect("heading");
        shot(&c, name).await;
    }
    c.goto(&format!("{base}/accounts/{acc}")).await.expect("account");
    wait_text(&c, "h1", "Wayne Enterprises").await;
    shot(&c, "account-record").await;

    // Switch company: none of the first company's data is visible, and vice versa.
    c.goto(&format!("{base}/dashboard")).await.expect("dashboard");
    let switcher = c.find(Locator::Id("company-switch")).await.expect("switcher");
    switcher.select_by_label("Other Co").await.expect("switch");
    c.wait().for_url(&url::Url::parse(&format!("{url}/app/{}/dashboard", other.company_id)).expect("url")).await.expect("switched");
    c.goto(&format!("{url}/app/{}/leads", other.company_id)).await.expect("other leads");
    let body = text(&c, "main").await;
    assert!(body.contains("OtherCompanySecret") && !body.contains("Meera") && !body.contains("Injector"), "{body}");
    c.goto(&format!("{url}/app/{}/leads/{}", other.company_id, list.body["data"][0]["id"].as_str().unwrap_or("")))
        .await
        .expect("guessed url");
    assert!(text(&c, "main").await.contains("Not found"));

    // Phone width: the list still works.
    let narrow_profile = tempfile::tempdir().expect("profile");
    let phone = browser(&driver, narrow_profile.path(), &Options::width(375)).await;
    sign_in(&phone, &url, "owner@browser.test").await;
    phone.goto(&format!("{base}/leads")).await.expect("leads");
    shot(&phone, "leads-375px").await;
    let width = phone.execute("return document.documentElement.scrollWidth;", vec![]).await.expect("js");
    assert!(width.as_i64().unwrap_or(9999) <= 400, "no horizontal scrolling at 375px: {width}");
    phone.close().await.expect("close");
    c.close().await.expect("close");
}
