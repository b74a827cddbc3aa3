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

#[tokio::test]
async fn templates_through_the_api_map_imports_by_heading() {
    for app in TestApp::all().await {
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let s = app.register("owner@apitpl.test", "Api Template Co").await;
        let custom = app.post(&s, &s.path("metadata/objects/leads/fields"), json!({"name": "Shoe size", "type": "integer"})).await;
        assert_eq!(custom.status, StatusCode::CREATED, "{custom:?}");
        let cf = custom.body["name"].as_str().expect("custom field name").to_string();
        let tpl = json!({"object": "leads", "name": "Trade fair", "mapping": {"Nachname": "last_name", "E-Mail": "email", "Schuh": cf, "Notiz": null}});
        let r = app.post(&s, &s.path("data/import-templates"), tpl.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let id = r.body["id"].as_str().expect("id").to_string();
        // Saving under the same name replaces the mapping.
        let mut changed = tpl.clone();
        changed["mapping"]["Firma"] = json!("company_name");
        let r = app.post(&s, &s.path("data/import-templates"), changed).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["id"].as_str(), Some(id.as_str()));
        let list = app.get(&s, &s.path("data/import-templates?object=leads")).await;
        assert_eq!(list.body["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(list.body["data"][0]["mapping"]["Firma"], "company_name");
        assert_eq!(app.get(&s, &s.path("data/import-templates?object=accounts")).await.body["data"], json!([]));

        // The file's headings differ in case and punctuation; the template still applies.
        let file = "nachname,E MAIL,schuh,Firma,Notiz\nWeber,weber@example.de,44,Weber GmbH,ignore me\n";
        let r = upload(&app, &s, "data/validate", &[("object", "leads"), ("template_id", &id)], "fair.csv", file.as_bytes(), None).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["mapping"], json!(["last_name", "email", cf, "company_name", null]));
        let r = upload(&app, &s, "data/import", &[("object", "leads"), ("template_id", &id)], "fair.csv", file.as_bytes(), None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let done = wait_done(&app, &s, r.body["id"].as_str().expect("id")).await;
        assert_eq!(done["created"], 1, "{done}");
        let lead = app.get(&s, &s.path("leads?filter[email]=weber@example.de")).await;
        assert_eq!(lead.body["data"][0]["company_name"], "Weber GmbH");
        assert_eq!(lead.body["data"][0][cf.as_str()], 44);

        // Refusals: both mapping and template, a template of another object, another
        // company's template, malformed ids, bad templates; none writes anything.
        let other = app.register("other@apitpl.test", "Other Api Template Co").await;
        let theirs = app
            .post(&other, &other.path("data/import-templates"), json!({"object": "leads", "name": "X", "mapping": {"Email": "email"}}))
            .await;
        let theirs = theirs.body["id"].as_str().expect("id").to_string();
        let acc =
            app.post(&s, &s.path("data/import-templates"), json!({"object": "accounts", "name": "Acc", "mapping": {"Name": "name"}})).await;
        let acc = acc.body["id"].as_str().expect("id").to_string();
        let before = app.snapshot().await;
        let imports = app.count("SELECT COUNT(*) FROM imports").await;
        for (fields, status, field) in [
            (
                vec![("object", "leads"), ("template_id", id.as_str()), ("mapping", "[\"email\"]")],
                StatusCode::UNPROCESSABLE_ENTITY,
                "template_id",
            ),
            (vec![("object", "leads"), ("template_id", acc.as_str())], StatusCode::UNPROCESSABLE_ENTITY, "template_id"),
            (vec![("object", "leads"), ("template_id", "not-a-uuid")], StatusCode::UNPROCESSABLE_ENTITY, "template_id"),
            (vec![("object", "leads"), ("template_id", theirs.as_str())], StatusCode::NOT_FOUND, ""),
        ] {
            for route in ["data/import", "data/validate"] {
                let r = upload(&app, &s, route, &fields, "x.csv", b"Email\na@b.in\n", None).await;
                assert_eq!(r.status, status, "{route} {fields:?}: {r:?}");
                assert!(is_problem(&r), "{r:?}");
                if !field.is_empty() {
                    assert!(errors_name(&r, field), "{route} {fields:?}: {r:?}");
                }
            }
        }
        let huge = "n".repeat(81);
        for (body, field) in [
            (json!({"object": "leads", "name": "", "mapping": {"Email": "email"}}), "name"),
            (json!({"object": "leads", "name": huge, "mapping": {"Email": "email"}}), "name"),
            (json!({"object": "widgets", "name": "W", "mapping": {"Email": "email"}}), "object"),
            (json!({"object": "leads", "name": "W", "mapping": {"Email": "nope"}}), "mapping.Email"),
            (json!({"object": "leads", "name": "W", "mapping": {"Email": "email", "Mail": "email"}}), "mapping.Mail"),
            (json!({"object": "leads", "name": "W", "mapping": {"Email": 5}}), "mapping.Email"),
            (json!({"object": "leads", "name": "W", "mapping": {"Email": null}}), "mapping"),
            (json!({"object": "leads", "name": "W", "mapping": {"Converted": "converted_at"}}), "mapping.Converted"),
            (json!({"object": "leads", "name": "W", "mapping": {}, "extra": 1}), "extra"),
            (json!({"object": "leads", "name": "W"}), "mapping"),
        ] {
            let r = app.post(&s, &s.path("data/import-templates"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {r:?}");
            assert!(errors_name(&r, field), "{body}: {r:?}");
        }
        assert_eq!(app.delete(&s, &s.path(&format!("data/import-templates/{theirs}"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.delete(&s, &s.path("data/import-templates/not-a-uuid")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, imports);
        assert_eq!(app.count("SELECT COUNT(*) FROM import_templates").await, 3);
        assert_eq!(app.snapshot().await, before);

        // Read Only and Sales Rep members read templates but cannot change them or import.
        for role in ["read_only", "sales_rep"] {
            let m = app.member(&s, &format!("{role}@apitpl.test"), role).await;
            assert_eq!(app.get(&m, &s.path("data/import-templates")).await.status, StatusCode::OK);
            let r = app
                .post(&m, &s.path("data/import-templates"), json!({"object": "leads", "name": "Mine", "mapping": {"Email": "email"}}))
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {r:?}");
            assert_eq!(app.delete(&m, &s.path(&format!("data/import-templates/{id}"))).await.status, StatusCode::FORBIDDEN);
            let r = upload(&app, &m, "data/import", &[("object", "leads")], "x.csv", b"Email,Last Name\na@b.in,A\n", None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {r:?}");
            let r = upload(&app, &m, "data/validate", &[("object", "leads")], "x.csv", b"Email,Last Name\na@b.in,A\n", None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}: {r:?}");
        }
        let manager = app.member(&s, "manager@apitpl.test", "manager").await;
        let r = app
            .post(&manager, &s.path("data/import-templates"), json!({"object": "leads", "name": "Mgr", "mapping": {"Email": "email"}}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

        assert_eq!(app.delete(&s, &s.path(&format!("data/import-templates/{id}"))).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.delete(&s, &s.path(&format!("data/import-templates/{id}"))).await.status, StatusCode::NOT_FOUND);
        let r = upload(&app, &s, "data/validate", &[("object", "leads"), ("template_id", &id)], "x.csv", b"Email\na@b.in\n", None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "a deleted template");
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true);
        let audited = app.get(&s, &s.path("audit?object=import_templates")).await;
        assert!(audited.text.contains("\"action\":\"delete\""), "{audited:?}");
        runtime.shutdown().await;
    }
}

/// An XLSX written by the export engine's writer, read back row by row.
fn xlsx_file(rows: &[Vec<&str>]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let sheet = wb.add_worksheet();
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if let Ok(n) = v.parse::<f64>() {
                sheet.write_number(r as u32, c as u16, n).expect("write");
            } else if !v.is_empty() {
                sheet.write_string(r as u32, c as u16, *v).expect("write");
            }
        }
    }
    wb.save_to_buffer().expect("xlsx")
}

#[tokio::test]
async fn xlsx_imports_stream_rows_and_report_a_total() {
    for app in TestApp::all().await {
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let s = app.register("owner@xlsx.test", "Xlsx Co").await;
        let mut rows: Vec<Vec<String>> = vec![vec!["Last Name".into(), "Email".into(), "Phone".into(), String::new()]];
        for i in 0..1100 {
            rows.push(vec![format!("Sheet{i}"), format!("sheet{i}@example.in"), format!("98765{:05}", i), String::new()]);
        }
        // A blank row in the middle keeps the spreadsheet's row numbers; a bad row fails.
        rows.push(Vec::new());
        rows.push(vec!["Broken".into(), "broken-at-example".into(), String::new(), String::new()]);
        let refs: Vec<Vec<&str>> = rows.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
        let file = xlsx_file(&refs);
        let r = upload(&app, &s, "data/validate", &[("object", "leads")], "sheet.xlsx", &file, None).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["sniffed"]["kind"], "xlsx");
        assert_eq!(r.body["sniffed"]["headers"], json!(["Last Name", "Email", "Phone"]), "empty trailing headings are not columns");
        assert_eq!(r.body["rows"][0]["cells"], json!(["Sheet0", "sheet0@example.in", "9876500000"]));
        let r =
            upload(&app, &s, "data/import", &[("object", "leads"), ("options", r#"{"run_assignment": true}"#)], "sheet.xlsx", &file, None)
                .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let done = wait_done(&app, &s, r.body["id"].as_str().expect("id")).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["created"], 1100);
        assert_eq!(done["failed"], 1);
        assert_eq!(done["rows_total"], 1102);
        assert_eq!(done["rows_done"], 1102);
        assert_eq!(done["options"]["run_assignment"], true);
        assert_eq!(done["errors"][0]["row"], 1103, "the spreadsheet's own row number");
        // The job reports the same total once it has finished too.
        let job_path = s.path(&format!("jobs/{}", done["job_id"].as_str().expect("job")));
        let mut job = app.get(&s, &job_path).await;
        for _ in 0..200 {
            if job.body["state"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
            job = app.get(&s, &job_path).await;
        }
        assert_eq!(job.body["state"], "succeeded", "{job:?}");
        assert_eq!(job.body["progress_total"], 1102, "{job:?}");
        let files = std::fs::read_dir(app.data.path().join("imports")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 0, "the stored file is removed when the import ends");
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn the_run_assignment_option_decides_who_owns_imported_records() {
    for app in TestApp::all().await {
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let s = app.register("owner@assign-import.test", "Assign Import Co").await;
        let rep = app.member(&s, "rep@assign-import.test", "sales_rep").await;
        let rule = app
            .post(&s, &s.path("assignment/rules"), json!({"name": "Everything to the rep", "strategy": "user", "user_id": rep.user_id}))
            .await;
        assert_eq!(rule.status, StatusCode::CREATED, "{rule:?}");
        for (run, file, owner) in [
            (false, "Last Name,Email\nMine,mine@example.in\n", &s.user_id),
            (true, "Last Name,Email\nTheirs,theirs@example.in\n", &rep.user_id),
        ] {
            let options = json!({"run_assignment": run}).to_string();
            let r = upload(&app, &s, "data/import", &[("object", "leads"), ("options", &options)], "a.csv", file.as_bytes(), None).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
            let done = wait_done(&app, &s, r.body["id"].as_str().expect("id")).await;
            assert_eq!(done["created"], 1, "{done}");
            let email = if run { "theirs@example.in" } else { "mine@example.in" };
            let lead = app.get(&s, &s.path(&format!("leads?filter[email]={email}"))).await;
            assert_eq!(lead.body["data"][0]["owner_id"].as_str(), Some(owner.as_str()), "run_assignment = {run}: {lead:?}");
        }
        runtime.shutdown().await;
    }
}

/// Batches of one import hand what they read of the duplicate-key index to the next batch,
/// but only while nobody else changes records: a lead deleted by someone else between two
/// batches is no longer anyone's original, and a record written by an earlier batch still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_share_the_duplicate_index_only_while_nobody_else_writes() {
    for app in TestApp::all().await {
        let s = app.register("owner@between.test", "Between Co").await;
        let mut rows: Vec<String> = leads_csv(1100).lines().map(str::to_string).collect();
        // Lines: the header, then row i at line i + 1.
        let zara = "Zara,Quenby,zara@quenby.example,9812300001,Website form,5";
        rows[4] = zara.into();
        rows[1061] = zara.into();
        rows[701] = rows[11].clone();
        rows[1071] = rows[11].clone();
        let csv = rows.join("\n") + "\n";
        // Queued without workers: this test runs the import itself.
        let fields = [("object", "leads"), ("options", r#"{"duplicate_policy": "create"}"#)];
        let r = upload(&app, &s, "data/import", &fields, "leads.csv", csv.as_bytes(), None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let import_id = uuid::Uuid::parse_str(r.body["id"].as_str().expect("id")).expect("uuid");
        let company = uuid::Uuid::parse_str(&s.company_id).expect("company");
        let user = uuid::Uuid::parse_str(&s.user_id).expect("user");
        let ctx = corvid_store::audit::AuditCtx { company_id: company, actor_id: Some(user), ..Default::default() };
        let tenant = corvid_store::Tenant::system(company, user, "91".into(), ctx);
        let leads = corvid_core::object("leads").expect("leads");
        let deleted = std::sync::Mutex::new(None);
        // Between the first and the second batch, someone else deletes the first Zara.
        let between = |done: i64| {
            if done != 500 {
                return;
            }
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let q = corvid_store::Q::new("SELECT id FROM leads WHERE email = 'zara@quenby.example'");
                    let rows = app.db.fetch(&q, &[corvid_core::SqlType::Uuid]).await.expect("find");
                    let id = rows[0].uuid(0).expect("id");
                    tenant.records(&app.db, leads).delete(id, None).await.expect("delete");
                    *deleted.lock().expect("lock") = Some(id);
                })
            });
        };
        let done = corvid_store::import::run(&app.db, &tenant, import_id, &between).await.expect("import");
        assert_eq!((done.state.as_str(), done.created), ("succeeded", 1100), "{done:?}");
        assert!(deleted.lock().expect("lock").is_some(), "the other writer ran between batches");

        let zaras = app.get(&s, &s.path("leads?filter[email]=zara@quenby.example")).await;
        let zaras = zaras.body["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(zaras.len(), 1, "{zaras:?}");
        assert_eq!(zaras[0]["is_duplicate"], false, "the deleted lead is not an original: {:?}", zaras[0]);

        let tens = app.get(&s, &s.path("leads?filter[email]=person10@example.in&sort=number")).await;
        let tens = tens.body["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(tens.len(), 3, "{tens:?}");
        assert_eq!(tens[0]["is_duplicate"], false);
        assert_eq!(tens[1]["duplicate_of_id"], tens[0]["id"], "{tens:?}");
        assert_eq!(tens[2]["is_duplicate"], true, "{tens:?}");
        assert!(tens[2]["duplicate_of_id"] == tens[0]["id"] || tens[2]["duplicate_of_id"] == tens[1]["id"], "{tens:?}");
    }
}

/// On PostgreSQL another writer of the company can commit while a batch reads (the batch
/// locks the audit head only when it appends). What the batch read may then predate that
/// change, so it must not be handed to the next batch, even though the audit sequence number
/// the next batch finds is the one this batch left. SQLite's write transactions exclude
/// each other, so there the case cannot arise.
#[tokio::test]
async fn a_batch_hands_over_nothing_when_another_writer_committed_while_it_ran() {
    for app in TestApp::all().await {
        if app.backend != "postgres" {
            continue;
        }
        let s = app.register("owner@meanwhile.test", "Meanwhile Co").await;
        let company = uuid::Uuid::parse_str(&s.company_id).expect("company");
        let user = uuid::Uuid::parse_str(&s.user_id).expect("user");
        let ctx = corvid_store::audit::AuditCtx { company_id: company, actor_id: Some(user), ..Default::default() };
        let tenant = corvid_store::Tenant::system(company, user, "91".into(), ctx);
        let leads = corvid_core::object("leads").expect("leads");
        let records = tenant.records(&app.db, leads);
        let input = |i: usize| match json!({"first_name": format!("Meera{i}"), "last_name": "Iyer", "email": format!("meera{i}@iyer.example")})
        {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        let (other, _) = records.create(&input(0), None).await.expect("other lead");
        for meanwhile in [false, true] {
            let mut tx = app.db.begin().await.expect("begin");
            let mut pipeline = records.pipeline(&mut tx).await.expect("pipeline").for_batch();
            pipeline.take_over(&mut tx, None).await.expect("take over");
            if meanwhile {
                records.delete(other.id, None).await.expect("someone else deletes a lead");
            }
            records.create_in(&mut tx, &[], &mut pipeline, &input(if meanwhile { 2 } else { 1 }), "import").await.expect("create");
            let handed = pipeline.finish_handing_over(&mut tx).await.expect("finish");
            tx.commit().await.expect("commit");
            assert_eq!(handed.is_some(), !meanwhile, "another writer committed meanwhile: {meanwhile}");
        }
    }
}
