//! The object API end to end: CRUD, versions, lists, search, custom fields, idempotency,
//! bulk, money, timelines and statistics, on every backend.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{json, Value};

fn ids(r: &Resp) -> Vec<String> {
    r.body["data"].as_array().expect("data").iter().map(|x| x["id"].as_str().expect("id").to_string()).collect()
}

#[tokio::test]
async fn crud_versions_delete_and_restore() {
    for app in TestApp::all().await {
        let s = app.register("owner@crud.test", "Crud Co").await;
        let r = app
            .post(
                &s,
                &s.path("leads"),
                json!({"first_name": "  Priya ", "last_name": "Shah", "email": "Priya@Example.COM", "phone": "98765 43210"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{} {r:?}", app.backend);
        let lead = r.body.clone();
        let id = lead["id"].as_str().expect("id").to_string();
        assert_eq!(lead["number"], "LEAD-00001");
        assert_eq!(lead["version"], 1);
        assert_eq!(lead["first_name"], "Priya");
        assert_eq!(lead["email"], "Priya@example.com");
        assert_eq!(lead["phone"], "+919876543210");
        assert_eq!(lead["status"], "new");
        assert_eq!(lead["owner_id"], s.user_id.as_str());
        assert_eq!(lead["created_by"], s.user_id.as_str());
        assert!(r.headers.get("location").is_some());

        let got = app.get(&s, &s.path(&format!("leads/{id}"))).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers.get("etag").and_then(|v| v.to_str().ok()), Some("\"1\""));

        // PATCH needs the version.
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"status": "contacted"})).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_REQUIRED, "{r:?}");
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"status": "contacted", "version": 1})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["version"], 2);
        assert_eq!(r.body["status"], "contacted");
        // If-Match works too, and a stale version changes nothing.
        let before = app.snapshot().await;
        let r = app
            .call(
                Method::PATCH,
                &s.path(&format!("leads/{id}")),
                Some(&s.token),
                Some(json!({"status": "qualified"})),
                &[("if-match", "\"1\"")],
            )
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{r:?}");
        assert_eq!(r.body["current_version"], 2);
        assert!(is_problem(&r));
        assert_eq!(app.snapshot().await, before);
        let r = app
            .call(
                Method::PATCH,
                &s.path(&format!("leads/{id}")),
                Some(&s.token),
                Some(json!({"status": "qualified"})),
                &[("if-match", "\"2\"")],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["version"], 3);
        // A no-op change keeps the version.
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"status": "qualified", "version": 3})).await;
        assert_eq!(r.body["version"], 3);

        // Soft delete hides it from lists; restore brings it back.
        let r = app.delete(&s, &s.path(&format!("leads/{id}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body["deleted_at"].is_string());
        let list = app.get(&s, &s.path("leads")).await;
        assert!(ids(&list).is_empty());
        let deleted = app.get(&s, &s.path("leads?filter[deleted_at][is_null]=false")).await;
        assert_eq!(ids(&deleted), vec![id.clone()]);
        let r = app.patch(&s, &s.path(&format!("leads/{id}")), json!({"status": "new", "version": 4})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "deleted records cannot be edited: {r:?}");
        let r = app.post(&s, &s.path(&format!("leads/{id}/restore")), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body["deleted_at"].is_null());
        assert_eq!(ids(&app.get(&s, &s.path("leads")).await), vec![id.clone()]);

        // History has one row per changed field with old and new values, IP and user agent.
        let h = app.get(&s, &s.path(&format!("leads/{id}/history"))).await;
        assert_eq!(h.status, StatusCode::OK);
        let rows = h.body["data"].as_array().expect("rows");
        let status_change = rows.iter().find(|r| r["field"] == "status" && r["new_value"] == "contacted").expect("status row");
        assert_eq!(status_change["old_value"], "new");
        assert_eq!(status_change["action"], "update");
        assert_eq!(status_change["ip"], "10.1.2.3");
        assert_eq!(status_change["user_agent"], "corvid-tests/1.0");
        assert_eq!(status_change["actor_id"], s.user_id.as_str());
        assert!(status_change["request_id"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(rows.iter().any(|r| r["action"] == "delete"));
        assert!(rows.iter().any(|r| r["action"] == "restore"));
        // The creation is shown field by field, but stored as one hashed row holding all values.
        let created: Vec<_> = rows.iter().filter(|r| r["action"] == "create").collect();
        assert!(created.iter().any(|r| r["field"] == "last_name" && r["new_value"] == "Shah"));
        assert!(created.len() > 2, "{created:?}");
        assert!(created.iter().all(|r| r["seq"] == created[0]["seq"] && r["hash"] == created[0]["hash"]));
        let stored = app.count(&format!("SELECT COUNT(*) FROM audit_log WHERE record_id = '{id}' AND action = 'create'")).await;
        assert_eq!(stored, 1);
    }
}

#[tokio::test]
async fn accounts_are_deactivated_not_deleted() {
    for app in TestApp::all().await {
        let s = app.register("owner@acc.test", "Acc Co").await;
        let r = app
            .post(
                &s,
                &s.path("accounts"),
                json!({"name": "Tata Steel Ltd", "gstin": "27AAPFU0939F1ZV", "annual_revenue": "2500000.50", "currency": "INR"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["annual_revenue"], "2500000.50");
        assert_eq!(r.body["is_active"], true);
        let id = r.body["id"].as_str().expect("id").to_string();
        let d = app.delete(&s, &s.path(&format!("accounts/{id}"))).await;
        assert_eq!(d.status, StatusCode::OK);
        assert_eq!(d.body["is_active"], false);
        assert!(d.body["deleted_at"].is_null());
        assert_eq!(app.count("SELECT COUNT(*) FROM accounts").await, 1);
        let inactive = app.get(&s, &s.path("accounts?filter[is_active]=false")).await;
        assert_eq!(ids(&inactive), vec![id.clone()]);
        let r = app.post(&s, &s.path(&format!("accounts/{id}/restore")), json!({})).await;
        assert_eq!(r.body["is_active"], true);
    }
}

async fn seed_leads(app: &TestApp, s: &Session) -> Vec<Value> {
    let rows = [
        json!({"first_name": "Aarav", "last_name": "Mehta", "source": "website", "lead_score": 10, "country": "IN", "tags": ["vip", "pune"], "company_name": "Mehta Textiles"}),
        json!({"first_name": "Diya", "last_name": "Iyer", "source": "event", "lead_score": 45, "country": "IN", "company_name": "Iyer & Sons"}),
        json!({"first_name": "John", "last_name": "Smith", "source": "website", "lead_score": 80, "country": "US", "status": "qualified"}),
        json!({"first_name": "Zoë", "last_name": "Müller", "source": "partner", "lead_score": 65, "country": "DE", "email": "zoe@mueller.de"}),
        json!({"first_name": "Ravi", "last_name": "Kumar", "lead_score": 30, "tags": ["pune"]}),
    ];
    let mut out = Vec::new();
    for r in rows {
        let resp = app.post(s, &s.path("leads"), r).await;
        assert_eq!(resp.status, StatusCode::CREATED, "{resp:?}");
        out.push(resp.body);
    }
    out
}

fn names(r: &Resp) -> Vec<String> {
    r.body["data"].as_array().expect("data").iter().map(|x| x["last_name"].as_str().unwrap_or("").to_string()).collect()
}

#[tokio::test]
async fn filters_sorting_search_and_cursors() {
    for app in TestApp::all().await {
        let s = app.register("owner@list.test", "List Co").await;
        seed_leads(&app, &s).await;
        let q = |qs: &str| s.path(&format!("leads?{qs}"));
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        assert_eq!(sorted(names(&app.get(&s, &q("filter[source]=website")).await)), vec!["Mehta", "Smith"]);
        assert_eq!(sorted(names(&app.get(&s, &q("filter[source][eq]=website")).await)), vec!["Mehta", "Smith"]);
        assert_eq!(names(&app.get(&s, &q("filter[source][ne]=website&sort=last_name")).await), vec!["Iyer", "Kumar", "Müller"]);
        assert_eq!(names(&app.get(&s, &q("filter[lead_score][gt]=45&sort=lead_score")).await), vec!["Müller", "Smith"]);
        assert_eq!(names(&app.get(&s, &q("filter[lead_score][gte]=45&sort=lead_score")).await), vec!["Iyer", "Müller", "Smith"]);
        assert_eq!(names(&app.get(&s, &q("filter[lead_score][lt]=30&sort=lead_score")).await), vec!["Mehta"]);
        assert_eq!(names(&app.get(&s, &q("filter[lead_score][lte]=30&sort=lead_score")).await), vec!["Mehta", "Kumar"]);
        assert_eq!(names(&app.get(&s, &q("filter[country][in]=US,DE&sort=-last_name")).await), vec!["Smith", "Müller"]);
        assert_eq!(names(&app.get(&s, &q("filter[company_name][contains]=textile")).await), vec!["Mehta"]);
        assert_eq!(sorted(names(&app.get(&s, &q("filter[tags][contains]=pune")).await)), vec!["Kumar", "Mehta"]);
        assert_eq!(names(&app.get(&s, &q("filter[source][is_null]=true")).await), vec!["Kumar"]);
        assert_eq!(names(&app.get(&s, &q("filter[status]=qualified")).await), vec!["Smith"]);
        // Sorting: nulls last in both directions; default newest first.
        assert_eq!(names(&app.get(&s, &q("sort=source,last_name")).await), vec!["Iyer", "Müller", "Mehta", "Smith", "Kumar"]);
        assert_eq!(names(&app.get(&s, &q("")).await), vec!["Kumar", "Müller", "Smith", "Iyer", "Mehta"]);
        // Search over names, email, company, and the full name.
        assert_eq!(names(&app.get(&s, &q("q=sons")).await), vec!["Iyer"]);
        assert_eq!(names(&app.get(&s, &q("q=john%20smith")).await), vec!["Smith"]);
        assert_eq!(names(&app.get(&s, &q("q=MUELLER")).await), vec!["Müller"]);
        assert_eq!(names(&app.get(&s, &q("q=100%25")).await), Vec::<String>::new());
        // Fields projection.
        let r = app.get(&s, &q("fields=last_name&limit=1")).await;
        let first = &r.body["data"][0];
        assert!(first.get("email").is_none() && first.get("last_name").is_some() && first.get("version").is_some());

        // Cursor pagination walks every sort, including nullable keys, without gaps or repeats.
        for sort in ["-created_at", "last_name", "-lead_score", "source", "-source,last_name", "country"] {
            let all = names(&app.get(&s, &q(&format!("sort={sort}&limit=200"))).await);
            let mut walked = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut qs = format!("sort={sort}&limit=2");
                if let Some(c) = &cursor {
                    qs.push_str(&format!("&cursor={c}"));
                }
                let page = app.get(&s, &q(&qs)).await;
                assert_eq!(page.status, StatusCode::OK, "{page:?}");
                walked.extend(names(&page));
                match page.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            assert_eq!(walked, all, "{} sort={sort}", app.backend);
        }

        // The search endpoint: groups are ORed, conditions in a group ANDed.
        let r = app
            .post(
                &s,
                &s.path("leads/search"),
                json!({"filter_groups": [[{"field": "source", "op": "eq", "value": "website"}, {"field": "lead_score", "op": "gte", "value": 50}], [{"field": "country", "op": "eq", "value": "DE"}]], "sort": "last_name"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(names(&r), vec!["Müller", "Smith"]);

        // Bad list parameters are 422s naming the parameter.
        for (qs, field) in [
            ("filter[nope]=1", "filter[nope]"),
            ("filter[lead_score][gt]=abc", "filter[lead_score]"),
            ("filter[status]=bogus", "filter[status]"),
            ("filter[lead_score][between]=1", "filter[lead_score][between]"),
            ("sort=nope", "sort"),
            ("limit=500", "limit"),
            ("limit=-1", "limit"),
            ("cursor=garbage", "cursor"),
            ("fields=password", "fields"),
            ("colour=red", "colour"),
        ] {
            let r = app.get(&s, &q(qs)).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{qs}: {r:?}");
            assert!(errors_name(&r, field), "{qs}: {r:?}");
        }
        // Injection attempts are just values.
        let r = app.get(&s, &q("filter[last_name]=x'%20OR%20'1'='1&q=%25'%20OR%201=1--")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(names(&r).is_empty());
        let r = app.get(&s, &q("sort=last_name;DROP%20TABLE%20leads")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 5);
    }
}

#[tokio::test]
async fn custom_fields_validate_filter_and_sort() {
    for app in TestApp::all().await {
        let admin = app.register("owner@cf.test", "Custom Co").await;
        let rep = app.member(&admin, "rep@cf.test", "sales_rep").await;
        let r = app
            .post(
                &admin,
                &admin.path("metadata/objects/leads/fields"),
                json!({"name": "Region", "type": "enum", "options": ["north", "south"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["name"], "cf_region");
        let r = app
            .post(&admin, &admin.path("metadata/objects/leads/fields"), json!({"name": "seats", "type": "integer", "required": false}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let r = app.post(&admin, &admin.path("metadata/objects/leads/fields"), json!({"name": "seats", "type": "integer"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let r = app.post(&admin, &admin.path("metadata/objects/leads/fields"), json!({"name": "x", "type": "blob"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "type"));
        let r = app.post(&rep, &rep.path("metadata/objects/leads/fields"), json!({"name": "y", "type": "text"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        let meta = app.get(&rep, &rep.path("metadata/objects/leads")).await;
        let fields = meta.body["fields"].as_array().expect("fields");
        let region = fields.iter().find(|f| f["name"] == "cf_region").expect("custom field in metadata");
        assert_eq!(region["type"], "enum");
        assert_eq!(region["custom"], true);

        for (last, region, seats) in [("A", "north", 5), ("B", "south", 50), ("C", "north", 20)] {
            let r = app.post(&rep, &rep.path("leads"), json!({"last_name": last, "cf_region": region, "cf_seats": seats})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
            assert_eq!(r.body["cf_region"], region);
        }
        let r = app.post(&rep, &rep.path("leads"), json!({"last_name": "D", "cf_region": "east", "cf_seats": "many"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "cf_region") && errors_name(&r, "cf_seats"), "{r:?}");

        let r = app.get(&rep, &rep.path("leads?filter[cf_region]=north&sort=-cf_seats")).await;
        assert_eq!(names(&r), vec!["C", "A"]);
        let r = app.get(&rep, &rep.path("leads?filter[cf_seats][gte]=20&sort=cf_seats")).await;
        assert_eq!(names(&r), vec!["C", "B"]);
        // Cursor over a custom sort key.
        let p1 = app.get(&rep, &rep.path("leads?sort=cf_seats&limit=2")).await;
        assert_eq!(names(&p1), vec!["A", "C"]);
        let c = p1.body["next_cursor"].as_str().expect("cursor");
        let p2 = app.get(&rep, &rep.path(&format!("leads?sort=cf_seats&limit=2&cursor={c}"))).await;
        assert_eq!(names(&p2), vec!["B"]);

        let r = app.delete(&admin, &admin.path("metadata/objects/leads/fields/cf_seats")).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = app.get(&rep, &rep.path("leads?filter[cf_seats]=5")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn idempotency_keys_return_the_first_result() {
    for app in TestApp::all().await {
        let s = app.register("owner@idem.test", "Idem Co").await;
        let body = json!({"last_name": "Once"});
        let first = app.call(Method::POST, &s.path("leads"), Some(&s.token), Some(body.clone()), &[("idempotency-key", "abc-123")]).await;
        assert_eq!(first.status, StatusCode::CREATED);
        let again = app.call(Method::POST, &s.path("leads"), Some(&s.token), Some(body), &[("idempotency-key", "abc-123")]).await;
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body["id"], first.body["id"]);
        assert_eq!(again.headers.get("idempotent-replayed").and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1);
        let other = app
            .call(Method::POST, &s.path("leads"), Some(&s.token), Some(json!({"last_name": "Twice"})), &[("idempotency-key", "abc-123")])
            .await;
        assert_eq!(other.status, StatusCode::CONFLICT);
        assert_eq!(app.count("SELECT COUNT(*) FROM leads").await, 1);
    }
}

#[tokio::test]
async fn bulk_is_all_or_nothing() {
    for app in TestApp::all().await {
        let s = app.register("owner@bulk.test", "Bulk Co").await;
        let other = app.register("other@bulk.test", "Other Co").await;
        let foreign = app.post(&other, &other.path("leads"), json!({"last_name": "Foreign"})).await.body["id"].clone();
        let r = app
            .post(
                &s,
                &s.path("leads/bulk"),
                json!({"action": "create", "records": [{"last_name": "A"}, {"last_name": "B"}, {"last_name": "C"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["count"], 3);
        let created = ids(&r);
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "create", "records": [{"last_name": "D"}, {"last_name": 7}]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "records[1].last_name"), "{r:?}");
        let before = app.snapshot().await;
        let r = app
            .post(&s, &s.path("leads/bulk"), json!({"action": "update", "ids": [created[0], foreign], "changes": {"status": "contacted"}}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert_eq!(app.snapshot().await, before, "a failed bulk changes nothing");
        let r = app
            .post(
                &s,
                &s.path("leads/bulk"),
                json!({"action": "update", "ids": created, "changes": {"status": "contacted", "priority": "high"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.body["data"].as_array().expect("data").iter().all(|x| x["status"] == "contacted" && x["version"] == 2));
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "delete", "ids": created[..2]})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(ids(&app.get(&s, &s.path("leads")).await).len(), 1);
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "restore", "ids": created[..2]})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(ids(&app.get(&s, &s.path("leads")).await).len(), 3);
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "explode", "ids": []})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "delete", "ids": []})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn deals_money_stages_related_lists_timeline_and_stats() {
    for app in TestApp::all().await {
        let s = app.register("owner@deal.test", "Deal Co").await;
        let acc = app.post(&s, &s.path("accounts"), json!({"name": "Infosys"})).await.body["id"].as_str().expect("acc").to_string();
        let con = app
            .post(&s, &s.path("contacts"), json!({"account_id": acc, "first_name": "Anil", "last_name": "Kumar", "role": "champion"}))
            .await;
        assert_eq!(con.status, StatusCode::CREATED, "{con:?}");
        assert_eq!(con.body["full_name"], "Anil Kumar");
        let con = con.body["id"].as_str().expect("con").to_string();
        let d = app.post(&s, &s.path("deals"), json!({"name": "ERP rollout", "account_id": acc, "primary_contact_id": con, "value": 1500000, "currency": "INR", "stage": "proposal"})).await;
        assert_eq!(d.status, StatusCode::CREATED, "{d:?}");
        assert_eq!(d.body["value"], "1500000.00");
        assert_eq!(d.body["probability"], 50);
        assert_eq!(d.body["forecast_category"], "best_case");
        assert_eq!(d.body["status"], "open");
        let deal = d.body["id"].as_str().expect("deal").to_string();
        let usd = app
            .post(
                &s,
                &s.path("deals"),
                json!({"name": "Support", "account_id": acc, "value": "1000.50", "currency": "USD", "stage": "negotiation"}),
            )
            .await;
        assert_eq!(usd.body["value"], "1000.50");
        let r = app.post(&s, &s.path("deals"), json!({"name": "Bad", "account_id": acc, "value": "10.5", "currency": "JPY"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(errors_name(&r, "value"));
        let r = app.post(&s, &s.path("deals"), json!({"name": "Bad", "account_id": acc, "value": "-5"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

        let won = app.patch(&s, &s.path(&format!("deals/{deal}")), json!({"stage": "closed_won", "version": 1})).await;
        assert_eq!(won.body["status"], "closed_won");
        assert_eq!(won.body["probability"], 100);
        assert!(won.body["actual_close_date"].is_string());

        let act = app.post(&s, &s.path("activities"), json!({"activity_type": "call", "title": "Kick-off call", "deal_id": deal, "account_id": acc, "outcome": "positive", "duration_minutes": 30})).await;
        assert_eq!(act.status, StatusCode::CREATED, "{act:?}");
        assert_eq!(act.body["user_id"], s.user_id.as_str());
        assert!(act.body["activity_date"].is_string());
        let task = app
            .post(
                &s,
                &s.path("tasks"),
                json!({"title": "Send contract", "related_object": "deals", "related_id": deal, "due_at": "2030-01-01T10:00:00+05:30"}),
            )
            .await;
        assert_eq!(task.status, StatusCode::CREATED, "{task:?}");
        assert_eq!(task.body["due_at"], "2030-01-01T04:30:00.000000Z");
        let r = app.post(&s, &s.path("tasks"), json!({"title": "Orphan", "related_id": deal})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let t = app.get(&s, &s.path(&format!("deals/{deal}/timeline"))).await;
        assert_eq!(t.status, StatusCode::OK);
        let kinds: Vec<&str> = t.body["data"].as_array().expect("items").iter().filter_map(|i| i["kind"].as_str()).collect();
        assert!(kinds.contains(&"activity") && kinds.contains(&"task") && kinds.contains(&"change"), "{kinds:?}");
        let feed = app.get(&s, &s.path("activities/timeline")).await;
        assert_eq!(feed.status, StatusCode::OK, "{feed:?}");
        assert_eq!(feed.body["data"].as_array().expect("feed").len(), 1);

        let st = app.get(&s, &s.path("stats/deals")).await;
        let rows = st.body["by_stage"].as_array().expect("rows");
        let won = rows.iter().find(|r| r["stage"] == "closed_won").expect("won");
        assert_eq!(won["value"], "1500000.00");
        assert_eq!(won["weighted_value"], "1500000.00");
        let neg = rows.iter().find(|r| r["stage"] == "negotiation").expect("neg");
        assert_eq!(neg["currency"], "USD");
        assert_eq!(neg["weighted_value"], "750.38");
        let st = app.get(&s, &s.path("stats/activities")).await;
        assert_eq!(st.body["by_type"][0]["key"], "call");
        app.post(&s, &s.path("leads"), json!({"last_name": "L", "source": "event"})).await;
        let st = app.get(&s, &s.path("stats/leads")).await;
        assert_eq!(st.body["by_source"][0], json!({"key": "event", "count": 1}));
        assert_eq!(st.body["by_owner"][0]["key"], s.user_id.as_str());
    }
}

#[tokio::test]
async fn exports_are_filtered_neutralised_and_tenant_scoped() {
    for app in TestApp::all().await {
        let s = app.register("owner@export.test", "Export Co").await;
        let other = app.register("other@export.test", "Other Co").await;
        app.post(&other, &other.path("leads"), json!({"last_name": "NotMine"})).await;
        app.post(&s, &s.path("leads"), json!({"first_name": "=HYPERLINK(\"http://evil\")", "last_name": "Formula", "source": "website"}))
            .await;
        let r = app
            .post(&s, &s.path("leads"), json!({"last_name": "Plain, \"quoted\"", "notes": "line one\nline two", "source": "event"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = app.get(&s, &s.path("data/export?object=leads&format=csv")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r
            .headers
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|d| d.contains("attachment") && d.contains(".csv")));
        let mut reader = csv::Reader::from_reader(r.text.as_bytes());
        let headers = reader.headers().expect("headers").clone();
        assert!(headers.iter().any(|h| h == "last_name") && headers.iter().any(|h| h == "lead_score"));
        let rows: Vec<csv::StringRecord> = reader.records().map(|x| x.expect("row")).collect();
        assert_eq!(rows.len(), 2, "only this company's leads");
        let first_name = headers.iter().position(|h| h == "first_name").expect("column");
        assert!(rows.iter().any(|row| &row[first_name] == "'=HYPERLINK(\"http://evil\")"), "formula neutralised");
        let last = headers.iter().position(|h| h == "last_name").expect("column");
        let notes = headers.iter().position(|h| h == "notes").expect("column");
        assert!(rows.iter().any(|row| &row[last] == "Plain, \"quoted\"" && &row[notes] == "line one\nline two"), "quoting round-trips");
        let r = app.get(&s, &s.path("data/export?object=leads&format=csv&filter[source]=event&fields=last_name,source")).await;
        let mut reader = csv::Reader::from_reader(r.text.as_bytes());
        assert_eq!(reader.headers().expect("h").iter().collect::<Vec<_>>(), vec!["id", "last_name", "source"]);
        assert_eq!(reader.records().count(), 1);
        let r = app.get(&s, &s.path("data/export?object=leads&format=xlsx")).await;
        assert_eq!(r.status, StatusCode::OK);
        let bytes = app
            .raw(
                axum::http::Request::builder()
                    .uri(s.path("data/export?object=leads&format=xlsx"))
                    .header("authorization", format!("Bearer {}", s.token))
                    .body(axum::body::Body::empty())
                    .expect("req"),
            )
            .await;
        assert!(bytes.text.as_bytes().starts_with(b"PK"), "an xlsx (zip) file");
        for (qs, field) in [
            ("object=widgets", "object"),
            ("object=leads&format=pdf", "format"),
            ("object=leads&filter[nope]=1", "filter[nope]"),
            ("format=csv", "object"),
        ] {
            let r = app.get(&s, &s.path(&format!("data/export?{qs}"))).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{qs}");
            assert!(errors_name(&r, field), "{qs}: {r:?}");
        }
        let r = app.get(&other, &s.path("data/export?object=leads")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // Larger than one page: every row arrives once.
        let many: Vec<serde_json::Value> = (0..450).map(|i| json!({"last_name": format!("Bulk{i:03}")})).collect();
        for chunk in many.chunks(200) {
            let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "create", "records": chunk})).await;
            assert_eq!(r.status, StatusCode::OK);
        }
        let r = app.get(&s, &s.path("data/export?object=leads&fields=last_name&sort=last_name")).await;
        let mut reader = csv::Reader::from_reader(r.text.as_bytes());
        let names: Vec<String> = reader.records().map(|x| x.expect("row")[1].to_string()).collect();
        assert_eq!(names.len(), 452);
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), 452);
    }
}

/// A word shared by more records than `FEW_MATCHES` is read in list order on SQLite (not by
/// reading and sorting every match): the pages must be the same as without search, in the
/// same order, with nothing of another company, nothing deleted, and every cursor honoured.
#[tokio::test]
async fn common_search_words_page_like_lists() {
    for app in TestApp::all().await {
        let s = app.register("owner@common.test", "Common Co").await;
        let other = app.register("other@common.test", "Other Common Co").await;
        let total = corvid_store::listing::FEW_MATCHES as usize + 60;
        for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
            let records: Vec<Value> =
                chunk.iter().map(|i| json!({"first_name": format!("P{i:04}"), "last_name": "Khanna", "status": if i % 3 == 0 { "new" } else { "contacted" }})).collect();
            let r = app.post(&s, &s.path("leads/bulk"), json!({"action": "create", "records": records})).await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
        }
        let theirs: Vec<Value> = (0..300).map(|i| json!({"first_name": format!("O{i:04}"), "last_name": "Khanna"})).collect();
        let r = app.post(&other, &other.path("leads/bulk"), json!({"action": "create", "records": theirs})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        // Someone without the word, and one deleted record with it.
        app.post(&s, &s.path("leads"), json!({"last_name": "Mehta"})).await;
        let newest = app.post(&s, &s.path("leads"), json!({"last_name": "Khanna", "first_name": "Gone"})).await;
        let gone = newest.body["id"].as_str().expect("id").to_string();
        assert_eq!(app.delete(&s, &s.path(&format!("leads/{gone}"))).await.status, StatusCode::OK);

        let walk = |qs: String| {
            let (app, s) = (&app, &s);
            async move {
                let mut out = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let page = match &cursor {
                        Some(c) => format!("leads?{qs}&limit=200&cursor={c}"),
                        None => format!("leads?{qs}&limit=200"),
                    };
                    let r = app.get(s, &s.path(&page)).await;
                    assert_eq!(r.status, StatusCode::OK, "{page}: {r:?}");
                    out.extend(ids(&r));
                    match r.body["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_string()),
                        None => return out,
                    }
                }
            }
        };
        for (search, list) in [
            ("q=khanna", "filter[last_name]=Khanna"),
            ("q=khanna&sort=-updated_at", "filter[last_name]=Khanna&sort=-updated_at"),
            ("q=khanna&sort=created_at", "filter[last_name]=Khanna&sort=created_at"),
            ("q=khanna&filter[status]=new", "filter[last_name]=Khanna&filter[status]=new"),
            // A short word beside a long one (PostgreSQL checks the short one row by row).
            ("q=khanna%20p0", "filter[last_name]=Khanna&filter[first_name][contains]=P0"),
            ("q=p0", "filter[first_name][contains]=P0"),
        ] {
            let found = walk(search.to_string()).await;
            let listed = walk(list.to_string()).await;
            assert!(!found.contains(&gone), "{search}: a deleted record");
            assert_eq!(found, listed, "{search} on {}", app.backend);
        }
        assert_eq!(walk("q=khanna".into()).await.len(), total);
        // A first page alone, as a list view asks for it.
        let r = app.get(&s, &s.path("leads?q=khanna&limit=50")).await;
        let listed = app.get(&s, &s.path("leads?filter[last_name]=Khanna&limit=50")).await;
        assert_eq!(ids(&r), ids(&listed));
    }
}
