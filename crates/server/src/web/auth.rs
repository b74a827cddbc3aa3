//! Sign-in (with the two-step page), sign-up, sign-out, password reset, the landing
//! redirect, the profile page and its Security page (sessions, two-step sign-in).

use super::{render, render_status, session_cookie, Ctx, Page, Signed, WebError, WebResult};
use crate::extract::ClientMeta;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use corvid_store::auth::{self, ApiToken};
use corvid_store::web as websess;
use corvid_store::{audit::AuditCtx, companies};
use serde::Deserialize;

fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && n.len() < 2000 => n.to_string(),
        _ => "/".into(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    email: String,
    next: String,
    error: String,
    notice: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    reset: Option<String>,
}

pub async fn login_page(Query(q): Query<NextQuery>) -> WebResult<Response> {
    let notice = if q.reset.is_some() { "Your password was changed. Sign in with the new one." } else { "" };
    render(&LoginPage { email: String::new(), next: safe_next(q.next.as_deref()), error: String::new(), notice: notice.into() })
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// Signs the browser in with a brand-new session id. A session cookie the browser already
/// had (perhaps planted by someone else: session fixation) is ended, never reused.
async fn start_session(st: &AppState, headers: &HeaderMap, meta: &ClientMeta, user_id: uuid::Uuid, to: &str) -> WebResult<Response> {
    if let Some(old) = super::cookie_value(headers) {
        websess::end_session(&st.db, &old).await?;
    }
    let (cookie, _) = websess::create_session(&st.db, user_id, meta.ip.as_deref(), meta.user_agent.as_deref()).await?;
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, session_cookie(&cookie, super::is_https(headers), websess::SESSION_DAYS));
    Ok(r)
}

/// The cookie that carries a sign-in between the password and the code (HttpOnly, only
/// sent to `/login`, gone after five minutes).
const MFA_COOKIE: &str = "corvid_mfa";

fn mfa_cookie(value: &str, secure: bool, max_age: i64) -> axum::http::HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    axum::http::HeaderValue::from_str(&format!("{MFA_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("corvid_mfa=; Path=/login; Max-Age=0"))
}

fn mfa_cookie_value(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == MFA_COOKIE && !v.is_empty()).then(|| v.to_string())
    })
}

pub async fn login_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    Form(f): Form<LoginForm>,
) -> WebResult<Response> {
    let next = safe_next(f.next.as_deref());
    match crate::api::auth::check_credentials(&st, &meta, &f.email, &f.password).await {
        Ok(user) if auth::totp_enabled(&st.db, user.id).await? => {
            let token = auth::create_mfa_challenge(&st.db, user.id).await?;
            let to = format!("/login/mfa?{}", serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default());
            let mut r = Redirect::to(&to).into_response();
            r.headers_mut().insert(header::SET_COOKIE, mfa_cookie(&token, super::is_https(&headers), auth::MFA_CHALLENGE_MINUTES * 60));
            Ok(r)
        }
        Ok(user) => {
            auth::record_event(&st.db, user.id, "signed_in", Some("web"), &crate::api::auth::audit_ctx(&meta)).await?;
            start_session(&st, &headers, &meta, user.id, &next).await
        }
        Err(e) => {
            let status = e.status();
            let error = match status {
                StatusCode::TOO_MANY_REQUESTS => WebError::from(e).message,
                StatusCode::UNAUTHORIZED => "That email and password don't match an account.".into(),
                _ => return Err(e.into()),
            };
            render_status(status, &LoginPage { email: f.email.chars().take(200).collect(), next, error, notice: String::new() })
        }
    }
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    name: String,
    email: String,
    company_name: String,
    errors: Vec<(String, String)>,
}

impl RegisterPage {
    fn error(&self, field: &str) -> String {
        self.errors.iter().filter(|(f, _)| f == field).map(|(_, r)| r.clone()).collect::<Vec<_>>().join("; ")
    }
}

pub async fn register_page() -> WebResult<Response> {
    render(&RegisterPage { name: String::new(), email: String::new(), company_name: String::new(), errors: Vec::new() })
}

#[derive(Deserialize)]
pub struct RegisterForm {
    name: String,
    email: String,
    password: String,
    company_name: String,
}

pub async fn register_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    Form(f): Form<RegisterForm>,
) -> WebResult<Response> {
    let mut errors = Vec::new();
    if let Err(e) = corvid_core::validate::parse_email(&f.email) {
        errors.push(("email".to_string(), format!("Email {e}.")));
    }
    if f.password.chars().count() < 10 || f.password.chars().count() > 200 {
        errors.push(("password".into(), "Use 10 to 200 characters.".into()));
    }
    // NUL is never text (and PostgreSQL refuses it, which would be a 500 for anyone).
    if f.name.trim().is_empty() || f.name.chars().count() > 200 || f.name.contains('\0') {
        errors.push(("name".into(), "Tell us your name (up to 200 characters).".into()));
    }
    if f.company_name.trim().is_empty() || f.company_name.chars().count() > 200 || f.company_name.contains('\0') {
        errors.push(("company_name".into(), "Name your company (up to 200 characters).".into()));
    }
    if errors.is_empty() {
        let ctx = AuditCtx {
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            request_id: Some(meta.request_id.clone()),
            ..Default::default()
        };
        match companies::register(&st.db, &f.email, &f.password, &f.name, &f.company_name, &ctx).await {
            Ok((user, company)) => return start_session(&st, &headers, &meta, user.id, &format!("/app/{}/dashboard", company.id)).await,
            Err(corvid_store::StoreError::Conflict(_)) => {
                errors.push(("email".into(), "An account with this email exists. Sign in instead.".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let page = RegisterPage { name: f.name, email: f.email, company_name: f.company_name, errors };
    render_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

pub async fn logout(State(st): State<AppState>, signed: Signed) -> WebResult<Response> {
    websess::end_session(&st.db, &signed.cookie).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, session_cookie("", false, 0));
    Ok(r)
}

/// `/` goes to the first company's dashboard, or to sign-in.
pub async fn home(State(st): State<AppState>, signed: Option<Signed>) -> WebResult<Response> {
    let Some(signed) = signed else { return Ok(Redirect::to("/login").into_response()) };
    let companies = companies::companies_of(&st.db, signed.user.id).await?;
    match companies.first() {
        Some(c) => Ok(Redirect::to(&format!("/app/{}/dashboard", c.id)).into_response()),
        None => Ok(Redirect::to("/profile").into_response()),
    }
}

pub async fn company_home(page: Page) -> Response {
    Redirect::to(&format!("{}/dashboard", page.ctx.base())).into_response()
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    ctx: Ctx,
    tokens: Vec<ApiToken>,
    new_token: String,
    message: String,
    error: String,
}

async fn profile_ctx(st: &AppState, signed: &Signed) -> WebResult<Ctx> {
    let companies = companies::companies_of(&st.db, signed.user.id).await?;
    let first = companies.first().cloned();
    Ok(Ctx {
        user_id: signed.user.id,
        user_name: signed.user.name.clone(),
        user_email: signed.user.email.clone(),
        csrf: signed.session.csrf_token.clone(),
        company_id: first.as_ref().map(|c| c.id).unwrap_or_default(),
        company_name: first.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        role: first.as_ref().map_or(corvid_core::role::Role::ReadOnly, |c| c.role),
        // The profile page shows no records; its navigation follows the role's defaults.
        access: corvid_store::access::Access::defaults(signed.user.id, first.map_or(corvid_core::role::Role::ReadOnly, |c| c.role)),
        companies,
        nav: "profile".into(),
    })
}

async fn profile_page(st: &AppState, signed: &Signed, new_token: String, message: String, error: String) -> WebResult<ProfilePage> {
    Ok(ProfilePage {
        ctx: profile_ctx(st, signed).await?,
        tokens: auth::list_api_tokens(&st.db, signed.user.id).await?,
        new_token,
        message,
        error,
    })
}

pub async fn profile(State(st): State<AppState>, signed: Signed) -> WebResult<Response> {
    render(&profile_page(&st, &signed, String::new(), String::new(), String::new()).await?)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new_password: String,
}

pub async fn change_password(
    State(st): State<AppState>,
    signed: Signed,
    meta: ClientMeta,
    Form(f): Form<PasswordForm>,
) -> WebResult<Response> {
    // Wrong current passwords count toward the sign-in lockout, so a borrowed session cannot
    // be used to guess the password.
    let key = format!("email:{}", signed.user.email);
    if let Some(wait) = auth::login_locked(&st.db, &key).await? {
        let error = format!("Too many attempts. Try again in {wait} seconds.");
        return render_status(StatusCode::TOO_MANY_REQUESTS, &profile_page(&st, &signed, String::new(), String::new(), error).await?);
    }
    let right = f.current.len() <= 1024 && auth::verify_password(&signed.user.password_hash, &f.current);
    if !right {
        auth::login_failed(&st.db, &key).await?;
    }
    let error = if !right {
        "Your current password is not right."
    } else if !(10..=200).contains(&f.new_password.chars().count()) {
        "Use 10 to 200 characters for the new password."
    } else {
        ""
    };
    if !error.is_empty() {
        return render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &profile_page(&st, &signed, String::new(), String::new(), error.into()).await?,
        );
    }
    auth::set_password(&st.db, signed.user.id, &f.new_password).await?;
    // Other sessions end: whoever knew the old password is signed out everywhere else.
    websess::end_all_sessions(&st.db, signed.user.id, Some(&signed.cookie)).await?;
    auth::record_event(
        &st.db,
        signed.user.id,
        "password_changed",
        Some("other sessions were signed out"),
        &crate::api::auth::audit_ctx(&meta),
    )
    .await?;
    render(
        &profile_page(&st, &signed, String::new(), "Password changed. Your other sessions were signed out.".into(), String::new()).await?,
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    name: String,
}

pub async fn create_token(State(st): State<AppState>, signed: Signed, Form(f): Form<TokenForm>) -> WebResult<Response> {
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return render_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &profile_page(&st, &signed, String::new(), String::new(), "Give the token a name of up to 100 characters.".into()).await?,
        );
    }
    let (_, token) = auth::create_api_token(&st.db, signed.user.id, name, None).await?;
    render(&profile_page(&st, &signed, token, "Token created. Copy it now: it will not be shown again.".into(), String::new()).await?)
}

pub async fn revoke_token(State(st): State<AppState>, signed: Signed, p: crate::extract::Params) -> WebResult<Response> {
    let id = uuid::Uuid::parse_str(p.str("token_id")).map_err(|_| WebError::not_found())?;
    if !auth::revoke_api_token(&st.db, signed.user.id, id).await? {
        return Err(WebError::not_found());
    }
    Ok(Redirect::to("/profile").into_response())
}

// ---------------------------------------------------------------------------------------
// The second sign-in step
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login_mfa.html")]
struct MfaPage {
    next: String,
    next_encoded: String,
    error: String,
    expired: bool,
}

impl MfaPage {
    fn new(next: String, error: String, expired: bool) -> MfaPage {
        let next_encoded = serde_urlencoded::to_string([("x", next.as_str())]).unwrap_or_default().trim_start_matches("x=").to_string();
        MfaPage { next, next_encoded, error, expired }
    }
}

pub async fn mfa_page(State(st): State<AppState>, headers: HeaderMap, Query(q): Query<NextQuery>) -> WebResult<Response> {
    let next = safe_next(q.next.as_deref());
    let live = match mfa_cookie_value(&headers) {
        Some(token) => auth::mfa_challenge_user(&st.db, &token).await?.is_some(),
        None => false,
    };
    render(&MfaPage::new(next, String::new(), !live))
}

#[derive(Deserialize)]
pub struct MfaForm {
    code: String,
    next: Option<String>,
}

pub async fn mfa_submit(State(st): State<AppState>, headers: HeaderMap, meta: ClientMeta, Form(f): Form<MfaForm>) -> WebResult<Response> {
    let next = safe_next(f.next.as_deref());
    let Some(token) = mfa_cookie_value(&headers) else {
        return render_status(StatusCode::UNAUTHORIZED, &MfaPage::new(next, String::new(), true));
    };
    // Six digits are an authenticator code; anything else is tried as a recovery code.
    let code = f.code.trim();
    let is_totp = code.chars().filter(|c| !c.is_whitespace()).count() == 6 && code.chars().all(|c| c.is_ascii_digit() || c == ' ');
    let (totp, recovery) = if is_totp { (Some(code), None) } else { (None, Some(code)) };
    match crate::api::auth::complete_mfa(&st, &meta, &token, totp, recovery).await {
        Ok(user_id) => {
            let mut r = start_session(&st, &headers, &meta, user_id, &next).await?;
            r.headers_mut().append(header::SET_COOKIE, mfa_cookie("", false, 0));
            Ok(r)
        }
        Err(e) => {
            let status = e.status();
            let expired = matches!(&e, crate::error::ApiError::Unauthorized(m) if m.contains("expired"));
            let error = match status {
                StatusCode::UNAUTHORIZED if expired => String::new(),
                StatusCode::UNAUTHORIZED => "That code is not right. Check the app and try again.".into(),
                StatusCode::TOO_MANY_REQUESTS | StatusCode::UNPROCESSABLE_ENTITY => WebError::from(e).message,
                _ => return Err(e.into()),
            };
            render_status(status, &MfaPage::new(next, error, expired))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Password reset
// ---------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "forgot_password.html")]
struct ForgotPage {
    email: String,
    notice: String,
    error: String,
}

pub async fn forgot_page() -> WebResult<Response> {
    render(&ForgotPage { email: String::new(), notice: String::new(), error: String::new() })
}

#[derive(Deserialize)]
pub struct ForgotForm {
    email: String,
}

pub async fn forgot_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    Form(f): Form<ForgotForm>,
) -> WebResult<Response> {
    let email: String = f.email.chars().take(254).collect();
    if corvid_core::validate::parse_email(&f.email).is_err() {
        let page = ForgotPage { email, notice: String::new(), error: "Type the email address you sign in with.".into() };
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match crate::api::auth::request_password_reset(&st, &meta, &f.email, host, super::is_https(&headers)).await {
        Ok(()) => render(&ForgotPage { email: String::new(), notice: crate::api::auth::RESET_SENT.into(), error: String::new() }),
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => {
            let error = WebError::from(e).message;
            render_status(StatusCode::TOO_MANY_REQUESTS, &ForgotPage { email, notice: String::new(), error })
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "reset_password.html")]
struct ResetPage {
    token: String,
    valid: bool,
    error: String,
}

#[derive(Deserialize)]
pub struct ResetQuery {
    token: Option<String>,
}

pub async fn reset_page(State(st): State<AppState>, Query(q): Query<ResetQuery>) -> WebResult<Response> {
    let token: String = q.token.unwrap_or_default().trim().chars().take(200).collect();
    let valid = !token.is_empty() && auth::password_reset_valid(&st.db, &token).await?;
    let status = if valid { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    render_status(status, &ResetPage { token, valid, error: String::new() })
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    new_password: String,
    confirm: String,
}

pub async fn reset_submit(State(st): State<AppState>, meta: ClientMeta, Form(f): Form<ResetForm>) -> WebResult<Response> {
    let token: String = f.token.trim().chars().take(200).collect();
    if f.new_password != f.confirm {
        let page = ResetPage { token, valid: true, error: "The two passwords are not the same.".into() };
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    match crate::api::auth::confirm_password_reset(&st, &meta, &token, &f.new_password).await {
        Ok(_) => Ok(Redirect::to("/login?reset=1").into_response()),
        Err(e) => {
            let status = e.status();
            let (valid, error) = match status {
                StatusCode::UNPROCESSABLE_ENTITY => (true, "Use 10 to 200 characters for the new password.".to_string()),
                StatusCode::TOO_MANY_REQUESTS => (true, WebError::from(e).message),
                StatusCode::BAD_REQUEST => (false, String::new()),
                _ => return Err(e.into()),
            };
            render_status(status, &ResetPage { token, valid, error })
        }
    }
}

// ---------------------------------------------------------------------------------------
// The Security page: sessions, two-step sign-in, security activity
// ---------------------------------------------------------------------------------------

pub struct SessionRow {
    pub id: String,
    pub kind: &'static str,
    pub device: String,
    pub ip: String,
    pub created: String,
    pub last_used: String,
    pub current: bool,
}

pub struct EventRow {
    pub when: String,
    pub what: String,
    pub detail: String,
    pub ip: String,
}

#[derive(Template)]
#[template(path = "profile_security.html")]
struct SecurityPage {
    ctx: Ctx,
    sessions: Vec<SessionRow>,
    totp_enabled: bool,
    codes_left: i64,
    enrol_secret: String,
    enrol_uri: String,
    recovery_codes: Vec<String>,
    events: Vec<EventRow>,
    message: String,
    error: String,
}

/// "Firefox on Linux" from a user agent, or the start of it.
pub fn device_of(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.is_empty()) else { return "Unknown device".into() };
    let browser = [("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari")]
        .iter()
        .find(|(k, _)| ua.contains(k))
        .map(|(_, v)| *v);
    let os =
        [("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux")]
            .iter()
            .find(|(k, _)| ua.contains(k))
            .map(|(_, v)| *v);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        _ => ua.chars().take(60).collect(),
    }
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%d %b %Y %H:%M").to_string()
}

fn event_label(action: &str) -> String {
    match action {
        "signed_in" => "Signed in",
        "second_factor_failed" => "Wrong two-step code",
        "password_reset_requested" => "Password reset link sent",
        "password_reset" => "Password reset by email link",
        "password_changed" => "Password changed",
        "session_revoked" => "Session revoked",
        "signed_out_everywhere" => "Signed out everywhere",
        "two_factor_enabled" => "Two-step sign-in turned on",
        "two_factor_disabled" => "Two-step sign-in turned off",
        "recovery_codes_replaced" => "New recovery codes",
        other => return other.replace('_', " "),
    }
    .to_string()
}

#[derive(Default)]
struct SecurityExtras {
    enrol: Option<(String, String)>,
    recovery_codes: Vec<String>,
    message: String,
    error: String,
}

async fn security_page(st: &AppState, signed: &Signed, extras: SecurityExtras) -> WebResult<SecurityPage> {
    let mut ctx = profile_ctx(st, signed).await?;
    ctx.nav = "security".into();
    let sessions = auth::list_sessions(&st.db, signed.user.id, None, Some(&signed.cookie))
        .await?
        .into_iter()
        .map(|s| SessionRow {
            kind: if s.kind == "web" { "Browser" } else { "API / app" },
            device: device_of(s.user_agent.as_deref()),
            ip: s.ip.clone().unwrap_or_default(),
            created: when(s.created_at),
            last_used: when(s.last_used_at),
            current: s.current,
            id: s.id,
        })
        .collect();
    let events = auth::security_events(&st.db, signed.user.id, 20)
        .await?
        .into_iter()
        .map(|e| EventRow {
            when: when(e.at),
            what: event_label(&e.action),
            detail: e.detail.unwrap_or_default().chars().take(80).collect(),
            ip: e.ip.unwrap_or_default(),
        })
        .collect();
    let (enrol_secret, enrol_uri) = extras.enrol.unwrap_or_default();
    Ok(SecurityPage {
        ctx,
        sessions,
        totp_enabled: auth::totp_enabled(&st.db, signed.user.id).await?,
        codes_left: auth::recovery_codes_left(&st.db, signed.user.id).await?,
        enrol_secret,
        enrol_uri,
        recovery_codes: extras.recovery_codes,
        events,
        message: extras.message,
        error: extras.error,
    })
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn security(State(st): State<AppState>, signed: Signed, Query(q): Query<NoticeQuery>) -> WebResult<Response> {
    let message = match q.notice.as_deref() {
        Some("revoked") => "The session was signed out.",
        _ => "",
    };
    render(&security_page(&st, &signed, SecurityExtras { message: message.into(), ..Default::default() }).await?)
}

pub async fn revoke_session(
    State(st): State<AppState>,
    signed: Signed,
    meta: ClientMeta,
    p: crate::extract::Params,
) -> WebResult<Response> {
    let id = p.str("session_id");
    if id.len() > 64 || !auth::revoke_session(&st.db, signed.user.id, id).await? {
        return Err(WebError::not_found());
    }
    auth::record_event(&st.db, signed.user.id, "session_revoked", Some(id), &crate::api::auth::audit_ctx(&meta)).await?;
    Ok(Redirect::to("/profile/security?notice=revoked").into_response())
}

/// Signs out every session, this browser's too.
pub async fn revoke_all_sessions(State(st): State<AppState>, signed: Signed, meta: ClientMeta) -> WebResult<Response> {
    auth::revoke_all_sessions(&st.db, signed.user.id).await?;
    auth::record_event(&st.db, signed.user.id, "signed_out_everywhere", None, &crate::api::auth::audit_ctx(&meta)).await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(header::SET_COOKIE, session_cookie("", false, 0));
    Ok(r)
}

/// Shows the page again with an error from the shared API logic.
async fn security_error(st: &AppState, signed: &Signed, e: crate::error::ApiError) -> WebResult<Response> {
    let status = e.status();
    if status.is_server_error() {
        return Err(e.into());
    }
    let error = match &e {
        crate::error::ApiError::Invalid(errs) => {
            errs.iter().map(|x| format!("The {} {}.", x.field.replace('_', " "), x.reason)).collect::<Vec<_>>().join(" ")
        }
        _ => WebError::from(e).message,
    };
    render_status(status, &security_page(st, signed, SecurityExtras { error, ..Default::default() }).await?)
}

pub async fn mfa_enroll(State(st): State<AppState>, signed: Signed) -> WebResult<Response> {
    match crate::api::auth::begin_totp(&st, signed.user.id).await {
        Ok(pair) => render(&security_page(&st, &signed, SecurityExtras { enrol: Some(pair), ..Default::default() }).await?),
        Err(e) => security_error(&st, &signed, e).await,
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

pub async fn mfa_confirm(State(st): State<AppState>, signed: Signed, meta: ClientMeta, Form(f): Form<CodeForm>) -> WebResult<Response> {
    match crate::api::auth::confirm_totp(&st, signed.user.id, &f.code, &meta).await {
        Ok(codes) => {
            let extras = SecurityExtras { recovery_codes: codes, message: "Two-step sign-in is on.".into(), ..Default::default() };
            render(&security_page(&st, &signed, extras).await?)
        }
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            // Keep the same secret on screen so the user can try the next code.
            let t = auth::totp(&st.db, signed.user.id).await?.filter(|t| !t.enabled);
            let enrol = t.map(|t| (t.secret.clone(), crate::totp::otpauth_uri(&signed.user.email, &t.secret)));
            let extras =
                SecurityExtras { enrol, error: "That code is not right. Type the code the app shows now.".into(), ..Default::default() };
            render_status(StatusCode::UNPROCESSABLE_ENTITY, &security_page(&st, &signed, extras).await?)
        }
        Err(e) => security_error(&st, &signed, e).await,
    }
}

#[derive(Deserialize)]
pub struct ReauthForm {
    password: String,
    code: String,
}

/// Six digits are an authenticator code; anything else a recovery code.
fn split_code(code: &str) -> (Option<&str>, Option<&str>) {
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        (Some(code), None)
    } else {
        (None, Some(code))
    }
}

pub async fn mfa_disable(State(st): State<AppState>, signed: Signed, meta: ClientMeta, Form(f): Form<ReauthForm>) -> WebResult<Response> {
    let (code, recovery) = split_code(&f.code);
    if let Err(e) = crate::api::auth::reauthenticate(&st, signed.user.id, &f.password, code, recovery).await {
        return security_error(&st, &signed, e).await;
    }
    auth::totp_disable(&st.db, signed.user.id).await?;
    auth::record_event(&st.db, signed.user.id, "two_factor_disabled", None, &crate::api::auth::audit_ctx(&meta)).await?;
    render(&security_page(&st, &signed, SecurityExtras { message: "Two-step sign-in is off.".into(), ..Default::default() }).await?)
}

pub async fn mfa_recovery_codes(
    State(st): State<AppState>,
    signed: Signed,
    meta: ClientMeta,
    Form(f): Form<ReauthForm>,
) -> WebResult<Response> {
    let (code, recovery) = split_code(&f.code);
    if let Err(e) = crate::api::auth::reauthenticate(&st, signed.user.id, &f.password, code, recovery).await {
        return security_error(&st, &signed, e).await;
    }
    let codes = auth::new_recovery_codes();
    auth::replace_recovery_codes(&st.db, signed.user.id, &codes).await?;
    auth::record_event(&st.db, signed.user.id, "recovery_codes_replaced", None, &crate::api::auth::audit_ctx(&meta)).await?;
    let extras = SecurityExtras {
        recovery_codes: codes,
        message: "New recovery codes made; the old ones no longer work.".into(),
        ..Default::default()
    };
    render(&security_page(&st, &signed, extras).await?)
}
