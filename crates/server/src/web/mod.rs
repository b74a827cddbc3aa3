//! The web app: server-rendered pages (askama, auto-escaped) with htmx, over the same store
//! services as the API. Sessions are server-side (cookie holds a random id), every
//! state-changing request carries the session's CSRF token, and the company in the URL is
//! checked against the caller's memberships by the `Page` extractor.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod dedupe;
pub mod format;
pub mod imports;
pub mod jobs;
pub mod leads;
pub mod logs;
pub mod privacy;
pub mod records;
pub mod roles;
pub mod rules;

use crate::error::ApiError;
use crate::extract::{client_meta, Params};
use crate::AppState;
use askama::Template;
use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use corvid_core::role::Role;
use corvid_store::audit::AuditCtx;
use corvid_store::auth::User;
use corvid_store::companies::{self, MembershipSummary};
use corvid_store::web::{self as websess, WebSession};
use corvid_store::{StoreError, Tenant};
use uuid::Uuid;

pub const COOKIE: &str = "corvid_session";

pub fn routes() -> Router<AppState> {
    let a = "/app/{company_id}";
    Router::new()
        .route("/", get(auth::home))
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/register", get(auth::register_page).post(auth::register_submit))
        .route("/logout", post(auth::logout))
        .route("/profile", get(auth::profile))
        .route("/profile/password", post(auth::change_password))
        .route("/profile/tokens", post(auth::create_token))
        .route("/profile/tokens/{token_id}/revoke", post(auth::revoke_token))
        .route("/login/mfa", get(auth::mfa_page).post(auth::mfa_submit))
        .route("/forgot-password", get(auth::forgot_page).post(auth::forgot_submit))
        .route("/reset-password", get(auth::reset_page).post(auth::reset_submit))
        .route("/profile/security", get(auth::security))
        .route("/profile/sessions/{session_id}/revoke", post(auth::revoke_session))
        .route("/profile/sessions/revoke-all", post(auth::revoke_all_sessions))
        .route("/profile/mfa/enroll", post(auth::mfa_enroll))
        .route("/profile/mfa/confirm", post(auth::mfa_confirm))
        .route("/profile/mfa/disable", post(auth::mfa_disable))
        .route("/profile/mfa/recovery-codes", post(auth::mfa_recovery_codes))
        .route("/assets/{file}", get(assets::serve))
        .route(a, get(auth::company_home))
        .route(&format!("{a}/dashboard"), get(admin::dashboard))
        .route(&format!("{a}/pipeline"), get(admin::pipeline))
        .route(&format!("{a}/pipeline/move"), post(admin::pipeline_move))
        .route(&format!("{a}/settings/members"), get(admin::members).post(admin::add_member))
        .route(&format!("{a}/settings/members/{{user_id}}"), post(admin::update_member))
        .route(&format!("{a}/settings/members/{{user_id}}/transfer"), get(roles::transfer_form).post(roles::transfer))
        .route(&format!("{a}/settings/roles"), get(roles::list).post(roles::create))
        .route(&format!("{a}/settings/roles/{{key}}"), get(roles::editor).post(roles::save))
        .route(&format!("{a}/settings/roles/{{key}}/reset"), post(roles::reset))
        .route(&format!("{a}/settings/roles/{{key}}/delete"), post(roles::delete))
        .route(&format!("{a}/settings/teams"), get(roles::teams).post(roles::create_team))
        .route(&format!("{a}/settings/teams/{{team_id}}"), post(roles::update_team))
        .route(&format!("{a}/settings/teams/{{team_id}}/delete"), post(roles::delete_team))
        .route(&format!("{a}/settings/teams/members/{{user_id}}"), post(roles::set_reporting))
        .route(&format!("{a}/settings/fields"), get(admin::fields).post(admin::create_field))
        .route(&format!("{a}/settings/fields/{{object}}/{{name}}/delete"), post(admin::delete_field))
        .route(&format!("{a}/settings/audit"), get(admin::audit))
        .route(&format!("{a}/settings/jobs"), get(jobs::page).post(jobs::action))
        .route(&format!("{a}/settings/scoring"), get(rules::scoring).post(rules::scoring_post))
        .route(&format!("{a}/settings/assignment"), get(rules::assignment).post(rules::assignment_post))
        .route(&format!("{a}/leads/{{id}}/score"), get(rules::panel))
        .route(&format!("{a}/settings/logs"), get(logs::page))
        .route(&format!("{a}/settings/dedupe"), get(dedupe::settings).post(dedupe::settings_post))
        .route(&format!("{a}/settings/dedupe/scans/{{scan_id}}"), get(dedupe::scan_report))
        .route(&format!("{a}/dedupe/review"), get(dedupe::review))
        .route(&format!("{a}/dedupe/merge"), post(dedupe::merge_post))
        .route(&format!("{a}/dedupe/dismiss"), post(dedupe::dismiss_post))
        .route(&format!("{a}/{{object}}/{{id}}/duplicates"), get(dedupe::panel))
        .route(
            &format!("{a}/imports"),
            get(imports::index).post(imports::upload).layer(axum::extract::DefaultBodyLimit::max(crate::UPLOAD_LIMIT)),
        )
        .route(&format!("{a}/imports/templates/{{template_id}}/delete"), post(imports::delete_template))
        .route(&format!("{a}/imports/{{import_id}}"), get(imports::progress))
        .route(&format!("{a}/imports/{{import_id}}/mapping"), get(imports::mapping_page).post(imports::mapping_save))
        .route(&format!("{a}/imports/{{import_id}}/preview"), get(imports::preview_page))
        .route(&format!("{a}/imports/{{import_id}}/start"), post(imports::start))
        .route(&format!("{a}/imports/{{import_id}}/errors.csv"), get(imports::errors_csv))
        .route(&format!("{a}/leads/{{id}}/qualification"), get(leads::qualification).post(leads::save_qualification))
        .route(&format!("{a}/leads/{{id}}/convert"), get(leads::convert_page).post(leads::convert_step))
        .route(&format!("{a}/settings/quality"), get(privacy::settings_page))
        .route(&format!("{a}/dashboard/quality"), get(privacy::widget))
        .route(&format!("{a}/{{object}}/{{id}}/privacy"), get(privacy::panel))
        .route(&format!("{a}/{{object}}/{{id}}/privacy/consent"), post(privacy::consent))
        .route(&format!("{a}/{{object}}/{{id}}/privacy/export"), get(privacy::export))
        .route(&format!("{a}/{{object}}/{{id}}/privacy/erase"), post(privacy::erase))
        .route(&format!("{a}/{{object}}"), get(records::list).post(records::create))
        .route(&format!("{a}/{{object}}/new"), get(records::new_form))
        .route(&format!("{a}/{{object}}/bulk"), post(records::bulk))
        .route(&format!("{a}/{{object}}/export"), get(records::export))
        .route(&format!("{a}/{{object}}/views"), post(records::save_view))
        .route(&format!("{a}/{{object}}/views/{{view_id}}/delete"), post(records::delete_view))
        .route(&format!("{a}/{{object}}/{{id}}"), get(records::show).post(records::update))
        .route(&format!("{a}/{{object}}/{{id}}/edit"), get(records::edit_form))
        .route(&format!("{a}/{{object}}/{{id}}/field/{{field}}"), get(records::field_edit).post(records::field_save))
        .route(&format!("{a}/{{object}}/{{id}}/delete"), post(records::delete))
        .route(&format!("{a}/{{object}}/{{id}}/restore"), post(records::restore))
        .route(&format!("{a}/{{object}}/{{id}}/log"), post(records::log_activity))
        .route(&format!("{a}/{{object}}/{{id}}/task"), post(records::add_task))
}

/// An error page: a message, and the request id to quote.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub message: String,
}

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        WebError { status, message: message.into() }
    }
    pub fn not_found() -> Self {
        WebError::new(StatusCode::NOT_FOUND, "We couldn't find that page. It may have been removed, or the link is wrong.")
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    request_id: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let title = match self.status.as_u16() {
            403 => "Not allowed",
            404 => "Not found",
            409 => "Conflict",
            422 => "Please check your input",
            429 => "Slow down",
            s if s >= 500 => "Something went wrong",
            _ => "That didn't work",
        };
        let page = ErrorPage {
            status: self.status.as_u16(),
            title,
            message: &self.message,
            request_id: crate::error::current_request_id().unwrap_or_default(),
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

impl From<ApiError> for WebError {
    fn from(e: ApiError) -> Self {
        let status = e.status();
        let message = match &e {
            ApiError::NotFound(_) => "We couldn't find that page. It may have been removed, or the link is wrong.".to_string(),
            ApiError::Forbidden(d) => format!("You don't have permission to do that: {d}."),
            ApiError::Internal => {
                "Something went wrong on our side. Please try again; if it keeps happening, quote the request id below.".into()
            }
            ApiError::TooManyRequests { retry_after } => format!("Too many attempts. Try again in {retry_after} seconds."),
            ApiError::Invalid(errs) => field_errors(errs),
            ApiError::Conflict(d) | ApiError::BadRequest(d, _) | ApiError::Unauthorized(d) => d.clone(),
            ApiError::Duplicate { detail, .. } => format!("Not saved: {detail}."),
            other => format!("{other:?}"),
        };
        WebError::new(status, message)
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "template failed");
        WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "This page could not be shown. Please try again.")
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// Validation errors as one sentence for a notice ("email is not valid; phone …").
pub fn field_errors(errs: &[corvid_core::FieldError]) -> String {
    errs.iter().map(|e| format!("{} {}", e.field, e.reason)).collect::<Vec<_>>().join("; ")
}

pub fn render<T: Template>(t: &T) -> WebResult<Response> {
    Ok(Html(t.render()?).into_response())
}

pub fn render_status<T: Template>(status: StatusCode, t: &T) -> WebResult<Response> {
    Ok((status, Html(t.render()?)).into_response())
}

pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_string())
    })
}

/// Whether the request reached us over TLS (directly or via a proxy that says so); the
/// session cookie is then marked Secure.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

pub fn session_cookie(value: &str, secure: bool, max_age_days: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let c = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}", max_age_days * 86_400);
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("corvid_session=; Path=/; Max-Age=0"))
}

/// A signed-in browser user.
#[derive(Clone)]
pub struct Signed {
    pub user: User,
    pub session: WebSession,
    pub cookie: String,
}

/// Sends the browser to the sign-in page, remembering where it wanted to go.
pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        let next = if self.0.starts_with('/') && !self.0.starts_with("//") { self.0 } else { "/".into() };
        let encoded: String = serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
        Redirect::to(&format!("/login?{encoded}")).into_response()
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = ToLogin;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ToLogin> {
        let back = || {
            if parts.method == Method::GET {
                ToLogin(parts.uri.path_and_query().map_or("/".into(), |p| p.as_str().to_string()))
            } else {
                ToLogin("/".into())
            }
        };
        if let Some(s) = parts.extensions.get::<Signed>() {
            return Ok(s.clone());
        }
        let Some(cookie) = cookie_value(&parts.headers) else { return Err(back()) };
        let Ok(Some(session)) = websess::session(&state.db, &cookie).await else { return Err(back()) };
        let Ok(Some(user)) = corvid_store::auth::user_by_id(&state.db, session.user_id).await else { return Err(back()) };
        let s = Signed { user, session, cookie };
        parts.extensions.insert(s.clone());
        Ok(s)
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        Ok(<Signed as FromRequestParts<AppState>>::from_request_parts(parts, state).await.ok())
    }
}

/// What every page's layout needs.
#[derive(Clone)]
pub struct Ctx {
    pub user_id: Uuid,
    pub user_name: String,
    pub user_email: String,
    pub csrf: String,
    pub company_id: Uuid,
    pub company_name: String,
    pub role: Role,
    pub access: corvid_store::access::Access,
    pub companies: Vec<MembershipSummary>,
    pub nav: String,
}

impl Ctx {
    pub fn is_admin(&self) -> bool {
        self.role.is_admin()
    }
    pub fn can_write(&self) -> bool {
        self.role.can_write()
    }
    /// Whether the role may create records of `object` (the "New" buttons).
    pub fn can_create(&self, object: &str) -> bool {
        self.access.scope(object, corvid_core::access::Action::Create) != corvid_core::access::Scope::None
    }
    /// Whether the role may read `object` at all (its navigation link).
    pub fn can_read(&self, object: &str) -> bool {
        self.access.scope(object, corvid_core::access::Action::Read) != corvid_core::access::Scope::None
    }
    pub fn can_export(&self, object: &str) -> bool {
        self.access.scope(object, corvid_core::access::Action::Export) != corvid_core::access::Scope::None
    }
    /// Roles with an import scope (by default Admins and Managers) import files.
    pub fn can_import(&self) -> bool {
        crate::api::imports::can_import(&self.access)
    }
    pub fn base(&self) -> String {
        format!("/app/{}", self.company_id)
    }
    pub fn role_label(&self) -> &'static str {
        self.role.label()
    }
    pub fn active(&self, nav: &str) -> &'static str {
        if self.nav == nav {
            "active"
        } else {
            ""
        }
    }
}

/// A signed-in member of the company in the URL: the layout context and the tenant handle.
pub struct Page {
    pub ctx: Ctx,
    pub tenant: Tenant,
    pub signed: Signed,
}

pub enum PageRejection {
    Login(ToLogin),
    Error(WebError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            PageRejection::Login(l) => l.into_response(),
            PageRejection::Error(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Page {
    type Rejection = PageRejection;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageRejection> {
        let signed = Signed::from_request_parts(parts, state).await.map_err(PageRejection::Login)?;
        let params = Params::from_request_parts(parts, state).await.map_err(|e| PageRejection::Error(e.into()))?;
        let company_id = Uuid::parse_str(params.str("company_id")).map_err(|_| PageRejection::Error(WebError::not_found()))?;
        let err = |e: StoreError| PageRejection::Error(e.into());
        let Some(member) = corvid_store::access::load(&state.db, company_id, signed.user.id).await.map_err(err)? else {
            return Err(PageRejection::Error(WebError::not_found()));
        };
        crate::syslog::note_company(company_id);
        let companies = companies::companies_of(&state.db, signed.user.id).await.map_err(err)?;
        let company_name = companies.iter().find(|c| c.id == company_id).map(|c| c.name.clone()).unwrap_or_default();
        let meta = client_meta(parts);
        let nav = params.0.get("object").cloned().unwrap_or_else(|| parts.uri.path().rsplit('/').next().unwrap_or("").to_string());
        let ctx = Ctx {
            user_id: signed.user.id,
            user_name: signed.user.name.clone(),
            user_email: signed.user.email.clone(),
            csrf: signed.session.csrf_token.clone(),
            company_id,
            company_name,
            role: member.role,
            access: member.access.clone(),
            companies,
            nav,
        };
        let tenant = Tenant {
            company_id,
            user_id: signed.user.id,
            role: member.role,
            calling_code: member.calling_code,
            access: member.access,
            audit: AuditCtx {
                company_id,
                actor_id: Some(signed.user.id),
                ip: meta.ip,
                user_agent: meta.user_agent,
                request_id: Some(meta.request_id),
            },
        };
        Ok(Page { ctx, tenant, signed })
    }
}

/// True for htmx requests, which get a fragment instead of a whole page.
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Rejects cross-site form posts: every state-changing request must carry the session's CSRF
/// token (form field `_csrf`, `X-CSRF-Token` header, or for multipart uploads `_csrf` in the
/// query; always compared in constant time). Sign-in and sign-up, which have no
/// session yet, instead require a same-origin `Origin` when the browser sends one.
pub async fn csrf_guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) || req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let same_origin = match parts.headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
            origin.split("://").nth(1) == Some(host)
        }
    };
    if !same_origin {
        return WebError::new(StatusCode::FORBIDDEN, "This form was sent from another site, so it was refused.").into_response();
    }
    let path = parts.uri.path();
    // The second sign-in step and password reset also come before any session; the former is
    // tied to its HttpOnly challenge cookie, the latter to the emailed token.
    if matches!(path, "/login" | "/register" | "/login/mfa" | "/forgot-password" | "/reset-password") {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let Some(cookie) = cookie_value(&parts.headers) else {
        return ToLogin("/".into()).into_response();
    };
    let session = match websess::session(&st.db, &cookie).await {
        Ok(Some(s)) => s,
        Ok(None) => return ToLogin("/".into()).into_response(),
        Err(e) => return WebError::from(e).into_response(),
    };
    let header_token = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    // File uploads (multipart) are not buffered here to find a form field: a plain upload form
    // carries the token in its action's query (`?_csrf=`), htmx sends the header.
    let is_multipart = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"));
    let query_token = if is_multipart {
        serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v)
    } else {
        None
    };
    let header_token = header_token.or(query_token);
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    // Forms are read here (they are small) to find the token and to refuse NUL characters
    // once for every form: no text holds one, and PostgreSQL would fail on it (a 500).
    let mut has_nul = false;
    let (token, body) = match (header_token, is_form) {
        (header_token, true) => match to_bytes(body, crate::BODY_LIMIT).await {
            Ok(bytes) => {
                let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
                has_nul = pairs.iter().any(|(k, v)| k.contains('\0') || v.contains('\0'));
                (header_token.or_else(|| pairs.into_iter().find(|(k, _)| k == "_csrf").map(|(_, v)| v)), Body::from(bytes))
            }
            Err(_) => return WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "That form is too large.").into_response(),
        },
        (token, false) => (token, body),
    };
    let ok = token.is_some_and(|t| constant_time_eq(t.as_bytes(), session.csrf_token.as_bytes()));
    if !ok {
        return WebError::new(
            StatusCode::FORBIDDEN,
            "Your form expired or came from somewhere else. Go back, reload the page and try again.",
        )
        .into_response();
    }
    if has_nul {
        return WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Text cannot contain NUL characters. Remove them and send the form again.")
            .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Security headers for HTML: a CSP with no inline script, no framing.
pub async fn page_headers(req: Request, next: Next) -> Response {
    let https = is_https(req.headers());
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let is_html = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/html"));
    if is_html && !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
    }
    if https {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    resp
}

/// Where to go after a form: a 303 for plain posts, `HX-Redirect` for htmx.
pub fn redirect(headers: &HeaderMap, to: &str) -> Response {
    if is_htmx(headers) {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(to) {
            r.headers_mut().insert("hx-redirect", v);
        }
        r
    } else {
        Redirect::to(to).into_response()
    }
}
