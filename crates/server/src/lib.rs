//! Corvid's HTTP layer: the JSON API under /api/v1, its OpenAPI document, health and
//! metrics endpoints. Handlers are thin: parse, authorise (by extractor type), call the
//! store, render.

pub mod api;
pub mod error;
pub mod export;
pub mod extract;
pub mod jobs;
pub mod jwt;
pub mod metrics;
pub mod openapi;
pub mod web;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
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
}

/// Largest request body the JSON API accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest upload (imports), a little above the import file limit for the multipart framing.
pub const UPLOAD_LIMIT: usize = corvid_store::import::MAX_FILE_BYTES as usize + 64 * 1024;

impl AppState {
    /// Loads the token signing key: from `CORVID_JWT_SECRET` if set, otherwise a random key
    /// created once and kept in the database, so every node and restart shares it.
    pub async fn new(db: Db, secret: Option<String>) -> Result<AppState, corvid_store::StoreError> {
        let secret = match secret.filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => {
                use rand::RngCore;
                let mut bytes = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut bytes);
                corvid_store::migrate::init_setting(&db, "jwt_secret", &hex::encode(bytes)).await?
            }
        };
        let data_dir = std::env::var("CORVID_DATA_DIR").ok().filter(|d| !d.is_empty()).unwrap_or_else(|| "corvid-data".into()).into();
        Ok(AppState { db, data_dir, keys: jwt::Keys::new(secret.as_bytes()), metrics: Arc::new(metrics::Metrics::default()) })
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
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/me/tokens", get(auth::list_tokens).post(auth::create_token))
        .route("/api/v1/me/tokens/{token_id}", delete(auth::revoke_token))
        .route("/api/v1/companies", get(auth::my_companies).post(auth::create_company))
        .route(c, get(auth::show_company))
        .route(&format!("{c}/members"), get(admin::members).post(admin::add_member))
        .route(&format!("{c}/members/{{user_id}}"), patch(admin::update_member).delete(admin::deactivate_member))
        .route(&format!("{c}/teams"), get(admin::teams).post(admin::create_team))
        .route(&format!("{c}/metadata/objects"), get(admin::objects))
        .route(&format!("{c}/metadata/objects/{{object}}"), get(admin::object))
        .route(&format!("{c}/metadata/objects/{{object}}/fields"), post(admin::create_field))
        .route(&format!("{c}/metadata/objects/{{object}}/fields/{{name}}"), delete(admin::delete_field))
        .route(&format!("{c}/audit"), get(records::company_audit))
        .route(&format!("{c}/audit/verify"), get(records::verify_audit))
        .route(&format!("{c}/data/export"), get(records::export))
        .route(&format!("{c}/data/import"), get(api::imports::list).post(api::imports::start).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
        .route(&format!("{c}/data/validate"), post(api::imports::validate).layer(DefaultBodyLimit::max(UPLOAD_LIMIT)))
        .route(&format!("{c}/data/import/{{import_id}}"), get(api::imports::show))
        .route(&format!("{c}/data/import/{{import_id}}/errors.csv"), get(api::imports::errors_csv))
        .route(&format!("{c}/jobs"), get(api::jobs::list).post(api::jobs::enqueue))
        .route(&format!("{c}/jobs/{{job_id}}"), get(api::jobs::show))
        .route(&format!("{c}/jobs/{{job_id}}/cancel"), post(api::jobs::cancel))
        .route(&format!("{c}/jobs/{{job_id}}/retry"), post(api::jobs::retry))
        .route(&format!("{c}/job-schedules"), get(api::jobs::schedules).post(api::jobs::create_schedule))
        .route(&format!("{c}/job-schedules/{{schedule_id}}"), patch(api::jobs::update_schedule).delete(api::jobs::delete_schedule))
        .route(&format!("{c}/stats/leads"), get(admin::lead_stats))
        .route(&format!("{c}/stats/deals"), get(admin::deal_stats))
        .route(&format!("{c}/stats/activities"), get(admin::activity_stats))
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
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
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
    let mut resp = tracing::Instrument::instrument(fut, span.clone()).await;
    let elapsed = started.elapsed();
    st.metrics.observe(&method, &route, resp.status().as_u16(), elapsed);
    span.in_scope(|| {
        tracing::debug!(status = resp.status().as_u16(), ms = elapsed.as_secs_f64() * 1000.0, "done");
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
