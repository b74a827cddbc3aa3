//! Scoring and assignment rules in a real browser (headless Chromium via chromedriver): an
//! Admin creates a rule set and a rule, previews a sample lead, adds an assignment rule, and
//! the lead page shows the score band, the explanation and the owner the rule chose. Runs
//! when CORVID_TEST_CHROMEDRIVER (and optionally CORVID_TEST_CHROMIUM) are set.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, wait_text, Options};
use common::TestApp;
use fantoccini::{Client, Locator};
use serde_json::json;

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
    let c = browser(&driver, profile.path(), &Options::width(1280)).await;
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
