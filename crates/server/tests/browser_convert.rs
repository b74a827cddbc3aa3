//! Browser test of the lead journey's end: qualify a lead in the qualification panel (BANT
//! sliders, MEDDICC answers, outcome button), run the conversion wizard (with a mistake on the
//! way), and land on the converted lead showing its links. Runs in headless Chromium when
//! CORVID_TEST_CHROMEDRIVER (and optionally CORVID_TEST_CHROMIUM) are set; screenshots land in
//! `target/screenshots/`.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, wait_text, Options};
use common::TestApp;
use fantoccini::{Client, Locator};
use serde_json::json;

async fn click(c: &Client, css: &str) {
    c.wait().for_element(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css}")).click().await.expect("click");
}

async fn step(c: &Client, name: &str) {
    c.wait().for_element(Locator::Css(&format!("form.wizard[data-step='{name}']"))).await.unwrap_or_else(|_| panic!("wizard step {name}"));
}

#[tokio::test]
async fn qualify_in_the_panel_then_convert_with_the_wizard() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@convert.test", "Convert Browser Co").await;
    let lead = app
        .post(
            &s,
            &s.path("leads"),
            json!({"first_name": "Meera", "last_name": "Nair", "company_name": "Nair Logistics Pvt Ltd", "email": "meera@nairlogistics.in",
                   "phone": "+919876543210", "interest_product": "Fleet CRM", "authority_level": "decision_maker", "status": "contacted"}),
        )
        .await;
    let lead_id = lead.body["id"].as_str().expect("lead").to_string();

    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path(), &Options::default()).await;
    sign_in(&c, &url, "owner@convert.test").await;
    let base = format!("{url}/app/{}", s.company_id);

    // The panel loads into the lead page.
    c.goto(&format!("{base}/leads/{lead_id}")).await.expect("lead page");
    wait_text(&c, "#qualification [data-testid=qual-status]", "Contacted").await;
    wait_text(&c, "#qualification [data-testid=not-eligible]", "Not yet").await;

    // Score BANT with the sliders (moving one marks it scored), name the economic buyer.
    let unset_left = c
        .execute(
            r#"document.querySelectorAll('input[type=range][data-score]').forEach(function (r) {
                   r.value = 8; r.dispatchEvent(new Event('input', {bubbles: true}));
               });
               return document.querySelectorAll('input[data-unset]:checked').length;"#,
            vec![],
        )
        .await
        .expect("sliders");
    assert_eq!(unset_left, json!(0), "moving a slider marks it scored");
    wait_text(&c, "#o-bant_need_score", "8").await;
    c.find(Locator::Id("q-meddicc_economic_buyer")).await.expect("buyer").send_keys("Arjun, CFO").await.expect("type");
    c.find(Locator::Id("q-reason")).await.expect("reason").send_keys("Budget signed off").await.expect("type");
    shot(&c, "qualification-panel").await;
    click(&c, "[data-testid=mark-qualified]").await;
    wait_text(&c, "#qualification [data-testid=qual-notice]", "Lead qualified").await;
    wait_text(&c, "#qualification [data-testid=qual-status]", "Qualified").await;
    wait_text(&c, "#qualification [data-testid=eligible]", "Eligible").await;
    let stored = app.get(&s, &s.path(&format!("leads/{lead_id}"))).await.body;
    assert_eq!(stored["status"], "qualified");
    assert_eq!((stored["bant_budget_score"].as_i64(), stored["bant_timeline_score"].as_i64()), (Some(8), Some(8)));
    assert_eq!(stored["meddicc_economic_buyer"], "Arjun, CFO");
    assert_eq!(stored["qualification_reason"], "Budget signed off");

    // The wizard: account and contact from the lead, a deal (first with a bad amount), a
    // first activity, confirm.
    click(&c, "#qualification [data-testid=convert-link]").await;
    step(&c, "account").await;
    wait_text(&c, "h1", "Convert Meera Nair").await;
    let name = c.find(Locator::Id("w-a_name")).await.expect("account name").prop("value").await.expect("value");
    assert_eq!(name.as_deref(), Some("Nair Logistics Pvt Ltd"), "prefilled from the lead");
    shot(&c, "convert-account").await;
    click(&c, "[data-testid=next]").await;
    step(&c, "contact").await;
    let email = c.find(Locator::Id("w-c_email")).await.expect("contact email").prop("value").await.expect("value");
    assert_eq!(email.as_deref(), Some("meera@nairlogistics.in"));
    click(&c, "[data-testid=next]").await;
    step(&c, "deal").await;
    click(&c, "[data-testid=deal-create]").await;
    c.find(Locator::Id("w-d_amount")).await.expect("amount").send_keys("lots").await.expect("type");
    c.execute("document.getElementById('w-d_close_date').value = '2031-06-30';", vec![]).await.expect("date");
    click(&c, "[data-testid=next]").await;
    step(&c, "activity").await;
    click(&c, "[data-testid=next]").await;
    step(&c, "confirm").await;
    wait_text(&c, "[data-testid=summary]", "New account: Nair Logistics Pvt Ltd").await;
    shot(&c, "convert-confirm").await;
    click(&c, "[data-testid=do-convert]").await;
    // The mistake brings the deal step back with the error; nothing was created.
    step(&c, "deal").await;
    wait_text(&c, "[data-testid=wizard-errors]", "amount").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM accounts").await, 0);
    assert_eq!(app.get(&s, &s.path(&format!("leads/{lead_id}"))).await.body["status"], "qualified");
    let amount = c.find(Locator::Id("w-d_amount")).await.expect("amount");
    amount.clear().await.expect("clear");
    amount.send_keys("250000").await.expect("type");
    click(&c, "[data-testid=next]").await;
    step(&c, "activity").await;
    click(&c, "[data-testid=next]").await;
    step(&c, "confirm").await;
    wait_text(&c, "[data-testid=summary]", "250000 INR").await;
    click(&c, "[data-testid=do-convert]").await;

    // Back on the lead: converted, with links to what was created.
    wait_text(&c, ".alert.ok", "Lead converted").await;
    wait_text(&c, "#fv-status .value", "Converted").await;
    wait_text(&c, "#fv-converted_account_id .value a", "Nair Logistics Pvt Ltd").await;
    wait_text(&c, "#fv-converted_contact_id .value a", "Meera Nair").await;
    wait_text(&c, "#qualification [data-testid=conversion-links]", "Deal: Nair Logistics Pvt Ltd - Fleet CRM").await;
    let buttons = c.find_all(Locator::Css("[data-testid=convert-button]")).await.expect("query");
    assert!(buttons.is_empty(), "no Convert button on a converted lead");
    shot(&c, "converted-lead").await;
    let converted = app.get(&s, &s.path(&format!("leads/{lead_id}"))).await.body;
    assert_eq!(converted["status"], "converted");
    let deal = app.get(&s, &s.path(&format!("deals/{}", converted["converted_deal_id"].as_str().expect("deal")))).await.body;
    assert_eq!((deal["value"].as_str(), deal["expected_close_date"].as_str()), (Some("250000.00"), Some("2031-06-30")));
    let acts = app.get(&s, &s.path(&format!("activities?filter[lead_id]={lead_id}"))).await.body;
    assert_eq!(acts["data"][0]["title"], "Lead converted");

    // The account link leads to the account, which has the contact and the deal.
    click(&c, "#fv-converted_account_id .value a").await;
    wait_text(&c, "h1", "Nair Logistics Pvt Ltd").await;
    wait_text(&c, "main", "Meera Nair").await;
    // Opening the wizard again only shows the links.
    c.goto(&format!("{base}/leads/{lead_id}/convert")).await.expect("wizard again");
    wait_text(&c, "[data-testid=already-converted]", "Contact: Meera Nair").await;
    c.close().await.expect("close");
}
