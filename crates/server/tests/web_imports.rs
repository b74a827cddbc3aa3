//! The import pages through the real router, on SQLite (and PostgreSQL when
//! CORVID_TEST_POSTGRES_URL is set): multipart upload with the CSRF token, the suggested
//! mapping, templates, the preview with per-cell errors, options, the progress page and the
//! result; refusals (bad CSRF, bad files, other companies' ids, roles that cannot import)
//! change nothing.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use corvid_server::jobs::{Registry, Runtime};
use serde_json::json;
use std::time::Duration;

const BOUNDARY: &str = "corvidwebboundary9f8e7d6c5b4a";

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// How the upload proves it is not cross-site.
enum Token<'a> {
    Query(&'a str),
    Header(&'a str),
    None,
}

async fn upload(app: &TestApp, b: &WebSession, base: &str, fields: &[(&str, &str)], name: &str, file: &[u8], token: Token<'_>) -> Resp {
    upload_from(app, b, base, fields, name, file, token, None).await
}

#[allow(clippy::too_many_arguments)]
async fn upload_from(
    app: &TestApp,
    b: &WebSession,
    base: &str,
    fields: &[(&str, &str)],
    name: &str,
    file: &[u8],
    token: Token<'_>,
    origin: Option<&str>,
) -> Resp {
    let uri = match token {
        Token::Query(t) => format!("{base}/imports?_csrf={}", urlencode(t)),
        _ => format!("{base}/imports"),
    };
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("cookie", &b.cookie)
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"));
    if let Token::Header(t) = token {
        req = req.header("x-csrf-token", t);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    app.raw(req.body(Body::from(multipart(fields, name, file))).expect("req")).await
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).expect("enc").trim_start_matches("x=").to_string()
}

fn location(r: &Resp) -> String {
    r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no location: {r:?}")).to_string()
}

fn stored_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.data.path().join("imports")).map(|d| d.count()).unwrap_or(0)
}

/// A select's chosen value on the mapping page, by column index.
fn selected(html: &str, col: usize) -> Option<String> {
    let start = html.find(&format!("name=\"col{col}\""))?;
    let rest = &html[start..];
    let end = rest.find("</select>")?;
    let select = &rest[..end];
    let at = select.find(" selected")?;
    let before = &select[..at];
    let v = before.rfind("value=\"")?;
    Some(before[v + 7..].split('"').next()?.to_string())
}

async fn wait_finished(app: &TestApp, s: &Session, id: &str) -> serde_json::Value {
    for _ in 0..600 {
        let r = app.get(s, &s.path(&format!("data/import/{id}"))).await;
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

const CSV: &str = "First Name,Surname,E-mail,Mobile,Lead Source,Shoe size\n\
Asha,Rao,asha@example.in,9876500001,Website form,7\n\
Bad,Row,not-an-email,123,Nowhere,9\n\
Ravi,Kumar,ravi@example.in,9876500003,,10\n";

#[tokio::test]
async fn upload_map_preview_run_and_report_in_the_web_app() {
    for app in TestApp::all().await {
        let s = app.register("admin@webimport.test", "Web Import Co").await;
        let b = app.web_sign_in("admin@webimport.test").await;
        let base = format!("/app/{}", s.company_id);
        // Links from the list toolbar and from Settings.
        let list = app.web_get(&b, &format!("{base}/leads"), &[]).await;
        assert!(list.text.contains(&format!("{base}/imports?object=leads")), "import link on the list");
        let settings = app.web_get(&b, &format!("{base}/settings/members"), &[]).await;
        assert!(settings.text.contains(&format!("href=\"{base}/imports\"")), "import tab in settings");

        let page = app.web_get(&b, &format!("{base}/imports?object=leads"), &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert!(page.text.contains("enctype=\"multipart/form-data\"") && page.text.contains("_csrf="), "{}", page.text);

        let r = upload(
            &app,
            &b,
            &base,
            &[("object", "leads"), ("template_id", "")],
            "../../etc/leads.csv",
            CSV.as_bytes(),
            Token::Query(&b.csrf),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let mapping_url = location(&r);
        assert!(mapping_url.ends_with("/mapping"), "{mapping_url}");
        let import_id = mapping_url.trim_end_matches("/mapping").rsplit('/').next().expect("id").to_string();
        // Stored under a generated name, never the client's.
        let names: Vec<String> = std::fs::read_dir(app.data.path().join("imports"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].chars().all(|c| c.is_ascii_hexdigit()), "{names:?}");
        let draft = app.get(&s, &s.path(&format!("data/import/{import_id}"))).await;
        assert_eq!(draft.body["state"], "draft");
        assert_eq!(draft.body["file_name"], "....etcleads.csv");

        // The suggested mapping, with samples.
        let m = app.web_get(&b, &mapping_url, &[]).await;
        assert_eq!(m.status, StatusCode::OK);
        assert_eq!(selected(&m.text, 0).as_deref(), Some("first_name"));
        assert_eq!(selected(&m.text, 1).as_deref(), Some("last_name"));
        assert_eq!(selected(&m.text, 2).as_deref(), Some("email"));
        assert_eq!(selected(&m.text, 3).as_deref(), Some("phone"));
        assert_eq!(selected(&m.text, 4).as_deref(), Some("source"));
        assert_eq!(selected(&m.text, 5), None, "unknown column ignored");
        assert!(m.text.contains("asha@example.in"), "sample values");

        // A mapping with one field twice is refused beside the column and not saved.
        let twice = [("col0", "first_name"), ("col1", "first_name"), ("col2", "email"), ("action", "preview")];
        let r = app.web_post(&b, &mapping_url, &twice, true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("first_name is mapped from two columns"), "{}", r.text);
        assert_eq!(app.get(&s, &s.path(&format!("data/import/{import_id}"))).await.body["mapping"][1], "last_name");

        // Save the mapping as a template; then preview.
        let cols = [("col0", "first_name"), ("col1", "last_name"), ("col2", "email"), ("col3", "phone"), ("col4", "source"), ("col5", "")];
        let mut form: Vec<(&str, &str)> = cols.to_vec();
        form.extend([("action", "save_template"), ("template_name", "Fair leads")]);
        let r = app.web_post(&b, &mapping_url, &form, true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let tpls = app.get(&s, &s.path("data/import-templates?object=leads")).await;
        assert_eq!(tpls.body["data"][0]["name"], "Fair leads");
        assert_eq!(tpls.body["data"][0]["mapping"]["E-mail"], "email");
        assert_eq!(tpls.body["data"][0]["mapping"]["Shoe size"], json!(null));
        let mut form: Vec<(&str, &str)> = cols.to_vec();
        form.push(("action", "preview"));
        let r = app.web_post(&b, &mapping_url, &form, true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let preview_url = location(&r);
        assert!(preview_url.ends_with("/preview"));

        // Preview: the bad row's cells carry their errors; nothing is written yet.
        let p = app.web_get(&b, &preview_url, &[]).await;
        assert_eq!(p.status, StatusCode::OK);
        assert!(p.text.contains("1 of the first 3 rows have problems"), "{}", p.text);
        let bad = &p.text[p.text.find("data-row=\"3\"").expect("row 3")..];
        let bad = &bad[..bad.find("</tr>").expect("end")];
        assert!(
            bad.contains("class=\"cell-invalid\">not-an-email<span class=\"error-text\" data-cell-error>is not a valid email address"),
            "{bad}"
        );
        assert!(bad.contains("Nowhere<span class=\"error-text\" data-cell-error>"), "{bad}");
        assert!(p.text.contains("data-row=\"2\" data-ok=\"true\""));
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 0);

        // A bad option is shown on the form and starts nothing.
        let r = app
            .web_post(
                &b,
                &format!("{base}/imports/{import_id}/start"),
                &[("duplicate_policy", "skip"), ("default_source", "carrier-pigeon")],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("id=\"e-default-source\">") && !r.text.contains("id=\"e-default-source\"></span>"), "{}", r.text);
        assert_eq!(app.get(&s, &s.path(&format!("data/import/{import_id}"))).await.body["state"], "draft");

        let r = app
            .web_post(
                &b,
                &format!("{base}/imports/{import_id}/start"),
                &[
                    ("duplicate_policy", "skip"),
                    ("run_assignment", "1"),
                    ("default_source", "event"),
                    ("default_campaign", "Fair 2026"),
                    ("default_medium", ""),
                ],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let progress_url = location(&r);
        assert_eq!(progress_url, format!("{base}/imports/{import_id}"));
        let queued = app.web_get(&b, &progress_url, &[]).await;
        assert!(queued.text.contains("hx-trigger=\"every 1s\""), "polls while queued");
        assert!(queued.text.contains("data-state=\"queued\""));
        // A second click on Start queues nothing more.
        let again = app.web_post(&b, &format!("{base}/imports/{import_id}/start"), &[("duplicate_policy", "skip")], true).await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'import.run'").await, 1);

        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let done = wait_finished(&app, &s, &import_id).await;
        runtime.shutdown().await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!((done["created"].as_i64(), done["failed"].as_i64()), (Some(2), Some(1)), "{done}");
        assert_eq!(done["rows_total"], 3);
        assert_eq!(done["options"]["run_assignment"], true);
        assert_eq!(stored_files(&app), 0, "the file is removed once the import is done");
        let ravi = app.get(&s, &s.path("leads?filter[email]=ravi@example.in")).await;
        assert_eq!(ravi.body["data"][0]["source"], "event", "the default fills an empty cell");
        assert_eq!(ravi.body["data"][0]["campaign"], "Fair 2026");
        let asha = app.get(&s, &s.path("leads?filter[email]=asha@example.in")).await;
        assert_eq!(asha.body["data"][0]["source"], "website", "a row's own value wins");

        let result = app.web_get(&b, &progress_url, &[]).await;
        assert!(!result.text.contains("hx-trigger"), "no polling once finished");
        assert!(result.text.contains("data-testid=\"import-percent\">100 %"), "{}", result.text);
        assert!(result.text.contains("data-count=\"created\">2<") && result.text.contains("data-count=\"failed\">1<"));
        assert!(result.text.contains(&format!("{base}/imports/{import_id}/errors.csv")));
        assert!(result.text.contains("is not a valid email address"));
        let csv = app.web_get(&b, &format!("{base}/imports/{import_id}/errors.csv"), &[]).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(csv.text.starts_with("row,errors,First Name,Surname,E-mail"), "{}", csv.text);
        assert!(csv.text.contains("3,") && csv.text.contains("Bad,Row,not-an-email"), "{}", csv.text);
        // Pages of a started import lead to its progress.
        let m = app.web_get(&b, &mapping_url, &[]).await;
        assert_eq!(m.status, StatusCode::SEE_OTHER);
        let index = app.web_get(&b, &format!("{base}/imports"), &[]).await;
        assert!(index.text.contains("Finished with errors") && index.text.contains("Fair leads"), "{}", index.text);
        let v = app.get(&s, &s.path("audit/verify")).await;
        assert_eq!(v.body["ok"], true);
    }
}

#[tokio::test]
async fn templates_are_saved_used_and_deleted_per_company() {
    for app in TestApp::all().await {
        let s = app.register("admin@tpl.test", "Template Co").await;
        let b = app.web_sign_in("admin@tpl.test").await;
        let base = format!("/app/{}", s.company_id);
        // A template for a file whose headings the suggestion would not understand.
        let t = app
            .post(
                &s,
                &s.path("data/import-templates"),
                json!({"object": "leads", "name": "Expo", "mapping": {"Nom": "last_name", "Courriel": "email", "Remarque": null}}),
            )
            .await;
        assert_eq!(t.status, StatusCode::CREATED, "{t:?}");
        let tid = t.body["id"].as_str().expect("id").to_string();
        let file = "nom,COURRIEL,Remarque\nDubois,d@example.fr,x\n";
        let r = upload(&app, &b, &base, &[("object", "leads"), ("template_id", &tid)], "expo.csv", file.as_bytes(), Token::Query(&b.csrf))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let mapping_url = location(&r);
        let m = app.web_get(&b, &mapping_url, &[]).await;
        assert_eq!(selected(&m.text, 0).as_deref(), Some("last_name"), "matched ignoring case");
        assert_eq!(selected(&m.text, 1).as_deref(), Some("email"));
        assert_eq!(selected(&m.text, 2), None);

        // Apply another template on the mapping page.
        let t2 = app
            .post(&s, &s.path("data/import-templates"), json!({"object": "leads", "name": "Only email", "mapping": {"courriel": "email"}}))
            .await;
        let t2id = t2.body["id"].as_str().expect("id").to_string();
        let r = app.web_post(&b, &mapping_url, &[("action", "apply_template"), ("template_id", &t2id)], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let m = app.web_get(&b, &location(&r), &[]).await;
        assert!(m.text.contains("Applied the template"), "{}", m.text);
        assert_eq!(selected(&m.text, 0), None);
        assert_eq!(selected(&m.text, 1).as_deref(), Some("email"));

        // Another company's template: 404 on upload, apply and delete; nothing changes.
        let other = app.register("admin@othertpl.test", "Other Template Co").await;
        let ot = app
            .post(&other, &other.path("data/import-templates"), json!({"object": "leads", "name": "Theirs", "mapping": {"Email": "email"}}))
            .await;
        let otid = ot.body["id"].as_str().expect("id").to_string();
        let before_imports = app.count("SELECT COUNT(*) FROM imports").await;
        let files = stored_files(&app);
        let r = upload(&app, &b, &base, &[("object", "leads"), ("template_id", &otid)], "x.csv", b"Email\na@b.in\n", Token::Query(&b.csrf))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
        assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, before_imports);
        assert_eq!(stored_files(&app), files, "the refused upload was removed");
        let r = app.web_post(&b, &mapping_url, &[("action", "apply_template"), ("template_id", &otid)], true).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = app.web_post(&b, &format!("{base}/imports/templates/{otid}/delete"), &[], true).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&other, &other.path("data/import-templates")).await.body["data"].as_array().map(Vec::len), Some(1));
        // Someone else's import is not found either.
        let their = app.web_get(&b, &mapping_url.replace(&s.company_id, &other.company_id), &[]).await;
        assert_eq!(their.status, StatusCode::NOT_FOUND);
        let ob = app.web_sign_in("admin@othertpl.test").await;
        let theirs = app.web_get(&ob, &mapping_url.replace(&s.company_id, &other.company_id), &[]).await;
        assert_eq!(theirs.status, StatusCode::NOT_FOUND, "an import id of another company");
        // A template for another object is refused with a message.
        let acc =
            app.post(&s, &s.path("data/import-templates"), json!({"object": "accounts", "name": "Acc", "mapping": {"Name": "name"}})).await;
        let accid = acc.body["id"].as_str().expect("id").to_string();
        let r =
            upload(&app, &b, &base, &[("object", "leads"), ("template_id", &accid)], "x.csv", b"Name\nA\n", Token::Query(&b.csrf)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("is a template for accounts, not leads"), "{}", r.text);

        // Delete through the web.
        let r = app.web_post(&b, &format!("{base}/imports/templates/{tid}/delete"), &[], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let left: Vec<String> = app.get(&s, &s.path("data/import-templates")).await.body["data"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["name"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(left, vec!["Acc".to_string(), "Only email".to_string()]);
        let audit = app
            .count(&format!("SELECT COUNT(*) FROM audit_log WHERE object = 'import_templates' AND company_id = '{}'", s.company_id))
            .await;
        assert_eq!(audit, 4, "three saves and a delete");
    }
}

#[tokio::test]
async fn uploads_need_the_csrf_token_and_good_files() {
    for app in TestApp::all().await {
        let s = app.register("admin@csrfimport.test", "Csrf Import Co").await;
        let b = app.web_sign_in("admin@csrfimport.test").await;
        let base = format!("/app/{}", s.company_id);
        let before = app.snapshot().await;
        let file = b"Last Name,Email\nShah,shah@example.in\n";
        for (label, token, origin) in [
            ("no token", Token::None, None),
            ("wrong token", Token::Query("0123456789abcdef"), None),
            ("wrong header", Token::Header("nope"), None),
            ("another site", Token::Query(&b.csrf), Some("https://evil.example")),
        ] {
            let r = upload_from(&app, &b, &base, &[("object", "leads")], "a.csv", file, token, origin).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{label}: {r:?}");
        }
        assert_eq!(stored_files(&app), 0, "refused before anything was stored");
        assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 0);

        // The header works too (htmx).
        let r = upload(&app, &b, &base, &[("object", "leads")], "a.csv", file, Token::Header(&b.csrf)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 1);
        let files = stored_files(&app);

        // Bad files: a clear message, nothing kept.
        let wide = (0..10_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",") + "\n1,2\n";
        let mut bomb = Vec::new();
        {
            let mut zip = zip_writer(&mut bomb);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file("xl/worksheets/sheet1.xml", opts).expect("entry");
            let zeros = vec![0u8; 1024 * 1024];
            for _ in 0..120 {
                std::io::Write::write_all(&mut zip, &zeros).expect("write");
            }
            zip.finish().expect("finish");
        }
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty.csv", Vec::new(), "the file is empty"),
            ("garbage.csv", vec![0, 159, 146, 150, 0, 1, 2, 3, 255, 254, 0, 0], "binary data"),
            ("wide.csv", wide.into_bytes(), "10000 columns"),
            ("fake.xlsx", b"this is not a zip".to_vec(), "not a valid XLSX"),
            ("bomb.xlsx", bomb, "zip bomb"),
            ("blank.csv", b"\n\n".to_vec(), "header row is empty"),
        ];
        for (name, bytes, reason) in cases {
            let r = upload(&app, &b, &base, &[("object", "leads")], name, &bytes, Token::Query(&b.csrf)).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {r:?}");
            assert!(r.text.contains("This file cannot be imported") && r.text.contains(reason), "{name}: {}", r.text);
        }
        let r = upload(&app, &b, &base, &[("object", "widgets")], "a.csv", file, Token::Query(&b.csrf)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("Choose what to import"));
        let r = upload(&app, &b, &base, &[("object", "leads"), ("surprise", "x")], "a.csv", file, Token::Query(&b.csrf)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(stored_files(&app), files, "refused files are not kept");
        assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, 1);
        assert_eq!(app.snapshot().await, before);
    }
}

fn zip_writer(buf: &mut Vec<u8>) -> zip::ZipWriter<std::io::Cursor<&mut Vec<u8>>> {
    zip::ZipWriter::new(std::io::Cursor::new(buf))
}

#[tokio::test]
async fn only_admins_and_managers_import() {
    for app in TestApp::all().await {
        let admin = app.register("admin@roles-import.test", "Roles Import Co").await;
        app.member(&admin, "manager@roles-import.test", "manager").await;
        app.member(&admin, "viewer@roles-import.test", "read_only").await;
        app.member(&admin, "rep@roles-import.test", "sales_rep").await;
        let base = format!("/app/{}", admin.company_id);
        let ab = app.web_sign_in("admin@roles-import.test").await;
        let r = upload(&app, &ab, &base, &[("object", "leads")], "a.csv", b"Last Name\nA\n", Token::Query(&ab.csrf)).await;
        let mapping = location(&r);
        let id = mapping.trim_end_matches("/mapping").rsplit('/').next().expect("id").to_string();

        let mb = app.web_sign_in("manager@roles-import.test").await;
        assert_eq!(app.web_get(&mb, &format!("{base}/imports"), &[]).await.status, StatusCode::OK);
        let list = app.web_get(&mb, &format!("{base}/leads"), &[]).await;
        assert!(list.text.contains("data-testid=\"import-link\""));

        for email in ["viewer@roles-import.test", "rep@roles-import.test"] {
            let vb = app.web_sign_in(email).await;
            let list = app.web_get(&vb, &format!("{base}/leads"), &[]).await;
            assert!(!list.text.contains("data-testid=\"import-link\""), "{email}: no import link");
            for path in [format!("{base}/imports"), mapping.clone(), format!("{base}/imports/{id}/preview"), format!("{base}/imports/{id}")]
            {
                assert_eq!(app.web_get(&vb, &path, &[]).await.status, StatusCode::FORBIDDEN, "{email} {path}");
            }
            let before = app.count("SELECT COUNT(*) FROM imports").await;
            let files = stored_files(&app);
            let r = upload(&app, &vb, &base, &[("object", "leads")], "a.csv", b"Last Name\nA\n", Token::Query(&vb.csrf)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{email}: {r:?}");
            assert_eq!(app.count("SELECT COUNT(*) FROM imports").await, before);
            assert_eq!(stored_files(&app), files);
            let r = app.web_post(&vb, &format!("{base}/imports/{id}/start"), &[("duplicate_policy", "skip")], true).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN);
            assert_eq!(app.get(&admin, &admin.path(&format!("data/import/{id}"))).await.body["state"], "draft");
        }
    }
}

#[tokio::test]
async fn a_bad_csrf_on_the_mapping_form_changes_nothing() {
    for app in TestApp::all().await {
        let s = app.register("admin@mapcsrf.test", "Map Csrf Co").await;
        let b = app.web_sign_in("admin@mapcsrf.test").await;
        let base = format!("/app/{}", s.company_id);
        let r = upload(&app, &b, &base, &[("object", "leads")], "a.csv", b"Last Name,Email\nA,a@b.in\n", Token::Query(&b.csrf)).await;
        let mapping = location(&r);
        let r = app
            .web_post(&b, &mapping, &[("col0", "first_name"), ("col1", ""), ("action", "save_template"), ("template_name", "X")], false)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let id = mapping.trim_end_matches("/mapping").rsplit('/').next().expect("id");
        let imp = app.get(&s, &s.path(&format!("data/import/{id}"))).await;
        assert_eq!(imp.body["mapping"], json!(["last_name", "email"]));
        assert_eq!(app.count("SELECT COUNT(*) FROM import_templates").await, 0);
        let r = app.web_post(&b, &format!("{base}/imports/{id}/start"), &[("duplicate_policy", "skip")], false).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
        // A template name that is too long is refused on the page.
        let long = "x".repeat(200);
        let r = app
            .web_post(
                &b,
                &mapping,
                &[("col0", "last_name"), ("col1", "email"), ("action", "save_template"), ("template_name", &long)],
                true,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text.contains("The template was not saved"), "{}", r.text);
        assert_eq!(app.count("SELECT COUNT(*) FROM import_templates").await, 0);
    }
}
