//! One error type for the API, rendered as RFC 9457 problem+json. Database and internal
//! errors are logged with the request id and answered with a plain 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use corvid_core::FieldError;
use corvid_store::StoreError;
use serde_json::json;

tokio::task_local! {
    /// The current request's id, so every error body can quote it.
    pub static REQUEST_ID: String;
}

pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String, Vec<FieldError>),
    Unauthorized(String),
    Forbidden(String),
    /// Field-level permissions refused these fields.
    ForbiddenFields(Vec<FieldError>),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    /// A likely duplicate refused by the company's policy: 409 with the candidates.
    Duplicate {
        detail: String,
        candidates: serde_json::Value,
    },
    PreconditionFailed {
        current: i64,
    },
    PreconditionRequired,
    TooLarge,
    UnsupportedMedia,
    Invalid(Vec<FieldError>),
    TooManyRequests {
        retry_after: i64,
    },
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::Invalid(vec![FieldError::new(field, reason)])
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::BadRequest(detail.into(), Vec::new())
    }
    pub fn bad_field(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        ApiError::BadRequest(format!("{field} {reason}"), vec![FieldError::new(field, reason)])
    }
    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForbiddenFields(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::Duplicate { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn parts(&self) -> (&'static str, &'static str, String, &[FieldError]) {
        match self {
            ApiError::BadRequest(d, e) => ("malformed", "Malformed request", d.clone(), e),
            ApiError::Unauthorized(d) => ("unauthenticated", "Authentication required", d.clone(), &[]),
            ApiError::Forbidden(d) => ("forbidden", "Not allowed", d.clone(), &[]),
            ApiError::ForbiddenFields(e) => {
                let detail = e.iter().map(|x| format!("{} {}", x.field, x.reason)).collect::<Vec<_>>().join("; ");
                ("forbidden", "Not allowed", detail, e)
            }
            ApiError::NotFound(d) => ("not-found", "Not found", d.clone(), &[]),
            ApiError::MethodNotAllowed => ("method-not-allowed", "Method not allowed", "this route does not take that method".into(), &[]),
            ApiError::Conflict(d) => ("conflict", "Conflict", d.clone(), &[]),
            ApiError::Duplicate { detail, .. } => ("duplicate", "Likely duplicate", detail.clone(), &[]),
            ApiError::PreconditionFailed { current } => (
                "stale-version",
                "Stale version",
                format!("the record was changed by someone else; it is now at version {current}. Reload it and apply your change again"),
                &[],
            ),
            ApiError::PreconditionRequired => (
                "version-required",
                "Version required",
                "send the version you are changing, in an If-Match header or a version field".into(),
                &[],
            ),
            ApiError::TooLarge => ("too-large", "Request too large", "the request body is larger than this route accepts".into(), &[]),
            ApiError::UnsupportedMedia => ("unsupported-media-type", "Unsupported media type", "send application/json".into(), &[]),
            ApiError::Invalid(e) => {
                let detail = e.iter().map(|x| format!("{} {}", x.field, x.reason)).collect::<Vec<_>>().join("; ");
                ("validation", "Invalid input", detail, e)
            }
            ApiError::TooManyRequests { retry_after } => {
                ("throttled", "Too many requests", format!("try again in {retry_after} seconds"), &[])
            }
            ApiError::Internal => {
                ("internal", "Internal error", "something went wrong on our side; quote the request id if you report it".into(), &[])
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (slug, title, detail, errors) = self.parts();
        let mut body = json!({
            "type": format!("/problems/{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        if !errors.is_empty() {
            body["errors"] = serde_json::to_value(errors).unwrap_or_default();
        }
        if let ApiError::Duplicate { candidates, .. } = &self {
            body["candidates"] = candidates.clone();
        }
        if let ApiError::PreconditionFailed { current } = &self {
            body["current_version"] = (*current).into();
        }
        if let Some(id) = current_request_id() {
            body["request_id"] = id.into();
        }
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let ApiError::TooManyRequests { retry_after } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found("record"),
            StoreError::Stale { current } => ApiError::PreconditionFailed { current },
            StoreError::Invalid(errors) => ApiError::Invalid(errors),
            StoreError::Conflict(d) => ApiError::Conflict(d),
            StoreError::Duplicate(found) => {
                let list = found.iter().take(3).map(|c| format!("{} {} ({})", c.number, c.title, c.reasons.join(", "))).collect::<Vec<_>>();
                ApiError::Duplicate {
                    detail: format!("this looks like a duplicate of {}; the company's duplicate policy blocks it", list.join("; ")),
                    candidates: serde_json::to_value(&found).unwrap_or_default(),
                }
            }
            StoreError::Forbidden(d) => ApiError::Forbidden(d),
            StoreError::FieldForbidden(e) => ApiError::ForbiddenFields(e),
            other => {
                tracing::error!(request_id = current_request_id().as_deref().unwrap_or("-"), error = %other, "store error");
                ApiError::Internal
            }
        }
    }
}
