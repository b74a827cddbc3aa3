//! Consent, data-subject rights and data quality: the consent log and consent decisions of
//! leads and contacts, a person's data export and erasure, the consent policy, the data
//! quality report and the list of governance policies. The work is done in
//! `corvid_store::{privacy, quality}`; these handlers parse, authorise and render.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, JsonBody, Member, Params};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_core::meta::ObjectDef;
use corvid_core::record::to_json;
use corvid_store::privacy::{self, ConsentInput, ConsentPolicy};
use corvid_store::{quality, StoreError};
use serde_json::json;

/// The person object of a route: `leads` or `contacts`; other objects have no consent or
/// data-subject routes (404 naming what exists).
fn person(name: &str) -> ApiResult<&'static ObjectDef> {
    match corvid_core::object(name) {
        Some(o) if privacy::PERSON_OBJECTS.contains(&name) => Ok(o),
        _ => Err(ApiError::NotFound(format!(
            "personal data is kept for {}; \"{}\" is not one of them",
            privacy::PERSON_OBJECTS.join(" and "),
            name.chars().take(40).collect::<String>()
        ))),
    }
}

fn not_found_as(object: &ObjectDef) -> impl Fn(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(&object.singular),
        other => other.into(),
    }
}

/// `GET .../{leads|contacts}/{id}/consent`: the person's consent log, oldest first.
pub async fn consent_log(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let object = person(p.str("object"))?;
    let id = p.uuid("id")?;
    let (rec, entries) = privacy::consent_log(&st.db, &t, object, id).await.map_err(not_found_as(object))?;
    Ok(Json(json!({
        "record": {"object": object.name, "id": rec.id, "number": rec.number},
        "consent": {
            "given": rec.get("gdpr_consent") == Some(&corvid_core::Value::Bool(true)),
            "at": rec.get("gdpr_consent_at").and_then(|v| v.audit_text()),
            "source": rec.text("gdpr_consent_source"),
            "text_version": rec.text("gdpr_consent_version"),
            "opt_in_date": rec.get("opt_in_date").and_then(|v| v.audit_text()),
            "dnd": rec.get("dnd_status") == Some(&corvid_core::Value::Bool(true)),
        },
        "data": entries,
    }))
    .into_response())
}

/// `POST .../{leads|contacts}/{id}/consent`: records a consent decision.
pub async fn record_consent(
    State(st): State<AppState>,
    Member(t): Member,
    p: Params,
    JsonBody(body, _): JsonBody<ConsentInput>,
) -> ApiResult<Response> {
    let object = person(p.str("object"))?;
    let id = p.uuid("id")?;
    let (rec, entry) = privacy::record_consent(&st.db, &t, object, id, &body).await.map_err(not_found_as(object))?;
    let custom = t.records(&st.db, object).custom_fields().await?;
    Ok((StatusCode::CREATED, Json(json!({"entry": entry, "record": to_json(object, &custom, &rec, None)}))).into_response())
}

/// `GET .../privacy/subjects/{object}/{id}/export`: everything about a person, as a JSON download.
pub async fn export(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let object = person(p.str("object"))?;
    let id = p.uuid("id")?;
    let doc = privacy::export_subject(&st.db, &t, object, id).await.map_err(not_found_as(object))?;
    let mut resp = Json(doc).into_response();
    let name = format!("attachment; filename=\"{}-{id}-export.json\"", object.singular);
    if let Ok(v) = HeaderValue::from_str(&name) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `POST .../privacy/subjects/{object}/{id}/erase` (Admins): anonymises the person.
pub async fn erase(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<Response> {
    let object = person(p.str("object"))?;
    let id = p.uuid("id")?;
    let report = privacy::erase_subject(&st.db, &t, object, id).await.map_err(not_found_as(object))?;
    Ok(Json(report).into_response())
}

/// `GET .../privacy/consent-policy`.
pub async fn get_consent_policy(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(privacy::consent_policy(&st.db, t.company_id).await?).into_response())
}

/// `PUT .../privacy/consent-policy` (Admins).
pub async fn put_consent_policy(
    State(st): State<AppState>,
    Admin(t): Admin,
    JsonBody(body, _): JsonBody<ConsentPolicy>,
) -> ApiResult<Response> {
    let mut policy = body;
    policy.current_text_version = policy.current_text_version.map(|v| v.trim().to_string());
    privacy::set_consent_policy(&st.db, &t.audit, &policy).await?;
    Ok(Json(privacy::consent_policy(&st.db, t.company_id).await?).into_response())
}

/// `GET .../data/quality-report`.
pub async fn quality_report(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(quality::report(&st.db, t.company_id).await?).into_response())
}

/// `GET .../data/governance/policies`.
pub async fn policies(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(quality::policies(&st.db, t.company_id, &t.calling_code).await?).into_response())
}
