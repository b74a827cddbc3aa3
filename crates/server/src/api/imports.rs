//! Imports through the API: upload (multipart, streamed to disk), dry-run validation with a
//! suggested mapping and preview, progress, and the failed rows as CSV. The import itself
//! runs as the background job `import.run`.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Member, Params};
use crate::jobs::{JobContext, JobError, JobResult};
use crate::AppState;
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use corvid_store::audit::AuditCtx;
use corvid_store::import::{self, FileError, Mapping, Options};
use corvid_store::{companies, jobs, StoreError, Tenant};
use serde_json::{json, Value};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

pub const KIND: &str = "import.run";

/// A parsed upload: the stored file and the form's other fields.
pub struct Upload {
    pub path: PathBuf,
    pub file_name: String,
    pub object: Option<String>,
    pub mapping: Option<String>,
    pub options: Option<String>,
    pub idempotency_key: Option<String>,
}

fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::TooLarge => ApiError::TooLarge,
        other => ApiError::invalid("file", other.to_string()),
    }
}

/// Streams the multipart `file` field to the data directory, enforcing the size limit.
pub async fn receive(st: &AppState, mut mp: Multipart) -> ApiResult<Upload> {
    let dir = st.data_dir.join("imports");
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        tracing::error!(error = %e, dir = %dir.display(), "cannot create the uploads folder");
        ApiError::Internal
    })?;
    // The stored name is ours; the client's file name is only kept as a label.
    let path = dir.join(Uuid::now_v7().simple().to_string());
    let mut up = Upload { path: path.clone(), file_name: String::new(), object: None, mapping: None, options: None, idempotency_key: None };
    let mut got_file = false;
    let bad = |_| ApiError::bad_request("the upload could not be read as multipart/form-data");
    while let Some(mut field) = mp.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                up.file_name = field
                    .file_name()
                    .unwrap_or("upload.csv")
                    .chars()
                    .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
                    .take(200)
                    .collect();
                let mut out = tokio::fs::File::create(&path).await.map_err(|_| ApiError::Internal)?;
                let mut size: u64 = 0;
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    size += chunk.len() as u64;
                    if size > import::MAX_FILE_BYTES {
                        drop(out);
                        let _ = tokio::fs::remove_file(&path).await;
                        return Err(ApiError::TooLarge);
                    }
                    out.write_all(&chunk).await.map_err(|_| ApiError::Internal)?;
                }
                out.flush().await.map_err(|_| ApiError::Internal)?;
                got_file = true;
            }
            "object" | "mapping" | "options" | "idempotency_key" => {
                let text = field.text().await.map_err(bad)?;
                if text.len() > 64 * 1024 {
                    return Err(ApiError::invalid(&name, "is too long"));
                }
                match name.as_str() {
                    "object" => up.object = Some(text),
                    "mapping" => up.mapping = Some(text),
                    "options" => up.options = Some(text),
                    _ => up.idempotency_key = Some(text),
                }
            }
            other => {
                return Err(ApiError::invalid(other, "is not a field of this upload (file, object, mapping, options, idempotency_key)"))
            }
        }
    }
    if !got_file {
        return Err(ApiError::invalid("file", "is required"));
    }
    Ok(up)
}

fn parse_parts(up: &Upload) -> ApiResult<(&'static corvid_core::ObjectDef, Option<Mapping>, Options)> {
    let object = up.object.as_deref().ok_or_else(|| ApiError::invalid("object", "is required"))?;
    let object = corvid_core::object(object).ok_or_else(|| ApiError::invalid("object", "is not a known object"))?;
    let mapping = match up.mapping.as_deref().filter(|m| !m.trim().is_empty()) {
        None => None,
        Some(m) => Some(
            serde_json::from_str::<Mapping>(m)
                .map_err(|e| ApiError::invalid("mapping", format!("must be a JSON array of field names or nulls, one per column: {e}")))?,
        ),
    };
    let options = match up.options.as_deref().filter(|m| !m.trim().is_empty()) {
        None => Options::default(),
        Some(o) => serde_json::from_str::<Options>(o).map_err(|e| ApiError::invalid("options", e.to_string()))?,
    };
    Ok((object, mapping, options))
}

async fn open_upload(up: &Upload) -> ApiResult<import::Source> {
    let (path, name) = (up.path.clone(), up.file_name.clone());
    tokio::task::spawn_blocking(move || import::open(&path, &name)).await.map_err(|_| ApiError::Internal)?.map_err(file_error)
}

/// `POST .../data/validate`: what an import of this file would do, writing nothing.
pub async fn validate(State(st): State<AppState>, Member(t): Member, mp: Multipart) -> ApiResult<Response> {
    let up = receive(&st, mp).await?;
    let result = async {
        let (object, mapping, options) = parse_parts(&up)?;
        let custom = t.records(&st.db, object).custom_fields().await?;
        let mut source = open_upload(&up).await?;
        if let Some(m) = &mapping {
            import::check_mapping(object, &custom, &source.sniffed.headers, m, &options).map_err(ApiError::Invalid)?;
        }
        let calling = t.calling_code.clone();
        let preview = tokio::task::spawn_blocking(move || import::preview(object, &custom, &calling, &mut source, mapping, &options, 20))
            .await
            .map_err(|_| ApiError::Internal)?;
        Ok::<_, ApiError>(Json(json!(preview)).into_response())
    }
    .await;
    let _ = tokio::fs::remove_file(&up.path).await;
    result
}

/// `POST .../data/import`: stores the file and queues the import job.
pub async fn start(State(st): State<AppState>, Member(t): Member, headers: HeaderMap, mp: Multipart) -> ApiResult<Response> {
    if !t.role.can_write() {
        return Err(ApiError::Forbidden("your role cannot import records".into()));
    }
    let up = receive(&st, mp).await?;
    let result = start_upload(&st, &t, &headers, &up).await;
    if result.is_err() || result.as_ref().is_ok_and(|(_, replayed)| *replayed) {
        let _ = tokio::fs::remove_file(&up.path).await;
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

/// Shared by the API and the web upload form. Returns the import and whether it already
/// existed under the same idempotency key.
pub async fn start_upload(st: &AppState, t: &Tenant, headers: &HeaderMap, up: &Upload) -> ApiResult<(Value, bool)> {
    let (object, mapping, options) = parse_parts(up)?;
    let custom = t.records(&st.db, object).custom_fields().await?;
    let source = open_upload(up).await?;
    let mapping = mapping.unwrap_or_else(|| import::suggest_mapping(object, &custom, &source.sniffed.headers));
    import::check_mapping(object, &custom, &source.sniffed.headers, &mapping, &options).map_err(ApiError::Invalid)?;
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
    let job = jobs::NewJob::new(KIND, json!({"import_id": imp.id, "user_id": t.user_id}))
        .company(t.company_id)
        .idempotency_key(format!("import:{}", imp.id))
        .max_attempts(5)
        .created_by(Some(t.user_id));
    let (job, _) = jobs::enqueue_audited(&st.db, &t.audit, &job, corvid_core::value::now_micros()).await?;
    import::set_job(&st.db, t.company_id, imp.id, job.id).await?;
    let imp = import::get(&st.db, t.company_id, imp.id).await?;
    Ok((json!(imp), false))
}

pub async fn show(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let id = p.uuid("import_id")?;
    let imp = import::get(&st.db, t.company_id, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("import"),
        other => other.into(),
    })?;
    let errors: Vec<Value> = import::errors(&st.db, t.company_id, id, 100)
        .await?
        .into_iter()
        .map(|(row, field, reason, _)| json!({"row": row, "field": field, "reason": reason}))
        .collect();
    let mut v = json!(imp);
    v["errors"] = Value::Array(errors);
    Ok(Json(v).into_response())
}

/// The failed rows as CSV: the original cells plus the row number and the reasons.
pub async fn errors_csv(State(st): State<AppState>, Member(t): Member, p: Params) -> ApiResult<Response> {
    let id = p.uuid("import_id")?;
    let imp = import::get(&st.db, t.company_id, id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::not_found("import"),
        other => other.into(),
    })?;
    let rows = import::errors(&st.db, t.company_id, id, 1_000_000).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut head = vec!["row".to_string(), "errors".to_string()];
    head.extend(imp.headers.iter().cloned());
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
    let mut resp = w.into_inner().unwrap_or_default().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"import-{id}-errors.csv\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

pub async fn list(State(st): State<AppState>, Member(t): Member) -> ApiResult<Response> {
    Ok(Json(json!({"data": import::list(&st.db, t.company_id, 50).await?})).into_response())
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
    let Some((role, calling_code)) = companies::active_role(&db, company_id, user_id).await? else {
        return Err(JobError::permanent("the user who started this import is no longer a member"));
    };
    let tenant = Tenant {
        company_id,
        user_id,
        role,
        calling_code,
        audit: AuditCtx {
            company_id,
            actor_id: Some(user_id),
            ip: None,
            user_agent: Some("corvid import".into()),
            request_id: Some(format!("job:{}", ctx.job().id)),
        },
    };
    // Progress goes to the job row from a side task, so the import loop never waits on it.
    let (tx, mut rx) = tokio::sync::watch::channel(0i64);
    let reporter = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let done = *rx.borrow();
                if ctx.progress(done, None, &format!("{done} rows processed")).await.is_err() {
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
