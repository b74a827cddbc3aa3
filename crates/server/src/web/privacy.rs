//! Consent and privacy pages: the consent panel of a lead or contact (state, log, recording a
//! decision, data export, erasure), the Data quality settings page and the dashboard widget.

use super::{is_htmx, redirect, render, Ctx, Page, WebError, WebResult};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use corvid_core::meta::ObjectDef;
use corvid_core::Value;
use corvid_store::privacy::{self, ConsentInput, CONSENT_CHANNELS, PERSON_OBJECTS};
use corvid_store::quality::{self, ObjectQuality};
use corvid_store::{companies, StoreError};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

fn person(p: &crate::extract::Params) -> WebResult<&'static ObjectDef> {
    let name = p.str("object");
    corvid_core::object(name).filter(|_| PERSON_OBJECTS.contains(&name)).ok_or_else(WebError::not_found)
}

fn id_of(p: &crate::extract::Params) -> WebResult<Uuid> {
    Uuid::parse_str(p.str("id")).map_err(|_| WebError::not_found())
}

fn first<'a>(form: &'a Pairs, key: &str) -> &'a str {
    form.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("n", s)]).map(|e| e[2..].to_string()).unwrap_or_default()
}

async fn tz_of(st: &AppState, company_id: Uuid) -> WebResult<chrono_tz::Tz> {
    Ok(companies::get(&st.db, company_id).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata))
}

fn local(at: &str, tz: chrono_tz::Tz) -> String {
    corvid_core::validate::parse_timestamp(at).map_or_else(|| at.to_string(), |t| super::format::local_time(&t, tz))
}

pub struct LogLine {
    pub when: String,
    pub decision: String,
    pub badge: &'static str,
    pub channel: String,
    pub source: String,
    pub version: String,
    pub who: String,
}

#[derive(Template)]
#[template(path = "privacy_panel.html")]
struct Panel {
    ctx: Ctx,
    href: String,
    given: bool,
    dnd: bool,
    given_at: String,
    source: String,
    version: String,
    lines: Vec<LogLine>,
    channels: &'static [&'static str],
    erased: bool,
}

#[derive(Template)]
#[template(path = "privacy_page.html")]
struct PanelPage {
    ctx: Ctx,
    title: String,
    object_label: String,
    list_href: String,
    /// The rendered panel (auto-escaped when it was rendered).
    panel_html: String,
}

/// `GET /app/{company}/{leads|contacts}/{id}/privacy`: the consent panel (a fragment for htmx,
/// a page of its own otherwise).
pub async fn panel(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let object = person(&p)?;
    let id = id_of(&p)?;
    let (rec, entries) = privacy::consent_log(&st.db, &page.tenant, object, id).await?;
    let tz = tz_of(&st, page.tenant.company_id).await?;
    let users = super::format::Lookups::load(&st.db, page.tenant.company_id, object, &[&rec]).await?.users;
    let lines = entries
        .iter()
        .rev()
        .take(50)
        .map(|e| LogLine {
            when: local(&e.at, tz),
            decision: if e.given { "Given".into() } else { "Withdrawn".into() },
            badge: if e.given { "green" } else { "orange" },
            channel: e.channel.replace('_', " "),
            source: e.source.clone().unwrap_or_default(),
            version: e.text_version.clone().unwrap_or_default(),
            who: e.actor_id.and_then(|a| users.get(&a).cloned()).unwrap_or_else(|| "System".into()),
        })
        .collect();
    let base = page.ctx.base();
    let panel = Panel {
        ctx: page.ctx.clone(),
        href: format!("{base}/{}/{id}", object.name),
        given: rec.get("gdpr_consent") == Some(&Value::Bool(true)),
        dnd: rec.get("dnd_status") == Some(&Value::Bool(true)),
        given_at: match rec.get("gdpr_consent_at") {
            Some(Value::Timestamp(t)) => super::format::local_time(t, tz),
            _ => String::new(),
        },
        source: rec.text("gdpr_consent_source").unwrap_or("").to_string(),
        version: rec.text("gdpr_consent_version").unwrap_or("").to_string(),
        lines,
        channels: CONSENT_CHANNELS,
        erased: rec.text("last_name") == Some("Erased") && rec.get("email").is_none() && rec.get("phone").is_none(),
    };
    if is_htmx(&headers) {
        return render(&panel);
    }
    render(&PanelPage {
        ctx: page.ctx.clone(),
        title: rec.title(object),
        object_label: object.label.clone(),
        list_href: format!("{base}/{}", object.name),
        panel_html: panel.render()?,
    })
}

/// `POST .../privacy/consent`: records a consent decision from the panel's form.
pub async fn consent(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let object = person(&p)?;
    let id = id_of(&p)?;
    let opt = |k: &str| Some(first(&form, k).trim().to_string()).filter(|s| !s.is_empty());
    let msg = match first(&form, "consent") {
        "given" | "withdrawn" => {
            let input = ConsentInput {
                consent: first(&form, "consent") == "given",
                channel: first(&form, "channel").to_string(),
                source: opt("source"),
                text_version: opt("text_version"),
                note: opt("note"),
                ip: None,
            };
            match privacy::record_consent(&st.db, &page.tenant, object, id, &input).await {
                Ok((_, e)) => format!("Consent {} recorded.", e.decision),
                Err(StoreError::Invalid(errs)) => format!("Consent not recorded: {}", super::field_errors(&errs)),
                Err(e) => return Err(e.into()),
            }
        }
        _ => "Consent not recorded: choose given or withdrawn.".to_string(),
    };
    Ok(redirect(&headers, &format!("{}/{}/{id}?notice={}", page.ctx.base(), object.name, urlencode(&msg))))
}

/// `GET .../privacy/export`: everything about the person as a JSON download.
pub async fn export(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    let object = person(&p)?;
    let id = id_of(&p)?;
    let doc = privacy::export_subject(&st.db, &page.tenant, object, id).await?;
    let mut resp = Json(doc).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}-{id}-export.json\"", object.singular)) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `POST .../privacy/erase` (Admins): anonymises the person, then shows the record.
pub async fn erase(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let object = person(&p)?;
    let id = id_of(&p)?;
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can erase personal data."));
    }
    let report = privacy::erase_subject(&st.db, &page.tenant, object, id).await?;
    let mut msg = format!(
        "Personal data erased: {} {}, {} activities and {} tasks anonymised.",
        report.people.len(),
        if report.people.len() == 1 { "person record" } else { "person records" },
        report.activities,
        report.tasks
    );
    let (records, rows) = (report.elsewhere.records.len(), report.elsewhere.rows.values().sum::<u64>());
    if records + rows as usize > 0 {
        msg.push_str(&format!(" Mentions removed from {records} other records and {rows} log, import and job entries."));
    }
    Ok(redirect(&headers, &format!("{}/{}/{id}?notice={}", page.ctx.base(), object.name, urlencode(&msg))))
}

// ---------------------------------------------------------------------------------------
// Data quality
// ---------------------------------------------------------------------------------------

pub struct Figure {
    pub label: String,
    pub value: String,
    pub href: String,
}

pub struct QualityBlock {
    pub label: String,
    pub total: i64,
    pub completeness: String,
    pub figures: Vec<Figure>,
    pub fields: Vec<(String, i64, String, i64)>,
}

fn pct(p: Option<f64>) -> String {
    p.map_or("—".into(), |v| format!("{v:.1}%"))
}

/// The report as blocks with links to the matching lists.
fn blocks(base: &str, objects: &[ObjectQuality]) -> Vec<QualityBlock> {
    objects
        .iter()
        .map(|o| {
            let label = corvid_core::object(&o.object).map_or(o.object.clone(), |d| d.label_plural.clone());
            let list = format!("{base}/{}", o.object);
            let mut figures = Vec::new();
            let mut add = |label: &str, v: Option<i64>, filter: &str| {
                if let Some(v) = v {
                    let href = if filter.is_empty() { String::new() } else { format!("{list}?{filter}") };
                    figures.push(Figure { label: label.into(), value: v.to_string(), href });
                }
            };
            add("Invalid", o.invalid, "filter[validation_status]=invalid");
            add("Pending validation", o.pending_validation, "filter[validation_status]=pending");
            add("Duplicates", o.duplicates, "filter[is_duplicate]=true");
            add("Spam score high", o.spam_high, "filter[spam_score]=high");
            add("Do not disturb", o.do_not_disturb, "filter[dnd_status]=true");
            add("With consent", o.with_consent, "filter[gdpr_consent]=true");
            add("Open", o.open, "");
            for s in o.stale.iter().flatten() {
                add(&format!("Stale {} days+", s.days), Some(s.count), "");
            }
            QualityBlock {
                label,
                total: o.total,
                completeness: pct(o.completeness_percent),
                figures,
                fields: o
                    .completeness
                    .iter()
                    .map(|c| (c.label.clone(), c.filled, pct(c.percent), c.percent.map_or(0, |p| p.round() as i64)))
                    .collect(),
            }
        })
        .collect()
}

pub struct PolicyLine {
    pub name: String,
    pub source: String,
    pub value: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "settings_quality.html")]
struct QualityPage {
    ctx: Ctx,
    section: &'static str,
    generated: String,
    blocks: Vec<QualityBlock>,
    policies: Vec<PolicyLine>,
}

/// `GET /app/{company}/settings/quality` (Admins): the data quality report and the policies.
pub async fn settings_page(State(st): State<AppState>, page: Page) -> WebResult<Response> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can change company settings."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    let cid = page.tenant.company_id;
    let tz = tz_of(&st, cid).await?;
    let report = quality::report(&st.db, cid).await?;
    let policies = quality::policies(&st.db, cid, &page.tenant.calling_code).await?;
    let policies = policies["data"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| PolicyLine {
                    name: p["name"].as_str().unwrap_or("").into(),
                    source: p["source"].as_str().unwrap_or("").into(),
                    value: serde_json::to_string_pretty(&p["value"]).unwrap_or_default(),
                    description: p["description"].as_str().unwrap_or("").into(),
                })
                .collect()
        })
        .unwrap_or_default();
    render(&QualityPage {
        generated: local(&report.generated_at, tz),
        blocks: blocks(&ctx.base(), &report.objects),
        ctx,
        section: "quality",
        policies,
    })
}

#[derive(Template)]
#[template(path = "quality_widget.html")]
struct Widget {
    ctx: Ctx,
    block: Option<QualityBlock>,
}

/// How long a company's widget figures are reused: the card is on every dashboard view, and
/// on a million leads one pass takes a second or two.
const WIDGET_TTL: Duration = Duration::from_secs(120);

type WidgetCache = Mutex<HashMap<Uuid, (Instant, ObjectQuality)>>;

fn widget_cache() -> &'static WidgetCache {
    static CACHE: OnceLock<WidgetCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `GET /app/{company}/dashboard/quality`: the dashboard's data quality card (leads), kept
/// for a couple of minutes per company on this node.
pub async fn widget(State(st): State<AppState>, page: Page) -> WebResult<Response> {
    let cid = page.tenant.company_id;
    let cached = widget_cache().lock().ok().and_then(|c| c.get(&cid).filter(|(at, _)| at.elapsed() < WIDGET_TTL).map(|(_, r)| r.clone()));
    let report = match cached {
        Some(r) => r,
        None => {
            let leads = corvid_core::object("leads").ok_or_else(WebError::not_found)?;
            let r = quality::object_report(&st.db, cid, leads, Some(quality::KEY_LEAD_FIELDS)).await?;
            if let Ok(mut c) = widget_cache().lock() {
                c.retain(|_, (at, _)| at.elapsed() < WIDGET_TTL);
                c.insert(cid, (Instant::now(), r.clone()));
            }
            r
        }
    };
    let block = blocks(&page.ctx.base(), &[report]).into_iter().next();
    render(&Widget { ctx: page.ctx.clone(), block })
}
