//! Roles, teams and reporting lines (Admins), moving a member's records to someone else, and
//! the caller's own permissions (any member). The rules live in `corvid_store::roles`; these
//! handlers parse, authorise by extractor type and name what was not found.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, JsonBody, Member, Params};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_core::meta::OBJECT_NAMES;
use corvid_store::roles;
use corvid_store::StoreError;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use uuid::Uuid;

/// `Some(None)` for an explicit `null`, `None` when the key is absent (serde alone folds
/// both into `None`, and "clear the manager" would then mean "keep it").
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A store error with "not found" saying what was not found.
fn named(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

pub async fn list_roles(State(st): State<AppState>, Admin(t): Admin) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": roles::list(&st.db, t.company_id).await?})))
}

pub async fn show_role(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let role = roles::get(&st.db, t.company_id, p.str("key")).await.map_err(named("role"))?;
    let mut body = serde_json::to_value(role).map_err(|_| ApiError::Internal)?;
    body["fields"] = serde_json::to_value(roles::fields(&st.db, t.company_id).await?).map_err(|_| ApiError::Internal)?;
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    label: String,
    base_role: String,
    permissions: Option<Value>,
}

pub async fn create_role(State(st): State<AppState>, Admin(t): Admin, JsonBody(b, _): JsonBody<NewRole>) -> ApiResult<impl IntoResponse> {
    let role = roles::create(&st.db, &t.audit, &b.label, &b.base_role, b.permissions.as_ref()).await?;
    Ok((StatusCode::CREATED, Json(role)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePatch {
    label: Option<String>,
    permissions: Option<Value>,
}

pub async fn update_role(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<RolePatch>,
) -> ApiResult<impl IntoResponse> {
    if b.label.is_none() && b.permissions.is_none() {
        return Err(ApiError::invalid("body", "send label and/or permissions"));
    }
    let role = roles::update(&st.db, &t.audit, p.str("key"), b.label.as_deref(), b.permissions.as_ref()).await.map_err(named("role"))?;
    Ok(Json(role))
}

/// A custom role is deleted (204); a built-in role goes back to its defaults (200 with it).
pub async fn delete_role(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<Response> {
    let key = p.str("key");
    if roles::is_custom_key(key) {
        roles::delete(&st.db, &t.audit, key).await.map_err(named("role"))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(Json(roles::reset(&st.db, &t.audit, key).await.map_err(named("role"))?).into_response())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChoice {
    role: String,
}

pub async fn set_member_role(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<RoleChoice>,
) -> ApiResult<impl IntoResponse> {
    let user_id = p.uuid("user_id")?;
    Ok(Json(roles::assign(&st.db, &t.audit, user_id, b.role.trim()).await.map_err(named("member"))?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporting {
    #[serde(default, deserialize_with = "present")]
    team_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    manager_id: Option<Option<Uuid>>,
}

pub async fn set_reporting(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<Reporting>,
) -> ApiResult<impl IntoResponse> {
    let user_id = p.uuid("user_id")?;
    if b.team_id.is_none() && b.manager_id.is_none() {
        return Err(ApiError::invalid("body", "send team_id and/or manager_id (null clears)"));
    }
    Ok(Json(roles::set_reporting(&st.db, &t.audit, user_id, b.team_id, b.manager_id).await.map_err(named("member"))?))
}

/// Any member may list teams (pickers need them); changes are for Admins.
pub async fn list_teams(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": roles::teams(&st.db, t.company_id).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    name: String,
    manager_id: Option<Uuid>,
}

pub async fn create_team(State(st): State<AppState>, Admin(t): Admin, JsonBody(b, _): JsonBody<NewTeam>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, Json(roles::create_team(&st.db, &t.audit, &b.name, b.manager_id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    manager_id: Option<Option<Uuid>>,
}

pub async fn update_team(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<TeamPatch>,
) -> ApiResult<impl IntoResponse> {
    let team_id = p.uuid("team_id")?;
    if b.name.is_none() && b.manager_id.is_none() {
        return Err(ApiError::invalid("body", "send name and/or manager_id (null clears)"));
    }
    Ok(Json(roles::update_team(&st.db, &t.audit, team_id, b.name.as_deref(), b.manager_id).await.map_err(named("team"))?))
}

pub async fn delete_team(State(st): State<AppState>, Admin(t): Admin, p: Params) -> ApiResult<impl IntoResponse> {
    let team_id = p.uuid("team_id")?;
    roles::delete_team(&st.db, &t.audit, team_id).await.map_err(named("team"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    to_user_id: Uuid,
    objects: Option<Vec<String>>,
    #[serde(default)]
    only_open: bool,
}

pub async fn transfer(
    State(st): State<AppState>,
    Admin(t): Admin,
    p: Params,
    JsonBody(b, _): JsonBody<Transfer>,
) -> ApiResult<impl IntoResponse> {
    let from = p.uuid("user_id")?;
    let objects = b.objects.unwrap_or_else(|| OBJECT_NAMES.iter().map(|o| (*o).to_string()).collect());
    let moved = roles::transfer(&st.db, &t.audit, from, b.to_user_id, &objects, b.only_open).await.map_err(named("member"))?;
    let total: i64 = moved.values().sum();
    Ok(Json(json!({"from_user_id": from, "to_user_id": b.to_user_id, "only_open": b.only_open, "moved": moved, "total": total})))
}

/// The caller's own role, matrix and team: what UIs and integrations need to know what to offer.
pub async fn my_permissions(Member(t): Member) -> ApiResult<impl IntoResponse> {
    let a = &t.access;
    Ok(Json(json!({
        "user_id": t.user_id,
        "role": a.role_key,
        "label": a.role_label,
        "base_role": t.role,
        "permissions": a.matrix(),
        "team": a.team().collect::<Vec<_>>(),
    })))
}
