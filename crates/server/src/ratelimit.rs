//! Request rate limits: token buckets in memory, per client address and per caller (access
//! token user, API token or browser session), plus tighter buckets for account routes that
//! send mail or check codes. A spent bucket answers 429 problem+json with `Retry-After`.
//!
//! The buckets are per process: with several nodes each allows the configured rate. The
//! limits that protect accounts across nodes live in the database (sign-in lockout in
//! `corvid_store::auth::login_failed`, reset links per account per hour).

use crate::error::ApiError;
use crate::extract::{bearer, client_meta};
use crate::web::{cookie_value, WebError};
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Requests allowed per minute; each bucket holds a minute's worth, so short bursts pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Every request from one client address (`CORVID_RATE_LIMIT_PER_MIN`).
    pub per_ip: u32,
    /// Every request of one signed-in caller (`CORVID_RATE_LIMIT_USER_PER_MIN`).
    pub per_user: u32,
    /// Account routes that mail or check secrets (password reset, second sign-in step) per
    /// client address (`CORVID_RATE_LIMIT_AUTH_PER_MIN`).
    pub auth_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { per_ip: 2400, per_user: 1200, auth_per_ip: 30 }
    }
}

impl Limits {
    /// No limits (benchmarks and load tests: `state.limiter = Arc::new(Limiter::new(Limits::unlimited()))`).
    pub fn unlimited() -> Limits {
        Limits { per_ip: 0, per_user: 0, auth_per_ip: 0 }
    }
}

/// Reset links requested per email address per hour, whether or not it has an account (so the
/// answer never depends on that).
pub const RESET_REQUESTS_PER_EMAIL_PER_HOUR: u32 = 5;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets above this count are pruned of the full (idle) ones.
const PRUNE_AT: usize = 50_000;

#[derive(Debug, Default)]
pub struct Limiter {
    pub limits: Limits,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter { limits, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token from `key`'s bucket of `capacity` tokens refilled over `period_secs`.
    /// `Err(seconds)` says how long until a token is back.
    pub fn take(&self, key: &str, capacity: u32, period_secs: u32) -> Result<(), i64> {
        if capacity == 0 {
            return Ok(());
        }
        let cap = f64::from(capacity);
        let per_sec = cap / f64::from(period_secs.max(1));
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < cap);
        }
        let b = map.entry(key.to_string()).or_insert(Bucket { tokens: cap, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - b.tokens) / per_sec).ceil() as i64).max(1))
        }
    }

    /// A per-minute limit.
    pub fn per_minute(&self, key: &str, per_min: u32) -> Result<(), i64> {
        self.take(key, per_min, 60)
    }
}

/// Who is calling, as far as can be told without the database: the user of a valid access
/// token, a hash of an API token or of a session cookie. Invalid credentials count only
/// against the address.
fn caller_key(st: &AppState, req: &Request) -> Option<String> {
    if let Some(token) = bearer(req.headers()) {
        if token.starts_with("cvd_") {
            return Some(format!("tok:{}", &corvid_store::auth::token_hash(token)[..24]));
        }
        return st.keys.verify(token, chrono::Utc::now().timestamp()).ok().map(|c| format!("user:{}", c.sub));
    }
    cookie_value(req.headers()).filter(|c| c.len() <= 100).map(|c| format!("web:{}", &corvid_store::auth::token_hash(&c)[..24]))
}

/// The 429 answer: problem+json for the API, a page for the browser.
pub fn too_many(path: &str, retry_after: i64) -> Response {
    if path.starts_with("/api/") {
        return ApiError::TooManyRequests { retry_after }.into_response();
    }
    let mut r =
        WebError::new(StatusCode::TOO_MANY_REQUESTS, format!("Too many requests. Try again in {retry_after} seconds.")).into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Middleware: the address bucket, then the caller's. Static assets and health checks are
/// free. Refusals are logged at debug only (a flood must not become a flood of log rows);
/// the metrics count every 429.
pub async fn limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/assets/") || path.starts_with("/api/docs/") || path == "/healthz" || path == "/readyz" {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let ip = client_meta(&parts).ip.unwrap_or_else(|| "-".into());
    let req = Request::from_parts(parts, body);
    let limits = st.limiter.limits;
    let path = req.uri().path().to_string();
    if let Err(wait) = st.limiter.per_minute(&format!("ip:{ip}"), limits.per_ip) {
        tracing::debug!(ip = %ip, "rate limit reached for a client address");
        return too_many(&path, wait);
    }
    if let Some(who) = caller_key(&st, &req) {
        if let Err(wait) = st.limiter.per_minute(&who, limits.per_user) {
            tracing::debug!(ip = %ip, "rate limit reached for a caller");
            return too_many(&path, wait);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_capacity_then_refuses_with_a_wait() {
        let l = Limiter::new(Limits::default());
        for _ in 0..3 {
            assert_eq!(l.take("k", 3, 60), Ok(()));
        }
        let wait = l.take("k", 3, 60).expect_err("spent");
        assert!((1..=20).contains(&wait), "{wait}");
        // Other keys have their own bucket; zero means unlimited.
        assert_eq!(l.take("other", 3, 60), Ok(()));
        assert_eq!(l.take("free", 0, 60), Ok(()));
    }

    #[test]
    fn bucket_refills_over_time() {
        let l = Limiter::new(Limits::default());
        // 1000 per second refills a token per millisecond.
        for _ in 0..1000 {
            let _ = l.take("fast", 1000, 1);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(l.take("fast", 1000, 1), Ok(()));
    }
}
