//! `corvid import` and `corvid export`: the same engines as the API and the web app, run from
//! the command line.
//!
//! An import is recorded like an API import (the file is copied into the data directory under
//! a generated name) and then run here, synchronously, batch by batch with a progress line.
//! Its idempotency key defaults to a digest of the file, object, mapping and options, so
//! running the same command again after an interruption resumes after the last committed
//! batch, and running it again after it finished imports nothing twice.

use anyhow::{anyhow, bail, Context};
use clap::Args;
use corvid_core::meta::ObjectDef;
use corvid_core::role::Role;
use corvid_server::error::ApiError;
use corvid_server::export::Format;
use corvid_store::audit::AuditCtx;
use corvid_store::import::{self, DuplicatePolicy, Import, Mapping, Options};
use corvid_store::listing::ListQuery;
use corvid_store::{auth, companies, Db, Tenant};
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use uuid::Uuid;

fn parse_policy(s: &str) -> Result<DuplicatePolicy, String> {
    match s {
        "skip" => Ok(DuplicatePolicy::Skip),
        "update" => Ok(DuplicatePolicy::Update),
        "create" => Ok(DuplicatePolicy::Create),
        _ => Err("must be skip, update or create".into()),
    }
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Company id.
    #[arg(long)]
    pub company: Uuid,
    /// Object to import into: leads, accounts, contacts, deals, tasks, activities.
    #[arg(long)]
    pub object: String,
    /// The CSV or XLSX file.
    pub file: PathBuf,
    /// JSON mapping: an array with a field name (or null) per column, or an object
    /// {"Column heading": "field" | null}. Default: suggested from the headings.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// What to do with rows matching an existing record: skip, update or create.
    #[arg(long, default_value = "skip", value_parser = parse_policy)]
    pub duplicate_policy: DuplicatePolicy,
    /// Let assignment rules pick the owner of new records (default: the importing user).
    #[arg(long)]
    pub run_assignment: bool,
    /// A default for rows without a value, e.g. --default source=event (repeatable).
    #[arg(long = "default", value_name = "FIELD=VALUE")]
    pub defaults: Vec<String>,
    /// Import as this member (Admin or Manager); default: the company's first Admin.
    #[arg(long = "as", value_name = "EMAIL")]
    pub as_email: Option<String>,
    /// Idempotency key (default: a digest of the file, object, mapping and options).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Write the failed rows as CSV to this file.
    #[arg(long)]
    pub errors_out: Option<PathBuf>,
    /// Where uploads are kept (as for `serve`).
    #[arg(long, env = "CORVID_DATA_DIR", default_value = "corvid-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Company id.
    #[arg(long)]
    pub company: Uuid,
    /// Object to export.
    #[arg(long)]
    pub object: String,
    /// csv or xlsx.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// A list filter as in the API: FIELD=VALUE or FIELD[op]=VALUE, e.g. status=new,
    /// created_at[gte]=2026-04-01 (repeatable; all must match).
    #[arg(long = "filter", value_name = "FIELD[op]=VALUE")]
    pub filters: Vec<String>,
    /// Sort, e.g. -created_at,last_name.
    #[arg(long)]
    pub sort: Option<String>,
    /// Search text.
    #[arg(long)]
    pub q: Option<String>,
    /// Columns, comma separated (default: every field).
    #[arg(long)]
    pub fields: Option<String>,
    /// Output file; CSV goes to standard output when absent or "-".
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Export as this member (what they may see); default: the company's first Admin.
    #[arg(long = "as", value_name = "EMAIL")]
    pub as_email: Option<String>,
}

fn object_named(name: &str) -> anyhow::Result<&'static ObjectDef> {
    corvid_core::object(name.trim())
        .ok_or_else(|| anyhow!("--object {name:?} is not an object; objects are {}", corvid_core::meta::OBJECT_NAMES.join(", ")))
}

/// The member the command acts as: `--as EMAIL`, or the company's longest-standing active Admin.
async fn tenant(db: &Db, company: Uuid, as_email: Option<&str>, what: &str) -> anyhow::Result<Tenant> {
    if companies::get(db, company).await?.is_none() {
        bail!("there is no company {company}");
    }
    let user_id = match as_email {
        Some(email) => auth::user_by_email(db, email).await?.ok_or_else(|| anyhow!("--as: there is no user {email}"))?.id,
        None => {
            let mut admins: Vec<_> =
                companies::members(db, company).await?.into_iter().filter(|m| m.is_active && m.role == Role::Admin).collect();
            admins.sort_by_key(|m| m.joined_at);
            admins.first().map(|m| m.user_id).ok_or_else(|| anyhow!("company {company} has no active Admin; use --as EMAIL"))?
        }
    };
    let Some(member) = corvid_store::access::load(db, company, user_id).await? else {
        bail!("--as: that user is not an active member of company {company}");
    };
    Ok(Tenant {
        company_id: company,
        user_id,
        role: member.role,
        calling_code: member.calling_code,
        access: member.access,
        audit: AuditCtx {
            company_id: company,
            actor_id: Some(user_id),
            ip: None,
            user_agent: Some(format!("corvid {what}")),
            request_id: Some(format!("cli:{what}:{}", Uuid::now_v7().simple())),
        },
    })
}

fn field_errors(errs: &[corvid_core::FieldError]) -> String {
    errs.iter().map(|e| format!("{} {}", e.field, e.reason)).collect::<Vec<_>>().join("; ")
}

fn api_error(e: ApiError) -> anyhow::Error {
    match e {
        ApiError::Invalid(errs) => anyhow!("{}", field_errors(&errs)),
        ApiError::NotFound(d) | ApiError::Forbidden(d) | ApiError::Conflict(d) | ApiError::Unauthorized(d) => anyhow!("{d}"),
        ApiError::BadRequest(d, errs) if errs.is_empty() => anyhow!("{d}"),
        ApiError::BadRequest(d, errs) => anyhow!("{d}: {}", field_errors(&errs)),
        other => anyhow!("{other:?}"),
    }
}

/// The mapping file: a JSON array (one entry per column) or a heading → field object.
fn read_mapping(path: &Path, headers: &[String]) -> anyhow::Result<Mapping> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read --mapping {}", path.display()))?;
    if meta.len() > 1024 * 1024 {
        bail!("--mapping {} is larger than 1 MB", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read --mapping {}", path.display()))?;
    let json: Json = serde_json::from_str(&text).with_context(|| format!("--mapping {} is not valid JSON", path.display()))?;
    match json {
        Json::Array(_) => serde_json::from_value(json).map_err(|e| anyhow!("--mapping: the array must hold field names or nulls: {e}")),
        Json::Object(map) => Ok(import::mapping_from_map(&map, headers)),
        _ => bail!("--mapping must be a JSON array or object"),
    }
}

fn parse_defaults(list: &[String]) -> anyhow::Result<Map<String, Json>> {
    let mut out = Map::new();
    for d in list {
        let (k, v) = d.split_once('=').ok_or_else(|| anyhow!("--default {d:?} must be FIELD=VALUE"))?;
        out.insert(k.trim().to_string(), Json::String(v.to_string()));
    }
    Ok(out)
}

/// A digest naming this exact import: same file, object, mapping and options, same key.
fn default_key(file: &Path, object: &str, mapping: &Mapping, options: &Options) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    h.update(object.as_bytes());
    h.update(serde_json::to_vec(mapping)?);
    h.update(serde_json::to_vec(options)?);
    let mut f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("cli:{}", hex::encode(h.finalize())))
}

/// Runs an import to its end and returns it. Rows that fail validation are reported, not fatal.
pub async fn import(db: &Db, a: &ImportArgs, progress: &mut (dyn Write + Send)) -> anyhow::Result<Import> {
    let object = object_named(&a.object)?;
    let t = tenant(db, a.company, a.as_email.as_deref(), "import").await?;
    if !corvid_server::api::imports::can_import(&t.access) {
        bail!("only Admins and Managers can import records (this member is {})", t.role.label());
    }
    let meta = std::fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", a.file.display());
    }
    let file_name: String = a.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "import.csv".into());
    // Check the file where it is, before copying anything.
    let sniffed = {
        let (path, name) = (a.file.clone(), file_name.clone());
        tokio::task::spawn_blocking(move || import::open(&path, &name).map(|s| s.sniffed)).await?
    }
    .map_err(|e| anyhow!("{} cannot be imported: {e}", a.file.display()))?;
    let custom = t.records(db, object).custom_fields().await?;
    let mapping = match &a.mapping {
        Some(p) => read_mapping(p, &sniffed.headers)?,
        None => import::suggest_mapping(object, &custom, &sniffed.headers),
    };
    let options =
        Options { duplicate_policy: a.duplicate_policy, defaults: parse_defaults(&a.defaults)?, run_assignment: a.run_assignment };
    import::check_mapping(object, &custom, &sniffed.headers, &mapping, &options)
        .map_err(|e| anyhow!("the mapping does not fit this file: {}", field_errors(&e)))?;
    import::check_defaults(object, &custom, &t.calling_code, &options).map_err(|e| anyhow!("{}", field_errors(&e)))?;
    let key = match &a.idempotency_key {
        Some(k) if k.is_empty() || k.len() > 255 => bail!("--idempotency-key must be 1 to 255 characters"),
        Some(k) => k.clone(),
        None => default_key(&a.file, &object.name, &mapping, &options)?,
    };
    // The copy the import reads, under a generated name, like an upload.
    let dir = a.data_dir.join("imports");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stored = dir.join(Uuid::now_v7().simple().to_string());
    tokio::fs::copy(&a.file, &stored).await.with_context(|| format!("cannot copy the file to {}", stored.display()))?;
    let created = import::create(
        db,
        &t,
        import::NewImport {
            object,
            file_name: &file_name,
            stored_path: &stored,
            sniffed: &sniffed,
            mapping: &mapping,
            options: &options,
            idempotency_key: Some(&key),
        },
    )
    .await;
    let (imp, replayed) = match created {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&stored);
            return Err(e.into());
        }
    };
    if replayed {
        let _ = std::fs::remove_file(&stored);
        if matches!(imp.state.as_str(), "succeeded" | "failed" | "cancelled") {
            writeln!(progress, "This file was already imported (import {}); nothing was imported again.", imp.id)?;
            return Ok(imp);
        }
        if let Some(job) = imp.job_id {
            bail!("import {} of this file is being run by the server's job queue (job {job}); follow it there", imp.id);
        }
        writeln!(progress, "Resuming import {} after row {}.", imp.id, imp.rows_done)?;
    }
    let total = import::ensure_total(db, t.company_id, imp.id).await?;
    let (tx, mut rx) = tokio::sync::watch::channel(imp.rows_done);
    let on_progress = move |done: i64| {
        let _ = tx.send(done);
    };
    let run = import::run(db, &t, imp.id, &on_progress);
    tokio::pin!(run);
    let line = |done: i64| match total {
        Some(t) if t > 0 => format!("\rImporting {}: {done} of {t} rows ({} %)", file_name, (done * 100 / t).clamp(0, 100)),
        _ => format!("\rImporting {}: {done} rows", file_name),
    };
    write!(progress, "{}", line(imp.rows_done))?;
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            changed = rx.changed() => {
                if changed.is_ok() {
                    let done = *rx.borrow();
                    write!(progress, "{}", line(done))?;
                    progress.flush()?;
                }
            }
        }
    };
    let imp = result?;
    write!(progress, "{}", line(imp.rows_done))?;
    writeln!(progress)?;
    if let Some(out) = &a.errors_out {
        if imp.failed > 0 {
            let bytes = corvid_server::api::imports::errors_csv_bytes(db, t.company_id, imp.id).await.map_err(api_error)?;
            std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
        }
    }
    Ok(imp)
}

/// The end-of-import summary.
pub async fn print_summary(db: &Db, company: Uuid, imp: &Import, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "Import {} of {} from {}: {}", imp.id, imp.object, imp.file_name, imp.state)?;
    writeln!(out, "  created  {:>8}", imp.created)?;
    writeln!(out, "  updated  {:>8}", imp.updated)?;
    writeln!(out, "  skipped  {:>8}  (duplicates)", imp.skipped)?;
    writeln!(out, "  failed   {:>8}", imp.failed)?;
    if let Some(e) = &imp.error {
        writeln!(out, "Stopped: {e}")?;
    }
    if imp.failed > 0 {
        let errors = import::errors(db, company, imp.id, 10).await?;
        writeln!(out, "First failed rows:")?;
        for (row, field, reason, _) in errors {
            writeln!(out, "  row {row}: {field} {reason}")?;
        }
    }
    Ok(())
}

/// Builds the list query of an export from the command's options (the API's list parameters).
fn list_query(a: &ExportArgs) -> anyhow::Result<ListQuery> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for f in &a.filters {
        let (k, v) = f.split_once('=').ok_or_else(|| anyhow!("--filter {f:?} must be FIELD=VALUE or FIELD[op]=VALUE"))?;
        let k = k.trim();
        let key = if k.starts_with("filter[") {
            k.to_string()
        } else {
            match k.split_once('[') {
                Some((field, rest)) => format!("filter[{field}][{rest}"),
                None => format!("filter[{k}]"),
            }
        };
        pairs.push((key, v.to_string()));
    }
    if let Some(s) = &a.sort {
        pairs.push(("sort".into(), s.clone()));
    }
    if let Some(q) = &a.q {
        pairs.push(("q".into(), q.clone()));
    }
    if let Some(f) = &a.fields {
        pairs.push(("fields".into(), f.clone()));
    }
    ListQuery::from_pairs(&pairs).map_err(|e| anyhow!("{}", field_errors(&e)))
}

/// Writes an export (streamed page by page) to `--out` or standard output; returns the bytes
/// written. A file is written under a temporary name and renamed when complete.
pub async fn export(db: &Db, a: &ExportArgs) -> anyhow::Result<u64> {
    use http_body_util::BodyExt;
    let object = object_named(&a.object)?;
    let format = Format::parse(Some(a.format.as_str())).map_err(|_| anyhow!("--format must be csv or xlsx"))?;
    let to_stdout = a.out.as_ref().is_none_or(|p| p.as_os_str() == "-");
    if to_stdout && format == Format::Xlsx {
        bail!("give --out FILE for an XLSX export");
    }
    let lq = list_query(a)?;
    let t = tenant(db, a.company, a.as_email.as_deref(), "export").await?;
    let resp = corvid_server::export::export(db.clone(), t, object, lq, format).await.map_err(api_error)?;
    let mut body = resp.into_body();
    let (mut sink, part): (Box<dyn Write + Send>, Option<(PathBuf, PathBuf)>) = match &a.out {
        Some(p) if !to_stdout => {
            let tmp = p.with_file_name(format!(".{}.part", p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
            let f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            (Box::new(std::io::BufWriter::new(f)), Some((tmp, p.clone())))
        }
        _ => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
    };
    let mut written: u64 = 0;
    let outcome: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| anyhow!("the export stopped: {e}"))?;
            if let Ok(data) = frame.into_data() {
                sink.write_all(&data)?;
                written += data.len() as u64;
            }
        }
        sink.flush()?;
        Ok(())
    }
    .await;
    drop(sink);
    match (outcome, part) {
        (Ok(()), Some((tmp, dest))) => {
            std::fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
            Ok(written)
        }
        (Ok(()), None) => Ok(written),
        (Err(e), Some((tmp, _))) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(filters: &[&str]) -> ExportArgs {
        ExportArgs {
            company: Uuid::nil(),
            object: "leads".into(),
            format: "csv".into(),
            filters: filters.iter().map(|s| s.to_string()).collect(),
            sort: Some("-created_at".into()),
            q: None,
            fields: None,
            out: None,
            as_email: None,
        }
    }

    #[test]
    fn filters_become_list_parameters() {
        let lq = list_query(&args(&["status=new", "created_at[gte]=2026-01-01", "filter[source]=event"])).expect("query");
        let flat: usize = lq.groups.iter().map(Vec::len).sum();
        assert_eq!(flat, 3);
        assert_eq!(lq.sort.len(), 1);
        assert!(list_query(&args(&["no-equals-sign"])).is_err());
    }

    #[test]
    fn defaults_and_policies_parse() {
        assert_eq!(parse_policy("update"), Ok(DuplicatePolicy::Update));
        assert!(parse_policy("merge").is_err());
        let d = parse_defaults(&["source=event".into(), "campaign=Expo = 2026".into()]).expect("defaults");
        assert_eq!(d["campaign"], "Expo = 2026");
        assert!(parse_defaults(&["oops".into()]).is_err());
    }
}
