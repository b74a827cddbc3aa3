//! The OpenAPI document and the docs page.
use axum::response::IntoResponse;
pub async fn json() -> impl IntoResponse {
    "{}"
}
pub async fn docs_page() -> impl IntoResponse {
    ""
}
pub async fn docs_asset() -> impl IntoResponse {
    ""
}
