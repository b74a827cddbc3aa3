//! The dashboard, the pipeline board and the settings pages through the real router, on
//! SQLite (and PostgreSQL when CORVID_TEST_POSTGRES_URL is set): the dashboard shows the
//! numbers the API implies, moves on the board are version-checked and audited, and settings
//! are for Admins only.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chrono::{Duration, Utc};
use common::*;
use corvid_core::{money, Value};
use corvid_server::web::format::format_amount;
use corvid_store::Q;
use rust_decimal::Decimal;
use serde_json::json;
use std::collections::BTreeMap;
use std::str::FromStr;

type Browser = WebSession;

async fn sign_in(app: &TestApp, email: &str) -> Browser {
    app.web_sign_in(email).await
}

async fn get(app: &TestApp, b: &Browser, path: &str) -> Resp {
    app.web_get(b, path, &[]).await
}

async fn get_with(app: &TestApp, b: &Browser, path: &str, headers: &[(&str, &str)]) -> Resp {
    app.web_get(b, path, headers).await
}

async fn post_form(app: &TestApp, b: &Browser, path: &str, fields: &[(&str, &str)]) -> Resp {
    app.web_post(b, path, fields, true).await
}

/// A drop on the board, as kanban.js sends it.
async fn fetch_move(app: &TestApp, b: &Browser, base: &str, id: &str, version: &str, stage: &str) -> Resp {
    let body = serde_urlencoded::to_string([("id", id), ("version", version), ("stage", stage)]).expect("form");
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/pipeline/move"))
        .header("cookie", &b.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-csrf-token", &b.csrf)
        .header("x-requested-with", "fetch")
        .header("user-agent", "kanban-test")
        .body(Body::from(body))
        .expect("req");
    app.raw(req).await
}

fn location(r: &Resp) -> String {
    r.headers.get("location").and_then(|v| v.to_str().ok()).expect("location").to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&").replace("&amp;", "&")
}

/// The texts of the element carrying `data-kpi="name"`: one per inner `<div>`, or its own text.
fn kpi(html: &str, name: &str) -> Vec<String> {
    let marker = format!("data-kpi=\"{name}\">");
    let start = html.find(&marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no kpi {name}"));
    let rest = &html[start..];
    let bytes = rest.as_bytes();
    let (mut depth, mut end) = (0, rest.len());
    for i in 0..bytes.len() {
        if bytes[i..].starts_with(b"<div") {
            depth += 1;
        } else if bytes[i..].starts_with(b"</div>") {
            if depth == 0 {
                end = i;
                break;
            }
            depth -= 1;
        }
    }
    let inner = rest[..end].replace("<wbr>", "");
    let inner = inner.as_str();
    if inner.contains("<div>") {
        inner.split("<div>").map(|p| p.replace("</div>", "").trim().to_string()).filter(|p| !p.is_empty()).collect()
    } else {
        vec![inner.trim().to_string()]
    }
}

/// Pages must not carry inline script or style (the CSP would block them).
fn csp_clean(html: &str) {
    assert!(!html.contains(" style="), "no style attributes");
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').expect("tag end")];
        assert!(tag.contains(" src="), "no inline script: {tag}");
    }
}

/// The HTML of each board column, by stage.
fn columns(html: &str) -> BTreeMap<String, String> {
    html.split("<section class=\"column\" data-stage=\"")
        .skip(1)
        .map(|part| {
            let (stage, rest) = part.split_once('"').expect("stage");
            (stage.to_string(), rest.to_string())
        })
        .collect()
}

fn id_of(r: &Resp) -> String {
    assert!(r.status.is_success(), "{r:?}");
    r.body["id"].as_str().expect("id").to_string()
}

async fn list_len(app: &TestApp, s: &Session, query: &str) -> usize {
    let r = app.get(s, &s.path(query)).await;
    assert_eq!(r.status, StatusCode::OK, "{query} {r:?}");
    assert!(r.body["next_cursor"].is_null(), "one page");
    r.body["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn dashboard_shows_the_numbers_the_api_implies() {
    for app in TestApp::all().await {
        let s = app.register("owner@dash.test", "Dash Co").await;
        let rep = app.member(&s, "rep@dash.test", "sales_rep").await;
        let b = sign_in(&app, "owner@dash.test").await;
        let base = format!("/app/{}", s.company_id);

        // An empty company: zeros, explained, and empty states.
        let r = get(&app, &b, &format!("{base}/dashboard")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(kpi(&r.text, "open_leads"), ["0"]);
        assert_eq!(kpi(&r.text, "conversion_rate"), ["—"]);
        assert_eq!(kpi(&r.text, "pipeline_value"), ["₹0.00"]);
        assert!(r.text.contains("No deals yet") && r.text.contains("Nothing overdue") && r.text.contains("No activities logged yet"));
        csp_clean(&r.text);

        // Leads: 8 in all, 2 converted, 2 closed off, one created ten days ago.
        let mut old_lead = String::new();
        for (i, (status, source)) in [
            ("new", "website"),
            ("new", "website"),
            ("contacted", "referral"),
            ("nurturing", "referral"),
            ("converted", "website"),
            ("converted", "event"),
            ("unqualified", "event"),
            ("disqualified", "paid_ads"),
        ]
        .iter()
        .enumerate()
        {
            // Only a conversion marks a lead converted: those are marked in the database.
            let given = if *status == "converted" { "qualified" } else { *status };
            let r = app.post(&s, &s.path("leads"), json!({"last_name": format!("Lead{i}"), "status": given, "source": source})).await;
            old_lead = id_of(&r);
            if *status == "converted" {
                let uid = uuid::Uuid::parse_str(&old_lead).expect("uuid");
                app.db
                    .execute(&Q::new("UPDATE leads SET status = 'converted' WHERE id = $1").bind(Value::Uuid(uid)))
                    .await
                    .expect("mark converted");
            }
        }
        let ten_days_ago = corvid_core::value::now_micros() - Duration::days(10);
        let uid = uuid::Uuid::parse_str(&old_lead).expect("uuid");
        app.db
            .execute(&Q::new("UPDATE leads SET created_at = $1 WHERE id = $2").bind(Value::Timestamp(ten_days_ago)).bind(Value::Uuid(uid)))
            .await
            .expect("backdate");
        // A deleted lead counts nowhere.
        let gone = id_of(&app.post(&s, &s.path("leads"), json!({"last_name": "Gone", "status": "new"})).await);
        assert!(app.delete(&s, &s.path(&format!("leads/{gone}"))).await.status.is_success());

        // Deals in two currencies, open and closed.
        let acc = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Wayne Enterprises"})).await);
        for (name, stage, value, currency) in [
            ("Fleet", "negotiation", "250000.00", "INR"),
            ("Pilot", "prospecting", "100000.50", "INR"),
            ("Export", "proposal", "1000.00", "USD"),
            ("Won one", "closed_won", "50000.00", "INR"),
            ("Lost one", "closed_lost", "7000.00", "INR"),
        ] {
            let r = app
                .post(&s, &s.path("deals"), json!({"name": name, "account_id": acc, "stage": stage, "value": value, "currency": currency}))
                .await;
            id_of(&r);
        }

        // Tasks: mine overdue, mine due soon, mine later, mine done, and someone else's.
        let now = Utc::now();
        let ts = |d: Duration| (now + d).to_rfc3339();
        for (title, due, status, assignee) in [
            ("Overdue call", ts(-Duration::days(1)), "open", &s.user_id),
            ("Due soon", ts(Duration::days(3)), "in_progress", &s.user_id),
            ("Far future", ts(Duration::days(30)), "open", &s.user_id),
            ("Done already", ts(-Duration::days(2)), "completed", &s.user_id),
            ("Not mine", ts(Duration::days(1)), "open", &rep.user_id),
        ] {
            id_of(&app.post(&s, &s.path("tasks"), json!({"title": title, "due_at": due, "status": status, "assignee_id": assignee})).await);
        }
        let act =
            id_of(&app.post(&s, &s.path("activities"), json!({"activity_type": "call", "title": "Intro call", "lead_id": old_lead})).await);

        let page = get(&app, &b, &format!("{base}/dashboard")).await;
        assert_eq!(page.status, StatusCode::OK);
        let html = page.text.clone();
        csp_clean(&html);

        // Lead KPIs against /stats/leads and the list endpoint.
        let stats = app.get(&s, &s.path("stats/leads")).await;
        let by_status = stats.body["by_status"].as_array().expect("rows").clone();
        let count = |pred: &dyn Fn(&str) -> bool| -> i64 {
            by_status.iter().filter(|r| r["key"].as_str().is_some_and(pred)).map(|r| r["count"].as_i64().unwrap_or(0)).sum()
        };
        let open = count(&|k| !matches!(k, "converted" | "unqualified" | "disqualified"));
        let total = count(&|_| true);
        let converted = count(&|k| k == "converted");
        assert_eq!((open, total, converted), (4, 8, 2), "the dataset");
        assert_eq!(kpi(&html, "open_leads"), [open.to_string()]);
        assert_eq!(
            open as usize,
            list_len(&app, &s, "leads?filter[status][in]=new,contacted,nurturing,qualified,recycled&limit=200").await
        );
        let week_ago = (Utc::now() - Duration::days(7)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let new_week = list_len(&app, &s, &format!("leads?filter[created_at][gte]={week_ago}&limit=200")).await;
        assert_eq!(new_week, 7);
        assert_eq!(kpi(&html, "new_leads_week"), [new_week.to_string()]);
        let tenths = (converted * 1000 + total / 2) / total;
        assert_eq!(kpi(&html, "conversion_rate"), [format!("{}.{}%", tenths / 10, tenths % 10)]);
        assert_eq!(kpi(&html, "conversion_rate"), ["25.0%"]);
        assert!(html.contains("Converted leads ÷ all leads (2 of 8)"), "the definition is stated");

        // Pipeline KPIs against /stats/deals: open stages summed per currency.
        let deals = app.get(&s, &s.path("stats/deals")).await;
        let mut value: BTreeMap<String, Decimal> = BTreeMap::new();
        let mut weighted: BTreeMap<String, Decimal> = BTreeMap::new();
        for row in deals.body["by_stage"].as_array().expect("rows") {
            if matches!(row["stage"].as_str(), Some("closed_won" | "closed_lost")) {
                continue;
            }
            let cur = row["currency"].as_str().expect("currency").to_string();
            *value.entry(cur.clone()).or_default() += Decimal::from_str(row["value"].as_str().expect("value")).expect("decimal");
            *weighted.entry(cur).or_default() += Decimal::from_str(row["weighted_value"].as_str().expect("w")).expect("decimal");
        }
        let shown = |m: &BTreeMap<String, Decimal>| -> Vec<String> {
            m.iter()
                .map(|(c, d)| {
                    format_amount(money::parse_minor(&d.to_string(), money::currency_exponent(c).unwrap_or(2)).expect("minor"), c)
                })
                .collect()
        };
        assert_eq!(kpi(&html, "pipeline_value"), shown(&value));
        assert_eq!(kpi(&html, "pipeline_value"), ["₹3,50,000.50", "$1,000.00"]);
        assert_eq!(kpi(&html, "weighted_pipeline"), shown(&weighted));
        // 2,50,000 × 75% + 1,00,000.50 × 10% = 1,87,500 + 10,000.05; 1,000 × 50%.
        assert_eq!(kpi(&html, "weighted_pipeline"), ["₹1,97,500.05", "$500.00"]);

        // Won this month against the list endpoint with the same month bounds.
        let today = Utc::now().with_timezone(&chrono_tz::Asia::Kolkata).date_naive();
        let start = today.format("%Y-%m-01").to_string();
        let next = if today.format("%m").to_string() == "12" {
            format!("{}-01-01", today.format("%Y").to_string().parse::<i32>().expect("year") + 1)
        } else {
            chrono::NaiveDate::parse_from_str(&start, "%Y-%m-%d")
                .expect("date")
                .checked_add_months(chrono::Months::new(1))
                .expect("month")
                .to_string()
        };
        let won = app
            .get(
                &s,
                &s.path(&format!(
                    "deals?filter[stage]=closed_won&filter[actual_close_date][gte]={start}&filter[actual_close_date][lt]={next}"
                )),
            )
            .await;
        let won_rows = won.body["data"].as_array().expect("rows");
        assert_eq!(kpi(&html, "won_this_month"), [won_rows.len().to_string()]);
        if won_rows.len() == 1 {
            assert_eq!(kpi(&html, "won_this_month_value"), ["₹50,000.00"]);
        }
        assert!(html.contains(&format!("filter[actual_close_date][gte]={start}")), "the KPI links to its list");

        // Each KPI links to the list it summarises, and those lists work.
        for href in [
            format!("{base}/leads?filter[status][in]=new,contacted,nurturing,qualified,recycled"),
            format!("{base}/leads?filter[status][eq]=converted"),
            format!("{base}/deals?filter[stage][in]=prospecting,qualification,proposal,negotiation"),
        ] {
            assert!(html.contains(&href.replace('&', "&#38;")) || html.contains(&href), "{href}");
            let r = get(&app, &b, &href).await;
            assert_eq!(r.status, StatusCode::OK, "{href}");
        }
        let r = get(&app, &b, &format!("{base}/leads?filter[status][eq]=converted")).await;
        assert!(r.text.contains("Lead4") && r.text.contains("Lead5") && !r.text.contains("Lead0"));

        // Charts: inline SVG with accessible names and text labels.
        assert!(
            html.contains("<svg class=\"chart\" id=\"chart-stage\"")
                && html.contains("<title id=\"chart-stage-title\">Pipeline by stage</title>")
        );
        assert!(html.contains("<title id=\"chart-source-title\">Leads by source</title>"));
        assert!(html.contains(">Negotiation</text>") && html.contains(">Website form</text>") && html.contains(">3 leads</text>"));

        // My tasks: overdue and due soon, only mine, only open ones.
        let section = |marker: &str| -> String {
            let i = html.find(marker).unwrap_or_else(|| panic!("{marker}"));
            html[i..].split("</ul>").next().expect("list").to_string()
        };
        let overdue = section("data-testid=\"tasks-overdue\"");
        let due = section("data-testid=\"tasks-due\"");
        assert!(overdue.contains("Overdue call") && !overdue.contains("Due soon"));
        assert!(due.contains("Due soon") && !due.contains("Far future") && !due.contains("Not mine"));
        assert!(!html.contains("Done already"));
        assert!(overdue.contains(&format!("{base}/tasks/")), "tasks link to themselves");
        // Recent activities link to the activity and what it is about.
        let acts = section("data-testid=\"recent-activities\"");
        assert!(acts.contains(&format!("{base}/activities/{act}")) && acts.contains(&format!("{base}/leads/{old_lead}")));

        // A Sales Rep outside any team sees the figures of the records they may read (none of
        // the Admin's leads) and their own tasks.
        let rb = sign_in(&app, "rep@dash.test").await;
        let theirs = get(&app, &rb, &format!("{base}/dashboard")).await;
        assert_eq!(kpi(&theirs.text, "open_leads"), ["0"]);
        assert!(theirs.text.contains("Not mine") && !theirs.text.contains("Overdue call"));
    }
}

#[tokio::test]
async fn pipeline_board_and_moves() {
    for app in TestApp::all().await {
        let s = app.register("owner@board.test", "Board Co").await;
        let viewer = app.member(&s, "viewer@board.test", "read_only").await;
        let b = sign_in(&app, "owner@board.test").await;
        let base = format!("/app/{}", s.company_id);

        let r = get(&app, &b, &format!("{base}/pipeline")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("No deals yet"));
        assert_eq!(columns(&r.text).len(), 6, "one column per stage");

        let acc = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Stark Industries"})).await);
        let mk = |name: &'static str, stage: &'static str, value: &'static str| json!({"name": name, "account_id": acc, "stage": stage, "value": value, "expected_close_date": "2030-01-15"});
        let fleet = id_of(&app.post(&s, &s.path("deals"), mk("Fleet", "prospecting", "250000.00")).await);
        let pilot = id_of(&app.post(&s, &s.path("deals"), mk("Pilot", "prospecting", "1000.00")).await);
        let won = id_of(&app.post(&s, &s.path("deals"), mk("Recent win", "closed_won", "500.00")).await);
        let ancient = id_of(&app.post(&s, &s.path("deals"), mk("Ancient win", "closed_won", "9.00")).await);
        let long_ago = Utc::now().date_naive() - Duration::days(200);
        app.db
            .execute(
                &Q::new("UPDATE deals SET actual_close_date = $1 WHERE id = $2")
                    .bind(Value::Date(long_ago))
                    .bind(Value::Uuid(uuid::Uuid::parse_str(&ancient).expect("uuid"))),
            )
            .await
            .expect("backdate");

        let r = get(&app, &b, &format!("{base}/pipeline")).await;
        assert_eq!(r.status, StatusCode::OK);
        csp_clean(&r.text);
        assert!(r.text.contains("<script src=\"/assets/kanban.js\" defer></script>"));
        assert!(r.text.contains(&format!("data-csrf=\"{}\"", b.csrf)));
        let cols = columns(&r.text);
        assert_eq!(
            cols.keys().cloned().collect::<Vec<_>>(),
            ["closed_lost", "closed_won", "negotiation", "proposal", "prospecting", "qualification"]
        );
        let prospecting = &cols["prospecting"];
        for id in [&fleet, &pilot] {
            assert!(prospecting.contains(&format!("data-deal-id=\"{id}\" data-version=\"1\" tabindex=\"0\"")), "card {id}");
        }
        assert!(prospecting.contains("draggable=\"true\"") && prospecting.contains("Stark Industries"));
        assert!(prospecting.contains("<span class=\"count\" data-count>2</span>"));
        // 2,50,000 + 1,000 at 10%.
        assert!(prospecting.contains("₹2,51,000.00 · weighted ₹25,100.00"), "{prospecting}");
        assert!(prospecting.contains("Close 15 Jan 2030") && prospecting.contains("Test User"));
        assert!(prospecting.contains("<label for=\"move-") && prospecting.contains(">Move to</label>"));
        assert!(cols["closed_won"].contains(&won) && !r.text.contains(&ancient), "closed deals older than 90 days are left out");
        assert!(!cols["negotiation"].contains("data-deal-id"));

        // htmx/fetch refresh gets just the board.
        let frag = get_with(&app, &b, &format!("{base}/pipeline"), &[("hx-request", "true")]).await;
        assert_eq!(frag.status, StatusCode::OK);
        assert!(frag.text.trim_start().starts_with("<div id=\"board-wrap\">") && !frag.text.contains("<html"));
        assert!(frag.text.contains(&fleet));

        // A drop: stage changes, version bumps, the change is audited.
        let before_audit = app.count("SELECT COUNT(*) FROM audit_log").await;
        let r = fetch_move(&app, &b, &base, &fleet, "1", "negotiation").await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["ok"], true);
        assert_eq!(r.body["version"], 2);
        assert_eq!(r.body["stage"], "negotiation");
        let deal = app.get(&s, &s.path(&format!("deals/{fleet}"))).await;
        assert_eq!(
            (deal.body["stage"].as_str(), deal.body["version"].as_i64(), deal.body["probability"].as_i64()),
            (Some("negotiation"), Some(2), Some(75))
        );
        assert!(app.count("SELECT COUNT(*) FROM audit_log").await > before_audit);
        let history = app.get(&s, &s.path(&format!("deals/{fleet}/history"))).await;
        let rows = history.body["data"].as_array().expect("rows");
        let stage_row = rows.iter().find(|r| r["field"] == "stage").expect("stage audited");
        assert_eq!((stage_row["old_value"].as_str(), stage_row["new_value"].as_str()), (Some("prospecting"), Some("negotiation")));
        assert_eq!(stage_row["actor_id"].as_str(), Some(s.user_id.as_str()));
        assert_eq!(stage_row["user_agent"].as_str(), Some("kanban-test"));
        let r = get(&app, &b, &format!("{base}/pipeline")).await;
        assert!(columns(&r.text)["negotiation"].contains(&format!("data-deal-id=\"{fleet}\" data-version=\"2\"")));

        // A stale drop is refused and changes nothing.
        let before = app.snapshot().await;
        let r = fetch_move(&app, &b, &base, &fleet, "1", "proposal").await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(r.body["ok"], false);
        assert_eq!(r.body["version"], 2);
        assert!(r.body["message"].as_str().is_some_and(|m| m.contains("Someone else changed this deal")));
        assert_eq!(app.snapshot().await, before);
        assert_eq!(app.get(&s, &s.path(&format!("deals/{fleet}"))).await.body["stage"], "negotiation");
        // Unknown stage, unknown deal, no CSRF token.
        assert_eq!(fetch_move(&app, &b, &base, &fleet, "2", "heaven").await.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(fetch_move(&app, &b, &base, &uuid::Uuid::now_v7().to_string(), "1", "proposal").await.status, StatusCode::NOT_FOUND);
        let body = serde_urlencoded::to_string([("id", fleet.as_str()), ("version", "2"), ("stage", "proposal")]).expect("form");
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{base}/pipeline/move"))
            .header("cookie", &b.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-requested-with", "fetch")
            .body(Body::from(body))
            .expect("req");
        assert_eq!(app.raw(req).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.snapshot().await, before);

        // The no-JS form: a redirect back to the board with a message.
        let r = post_form(&app, &b, &format!("{base}/pipeline/move"), &[("id", &pilot), ("version", "1"), ("stage", "closed_won")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let to = location(&r);
        assert!(to.starts_with(&format!("{base}/pipeline?notice=")), "{to}");
        let page = get(&app, &b, &to).await;
        assert!(page.text.contains("Moved Pilot to Closed Won."));
        assert!(columns(&page.text)["closed_won"].contains(&pilot));
        let pilot_deal = app.get(&s, &s.path(&format!("deals/{pilot}"))).await;
        assert_eq!((pilot_deal.body["status"].as_str(), pilot_deal.body["version"].as_i64()), (Some("closed_won"), Some(2)));
        assert!(pilot_deal.body["actual_close_date"].is_string(), "closing sets the close date");
        let r = post_form(&app, &b, &format!("{base}/pipeline/move"), &[("id", &pilot), ("version", "1"), ("stage", "proposal")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let to = location(&r);
        assert!(to.contains("?error="), "{to}");
        assert!(get(&app, &b, &to).await.text.contains("Someone else changed this deal"));
        assert_eq!(app.get(&s, &s.path(&format!("deals/{pilot}"))).await.body["version"], 2);

        // Read-only members see the board but cannot move cards.
        let vb = sign_in(&app, &viewer.email).await;
        let r = get(&app, &vb, &format!("{base}/pipeline")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains(&fleet) && !r.text.contains("draggable=\"true\"") && !r.text.contains("Move to"));
        let r = fetch_move(&app, &vb, &base, &fleet, "2", "proposal").await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.body["ok"], false);
        assert_eq!(app.get(&s, &s.path(&format!("deals/{fleet}"))).await.body["version"], 2);
    }
}

#[tokio::test]
async fn settings_are_for_admins() {
    for app in TestApp::all().await {
        let s = app.register("owner@settings.test", "Settings Co").await;
        let rep = app.member(&s, "rep@settings.test", "sales_rep").await;
        let admin = sign_in(&app, "owner@settings.test").await;
        let rb = sign_in(&app, "rep@settings.test").await;
        let base = format!("/app/{}", s.company_id);

        for page in ["settings/members", "settings/fields", "settings/audit"] {
            let r = get(&app, &rb, &format!("{base}/{page}")).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{page}");
            let r = get(&app, &admin, &format!("{base}/{page}")).await;
            assert_eq!(r.status, StatusCode::OK, "{page}");
            csp_clean(&r.text);
            assert!(r.text.contains("aria-label=\"Settings\"") && r.text.contains("aria-current=\"page\""), "{page}: sub-navigation");
        }
        let before = app.snapshot().await;
        let r = post_form(
            &app,
            &rb,
            &format!("{base}/settings/members"),
            &[("email", "x@settings.test"), ("password", PASSWORD), ("role", "admin")],
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = post_form(&app, &rb, &format!("{base}/settings/members/{}", rep.user_id), &[("role", "admin")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r =
            post_form(&app, &rb, &format!("{base}/settings/fields"), &[("object", "leads"), ("name", "region"), ("type", "text")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.snapshot().await, before);
    }
}

#[tokio::test]
async fn members_form() {
    for app in TestApp::all().await {
        let s = app.register("owner@members.test", "Members Co").await;
        let b = sign_in(&app, "owner@members.test").await;
        let base = format!("/app/{}", s.company_id);
        let members_url = format!("{base}/settings/members");

        let r = get(&app, &b, &members_url).await;
        assert!(r.text.replace("<wbr>", "").contains("owner@members.test") && r.text.contains("<span class=\"badge purple\">Admin</span>"));

        // A bad email: the form comes back with the error beside the field and the input kept.
        let before = app.snapshot().await;
        let r = post_form(
            &app,
            &b,
            &members_url,
            &[("email", "priya-at-example"), ("name", "Priya Shah"), ("password", PASSWORD), ("role", "manager")],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("id=\"e-m-email\" role=\"alert\">is not a valid email address</p>"), "{}", r.text);
        assert!(r.text.contains("value=\"Priya Shah\"") && r.text.contains("value=\"priya-at-example\""));
        assert!(r.text.contains("<option value=\"manager\" selected>"));
        let r = post_form(&app, &b, &members_url, &[("email", "new@members.test"), ("password", "short"), ("role", "manager")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("must be 10 to 200 characters"));
        let r = post_form(&app, &b, &members_url, &[("email", "new@members.test"), ("role", "manager")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("is required to create a new user"));
        assert_eq!(app.snapshot().await, before);

        // A good one.
        let r = post_form(
            &app,
            &b,
            &members_url,
            &[("email", "priya@members.test"), ("name", "Priya Shah"), ("password", PASSWORD), ("role", "manager")],
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let page = get(&app, &b, &location(&r)).await;
        assert!(page.text.contains("Priya Shah was added as Manager."));
        let list = app.get(&s, &s.path("members")).await;
        let priya =
            list.body["data"].as_array().expect("rows").iter().find(|m| m["email"] == "priya@members.test").cloned().expect("added");
        assert_eq!(priya["role"], "manager");
        let priya_id = priya["user_id"].as_str().expect("id").to_string();
        // The new member can sign in.
        let pb = sign_in(&app, "priya@members.test").await;
        assert_eq!(get(&app, &pb, &format!("{base}/dashboard")).await.status, StatusCode::OK);
        // Adding the same person again is a conflict shown beside the email.
        let r = post_form(&app, &b, &members_url, &[("email", "priya@members.test"), ("role", "manager")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r.text.contains("already a member"));

        // Change a role; deactivate and reactivate.
        let member_url = format!("{members_url}/{priya_id}");
        let r = post_form(&app, &b, &member_url, &[("role", "sales_rep")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(get(&app, &b, &location(&r)).await.text.contains("Priya Shah is now Sales Rep."));
        let r = post_form(&app, &b, &member_url, &[("is_active", "false")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let find = |list: &Resp| {
            list.body["data"].as_array().expect("rows").iter().find(|m| m["user_id"] == priya_id.as_str()).cloned().expect("row")
        };
        let m = find(&app.get(&s, &s.path("members")).await);
        assert_eq!((m["role"].as_str(), m["is_active"].as_bool()), (Some("sales_rep"), Some(false)));
        assert_eq!(get(&app, &pb, &format!("{base}/dashboard")).await.status, StatusCode::NOT_FOUND, "no access once deactivated");
        let page = get(&app, &b, &members_url).await;
        assert!(page.text.contains("Reactivate Priya Shah"));
        let r = post_form(&app, &b, &member_url, &[("is_active", "true")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(find(&app.get(&s, &s.path("members")).await)["is_active"], true);

        // The last Admin cannot be demoted or deactivated: the store's message is shown.
        let before = app.snapshot().await;
        for fields in [[("role", "manager")], [("is_active", "false")]] {
            let r = post_form(&app, &b, &format!("{members_url}/{}", s.user_id), &fields).await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{fields:?}");
            assert!(r.text.contains("A company needs at least one active Admin."), "{}", r.text);
        }
        assert_eq!(app.snapshot().await, before);
        let r = post_form(&app, &b, &member_url, &[("role", "emperor")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = post_form(&app, &b, &format!("{members_url}/{}", uuid::Uuid::now_v7()), &[("role", "manager")]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn custom_fields_form() {
    for app in TestApp::all().await {
        let s = app.register("owner@fields.test", "Fields Co").await;
        let b = sign_in(&app, "owner@fields.test").await;
        let base = format!("/app/{}", s.company_id);
        let url = format!("{base}/settings/fields");

        let r = get(&app, &b, &url).await;
        assert!(r.text.contains("No custom fields on leads yet."));

        // A choice type without options: the error is beside the type, the input kept.
        let r = post_form(
            &app,
            &b,
            &url,
            &[("object", "deals"), ("name", "Region"), ("label", "Sales region"), ("type", "enum"), ("options", "")],
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("id=\"e-cf-type\" role=\"alert\">needs at least one option</p>"), "{}", r.text);
        assert!(r.text.contains("value=\"Sales region\"") && r.text.contains("<option value=\"deals\" selected>"));
        let r = post_form(&app, &b, &url, &[("object", "deals"), ("name", "9lives"), ("type", "text")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("id=\"e-cf-name\" role=\"alert\">must start with a letter"));
        assert_eq!(app.count("SELECT COUNT(*) FROM custom_fields").await, 0);

        let r = post_form(
            &app,
            &b,
            &url,
            &[
                ("object", "deals"),
                ("name", "Region"),
                ("label", "Sales region"),
                ("type", "enum"),
                ("options", "North, South ,East"),
                ("required", "true"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let page = get(&app, &b, &location(&r)).await;
        assert!(page.text.contains("Added the field Sales region to Deals."));
        assert!(page.text.contains("<code>cf_region</code>") && page.text.contains("North, South, East"));
        let meta = app.get(&s, &s.path("metadata/objects/deals")).await;
        let field = meta.body["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "cf_region").cloned().expect("created");
        assert_eq!(
            (field["label"].as_str(), field["type"].as_str(), field["required"].as_bool()),
            (Some("Sales region"), Some("enum"), Some(true))
        );
        // The same name again is a conflict.
        let r = post_form(&app, &b, &url, &[("object", "deals"), ("name", "region"), ("type", "text")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r.text.contains("a custom field named cf_region exists"));

        // Delete it.
        let r = post_form(&app, &b, &format!("{url}/deals/cf_region/delete"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("SELECT COUNT(*) FROM custom_fields").await, 0);
        let r = post_form(&app, &b, &format!("{url}/deals/cf_region/delete"), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn audit_log_page() {
    for app in TestApp::all().await {
        let s = app.register("owner@audit.test", "Audit Co").await;
        let b = sign_in(&app, "owner@audit.test").await;
        let base = format!("/app/{}", s.company_id);
        let url = format!("{base}/settings/audit");
        let acc = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Audited Ltd"})).await);
        let deal = id_of(&app.post(&s, &s.path("deals"), json!({"name": "Audited deal", "account_id": acc, "value": "10.00"})).await);
        // A creation is one audit row: enough of them to fill more than one page.
        for i in 0..50 {
            id_of(
                &app.post(
                    &s,
                    &s.path("leads"),
                    json!({"first_name": format!("F{i}"), "last_name": format!("L{i}"), "email": format!("l{i}@x.in")}),
                )
                .await,
            );
        }
        let r = app.patch(&s, &s.path(&format!("deals/{deal}")), json!({"stage": "proposal", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK);

        let r = get(&app, &b, &url).await;
        assert_eq!(r.status, StatusCode::OK);
        let total = app.count("SELECT COUNT(*) FROM audit_log").await;
        assert!(total > 50, "enough rows to page: {total}");
        let seqs = |html: &str| -> Vec<i64> {
            html.match_indices("data-seq=\"")
                .map(|(i, m)| html[i + m.len()..].split('"').next().expect("seq").parse().expect("number"))
                .collect()
        };
        let first = seqs(&r.text);
        assert_eq!(first.len(), 50);
        assert!(first.windows(2).all(|w| w[0] > w[1]), "newest first");
        assert_eq!(first[0], total, "the newest row is first");
        assert!(r.text.contains("Test User") && r.text.contains("10.1.2.3") && r.text.contains("corvid-tests/1.0"));
        assert!(r.text.contains(&format!("href=\"{base}/deals/{deal}\">Audited deal</a>")), "records link to themselves");
        let older = r
            .text
            .split("rel=\"next\"")
            .next()
            .and_then(|h| h.rsplit("href=\"").next())
            .map(|h| unescape(h.trim_end().trim_end_matches('"')))
            .expect("older link");
        assert!(older.contains("before="), "{older}");
        let r2 = get(&app, &b, &older).await;
        assert_eq!(r2.status, StatusCode::OK);
        let second = seqs(&r2.text);
        assert!(!second.is_empty() && second[0] < *first.last().expect("last"));
        assert!(r2.text.contains(">Newest</a>"));

        // Filters.
        let r = get(&app, &b, &format!("{url}?object=deals&record={deal}&action=update")).await;
        let rows = seqs(&r.text);
        assert!(!rows.is_empty());
        assert!(r.text.contains(">proposal</td>") && r.text.contains(">prospecting</td>"));
        assert!(!r.text.contains("Audited Ltd</a>"), "only the deal's rows");
        assert!(
            r.text.contains(&format!("<option value=\"{}\" selected>", s.user_id)) || r.text.contains("<option value=\"deals\" selected>")
        );
        let today = Utc::now().date_naive();
        let r =
            get(&app, &b, &format!("{url}?from={}&to={}&actor={}", today - Duration::days(1), today + Duration::days(1), s.user_id)).await;
        assert_eq!(seqs(&r.text).len(), 50);
        let r = get(&app, &b, &format!("{url}?from=2000-01-01&to=2000-01-02")).await;
        assert!(seqs(&r.text).is_empty() && r.text.contains("No audit entries match these filters."));
        let r = get(&app, &b, &format!("{url}?record=not-a-uuid")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("Record id must be a UUID") && r.text.contains("value=\"not-a-uuid\""));
    }
}
