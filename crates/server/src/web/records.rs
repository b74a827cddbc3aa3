//! Generic record pages for every object, generated from the metadata: list views with
//! columns, filters, sorting, search, paging, saved views and bulk actions; record pages
//! with sections, inline edit, related lists, timeline and history; create/edit forms.

use super::format::{display, form_to_json, input_value, Lookups, Shown};
use super::{is_htmx, redirect, render, render_status, Ctx, Page, WebError, WebResult};
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use corvid_core::meta::{Field, FieldKind, ObjectDef};
use corvid_core::{Record, Value};
use corvid_store::audit::{self, AuditFilter, AuditRow};
use corvid_store::listing::{Condition, ListQuery, Op, SortKey};
use corvid_store::records::BulkRequest;
use corvid_store::web::{self as websess, SavedView};
use corvid_store::{companies, timeline, StoreError};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

fn object_of(p: &crate::extract::Params) -> WebResult<&'static ObjectDef> {
    corvid_core::object(p.str("object")).ok_or_else(WebError::not_found)
}

fn id_of(p: &crate::extract::Params) -> WebResult<Uuid> {
    Uuid::parse_str(p.str("id")).map_err(|_| WebError::not_found())
}

fn pairs(raw: Option<&str>) -> Pairs {
    serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default()
}

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Columns shown by default, per object.
fn default_columns(object: &ObjectDef) -> Vec<String> {
    let cols: &[&str] = match object.name.as_str() {
        "leads" => &["first_name", "last_name", "company_name", "status", "lead_score", "source", "owner_id"],
        "accounts" => &["name", "account_type", "industry", "lifecycle_stage", "health_score", "owner_id"],
        "contacts" => &["full_name", "account_id", "role", "email", "phone", "owner_id"],
        "deals" => &["name", "account_id", "stage", "value", "expected_close_date", "owner_id"],
        "tasks" => &["title", "status", "priority", "due_at", "assignee_id"],
        "activities" => &["activity_type", "title", "outcome", "activity_date", "user_id"],
        _ => &[],
    };
    cols.iter().map(|s| s.to_string()).collect()
}

pub struct FilterRow {
    pub field: String,
    pub op: String,
    pub value: String,
}

pub struct Column {
    pub name: String,
    pub label: String,
    pub sort_href: String,
    pub sorted: &'static str,
}

pub struct Row {
    pub id: Uuid,
    pub href: String,
    pub title: String,
    pub cells: Vec<Shown>,
}

pub struct Choice {
    pub value: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    ctx: Ctx,
    object: &'static ObjectDef,
    columns: Vec<Column>,
    rows: Vec<Row>,
    next_href: String,
    first_href: String,
    is_first_page: bool,
    q: String,
    filters: Vec<FilterRow>,
    fields: Vec<Choice>,
    chosen: Vec<String>,
    views: Vec<SavedView>,
    query: String,
    error: String,
    notice: String,
    owners: Vec<Choice>,
    statuses: Vec<Choice>,
    partial: bool,
}

impl ListPage {
    fn is_chosen(&self, name: &str) -> bool {
        self.chosen.iter().any(|c| c == name)
    }
    fn has_status(&self) -> bool {
        !self.statuses.is_empty()
    }
    fn ops(&self) -> Vec<Choice> {
        OPS.iter().map(|(v, l)| Choice { value: v.to_string(), label: l.to_string() }).collect()
    }
}

#[derive(Template)]
#[template(path = "list_partial.html")]
struct ListTable<'a> {
    page: &'a ListPage,
}

const OPS: &[(&str, &str)] = &[
    ("eq", "is"),
    ("ne", "is not"),
    ("contains", "contains"),
    ("gt", ">"),
    ("gte", "≥"),
    ("lt", "<"),
    ("lte", "≤"),
    ("in", "is any of"),
    ("is_null", "is empty"),
];

/// The UI's query: repeated `ff`/`fo`/`fv` filter triplets plus `q`, `sort`, `cursor`,
/// `cols`. Links from elsewhere may also use the API's `filter[field][op]=v` form.
fn ui_query(p: &Pairs) -> (ListQuery, Vec<FilterRow>) {
    let mut rows = Vec::new();
    let (mut ff, mut fo, mut fv) = (Vec::new(), Vec::new(), Vec::new());
    for (k, v) in p {
        match k.as_str() {
            "ff" => ff.push(v.clone()),
            "fo" => fo.push(v.clone()),
            "fv" => fv.push(v.clone()),
            _ if k.starts_with("filter[") => {
                let inner = k.trim_start_matches("filter[").trim_end_matches(']');
                let (field, op) = inner.split_once("][").unwrap_or((inner, "eq"));
                rows.push(FilterRow { field: field.into(), op: op.into(), value: v.clone() });
            }
            _ => {}
        }
    }
    for (i, field) in ff.into_iter().enumerate() {
        if field.is_empty() {
            continue;
        }
        rows.push(FilterRow {
            field,
            op: fo.get(i).cloned().unwrap_or_else(|| "eq".into()),
            value: fv.get(i).cloned().unwrap_or_default(),
        });
    }
    let group: Vec<Condition> = rows
        .iter()
        .map(|r| {
            let op = Op::parse(&r.op).unwrap_or(Op::Eq);
            let value = match op {
                Op::In => Json::Array(r.value.split(',').map(|s| Json::String(s.trim().into())).collect()),
                Op::IsNull if r.value.is_empty() => Json::Bool(true),
                _ => Json::String(r.value.clone()),
            };
            Condition { field: r.field.clone(), op, value }
        })
        .collect();
    let lq = ListQuery {
        groups: if group.is_empty() { Vec::new() } else { vec![group] },
        sort: first(p, "sort").map(corvid_store::listing::parse_sort).unwrap_or_default(),
        q: first(p, "q").map(str::to_string),
        cursor: first(p, "cursor").map(str::to_string),
        limit: Some(first(p, "limit").and_then(|l| l.parse().ok()).unwrap_or(25).clamp(1, 200)),
        fields: None,
    };
    (lq, rows)
}

/// Rebuilds a query string without some keys, plus extra pairs.
fn with(p: &Pairs, drop: &[&str], extra: &[(&str, &str)]) -> String {
    let mut kept: Vec<(String, String)> = p.iter().filter(|(k, _)| !drop.contains(&k.as_str()) && k != "notice").cloned().collect();
    kept.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    serde_urlencoded::to_string(&kept).unwrap_or_default()
}

async fn members_choices(st: &AppState, company_id: Uuid) -> WebResult<Vec<Choice>> {
    Ok(companies::members(&st.db, company_id)
        .await?
        .into_iter()
        .filter(|m| m.is_active)
        .map(|m| Choice { value: m.user_id.to_string(), label: m.name })
        .collect())
}

pub async fn list(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> WebResult<Response> {
    let object = object_of(&p)?;
    let qp = pairs(raw.as_deref());
    let (lq, filters) = ui_query(&qp);
    let records = page.tenant.records(&st.db, object);
    let custom = records.custom_fields().await?;
    let all: Vec<&Field> = visible_fields(&page, object, &custom);
    let mut chosen: Vec<String> = match first(&qp, "cols") {
        Some(c) if !c.is_empty() => c.split(',').filter(|n| all.iter().any(|f| f.name == *n)).map(str::to_string).collect(),
        _ => default_columns(object),
    };
    if chosen.is_empty() {
        chosen = default_columns(object);
    }
    let (recs, next, error) = match records.list(&lq).await {
        Ok((recs, next, _)) => (recs, next, String::new()),
        Err(StoreError::Invalid(errs) | StoreError::FieldForbidden(errs)) => (Vec::new(), None, super::field_errors(&errs)),
        Err(e) => return Err(e.into()),
    };
    let base = page.ctx.base();
    let refs: Vec<&Record> = recs.iter().collect();
    let lk = Lookups::load(&st.db, page.tenant.company_id, object, &refs).await?;
    let current_sort = first(&qp, "sort").unwrap_or("");
    let columns = chosen
        .iter()
        .filter_map(|n| all.iter().find(|f| f.name == *n))
        .map(|f| {
            let (sorted, next_sort) = if current_sort == f.name {
                ("asc", format!("-{}", f.name))
            } else if current_sort == format!("-{}", f.name) {
                ("desc", f.name.clone())
            } else {
                ("", f.name.clone())
            };
            let sortable = !matches!(f.kind.sql_type(), corvid_core::SqlType::Json);
            Column {
                name: f.name.clone(),
                label: f.label.clone(),
                sort_href: if sortable { format!("?{}", with(&qp, &["sort", "cursor"], &[("sort", &next_sort)])) } else { String::new() },
                sorted,
            }
        })
        .collect::<Vec<_>>();
    let rows = recs
        .iter()
        .map(|r| Row {
            id: r.id,
            href: format!("{base}/{}/{}", object.name, r.id),
            title: r.title(object),
            cells: columns.iter().filter_map(|c| all.iter().find(|f| f.name == c.name)).map(|f| display(&base, f, r, &lk)).collect(),
        })
        .collect();
    let statuses = object
        .field("status")
        .filter(|f| !f.read_only)
        .map(|f| f.kind.options().iter().map(|o| Choice { value: o.value.clone(), label: o.label.clone() }).collect())
        .unwrap_or_default();
    let list = ListPage {
        ctx: page.ctx.clone(),
        object,
        columns,
        rows,
        next_href: next.map(|c| format!("?{}", with(&qp, &["cursor"], &[("cursor", &c)]))).unwrap_or_default(),
        first_href: format!("?{}", with(&qp, &["cursor"], &[])),
        is_first_page: first(&qp, "cursor").is_none(),
        q: lq.q.clone().unwrap_or_default(),
        filters,
        fields: all.iter().map(|f| Choice { value: f.name.clone(), label: f.label.clone() }).collect(),
        chosen,
        views: websess::views(&st.db, page.tenant.company_id, page.tenant.user_id, &object.name).await?,
        query: with(&qp, &["cursor"], &[]),
        error,
        notice: first(&qp, "notice").unwrap_or("").chars().take(200).collect(),
        owners: members_choices(&st, page.tenant.company_id).await?,
        statuses,
        partial: is_htmx(&headers) && !headers.contains_key("hx-boosted"),
    };
    if list.partial {
        render(&ListTable { page: &list })
    } else {
        render(&list)
    }
}

/// One input of a form, with its current value and error.
pub struct Input {
    pub name: String,
    pub label: String,
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub choices: Vec<Choice>,
    pub error: String,
    pub help: String,
    /// For conflicts: the value someone else saved.
    pub theirs: String,
}

impl Input {
    pub fn is(&self, kind: &str) -> bool {
        self.kind == kind
    }
    pub fn selected(&self, v: &str) -> bool {
        self.value == v || (self.kind == "multi" && self.value.split(',').any(|x| x.trim() == v))
    }
    pub fn checked(&self) -> bool {
        self.value == "true"
    }
}

pub struct Section {
    pub name: String,
    pub inputs: Vec<Input>,
}

/// Candidate records for a reference input: recent ones, plus the current value.
async fn reference_choices(st: &AppState, page: &Page, target: &str, current: &str) -> WebResult<Vec<Choice>> {
    let Some(def) = corvid_core::object(target) else { return Ok(Vec::new()) };
    let lq = ListQuery { limit: Some(200), sort: vec![SortKey { field: "updated_at".into(), desc: true }], ..Default::default() };
    let (recs, _, _) = page.tenant.records(&st.db, def).list(&lq).await?;
    let mut out: Vec<Choice> = recs.iter().map(|r| Choice { value: r.id.to_string(), label: r.title(def) }).collect();
    if let Ok(id) = Uuid::parse_str(current) {
        if !out.iter().any(|c| c.value == current) {
            let titles = corvid_store::records::titles(&st.db, page.tenant.company_id, def, &[id]).await?;
            if let Some(t) = titles.get(&id) {
                out.insert(0, Choice { value: current.into(), label: t.clone() });
            }
        }
    }
    out.sort_by_key(|c| c.label.to_lowercase());
    Ok(out)
}

fn input_kind(f: &Field) -> &'static str {
    match &f.kind {
        FieldKind::LongText { .. } | FieldKind::Json => "textarea",
        FieldKind::Email => "email",
        FieldKind::Phone => "tel",
        FieldKind::Url => "url",
        FieldKind::Integer { .. } | FieldKind::Percent => "number",
        FieldKind::Decimal | FieldKind::Money { .. } => "decimal",
        FieldKind::Date => "date",
        FieldKind::DateTime => "datetime-local",
        FieldKind::Boolean => "checkbox",
        FieldKind::Enum { .. } | FieldKind::Currency | FieldKind::Country | FieldKind::User | FieldKind::Reference { .. } => "select",
        FieldKind::MultiEnum { .. } => "multi",
        _ => "text",
    }
}

/// The fields this member may see, in metadata order (standard, then custom).
fn visible_fields<'a>(page: &Page, object: &'a ObjectDef, custom: &'a [Field]) -> Vec<&'a Field> {
    object.fields.iter().chain(custom.iter()).filter(|f| !page.tenant.access.is_hidden(&object.name, &f.name)).collect()
}

/// Whether this member may change the field (not computed, not read-only or hidden for the role).
fn editable(page: &Page, object: &ObjectDef, f: &Field) -> bool {
    !f.read_only && page.tenant.access.field(&object.name, &f.name) == corvid_core::access::FieldAccess::Editable
}

/// Builds the form inputs for an object. `values` are the user's submitted values (kept on
/// errors); otherwise the record's (or defaults for a new record).
#[allow(clippy::too_many_arguments)] // one call shape shared by new, edit, inline edit and conflicts
async fn build_inputs(
    st: &AppState,
    page: &Page,
    object: &'static ObjectDef,
    custom: &[Field],
    rec: Option<&Record>,
    values: Option<&Pairs>,
    errors: &[corvid_core::FieldError],
    tz: chrono_tz::Tz,
) -> WebResult<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    let members = members_choices(st, page.tenant.company_id).await?;
    for f in object.fields.iter().chain(custom.iter()) {
        if !editable(page, object, f) {
            continue;
        }
        let value = match values {
            Some(v) => {
                let all: Vec<&str> = v.iter().filter(|(k, _)| *k == f.name).map(|(_, v)| v.as_str()).collect();
                if f.kind == FieldKind::Boolean {
                    all.last().copied().unwrap_or("false").to_string()
                } else {
                    all.join(", ")
                }
            }
            None => input_value(f, rec, tz),
        };
        let kind = input_kind(f);
        let choices = match &f.kind {
            FieldKind::Enum { options } | FieldKind::MultiEnum { options } => {
                options.iter().map(|o| Choice { value: o.value.clone(), label: o.label.clone() }).collect()
            }
            FieldKind::Currency => corvid_core::money::currencies().map(|c| Choice { value: c.into(), label: c.into() }).collect(),
            FieldKind::Country => corvid_core::country::codes().map(|c| Choice { value: c.into(), label: c.into() }).collect(),
            FieldKind::User => members.iter().map(|m| Choice { value: m.value.clone(), label: m.label.clone() }).collect(),
            FieldKind::Reference { object: target } if target != "*" => reference_choices(st, page, target, &value).await?,
            FieldKind::Reference { .. } => Vec::new(),
            _ => Vec::new(),
        };
        let kind = if matches!(&f.kind, FieldKind::Reference { object } if object == "*") { "text" } else { kind };
        let help = match &f.kind {
            FieldKind::Tags => "Separate tags with commas.".to_string(),
            FieldKind::Money { currency_field } => format!("Amount in the record's currency ({currency_field})."),
            FieldKind::Reference { object } if object == "*" => "Id of the related record.".to_string(),
            _ => String::new(),
        };
        let error = errors.iter().filter(|e| e.field == f.name).map(|e| e.reason.clone()).collect::<Vec<_>>().join("; ");
        let input = Input {
            name: f.name.clone(),
            label: f.label.clone(),
            kind,
            value,
            required: f.required,
            choices,
            error,
            help,
            theirs: String::new(),
        };
        match sections.iter_mut().find(|s| s.name == f.section) {
            Some(s) => s.inputs.push(input),
            None => sections.push(Section { name: f.section.clone(), inputs: vec![input] }),
        }
    }
    Ok(sections)
}

/// Turns submitted form pairs into the JSON object the store validates.
fn form_json(page: &Page, object: &ObjectDef, custom: &[Field], form: &Pairs, tz: chrono_tz::Tz, only: Option<&str>) -> Map<String, Json> {
    let mut out = Map::new();
    for f in object.fields.iter().chain(custom.iter()) {
        if !editable(page, object, f) || only.is_some_and(|o| o != f.name) {
            continue;
        }
        let values: Vec<&str> = form.iter().filter(|(k, _)| *k == f.name).map(|(_, v)| v.as_str()).collect();
        if values.is_empty() {
            continue;
        }
        let raw = if f.kind == FieldKind::Boolean { values.last().copied().unwrap_or("false").to_string() } else { values.join(",") };
        out.insert(f.name.clone(), form_to_json(f, &raw, tz));
    }
    out
}

#[derive(Template)]
#[template(path = "form.html")]
struct FormPage {
    ctx: Ctx,
    object: &'static ObjectDef,
    title: String,
    action: String,
    cancel: String,
    version: i64,
    sections: Vec<Section>,
    error: String,
    conflict: bool,
    /// Existing records the duplicate policy says this one would duplicate (nothing saved).
    duplicates: Vec<DuplicateLink>,
}

/// A likely duplicate shown on a form the company's "block" policy refused.
pub struct DuplicateLink {
    pub href: String,
    pub label: String,
    pub score: u8,
    pub reasons: String,
}

const DUPLICATE_MESSAGE: &str =
    "Not saved: this looks like a record that already exists (the company's duplicate policy blocks likely duplicates). \
     Open the existing record below, or change the details that match.";

fn duplicate_links(base: &str, found: &[corvid_store::dedupe::Candidate]) -> Vec<DuplicateLink> {
    found
        .iter()
        .map(|c| DuplicateLink {
            href: format!("{base}/{}/{}", c.object, c.id),
            label: if c.title.is_empty() { c.number.clone() } else { format!("{} {}", c.number, c.title) },
            score: c.score,
            reasons: c.reasons.join("; "),
        })
        .collect()
}

async fn tz_of(st: &AppState, company_id: Uuid) -> WebResult<chrono_tz::Tz> {
    Ok(companies::get(&st.db, company_id).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::Asia::Kolkata))
}

pub async fn new_form(State(st): State<AppState>, page: Page, p: crate::extract::Params, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let object = object_of(&p)?;
    if !page.ctx.can_write() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Your role can read records but not create them."));
    }
    let custom = page.tenant.records(&st.db, object).custom_fields().await?;
    let tz = tz_of(&st, page.tenant.company_id).await?;
    // Prefill from the query string (e.g. a new contact from an account page).
    let prefill: Pairs = pairs(raw.as_deref());
    let mut sections = build_inputs(&st, &page, object, &custom, None, None, &[], tz).await?;
    for s in &mut sections {
        for i in &mut s.inputs {
            if let Some(v) = first(&prefill, &i.name) {
                i.value = v.chars().take(500).collect();
            }
        }
    }
    let base = page.ctx.base();
    render(&FormPage {
        ctx: page.ctx.clone(),
        object,
        title: format!("New {}", object.label.to_lowercase()),
        action: format!("{base}/{}", object.name),
        cancel: format!("{base}/{}", object.name),
        version: 0,
        sections,
        error: String::new(),
        conflict: false,
        duplicates: Vec::new(),
    })
}

pub async fn create(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let object = object_of(&p)?;
    let records = page.tenant.records(&st.db, object);
    let custom = records.custom_fields().await?;
    let tz = tz_of(&st, page.tenant.company_id).await?;
    let input = form_json(&page, object, &custom, &form, tz, None);
    let (status, errors, error, duplicates) = match records.create(&input, None).await {
        Ok((rec, _)) => return Ok(redirect(&headers, &format!("{}/{}/{}", page.ctx.base(), object.name, rec.id))),
        Err(StoreError::Invalid(errors)) => {
            (StatusCode::UNPROCESSABLE_ENTITY, errors, "Please correct the highlighted fields.".to_string(), Vec::new())
        }
        Err(StoreError::Duplicate(found)) => {
            (StatusCode::CONFLICT, Vec::new(), DUPLICATE_MESSAGE.to_string(), duplicate_links(&page.ctx.base(), &found))
        }
        Err(e) => return Err(e.into()),
    };
    let sections = build_inputs(&st, &page, object, &custom, None, Some(&form), &errors, tz).await?;
    let base = page.ctx.base();
    render_status(
        status,
        &FormPage {
            ctx: page.ctx.clone(),
            object,
            title: format!("New {}", object.label.to_lowercase()),
            action: format!("{base}/{}", object.name),
            cancel: format!("{base}/{}", object.name),
            version: 0,
            sections,
            error,
            conflict: false,
            duplicates,
        },
    )
}

pub async fn edit_form(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    let object = object_of(&p)?;
    let id = id_of(&p)?;
    let records = page.tenant.records(&st.db, object);
    let rec = records.get(id).await?;
    let custom = records.custom_fields().await?;
    let tz = tz_of(&st, page.tenant.company_id).await?;
    let sections = build_inputs(&st, &page, object, &custom, Some(&rec), None, &[], tz).await?;
    let href = format!("{}/{}/{}", page.ctx.base(), object.name, id);
    render(&FormPage {
        ctx: page.ctx.clone(),
        object,
        title: format!("Edit {}", rec.title(object)),
        action: href.clone(),
        cancel: href,
        version: rec.version,
        sections,
        error: String::new(),
        conflict: false,
        duplicates: Vec::new(),
    })
}

pub async fn update(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let object = object_of(&p)?;
    let id = id_of(&p)?;
    let records = page.tenant.records(&st.db, object);
    let custom = records.custom_fields().await?;
    let tz = tz_of(&st, page.tenant.company_id).await?;
    let version: i64 = first(&form, "version").and_then(|v| v.parse().ok()).unwrap_or(0);
    let input = form_json(&page, object, &custom, &form, tz, None);
    let href = format!("{}/{}/{}", page.ctx.base(), object.name, id);
    let mut duplicates = Vec::new();
    let (errors, conflict, error) = match records.update(id, &input, version).await {
        Ok(_) => return Ok(redirect(&headers, &href)),
        Err(StoreError::Invalid(errors)) => (errors, false, "Please correct the highlighted fields.".to_string()),
        Err(StoreError::Duplicate(found)) => {
            duplicates = duplicate_links(&page.ctx.base(), &found);
            (Vec::new(), false, DUPLICATE_MESSAGE.to_string())
        }
        Err(StoreError::Stale { .. }) => (
            Vec::new(),
            true,
            "Someone else saved this record while you were editing. Their values are shown under each field that differs; \
             save again to keep yours, or cancel to keep theirs."
                .to_string(),
        ),
        Err(e) => return Err(e.into()),
    };
    let current = records.get(id).await?;
    let mut sections = build_inputs(&st, &page, object, &custom, Some(&current), Some(&form), &errors, tz).await?;
    if conflict {
        for s in &mut sections {
            for i in &mut s.inputs {
                let Some(f) = object.field(&i.name).or_else(|| custom.iter().find(|c| c.name == i.name)) else { continue };
                let theirs = input_value(f, Some(&current), tz);
                if theirs != i.value && input.contains_key(&i.name) {
                    i.theirs = if theirs.is_empty() { "(empty)".into() } else { theirs };
                }
            }
        }
    }
    render_status(
        if conflict || !duplicates.is_empty() { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY },
        &FormPage {
            ctx: page.ctx.clone(),
            object,
            title: format!("Edit {}", current.title(object)),
            action: href.clone(),
            cancel: href,
            // After a conflict the form carries the new version, so saving again is a
            // deliberate overwrite.
            version: current.version,
            sections,
            error,
            conflict,
            duplicates,
        },
    )
}

pub struct Shelf {
    pub title: String,
    pub new_href: String,
    pub rows: Vec<(String, String, String)>,
}

pub struct Event {
    pub when: String,
    pub kind: &'static str,
    pub title: String,
    pub detail: String,
    pub href: String,
}

pub struct ShownField {
    pub name: String,
    pub label: String,
    pub shown: Shown,
    pub editable: bool,
}

pub struct ShownSection {
    pub name: String,
    pub fields: Vec<ShownField>,
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    ctx: Ctx,
    object: &'static ObjectDef,
    rec: Record,
    title: String,
    href: String,
    deleted: bool,
    inactive: bool,
    sections: Vec<ShownSection>,
    shelves: Vec<Shelf>,
    events: Vec<Event>,
    history: Vec<HistoryRow>,
    members: Vec<Choice>,
    notice: String,
}

pub struct HistoryRow {
    pub when: String,
    pub who: String,
    pub action: String,
    pub field: String,
    pub old: String,
    pub new: String,
}

fn history_rows(rows: &[AuditRow], lk: &Lookups) -> Vec<HistoryRow> {
    rows.iter()
        .map(|r| HistoryRow {
            when: chrono::DateTime::parse_from_rfc3339(&r.at)
                .map(|t| super::format::local_time(&t.with_timezone(&chrono::Utc), lk.tz))
                .unwrap_or_else(|_| r.at.clone()),
            who: r.actor_id.and_then(|a| lk.users.get(&a).cloned()).unwrap_or_else(|| "System".into()),
            action: r.action.clone(),
            field: r.field.clone().unwrap_or_default(),
            old: r.old_value.clone().unwrap_or_default(),
            new: r.new_value.clone().unwrap_or_default(),
        })
        .collect()
}

/// Related lists shown on a record page: (object, linking field, title).
fn related(object: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match object {
        "accounts" => &[("contacts", "account_id", "Contacts"), ("deals", "account_id", "Deals")],
        "contacts" => &[("deals", "primary_contact_id", "Deals")],
        "leads" => &[("deals", "lead_id", "Deals")],
        _ => &[],
    }
}

pub async fn show(State(st): State<AppState>, page: Page, p: crate::extract::Params, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let object = object_of(&p)?;
    let id = id_of(&p)?;
    let records = page.tenant.records(&st.db, object);
    let rec = records.get(id).await?;
    if rec.deleted_at.is_some() {
        // A merged record's page is the survivor's.
        if let Some(to) = corvid_store::merge::merged_into(&st.db, page.tenant.company_id, id).await? {
            let note = urlencode(&format!("{} was merged into this {}.", rec.number, object.label.to_lowercase()));
            let to = axum::response::Redirect::to(&format!("{}/{}/{to}?notice={note}", page.ctx.base(), object.name));
            return Ok(axum::response::IntoResponse::into_response(to));
        }
    }
    let custom = records.custom_fields().await?;
    let base = page.ctx.base();
    let lk = Lookups::load(&st.db, page.tenant.company_id, object, &[&rec]).await?;
    let mut sections: Vec<ShownSection> = Vec::new();
    for f in visible_fields(&page, object, &custom) {
        let sf = ShownField {
            name: f.name.clone(),
            label: f.label.clone(),
            shown: display(&base, f, &rec, &lk),
            editable: editable(&page, object, f) && page.ctx.can_write(),
        };
        match sections.iter_mut().find(|s| s.name == f.section) {
            Some(s) => s.fields.push(sf),
            None => sections.push(ShownSection { name: f.section.clone(), fields: vec![sf] }),
        }
    }
    let mut shelves = Vec::new();
    for (target, link, title) in related(&object.name) {
        let Some(def) = corvid_core::object(target) else { continue };
        let linked = page.tenant.records(&st.db, def).linked(link, id, 50).await?;
        let rows = linked
            .iter()
            .map(|r| {
                let extra = match def.name.as_str() {
                    "deals" => r.text("stage").unwrap_or("").replace('_', " "),
                    "contacts" => r.text("job_title").unwrap_or("").to_string(),
                    _ => String::new(),
                };
                (format!("{base}/{target}/{}", r.id), r.title(def), extra)
            })
            .collect();
        shelves.push(Shelf { title: title.to_string(), new_href: format!("{base}/{target}/new?{link}={id}"), rows });
    }
    let entries = timeline::for_record(&st.db, &page.tenant, object, id, 100).await?;
    let act_def = corvid_core::object("activities").ok_or_else(WebError::not_found)?;
    let events = entries
        .iter()
        .filter_map(|e| match e {
            timeline::Entry::Activity(a) => Some(Event {
                when: a
                    .get("activity_date")
                    .and_then(|v| if let Value::Timestamp(t) = v { Some(super::format::local_time(t, lk.tz)) } else { None })
                    .unwrap_or_default(),
                kind: "activity",
                title: format!("{} · {}", a.text("activity_type").unwrap_or("").replace('_', " "), a.title(act_def)),
                detail: a.text("description").unwrap_or("").chars().take(300).collect(),
                href: format!("{base}/activities/{}", a.id),
            }),
            timeline::Entry::Task(t) => Some(Event {
                when: super::format::local_time(&t.created_at, lk.tz),
                kind: "task",
                title: format!("Task · {}", t.text("title").unwrap_or("")),
                detail: t.text("status").unwrap_or("").replace('_', " "),
                href: format!("{base}/tasks/{}", t.id),
            }),
            timeline::Entry::Change(c) if c.action == "update" => Some(Event {
                when: chrono::DateTime::parse_from_rfc3339(&c.at)
                    .map(|t| super::format::local_time(&t.with_timezone(&chrono::Utc), lk.tz))
                    .unwrap_or_default(),
                kind: "change",
                title: format!(
                    "{} changed {}",
                    c.actor_id.and_then(|a| lk.users.get(&a).cloned()).unwrap_or_else(|| "System".into()),
                    object.field(c.field.as_deref().unwrap_or("")).map_or(c.field.clone().unwrap_or_default(), |f| f.label.clone())
                ),
                detail: format!("{} → {}", c.old_value.as_deref().unwrap_or("(empty)"), c.new_value.as_deref().unwrap_or("(empty)")),
                href: String::new(),
            }),
            timeline::Entry::Change(_) => None,
        })
        .collect();
    let f = AuditFilter { object: Some(object.name.clone()), record_id: Some(id), limit: 200, ..Default::default() };
    let history = history_rows(&page.tenant.access.visible_history(audit::list(&st.db, page.tenant.company_id, &f).await?), &lk);
    let qp = pairs(raw.as_deref());
    render(&RecordPage {
        ctx: page.ctx.clone(),
        object,
        title: rec.title(object),
        href: format!("{base}/{}/{id}", object.name),
        deleted: rec.deleted_at.is_some(),
        inactive: rec.get("is_active") == Some(&Value::Bool(false)),
        rec,
        sections,
        shelves,
        events,
        history,
        members: members_choices(&st, page.tenant.company_id).await?,
        notice: first(&qp, "notice").unwrap_or("").chars().take(200).collect(),
    })
}

#[derive(Template)]
#[template(path = "field.html")]
struct FieldPartial {
    href: String,
    field: ShownField,
    input: Option<Input>,
    version: i64,
    conflict: bool,
}

async fn field_parts(st: &AppState, page: &Page, p: &crate::extract::Params) -> WebResult<(&'static ObjectDef, Record, Field, Vec<Field>)> {
    let object = object_of(p)?;
    let id = id_of(p)?;
    let records = page.tenant.records(&st.db, object);
    let rec = records.get(id).await?;
    let custom = records.custom_fields().await?;
    let field = object
        .field(p.str("field"))
        .or_else(|| custom.iter().find(|f| f.name == p.str("field")))
        .filter(|f| !page.tenant.access.is_hidden(&object.name, &f.name))
        .cloned()
        .ok_or_else(WebError::not_found)?;
    Ok((object, rec, field, custom))
}

pub async fn field_edit(State(st): State<AppState>, page: Page, p: crate::extract::Params, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let (object, rec, field, custom) = field_parts(&st, &page, &p).await?;
    let base = page.ctx.base();
    let lk = Lookups::load(&st.db, page.tenant.company_id, object, &[&rec]).await?;
    let shown = ShownField {
        name: field.name.clone(),
        label: field.label.clone(),
        shown: display(&base, &field, &rec, &lk),
        editable: !field.read_only && page.ctx.can_write(),
    };
    let href = format!("{base}/{}/{}", object.name, rec.id);
    // `?cancel` shows the value again.
    let editing = !pairs(raw.as_deref()).iter().any(|(k, _)| k == "cancel") && shown.editable;
    let input = if editing {
        let sections = build_inputs(&st, &page, object, &custom, Some(&rec), None, &[], lk.tz).await?;
        sections.into_iter().flat_map(|s| s.inputs).find(|i| i.name == field.name)
    } else {
        None
    };
    render(&FieldPartial { href, field: shown, input, version: rec.version, conflict: false })
}

pub async fn field_save(State(st): State<AppState>, page: Page, p: crate::extract::Params, Form(form): Form<Pairs>) -> WebResult<Response> {
    let (object, rec, field, custom) = field_parts(&st, &page, &p).await?;
    let base = page.ctx.base();
    let tz = tz_of(&st, page.tenant.company_id).await?;
    let version: i64 = first(&form, "version").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut input = form_json(&page, object, &custom, &form, tz, Some(&field.name));
    if !input.contains_key(&field.name) {
        input.insert(field.name.clone(), Json::Null);
    }
    let records = page.tenant.records(&st.db, object);
    let href = format!("{base}/{}/{}", object.name, rec.id);
    let outcome = records.update(rec.id, &input, version).await;
    let (errors, conflict) = match outcome {
        Ok(saved) => {
            let lk = Lookups::load(&st.db, page.tenant.company_id, object, &[&saved]).await?;
            let shown = ShownField {
                name: field.name.clone(),
                label: field.label.clone(),
                shown: display(&base, &field, &saved, &lk),
                editable: true,
            };
            return render(&FieldPartial { href, field: shown, input: None, version: saved.version, conflict: false });
        }
        Err(StoreError::Invalid(errors)) => (errors, false),
        Err(StoreError::Stale { .. }) => (Vec::new(), true),
        Err(e) => return Err(e.into()),
    };
    let current = records.get(rec.id).await?;
    let lk = Lookups::load(&st.db, page.tenant.company_id, object, &[&current]).await?;
    let sections = build_inputs(&st, &page, object, &custom, Some(&current), Some(&form), &errors, tz).await?;
    let mut input_ui = sections.into_iter().flat_map(|s| s.inputs).find(|i| i.name == field.name);
    if conflict {
        if let Some(i) = input_ui.as_mut() {
            let theirs = input_value(&field, Some(&current), tz);
            i.theirs = if theirs.is_empty() { "(empty)".into() } else { theirs };
        }
    }
    let shown =
        ShownField { name: field.name.clone(), label: field.label.clone(), shown: display(&base, &field, &current, &lk), editable: true };
    let status = if conflict { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
    render_status(status, &FieldPartial { href, field: shown, input: input_ui, version: current.version, conflict })
}

pub async fn delete(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let object = object_of(&p)?;
    let id = id_of(&p)?;
    page.tenant.records(&st.db, object).delete(id, None).await?;
    let word = if object.name == "accounts" { "deactivated" } else { "deleted" };
    Ok(redirect(&headers, &format!("{}/{}/{id}?notice={}", page.ctx.base(), object.name, urlencode(&format!("{} {word}.", object.label)))))
}

pub async fn restore(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let object = object_of(&p)?;
    let id = id_of(&p)?;
    page.tenant.records(&st.db, object).restore(id).await?;
    Ok(redirect(
        &headers,
        &format!("{}/{}/{id}?notice={}", page.ctx.base(), object.name, urlencode(&format!("{} restored.", object.label))),
    ))
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

pub async fn bulk(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let object = object_of(&p)?;
    let ids: Vec<String> = form.iter().filter(|(k, _)| k == "ids").map(|(_, v)| v.clone()).collect();
    let back = first(&form, "back").filter(|b| b.starts_with('?') || b.is_empty()).unwrap_or("").to_string();
    let list = format!("{}/{}", page.ctx.base(), object.name);
    let join = |msg: &str| {
        let sep = if back.is_empty() { "?" } else { "&" };
        format!("{list}{back}{sep}notice={}", urlencode(msg))
    };
    if ids.is_empty() {
        return Ok(redirect(&headers, &join("Select at least one row first.")));
    }
    let value = first(&form, "value").unwrap_or("").to_string();
    let req = match first(&form, "action") {
        Some("delete") => BulkRequest::Delete { ids },
        Some("owner") if object.field("owner_id").is_some() => {
            BulkRequest::Update { ids, changes: Map::from_iter([("owner_id".to_string(), Json::String(value))]) }
        }
        Some("status") if object.field("status").is_some() => {
            BulkRequest::Update { ids, changes: Map::from_iter([("status".to_string(), Json::String(value))]) }
        }
        _ => return Ok(redirect(&headers, &join("Choose an action."))),
    };
    let n = match &req {
        BulkRequest::Delete { ids } | BulkRequest::Update { ids, .. } => ids.len(),
        _ => 0,
    };
    let msg = match page.tenant.records(&st.db, object).bulk(&req).await {
        Ok(_) => format!("Updated {n} {}.", object.label_plural.to_lowercase()),
        Err(StoreError::Invalid(errs)) => {
            format!("Nothing was changed: {}", super::field_errors(&errs))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(redirect(&headers, &join(&msg)))
}

pub async fn save_view(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let object = object_of(&p)?;
    let query = first(&form, "query").unwrap_or("").to_string();
    let cols: Vec<String> =
        first(&pairs(Some(&query)), "cols").unwrap_or("").split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let list = format!("{}/{}", page.ctx.base(), object.name);
    match websess::save_view(
        &st.db,
        page.tenant.company_id,
        page.tenant.user_id,
        &object.name,
        first(&form, "name").unwrap_or(""),
        &query,
        &cols,
    )
    .await
    {
        Ok(()) => Ok(redirect(&headers, &format!("{list}?{query}"))),
        Err(StoreError::Invalid(_)) => {
            Ok(redirect(&headers, &format!("{list}?{query}&notice={}", urlencode("Give the view a name of up to 80 characters."))))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_view(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let object = object_of(&p)?;
    let id = Uuid::parse_str(p.str("view_id")).map_err(|_| WebError::not_found())?;
    websess::delete_view(&st.db, page.tenant.company_id, page.tenant.user_id, id).await?;
    Ok(redirect(&headers, &format!("{}/{}", page.ctx.base(), object.name)))
}

/// Creates an activity or task from a record page: only the `allowed` form fields are taken,
/// `link` adds the fields that tie it to the record, and the page shows the outcome.
#[allow(clippy::too_many_arguments)] // the two callers differ only in these values
async fn create_from_record(
    st: &AppState,
    page: &Page,
    p: &crate::extract::Params,
    headers: &HeaderMap,
    form: &Pairs,
    target: &str,
    allowed: &[&str],
    link: fn(&ObjectDef, Uuid) -> Vec<(String, String)>,
    done: &str,
    not_done: &str,
) -> WebResult<Response> {
    let object = object_of(p)?;
    let id = id_of(p)?;
    page.tenant.records(&st.db, object).get(id).await?;
    let def = corvid_core::object(target).ok_or_else(WebError::not_found)?;
    let tz = tz_of(st, page.tenant.company_id).await?;
    let mut input = form_json(page, def, &[], form, tz, None);
    input.retain(|k, _| allowed.contains(&k.as_str()));
    for (k, v) in link(object, id) {
        input.insert(k, Json::String(v));
    }
    let msg = match page.tenant.records(&st.db, def).create(&input, None).await {
        Ok(_) => done.to_string(),
        Err(StoreError::Invalid(errs) | StoreError::FieldForbidden(errs)) => {
            format!("{not_done}: {}", super::field_errors(&errs))
        }
        Err(StoreError::Forbidden(m)) => format!("{not_done}: {m}"),
        Err(e) => return Err(e.into()),
    };
    Ok(redirect(headers, &format!("{}/{}/{id}?notice={}", page.ctx.base(), object.name, urlencode(&msg))))
}

/// Logs a call, meeting, note (…) against the record.
pub async fn log_activity(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let allowed = ["activity_type", "direction", "title", "description", "outcome", "duration_minutes", "activity_date"];
    let link = |o: &ObjectDef, id: Uuid| vec![(format!("{}_id", o.singular), id.to_string())];
    create_from_record(&st, &page, &p, &headers, &form, "activities", &allowed, link, "Activity logged.", "Not logged").await
}

/// Adds a task related to the record.
pub async fn add_task(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(form): Form<Pairs>,
) -> WebResult<Response> {
    let allowed = ["title", "task_type", "description", "due_at", "priority", "assignee_id"];
    let link = |o: &ObjectDef, id: Uuid| {
        if matches!(o.name.as_str(), "tasks" | "activities") {
            Vec::new()
        } else {
            vec![("related_object".to_string(), o.name.clone()), ("related_id".to_string(), id.to_string())]
        }
    };
    create_from_record(&st, &page, &p, &headers, &form, "tasks", &allowed, link, "Task created.", "No task created").await
}

/// Downloads the current list view (filters, search, sort and chosen columns) as CSV or XLSX.
pub async fn export(State(st): State<AppState>, page: Page, p: crate::extract::Params, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let object = object_of(&p)?;
    let qp = pairs(raw.as_deref());
    let (mut lq, _) = ui_query(&qp);
    lq.fields = first(&qp, "cols").filter(|c| !c.is_empty()).map(|c| c.split(',').map(str::to_string).collect());
    let format = crate::export::Format::parse(first(&qp, "format"))?;
    Ok(crate::export::export(st.db.clone(), page.tenant, object, lq, format).await?)
}
