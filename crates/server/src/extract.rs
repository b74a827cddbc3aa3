//! Request extractors. The type a handler asks for is the access it has: `AuthUser` means a
//! valid token, `Member` a tenant handle for the company in the path (404 for non-members),
//! `Admin` the same for Admins only. A forgotten check therefore does not compile.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use corvid_core::meta::ObjectDef;
use corvid_core::FieldError;
use corvid_store::audit::AuditCtx;
use corvid_store::Tenant;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::SocketAddr;
use uuid::Uuid;

/// Set by the request-id middleware.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Where a request came from, for the audit trail.
#[derive(Clone, Debug)]
pub struct ClientMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        Ok(client_meta(parts))
    }
}

pub fn client_meta(parts: &Parts) -> ClientMeta {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| parts.extensions.get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>().map(|c| c.0))
        .map(|a| a.ip().to_string());
    let user_agent = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect());
    let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    ClientMeta { ip, user_agent, request_id }
}

/// A caller with a valid access token or personal API token.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user_id: Uuid,
    /// The login session, absent for personal API tokens.
    pub session: Option<Uuid>,
    pub meta: ClientMeta,
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let meta = client_meta(parts);
        let Some(token) = bearer(&parts.headers) else {
            return Err(ApiError::Unauthorized("send an access token or API token as `Authorization: Bearer <token>`".into()));
        };
        let (user, active) = if token.starts_with("cvd_") {
            match corvid_store::auth::api_token_user(&state.db, token).await? {
                Some(t) => (AuthUser { user_id: t.user_id, session: None, meta }, t.active),
                None => return Err(ApiError::Unauthorized("the API token is invalid, expired or revoked".into())),
            }
        } else {
            let claims = state
                .keys
                .verify(token, chrono::Utc::now().timestamp())
                .map_err(|e| ApiError::Unauthorized(format!("the access token is not valid ({e:?}); sign in or refresh it")))?;
            let Some(t) = corvid_store::auth::session_user(&state.db, claims.sid, claims.sub).await? else {
                return Err(ApiError::Unauthorized("this session has ended; sign in again".into()));
            };
            (AuthUser { user_id: claims.sub, session: Some(claims.sid), meta }, t.active)
        };
        if !active {
            return Err(ApiError::Unauthorized("this user is deactivated".into()));
        }
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// Path parameters by name, with errors that name the parameter.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let raw = RawPathParams::from_request_parts(parts, state).await.map_err(|_| ApiError::bad_request("the path could not be read"))?;
        let mut map = HashMap::new();
        for (k, v) in raw.iter() {
            map.insert(k.to_string(), v.to_string());
        }
        Ok(Params(map))
    }
}

impl Params {
    pub fn str(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
    pub fn uuid(&self, name: &str) -> ApiResult<Uuid> {
        parse_uuid(name, self.str(name))
    }
    /// The object named in the path; unknown names are 404s that say what exists.
    pub fn object(&self) -> ApiResult<&'static ObjectDef> {
        let name = self.str("object");
        corvid_core::object(name).ok_or_else(|| {
            ApiError::NotFound(format!(
                "there is no object called \"{}\"; objects are {}",
                name.chars().take(40).collect::<String>(),
                corvid_core::meta::OBJECT_NAMES.join(", ")
            ))
        })
    }
}

pub fn parse_uuid(name: &str, s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::bad_field(name, "must be a valid id (UUID)"))
}

/// A member of the company named in the path, with the tenant handle for that company.
pub struct Member(pub Tenant);

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        let params = Params::from_request_parts(parts, state).await?;
        let company_id = params.uuid("company_id")?;
        // Non-members get the same answer as for a company that does not exist.
        let Some(member) = corvid_store::access::load(&state.db, company_id, user.user_id).await? else {
            return Err(ApiError::not_found("company"));
        };
        crate::syslog::note_company(company_id);
        Ok(Member(Tenant {
            company_id,
            user_id: user.user_id,
            role: member.role,
            calling_code: member.calling_code,
            access: member.access,
            audit: AuditCtx {
                company_id,
                actor_id: Some(user.user_id),
                ip: user.meta.ip.clone(),
                user_agent: user.meta.user_agent.clone(),
                request_id: Some(user.meta.request_id.clone()),
            },
        }))
    }
}

/// An Admin of the company in the path.
pub struct Admin(pub Tenant);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Member(t) = Member::from_request_parts(parts, state).await?;
        if !t.role.is_admin() {
            return Err(ApiError::Forbidden("only Admins of this company can do this".into()));
        }
        Ok(Admin(t))
    }
}

/// A JSON body with problem+json errors: 400 for malformed JSON, 413 for too large, 422 with
/// the failing field for well-formed JSON of the wrong shape.
pub struct JsonBody<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
            let ct = ct.to_ascii_lowercase();
            if !(ct.starts_with("application/json") || ct.contains("+json")) {
                return Err(ApiError::UnsupportedMedia);
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::bad_request("the request body could not be read")
            }
        })?;
        Ok(JsonBody(parse_json(&bytes)?, bytes))
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty; send a JSON object"));
    }
    // Syntax first (serde_json limits nesting depth to 128), then shape, naming the field.
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if let Some(field) = nul_at(&value, "") {
        return Err(ApiError::invalid(if field.is_empty() { "body" } else { &field }, "must not contain NUL characters"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        let msg = e.into_inner().to_string();
        let field = match msg.strip_prefix("missing field `") {
            Some(rest) => rest.trim_end_matches('`').to_string(),
            None => field,
        };
        ApiError::Invalid(vec![FieldError::new(field, msg)])
    })
}

/// Where a body holds a NUL character (in a string or a key), as `a.b[2]`. No stored text
/// has one and PostgreSQL refuses it (a 500), so it is bad input whatever the route.
fn nul_at(v: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match v {
        Value::String(s) if s.contains('\0') => Some(path.to_string()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, x)| nul_at(x, &format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let name: String = k.replace('\0', "").chars().take(64).collect();
            let p = if path.is_empty() { name } else { format!("{path}.{name}") };
            if k.contains('\0') {
                Some(p)
            } else {
                nul_at(x, &p)
            }
        }),
        _ => None,
    }
}
