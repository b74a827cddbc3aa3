//! Duplicate detection end to end, on both databases through the API: the policies (flag,
//! block, allow) on create, update, bulk and import; candidate lists; dismissing a pair;
//! merging leads and contacts (fields picked per record, related records moved, audit, the old
//! id resolving, a merged record never restored);
//! the whole-base scan job and its cluster report; and the web pages over the same services.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use corvid_server::jobs::{Registry, Runtime};
use serde_json::{json, Value};
use std::time::Duration;

async fn lead(app: &TestApp, s: &Session, body: Value) -> Value {
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

async fn set_policy(app: &TestApp, s: &Session, policy: &str) {
    let r = app.call(Method::PUT, &s.path("data/dedupe/policy"), Some(&s.token), Some(json!({"policy": policy})), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["policy"], policy);
}

fn reasons_mention(v: &Value, word: &str) -> bool {
    v.as_array().is_some_and(|a| a.iter().any(|r| r.as_str().is_some_and(|s| s.to_lowercase().contains(word))))
}

#[tokio::test]
async fn flag_policy_marks_leads_and_allow_does_not_check() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-flag.test", "Flag Co").await;
        let r = app.get(&s, &s.path("data/dedupe/policy")).await;
        assert_eq!(r.body["policy"], "flag", "flag is the default: {r:?}");

        let a =
            lead(&app, &s, json!({"first_name": "Priya", "last_name": "Shah", "email": "priya.shah@example.in", "company_name": "Acme"}))
                .await;
        assert_eq!(a["is_duplicate"], false, "{a}");
        assert!(a["duplicate_score"].is_null());
        let b = lead(&app, &s, json!({"first_name": "Priya", "last_name": "Shah", "email": "PRIYA.SHAH@example.in"})).await;
        assert_eq!(b["is_duplicate"], true, "{b}");
        assert_eq!(b["duplicate_of_id"], a["id"]);
        assert!(b["duplicate_score"].as_i64().is_some_and(|s| (70..=100).contains(&s)), "{b}");
        assert!(reasons_mention(&b["duplicate_reasons"], "email"), "{b}");
        // The flag and its details are in the record's history.
        let h = app.get(&s, &s.path(&format!("leads/{}/history", id(&b)))).await;
        assert!(h.body["data"].as_array().expect("rows").iter().any(|r| r["field"] == "is_duplicate" && r["new_value"] == "true"), "{h:?}");

        // Candidates both ways, with score and reasons.
        let r = app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&b)))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["data"][0]["id"], a["id"], "{r:?}");
        assert_eq!(r.body["data"][0]["object"], "leads");
        assert!(reasons_mention(&r.body["data"][0]["reasons"], "email"));
        let r = app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&a)))).await;
        assert!(r.body["data"].as_array().expect("data").iter().any(|c| c["id"] == b["id"]), "{r:?}");

        // An unrelated lead is not flagged; changing the email away clears the engine's flag.
        let c = lead(&app, &s, json!({"first_name": "Zubin", "last_name": "Mehta", "email": "zubin@elsewhere.example"})).await;
        assert_eq!(c["is_duplicate"], false);
        let r = app
            .patch(&s, &s.path(&format!("leads/{}", id(&b))), json!({"email": "p.shah.personal@example.org", "version": b["version"]}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["is_duplicate"], false, "{r:?}");
        assert!(r.body["duplicate_of_id"].is_null() && r.body["duplicate_score"].is_null() && r.body["duplicate_reasons"].is_null());
        // Changing it back flags it again (updates are checked too).
        let r = app
            .patch(&s, &s.path(&format!("leads/{}", id(&b))), json!({"email": "priya.shah@example.in", "version": r.body["version"]}))
            .await;
        assert_eq!(r.body["is_duplicate"], true, "{r:?}");
        // A person saying "not a duplicate" clears the details.
        let r = app.patch(&s, &s.path(&format!("leads/{}", id(&b))), json!({"is_duplicate": false, "version": r.body["version"]})).await;
        assert_eq!((r.body["is_duplicate"].clone(), r.body["duplicate_score"].clone()), (json!(false), Value::Null), "{r:?}");

        // A lead matching an existing contact (same phone) is flagged; the contact is named.
        let con = app.post(&s, &s.path("contacts"), json!({"first_name": "Arjun", "last_name": "Rao", "phone": "+919812345678"})).await;
        assert_eq!(con.status, StatusCode::CREATED, "{con:?}");
        let d = lead(&app, &s, json!({"first_name": "Arjun", "last_name": "Rao", "phone": "98123 45678"})).await;
        assert_eq!(d["is_duplicate"], true, "{d}");
        assert!(d["duplicate_of_id"].is_null(), "duplicate_of_id only points at leads: {d}");
        assert!(reasons_mention(&d["duplicate_reasons"], con.body["number"].as_str().expect("number").to_lowercase().as_str()), "{d}");
        let r = app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&d)))).await;
        assert_eq!(r.body["data"][0]["object"], "contacts", "{r:?}");
        // Contacts and accounts have candidate lists too.
        let r = app.get(&s, &s.path(&format!("contacts/{}/duplicates", id(&con.body)))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["data"], json!([]), "a contact is compared with contacts only: {r:?}");

        // Allow: no check at all.
        set_policy(&app, &s, "allow").await;
        let e = lead(&app, &s, json!({"first_name": "Priya", "last_name": "Shah", "email": "priya.shah@example.in"})).await;
        assert_eq!(e["is_duplicate"], false, "{e}");
        // ...but the candidate list still works.
        let r = app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&e)))).await;
        assert!(r.body["data"].as_array().expect("data").iter().any(|c| c["id"] == a["id"]), "{r:?}");

        // The policy: audited, Admin-only, validated.
        let audit = app.get(&s, &s.path("audit?object=settings")).await;
        assert!(audit.body["data"].as_array().expect("rows").iter().any(|r| r["field"] == "dedupe.policy"), "{audit:?}");
        let rep = app.member(&s, "rep@dedupe-flag.test", "sales_rep").await;
        let r = app.call(Method::PUT, &s.path("data/dedupe/policy"), Some(&rep.token), Some(json!({"policy": "block"})), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        for bad in [json!({"policy": "explode"}), json!({"policy": 3}), json!({}), json!({"policy": "flag", "extra": 1})] {
            let r = app.call(Method::PUT, &s.path("data/dedupe/policy"), Some(&s.token), Some(bad.clone()), &[]).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {r:?}");
            assert!(is_problem(&r));
        }
        assert_eq!(app.get(&rep, &s.path("data/dedupe/policy")).await.body["policy"], "allow");

        // Another company's record: 404.
        let other = app.register("owner@dedupe-flag-other.test", "Other Flag Co").await;
        let r = app.get(&other, &other.path(&format!("leads/{}/duplicates", id(&a)))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = app.get(&s, &s.path("leads/not-a-uuid/duplicates")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
        // Other companies' leads are never candidates.
        let x = lead(&app, &other, json!({"first_name": "Priya", "last_name": "Shah", "email": "priya.shah@example.in"})).await;
        assert_eq!(x["is_duplicate"], false, "{x}");
    }
}

#[tokio::test]
async fn block_policy_refuses_with_the_candidates_and_writes_nothing() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-block.test", "Block Co").await;
        let a =
            lead(&app, &s, json!({"first_name": "Kavya", "last_name": "Iyer", "email": "kavya@iyer.example", "phone": "+919900112233"}))
                .await;
        let b = lead(&app, &s, json!({"first_name": "Rohan", "last_name": "Das", "email": "rohan@das.example"})).await;
        let acc = app.post(&s, &s.path("accounts"), json!({"name": "Umbrella Pvt Ltd", "gstin": "27AAPFU0939F1ZV"})).await;
        assert_eq!(acc.status, StatusCode::CREATED, "{acc:?}");
        set_policy(&app, &s, "block").await;
        let before = app.snapshot().await;

        let r = app.post(&s, &s.path("leads"), json!({"first_name": "Kavya", "last_name": "Iyer", "email": "Kavya@Iyer.example"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(is_problem(&r), "{r:?}");
        assert_eq!(r.body["type"], "/problems/duplicate");
        assert_eq!(r.body["candidates"][0]["id"], a["id"], "{r:?}");
        assert_eq!(r.body["candidates"][0]["number"], a["number"]);
        assert!(r.body["candidates"][0]["score"].as_i64().is_some_and(|s| s >= 70));
        assert!(reasons_mention(&r.body["candidates"][0]["reasons"], "email"));
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains(a["number"].as_str().unwrap_or("?"))), "{r:?}");

        // An update into a duplicate is refused too.
        let r = app
            .patch(
                &s,
                &s.path(&format!("leads/{}", id(&b))),
                json!({"first_name": "Kavya", "last_name": "Iyer", "phone": "+91 99001 12233", "version": b["version"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(r.body["candidates"][0]["id"], a["id"]);
        // Bulk: all or nothing.
        let r = app
            .post(
                &s,
                &s.path("leads/bulk"),
                json!({"action": "create", "records": [{"last_name": "Fine"}, {"last_name": "Iyer", "first_name": "Kavya", "email": "kavya@iyer.example"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        // Accounts by GSTIN.
        let r = app.post(&s, &s.path("accounts"), json!({"name": "Umbrella Private Limited", "gstin": "27AAPFU0939F1ZV"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(r.body["candidates"][0]["object"], "accounts");
        assert_eq!(app.snapshot().await, before, "a refused write changes nothing");

        // Not duplicates go through; a contact with a lead's email is not blocked (conversion
        // creates exactly that), but a second such contact is.
        lead(&app, &s, json!({"first_name": "Meena", "last_name": "Pillai", "email": "meena@pillai.example"})).await;
        let c1 =
            app.post(&s, &s.path("contacts"), json!({"first_name": "Kavya", "last_name": "Iyer", "email": "kavya@iyer.example"})).await;
        assert_eq!(c1.status, StatusCode::CREATED, "{c1:?}");
        let c2 =
            app.post(&s, &s.path("contacts"), json!({"first_name": "Kavya", "last_name": "Iyer", "email": "kavya@iyer.example"})).await;
        assert_eq!(c2.status, StatusCode::CONFLICT, "{c2:?}");
        assert_eq!(c2.body["candidates"][0]["id"], c1.body["id"]);

        // A new lead matching that contact is refused too.
        let r = app.post(&s, &s.path("leads"), json!({"first_name": "Kavya", "last_name": "Iyer", "email": "kavya@iyer.example"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.body["candidates"].as_array().expect("candidates").iter().any(|c| c["id"] == c1.body["id"]), "{r:?}");

        // After deleting the original, the same lead can be created; restoring re-indexes it.
        let m = lead_by_email(&app, &s, "meena@pillai.example").await.remove(0);
        assert_eq!(app.delete(&s, &s.path(&format!("leads/{}", id(&m)))).await.status, StatusCode::OK);
        let again = lead(&app, &s, json!({"first_name": "Meena", "last_name": "Pillai", "email": "meena@pillai.example"})).await;
        assert_eq!(app.post(&s, &s.path(&format!("leads/{}/restore", id(&m))), json!({})).await.status, StatusCode::OK);
        let r = app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&m)))).await;
        assert!(r.body["data"].as_array().expect("data").iter().any(|c| c["id"] == again["id"]), "{r:?}");
    }
}

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "corvidtestboundaryDedupe42";
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

async fn import(app: &TestApp, s: &Session, csv: &str) -> Value {
    let (ct, body) = multipart(&[("object", "leads"), ("options", r#"{"duplicate_policy": "create"}"#)], "leads.csv", csv.as_bytes());
    let req = Request::builder()
        .method("POST")
        .uri(s.path("data/import"))
        .header("authorization", format!("Bearer {}", s.token))
        .header("content-type", ct)
        .body(Body::from(body))
        .expect("req");
    let r = app.raw(req).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let import_id = id(&r.body);
    for _ in 0..400 {
        let r = app.get(s, &s.path(&format!("data/import/{import_id}"))).await;
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import did not finish");
}

async fn lead_by_email(app: &TestApp, s: &Session, email: &str) -> Vec<Value> {
    let r = app.get(s, &s.path(&format!("leads?filter[email]={email}&sort=created_at"))).await;
    r.body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn imports_go_through_the_same_check() {
    for app in TestApp::all().await {
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let s = app.register("owner@dedupe-import.test", "Import Dedupe Co").await;
        let existing = lead(&app, &s, json!({"first_name": "Sanjay", "last_name": "Gupta", "email": "sanjay@gupta.example"})).await;
        // Row 1 duplicates a stored lead, rows 3 and 4 duplicate each other, row 2 is new.
        let csv = "First Name,Last Name,Email,Phone\n\
                   Sanjay,Gupta,SANJAY@gupta.example,\n\
                   Farah,Khan,farah@khan.example,\n\
                   Lin,Chen,lin.chen@mail.example,+919811122233\n\
                   Lin,Chen,lin.chen@mail.example,+919811122233\n";
        let done = import(&app, &s, csv).await;
        assert_eq!((done["state"].as_str(), done["created"].as_i64()), (Some("succeeded"), Some(4)), "{done}");
        let sanjay = app.get(&s, &s.path("leads?filter[last_name]=Gupta")).await.body["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(sanjay.len(), 2);
        let imported = sanjay.iter().find(|l| l["id"] != existing["id"]).expect("imported");
        assert_eq!(
            (imported["is_duplicate"].clone(), imported["duplicate_of_id"].clone()),
            (json!(true), existing["id"].clone()),
            "{imported}"
        );
        let farah = lead_by_email(&app, &s, "farah@khan.example").await;
        assert_eq!(farah[0]["is_duplicate"], false);
        let lins = lead_by_email(&app, &s, "lin.chen@mail.example").await;
        assert_eq!(lins.len(), 2);
        let flagged: Vec<&Value> = lins.iter().filter(|l| l["is_duplicate"] == true).collect();
        assert_eq!(flagged.len(), 1, "the second of the in-file twins is flagged: {lins:?}");
        assert!(lins.iter().any(|l| l["id"] == flagged[0]["duplicate_of_id"]), "{lins:?}");

        // Under block, duplicate rows fail with the reason; the others are imported.
        set_policy(&app, &s, "block").await;
        let csv = "First Name,Last Name,Email\nFarah,Khan,farah@khan.example\nNew,Person,new.person@example.org\n";
        let done = import(&app, &s, csv).await;
        assert_eq!((done["created"].as_i64(), done["failed"].as_i64()), (Some(1), Some(1)), "{done}");
        let reason = done["errors"][0]["reason"].as_str().unwrap_or("");
        assert!(reason.contains("duplicate") && reason.contains(farah[0]["number"].as_str().unwrap_or("?")), "{done}");
        assert_eq!(done["errors"][0]["field"], "email");
        runtime.shutdown().await;
    }
}

async fn related(app: &TestApp, s: &Session, lead_id: &str) -> (Value, Value, Value) {
    let act = app.post(s, &s.path("activities"), json!({"activity_type": "call", "title": "Intro call", "lead_id": lead_id})).await;
    assert_eq!(act.status, StatusCode::CREATED, "{act:?}");
    let task = app.post(s, &s.path("tasks"), json!({"title": "Send brochure", "related_object": "leads", "related_id": lead_id})).await;
    assert_eq!(task.status, StatusCode::CREATED, "{task:?}");
    let acc = app.post(s, &s.path("accounts"), json!({"name": format!("Account of {lead_id}")})).await;
    let deal = app.post(s, &s.path("deals"), json!({"name": "Pilot", "account_id": acc.body["id"], "lead_id": lead_id})).await;
    assert_eq!(deal.status, StatusCode::CREATED, "{deal:?}");
    (act.body, task.body, deal.body)
}

#[tokio::test]
async fn merge_picks_fields_moves_related_records_and_keeps_the_old_id() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-merge.test", "Merge Co").await;
        let other = app.register("owner@dedupe-merge-other.test", "Other Merge Co").await;
        let a = lead(&app, &s, json!({"first_name": "Vikram", "last_name": "Singh", "email": "vikram@singh.example", "job_title": "CTO"}))
            .await;
        let b = lead(
            &app,
            &s,
            json!({"first_name": "Vikram", "last_name": "Singh", "email": "vikram@singh.example", "phone": "+919876500001", "job_title": "Chief Technology Officer", "city": "Pune"}),
        )
        .await;
        assert_eq!(b["duplicate_of_id"], a["id"]);
        let c = lead(&app, &s, json!({"first_name": "Third", "last_name": "Lead", "email": "third@lead.example"})).await;
        let foreign = lead(&app, &other, json!({"last_name": "Foreign"})).await;
        let (act, task, deal) = related(&app, &s, &id(&b)).await;
        let merge = |body: Value| {
            let (app, s) = (&app, &s);
            async move { app.post(s, &s.path("leads/merge"), body).await }
        };

        // Bad requests change nothing.
        let ro = app.member(&s, "viewer@dedupe-merge.test", "read_only").await;
        let before = app.snapshot().await;
        let other_before = app.get(&other, &other.path(&format!("leads/{}", id(&foreign)))).await.body["version"].clone();
        for (body, field) in [
            (json!({"survivor_id": id(&a), "merged_ids": [id(&a)]}), "merged_ids[0]"),
            (json!({"survivor_id": id(&a), "merged_ids": []}), "merged_ids"),
            (json!({"survivor_id": "nope", "merged_ids": [id(&b)]}), "survivor_id"),
            (json!({"survivor_id": id(&a), "merged_ids": [id(&b), id(&b)]}), "merged_ids[1]"),
            (json!({"survivor_id": id(&a), "merged_ids": [id(&b)], "fields": {"no_such_field": id(&b)}}), "fields.no_such_field"),
            (
                json!({"survivor_id": id(&a), "merged_ids": [id(&b)], "fields": {"lead_score": id(&b), "duplicate_score": id(&b)}}),
                "fields.duplicate_score",
            ),
            (json!({"survivor_id": id(&a), "merged_ids": [id(&b)], "fields": {"email": id(&c)}}), "fields.email"),
            (json!({"survivor_id": id(&a), "merged_ids": [id(&b)], "extra": true}), ""),
            (json!({"survivor_id": id(&a), "merged_ids": id(&b)}), ""),
        ] {
            let r = merge(body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
            assert!(is_problem(&r) && (field.is_empty() || errors_name(&r, field)), "{field}: {r:?}");
        }
        let r = merge(json!({"survivor_id": id(&a), "merged_ids": [id(&b), id(&foreign)]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "another company's lead: {r:?}");
        let r = merge(json!({"survivor_id": id(&foreign), "merged_ids": [id(&b)]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        let r = merge(json!({"survivor_id": id(&a), "merged_ids": [id(&b)], "versions": {id(&b): 99}})).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{r:?}");
        let r = app.post(&ro, &s.path("leads/merge"), json!({"survivor_id": id(&a), "merged_ids": [id(&b)]})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
        let r = app.post(&other, &s.path("leads/merge"), json!({"survivor_id": id(&a), "merged_ids": [id(&b)]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "not a member: {r:?}");
        assert_eq!(app.snapshot().await, before, "nothing changed");
        assert_eq!(app.get(&other, &other.path(&format!("leads/{}", id(&foreign)))).await.body["version"], other_before);

        // The merge: email stays A's, job title and phone come from B, city (empty on A) from B.
        // (Logging the activity may have touched B: send the versions as they are now.)
        let a = app.get(&s, &s.path(&format!("leads/{}", id(&a)))).await.body;
        let b = app.get(&s, &s.path(&format!("leads/{}", id(&b)))).await.body;
        let r = merge(json!({
            "survivor_id": id(&a),
            "merged_ids": [id(&b)],
            "fields": {"job_title": id(&b), "phone": id(&b), "city": id(&b), "email": id(&a)},
            "versions": {id(&a): a["version"], id(&b): b["version"]},
        }))
        .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let sv = &r.body["survivor"];
        assert_eq!(sv["id"], a["id"]);
        assert_eq!(
            (sv["job_title"].as_str(), sv["phone"].as_str(), sv["city"].as_str()),
            (Some("Chief Technology Officer"), Some("+919876500001"), Some("Pune"))
        );
        assert_eq!(sv["email"], "vikram@singh.example");
        assert_eq!(sv["is_duplicate"], false, "the survivor has no duplicate left: {sv}");
        assert_eq!(r.body["merged_ids"], json!([id(&b)]));
        assert_eq!(r.body["moved"], json!({"activities": 1, "deals": 1, "tasks": 1}), "{r:?}");

        // Related records point at the survivor now.
        let got = |path: String| {
            let (app, s) = (&app, &s);
            async move { app.get(s, &s.path(&path)).await.body }
        };
        assert_eq!(got(format!("activities/{}", id(&act))).await["lead_id"], a["id"]);
        assert_eq!(got(format!("tasks/{}", id(&task))).await["related_id"], a["id"]);
        assert_eq!(got(format!("deals/{}", id(&deal))).await["lead_id"], a["id"]);
        let tl = got(format!("leads/{}/timeline", id(&a))).await;
        assert!(tl["data"].as_array().expect("timeline").iter().any(|e| e["record"]["id"] == act["id"]), "{tl}");

        // The old id resolves to the survivor.
        let r = app.get(&s, &s.path(&format!("leads/{}", id(&b)))).await;
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT, "{r:?}");
        let loc = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("location").to_string();
        assert_eq!(loc, s.path(&format!("leads/{}", id(&a))));
        assert_eq!(r.body["merged_into_id"], a["id"]);
        let r = app.get(&s, &loc).await;
        assert_eq!((r.status, r.body["id"].clone()), (StatusCode::OK, a["id"].clone()));
        // It is out of lists and searches, and another company cannot see it either way.
        let list = app.get(&s, &s.path("leads?filter[email]=vikram@singh.example")).await;
        assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1), "{list:?}");
        assert_eq!(app.get(&other, &other.path(&format!("leads/{}", id(&b)))).await.status, StatusCode::NOT_FOUND);

        // Audited: the merge on both, the delete, the field changes and each moved record.
        let audit = app.get(&s, &s.path("audit?action=merge")).await;
        let rows = audit.body["data"].as_array().expect("rows");
        assert!(rows.iter().any(|r| r["record_id"] == b["id"] && r["field"] == "merged_into_id" && r["new_value"] == a["id"]), "{audit:?}");
        assert!(rows.iter().any(|r| r["record_id"] == a["id"] && r["field"] == "merged_ids"), "{audit:?}");
        let h = got(format!("leads/{}/history", id(&a))).await;
        assert!(h["data"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["field"] == "job_title" && r["new_value"] == "Chief Technology Officer"));
        let h = got(format!("activities/{}/history", id(&act))).await;
        assert!(h["data"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["field"] == "lead_id" && r["old_value"] == b["id"] && r["new_value"] == a["id"]));
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);

        // Merged or deleted leads cannot be merged again; chains resolve to the last survivor.
        let before = app.snapshot().await;
        let r = merge(json!({"survivor_id": id(&c), "merged_ids": [id(&b)]})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        let d = lead(&app, &s, json!({"last_name": "Deleted"})).await;
        app.delete(&s, &s.path(&format!("leads/{}", id(&d)))).await;
        let before_d = app.snapshot().await;
        let r = merge(json!({"survivor_id": id(&c), "merged_ids": [id(&d)]})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(app.snapshot().await, before_d);
        assert_ne!(before, before_d);
        let r = merge(json!({"survivor_id": id(&c), "merged_ids": [id(&a)], "fields": {"first_name": id(&a), "last_name": id(&a)}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["survivor"]["first_name"], "Vikram");
        let r = app.get(&s, &s.path(&format!("leads/{}", id(&b)))).await;
        assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some(s.path(&format!("leads/{}", id(&c))).as_str()));
        assert_eq!(got(format!("activities/{}", id(&act))).await["lead_id"], c["id"]);

        // A merged lead cannot be restored (one by one or in bulk): nothing changes and the
        // answer names the survivor.
        let c_now = got(format!("leads/{}", id(&c))).await;
        let before = app.snapshot().await;
        let r = app.post(&s, &s.path(&format!("leads/{}/restore", id(&b))), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(is_problem(&r), "{r:?}");
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(c_now["number"].as_str().expect("number")) && detail.contains(&id(&c)), "{detail}");
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "restore", "ids": [id(&d), id(&b)]})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert_eq!(app.snapshot().await, before, "a refused restore changes nothing");
        assert_eq!(app.count(&format!("SELECT COUNT(*) FROM leads WHERE id = '{}' AND deleted_at IS NULL", id(&b))).await, 0);
        // A deleted (not merged) lead still comes back.
        let r = app.post(&s, &s.path(&format!("leads/{}/restore", id(&d))), json!({})).await;
        assert_eq!((r.status, r.body["deleted_at"].is_null()), (StatusCode::OK, true), "{r:?}");

        // A converted lead can only survive, and keeps its status whatever is picked.
        let conv = lead(&app, &s, json!({"last_name": "Converted", "company_name": "Converted Co", "status": "qualified"})).await;
        let r = app.post(&s, &s.path(&format!("leads/{}/convert", id(&conv))), json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let plain = lead(&app, &s, json!({"last_name": "Plain", "status": "nurturing"})).await;
        let before = app.snapshot().await;
        let r = merge(json!({"survivor_id": id(&plain), "merged_ids": [id(&conv)]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "merged_ids[0]"));
        let r = merge(json!({"survivor_id": id(&conv), "merged_ids": [id(&plain)], "fields": {"status": id(&plain)}})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "fields.status"), "{r:?}");
        assert_eq!(app.snapshot().await, before, "a refused merge changes nothing");
    }
}

#[tokio::test]
async fn dismissed_pairs_are_not_shown_or_flagged_again() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-dismiss.test", "Dismiss Co").await;
        let a = lead(&app, &s, json!({"first_name": "Neha", "last_name": "Joshi", "email": "neha@joshi.example"})).await;
        let b = lead(&app, &s, json!({"first_name": "Neha", "last_name": "Joshi", "email": "neha@joshi.example"})).await;
        assert_eq!(b["is_duplicate"], true);
        let path = s.path(&format!("leads/{}/duplicates/dismiss", id(&b)));

        let before = app.snapshot().await;
        for (body, status) in [
            (json!({"other_id": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"other_id": id(&b)}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"other_id": uuid::Uuid::now_v7().to_string()}), StatusCode::NOT_FOUND),
        ] {
            let r = app.post(&s, &path, body.clone()).await;
            assert_eq!(r.status, status, "{body}: {r:?}");
            assert!(is_problem(&r));
        }
        let ro = app.member(&s, "viewer@dedupe-dismiss.test", "read_only").await;
        assert_eq!(app.post(&ro, &path, json!({"other_id": id(&a)})).await.status, StatusCode::FORBIDDEN);
        let other = app.register("owner@dedupe-dismiss-other.test", "Other Dismiss Co").await;
        let foreign = lead(&app, &other, json!({"first_name": "Neha", "last_name": "Joshi", "email": "neha@joshi.example"})).await;
        assert_eq!(app.post(&s, &path, json!({"other_id": id(&foreign)})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.post(&other, &path, json!({"other_id": id(&a)})).await.status, StatusCode::NOT_FOUND);
        let _ = before;
        assert_eq!(app.count("SELECT COUNT(*) FROM dedupe_dismissals").await, 0, "refused dismissals store nothing");
        assert_eq!(app.get(&s, &s.path(&format!("leads/{}", id(&b)))).await.body["version"], b["version"]);

        let r = app.post(&s, &path, json!({"other_id": id(&a)})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["record"]["is_duplicate"], false, "{r:?}");
        assert!(r.body["record"]["duplicate_of_id"].is_null());
        assert_eq!(app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&b)))).await.body["data"], json!([]));
        assert_eq!(app.get(&s, &s.path(&format!("leads/{}/duplicates", id(&a)))).await.body["data"], json!([]));
        // Dismissing twice is harmless; the pair stays dismissed through later edits.
        assert_eq!(app.post(&s, &path, json!({"other_id": id(&a)})).await.status, StatusCode::OK);
        let cur = app.get(&s, &s.path(&format!("leads/{}", id(&b)))).await.body;
        let r = app.patch(&s, &s.path(&format!("leads/{}", id(&b))), json!({"first_name": "Neha R.", "version": cur["version"]})).await;
        assert_eq!(r.body["is_duplicate"], false, "{r:?}");
        // A third lead is still found for both.
        let c = lead(&app, &s, json!({"first_name": "Neha", "last_name": "Joshi", "email": "neha@joshi.example"})).await;
        assert_eq!(c["is_duplicate"], true);
        let audit = app.get(&s, &s.path("audit?action=dismiss_duplicate")).await;
        assert_eq!(audit.body["data"].as_array().map(Vec::len), Some(2), "{audit:?}");
    }
}

async fn wait_scan(app: &TestApp, s: &Session, scan_id: &str) -> Value {
    for _ in 0..600 {
        let r = app.get(s, &s.path(&format!("data/dedupe/scans/{scan_id}?limit=200"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("scan {scan_id} did not finish");
}

fn cluster_ids(c: &Value) -> Vec<String> {
    let mut v: Vec<String> = c["members"].as_array().expect("members").iter().map(|m| m["id"].as_str().unwrap_or("").to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_scan_job_finds_the_seeded_clusters() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-scan.test", "Scan Co").await;
        // Seeded with the check off, as data from before duplicate detection would be.
        set_policy(&app, &s, "allow").await;
        let p1 = lead(&app, &s, json!({"first_name": "Asha", "last_name": "Verma", "email": "asha@verma.example"})).await;
        let p2 =
            lead(&app, &s, json!({"first_name": "Asha", "last_name": "Verma", "email": "asha@verma.example", "phone": "+919811100001"}))
                .await;
        let p3 = lead(&app, &s, json!({"first_name": "Asha", "last_name": "Verma", "phone": "+91 98111 00001"})).await;
        let q1 = lead(&app, &s, json!({"first_name": "Dev", "last_name": "Patel", "email": "dev@patel.example"})).await;
        let q2 =
            app.post(&s, &s.path("contacts"), json!({"first_name": "Dev", "last_name": "Patel", "email": "dev@patel.example"})).await.body;
        let d1 = lead(&app, &s, json!({"first_name": "Isha", "last_name": "Nair", "email": "isha@nair.example"})).await;
        let d2 = lead(&app, &s, json!({"first_name": "Isha", "last_name": "Nair", "email": "isha@nair.example"})).await;
        for i in 0..5 {
            lead(
                &app,
                &s,
                json!({"first_name": format!("Solo{i}"), "last_name": format!("Unique{i}"), "email": format!("solo{i}@unique.example")}),
            )
            .await;
        }
        let g1 = app.post(&s, &s.path("accounts"), json!({"name": "Globex Pvt Ltd", "gstin": "27AAPFU0939F1ZV"})).await.body;
        let g2 = app.post(&s, &s.path("accounts"), json!({"name": "Globex Private Limited", "gstin": "27AAPFU0939F1ZV"})).await.body;
        // A dismissed pair is not reported.
        let r = app.post(&s, &s.path(&format!("leads/{}/duplicates/dismiss", id(&d2))), json!({"other_id": id(&d1)})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Stale index: forget everything, as if the rows predated the index; the scan rebuilds it.
        app.db.execute(&corvid_store::Q::new("DELETE FROM dedupe_keys")).await.expect("clear keys");
        app.db.execute(&corvid_store::Q::new("DELETE FROM dedupe_index_state")).await.expect("clear state");

        let rep = app.member(&s, "rep@dedupe-scan.test", "sales_rep").await;
        assert_eq!(app.post(&rep, &s.path("data/dedupe/scan"), json!({})).await.status, StatusCode::FORBIDDEN);
        let r = app.post(&s, &s.path("data/dedupe/scan"), json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let scan_id = id(&r.body);
        assert!(r.headers.get("location").is_some());
        let again = app.post(&s, &s.path("data/dedupe/scan"), json!({})).await;
        assert_eq!((again.status, again.body["id"].clone()), (StatusCode::OK, r.body["id"].clone()), "one scan at a time");
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let done = wait_scan(&app, &s, &scan_id).await;
        runtime.shutdown().await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert!(done["reindexed"].as_i64().is_some_and(|n| n >= 12), "{done}");
        let clusters = done["clusters"].as_array().expect("clusters");
        let mut found: Vec<Vec<String>> = clusters.iter().map(cluster_ids).collect();
        found.sort();
        let mut want = vec![
            {
                let mut v = vec![id(&p1), id(&p2), id(&p3)];
                v.sort();
                v
            },
            {
                let mut v = vec![id(&q1), id(&q2)];
                v.sort();
                v
            },
            {
                let mut v = vec![id(&g1), id(&g2)];
                v.sort();
                v
            },
        ];
        want.sort();
        assert_eq!(found, want, "{done}");
        assert_eq!(done["records_in_clusters"], 7);
        let asha = clusters.iter().find(|c| c["size"] == 3).expect("the chain cluster");
        assert_eq!(asha["pairs"].as_array().map(|p| p.len() >= 2), Some(true), "{asha}");
        assert!(asha["score"].as_i64().is_some_and(|s| s >= 70));
        let org = clusters.iter().find(|c| c["kind"] == "org").expect("org cluster");
        assert_eq!(org["size"], 2);

        // The index is back: write-time checks see the old records again.
        set_policy(&app, &s, "flag").await;
        let late = lead(&app, &s, json!({"first_name": "Asha", "last_name": "Verma", "email": "asha@verma.example"})).await;
        assert_eq!(late["is_duplicate"], true, "{late}");

        // Listing, paging, 404s and bad parameters.
        let list = app.get(&s, &s.path("data/dedupe/scans")).await;
        assert_eq!(list.body["data"][0]["id"], json!(scan_id));
        let page = app.get(&s, &s.path(&format!("data/dedupe/scans/{scan_id}?limit=1"))).await;
        assert_eq!(page.body["clusters"].as_array().map(Vec::len), Some(1));
        let next = page.body["next_cursor"].as_str().expect("cursor").to_string();
        let page2 = app.get(&s, &s.path(&format!("data/dedupe/scans/{scan_id}?limit=1&cursor={next}"))).await;
        assert_ne!(page2.body["clusters"][0], page.body["clusters"][0]);
        for q in ["limit=0", "limit=201", "cursor=abc", "bogus=1"] {
            let r = app.get(&s, &s.path(&format!("data/dedupe/scans/{scan_id}?{q}"))).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {r:?}");
        }
        let other = app.register("owner@dedupe-scan-other.test", "Other Scan Co").await;
        assert_eq!(app.get(&other, &other.path(&format!("data/dedupe/scans/{scan_id}"))).await.status, StatusCode::NOT_FOUND);
        let r = app.get(&s, &s.path(&format!("data/dedupe/scans/{}", uuid::Uuid::now_v7()))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let audit = app.get(&s, &s.path("audit?object=dedupe_scan")).await;
        assert_eq!(audit.body["data"].as_array().map(Vec::len), Some(1), "{audit:?}");
    }
}

#[tokio::test]
async fn web_pages_review_merge_dismiss_and_settings() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-web.test", "Web Dedupe Co").await;
        let a =
            lead(&app, &s, json!({"first_name": "Tara", "last_name": "Menon", "email": "tara@menon.example", "job_title": "Buyer"})).await;
        let b =
            lead(&app, &s, json!({"first_name": "Tara", "last_name": "Menon", "email": "tara@menon.example", "job_title": "Head Buyer"}))
                .await;
        let w = app.web_sign_in("owner@dedupe-web.test").await;
        let base = format!("/app/{}", s.company_id);

        let page = app.web_get(&w, &format!("{base}/leads/{}", id(&b)), &[]).await;
        assert!(page.text.contains(&format!("hx-get=\"{base}/leads/{}/duplicates\"", id(&b))), "the lead page loads the panel");
        let panel = app.web_get(&w, &format!("{base}/leads/{}/duplicates", id(&b)), &[("hx-request", "true")]).await;
        assert_eq!(panel.status, StatusCode::OK, "{panel:?}");
        assert!(panel.text.contains(a["number"].as_str().expect("number")) && panel.text.contains("Compare"), "{}", panel.text);

        let review = app.web_get(&w, &format!("{base}/dedupe/review?ids={},{}", id(&b), id(&a)), &[]).await;
        assert_eq!(review.status, StatusCode::OK, "{review:?}");
        assert!(review.text.contains("Head Buyer") && review.text.contains(&format!("name=\"f:job_title\" value=\"{}\"", id(&b))));
        let bad = app.web_get(&w, &format!("{base}/dedupe/review?ids={}", id(&a)), &[]).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Merge through the form: B's job title survives on A.
        let ids = format!("{},{}", id(&a), id(&b));
        let (ia, ib) = (id(&a), id(&b));
        let (va, vb) = (format!("v:{ia}"), format!("v:{ib}"));
        let (sa, sb) = (a["version"].to_string(), b["version"].to_string());
        let form: [(&str, &str); 6] = [("ids", &ids), ("survivor_id", &ia), ("f:job_title", &ib), ("f:email", &ia), (&va, &sa), (&vb, &sb)];
        let r = app.web_post(&w, &format!("{base}/dedupe/merge"), &form, false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token, no merge");
        let r = app.web_post(&w, &format!("{base}/dedupe/merge"), &form, true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let to = r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(to.starts_with(&format!("{base}/leads/{}", id(&a))), "{to}");
        assert_eq!(app.get(&s, &s.path(&format!("leads/{}", id(&a)))).await.body["job_title"], "Head Buyer");
        // The merged lead's page leads to the survivor.
        let r = app.web_get(&w, &format!("{base}/leads/{}", id(&b)), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(r.headers.get("location").and_then(|v| v.to_str().ok()).is_some_and(|l| l.contains(&id(&a))));
        // Merging again shows why on the review page instead of failing hard.
        let r = app.web_post(&w, &format!("{base}/dedupe/merge"), &form, true).await;
        let to = r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(to.contains("error="), "{to}");

        // Dismiss through the form.
        let c = lead(&app, &s, json!({"first_name": "Tara", "last_name": "Menon", "email": "tara@menon.example"})).await;
        assert_eq!(c["is_duplicate"], true);
        let ic = id(&c);
        let r = app.web_post(&w, &format!("{base}/dedupe/dismiss"), &[("id", ic.as_str()), ("other_id", ia.as_str())], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.get(&s, &s.path(&format!("leads/{}", id(&c)))).await.body["is_duplicate"], false);

        // Settings: policy and a scan.
        let r = app.web_get(&w, &format!("{base}/settings/dedupe"), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.text.contains("dedupe-policy"));
        let r = app.web_post(&w, &format!("{base}/settings/dedupe"), &[("action", "policy"), ("policy", "block")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(app.get(&s, &s.path("data/dedupe/policy")).await.body["policy"], "block");
        let r = app.web_post(&w, &format!("{base}/settings/dedupe"), &[("action", "scan")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let scans = app.get(&s, &s.path("data/dedupe/scans")).await;
        let scan_id = scans.body["data"][0]["id"].as_str().expect("scan").to_string();
        let done = wait_scan(&app, &s, &scan_id).await;
        runtime.shutdown().await;
        assert_eq!(done["state"], "succeeded", "{done}");
        let r = app.web_get(&w, &format!("{base}/settings/dedupe/scans/{scan_id}"), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Read-only members see no settings.
        let _ro = app.member(&s, "viewer@dedupe-web.test", "read_only").await;
        let wv = app.web_sign_in("viewer@dedupe-web.test").await;
        assert_eq!(app.web_get(&wv, &format!("{base}/settings/dedupe"), &[]).await.status, StatusCode::FORBIDDEN);
    }
}

/// The benchmark of the issue: one duplicate check against a large base (p50/p99) and the
/// whole-base scan. Not a test of anything (no timing asserts): run it with
/// `CORVID_BENCH_LEADS=1000000 [CORVID_BENCH_BACKEND=sqlite|postgres] cargo test --release -p corvid-server --test dedupe -- --ignored
/// --nocapture`.
#[tokio::test]
#[ignore]
async fn dedupe_benchmark() {
    let n: u64 = std::env::var("CORVID_BENCH_LEADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let only = std::env::var("CORVID_BENCH_BACKEND").unwrap_or_default();
    for app in TestApp::all().await {
        if !only.is_empty() && app.backend != only {
            continue;
        }
        let s = app.register("owner@dedupe-bench.test", "Bench Co").await;
        let company_id = uuid::Uuid::parse_str(&s.company_id).expect("company");
        let ctx = corvid_store::audit::AuditCtx { company_id, actor_id: None, ..Default::default() };
        let report =
            corvid_store::dedupe::bench::run(&app.db, &ctx, n, 2000, &|m| eprintln!("[{}] {m}", app.backend)).await.expect("bench");
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
        assert_eq!(report.scan.as_ref().map(|s| s.state.as_str()), Some("succeeded"));
    }
}

async fn created(app: &TestApp, s: &Session, object: &str, body: Value) -> Value {
    let r = app.post(s, &s.path(object), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{object}: {r:?}");
    r.body
}

#[tokio::test]
async fn contacts_merge_like_leads() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-contacts.test", "Contact Merge Co").await;
        let other = app.register("owner@dedupe-contacts-other.test", "Other Contact Co").await;
        let acc = created(&app, &s, "accounts", json!({"name": "Acme Contacts"})).await;
        let acc2 = created(&app, &s, "accounts", json!({"name": "Elsewhere Ltd"})).await;
        let a = created(
            &app,
            &s,
            "contacts",
            json!({"first_name": "Anita", "last_name": "Rao", "email": "anita@acme-contacts.example", "job_title": "Buyer", "account_id": acc["id"]}),
        )
        .await;
        let b = created(
            &app,
            &s,
            "contacts",
            json!({"first_name": "Anita", "last_name": "Rao", "email": "anita.rao@acme-contacts.example", "phone": "+919812300001",
                   "job_title": "Head of Purchase", "account_id": acc["id"], "is_primary": true, "dnd_status": true}),
        )
        .await;
        let c = created(&app, &s, "contacts", json!({"first_name": "Anita", "last_name": "Rao", "account_id": acc2["id"]})).await;
        let act = created(&app, &s, "activities", json!({"activity_type": "note", "title": "Met Anita", "contact_id": b["id"]})).await;
        let task =
            created(&app, &s, "tasks", json!({"title": "Send price list", "related_object": "contacts", "related_id": b["id"]})).await;
        let deal =
            created(&app, &s, "deals", json!({"name": "Acme renewal", "account_id": acc["id"], "primary_contact_id": b["id"]})).await;
        let merge = |who: &Session, body: Value| {
            let (app, path) = (&app, s.path("contacts/merge"));
            let who = who.clone();
            async move { app.post(&who, &path, body).await }
        };

        // Refused: contacts of two accounts, a contact merged into itself, another company.
        let before = app.snapshot().await;
        let r = merge(&s, json!({"survivor_id": id(&a), "merged_ids": [id(&c)]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "merged_ids[0]"), "{r:?}");
        let r = merge(&s, json!({"survivor_id": id(&a), "merged_ids": [id(&a)]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        let r = app.post(&other, &other.path("contacts/merge"), json!({"survivor_id": id(&a), "merged_ids": [id(&b)]})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert_eq!(app.snapshot().await, before, "nothing changed");

        // The merge: job title and phone from B; B's do-not-disturb and primary flag stay.
        let r = merge(&s, json!({"survivor_id": id(&a), "merged_ids": [id(&b)], "fields": {"job_title": id(&b), "phone": id(&b)}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let sv = &r.body["survivor"];
        assert_eq!(
            (sv["id"].clone(), sv["job_title"].as_str(), sv["phone"].as_str()),
            (a["id"].clone(), Some("Head of Purchase"), Some("+919812300001"))
        );
        assert_eq!(sv["email"], "anita@acme-contacts.example", "unpicked fields keep the survivor's value");
        assert_eq!((sv["dnd_status"].clone(), sv["is_primary"].clone()), (json!(true), json!(true)), "{sv}");
        assert_eq!(r.body["moved"], json!({"activities": 1, "deals": 1, "tasks": 1}), "{r:?}");
        let got = |path: String| {
            let (app, s) = (&app, &s);
            async move { app.get(s, &s.path(&path)).await.body }
        };
        assert_eq!(got(format!("activities/{}", id(&act))).await["contact_id"], a["id"]);
        assert_eq!(got(format!("tasks/{}", id(&task))).await["related_id"], a["id"]);
        assert_eq!(got(format!("deals/{}", id(&deal))).await["primary_contact_id"], a["id"]);

        // The old id resolves to the survivor and cannot be restored.
        let r = app.get(&s, &s.path(&format!("contacts/{}", id(&b)))).await;
        assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT, "{r:?}");
        assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some(s.path(&format!("contacts/{}", id(&a))).as_str()));
        let before = app.snapshot().await;
        let r = app.post(&s, &s.path(&format!("contacts/{}/restore", id(&b))), json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.body["detail"].as_str().is_some_and(|d| d.contains(&id(&a))), "{r:?}");
        assert_eq!(app.snapshot().await, before);
        let list = app.get(&s, &s.path("contacts?filter[last_name]=Rao")).await;
        assert_eq!(list.body["data"].as_array().map(Vec::len), Some(2), "{list:?}");

        // Audited: the merge on both, the moved references, and the chain verifies.
        let audit = app.get(&s, &s.path("audit?action=merge")).await;
        let rows = audit.body["data"].as_array().expect("rows");
        assert!(rows.iter().any(|r| r["record_id"] == b["id"] && r["field"] == "merged_into_id" && r["new_value"] == a["id"]), "{audit:?}");
        assert!(rows.iter().any(|r| r["record_id"] == a["id"] && r["field"] == "merged_ids"), "{audit:?}");
        let h = got(format!("deals/{}/history", id(&deal))).await;
        assert!(h["data"].as_array().expect("rows").iter().any(|r| r["field"] == "primary_contact_id" && r["new_value"] == a["id"]), "{h}");
        assert_eq!(app.get(&s, &s.path("audit/verify")).await.body["ok"], true);
    }
}

#[tokio::test]
async fn web_forms_refused_by_the_block_policy_keep_the_input_and_list_the_duplicates() {
    for app in TestApp::all().await {
        let s = app.register("owner@dedupe-form.test", "Form Block Co").await;
        set_policy(&app, &s, "block").await;
        let a = lead(&app, &s, json!({"first_name": "Kavya", "last_name": "Nair", "email": "kavya@nair.example"})).await;
        let w = app.web_sign_in("owner@dedupe-form.test").await;
        let base = format!("/app/{}", s.company_id);
        let link = format!("href=\"{base}/leads/{}\"", id(&a));

        // The new-lead form comes back with what was typed and links to the existing lead.
        let before = app.snapshot().await;
        let form = [("first_name", "Kavya"), ("last_name", "Nair"), ("email", "KAVYA@nair.example"), ("job_title", "Typed title 42")];
        let r = app.web_post(&w, &format!("{base}/leads"), &form, true).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.text.contains("class=\"record-form\"") && r.text.contains("data-testid=\"form-duplicates\""), "{}", r.text);
        assert!(r.text.contains("Typed title 42") && r.text.contains("KAVYA@nair.example"), "the input is kept");
        assert!(r.text.contains(&link) && r.text.contains(a["number"].as_str().expect("number")), "{}", r.text);
        assert!(r.text.contains("data-testid=\"form-error\"") && r.text.contains("Not saved"), "{}", r.text);
        assert_eq!(app.snapshot().await, before, "nothing was created");

        // The edit form likewise; the lead keeps its values.
        let b = lead(&app, &s, json!({"first_name": "Other", "last_name": "Person", "email": "other@person.example"})).await;
        let before = app.snapshot().await;
        let edit = [("first_name", "Kavya"), ("last_name", "Nair"), ("email", "kavya@nair.example"), ("version", "1")];
        let r = app.web_post(&w, &format!("{base}/leads/{}", id(&b)), &edit, true).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        assert!(r.text.contains("data-testid=\"form-duplicates\"") && r.text.contains(&link), "{}", r.text);
        assert!(r.text.contains("value=\"Kavya\""), "the input is kept");
        assert_eq!(app.snapshot().await, before, "nothing changed");
        assert_eq!(app.get(&s, &s.path(&format!("leads/{}", id(&b)))).await.body["email"], "other@person.example");
        // A lead that is not a duplicate is still created from the form.
        let r = app.web_post(&w, &format!("{base}/leads"), &[("last_name", "Someone Else")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
    }
}
