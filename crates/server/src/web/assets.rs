//! Static files, compiled into the binary: no build step, no CDN.

use crate::error::ApiError;
use crate::extract::Params;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../assets/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/app.js")),
    ("kanban.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/kanban.js")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/vendor/htmx.min.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../assets/favicon.svg")),
];

pub async fn serve(p: Params) -> Response {
    let name = p.str("file");
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => {
            let mut r = body.to_vec().into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
            r
        }
        None => ApiError::not_found("asset").into_response(),
    }
}
