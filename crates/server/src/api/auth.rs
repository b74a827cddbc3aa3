//! Sign-up, sign-in, token refresh and sign-out, the caller's profile and API tokens.

use crate::error::{ApiError, ApiResult};
use crate::extract::{AuthUser, ClientMeta, JsonBody, Member, Params};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use corvid_store::audit::AuditCtx;
use corvid_store::auth::{self, RefreshOutcome};
use corvid_store::companies;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

const MIN_PASSWORD: usize = 10;

fn check_password(pw: &str) -> ApiResult<()> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD {
        return Err(ApiError::invalid("password", format!("must be at least {MIN_PASSWORD} characters")));
    }
    if n > 200 {
        return Err(ApiError::invalid("password", "must be at most 200 characters"));
    }
    Ok(())
}

fn check_name(field: &str, s: &str, max: usize) -> ApiResult<()> {
    let n = s.trim().chars().count();
    if n == 0 || n > max {
        return Err(ApiError::invalid(field, format!("must be 1 to {max} characters")));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    email: String,
    password: String,
    name: String,
    company_name: String,
}

pub async fn register(
    State(st): State<AppState>,
    meta: ClientMeta,
    JsonBody(body, _): JsonBody<RegisterBody>,
) -> ApiResult<impl IntoResponse> {
    corvid_core::validate::parse_email(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    check_password(&body.password)?;
    check_name("name", &body.name, 200)?;
    check_name("company_name", &body.company_name, 200)?;
    let ctx = AuditCtx {
        ip: meta.ip.clone(),
        user_agent: meta.user_agent.clone(),
        request_id: Some(meta.request_id.clone()),
        ..Default::default()
    };
    let (user, _) = companies::register(&st.db, &body.email, &body.password, &body.name, &body.company_name, &ctx).await?;
    let session = session_response(&st, user.id, None, &meta).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Tokens plus the user and their companies: what a client needs after signing in.
async fn session_response(st: &AppState, user_id: Uuid, family: Option<(Uuid, String)>, meta: &ClientMeta) -> ApiResult<Value> {
    let (refresh, family) = match family {
        Some((f, token)) => (token, f),
        None => auth::issue_refresh(&st.db, user_id, None, meta.ip.as_deref(), meta.user_agent.as_deref()).await?,
    };
    let access = st.keys.sign(user_id, family, chrono::Utc::now().timestamp());
    let user = auth::user_by_id(&st.db, user_id).await?.ok_or(ApiError::Internal)?;
    let companies = companies::companies_of(&st.db, user_id).await?;
    Ok(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": crate::jwt::ACCESS_TTL_SECS,
        "user": user,
        "companies": companies,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// Verifies credentials with throttling per email and per client address. Shared with the
/// web sign-in form.
pub async fn check_credentials(st: &AppState, meta: &ClientMeta, email: &str, password: &str) -> ApiResult<auth::User> {
    if email.len() > 320 || password.len() > 1024 {
        return Err(ApiError::Unauthorized("wrong email or password".into()));
    }
    let keys = [format!("email:{}", auth::normalise_email(email)), format!("ip:{}", meta.ip.as_deref().unwrap_or("-"))];
    for k in &keys {
        if let Some(wait) = auth::login_locked(&st.db, k).await? {
            return Err(ApiError::TooManyRequests { retry_after: wait });
        }
    }
    let user = auth::user_by_email(&st.db, email).await?;
    let ok = match &user {
        Some(u) => auth::verify_password(&u.password_hash, password) && u.is_active,
        None => {
            auth::dummy_verify(password);
            false
        }
    };
    match user {
        Some(u) if ok => {
            for k in &keys {
                auth::login_succeeded(&st.db, k).await?;
            }
            auth::touch_login(&st.db, u.id).await?;
            Ok(u)
        }
        _ => {
            for k in &keys {
                auth::login_failed(&st.db, k).await?;
            }
            tracing::info!(ip = meta.ip.as_deref().unwrap_or("-"), "failed sign-in");
            Err(ApiError::Unauthorized("wrong email or password".into()))
        }
    }
}

pub async fn login(State(st): State<AppState>, meta: ClientMeta, JsonBody(body, _): JsonBody<LoginBody>) -> ApiResult<impl IntoResponse> {
    let user = check_credentials(&st, &meta, &body.email, &body.password).await?;
    Ok(Json(session_response(&st, user.id, None, &meta).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn refresh(
    State(st): State<AppState>,
    meta: ClientMeta,
    JsonBody(body, _): JsonBody<RefreshBody>,
) -> ApiResult<impl IntoResponse> {
    if body.refresh_token.len() > 200 {
        return Err(ApiError::Unauthorized("the refresh token is invalid".into()));
    }
    match auth::rotate_refresh(&st.db, &body.refresh_token, meta.ip.as_deref(), meta.user_agent.as_deref()).await? {
        RefreshOutcome::Rotated { user_id, family, token } => Ok(Json(session_response(&st, user_id, Some((family, token)), &meta).await?)),
        RefreshOutcome::Invalid => Err(ApiError::Unauthorized("the refresh token is invalid, expired or revoked".into())),
        RefreshOutcome::Reused => {
            tracing::warn!(ip = meta.ip.as_deref().unwrap_or("-"), "refresh token reuse; session revoked");
            Err(ApiError::Unauthorized("this refresh token was already used; the session has been ended for safety".into()))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    refresh_token: Option<String>,
}

/// Ends the session of the access token (and of a refresh token, if one is sent).
pub async fn logout(State(st): State<AppState>, user: AuthUser, body: axum::body::Bytes) -> ApiResult<impl IntoResponse> {
    let body: Option<LogoutBody> = if body.iter().all(u8::is_ascii_whitespace) { None } else { Some(crate::extract::parse_json(&body)?) };
    if let Some(sid) = user.session {
        auth::revoke_family(&st.db, sid).await?;
    }
    if let Some(token) = body.and_then(|b| b.refresh_token) {
        if let Some((family, owner)) = auth::family_of(&st.db, &token).await? {
            if owner == user.user_id {
                auth::revoke_family(&st.db, family).await?;
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn me(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    let u = auth::user_by_id(&st.db, user.user_id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let companies = companies::companies_of(&st.db, user.user_id).await?;
    Ok(Json(json!({"user": u, "companies": companies})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    expires_in_days: Option<i64>,
}

pub async fn create_token(
    State(st): State<AppState>,
    user: AuthUser,
    JsonBody(body, _): JsonBody<NewToken>,
) -> ApiResult<impl IntoResponse> {
    check_name("name", &body.name, 100)?;
    let expires = match body.expires_in_days {
        None => None,
        Some(d) if (1..=3650).contains(&d) => Some(chrono::Utc::now() + chrono::Duration::days(d)),
        Some(_) => return Err(ApiError::invalid("expires_in_days", "must be from 1 to 3650")),
    };
    let (t, token) = auth::create_api_token(&st.db, user.user_id, body.name.trim(), expires).await?;
    let mut v = serde_json::to_value(t).map_err(|_| ApiError::Internal)?;
    v["token"] = token.into();
    Ok((StatusCode::CREATED, Json(v)))
}

pub async fn list_tokens(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": auth::list_api_tokens(&st.db, user.user_id).await?})))
}

pub async fn revoke_token(State(st): State<AppState>, user: AuthUser, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.uuid("token_id")?;
    if auth::revoke_api_token(&st.db, user.user_id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("token"))
    }
}

pub async fn my_companies(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({"data": companies::companies_of(&st.db, user.user_id).await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCompany {
    name: String,
}

pub async fn create_company(
    State(st): State<AppState>,
    user: AuthUser,
    JsonBody(body, _): JsonBody<NewCompany>,
) -> ApiResult<impl IntoResponse> {
    check_name("name", &body.name, 200)?;
    let ctx = AuditCtx {
        ip: user.meta.ip.clone(),
        user_agent: user.meta.user_agent.clone(),
        request_id: Some(user.meta.request_id.clone()),
        ..Default::default()
    };
    let mut tx = st.db.begin().await?;
    let company = companies::create_in(&mut tx, &body.name, user.user_id, &ctx).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(json!({"id": company.id, "name": company.name, "role": "admin"}))))
}

pub async fn show_company(State(st): State<AppState>, Member(t): Member) -> ApiResult<impl IntoResponse> {
    let c = companies::get(&st.db, t.company_id).await?.ok_or_else(|| ApiError::not_found("company"))?;
    let mut v = serde_json::to_value(c).map_err(|_| ApiError::Internal)?;
    v["role"] = t.role.as_str().into();
    Ok(Json(v))
}
