//! Dashboard, pipeline board and settings pages.
use super::{Page, WebError, WebResult};
use axum::response::Response;

pub async fn dashboard(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn pipeline(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn pipeline_move(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn members(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn add_member(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn update_member(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn fields(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn create_field(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn delete_field(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
pub async fn audit(_page: Page) -> WebResult<Response> {
    Err(WebError::not_found())
}
