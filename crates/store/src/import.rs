//! Bulk import of CSV and XLSX files into any object.
//!
//! Files are read as streams (CSV through a decoding reader, XLSX cell by cell), checked
//! before anything is written (size, encoding, binary content, column count, zip bombs), and
//! applied in batches: each batch's records, audit rows and the import's progress commit in
//! one transaction, so a crash resumes after the last committed batch and never leaves half a
//! batch. Every row goes through the same validation as the API and the UI.
//!
//! XLSX sheets are read with calamine's cell reader on a thread of their own, a few rows
//! ahead of the import through a bounded channel: memory holds those rows and the workbook's
//! shared-strings table (which calamine loads whole; its size is bounded by the zip-bomb
//! check), never the sheet.
//!
//! Also here: drafts (an uploaded file the web app's wizard maps and previews before it is
//! started) and mapping templates (a saved "column heading → field" map).

use crate::audit::{self, AuditCtx, Change};
use crate::db::{Db, Q};
use crate::records::Tenant;
use crate::{new_id, Result, StoreError};
use corvid_core::meta::{Field, FieldKind, ObjectDef};
use corvid_core::validate::{Changes, Mode, Validator};
use corvid_core::value::now_micros;
use corvid_core::{FieldError, SqlType, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use uuid::Uuid;

pub const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;
pub const MAX_COLUMNS: usize = 500;
pub const MAX_CELL_CHARS: usize = 32_767;
/// Uncompressed XLSX content allowed, in total and relative to the file's size.
const MAX_XLSX_UNCOMPRESSED: u64 = 1024 * 1024 * 1024;
const MAX_XLSX_RATIO: u64 = 200;
pub const BATCH: usize = 500;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than {} MB", MAX_FILE_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("this does not look like a CSV or XLSX file (it contains binary data)")]
    Binary,
    #[error("the header row has {0} columns; at most {MAX_COLUMNS} are allowed")]
    TooManyColumns(usize),
    #[error("the header row is empty")]
    NoHeader,
    #[error("the spreadsheet expands to more data than allowed (possible zip bomb)")]
    ZipBomb,
    #[error("the spreadsheet could not be read: {0}")]
    BadXlsx(String),
    #[error("the CSV could not be read at line {line}: {reason}")]
    BadCsv { line: u64, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Csv,
    Xlsx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// What sniffing the file found.
#[derive(Debug, Clone, Serialize)]
pub struct Sniffed {
    pub kind: Kind,
    pub encoding: Encoding,
    pub headers: Vec<String>,
}

/// A file opened for reading rows.
pub struct Source {
    pub sniffed: Sniffed,
    rows: Box<dyn Iterator<Item = std::result::Result<Vec<String>, FileError>> + Send>,
}

impl Source {
    pub fn rows(&mut self) -> &mut (dyn Iterator<Item = std::result::Result<Vec<String>, FileError>> + Send) {
        &mut *self.rows
    }
}

/// Opens a stored upload: detects XLSX (zip) or CSV, the text encoding, and reads the header.
pub fn open(path: &Path, file_name: &str) -> std::result::Result<Source, FileError> {
    let meta = std::fs::metadata(path).map_err(|_| FileError::Empty)?;
    if meta.len() == 0 {
        return Err(FileError::Empty);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|_| FileError::Empty)?;
    head.truncate(n);
    let is_zip = head.starts_with(b"PK\x03\x04");
    if is_zip || file_name.to_ascii_lowercase().ends_with(".xlsx") {
        if !is_zip {
            return Err(FileError::BadXlsx("it is not a valid XLSX file".into()));
        }
        return open_xlsx(path, meta.len());
    }
    open_csv(path, &head)
}

fn sniff_encoding(head: &[u8]) -> std::result::Result<Encoding, FileError> {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if body.contains(&0) {
        return Err(FileError::Binary);
    }
    match std::str::from_utf8(body) {
        Ok(_) => Ok(Encoding::Utf8),
        // A multi-byte character cut at the end of the sample is still UTF-8.
        Err(e) if e.error_len().is_none() => Ok(Encoding::Utf8),
        Err(_) => {
            // Control characters other than tab/CR/LF mean binary, not a legacy encoding.
            let controls = body.iter().filter(|b| **b < 0x20 && !matches!(**b, b'\t' | b'\r' | b'\n')).count();
            if controls * 100 > body.len().max(1) {
                Err(FileError::Binary)
            } else {
                Ok(Encoding::Windows1252)
            }
        }
    }
}

fn clean_cell(s: &str) -> String {
    let s = s.trim();
    // Undo spreadsheet formula neutralisation (`'=...`), as our own exports write it.
    let s = match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => s,
    };
    s.chars().take(MAX_CELL_CHARS).collect()
}

fn open_csv(path: &Path, head: &[u8]) -> std::result::Result<Source, FileError> {
    let encoding = sniff_encoding(head)?;
    let file = std::fs::File::open(path).map_err(|_| FileError::Empty)?;
    let decoder = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(match encoding {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Windows1252 => encoding_rs::WINDOWS_1252,
        }))
        .bom_override(true)
        .build(BufReader::new(file));
    let delimiter = sniff_delimiter(head);
    let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(decoder);
    let mut records = reader.into_records();
    let header = loop {
        match records.next() {
            None => return Err(FileError::NoHeader),
            Some(Err(e)) => return Err(csv_error(e)),
            Some(Ok(r)) if r.iter().all(|c| c.trim().is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    if header.len() > MAX_COLUMNS {
        return Err(FileError::TooManyColumns(header.len()));
    }
    let headers: Vec<String> = header.iter().map(clean_cell).collect();
    let width = headers.len();
    let rows = records.map(move |r| match r {
        Ok(rec) => {
            let mut cells: Vec<String> = rec.iter().take(width.max(1) + 1).map(clean_cell).collect();
            cells.resize(width, String::new());
            Ok(cells)
        }
        Err(e) => Err(csv_error(e)),
    });
    Ok(Source { sniffed: Sniffed { kind: Kind::Csv, encoding, headers }, rows: Box::new(rows) })
}

fn csv_error(e: csv::Error) -> FileError {
    let line = e.position().map_or(0, |p| p.line());
    FileError::BadCsv { line, reason: e.to_string() }
}

fn sniff_delimiter(head: &[u8]) -> u8 {
    let first_line = head.split(|b| *b == b'\n').next().unwrap_or(head);
    [b',', b';', b'\t', b'|'].into_iter().max_by_key(|d| first_line.iter().filter(|b| *b == d).count()).unwrap_or(b',')
}

fn open_xlsx(path: &Path, size: u64) -> std::result::Result<Source, FileError> {
    // Check the declared sizes before decompressing anything.
    let file = std::fs::File::open(path).map_err(|_| FileError::Empty)?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| FileError::BadXlsx(e.to_string()))?;
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| FileError::BadXlsx(e.to_string()))?;
        total = total.saturating_add(entry.size());
    }
    if total > MAX_XLSX_UNCOMPRESSED || total > size.saturating_mul(MAX_XLSX_RATIO).max(50 * 1024 * 1024) {
        return Err(FileError::ZipBomb);
    }
    drop(zip);
    // The sheet is read cell by cell on a thread of its own and handed over row by row through
    // a small bounded channel, so memory holds a few rows (plus the workbook's shared strings),
    // never the whole sheet. Dropping the Source drops the receiver, which stops the thread.
    let (tx, rx) = std::sync::mpsc::sync_channel::<XlsxRow>(64);
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("xlsx-reader".into())
        .spawn(move || read_xlsx(&owned, &tx))
        .map_err(|e| FileError::BadXlsx(format!("reader thread: {e}")))?;
    let mut rows = rx.into_iter();
    let (mut headers, width) = loop {
        match rows.next() {
            None => return Err(FileError::NoHeader),
            Some(Err(e)) => return Err(e),
            Some(Ok((r, _))) if r.iter().all(String::is_empty) => continue,
            Some(Ok((r, width))) => break (r, width),
        }
    };
    if width > MAX_COLUMNS {
        return Err(FileError::TooManyColumns(width));
    }
    // Formatted but empty cells after the last heading are not columns.
    while headers.last().is_some_and(String::is_empty) {
        headers.pop();
    }
    let width = headers.len();
    let rows = rows.map(move |r| {
        r.map(|(mut cells, _)| {
            cells.resize(width, String::new());
            cells
        })
    });
    Ok(Source { sniffed: Sniffed { kind: Kind::Xlsx, encoding: Encoding::Utf8, headers }, rows: Box::new(rows) })
}

/// One worksheet row: its cells (at most `MAX_COLUMNS + 1` are kept) and its real width.
type XlsxRow = std::result::Result<(Vec<String>, usize), FileError>;

/// Reads the first worksheet in XML order and sends its rows. Rows missing from the file
/// (entirely empty) are sent as empty rows, so row numbers match the spreadsheet's.
fn read_xlsx(path: &Path, tx: &std::sync::mpsc::SyncSender<XlsxRow>) {
    use calamine::{open_workbook, Data, Reader, Xlsx};
    let fail = |e: String| {
        let _ = tx.send(Err(FileError::BadXlsx(e)));
    };
    let mut wb: Xlsx<_> = match open_workbook(path) {
        Ok(wb) => wb,
        Err(e) => return fail(e.to_string()),
    };
    let Some(sheet) = wb.sheet_names().first().cloned() else { return fail("the workbook has no sheets".into()) };
    let mut cells = match wb.worksheet_cells_reader(&sheet) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let mut current: Option<u32> = None;
    let mut row: Vec<String> = Vec::new();
    let mut width = 0usize;
    loop {
        let cell = match cells.next_cell() {
            Ok(c) => c,
            Err(e) => return fail(e.to_string()),
        };
        let pos = cell.as_ref().map(|c| c.get_position());
        let row_index = pos.map(|p| p.0);
        if let Some(prev) = current.filter(|prev| row_index != Some(*prev)) {
            if tx.send(Ok((std::mem::take(&mut row), width))).is_err() {
                return;
            }
            width = 0;
            // Empty rows between this row and the next one.
            let next = row_index.unwrap_or(prev + 1);
            for _ in prev.saturating_add(1)..next {
                if tx.send(Ok((Vec::new(), 0))).is_err() {
                    return;
                }
            }
        }
        let (Some(cell), Some((r, c))) = (cell, pos) else { return };
        current = Some(r);
        let col = c as usize;
        let text = clean_cell(&Data::from(cell.get_value().clone()).to_string());
        if !text.is_empty() {
            width = width.max(col + 1);
        }
        if col <= MAX_COLUMNS && !text.is_empty() {
            if row.len() <= col {
                row.resize(col + 1, String::new());
            }
            row[col] = text;
        }
    }
}

fn norm(s: &str) -> String {
    s.to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect()
}

/// Header aliases people use in spreadsheets, per field name.
fn aliases(field: &str) -> &'static [&'static str] {
    match field {
        "first_name" => &["firstname", "first", "givenname", "fname"],
        "last_name" => &["lastname", "last", "surname", "familyname", "lname"],
        "company_name" => &["company", "organisation", "organization", "companyname", "account", "accountname"],
        "email" => &["email", "emailaddress", "mail", "workemail"],
        "phone" => &["phone", "mobile", "phonenumber", "telephone", "tel", "mobileno", "contactnumber", "whatsapp"],
        "job_title" => &["title", "jobtitle", "designation", "position", "role"],
        "source" => &["leadsource", "source"],
        "campaign" => &["campaign", "utmcampaign"],
        "medium" => &["medium", "utmmedium"],
        "term" => &["term", "utmterm", "keyword"],
        "website" => &["website", "url", "web", "domain"],
        "name" => &["name", "accountname", "companyname", "dealname", "opportunityname"],
        "value" => &["amount", "dealvalue", "value", "dealamount"],
        "expected_close_date" => &["closedate", "expectedclose", "expectedclosedate"],
        "country" => &["country", "countrycode"],
        "notes" => &["notes", "comments", "remarks", "description"],
        _ => &[],
    }
}

/// Suggests, for each column, the field it most likely holds (by name, label or alias).
pub fn suggest_mapping(object: &ObjectDef, custom: &[Field], headers: &[String]) -> Vec<Option<String>> {
    let fields: Vec<&Field> = object.fields.iter().chain(custom).filter(|f| !f.read_only).collect();
    let mut used: Vec<String> = Vec::new();
    headers
        .iter()
        .map(|h| {
            let n = norm(h);
            if n.is_empty() {
                return None;
            }
            let hit = fields
                .iter()
                .find(|f| norm(&f.name) == n || norm(&f.label) == n)
                .or_else(|| fields.iter().find(|f| aliases(&f.name).contains(&n.as_str())))
                .map(|f| f.name.clone())
                .filter(|name| !used.contains(name));
            if let Some(name) = &hit {
                used.push(name.clone());
            }
            hit
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Rows matching an existing record are skipped (reported as duplicates).
    #[default]
    Skip,
    /// The matching record is updated with the row's non-empty values.
    Update,
    /// Rows always create new records.
    Create,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    #[serde(default)]
    pub duplicate_policy: DuplicatePolicy,
    /// Applied when a row has no value of its own.
    #[serde(default)]
    pub defaults: Map<String, Json>,
    /// Let assignment rules pick the owner of created records (`Pipeline::run_assignment`);
    /// otherwise the importing user owns them. On unless turned off: rules apply to every
    /// way a lead arrives.
    #[serde(default = "yes")]
    pub run_assignment: bool,
}

fn yes() -> bool {
    true
}

impl Default for Options {
    fn default() -> Self {
        Options { duplicate_policy: DuplicatePolicy::default(), defaults: Map::new(), run_assignment: true }
    }
}

/// The column → field mapping of an import: `mapping[i]` is the field for column `i`.
pub type Mapping = Vec<Option<String>>;

/// Checks a mapping against the object: known, writable, each field at most once.
pub fn check_mapping(
    object: &ObjectDef,
    custom: &[Field],
    headers: &[String],
    mapping: &Mapping,
    options: &Options,
) -> std::result::Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if mapping.len() != headers.len() {
        errors.push(FieldError::new("mapping", format!("has {} entries for {} columns", mapping.len(), headers.len())));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, m) in mapping.iter().enumerate() {
        let Some(name) = m.as_deref().filter(|n| !n.is_empty()) else { continue };
        match object.field(name).or_else(|| custom.iter().find(|f| f.name == name)) {
            Some(f) if !f.read_only => {
                if seen.contains(&name) {
                    errors.push(FieldError::new(format!("mapping[{i}]"), format!("{name} is mapped from two columns")));
                }
                seen.push(name);
            }
            _ => errors.push(FieldError::new(
                format!("mapping[{i}]"),
                format!("\"{}\" is not a writable field", name.chars().take(60).collect::<String>()),
            )),
        }
    }
    for k in options.defaults.keys() {
        if object.field(k).is_none_or(|f| f.read_only) && !custom.iter().any(|f| &f.name == k) {
            errors.push(FieldError::new(format!("defaults.{k}"), "is not a writable field"));
        }
    }
    if seen.is_empty() {
        errors.push(FieldError::new("mapping", "maps no column to a field"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn cell_json(field: &Field, raw: &str) -> Json {
    match &field.kind {
        FieldKind::Integer { .. } | FieldKind::Percent => raw.parse::<i64>().map(Json::from).unwrap_or_else(|_| Json::String(raw.into())),
        FieldKind::Decimal => {
            raw.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Json::Number).unwrap_or_else(|| Json::String(raw.into()))
        }
        FieldKind::Boolean => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Json::Bool(true),
            "false" | "no" | "n" | "0" => Json::Bool(false),
            _ => Json::String(raw.into()),
        },
        FieldKind::Tags | FieldKind::MultiEnum { .. } => {
            Json::Array(raw.split([',', ';']).map(|s| Json::String(s.trim().into())).filter(|s| s.as_str() != Some("")).collect())
        }
        FieldKind::Enum { options } => {
            // Accept the label as well as the value ("Website form" or "website").
            let n = norm(raw);
            options
                .iter()
                .find(|o| norm(&o.value) == n || norm(&o.label) == n)
                .map_or_else(|| Json::String(raw.into()), |o| Json::String(o.value.clone()))
        }
        FieldKind::DateTime => {
            if raw.len() == 10 {
                Json::String(format!("{raw}T00:00:00Z"))
            } else {
                Json::String(raw.replacen(' ', "T", 1))
            }
        }
        _ => Json::String(raw.into()),
    }
}

/// Turns one row into the JSON input of a record.
pub fn row_input(object: &ObjectDef, custom: &[Field], mapping: &Mapping, options: &Options, row: &[String]) -> Map<String, Json> {
    let mut out = Map::new();
    for (i, m) in mapping.iter().enumerate() {
        let Some(name) = m else { continue };
        let raw = row.get(i).map(String::as_str).unwrap_or("");
        if raw.is_empty() {
            continue;
        }
        if let Some(f) = object.field(name).or_else(|| custom.iter().find(|f| &f.name == name)) {
            out.insert(name.clone(), cell_json(f, raw));
        }
    }
    for (k, v) in &options.defaults {
        if !out.contains_key(k) && !v.is_null() {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The key that identifies "the same record" for duplicate handling, per object.
fn match_key(object: &ObjectDef, input: &Map<String, Json>) -> Option<(&'static str, String)> {
    let text = |k: &str| input.get(k).and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty());
    match object.name.as_str() {
        "leads" | "contacts" => text("email").and_then(|e| corvid_core::validate::parse_email(e).ok()).map(|e| ("email", e.to_lowercase())),
        "accounts" | "deals" => text("name").map(|n| ("name", n.to_lowercase())),
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Import {
    pub id: Uuid,
    pub object: String,
    pub state: String,
    pub file_name: String,
    pub kind: String,
    pub encoding: String,
    pub headers: Vec<String>,
    pub mapping: Mapping,
    pub options: Json,
    pub rows_done: i64,
    /// Data rows in the file (blank rows included), counted when the import starts running.
    pub rows_total: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub error: Option<String>,
    pub job_id: Option<Uuid>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const COLS: &str = "id, object, state, file_name, kind, encoding, headers, mapping, options, rows_done, created_count, updated_count, skipped_count, failed_count, error, job_id, created_at, finished_at, file_path, rows_total";
const TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Json,
    SqlType::Json,
    SqlType::Json,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Int,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
    SqlType::Timestamp,
    SqlType::Text,
    SqlType::Int,
];

fn from_row(r: crate::db::Row) -> (Import, String) {
    let strings = |j: Option<Json>| -> Vec<String> {
        j.and_then(|j| j.as_array().cloned()).unwrap_or_default().iter().map(|x| x.as_str().unwrap_or("").to_string()).collect()
    };
    let mapping: Mapping = r.json(7).and_then(|j| serde_json::from_value(j).ok()).unwrap_or_default();
    (
        Import {
            id: r.uuid(0).unwrap_or_default(),
            object: r.text(1).unwrap_or_default(),
            state: r.text(2).unwrap_or_default(),
            file_name: r.text(3).unwrap_or_default(),
            kind: r.text(4).unwrap_or_default(),
            encoding: r.text(5).unwrap_or_default(),
            headers: strings(r.json(6)),
            mapping,
            options: r.json(8).unwrap_or(Json::Null),
            rows_done: r.int(9).unwrap_or(0),
            rows_total: r.int(19),
            created: r.int(10).unwrap_or(0),
            updated: r.int(11).unwrap_or(0),
            skipped: r.int(12).unwrap_or(0),
            failed: r.int(13).unwrap_or(0),
            error: r.text(14),
            job_id: r.uuid(15),
            created_at: r.timestamp(16).map(|t| corvid_core::value::format_timestamp(&t)).unwrap_or_default(),
            finished_at: r.timestamp(17).map(|t| corvid_core::value::format_timestamp(&t)),
        },
        r.text(18).unwrap_or_default(),
    )
}

pub async fn get(db: &Db, company_id: Uuid, id: Uuid) -> Result<Import> {
    Ok(get_with_path(db, company_id, id).await?.0)
}

async fn get_with_path(db: &Db, company_id: Uuid, id: Uuid) -> Result<(Import, String)> {
    let q =
        Q::new(format!("SELECT {COLS} FROM imports WHERE company_id = $1 AND id = $2")).bind(Value::Uuid(company_id)).bind(Value::Uuid(id));
    db.fetch_one(&q, TYPES).await?.map(from_row).ok_or(StoreError::NotFound)
}

pub async fn list(db: &Db, company_id: Uuid, limit: usize) -> Result<Vec<Import>> {
    let q = Q::new(format!("SELECT {COLS} FROM imports WHERE company_id = $1 ORDER BY created_at DESC LIMIT {}", limit.clamp(1, 200)))
        .bind(Value::Uuid(company_id));
    Ok(db.fetch(&q, TYPES).await?.into_iter().map(|r| from_row(r).0).collect())
}

pub struct NewImport<'a> {
    pub object: &'a ObjectDef,
    pub file_name: &'a str,
    pub stored_path: &'a Path,
    pub sniffed: &'a Sniffed,
    pub mapping: &'a Mapping,
    pub options: &'a Options,
    pub idempotency_key: Option<&'a str>,
}

/// Records an import, queued. With an idempotency key already used in this company, returns
/// the existing import instead (`true` in the second place) and the new upload is not needed.
pub async fn create(db: &Db, t: &Tenant, n: NewImport<'_>) -> Result<(Import, bool)> {
    insert(db, t, n, "queued").await
}

/// Records an uploaded file as a draft import: the web app's mapping, preview and options
/// steps edit it (`update_draft`) until `start_draft` queues it. Drafts nobody starts are
/// removed with their files after a day (`discard_stale_drafts`).
pub async fn create_draft(db: &Db, t: &Tenant, n: NewImport<'_>) -> Result<Import> {
    Ok(insert(db, t, NewImport { idempotency_key: None, ..n }, "draft").await?.0)
}

async fn insert(db: &Db, t: &Tenant, n: NewImport<'_>, state: &str) -> Result<(Import, bool)> {
    if let Some(key) = n.idempotency_key {
        let q = Q::new("SELECT id FROM imports WHERE company_id = $1 AND idempotency_key = $2")
            .bind(Value::Uuid(t.company_id))
            .bind(Value::Text(key.into()));
        if let Some(id) = db.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0)) {
            return Ok((get(db, t.company_id, id).await?, true));
        }
    }
    let id = new_id();
    let now = now_micros();
    let q = Q::new(
        "INSERT INTO imports (id, company_id, object, state, file_name, file_path, kind, encoding, headers, mapping, options, idempotency_key, \
         rows_done, created_count, updated_count, skipped_count, failed_count, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $14, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, 0, 0, 0, $12, $13, $13)",
    )
    .bind(Value::Uuid(id))
    .bind(Value::Uuid(t.company_id))
    .bind(Value::Text(n.object.name.clone()))
    .bind(Value::Text(n.file_name.chars().take(255).collect()))
    .bind(Value::Text(n.stored_path.to_string_lossy().into_owned()))
    .bind(Value::Text(serde_json::to_value(n.sniffed.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()))
    .bind(Value::Text(serde_json::to_value(n.sniffed.encoding).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()))
    .bind(Value::Json(serde_json::json!(n.sniffed.headers)))
    .bind(Value::Json(serde_json::json!(n.mapping)))
    .bind(Value::Json(serde_json::to_value(n.options).unwrap_or(Json::Null)))
    .bind(n.idempotency_key.map_or(Value::Null(SqlType::Text), |k| Value::Text(k.into())))
    .bind(Value::Uuid(t.user_id))
    .bind(Value::Timestamp(now))
    .bind(Value::Text(state.into()));
    match db.execute(&q).await {
        Ok(_) => Ok((get(db, t.company_id, id).await?, false)),
        Err(e) if e.is_unique_violation() => {
            let key = n.idempotency_key.unwrap_or("");
            let q = Q::new("SELECT id FROM imports WHERE company_id = $1 AND idempotency_key = $2")
                .bind(Value::Uuid(t.company_id))
                .bind(Value::Text(key.into()));
            let id = db.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0)).ok_or(StoreError::NotFound)?;
            Ok((get(db, t.company_id, id).await?, true))
        }
        Err(e) => Err(e),
    }
}

pub async fn set_job(db: &Db, company_id: Uuid, id: Uuid, job_id: Uuid) -> Result<()> {
    db.execute(
        &Q::new("UPDATE imports SET job_id = $1 WHERE company_id = $2 AND id = $3")
            .bind(Value::Uuid(job_id))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(id)),
    )
    .await?;
    Ok(())
}

/// Changes a draft's mapping and/or options. A draft that was started meanwhile is a
/// conflict (its settings are fixed once it runs).
pub async fn update_draft(db: &Db, company_id: Uuid, id: Uuid, mapping: Option<&Mapping>, options: Option<&Options>) -> Result<Import> {
    let imp = get(db, company_id, id).await?;
    let mapping = mapping.map_or_else(|| serde_json::json!(imp.mapping), |m| serde_json::json!(m));
    let options = match options {
        Some(o) => serde_json::to_value(o).map_err(|e| StoreError::Config(e.to_string()))?,
        None => imp.options.clone(),
    };
    let n = db
        .execute(
            &Q::new("UPDATE imports SET mapping = $1, options = $2, updated_at = $3 WHERE company_id = $4 AND id = $5 AND state = 'draft'")
                .bind(Value::Json(mapping))
                .bind(Value::Json(options))
                .bind(Value::Timestamp(now_micros()))
                .bind(Value::Uuid(company_id))
                .bind(Value::Uuid(id)),
        )
        .await?;
    if n == 0 {
        return Err(StoreError::Conflict("this import has already started".into()));
    }
    get(db, company_id, id).await
}

/// Moves a draft to `queued`. Returns false when it was no longer a draft (a second click on
/// "Start", or another tab), so the caller does not queue it twice.
pub async fn start_draft(db: &Db, company_id: Uuid, id: Uuid) -> Result<bool> {
    let n = db
        .execute(
            &Q::new("UPDATE imports SET state = 'queued', updated_at = $1 WHERE company_id = $2 AND id = $3 AND state = 'draft'")
                .bind(Value::Timestamp(now_micros()))
                .bind(Value::Uuid(company_id))
                .bind(Value::Uuid(id)),
        )
        .await?;
    Ok(n > 0)
}

/// Removes the company's drafts (and their files) not touched for `max_age_secs`.
pub async fn discard_stale_drafts(db: &Db, company_id: Uuid, max_age_secs: i64) -> Result<usize> {
    let cutoff = now_micros() - chrono::Duration::seconds(max_age_secs);
    let q = Q::new("SELECT id, file_path FROM imports WHERE company_id = $1 AND state = 'draft' AND updated_at < $2")
        .bind(Value::Uuid(company_id))
        .bind(Value::Timestamp(cutoff));
    let stale = db.fetch(&q, &[SqlType::Uuid, SqlType::Text]).await?;
    for r in &stale {
        let Some(id) = r.uuid(0) else { continue };
        let gone = db
            .execute(
                &Q::new("DELETE FROM imports WHERE company_id = $1 AND id = $2 AND state = 'draft'")
                    .bind(Value::Uuid(company_id))
                    .bind(Value::Uuid(id)),
            )
            .await?;
        if gone > 0 {
            remove_file(&r.text(1).unwrap_or_default()).await;
        }
    }
    Ok(stale.len())
}

/// Opens an import's stored file (drafts: for the mapping samples and the preview).
pub async fn open_stored(db: &Db, company_id: Uuid, id: Uuid) -> Result<std::result::Result<Source, FileError>> {
    let (imp, path) = get_with_path(db, company_id, id).await?;
    let name = imp.file_name;
    tokio::task::spawn_blocking(move || open(Path::new(&path), &name)).await.map_err(|_| StoreError::Config("import reader stopped".into()))
}

// ---------------------------------------------------------------------------------------
// Mapping templates: a saved "column heading → field" map, applied to any file by heading.
// ---------------------------------------------------------------------------------------

pub const MAX_TEMPLATE_NAME: usize = 80;
const MAX_HEADING_CHARS: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Template {
    pub id: Uuid,
    pub object: String,
    pub name: String,
    /// Column heading → field name, or null for a column to ignore.
    pub mapping: Map<String, Json>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub created_by: Option<Uuid>,
}

impl Template {
    /// The mapping of a file with these headings (see `mapping_from_map`).
    pub fn mapping_for(&self, headers: &[String]) -> Mapping {
        mapping_from_map(&self.mapping, headers)
    }
}

/// A mapping from a "column heading → field" map (a template's, or a CLI mapping file's):
/// each column gets the field saved for the same heading, compared ignoring case, spaces and
/// punctuation; other columns are ignored.
pub fn mapping_from_map(map: &Map<String, Json>, headers: &[String]) -> Mapping {
    headers
        .iter()
        .map(|h| {
            let n = norm(h);
            map.iter()
                .find(|(k, _)| if n.is_empty() { k.as_str() == h.as_str() } else { norm(k) == n })
                .and_then(|(_, v)| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
        })
        .collect()
}

/// A template's map from a file's headings and a mapping (ignored columns kept as null).
pub fn template_map(headers: &[String], mapping: &Mapping) -> Map<String, Json> {
    let mut out = Map::new();
    for (h, m) in headers.iter().zip(mapping) {
        if h.trim().is_empty() {
            continue;
        }
        let v = m.as_ref().map_or(Json::Null, |f| Json::String(f.clone()));
        // The first column with a heading wins, as when the template is applied.
        out.entry(h.clone()).or_insert(v);
    }
    out
}

/// Checks a template before saving: its name, and every field exists, is writable and is
/// used once.
pub fn check_template(
    object: &ObjectDef,
    custom: &[Field],
    name: &str,
    mapping: &Map<String, Json>,
) -> std::result::Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let n = name.trim().chars().count();
    if n == 0 {
        errors.push(FieldError::new("name", "is required"));
    } else if n > MAX_TEMPLATE_NAME {
        errors.push(FieldError::new("name", format!("must be at most {MAX_TEMPLATE_NAME} characters")));
    } else if name.chars().any(char::is_control) {
        errors.push(FieldError::new("name", "must not contain control characters"));
    }
    if mapping.len() > MAX_COLUMNS {
        errors.push(FieldError::new("mapping", format!("has more than {MAX_COLUMNS} columns")));
        return Err(errors);
    }
    let mut seen: Vec<&str> = Vec::new();
    for (heading, v) in mapping {
        let label: String = heading.chars().take(60).collect();
        if heading.trim().is_empty() || heading.chars().count() > MAX_HEADING_CHARS {
            errors.push(FieldError::new("mapping", format!("column headings must be 1 to {MAX_HEADING_CHARS} characters")));
            continue;
        }
        let name = match v {
            Json::Null => continue,
            Json::String(s) if s.is_empty() => continue,
            Json::String(s) => s.as_str(),
            _ => {
                errors.push(FieldError::new(format!("mapping.{label}"), "must be a field name or null"));
                continue;
            }
        };
        match object.field(name).or_else(|| custom.iter().find(|f| f.name == name)) {
            Some(f) if !f.read_only => {
                if seen.contains(&name) {
                    errors.push(FieldError::new(format!("mapping.{label}"), format!("{name} is mapped from two columns")));
                }
                seen.push(name);
            }
            _ => errors.push(FieldError::new(
                format!("mapping.{label}"),
                format!("\"{}\" is not a writable field", name.chars().take(60).collect::<String>()),
            )),
        }
    }
    if seen.is_empty() && errors.is_empty() {
        errors.push(FieldError::new("mapping", "maps no column to a field"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

const TEMPLATE_COLS: &str = "id, object, name, mapping, created_at, updated_at, created_by";
const TEMPLATE_TYPES: &[SqlType] =
    &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Json, SqlType::Timestamp, SqlType::Timestamp, SqlType::Uuid];

fn template_from(r: crate::db::Row) -> Option<Template> {
    Some(Template {
        id: r.uuid(0)?,
        object: r.text(1)?,
        name: r.text(2)?,
        mapping: r.json(3).and_then(|j| j.as_object().cloned()).unwrap_or_default(),
        created_at: r.timestamp(4).map(|t| corvid_core::value::format_timestamp(&t)).unwrap_or_default(),
        updated_at: r.timestamp(5).map(|t| corvid_core::value::format_timestamp(&t)),
        created_by: r.uuid(6),
    })
}

/// The company's templates, optionally for one object, by object and name.
pub async fn templates(db: &Db, company_id: Uuid, object: Option<&str>) -> Result<Vec<Template>> {
    let mut q = Q::new(format!("SELECT {TEMPLATE_COLS} FROM import_templates WHERE company_id = $1")).bind(Value::Uuid(company_id));
    if let Some(o) = object {
        let p = q.param(Value::Text(o.into()));
        q.push(&format!(" AND object = {p}"));
    }
    q.push(" ORDER BY object, name LIMIT 500");
    Ok(db.fetch(&q, TEMPLATE_TYPES).await?.into_iter().filter_map(template_from).collect())
}

/// One template of the company; another company's id is not found.
pub async fn template(db: &Db, company_id: Uuid, id: Uuid) -> Result<Template> {
    let q = Q::new(format!("SELECT {TEMPLATE_COLS} FROM import_templates WHERE company_id = $1 AND id = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    db.fetch_one(&q, TEMPLATE_TYPES).await?.and_then(template_from).ok_or(StoreError::NotFound)
}

/// Saves a template under its name: a new one, or (same object and name) replaces the saved
/// map. Returns the template and whether it was created. Audited. Call `check_template` first.
pub async fn save_template(
    db: &Db,
    ctx: &AuditCtx,
    object: &ObjectDef,
    name: &str,
    mapping: &Map<String, Json>,
) -> Result<(Template, bool)> {
    let name = name.trim();
    let mut tx = db.begin().await?;
    let existing = tx
        .fetch_one(
            &Q::new(format!("SELECT {TEMPLATE_COLS} FROM import_templates WHERE company_id = $1 AND object = $2 AND name = $3"))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Text(object.name.clone()))
                .bind(Value::Text(name.into())),
            TEMPLATE_TYPES,
        )
        .await?
        .and_then(template_from);
    let now = now_micros();
    let json = Json::Object(mapping.clone());
    let (id, created) = match &existing {
        Some(t) => {
            tx.execute(
                &Q::new("UPDATE import_templates SET mapping = $1, updated_at = $2 WHERE company_id = $3 AND id = $4")
                    .bind(Value::Json(json.clone()))
                    .bind(Value::Timestamp(now))
                    .bind(Value::Uuid(ctx.company_id))
                    .bind(Value::Uuid(t.id)),
            )
            .await?;
            (t.id, false)
        }
        None => {
            let id = new_id();
            tx.execute(
                &Q::new(
                    "INSERT INTO import_templates (id, company_id, object, name, mapping, created_at, updated_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
                )
                .bind(Value::Uuid(id))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Text(object.name.clone()))
                .bind(Value::Text(name.into()))
                .bind(Value::Json(json.clone()))
                .bind(Value::Timestamp(now))
                .bind(ctx.actor_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid)),
            )
            .await
            .map_err(|e| {
                if e.is_unique_violation() {
                    StoreError::Conflict("a template with this name was just saved".into())
                } else {
                    e
                }
            })?;
            (id, true)
        }
    };
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "import_templates".into(),
            record_id: Some(id),
            action: if created { "create" } else { "update" }.into(),
            field: Some("mapping".into()),
            old: existing.map(|t| Json::Object(t.mapping).to_string()),
            new: Some(serde_json::json!({"object": object.name, "name": name, "mapping": json}).to_string()),
        }],
    )
    .await?;
    tx.commit().await?;
    Ok((template(db, ctx.company_id, id).await?, created))
}

/// Deletes a template of the company (audited); another company's id is not found.
pub async fn delete_template(db: &Db, ctx: &AuditCtx, id: Uuid) -> Result<Template> {
    let mut tx = db.begin().await?;
    let t = tx
        .fetch_one(
            &Q::new(format!("SELECT {TEMPLATE_COLS} FROM import_templates WHERE company_id = $1 AND id = $2"))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Uuid(id)),
            TEMPLATE_TYPES,
        )
        .await?
        .and_then(template_from)
        .ok_or(StoreError::NotFound)?;
    tx.execute(
        &Q::new("DELETE FROM import_templates WHERE company_id = $1 AND id = $2").bind(Value::Uuid(ctx.company_id)).bind(Value::Uuid(id)),
    )
    .await?;
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "import_templates".into(),
            record_id: Some(id),
            action: "delete".into(),
            field: Some("mapping".into()),
            old: Some(serde_json::json!({"object": t.object, "name": t.name, "mapping": t.mapping}).to_string()),
            new: None,
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(t)
}

/// Checks the default values of an import's options with the fields' own validation, so a
/// bad default is reported once instead of failing every row.
pub fn check_defaults(
    object: &ObjectDef,
    custom: &[Field],
    calling_code: &str,
    options: &Options,
) -> std::result::Result<(), Vec<FieldError>> {
    let validator = corvid_core::validate::Validator { object, custom_fields: custom, default_calling_code: calling_code };
    let values: Map<String, Json> = options.defaults.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
    validator
        .validate(&values, corvid_core::validate::Mode::Update)
        .map(|_| ())
        .map_err(|errs| errs.into_iter().map(|e| FieldError::new(format!("defaults.{}", e.field), e.reason)).collect())
}

/// Failed rows of an import: (row number in the file, field, reason).
pub async fn errors(db: &Db, company_id: Uuid, id: Uuid, limit: usize) -> Result<Vec<(i64, String, String, Json)>> {
    let q = Q::new(format!(
        "SELECT e.row_number, e.field, e.reason, e.raw FROM import_errors e JOIN imports i ON i.id = e.import_id \
         WHERE i.company_id = $1 AND e.import_id = $2 ORDER BY e.row_number, e.field LIMIT {}",
        limit.clamp(1, 1_000_000)
    ))
    .bind(Value::Uuid(company_id))
    .bind(Value::Uuid(id));
    Ok(db
        .fetch(&q, &[SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Json])
        .await?
        .into_iter()
        .map(|r| (r.int(0).unwrap_or(0), r.text(1).unwrap_or_default(), r.text(2).unwrap_or_default(), r.json(3).unwrap_or(Json::Null)))
        .collect())
}

/// Progress callback: rows committed so far.
pub type OnProgress<'a> = &'a (dyn Fn(i64) + Send + Sync);

/// Runs (or resumes) an import to the end. Safe to call again after a crash: rows before
/// `rows_done` were committed with their batch and are skipped. When the import ends
/// (succeeded or failed) its stored file is removed. Drafts are refused (start them first).
pub async fn run(db: &Db, t: &Tenant, id: Uuid, on_progress: OnProgress<'_>) -> Result<Import> {
    let (imp, path) = get_with_path(db, t.company_id, id).await?;
    if matches!(imp.state.as_str(), "succeeded" | "failed" | "cancelled") {
        return Ok(imp);
    }
    if imp.state == "draft" {
        return Err(StoreError::Conflict("this import has not been started".into()));
    }
    let object = corvid_core::object(&imp.object).ok_or(StoreError::NotFound)?;
    let records = t.records(db, object);
    let custom = records.custom_fields().await?;
    let options: Options = serde_json::from_value(imp.options.clone()).unwrap_or_default();
    set_state(db, t.company_id, id, "running", None).await?;
    let file_path = PathBuf::from(&path);
    let name = imp.file_name.clone();
    let opened = tokio::task::spawn_blocking(move || open(&file_path, &name))
        .await
        .map_err(|_| StoreError::Config("import reader stopped".into()))?;
    let source = match opened {
        Ok(s) => s,
        Err(e) => {
            finish(db, t.company_id, id, "failed", Some(&e.to_string()), None, &path).await?;
            return get(db, t.company_id, id).await;
        }
    };
    let reader = Reader {
        object,
        custom: custom.clone(),
        mapping: imp.mapping.clone(),
        options: options.clone(),
        calling_code: t.calling_code.clone(),
        skip: imp.rows_done,
    };
    // One batch ahead: the next batch is read and validated while this one writes.
    let (sender, mut batches) = tokio::sync::mpsc::channel(1);
    tokio::task::spawn_blocking(move || reader.run(source, sender));
    let mut carry = Carry::default();
    let mut done = imp.rows_done;
    let mut rows_read = imp.rows_done;
    // Rows after which the statistics are refreshed next (see `refresh_statistics`).
    let mut analyze_at = imp.rows_done + ANALYZE_FIRST;
    while let Some(read) = batches.recv().await {
        match read {
            Reading::Batch(batch) => {
                done = commit_batch(db, t, object, &custom, &options, id, batch, &mut carry).await?;
                on_progress(done);
                if done >= analyze_at {
                    refresh_statistics(db, &object.name).await;
                    analyze_at = done + (done - imp.rows_done);
                }
            }
            Reading::Failed(e) => {
                // Rows already committed stay; the import stops with the reason.
                finish(db, t.company_id, id, "failed", Some(&e.to_string()), None, &path).await?;
                return get(db, t.company_id, id).await;
            }
            Reading::End(rows) => rows_read = rows,
        }
    }
    tracing::info!(import = %id, rows = done, "import finished");
    if done - imp.rows_done >= ANALYZE_AFTER {
        refresh_statistics(db, &object.name).await;
    }
    // Trailing blank rows count as read, so a finished import shows all rows done.
    finish(db, t.company_id, id, "succeeded", None, Some(rows_read.max(done)), &path).await?;
    get(db, t.company_id, id).await
}

/// Ends an import and removes its stored file: the rows that matter are in the database
/// (failed ones with their cells in `import_errors`), and a finished import never reads it again.
async fn finish(db: &Db, company_id: Uuid, id: Uuid, state: &str, error: Option<&str>, rows_done: Option<i64>, path: &str) -> Result<()> {
    if let Some(n) = rows_done {
        db.execute(
            &Q::new("UPDATE imports SET rows_done = $1 WHERE company_id = $2 AND id = $3")
                .bind(Value::Int(n))
                .bind(Value::Uuid(company_id))
                .bind(Value::Uuid(id)),
        )
        .await?;
    }
    set_state(db, company_id, id, state, error).await?;
    remove_file(path).await;
    Ok(())
}

async fn remove_file(path: &str) {
    if path.is_empty() {
        return;
    }
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "could not remove an import file");
        }
    }
}

/// Counts the file's data rows once and keeps the number (for progress bars); later calls
/// read the stored count. `None` when the file cannot be read (the import then fails on it).
/// Callers that show progress (the job, the CLI) call it before `run`; `run` itself does
/// not, so an import nobody watches does not read its file twice.
pub async fn ensure_total(db: &Db, company_id: Uuid, id: Uuid) -> Result<Option<i64>> {
    let (imp, path) = get_with_path(db, company_id, id).await?;
    if imp.rows_total.is_some() {
        return Ok(imp.rows_total);
    }
    let name = imp.file_name.clone();
    let counted = tokio::task::spawn_blocking(move || count_rows(Path::new(&path), &name))
        .await
        .map_err(|_| StoreError::Config("import reader stopped".into()))?;
    let Ok(total) = counted else { return Ok(None) };
    db.execute(
        &Q::new("UPDATE imports SET rows_total = $1 WHERE company_id = $2 AND id = $3")
            .bind(Value::Int(total))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(id)),
    )
    .await?;
    Ok(Some(total))
}

/// The number of rows after the header, read as a stream (blank rows included, as the
/// import numbers them). Stops at the first unreadable row.
pub fn count_rows(path: &Path, file_name: &str) -> std::result::Result<i64, FileError> {
    let mut source = open(path, file_name)?;
    let mut n = 0i64;
    for row in source.rows() {
        row?;
        n += 1;
    }
    Ok(n)
}

async fn set_state(db: &Db, company_id: Uuid, id: Uuid, state: &str, error: Option<&str>) -> Result<()> {
    let finished = matches!(state, "succeeded" | "failed" | "cancelled");
    db.execute(
        &Q::new("UPDATE imports SET state = $1, error = $2, updated_at = $3, finished_at = $4 WHERE company_id = $5 AND id = $6")
            .bind(Value::Text(state.into()))
            .bind(error.map_or(Value::Null(SqlType::Text), |e| Value::Text(e.chars().take(1000).collect())))
            .bind(Value::Timestamp(now_micros()))
            .bind(if finished { Value::Timestamp(now_micros()) } else { Value::Null(SqlType::Timestamp) })
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(id)),
    )
    .await?;
    Ok(())
}

/// Reads an import's file and prepares its batches on a thread of its own, one batch ahead
/// of the writes: each row's input, match key and validated values need no database, so
/// they are ready when the previous batch has committed.
struct Reader {
    object: &'static ObjectDef,
    custom: Vec<Field>,
    mapping: Mapping,
    options: Options,
    calling_code: String,
    /// Rows committed by an earlier run of this import (it resumes after them).
    skip: i64,
}

/// What the reader sends: a batch, the reason reading stopped, or the number of rows read
/// when the file ended.
enum Reading {
    Batch(Batch),
    Failed(FileError),
    End(i64),
}

/// Rows of the file, as `commit_batch` applies them.
struct Batch {
    /// The row number in the file (the header not counted) and the cells.
    rows: Vec<(i64, Vec<String>)>,
    inputs: Vec<Map<String, Json>>,
    keys: Vec<Option<(&'static str, String)>>,
    /// The values of a new record from each row; `None` when the row is invalid (`create_in`
    /// then reports why, as it always has).
    validated: Vec<Option<Changes>>,
}

impl Reader {
    /// Stops early when the import stops listening (it failed or was cancelled).
    fn run(self, mut source: Source, out: tokio::sync::mpsc::Sender<Reading>) {
        let mut row_no: i64 = 0;
        let mut rows = Vec::with_capacity(BATCH);
        loop {
            match source.rows().next() {
                Some(Ok(cells)) => {
                    row_no += 1;
                    if row_no > self.skip && !cells.iter().all(String::is_empty) {
                        rows.push((row_no, cells));
                    }
                    if rows.len() >= BATCH && out.blocking_send(Reading::Batch(self.prepare(std::mem::take(&mut rows)))).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    if !rows.is_empty() && out.blocking_send(Reading::Batch(self.prepare(rows))).is_err() {
                        return;
                    }
                    let _ = out.blocking_send(Reading::Failed(e));
                    return;
                }
                None => {
                    if !rows.is_empty() && out.blocking_send(Reading::Batch(self.prepare(rows))).is_err() {
                        return;
                    }
                    let _ = out.blocking_send(Reading::End(row_no));
                    return;
                }
            }
        }
    }

    fn prepare(&self, rows: Vec<(i64, Vec<String>)>) -> Batch {
        let object = self.object;
        let inputs: Vec<Map<String, Json>> =
            rows.iter().map(|(_, cells)| row_input(object, &self.custom, &self.mapping, &self.options, cells)).collect();
        let keys = inputs.iter().map(|i| match_key(object, i)).collect();
        let validator = Validator { object, custom_fields: &self.custom, default_calling_code: &self.calling_code };
        let validated = inputs
            .iter()
            .map(|input| {
                let mut changes = validator.validate(input, Mode::Create).ok()?;
                crate::governance::tidy_names(&object.name, &mut changes);
                Some(changes)
            })
            .collect();
        Batch { rows, inputs, keys, validated }
    }
}

/// What one batch of an import hands to the next.
#[derive(Default)]
struct Carry {
    /// Match keys of the rows imported so far and their records (skip and update policies).
    seen: HashMap<String, Uuid>,
    /// What the last batch read of the duplicate-key index (`Pipeline::take_over`).
    index: Option<crate::pipeline::HandOver>,
    /// The company had too many duplicate keys to read into a filter (`dedupe::KeyFilter`):
    /// later batches do not try again.
    filter_refused: bool,
}

/// Applies one batch and records its outcome and the progress in one transaction.
///
/// Rows go through the write pipeline one by one, in file order, as they always did; what
/// is set-based is the reading and writing around them. The records the rows match (skip
/// and update policies) are looked up with one query per batch, the rows that will create
/// records are validated up front so the duplicate check reads the key index for all of
/// them at once, and new records, their keys, score history and audit rows are written with
/// multi-row statements when the batch ends (`Pipeline::finish`). A row that updates a
/// stored record first writes what the batch holds, so the update sees every earlier row.
#[allow(clippy::too_many_arguments)]
async fn commit_batch(
    db: &Db,
    t: &Tenant,
    object: &'static ObjectDef,
    custom: &[Field],
    options: &Options,
    id: Uuid,
    batch: Batch,
    carry: &mut Carry,
) -> Result<i64> {
    let seen = &mut carry.seen;
    let records = t.records(db, object);
    let Batch { rows, inputs, keys, mut validated } = batch;
    let last_row = rows.last().map_or(0, |(n, _)| *n);
    let matching = matches!(options.duplicate_policy, DuplicatePolicy::Skip | DuplicatePolicy::Update);

    let mut tx = db.begin().await?;
    let mut pipeline = records.pipeline(&mut tx).await?.for_batch();
    pipeline.run_assignment = options.run_assignment;
    pipeline.take_over(&mut tx, carry.index.take()).await?;
    if !carry.filter_refused {
        pipeline.dedupe.want_filter(FILTER_KEYS);
    }
    let stored = if matching { stored_matches(&mut tx, t.company_id, object, &keys, seen).await? } else { HashMap::new() };
    let existing_of = |key: &Option<(&str, String)>, seen: &HashMap<String, Uuid>| match key {
        Some((_, value)) if matching => seen.get(value).or_else(|| stored.get(value)).copied(),
        _ => None,
    };
    // Rows that create a record as far as can be told now (an earlier row of the batch may
    // still turn one into a skip or an update) keep their validated values, for the
    // duplicate lookups of the batch.
    for (checked, key) in validated.iter_mut().zip(&keys) {
        if existing_of(key, seen).is_some() {
            *checked = None;
        }
    }
    let mut prefetch_from = Some(0);

    let (mut created, mut updated, mut skipped, mut failed) = (0i64, 0i64, 0i64, 0i64);
    for (i, ((row_no, cells), input)) in rows.iter().zip(&inputs).enumerate() {
        let key = &keys[i];
        let existing = existing_of(key, seen);
        let outcome = match (existing, options.duplicate_policy) {
            (Some(_), DuplicatePolicy::Skip) => {
                skipped += 1;
                continue;
            }
            (Some(rec_id), DuplicatePolicy::Update) => {
                pipeline.flush(&mut tx, t.company_id).await?;
                // The update changes the key index under what the batch read.
                prefetch_from = Some(i + 1);
                records.update_in(&mut tx, custom, &mut pipeline, rec_id, input, "import").await.map(|r| (r.id, false))
            }
            _ => {
                if let Some(from) = prefetch_from.take() {
                    if pipeline.dedupe.checks_new(&object.name) {
                        let subjects: Vec<crate::dedupe::Subject> =
                            validated[from..].iter().flatten().filter_map(|c| crate::dedupe::subject_of_new(&object.name, c)).collect();
                        pipeline.dedupe.prefetch(&mut tx, t.company_id, &object.name, &subjects).await?;
                    }
                }
                match validated[i].take() {
                    Some(changes) => records.create_in_validated(&mut tx, custom, &mut pipeline, input, changes, "import").await,
                    None => records.create_in(&mut tx, custom, &mut pipeline, input, "import").await,
                }
                .map(|r| (r.id, true))
            }
        };
        match outcome {
            Ok((rec_id, is_new)) => {
                if is_new {
                    created += 1;
                } else {
                    updated += 1;
                }
                if let Some((_, value)) = key {
                    seen.insert(value.clone(), rec_id);
                }
            }
            Err(StoreError::Invalid(errs)) => {
                failed += 1;
                let raw = Json::Array(cells.iter().map(|c| Json::String(c.clone())).collect());
                for e in errs {
                    tx.execute(
                        &Q::new("INSERT INTO import_errors (import_id, row_number, field, reason, raw) VALUES ($1, $2, $3, $4, $5)")
                            .bind(Value::Uuid(id))
                            // The spreadsheet row: the header is row 1.
                            .bind(Value::Int(row_no + 1))
                            .bind(Value::Text(e.field))
                            .bind(Value::Text(e.reason))
                            .bind(Value::Json(raw.clone())),
                    )
                    .await?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    carry.filter_refused |= pipeline.dedupe.filter_refused();
    let handed = pipeline.finish_handing_over(&mut tx).await?;
    let row = tx
        .fetch_one(
            &Q::new(
                "UPDATE imports SET rows_done = $1, created_count = created_count + $2, updated_count = updated_count + $3, \
                 skipped_count = skipped_count + $4, failed_count = failed_count + $5, updated_at = $6 WHERE company_id = $7 AND id = $8 RETURNING rows_done",
            )
            .bind(Value::Int(last_row))
            .bind(Value::Int(created))
            .bind(Value::Int(updated))
            .bind(Value::Int(skipped))
            .bind(Value::Int(failed))
            .bind(Value::Timestamp(now_micros()))
            .bind(Value::Uuid(t.company_id))
            .bind(Value::Uuid(id)),
            &[SqlType::Int],
        )
        .await?;
    tx.commit().await?;
    carry.index = handed;
    Ok(row.and_then(|r| r.int(0)).unwrap_or(last_row))
}

/// The live records the batch's match keys point at (for the skip and update policies), one
/// query per 500 keys instead of one per row; keys already matched earlier in the import
/// are not looked up again. When several records share a key, the oldest is the match.
async fn stored_matches(
    tx: &mut crate::db::Tx,
    company_id: Uuid,
    object: &ObjectDef,
    keys: &[Option<(&'static str, String)>],
    seen: &HashMap<String, Uuid>,
) -> Result<HashMap<String, Uuid>> {
    let mut by_column: HashMap<&str, Vec<&str>> = HashMap::new();
    for (col, value) in keys.iter().flatten() {
        if !seen.contains_key(value) {
            let list = by_column.entry(col).or_default();
            if !list.contains(&value.as_str()) {
                list.push(value);
            }
        }
    }
    let mut out = HashMap::new();
    for (col, values) in by_column {
        for chunk in values.chunks(500) {
            let mut q = Q::new(String::new());
            let pc = q.param(Value::Uuid(company_id));
            let ps: Vec<String> = chunk.iter().map(|v| q.param(Value::Text((*v).to_string()))).collect();
            // Columns come from `match_key`, never from the file.
            q.sql = format!(
                "SELECT lower({col}), id FROM {} WHERE company_id = {pc} AND deleted_at IS NULL AND lower({col}) IN ({}) ORDER BY created_at, id",
                object.name,
                ps.join(", ")
            );
            for r in tx.fetch(&q, &[SqlType::Text, SqlType::Uuid]).await? {
                if let (Some(v), Some(id)) = (r.text(0), r.uuid(1)) {
                    out.entry(v).or_insert(id);
                }
            }
        }
    }
    Ok(out)
}

/// Up to how many stored duplicate keys an import reads into a filter (about 1.2 bytes each,
/// and the count that decides costs a read of at most this many index entries).
const FILTER_KEYS: usize = 20_000_000;

/// Imports of at least this many rows refresh the planner's statistics of the table.
const ANALYZE_AFTER: i64 = 5_000;
/// During an import the statistics are refreshed after this many rows and then whenever
/// the rows imported have doubled.
const ANALYZE_FIRST: i64 = 2_000;

/// After a bulk load the planner's picture of the table is stale (PostgreSQL would pick a
/// sequential scan over the search index until autovacuum catches up, and an import into
/// nearly empty tables would look up every batch's duplicate keys and candidates by
/// sequential scans while the tables grow); refreshing it is cheap next to the load. A
/// failure only costs speed, so it is logged, not returned.
async fn refresh_statistics(db: &Db, table: &str) {
    let sql = match db.backend() {
        crate::Backend::Postgres => format!("ANALYZE {table}, dedupe_keys"),
        crate::Backend::Sqlite => "PRAGMA optimize".to_string(),
    };
    if let Err(e) = db.execute(&Q::new(sql)).await {
        tracing::warn!(error = %e, table, "could not refresh table statistics after an import");
    }
}

/// A dry run: the header, the suggested (or given) mapping and the first rows with
/// per-cell validation, without writing anything.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub sniffed: Sniffed,
    pub mapping: Mapping,
    pub rows: Vec<PreviewRow>,
}

#[derive(Debug, Serialize)]
pub struct PreviewRow {
    pub row_number: i64,
    pub cells: Vec<String>,
    pub errors: Vec<FieldError>,
}

pub fn preview(
    object: &ObjectDef,
    custom: &[Field],
    calling_code: &str,
    source: &mut Source,
    mapping: Option<Mapping>,
    options: &Options,
    n: usize,
) -> Preview {
    let mapping = mapping.unwrap_or_else(|| suggest_mapping(object, custom, &source.sniffed.headers));
    let validator = corvid_core::validate::Validator { object, custom_fields: custom, default_calling_code: calling_code };
    let mut rows = Vec::new();
    let mut row_no = 0;
    while rows.len() < n {
        let Some(next) = source.rows().next() else { break };
        row_no += 1;
        match next {
            Ok(cells) => {
                let input = row_input(object, custom, &mapping, options, &cells);
                let errors = match validator.validate(&input, corvid_core::validate::Mode::Create) {
                    Ok(_) => Vec::new(),
                    Err(e) => e,
                };
                rows.push(PreviewRow { row_number: row_no, cells, errors });
            }
            Err(e) => {
                rows.push(PreviewRow { row_number: row_no, cells: Vec::new(), errors: vec![FieldError::new("file", e.to_string())] });
                break;
            }
        }
    }
    Preview { sniffed: source.sniffed.clone(), mapping, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        std::io::Write::write_all(&mut f, bytes).expect("write");
        f
    }

    fn rows(src: &mut Source) -> Vec<Vec<String>> {
        src.rows().map(|r| r.expect("row")).collect()
    }

    #[test]
    fn reads_utf8_bom_latin1_quotes_and_ragged_rows() {
        let f =
            write("\u{feff}First Name,Last Name,Email\n\"Zoë\",\"O'Brien, Jr\",z@x.io\nA,\"multi\nline\"\nB,C,d@x.io,extra\n".as_bytes());
        let mut s = open(f.path(), "x.csv").expect("open");
        assert_eq!(s.sniffed.headers, vec!["First Name", "Last Name", "Email"]);
        assert_eq!(s.sniffed.encoding, Encoding::Utf8);
        let r = rows(&mut s);
        assert_eq!(r[0], vec!["Zoë", "O'Brien, Jr", "z@x.io"]);
        assert_eq!(r[1], vec!["A", "multi\nline", ""]);
        assert_eq!(r[2], vec!["B", "C", "d@x.io"]);
        let f = write(b"name,city\nJos\xe9,M\xfcnchen\n");
        let mut s = open(f.path(), "x.csv").expect("open");
        assert_eq!(s.sniffed.encoding, Encoding::Windows1252);
        assert_eq!(rows(&mut s)[0], vec!["José", "München"]);
        let f = write(b"a;b;c\n1;2;3\n");
        let mut s = open(f.path(), "x.csv").expect("open");
        assert_eq!(rows(&mut s)[0], vec!["1", "2", "3"]);
    }

    #[test]
    fn refuses_bad_files() {
        assert_eq!(open(write(b"").path(), "x.csv").err(), Some(FileError::Empty));
        assert_eq!(open(write(b"\x00\x01\x02\x03garbage\x00\xff\xfe").path(), "x.csv").err(), Some(FileError::Binary));
        let wide = (0..10_000).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(open(write(wide.as_bytes()).path(), "x.csv").err(), Some(FileError::TooManyColumns(10_000)));
        assert_eq!(open(write(b"\n\n  \n").path(), "x.csv").err(), Some(FileError::NoHeader));
        assert!(matches!(open(write(b"not a zip").path(), "x.xlsx").err(), Some(FileError::BadXlsx(_))));
    }

    #[test]
    fn refuses_zip_bombs() {
        // A small zip whose entry expands far beyond the allowed ratio.
        let f = tempfile::NamedTempFile::new().expect("tmp");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(f.path()).expect("create"));
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file("xl/worksheets/sheet1.xml", opts).expect("entry");
            let zeros = vec![0u8; 1024 * 1024];
            for _ in 0..120 {
                std::io::Write::write_all(&mut zip, &zeros).expect("write");
            }
            zip.finish().expect("finish");
        }
        assert_eq!(open(f.path(), "bomb.xlsx").err(), Some(FileError::ZipBomb));
    }

    #[test]
    fn suggests_mapping_from_names_labels_and_aliases() {
        let leads = corvid_core::object("leads").expect("leads");
        let headers: Vec<String> =
            ["First Name", "Surname", "E-mail", "Mobile", "Company", "Lead Source", "Shoe size"].iter().map(|s| s.to_string()).collect();
        let m = suggest_mapping(leads, &[], &headers);
        assert_eq!(
            m,
            vec![
                Some("first_name".into()),
                Some("last_name".into()),
                Some("email".into()),
                Some("phone".into()),
                Some("company_name".into()),
                Some("source".into()),
                None
            ]
        );
    }
}
