//! Import pages for Admins and Managers, a wizard over the same engine as the API:
//!
//! 1. `imports`: upload a CSV or XLSX (multipart, streamed to the data directory under a
//!    generated name) for an object, optionally with a saved mapping template. The file is
//!    checked at once; a bad one is refused with a clear message and nothing is kept. A good
//!    one becomes a *draft* import.
//! 2. `imports/{id}/mapping`: each column with sample values and the suggested field; apply
//!    or save a mapping template.
//! 3. `imports/{id}/preview`: the first rows with each cell's validation error beside it, and
//!    the options (duplicate policy, assignment rules, default source/campaign/medium).
//! 4. `imports/{id}`: the running import's progress bar (htmx polls this page while it runs),
//!    then the result report with the failed rows and their CSV.
//!
//! Upload forms are multipart, so their CSRF token travels in the form action's query (see
//! `csrf_guard`).

use super::format::local_time;
use super::records::Choice;
use super::{redirect, render, render_status, Ctx, Page, WebError, WebResult};
use crate::api::imports::{self as api, MappingSpec};
use crate::error::ApiError;
use crate::AppState;
use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use corvid_core::meta::{Field, FieldKind, ObjectDef};
use corvid_core::FieldError;
use corvid_store::import::{self, DuplicatePolicy, FileError, Import, Mapping, Options, Source};
use corvid_store::{companies, StoreError};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

/// Drafts nobody started are removed (with their files) after a day.
const DRAFT_MAX_AGE_SECS: i64 = 24 * 3600;
/// Rows shown in the preview.
const PREVIEW_ROWS: usize = 20;
/// Sample values shown per column on the mapping page.
const SAMPLES: usize = 3;
/// The option fields offered as defaults, when the object has them.
const DEFAULT_FIELDS: &[&str] = &["source", "campaign", "medium"];

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The layout context for an import page; 403 for roles that cannot import.
fn importer(page: &Page, nav: &str) -> WebResult<Ctx> {
    if !api::can_import(&page.tenant.access) {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Your role cannot import records."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = nav.into();
    Ok(ctx)
}

fn import_id(p: &crate::extract::Params) -> WebResult<Uuid> {
    Uuid::parse_str(p.str("import_id")).map_err(|_| WebError::not_found())
}

async fn load(st: &AppState, page: &Page, id: Uuid) -> WebResult<(Import, &'static ObjectDef)> {
    let imp = import::get(&st.db, page.tenant.company_id, id).await.map_err(|e| match e {
        StoreError::NotFound => WebError::not_found(),
        other => other.into(),
    })?;
    let object = corvid_core::object(&imp.object).ok_or_else(WebError::not_found)?;
    Ok((imp, object))
}

/// Reads up to `n` rows of an opened file off the async threads.
async fn read_rows(mut source: Source, n: usize) -> WebResult<(Source, Vec<Result<Vec<String>, FileError>>)> {
    tokio::task::spawn_blocking(move || {
        let rows: Vec<_> = source.rows().take(n).collect();
        (source, rows)
    })
    .await
    .map_err(|_| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "The file could not be read. Please try again."))
}

/// A draft's stored file, opened again; a file that cannot be read any more is explained.
async fn open_draft(st: &AppState, page: &Page, imp: &Import) -> WebResult<Source> {
    match import::open_stored(&st.db, page.tenant.company_id, imp.id).await? {
        Ok(s) => Ok(s),
        Err(e) => Err(WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("The uploaded file can no longer be read ({e}). Please upload it again."),
        )),
    }
}

fn object_choices() -> Vec<Choice> {
    corvid_core::meta::OBJECT_NAMES
        .iter()
        .filter_map(|n| corvid_core::object(n))
        .map(|o| Choice { value: o.name.clone(), label: o.label_plural.clone() })
        .collect()
}

fn object_label(name: &str) -> String {
    corvid_core::object(name).map_or_else(|| name.to_string(), |o| o.label_plural.clone())
}

/// The fields a column can be mapped to, standard then custom.
fn target_choices(object: &ObjectDef, custom: &[Field]) -> Vec<Choice> {
    object
        .fields
        .iter()
        .chain(custom)
        .filter(|f| !f.read_only)
        .map(|f| {
            let mut label = f.label.clone();
            if f.custom {
                label.push_str(" (custom)");
            }
            if f.required {
                label.push_str(" *");
            }
            Choice { value: f.name.clone(), label }
        })
        .collect()
}

fn field_label(object: &ObjectDef, custom: &[Field], name: &str) -> String {
    object.field(name).or_else(|| custom.iter().find(|f| f.name == name)).map_or_else(|| name.to_string(), |f| f.label.clone())
}

fn state_label(imp: &Import) -> (&'static str, &'static str) {
    match imp.state.as_str() {
        "draft" => ("Draft", "grey"),
        "queued" => ("Queued", "blue"),
        "running" => ("Running", "purple"),
        "succeeded" if imp.failed > 0 => ("Finished with errors", "orange"),
        "succeeded" => ("Finished", "green"),
        "failed" => ("Failed", "red"),
        "cancelled" => ("Cancelled", "grey"),
        _ => ("Unknown", "grey"),
    }
}

// ---------------------------------------------------------------------------------------
// 1. Upload
// ---------------------------------------------------------------------------------------

pub struct ImportLine {
    pub href: String,
    pub object: String,
    pub file_name: String,
    pub state: String,
    pub badge: &'static str,
    pub counts: String,
    pub created: String,
}

pub struct TemplateLine {
    pub id: Uuid,
    pub object: String,
    pub name: String,
    pub columns: usize,
}

#[derive(Template)]
#[template(path = "import.html")]
struct UploadPage {
    ctx: Ctx,
    upload_action: String,
    objects: Vec<Choice>,
    object: String,
    template_choices: Vec<Choice>,
    template_id: String,
    recent: Vec<ImportLine>,
    templates: Vec<TemplateLine>,
    max_mb: u64,
    error: String,
    notice: String,
}

async fn upload_page(
    st: &AppState,
    page: &Page,
    ctx: Ctx,
    object: &str,
    template_id: &str,
    error: String,
    notice: String,
) -> WebResult<UploadPage> {
    let cid = page.tenant.company_id;
    let tz = companies::get(&st.db, cid).await?.and_then(|c| c.time_zone.parse().ok()).unwrap_or(chrono_tz::UTC);
    let recent = import::list(&st.db, cid, 20)
        .await?
        .into_iter()
        .map(|imp| {
            let (label, badge) = state_label(&imp);
            let base = ctx.base();
            let href =
                if imp.state == "draft" { format!("{base}/imports/{}/mapping", imp.id) } else { format!("{base}/imports/{}", imp.id) };
            let counts = if imp.state == "draft" {
                String::new()
            } else {
                format!("{} created · {} updated · {} skipped · {} failed", imp.created, imp.updated, imp.skipped, imp.failed)
            };
            let created = chrono::DateTime::parse_from_rfc3339(&imp.created_at)
                .map(|t| local_time(&t.with_timezone(&chrono::Utc), tz))
                .unwrap_or_else(|_| imp.created_at.clone());
            ImportLine {
                href,
                object: object_label(&imp.object),
                file_name: clip(&imp.file_name, 80),
                state: label.into(),
                badge,
                counts,
                created,
            }
        })
        .collect();
    let saved = import::templates(&st.db, cid, None).await?;
    let template_choices =
        saved.iter().map(|t| Choice { value: t.id.to_string(), label: format!("{} · {}", object_label(&t.object), t.name) }).collect();
    let templates = saved
        .into_iter()
        .map(|t| TemplateLine { id: t.id, object: object_label(&t.object), columns: t.mapping.len(), name: t.name })
        .collect();
    let upload_action = format!("{}/imports?_csrf={}", ctx.base(), urlencode(&ctx.csrf));
    Ok(UploadPage {
        ctx,
        upload_action,
        objects: object_choices(),
        object: object.to_string(),
        template_choices,
        template_id: template_id.to_string(),
        recent,
        templates,
        max_mb: import::MAX_FILE_BYTES / 1024 / 1024,
        error,
        notice,
    })
}

/// `GET .../imports[?object=leads]`: the upload form, recent imports and saved templates.
pub async fn index(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = importer(&page, "imports")?;
    let qp: Pairs = serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let object = first(&qp, "object").filter(|o| corvid_core::object(o).is_some()).unwrap_or("leads").to_string();
    let notice = first(&qp, "notice").map(|n| clip(n, 200)).unwrap_or_default();
    let error = first(&qp, "error").map(|n| clip(n, 200)).unwrap_or_default();
    render(&upload_page(&st, &page, ctx, &object, "", error, notice).await?)
}

/// `POST .../imports` (multipart: object, template_id, file): checks the file and makes a draft.
pub async fn upload(State(st): State<AppState>, page: Page, mp: Result<Multipart, MultipartRejection>) -> WebResult<Response> {
    let ctx = importer(&page, "imports")?;
    let Ok(mp) = mp else {
        let view = upload_page(&st, &page, ctx, "leads", "", "Choose a CSV or XLSX file to upload.".into(), String::new()).await?;
        return render_status(StatusCode::BAD_REQUEST, &view);
    };
    let up = match api::receive(&st, mp).await {
        Ok(up) => up,
        Err(e) => {
            let view = upload_page(&st, &page, ctx, "leads", "", upload_message(&e), String::new()).await?;
            return render_status(e.status(), &view);
        }
    };
    let object_name = up.object.clone().unwrap_or_default();
    let template_raw = up.template_id.clone().unwrap_or_default();
    match make_draft(&st, &page, &up).await {
        Ok(imp) => Ok(Redirect::to(&format!("{}/imports/{}/mapping", ctx.base(), imp.id)).into_response()),
        Err(e) => {
            up.discard().await;
            if matches!(e, ApiError::NotFound(_)) {
                return Err(WebError::not_found());
            }
            let object = if corvid_core::object(&object_name).is_some() { object_name } else { "leads".into() };
            let view = upload_page(&st, &page, ctx, &object, &template_raw, upload_message(&e), String::new()).await?;
            render_status(e.status(), &view)
        }
    }
}

/// What to tell the user about a refused upload.
fn upload_message(e: &ApiError) -> String {
    match e {
        ApiError::TooLarge => format!("The file is larger than {} MB.", import::MAX_FILE_BYTES / 1024 / 1024),
        ApiError::Invalid(errs) => errs
            .iter()
            .map(|fe| match fe.field.as_str() {
                "file" => format!("This file cannot be imported: {}.", fe.reason),
                "object" => "Choose what to import (leads, accounts, …).".to_string(),
                "template_id" => format!("The mapping template {}.", fe.reason),
                other => format!("{other} {}", fe.reason),
            })
            .collect::<Vec<_>>()
            .join(" "),
        ApiError::BadRequest(d, _) => format!("The upload could not be read: {d}."),
        _ => "The upload failed. Please try again.".into(),
    }
}

async fn make_draft(st: &AppState, page: &Page, up: &api::Upload) -> Result<Import, ApiError> {
    let t = &page.tenant;
    let object =
        up.object.as_deref().and_then(|o| corvid_core::object(o.trim())).ok_or_else(|| ApiError::invalid("object", "is required"))?;
    let spec = match up.template_id.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(id) => MappingSpec::Template(api::load_template(&st.db, t, id, object).await?),
        None => MappingSpec::Suggest,
    };
    let custom = t.records(&st.db, object).custom_fields().await?;
    let sniffed = api::open_upload(up).await?.sniffed.clone();
    let mapping = spec.resolve(object, &custom, &sniffed.headers);
    if let Err(e) = import::discard_stale_drafts(&st.db, t.company_id, DRAFT_MAX_AGE_SECS).await {
        tracing::warn!(error = %e, "could not remove old import drafts");
    }
    let options = Options { run_assignment: true, ..Options::default() };
    Ok(import::create_draft(
        &st.db,
        t,
        import::NewImport {
            object,
            file_name: &up.file_name,
            stored_path: &up.path,
            sniffed: &sniffed,
            mapping: &mapping,
            options: &options,
            idempotency_key: None,
        },
    )
    .await?)
}

// ---------------------------------------------------------------------------------------
// 2. Mapping
// ---------------------------------------------------------------------------------------

pub struct MapRow {
    pub index: usize,
    pub header: String,
    pub samples: Vec<String>,
    pub selected: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "import_mapping.html")]
struct MappingPage {
    ctx: Ctx,
    id: Uuid,
    object_label: String,
    file_name: String,
    kind: String,
    encoding: String,
    rows: Vec<MapRow>,
    fields: Vec<Choice>,
    templates: Vec<Choice>,
    template_name: String,
    error: String,
    notice: String,
}

async fn mapping_view(
    st: &AppState,
    page: &Page,
    imp: &Import,
    object: &'static ObjectDef,
    mapping: &Mapping,
    errors: &[FieldError],
) -> WebResult<MappingPage> {
    let ctx = importer(page, &object.name)?;
    let custom = page.tenant.records(&st.db, object).custom_fields().await?;
    let source = open_draft(st, page, imp).await?;
    let (_, samples) = read_rows(source, SAMPLES).await?;
    let samples: Vec<Vec<String>> = samples.into_iter().filter_map(Result::ok).collect();
    let rows = imp
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| MapRow {
            index: i,
            header: if h.is_empty() { format!("(column {})", i + 1) } else { clip(h, 120) },
            samples: samples.iter().filter_map(|r| r.get(i)).filter(|c| !c.is_empty()).map(|c| clip(c, 60)).collect(),
            selected: mapping.get(i).cloned().flatten().unwrap_or_default(),
            error: errors.iter().filter(|e| e.field == format!("mapping[{i}]")).map(|e| e.reason.clone()).collect::<Vec<_>>().join("; "),
        })
        .collect();
    let general: Vec<String> =
        errors.iter().filter(|e| !e.field.starts_with("mapping[")).map(|e| format!("{} {}", e.field, e.reason)).collect();
    let templates = import::templates(&st.db, page.tenant.company_id, Some(&object.name))
        .await?
        .into_iter()
        .map(|t| Choice { value: t.id.to_string(), label: t.name })
        .collect();
    Ok(MappingPage {
        ctx,
        id: imp.id,
        object_label: object.label_plural.clone(),
        file_name: imp.file_name.clone(),
        kind: imp.kind.to_uppercase(),
        encoding: imp.encoding.clone(),
        rows,
        fields: target_choices(object, &custom),
        templates,
        template_name: String::new(),
        error: if general.is_empty() && !errors.is_empty() { "Some columns need a different field.".into() } else { general.join("; ") },
        notice: String::new(),
    })
}

/// `GET .../imports/{id}/mapping`
pub async fn mapping_page(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    RawQuery(raw): RawQuery,
) -> WebResult<Response> {
    importer(&page, "imports")?;
    let (imp, object) = load(&st, &page, import_id(&p)?).await?;
    if imp.state != "draft" {
        return Ok(Redirect::to(&format!("{}/imports/{}", page.ctx.base(), imp.id)).into_response());
    }
    let qp: Pairs = serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let mut view = mapping_view(&st, &page, &imp, object, &imp.mapping, &[]).await?;
    view.notice = first(&qp, "notice").map(|n| clip(n, 200)).unwrap_or_default();
    render(&view)
}

/// `POST .../imports/{id}/mapping`: `col0..colN`, and `action` = `preview` (save the mapping
/// and go on), `save_template` (with `template_name`) or `apply_template` (with `template_id`).
pub async fn mapping_save(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    importer(&page, "imports")?;
    let (imp, object) = load(&st, &page, import_id(&p)?).await?;
    let base = format!("{}/imports/{}", page.ctx.base(), imp.id);
    if imp.state != "draft" {
        return Ok(redirect(&headers, &base));
    }
    let t = &page.tenant;
    let custom = t.records(&st.db, object).custom_fields().await?;
    let action = first(&f, "action").unwrap_or("preview");
    if action == "apply_template" {
        let raw = first(&f, "template_id").unwrap_or("");
        let tpl = match api::load_template(&st.db, t, raw, object).await {
            Ok(tpl) => tpl,
            Err(ApiError::NotFound(_)) => return Err(WebError::not_found()),
            Err(e) => {
                let mut view = mapping_view(&st, &page, &imp, object, &imp.mapping, &[]).await?;
                view.error = format!("Choose a saved template first ({}).", super::field_errors(&invalid_of(e)));
                return render_status(StatusCode::UNPROCESSABLE_ENTITY, &view);
            }
        };
        let mapping = tpl.mapping_for(&imp.headers);
        import::update_draft(&st.db, t.company_id, imp.id, Some(&mapping), None).await?;
        let msg = format!("Applied the template \"{}\". Check the columns below.", tpl.name);
        return Ok(redirect(&headers, &format!("{base}/mapping?notice={}", urlencode(&msg))));
    }
    let mapping: Mapping = (0..imp.headers.len())
        .map(|i| first(&f, &format!("col{i}")).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string))
        .collect();
    let options: Options = serde_json::from_value(imp.options.clone()).unwrap_or_default();
    if let Err(errs) = import::check_mapping(object, &custom, &imp.headers, &mapping, &options) {
        let view = mapping_view(&st, &page, &imp, object, &mapping, &errs).await?;
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &view);
    }
    import::update_draft(&st.db, t.company_id, imp.id, Some(&mapping), None).await?;
    if action == "save_template" {
        let name = first(&f, "template_name").unwrap_or("").trim().to_string();
        let map = import::template_map(&imp.headers, &mapping);
        return match api::save_template(&st.db, t, object, &name, &map).await {
            Ok((tpl, created)) => {
                let msg = if created {
                    format!("Saved the template \"{}\".", tpl.name)
                } else {
                    format!("Updated the template \"{}\".", tpl.name)
                };
                Ok(redirect(&headers, &format!("{base}/mapping?notice={}", urlencode(&msg))))
            }
            Err(ApiError::Invalid(errs)) => {
                let mut view = mapping_view(&st, &page, &imp, object, &mapping, &[]).await?;
                view.error = format!("The template was not saved: {}.", super::field_errors(&errs));
                view.template_name = clip(&name, import::MAX_TEMPLATE_NAME + 20);
                render_status(StatusCode::UNPROCESSABLE_ENTITY, &view)
            }
            Err(e) => Err(e.into()),
        };
    }
    Ok(redirect(&headers, &format!("{base}/preview")))
}

fn invalid_of(e: ApiError) -> Vec<FieldError> {
    match e {
        ApiError::Invalid(errs) => errs,
        other => vec![FieldError::new("template_id", format!("{other:?}"))],
    }
}

// ---------------------------------------------------------------------------------------
// 3. Preview and options
// ---------------------------------------------------------------------------------------

pub struct PreviewCol {
    pub header: String,
    pub field: String,
}

pub struct PreviewCell {
    pub value: String,
    pub error: String,
}

pub struct PreviewLine {
    pub number: i64,
    pub cells: Vec<PreviewCell>,
    /// Errors not tied to a shown column (a required field no column fills, a default, ...).
    pub other: String,
    pub ok: bool,
}

pub struct DefaultInput {
    pub name: String,
    pub label: String,
    pub choices: Vec<Choice>,
    pub value: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "import_preview.html")]
struct PreviewPage {
    ctx: Ctx,
    id: Uuid,
    object_label: String,
    file_name: String,
    columns: Vec<PreviewCol>,
    lines: Vec<PreviewLine>,
    bad_lines: usize,
    ignored: usize,
    policy: String,
    match_hint: String,
    run_assignment: bool,
    defaults: Vec<DefaultInput>,
    error: String,
}

async fn preview_view(
    st: &AppState,
    page: &Page,
    imp: &Import,
    object: &'static ObjectDef,
    options: &Options,
    errors: &[FieldError],
) -> WebResult<PreviewPage> {
    let ctx = importer(page, &object.name)?;
    let t = &page.tenant;
    let custom = t.records(&st.db, object).custom_fields().await?;
    let mut source = open_draft(st, page, imp).await?;
    let preview = {
        let (custom, calling, mapping, options) = (custom.clone(), t.calling_code.clone(), imp.mapping.clone(), options.clone());
        tokio::task::spawn_blocking(move || import::preview(object, &custom, &calling, &mut source, Some(mapping), &options, PREVIEW_ROWS))
            .await
            .map_err(|_| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, "The file could not be read. Please try again."))?
    };
    let shown: Vec<(usize, String)> = imp.mapping.iter().enumerate().filter_map(|(i, m)| m.clone().map(|f| (i, f))).collect();
    let columns = shown
        .iter()
        .map(|(i, f)| PreviewCol {
            header: clip(imp.headers.get(*i).map_or("", String::as_str), 60),
            field: field_label(object, &custom, f),
        })
        .collect();
    let lines: Vec<PreviewLine> = preview
        .rows
        .iter()
        .map(|r| {
            let reason =
                |field: &str| r.errors.iter().filter(|e| e.field == field).map(|e| e.reason.clone()).collect::<Vec<_>>().join("; ");
            let cells = shown
                .iter()
                .map(|(i, f)| PreviewCell { value: clip(r.cells.get(*i).map_or("", String::as_str), 80), error: reason(f) })
                .collect();
            let other = r
                .errors
                .iter()
                .filter(|e| !shown.iter().any(|(_, f)| *f == e.field))
                .map(|e| format!("{} {}", field_label(object, &custom, &e.field), e.reason))
                .collect::<Vec<_>>()
                .join("; ");
            PreviewLine { number: r.row_number + 1, cells, other, ok: r.errors.is_empty() }
        })
        .collect();
    let bad_lines = lines.iter().filter(|l| !l.ok).count();
    let err_of = |name: &str| {
        errors.iter().filter(|e| e.field == format!("defaults.{name}")).map(|e| e.reason.clone()).collect::<Vec<_>>().join("; ")
    };
    let defaults = DEFAULT_FIELDS
        .iter()
        .filter_map(|n| object.field(n))
        .map(|f| DefaultInput {
            name: f.name.clone(),
            label: f.label.clone(),
            choices: match &f.kind {
                FieldKind::Enum { options } => options.iter().map(|o| Choice { value: o.value.clone(), label: o.label.clone() }).collect(),
                _ => Vec::new(),
            },
            value: options.defaults.get(&f.name).and_then(Json::as_str).unwrap_or("").to_string(),
            error: err_of(&f.name),
        })
        .collect();
    let general: Vec<String> =
        errors.iter().filter(|e| !e.field.starts_with("defaults.")).map(|e| format!("{} {}", e.field, e.reason)).collect();
    let match_hint = match object.name.as_str() {
        "leads" | "contacts" => "Rows match existing records by email address.",
        "accounts" | "deals" => "Rows match existing records by name.",
        _ => "These records have no duplicate key, so every row creates a record.",
    };
    Ok(PreviewPage {
        ctx,
        id: imp.id,
        object_label: object.label_plural.clone(),
        file_name: imp.file_name.clone(),
        columns,
        lines,
        bad_lines,
        ignored: imp.mapping.iter().filter(|m| m.is_none()).count(),
        policy: serde_json::to_value(options.duplicate_policy).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
        match_hint: match_hint.into(),
        run_assignment: options.run_assignment,
        defaults,
        error: if general.is_empty() && !errors.is_empty() { "Please check the options below.".into() } else { general.join("; ") },
    })
}

/// `GET .../imports/{id}/preview`
pub async fn preview_page(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    importer(&page, "imports")?;
    let (imp, object) = load(&st, &page, import_id(&p)?).await?;
    if imp.state != "draft" {
        return Ok(Redirect::to(&format!("{}/imports/{}", page.ctx.base(), imp.id)).into_response());
    }
    let options: Options = serde_json::from_value(imp.options.clone()).unwrap_or_default();
    render(&preview_view(&st, &page, &imp, object, &options, &[]).await?)
}

/// Reads the options form: `duplicate_policy`, `run_assignment` (a checkbox), and a default
/// per offered field.
fn options_of(object: &ObjectDef, f: &Pairs) -> Result<Options, Vec<FieldError>> {
    let duplicate_policy = match first(f, "duplicate_policy").unwrap_or("skip") {
        "skip" => DuplicatePolicy::Skip,
        "update" => DuplicatePolicy::Update,
        "create" => DuplicatePolicy::Create,
        _ => return Err(vec![FieldError::new("duplicate_policy", "must be skip, update or create")]),
    };
    let mut defaults = Map::new();
    for name in DEFAULT_FIELDS {
        if object.field(name).is_none() {
            continue;
        }
        if let Some(v) = first(f, &format!("default_{name}")).map(str::trim).filter(|v| !v.is_empty()) {
            defaults.insert(name.to_string(), Json::String(v.chars().take(1000).collect()));
        }
    }
    Ok(Options { duplicate_policy, defaults, run_assignment: first(f, "run_assignment").is_some_and(|v| v == "1") })
}

/// `POST .../imports/{id}/start`: saves the options and queues the import.
pub async fn start(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    importer(&page, "imports")?;
    let (imp, object) = load(&st, &page, import_id(&p)?).await?;
    let base = format!("{}/imports/{}", page.ctx.base(), imp.id);
    if imp.state != "draft" {
        return Ok(redirect(&headers, &base));
    }
    let t = &page.tenant;
    let custom = t.records(&st.db, object).custom_fields().await?;
    let stored: Options = serde_json::from_value(imp.options.clone()).unwrap_or_default();
    let options = match options_of(object, &f) {
        Ok(o) => o,
        Err(errs) => {
            return render_status(StatusCode::UNPROCESSABLE_ENTITY, &preview_view(&st, &page, &imp, object, &stored, &errs).await?)
        }
    };
    let checked = import::check_mapping(object, &custom, &imp.headers, &imp.mapping, &options)
        .and_then(|()| import::check_defaults(object, &custom, &t.calling_code, &options));
    if let Err(errs) = checked {
        return render_status(StatusCode::UNPROCESSABLE_ENTITY, &preview_view(&st, &page, &imp, object, &options, &errs).await?);
    }
    import::update_draft(&st.db, t.company_id, imp.id, None, Some(&options)).await?;
    if import::start_draft(&st.db, t.company_id, imp.id).await? {
        api::enqueue(&st.db, t, imp.id).await?;
    }
    Ok(redirect(&headers, &base))
}

// ---------------------------------------------------------------------------------------
// 4. Progress and result
// ---------------------------------------------------------------------------------------

pub struct ErrorLine {
    pub row: i64,
    pub field: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "import_progress.html")]
struct ProgressPage {
    ctx: Ctx,
    id: Uuid,
    object_label: String,
    file_name: String,
    state: String,
    state_label: String,
    badge: &'static str,
    active: bool,
    has_total: bool,
    done: i64,
    total: i64,
    percent: i64,
    created: i64,
    updated: i64,
    skipped: i64,
    failed: i64,
    error: String,
    errors: Vec<ErrorLine>,
    more_errors: bool,
    list_href: String,
}

/// `GET .../imports/{id}`: progress while queued or running (the status block polls this
/// page every second), then the result.
pub async fn progress(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    importer(&page, "imports")?;
    let (imp, object) = load(&st, &page, import_id(&p)?).await?;
    let ctx = importer(&page, &object.name)?;
    if imp.state == "draft" {
        return Ok(Redirect::to(&format!("{}/imports/{}/mapping", ctx.base(), imp.id)).into_response());
    }
    let active = matches!(imp.state.as_str(), "queued" | "running");
    let total = imp.rows_total.unwrap_or(0).max(0);
    let done = imp.rows_done.clamp(0, total.max(imp.rows_done));
    let finished_ok = imp.state == "succeeded";
    let percent = if finished_ok {
        100
    } else if total > 0 {
        (done * 100 / total).clamp(0, 100)
    } else {
        0
    };
    let errors = if active {
        Vec::new()
    } else {
        import::errors(&st.db, page.tenant.company_id, imp.id, 50)
            .await?
            .into_iter()
            .map(|(row, field, reason, _)| ErrorLine { row, field: field_label(object, &[], &field), reason })
            .collect()
    };
    let (label, badge) = state_label(&imp);
    render(&ProgressPage {
        id: imp.id,
        object_label: object.label_plural.clone(),
        file_name: imp.file_name.clone(),
        state: imp.state.clone(),
        state_label: label.into(),
        badge,
        active,
        has_total: imp.rows_total.is_some() || finished_ok,
        done: if finished_ok { total.max(done) } else { done },
        total: if finished_ok { total.max(done) } else { total },
        percent,
        created: imp.created,
        updated: imp.updated,
        skipped: imp.skipped,
        failed: imp.failed,
        error: imp.error.clone().unwrap_or_default(),
        more_errors: errors.len() >= 50,
        errors,
        list_href: format!("{}/{}", ctx.base(), object.name),
        ctx,
    })
}

/// `GET .../imports/{id}/errors.csv`: the failed rows, as the API gives them.
pub async fn errors_csv(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    importer(&page, "imports")?;
    let id = import_id(&p)?;
    let bytes = api::errors_csv_bytes(&st.db, page.tenant.company_id, id).await.map_err(|e| match e {
        ApiError::NotFound(_) => WebError::not_found(),
        other => other.into(),
    })?;
    Ok(api::csv_attachment(bytes, &format!("import-{id}-errors.csv")))
}

/// `POST .../imports/templates/{template_id}/delete`
pub async fn delete_template(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let ctx = importer(&page, "imports")?;
    let id = Uuid::parse_str(p.str("template_id")).map_err(|_| WebError::not_found())?;
    let t = import::delete_template(&st.db, &page.tenant.audit, id).await.map_err(|e| match e {
        StoreError::NotFound => WebError::not_found(),
        other => other.into(),
    })?;
    let msg = format!("Deleted the template \"{}\".", t.name);
    Ok(redirect(&headers, &format!("{}/imports?notice={}", ctx.base(), urlencode(&msg))))
}
