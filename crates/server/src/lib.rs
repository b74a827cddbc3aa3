//! Corvid's HTTP layer: the JSON API under /api/v1, its OpenAPI document, health and
//! metrics endpoints. Handlers are thin: parse, authorise (by extractor type), call the
//! store, render.

pub mod api;
pub mod edge;
pub mod error;
pub mod export;
pub mod extract;
pub mod jobs;
pub mod jwt;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod syslog;
pub mod totp;
pub mod web;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Router;
use corvid_store::Db;
use error::ApiError;
use extract::RequestId;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Where uploads (imports) are kept: `CORVID_DATA_DIR`, default `corvid-data`.
    pub data_dir: std::path::PathBuf,
    pub keys: jwt::Keys,
    pub metrics: Arc<metrics::Metrics>,
    /// Allowed hosts and CORS origins (`CORVID_ALLOWED_HOSTS`, `CORVID_CORS_ORIGINS`).
    pub edge: Arc<edge::EdgeConfig>,
    /// Request rate limits (`CORVID_RATE_LIMIT_*`).
    pub limiter: Arc<ratelimit::Limiter>,
    /// Account mail (`CORVID_SMTP_URL`, `CORVID_MAIL_FROM`).
    pub mailer: Arc<mail::Mailer>,
    /// Base of links in mail, e.g. `https://crm.example.com` (`CORVID_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Where this app's system log events go.
    pub syslog: syslog::Sink,
}

/// Largest request body the JSON API accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest upload (imports), a little above the import file limit for the multipart framing.
pub const UPLOAD_LIMIT: usize = corvid_store::import::MAX_FILE_BYTES as usize + 64 * 1024;

impl AppState {
    /// Loads the token signing key: from `CORVID_JWT_SECRET` if set, otherwise a random key
    /// created once and kept in the database, so every node and restart shares it (and picks
    /// up a rotation within half a minute). Security settings start at their defaults; the
    /// binary applies the environment (`edge::Settings`).
    pub async fn new(db: Db, secret: Option<String>) -> Result<AppState, corvid_store::StoreError> {
        let keys = match secret.filter(|s| !s.is_empty()) {
            Some(s) => jwt::Keys::new(s.as_bytes()),
            None => {
                let keys = jwt::Keys::stored(&db).await?;
                jwt::spawn_reloader(keys.clone(), db.clone());
                keys
            }
        };
        let data_dir = std::env::var("CORVID_DATA_DIR").ok().filter(|d| !d.is_empty()).unwrap_or_else(|| "corvid-data".into()).into();
        Ok(AppState {
            syslog: syslog::Sink::start(db.clone(), syslog::Retention::default()),
            db,
            data_dir,
            keys,
            metrics: Arc::new(metrics::Metrics::default()),
            edge: Arc::new(edge::EdgeConfig::default()),
            limiter: Arc::new(ratelimit::Limiter::new(ratelimit::Limits::default())),
            mailer: Arc::new(mail::Mailer::default()),
            public_url: None,
        })
    }
}

pub fn router(state: AppState) -> Router {
    use api::{admin, auth, records};
    let c = "/api/v1/companies/{company_id}";
    Router::new()
        .merge(web::routes())
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/login/mfa", post(auth::login_mfa))
        .route("/api/v1/auth/password-reset", post(auth::password_reset))
        .route("/api/v1/auth/password-reset/confirm", post(auth::password_reset_confirm))
        .route("/api/v1/auth/sessions", get(auth::sessions))
        .route("/api/v1/auth/sessions/{session_id}", delete(auth::revoke_session))
        .route("/api/v1/auth/logout-all", post(auth::logout_all))
        .route("/api/v1/auth/mfa", get(auth::mfa_status))
        .route("/api/v1/auth/mfa/totp", post(auth::mfa_enroll))
        .route("/api/v1/auth/mfa/totp/confirm", post(auth::mfa_confirm))
        .route("/api/v1/auth/mfa/totp/disable", post(auth::mfa_disable))
        .route("/api/v1/auth/mfa/recovery-codes", post(auth::mfa_recovery_codes))
        .route("/api/v1/me/security-events", get(auth::security_events))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/me/tokens", get(auth::list_tokens).post(auth::create_token))
        .route("/api/v1/me/tokens/{token_id}", delete(auth::revoke_token))
        .route("/api/v1/companies", get(auth::my_companies).post(auth::create_company))
        .route(c, get(auth::show_company))
        .route(&format!("{c}/members"), get(admin::members).post(admin::add_member))
        .route(&format!("{c}/members/{{user_id}}"), patch(admin::update_member).delete(admin::deactivate_member))
        .route(&format!("{c}/members/{{user_id}}/role"), put(api::roles::set_member_role))
        .route(&format!("{c}/members/{{user_id}}/reporting"), patch(api::roles::set_reporting))
        .route(&format!("{c}/members/{{user_id}}/transfer"), post(api::roles::transfer))
        .route(&format!("{c}/me/permissions"), get(api::roles::my_permissions))
        .route(&format!("{c}/roles"), get(api::roles::list_roles).post(api::roles::create_role))
        .route(&format!("{c}/roles/{{key}}"), get(api::roles::show_role).patch(api::roles::update_role).delete(api::roles::delete_role))
        .route(&format!("{c}/teams"), get(api::roles::list_teams).post(api::roles::create_team))
        .route(&format!("{c}/teams/{{team_id}}"), patch(api::roles::update_team).delete(api::roles::delete_team))
        .route(&format!("{c}/metadata/objects"), get(admin::objects))
        .route(&format!("{c}/metadata/objects/{{object}}"), get(admin::object))
        .route(&format!("{c}/metadata/objects/{{object}}/fields"), post(admin::create_field))
        .route(&format!("{c}/metadata/objects/{{object}}/fields/{{name}}"), delete(admin::delete_field))
        .route(&format!("{c}/admin/logs"), get(api::logs::list))
        .route(&format!("{c}/audit"), get(records::company_audit))
        .route(&format!("{c}/audit/verify"), get(records::verify_audit))
        .route(&format!("{c}/data/export"), get(records::export))
        .route(&format!("{c}/data/import"), get(api::imports::list).post(api::imports::start).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
        .route(&format!("{c}/data/validate"), post(api::imports::validate).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
        .route(&format!("{c}/data/import/{{import_id}}"), get(api::imports::show))
        .route(&format!("{c}/data/import/{{import_id}}/errors.csv"), get(api::imports::errors_csv))
        .route(&format!("{c}/data/import-templates"), get(api::imports::list_templates).post(api::imports::create_template))
        .route(&format!("{c}/data/import-templates/{{template_id}}"), delete(api::imports::delete_template))
        .route(&format!("{c}/jobs"), get(api::jobs::list).post(api::jobs::enqueue))
        .route(&format!("{c}/jobs/{{job_id}}"), get(api::jobs::show))
        .route(&format!("{c}/jobs/{{job_id}}/cancel"), post(api::jobs::cancel))
        .route(&format!("{c}/jobs/{{job_id}}/retry"), post(api::jobs::retry))
        .route(&format!("{c}/job-schedules"), get(api::jobs::schedules).post(api::jobs::create_schedule))
        .route(&format!("{c}/job-schedules/{{schedule_id}}"), patch(api::jobs::update_schedule).delete(api::jobs::delete_schedule))
        .route(&format!("{c}/stats/leads"), get(admin::lead_stats))
        .route(&format!("{c}/stats/deals"), get(admin::deal_stats))
        .route(&format!("{c}/stats/activities"), get(admin::activity_stats))
        .route(&format!("{c}/data/conversion/rules"), get(api::leads::get_rules).put(api::leads::put_rules))
        .route(&format!("{c}/leads/{{id}}/qualification"), get(api::leads::qualification))
        .route(&format!("{c}/leads/{{id}}/qualify"), post(api::leads::qualify))
        .route(&format!("{c}/leads/{{id}}/risk-score"), get(api::leads::risk_score))
        .route(&format!("{c}/leads/{{id}}/convert"), get(api::leads::preview).post(api::leads::convert))
        .route(&format!("{c}/leads/{{id}}/duplicates"), get(api::dedupe::lead_duplicates))
        .route(&format!("{c}/leads/{{id}}/duplicates/dismiss"), post(api::dedupe::dismiss_lead))
        .route(&format!("{c}/contacts/{{id}}/duplicates"), get(api::dedupe::contact_duplicates))
        .route(&format!("{c}/accounts/{{id}}/duplicates"), get(api::dedupe::account_duplicates))
        .route(&format!("{c}/leads/merge"), post(api::dedupe::merge_leads))
        .route(&format!("{c}/contacts/merge"), post(api::dedupe::merge_contacts))
        .route(&format!("{c}/data/dedupe/policy"), get(api::dedupe::get_policy).put(api::dedupe::put_policy))
        .route(&format!("{c}/data/dedupe/scan"), post(api::dedupe::start_scan))
        .route(&format!("{c}/data/dedupe/scans"), get(api::dedupe::list_scans))
        .route(&format!("{c}/data/dedupe/scans/{{scan_id}}"), get(api::dedupe::show_scan))
        .route(&format!("{c}/data/quality-report"), get(api::privacy::quality_report))
        .route(&format!("{c}/data/governance/policies"), get(api::privacy::policies))
        .route(&format!("{c}/privacy/consent-policy"), get(api::privacy::get_consent_policy).put(api::privacy::put_consent_policy))
        .route(&format!("{c}/privacy/subjects/{{object}}/{{id}}/export"), get(api::privacy::export))
        .route(&format!("{c}/privacy/subjects/{{object}}/{{id}}/erase"), post(api::privacy::erase))
        .route(&format!("{c}/{{object}}/{{id}}/consent"), get(api::privacy::consent_log).post(api::privacy::record_consent))
        .route(&format!("{c}/scoring/rule-sets"), get(api::rules::list_sets).post(api::rules::create_set))
        .route(
            &format!("{c}/scoring/rule-sets/{{rule_set_id}}"),
            get(api::rules::show_set).patch(api::rules::update_set).delete(api::rules::delete_set),
        )
        .route(&format!("{c}/scoring/rule-sets/{{rule_set_id}}/activate"), post(api::rules::activate_set))
        .route(&format!("{c}/scoring/preview"), post(api::rules::score_preview))
        .route(&format!("{c}/scoring/rescore"), post(api::rules::rescore))
        .route(&format!("{c}/scoring/predictive"), get(api::rules::predictive_status))
        .route(&format!("{c}/scoring/predictive/train"), post(api::rules::train))
        .route(&format!("{c}/leads/{{id}}/score"), get(api::rules::lead_score))
        .route(&format!("{c}/leads/{{id}}/engagement"), post(api::rules::engagement))
        .route(&format!("{c}/assignment/rules"), get(api::rules::list_rules).post(api::rules::create_rule))
        .route(&format!("{c}/assignment/rules/reorder"), post(api::rules::reorder_rules))
        .route(
            &format!("{c}/assignment/rules/{{rule_id}}"),
            get(api::rules::show_rule).patch(api::rules::update_rule).delete(api::rules::delete_rule),
        )
        .route(&format!("{c}/assignment/preview"), post(api::rules::assign_preview))
        .route(&format!("{c}/{{object}}"), get(records::list).post(records::create))
        .route(&format!("{c}/{{object}}/search"), post(records::search))
        .route(&format!("{c}/{{object}}/bulk"), post(records::bulk))
        .route(&format!("{c}/{{object}}/{{id}}"), get(records::show).patch(records::update).delete(records::delete))
        .route(&format!("{c}/{{object}}/{{id}}/restore"), post(records::restore))
        .route(&format!("{c}/{{object}}/{{id}}/history"), get(records::history))
        .route(&format!("{c}/{{object}}/{{id}}/timeline"), get(records::timeline))
        .route("/api/openapi.json", get(openapi::json))
        .route("/api/docs", get(openapi::docs_page))
        .route("/api/docs/{file}", get(openapi::docs_asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), web::csrf_guard))
        .layer(middleware::from_fn_with_state(state.clone(), ratelimit::limit))
        .layer(middleware::from_fn_with_state(state.clone(), edge::guard))
        .layer(middleware::from_fn(web::page_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

async fn readyz(State(st): State<AppState>) -> Response {
    match st.db.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::error!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database not reachable").into_response()
        }
    }
}

/// Gives every request an id (echoed in `x-request-id` and in error bodies), a tracing span,
/// security headers and a place in the metrics. Panics in handlers become plain 500s.
async fn request_context(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::now_v7().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = Instant::now();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route, company_id = tracing::field::Empty);
    let fut = error::REQUEST_ID.scope(id.clone(), async move {
        use futures_util::FutureExt;
        match std::panic::AssertUnwindSafe(next.run(req)).catch_unwind().await {
            Ok(resp) => resp,
            Err(_) => {
                tracing::error!("handler panicked");
                ApiError::Internal.into_response()
            }
        }
    });
    let sink = st.syslog.clone();
    let mut resp = syslog::SINK.scope(sink.clone(), tracing::Instrument::instrument(fut, span.clone())).await;
    let elapsed = started.elapsed();
    st.metrics.observe(&method, &route, resp.status().as_u16(), elapsed);
    sink.in_scope(|| {
        span.in_scope(|| {
            tracing::debug!(target: "corvid::access", status = resp.status().as_u16(), ms = elapsed.as_secs_f64() * 1000.0, "request finished");
        })
    });
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Serves until Ctrl-C / SIGTERM, then drains in-flight requests.
pub async fn serve(state: AppState, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
