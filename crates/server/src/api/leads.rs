//! The lead journey's workflow routes: qualification (BANT, MEDDICC, outcome), the risk
//! score, conversion eligibility rules, and account-first conversion with suggestions of
//! existing accounts and contacts. The work is done in `corvid_store::{qualification,
//! convert}`; these handlers parse, authorise and render.

use crate::api::records::query_pairs;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, JsonBody, Member, Params};
use crate::jobs::{JobContext, JobError, JobResult};
use crate::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_core::record::to_json;
use corvid_core::value::{format_timestamp, now_micros};
use corvid_core::Record;
use corvid_store::convert::{self, Conversion, ConvertRequest, OrgHint};
use corvid_store::qualification::{self as qual, AutoConversion, ConversionRules, QualifyRequest};
use corvid_store::records::Idempotency;
use corvid_store::{Db, StoreError, Tenant};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The job that returns recycled leads to nurturing on their date.
pub const RECYCLE_KIND: &str = "leads.recycle";
/// Its system schedule: daily, shortly after midnight UTC.
pub const RECYCLE_SCHEDULE: &str = "leads.recycle.daily";
pub const RECYCLE_CRON: &str = "15 0 * * *";

/// Reads a JSON body into `T`, naming the failing field; unknown keys are named too
/// (`deal.surprise`), not just their parent.
pub fn shaped<T: serde::de::DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        // The path of an unknown key already ends with it; of a missing one, at its parent.
        let named = |name: &str| {
            if path == "." {
                name.to_string()
            } else if path == name || path.ends_with(&format!(".{name}")) {
                path.clone()
            } else {
                format!("{path}.{name}")
            }
        };
        let field = if let Some(rest) = msg.strip_prefix("missing field `") {
            named(rest.split('`').next().unwrap_or(""))
        } else if let Some(rest) = msg.strip_prefix("unknown field `") {
            named(&rest.split('`').next().unwrap_or("").chars().take(64).collect::<String>())
        } else if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::Invalid(vec![corvid_core::FieldError::new(field, msg)])
    })
}

fn object(name: &str) -> ApiResult<&'static corvid_core::meta::ObjectDef> {
    corvid_core::object(name).ok_or(ApiError::Internal)
}

fn lead_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("lead"),
        other => other.into(),
    }
}

/// A record as the generic API renders it (with the company's custom fields).
async fn record_json(db: &Db, t: &Tenant, name: &str, rec: &Record) -> ApiResult<Value> {
    let def = object(name)?;
    let custom = t.records(db, def).custom_fields().await?;
    Ok(to_json(def, &custom, rec, None))
}

async fn opt_json(db: &Db, t: &Tenant, name: &str, rec: Option<&Record>) -> ApiResult<Value> {
    match rec {
        Some(r) => record_json(db, t, name, r).await,
        None => Ok(Value::Null),
    }
}

/// The body of a conversion, the same for the first call and every repeat.
pub async fn conversion_json(db: &Db, t: &Tenant, c: &Conversion) -> ApiResult<Value> {
    Ok(json!({
        "lead": record_json(db, t, "leads", &c.lead).await?,
        "account": record_json(db, t, "accounts", &c.account).await?,
        "contact": record_json(db, t, "contacts", &c.contact).await?,
        "deal": opt_json(db, t, "deals", c.deal.as_ref()).await?,
        "activity": opt_json(db, t, "activities", c.activity.as_ref()).await?,
        "links": {
            "lead_id": c.lead.id,
            "account_id": c.account.id,
            "contact_id": c.contact.id,
            "deal_id": c.deal.as_ref().map(|d| d.id),
            "activity_id": c.activity.as_ref().map(|a| a.id),
        },
        "created": {
            "account": c.account_created,
            "contact": c.contact_created,
            "deal": c.deal.is_some(),
            "activity": c.activity.is_some(),
        },
        "override_used": c.overridden,
        "automatic": c.automatic,
        "converted_at": format_timestamp(&c.converted_at),
        "converted_by": c.converted_by,
    }))
}

/// `GET .../leads/{id}/qualification`.
pub async fn qualification(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let id = p.uuid("id")?;
    let q = qual::qualification(&st.db, &t, id).await.map_err(lead_not_found)?;
    Ok(Json(q).into_response())
}

/// `POST .../leads/{id}/qualify`.
pub async fn qualify(State(st): State<AppState>, Member(t): Member, p: Params, JsonBody(body, _): JsonBody<Value>) -> ApiResult<Response> {
    let id = p.uuid("id")?;
    let body: QualifyRequest = shaped(body)?;
    let today = qual::company_today(&st.db, t.company_id, now_micros()).await?;
    let decision = body.into_decision(today).map_err(ApiError::Invalid)?;
    let done = qual::qualify(&st.db, &t, id, &decision).await.map_err(lead_not_found)?;
    let auto = match &done.auto {
        AutoConversion::NotAttempted => json!({"attempted": false}),
        AutoConversion::Converted(c) => json!({"attempted": true, "converted": true, "conversion": conversion_json(&st.db, &t, c).await?}),
        AutoConversion::Skipped(reason) => json!({"attempted": true, "converted": false, "reason": reason}),
    };
    let q = qual::qualification(&st.db, &t, id).await.map_err(lead_not_found)?;
    Ok(Json(json!({
        "lead": record_json(&st.db, &t, "leads", &done.lead).await?,
        "qualification": q,
        "auto_conversion": auto,
    }))
    .into_response())
}

/// `GET .../leads/{id}/risk-score?inactive_days=14`.
pub async fn risk_score(State(st): State<AppState>, Member(t): Member, p: Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let id = p.uuid("id")?;
    let mut days = qual::DEFAULT_INACTIVE_DAYS;
    for (k, v) in query_pairs(raw.as_deref())? {
        match k.as_str() {
            "inactive_days" => {
                days = v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|d| (1..=365).contains(d))
                    .ok_or_else(|| ApiError::invalid("inactive_days", "must be a whole number of days from 1 to 365"))?;
            }
            other => return Err(ApiError::invalid(&other.chars().take(64).collect::<String>(), "is not a known query parameter")),
        }
    }
    let risk = qual::risk_score(&st.db, &t, id, days, now_micros()).await.map_err(lead_not_found)?;
    Ok(Json(risk).into_response())
}

/// `GET .../data/conversion/rules`.
pub async fn get_rules(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(qual::rules(&st.db, t.company_id).await?).into_response())
}

/// `PUT .../data/conversion/rules` (Admins): the whole rule set; omitted keys take defaults.
pub async fn put_rules(State(st): State<AppState>, Admin(t): Admin, JsonBody(body, _): JsonBody<Value>) -> ApiResult<Response> {
    let body: ConversionRules = shaped(body)?;
    Ok(Json(qual::set_rules(&st.db, &t.audit, &body).await?).into_response())
}

/// `GET .../leads/{id}/convert?name=&website=&gstin=`: what a conversion would do: existing
/// accounts and contacts that match, the prefilled new account and contact, and the
/// eligibility checklist. Query values refine the lead's organisation for matching.
pub async fn preview(State(st): State<AppState>, Member(t): Member, p: Params, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let id = p.uuid("id")?;
    let mut hint = OrgHint::default();
    for (k, v) in query_pairs(raw.as_deref())? {
        if v.chars().count() > 255 {
            return Err(ApiError::invalid(&k, "must be at most 255 characters"));
        }
        let v = Some(v.trim().to_string()).filter(|s| !s.is_empty());
        match k.as_str() {
            "name" => hint.name = v,
            "website" => hint.website = v,
            "gstin" => hint.gstin = v,
            other => return Err(ApiError::invalid(&other.chars().take(64).collect::<String>(), "is not a known query parameter")),
        }
    }
    let (lead, s) = convert::suggestions(&st.db, &t, id, &hint).await.map_err(lead_not_found)?;
    let rules = qual::rules(&st.db, t.company_id).await?;
    let eligibility = qual::eligibility(&lead, &rules);
    Ok(Json(json!({
        "lead": record_json(&st.db, &t, "leads", &lead).await?,
        "converted": lead.text("status") == Some("converted"),
        "eligibility": eligibility,
        "can_override": convert::may_override(t.role),
        "suggestions": s,
    }))
    .into_response())
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::bad_field("Idempotency-Key", "must be visible ASCII"))?.trim();
    if s.is_empty() || s.len() > 255 {
        return Err(ApiError::bad_field("Idempotency-Key", "must be 1 to 255 characters"));
    }
    Ok(Some(s.to_string()))
}

/// `POST .../leads/{id}/convert`: 201 with what was created and linked; a repeat answers 200
/// with the same body (and `Idempotent-Replayed: true`) and creates nothing.
pub async fn convert(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    headers: HeaderMap,
    JsonBody(body, bytes): JsonBody<Value>,
) -> ApiResult<Response> {
    let id = p.uuid("id")?;
    let body: ConvertRequest = shaped(body)?;
    let key = idempotency_key(&headers)?;
    let hash = hex::encode(Sha256::digest(&bytes));
    let idem = key.as_deref().map(|k| Idempotency { key: k, request_hash: &hash });
    let c = convert::convert(&st.db, &t, id, &body, idem).await?;
    let status = if c.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let mut resp = (status, Json(conversion_json(&st.db, &t, &c).await?)).into_response();
    if c.replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// The `leads.recycle` job: every company's recycled leads whose date has come go back to
/// nurturing. Idempotent: a lead already moved is no longer `recycled`.
pub async fn recycle_job(ctx: JobContext) -> JobResult {
    ctx.progress(0, None, "returning recycled leads to nurturing").await?;
    let report = qual::recycle_due(ctx.db(), now_micros(), &format!("job:{}", ctx.job().id)).await?;
    ctx.progress(report.moved as i64, Some(report.moved as i64), &format!("{} leads back to nurturing", report.moved)).await?;
    serde_json::to_value(report).map_err(|e| JobError::permanent(e.to_string()))
}
