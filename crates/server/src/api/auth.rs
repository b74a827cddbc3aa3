//! Sign-up, sign-in (with an optional TOTP second step), token refresh and sign-out, password
//! reset by email, sessions and sign-out everywhere, two-factor enrolment, the caller's
//! profile, API tokens and security log.

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
    check_password_field("password", pw)
}

/// The password rules, naming the field that broke them.
pub fn check_password_field(field: &str, pw: &str) -> ApiResult<()> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD {
        return Err(ApiError::invalid(field, format!("must be at least {MIN_PASSWORD} characters")));
    }
    if n > 200 {
        return Err(ApiError::invalid(field, "must be at most 200 characters"));
    }
    Ok(())
}

/// The request's origin, for security-log entries.
pub fn audit_ctx(meta: &ClientMeta) -> AuditCtx {
    AuditCtx { ip: meta.ip.clone(), user_agent: meta.user_agent.clone(), request_id: Some(meta.request_id.clone()), ..Default::default() }
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
    // NUL can match no account, and PostgreSQL refuses it in a query (a 500 to anyone).
    if email.len() > 320 || password.len() > 1024 || email.contains('\0') || password.contains('\0') {
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

/// Signs in. With two-factor on, the answer is `{mfa_required: true, mfa_token}` instead of
/// tokens, and `login/mfa` finishes the sign-in.
pub async fn login(State(st): State<AppState>, meta: ClientMeta, JsonBody(body, _): JsonBody<LoginBody>) -> ApiResult<impl IntoResponse> {
    let user = check_credentials(&st, &meta, &body.email, &body.password).await?;
    if auth::totp_enabled(&st.db, user.id).await? {
        let token = auth::create_mfa_challenge(&st.db, user.id).await?;
        return Ok(Json(json!({
            "mfa_required": true,
            "mfa_token": token,
            "expires_in": auth::MFA_CHALLENGE_MINUTES * 60,
        })));
    }
    auth::record_event(&st.db, user.id, "signed_in", Some("api"), &audit_ctx(&meta)).await?;
    Ok(Json(session_response(&st, user.id, None, &meta).await?))
}

/// Takes a token from a per-address bucket of the account routes (reset, second factor).
pub fn throttle_auth(st: &AppState, meta: &ClientMeta, what: &str) -> ApiResult<()> {
    let key = format!("{what}:ip:{}", meta.ip.as_deref().unwrap_or("-"));
    st.limiter.per_minute(&key, st.limiter.limits.auth_per_ip).map_err(|retry_after| ApiError::TooManyRequests { retry_after })
}

/// Checks a second factor for a user: a current TOTP code (each time step once) or an unused
/// recovery code. Failures count toward the sign-in lockout of `mfa:<user>`.
pub async fn check_second_factor(
    st: &AppState,
    user_id: Uuid,
    code: Option<&str>,
    recovery_code: Option<&str>,
) -> ApiResult<Option<&'static str>> {
    let key = format!("mfa:{user_id}");
    if let Some(wait) = auth::login_locked(&st.db, &key).await? {
        return Err(ApiError::TooManyRequests { retry_after: wait });
    }
    let used = match (code.map(str::trim).filter(|c| !c.is_empty()), recovery_code.map(str::trim).filter(|c| !c.is_empty())) {
        (Some(code), None) => {
            let totp = auth::totp(&st.db, user_id).await?.filter(|t| t.enabled);
            let step = totp.and_then(|t| crate::totp::verify(&t.secret, code, chrono::Utc::now().timestamp()));
            match step {
                Some(step) if auth::totp_accept_step(&st.db, user_id, step).await? => Some("totp"),
                _ => None,
            }
        }
        (None, Some(rc)) => auth::use_recovery_code(&st.db, user_id, rc).await?.then_some("recovery_code"),
        _ => return Err(ApiError::invalid("code", "send either code (from the authenticator app) or recovery_code")),
    };
    match used {
        Some(kind) => {
            auth::login_succeeded(&st.db, &key).await?;
            Ok(Some(kind))
        }
        None => {
            auth::login_failed(&st.db, &key).await?;
            Ok(None)
        }
    }
}

/// The second step of a sign-in (shared with the web form). Returns the user.
pub async fn complete_mfa(
    st: &AppState,
    meta: &ClientMeta,
    mfa_token: &str,
    code: Option<&str>,
    recovery_code: Option<&str>,
) -> ApiResult<Uuid> {
    throttle_auth(st, meta, "mfa")?;
    let Some(user_id) = auth::mfa_challenge_user(&st.db, mfa_token).await? else {
        return Err(ApiError::Unauthorized("this sign-in has expired or was already used; sign in again".into()));
    };
    match check_second_factor(st, user_id, code, recovery_code).await? {
        Some(kind) => {
            if !auth::mfa_challenge_spend(&st.db, mfa_token).await? {
                return Err(ApiError::Unauthorized("this sign-in has expired or was already used; sign in again".into()));
            }
            auth::touch_login(&st.db, user_id).await?;
            let detail = if kind == "recovery_code" { "with a recovery code" } else { "with an authenticator code" };
            auth::record_event(&st.db, user_id, "signed_in", Some(detail), &audit_ctx(meta)).await?;
            Ok(user_id)
        }
        None => {
            auth::mfa_challenge_failed(&st.db, mfa_token).await?;
            auth::record_event(&st.db, user_id, "second_factor_failed", None, &audit_ctx(meta)).await?;
            tracing::info!(ip = meta.ip.as_deref().unwrap_or("-"), "wrong second-factor code");
            Err(ApiError::Unauthorized("the code is not right".into()))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginBody {
    mfa_token: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

pub async fn login_mfa(
    State(st): State<AppState>,
    meta: ClientMeta,
    JsonBody(body, _): JsonBody<MfaLoginBody>,
) -> ApiResult<impl IntoResponse> {
    let user_id = complete_mfa(&st, &meta, &body.mfa_token, body.code.as_deref(), body.recovery_code.as_deref()).await?;
    Ok(Json(session_response(&st, user_id, None, &meta).await?))
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
        RefreshOutcome::Rotated { user_id, family, token } => {
            // A deactivated user's sessions end here, as sign-in and access tokens already refuse them.
            if !auth::user_by_id(&st.db, user_id).await?.is_some_and(|u| u.is_active) {
                auth::revoke_family(&st.db, family).await?;
                return Err(ApiError::Unauthorized("this user is deactivated".into()));
            }
            Ok(Json(session_response(&st, user_id, Some((family, token)), &meta).await?))
        }
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

// ---------------------------------------------------------------------------------------
// Password reset
// ---------------------------------------------------------------------------------------

/// What a reset request always answers: whether an account exists is never said.
pub const RESET_SENT: &str =
    "If an account exists for this address, we have sent it a link to set a new password. The link works for 30 minutes.";

/// Base of links in mail: the configured public URL; else the request's host when allowed
/// hosts are configured (so it is one of them); else localhost.
fn link_base(st: &AppState, host: Option<&str>, https: bool) -> String {
    if let Some(u) = &st.public_url {
        return u.clone();
    }
    match host {
        Some(h) if st.edge.allowed_hosts.is_some() && st.edge.host_allowed(h) => format!("{}://{h}", if https { "https" } else { "http" }),
        _ => "http://localhost:8080".into(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn reset_email(to: &str, name: &str, link: &str) -> crate::mail::Email {
    let text = format!(
        "Hello {name},\n\nSomeone (we hope you) asked to set a new password for your Corvid account.\n\
         Open this link within {mins} minutes to choose one:\n\n{link}\n\n\
         If you did not ask, ignore this email: your password stays as it is.\n",
        mins = auth::RESET_MINUTES
    );
    let html = format!(
        "<!doctype html><html><body><p>Hello {name},</p><p>Someone (we hope you) asked to set a new password for your Corvid account. \
         Open this link within {mins} minutes to choose one:</p><p><a href=\"{link}\">Set a new password</a></p>\
         <p>Or copy this address: {link}</p><p>If you did not ask, ignore this email: your password stays as it is.</p></body></html>",
        name = html_escape(name),
        link = html_escape(link),
        mins = auth::RESET_MINUTES
    );
    crate::mail::Email { to: to.into(), subject: "Set a new Corvid password".into(), text, html: Some(html) }
}

/// Handles a reset request (shared with the web form): throttles by address and by email,
/// and for an active account issues a token and mails the link in the background, so the
/// answer takes the same time either way.
pub async fn request_password_reset(st: &AppState, meta: &ClientMeta, email: &str, host: Option<&str>, https: bool) -> ApiResult<()> {
    throttle_auth(st, meta, "reset")?;
    if email.contains('\0') {
        // No account has such an address (and PostgreSQL refuses NUL): the usual answer.
        return Ok(());
    }
    let email = auth::normalise_email(email);
    let email_key = format!("reset:email:{}", &auth::token_hash(&email)[..24]);
    st.limiter
        .take(&email_key, crate::ratelimit::RESET_REQUESTS_PER_EMAIL_PER_HOUR, 3600)
        .map_err(|retry_after| ApiError::TooManyRequests { retry_after })?;
    let Some(user) = auth::user_by_email(&st.db, &email).await?.filter(|u| u.is_active) else {
        tracing::info!("password reset asked for an unknown or inactive email");
        return Ok(());
    };
    let Some(token) = auth::create_password_reset(&st.db, user.id, meta.ip.as_deref()).await? else {
        tracing::info!("password reset links for this account are used up for the hour");
        return Ok(());
    };
    auth::record_event(&st.db, user.id, "password_reset_requested", None, &audit_ctx(meta)).await?;
    let link = format!("{}/reset-password?token={token}", link_base(st, host, https));
    if !st.mailer.enabled() {
        if st.mailer.demo {
            tracing::info!(target: "corvid::outbox", to = %user.email, %link, "mail is disabled; demo mode writes the password-reset link here");
        } else {
            tracing::warn!("a password reset was requested, but mail is disabled (set CORVID_SMTP_URL); no email was sent");
        }
        return Ok(());
    }
    let mailer = st.mailer.clone();
    let email = reset_email(&user.email, &user.name, &link);
    let sink = st.syslog.clone();
    let fut = tracing::Instrument::instrument(
        async move {
            match mailer.send(&email).await {
                Ok(()) => tracing::info!("password reset email sent"),
                Err(e) => tracing::warn!(error = %e, "password reset email could not be sent"),
            }
        },
        tracing::Span::current(),
    );
    tokio::spawn(crate::syslog::SINK.scope(sink, fut));
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequestBody {
    email: String,
}

pub async fn password_reset(
    State(st): State<AppState>,
    meta: ClientMeta,
    headers: axum::http::HeaderMap,
    JsonBody(body, _): JsonBody<ResetRequestBody>,
) -> ApiResult<impl IntoResponse> {
    corvid_core::validate::parse_email(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    request_password_reset(&st, &meta, &body.email, host, crate::web::is_https(&headers)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "detail": RESET_SENT }))))
}

/// Sets a new password with a reset token (shared with the web form). Ends every session.
pub async fn confirm_password_reset(st: &AppState, meta: &ClientMeta, token: &str, new_password: &str) -> ApiResult<Uuid> {
    throttle_auth(st, meta, "reset-confirm")?;
    check_password_field("new_password", new_password)?;
    let Some(user_id) = auth::reset_password(&st.db, token.trim(), new_password).await? else {
        return Err(ApiError::bad_field("token", "is invalid, expired or already used; ask for a new link"));
    };
    if let Some(u) = auth::user_by_id(&st.db, user_id).await? {
        // The owner proved control of the mailbox: earlier failed sign-ins no longer count.
        auth::login_succeeded(&st.db, &format!("email:{}", u.email)).await?;
    }
    auth::record_event(&st.db, user_id, "password_reset", Some("every session was signed out"), &audit_ctx(meta)).await?;
    tracing::info!("password was reset by emailed link");
    Ok(user_id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmBody {
    token: String,
    new_password: String,
}

pub async fn password_reset_confirm(
    State(st): State<AppState>,
    meta: ClientMeta,
    JsonBody(body, _): JsonBody<ResetConfirmBody>,
) -> ApiResult<impl IntoResponse> {
    confirm_password_reset(&st, &meta, &body.token, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

pub async fn sessions(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "data": auth::list_sessions(&st.db, user.user_id, user.session, None).await? })))
}

pub async fn revoke_session(State(st): State<AppState>, user: AuthUser, p: Params) -> ApiResult<impl IntoResponse> {
    let id = p.str("session_id");
    if id.len() > 64 {
        return Err(ApiError::bad_field("session_id", "is not a session id"));
    }
    if !auth::revoke_session(&st.db, user.user_id, id).await? {
        return Err(ApiError::not_found("session"));
    }
    auth::record_event(&st.db, user.user_id, "session_revoked", Some(id), &audit_ctx(&user.meta)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out every session of the caller, this one included.
pub async fn logout_all(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    auth::revoke_all_sessions(&st.db, user.user_id).await?;
    auth::record_event(&st.db, user.user_id, "signed_out_everywhere", None, &audit_ctx(&user.meta)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn security_events(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    Ok(Json(json!({ "data": auth::security_events(&st.db, user.user_id, 100).await? })))
}

// ---------------------------------------------------------------------------------------
// Two-factor (TOTP) enrolment
// ---------------------------------------------------------------------------------------

pub async fn mfa_status(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    let t = auth::totp(&st.db, user.user_id).await?;
    Ok(Json(json!({
        "totp_enabled": t.as_ref().is_some_and(|t| t.enabled),
        "totp_pending": t.as_ref().is_some_and(|t| !t.enabled),
        "recovery_codes_left": auth::recovery_codes_left(&st.db, user.user_id).await?,
    })))
}

/// Starts enrolment (shared with the web page): a new secret, pending until confirmed.
pub async fn begin_totp(st: &AppState, user_id: Uuid) -> ApiResult<(String, String)> {
    let user = auth::user_by_id(&st.db, user_id).await?.ok_or(ApiError::Internal)?;
    let secret = crate::totp::new_secret();
    if !auth::totp_begin(&st.db, user_id, &secret).await? {
        return Err(ApiError::Conflict("two-factor sign-in is already on; turn it off first to enrol a new device".into()));
    }
    let uri = crate::totp::otpauth_uri(&user.email, &secret);
    Ok((secret, uri))
}

pub async fn mfa_enroll(State(st): State<AppState>, user: AuthUser) -> ApiResult<impl IntoResponse> {
    let (secret, uri) = begin_totp(&st, user.user_id).await?;
    Ok((StatusCode::CREATED, Json(json!({ "secret": secret, "otpauth_uri": uri }))))
}

/// Confirms enrolment with a first code; returns the recovery codes (shown once).
pub async fn confirm_totp(st: &AppState, user_id: Uuid, code: &str, meta: &ClientMeta) -> ApiResult<Vec<String>> {
    let Some(t) = auth::totp(&st.db, user_id).await? else {
        return Err(ApiError::Conflict("start enrolment first".into()));
    };
    if t.enabled {
        return Err(ApiError::Conflict("two-factor sign-in is already on".into()));
    }
    let Some(step) = crate::totp::verify(&t.secret, code, chrono::Utc::now().timestamp()) else {
        return Err(ApiError::invalid("code", "is not the current code of the authenticator app"));
    };
    let codes = auth::new_recovery_codes();
    if !auth::totp_enable(&st.db, user_id, step, &codes).await? {
        return Err(ApiError::Conflict("two-factor sign-in is already on".into()));
    }
    auth::record_event(&st.db, user_id, "two_factor_enabled", None, &audit_ctx(meta)).await?;
    Ok(codes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    code: String,
}

pub async fn mfa_confirm(
    State(st): State<AppState>,
    user: AuthUser,
    JsonBody(body, _): JsonBody<CodeBody>,
) -> ApiResult<impl IntoResponse> {
    let codes = confirm_totp(&st, user.user_id, &body.code, &user.meta).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// Proves it is really the user before a second-factor change: the password (failures count
/// toward the sign-in lockout) and a current code or recovery code.
pub async fn reauthenticate(
    st: &AppState,
    user_id: Uuid,
    password: &str,
    code: Option<&str>,
    recovery_code: Option<&str>,
) -> ApiResult<()> {
    let user = auth::user_by_id(&st.db, user_id).await?.ok_or(ApiError::Internal)?;
    let key = format!("email:{}", user.email);
    if let Some(wait) = auth::login_locked(&st.db, &key).await? {
        return Err(ApiError::TooManyRequests { retry_after: wait });
    }
    if password.len() > 1024 || !auth::verify_password(&user.password_hash, password) {
        auth::login_failed(&st.db, &key).await?;
        return Err(ApiError::invalid("password", "is not right"));
    }
    if !auth::totp_enabled(&st.db, user_id).await? {
        return Err(ApiError::Conflict("two-factor sign-in is not on".into()));
    }
    match check_second_factor(st, user_id, code, recovery_code).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(if recovery_code.is_some() { "recovery_code" } else { "code" }, "is not right")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReauthBody {
    password: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

pub async fn mfa_disable(
    State(st): State<AppState>,
    user: AuthUser,
    JsonBody(body, _): JsonBody<ReauthBody>,
) -> ApiResult<impl IntoResponse> {
    reauthenticate(&st, user.user_id, &body.password, body.code.as_deref(), body.recovery_code.as_deref()).await?;
    auth::totp_disable(&st.db, user.user_id).await?;
    auth::record_event(&st.db, user.user_id, "two_factor_disabled", None, &audit_ctx(&user.meta)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mfa_recovery_codes(
    State(st): State<AppState>,
    user: AuthUser,
    JsonBody(body, _): JsonBody<ReauthBody>,
) -> ApiResult<impl IntoResponse> {
    reauthenticate(&st, user.user_id, &body.password, body.code.as_deref(), body.recovery_code.as_deref()).await?;
    let codes = auth::new_recovery_codes();
    auth::replace_recovery_codes(&st.db, user.user_id, &codes).await?;
    auth::record_event(&st.db, user.user_id, "recovery_codes_replaced", None, &audit_ctx(&user.meta)).await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}
