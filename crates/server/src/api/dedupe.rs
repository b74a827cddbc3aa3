//! Duplicate detection through the API: the likely duplicates of a record, merging leads or contacts,
//! dismissing a pair, the company's policy, and the whole-base scan (the `dedupe.scan` job)
//! with its report of clusters.

use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_uuid, Admin, JsonBody, Member, Params};
use crate::jobs::{JobContext, JobError, JobResult};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_core::meta::ObjectDef;
use corvid_core::record::to_json;
use corvid_store::dedupe::{self, Policy};
use corvid_store::merge::{self, MergeRequest};
use corvid_store::{StoreError, Tenant};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub const SCAN_KIND: &str = dedupe::SCAN_JOB;

fn def(name: &str) -> ApiResult<&'static ObjectDef> {
    corvid_core::object(name).ok_or(ApiError::Internal)
}

async fn duplicates(st: &AppState, t: &Tenant, object: &str, id: Uuid) -> ApiResult<Response> {
    let object = def(object)?;
    let (rec, found) = dedupe::duplicates_of(&st.db, t, object, id).await?;
    let found = corvid_store::access::visible_candidates(&st.db, t, found).await?;
    let policy = dedupe::policy(&st.db, t.company_id).await?;
    Ok(Json(json!({
        "record": {"object": object.name, "id": rec.id, "number": rec.number, "title": rec.title(object)},
        "policy": policy,
        "threshold": corvid_core::matching::THRESHOLD,
        "data": found,
    }))
    .into_response())
}

/// `GET .../leads/{id}/duplicates`: likely duplicates among leads and contacts, best first.
pub async fn lead_duplicates(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    duplicates(&st, &t, "leads", p.uuid("id")?).await
}

/// `GET .../contacts/{id}/duplicates`
pub async fn contact_duplicates(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    duplicates(&st, &t, "contacts", p.uuid("id")?).await
}

/// `GET .../accounts/{id}/duplicates`
pub async fn account_duplicates(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    duplicates(&st, &t, "accounts", p.uuid("id")?).await
}

/// `POST .../leads/merge`
pub async fn merge_leads(State(st): State<AppState>, Member(t): Member, JsonBody(body, _): JsonBody<MergeRequest>) -> ApiResult<Response> {
    merge_records(&st, &t, "leads", &body).await
}

/// `POST .../contacts/merge`
pub async fn merge_contacts(
    State(st): State<AppState>,
    Member(t): Member,
    JsonBody(body, _): JsonBody<MergeRequest>,
) -> ApiResult<Response> {
    merge_records(&st, &t, "contacts", &body).await
}

async fn merge_records(st: &AppState, t: &Tenant, object: &str, body: &MergeRequest) -> ApiResult<Response> {
    let object = def(object)?;
    let out = merge::merge(&st.db, t, object, body).await?;
    let custom = t.records(&st.db, object).custom_fields().await?;
    Ok(Json(json!({
        "survivor": to_json(object, &custom, &out.survivor, None),
        "merged_ids": out.merged_ids,
        "moved": out.moved,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    other_id: String,
}

/// `POST .../leads/{id}/duplicates/dismiss`: the pair is not a duplicate.
pub async fn dismiss_lead(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    JsonBody(body, _): JsonBody<DismissBody>,
) -> ApiResult<Response> {
    let object = def("leads")?;
    let id = p.uuid("id")?;
    let other = parse_uuid("other_id", &body.other_id).map_err(|_| ApiError::invalid("other_id", "must be a valid id (UUID)"))?;
    let rec = dedupe::dismiss(&st.db, &t, object, id, other).await?;
    let custom = t.records(&st.db, object).custom_fields().await?;
    Ok(Json(json!({"dismissed": other, "record": to_json(object, &custom, &rec, None)})).into_response())
}

/// The answer to a GET of a merged record: `308 Permanent Redirect` to the survivor, with a
/// body saying so for clients that do not follow redirects.
pub fn to_survivor(company_id: Uuid, object: &ObjectDef, merged_id: Uuid, survivor_id: Uuid) -> Response {
    let location = format!("/api/v1/companies/{company_id}/{}/{survivor_id}", object.name);
    let body = json!({"id": merged_id, "merged_into_id": survivor_id, "location": location});
    let mut resp = (StatusCode::PERMANENT_REDIRECT, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn policy_json(p: Policy) -> Value {
    json!({"policy": p, "options": Policy::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>()})
}

/// `GET .../data/dedupe/policy`
pub async fn get_policy(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(policy_json(dedupe::policy(&st.db, t.company_id).await?)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    policy: String,
}

/// `PUT .../data/dedupe/policy` (Admins).
pub async fn put_policy(State(st): State<AppState>, Admin(t): Admin, JsonBody(body, _): JsonBody<PolicyBody>) -> ApiResult<Response> {
    let p = Policy::parse(body.policy.trim()).ok_or_else(|| ApiError::invalid("policy", "must be one of block, flag, allow"))?;
    dedupe::set_policy(&st.db, &t.audit, p).await?;
    Ok(Json(policy_json(p)).into_response())
}

fn scan_location(company_id: Uuid, scan_id: Uuid) -> String {
    format!("/api/v1/companies/{company_id}/data/dedupe/scans/{scan_id}")
}

/// `POST .../data/dedupe/scan` (Admins): queues a whole-base scan; while one is queued or
/// running, answers 200 with that one instead.
pub async fn start_scan(State(st): State<AppState>, Admin(t): Admin) -> ApiResult<Response> {
    let (scan, created) = dedupe::start_scan(&st.db, &t.audit).await?;
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    let mut resp = (status, Json(json!(scan))).into_response();
    if let Ok(v) = HeaderValue::from_str(&scan_location(t.company_id, scan.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET .../data/dedupe/scans`: the latest 50 scans.
pub async fn list_scans(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(json!({"data": dedupe::list_scans(&st.db, t.company_id, 50).await?})).into_response())
}

/// `GET .../data/dedupe/scans/{scan_id}`: the scan and a page of its clusters (`cursor`,
/// `limit` ≤ 200).
pub async fn show_scan(State(st): State<AppState>, Member(t): Member, p: Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let id = p.uuid("scan_id")?;
    let (mut after, mut limit) = (0i64, 50usize);
    for (k, v) in crate::api::records::query_pairs(raw.as_deref())? {
        match k.as_str() {
            "cursor" => after = v.parse().map_err(|_| ApiError::invalid("cursor", "must be a cursor from next_cursor"))?,
            "limit" => {
                limit =
                    v.parse().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| ApiError::invalid("limit", "must be from 1 to 200"))?
            }
            other => return Err(ApiError::invalid(other, "is not a known query parameter")),
        }
    }
    let scan = dedupe::get_scan(&st.db, t.company_id, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("scan"),
        other => other.into(),
    })?;
    let (clusters, next) = dedupe::clusters(&st.db, t.company_id, id, after, limit).await?;
    let mut body = json!(scan);
    body["clusters"] = json!(clusters);
    body["next_cursor"] = json!(next.map(|n| n.to_string()));
    Ok(Json(body).into_response())
}

/// The `dedupe.scan` job: runs the scan named in the payload, reporting progress on the job.
pub async fn run_scan_job(ctx: JobContext) -> JobResult {
    let company_id = ctx.company_id().ok_or_else(|| JobError::permanent("a duplicate scan needs a company"))?;
    let scan_id = ctx.payload()["scan_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::permanent("payload has no scan_id"))?;
    let db = ctx.db().clone();
    // Progress goes to the job row from a side task; a cancel (or shutdown) seen there stops
    // the scan at its next page.
    let (tx, mut rx) = tokio::sync::watch::channel((0i64, String::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let why: Arc<Mutex<Option<JobError>>> = Arc::new(Mutex::new(None));
    let reporter = {
        let (ctx, stop, why) = (ctx.clone(), stop.clone(), why.clone());
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let (done, msg) = rx.borrow().clone();
                if let Err(e) = ctx.progress(done, None, &msg).await {
                    *why.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
            }
        })
    };
    let on_progress = {
        let stop = stop.clone();
        move |done: i64, msg: &str| {
            let _ = tx.send((done, msg.to_string()));
            !stop.load(Ordering::Relaxed)
        }
    };
    let result = dedupe::run_scan(&db, company_id, scan_id, &on_progress).await;
    drop(on_progress);
    let _ = reporter.await;
    match result {
        Ok(Some(scan)) => {
            Ok(json!({"scan_id": scan.id, "clusters": scan.clusters, "blocks": scan.blocks, "pairs_compared": scan.pairs_compared}))
        }
        Ok(None) => Err(why.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().unwrap_or(JobError::Cancelled)),
        Err(StoreError::NotFound) => Err(JobError::permanent("the scan no longer exists")),
        Err(e) => {
            tracing::warn!(scan = %scan_id, error = %e, "duplicate scan failed");
            dedupe::set_scan_state(&db, company_id, scan_id, "failed", Some(&e.to_string())).await?;
            Err(e.into())
        }
    }
}
