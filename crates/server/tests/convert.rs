//! Lead qualification and account-first conversion through the API, on SQLite and (when
//! CORVID_TEST_POSTGRES_URL is set) PostgreSQL: BANT/MEDDICC answers and outcomes, recycling
//! and its job, the risk score, eligibility rules with overrides and automatic conversion,
//! and conversions that are atomic, idempotent and tenant-safe.

mod common;

use axum::http::{Method, StatusCode};
use chrono::Duration;
use common::*;
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use corvid_server::jobs::{self as rt, Registry, WorkerConfig};
use corvid_store::jobs::{self, JobState, NewJob};
use corvid_store::Q;
use serde_json::{json, Value as Json};
use tokio::sync::watch;
use uuid::Uuid;

fn id_of(r: &Resp) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id in {r:?}")).to_string()
}

async fn new_lead(app: &TestApp, s: &Session, body: Json) -> String {
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    id_of(&r)
}

fn priya() -> Json {
    json!({
        "first_name": "Priya", "last_name": "Sharma", "company_name": "Acme Robotics Pvt Ltd",
        "email": "priya@acmerobotics.in", "phone": "+919812345678", "job_title": "Head of Operations",
        "city": "Pune", "country": "IN", "source": "website", "interest_product": "Fleet CRM",
        "authority_level": "decision_maker", "budget_range": "₹5–20 lakh", "notes": "Met at the expo 🤖",
    })
}

fn strong_bant() -> Json {
    json!({"framework": "bant", "outcome": "qualified", "reason": "Budget approved for Q3",
        "answers": {"budget_score": 8, "authority_score": 9, "need_score": 9, "timeline_score": 7, "need_notes": "Leads lost in Excel"}})
}

async fn qualified_lead(app: &TestApp, s: &Session, body: Json) -> String {
    let id = new_lead(app, s, body).await;
    let r = app.post(s, &s.path(&format!("leads/{id}/qualify")), strong_bant()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["lead"]["status"], "qualified", "{r:?}");
    id
}

async fn conversions(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM lead_conversions").await
}

async fn audit_actions(app: &TestApp, admin: &Session, record: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let r = app.get(admin, &admin.path(&format!("audit?record_id={record}&limit=200"))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["data"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or("").to_string(),
                a["field"].as_str().map(str::to_string),
                a["actor_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[tokio::test]
async fn conversion_creates_account_contact_deal_and_activity_with_links() {
    for app in TestApp::all().await {
        let s = app.register(&format!("conv-{}@example.com", app.backend), "Convert Co").await;
        let id = qualified_lead(&app, &s, priya()).await;
        let before = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;

        let path = s.path(&format!("leads/{id}/convert"));
        let body = json!({
            "account": {"new": {"industry": "Manufacturing", "gstin": "27AAPFU0939F1ZV"}},
            "contact": {"new": {"department": "Operations"}},
            "deal": {"amount": "1250000.50", "currency": "INR", "stage": "proposal", "close_date": "2031-03-31"},
            "activity": {"type": "meeting", "subject": "Kick-off call", "notes": "Agreed next steps"},
        });
        let r = app.post(&s, &path, body.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let c = &r.body;
        // The account from the lead, with the fields given.
        assert_eq!(c["account"]["name"], "Acme Robotics Pvt Ltd");
        assert_eq!(c["account"]["website"], "https://acmerobotics.in");
        assert_eq!(c["account"]["billing_city"], "Pune");
        assert_eq!(c["account"]["industry"], "Manufacturing");
        assert_eq!(c["account"]["owner_id"], s.user_id.as_str());
        let account = c["account"]["id"].as_str().expect("account").to_string();
        // The contact under it.
        assert_eq!(c["contact"]["full_name"], "Priya Sharma");
        assert_eq!(c["contact"]["email"], "priya@acmerobotics.in");
        assert_eq!(c["contact"]["role"], "decision_maker");
        assert_eq!(c["contact"]["department"], "Operations");
        assert_eq!(c["contact"]["account_id"], account.as_str());
        let contact = c["contact"]["id"].as_str().expect("contact").to_string();
        // The deal, linked to all three.
        assert_eq!(c["deal"]["name"], "Acme Robotics Pvt Ltd - Fleet CRM");
        assert_eq!((c["deal"]["value"].as_str(), c["deal"]["currency"].as_str()), (Some("1250000.50"), Some("INR")));
        assert_eq!(c["deal"]["stage"], "proposal");
        assert_eq!(c["deal"]["expected_close_date"], "2031-03-31");
        assert_eq!(c["deal"]["account_id"], account.as_str());
        assert_eq!(c["deal"]["primary_contact_id"], contact.as_str());
        assert_eq!(c["deal"]["lead_id"], id.as_str());
        let deal = c["deal"]["id"].as_str().expect("deal").to_string();
        // The first activity, linked to everything.
        assert_eq!((c["activity"]["activity_type"].as_str(), c["activity"]["title"].as_str()), (Some("meeting"), Some("Kick-off call")));
        for (f, v) in [("lead_id", &id), ("account_id", &account), ("contact_id", &contact), ("deal_id", &deal)] {
            assert_eq!(c["activity"][f], v.as_str(), "activity.{f}");
        }
        assert_eq!(c["created"], json!({"account": true, "contact": true, "deal": true, "activity": true}));
        assert_eq!(c["links"]["deal_id"], deal.as_str());
        assert_eq!(c["override_used"], false);

        // The lead is converted with links, and every other field is kept.
        let after = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;
        assert_eq!((after["status"].as_str(), after["stage"].as_str()), (Some("converted"), Some("converted")));
        assert_eq!(after["converted_account_id"], account.as_str());
        assert_eq!(after["converted_contact_id"], contact.as_str());
        assert_eq!(after["converted_deal_id"], deal.as_str());
        assert!(after["converted_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{after}");
        // Conversion links change, and what the engines derive from the logged activity.
        let changed = [
            "status",
            "stage",
            "version",
            "updated_at",
            "converted_at",
            "converted_account_id",
            "converted_contact_id",
            "converted_deal_id",
            "last_activity_at",
            "lead_score",
            "score_explanation",
            "predictive_score",
        ];
        for (k, v) in before.as_object().expect("lead") {
            if !changed.contains(&k.as_str()) {
                assert_eq!(&after[k], v, "lead field {k} was kept");
            }
        }
        // Audited: the creations, the status change and each link.
        let actions = audit_actions(&app, &s, &id).await;
        for f in ["converted_account_id", "converted_contact_id", "converted_deal_id", "converted_at"] {
            assert!(actions.iter().any(|(a, field, _)| a == "convert" && field.as_deref() == Some(f)), "{f}: {actions:?}");
        }
        assert!(actions.iter().any(|(a, field, _)| a == "update" && field.as_deref() == Some("status")));
        assert!(!audit_actions(&app, &s, &account).await.is_empty());
        let verify = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(verify.body["ok"], true, "{verify:?}");

        // A repeat returns the same result and creates nothing.
        let snap = app.snapshot().await;
        let again = app.post(&s, &path, body.clone()).await;
        assert_eq!(again.status, StatusCode::OK, "{again:?}");
        assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(again.body["links"], r.body["links"]);
        assert_eq!(again.body["created"], r.body["created"]);
        // Even with a different body: the lead is converted once.
        let other_body = app.post(&s, &path, json!({"deal": {"name": "Another"}})).await;
        assert_eq!((other_body.status, &other_body.body["links"]), (StatusCode::OK, &r.body["links"]));
        assert_eq!(app.snapshot().await, snap);
        assert_eq!(conversions(&app).await, 1);

        // GET on a converted lead says so.
        let preview = app.get(&s, &path).await;
        assert_eq!((preview.status, &preview.body["converted"]), (StatusCode::OK, &json!(true)), "{preview:?}");
        // Qualification is closed once converted.
        let r = app.post(&s, &s.path(&format!("leads/{id}/qualify")), json!({"outcome": "qualified"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    }
}

#[tokio::test]
async fn idempotency_keys_replay_and_conflict() {
    for app in TestApp::all().await {
        let s = app.register(&format!("idem-{}@example.com", app.backend), "Idem Co").await;
        let a = qualified_lead(&app, &s, priya()).await;
        let b = qualified_lead(&app, &s, json!({"last_name": "Kumar", "company_name": "Kumar Traders"})).await;
        let body = json!({"activity": {"subject": "Welcome"}});
        let key = [("idempotency-key", "conv-1")];
        let first = app.call(Method::POST, &s.path(&format!("leads/{a}/convert")), Some(&s.token), Some(body.clone()), &key).await;
        assert_eq!(first.status, StatusCode::CREATED, "{first:?}");
        let replay = app.call(Method::POST, &s.path(&format!("leads/{a}/convert")), Some(&s.token), Some(body.clone()), &key).await;
        assert_eq!((replay.status, &replay.body["links"]), (StatusCode::OK, &first.body["links"]));
        // The same key for another lead, or another body, is a conflict and writes nothing.
        let snap = app.snapshot().await;
        let r = app.call(Method::POST, &s.path(&format!("leads/{b}/convert")), Some(&s.token), Some(body.clone()), &key).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(is_problem(&r));
        let r = app.call(Method::POST, &s.path(&format!("leads/{a}/convert")), Some(&s.token), Some(json!({})), &key).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(app.snapshot().await, snap);
        // Two conversions of one lead at the same moment: one converts, the other replays.
        let c = qualified_lead(&app, &s, json!({"last_name": "Race", "company_name": "Race Conditions Ltd"})).await;
        let race = s.path(&format!("leads/{c}/convert"));
        let (x, y) = tokio::join!(app.post(&s, &race, json!({"deal": {}})), app.post(&s, &race, json!({"deal": {}})));
        let mut statuses = [x.status.as_u16(), y.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 201], "{x:?} {y:?}");
        assert_eq!(x.body["links"], y.body["links"]);
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM deals WHERE lead_id = '{c}'")).await, 1);
        let snap = app.snapshot().await;
        let long = "k".repeat(300);
        let r =
            app.call(Method::POST, &s.path(&format!("leads/{b}/convert")), Some(&s.token), Some(body), &[("idempotency-key", &long)]).await;
        assert!(r.status == StatusCode::BAD_REQUEST && errors_name(&r, "Idempotency-Key"), "{r:?}");
        assert_eq!(app.snapshot().await, snap);
    }
}

#[tokio::test]
async fn a_failure_anywhere_leaves_nothing_behind() {
    for app in TestApp::all().await {
        let s = app.register(&format!("atomic-{}@example.com", app.backend), "Atomic Co").await;
        let id = qualified_lead(&app, &s, priya()).await;
        let path = s.path(&format!("leads/{id}/convert"));
        let snap = app.snapshot().await;
        let cases: Vec<(Json, &str, StatusCode)> = vec![
            // The deal part fails after the account and contact were written: all rolled back.
            (json!({"deal": {"currency": "XXX", "amount": "10"}}), "deal.currency", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {"amount": "ten lakh"}}), "deal.amount", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {"stage": "won"}}), "deal.stage", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {"close_date": "31/03/2031"}}), "deal.close_date", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {"name": "x".repeat(300)}}), "deal.name", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {}, "activity": {"type": "telepathy"}}), "activity.type", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"contact": {"new": {"email": "not-an-email"}}}), "contact.new.email", StatusCode::UNPROCESSABLE_ENTITY),
            (
                json!({"contact": {"new": {"account_id": Uuid::now_v7().to_string()}}}),
                "contact.new.account_id",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (json!({"account": {"new": {"name": null}}}), "account.new.name", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"account": {"new": {"nonsense": 1}}}), "account.new.nonsense", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"account": {"new": {}, "existing_id": Uuid::now_v7().to_string()}}), "account", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"account": {}}), "account", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"account": {"existing_id": "12"}}), "account.existing_id", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {"amount": [1]}}), "deal.amount", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"deal": {"name": 7}}), "deal.name", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"override_qualification": "yes"}), "override_qualification", StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"surprise": true}), "surprise", StatusCode::UNPROCESSABLE_ENTITY),
        ];
        for (body, field, status) in cases {
            let r = app.post(&s, &path, body.clone()).await;
            assert_eq!(r.status, status, "{body}: {r:?}");
            assert!(is_problem(&r) && errors_name(&r, field), "{body} should name {field}: {r:?}");
            assert_eq!(app.snapshot().await, snap, "{body} changed something");
        }
        let r = app.call(Method::POST, &path, Some(&s.token), None, &[("content-type", "application/json")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
        let r = app.post(&s, &s.path("leads/not-a-uuid/convert"), json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
        assert_eq!(app.snapshot().await, snap);
        assert_eq!(conversions(&app).await, 0);
        let lead = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;
        assert_eq!((lead["status"].as_str(), &lead["converted_account_id"]), (Some("qualified"), &Json::Null));
        // And then it works.
        let r = app.post(&s, &path, json!({"deal": {"amount": "10", "currency": "USD"}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["deal"]["currency"], "USD");
    }
}

#[tokio::test]
async fn existing_accounts_and_contacts_are_suggested_and_attached() {
    for app in TestApp::all().await {
        let s = app.register(&format!("attach-{}@example.com", app.backend), "Attach Co").await;
        let acme =
            app.post(&s, &s.path("accounts"), json!({"name": "ACME Robotics Private Limited", "website": "www.acmerobotics.in"})).await;
        let acme = id_of(&acme);
        let unrelated = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Zenith Foods"})).await);
        let priya_contact = id_of(
            &app.post(&s, &s.path("contacts"), json!({"first_name": "Priya", "last_name": "S", "email": "PRIYA@acmerobotics.in"})).await,
        );
        let id = qualified_lead(&app, &s, priya()).await;

        let preview = app.get(&s, &s.path(&format!("leads/{id}/convert"))).await;
        assert_eq!(preview.status, StatusCode::OK, "{preview:?}");
        let accounts = preview.body["suggestions"]["accounts"].as_array().expect("accounts").clone();
        assert_eq!(accounts.first().map(|a| a["id"].clone()), Some(json!(acme)), "{preview:?}");
        let reasons = accounts[0]["reasons"].to_string();
        assert!(reasons.contains("acmerobotics.in"), "{reasons}");
        assert!(!accounts.iter().any(|a| a["id"] == unrelated.as_str()));
        let contacts = preview.body["suggestions"]["contacts"].as_array().expect("contacts").clone();
        assert_eq!(contacts.first().map(|c| c["id"].clone()), Some(json!(priya_contact)));
        assert_eq!(preview.body["suggestions"]["account_prefill"]["name"], "Acme Robotics Pvt Ltd");
        assert_eq!(preview.body["eligibility"]["eligible"], true);
        // A GSTIN given in the query matches on it.
        let gst = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Totally Different", "gstin": "27AAPFU0939F1ZV"})).await);
        let p = app.get(&s, &s.path(&format!("leads/{id}/convert?gstin=27AAPFU0939F1ZV"))).await;
        assert!(p.body["suggestions"]["accounts"].as_array().expect("a").iter().any(|a| a["id"] == gst.as_str()), "{p:?}");
        let r = app.get(&s, &s.path(&format!("leads/{id}/convert?colour=blue"))).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "colour"), "{r:?}");

        // Attach both; nothing new is created and the contact joins the account.
        let (accounts_before, contacts_before) =
            (app.count("SELECT COUNT(*) FROM accounts").await, app.count("SELECT COUNT(*) FROM contacts").await);
        let r = app
            .post(
                &s,
                &s.path(&format!("leads/{id}/convert")),
                json!({"account": {"existing_id": acme}, "contact": {"existing_id": priya_contact}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["created"], json!({"account": false, "contact": false, "deal": false, "activity": false}));
        assert_eq!(r.body["contact"]["account_id"], acme.as_str());
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts").await, accounts_before);
        assert_eq!(app.count("SELECT COUNT(*) FROM contacts").await, contacts_before);
        let lead = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;
        assert_eq!((&lead["converted_account_id"], &lead["converted_deal_id"]), (&json!(acme), &Json::Null));

        // A contact of another account, or a deactivated account, is refused.
        let other = qualified_lead(&app, &s, json!({"last_name": "Rao", "company_name": "Rao & Sons"})).await;
        let path = s.path(&format!("leads/{other}/convert"));
        let snap = app.snapshot().await;
        let r = app.post(&s, &path, json!({"account": {"existing_id": unrelated}, "contact": {"existing_id": priya_contact}})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "contact.existing_id"), "{r:?}");
        assert_eq!(app.delete(&s, &s.path(&format!("accounts/{unrelated}"))).await.status, StatusCode::OK);
        let snap2 = app.snapshot().await;
        let r = app.post(&s, &path, json!({"account": {"existing_id": unrelated}})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "account.existing_id"), "{r:?}");
        assert_eq!(app.snapshot().await, snap2);
        assert_ne!(snap, snap2, "the deactivation itself was a change");
        // Accounts are never deleted by conversion: the deactivated one is still there.
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM accounts WHERE id = '{unrelated}'")).await, 1);
    }
}

#[tokio::test]
async fn another_companys_ids_are_not_found_and_change_nothing() {
    for app in TestApp::all().await {
        let s = app.register(&format!("tenant-{}@example.com", app.backend), "Mine Co").await;
        let x = app.register(&format!("tenant-x-{}@example.com", app.backend), "Theirs Co").await;
        let their_account = id_of(&app.post(&x, &x.path("accounts"), json!({"name": "Theirs Account"})).await);
        let their_contact = id_of(&app.post(&x, &x.path("contacts"), json!({"last_name": "Theirs"})).await);
        let their_lead = qualified_lead(&app, &x, json!({"last_name": "Secret", "company_name": "Secret Ltd"})).await;
        let id = qualified_lead(&app, &s, priya()).await;
        let snap = app.snapshot().await;
        let path = s.path(&format!("leads/{id}/convert"));
        for body in [
            json!({"account": {"existing_id": their_account}}),
            json!({"contact": {"existing_id": their_contact}}),
            json!({"account": {"new": {}}, "contact": {"existing_id": their_contact}, "deal": {}}),
        ] {
            let r = app.post(&s, &path, body.clone()).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{body}: {r:?}");
            assert!(is_problem(&r));
            assert_eq!(app.snapshot().await, snap, "{body}");
        }
        // Their lead, through our company, does not exist.
        for (m, p) in [
            (Method::POST, format!("leads/{their_lead}/convert")),
            (Method::GET, format!("leads/{their_lead}/convert")),
            (Method::GET, format!("leads/{their_lead}/qualification")),
            (Method::POST, format!("leads/{their_lead}/qualify")),
            (Method::GET, format!("leads/{their_lead}/risk-score")),
        ] {
            let body = match (&m, p.ends_with("qualify")) {
                (&Method::POST, true) => Some(json!({"outcome": "qualified"})),
                (&Method::POST, false) => Some(json!({})),
                _ => None,
            };
            let r = app.call(m.clone(), &s.path(&p), Some(&s.token), body, &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {p}: {r:?}");
        }
        // Their company's routes, with our token, do not exist either.
        let r = app.post(&s, &x.path(&format!("leads/{their_lead}/convert")), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = app.get(&s, &x.path("data/conversion/rules")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert_eq!(app.snapshot().await, snap);
        assert_eq!(conversions(&app).await, 0);
        // Without a token: 401.
        let r = app.call(Method::POST, &path, None, Some(json!({})), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn unqualified_leads_need_an_audited_override_by_admin_or_manager() {
    for app in TestApp::all().await {
        let admin = app.register(&format!("ovr-{}@example.com", app.backend), "Override Co").await;
        let rep = app.member(&admin, &format!("ovr-rep-{}@example.com", app.backend), "sales_rep").await;
        let manager = app.member(&admin, &format!("ovr-mgr-{}@example.com", app.backend), "manager").await;
        let viewer = app.member(&admin, &format!("ovr-ro-{}@example.com", app.backend), "read_only").await;
        app.reports_to(&rep, &manager).await;
        let id = new_lead(&app, &rep, json!({"last_name": "Early", "company_name": "Early Stage Ltd", "status": "contacted"})).await;
        let path = admin.path(&format!("leads/{id}/convert"));
        let snap = app.snapshot().await;

        let r = app.post(&rep, &path, json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "status"), "{r:?}");
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("Admin or Manager")), "{r:?}");
        let r = app.post(&rep, &path, json!({"override_qualification": true})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.post(&viewer, &path, json!({"override_qualification": true})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.post(&manager, &path, json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("override_qualification")), "{r:?}");
        assert_eq!(app.snapshot().await, snap);

        let r = app.post(&manager, &path, json!({"override_qualification": true, "deal": {"amount": "500"}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["override_used"], true);
        let actions = audit_actions(&app, &admin, &id).await;
        let ovr = actions.iter().find(|(a, _, _)| a == "conversion_override").unwrap_or_else(|| panic!("{actions:?}"));
        assert_eq!(ovr.2.as_deref(), Some(manager.user_id.as_str()), "the override names the manager");

        // A qualified lead needs no override, whoever converts it; the flag is then not used.
        let q = qualified_lead(&app, &rep, json!({"last_name": "Ready", "company_name": "Ready Ltd"})).await;
        let r = app.post(&rep, &admin.path(&format!("leads/{q}/convert")), json!({"override_qualification": true})).await;
        assert_eq!((r.status, &r.body["override_used"]), (StatusCode::CREATED, &json!(false)), "{r:?}");
        assert!(!audit_actions(&app, &admin, &q).await.iter().any(|(a, _, _)| a == "conversion_override"));
        // Read Only members cannot qualify either.
        let l = new_lead(&app, &rep, json!({"last_name": "Viewer"})).await;
        let r = app.post(&viewer, &admin.path(&format!("leads/{l}/qualify")), strong_bant()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.get(&viewer, &admin.path(&format!("leads/{l}/qualification"))).await;
        assert_eq!(r.status, StatusCode::OK, "reading is fine: {r:?}");
    }
}

#[tokio::test]
async fn qualification_answers_recycle_and_disqualify() {
    for app in TestApp::all().await {
        let s = app.register(&format!("qual-{}@example.com", app.backend), "Qualify Co").await;
        let id = new_lead(&app, &s, priya()).await;
        let q = s.path(&format!("leads/{id}/qualify"));
        let r = app.get(&s, &s.path(&format!("leads/{id}/qualification"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!((r.body["completeness"]["overall"].as_i64(), r.body["suggestion"]["outcome"].as_str()), (Some(0), Some("undecided")));
        assert_eq!(r.body["eligibility"]["eligible"], false);

        // Answers only: stored, status unchanged.
        let r = app
            .post(&s, &q, json!({"framework": "meddicc", "answers": {"economic_buyer": "Anil, CFO", "identify_pain": "Missed follow-ups", "competition": "Zoho CRM"}}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["lead"]["meddicc_economic_buyer"], "Anil, CFO");
        assert_eq!(r.body["lead"]["status"], "new");
        assert_eq!(r.body["qualification"]["completeness"]["meddicc"], 43);
        assert_eq!(r.body["auto_conversion"]["attempted"], false);

        // Bad input names the field and changes nothing.
        let snap = app.snapshot().await;
        let bad: Vec<(Json, &str)> = vec![
            (json!({"framework": "bant", "answers": {"budget_score": 11}}), "answers.budget_score"),
            (json!({"framework": "bant", "answers": {"budget_score": "high"}}), "answers.budget_score"),
            (json!({"framework": "bant", "answers": {"champion": "x"}}), "answers.champion"),
            (json!({"framework": "spin", "answers": {}}), "framework"),
            (json!({"answers": {"budget_score": 3}}), "framework"),
            (json!({}), "outcome"),
            (json!({"outcome": "maybe"}), "outcome"),
            (json!({"outcome": "unqualified", "unqualified_action": "disqualify"}), "reason"),
            (json!({"outcome": "unqualified", "reason": "No budget"}), "unqualified_action"),
            (json!({"outcome": "unqualified", "reason": "No budget", "unqualified_action": "recycle"}), "recycle_date"),
            (
                json!({"outcome": "unqualified", "reason": "No budget", "unqualified_action": "recycle", "recycle_date": "2001-01-01"}),
                "recycle_date",
            ),
            (
                json!({"outcome": "unqualified", "reason": "No budget", "unqualified_action": "recycle", "recycle_date": "soon"}),
                "recycle_date",
            ),
            (json!({"outcome": "unqualified", "reason": "x".repeat(256), "unqualified_action": "disqualify"}), "reason"),
            (json!({"outcome": "qualified", "unqualified_action": "recycle"}), "unqualified_action"),
            (json!({"outcome": "qualified", "extra": 1}), "extra"),
            (json!({"framework": "meddicc", "answers": {"metrics": "m".repeat(20_001)}}), "answers.metrics"),
        ];
        for (body, field) in bad {
            let r = app.post(&s, &q, body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
            assert!(is_problem(&r) && errors_name(&r, field), "{body} should name {field}: {r:?}");
        }
        let r = app.post(&s, &q, json!({"outcome": "qualified", "version": 1})).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{r:?}");
        assert_eq!(app.snapshot().await, snap);

        // Recycle: back to nurturing on a date.
        let date = (now_micros() + Duration::days(30)).date_naive().to_string();
        let r = app
            .post(&s, &q, json!({"outcome": "unqualified", "reason": "No budget until next FY ✓", "unqualified_action": "recycle", "recycle_date": date}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["lead"]["status"], "recycled");
        assert_eq!(r.body["lead"]["recycle_date"], date.as_str());
        assert_eq!(r.body["lead"]["qualification_reason"], "No budget until next FY ✓");
        // Disqualify: closed, with the reason; the recycle date goes.
        let r = app.post(&s, &q, json!({"outcome": "unqualified", "reason": "Student project", "unqualified_action": "disqualify"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!((r.body["lead"]["status"].as_str(), &r.body["lead"]["recycle_date"]), (Some("disqualified"), &Json::Null));
        // Qualified after all, with a full BANT.
        let r = app.post(&s, &q, strong_bant()).await;
        assert_eq!(r.body["lead"]["status"], "qualified", "{r:?}");
        let qual = &r.body["qualification"];
        assert_eq!(qual["suggestion"]["outcome"], "qualified");
        assert_eq!(qual["suggestion"]["bant_total"], 33);
        assert_eq!(qual["eligibility"]["eligible"], true);
        let history: Vec<&str> = qual["history"].as_array().expect("history").iter().filter_map(|h| h["action"].as_str()).collect();
        assert_eq!(history, ["qualify", "disqualify", "recycle", "save_answers"]);
        // Every decision is audited with its reason.
        let actions = audit_actions(&app, &s, &id).await;
        for a in ["recycle", "disqualify", "qualify"] {
            assert!(actions.iter().any(|(x, f, _)| x == a && f.as_deref() == Some("qualification")), "{a}: {actions:?}");
        }
        // Deleted leads are gone.
        assert_eq!(app.delete(&s, &s.path(&format!("leads/{id}"))).await.status, StatusCode::OK);
        assert_eq!(app.post(&s, &q, strong_bant()).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&s, &s.path(&format!("leads/{id}/qualification"))).await.status, StatusCode::NOT_FOUND);
    }
}

fn test_config() -> WorkerConfig {
    WorkerConfig {
        poll: std::time::Duration::from_millis(20),
        lease: std::time::Duration::from_secs(5),
        grace: std::time::Duration::from_secs(2),
        node: "recycle-test".into(),
    }
}

#[tokio::test]
async fn recycled_leads_return_to_nurturing_on_their_date() {
    for app in TestApp::all().await {
        let s = app.register(&format!("recycle-{}@example.com", app.backend), "Recycle Co").await;
        let soon = new_lead(&app, &s, json!({"last_name": "Soon"})).await;
        let later = new_lead(&app, &s, json!({"last_name": "Later"})).await;
        let recycle =
            |date: String| json!({"outcome": "unqualified", "reason": "Not now", "unqualified_action": "recycle", "recycle_date": date});
        // Two days ahead: "after today" is in the company's time zone.
        let soon_date = (now_micros() + Duration::days(2)).date_naive().to_string();
        let next_year = (now_micros() + Duration::days(365)).date_naive().to_string();
        assert_eq!(app.post(&s, &s.path(&format!("leads/{soon}/qualify")), recycle(soon_date)).await.status, StatusCode::OK);
        assert_eq!(app.post(&s, &s.path(&format!("leads/{later}/qualify")), recycle(next_year)).await.status, StatusCode::OK);

        // Today nothing is due.
        let report = corvid_store::qualification::recycle_due(&app.db, now_micros(), "test").await.expect("run");
        assert_eq!(report.moved, 0, "{report:?}");
        // Three days on, the first one is back; the other waits.
        let report = corvid_store::qualification::recycle_due(&app.db, now_micros() + Duration::days(3), "test").await.expect("run");
        assert_eq!((report.moved, report.skipped.len()), (1, 0), "{report:?}");
        let lead = app.get(&s, &s.path(&format!("leads/{soon}"))).await.body;
        assert_eq!((lead["status"].as_str(), &lead["recycle_date"]), (Some("nurturing"), &Json::Null));
        assert_eq!(app.get(&s, &s.path(&format!("leads/{later}"))).await.body["status"], "recycled");
        // The change is the system's, audited, and in the history.
        let history = app.get(&s, &s.path(&format!("leads/{soon}/qualification"))).await.body;
        assert_eq!(history["history"][0]["action"], "return_to_nurturing");
        let rows = app.get(&s, &s.path(&format!("audit?record_id={soon}&action=update"))).await;
        let status_row =
            rows.body["data"].as_array().expect("rows").iter().find(|r| r["field"] == "status" && r["new_value"] == "nurturing").cloned();
        assert_eq!(status_row.map(|r| r["actor_id"].clone()), Some(Json::Null), "{rows:?}");
        // Running again changes nothing.
        let report = corvid_store::qualification::recycle_due(&app.db, now_micros() + Duration::days(3), "test").await.expect("run");
        assert_eq!(report.moved, 0);

        // The registered job does the same on schedule.
        assert!(Registry::builtin().kinds().contains(&corvid_server::api::leads::RECYCLE_KIND.to_string()));
        rt::install_defaults(&app.db, now_micros()).await.expect("defaults");
        let sched = jobs::system_schedule(&app.db, corvid_server::api::leads::RECYCLE_SCHEDULE).await.expect("read").expect("schedule");
        assert_eq!((sched.kind.as_str(), sched.cron.as_str()), ("leads.recycle", "15 0 * * *"));
        let past = (now_micros() - Duration::days(1)).date_naive();
        app.db
            .execute(
                &Q::new("UPDATE leads SET recycle_date = $1 WHERE id = $2")
                    .bind(Value::Date(past))
                    .bind(Value::Uuid(Uuid::parse_str(&later).expect("id"))),
            )
            .await
            .expect("backdate");
        let (stop, rx) = watch::channel(false);
        let handles = rt::spawn_workers_with(app.db.clone(), Registry::builtin(), 1, test_config(), rx);
        let (job, _) = jobs::enqueue(&app.db, &NewJob::new("leads.recycle", json!({})), now_micros()).await.expect("enqueue");
        let mut done = None;
        for _ in 0..200 {
            let j = jobs::get_any(&app.db, job.id).await.expect("job");
            if j.state.is_terminal() {
                done = Some(j);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = stop.send(true);
        for h in handles {
            h.await.expect("worker");
        }
        let done = done.expect("the job finished");
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
        assert_eq!(done.result.as_ref().map(|r| r["moved"].clone()), Some(json!(1)), "{done:?}");
        assert_eq!(app.get(&s, &s.path(&format!("leads/{later}"))).await.body["status"], "nurturing");
    }
}

#[tokio::test]
async fn risk_score_explains_its_factors() {
    for app in TestApp::all().await {
        let s = app.register(&format!("risk-{}@example.com", app.backend), "Risk Co").await;
        let x = app.register(&format!("risk-x-{}@example.com", app.backend), "Risk Other").await;
        let id = new_lead(&app, &s, json!({"last_name": "Cold", "authority_level": "user", "meddicc_competition": "Salesforce"})).await;
        let path = s.path(&format!("leads/{id}/risk-score"));
        let factor =
            |r: &Resp, key: &str| r.body["factors"].as_array().expect("factors").iter().find(|f| f["key"] == key).cloned().expect("factor");

        let r = app.get(&s, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        for key in ["no_economic_buyer", "unknown_budget", "competitor_present", "low_influence"] {
            assert_eq!(factor(&r, key)["applies"], true, "{key}: {r:?}");
        }
        assert!(factor(&r, "competitor_present")["detail"].as_str().is_some_and(|d| d.contains("Salesforce")));
        // A brand-new lead is not yet cold, nor old.
        assert_eq!(factor(&r, "no_recent_activity")["applies"], false);
        assert_eq!(factor(&r, "lead_age")["applies"], false);
        assert_eq!((r.body["score"].as_i64(), r.body["level"].as_str()), (Some(70), Some("high")), "{r:?}");

        // Old and quiet: inactivity and age count; a tighter window too.
        let old = now_micros() - Duration::days(120);
        app.db
            .execute(
                &Q::new("UPDATE leads SET created_at = $1 WHERE id = $2")
                    .bind(Value::Timestamp(old))
                    .bind(Value::Uuid(Uuid::parse_str(&id).expect("id"))),
            )
            .await
            .expect("age the lead");
        let r = app.get(&s, &path).await;
        assert_eq!(
            (factor(&r, "no_recent_activity")["applies"].clone(), factor(&r, "lead_age")["applies"].clone()),
            (json!(true), json!(true))
        );
        assert_eq!(r.body["score"], 100);
        // An activity linked to the lead makes it warm again.
        let act = app.post(&s, &s.path("activities"), json!({"activity_type": "call", "title": "Catch-up", "lead_id": id})).await;
        assert_eq!(act.status, StatusCode::CREATED, "{act:?}");
        let r = app.get(&s, &path).await;
        assert_eq!(factor(&r, "no_recent_activity")["applies"], false, "{r:?}");
        // Qualified answers bring it down.
        let body = json!({"framework": "meddicc", "answers": {"economic_buyer": "Anil (CFO)", "competition": "none"}});
        assert_eq!(app.post(&s, &s.path(&format!("leads/{id}/qualify")), body).await.status, StatusCode::OK);
        let body = json!({"framework": "bant", "answers": {"budget_score": 8}});
        assert_eq!(app.post(&s, &s.path(&format!("leads/{id}/qualify")), body).await.status, StatusCode::OK);
        let r = app.get(&s, &path).await;
        for key in ["no_economic_buyer", "unknown_budget", "competitor_present", "no_recent_activity"] {
            assert_eq!(factor(&r, key)["applies"], false, "{key}: {r:?}");
        }
        assert_eq!((r.body["score"].as_i64(), r.body["level"].as_str()), (Some(25), Some("low")), "{r:?}");

        for bad in ["inactive_days=0", "inactive_days=366", "inactive_days=abc", "colour=red"] {
            let r = app.get(&s, &format!("{path}?{bad}")).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {r:?}");
        }
        let r = app.get(&s, &format!("{path}?inactive_days=365")).await;
        assert_eq!((r.status, r.body["inactive_days"].as_i64()), (StatusCode::OK, Some(365)));
        let r = app.get(&x, &x.path(&format!("leads/{id}/risk-score"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn conversion_rules_gate_and_trigger_automatic_conversion() {
    for app in TestApp::all().await {
        let admin = app.register(&format!("rules-{}@example.com", app.backend), "Rules Co").await;
        let rep = app.member(&admin, &format!("rules-rep-{}@example.com", app.backend), "sales_rep").await;
        let path = admin.path("data/conversion/rules");
        let r = app.get(&rep, &path).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(
            r.body,
            json!({"require_qualified": true, "min_score": null, "require_consent": false, "auto_convert": false, "auto_create_deal": false})
        );
        let put = |s: &Session, body: Json| {
            let token = s.token.clone();
            let (app, path) = (&app, path.clone());
            async move { app.call(Method::PUT, &path, Some(&token), Some(body), &[]).await }
        };
        let snap = app.snapshot().await;
        assert_eq!(put(&rep, json!({"auto_convert": true})).await.status, StatusCode::FORBIDDEN);
        let r = put(&admin, json!({"min_score": 101})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "min_score"), "{r:?}");
        let r = put(&admin, json!({"auto_convert": "yes"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "auto_convert"), "{r:?}");
        let r = put(&admin, json!({"min_scor": 5})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "min_scor"), "{r:?}");
        assert_eq!(app.snapshot().await, snap);
        let rules =
            json!({"require_qualified": true, "min_score": 50, "require_consent": true, "auto_convert": true, "auto_create_deal": true});
        let r = put(&admin, rules.clone()).await;
        assert_eq!((r.status, &r.body), (StatusCode::OK, &rules), "{r:?}");
        assert_eq!(app.get(&rep, &path).await.body, rules);
        let audit = app.get(&admin, &admin.path("audit?object=settings")).await;
        assert!(audit.body["data"].as_array().expect("rows").iter().any(|a| a["field"] == "conversion.rules"), "{audit:?}");

        // Qualified but under the score and without consent: stays qualified, checklist says why.
        let low = new_lead(&app, &rep, json!({"last_name": "Low", "company_name": "Low Score Ltd", "lead_score": 20})).await;
        let r = app.post(&rep, &admin.path(&format!("leads/{low}/qualify")), strong_bant()).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!((r.body["lead"]["status"].as_str(), &r.body["auto_conversion"]["attempted"]), (Some("qualified"), &json!(false)));
        let unmet: Vec<&str> = r.body["qualification"]["eligibility"]["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter(|c| c["required"] == true && c["met"] == false)
            .filter_map(|c| c["key"].as_str())
            .collect();
        assert_eq!(unmet, ["min_score", "consent"]);
        let r = app.post(&rep, &admin.path(&format!("leads/{low}/convert")), json!({})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "lead_score") && errors_name(&r, "gdpr_consent"), "{r:?}");

        // Eligible on qualifying: converted automatically, with a deal, and audited.
        let body = json!({"last_name": "Hot", "company_name": "Hot Leads LLP", "email": "hot@hotleads.example", "lead_score": 80,
            "gdpr_consent": true, "gdpr_consent_source": "web form"});
        let hot = new_lead(&app, &rep, body).await;
        let r = app.post(&rep, &admin.path(&format!("leads/{hot}/qualify")), strong_bant()).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["auto_conversion"]["converted"], true, "{r:?}");
        let conv = &r.body["auto_conversion"]["conversion"];
        assert_eq!((conv["automatic"].clone(), conv["account"]["name"].clone()), (json!(true), json!("Hot Leads LLP")));
        assert!(conv["deal"]["id"].is_string() && conv["activity"]["id"].is_string(), "{conv}");
        assert_eq!(r.body["lead"]["status"], "converted");
        assert!(audit_actions(&app, &admin, &hot).await.iter().any(|(a, _, _)| a == "auto_convert"));

        // When the automatic conversion cannot be done, it is rolled back and recorded; the
        // qualification stands.
        let before = (app.count("SELECT COUNT(*) FROM accounts").await, app.count("SELECT COUNT(*) FROM contacts").await);
        let body = json!({"last_name": "Nameless", "lead_score": 90, "gdpr_consent": true, "gdpr_consent_source": "call"});
        let nameless = new_lead(&app, &rep, body).await;
        let r = app.post(&rep, &admin.path(&format!("leads/{nameless}/qualify")), strong_bant()).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(
            (r.body["auto_conversion"]["attempted"].clone(), r.body["auto_conversion"]["converted"].clone()),
            (json!(true), json!(false))
        );
        assert!(r.body["auto_conversion"]["reason"].as_str().is_some_and(|x| x.contains("account.new.name")), "{r:?}");
        assert_eq!(r.body["lead"]["status"], "qualified");
        assert_eq!((app.count("SELECT COUNT(*) FROM accounts").await, app.count("SELECT COUNT(*) FROM contacts").await), before);
        assert!(audit_actions(&app, &admin, &nameless).await.iter().any(|(a, _, _)| a == "auto_convert_skipped"));
        let verify = app.get(&admin, &admin.path("audit/verify")).await;
        assert_eq!(verify.body["ok"], true, "{verify:?}");
        // It can still be converted by hand once given an account name.
        let r =
            app.post(&rep, &admin.path(&format!("leads/{nameless}/convert")), json!({"account": {"new": {"name": "Nameless Co"}}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
}

#[tokio::test]
async fn generic_lead_routes_still_work_beside_the_workflow_routes() {
    for app in TestApp::all().await {
        let s = app.register(&format!("routes-{}@example.com", app.backend), "Routes Co").await;
        let id = new_lead(&app, &s, json!({"last_name": "Router"})).await;
        for p in [format!("leads/{id}/history"), format!("leads/{id}/timeline"), format!("leads/{id}"), "leads".to_string()] {
            let r = app.get(&s, &s.path(&p)).await;
            assert_eq!(r.status, StatusCode::OK, "{p}: {r:?}");
        }
        let acc = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Router Inc"})).await);
        let r = app.get(&s, &s.path(&format!("accounts/{acc}/history"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Workflow routes exist only for leads.
        let r = app.get(&s, &s.path(&format!("accounts/{acc}/qualification"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let lead_row = app
            .db
            .fetch_one(
                &Q::new("SELECT status FROM leads WHERE id = $1").bind(Value::Uuid(Uuid::parse_str(&id).expect("id"))),
                &[SqlType::Text],
            )
            .await
            .expect("row");
        assert_eq!(lead_row.and_then(|r| r.text(0)).as_deref(), Some("new"));
    }
}

#[tokio::test]
async fn panel_and_wizard_pages_work_without_a_browser() {
    for app in TestApp::all().await {
        let s = app.register(&format!("web-{}@example.com", app.backend), "Web Co").await;
        let viewer = app.member(&s, &format!("web-ro-{}@example.com", app.backend), "read_only").await;
        let x = app.register(&format!("web-x-{}@example.com", app.backend), "Web Other").await;
        let theirs = new_lead(&app, &x, json!({"last_name": "Theirs"})).await;
        let mut body = priya();
        body["company_name"] = json!("<script>alert(1)</script> Robotics");
        body["status"] = json!("contacted");
        let id = new_lead(&app, &s, body).await;
        let b = app.web_sign_in(&s.email).await;
        let base = format!("/app/{}/leads/{id}", s.company_id);

        // The lead page loads the panel and offers conversion.
        let page = app.web_get(&b, &base, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert!(page.text.contains(&format!("hx-get=\"{base}/qualification\"")), "panel hook");
        assert!(page.text.contains("data-testid=\"convert-button\""));
        let frag = app.web_get(&b, &format!("{base}/qualification"), &[("hx-request", "true")]).await;
        assert_eq!(frag.status, StatusCode::OK, "{frag:?}");
        assert!(frag.text.contains("id=\"qualification\"") && !frag.text.contains("<html"), "a fragment for htmx");
        assert!(frag.text.contains("data-factor=\"no_economic_buyer\""), "risk factors shown");
        let full = app.web_get(&b, &format!("{base}/qualification"), &[]).await;
        assert!(full.status == StatusCode::OK && full.text.contains("<html"), "a whole page otherwise");
        let other = app.web_get(&b, &format!("/app/{}/leads/{theirs}/qualification", s.company_id), &[]).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND);

        // The form needs the CSRF token; a bad decision changes nothing and says why.
        let snap = app.snapshot().await;
        let version = app.get(&s, &s.path(&format!("leads/{id}"))).await.body["version"].to_string();
        let form = |decision: &'static str| {
            vec![
                ("version", version.as_str()),
                ("bant_budget_score", "8"),
                ("bant_authority_score", "9"),
                ("bant_need_score", "9"),
                ("bant_timeline_score", "3"),
                ("bant_timeline_score_unset", "1"),
                ("meddicc_champion", "Ravi (IT head)"),
                ("reason", ""),
                ("decision", decision),
            ]
        };
        let r = app.web_post(&b, &format!("{base}/qualification"), &form("qualified"), false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.web_post(&b, &format!("{base}/qualification"), &form("recycle"), true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("reason is required") && r.text.contains("recycle date is required"), "{}", r.text);
        assert!(r.text.contains("Ravi (IT head)"), "typed answers are kept");
        assert_eq!(app.snapshot().await, snap);
        let stale: Vec<(&str, &str)> = form("qualified").into_iter().map(|(k, v)| if k == "version" { (k, "0") } else { (k, v) }).collect();
        let r = app.web_post(&b, &format!("{base}/qualification"), &stale, true).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && r.text.contains("Someone else changed this lead"), "{r:?}");
        assert_eq!(app.snapshot().await, snap);
        let r = app.web_post(&b, &format!("{base}/qualification"), &form("qualified"), true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert!(r.headers.get("location").and_then(|l| l.to_str().ok()).is_some_and(|l| l.contains("notice=Lead+qualified")), "{r:?}");
        let lead = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;
        assert_eq!((lead["status"].as_str(), lead["bant_need_score"].as_i64()), (Some("qualified"), Some(9)));
        assert_eq!(lead["bant_timeline_score"], Json::Null, "'not scored' leaves the score empty");
        assert_eq!(lead["meddicc_champion"], "Ravi (IT head)");

        // The wizard: prefilled, escaped, steps carry their state, errors bring the step back.
        let w = app.web_get(&b, &format!("{base}/convert"), &[]).await;
        assert_eq!(w.status, StatusCode::OK, "{w:?}");
        assert!(w.text.contains("data-step=\"account\""));
        assert!(!w.text.contains("<script>alert(1)"), "escaped");
        let shown = w.text.split("id=\"w-a_name\"").nth(1).unwrap_or("").chars().take(200).collect::<String>();
        assert!(shown.contains("&lt;script&gt;") || shown.contains("&#60;script&#62;"), "escaped: {shown}");
        let mut fields = vec![
            ("account_choice", "new"),
            ("a_name", "Priya Robotics"),
            ("a_website", ""),
            ("contact_choice", "new"),
            ("c_first_name", "Priya"),
            ("c_last_name", "Sharma"),
            ("c_email", "priya@acmerobotics.in"),
            ("deal_create", "yes"),
            ("d_name", "First order"),
            ("d_amount", "many"),
            ("d_currency", "INR"),
            ("d_stage", "proposal"),
            ("act_create", "yes"),
            ("act_type", "call"),
            ("act_subject", "Hand-over call"),
            ("go", "contact"),
        ];
        let r = app.web_post(&b, &format!("{base}/convert"), &fields, true).await;
        assert!(r.status == StatusCode::OK && r.text.contains("data-step=\"contact\""), "{r:?}");
        assert!(r.text.contains("name=\"a_name\" value=\"Priya Robotics\""), "other steps travel as hidden inputs");
        fields.retain(|(k, _)| *k != "go");
        fields.push(("go", "convert"));
        let snap = app.snapshot().await;
        let r = app.web_post(&b, &format!("{base}/convert"), &fields, true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("data-step=\"deal\"") && r.text.contains("data-testid=\"wizard-errors\""), "{}", r.text);
        assert_eq!(app.snapshot().await, snap);
        for f in fields.iter_mut() {
            if f.0 == "d_amount" {
                f.1 = "125000";
            }
        }
        let r = app.web_post(&b, &format!("{base}/convert"), &fields, true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let lead = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;
        assert_eq!(lead["status"], "converted");
        let acc = app.get(&s, &s.path(&format!("accounts/{}", lead["converted_account_id"].as_str().expect("account")))).await.body;
        assert_eq!(acc["name"], "Priya Robotics");
        let page = app.web_get(&b, &base, &[]).await;
        assert!(!page.text.contains("data-testid=\"convert-button\""), "no Convert button once converted");
        let w = app.web_get(&b, &format!("{base}/convert"), &[]).await;
        assert!(w.text.contains("data-testid=\"already-converted\"") && w.text.contains("Priya Robotics"), "{w:?}");

        // Read Only members see the panel but cannot convert.
        let rb = app.web_sign_in(&viewer.email).await;
        let r = app.web_get(&rb, &format!("/app/{}/leads/{theirs}/convert", s.company_id), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let fresh = new_lead(&app, &s, json!({"last_name": "Fresh"})).await;
        let r = app.web_get(&rb, &format!("/app/{}/leads/{fresh}/convert", s.company_id), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.web_get(&rb, &format!("/app/{}/leads/{fresh}/qualification", s.company_id), &[("hx-request", "true")]).await;
        assert!(r.status == StatusCode::OK && !r.text.contains("name=\"decision\""), "no form for Read Only: {r:?}");
    }
}

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "corvidconvertboundary7MA4YWxk";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Imports a CSV of leads with the "update" duplicate policy and waits for the result.
async fn import_update(app: &TestApp, s: &Session, csv: &str) -> Json {
    let (ct, body) = multipart(&[("object", "leads"), ("options", r#"{"duplicate_policy": "update"}"#)], "u.csv", csv.as_bytes());
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(s.path("data/import"))
        .header("authorization", format!("Bearer {}", s.token))
        .header("content-type", ct)
        .body(axum::body::Body::from(body))
        .expect("request");
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let id = r.body["id"].as_str().expect("import id").to_string();
    for _ in 0..400 {
        let r = app.get(s, &s.path(&format!("data/import/{id}"))).await;
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed")) {
            return r.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

fn names_convert(r: &Resp, field: &str) -> bool {
    r.body["errors"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["field"] == field && e["reason"].as_str().is_some_and(|m| m.contains("convert"))))
}

#[tokio::test]
async fn only_the_conversion_marks_a_lead_converted() {
    for app in TestApp::all().await {
        let runtime = rt::Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let s = app.register(&format!("guard-{}@example.com", app.backend), "Guard Co").await;
        let lead = new_lead(&app, &s, json!({"last_name": "Guarded", "email": "guarded@guard.example", "status": "qualified"})).await;
        let path = s.path(&format!("leads/{lead}"));
        let w = app.web_sign_in(&s.email).await;
        let before = app.snapshot().await;

        // Every generic write path refuses converted, naming the field and the way to do it.
        let r = app.patch(&s, &path, json!({"status": "converted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(is_problem(&r) && names_convert(&r, "status"), "{r:?}");
        let r = app.patch(&s, &path, json!({"stage": "converted", "version": 1})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && names_convert(&r, "stage"), "{r:?}");
        let r = app.post(&s, &s.path("leads"), json!({"last_name": "Born converted", "status": "converted"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && names_convert(&r, "status"), "{r:?}");
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "update", "ids": [lead], "changes": {"status": "converted"}})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && names_convert(&r, "ids[0].status"), "{r:?}");
        let r = app
            .post(
                &s,
                &s.path("leads/bulk"),
                json!({"action": "create", "records": [{"last_name": "Ok"}, {"last_name": "No", "status": "converted"}]}),
            )
            .await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && names_convert(&r, "records[1].status"), "{r:?}");
        // The inline edit and the edit form of the web app.
        let href = format!("/app/{}/leads/{lead}", s.company_id);
        let r = app.web_post(&w, &format!("{href}/field/status"), &[("status", "converted"), ("version", "1")], true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("Convert"), "{}", r.text);
        let r = app.web_post(&w, &href, &[("last_name", "Guarded"), ("status", "converted"), ("version", "1")], true).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && r.text.contains("Convert"), "{r:?}");
        assert_eq!(app.snapshot().await, before, "nothing changed");
        // An import that updates the lead fails that row, with the reason.
        let done = import_update(&app, &s, "email,status\nguarded@guard.example,converted\n").await;
        assert_eq!((done["updated"].as_i64(), done["failed"].as_i64()), (Some(0), Some(1)), "{done}");
        assert_eq!(done["errors"][0]["field"], "status", "{done}");
        let now = app.get(&s, &path).await.body;
        assert_eq!((now["status"].as_str(), now["version"].as_i64()), (Some("qualified"), Some(1)));

        // The conversion does it, and then the lead stays converted.
        let r = app.post(&s, &s.path(&format!("leads/{lead}/convert")), json!({"account": {"new": {"name": "Guard Buyer Ltd"}}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let conv = app.get(&s, &path).await.body;
        assert_eq!((conv["status"].as_str(), conv["stage"].as_str()), (Some("converted"), Some("converted")));
        let version = conv["version"].as_i64().expect("version");
        let before = app.snapshot().await;
        let r = app.patch(&s, &path, json!({"status": "nurturing", "version": version})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "status"), "{r:?}");
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "update", "ids": [lead], "changes": {"stage": "awareness"}})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "ids[0].stage"), "{r:?}");
        assert_eq!(app.snapshot().await, before, "nothing changed");
        let done = import_update(&app, &s, "email,status\nguarded@guard.example,new\n").await;
        assert_eq!(done["failed"], 1, "{done}");
        let now = app.get(&s, &path).await.body;
        assert_eq!((now["status"].as_str(), now["version"].as_i64()), (Some("converted"), Some(version)));
        // Other fields of a converted lead can still be edited.
        let r = app.patch(&s, &path, json!({"job_title": "Buyer", "status": "converted", "version": version})).await;
        assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("converted")), "{r:?}");

        // Older data: marked converted without a recorded conversion, it may be set back
        // and then converted properly.
        let legacy = new_lead(&app, &s, json!({"last_name": "Legacy", "company_name": "Legacy Ltd", "status": "qualified"})).await;
        app.db
            .execute(
                &Q::new("UPDATE leads SET status = 'converted' WHERE id = $1").bind(Value::Uuid(Uuid::parse_str(&legacy).expect("id"))),
            )
            .await
            .expect("legacy");
        let r = app.post(&s, &s.path(&format!("leads/{legacy}/convert")), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        let r = app.patch(&s, &s.path(&format!("leads/{legacy}")), json!({"status": "qualified", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app.post(&s, &s.path(&format!("leads/{legacy}/convert")), json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);
        runtime.shutdown().await;
    }
}

async fn consent_of(app: &TestApp, s: &Session, object: &str, id: &str) -> Json {
    let r = app.get(s, &s.path(&format!("{object}/{id}/consent"))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

#[tokio::test]
async fn conversion_carries_consent_and_do_not_disturb_to_the_contact() {
    for app in TestApp::all().await {
        let s = app.register(&format!("consent-{}@example.com", app.backend), "Consent Carry Co").await;
        let convert = |lead: String, body: Json| {
            let (app, s) = (&app, &s);
            async move {
                let r = app.post(s, &s.path(&format!("leads/{lead}/convert")), body).await;
                assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
                r.body
            }
        };

        // A new contact takes the lead's consent (its time, source, text version, opt-in
        // date) and do-not-disturb, and its consent log says where it came from.
        let mut body = priya();
        body["status"] = json!("qualified");
        body["gdpr_consent"] = json!(true);
        body["gdpr_consent_source"] = json!("Expo sign-up form");
        body["gdpr_consent_version"] = json!("v3");
        body["dnd_status"] = json!(true);
        let lead = new_lead(&app, &s, body).await;
        let lc = consent_of(&app, &s, "leads", &lead).await["consent"].clone();
        assert_eq!((lc["given"].clone(), lc["dnd"].clone()), (json!(true), json!(true)), "{lc}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let out = convert(lead.clone(), json!({})).await;
        let contact = out["contact"]["id"].as_str().expect("contact").to_string();
        let cc = consent_of(&app, &s, "contacts", &contact).await;
        assert_eq!(cc["consent"], lc, "the contact's consent is the lead's: {cc}");
        let entries = cc["data"].as_array().expect("entries");
        assert_eq!(entries.len(), 1, "{cc}");
        assert_eq!((entries[0]["given"].clone(), entries[0]["channel"].clone()), (json!(true), json!("convert")));
        assert_eq!(entries[0]["source"], "Expo sign-up form");
        assert!(entries[0]["note"].as_str().is_some_and(|n| n.contains(out["lead"]["number"].as_str().expect("number"))), "{cc}");

        // An existing contact without a decision takes the lead's consent; its own
        // do-not-disturb stays although the lead has none.
        let mut body = priya();
        body["status"] = json!("qualified");
        body["email"] = json!("ravi@acmerobotics.in");
        body["gdpr_consent"] = json!(true);
        let lead2 = new_lead(&app, &s, body).await;
        let c1 = id_of(&app.post(&s, &s.path("contacts"), json!({"last_name": "Kumar", "dnd_status": true})).await);
        let out = convert(lead2.clone(), json!({"contact": {"existing_id": c1}})).await;
        assert_eq!(out["contact"]["id"].as_str(), Some(c1.as_str()));
        let l2 = consent_of(&app, &s, "leads", &lead2).await["consent"].clone();
        let cc = consent_of(&app, &s, "contacts", &c1).await;
        assert_eq!((cc["consent"]["given"].clone(), cc["consent"]["at"].clone()), (json!(true), l2["at"].clone()), "{cc}");
        assert_eq!(cc["consent"]["dnd"], true, "do-not-disturb wins: {cc}");
        assert_eq!(cc["data"].as_array().map(Vec::len), Some(1), "{cc}");

        // A contact whose own decision is newer keeps it; the lead's do-not-disturb is added.
        let mut body = priya();
        body["status"] = json!("qualified");
        body["email"] = json!("meena@acmerobotics.in");
        body["gdpr_consent"] = json!(true);
        body["dnd_status"] = json!(true);
        let lead3 = new_lead(&app, &s, body).await;
        let c2 = id_of(&app.post(&s, &s.path("contacts"), json!({"last_name": "Iyer", "gdpr_consent": true})).await);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = app
            .post(&s, &s.path(&format!("contacts/{c2}/consent")), json!({"consent": false, "channel": "email", "note": "Asked to stop"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let log_before = consent_of(&app, &s, "contacts", &c2).await["data"].as_array().map(Vec::len);
        convert(lead3, json!({"contact": {"existing_id": c2}})).await;
        let cc = consent_of(&app, &s, "contacts", &c2).await;
        assert_eq!((cc["consent"]["given"].clone(), cc["consent"]["dnd"].clone()), (json!(false), json!(true)), "{cc}");
        assert_eq!(cc["data"].as_array().map(Vec::len), log_before, "no decision was taken from the lead: {cc}");
        let h = app.get(&s, &s.path(&format!("contacts/{c2}/history"))).await;
        assert!(h.body["data"].as_array().expect("rows").iter().any(|r| r["field"] == "dnd_status" && r["new_value"] == "true"), "{h:?}");
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);
    }
}

/// The demo company on both databases (the store's own test seeds SQLite only). Slow (about a
/// minute in a debug build): `cargo test -p corvid-server --test convert -- --ignored demo_data`.
#[tokio::test]
#[ignore]
async fn demo_data_converts_its_converted_leads_through_the_conversion() {
    for app in TestApp::all().await {
        let started = std::time::Instant::now();
        let summary = corvid_store::demo::seed(&app.db, 42).await.expect("demo seed");
        eprintln!("[{}] demo seed took {:.1?}: {:?}", app.backend, started.elapsed(), summary.counts);
        let converted = app.count("SELECT COUNT(*) FROM leads WHERE status = 'converted'").await;
        assert!(converted > 50, "{converted} converted leads");
        // Every converted lead has its conversion, contact and account, dated in the past.
        assert_eq!(app.count("SELECT COUNT(*) FROM lead_conversions").await, converted);
        let unlinked =
            "SELECT COUNT(*) FROM leads WHERE status = 'converted' AND (converted_contact_id IS NULL OR converted_account_id IS NULL \
                        OR converted_at IS NULL OR converted_at < created_at OR converted_at > updated_at)";
        assert_eq!(app.count(unlinked).await, 0);
        let contacts = app.count("SELECT COUNT(*) FROM contacts").await;
        assert!((450..=550).contains(&contacts), "{contacts} contacts");
        let bad_dates = "SELECT COUNT(*) FROM contacts WHERE updated_at < created_at";
        assert_eq!(app.count(bad_dates).await, 0);
        // The contacts carry the leads' do-not-disturb.
        let dnd = "SELECT COUNT(*) FROM leads l JOIN contacts c ON c.id = l.converted_contact_id WHERE l.dnd_status <> c.dnd_status";
        assert_eq!(app.count(dnd).await, 0);
        let report = corvid_store::audit::verify(&app.db, summary.company_id).await.expect("verify");
        assert!(report.ok, "{report:?}");
    }
}
