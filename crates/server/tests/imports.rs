//! Imports end to end: multipart upload, dry run, the import job with batches, duplicates,
//! failed rows and their CSV, idempotency, resume after a crash, and bad files.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use corvid_server::jobs::{Registry, Runtime};
use serde_json::json;
use std::time::Duration;

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "corvidtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(app: &TestApp, s: &Session, path: &str, fields: &[(&str, &str)], name: &str, file: &[u8], key: Option<&str>) -> Resp {
    let (ct, body) = multipart(fields, name, file);
    let mut b = Request::builder()
        .method("POST")
        .uri(s.path(path))
        .header("authorization", format!("Bearer {}", s.token))
        .header("content-type", ct);
    if let Some(k) = key {
        b = b.header("idempotency-key", k);
    }
    app.raw(b.body(Body::from(body)).expect("req")).await
}

async fn wait_done(app: &TestApp, s: &Session, id: &str) -> serde_json::Value {
    for _ in 0..600 {
        let r = app.get(s, &s.path(&format!("data/import/{id}"))).await;
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

fn leads_csv(n: usize) -> String {
    let mut s = String::from("\u{feff}First Name,Surname,E-mail,Mobile,Lead Source,Shoe size\n");
    for i in 0..n {
        s.push_str(&format!("Name{i},Person{i},person{i}@example.in,98765{:05},Website form,{}\n", i, i % 12));
    }
    s
}

#[tokio::test]
async fn import_leads_in_batches_with_duplicates_failures_and_idempotency() {
    for app in TestApp::all().await {
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 2);
        let s = app.register("owner@import.test", "Import Co").await;
        // An existing lead that the file also contains.
        app.post(&s, &s.path("leads"), json!({"last_name": "Existing", "email": "person3@example.in"})).await;

        let mut csv = leads_csv(1200);
        csv.push_str("Bad,Row,not-an-email,123,Nowhere,1\n");
        csv.push_str(",,,,,\n");
        csv.push_str("Twin,Person5,PERSON5@example.in,,website,1\n");

        // Dry run: mapping suggested from the headers, preview with per-row validation.
        let r = upload(&app, &s, "data/validate", &[("object", "leads")], "leads.csv", csv.as_bytes(), None).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["mapping"], json!(["first_name", "last_name", "email", "phone", "source", null]));
        assert_eq!(r.body["sniffed"]["encoding"], "utf-8");
        assert_eq!(r.body["rows"].as_array().map(Vec::len), Some(20));
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1, "a dry run writes nothing");

        let r = upload(
            &app,
            &s,
            "data/import",
            &[("object", "leads"), ("options", r#"{"duplicate_policy": "skip", "defaults": {"campaign": "Imported 2026"}}"#)],
            "leads.csv",
            csv.as_bytes(),
            Some("file-1"),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let id = r.body["id"].as_str().expect("id").to_string();
        let done = wait_done(&app, &s, &id).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["created"], 1199, "{done}");
        assert_eq!(done["skipped"], 2, "the existing lead and the in-file duplicate: {done}");
        assert_eq!(done["failed"], 1, "{done}");
        assert_eq!(done["errors"][0]["field"], "email");
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1200);
        let lead = app.get(&s, &s.path("leads?filter[email]=person7@example.in")).await;
        assert_eq!(lead.body["data"][0]["campaign"], "Imported 2026");
        assert_eq!(lead.body["data"][0]["phone"], "+919876500007");
        assert_eq!(lead.body["data"][0]["source"], "website");
        let errs = app.get(&s, &s.path(&format!("data/import/{id}/errors.csv"))).await;
        assert!(errs.text.starts_with("row,errors,First Name"), "{}", errs.text);
        assert!(
            errs.text.contains("1202,\"email is not a valid email address; phone")
                && errs.text.contains(",Bad,Row,not-an-email,123,Nowhere,1"),
            "{}",
            errs.text
        );
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true);

        // The same file with the same key creates nothing new.
        let again = upload(&app, &s, "data/import", &[("object", "leads")], "leads.csv", csv.as_bytes(), Some("file-1")).await;
        assert_eq!(again.status, StatusCode::OK);
        assert_eq!(again.body["id"].as_str(), Some(id.as_str()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1200);

        // Update policy: matching rows update the record.
        let update = "email,job_title\nperson9@example.in,CFO\n";
        let r = upload(
            &app,
            &s,
            "data/import",
            &[("object", "leads"), ("options", r#"{"duplicate_policy": "update"}"#)],
            "u.csv",
            update.as_bytes(),
            None,
        )
        .await;
        let done = wait_done(&app, &s, r.body["id"].as_str().expect("id")).await;
        assert_eq!(done["updated"], 1, "{done}");
        let lead = app.get(&s, &s.path("leads?filter[email]=person9@example.in")).await;
        assert_eq!(lead.body["data"][0]["job_title"], "CFO");
        assert_eq!(lead.body["data"][0]["version"], 2);

        // Another company cannot see the import.
        let other = app.register("other@import.test", "Other Co").await;
        assert_eq!(app.get(&other, &s.path(&format!("data/import/{id}"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&other, &other.path(&format!("data/import/{id}"))).await.status, StatusCode::NOT_FOUND);
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn an_interrupted_import_resumes_after_its_last_batch() {
    for app in TestApp::all().await {
        let s = app.register("owner@resume.test", "Resume Co").await;
        let csv = leads_csv(1100);
        // Queue without workers, then pretend the first batch committed before a crash.
        let r = upload(&app, &s, "data/import", &[("object", "leads")], "leads.csv", csv.as_bytes(), None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let id = r.body["id"].as_str().expect("id").to_string();
        app.db
            .execute(&corvid_store::Q::new(format!(
                "UPDATE imports SET rows_done = 500, created_count = 500, state = 'running' WHERE id = '{id}'"
            )))
            .await
            .expect("simulate");
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let done = wait_done(&app, &s, &id).await;
        runtime.shutdown().await;
        assert_eq!(done["rows_done"], 1100);
        assert_eq!(done["created"], 1100, "500 before the crash plus 600 after");
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 600, "rows before the committed mark are not imported again");
        let first = app.get(&s, &s.path("leads?filter[email]=person0@example.in")).await;
        assert_eq!(first.body["data"].as_array().map(Vec::len), Some(0));
        let later = app.get(&s, &s.path("leads?filter[email]=person500@example.in")).await;
        assert_eq!(later.body["data"].as_array().map(Vec::len), Some(1));
    }
}

#[tokio::test]
async fn bad_files_get_a_clear_message_and_write_nothing() {
    for app in TestApp::all().await {
        let s = app.register("owner@badfile.test", "Bad Files Co").await;
        let before = app.snapshot().await;
        let wide = (0..10_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",") + "\n1,2\n";
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty.csv", Vec::new(), "empty"),
            ("garbage.csv", vec![0, 159, 146, 150, 0, 1, 2, 3, 255, 254, 0, 0], "binary"),
            ("wide.csv", wide.into_bytes(), "10000 columns"),
            ("fake.xlsx", b"this is not a zip".to_vec(), "not a valid XLSX"),
            ("blank.csv", b"\n\n".to_vec(), "header row is empty"),
        ];
        for (name, bytes, reason) in cases {
            let r = upload(&app, &s, "data/import", &[("object", "leads")], name, &bytes, None).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {r:?}");
            assert!(errors_name(&r, "file"), "{name}: {r:?}");
            assert!(r.text.contains(reason), "{name}: {}", r.text);
        }
        // Latin-1 is detected and decoded.
        let latin = b"Last Name,City\nM\xfcller,K\xf6ln\n";
        let r = upload(&app, &s, "data/validate", &[("object", "leads")], "latin.csv", latin, None).await;
        assert_eq!(r.body["sniffed"]["encoding"], "windows-1252");
        assert_eq!(r.body["rows"][0]["cells"][0], "Müller");
        for (fields, field) in [
            (vec![("object", "widgets")], "object"),
            (vec![("object", "leads"), ("mapping", "[\"nope\"]")], "mapping"),
            (vec![("object", "leads"), ("mapping", "not json")], "mapping"),
            (vec![("object", "leads"), ("options", "{\"duplicate_policy\": \"explode\"}")], "options"),
        ] {
            let r = upload(&app, &s, "data/import", &fields, "x.csv", b"last_name\nA\n", None).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}: {r:?}");
            assert!(errors_name(&r, field) || r.text.contains(field), "{fields:?}: {r:?}");
        }
        assert_eq!(app.snapshot().await, before);
        assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);
    }
}
