//! Settings → System log: the company's structured server log, for Admins, with the same
//! filters as the API (`api::logs`).

use super::{render, render_status, Ctx, Page, WebError, WebResult};
use crate::api::logs::{cursor_of, filter_from_query, PAGE};
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use corvid_store::syslog;

pub struct LogLine {
    pub when: String,
    pub level: &'static str,
    pub badge: &'static str,
    pub target: String,
    pub message: String,
    pub fields: String,
    pub request_id: String,
    pub request_href: String,
}

#[derive(Default)]
pub struct LogForm {
    pub level: String,
    pub q: String,
    pub request_id: String,
    pub since: String,
}

#[derive(Template)]
#[template(path = "settings_logs.html")]
struct LogsPage {
    ctx: Ctx,
    section: &'static str,
    rows: Vec<LogLine>,
    form: LogForm,
    levels: Vec<(&'static str, &'static str)>,
    older_href: String,
    newest_href: String,
    is_first: bool,
    error: String,
    tz_name: String,
}

fn badge(level: &str) -> &'static str {
    match level {
        "error" => "red",
        "warn" => "orange",
        "info" => "blue",
        _ => "grey",
    }
}

fn encode(pairs: &[(String, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

pub async fn page(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can read the system log."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    let base = ctx.base();
    let company = corvid_store::companies::get(&st.db, page.tenant.company_id).await?;
    let tz: chrono_tz::Tz = company.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata);
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().chars().take(200).collect::<String>()).unwrap_or_default();
    let form = LogForm { level: get("level"), q: get("q"), request_id: get("request_id"), since: get("since") };
    // The page's "since" is a local date-time from the form; the API takes RFC 3339.
    let mut api_pairs: Vec<(String, String)> = Vec::new();
    let mut problems = Vec::new();
    for (k, v) in [("level", &form.level), ("q", &form.q), ("request_id", &form.request_id)] {
        if !v.is_empty() {
            api_pairs.push((k.into(), v.clone()));
        }
    }
    if !form.since.is_empty() {
        match chrono::NaiveDateTime::parse_from_str(&form.since, "%Y-%m-%dT%H:%M") {
            Ok(local) => match local.and_local_timezone(tz).earliest() {
                Some(t) => api_pairs.push(("since".into(), t.with_timezone(&chrono::Utc).to_rfc3339())),
                None => problems.push("That time does not exist in the company's time zone.".to_string()),
            },
            Err(_) => problems.push("“Since” must be a date and time.".to_string()),
        }
    }
    let before = get("cursor");
    if !before.is_empty() {
        api_pairs.push(("cursor".into(), before.clone()));
    }
    let (rows, more) = if problems.is_empty() {
        match filter_from_query(page.tenant.company_id, Some(&encode(&api_pairs))) {
            Ok(mut f) => {
                f.limit = PAGE + 1;
                let mut rows = syslog::list(&st.db, &f).await?;
                let more = rows.len() as i64 > PAGE;
                rows.truncate(PAGE as usize);
                (rows, more)
            }
            Err(e) => {
                problems.push(WebError::from(e).message);
                (Vec::new(), false)
            }
        }
    } else {
        (Vec::new(), false)
    };
    let kept: Vec<(String, String)> = pairs.iter().filter(|(k, v)| k != "cursor" && !v.is_empty()).cloned().collect();
    let href = |extra: Option<(&str, String)>| {
        let mut q = kept.clone();
        if let Some((k, v)) = extra {
            q.push((k.to_string(), v));
        }
        let s = encode(&q);
        format!("{base}/settings/logs{}{s}", if s.is_empty() { "" } else { "?" })
    };
    let older_href = match (more, rows.last()) {
        (true, Some(last)) => href(Some(("cursor", cursor_of(last)))),
        _ => String::new(),
    };
    let lines = rows
        .iter()
        .map(|e| {
            let rid = e.request_id.clone().unwrap_or_default();
            LogLine {
                when: e.at.with_timezone(&tz).format("%d %b %Y %H:%M:%S").to_string(),
                level: e.level,
                badge: badge(e.level),
                target: e.target.clone(),
                message: e.message.clone(),
                fields: match &e.fields {
                    serde_json::Value::Object(m) if m.is_empty() => String::new(),
                    v => v.to_string().chars().take(600).collect(),
                },
                request_href: if rid.is_empty() {
                    String::new()
                } else {
                    format!("{base}/settings/logs?{}", encode(&[("request_id".into(), rid.clone())]))
                },
                request_id: rid,
            }
        })
        .collect();
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let p = LogsPage {
        ctx,
        section: "logs",
        rows: lines,
        form,
        levels: vec![
            ("", "Any level"),
            ("error", "Errors"),
            ("warn", "Warnings and errors"),
            ("info", "Info and above"),
            ("debug", "Everything"),
        ],
        older_href,
        newest_href: href(None),
        is_first: before.is_empty(),
        error: problems.join(" "),
        tz_name: tz.name().to_string(),
    };
    if status == StatusCode::OK {
        render(&p)
    } else {
        render_status(status, &p)
    }
}
