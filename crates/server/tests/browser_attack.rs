//! Stored XSS in a real browser (headless Chromium, when CORVID_TEST_CHROMEDRIVER is set): every
//! text field of every object, a custom field, tags, the company, member, team and rule
//! names hold script payloads; then every list, record page, edit form, timeline, panel,
//! the dashboard and the settings pages are opened. Nothing may run, no element or event
//! handler may be injected, no link may lead to `javascript:`, and the payloads must show as
//! the text that was typed.
//!
//! The pages' Content-Security-Policy would block an inline script even if escaping failed,
//! so "nothing ran" alone proves little: the DOM checks are what make this test able to fail.

mod common;

use common::browser::{browser, serve, shot, sign_in, start_driver, Options};
use common::{TestApp, PASSWORD};
use corvid_core::meta::FieldKind;
use fantoccini::Client;
use serde_json::{json, Value};
use std::time::Duration;

const PAYLOADS: &[&str] = &[
    "<script>window.__xss=1</script>",
    "<img src=x onerror=\"window.__xss=1\">",
    "\"><svg onload=window.__xss=1>",
    "'><iframe src=\"javascript:parent.__xss=1\"></iframe>",
    "<a href='javascript:window.__xss=1'>link</a>{{ 7*7 }}",
];

/// Looks for anything a payload could have become: a script that ran, an inline script, an
/// event-handler attribute, an injected element, a link to a script URL.
const PROBE: &str = r#"
    const bad = [];
    if (typeof window.__xss !== 'undefined') bad.push('window.__xss was set');
    for (const s of document.querySelectorAll('script')) if (!s.src) bad.push('inline script: ' + s.outerHTML.slice(0, 120));
    for (const e of document.querySelectorAll('*')) for (const a of e.attributes) if (/^on/i.test(a.name)) bad.push(a.name + ' on <' + e.tagName.toLowerCase() + '>');
    for (const e of document.querySelectorAll('img[src="x"], iframe, object, embed, frame')) bad.push('injected <' + e.tagName.toLowerCase() + '>');
    for (const a of document.querySelectorAll('[href], [src], [action], [formaction]')) {
        for (const name of ['href', 'src', 'action', 'formaction']) {
            const v = (a.getAttribute(name) || '').replace(/[\s\u0000-\u001f]/g, '').toLowerCase();
            if (/^(javascript|vbscript|data):/.test(v)) bad.push(name + '=' + v.slice(0, 60) + ' on <' + a.tagName.toLowerCase() + '>');
        }
    }
    const values = Array.from(document.querySelectorAll('input, textarea, select')).map(e => e.value).join('\n');
    return {bad: bad, text: document.body ? document.body.innerText : '', values: values};
"#;

struct Seen {
    bad: Vec<String>,
    text: String,
    values: String,
}

/// Waits for htmx's panels to finish loading, then probes the page.
async fn probe(c: &Client) -> Seen {
    for _ in 0..50 {
        let busy = c
            .execute("return document.readyState !== 'complete' || document.querySelector('.htmx-request') !== null;", vec![])
            .await
            .expect("js");
        if busy == json!(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Panels triggered on load start a moment after the page is complete.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..30 {
        if c.execute("return document.querySelector('.htmx-request') === null;", vec![]).await.expect("js") == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = c.execute(PROBE, vec![]).await.expect("probe");
    Seen {
        bad: v["bad"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default(),
        text: v["text"].as_str().unwrap_or_default().to_string(),
        values: v["values"].as_str().unwrap_or_default().to_string(),
    }
}

/// Opens `url`, checks nothing was injected, and that each of `visible` shows as text (or, on
/// forms, as a field's value).
async fn visit(c: &Client, backend: &str, url: &str, visible: &[&str], in_form: bool) -> Seen {
    c.goto(url).await.unwrap_or_else(|e| panic!("[{backend}] {url}: {e}"));
    let seen = probe(c).await;
    assert!(seen.bad.is_empty(), "[{backend}] {url}: {:?}", seen.bad);
    for p in visible {
        let shown = if in_form { seen.values.contains(p) } else { seen.text.contains(p) };
        assert!(shown, "[{backend}] {url} does not show {p:?} as text; it shows: {}", seen.text.chars().take(1500).collect::<String>());
    }
    seen
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

#[tokio::test]
async fn stored_script_payloads_never_run_and_show_as_text() {
    let Some(driver) = start_driver().await else {
        eprintln!("browser tests skipped: set CORVID_TEST_CHROMEDRIVER to run them");
        return;
    };
    for app in TestApp::all().await {
        let backend = app.backend;
        let url = serve(&app).await;
        // The company and the people carry payloads too: they show on every page.
        let s = app.register("owner@xss.test", PAYLOADS[1]).await;
        let r = app
            .post(
                &s,
                &s.path("members"),
                json!({"email": "member@xss.test", "name": PAYLOADS[2], "password": PASSWORD, "role": "sales_rep"}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{r:?}");
        let member_id = r.body["user_id"].as_str().unwrap_or_else(|| panic!("no user_id in {r:?}")).to_string();
        for o in corvid_core::meta::OBJECT_NAMES {
            let r = app
                .post(
                    &s,
                    &s.path(&format!("metadata/objects/{o}/fields")),
                    json!({"name": "xss_note", "label": PAYLOADS[0], "type": "text"}),
                )
                .await;
            assert_eq!(r.status.as_u16(), 201, "{r:?}");
        }
        let team = app.post(&s, &s.path("teams"), json!({"name": PAYLOADS[3]})).await;
        assert_eq!(team.status.as_u16(), 201, "{team:?}");
        // A custom role and a second team (managed by the member) named with payloads, the
        // member in both: Members then shows the role's label and the team's name, Teams the
        // member as a manager, and the matrix editor the label as its title and in its form.
        let role = app.post(&s, &s.path("roles"), json!({"label": PAYLOADS[4], "base_role": "sales_rep"})).await;
        assert_eq!(role.status.as_u16(), 201, "[{backend}] {role:?}");
        assert_eq!(role.body["label"], PAYLOADS[4], "[{backend}] the label is kept as typed");
        let role_key = role.body["key"].as_str().unwrap_or_else(|| panic!("no key in {role:?}")).to_string();
        let team2 = app.post(&s, &s.path("teams"), json!({"name": PAYLOADS[0], "manager_id": member_id})).await;
        assert_eq!(team2.status.as_u16(), 201, "[{backend}] {team2:?}");
        assert_eq!(team2.body["name"], PAYLOADS[0], "[{backend}] the name is kept as typed");
        let r = app
            .call(
                axum::http::Method::PUT,
                &s.path(&format!("members/{member_id}/role")),
                Some(&s.token),
                Some(json!({"role": role_key})),
                &[],
            )
            .await;
        assert_eq!(r.status.as_u16(), 200, "[{backend}] {r:?}");
        let r = app.patch(&s, &s.path(&format!("members/{member_id}/reporting")), json!({"team_id": id_of(&team2.body)})).await;
        assert_eq!(r.status.as_u16(), 200, "[{backend}] {r:?}");
        let r = app.post(&s, &s.path("scoring/rule-sets"), json!({"name": PAYLOADS[0], "description": PAYLOADS[1]})).await;
        assert_eq!(r.status.as_u16(), 201, "{r:?}");
        let r = app.post(&s, &s.path("assignment/rules"), json!({"name": PAYLOADS[2], "strategy": "user", "user_id": s.user_id})).await;
        assert_eq!(r.status.as_u16(), 201, "{r:?}");
        let r = app
            .post(
                &s,
                &s.path("data/import-templates"),
                json!({"object": "leads", "name": PAYLOADS[3], "mapping": {"Last Name": "last_name"}}),
            )
            .await;
        assert!(r.status.is_success(), "{r:?}");

        // Script URLs are refused in URL fields; one that only looks like markup is kept as a
        // URL and must stay one.
        for bad in [
            "javascript:window.__xss=1",
            "JaVaScRiPt:window.__xss=1",
            " javascript:window.__xss=1",
            "javascript://x.example/%0Awindow.__xss=1",
            "data:text/html,<script>window.__xss=1</script>",
            "vbscript:msgbox(1)",
        ] {
            let r = app.post(&s, &s.path("accounts"), json!({"name": "Bad URL", "website": bad})).await;
            assert_eq!(r.status.as_u16(), 422, "[{backend}] website {bad:?}: {r:?}");
        }
        let tricky = app
            .post(&s, &s.path("accounts"), json!({"name": "Tricky URL", "website": "https://x.example/?q=\"><svg/onload=window.__xss=1>"}))
            .await;
        let tricky_id = tricky.status.is_success().then(|| id_of(&tricky.body));

        // One record per payload and object, the payload in every writable text field.
        let acc = id_of(&app.post(&s, &s.path("accounts"), json!({"name": "Plain account"})).await.body);
        let mut records: Vec<(&str, String, &str)> = Vec::new();
        for object in corvid_core::objects() {
            let o = object.name.as_str();
            for p in PAYLOADS {
                let mut body = json!({"cf_xss_note": p});
                for f in object.fields.iter().filter(|f| !f.read_only) {
                    if matches!(f.kind, FieldKind::Text { .. } | FieldKind::LongText { .. }) {
                        body[f.name.as_str()] = json!(p);
                    }
                }
                match o {
                    // Tags are short: a payload that fits.
                    "leads" => body["tags"] = json!(["<svg onload=window.__xss=1>", "\"><b>bold</b>"]),
                    "deals" => body["account_id"] = json!(acc),
                    "contacts" => body["account_id"] = json!(acc),
                    "activities" => body["activity_type"] = json!("note"),
                    _ => {}
                }
                let r = app.post(&s, &s.path(o), body.clone()).await;
                assert_eq!(r.status.as_u16(), 201, "[{backend}] {o} {body}: {r:?}");
                records.push((o, id_of(&r.body), p));
            }
        }
        // Timelines: activities and tasks on each lead, and a change of a text field.
        for (o, id, p) in records.clone().iter().filter(|(o, _, _)| *o == "leads") {
            let r =
                app.post(&s, &s.path("activities"), json!({"activity_type": "call", "title": p, "description": p, "lead_id": id})).await;
            assert_eq!(r.status.as_u16(), 201, "{r:?}");
            let r = app.post(&s, &s.path("tasks"), json!({"title": p, "description": p, "related_object": o, "related_id": id})).await;
            assert_eq!(r.status.as_u16(), 201, "{r:?}");
            let v = app.get(&s, &s.path(&format!("leads/{id}"))).await.body["version"].clone();
            let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"version": v, "job_title": format!("{p} (changed)")})).await;
            assert_eq!(r.status.as_u16(), 200, "{r:?}");
        }

        let profile = tempfile::tempdir().expect("profile");
        let c = browser(&driver, profile.path(), &Options::default()).await;
        sign_in(&c, &url, "owner@xss.test").await;
        let base = format!("{url}/app/{}", s.company_id);
        // The control: the probe does see an injection when there is one.
        c.goto(&format!("{base}/dashboard")).await.expect("dashboard");
        c.execute(
            "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=\"window.__xss=1\"><a href=\"javascript:void(0)\">x</a>');",
            vec![],
        )
        .await
        .expect("inject");
        let control = probe(&c).await;
        assert!(control.bad.len() >= 3, "[{backend}] the probe misses injections: {:?}", control.bad);
        let mut pages = 0;
        for o in corvid_core::meta::OBJECT_NAMES {
            let mine: Vec<&str> = records.iter().filter(|(x, _, _)| x == o).map(|(_, _, p)| *p).collect();
            visit(&c, backend, &format!("{base}/{o}"), &mine, false).await;
            visit(&c, backend, &format!("{base}/{o}?q=script"), &[], false).await;
            visit(&c, backend, &format!("{base}/{o}/new"), &[], false).await;
            pages += 3;
            for (_, id, p) in records.iter().filter(|(x, _, _)| x == o) {
                let seen = visit(&c, backend, &format!("{base}/{o}/{id}"), &[p], false).await;
                if *o == "leads" {
                    assert!(seen.text.contains(&format!("{p} (changed)")), "[{backend}] the change shows in the timeline");
                }
                visit(&c, backend, &format!("{base}/{o}/{id}/edit"), &[p], true).await;
                pages += 2;
                if *o == "leads" {
                    for extra in ["qualification", "convert", "privacy", "score", "duplicates"] {
                        visit(&c, backend, &format!("{base}/leads/{id}/{extra}"), &[], false).await;
                        pages += 1;
                    }
                }
            }
        }
        if let Some(id) = &tricky_id {
            let seen = visit(&c, backend, &format!("{base}/accounts/{id}"), &[], false).await;
            assert!(seen.text.contains("x.example"), "[{backend}] the URL shows");
            pages += 1;
        }
        for (page, visible) in [
            ("dashboard", vec![PAYLOADS[1]]),
            ("pipeline", vec![]),
            ("settings/members", vec![PAYLOADS[2], PAYLOADS[4], PAYLOADS[0]]),
            ("settings/roles", vec![PAYLOADS[4]]),
            ("settings/fields", vec![PAYLOADS[0]]),
            ("settings/scoring", vec![PAYLOADS[0]]),
            ("settings/assignment", vec![PAYLOADS[2]]),
            ("settings/audit", vec![]),
            ("settings/quality", vec![]),
            ("settings/dedupe", vec![]),
            ("imports", vec![PAYLOADS[3]]),
        ] {
            visit(&c, backend, &format!("{base}/{page}"), &visible, false).await;
            pages += 1;
        }
        // The custom role's matrix editor: the label as the title and as the label field's
        // value, nothing else made of it.
        let seen = visit(&c, backend, &format!("{base}/settings/roles/{role_key}"), &[PAYLOADS[4]], false).await;
        assert!(seen.values.contains(PAYLOADS[4]), "[{backend}] the label field holds the label as typed: {:?}", seen.values);
        // Teams: the names (and the member as manager) as text, the names also in the rename
        // fields as typed.
        let seen = visit(&c, backend, &format!("{base}/settings/teams"), &[PAYLOADS[0], PAYLOADS[2], PAYLOADS[3]], false).await;
        for p in [PAYLOADS[0], PAYLOADS[3]] {
            assert!(seen.values.contains(p), "[{backend}] a rename field holds {p:?}: {:?}", seen.values);
        }
        // Moving the member's records: the page names the member.
        visit(&c, backend, &format!("{base}/settings/members/{member_id}/transfer"), &[PAYLOADS[2]], false).await;
        pages += 3;
        // The company's name shows in the page chrome as text.
        visit(&c, backend, &format!("{url}/profile"), &[PAYLOADS[1]], false).await;
        pages += 1;
        shot(&c, &format!("xss-{backend}")).await;
        c.close().await.expect("close");
        eprintln!("[{backend}] stored XSS: {} records, {pages} pages", records.len());
    }
}
