//! Imports through the API: upload (multipart, streamed to disk), dry-run validation with a
//! suggested mapping and preview, progress, the failed rows as CSV, and saved mapping
//! templates. The import itself runs as the background job `import.run`.
//!
//! Importing and managing templates is for Admins and Managers (a bulk write into the
//! company's data); every member may read imports and templates. The web app's import pages
//! (`web::imports`) and the CLI go through the same functions.

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Member, Params};
use crate::jobs::{JobContext, JobError, JobResult};
use crate::AppState;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_core::access::{owner_column, Action, Scope};
use corvid_core::meta::{FieldKind, ObjectDef, OBJECT_NAMES};
use corvid_core::{Field, FieldError, SqlType, Value as Cell};
use corvid_store::audit::AuditCtx;
use corvid_store::import::{self, FileError, Mapping, Options};
use corvid_store::{jobs, Db, StoreError, Tenant, Q};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

pub const KIND: &str = "import.run";

/// Who may import and manage mapping templates: roles with an import scope on some object
/// (by default Admins and Managers). Each import also needs the scope on its object.
pub fn can_import(access: &corvid_store::access::Access) -> bool {
    corvid_core::meta::OBJECT_NAMES.iter().any(|o| access.scope(o, corvid_core::access::Action::Import) != corvid_core::access::Scope::None)
}

pub fn ensure_importer(t: &Tenant) -> ApiResult<()> {
    if can_import(&t.access) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("the {} role cannot import records or manage import templates", t.access.role_label)))
    }
}

/// A parsed upload: the stored file and the form's other fields.
pub struct Upload {
    pub path: PathBuf,
    pub file_name: String,
    pub object: Option<String>,
    pub mapping: Option<String>,
    pub options: Option<String>,
    pub idempotency_key: Option<String>,
    /// A saved mapping template, instead of `mapping`.
    pub template_id: Option<String>,
}

impl Upload {
    /// Removes the stored file (after a refusal, a dry run, or a replayed import).
    pub async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.path).await;
    }
}

pub fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::TooLarge => ApiError::TooLarge,
        other => ApiError::invalid("file", other.to_string()),
    }
}

/// Streams the multipart `file` field to the data directory, enforcing the size limit. The
/// stored name is generated here; the client's file name is only kept as a label. On any
/// error the partly written file is removed, so a refused upload leaves nothing behind.
pub async fn receive(st: &AppState, mp: Multipart) -> ApiResult<Upload> {
    let dir = st.data_dir.join("imports");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        tracing::error!(error = %e, dir = %dir.display(), "cannot create the uploads folder");
        ApiError::Internal
    })?;
    let path = dir.join(Uuid::now_v7().simple().to_string());
    let mut up = Upload {
        path: path.clone(),
        file_name: String::new(),
        object: None,
        mapping: None,
        options: None,
        idempotency_key: None,
        template_id: None,
    };
    match read_parts(&mut up, mp).await {
        Ok(()) => Ok(up),
        Err(e) => {
            up.discard().await;
            Err(e)
        }
    }
}

async fn read_parts(up: &mut Upload, mut mp: Multipart) -> ApiResult<()> {
    let mut got_file = false;
    let bad = |_| ApiError::bad_request("the upload could not be read as multipart/form-data");
    while let Some(mut field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" if got_file => return Err(ApiError::invalid("file", "send one file per import")),
            "file" => {
                up.file_name = field
                    .file_name()
                    .unwrap_or("upload.csv")
                    .chars()
                    .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
                    .take(200)
                    .collect();
                let mut out = tokio::fs::File::create(&up.path).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot store an upload");
                    ApiError::Internal
                })?;
                let mut size: u64 = 0;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    size += chunk.len() as u64;
                    if size > import::MAX_FILE_BYTES {
                        return Err(ApiError::TooLarge);
                    }
                    out.write_all(&chunk).await.map_err(|_| ApiError::Internal)?;
                }
                out.flush().await.map_err(|_| ApiError::Internal)?;
                got_file = true;
            }
            "object" | "mapping" | "options" | "idempotency_key" | "template_id" | "_csrf" => {
                let text = field.text().await.map_err(bad)?;
                if text.len() > 64 * 1024 {
                    return Err(ApiError::invalid(&name, "is too long"));
                }
                match name.as_str() {
                    "object" => up.object = Some(text),
                    "mapping" => up.mapping = Some(text),
                    "options" => up.options = Some(text),
                    "template_id" => up.template_id = Some(text),
                    // A web form's token, already checked by the CSRF guard.
                    "_csrf" => {}
                    _ => up.idempotency_key = Some(text),
                }
            }
            other => {
                let other: String = other.chars().take(60).collect();
                return Err(ApiError::invalid(
                    &other,
                    "is not a field of this upload (file, object, mapping, template_id, options, idempotency_key)",
                ));
            }
        }
    }
    if !got_file {
        return Err(ApiError::invalid("file", "is required"));
    }
    Ok(())
}

/// How the columns are to be mapped.
pub enum MappingSpec {
    /// Given explicitly, one entry per column.
    Explicit(Mapping),
    /// From a saved template, by heading.
    Template(import::Template),
    /// Suggested from the headings.
    Suggest,
}

impl MappingSpec {
    /// The mapping for a file with these headings.
    pub fn resolve(self, object: &ObjectDef, custom: &[Field], headers: &[String]) -> Mapping {
        match self {
            MappingSpec::Explicit(m) => m,
            MappingSpec::Template(t) => t.mapping_for(headers),
            MappingSpec::Suggest => import::suggest_mapping(object, custom, headers),
        }
    }
}

/// The template named by a form or request: 422 for a malformed id, 404 for one that is not
/// this company's, 422 when it belongs to another object.
pub async fn load_template(db: &Db, t: &Tenant, raw: &str, object: &ObjectDef) -> ApiResult<import::Template> {
    let id = Uuid::parse_str(raw.trim()).map_err(|_| ApiError::invalid("template_id", "must be a valid id (UUID)"))?;
    let tpl = import::template(db, t.company_id, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("import template"),
        other => other.into(),
    })?;
    if tpl.object != object.name {
        return Err(ApiError::invalid("template_id", format!("is a template for {}, not {}", tpl.object, object.name)));
    }
    Ok(tpl)
}

async fn parse_parts(db: &Db, t: &Tenant, up: &Upload) -> ApiResult<(&'static ObjectDef, MappingSpec, Options)> {
    let object = up.object.as_deref().ok_or_else(|| ApiError::invalid("object", "is required"))?;
    let object = corvid_core::object(object.trim()).ok_or_else(|| ApiError::invalid("object", "is not a known object"))?;
    t.access.require(object, corvid_core::access::Action::Import)?;
    let mapping = up.mapping.as_deref().filter(|m| !m.trim().is_empty());
    let template = up.template_id.as_deref().filter(|m| !m.trim().is_empty());
    let spec = match (mapping, template) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("template_id", "give either a mapping or a template, not both")),
        (Some(m), None) => MappingSpec::Explicit(
            serde_json::from_str::<Mapping>(m)
                .map_err(|e| ApiError::invalid("mapping", format!("must be a JSON array of field names or nulls, one per column: {e}")))?,
        ),
        (None, Some(id)) => MappingSpec::Template(load_template(db, t, id, object).await?),
        (None, None) => MappingSpec::Suggest,
    };
    let options = match up.options.as_deref().filter(|m| !m.trim().is_empty()) {
        None => Options::default(),
        Some(o) => serde_json::from_str::<Options>(o).map_err(|e| ApiError::invalid("options", e.to_string()))?,
    };
    Ok((object, spec, options))
}

/// The ids among an import's defaults must name this company's live records and active
/// members (422 naming `defaults.<field>`), and a default owner must be one the importer may
/// import for (403). `check_defaults` only checks their form; without this an import of
/// another company's id would be accepted and then fail on every row. Run after
/// `check_defaults`, so an id that does not parse was already refused.
pub async fn check_default_targets(db: &Db, t: &Tenant, object: &ObjectDef, options: &Options) -> ApiResult<()> {
    let id_of = |name: &str| options.defaults.get(name).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s.trim()).ok());
    let mut errors = Vec::new();
    for field in &object.fields {
        let Some(id) = id_of(&field.name) else { continue };
        // `None` for a member; else the tables (fixed object names) the record may be in.
        let tables: Option<Vec<&str>> = match &field.kind {
            FieldKind::User => None,
            // A polymorphic reference: the default related object's table when there is one,
            // else any (rows may name the object); another company's id is in none of them.
            FieldKind::Reference { object: target } if target == "*" => {
                let related = options.defaults.get("related_object").and_then(Value::as_str).and_then(|o| corvid_core::object(o.trim()));
                Some(related.map_or_else(|| OBJECT_NAMES.to_vec(), |o| vec![o.name.as_str()]))
            }
            FieldKind::Reference { object: target } => Some(vec![target.as_str()]),
            _ => continue,
        };
        let found = match &tables {
            None => {
                let q = Q::new("SELECT 1 FROM memberships WHERE company_id = $1 AND user_id = $2 AND is_active = $3")
                    .bind(Cell::Uuid(t.company_id))
                    .bind(Cell::Uuid(id))
                    .bind(Cell::Bool(true));
                db.fetch_one(&q, &[SqlType::Int]).await?.is_some()
            }
            Some(tables) => {
                let mut found = false;
                for table in tables {
                    let q = Q::new(format!("SELECT 1 FROM {table} WHERE company_id = $1 AND id = $2 AND deleted_at IS NULL"))
                        .bind(Cell::Uuid(t.company_id))
                        .bind(Cell::Uuid(id));
                    if db.fetch_one(&q, &[SqlType::Int]).await?.is_some() {
                        found = true;
                        break;
                    }
                }
                found
            }
        };
        if !found {
            let what = if tables.is_none() { "is not an active member of this company" } else { "does not exist" };
            errors.push(FieldError::new(format!("defaults.{}", field.name), what));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let col = owner_column(&object.name);
    if let Some(owner) = id_of(col) {
        if !t.access.allows(&object.name, Action::Import, Some(owner)) {
            let reason = match t.access.scope(&object.name, Action::Import) {
                Scope::Own => "your role may only import these records for yourself",
                _ => "your role may only import these records for yourself or your team",
            };
            return Err(ApiError::ForbiddenFields(vec![FieldError::new(format!("defaults.{col}"), reason)]));
        }
    }
    Ok(())
}

pub async fn open_upload(up: &Upload) -> ApiResult<import::Source> {
    let (path, name) = (up.path.clone(), up.file_name.clone());
    tokio::task::spawn_blocking(move || import::open(&path, &name)).await.map_err(|_| ApiError::Internal)?.map_err(file_error)
}

/// `POST .../data/validate`: what an import of this file would do, writing nothing.
pub async fn validate(State(st): State<AppState>, Member(t): Member, mp: Multipart) -> ApiResult<Response> {
    ensure_importer(&t)?;
    let up = receive(&st, mp).await?;
    let result = async {
        let (object, spec, options) = parse_parts(&st.db, &t, &up).await?;
        let custom = t.records(&st.db, object).custom_fields().await?;
        let mut source = open_upload(&up).await?;
        let explicit = !matches!(spec, MappingSpec::Suggest);
        let mapping = spec.resolve(object, &custom, &source.sniffed.headers);
        if explicit {
            import::check_mapping(object, &custom, &source.sniffed.headers, &mapping, &options).map_err(ApiError::Invalid)?;
        }
        import::check_defaults(object, &custom, &t.calling_code, &options).map_err(ApiError::Invalid)?;
        check_default_targets(&st.db, &t, object, &options).await?;
        let calling = t.calling_code.clone();
        let preview =
            tokio::task::spawn_blocking(move || import::preview(object, &custom, &calling, &mut source, Some(mapping), &options, 20))
                .await
                .map_err(|_| ApiError::Internal)?;
        Ok::<_, ApiError>(Json(json!(preview)).into_response())
    }
    .await;
    up.discard().await;
    result
}

/// `POST .../data/import`: stores the file and queues the import job.
pub async fn start(State(st): State<AppState>, Member(t): Member, headers: HeaderMap, mp: Multipart) -> ApiResult<Response> {
    ensure_importer(&t)?;
    let up = receive(&st, mp).await?;
    let result = start_upload(&st, &t, &headers, &up).await;
    if result.is_err() || result.as_ref().is_ok_and(|(_, replayed)| *replayed) {
        up.discard().await;
    }
    let (imp, replayed) = result?;
    let status = if replayed { StatusCode::OK } else { StatusCode::ACCEPTED };
    let location = format!("/api/v1/companies/{}/data/import/{}", t.company_id, imp["id"].as_str().unwrap_or(""));
    let mut resp = (status, Json(imp)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// Returns the import and whether it already existed under the same idempotency key.
pub async fn start_upload(st: &AppState, t: &Tenant, headers: &HeaderMap, up: &Upload) -> ApiResult<(Value, bool)> {
    let (object, spec, options) = parse_parts(&st.db, t, up).await?;
    let custom = t.records(&st.db, object).custom_fields().await?;
    let source = open_upload(up).await?;
    let mapping = spec.resolve(object, &custom, &source.sniffed.headers);
    import::check_mapping(object, &custom, &source.sniffed.headers, &mapping, &options).map_err(ApiError::Invalid)?;
    import::check_defaults(object, &custom, &t.calling_code, &options).map_err(ApiError::Invalid)?;
    check_default_targets(&st.db, t, object, &options).await?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| up.idempotency_key.clone());
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        return Err(ApiError::invalid("idempotency_key", "must be 1 to 255 characters"));
    }
    let (imp, replayed) = import::create(
        &st.db,
        t,
        import::NewImport {
            object,
            file_name: &up.file_name,
            stored_path: &up.path,
            sniffed: &source.sniffed,
            mapping: &mapping,
            options: &options,
            idempotency_key: key.as_deref(),
        },
    )
    .await?;
    if replayed {
        return Ok((json!(imp), true));
    }
    let imp = enqueue(&st.db, t, imp.id).await?;
    Ok((json!(imp), false))
}

/// Queues the `import.run` job for a recorded import (audited with the job).
pub async fn enqueue(db: &Db, t: &Tenant, import_id: Uuid) -> ApiResult<import::Import> {
    let job = jobs::NewJob::new(KIND, json!({"import_id": import_id, "user_id": t.user_id}))
        .company(t.company_id)
        .idempotency_key(format!("import:{import_id}"))
        .max_attempts(5)
        .created_by(Some(t.user_id));
    let (job, _) = jobs::enqueue_audited(db, &t.audit, &job, corvid_core::value::now_micros()).await?;
    import::set_job(db, t.company_id, import_id, job.id).await?;
    Ok(import::get(db, t.company_id, import_id).await?)
}

fn import_not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("import"),
        other => other.into(),
    }
}

pub async fn show(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let id = p.uuid("import_id")?;
    let imp = import::get(&st.db, t.company_id, id).await.map_err(import_not_found)?;
    let errors: Vec<Value> = import::errors(&st.db, t.company_id, id, 100)
        .await?
        .into_iter()
        .map(|(row, field, reason, _)| json!({"row": row, "field": field, "reason": reason}))
        .collect();
    let mut v = json!(imp);
    v["errors"] = Value::Array(errors);
    Ok(Json(v).into_response())
}

/// The failed rows of an import as CSV: the spreadsheet row number, the reasons, and the
/// row's original cells (neutralised against formula injection).
pub async fn errors_csv_bytes(db: &Db, company_id: Uuid, id: Uuid) -> ApiResult<Vec<u8>> {
    let imp = import::get(db, company_id, id).await.map_err(import_not_found)?;
    let rows = import::errors(db, company_id, id, 1_000_000).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["row".to_string(), "errors".to_string()];
    head.extend(imp.headers.iter().map(|h| crate::export::neutralise(h)));
    let _ = w.write_record(&head);
    let mut i = 0;
    while i < rows.len() {
        let row_no = rows[i].0;
        let mut reasons = Vec::new();
        let raw = rows[i].3.clone();
        while i < rows.len() && rows[i].0 == row_no {
            reasons.push(format!("{} {}", rows[i].1, rows[i].2));
            i += 1;
        }
        let mut rec = vec![row_no.to_string(), crate::export::neutralise(&reasons.join("; "))];
        rec.extend(raw.as_array().cloned().unwrap_or_default().iter().map(|c| crate::export::neutralise(c.as_str().unwrap_or(""))));
        let _ = w.write_record(&rec);
    }
    w.into_inner().map_err(|_| ApiError::Internal)
}

/// A CSV download response.
pub fn csv_attachment(bytes: Vec<u8>, file_name: &str) -> Response {
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

pub async fn errors_csv(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let id = p.uuid("import_id")?;
    let bytes = errors_csv_bytes(&st.db, t.company_id, id).await?;
    Ok(csv_attachment(bytes, &format!("import-{id}-errors.csv")))
}

pub async fn list(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(json!({"data": import::list(&st.db, t.company_id, 50).await?})).into_response())
}

// ---------------------------------------------------------------------------------------
// Mapping templates
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    pub object: String,
    pub name: String,
    /// Column heading → field name (or null to ignore the column).
    pub mapping: Map<String, Value>,
}

/// Validates and saves a template (replacing one of the same object and name).
pub async fn save_template(
    db: &Db,
    t: &Tenant,
    object: &'static ObjectDef,
    name: &str,
    mapping: &Map<String, Value>,
) -> ApiResult<(import::Template, bool)> {
    let custom = t.records(db, object).custom_fields().await?;
    import::check_template(object, &custom, name, mapping).map_err(ApiError::Invalid)?;
    Ok(import::save_template(db, &t.audit, object, name, mapping).await?)
}

/// `GET .../data/import-templates[?object=leads]`
pub async fn list_templates(State(st): State<AppState>, Member(t): Member, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|_| ApiError::bad_request("the query string could not be read"))?;
    let object = match pairs.iter().find(|(k, _)| k == "object").map(|(_, v)| v.as_str()) {
        None | Some("") => None,
        Some(o) => Some(corvid_core::object(o).ok_or_else(|| ApiError::invalid("object", "is not a known object"))?.name.as_str()),
    };
    Ok(Json(json!({"data": import::templates(&st.db, t.company_id, object).await?})).into_response())
}

/// `POST .../data/import-templates`: 201 for a new template, 200 when one of the same object
/// and name was replaced.
pub async fn create_template(State(st): State<AppState>, Member(t): Member, JsonBody(b, _): JsonBody<NewTemplate>) -> ApiResult<Response> {
    ensure_importer(&t)?;
    let object = corvid_core::object(b.object.trim()).ok_or_else(|| ApiError::invalid("object", "is not a known object"))?;
    let (tpl, created) = save_template(&st.db, &t, object, &b.name, &b.mapping).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!(tpl))).into_response())
}

/// `DELETE .../data/import-templates/{template_id}`
pub async fn delete_template(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    ensure_importer(&t)?;
    let id = p.uuid("template_id")?;
    import::delete_template(&st.db, &t.audit, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("import template"),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `import.run` job: runs (or resumes) the import as the user who started it.
pub async fn run_job(ctx: JobContext) -> JobResult {
    let company_id = ctx.company_id().ok_or_else(|| JobError::permanent("an import needs a company"))?;
    let import_id = ctx.payload()["import_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::permanent("payload has no import_id"))?;
    let user_id = ctx.payload()["user_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| JobError::permanent("payload has no user_id"))?;
    let db = ctx.db().clone();
    let Some(member) = corvid_store::access::load(&db, company_id, user_id).await? else {
        return Err(JobError::permanent("the user who started this import is no longer a member"));
    };
    let tenant = Tenant {
        company_id,
        user_id,
        role: member.role,
        calling_code: member.calling_code,
        access: member.access,
        audit: AuditCtx {
            company_id,
            actor_id: Some(user_id),
            ip: None,
            user_agent: Some("corvid import".into()),
            request_id: Some(format!("job:{}", ctx.job().id)),
        },
    };
    // Counted before the first batch, so the job's progress has a total too.
    let total = import::ensure_total(&db, company_id, import_id).await?;
    // Progress goes to the job row from a side task, so the import loop never waits on it.
    let (tx, mut rx) = tokio::sync::watch::channel(0i64);
    let reporter = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let done = *rx.borrow();
                if ctx.progress(done, total, &format!("{done} rows processed")).await.is_err() {
                    break;
                }
            }
        })
    };
    let on_progress = move |done: i64| {
        let _ = tx.send(done);
    };
    let result = import::run(&db, &tenant, import_id, &on_progress).await;
    drop(on_progress);
    let _ = reporter.await;
    let imp = result?;
    Ok(
        json!({"import_id": imp.id, "state": imp.state, "created": imp.created, "updated": imp.updated, "skipped": imp.skipped, "failed": imp.failed}),
    )
}
