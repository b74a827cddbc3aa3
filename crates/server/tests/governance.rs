//! Lead governance through the API on every backend: phone numbers normalised to E.164 with
//! the company's country and checked against that country's numbering plan (422 naming
//! `phone` otherwise), soft validation (`validation_status` with stored reasons), the spam
//! score with its signals (disposable email, gibberish, links, capitals, bursts), name
//! tidying and unicode names.

mod common;

use axum::http::StatusCode;
use common::*;
use corvid_core::Value as V;
use corvid_store::Q;
use serde_json::{json, Value};

fn codes(list: &Value, key: &str) -> Vec<String> {
    list.as_array().map(|a| a.iter().filter_map(|x| x[key].as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Moves the company to another country (there is no API for it yet; registration makes
/// every company Indian).
async fn set_country(app: &TestApp, s: &Session, country: &str, calling_code: &str) {
    let id = uuid::Uuid::parse_str(&s.company_id).expect("company id");
    let q = Q::new("UPDATE companies SET default_country = $1, calling_code = $2 WHERE id = $3")
        .bind(V::Text(country.into()))
        .bind(V::Text(calling_code.into()))
        .bind(V::Uuid(id));
    assert_eq!(app.db.execute(&q).await.expect("update company"), 1);
}

async fn create(app: &TestApp, s: &Session, body: Value) -> Value {
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{} {r:?}", app.backend);
    r.body
}

#[tokio::test]
async fn phones_follow_the_company_country() {
    for app in TestApp::all().await {
        let s = app.register("owner@phones.test", "Phones Co").await;
        // An Indian company: national numbers read as +91, with or without the trunk 0.
        let lead = create(&app, &s, json!({"last_name": "Shah", "phone": "098765-43210"})).await;
        assert_eq!(lead["phone"], "+919876543210");
        let lead = create(&app, &s, json!({"last_name": "Rao", "phone": "+1 (415) 555-2671"})).await;
        assert_eq!(lead["phone"], "+14155552671");
        let lead = create(&app, &s, json!({"last_name": "Evans", "phone": "0044 20 7946 0958"})).await;
        assert_eq!(lead["phone"], "+442079460958");

        // Numbers the country's plan does not have are refused, naming the field, and change nothing.
        let before = app.snapshot().await;
        for bad in [
            json!("55555 55555"),
            json!("98765 4321"),
            json!("+1 123 456 7890"),
            json!("+44 7700 900123"),
            json!("9".repeat(41)),
            json!(9876543210u64),
            json!("call me"),
        ] {
            let r = app.post(&s, &s.path("leads"), json!({"last_name": "Bad", "phone": bad})).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} {r:?}");
            assert!(is_problem(&r) && errors_name(&r, "phone"), "{r:?}");
        }
        let r = app.post(&s, &s.path("accounts"), json!({"name": "Bad Phone Ltd", "phone": "12"})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "phone"), "{r:?}");
        assert_eq!(app.snapshot().await, before, "refused writes change nothing");

        // A British company reads the same digits differently.
        set_country(&app, &s, "GB", "44").await;
        let lead = create(&app, &s, json!({"last_name": "Turner", "phone": "020 7946 0958"})).await;
        assert_eq!(lead["phone"], "+442079460958");
        let lead = create(&app, &s, json!({"last_name": "Hughes", "phone": "07911 123456"})).await;
        assert_eq!(lead["phone"], "+447911123456");
        let r = app.post(&s, &s.path("leads"), json!({"last_name": "Iyer", "phone": "98765 43210"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "an Indian mobile is not a UK number: {r:?}");
        assert!(errors_name(&r, "phone"));
        assert!(r.text.contains("+44"), "the message says which plan was used: {}", r.text);
        let lead = create(&app, &s, json!({"last_name": "Iyer", "phone": "+91 98765 43210"})).await;
        assert_eq!(lead["phone"], "+919876543210");
        let acc = app.post(&s, &s.path("accounts"), json!({"name": "Brit Ltd", "phone": "020 7946 0000"})).await;
        assert_eq!(acc.status, StatusCode::CREATED, "{acc:?}");
        assert_eq!(acc.body["phone"], "+442079460000");

        // Updates are checked the same way.
        let id = lead["id"].as_str().expect("id");
        let before = app.snapshot().await;
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"phone": "12345", "version": 1})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "phone"), "{r:?}");
        assert_eq!(app.snapshot().await, before);
    }
}

#[tokio::test]
async fn soft_problems_set_validation_status_with_reasons() {
    for app in TestApp::all().await {
        let s = app.register("owner@quality.test", "Quality Co").await;
        let clean = create(
            &app,
            &s,
            json!({"first_name": "Priya", "last_name": "Shah", "email": "priya.shah@acme.in", "phone": "98765 43210", "country": "IN"}),
        )
        .await;
        assert_eq!(clean["validation_status"], "valid", "{clean}");
        assert_eq!(clean["validation_reasons"], json!([]));
        assert_eq!(clean["spam_score"], "low");
        assert_eq!(clean["spam_reasons"], json!([]));

        let disposable = create(&app, &s, json!({"first_name": "Anil", "last_name": "Mehta", "email": "Anil.Mehta@Mailinator.COM"})).await;
        assert_eq!(disposable["email"], "Anil.Mehta@mailinator.com", "domain lower-cased");
        assert_eq!(disposable["validation_status"], "invalid");
        let reasons = &disposable["validation_reasons"];
        assert_eq!(codes(reasons, "code"), vec!["disposable_email"]);
        assert_eq!(reasons[0]["field"], "email");
        assert_eq!(reasons[0]["severity"], "invalid");
        assert!(reasons[0]["message"].as_str().unwrap_or("").contains("mailinator.com"), "{reasons}");
        assert_eq!(codes(&disposable["spam_reasons"], "signal"), vec!["disposable_email"]);
        assert_eq!(disposable["spam_score"], "medium");

        let unreachable = create(&app, &s, json!({"first_name": "Sunita", "last_name": "Rao"})).await;
        assert_eq!(unreachable["validation_status"], "pending");
        assert_eq!(codes(&unreachable["validation_reasons"], "code"), vec!["no_contact"]);

        let abroad =
            create(&app, &s, json!({"last_name": "Miller", "email": "d.miller@contoso.com", "phone": "98765 43211", "country": "US"}))
                .await;
        assert_eq!(abroad["validation_status"], "pending");
        assert_eq!(codes(&abroad["validation_reasons"], "code"), vec!["phone_country_mismatch"]);

        let shared = create(&app, &s, json!({"last_name": "Office", "email": "info@acme.in"})).await;
        assert_eq!(codes(&shared["validation_reasons"], "code"), vec!["role_email"]);
        let digits = create(&app, &s, json!({"first_name": "Priya2", "last_name": "Shah", "email": "p2@acme.in"})).await;
        assert_eq!(codes(&digits["validation_reasons"], "code"), vec!["name_digits"]);
        assert_eq!(digits["validation_status"], "pending");

        // Fixing the problem fixes the status; the reasons go with it.
        let id = disposable["id"].as_str().expect("id");
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"email": "anil.mehta@zenlabs.io", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["validation_status"], "valid");
        assert_eq!(r.body["validation_reasons"], json!([]));
        assert_eq!(r.body["spam_score"], "low");

        // A person's review sticks: setting the status alone keeps their verdict and the reasons.
        let id = unreachable["id"].as_str().expect("id");
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"validation_status": "valid", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["validation_status"], "valid");
        assert_eq!(codes(&r.body["validation_reasons"], "code"), vec!["no_contact"]);
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"notes": "called at the event", "version": 2})).await;
        assert_eq!(r.body["validation_status"], "valid", "unrelated edits do not re-run the checks");

        // The reasons are read-only to clients.
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"validation_reasons": [], "version": 3})).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY && errors_name(&r, "validation_reasons"), "{r:?}");

        // Every stored reason is in the audit trail with the lead's other fields.
        let audited = app
            .count("SELECT COUNT(*) FROM audit_log WHERE action = 'create' AND field IS NULL AND new_value LIKE '%\"validation_reasons\"%'")
            .await;
        let stored = app.count("SELECT COUNT(*) FROM leads WHERE validation_reasons IS NOT NULL").await;
        assert!(stored >= 6 && audited == stored, "validation reasons are audited ({audited} of {stored})");
    }
}

#[tokio::test]
async fn spam_signals_are_explained() {
    for app in TestApp::all().await {
        let s = app.register("owner@spam.test", "Spam Co").await;
        let mash = create(&app, &s, json!({"first_name": "asdfgh", "last_name": "qwerty", "email": "sdfg@yopmail.com"})).await;
        assert_eq!(mash["spam_score"], "high", "{mash}");
        assert_eq!(mash["validation_status"], "invalid");
        let signals = codes(&mash["spam_reasons"], "signal");
        assert_eq!(signals, vec!["disposable_email", "gibberish_name", "gibberish_name", "gibberish_email"]);
        let total: u64 = mash["spam_reasons"].as_array().expect("array").iter().map(|x| x["points"].as_u64().unwrap_or(0)).sum();
        assert!(total >= 60, "{total}");
        assert!(mash["spam_reasons"][1]["detail"].as_str().unwrap_or("").contains("keyboard"), "{}", mash["spam_reasons"]);

        let link =
            create(&app, &s, json!({"first_name": "Cheap", "last_name": "Meds http://pills.example", "email": "buyer@pharma-deals.io"}))
                .await;
        assert_eq!(link["spam_score"], "high");
        assert_eq!(codes(&link["spam_reasons"], "signal"), vec!["link_in_name"]);
        assert_eq!(codes(&link["validation_reasons"], "code"), vec!["name_link"]);

        let html =
            create(&app, &s, json!({"last_name": "<b>Winner</b>", "company_name": "<a href=x>Prize</a>", "phone": "9876543212"})).await;
        assert_eq!(html["spam_score"], "high");
        assert!(html["spam_reasons"][0]["detail"].as_str().unwrap_or("").contains("HTML"), "{}", html["spam_reasons"]);
        assert_eq!(html["last_name"], "<b>Winner</b>", "stored as typed; escaping is the renderer's job");

        let caps = create(&app, &s, json!({"first_name": "PRIYA", "last_name": "SHAH", "email": "priya@shah.in"})).await;
        assert_eq!(caps["spam_score"], "low");
        assert_eq!(codes(&caps["spam_reasons"], "signal"), vec!["all_caps"]);
        assert_eq!(caps["validation_status"], "valid");

        // Editing the name re-runs the checks.
        let id = mash["id"].as_str().expect("id");
        let r = app
            .patch(
                &s,
                &s.path(&format!("leads/{id}")),
                json!({"first_name": "Ravi", "last_name": "Kumar", "email": "ravi@kumar.in", "version": 1}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["spam_score"], "low");
        assert_eq!(r.body["spam_reasons"], json!([]));
        assert_eq!(r.body["validation_status"], "valid");
    }
}

#[tokio::test]
async fn bursts_from_one_source_or_domain() {
    for app in TestApp::all().await {
        let s = app.register("owner@burst.test", "Burst Co").await;
        let other = app.register("owner@calm.test", "Calm Co").await;
        let first = ["Asha", "Bala", "Chitra", "Dev", "Esha", "Farah", "Gopi"];
        // Five leads from one company domain within the window: the sixth is a burst.
        for (i, name) in first.iter().take(5).enumerate() {
            let lead = create(
                &app,
                &s,
                json!({"first_name": name, "last_name": "Iyer", "email": format!("{}{i}@burstco.in", name.to_lowercase())}),
            )
            .await;
            assert!(!codes(&lead["spam_reasons"], "signal").contains(&"burst_domain".to_string()), "{lead}");
        }
        let sixth = create(&app, &s, json!({"first_name": "Farah", "last_name": "Khan", "email": "farah@burstco.in"})).await;
        assert_eq!(codes(&sixth["spam_reasons"], "signal"), vec!["burst_domain"], "{}", sixth["spam_reasons"]);
        assert!(
            sixth["spam_reasons"][0]["detail"].as_str().unwrap_or("").contains("5 other leads with @burstco.in"),
            "{}",
            sixth["spam_reasons"]
        );
        // Free mail is shared by millions: no domain burst.
        for (i, last) in ["Arora", "Bose", "Chawla", "Dutta", "Goel", "Hegde"].iter().enumerate() {
            let lead = create(&app, &s, json!({"last_name": last, "email": format!("free.person{i}@gmail.com")})).await;
            assert!(lead["spam_reasons"].as_array().is_some_and(|a| a.is_empty()), "{lead}");
        }
        // Another company's leads are not counted.
        let calm = create(&app, &other, json!({"last_name": "Calm", "email": "calm@burstco.in"})).await;
        assert_eq!(calm["spam_reasons"], json!([]));
        // Bulk writes are deliberate batches, not bursts.
        let r = app
            .post(&s, &s.path("leads/bulk"), json!({"action": "create", "records": [{"last_name": "Bulk", "email": "bulk@burstco.in"}]}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["data"][0]["spam_reasons"], json!([]));

        // Twenty leads from one source and campaign, then the next is a burst.
        for i in 0..20 {
            let body = json!({"last_name": format!("Form {}", (b'a' + i as u8) as char), "phone": format!("98765{:05}", 10000 + i), "source": "website", "campaign": "diwali-sale"});
            create(&app, &s, body).await;
        }
        let next =
            create(&app, &s, json!({"last_name": "FormNext", "phone": "9876512345", "source": "website", "campaign": "diwali-sale"})).await;
        assert_eq!(codes(&next["spam_reasons"], "signal"), vec!["burst_source"]);
        assert!(next["spam_reasons"][0]["detail"].as_str().unwrap_or("").contains("website / diwali-sale"), "{}", next["spam_reasons"]);
        let other_campaign =
            create(&app, &s, json!({"last_name": "Other", "phone": "9876512346", "source": "website", "campaign": "holi"})).await;
        assert_eq!(other_campaign["spam_reasons"], json!([]));

        // Leads outside the window do not count: age the burst leads and try again. The
        // ageing happens behind the server's back; the audited edit below is what tells the
        // next create to read the recent leads again instead of counting from memory.
        let q = Q::new("UPDATE leads SET created_at = $1 WHERE company_id = $2")
            .bind(V::Timestamp(chrono::Utc::now() - chrono::Duration::minutes(30)))
            .bind(V::Uuid(uuid::Uuid::parse_str(&s.company_id).expect("uuid")));
        app.db.execute(&q).await.expect("age leads");
        // The burst is part of the lead's history: an edit keeps it.
        let id = next["id"].as_str().expect("id");
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"first_name": "Meera", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(codes(&r.body["spam_reasons"], "signal"), vec!["burst_source"]);
        let later =
            create(&app, &s, json!({"last_name": "Later", "phone": "9876512347", "source": "website", "campaign": "diwali-sale"})).await;
        assert_eq!(later["spam_reasons"], json!([]));
    }
}

#[tokio::test]
async fn names_are_tidied_and_unicode_is_kept() {
    for app in TestApp::all().await {
        let s = app.register("owner@names.test", "Names Co").await;
        let lead = create(
            &app,
            &s,
            json!({"first_name": "  राजेश ", "last_name": "कुमार \u{a0}  शर्मा", "company_name": " Acme   Pvt \t Ltd ", "email": "rajesh@acme.in"}),
        )
        .await;
        assert_eq!(lead["first_name"], "राजेश");
        assert_eq!(lead["last_name"], "कुमार शर्मा");
        assert_eq!(lead["company_name"], "Acme Pvt Ltd");
        assert_eq!(lead["validation_status"], "valid");
        assert_eq!(lead["spam_score"], "low");

        for (first, last) in
            [("José", "Núñez"), ("Zoë", "Ångström-Brzęczyszczykiewicz"), ("李", "小龙"), ("محمد", "علي"), ("Ng", "O'Brien")]
        {
            let l = create(&app, &s, json!({"first_name": first, "last_name": last, "email": "someone@example.org"})).await;
            assert_eq!(l["first_name"], first);
            assert_eq!(l["validation_status"], "valid", "{first} {last}: {}", l["validation_reasons"]);
            assert_eq!(l["spam_score"], "low", "{first} {last}: {}", l["spam_reasons"]);
        }

        let c = app.post(&s, &s.path("contacts"), json!({"first_name": " Anil  Kumar ", "last_name": "Mehta   Rao"})).await;
        assert_eq!(c.status, StatusCode::CREATED, "{c:?}");
        assert_eq!(c.body["first_name"], "Anil Kumar");
        assert_eq!(c.body["full_name"], "Anil Kumar Mehta Rao");
        let a = app.post(&s, &s.path("accounts"), json!({"name": "Zen   Labs  LLP"})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        assert_eq!(a.body["name"], "Zen Labs LLP");

        // Read Only members cannot write at all.
        let ro = app.member(&s, "ro@names.test", "read_only").await;
        let r = app.post(&ro, &ro.path("leads"), json!({"last_name": "Nope"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    }
}
