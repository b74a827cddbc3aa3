//! Consent, do-not-disturb, data-subject export and erasure, the data quality report and the
//! governance policies, end to end through the API (and the web pages) on both databases.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use corvid_core::{SqlType, Value as V};
use corvid_store::Q;
use serde_json::{json, Value};

fn id(r: &Resp) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id in {r:?}")).to_string()
}

async fn created(app: &TestApp, s: &Session, object: &str, body: Value) -> Value {
    let r = app.post(s, &s.path(object), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{object}: {r:?}");
    r.body
}

async fn log_of(app: &TestApp, s: &Session, object: &str, id: &str) -> Vec<Value> {
    let r = app.get(s, &s.path(&format!("{object}/{id}/consent"))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body["data"].as_array().cloned().unwrap_or_default()
}

/// Changes a record at its current version (pipeline steps may have moved it on).
async fn patch_now(app: &TestApp, s: &Session, object: &str, id: &str, mut body: Value) -> Resp {
    let version = app.get(s, &s.path(&format!("{object}/{id}"))).await.body["version"].clone();
    body["version"] = version;
    app.patch(s, &s.path(&format!("{object}/{id}")), body).await
}

async fn one(app: &TestApp, q: Q) -> i64 {
    app.db.fetch_one(&q, &[SqlType::Int]).await.expect("count").and_then(|r| r.int(0)).unwrap_or(-1)
}

#[tokio::test]
async fn consent_is_stamped_and_logged_on_every_write_path() {
    for app in TestApp::all().await {
        let s = app.register("owner@consent.test", "Consent Co").await;
        let lead = created(
            &app,
            &s,
            "leads",
            json!({"last_name": "Rao", "email": "asha@consent.test", "gdpr_consent": true, "gdpr_consent_source": "pricing page form", "gdpr_consent_version": "v1"}),
        )
        .await;
        let lid = lead["id"].as_str().expect("id").to_string();
        assert!(lead["gdpr_consent_at"].is_string(), "{lead}");
        assert!(lead["opt_in_date"].is_string(), "opt-in date defaults to the grant: {lead}");
        let log = log_of(&app, &s, "leads", &lid).await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0]["decision"], "given");
        assert_eq!(log[0]["given"], true);
        assert_eq!(log[0]["channel"], "interactive");
        assert_eq!(log[0]["source"], "pricing page form");
        assert_eq!(log[0]["text_version"], "v1");
        assert_eq!(log[0]["actor_id"], s.user_id.as_str());
        assert_eq!(log[0]["ip"], "10.1.2.3");
        // The consent time is the system's to set.
        let r = app.patch(&s, &s.path(&format!("leads/{lid}")), json!({"gdpr_consent_at": "2020-01-01T00:00:00Z", "version": 1})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "gdpr_consent_at"));

        // A lead created without consent has no log; an unrelated edit adds nothing.
        let plain = created(&app, &s, "leads", json!({"last_name": "Plain"})).await;
        let pid = plain["id"].as_str().expect("id").to_string();
        assert!(log_of(&app, &s, "leads", &pid).await.is_empty());
        assert!(plain["gdpr_consent_at"].is_null());

        // Withdrawn by an edit: stamp cleared, source and version kept, logged.
        let r = patch_now(&app, &s, "leads", &lid, json!({"gdpr_consent": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body["gdpr_consent_at"].is_null());
        assert_eq!(r.body["gdpr_consent_source"], "pricing page form");
        let r = patch_now(&app, &s, "leads", &lid, json!({"first_name": "Asha"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let log = log_of(&app, &s, "leads", &lid).await;
        assert_eq!(log.iter().map(|e| e["decision"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["given", "withdrawn"]);

        // Recorded explicitly, with its channel; a repeat is logged too.
        let r = app
            .post(&s, &s.path(&format!("leads/{lid}/consent")), json!({"consent": true, "channel": "email", "source": "reply to newsletter", "text_version": "v2", "note": "said yes", "ip": "203.0.113.9"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["entry"]["channel"], "email");
        assert_eq!(r.body["entry"]["ip"], "203.0.113.9");
        assert_eq!(r.body["record"]["gdpr_consent"], true);
        assert_eq!(r.body["record"]["gdpr_consent_version"], "v2");
        let first_at = r.body["record"]["gdpr_consent_at"].as_str().expect("stamped").to_string();
        let r = app
            .post(&s, &s.path(&format!("leads/{lid}/consent")), json!({"consent": true, "channel": "phone", "text_version": "v3"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_ne!(r.body["record"]["gdpr_consent_at"].as_str(), Some(first_at.as_str()), "a renewed grant is stamped again");
        assert_eq!(r.body["record"]["gdpr_consent_source"], "reply to newsletter", "kept when not sent");
        for _ in 0..2 {
            let r = app.post(&s, &s.path(&format!("leads/{lid}/consent")), json!({"consent": false, "channel": "whatsapp"})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        }
        let log = log_of(&app, &s, "leads", &lid).await;
        assert_eq!(log.len(), 6, "{log:?}");
        assert_eq!(log[5]["decision"], "withdrawn");
        assert_eq!(log[5]["channel"], "whatsapp");
        assert_eq!(
            one(
                &app,
                Q::new("SELECT COUNT(*) FROM audit_log WHERE action = 'consent' AND record_id = $1")
                    .bind(V::Uuid(lid.parse().expect("uuid")))
            )
            .await,
            6,
            "each decision is audited"
        );

        // Bulk and contacts.
        let r = app
            .post(
                &s,
                &s.path("leads/bulk"),
                json!({"action": "create", "records": [{"last_name": "B1", "gdpr_consent": true}, {"last_name": "B2"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let b1 = r.body["data"][0]["id"].as_str().expect("id").to_string();
        let log = log_of(&app, &s, "leads", &b1).await;
        assert_eq!(log.len(), 1);
        assert_eq!(log[0]["channel"], "bulk");
        let contact =
            created(&app, &s, "contacts", json!({"last_name": "Iyer", "gdpr_consent": true, "gdpr_consent_source": "event"})).await;
        let cid = contact["id"].as_str().expect("id").to_string();
        assert!(contact["gdpr_consent_at"].is_string());
        assert_eq!(log_of(&app, &s, "contacts", &cid).await.len(), 1);

        // Import.
        let runtime = corvid_server::jobs::Runtime::start(app.db.clone(), corvid_server::jobs::Registry::builtin(), 1);
        let csv =
            "Last name,Email,GDPR consent,Consent source\nImported,imp@consent.test,true,fair stand\nNoConsent,no@consent.test,false,\n";
        let (ct, body) = multipart(&[("object", "leads")], "leads.csv", csv.as_bytes());
        let req = Request::builder()
            .method("POST")
            .uri(s.path("data/import"))
            .header("authorization", format!("Bearer {}", s.token))
            .header("content-type", ct)
            .body(Body::from(body))
            .expect("req");
        let r = app.raw(req).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let import = r.body["id"].as_str().expect("id").to_string();
        let mut state = Value::Null;
        for _ in 0..400 {
            state = app.get(&s, &s.path(&format!("data/import/{import}"))).await.body;
            if matches!(state["state"].as_str(), Some("succeeded" | "failed")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        runtime.shutdown().await;
        assert_eq!(state["state"], "succeeded", "{state}");
        assert_eq!(state["created"], 2, "{state}");
        let imported = app.get(&s, &s.path("leads?filter[email]=imp@consent.test")).await;
        let iid = imported.body["data"][0]["id"].as_str().expect("imported lead").to_string();
        assert!(imported.body["data"][0]["gdpr_consent_at"].is_string());
        let log = log_of(&app, &s, "leads", &iid).await;
        assert_eq!(log.len(), 1);
        assert_eq!((log[0]["channel"].as_str(), log[0]["source"].as_str()), (Some("import"), Some("fair stand")));
        let none = app.get(&s, &s.path("leads?filter[email]=no@consent.test")).await;
        let nid = none.body["data"][0]["id"].as_str().expect("lead").to_string();
        assert!(log_of(&app, &s, "leads", &nid).await.is_empty());

        // The company's policy: source and version required; a current text version fills it.
        let rep = app.member(&s, "rep@consent.test", "sales_rep").await;
        let r =
            app.call(Method::PUT, &s.path("privacy/consent-policy"), Some(&rep.token), Some(json!({"require_source": true})), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = app
            .call(
                Method::PUT,
                &s.path("privacy/consent-policy"),
                Some(&s.token),
                Some(json!({"require_source": true, "require_version": true})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let before = app.snapshot().await;
        let r = app.post(&s, &s.path("leads"), json!({"last_name": "NoSource", "gdpr_consent": true})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "gdpr_consent_source") && errors_name(&r, "gdpr_consent_version"), "{r:?}");
        let r = app.post(&s, &s.path(&format!("leads/{pid}/consent")), json!({"consent": true, "channel": "api"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert_eq!(app.snapshot().await, before, "a refused grant changes nothing");
        let r = app
            .call(
                Method::PUT,
                &s.path("privacy/consent-policy"),
                Some(&s.token),
                Some(json!({"require_source": true, "require_version": true, "current_text_version": "2026-01"})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r =
            app.post(&s, &s.path("leads"), json!({"last_name": "Versioned", "gdpr_consent": true, "gdpr_consent_source": "call"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["gdpr_consent_version"], "2026-01");
        let r = app
            .call(Method::PUT, &s.path("privacy/consent-policy"), Some(&s.token), Some(json!({"current_text_version": "  "})), &[])
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r =
            app.call(Method::PUT, &s.path("privacy/consent-policy"), Some(&s.token), Some(json!({"require_everything": true})), &[]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Bad consent requests name the field and change nothing.
        let before = app.snapshot().await;
        let path = s.path(&format!("leads/{pid}/consent"));
        for (body, field) in [
            (json!({"consent": true, "channel": "carrier pigeon"}), "channel"),
            (json!({"consent": "yes", "channel": "email"}), "consent"),
            (json!({"channel": "email"}), "consent"),
            (json!({"consent": true, "channel": "email", "source": "x".repeat(300)}), "source"),
            (json!({"consent": true, "channel": "email", "ip": "not-an-ip"}), "ip"),
            (json!({"consent": true, "channel": "email", "colour": "red"}), "colour"),
        ] {
            let r = app.post(&s, &path, body.clone()).await;
            assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::BAD_REQUEST, "{body}: {r:?}");
            assert!(is_problem(&r), "{r:?}");
            assert!(errors_name(&r, field) || r.body["detail"].as_str().is_some_and(|d| d.contains(field)), "{body}: {r:?}");
        }
        assert_eq!(app.snapshot().await, before);
        // Unicode is kept as sent.
        let r =
            app.post(&s, &path, json!({"consent": true, "channel": "in_person", "source": "Messe Köln 🎪", "text_version": "v1-ü"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["entry"]["source"], "Messe Köln 🎪");

        // Only people have consent; other companies' ids are 404; Read Only can read, not write.
        let task = created(&app, &s, "tasks", json!({"title": "T"})).await;
        let r = app.get(&s, &s.path(&format!("tasks/{}/consent", task["id"].as_str().unwrap_or("")))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let other = app.register("other@consent.test", "Other Co").await;
        assert_eq!(app.get(&other, &other.path(&format!("leads/{lid}/consent"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&s, &other.path(&format!("leads/{lid}/consent"))).await.status, StatusCode::NOT_FOUND);
        let r = app.post(&other, &other.path(&format!("leads/{lid}/consent")), json!({"consent": true, "channel": "email"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let ro = app.member(&s, "ro@consent.test", "read_only").await;
        assert_eq!(app.get(&ro, &ro.path(&format!("leads/{lid}/consent"))).await.status, StatusCode::OK);
        let r = app
            .post(
                &ro,
                &ro.path(&format!("leads/{lid}/consent")),
                json!({"consent": true, "channel": "email", "source": "s", "text_version": "v"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&s, &s.path("leads/not-a-uuid/consent")).await.status, StatusCode::BAD_REQUEST);
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true, "{v:?}");
    }
}

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "corvidprivacyboundary42";
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

#[tokio::test]
async fn do_not_disturb_blocks_outreach_but_not_inbound_contact_or_notes() {
    for app in TestApp::all().await {
        let s = app.register("owner@dnd.test", "DND Co").await;
        let lead = created(&app, &s, "leads", json!({"last_name": "Quiet", "dnd_status": true})).await;
        let lid = lead["id"].as_str().expect("id").to_string();
        let number = lead["number"].as_str().expect("number").to_string();
        let contact = created(&app, &s, "contacts", json!({"last_name": "Hush", "dnd_status": true})).await;
        let cid = contact["id"].as_str().expect("id").to_string();
        let open = created(&app, &s, "leads", json!({"last_name": "Open"})).await;
        let oid = open["id"].as_str().expect("id").to_string();

        let before = app.snapshot().await;
        for kind in ["call", "email", "whatsapp"] {
            let r = app
                .post(
                    &s,
                    &s.path("tasks"),
                    json!({"title": format!("{kind} them"), "task_type": kind, "related_object": "leads", "related_id": lid}),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{kind}: {r:?}");
            assert!(errors_name(&r, "related_id"), "{r:?}");
            let detail = r.body["detail"].as_str().unwrap_or("");
            assert!(detail.contains("do-not-disturb") && detail.contains(&number), "{detail}");
        }
        for body in [
            json!({"activity_type": "call", "title": "Called", "lead_id": lid}),
            json!({"activity_type": "email", "title": "Sent", "lead_id": lid, "direction": "outbound"}),
            json!({"activity_type": "whatsapp", "title": "Pinged", "contact_id": cid}),
        ] {
            let r = app.post(&s, &s.path("activities"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
            let field = if body.get("contact_id").is_some() { "contact_id" } else { "lead_id" };
            assert!(errors_name(&r, field), "{r:?}");
            assert!(r.body["detail"].as_str().is_some_and(|d| d.contains("do-not-disturb")));
        }
        let r = app
            .post(
                &s,
                &s.path("tasks/bulk"),
                json!({"action": "create", "records": [
                {"title": "ok", "task_type": "call", "related_object": "leads", "related_id": oid},
                {"title": "not ok", "task_type": "call", "related_object": "contacts", "related_id": cid}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "records[1].related_id"), "{r:?}");
        assert_eq!(app.snapshot().await, before, "nothing was written");

        // Inbound contact, notes, meetings and to-do tasks are fine; so is outreach to others.
        for body in [
            json!({"activity_type": "call", "title": "They called us", "lead_id": lid, "direction": "inbound"}),
            json!({"activity_type": "note", "title": "Asked not to be called", "lead_id": lid}),
            json!({"activity_type": "meeting", "title": "Met at the fair", "contact_id": cid}),
            json!({"activity_type": "call", "title": "Called", "lead_id": oid}),
        ] {
            let r = app.post(&s, &s.path("activities"), body.clone()).await;
            assert_eq!(r.status, StatusCode::CREATED, "{body}: {r:?}");
        }
        let todo = created(&app, &s, "tasks", json!({"title": "Check the file", "related_object": "leads", "related_id": lid})).await;
        assert_eq!(todo["task_type"], "todo");
        let r = app
            .post(&s, &s.path("tasks"), json!({"title": "Call", "task_type": "call", "related_object": "leads", "related_id": oid}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);

        // Turning a task into a call for a DND person is refused; other edits of it are not.
        let tid = todo["id"].as_str().expect("id").to_string();
        let r = patch_now(&app, &s, "tasks", &tid, json!({"task_type": "call"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        let r = patch_now(&app, &s, "tasks", &tid, json!({"title": "Check the file again"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        // Once DND is lifted, outreach is allowed again.
        let r = patch_now(&app, &s, "leads", &lid, json!({"dnd_status": false})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = app
            .post(&s, &s.path("tasks"), json!({"title": "Call now", "task_type": "call", "related_object": "leads", "related_id": lid}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

        // The record page's forms go through the same rule.
        let w = app.web_sign_in("owner@dnd.test").await;
        let base = format!("/app/{}/contacts/{cid}", s.company_id);
        let r = app.web_post(&w, &format!("{base}/task"), &[("title", "Ring them"), ("task_type", "call")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let to = r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(to.contains("notice=No+task+created") || to.contains("notice=No%20task%20created"), "{to}");
        let r = app
            .web_post(&w, &format!("{base}/log"), &[("activity_type", "call"), ("direction", "inbound"), ("title", "They rang")], true)
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM activities WHERE title = 'They rang' AND direction = 'inbound'")).await, 1);
    }
}

#[tokio::test]
async fn export_contains_everything_about_the_person() {
    for app in TestApp::all().await {
        let s = app.register("owner@export.test", "Export Co").await;
        let lead = created(
            &app,
            &s,
            "leads",
            json!({"first_name": "Meera", "last_name": "Nair", "email": "meera@export.test", "phone": "+919812345678", "gdpr_consent": true, "gdpr_consent_source": "webinar"}),
        )
        .await;
        let lid = lead["id"].as_str().expect("id").to_string();
        created(&app, &s, "activities", json!({"activity_type": "call", "title": "Discovery call with Meera", "lead_id": lid})).await;
        created(&app, &s, "tasks", json!({"title": "Send Meera the deck", "related_object": "leads", "related_id": lid})).await;
        let contact = created(&app, &s, "contacts", json!({"first_name": "Meera", "last_name": "N", "email": "meera@export.test"})).await;
        let twin = created(&app, &s, "leads", json!({"last_name": "Other lead", "phone": "+919812345678"})).await;
        created(&app, &s, "leads", json!({"last_name": "Stranger", "email": "someone@export.test"})).await;
        let r = patch_now(&app, &s, "leads", &lid, json!({"job_title": "CTO"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        let r = app.get(&s, &s.path(&format!("privacy/subjects/leads/{lid}/export"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.headers.get("content-disposition").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("attachment")));
        let d = &r.body;
        assert_eq!(d["subject"]["id"], lid.as_str());
        assert_eq!(d["record"]["email"], "meera@export.test");
        assert_eq!(d["record"]["job_title"], "CTO");
        assert_eq!(d["activities"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["activities"][0]["title"], "Discovery call with Meera");
        assert_eq!(d["tasks"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["tasks"][0]["title"], "Send Meera the deck");
        assert_eq!(d["consent_log"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["consent_log"][0]["source"], "webinar");
        let history = d["audit_history"].as_array().expect("history");
        assert!(history.iter().any(|h| h["action"] == "create" && h["field"] == "email" && h["new_value"] == "meera@export.test"));
        assert!(history.iter().any(|h| h["action"] == "update" && h["field"] == "job_title"));
        let contacts = d["matching_records"]["contacts"].as_array().expect("contacts");
        assert_eq!(contacts.len(), 1);
        assert_eq!(contacts[0]["id"], contact["id"]);
        let leads = d["matching_records"]["leads"].as_array().expect("leads");
        assert_eq!(leads.len(), 1, "the twin by phone, not the subject itself nor the stranger: {leads:?}");
        assert_eq!(leads[0]["id"], twin["id"]);
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM audit_log WHERE action = 'privacy_export'")).await, 1);

        // From the contact's side.
        let r = app.get(&s, &s.path(&format!("privacy/subjects/contacts/{}/export", contact["id"].as_str().unwrap_or("")))).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["matching_records"]["leads"].as_array().map(Vec::len), Some(1));

        // Not a person, not a uuid, another company.
        let r = app.get(&s, &s.path(&format!("privacy/subjects/deals/{lid}/export"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(is_problem(&r));
        assert_eq!(app.get(&s, &s.path("privacy/subjects/leads/xyz/export")).await.status, StatusCode::BAD_REQUEST);
        let other = app.register("other@export.test", "Other Co").await;
        assert_eq!(app.get(&other, &other.path(&format!("privacy/subjects/leads/{lid}/export"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&other, &s.path(&format!("privacy/subjects/leads/{lid}/export"))).await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn erasure_anonymises_the_person_everywhere_and_the_audit_still_verifies() {
    for app in TestApp::all().await {
        let s = app.register("owner@erase.test", "Erase Co").await;
        let lead = created(
            &app,
            &s,
            "leads",
            json!({"first_name": "Asha", "last_name": "Rao", "email": "asha.rao@erase.test", "phone": "+919800011122", "job_title": "Head of Sales",
                   "notes": "Asha prefers calls after 4 pm", "status": "qualified", "source": "website", "lead_score": 70, "gdpr_consent": true,
                   "gdpr_consent_source": "form"}),
        )
        .await;
        let lid = lead["id"].as_str().expect("id").to_string();
        let r = patch_now(&app, &s, "leads", &lid, json!({"email": "asha.rao2@erase.test"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = patch_now(&app, &s, "leads", &lid, json!({"email": "asha.rao@erase.test"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let contact = created(
            &app,
            &s,
            "contacts",
            json!({"first_name": "Asha", "last_name": "Rao", "email": "asha.rao@erase.test", "department": "Sales"}),
        )
        .await;
        let cid = contact["id"].as_str().expect("id").to_string();
        let twin =
            created(&app, &s, "leads", json!({"first_name": "A.", "last_name": "Rao", "phone": "+919800011122", "status": "new"})).await;
        let stranger = created(&app, &s, "leads", json!({"first_name": "Vikram", "last_name": "Shah", "email": "vikram@erase.test"})).await;
        let act = created(&app, &s, "activities", json!({"activity_type": "call", "title": "Call with Asha Rao", "description": "Asha wants a demo", "lead_id": lid, "duration_minutes": 20})).await;
        let act2 = created(&app, &s, "activities", json!({"activity_type": "meeting", "title": "Met Asha", "contact_id": cid})).await;
        let other_act =
            created(&app, &s, "activities", json!({"activity_type": "note", "title": "Vikram note", "lead_id": stranger["id"]})).await;
        let task = created(
            &app,
            &s,
            "tasks",
            json!({"title": "Email Asha the quote", "description": "to asha.rao@erase.test", "related_object": "leads", "related_id": lid}),
        )
        .await;

        let r = app
            .post(
                &s,
                &s.path(&format!("leads/{lid}/qualify")),
                json!({"framework": "bant", "answers": {"budget_score": 7, "budget_notes": "Asha controls the budget"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");

        // Only Admins erase; other companies see nothing.
        let rep = app.member(&s, "rep@erase.test", "sales_rep").await;
        let other = app.register("other@erase.test", "Other Co").await;
        let before = app.snapshot().await;
        let r = app.post(&rep, &rep.path(&format!("privacy/subjects/leads/{lid}/erase")), json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.post(&other, &other.path(&format!("privacy/subjects/leads/{lid}/erase")), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.post(&s, &s.path("privacy/subjects/accounts/00000000-0000-0000-0000-000000000000/erase"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.post(&s, &s.path("privacy/subjects/leads/00000000-0000-7000-8000-000000000000/erase"), json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.snapshot().await, before);

        let r = app.call(Method::POST, &s.path(&format!("privacy/subjects/leads/{lid}/erase")), Some(&s.token), None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let people: Vec<&str> = r.body["people"].as_array().expect("people").iter().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(people.len(), 3, "{r:?}");
        for want in [lid.as_str(), cid.as_str(), twin["id"].as_str().unwrap_or("")] {
            assert!(people.contains(&want), "{want} in {people:?}");
        }
        assert_eq!(r.body["activities"], 2);
        assert_eq!(r.body["tasks"], 1);
        assert!(r.body["audit"]["redacted"].as_i64().unwrap_or(0) > 5, "{r:?}");
        assert_eq!(r.body["audit"]["not_redactable"], 0);

        let l = app.get(&s, &s.path(&format!("leads/{lid}"))).await.body;
        assert_eq!(l["last_name"], "Erased");
        for f in ["first_name", "email", "phone", "job_title", "notes", "gdpr_consent_source"] {
            assert!(l[f].is_null(), "{f}: {l}");
        }
        assert_eq!(
            (l["status"].as_str(), l["source"].as_str(), l["lead_score"].as_i64()),
            (Some("qualified"), Some("website"), Some(70)),
            "figures stay"
        );
        let c = app.get(&s, &s.path(&format!("contacts/{cid}"))).await.body;
        assert_eq!((c["last_name"].as_str(), c["full_name"].as_str()), (Some("Erased"), Some("Erased")));
        assert!(c["email"].is_null() && c["first_name"].is_null() && c["department"].is_null());
        let t = app.get(&s, &s.path(&format!("leads/{}", twin["id"].as_str().unwrap_or("")))).await.body;
        assert!(t["phone"].is_null() && t["first_name"].is_null());
        let a = app.get(&s, &s.path(&format!("activities/{}", act["id"].as_str().unwrap_or("")))).await.body;
        assert_eq!(a["title"], "Call (erased)");
        assert!(a["description"].is_null());
        assert_eq!(a["duration_minutes"], 20, "figures stay");
        assert_eq!(a["lead_id"], lid.as_str(), "links stay");
        let a2 = app.get(&s, &s.path(&format!("activities/{}", act2["id"].as_str().unwrap_or("")))).await.body;
        assert_eq!(a2["title"], "Meeting (erased)");
        let tk = app.get(&s, &s.path(&format!("tasks/{}", task["id"].as_str().unwrap_or("")))).await.body;
        assert_eq!(tk["title"], "Task (erased)");
        assert!(tk["description"].is_null());
        // Someone else is untouched.
        let v = app.get(&s, &s.path(&format!("leads/{}", stranger["id"].as_str().unwrap_or("")))).await.body;
        assert_eq!((v["first_name"].as_str(), v["email"].as_str()), (Some("Vikram"), Some("vikram@erase.test")));
        let o = app.get(&s, &s.path(&format!("activities/{}", other_act["id"].as_str().unwrap_or("")))).await.body;
        assert_eq!(o["title"], "Vikram note");

        // The audit trail: erase rows name fields without values; no erased value is left.
        let hist = app.get(&s, &s.path(&format!("leads/{lid}/history?action=erase"))).await;
        let rows = hist.body["data"].as_array().expect("rows");
        let fields: Vec<&str> = rows.iter().filter_map(|r| r["field"].as_str()).collect();
        for f in ["first_name", "last_name", "email", "phone", "job_title", "notes"] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        // Field rows carry no values; one summary row says how much was anonymised.
        assert!(rows.iter().filter(|r| r["field"].is_string()).all(|r| r["old_value"].is_null() && r["new_value"].is_null()), "{rows:?}");
        let summary: Vec<&Value> = rows.iter().filter(|r| r["field"].is_null()).collect();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0]["new_value"], "3 people, 2 activities, 1 tasks anonymised");
        for needle in ["%asha%", "%Asha%", "%9800011122%", "%Head of Sales%", "%4 pm%"] {
            let n = one(
                &app,
                Q::new("SELECT COUNT(*) FROM audit_log WHERE old_value LIKE $1 OR new_value LIKE $1").bind(V::Text(needle.into())),
            )
            .await;
            assert_eq!(n, 0, "{needle} still in the audit trail");
        }
        let sql = "SELECT COUNT(*) FROM leads WHERE email LIKE $1 OR first_name LIKE $1 OR notes LIKE $1";
        assert_eq!(one(&app, Q::new(sql).bind(V::Text("%sha%".into()))).await, 0);
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM activities WHERE title LIKE '%Asha%' OR description LIKE '%Asha%'")).await, 0);
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM consent_log WHERE ip IS NOT NULL OR source IS NOT NULL")).await, 0);
        let notes = "SELECT COUNT(*) FROM lead_qualifications WHERE CAST(answers AS TEXT) LIKE '%Asha%'";
        assert_eq!(one(&app, Q::new(notes)).await, 0, "qualification notes are erased");
        let scores = "SELECT COUNT(*) FROM lead_qualifications WHERE CAST(answers AS TEXT) LIKE '%budget_score%'";
        assert_eq!(one(&app, Q::new(scores)).await, 1, "scores stay");
        assert_eq!(app.get(&s, &s.path(&format!("leads/{lid}"))).await.body["bant_budget_score"], 7);
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true, "{v:?}");

        // A repeat finds nothing left to erase and still verifies.
        let r = app.post(&s, &s.path(&format!("privacy/subjects/leads/{lid}/erase")), json!({})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["people"].as_array().map(Vec::len), Some(0), "{r:?}");
        assert_eq!(r.body["audit"]["redacted"], 0);
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);

        // Redacted rows are still protected: changing a kept digest is detected.
        app.db.execute(&Q::new("UPDATE audit_log SET old_digest = 'x' WHERE old_digest IS NOT NULL")).await.expect("tamper");
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], false, "{v:?}");
        assert!(v.body["problem"].as_str().is_some_and(|p| p.contains("hash")), "{v:?}");
    }
}

#[tokio::test]
async fn quality_report_matches_the_data_and_policies_are_listed() {
    for app in TestApp::all().await {
        let s = app.register("owner@quality.test", "Quality Co").await;
        let other = app.register("owner@elsewhere.test", "Elsewhere Co").await;
        created(&app, &other, "leads", json!({"last_name": "Not ours", "email": "x@elsewhere.test"})).await;
        let mut ids = Vec::new();
        for (i, (email, status)) in [
            (Some("a@q.test"), "new"),
            (None, "contacted"),
            (Some("c@q.test"), "nurturing"),
            (None, "converted"),
            (Some("e@q.test"), "new"),
        ]
        .iter()
        .enumerate()
        {
            // Only a conversion marks a lead converted; this one is marked in the database.
            let given = if *status == "converted" { "qualified" } else { *status };
            let mut body = json!({"last_name": format!("L{i}"), "status": given});
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            if i == 1 {
                body["dnd_status"] = json!(true);
                body["gdpr_consent"] = json!(true);
            }
            ids.push(id(&app.post(&s, &s.path("leads"), body).await));
            if *status == "converted" {
                let q = Q::new("UPDATE leads SET status = 'converted' WHERE id = $1").bind(V::Uuid(ids[i].parse().expect("uuid")));
                app.db.execute(&q).await.expect("mark converted");
            }
        }
        let gone = id(&app.post(&s, &s.path("leads"), json!({"last_name": "Deleted", "email": "d@q.test"})).await);
        assert_eq!(app.delete(&s, &s.path(&format!("leads/{gone}"))).await.status, StatusCode::OK);
        created(&app, &s, "contacts", json!({"last_name": "C1", "email": "c1@q.test"})).await;
        created(&app, &s, "contacts", json!({"last_name": "C2"})).await;
        created(&app, &s, "accounts", json!({"name": "Acme"})).await;

        // Ageing: L0 untouched for 45 days; L2 for 100 days but with a fresh activity; L3
        // (converted) for 100 days; L4 for 70 days.
        let now = chrono::Utc::now();
        for (i, days) in [(0usize, 45i64), (2, 100), (3, 100), (4, 70)] {
            app.db
                .execute(
                    &Q::new("UPDATE leads SET updated_at = $1 WHERE id = $2")
                        .bind(V::Timestamp(now - chrono::Duration::days(days)))
                        .bind(V::Uuid(ids[i].parse().expect("uuid"))),
                )
                .await
                .expect("age");
        }
        created(&app, &s, "activities", json!({"activity_type": "note", "title": "Still talking", "lead_id": ids[2]})).await;
        // Ageing again after the activity (a pipeline step may touch the lead).
        app.db
            .execute(
                &Q::new("UPDATE leads SET updated_at = $1 WHERE id = $2")
                    .bind(V::Timestamp(now - chrono::Duration::days(100)))
                    .bind(V::Uuid(ids[2].parse().expect("uuid"))),
            )
            .await
            .expect("age");

        let r = app.get(&s, &s.path("data/quality-report")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let objects = r.body["objects"].as_array().expect("objects");
        assert_eq!(objects.iter().map(|o| o["object"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["leads", "contacts", "accounts"]);
        let leads = &objects[0];
        assert_eq!(leads["total"], 5);
        let field = |o: &Value, name: &str| {
            o["completeness"].as_array().and_then(|a| a.iter().find(|c| c["field"] == name).cloned()).unwrap_or(Value::Null)
        };
        assert_eq!(field(leads, "email")["filled"], 3);
        assert_eq!(field(leads, "email")["percent"], 60.0);
        assert_eq!(field(leads, "last_name")["percent"], 100.0);
        assert!(field(leads, "gdpr_consent_at").is_null(), "system-set fields are not measured");
        assert_eq!(leads["do_not_disturb"], 1);
        assert_eq!(leads["with_consent"], 1);
        assert_eq!(leads["open"], 4);
        let stale: Vec<(i64, i64)> = leads["stale"]
            .as_array()
            .expect("stale")
            .iter()
            .map(|s| (s["days"].as_i64().unwrap_or(0), s["count"].as_i64().unwrap_or(-1)))
            .collect();
        assert_eq!(stale, [(30, 2), (60, 1), (90, 0)], "{leads}");
        // The other counts equal what the tables say (whatever the validation steps decided).
        let cid = V::Uuid(s.company_id.parse().expect("uuid"));
        for (key, cond) in [
            ("invalid", "validation_status = 'invalid'"),
            ("pending_validation", "validation_status = 'pending'"),
            ("spam_high", "spam_score = 'high'"),
        ] {
            let n = one(
                &app,
                Q::new(format!("SELECT COUNT(*) FROM leads WHERE company_id = $1 AND deleted_at IS NULL AND {cond}")).bind(cid.clone()),
            )
            .await;
            assert_eq!(leads[key], n, "{key}");
        }
        let dups = one(
            &app,
            Q::new("SELECT COUNT(*) FROM leads WHERE company_id = $1 AND deleted_at IS NULL AND is_duplicate = $2")
                .bind(cid.clone())
                .bind(V::Bool(true)),
        )
        .await;
        assert_eq!(leads["duplicates"], dups);
        for f in leads["completeness"].as_array().expect("fields") {
            let name = f["field"].as_str().expect("name");
            let n = one(
                &app,
                Q::new(format!("SELECT COUNT({name}) FROM leads WHERE company_id = $1 AND deleted_at IS NULL")).bind(cid.clone()),
            )
            .await;
            assert_eq!(f["filled"], n, "{name}");
        }
        let contacts = &objects[1];
        assert_eq!(contacts["total"], 2);
        assert_eq!(field(contacts, "email")["filled"], 1);
        assert!(contacts.get("stale").is_none());
        assert_eq!(objects[2]["total"], 1);
        // Another company's report counts only its own.
        let theirs = app.get(&other, &other.path("data/quality-report")).await;
        assert_eq!(theirs.body["objects"][0]["total"], 1);
        assert_eq!(app.get(&other, &s.path("data/quality-report")).await.status, StatusCode::NOT_FOUND);

        // Policies: defaults, then what the company set.
        let r = app.get(&s, &s.path("data/governance/policies")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let policy =
            |body: &Value, id: &str| body["data"].as_array().and_then(|a| a.iter().find(|p| p["id"] == id).cloned()).unwrap_or(Value::Null);
        for id in ["dedupe", "conversion", "scoring", "assignment", "consent", "dnd", "validation", "erasure"] {
            assert!(!policy(&r.body, id).is_null(), "{id} listed");
        }
        for id in ["scoring", "assignment"] {
            assert_eq!(policy(&r.body, id)["value"]["available"], true, "{id}");
            assert!(policy(&r.body, id)["value"]["active"].is_array(), "{id}");
        }
        assert_eq!(policy(&r.body, "dedupe")["value"]["policy"], "flag");
        assert_eq!(policy(&r.body, "dedupe")["source"], "default");
        assert_eq!(policy(&r.body, "dnd")["value"]["enforced"], true);
        assert_eq!(policy(&r.body, "consent")["value"]["require_source"], false);
        let ctx = corvid_store::audit::AuditCtx { company_id: s.company_id.parse().expect("uuid"), actor_id: None, ..Default::default() };
        corvid_store::settings::set(&app.db, &ctx, "dedupe.policy", &"block").await.expect("set");
        let r = app.call(Method::PUT, &s.path("privacy/consent-policy"), Some(&s.token), Some(json!({"require_source": true})), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        let ro = app.member(&s, "ro@quality.test", "read_only").await;
        let r = app.get(&ro, &ro.path("data/governance/policies")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(policy(&r.body, "dedupe")["value"]["policy"], "block");
        assert_eq!(policy(&r.body, "dedupe")["source"], "settings");
        assert_eq!(policy(&r.body, "consent")["value"]["require_source"], true);
        assert_eq!(policy(&r.body, "consent")["source"], "settings");
        assert_eq!(app.get(&other, &s.path("data/governance/policies")).await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn privacy_pages_and_dashboard_widget() {
    for app in TestApp::all().await {
        let s = app.register("owner@pages.test", "Pages Co").await;
        let lead = created(&app, &s, "leads", json!({"first_name": "Ravi", "last_name": "Kumar", "email": "ravi@pages.test", "gdpr_consent": true, "gdpr_consent_source": "expo"})).await;
        let lid = lead["id"].as_str().expect("id").to_string();
        let w = app.web_sign_in("owner@pages.test").await;
        let base = format!("/app/{}", s.company_id);
        let page = app.web_get(&w, &format!("{base}/leads/{lid}"), &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains(&format!("hx-get=\"{base}/leads/{lid}/privacy\"")), "the record page loads the panel");
        let deal = created(&app, &s, "accounts", json!({"name": "Acme"})).await;
        let acc_page = app.web_get(&w, &format!("{base}/accounts/{}", deal["id"].as_str().unwrap_or("")), &[]).await;
        assert!(!acc_page.text.contains("/privacy\""), "only people have the panel");

        let panel = app.web_get(&w, &format!("{base}/leads/{lid}/privacy"), &[("hx-request", "true")]).await;
        assert_eq!(panel.status, StatusCode::OK);
        assert!(panel.text.contains("Consent given") && panel.text.contains("expo") && panel.text.contains("Erase personal data"));
        assert!(!panel.text.contains("<html"), "a fragment for htmx");
        let full = app.web_get(&w, &format!("{base}/leads/{lid}/privacy"), &[]).await;
        assert!(full.text.contains("<html") && full.text.contains("data-testid=\"consent-log\""));

        let r = app
            .web_post(
                &w,
                &format!("{base}/leads/{lid}/privacy/consent"),
                &[("consent", "withdrawn"), ("channel", "phone"), ("note", "asked on a call")],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(log_of(&app, &s, "leads", &lid).await.len(), 2);
        let r = app.web_post(&w, &format!("{base}/leads/{lid}/privacy/consent"), &[("consent", "given"), ("channel", "fax")], true).await;
        assert!(r
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.contains("not+recorded") || l.contains("not%20recorded")));
        assert_eq!(log_of(&app, &s, "leads", &lid).await.len(), 2);
        let r =
            app.web_post(&w, &format!("{base}/leads/{lid}/privacy/consent"), &[("consent", "given"), ("channel", "phone")], false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF token required");

        let ex = app.web_get(&w, &format!("{base}/leads/{lid}/privacy/export"), &[]).await;
        assert_eq!(ex.status, StatusCode::OK);
        assert_eq!(ex.body["record"]["email"], "ravi@pages.test");

        // Sales reps see no erase button and cannot erase.
        app.member(&s, "rep@pages.test", "sales_rep").await;
        let rw = app.web_sign_in("rep@pages.test").await;
        let panel = app.web_get(&rw, &format!("{base}/leads/{lid}/privacy"), &[("hx-request", "true")]).await;
        assert!(!panel.text.contains("Erase personal data"));
        let r = app.web_post(&rw, &format!("{base}/leads/{lid}/privacy/erase"), &[], true).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.get(&s, &s.path(&format!("leads/{lid}"))).await.body["email"], "ravi@pages.test");
        assert_eq!(app.web_get(&rw, &format!("{base}/settings/quality"), &[]).await.status, StatusCode::FORBIDDEN);
        let widget = app.web_get(&rw, &format!("{base}/dashboard/quality"), &[("hx-request", "true")]).await;
        assert_eq!(widget.status, StatusCode::OK);
        assert!(widget.text.contains("1 leads") && !widget.text.contains("Full report"), "{}", widget.text);

        let dash = app.web_get(&w, &format!("{base}/dashboard"), &[]).await;
        assert!(dash.text.contains(&format!("hx-get=\"{base}/dashboard/quality\"")));
        let q = app.web_get(&w, &format!("{base}/settings/quality"), &[]).await;
        assert_eq!(q.status, StatusCode::OK);
        assert!(q.text.contains("Data quality") && q.text.contains("Policies in effect") && q.text.contains("Do not disturb"));

        let r = app.web_post(&w, &format!("{base}/leads/{lid}/privacy/erase"), &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(r.headers.get("location").and_then(|v| v.to_str().ok()).is_some_and(|l| l.contains("erased")));
        let l = app.get(&s, &s.path(&format!("leads/{lid}"))).await.body;
        assert!(l["email"].is_null());
        assert_eq!(l["last_name"], "Erased");
        let panel = app.web_get(&w, &format!("{base}/leads/{lid}/privacy"), &[("hx-request", "true")]).await;
        assert!(panel.text.contains("Personal data erased"));
        // Other objects and other companies.
        assert_eq!(
            app.web_get(&w, &format!("{base}/accounts/{}/privacy", deal["id"].as_str().unwrap_or("")), &[]).await.status,
            StatusCode::NOT_FOUND
        );
        let stranger = app.register("x@pages.test", "X Co").await;
        let xw = app.web_sign_in("x@pages.test").await;
        assert_eq!(app.web_get(&xw, &format!("/app/{}/leads/{lid}/privacy", stranger.company_id), &[]).await.status, StatusCode::NOT_FOUND);
    }
}

/// Imports leads (matching rows update) and waits for the import to finish.
async fn import_leads(app: &TestApp, s: &Session, csv: &str, mapping: &str) -> Value {
    let fields = [("object", "leads"), ("mapping", mapping), ("options", r#"{"duplicate_policy": "update"}"#)];
    let (ct, body) = multipart(&fields, "people.csv", csv.as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri(s.path("data/import"))
        .header("authorization", format!("Bearer {}", s.token))
        .header("content-type", ct)
        .body(Body::from(body))
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

/// Every text-like column of every table: (table, column).
async fn text_columns(app: &TestApp) -> Vec<(String, String)> {
    let sql = if app.backend == "sqlite" {
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
         AND m.name NOT LIKE '_sqlx%'"
    } else {
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() \
         AND data_type IN ('text', 'jsonb', 'json', 'character varying') AND table_name NOT LIKE '_sqlx%'"
    };
    let rows = app.db.fetch(&Q::new(sql), &[SqlType::Text, SqlType::Text]).await.expect("columns");
    rows.iter().filter_map(|r| Some((r.text(0)?, r.text(1)?))).collect()
}

/// (table, column) pairs where some row's text matches the LIKE pattern (lower case).
async fn tables_mentioning(app: &TestApp, columns: &[(String, String)], pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (t, c) in columns {
        let q = Q::new(format!("SELECT COUNT(*) FROM {t} WHERE LOWER(CAST({c} AS TEXT)) LIKE $1")).bind(V::Text(pattern.into()));
        if one(app, q).await > 0 {
            out.push(format!("{t}.{c}"));
        }
    }
    out
}

#[tokio::test]
async fn erasure_reaches_import_errors_the_system_log_and_other_records() {
    for app in TestApp::all().await {
        let runtime = corvid_server::jobs::Runtime::start(app.db.clone(), corvid_server::jobs::Registry::builtin(), 1);
        let s = app.register("owner@wipe.test", "Wipe Co").await;
        let company: uuid::Uuid = s.company_id.parse().expect("company");
        let email = "meera.pillai@wipe.test";
        let lead = created(
            &app,
            &s,
            "leads",
            json!({"first_name": "Meera", "last_name": "Pillai", "email": email, "phone": "+919811122233", "status": "qualified"}),
        )
        .await;
        let lid = lead["id"].as_str().expect("id").to_string();

        // A failed import row with her details (as typed in the file).
        let csv = format!("E-mail,First Name,Surname,Mobile,Score\n{},Meera,Pillai,98111 22233,lots\n", email.to_uppercase());
        let done = import_leads(&app, &s, &csv, r#"["email", "first_name", "last_name", "phone", "lead_score"]"#).await;
        assert_eq!(done["failed"], 1, "{done}");
        let raw = "SELECT COUNT(*) FROM import_errors WHERE LOWER(CAST(raw AS TEXT)) LIKE '%meera.pillai@wipe.test%'";
        assert_eq!(one(&app, Q::new(raw)).await, 1, "the failed row keeps the file's cells");

        // System log entries that mention her, with and without a company; one that does not.
        let entry = |company_id: Option<uuid::Uuid>, message: &str, fields: Value| corvid_store::syslog::NewEntry {
            at: chrono::Utc::now(),
            severity: 3,
            target: "corvid::mail".into(),
            message: message.into(),
            fields,
            request_id: None,
            company_id,
        };
        corvid_store::syslog::insert(
            &app.db,
            "test-node",
            &[
                entry(
                    Some(company),
                    &format!("quote sent to {email}"),
                    json!({"to": "Meera.Pillai@wipe.test", "name": "Meera Pillai", "phone": "+91 98111 22233"}),
                ),
                entry(None, &format!("bounce from {email}"), json!({})),
                entry(Some(company), "nightly digest sent", json!({"to": "team@wipe.test"})),
            ],
        )
        .await
        .expect("log");

        // Other records that mention her email or phone, with audit history of the mention.
        let acc = created(&app, &s, "accounts", json!({"name": "Pillai Traders", "email": email, "phone": "+919811122233"})).await;
        let deal = created(
            &app,
            &s,
            "deals",
            json!({"name": "Traders renewal", "account_id": acc["id"], "description": format!("Send the contract to {email} or call 098111-22233")}),
        )
        .await;
        let did = deal["id"].as_str().expect("id").to_string();
        let r =
            patch_now(&app, &s, "deals", &did, json!({"description": format!("Contract sent to {email}; follow up on 9811122233.")})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let note = created(
            &app,
            &s,
            "activities",
            json!({"activity_type": "note", "title": "Forwarded the brochure", "description": format!("cc {}", email.to_uppercase()), "account_id": acc["id"]}),
        )
        .await;
        // Someone who only shares her name is not her.
        let namesake = created(
            &app,
            &s,
            "leads",
            json!({"first_name": "Meera", "last_name": "Pillai", "email": "m.pillai@elsewhere.test", "notes": "Not our Meera"}),
        )
        .await;

        let r = app.post(&s, &s.path(&format!("privacy/subjects/leads/{lid}/erase")), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let people: Vec<&str> = r.body["people"].as_array().expect("people").iter().filter_map(|p| p["id"].as_str()).collect();
        assert_eq!(people, [lid.as_str()], "{r:?}");
        let mentioned: Vec<&str> =
            r.body["elsewhere"]["records"].as_array().expect("records").iter().filter_map(|p| p["id"].as_str()).collect();
        for want in [&acc["id"], &deal["id"], &note["id"]] {
            assert!(mentioned.contains(&want.as_str().unwrap_or("")), "{want} in {r:?}");
        }
        assert_eq!(r.body["elsewhere"]["rows"]["import_errors"], 1, "{r:?}");
        assert_eq!(r.body["elsewhere"]["rows"]["system_logs"], 2, "{r:?}");

        // Nothing anywhere still holds her email or her number, however it was written.
        let columns = text_columns(&app).await;
        assert!(columns.iter().any(|(t, c)| t == "import_errors" && c == "raw"), "{columns:?}");
        for pattern in ["%meera.pillai@wipe.test%", "%9811122233%", "%98111 22233%", "%98111-22233%"] {
            assert_eq!(tables_mentioning(&app, &columns, pattern).await, Vec::<String>::new(), "{pattern}");
        }
        // Her name went from the import row and the log entry about her, not from the namesake.
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM import_errors WHERE CAST(raw AS TEXT) LIKE '%Meera%'")).await, 0);
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM system_logs WHERE CAST(fields AS TEXT) LIKE '%Pillai%'")).await, 0);
        let n = app.get(&s, &s.path(&format!("leads/{}", namesake["id"].as_str().unwrap_or("")))).await.body;
        assert_eq!((n["first_name"].as_str(), n["email"].as_str()), (Some("Meera"), Some("m.pillai@elsewhere.test")));
        assert_eq!(one(&app, Q::new("SELECT COUNT(*) FROM system_logs WHERE message = 'nightly digest sent'")).await, 1);
        // What stays readable: the records themselves, with the mention marked.
        let d = app.get(&s, &s.path(&format!("deals/{did}"))).await.body;
        assert_eq!(d["description"], "Contract sent to [erased]; follow up on [erased].", "{d}");
        assert_eq!(d["name"], "Traders renewal");
        let a = app.get(&s, &s.path(&format!("accounts/{}", acc["id"].as_str().unwrap_or("")))).await.body;
        assert!(a["email"].is_null() && a["phone"].is_null() && a["name"] == "Pillai Traders", "{a}");
        let h = app.get(&s, &s.path(&format!("deals/{did}/history?action=erase"))).await;
        assert!(h.body["data"].as_array().expect("rows").iter().any(|r| r["field"] == "description" && r["new_value"].is_null()), "{h:?}");
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true, "{v:?}");

        // A repeat has nothing left to find.
        let r = app.post(&s, &s.path(&format!("privacy/subjects/leads/{lid}/erase")), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["elsewhere"]["records"].as_array().map(Vec::len), Some(0), "{r:?}");
        assert_eq!(r.body["audit"]["redacted"], 0, "{r:?}");
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);
        runtime.shutdown().await;
    }
}
