//! Sign-in, sign-up, sign-out, the landing redirect and the profile page.

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
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(Query(q): Query<NextQuery>) -> WebResult<Response> {
    render(&LoginPage { email: String::new(), next: safe_next(q.next.as_deref()), error: String::new() })
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

async fn start_session(st: &AppState, headers: &HeaderMap, meta: &ClientMeta, user_id: uuid::Uuid, to: &str) -> WebResult<Response> {
    let (cookie, _) = websess::create_session(&st.db, user_id, meta.ip.as_deref(), meta.user_agent.as_deref()).await?;
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().insert(header::SET_COOKIE, session_cookie(&cookie, super::is_https(headers), websess::SESSION_DAYS));
    Ok(r)
}

pub async fn login_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    meta: ClientMeta,
    Form(f): Form<LoginForm>,
) -> WebResult<Response> {
    let next = safe_next(f.next.as_deref());
    match crate::api::auth::check_credentials(&st, &meta, &f.email, &f.password).await {
        Ok(user) => start_session(&st, &headers, &meta, user.id, &next).await,
        Err(e) => {
            let status = e.status();
            let error = match status {
                StatusCode::TOO_MANY_REQUESTS => WebError::from(e).message,
                StatusCode::UNAUTHORIZED => "That email and password don't match an account.".into(),
                _ => return Err(e.into()),
            };
            render_status(status, &LoginPage { email: f.email.chars().take(200).collect(), next, error })
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
    if f.name.trim().is_empty() || f.name.chars().count() > 200 {
        errors.push(("name".into(), "Tell us your name (up to 200 characters).".into()));
    }
    if f.company_name.trim().is_empty() || f.company_name.chars().count() > 200 {
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
        role: first.map_or(corvid_core::role::Role::ReadOnly, |c| c.role),
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

pub async fn change_password(State(st): State<AppState>, signed: Signed, Form(f): Form<PasswordForm>) -> WebResult<Response> {
    let error = if !auth::verify_password(&signed.user.password_hash, &f.current) {
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
