//! Lead scoring end to end on both databases: rule sets with weights and explanations, one
//! active set, engagement increments (events and activities), score history, the decay job,
//! the predictive model (AUC on a synthetic company, fallback with little history), bad rule
//! bodies, roles and tenancy.

mod common;

use axum::http::StatusCode;
use common::*;
use corvid_core::{SqlType, Value};
use corvid_server::jobs::{Registry, Runtime};
use corvid_store::Q;
use serde_json::{json, Value as Json};
use std::time::Duration;

fn rule_set() -> Json {
    json!({
        "name": "Inbound",
        "active": true,
        "rules": [
            {"name": "India", "points": 20, "conditions": [{"field": "country", "op": "eq", "value": "in"}]},
            {"name": "Big company", "points": 20, "weight": 1.5, "conditions": [{"field": "company_size", "op": "gte", "value": 200}]},
            {"name": "Decision maker", "points": 25, "conditions": [{"field": "authority_level", "op": "eq", "value": "decision_maker"}]},
            {"name": "Opens our emails", "points": 20, "conditions": [{"engagement": "email_opened", "op": "gte", "value": 2, "within_days": 30}]},
            {"name": "Met us", "points": 10, "conditions": [{"engagement": "meeting_held", "op": "gte", "value": 1}]},
            {"name": "Student", "points": -30, "conditions": [{"field": "job_title", "op": "contains", "value": "student"}]}
        ],
        "decay": {"points_per_week": 5}
    })
}

async fn lead(app: &TestApp, s: &Session, body: Json) -> Json {
    let r = app.post(s, &s.path("leads"), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body
}

async fn card(app: &TestApp, s: &Session, id: &str) -> Json {
    let r = app.get(s, &s.path(&format!("leads/{id}/score"))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

fn rules_of(expl: &Json) -> Vec<(String, i64)> {
    expl.as_array()
        .expect("explanation")
        .iter()
        .map(|c| (c["rule"].as_str().unwrap_or("").to_string(), c["points"].as_i64().unwrap_or(0)))
        .collect()
}

/// Waits for a job to end and returns it.
async fn wait_job(app: &TestApp, s: &Session, id: &str) -> Json {
    for _ in 0..600 {
        let r = app.get(s, &s.path(&format!("jobs/{id}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        if matches!(r.body["state"].as_str(), Some("succeeded" | "failed" | "dead" | "cancelled")) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

/// Runs workers until no job is queued or running.
async fn drain(app: &TestApp) {
    let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
    for _ in 0..600 {
        if app.count("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runtime.shutdown().await;
}

async fn config_counts(app: &TestApp) -> Vec<i64> {
    let mut v = app.snapshot().await;
    for t in ["scoring_rule_sets", "assignment_rules", "lead_score_history", "lead_engagement_events", "jobs"] {
        v.push(app.count(&format!("SELECT COUNT(*) FROM {t}")).await);
    }
    v
}

#[tokio::test]
async fn rules_score_leads_with_weights_explanations_engagement_and_history() {
    for app in TestApp::all().await {
        let s = app.register("owner@score.test", "Score Co").await;
        let r = app.post(&s, &s.path("scoring/rule-sets"), rule_set()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["active"], true);
        assert_eq!(r.body["bands"], json!({"warm": 31, "hot": 51, "very_hot": 71}), "default bands");
        let set_id = r.body["id"].as_str().expect("id").to_string();

        // Fields: India 20 + big company 20 × 1.5.
        let l = lead(&app, &s, json!({"last_name": "Rao", "country": "IN", "company_size": 500})).await;
        let id = l["id"].as_str().expect("id").to_string();
        assert_eq!(l["lead_score"], 50, "{l}");
        assert_eq!(rules_of(&l["score_explanation"]), vec![("India".into(), 20), ("Big company".into(), 30)]);
        let c = card(&app, &s, &id).await;
        assert_eq!(c["band"]["label"], "Warm");
        assert_eq!(c["rule_set"]["id"], set_id.as_str());
        assert_eq!(c["history"].as_array().map(Vec::len), Some(1));
        assert_eq!(c["history"][0]["reason"], "created");

        // A change of fields rescored on update; a score sent by the caller is replaced.
        let r = app
            .patch(
                &s,
                &s.path(&format!("leads/{id}")),
                json!({"version": l["version"], "authority_level": "decision_maker", "lead_score": 3}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["lead_score"], 75);
        assert_eq!(card(&app, &s, &id).await["band"]["label"], "Very Hot");

        // Two email opens from outside: +20, with last activity set.
        for _ in 0..2 {
            let r = app.post(&s, &s.path(&format!("leads/{id}/engagement")), json!({"type": "email_opened", "source": "newsletter"})).await;
            assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        }
        let c = card(&app, &s, &id).await;
        assert_eq!(c["lead_score"], 95);
        assert_eq!(c["band"]["label"], "Very Hot");
        assert!(c["last_activity_at"].is_string(), "{c}");
        assert!(rules_of(&c["explanation"]).contains(&("Opens our emails".into(), 20)));
        assert_eq!(c["history"][0]["reason"], "engagement: email_opened");
        assert_eq!(c["history"][0]["previous_score"], 75);
        let email = c["engagement"].as_array().expect("engagement").iter().find(|e| e["kind"] == "email_opened").cloned().expect("email");
        assert_eq!((email["total"].as_i64(), email["last_30_days"].as_i64()), (Some(2), Some(2)));

        // A meeting logged as an activity: +10, clamped to 100.
        let a = app.post(&s, &s.path("activities"), json!({"activity_type": "meeting", "title": "Demo", "lead_id": id})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");
        let got = app.get(&s, &s.path(&format!("leads/{id}"))).await.body;
        assert_eq!(got["lead_score"], 100);
        assert!(got["last_activity_at"].is_string());
        let c = card(&app, &s, &id).await;
        assert_eq!(c["history"][0]["reason"], "activity logged: meeting");
        let hist: Vec<i64> = c["history"].as_array().expect("h").iter().filter_map(|h| h["score"].as_i64()).collect();
        assert_eq!(hist, vec![100, 95, 75, 50], "newest first");

        // Every change is in the audit trail, with who and why.
        let audit = app.get(&s, &s.path(&format!("leads/{id}/history"))).await;
        assert_eq!(audit.status, StatusCode::OK, "{audit:?}");
        let rows = audit.body["data"].as_array().cloned().unwrap_or_default();
        assert!(rows.iter().any(|r| r["action"] == "engagement" && r["field"] == "email_opened"), "{rows:?}");
        assert!(rows.iter().any(|r| r["field"] == "lead_score" && r["new_value"] == "100"), "{rows:?}");

        // A student from elsewhere scores nothing, never below 0.
        let l = lead(&app, &s, json!({"last_name": "Kid", "job_title": "Student"})).await;
        assert_eq!(l["lead_score"], 0);
        assert_eq!(rules_of(&l["score_explanation"]), vec![("Student".into(), -30)]);

        // Preview: what a sample would score, under the active set, writing nothing.
        let before = config_counts(&app).await;
        let p = app
            .post(
                &s,
                &s.path("scoring/preview"),
                json!({"values": {"country": "IN", "company_size": 250}, "engagement": {"email_opened": 3}}),
            )
            .await;
        assert_eq!(p.status, StatusCode::OK, "{p:?}");
        assert_eq!(p.body["score"], 70);
        assert_eq!(p.body["band"]["label"], "Hot");
        assert_eq!(rules_of(&p.body["explanation"]).len(), 3);
        let bad = app.post(&s, &s.path("scoring/preview"), json!({"values": {"country": "Narnia"}})).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(errors_name(&bad, "values.country"), "{bad:?}");
        assert_eq!(config_counts(&app).await, before);

        // Exactly one active set: activating another deactivates the first and rescores.
        let r = app
            .post(
                &s,
                &s.path("scoring/rule-sets"),
                json!({"name": "Flat", "rules": [{"name": "Everyone", "points": 10}], "bands": {"warm": 5, "hot": 8, "very_hot": 9}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        assert_eq!(r.body["active"], false);
        let flat = r.body["id"].as_str().expect("id").to_string();
        let r = app.post(&s, &s.path(&format!("scoring/rule-sets/{flat}/activate")), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let sets = app.get(&s, &s.path("scoring/rule-sets")).await.body;
        let active: Vec<&str> =
            sets["data"].as_array().expect("d").iter().filter(|x| x["active"] == true).filter_map(|x| x["name"].as_str()).collect();
        assert_eq!(active, vec!["Flat"]);
        let job = app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'scoring.rescore'").await;
        assert!(job >= 1, "activation queues a rescore");
        drain(&app).await;
        assert_eq!(app.count("SELECT COUNT(*) FROM jobs WHERE kind = 'scoring.rescore' AND state <> 'succeeded'").await, 0);
        let c = card(&app, &s, &id).await;
        assert_eq!(c["lead_score"], 10, "rescored by the new set: {c}");
        assert_eq!(c["band"]["label"], "Very Hot", "the set's own bands");
    }
}

#[tokio::test]
async fn decay_job_lowers_quiet_leads_daily() {
    for app in TestApp::all().await {
        let s = app.register("decay@score.test", "Decay Co").await;
        assert_eq!(app.post(&s, &s.path("scoring/rule-sets"), rule_set()).await.status, StatusCode::CREATED);
        let quiet = lead(&app, &s, json!({"last_name": "Quiet", "country": "IN", "company_size": 900})).await;
        let busy = lead(&app, &s, json!({"last_name": "Busy", "country": "IN", "company_size": 900})).await;
        assert_eq!(quiet["lead_score"], 50);
        let (qid, bid) = (quiet["id"].as_str().expect("id").to_string(), busy["id"].as_str().expect("id").to_string());
        // Let the rescore queued by the activation run first.
        drain(&app).await;
        // Time passes: the quiet lead was created three weeks and two days ago; the busy one
        // logged a call yesterday.
        let ago = corvid_core::value::now_micros() - chrono::Duration::days(23);
        for id in [&qid, &bid] {
            app.db
                .execute(
                    &Q::new("UPDATE leads SET created_at = $1 WHERE id = $2")
                        .bind(Value::Timestamp(ago))
                        .bind(Value::Uuid(id.parse().expect("uuid"))),
                )
                .await
                .expect("age the lead");
        }
        let yesterday = (corvid_core::value::now_micros() - chrono::Duration::days(1)).to_rfc3339();
        let a = app
            .post(&s, &s.path("activities"), json!({"activity_type": "call", "title": "Call", "lead_id": bid, "activity_date": yesterday}))
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{a:?}");

        // The daily schedule exists and its job rescores every company with an active set.
        corvid_server::jobs::install_defaults(&app.db, corvid_core::value::now_micros()).await.expect("defaults");
        let schedules = app
            .db
            .fetch(
                &Q::new("SELECT name, kind, cron FROM job_schedules WHERE company_id IS NULL ORDER BY name"),
                &[SqlType::Text, SqlType::Text, SqlType::Text],
            )
            .await
            .expect("schedules");
        let names: Vec<String> = schedules.iter().filter_map(|r| r.text(0)).collect();
        assert!(names.contains(&"scoring.rescore.daily".to_string()), "{names:?}");
        assert!(names.contains(&"scoring.predictive.weekly".to_string()), "{names:?}");
        let (job, _) = corvid_store::jobs::enqueue(
            &app.db,
            &corvid_store::jobs::NewJob::new(corvid_server::api::rules::RESCORE_KIND, json!({"reason": "daily rescore"})),
            corvid_core::value::now_micros(),
        )
        .await
        .expect("enqueue");
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let mut done = None;
        for _ in 0..600 {
            let j = corvid_store::jobs::get_any(&app.db, job.id).await.expect("job");
            if j.state.is_terminal() || j.state.as_str() == "succeeded" {
                done = Some(j);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        runtime.shutdown().await;
        let done = done.expect("the job ran");
        assert_eq!(done.state.as_str(), "succeeded", "{:?}", done.last_error);
        assert!(done.result.as_ref().is_some_and(|r| r["changed"].as_i64() >= Some(1)), "{:?}", done.result);

        let c = card(&app, &s, &qid).await;
        assert_eq!(c["lead_score"], 35, "three quiet weeks cost 15: {c}");
        let decay = rules_of(&c["explanation"]).into_iter().find(|(r, _)| r.starts_with("Inactivity decay")).expect("decay line");
        assert_eq!(decay.1, -15);
        assert_eq!(c["history"][0]["reason"], "daily rescore");
        assert_eq!(c["history"][0]["previous_score"], 50);
        assert_eq!(card(&app, &s, &bid).await["lead_score"], 50, "recent activity: no decay");
        // The system rescore is audited without an actor.
        let n = app
            .count(&format!("SELECT COUNT(*) FROM audit_log WHERE record_id = '{qid}' AND field = 'lead_score' AND actor_id IS NULL"))
            .await;
        assert_eq!(n, 1);
    }
}

/// A company's leads: good ones (referral, senior, big, engaged budget) mostly convert, poor
/// ones mostly do not; one in six goes against the pattern.
fn synthetic(i: usize) -> Json {
    let good = i.is_multiple_of(2);
    let converted = if i % 6 == 5 { !good } else { good };
    let status = if converted {
        "converted"
    } else if i.is_multiple_of(3) {
        "unqualified"
    } else {
        "disqualified"
    };
    if good {
        json!({"last_name": format!("Good{i}"), "status": status, "source": "referral", "job_title": "Director of IT", "company_size": 300 + i, "email": format!("g{i}@corp.example"), "bant_budget_score": 8})
    } else {
        json!({"last_name": format!("Poor{i}"), "status": status, "source": "paid_ads", "job_title": "Student", "company_size": 3, "bant_budget_score": 2})
    }
}

/// Creates labelled leads in bulk. Only a conversion marks a lead converted, so the history's
/// converted leads are created qualified and marked in the database afterwards.
async fn create_history(app: &TestApp, s: &Session, records: Vec<Json>) -> Resp {
    let converted: Vec<bool> = records.iter().map(|r| r["status"] == "converted").collect();
    let records: Vec<Json> = records
        .into_iter()
        .map(|mut r| {
            if r["status"] == "converted" {
                r["status"] = json!("qualified");
            }
            r
        })
        .collect();
    let r = app.post(s, &s.path("leads/bulk"), json!({"action": "create", "records": records})).await;
    let ids: Vec<String> = r.body["data"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str().map(str::to_string)).collect();
    for (id, _) in ids.iter().zip(&converted).filter(|(_, c)| **c) {
        let id = uuid::Uuid::parse_str(id).expect("uuid");
        app.db.execute(&Q::new("UPDATE leads SET status = 'converted' WHERE id = $1").bind(Value::Uuid(id))).await.expect("mark converted");
    }
    r
}

async fn train(app: &TestApp, s: &Session) -> (Json, Json) {
    let r = app.post(s, &s.path("scoring/predictive/train"), json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    let job = wait_job(app, s, r.body["job"]["id"].as_str().expect("job id")).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    (r.body, app.get(s, &s.path("scoring/predictive")).await.body)
}

#[tokio::test]
async fn predictive_model_reports_auc_and_falls_back_with_little_history() {
    for app in TestApp::all().await {
        let s = app.register("ml@score.test", "Model Co").await;
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let st = app.get(&s, &s.path("scoring/predictive")).await;
        assert_eq!(st.status, StatusCode::OK, "{st:?}");
        assert_eq!(st.body["status"], "not_trained");
        assert_eq!(st.body["using"], "rules");

        // 60 labelled leads: 40 converted, 20 lost: too few lost ones.
        let few: Vec<Json> = (0..60).map(synthetic).collect();
        let r = create_history(&app, &s, few).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let (started, status) = train(&app, &s).await;
        assert_eq!(started["fallback"], true, "{started}");
        assert!(started["message"].as_str().is_some_and(|m| m.contains("at least 50")), "{started}");
        assert_eq!(status["status"], "fallback", "{status}");
        assert_eq!(status["using"], "rules");
        assert_eq!((status["positives"].as_i64(), status["negatives"].as_i64()), (Some(40), Some(20)));
        assert!(status["message"].as_str().is_some_and(|m| m.contains("scored by rules")), "{status}");
        let one = r.body["data"][0]["id"].as_str().expect("id").to_string();
        let c = card(&app, &s, &one).await;
        assert_eq!(c["predictive"]["using"], "rules");
        assert!(c["predictive"]["score"].is_null());

        // 300 more: enough of both; AUC on the held-out fifth.
        let more: Vec<Json> = (60..360).map(synthetic).collect();
        let r = create_history(&app, &s, more).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let (started, status) = train(&app, &s).await;
        assert_eq!(started["fallback"], false, "{started}");
        assert_eq!(status["status"], "trained", "{status}");
        assert_eq!(status["using"], "predictive");
        let auc = status["auc"].as_f64().expect("auc");
        assert!(auc > 0.7 && auc <= 1.0, "auc {auc}");
        assert_eq!(status["train_count"].as_i64().unwrap_or(0) + status["test_count"].as_i64().unwrap_or(0), 360);
        assert_eq!(status["test_count"], 72, "a fifth of each class is held out");
        assert!(status["top_features"].as_array().is_some_and(|f| !f.is_empty()));
        assert!(status["trained_at"].is_string());

        // New leads get a predictive score on create, explained by their features.
        let good =
            lead(&app, &s, json!({"last_name": "Hopeful", "source": "referral", "job_title": "Director", "company_size": 400})).await;
        let poor = lead(&app, &s, json!({"last_name": "Unlikely", "source": "paid_ads", "job_title": "Student", "company_size": 2})).await;
        let (g, p) = (good["predictive_score"].as_i64().expect("score"), poor["predictive_score"].as_i64().expect("score"));
        assert!(g > 60 && p < 40 && g > p, "good {g}, poor {p}");
        let c = card(&app, &s, good["id"].as_str().expect("id")).await;
        assert_eq!(c["predictive"]["using"], "predictive");
        let top = c["predictive"]["top_features"].as_array().cloned().unwrap_or_default();
        assert!(!top.is_empty() && top.len() <= 5, "{top:?}");
        assert!(top.iter().any(|f| f["label"].as_str().is_some_and(|l| l.contains("referral") || l.contains("director"))), "{top:?}");
        // Existing leads were rescored when the model was trained.
        assert!(app.get(&s, &s.path(&format!("leads/{one}"))).await.body["predictive_score"].is_i64());
        // Training is audited.
        assert!(app.count("SELECT COUNT(*) FROM audit_log WHERE object = 'predictive_model' AND action = 'train'").await >= 2);
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn bad_rule_bodies_are_422_naming_the_field_and_change_nothing() {
    for app in TestApp::all().await {
        let s = app.register("bad@score.test", "Bad Co").await;
        let ok = app
            .post(&s, &s.path("scoring/rule-sets"), json!({"name": "Lead-Qualität ✓ 🚀", "rules": [{"name": "Ünïcode", "points": 5}]}))
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "unicode is fine: {ok:?}");
        let set = ok.body["id"].as_str().expect("id").to_string();
        let lead_id = lead(&app, &s, json!({"last_name": "X"})).await["id"].as_str().expect("id").to_string();
        let before = config_counts(&app).await;
        let rule = |c: Json| json!({"name": "R", "rules": [{"name": "r", "points": 1, "conditions": [c]}]});
        let cases: Vec<(Json, &str)> = vec![
            (rule(json!({"field": "country", "op": "bogus", "value": "IN"})), "rules[0].conditions[0].op"),
            (rule(json!({"field": "no_such_field", "op": "eq", "value": "IN"})), "rules[0].conditions[0].field"),
            (rule(json!({"field": "lead_score", "op": "gt", "value": 3})), "rules[0].conditions[0].field"),
            (rule(json!({"field": "country", "op": "in", "value": "IN"})), "rules[0].conditions[0].value"),
            (rule(json!({"field": "country", "op": "eq"})), "rules[0].conditions[0].value"),
            (rule(json!({"engagement": "email_opened", "op": "contains", "value": 1})), "rules[0].conditions[0].op"),
            (rule(json!({"engagement": "telepathy", "op": "gte", "value": 1})), "rules[0].conditions[0].engagement"),
            (rule(json!({"field": "country", "op": "eq", "value": "x".repeat(300)})), "rules[0].conditions[0].value"),
            (json!({"name": "R", "rules": [{"name": "r", "points": 500}]}), "rules[0].points"),
            (json!({"name": "R", "rules": [{"name": "r", "points": "ten"}]}), "rules[0].points"),
            (json!({"name": "R", "rules": [{"name": "r", "points": 1, "weight": -2}]}), "rules[0].weight"),
            (json!({"name": "R", "rules": [{"points": 1}]}), "name"),
            (json!({"name": "R", "bands": {"warm": 60, "hot": 50, "very_hot": 90}}), "bands.hot"),
            (json!({"name": "R", "decay": {"points_per_week": -3}}), "decay.points_per_week"),
            (json!({"name": "", "rules": []}), "name"),
            (json!({"name": "n".repeat(1000)}), "name"),
            (json!({"name": "R", "object": "deals"}), "object"),
            (json!({"name": "R", "surprise": true}), "surprise"),
        ];
        for (body, field) in cases {
            let r = app.post(&s, &s.path("scoring/rule-sets"), body.clone()).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {r:?}");
            assert!(is_problem(&r), "{r:?}");
            assert!(errors_name(&r, field) || r.text.contains(field), "{field} not named for {body}: {r:?}");
        }
        // The same checks on PATCH; a taken name is a conflict; a stale version is 412.
        let r = app
            .patch(
                &s,
                &s.path(&format!("scoring/rule-sets/{set}")),
                json!({"rules": [{"name": "r", "points": 1, "conditions": [{"field": "country", "op": "gte"}]}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(errors_name(&r, "rules[0].conditions[0].value"), "{r:?}");
        let r = app.post(&s, &s.path("scoring/rule-sets"), json!({"name": "Lead-Qualität ✓ 🚀"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        let r = app.patch(&s, &s.path(&format!("scoring/rule-sets/{set}")), json!({"name": "New", "version": 99})).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{r:?}");
        // Engagement events: the type is named; a future time is refused.
        let e = app.post(&s, &s.path(&format!("leads/{lead_id}/engagement")), json!({"type": "carrier_pigeon"})).await;
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{e:?}");
        assert!(errors_name(&e, "type"), "{e:?}");
        let e = app
            .post(
                &s,
                &s.path(&format!("leads/{lead_id}/engagement")),
                json!({"type": "email_opened", "occurred_at": "2999-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{e:?}");
        assert!(errors_name(&e, "occurred_at"), "{e:?}");
        let e = app.post(&s, &s.path(&format!("leads/{lead_id}/engagement")), json!({"type": "activity_logged"})).await;
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{e:?}");
        let e = app.post(&s, &s.path("leads/not-a-uuid/engagement"), json!({"type": "email_opened"})).await;
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{e:?}");
        assert_eq!(config_counts(&app).await, before, "nothing changed");
    }
}

#[tokio::test]
async fn roles_and_tenancy() {
    for app in TestApp::all().await {
        let admin = app.register("admin@roles.test", "Roles Co").await;
        let rep = app.member(&admin, "rep@roles.test", "sales_rep").await;
        let viewer = app.member(&admin, "viewer@roles.test", "read_only").await;
        let other = app.register("admin@other.test", "Other Co").await;
        let r = app.post(&admin, &admin.path("scoring/rule-sets"), rule_set()).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let set = r.body["id"].as_str().expect("id").to_string();
        // Owned by the rep, so both the rep (own) and Read Only (all) may read it.
        let lead_id = lead(&app, &admin, json!({"last_name": "Shared", "country": "IN", "owner_id": rep.user_id})).await["id"]
            .as_str()
            .expect("id")
            .to_string();
        let before = config_counts(&app).await;
        for who in [&rep, &viewer] {
            let r = app.post(who, &who.path("scoring/rule-sets"), json!({"name": "Mine"})).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
            assert!(is_problem(&r));
            assert_eq!(
                app.patch(who, &who.path(&format!("scoring/rule-sets/{set}")), json!({"name": "Mine"})).await.status,
                StatusCode::FORBIDDEN
            );
            assert_eq!(app.delete(who, &who.path(&format!("scoring/rule-sets/{set}"))).await.status, StatusCode::FORBIDDEN);
            assert_eq!(
                app.post(who, &who.path(&format!("scoring/rule-sets/{set}/activate")), json!({})).await.status,
                StatusCode::FORBIDDEN
            );
            assert_eq!(app.post(who, &who.path("scoring/predictive/train"), json!({})).await.status, StatusCode::FORBIDDEN);
            assert_eq!(app.post(who, &who.path("scoring/rescore"), json!({})).await.status, StatusCode::FORBIDDEN);
            // Reading and previews are for every member.
            assert_eq!(app.get(who, &who.path("scoring/rule-sets")).await.status, StatusCode::OK);
            assert_eq!(app.get(who, &who.path(&format!("leads/{lead_id}/score"))).await.status, StatusCode::OK);
            assert_eq!(app.post(who, &who.path("scoring/preview"), json!({"values": {"country": "IN"}})).await.status, StatusCode::OK);
        }
        // Read Only cannot report engagement; a Sales Rep can.
        assert_eq!(
            app.post(&viewer, &viewer.path(&format!("leads/{lead_id}/engagement")), json!({"type": "email_opened"})).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(config_counts(&app).await, before, "refused requests changed nothing");
        assert_eq!(
            app.post(&rep, &rep.path(&format!("leads/{lead_id}/engagement")), json!({"type": "form_submitted"})).await.status,
            StatusCode::CREATED
        );

        // Another company sees none of it.
        let before = config_counts(&app).await;
        assert_eq!(app.get(&other, &other.path(&format!("scoring/rule-sets/{set}"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.patch(&other, &other.path(&format!("scoring/rule-sets/{set}")), json!({"name": "Stolen"})).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.delete(&other, &other.path(&format!("scoring/rule-sets/{set}"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.post(&other, &other.path(&format!("scoring/rule-sets/{set}/activate")), json!({})).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(app.get(&other, &other.path(&format!("leads/{lead_id}/score"))).await.status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.post(&other, &other.path(&format!("leads/{lead_id}/engagement")), json!({"type": "email_opened"})).await.status,
            StatusCode::NOT_FOUND
        );
        let p = app.post(&other, &other.path("scoring/preview"), json!({"rule_set_id": set})).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{p:?}");
        assert!(errors_name(&p, "rule_set_id"));
        assert_eq!(app.get(&other, &other.path("scoring/rule-sets")).await.body["data"], json!([]));
        // Non-members get 404 for the company itself.
        assert_eq!(app.get(&other, &admin.path("scoring/rule-sets")).await.status, StatusCode::NOT_FOUND);
        assert_eq!(config_counts(&app).await, before);
    }
}

#[tokio::test]
async fn routes_are_documented() {
    let app = TestApp::sqlite().await;
    let doc = app.call(axum::http::Method::GET, "/api/openapi.json", None, None, &[]).await.body;
    let c = "/api/v1/companies/{company_id}";
    for (path, method) in [
        ("scoring/rule-sets", "post"),
        ("scoring/rule-sets/{rule_set_id}", "patch"),
        ("scoring/rule-sets/{rule_set_id}/activate", "post"),
        ("scoring/preview", "post"),
        ("scoring/predictive", "get"),
        ("scoring/predictive/train", "post"),
        ("leads/{id}/score", "get"),
        ("leads/{id}/engagement", "post"),
        ("assignment/rules", "post"),
        ("assignment/rules/{rule_id}", "delete"),
        ("assignment/rules/reorder", "post"),
        ("assignment/preview", "post"),
    ] {
        assert!(doc["paths"][format!("{c}/{path}")][method].is_object(), "{method} {path} undocumented");
    }
}

#[tokio::test]
async fn settings_scoring_page_edits_rules_previews_and_the_lead_panel_explains() {
    for app in TestApp::all().await {
        let s = app.register("web@score.test", "Web Score Co").await;
        let rep = app.member(&s, "rep@score.test", "sales_rep").await;
        let b = app.web_sign_in(&s.email).await;
        let base = format!("/app/{}/settings/scoring", s.company_id);
        let page = app.web_get(&b, &base, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        assert!(page.text.contains("Scoring rule sets") && page.text.contains("No rule sets yet"));

        // Create an active set, then add a rule through the form.
        let r = app.web_post(&b, &base, &[("action", "create_set"), ("name", "Web set"), ("active", "1")], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let set = app.get(&s, &s.path("scoring/rule-sets")).await.body["data"][0].clone();
        assert_eq!(set["active"], true);
        let (sid, version) = (set["id"].as_str().expect("id").to_string(), set["version"].to_string());
        let rule = |name: &'static str, points: &'static str, op: &'static str, value: &'static str| {
            vec![
                ("action", "add_rule"),
                ("name", name),
                ("points", points),
                ("weight", "1"),
                ("c0_subject", "field:country"),
                ("c0_op", op),
                ("c0_value", value),
            ]
        };
        let mut f = rule("India", "30", "eq", "IN");
        f.extend([("set_id", sid.as_str()), ("version", version.as_str())]);
        let r = app.web_post(&b, &base, &f, true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        let set = app.get(&s, &s.path(&format!("scoring/rule-sets/{sid}"))).await.body;
        assert_eq!(
            set["rules"][0],
            json!({"name": "India", "points": 30, "conditions": [{"field": "country", "op": "eq", "value": "IN"}]})
        );
        let version = set["version"].to_string();

        // Bad input: a visible message, the typed values kept, nothing saved.
        let mut f = rule("Oops", "lots", "eq", "IN");
        f.extend([("set_id", sid.as_str()), ("version", version.as_str())]);
        let r = app.web_post(&b, &base, &f, true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("Points must be a whole number") && r.text.contains("value=\"Oops\""), "{}", r.text);
        let mut f = rule("Empty list", "5", "in", " , ");
        f.extend([("set_id", sid.as_str()), ("version", version.as_str())]);
        let r = app.web_post(&b, &base, &f, true).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
        assert!(r.text.contains("Rule 2, condition 1, value: must list 1 to 200 values"), "{}", r.text);
        assert_eq!(app.get(&s, &s.path(&format!("scoring/rule-sets/{sid}"))).await.body["rules"].as_array().map(Vec::len), Some(1));

        // Preview on the page.
        let r = app.web_post(&b, &base, &[("action", "preview"), ("p_country", "in"), ("p_e_email_opened", "2")], true).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert!(r.text.contains("data-testid=\"preview-score\">30 · Cold"), "{}", r.text);
        assert!(r.text.contains("No assignment rule matches"), "{}", r.text);
        let r = app.web_post(&b, &base, &[("action", "preview"), ("p_country", "Atlantis")], true).await;
        assert!(r.text.contains("data-testid=\"preview-error\"") && r.text.contains("country"), "{}", r.text);

        // The lead page loads a score panel with the badge, the reasons and the history.
        let l = lead(&app, &s, json!({"last_name": "Panel", "country": "IN"})).await;
        let id = l["id"].as_str().expect("id");
        let show = app.web_get(&b, &format!("/app/{}/leads/{id}", s.company_id), &[]).await;
        assert!(show.text.contains(&format!("hx-get=\"/app/{}/leads/{id}/score\"", s.company_id)), "the page loads the panel");
        let panel = app.web_get(&b, &format!("/app/{}/leads/{id}/score", s.company_id), &[("hx-request", "true")]).await;
        assert_eq!(panel.status, StatusCode::OK, "{panel:?}");
        assert!(panel.text.contains("data-testid=\"score-badge\">30 · Cold"), "{}", panel.text);
        assert!(panel.text.contains("<td>India</td><td>+30</td>"), "{}", panel.text);
        assert!(panel.text.contains("score-history") && panel.text.contains("created"), "{}", panel.text);
        let other = app.register("x@other-web.test", "Other Web").await;
        let ob = app.web_sign_in(&other.email).await;
        assert_eq!(app.web_get(&ob, &format!("/app/{}/leads/{id}/score", other.company_id), &[]).await.status, StatusCode::NOT_FOUND);

        // Reorder, deactivate; only Admins; forms need the CSRF token.
        let set = app.get(&s, &s.path(&format!("scoring/rule-sets/{sid}"))).await.body;
        let r = app.web_post(&b, &base, &[("action", "deactivate"), ("set_id", sid.as_str())], true).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
        assert_eq!(app.get(&s, &s.path(&format!("scoring/rule-sets/{sid}"))).await.body["active"], false);
        assert_eq!(app.web_post(&b, &base, &[("action", "activate"), ("set_id", sid.as_str())], false).await.status, StatusCode::FORBIDDEN);
        let rb = app.web_sign_in(&rep.email).await;
        assert_eq!(app.web_get(&rb, &base, &[]).await.status, StatusCode::FORBIDDEN);
        assert_eq!(app.web_post(&rb, &base, &[("action", "activate"), ("set_id", sid.as_str())], true).await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            app.get(&s, &s.path(&format!("scoring/rule-sets/{sid}"))).await.body["version"],
            set["version"].as_i64().unwrap_or(0) + 1
        );
        let r =
            app.web_post(&b, &base, &[("action", "delete_rule"), ("set_id", sid.as_str()), ("index", "0"), ("version", "1")], true).await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "a stale form is refused: {r:?}");
        assert!(r.text.contains("Reload the page"));
    }
}
