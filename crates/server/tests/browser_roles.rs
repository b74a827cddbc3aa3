//! The role matrix editor in a real browser (headless Chromium via chromedriver): an Admin
//! opens Settings → Roles, edits the Sales Rep role (a scope cell and a field set to hidden),
//! saves, and after a reload the page shows the change, which the API confirms and a Sales
//! Rep feels; the Admin role refuses a lock-out with the error on the form. Runs when
//! CORVID_TEST_CHROMEDRIVER (and optionally CORVID_TEST_CHROMIUM) are set; screenshots land
//! in `target/screenshots/`.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, wait_text, Options};
use common::TestApp;
use fantoccini::{Client, Locator};
use serde_json::json;

async fn choose(c: &Client, id: &str, value: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|_| panic!("#{id}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|_| panic!("{id} = {value}"));
}

async fn value_of(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id)).await.unwrap_or_else(|_| panic!("#{id}")).prop("value").await.expect("value").unwrap_or_default()
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css)).await.unwrap_or_else(|_| panic!("{css}")).click().await.expect("click");
}

#[tokio::test]
async fn an_admin_edits_a_role_matrix_in_a_real_browser() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    let app = TestApp::sqlite().await;
    let url = serve(&app).await;
    let s = app.register("owner@roles-browser.test", "Roles Browser Co").await;
    let rep = app.member(&s, "rep@roles-browser.test", "sales_rep").await;
    let lead = app.post(&s, &s.path("leads"), json!({"last_name": "Shah", "email": "shah@example.com", "owner_id": rep.user_id})).await;
    let lead_id = lead.body["id"].as_str().expect("lead").to_string();
    assert_eq!(app.get(&rep, &s.path(&format!("leads/{lead_id}"))).await.body["email"], "shah@example.com");

    let profile = tempfile::tempdir().expect("profile");
    let c = browser(&driver, profile.path(), &Options::default()).await;
    sign_in(&c, &url, "owner@roles-browser.test").await;
    let base = format!("{url}/app/{}", s.company_id);

    // Settings → Roles, then the Sales Rep role.
    c.goto(&format!("{base}/settings/roles")).await.expect("roles page");
    wait_text(&c, "[data-testid=roles]", "Sales Rep").await;
    shot(&c, "settings-roles").await;
    click(&c, "tr[data-role=sales_rep] a.row-link").await;
    wait_text(&c, "[data-testid=role-title]", "Sales Rep").await;
    assert_eq!(value_of(&c, "s-leads-read").await, "team");
    assert_eq!(value_of(&c, "s-leads-edit").await, "own");

    // One cell and one field.
    choose(&c, "s-leads-read", "own").await;
    click(&c, "details[data-fields=leads] summary").await;
    choose(&c, "f-leads-email", "hidden").await;
    click(&c, "[data-testid=save-role]").await;
    wait_text(&c, "[role=status]", "was saved").await;

    // After a reload the page shows what was saved.
    let editor = format!("{base}/settings/roles/sales_rep");
    c.goto(&editor).await.expect("reload");
    wait_text(&c, "[data-testid=role-title]", "Sales Rep").await;
    assert_eq!(value_of(&c, "s-leads-read").await, "own");
    assert_eq!(value_of(&c, "f-leads-email").await, "hidden");
    assert_eq!(value_of(&c, "f-leads-phone").await, "editable");
    assert_eq!(value_of(&c, "s-deals-read").await, "team", "untouched cells keep their value");
    let open = c.find(Locator::Css("details[data-fields=leads]")).await.expect("details").attr("open").await.expect("attr");
    assert!(open.is_some(), "objects with restricted fields start open");
    shot(&c, "settings-role-matrix").await;

    // The API and a Sales Rep agree.
    let role = app.get(&s, &s.path("roles/sales_rep")).await;
    assert_eq!(role.body["permissions"]["leads"]["read"], "own");
    assert_eq!(role.body["permissions"]["leads"]["fields"]["email"], "hidden");
    let seen = app.get(&rep, &s.path(&format!("leads/{lead_id}"))).await;
    assert_eq!(seen.status, axum::http::StatusCode::OK, "{seen:?}");
    assert!(seen.body.get("email").is_none(), "{seen:?}");

    // The Admin role cannot lock everyone out: the error is shown on the form.
    c.goto(&format!("{base}/settings/roles/admin")).await.expect("admin role");
    choose(&c, "s-deals-read", "team").await;
    click(&c, "[data-testid=save-role]").await;
    wait_text(&c, "[data-testid=form-error]", "must stay all for the Admin role").await;
    wait_text(&c, "tr[data-object=deals] td.invalid", "must stay all").await;
    assert_eq!(value_of(&c, "s-deals-read").await, "team", "the form keeps what was chosen");
    shot(&c, "settings-role-admin-refused").await;
    assert_eq!(app.get(&s, &s.path("roles/admin")).await.body["permissions"]["deals"]["read"], "all");

    // Reset Sales Rep to its defaults (the confirmation is accepted).
    c.goto(&editor).await.expect("editor");
    click(&c, "[data-testid=reset-role]").await;
    c.accept_alert().await.expect("confirm");
    wait_text(&c, "[role=status]", "back to its defaults").await;
    assert_eq!(value_of(&c, "s-leads-read").await, "team");
    assert_eq!(app.get(&rep, &s.path(&format!("leads/{lead_id}"))).await.body["email"], "shah@example.com");

    // Teams: create one with a manager, put the rep in it.
    c.goto(&format!("{base}/settings/teams")).await.expect("teams page");
    c.find(Locator::Id("t-name")).await.expect("name").send_keys("West").await.expect("type");
    choose(&c, "t-manager", &s.user_id).await;
    click(&c, "[data-testid=new-team] button[type=submit]").await;
    wait_text(&c, "[role=status]", "The team West was created").await;
    let team = app.get(&s, &s.path("teams")).await.body["data"][0]["id"].as_str().expect("team").to_string();
    choose(&c, &format!("mt-{}", rep.user_id), &team).await;
    click(&c, &format!("tr[data-member=\"{}\"] button[type=submit]", rep.user_id)).await;
    wait_text(&c, "[role=status]", "team and manager were saved").await;
    assert_eq!(value_of(&c, &format!("mt-{}", rep.user_id)).await, team);
    shot(&c, "settings-teams").await;

    // Members → Transfer records…, confirmed.
    c.goto(&format!("{base}/settings/members")).await.expect("members page");
    click(&c, &format!("tr[data-member=\"{}\"] [data-testid=transfer-link]", rep.user_id)).await;
    wait_text(&c, "#transfer-h", "Transfer the records of").await;
    choose(&c, "to-user", &s.user_id).await;
    shot(&c, "settings-transfer").await;
    click(&c, "[data-testid=transfer-submit]").await;
    c.accept_alert().await.expect("confirm");
    wait_text(&c, "[role=status]", "Moved 1 record").await;
    assert_eq!(app.get(&s, &s.path(&format!("leads/{lead_id}"))).await.body["owner_id"], s.user_id.as_str());
    c.close().await.expect("close");
}
