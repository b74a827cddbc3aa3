//! The edge of the app: which `Host` names it answers to and which other origins may call
//! the JSON API from a browser (CORS).
//!
//! - `CORVID_ALLOWED_HOSTS` (comma-separated; `.example.com` also allows its subdomains): a
//!   request naming another host is refused with 400, so a hostile `Host` cannot reach links
//!   the app builds. Unset, every host is allowed. `localhost`, `127.0.0.1` and `[::1]` are
//!   always allowed, and health checks are answered whatever the host.
//! - `CORVID_CORS_ORIGINS` (comma-separated origins such as `https://app.example.com`, or
//!   `*`): browsers on those origins may call `/api/…` with bearer tokens. Credentials
//!   (cookies) are never allowed cross-origin, so the web app's session cannot be used from
//!   another site. Preflights from other origins are refused with 403.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeConfig {
    /// `None`: any host. Entries are lower-case host names, optionally with a port; a leading
    /// dot matches the domain and its subdomains.
    pub allowed_hosts: Option<Vec<String>>,
    /// Origins allowed to call the API cross-origin; `*` allows any.
    pub cors_origins: Vec<String>,
}

const ALWAYS_ALLOWED: &[&str] = &["localhost", "127.0.0.1", "[::1]"];
const CORS_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const CORS_HEADERS: &str = "authorization, content-type, if-match, idempotency-key, x-request-id";
const CORS_EXPOSE: &str = "etag, location, retry-after, x-request-id, idempotent-replayed";

impl EdgeConfig {
    /// Parses the two settings; `Err` names what is wrong so the server refuses to start.
    pub fn parse(allowed_hosts: Option<&str>, cors_origins: Option<&str>) -> Result<EdgeConfig, String> {
        let list = |s: &str| s.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
        let allowed_hosts = allowed_hosts.map(list).filter(|l| !l.is_empty());
        if let Some(hosts) = &allowed_hosts {
            if let Some(bad) = hosts.iter().find(|h| h.contains('/') || h.contains('@') || h.contains(' ')) {
                return Err(format!("CORVID_ALLOWED_HOSTS: {bad:?} is not a host name (write crm.example.com, not a URL)"));
            }
        }
        let cors_origins = cors_origins.map(list).unwrap_or_default();
        for o in &cors_origins {
            let ok =
                o == "*" || ((o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/') && o.matches('/').count() == 2);
            if !ok {
                return Err(format!("CORVID_CORS_ORIGINS: {o:?} is not an origin (write https://app.example.com, no path)"));
            }
        }
        Ok(EdgeConfig { allowed_hosts, cors_origins })
    }

    /// Whether a `Host` header value is one we answer to.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some(list) = &self.allowed_hosts else { return true };
        let host = host.trim().to_ascii_lowercase();
        if host.is_empty() || host.len() > 255 || host.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
            return false;
        }
        let name = strip_port(&host);
        if ALWAYS_ALLOWED.contains(&name) {
            return true;
        }
        list.iter().any(|entry| {
            if let Some(domain) = entry.strip_prefix('.') {
                name == domain || name.ends_with(entry.as_str())
            } else if (entry.contains(':') && !entry.starts_with('[')) || entry.contains("]:") {
                // An entry with a port allows only that port.
                host == *entry
            } else {
                name == entry
            }
        })
    }

    /// The origin to echo in `Access-Control-Allow-Origin`, if this one is allowed.
    pub fn cors_origin<'a>(&self, origin: &'a str) -> Option<&'a str> {
        let lower = origin.to_ascii_lowercase();
        (self.cors_origins.iter().any(|o| o == "*" || *o == lower) && origin.len() <= 255).then_some(origin)
    }
}

/// The security settings read from the environment by the binary.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub edge: EdgeConfig,
    pub limits: crate::ratelimit::Limits,
    pub smtp: Option<crate::mail::SmtpConfig>,
    pub mail_from: Option<String>,
    pub public_url: Option<String>,
    pub previous_jwt_secret: Option<String>,
    pub log_retention: crate::syslog::Retention,
}

impl Settings {
    /// Reads `CORVID_ALLOWED_HOSTS`, `CORVID_CORS_ORIGINS`, `CORVID_RATE_LIMIT_PER_MIN`,
    /// `CORVID_RATE_LIMIT_USER_PER_MIN`, `CORVID_RATE_LIMIT_AUTH_PER_MIN` (0 turns a limit
    /// off), `CORVID_SMTP_URL`, `CORVID_MAIL_FROM`, `CORVID_PUBLIC_URL`,
    /// `CORVID_JWT_PREVIOUS_SECRET`, `CORVID_LOG_RETENTION_DAYS` and `CORVID_LOG_MAX_ROWS`
    /// through `get` (the process environment in the binary). Bad values are errors.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let get = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let num = |k: &str, default: i64, max: i64| -> Result<i64, String> {
            match get(k) {
                None => Ok(default),
                Some(v) => {
                    v.parse::<i64>().ok().filter(|n| (0..=max).contains(n)).ok_or_else(|| format!("{k} must be a number from 0 to {max}"))
                }
            }
        };
        let defaults = crate::ratelimit::Limits::default();
        let limit = |k: &str, d: u32| num(k, i64::from(d), 1_000_000).map(|n| n as u32);
        let limits = crate::ratelimit::Limits {
            per_ip: limit("CORVID_RATE_LIMIT_PER_MIN", defaults.per_ip)?,
            per_user: limit("CORVID_RATE_LIMIT_USER_PER_MIN", defaults.per_user)?,
            auth_per_ip: limit("CORVID_RATE_LIMIT_AUTH_PER_MIN", defaults.auth_per_ip)?,
        };
        let smtp =
            get("CORVID_SMTP_URL").map(|u| crate::mail::SmtpConfig::parse(&u)).transpose().map_err(|e| format!("CORVID_SMTP_URL: {e}"))?;
        let public_url = get("CORVID_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err("CORVID_PUBLIC_URL must start with http:// or https://".into());
            }
        }
        let mail_from = get("CORVID_MAIL_FROM");
        if let Some(f) = &mail_from {
            crate::mail::parse_mailbox(f).map_err(|e| format!("CORVID_MAIL_FROM: {e}"))?;
        }
        let log_defaults = crate::syslog::Retention::default();
        Ok(Settings {
            edge: EdgeConfig::parse(get("CORVID_ALLOWED_HOSTS").as_deref(), get("CORVID_CORS_ORIGINS").as_deref())?,
            limits,
            smtp,
            mail_from,
            public_url,
            previous_jwt_secret: get("CORVID_JWT_PREVIOUS_SECRET"),
            log_retention: crate::syslog::Retention {
                days: num("CORVID_LOG_RETENTION_DAYS", log_defaults.days, 3650)?.max(1),
                max_rows: num("CORVID_LOG_MAX_ROWS", log_defaults.max_rows, 1_000_000_000)?.max(1000),
            },
        })
    }

    /// Applies the settings to the app. `jwt_secret` is the configured signing secret, if
    /// any (the previous secret only matters with it); `listen_url` is the default base of
    /// links in mail; `demo` lets undeliverable links be logged.
    pub fn apply(self, state: &mut AppState, jwt_secret: Option<&str>, listen_url: &str, demo: bool) {
        if let Some(secret) = jwt_secret.filter(|s| !s.is_empty()) {
            state.keys = crate::jwt::Keys::with_previous(secret.as_bytes(), self.previous_jwt_secret.as_deref().map(str::as_bytes));
        }
        state.edge = std::sync::Arc::new(self.edge);
        state.limiter = std::sync::Arc::new(crate::ratelimit::Limiter::new(self.limits));
        let mut mailer = crate::mail::Mailer { smtp: self.smtp, demo, ..Default::default() };
        if let Some(from) = self.mail_from {
            mailer.from = from;
        }
        match &mailer.smtp {
            Some(s) => tracing::info!(host = %s.host, port = s.port, "mail is sent by SMTP"),
            None => tracing::info!("mail is disabled (set CORVID_SMTP_URL); password-reset links cannot be sent"),
        }
        state.mailer = std::sync::Arc::new(mailer);
        state.public_url = Some(self.public_url.unwrap_or_else(|| listen_url.trim_end_matches('/').to_string()));
        state.syslog = crate::syslog::Sink::start(state.db.clone(), self.log_retention);
    }
}

/// `host:port` → `host`; `[::1]:8080` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn request_host(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

fn add_cors(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(CORS_EXPOSE));
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// Middleware: the host check, then CORS for `/api/`.
pub async fn guard(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let health = path == "/healthz" || path == "/readyz";
    if !health && st.edge.allowed_hosts.is_some() {
        let host = request_host(&req);
        if !host.as_deref().is_some_and(|h| st.edge.host_allowed(h)) {
            tracing::debug!(
                host = host.as_deref().unwrap_or("-").chars().take(100).collect::<String>(),
                "request for a host that is not allowed"
            );
            return ApiError::bad_field("Host", "is not a host this server answers to").into_response();
        }
    }
    if !path.starts_with("/api/") {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string);
    let Some(origin) = origin else { return next.run(req).await };
    let allowed = st.edge.cors_origin(&origin).map(str::to_string);
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed else {
            return ApiError::Forbidden("this origin may not call the API from a browser (CORVID_CORS_ORIGINS)".into()).into_response();
        };
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        add_cors(h, &origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(CORS_METHODS));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(CORS_HEADERS));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        return r;
    }
    let mut resp = next.run(req).await;
    if let Some(origin) = allowed {
        add_cors(resp.headers_mut(), &origin);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let any = EdgeConfig::default();
        assert!(any.host_allowed("evil.example"));
        let c = EdgeConfig::parse(Some("crm.example.com, .corp.test,api.example.com:8443"), None).expect("cfg");
        for ok in [
            "crm.example.com",
            "CRM.example.com:443",
            "corp.test",
            "a.b.corp.test:80",
            "api.example.com:8443",
            "localhost:8080",
            "127.0.0.1",
            "[::1]:3000",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "crm.example.com.evil.com",
            "xcorp.test",
            "api.example.com",
            "api.example.com:80",
            "",
            "a b",
            "user@crm.example.com",
        ] {
            assert!(!c.host_allowed(bad), "{bad}");
        }
        assert!(EdgeConfig::parse(Some("https://crm.example.com"), None).is_err());
        assert_eq!(EdgeConfig::parse(Some(" , "), None).expect("empty").allowed_hosts, None);
    }

    #[test]
    fn origins() {
        let c = EdgeConfig::parse(None, Some("https://app.example.com, http://localhost:5173")).expect("cfg");
        assert_eq!(c.cors_origin("https://app.example.com"), Some("https://app.example.com"));
        assert_eq!(c.cors_origin("http://localhost:5173"), Some("http://localhost:5173"));
        assert_eq!(c.cors_origin("https://evil.example.com"), None);
        assert_eq!(c.cors_origin("null"), None);
        assert!(EdgeConfig::parse(None, Some("https://app.example.com/")).is_err());
        assert!(EdgeConfig::parse(None, Some("app.example.com")).is_err());
        assert_eq!(EdgeConfig::parse(None, Some("*")).expect("any").cors_origin("https://x.y"), Some("https://x.y"));
    }
}
