//! The generic object API: one set of handlers serves every object in the metadata.

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Member, Params};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_core::meta::ObjectDef;
use corvid_core::record::to_json;
use corvid_core::{Field, Record};
use corvid_store::audit::{self, AuditFilter};
use corvid_store::listing::{parse_sort, Condition, ListQuery};
use corvid_store::records::{BulkRequest, Idempotency};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub fn query_pairs(raw: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    let raw = raw.unwrap_or("");
    if raw.len() > 16 * 1024 {
        return Err(ApiError::bad_request("the query string is too long"));
    }
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw).map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    // No stored text holds NUL, and PostgreSQL refuses it in a query (which would be a 500).
    if let Some((k, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(ApiError::bad_field(&k.replace('\0', "").chars().take(80).collect::<String>(), "must not contain NUL characters"));
    }
    Ok(pairs)
}

fn render(object: &ObjectDef, custom: &[Field], rec: &Record, fields: Option<&[String]>) -> Value {
    to_json(object, custom, rec, fields)
}

fn with_etag(mut resp: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn page(object: &ObjectDef, custom: &[Field], records: &[Record], next: Option<String>, fields: Option<&[String]>) -> Json<Value> {
    let data: Vec<Value> = records.iter().map(|r| render(object, custom, r, fields)).collect();
    Json(json!({"data": data, "next_cursor": next}))
}

pub async fn list(State(st): State<AppState>, Member(t): Member, p: Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let object = p.object()?;
    let lq = ListQuery::from_pairs(&query_pairs(raw.as_deref())?).map_err(ApiError::Invalid)?;
    let (records, next, custom) = t.records(&st.db, object).list(&lq).await?;
    Ok(page(object, &custom, &records, next, lq.fields.as_deref()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<Vec<Condition>>,
    sort: Option<SortSpec>,
    q: Option<String>,
    fields: Option<Vec<String>>,
    cursor: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum SortSpec {
    One(String),
    Many(Vec<String>),
}

pub async fn search(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    JsonBody(body, _): JsonBody<SearchBody>,
) -> ApiResult<Response> {
    let object = p.object()?;
    let sort = match body.sort {
        None => Vec::new(),
        Some(SortSpec::One(s)) => parse_sort(&s),
        Some(SortSpec::Many(v)) => parse_sort(&v.join(",")),
    };
    let lq = ListQuery { groups: body.filter_groups, sort, q: body.q, cursor: body.cursor, limit: body.limit, fields: body.fields };
    let (records, next, custom) = t.records(&st.db, object).list(&lq).await?;
    Ok(page(object, &custom, &records, next, lq.fields.as_deref()).into_response())
}

pub async fn create(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    headers: HeaderMap,
    JsonBody(body, bytes): JsonBody<Map<String, Value>>,
) -> ApiResult<Response> {
    let object = p.object()?;
    let key = idempotency_key(&headers)?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let idem = key.as_deref().map(|k| Idempotency { key: k, request_hash: &hash });
    let records = t.records(&st.db, object);
    let custom = records.custom_fields().await?;
    let (rec, replayed) = records.create_with(custom.clone(), &body, idem).await?;
    let mut resp = (StatusCode::CREATED, Json(render(object, &custom, &rec, None))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/companies/{}/{}/{}", t.company_id, object.name, rec.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(with_etag(resp, rec.version))
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::bad_field("Idempotency-Key", "must be visible ASCII"))?.trim();
    if s.is_empty() || s.len() > 255 {
        return Err(ApiError::bad_field("Idempotency-Key", "must be 1 to 255 characters"));
    }
    Ok(Some(s.to_string()))
}

pub async fn show(State(st): State<AppState>, member: Member, p: Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let object = p.object()?;
    if object.name == "activities" && p.str("id") == "timeline" {
        return activity_feed(st, member, raw).await;
    }
    let Member(t) = member;
    let id = p.uuid("id")?;
    let pairs = query_pairs(raw.as_deref())?;
    let mut fields = None;
    for (k, v) in pairs {
        match k.as_str() {
            "fields" => fields = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>()),
            other => return Err(ApiError::invalid(other, "is not a known query parameter")),
        }
    }
    let records = t.records(&st.db, object);
    let rec = records.get(id).await?;
    if rec.deleted_at.is_some() {
        // A merged record answers with a redirect to the record it was merged into.
        if let Some(to) = corvid_store::merge::merged_into(&st.db, t.company_id, id).await? {
            return Ok(crate::api::dedupe::to_survivor(t.company_id, object, id, to));
        }
    }
    let custom = records.custom_fields().await?;
    Ok(with_etag(Json(render(object, &custom, &rec, fields.as_deref())).into_response(), rec.version))
}

/// The version a change is based on: the If-Match header or the body's `version`.
fn expected_version(headers: &HeaderMap, body: Option<&Map<String, Value>>, required: bool) -> ApiResult<Option<i64>> {
    let header = match headers.get(header::IF_MATCH) {
        Some(v) => {
            let s = v.to_str().unwrap_or("").trim().trim_start_matches("W/").trim_matches('"');
            Some(s.parse::<i64>().map_err(|_| ApiError::bad_field("If-Match", "must be the record's version, e.g. \"3\""))?)
        }
        None => None,
    };
    let in_body = match body.and_then(|b| b.get("version")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| ApiError::invalid("version", "must be a whole number"))?),
    };
    match (header, in_body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::invalid("version", "differs from the If-Match header")),
        (Some(v), _) | (None, Some(v)) => Ok(Some(v)),
        (None, None) if required => Err(ApiError::PreconditionRequired),
        (None, None) => Ok(None),
    }
}

pub async fn update(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    headers: HeaderMap,
    JsonBody(body, _): JsonBody<Map<String, Value>>,
) -> ApiResult<Response> {
    let object = p.object()?;
    let id = p.uuid("id")?;
    let version = expected_version(&headers, Some(&body), true)?.unwrap_or_default();
    let records = t.records(&st.db, object);
    let rec = records.update(id, &body, version).await?;
    let custom = records.custom_fields().await?;
    Ok(with_etag(Json(render(object, &custom, &rec, None)).into_response(), rec.version))
}

pub async fn delete(State(st): State<AppState>, Member(t): Member, p: Params, headers: HeaderMap) -> ApiResult<Response> {
    let object = p.object()?;
    let id = p.uuid("id")?;
    let version = expected_version(&headers, None, false)?;
    let records = t.records(&st.db, object);
    let rec = records.delete(id, version).await?;
    let custom = records.custom_fields().await?;
    Ok(with_etag(Json(render(object, &custom, &rec, None)).into_response(), rec.version))
}

pub async fn restore(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let object = p.object()?;
    let id = p.uuid("id")?;
    let records = t.records(&st.db, object);
    let rec = records.restore(id).await?;
    let custom = records.custom_fields().await?;
    Ok(with_etag(Json(render(object, &custom, &rec, None)).into_response(), rec.version))
}

pub async fn bulk(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    JsonBody(body, _): JsonBody<BulkRequest>,
) -> ApiResult<Response> {
    let object = p.object()?;
    let records = t.records(&st.db, object);
    let done = records.bulk(&body).await?;
    let custom = records.custom_fields().await?;
    let data: Vec<Value> = done.iter().map(|r| render(object, &custom, r, None)).collect();
    Ok(Json(json!({"data": data, "count": data.len()})).into_response())
}

fn audit_filter_from(pairs: &[(String, String)], f: &mut AuditFilter) -> ApiResult<()> {
    for (k, v) in pairs {
        match k.as_str() {
            "before" => f.before_seq = Some(v.parse().map_err(|_| ApiError::invalid("before", "must be a sequence number"))?),
            "limit" => {
                let n: usize = v.parse().map_err(|_| ApiError::invalid("limit", "must be a whole number from 1 to 200"))?;
                if n == 0 || n > 200 {
                    return Err(ApiError::invalid("limit", "must be from 1 to 200"));
                }
                f.limit = n;
            }
            "actor_id" => {
                f.actor_id = Some(
                    crate::extract::parse_uuid("actor_id", v).map_err(|_| ApiError::invalid("actor_id", "must be a valid id (UUID)"))?,
                )
            }
            "object" => f.object = Some(v.clone()),
            "record_id" => {
                f.record_id = Some(
                    crate::extract::parse_uuid("record_id", v).map_err(|_| ApiError::invalid("record_id", "must be a valid id (UUID)"))?,
                )
            }
            "action" => f.action = Some(v.clone()),
            "from" | "to" => {
                let t = corvid_core::validate::parse_timestamp(v).ok_or_else(|| ApiError::invalid(k, "must be an RFC 3339 date-time"))?;
                if k == "from" {
                    f.from = Some(t)
                } else {
                    f.to = Some(t)
                }
            }
            other => return Err(ApiError::invalid(other, "is not a known query parameter")),
        }
    }
    Ok(())
}

/// A page of audit rows as stored (`history`: one record's, its creation field by field).
fn audit_page(t: &corvid_store::Tenant, rows: Vec<corvid_store::audit::AuditRow>, limit: usize, history: bool) -> Json<Value> {
    // The cursor follows the stored rows, so rows withheld from this member do not end paging.
    let next = if rows.len() == limit { rows.last().map(|r| r.seq.to_string()) } else { None };
    let rows = if history { t.access.visible_history(rows) } else { t.access.visible_audit(rows) };
    Json(json!({"data": rows, "next_cursor": next}))
}

pub async fn history(State(st): State<AppState>, Member(t): Member, p: Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let object = p.object()?;
    let id = p.uuid("id")?;
    t.records(&st.db, object).get(id).await?;
    let mut f = AuditFilter { limit: 100, ..Default::default() };
    audit_filter_from(&query_pairs(raw.as_deref())?, &mut f)?;
    f.object = Some(object.name.clone());
    f.record_id = Some(id);
    let rows = audit::list(&st.db, t.company_id, &f).await?;
    Ok(audit_page(&t, rows, f.limit, true).into_response())
}

pub async fn company_audit(
    State(st): State<AppState>,
    crate::extract::Admin(t): crate::extract::Admin,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let mut f = AuditFilter { limit: 100, ..Default::default() };
    audit_filter_from(&query_pairs(raw.as_deref())?, &mut f)?;
    let rows = audit::list(&st.db, t.company_id, &f).await?;
    Ok(audit_page(&t, rows, f.limit, false).into_response())
}

pub async fn verify_audit(State(st): State<AppState>, crate::extract::Admin(t): crate::extract::Admin) -> ApiResult<Response> {
    Ok(Json(audit::verify(&st.db, t.company_id).await?).into_response())
}

/// Activities, tasks and field changes of one record, newest first.
pub async fn timeline(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    use corvid_store::timeline::{self, Entry};
    let object = p.object()?;
    let id = p.uuid("id")?;
    t.records(&st.db, object).get(id).await?;
    let entries = timeline::for_record(&st.db, &t, object, id, 200).await?;
    let activities = corvid_core::object("activities").ok_or(ApiError::Internal)?;
    let tasks = corvid_core::object("tasks").ok_or(ApiError::Internal)?;
    let data: Vec<Value> = entries
        .iter()
        .map(|e| match e {
            Entry::Activity(r) => json!({"kind": "activity", "at": e.at(), "record": to_json(activities, &[], r, None)}),
            Entry::Task(r) => json!({"kind": "task", "at": e.at(), "record": to_json(tasks, &[], r, None)}),
            Entry::Change(row) => json!({"kind": "change", "at": e.at(), "change": row}),
        })
        .collect();
    Ok(Json(json!({"data": data})).into_response())
}

/// The company-wide activity feed, newest first, with the list API's filters.
async fn activity_feed(st: AppState, Member(t): Member, raw: Option<String>) -> ApiResult<Response> {
    let object = corvid_core::object("activities").ok_or(ApiError::Internal)?;
    let mut lq = ListQuery::from_pairs(&query_pairs(raw.as_deref())?).map_err(ApiError::Invalid)?;
    if lq.sort.is_empty() {
        lq.sort = parse_sort("-activity_date");
    }
    let (records, next, custom) = t.records(&st.db, object).list(&lq).await?;
    Ok(page(object, &custom, &records, next, lq.fields.as_deref()).into_response())
}

/// `GET .../data/export?object=leads&format=csv|xlsx` plus any list parameters.
pub async fn export(State(st): State<AppState>, Member(t): Member, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let mut pairs = query_pairs(raw.as_deref())?;
    let take = |pairs: &mut Vec<(String, String)>, key: &str| pairs.iter().position(|(k, _)| k == key).map(|i| pairs.remove(i).1);
    let object_name = take(&mut pairs, "object").ok_or_else(|| ApiError::invalid("object", "is required (leads, accounts, ...)"))?;
    let object = corvid_core::object(&object_name).ok_or_else(|| ApiError::invalid("object", "is not a known object"))?;
    let format = crate::export::Format::parse(take(&mut pairs, "format").as_deref())?;
    let lq = ListQuery::from_pairs(&pairs).map_err(ApiError::Invalid)?;
    crate::export::export(st.db.clone(), t, object, lq, format).await
}
