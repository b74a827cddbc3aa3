//! Dashboard, pipeline board and settings pages.
//!
//! The dashboard's figures come from the same store aggregates as the statistics API
//! (`stats::count_by`, `stats::deals_by_stage`), so the page and the API always agree; the
//! arithmetic on top of them lives in [`compute_kpis`], a pure function with unit tests.
//! Money is summed in integer minor units (and `rust_decimal` where a division is needed),
//! never in floating point.

use super::format::{format_amount, local_time, Lookups};
use super::records::Choice;
use super::{is_htmx, redirect, render, render_status, Ctx, Page, WebError, WebResult};
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use corvid_core::meta::{stage_status, FieldKind, ObjectDef};
use corvid_core::role::Role;
use corvid_core::value::{format_timestamp, now_micros};
use corvid_core::{money, Record, SqlType, Value};
use corvid_store::audit::{self, AuditFilter};
use corvid_store::custom_fields::{self, NewCustomField, OptionInput};
use corvid_store::listing::{Condition, ListQuery, Op, SortKey};
use corvid_store::stats::{self, Bucket, StageSum};
use corvid_store::{companies, StoreError, Q};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value as JsonValue};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

fn pairs(raw: Option<&str>) -> Pairs {
    serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default()
}

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A short message from the query string (`?notice=…`), for display after a redirect.
fn message(pairs: &Pairs, key: &str) -> String {
    first(pairs, key).unwrap_or("").chars().take(200).collect()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

/// Splits text after punctuation (and within long unbroken runs) so that emails, ids and URLs
/// can wrap on a phone; templates join the pieces with `<wbr>`, which adds no text.
pub fn soft_breaks(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut run = 0;
    for c in s.chars() {
        cur.push(c);
        run = if c.is_whitespace() { 0 } else { run + 1 };
        if matches!(c, '@' | '.' | '-' | '_' | '/' | '?' | '&' | '=' | ',' | ':') || run >= 16 {
            out.push(std::mem::take(&mut cur));
            run = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn def(name: &str) -> WebResult<&'static ObjectDef> {
    corvid_core::object(name).ok_or_else(WebError::not_found)
}

/// Label and badge colour of an enum value of a standard field.
fn option_of(object: &ObjectDef, field: &str, value: &str) -> (String, String) {
    object
        .field(field)
        .and_then(|f| f.kind.options().iter().find(|o| o.value == value))
        .map_or_else(|| (value.replace('_', " "), "grey".to_string()), |o| (o.label.clone(), o.colour.clone()))
}

fn cond(field: &str, op: Op, value: JsonValue) -> Condition {
    Condition { field: field.into(), op, value }
}

fn strings(items: &[&str]) -> JsonValue {
    JsonValue::Array(items.iter().map(|s| JsonValue::String((*s).to_string())).collect())
}

async fn company_tz(st: &AppState, company_id: Uuid) -> WebResult<(chrono_tz::Tz, String)> {
    let c = companies::get(&st.db, company_id).await?;
    let tz = c.as_ref().and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata);
    let currency = c.map(|c| c.default_currency).filter(|c| !c.is_empty()).unwrap_or_else(|| "INR".into());
    Ok((tz, currency))
}

// ---------------------------------------------------------------------------------------
// KPI arithmetic (pure)
// ---------------------------------------------------------------------------------------

/// Lead statuses that count as open: all but converted, unqualified and disqualified.
pub const OPEN_LEAD_STATUSES: &[&str] = &["new", "contacted", "nurturing", "qualified", "recycled"];

/// Amounts of one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyTotal {
    pub currency: String,
    pub value_minor: i64,
    pub weighted_minor: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Kpis {
    pub open_leads: i64,
    pub total_leads: i64,
    pub converted_leads: i64,
    /// Converted leads ÷ all leads, as a percentage with one decimal; `None` without leads.
    pub conversion_rate: Option<Decimal>,
    /// Value and weighted value of deals in open stages, per currency (sorted by code).
    pub pipeline: Vec<CurrencyTotal>,
}

/// The dashboard's headline figures from the statistics aggregates: lead counts by status and
/// deal sums by stage and currency (as the statistics endpoints return them).
pub fn compute_kpis(by_status: &[Bucket], by_stage: &[StageSum]) -> Kpis {
    let count_of = |pred: &dyn Fn(&str) -> bool| -> i64 {
        by_status.iter().filter(|b| b.key.as_deref().is_some_and(pred)).map(|b| b.count).fold(0i64, i64::saturating_add)
    };
    let total_leads = by_status.iter().map(|b| b.count).fold(0i64, i64::saturating_add);
    let open_leads = count_of(&|k| OPEN_LEAD_STATUSES.contains(&k));
    let converted_leads = count_of(&|k| k == "converted");
    let conversion_rate = (total_leads > 0).then(|| {
        (Decimal::from(converted_leads) * Decimal::from(100) / Decimal::from(total_leads))
            .round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero)
    });
    let mut pipeline: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for s in by_stage.iter().filter(|s| stage_status(&s.stage) == "open") {
        let exp = money::currency_exponent(&s.currency).unwrap_or(2);
        let value = money::parse_minor(&s.value, exp).unwrap_or(0);
        let weighted = money::parse_minor(&s.weighted_value, exp).unwrap_or(0);
        let e = pipeline.entry(s.currency.clone()).or_default();
        e.0 = e.0.saturating_add(value);
        e.1 = e.1.saturating_add(weighted);
    }
    Kpis {
        open_leads,
        total_leads,
        converted_leads,
        conversion_rate,
        pipeline: pipeline
            .into_iter()
            .map(|(currency, (value_minor, weighted_minor))| CurrencyTotal { currency, value_minor, weighted_minor })
            .collect(),
    }
}

/// "33.3%": always one decimal place.
pub fn percent_text(rate: Option<Decimal>) -> String {
    match rate {
        Some(mut d) => {
            d.rescale(1);
            format!("{d}%")
        }
        None => "—".into(),
    }
}

/// Probability-weighted value in minor units: Σ(value × probability) / 100, rounded as the
/// statistics endpoint rounds it.
pub fn weighted_minor(items: &[(i64, i64)]) -> i64 {
    let sum: i128 = items.iter().map(|(v, p)| i128::from(*v) * i128::from(*p)).sum();
    i64::try_from((Decimal::from(sum) / Decimal::from(100)).round_dp(0)).unwrap_or(i64::MAX)
}

/// First day of the month of `d`, and of the month after.
pub fn month_bounds(d: NaiveDate) -> (NaiveDate, NaiveDate) {
    let start = d.with_day(1).unwrap_or(d);
    let next =
        if d.month() == 12 { NaiveDate::from_ymd_opt(d.year() + 1, 1, 1) } else { NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1) };
    (start, next.unwrap_or(start))
}

// ---------------------------------------------------------------------------------------
// Charts: server-rendered SVG geometry
// ---------------------------------------------------------------------------------------

const CHART_WIDTH: i64 = 360;
const BAR_MAX: i64 = 160;

pub struct ChartBar {
    pub y: i64,
    pub width: i64,
    pub fill: &'static str,
    pub text: String,
    pub text_x: i64,
    pub text_y: i64,
}

pub struct ChartRow {
    pub label: String,
    pub label_y: i64,
    pub bars: Vec<ChartBar>,
}

pub struct LegendItem {
    pub x: i64,
    pub fill: &'static str,
    pub label: String,
}

pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub desc: String,
    pub width: i64,
    pub height: i64,
    pub legend: Vec<LegendItem>,
    pub rows: Vec<ChartRow>,
}

impl Chart {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn bar_width(v: i64, max: i64) -> i64 {
    if v <= 0 || max <= 0 {
        return 0;
    }
    let w = i64::try_from(i128::from(v) * i128::from(BAR_MAX) / i128::from(max)).unwrap_or(BAR_MAX);
    w.clamp(2, BAR_MAX)
}

/// Rows of labelled horizontal bars: each row is a label line and one bar per series.
/// `rows` are (label, [(value, text)]) with one entry per series in `series`.
fn bar_chart(
    id: &'static str,
    title: &str,
    desc: String,
    series: &[(&'static str, String)],
    rows: Vec<(String, Vec<(i64, String)>)>,
) -> Chart {
    let mut maxes = vec![0i64; series.len()];
    for (_, vals) in &rows {
        for (i, (v, _)) in vals.iter().enumerate() {
            if let Some(m) = maxes.get_mut(i) {
                *m = (*m).max(*v);
            }
        }
    }
    let legend_h = if series.len() > 1 { 22 } else { 0 };
    let mut legend = Vec::new();
    let mut x = 0;
    for (fill, label) in series.iter().filter(|_| series.len() > 1) {
        legend.push(LegendItem { x, fill, label: label.clone() });
        x += 26 + i64::try_from(label.chars().count()).unwrap_or(10) * 7;
    }
    let mut y = legend_h;
    let mut out = Vec::new();
    for (label, vals) in rows {
        let label_y = y + 13;
        // A row with nothing in it is one line: "Proposal · 0 deals".
        if vals.iter().all(|(v, _)| *v == 0) {
            let text = vals.first().map_or(label.clone(), |(_, t)| format!("{label} · {t}"));
            out.push(ChartRow { label: text, label_y, bars: Vec::new() });
            y += 24;
            continue;
        }
        let mut bars = Vec::new();
        let mut by = y + 19;
        for (i, (v, text)) in vals.into_iter().enumerate() {
            let fill = series.get(i).map_or("#2563eb", |s| s.0);
            let width = bar_width(v, maxes.get(i).copied().unwrap_or(0));
            bars.push(ChartBar { y: by, width, fill, text, text_x: width + 6, text_y: by + 10 });
            by += 16;
        }
        out.push(ChartRow { label, label_y, bars });
        y = by + 8;
    }
    Chart { id, title: title.into(), desc, width: CHART_WIDTH, height: y.max(20), legend, rows: out }
}

// ---------------------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------------------

pub struct TaskRow {
    pub href: String,
    pub title: String,
    pub due: String,
    pub priority: String,
    pub priority_badge: String,
    pub status: String,
}

pub struct ActivityRow {
    pub href: String,
    pub title: String,
    pub kind: String,
    pub badge: String,
    pub when: String,
    pub who: String,
    pub related_href: String,
    pub related: String,
}

pub struct StageLine {
    pub stage: String,
    pub currency: String,
    pub count: i64,
    pub value: String,
    pub weighted: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    ctx: Ctx,
    open_leads: i64,
    open_leads_href: String,
    new_leads_week: i64,
    new_leads_href: String,
    conversion_rate: String,
    converted_leads: i64,
    total_leads: i64,
    conversion_href: String,
    pipeline: Vec<String>,
    weighted: Vec<String>,
    pipeline_href: String,
    won_count: i64,
    won_values: Vec<String>,
    won_href: String,
    month_label: String,
    stage_chart: Chart,
    stage_lines: Vec<StageLine>,
    source_chart: Chart,
    overdue: Vec<TaskRow>,
    due_soon: Vec<TaskRow>,
    tasks_href: String,
    activities: Vec<ActivityRow>,
}

/// The member's read scope on `table` as an extra SQL condition.
fn scope_sql(t: &corvid_store::Tenant, table: &str) -> String {
    t.access.owner_condition(table, corvid_core::access::Action::Read, None).map(|c| format!(" AND {c}")).unwrap_or_default()
}

/// Statistics the member may not see (no read access, or a hidden field) show as empty.
fn or_empty<T: Default>(r: Result<T, StoreError>) -> WebResult<T> {
    match r {
        Ok(v) => Ok(v),
        Err(StoreError::Forbidden(_) | StoreError::FieldForbidden(_)) => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}

async fn count_created_since(st: &AppState, t: &corvid_store::Tenant, table: &str, since: DateTime<Utc>) -> WebResult<i64> {
    // Same conditions as the list endpoint with `filter[created_at][gte]`.
    let scope = scope_sql(t, table);
    let q = Q::new(format!("SELECT COUNT(*) FROM {table} WHERE company_id = $1 AND deleted_at IS NULL AND created_at >= $2{scope}"))
        .bind(Value::Uuid(t.company_id))
        .bind(Value::Timestamp(since));
    Ok(st.db.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0))
}

/// Deals won (stage closed_won) with a close date in [from, to): count and value per currency.
async fn won_between(st: &AppState, t: &corvid_store::Tenant, from: NaiveDate, to: NaiveDate) -> WebResult<Vec<(String, i64, i64)>> {
    if t.access.check_readable("deals", &["value", "stage", "actual_close_date"], "statistics").is_err() {
        return Ok(Vec::new());
    }
    let scope = scope_sql(t, "deals");
    let q = Q::new(format!(
        "SELECT currency, COUNT(*), CAST(COALESCE(SUM(value), 0) AS BIGINT) FROM deals \
         WHERE company_id = $1 AND deleted_at IS NULL AND stage = $2 AND actual_close_date >= $3 AND actual_close_date < $4{scope} \
         GROUP BY currency ORDER BY currency",
    ))
    .bind(Value::Uuid(t.company_id))
    .bind(Value::Text("closed_won".into()))
    .bind(Value::Date(from))
    .bind(Value::Date(to));
    Ok(st
        .db
        .fetch(&q, &[SqlType::Text, SqlType::Int, SqlType::Int])
        .await?
        .into_iter()
        .map(|r| (r.text(0).unwrap_or_else(|| "INR".into()), r.int(1).unwrap_or(0), r.int(2).unwrap_or(0)))
        .collect())
}

async fn my_tasks(st: &AppState, page: &Page, conds: Vec<Condition>, tz: chrono_tz::Tz) -> WebResult<Vec<TaskRow>> {
    let tasks = def("tasks")?;
    let mut group = vec![
        cond("assignee_id", Op::Eq, JsonValue::String(page.tenant.user_id.to_string())),
        cond("status", Op::In, strings(&["open", "in_progress"])),
    ];
    group.extend(conds);
    let lq = ListQuery {
        groups: vec![group],
        sort: vec![SortKey { field: "due_at".into(), desc: false }],
        limit: Some(50),
        ..Default::default()
    };
    let (recs, _, _) = or_empty(page.tenant.records(&st.db, tasks).list(&lq).await)?;
    let base = page.ctx.base();
    Ok(recs
        .iter()
        .map(|r| {
            let (priority, priority_badge) = option_of(tasks, "priority", r.text("priority").unwrap_or("medium"));
            TaskRow {
                href: format!("{base}/tasks/{}", r.id),
                title: r.title(tasks),
                due: match r.get("due_at") {
                    Some(Value::Timestamp(t)) => local_time(t, tz),
                    _ => String::new(),
                },
                priority,
                priority_badge,
                status: option_of(tasks, "status", r.text("status").unwrap_or("open")).0,
            }
        })
        .collect())
}

async fn recent_activities(st: &AppState, page: &Page) -> WebResult<Vec<ActivityRow>> {
    let acts = def("activities")?;
    let lq = ListQuery { sort: vec![SortKey { field: "activity_date".into(), desc: true }], limit: Some(10), ..Default::default() };
    let (recs, _, _) = or_empty(page.tenant.records(&st.db, acts).list(&lq).await)?;
    let refs: Vec<&Record> = recs.iter().collect();
    let lk = Lookups::load(&st.db, page.tenant.company_id, acts, &refs).await?;
    let base = page.ctx.base();
    Ok(recs
        .iter()
        .map(|r| {
            let (kind, badge) = option_of(acts, "activity_type", r.text("activity_type").unwrap_or("note"));
            let related = [("deal_id", "deals"), ("account_id", "accounts"), ("contact_id", "contacts"), ("lead_id", "leads")]
                .iter()
                .find_map(|(f, target)| r.get(f).and_then(Value::as_uuid).map(|id| (*target, id)));
            let (related_href, related) = match related {
                Some((target, id)) => (format!("{base}/{target}/{id}"), lk.refs.get(&id).cloned().unwrap_or_else(|| "(removed)".into())),
                None => (String::new(), String::new()),
            };
            ActivityRow {
                href: format!("{base}/activities/{}", r.id),
                title: r.title(acts),
                kind,
                badge,
                when: match r.get("activity_date") {
                    Some(Value::Timestamp(t)) => local_time(t, lk.tz),
                    _ => String::new(),
                },
                who: r.get("user_id").and_then(Value::as_uuid).and_then(|u| lk.users.get(&u).cloned()).unwrap_or_default(),
                related_href,
                related,
            }
        })
        .collect())
}

fn stage_chart(by_stage: &[StageSum], chart_currency: &str) -> (Chart, Vec<StageLine>) {
    let deals = corvid_core::object("deals");
    let stages: Vec<(String, String)> = deals
        .and_then(|d| d.field("stage"))
        .map(|f| f.kind.options().iter().map(|o| (o.value.clone(), o.label.clone())).collect())
        .unwrap_or_default();
    let exp = money::currency_exponent(chart_currency).unwrap_or(2);
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for (value, label) in &stages {
        let here: Vec<&StageSum> = by_stage.iter().filter(|s| &s.stage == value).collect();
        let count: i64 = here.iter().map(|s| s.count).sum();
        let amount = here.iter().filter(|s| s.currency == chart_currency).map(|s| money::parse_minor(&s.value, exp).unwrap_or(0)).sum();
        // Other currencies cannot share the bar; they are named here and listed in the table.
        let others: Vec<&str> = here.iter().filter(|s| s.currency != chart_currency).map(|s| s.currency.as_str()).collect();
        let mut amount_text = format_amount(amount, chart_currency);
        if !others.is_empty() {
            amount_text.push_str(&format!(" · +{}", others.join(", ")));
        }
        rows.push((label.clone(), vec![(count, format!("{count} deal{}", if count == 1 { "" } else { "s" })), (amount, amount_text)]));
        for s in here {
            let e = money::currency_exponent(&s.currency).unwrap_or(2);
            lines.push(StageLine {
                stage: label.clone(),
                currency: s.currency.clone(),
                count: s.count,
                value: format_amount(money::parse_minor(&s.value, e).unwrap_or(0), &s.currency),
                weighted: format_amount(money::parse_minor(&s.weighted_value, e).unwrap_or(0), &s.currency),
            });
        }
    }
    let total: i64 = by_stage.iter().map(|s| s.count).sum();
    let desc = if total == 0 {
        "No deals yet.".to_string()
    } else {
        rows.iter().map(|(l, v)| format!("{l}: {}, {}", v[0].1, v[1].1)).collect::<Vec<_>>().join("; ")
    };
    let chart = if total == 0 {
        bar_chart("chart-stage", "Pipeline by stage", desc, &[], Vec::new())
    } else {
        bar_chart(
            "chart-stage",
            "Pipeline by stage",
            desc,
            &[("#2563eb", "Number of deals".into()), ("#067647", format!("Value ({chart_currency})"))],
            rows,
        )
    };
    (chart, lines)
}

fn source_chart(by_source: &[Bucket]) -> Chart {
    let Some(leads) = corvid_core::object("leads") else {
        return bar_chart("chart-source", "Leads by source", String::new(), &[], Vec::new());
    };
    let rows: Vec<(String, Vec<(i64, String)>)> = by_source
        .iter()
        .map(|b| {
            let label = match &b.key {
                Some(k) => option_of(leads, "source", k).0,
                None => "Not set".to_string(),
            };
            (label, vec![(b.count, format!("{} lead{}", b.count, if b.count == 1 { "" } else { "s" }))])
        })
        .collect();
    let desc = if rows.is_empty() {
        "No leads yet.".to_string()
    } else {
        rows.iter().map(|(l, v)| format!("{l}: {}", v[0].1)).collect::<Vec<_>>().join("; ")
    };
    bar_chart("chart-source", "Leads by source", desc, &[("#2563eb", "Leads".into())], rows)
}

pub async fn dashboard(State(st): State<AppState>, page: Page) -> WebResult<Response> {
    let cid = page.tenant.company_id;
    let base = page.ctx.base();
    let (tz, default_currency) = company_tz(&st, cid).await?;
    let t = &page.tenant;
    let by_status = or_empty(stats::count_by(&st.db, t, "leads", "status").await)?;
    let by_source = or_empty(stats::count_by(&st.db, t, "leads", "source").await)?;
    let by_stage = or_empty(stats::deals_by_stage(&st.db, t).await)?;
    let kpis = compute_kpis(&by_status, &by_stage);

    let now = now_micros();
    let week_ago = now - Duration::days(7);
    let new_leads_week = count_created_since(&st, t, "leads", week_ago).await?;
    let today = now.with_timezone(&tz).date_naive();
    let (month_start, next_month) = month_bounds(today);
    let won = won_between(&st, t, month_start, next_month).await?;

    let open_stages: Vec<String> =
        corvid_core::meta::DEAL_STAGE.iter().filter(|s| stage_status(s.0) == "open").map(|s| s.0.to_string()).collect();
    let pipeline: Vec<String> = if kpis.pipeline.is_empty() {
        vec![format_amount(0, &default_currency)]
    } else {
        kpis.pipeline.iter().map(|c| format_amount(c.value_minor, &c.currency)).collect()
    };
    let weighted: Vec<String> = if kpis.pipeline.is_empty() {
        vec![format_amount(0, &default_currency)]
    } else {
        kpis.pipeline.iter().map(|c| format_amount(c.weighted_minor, &c.currency)).collect()
    };
    // The chart compares values in one currency: the company's, unless it has no deals in it.
    let chart_currency = if by_stage.iter().any(|s| s.currency == default_currency) || by_stage.is_empty() {
        default_currency.clone()
    } else {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        for s in &by_stage {
            *counts.entry(s.currency.as_str()).or_default() += s.count;
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map_or(default_currency.clone(), |(c, _)| c.to_string())
    };
    let (stage_chart, stage_lines) = stage_chart(&by_stage, &chart_currency);

    let overdue = my_tasks(&st, &page, vec![cond("due_at", Op::Lt, JsonValue::String(format_timestamp(&now)))], tz).await?;
    let soon = now + Duration::days(14);
    let due_soon = my_tasks(
        &st,
        &page,
        vec![
            cond("due_at", Op::Gte, JsonValue::String(format_timestamp(&now))),
            cond("due_at", Op::Lt, JsonValue::String(format_timestamp(&soon))),
        ],
        tz,
    )
    .await?;

    render(&DashboardPage {
        ctx: page.ctx.clone(),
        open_leads: kpis.open_leads,
        open_leads_href: format!("{base}/leads?filter[status][in]={}", OPEN_LEAD_STATUSES.join(",")),
        new_leads_week,
        new_leads_href: format!("{base}/leads?filter[created_at][gte]={}&sort=-created_at", format_timestamp(&week_ago)),
        conversion_rate: percent_text(kpis.conversion_rate),
        converted_leads: kpis.converted_leads,
        total_leads: kpis.total_leads,
        conversion_href: format!("{base}/leads?filter[status][eq]=converted"),
        pipeline,
        weighted,
        pipeline_href: format!("{base}/deals?filter[stage][in]={}", open_stages.join(",")),
        won_count: won.iter().map(|w| w.1).sum(),
        won_values: won.iter().map(|(c, _, v)| format_amount(*v, c)).collect(),
        won_href: format!(
            "{base}/deals?filter[stage][eq]=closed_won&filter[actual_close_date][gte]={month_start}&filter[actual_close_date][lt]={next_month}"
        ),
        month_label: today.format("%B %Y").to_string(),
        stage_chart,
        stage_lines,
        source_chart: source_chart(&by_source),
        overdue,
        due_soon,
        tasks_href: format!("{base}/tasks?filter[assignee_id][eq]={}&filter[status][in]=open,in_progress&sort=due_at", page.tenant.user_id),
        activities: recent_activities(&st, &page).await?,
    })
}

// ---------------------------------------------------------------------------------------
// Pipeline board
// ---------------------------------------------------------------------------------------

/// Most cards the board loads, and how far back closed deals are shown.
const BOARD_LIMIT: usize = 500;
const CLOSED_DAYS: i64 = 90;

pub struct Card {
    pub id: Uuid,
    pub version: i64,
    pub stage: String,
    pub name: String,
    pub href: String,
    pub account: String,
    pub account_href: String,
    pub value: String,
    pub owner: String,
    pub expected_close: String,
    pub closed_on: String,
}

pub struct ColumnTotal {
    pub value: String,
    pub weighted: String,
}

pub struct BoardColumn {
    pub stage: String,
    pub label: String,
    pub badge: String,
    pub closed: bool,
    pub cards: Vec<Card>,
    pub totals: Vec<ColumnTotal>,
}

#[derive(Template)]
#[template(path = "pipeline.html", blocks = ["board"])]
struct PipelinePage {
    ctx: Ctx,
    columns: Vec<BoardColumn>,
    stages: Vec<Choice>,
    notice: String,
    error: String,
    shown: usize,
    truncated: bool,
    can_move: bool,
}

/// Pages through a list query up to `max` records.
async fn collect(st: &AppState, page: &Page, object: &'static ObjectDef, mut lq: ListQuery, max: usize) -> WebResult<Vec<Record>> {
    let mut out = Vec::new();
    loop {
        let want = max.saturating_sub(out.len());
        if want == 0 {
            break;
        }
        lq.limit = Some(want.min(corvid_store::listing::MAX_LIMIT));
        let (recs, next, _) = page.tenant.records(&st.db, object).list(&lq).await?;
        out.extend(recs);
        match next {
            Some(c) => lq.cursor = Some(c),
            None => break,
        }
    }
    Ok(out)
}

pub async fn pipeline(State(st): State<AppState>, page: Page, headers: HeaderMap, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let deals = def("deals")?;
    let base = page.ctx.base();
    let (tz, _) = company_tz(&st, page.tenant.company_id).await?;
    let stages: Vec<(String, String, String)> = deals
        .field("stage")
        .map(|f| f.kind.options().iter().map(|o| (o.value.clone(), o.label.clone(), o.colour.clone())).collect())
        .unwrap_or_default();
    let open: Vec<&str> = stages.iter().map(|s| s.0.as_str()).filter(|s| stage_status(s) == "open").collect();
    let closed: Vec<&str> = stages.iter().map(|s| s.0.as_str()).filter(|s| stage_status(s) != "open").collect();
    // Open deals first (soonest expected close first), then deals closed in the last 90 days.
    let open_q = ListQuery {
        groups: vec![vec![cond("stage", Op::In, strings(&open))]],
        sort: vec![SortKey { field: "expected_close_date".into(), desc: false }],
        ..Default::default()
    };
    let mut recs = collect(&st, &page, deals, open_q, BOARD_LIMIT + 1).await?;
    if recs.len() <= BOARD_LIMIT && !closed.is_empty() {
        let since = now_micros().with_timezone(&tz).date_naive() - Duration::days(CLOSED_DAYS);
        let closed_q = ListQuery {
            groups: vec![vec![
                cond("stage", Op::In, strings(&closed)),
                cond("actual_close_date", Op::Gte, JsonValue::String(since.format("%Y-%m-%d").to_string())),
            ]],
            sort: vec![SortKey { field: "actual_close_date".into(), desc: true }],
            ..Default::default()
        };
        let room = BOARD_LIMIT + 1 - recs.len();
        recs.extend(collect(&st, &page, deals, closed_q, room).await?);
    }
    let truncated = recs.len() > BOARD_LIMIT;
    recs.truncate(BOARD_LIMIT);
    let refs: Vec<&Record> = recs.iter().collect();
    let lk = Lookups::load(&st.db, page.tenant.company_id, deals, &refs).await?;

    let mut columns: Vec<BoardColumn> = stages
        .iter()
        .map(|(v, l, c)| BoardColumn {
            stage: v.clone(),
            label: l.clone(),
            badge: c.clone(),
            closed: stage_status(v) != "open",
            cards: Vec::new(),
            totals: Vec::new(),
        })
        .collect();
    let mut sums: HashMap<String, BTreeMap<String, Vec<(i64, i64)>>> = HashMap::new();
    for r in &recs {
        let stage = r.text("stage").unwrap_or("prospecting").to_string();
        let currency = r.text("currency").unwrap_or("INR").to_string();
        let value = r.get("value").and_then(Value::as_i64);
        let probability = r.get("probability").and_then(Value::as_i64).unwrap_or(0);
        sums.entry(stage.clone()).or_default().entry(currency.clone()).or_default().push((value.unwrap_or(0), probability));
        let account_id = r.get("account_id").and_then(Value::as_uuid);
        let date = |f: &str| match r.get(f) {
            Some(Value::Date(d)) => d.format("%d %b %Y").to_string(),
            _ => String::new(),
        };
        let card = Card {
            id: r.id,
            version: r.version,
            stage: stage.clone(),
            name: r.title(deals),
            href: format!("{base}/deals/{}", r.id),
            account: account_id.and_then(|a| lk.refs.get(&a).cloned()).unwrap_or_default(),
            account_href: account_id.map(|a| format!("{base}/accounts/{a}")).unwrap_or_default(),
            value: value.map(|v| format_amount(v, &currency)).unwrap_or_default(),
            owner: r.get("owner_id").and_then(Value::as_uuid).and_then(|u| lk.users.get(&u).cloned()).unwrap_or_default(),
            expected_close: date("expected_close_date"),
            closed_on: date("actual_close_date"),
        };
        if let Some(col) = columns.iter_mut().find(|c| c.stage == stage) {
            col.cards.push(card);
        }
    }
    for col in &mut columns {
        if let Some(by_currency) = sums.get(&col.stage) {
            col.totals = by_currency
                .iter()
                .map(|(cur, items)| ColumnTotal {
                    value: format_amount(items.iter().map(|(v, _)| *v).fold(0i64, i64::saturating_add), cur),
                    weighted: format_amount(weighted_minor(items), cur),
                })
                .collect();
        }
    }
    let qp = pairs(raw.as_deref());
    let board = PipelinePage {
        ctx: page.ctx.clone(),
        columns,
        stages: stages.iter().map(|(v, l, _)| Choice { value: v.clone(), label: l.clone() }).collect(),
        notice: message(&qp, "notice"),
        error: message(&qp, "error"),
        shown: recs.len(),
        truncated,
        can_move: page.ctx.can_write(),
    };
    if is_htmx(&headers) && !headers.contains_key("hx-boosted") {
        render(&board.as_board())
    } else {
        render(&board)
    }
}

fn is_fetch(headers: &HeaderMap) -> bool {
    headers.get("x-requested-with").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("fetch"))
}

/// Moves a deal to another stage: a version-checked, audited update of its `stage`.
/// `fetch` callers (the drag and drop script) get JSON; plain forms are sent back to the board.
pub async fn pipeline_move(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(form): Form<Pairs>) -> WebResult<Response> {
    let deals = def("deals")?;
    let fetch = is_fetch(&headers);
    let board = format!("{}/pipeline", page.ctx.base());
    let fail = |status: StatusCode, msg: String, current: Option<i64>| -> Response {
        if fetch {
            let mut body = json!({"ok": false, "message": msg});
            if let Some(v) = current {
                body["version"] = v.into();
            }
            (status, Json(body)).into_response()
        } else {
            redirect(&headers, &format!("{board}?error={}", urlencode(&msg)))
        }
    };
    let id = first(&form, "id").and_then(|v| Uuid::parse_str(v.trim()).ok());
    let version = first(&form, "version").and_then(|v| v.trim().parse::<i64>().ok());
    let stage = first(&form, "stage").unwrap_or("").trim().to_string();
    let (Some(id), Some(version)) = (id, version) else {
        return Ok(fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The move is missing the deal or its version. Reload the board and try again.".into(),
            None,
        ));
    };
    let Some(label) = deals.field("stage").and_then(|f| f.kind.options().iter().find(|o| o.value == stage)).map(|o| o.label.clone()) else {
        return Ok(fail(StatusCode::UNPROCESSABLE_ENTITY, "Choose one of the pipeline stages.".into(), None));
    };
    let records = page.tenant.records(&st.db, deals);
    let input = Map::from_iter([("stage".to_string(), JsonValue::String(stage.clone()))]);
    match records.update(id, &input, version).await {
        Ok(saved) => {
            if fetch {
                Ok(Json(json!({"ok": true, "id": saved.id, "version": saved.version, "stage": saved.text("stage").unwrap_or(&stage)}))
                    .into_response())
            } else {
                let msg = format!("Moved {} to {label}.", saved.title(deals));
                Ok(redirect(&headers, &format!("{board}?notice={}", urlencode(&msg))))
            }
        }
        Err(StoreError::Stale { current }) => Ok(fail(
            StatusCode::CONFLICT,
            "Someone else changed this deal since the board was loaded, so it was not moved. The board has been refreshed; try again."
                .into(),
            Some(current),
        )),
        Err(StoreError::NotFound) => Ok(fail(StatusCode::NOT_FOUND, "That deal no longer exists.".into(), None)),
        Err(StoreError::Forbidden(_)) => {
            Ok(fail(StatusCode::FORBIDDEN, "Your role can view the pipeline but not move deals.".into(), None))
        }
        Err(StoreError::Invalid(errs)) => {
            Ok(fail(StatusCode::UNPROCESSABLE_ENTITY, format!("The deal could not be moved: {}", super::field_errors(&errs)), None))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

fn admin_only(page: &Page) -> WebResult<Ctx> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can change company settings."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    Ok(ctx)
}

fn role_badge(role: Role) -> &'static str {
    match role {
        Role::Admin => "purple",
        Role::Manager => "blue",
        Role::SalesRep => "green",
        Role::SupportAgent => "teal",
        Role::ReadOnly => "grey",
    }
}

fn role_choices() -> Vec<Choice> {
    Role::ALL.iter().map(|r| Choice { value: r.as_str().into(), label: r.label().into() }).collect()
}

/// "a company needs…" → "A company needs….".
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

pub struct MemberRow {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub email_parts: Vec<String>,
    pub role: String,
    pub role_label: String,
    pub role_badge: String,
    pub active: bool,
    pub team: String,
    pub joined: String,
    pub is_me: bool,
}

#[derive(Default)]
pub struct MemberForm {
    pub email: String,
    pub name: String,
    pub role: String,
    pub email_error: String,
    pub name_error: String,
    pub password_error: String,
    pub role_error: String,
}

#[derive(Template)]
#[template(path = "settings_members.html")]
struct MembersPage {
    ctx: Ctx,
    section: &'static str,
    rows: Vec<MemberRow>,
    roles: Vec<Choice>,
    /// Built-in and custom roles, for changing a member's role.
    role_picker: Vec<Choice>,
    form: MemberForm,
    notice: String,
    error: String,
}

async fn members_page(st: &AppState, page: &Page, ctx: Ctx, form: MemberForm, notice: String, error: String) -> WebResult<MembersPage> {
    let cid = page.tenant.company_id;
    let (tz, _) = company_tz(st, cid).await?;
    let teams: HashMap<Uuid, String> = companies::teams(&st.db, cid).await?.into_iter().map(|t| (t.id, t.name)).collect();
    let effective: HashMap<Uuid, (String, String)> =
        corvid_store::roles::members(&st.db, cid).await?.into_iter().map(|m| (m.user_id, (m.role_key, m.role_label))).collect();
    let role_picker = corvid_store::roles::list(&st.db, cid).await?.into_iter().map(|r| Choice { value: r.key, label: r.label }).collect();
    let rows = companies::members(&st.db, cid)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            user_id: m.user_id,
            name: m.name,
            email_parts: soft_breaks(&m.email),
            email: m.email,
            role: effective.get(&m.user_id).map_or_else(|| m.role.as_str().into(), |e| e.0.clone()),
            role_label: effective.get(&m.user_id).map_or_else(|| m.role.label().into(), |e| e.1.clone()),
            role_badge: role_badge(m.role).into(),
            active: m.is_active,
            team: m.team_id.and_then(|t| teams.get(&t).cloned()).unwrap_or_default(),
            joined: m.joined_at.with_timezone(&tz).format("%d %b %Y").to_string(),
            is_me: m.user_id == page.tenant.user_id,
        })
        .collect();
    Ok(MembersPage { ctx, section: "members", rows, roles: role_choices(), role_picker, form, notice, error })
}

pub async fn members(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let qp = pairs(raw.as_deref());
    let form = MemberForm { role: Role::SalesRep.as_str().into(), ..Default::default() };
    render(&members_page(&st, &page, ctx, form, message(&qp, "notice"), String::new()).await?)
}

async fn member_errors(st: &AppState, page: &Page, ctx: Ctx, form: MemberForm, status: StatusCode) -> WebResult<Response> {
    let p = members_page(st, page, ctx, form, String::new(), "Please correct the highlighted fields.".into()).await?;
    render_status(status, &p)
}

pub async fn add_member(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let get = |k: &str| first(&f, k).unwrap_or("").trim().to_string();
    let mut form = MemberForm { email: get("email"), name: get("name"), role: get("role"), ..Default::default() };
    let password = first(&f, "password").unwrap_or("").to_string();
    let role = Role::parse(&form.role);
    if role.is_none() {
        form.role_error = "Choose a role.".into();
    }
    if let Err(e) = corvid_core::validate::parse_email(&form.email) {
        form.email_error = if form.email.is_empty() { "is required".into() } else { e };
    }
    let name = if form.name.is_empty() { form.email.split('@').next().unwrap_or("").to_string() } else { form.name.clone() };
    if form.email_error.is_empty() && (name.trim().is_empty() || name.chars().count() > 200) {
        form.name_error = "must be 1 to 200 characters".into();
    }
    if !password.is_empty() && !(10..=200).contains(&password.chars().count()) {
        form.password_error = "must be 10 to 200 characters".into();
    }
    let Some(role) = role else { return member_errors(&st, &page, ctx, form, StatusCode::UNPROCESSABLE_ENTITY).await };
    if !(form.email_error.is_empty() && form.name_error.is_empty() && form.password_error.is_empty()) {
        return member_errors(&st, &page, ctx, form, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let pw = (!password.is_empty()).then_some(password.as_str());
    match companies::add_member(&st.db, &page.tenant.audit, &form.email, &name, pw, role).await {
        Ok(m) => {
            let msg = format!("{} was added as {}.", m.name, m.role.label());
            Ok(redirect(&headers, &format!("{}/settings/members?notice={}", page.ctx.base(), urlencode(&msg))))
        }
        Err(StoreError::Invalid(errs)) => {
            for e in errs {
                let slot = match e.field.as_str() {
                    "password" => &mut form.password_error,
                    "name" => &mut form.name_error,
                    "role" => &mut form.role_error,
                    _ => &mut form.email_error,
                };
                *slot = e.reason.clone();
            }
            member_errors(&st, &page, ctx, form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(StoreError::Conflict(msg)) => {
            form.email_error = msg;
            member_errors(&st, &page, ctx, form, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn update_member(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let user_id = Uuid::parse_str(p.str("user_id")).map_err(|_| WebError::not_found())?;
    let base = page.ctx.base();
    // A built-in or custom role's key; the roles service checks it and clears a custom role
    // when a built-in one is chosen.
    let role = first(&f, "role").map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    let active = match first(&f, "is_active").map(str::trim) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Active must be true or false.")),
        None => None,
    };
    let changed = match &role {
        Some(key) => match corvid_store::roles::assign(&st.db, &page.tenant.audit, user_id, key).await {
            Ok(_) => companies::update_member(&st.db, &page.tenant.audit, user_id, None, active).await,
            Err(StoreError::Invalid(_)) => return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Choose one of the roles.")),
            Err(e) => Err(e),
        },
        None => companies::update_member(&st.db, &page.tenant.audit, user_id, None, active).await,
    };
    match changed {
        Ok(m) => {
            // Someone who just removed their own Admin role can no longer see this page.
            if m.user_id == page.tenant.user_id && (m.role != Role::Admin || !m.is_active) {
                return Ok(redirect(&headers, &format!("{base}/dashboard")));
            }
            let what = match (role, active) {
                (_, Some(false)) => format!("{} was deactivated.", m.name),
                (_, Some(true)) => format!("{} was reactivated.", m.name),
                _ => {
                    let label = corvid_store::roles::member(&st.db, page.tenant.company_id, user_id)
                        .await?
                        .map_or_else(|| m.role.label().to_string(), |x| x.role_label);
                    format!("{} is now {label}.", m.name)
                }
            };
            Ok(redirect(&headers, &format!("{base}/settings/members?notice={}", urlencode(&what))))
        }
        Err(StoreError::Conflict(msg)) => {
            let form = MemberForm { role: Role::SalesRep.as_str().into(), ..Default::default() };
            let p = members_page(&st, &page, ctx, form, String::new(), sentence(&msg)).await?;
            render_status(StatusCode::CONFLICT, &p)
        }
        Err(StoreError::NotFound) => Err(WebError::not_found()),
        Err(e) => Err(e.into()),
    }
}

// Custom fields ------------------------------------------------------------------------

/// Field types an admin can choose, with labels.
const FIELD_TYPES: &[(&str, &str)] = &[
    ("text", "Text"),
    ("long_text", "Long text"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("url", "URL"),
    ("integer", "Whole number"),
    ("decimal", "Decimal number"),
    ("percent", "Percent"),
    ("date", "Date"),
    ("datetime", "Date and time"),
    ("boolean", "Yes / no"),
    ("enum", "Choice (one)"),
    ("multi_enum", "Choice (several)"),
];

fn type_label(kind: &FieldKind) -> String {
    let name = kind.name();
    FIELD_TYPES.iter().find(|(v, _)| *v == name).map_or_else(|| name.replace('_', " "), |(_, l)| (*l).to_string())
}

pub struct CustomFieldRow {
    pub name: String,
    pub label: String,
    pub kind: String,
    pub options: String,
    pub required: bool,
    pub delete_href: String,
}

pub struct ObjectFields {
    pub name: String,
    pub label: String,
    pub fields: Vec<CustomFieldRow>,
}

#[derive(Default)]
pub struct FieldForm {
    pub object: String,
    pub name: String,
    pub label: String,
    pub field_type: String,
    pub options: String,
    pub required: bool,
    pub object_error: String,
    pub name_error: String,
    pub label_error: String,
    pub type_error: String,
    pub options_error: String,
}

#[derive(Template)]
#[template(path = "settings_fields.html")]
struct FieldsPage {
    ctx: Ctx,
    section: &'static str,
    objects: Vec<ObjectFields>,
    object_choices: Vec<Choice>,
    types: Vec<Choice>,
    form: FieldForm,
    notice: String,
    error: String,
}

async fn fields_page(st: &AppState, page: &Page, ctx: Ctx, form: FieldForm, notice: String, error: String) -> WebResult<FieldsPage> {
    let base = page.ctx.base();
    let mut objects = Vec::new();
    for o in corvid_core::objects() {
        let fields = custom_fields::list(&st.db, page.tenant.company_id, &o.name)
            .await?
            .into_iter()
            .map(|f| CustomFieldRow {
                delete_href: format!("{base}/settings/fields/{}/{}/delete", o.name, f.name),
                kind: type_label(&f.kind),
                options: f.kind.options().iter().map(|o| o.label.clone()).collect::<Vec<_>>().join(", "),
                required: f.required,
                label: f.label,
                name: f.name,
            })
            .collect();
        objects.push(ObjectFields { name: o.name.clone(), label: o.label_plural.clone(), fields });
    }
    Ok(FieldsPage {
        ctx,
        section: "fields",
        objects,
        object_choices: corvid_core::objects().iter().map(|o| Choice { value: o.name.clone(), label: o.label_plural.clone() }).collect(),
        types: FIELD_TYPES.iter().map(|(v, l)| Choice { value: (*v).into(), label: (*l).into() }).collect(),
        form,
        notice,
        error,
    })
}

pub async fn fields(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let qp = pairs(raw.as_deref());
    let form = FieldForm { object: first(&qp, "object").unwrap_or("leads").into(), field_type: "text".into(), ..Default::default() };
    render(&fields_page(&st, &page, ctx, form, message(&qp, "notice"), String::new()).await?)
}

async fn field_errors(st: &AppState, page: &Page, ctx: Ctx, form: FieldForm, status: StatusCode) -> WebResult<Response> {
    let p = fields_page(st, page, ctx, form, String::new(), "Please correct the highlighted fields.".into()).await?;
    render_status(status, &p)
}

pub async fn create_field(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let get = |k: &str| first(&f, k).unwrap_or("").trim().to_string();
    let mut form = FieldForm {
        object: get("object"),
        name: get("name"),
        label: get("label"),
        field_type: get("type"),
        options: get("options"),
        required: f.iter().any(|(k, v)| k == "required" && matches!(v.as_str(), "true" | "on" | "1")),
        ..Default::default()
    };
    let object = corvid_core::object(&form.object);
    if object.is_none() {
        form.object_error = "Choose an object.".into();
    }
    if form.name.is_empty() {
        form.name_error = "is required".into();
    }
    let options: Vec<OptionInput> = if matches!(form.field_type.as_str(), "enum" | "multi_enum") {
        form.options.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| OptionInput::Value(s.to_string())).collect()
    } else {
        Vec::new()
    };
    if !form.options.is_empty()
        && options.is_empty()
        && !form.field_type.is_empty()
        && !matches!(form.field_type.as_str(), "enum" | "multi_enum")
    {
        form.options_error = "Options are only used by the choice types; leave this empty or pick a choice type.".into();
    }
    let Some(object) = object else { return field_errors(&st, &page, ctx, form, StatusCode::UNPROCESSABLE_ENTITY).await };
    if !form.name_error.is_empty() || !form.options_error.is_empty() {
        return field_errors(&st, &page, ctx, form, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let input = NewCustomField {
        name: form.name.clone(),
        label: (!form.label.is_empty()).then(|| form.label.clone()),
        field_type: form.field_type.clone(),
        required: form.required,
        options,
        max_len: None,
    };
    match custom_fields::create(&st.db, &page.tenant.audit, &object.name, input).await {
        Ok(field) => {
            let msg = format!("Added the field {} to {}.", field.label, object.label_plural);
            Ok(redirect(&headers, &format!("{}/settings/fields?object={}&notice={}", page.ctx.base(), object.name, urlencode(&msg))))
        }
        Err(StoreError::Invalid(errs)) => {
            for e in errs {
                let slot = match e.field.as_str() {
                    "label" => &mut form.label_error,
                    "type" => &mut form.type_error,
                    "options" => &mut form.options_error,
                    _ => &mut form.name_error,
                };
                *slot = e.reason.clone();
            }
            field_errors(&st, &page, ctx, form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(StoreError::Conflict(msg)) => {
            form.name_error = msg;
            field_errors(&st, &page, ctx, form, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_field(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    admin_only(&page)?;
    let object = corvid_core::object(p.str("object")).ok_or_else(WebError::not_found)?;
    let name = p.str("name");
    match custom_fields::delete(&st.db, &page.tenant.audit, &object.name, name).await {
        Ok(()) => {
            let msg =
                format!("Removed the field {name} from {}. Stored values are kept and come back if it is re-created.", object.label_plural);
            Ok(redirect(&headers, &format!("{}/settings/fields?object={}&notice={}", page.ctx.base(), object.name, urlencode(&msg))))
        }
        Err(StoreError::NotFound) => Err(WebError::not_found()),
        Err(e) => Err(e.into()),
    }
}

// Audit log -----------------------------------------------------------------------------

const AUDIT_PAGE: usize = 50;
const AUDIT_OBJECTS: &[(&str, &str)] = &[
    ("leads", "Leads"),
    ("accounts", "Accounts"),
    ("contacts", "Contacts"),
    ("deals", "Deals"),
    ("tasks", "Tasks"),
    ("activities", "Activities"),
    ("membership", "Memberships"),
    ("team", "Teams"),
    ("role", "Roles"),
    ("custom_field", "Custom fields"),
    ("company", "Company"),
];
const AUDIT_ACTIONS: &[&str] = &["create", "update", "delete", "restore", "deactivate"];

pub struct AuditLine {
    pub seq: i64,
    pub when: String,
    pub actor: String,
    pub object: String,
    pub record: Vec<String>,
    pub record_href: String,
    pub action: String,
    pub field: Vec<String>,
    pub old: Vec<String>,
    pub new: Vec<String>,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Default)]
pub struct AuditForm {
    pub actor: String,
    pub object: String,
    pub record: String,
    pub action: String,
    pub from: String,
    pub to: String,
}

#[derive(Template)]
#[template(path = "settings_audit.html")]
struct AuditPage {
    ctx: Ctx,
    section: &'static str,
    rows: Vec<AuditLine>,
    actors: Vec<Choice>,
    objects: Vec<Choice>,
    actions: Vec<Choice>,
    form: AuditForm,
    older_href: String,
    newest_href: String,
    is_first: bool,
    filtered: bool,
    error: String,
    tz_name: String,
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Start of a local calendar day in UTC.
fn local_midnight(d: NaiveDate, tz: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest().map(|t| t.with_timezone(&Utc))
}

pub async fn audit(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let cid = page.tenant.company_id;
    let base = page.ctx.base();
    let (tz, _) = company_tz(&st, cid).await?;
    let qp = pairs(raw.as_deref());
    let get = |k: &str| first(&qp, k).unwrap_or("").trim().chars().take(100).collect::<String>();
    let form = AuditForm {
        actor: get("actor"),
        object: get("object"),
        record: get("record"),
        action: get("action"),
        from: get("from"),
        to: get("to"),
    };
    let mut problems = Vec::new();
    let mut f = AuditFilter { limit: AUDIT_PAGE + 1, ..Default::default() };
    if !form.actor.is_empty() {
        match Uuid::parse_str(&form.actor) {
            Ok(u) => f.actor_id = Some(u),
            Err(_) => problems.push("Actor is not a member."),
        }
    }
    if !form.object.is_empty() {
        f.object = Some(form.object.clone());
    }
    if !form.record.is_empty() {
        match Uuid::parse_str(&form.record) {
            Ok(u) => f.record_id = Some(u),
            Err(_) => problems.push("Record id must be a UUID such as 0190f5c2-…."),
        }
    }
    if !form.action.is_empty() {
        f.action = Some(form.action.clone());
    }
    for (text, slot, next_day) in [(&form.from, &mut f.from, false), (&form.to, &mut f.to, true)] {
        if text.is_empty() {
            continue;
        }
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            // "To" is inclusive: rows before the start of the following day.
            Ok(d) => *slot = local_midnight(if next_day { d + Duration::days(1) } else { d }, tz),
            Err(_) => problems.push("Dates must look like 2025-01-31."),
        }
    }
    if let Some(b) = first(&qp, "before") {
        match b.trim().parse::<i64>() {
            Ok(s) => f.before_seq = Some(s),
            Err(_) => problems.push("The page link is not valid; showing the newest rows."),
        }
    }
    let mut rows = if problems.is_empty() { audit::list(&st.db, cid, &f).await? } else { Vec::new() };
    let more = rows.len() > AUDIT_PAGE;
    rows.truncate(AUDIT_PAGE);
    let rows = page.tenant.access.visible_audit(rows);

    let members = companies::members(&st.db, cid).await?;
    let names: HashMap<Uuid, String> = members.iter().map(|m| (m.user_id, m.name.clone())).collect();
    let mut titles: HashMap<Uuid, String> = HashMap::new();
    let mut wanted: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for r in &rows {
        if let (Some(id), Some(o)) = (r.record_id, corvid_core::object(&r.object)) {
            wanted.entry(o.name.as_str()).or_default().push(id);
        }
    }
    for (object, ids) in wanted {
        if let Some(o) = corvid_core::object(object) {
            titles.extend(corvid_store::records::titles(&st.db, cid, o, &ids).await?);
        }
    }
    let company_name = page.ctx.company_name.clone();
    let lines = rows
        .iter()
        .map(|r| {
            let (record, record_href) = match (r.record_id, corvid_core::object(&r.object)) {
                (Some(id), Some(o)) => (titles.get(&id).cloned().unwrap_or_else(|| id.to_string()), format!("{base}/{}/{id}", o.name)),
                (Some(id), None) if r.object == "membership" => (names.get(&id).cloned().unwrap_or_else(|| id.to_string()), String::new()),
                (Some(_), None) if r.object == "company" => (company_name.clone(), String::new()),
                (Some(id), None) => (id.to_string(), String::new()),
                (None, _) => (String::new(), String::new()),
            };
            AuditLine {
                seq: r.seq,
                when: DateTime::parse_from_rfc3339(&r.at).map(|t| local_time(&t.with_timezone(&Utc), tz)).unwrap_or_else(|_| r.at.clone()),
                actor: r.actor_id.map_or_else(|| "System".into(), |a| names.get(&a).cloned().unwrap_or_else(|| "Former member".into())),
                object: AUDIT_OBJECTS.iter().find(|(v, _)| *v == r.object).map_or_else(|| r.object.clone(), |(_, l)| (*l).to_string()),
                record: soft_breaks(&record),
                record_href,
                action: r.action.clone(),
                field: soft_breaks(r.field.as_deref().unwrap_or("")),
                old: soft_breaks(&clip(r.old_value.as_deref().unwrap_or(""), 300)),
                new: soft_breaks(&clip(r.new_value.as_deref().unwrap_or(""), 300)),
                ip: r.ip.clone().unwrap_or_default(),
                user_agent: clip(r.user_agent.as_deref().unwrap_or(""), 120),
            }
        })
        .collect::<Vec<_>>();
    let kept: Pairs = qp.iter().filter(|(k, _)| k != "before").cloned().collect();
    let query = |extra: Option<(&str, String)>| {
        let mut q = kept.clone();
        if let Some((k, v)) = extra {
            q.push((k.to_string(), v));
        }
        let s = serde_urlencoded::to_string(&q).unwrap_or_default();
        format!("{base}/settings/audit{}{s}", if s.is_empty() { "" } else { "?" })
    };
    let older_href = match (more, lines.last()) {
        (true, Some(last)) => query(Some(("before", last.seq.to_string()))),
        _ => String::new(),
    };
    let actors = members.iter().map(|m| Choice { value: m.user_id.to_string(), label: m.name.clone() }).collect();
    let filtered = [&form.actor, &form.object, &form.record, &form.action, &form.from, &form.to].iter().any(|v| !v.is_empty());
    render(&AuditPage {
        ctx,
        section: "audit",
        rows: lines,
        actors,
        objects: AUDIT_OBJECTS.iter().map(|(v, l)| Choice { value: (*v).into(), label: (*l).into() }).collect(),
        actions: AUDIT_ACTIONS
            .iter()
            .map(|a| Choice { value: (*a).into(), label: sentence(a).trim_end_matches('.').to_string() })
            .collect(),
        form,
        older_href,
        newest_href: query(None),
        is_first: f.before_seq.is_none(),
        filtered,
        error: problems.join(" "),
        tz_name: tz.name().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(key: &str, count: i64) -> Bucket {
        Bucket { key: Some(key.into()), count }
    }

    fn stage(stage: &str, currency: &str, count: i64, value: &str, weighted: &str) -> StageSum {
        StageSum { stage: stage.into(), currency: currency.into(), count, value: value.into(), weighted_value: weighted.into() }
    }

    #[test]
    fn lead_kpis() {
        let by_status = vec![
            bucket("new", 4),
            bucket("contacted", 2),
            bucket("converted", 3),
            bucket("unqualified", 1),
            bucket("disqualified", 1),
            bucket("recycled", 1),
            Bucket { key: None, count: 0 },
        ];
        let k = compute_kpis(&by_status, &[]);
        assert_eq!(k.total_leads, 12);
        assert_eq!(k.open_leads, 7);
        assert_eq!(k.converted_leads, 3);
        assert_eq!(percent_text(k.conversion_rate), "25.0%");
        assert!(k.pipeline.is_empty());
    }

    #[test]
    fn conversion_rate_rounds_to_one_decimal() {
        let k = compute_kpis(&[bucket("converted", 1), bucket("new", 2)], &[]);
        assert_eq!(percent_text(k.conversion_rate), "33.3%");
        let k = compute_kpis(&[bucket("converted", 2), bucket("new", 1)], &[]);
        assert_eq!(percent_text(k.conversion_rate), "66.7%");
        let k = compute_kpis(&[bucket("converted", 1), bucket("new", 7)], &[]);
        assert_eq!(percent_text(k.conversion_rate), "12.5%");
        let k = compute_kpis(&[bucket("converted", 5)], &[]);
        assert_eq!(percent_text(k.conversion_rate), "100.0%");
        assert_eq!(percent_text(compute_kpis(&[], &[]).conversion_rate), "—");
    }

    #[test]
    fn pipeline_sums_open_stages_per_currency() {
        let by_stage = vec![
            stage("closed_won", "INR", 1, "999.00", "999.00"),
            stage("closed_lost", "INR", 1, "5.00", "0.00"),
            stage("negotiation", "INR", 1, "250000.00", "187500.00"),
            stage("prospecting", "INR", 2, "100.50", "10.05"),
            stage("proposal", "JPY", 1, "1000", "500"),
            stage("qualification", "USD", 1, "10.00", "2.00"),
        ];
        let k = compute_kpis(&[], &by_stage);
        assert_eq!(
            k.pipeline,
            vec![
                CurrencyTotal { currency: "INR".into(), value_minor: 25_010_050, weighted_minor: 18_751_005 },
                CurrencyTotal { currency: "JPY".into(), value_minor: 1000, weighted_minor: 500 },
                CurrencyTotal { currency: "USD".into(), value_minor: 1000, weighted_minor: 200 },
            ]
        );
        assert_eq!(format_amount(k.pipeline[0].value_minor, "INR"), "₹2,50,100.50");
    }

    #[test]
    fn weighting_and_months() {
        // 2,50,000.00 at 75% and 100.00 at 10%.
        assert_eq!(weighted_minor(&[(25_000_000, 75), (10_000, 10)]), 18_751_000);
        assert_eq!(weighted_minor(&[]), 0);
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("date");
        assert_eq!(month_bounds(d(2025, 12, 31)), (d(2025, 12, 1), d(2026, 1, 1)));
        assert_eq!(month_bounds(d(2024, 2, 29)), (d(2024, 2, 1), d(2024, 3, 1)));
    }

    #[test]
    fn soft_breaks_keep_the_text() {
        let parts = soft_breaks("someone.long@example.test");
        assert_eq!(parts, ["someone.", "long@", "example.", "test"]);
        let id = "0190f5c2-7a1b-7c3d-9e4f-a1b2c3d4e5f6";
        assert_eq!(soft_breaks(id).concat(), id);
        assert!(soft_breaks("abcdefghijklmnopqrstuvwxyz").len() == 2);
        assert!(soft_breaks("").is_empty());
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let c = bar_chart(
            "c",
            "T",
            String::new(),
            &[("#000", "A".into())],
            vec![("x".into(), vec![(10, "10".into())]), ("y".into(), vec![(5, "5".into())]), ("z".into(), vec![(0, "0".into())])],
        );
        let widths: Vec<i64> = c.rows.iter().filter_map(|r| r.bars.first()).map(|b| b.width).collect();
        assert_eq!(widths, vec![BAR_MAX, BAR_MAX / 2]);
        assert_eq!(c.rows[2].label, "z · 0");
        assert!(c.rows[2].bars.is_empty());
        assert!(c.height > 0 && c.legend.is_empty());
    }
}
