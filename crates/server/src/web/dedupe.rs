//! Duplicates in the web app: the panel on a lead's page (loaded by htmx), the review page
//! that compares two or more leads side by side (a radio per field picks the surviving value;
//! Merge or Not a duplicate), and Settings → Duplicates (the policy, whole-base scans and
//! their cluster reports).

use super::format::{display, local_time, Lookups, Shown};
use super::{redirect, render, Ctx, Page, WebError, WebResult};
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use corvid_core::meta::{Field, ObjectDef};
use corvid_core::{Record, Value};
use corvid_store::dedupe::{self, Candidate, Policy};
use corvid_store::merge::{self, MergeRequest};
use corvid_store::StoreError;
use std::collections::BTreeMap;
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

fn pairs(raw: Option<&str>) -> Pairs {
    serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default()
}

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

fn leads() -> WebResult<&'static ObjectDef> {
    corvid_core::object("leads").ok_or_else(WebError::not_found)
}

/// `ids=a&ids=b` or `ids=a,b`, parsed, in order, without repeats.
fn ids_of(p: &Pairs) -> Vec<Uuid> {
    let mut out = Vec::new();
    for (_, v) in p.iter().filter(|(k, _)| k == "ids") {
        for s in v.split(',') {
            if let Ok(id) = Uuid::parse_str(s.trim()) {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
    out
}

fn review_href(base: &str, ids: &[Uuid]) -> String {
    let q: Vec<(&str, String)> = ids.iter().map(|id| ("ids", id.to_string())).collect();
    format!("{base}/dedupe/review?{}", serde_urlencoded::to_string(&q).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// The panel on a record page
// ---------------------------------------------------------------------------------------

pub struct PanelRow {
    pub href: String,
    pub label: String,
    pub kind: String,
    pub score: u8,
    pub badge: &'static str,
    pub reasons: String,
    pub other_id: Uuid,
    /// Leads can be compared and merged; other records are only shown.
    pub review_href: String,
}

#[derive(Template)]
#[template(path = "dedupe_panel.html")]
struct PanelPartial {
    ctx: Ctx,
    object: String,
    record_id: Uuid,
    rows: Vec<PanelRow>,
    all_href: String,
    policy: &'static str,
}

fn score_badge(score: u8) -> &'static str {
    match score {
        90.. => "red",
        80..=89 => "orange",
        _ => "yellow",
    }
}

fn panel_rows(base: &str, record_id: Uuid, found: &[Candidate]) -> Vec<PanelRow> {
    found
        .iter()
        .take(SHOWN)
        .map(|c| PanelRow {
            href: format!("{base}/{}/{}", c.object, c.id),
            label: format!("{} {}", c.number, c.title),
            kind: corvid_core::object(&c.object).map_or(String::new(), |o| o.label.clone()),
            score: c.score,
            badge: score_badge(c.score),
            reasons: c.reasons.join(", "),
            other_id: c.id,
            review_href: if c.object == "leads" { review_href(base, &[record_id, c.id]) } else { String::new() },
        })
        .collect()
}

/// Candidates listed in the panel.
const SHOWN: usize = 10;

/// `GET /app/{company}/{object}/{id}/duplicates`: the Duplicates panel (an htmx fragment).
pub async fn panel(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    let object = corvid_core::object(p.str("object")).filter(|o| dedupe::Kind::of(&o.name).is_some()).ok_or_else(WebError::not_found)?;
    let id = Uuid::parse_str(p.str("id")).map_err(|_| WebError::not_found())?;
    let (_, found) = dedupe::duplicates_of(&st.db, &page.tenant, object, id).await?;
    let found = corvid_store::access::visible_candidates(&st.db, &page.tenant, found).await?;
    let base = page.ctx.base();
    let rows = panel_rows(&base, id, &found);
    let lead_ids: Vec<Uuid> = std::iter::once(id).chain(found.iter().filter(|c| c.object == "leads").map(|c| c.id)).take(10).collect();
    let all_href = if object.name == "leads" && lead_ids.len() > 2 { review_href(&base, &lead_ids) } else { String::new() };
    let policy = dedupe::policy(&st.db, page.tenant.company_id).await?;
    render(&PanelPartial {
        ctx: page.ctx.clone(),
        object: object.name.clone(),
        record_id: id,
        rows: if object.name == "leads" { rows } else { rows.into_iter().map(|r| PanelRow { review_href: String::new(), ..r }).collect() },
        all_href,
        policy: policy.as_str(),
    })
}

// ---------------------------------------------------------------------------------------
// Side-by-side review and merge
// ---------------------------------------------------------------------------------------

pub struct Head {
    pub id: Uuid,
    pub number: String,
    pub title: String,
    pub href: String,
    pub version: i64,
    pub survivor: bool,
    pub created: String,
    /// Activities, tasks and deals that would move to the survivor.
    pub related: String,
}

pub struct Cell {
    pub id: Uuid,
    pub shown: Shown,
    pub chosen: bool,
}

pub struct CompareRow {
    pub name: String,
    pub label: String,
    pub differs: bool,
    pub cells: Vec<Cell>,
}

#[derive(Template)]
#[template(path = "dedupe_review.html")]
struct ReviewPage {
    ctx: Ctx,
    heads: Vec<Head>,
    rows: Vec<CompareRow>,
    same: Vec<CompareRow>,
    ids: String,
    error: String,
    reasons: String,
    pair: Option<(Uuid, Uuid)>,
    back: String,
}

fn has_value(f: &Field, r: &Record) -> bool {
    if f.custom {
        r.custom.get(&f.name).is_some_and(|v| !v.is_null())
    } else {
        r.get(&f.name).is_some()
    }
}

fn value_key(f: &Field, r: &Record) -> String {
    if f.custom {
        r.custom.get(&f.name).map(|v| v.to_string()).unwrap_or_default()
    } else {
        r.get(&f.name).and_then(Value::audit_text).unwrap_or_default()
    }
}

async fn related_counts(st: &AppState, company_id: Uuid, id: Uuid) -> WebResult<String> {
    use corvid_store::Q;
    let mut parts = Vec::new();
    for (sql, label) in [
        ("SELECT COUNT(*) FROM activities WHERE company_id = $1 AND lead_id = $2 AND deleted_at IS NULL", "activities"),
        (
            "SELECT COUNT(*) FROM tasks WHERE company_id = $1 AND related_object = 'leads' AND related_id = $2 AND deleted_at IS NULL",
            "tasks",
        ),
        ("SELECT COUNT(*) FROM deals WHERE company_id = $1 AND lead_id = $2 AND deleted_at IS NULL", "deals"),
    ] {
        let q = Q::new(sql).bind(Value::Uuid(company_id)).bind(Value::Uuid(id));
        let n = st.db.fetch_one(&q, &[corvid_core::SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0);
        parts.push(format!("{n} {label}"));
    }
    Ok(parts.join(", "))
}

/// `GET /app/{company}/dedupe/review?ids=…`: two to ten leads side by side.
pub async fn review(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let object = leads()?;
    let qp = pairs(raw.as_deref());
    let ids = ids_of(&qp);
    if ids.len() < 2 || ids.len() > merge::MAX_MERGED + 1 {
        return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Choose two to eleven leads to compare."));
    }
    let records = page.tenant.records(&st.db, object);
    let custom = records.custom_fields().await?;
    let base = page.ctx.base();
    let mut recs: Vec<Record> = Vec::new();
    for id in &ids {
        let rec = records.get(*id).await?;
        if rec.deleted_at.is_some() {
            let msg = match merge::merged_into(&st.db, page.tenant.company_id, *id).await? {
                Some(to) => format!("{} was already merged; it is now {base}/leads/{to}.", rec.number),
                None => format!("{} is deleted. Restore it to compare it.", rec.number),
            };
            return Err(WebError::new(StatusCode::CONFLICT, msg));
        }
        recs.push(rec);
    }
    // Default survivor: the asked-for one, else the oldest record (usually the original).
    let survivor = first(&qp, "survivor")
        .and_then(|s| Uuid::parse_str(s).ok())
        .filter(|s| ids.contains(s))
        .or_else(|| recs.iter().min_by_key(|r| (r.created_at, r.id)).map(|r| r.id))
        .unwrap_or(ids[0]);
    let refs: Vec<&Record> = recs.iter().collect();
    let lk = Lookups::load(&st.db, page.tenant.company_id, object, &refs).await?;
    let mut heads = Vec::new();
    for r in &recs {
        heads.push(Head {
            id: r.id,
            number: r.number.clone(),
            title: r.title(object),
            href: format!("{base}/leads/{}", r.id),
            version: r.version,
            survivor: r.id == survivor,
            created: local_time(&r.created_at, lk.tz),
            related: related_counts(&st, page.tenant.company_id, r.id).await?,
        });
    }
    let (mut rows, mut same) = (Vec::new(), Vec::new());
    for f in object.fields.iter().chain(custom.iter()).filter(|f| merge::mergeable(f)) {
        if !recs.iter().any(|r| has_value(f, r)) {
            continue;
        }
        let keys: Vec<String> = recs.iter().map(|r| value_key(f, r)).collect();
        let differs = keys.iter().any(|k| k != &keys[0]);
        // Keep the survivor's value unless it is empty; then the first record that has one.
        let pick = recs
            .iter()
            .find(|r| r.id == survivor && has_value(f, r))
            .or_else(|| recs.iter().find(|r| has_value(f, r)))
            .map_or(survivor, |r| r.id);
        let row = CompareRow {
            name: f.name.clone(),
            label: f.label.clone(),
            differs,
            cells: recs.iter().map(|r| Cell { id: r.id, shown: display(&base, f, r, &lk), chosen: r.id == pick }).collect(),
        };
        if differs {
            rows.push(row);
        } else {
            same.push(row);
        }
    }
    // Why they look alike (for a pair).
    let pair = (recs.len() == 2).then(|| (recs[0].id, recs[1].id));
    let reasons = match pair {
        Some((a, b)) => {
            let (_, found) = dedupe::duplicates_of(&st.db, &page.tenant, object, a).await?;
            found.iter().find(|c| c.id == b).map(|c| format!("Score {}: {}", c.score, c.reasons.join(", "))).unwrap_or_default()
        }
        None => String::new(),
    };
    render(&ReviewPage {
        ctx: page.ctx.clone(),
        heads,
        rows,
        same,
        ids: ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","),
        error: first(&qp, "error").unwrap_or("").chars().take(300).collect(),
        reasons,
        pair,
        back: format!("{base}/leads/{}", ids[0]),
    })
}

/// `POST /app/{company}/dedupe/merge`: `survivor_id`, `ids`, `f:<field>` = source id,
/// `v:<id>` = version seen.
pub async fn merge_post(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(form): Form<Pairs>) -> WebResult<Response> {
    let object = leads()?;
    let base = page.ctx.base();
    let ids = ids_of(&form);
    let survivor = first(&form, "survivor_id").unwrap_or("").to_string();
    let mut req = MergeRequest {
        survivor_id: survivor.clone(),
        merged_ids: ids.iter().map(Uuid::to_string).filter(|id| *id != survivor).collect(),
        fields: BTreeMap::new(),
        versions: BTreeMap::new(),
    };
    for (k, v) in &form {
        if let Some(field) = k.strip_prefix("f:") {
            if *v != survivor {
                req.fields.insert(field.to_string(), v.clone());
            }
        } else if let Some(id) = k.strip_prefix("v:") {
            if let Ok(n) = v.parse() {
                req.versions.insert(id.to_string(), n);
            }
        }
    }
    let problem = match merge::merge(&st.db, &page.tenant, object, &req).await {
        Ok(out) => {
            let n = out.merged_ids.len();
            let msg = format!("Merged {n} lead{} into this one.", if n == 1 { "" } else { "s" });
            return Ok(redirect(&headers, &format!("{base}/leads/{}?notice={}", out.survivor.id, urlencode(&msg))));
        }
        Err(StoreError::Invalid(errs)) => format!("Nothing was merged: {}", super::field_errors(&errs)),
        Err(StoreError::Conflict(d)) => format!("Nothing was merged: {d}"),
        Err(StoreError::Stale { .. }) => "Nothing was merged: one of these leads was changed meanwhile. Check the values again.".into(),
        Err(e) => return Err(e.into()),
    };
    let mut back = review_href(&base, &ids);
    back.push_str(&format!("&survivor={}&error={}", urlencode(&survivor), urlencode(&problem)));
    Ok(redirect(&headers, &back))
}

/// `POST /app/{company}/dedupe/dismiss`: `id`, `other_id`, `object` (default leads).
pub async fn dismiss_post(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(form): Form<Pairs>) -> WebResult<Response> {
    let object = corvid_core::object(first(&form, "object").unwrap_or("leads"))
        .filter(|o| dedupe::Kind::of(&o.name).is_some())
        .ok_or_else(WebError::not_found)?;
    let parse = |k: &str| first(&form, k).and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(WebError::not_found);
    let (id, other) = (parse("id")?, parse("other_id")?);
    let msg = match dedupe::dismiss(&st.db, &page.tenant, object, id, other).await {
        Ok(_) => "Marked as not a duplicate.".to_string(),
        Err(StoreError::Invalid(errs)) => super::field_errors(&errs),
        Err(e) => return Err(e.into()),
    };
    Ok(redirect(&headers, &format!("{}/{}/{id}?notice={}", page.ctx.base(), object.name, urlencode(&msg))))
}

// ---------------------------------------------------------------------------------------
// Settings → Duplicates
// ---------------------------------------------------------------------------------------

fn admin_only(page: &Page) -> WebResult<Ctx> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can change duplicate settings."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    Ok(ctx)
}

pub struct ScanLine {
    pub id: Uuid,
    pub state: String,
    pub badge: &'static str,
    pub created: String,
    pub finished: String,
    pub summary: String,
    pub error: String,
    pub href: String,
}

fn scan_badge(state: &str) -> &'static str {
    match state {
        "queued" => "blue",
        "running" => "purple",
        "succeeded" => "green",
        "failed" => "red",
        _ => "grey",
    }
}

fn scan_line(base: &str, s: &dedupe::Scan, tz: chrono_tz::Tz) -> ScanLine {
    let when = |t: &Option<String>| {
        t.as_deref().and_then(|x| chrono::DateTime::parse_from_rfc3339(x).ok()).map(|t| local_time(&t.with_timezone(&chrono::Utc), tz))
    };
    ScanLine {
        id: s.id,
        state: s.state.clone(),
        badge: scan_badge(&s.state),
        created: when(&Some(s.created_at.clone())).unwrap_or_default(),
        finished: when(&s.finished_at).unwrap_or_default(),
        summary: if s.state == "succeeded" {
            format!(
                "{} clusters ({} records) · {} blocks · {} pairs compared · {} common keys skipped",
                s.clusters, s.records_in_clusters, s.blocks, s.pairs_compared, s.skipped_keys
            )
        } else {
            String::new()
        },
        error: s.error.clone().unwrap_or_default(),
        href: format!("{base}/settings/dedupe/scans/{}", s.id),
    }
}

pub struct PolicyChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "settings_dedupe.html")]
struct SettingsPage {
    ctx: Ctx,
    section: &'static str,
    policies: Vec<PolicyChoice>,
    scans: Vec<ScanLine>,
    active: bool,
    notice: String,
    error: String,
}

async fn tz_of(st: &AppState, company_id: Uuid) -> WebResult<chrono_tz::Tz> {
    Ok(corvid_store::companies::get(&st.db, company_id).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata))
}

/// `GET /app/{company}/settings/dedupe`
pub async fn settings(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let cid = page.tenant.company_id;
    let qp = pairs(raw.as_deref());
    let current = dedupe::policy(&st.db, cid).await?;
    let tz = tz_of(&st, cid).await?;
    let base = ctx.base();
    let list = dedupe::list_scans(&st.db, cid, 20).await?;
    render(&SettingsPage {
        section: "dedupe",
        policies: Policy::ALL.iter().map(|p| PolicyChoice { value: p.as_str(), label: p.label(), selected: *p == current }).collect(),
        active: list.iter().any(|s| s.state == "queued" || s.state == "running"),
        scans: list.iter().map(|s| scan_line(&base, s, tz)).collect(),
        notice: first(&qp, "notice").unwrap_or("").chars().take(200).collect(),
        error: first(&qp, "error").unwrap_or("").chars().take(200).collect(),
        ctx,
    })
}

/// `POST /app/{company}/settings/dedupe`: `action=policy` with `policy`, or `action=scan`.
pub async fn settings_post(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(form): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let here = format!("{}/settings/dedupe", ctx.base());
    let msg = match first(&form, "action") {
        Some("policy") => match first(&form, "policy").and_then(Policy::parse) {
            Some(p) => {
                dedupe::set_policy(&st.db, &page.tenant.audit, p).await?;
                ("notice", format!("Duplicate policy is now: {}.", p.label()))
            }
            None => ("error", "Choose block, flag or allow.".to_string()),
        },
        Some("scan") => {
            let (scan, created) = dedupe::start_scan(&st.db, &page.tenant.audit).await?;
            let what = if created { "Scan started" } else { "A scan is already running" };
            ("notice", format!("{what}; it runs in the background (job {}).", scan.job_id.map(|j| j.to_string()).unwrap_or_default()))
        }
        _ => ("error", "Unknown action.".to_string()),
    };
    Ok(redirect(&headers, &format!("{here}?{}={}", msg.0, urlencode(&msg.1))))
}

pub struct ClusterLine {
    pub seq: i64,
    pub score: i64,
    pub badge: &'static str,
    pub kind: String,
    pub members: Vec<(String, String, String)>,
    pub reasons: String,
    pub review_href: String,
}

#[derive(Template)]
#[template(path = "settings_dedupe_scan.html")]
struct ScanPage {
    ctx: Ctx,
    section: &'static str,
    scan: ScanLine,
    clusters: Vec<ClusterLine>,
    next_href: String,
    jobs_href: String,
}

/// `GET /app/{company}/settings/dedupe/scans/{scan_id}`: the cluster report.
pub async fn scan_report(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    RawQuery(raw): RawQuery,
) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let cid = page.tenant.company_id;
    let id = Uuid::parse_str(p.str("scan_id")).map_err(|_| WebError::not_found())?;
    let scan = dedupe::get_scan(&st.db, cid, id).await?;
    let qp = pairs(raw.as_deref());
    let after = first(&qp, "cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let (list, next) = dedupe::clusters(&st.db, cid, id, after, 50).await?;
    let base = ctx.base();
    let tz = tz_of(&st, cid).await?;
    let clusters = list
        .iter()
        .map(|c| {
            let members = c
                .members
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|x| {
                            let s = |k: &str| x[k].as_str().unwrap_or("").to_string();
                            (format!("{base}/{}/{}", s("object"), s("id")), s("number"), s("title"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut reasons: Vec<String> = Vec::new();
            for pair in c.pairs.as_array().into_iter().flatten() {
                for r in pair["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str()) {
                    if !reasons.iter().any(|x| x == r) {
                        reasons.push(r.to_string());
                    }
                }
            }
            let lead_ids = c.ids_of("leads");
            ClusterLine {
                seq: c.seq,
                score: c.score,
                badge: score_badge(u8::try_from(c.score).unwrap_or(100)),
                kind: c.kind.clone(),
                members,
                reasons: reasons.join(", "),
                review_href: if lead_ids.len() >= 2 {
                    review_href(&base, &lead_ids[..lead_ids.len().min(merge::MAX_MERGED + 1)])
                } else {
                    String::new()
                },
            }
        })
        .collect();
    render(&ScanPage {
        section: "dedupe",
        scan: scan_line(&base, &scan, tz),
        clusters,
        next_href: next.map(|n| format!("?cursor={n}")).unwrap_or_default(),
        jobs_href: format!("{base}/settings/jobs"),
        ctx,
    })
}
