//! Company administration: members and roles, teams, object metadata and custom fields,
//! and statistics.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, JsonBody, Member, Params};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use corvid_core::meta::ObjectDef;
use corvid_core::role::Role;
use corvid_store::companies;
use corvid_store::custom_fields::{self, NewCustomField};
use corvid_store::stats;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

pub async fn members(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": companies::members(&st.db, t.company_id).await?})))
}

fn parse_role(s: &str) -> ApiResult<Role> {
    Role::parse(s).ok_or_else(|| ApiError::invalid("role", "must be one of admin, manager, sales_rep, support_agent, read_only"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    email: String,
    name: Option<String>,
    password: Option<String>,
    role: String,
}

pub async fn add_member(State(st): State<AppState>, Admin(t): Admin, JsonBody(b, _): JsonBody<NewMember>) -> ApiResult<impl IntoResponse> {
    let role = parse_role(&b.role)?;
    corvid_core::validate::parse_email(&b.email).map_err(|e| ApiError::invalid("email", e))?;
    let name = b.name.clone().unwrap_or_else(|| b.email.split('@').next().unwrap_or("").to_string());
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    if let Some(pw) = &b.password {
        if !(10..=200).contains(&pw.chars().count()) {
            return Err(ApiError::invalid("password", "must be 10 to 200 characters"));
        }
    }
    let m = companies::add_member(&st.db, &t.audit, &b.email, &name, b.password.as_deref(), role).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    role: Option<String>,
    is_active: Option<bool>,
    #[serde(default, deserialize_with = "crate::api::roles::present")]
    team_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::api::roles::present")]
    manager_id: Option<Option<Uuid>>,
}

pub async fn update_member(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<MemberChange>,
) -> ApiResult<impl IntoResponse> {
    let user_id = p.uuid("user_id")?;
    let role = b.role.as_deref().map(parse_role).transpose()?;
    // Through the roles service, so that a built-in role replaces a custom one and reporting
    // lines are checked for loops.
    if let Some(role) = role {
        corvid_store::roles::assign(&st.db, &t.audit, user_id, role.as_str()).await?;
    }
    let mut m = companies::update_member(&st.db, &t.audit, user_id, None, b.is_active).await?;
    if b.team_id.is_some() || b.manager_id.is_some() {
        corvid_store::roles::set_reporting(&st.db, &t.audit, user_id, b.team_id, b.manager_id).await?;
        m = companies::member(&st.db, t.company_id, user_id).await?.ok_or(ApiError::not_found("member"))?;
    }
    Ok(Json(m))
}

/// Members are never deleted (their records and audit rows keep pointing at them).
pub async fn deactivate_member(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let user_id = p.uuid("user_id")?;
    Ok(Json(companies::update_member(&st.db, &t.audit, user_id, None, Some(false)).await?))
}

fn describe(object: &ObjectDef, custom: &[corvid_core::Field]) -> Value {
    let fields: Vec<Value> = object.fields.iter().chain(custom).map(|f| serde_json::to_value(f).unwrap_or_default()).collect();
    json!({
        "name": object.name,
        "singular": object.singular,
        "label": object.label,
        "label_plural": object.label_plural,
        "number_prefix": object.number_prefix,
        "delete_mode": object.delete_mode,
        "title_fields": object.title_fields,
        "fields": fields,
    })
}

pub async fn objects(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    let mut out = Vec::new();
    for o in corvid_core::objects() {
        out.push(describe(o, &custom_fields::list(&st.db, t.company_id, &o.name).await?));
    }
    Ok(Json(json!({"data": out})))
}

pub async fn object(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<impl IntoResponse> {
    let o = p.object()?;
    Ok(Json(describe(o, &custom_fields::list(&st.db, t.company_id, &o.name).await?)))
}

pub async fn create_field(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<NewCustomField>,
) -> ApiResult<impl IntoResponse> {
    let o = p.object()?;
    let f = custom_fields::create(&st.db, &t.audit, &o.name, b).await?;
    Ok((StatusCode::CREATED, Json(f)))
}

pub async fn delete_field(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let o = p.object()?;
    custom_fields::delete(&st.db, &t.audit, &o.name, p.str("name")).await.map_err(|e| match e {
        corvid_store::StoreError::NotFound => ApiError::not_found("custom field"),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_read(t: &corvid_store::Tenant, object: &str) -> ApiResult<()> {
    let def = corvid_core::object(object).ok_or(ApiError::Internal)?;
    t.access.require(def, corvid_core::access::Action::Read)?;
    Ok(())
}

pub async fn lead_stats(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    require_read(&t, "leads")?;
    let mut out = serde_json::Map::new();
    for (key, column) in [("by_status", "status"), ("by_source", "source"), ("by_owner", "owner_id")] {
        // A grouping on a field hidden from the member is left out rather than failing the rest.
        match stats::count_by(&st.db, &t, "leads", column).await {
            Ok(b) => {
                out.insert(key.into(), serde_json::to_value(b).unwrap_or_default());
            }
            Err(corvid_store::StoreError::FieldForbidden(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(serde_json::Value::Object(out)))
}

pub async fn deal_stats(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    require_read(&t, "deals")?;
    Ok(Json(json!({"by_stage": stats::deals_by_stage(&st.db, &t).await?})))
}

pub async fn activity_stats(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    require_read(&t, "activities")?;
    Ok(Json(json!({"by_type": stats::count_by(&st.db, &t, "activities", "activity_type").await?})))
}
