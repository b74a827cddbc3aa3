//! Export of any list view as CSV (streamed page by page, so memory stays flat however many
//! rows match) or XLSX (written in constant-memory mode to a temporary file, then streamed).
//! Values are the API's: amounts as decimals, ids for references, so an export re-imports.
//! Text that a spreadsheet would run as a formula is neutralised.

use crate::error::{ApiError, ApiResult};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use corvid_core::access::Action;
use corvid_core::meta::ObjectDef;
use corvid_core::record::to_json;
use corvid_core::Field;
use corvid_store::listing::ListQuery;
use corvid_store::{Db, Tenant};
use futures_util::StreamExt;

/// Largest number of rows one export produces.
pub const MAX_ROWS: usize = 1_000_000;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn parse(s: Option<&str>) -> ApiResult<Format> {
        match s.unwrap_or("csv") {
            "csv" => Ok(Format::Csv),
            "xlsx" => Ok(Format::Xlsx),
            _ => Err(ApiError::invalid("format", "must be csv or xlsx")),
        }
    }
}

/// Spreadsheets treat cells starting with these as formulas (CSV/DDE injection).
pub fn neutralise(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_string(),
    }
}

fn cell_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => neutralise(s),
        serde_json::Value::Array(items) => {
            neutralise(&items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string)).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

/// The exported columns: the requested ones, or every field plus number and timestamps.
pub fn columns(object: &ObjectDef, custom: &[Field], requested: Option<&[String]>) -> Vec<String> {
    match requested {
        Some(list) if !list.is_empty() => {
            let mut out = vec!["id".to_string()];
            out.extend(list.iter().filter(|c| c.as_str() != "id").cloned());
            out
        }
        _ => {
            let mut out: Vec<String> = ["id", "number", "created_at", "updated_at"].iter().map(|s| s.to_string()).collect();
            out.extend(object.fields.iter().chain(custom).map(|f| f.name.clone()));
            out
        }
    }
}

fn row(object: &ObjectDef, custom: &[Field], rec: &corvid_core::Record, cols: &[String]) -> Vec<String> {
    let json = to_json(object, custom, rec, None);
    cols.iter().map(|c| cell_text(&json[c.as_str()])).collect()
}

fn attachment(mut resp: Response, object: &ObjectDef, ext: &str, ct: &'static str) -> Response {
    let name = format!("{}-{}.{ext}", object.name, chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// Streams an export of the records matching `lq` (its cursor and limit are ignored).
pub async fn export(db: Db, tenant: Tenant, object: &'static ObjectDef, mut lq: ListQuery, format: Format) -> ApiResult<Response> {
    let records = tenant.records(&db, object);
    tenant.access.require(object, Action::Export)?;
    let custom = records.custom_fields().await?;
    if let Some(f) = &lq.fields {
        let resolver = corvid_store::listing::Resolver { object, custom: &custom };
        resolver.check_fields(f).map_err(ApiError::Invalid)?;
        let names: Vec<&str> = f.iter().map(String::as_str).collect();
        tenant.access.check_readable(&object.name, &names, "an export")?;
    }
    // Fields hidden from the member are not columns of their export at all.
    let mut cols = columns(object, &custom, lq.fields.as_deref());
    cols.retain(|c| !tenant.access.is_hidden(&object.name, c));
    lq.fields = None;
    lq.cursor = None;
    lq.limit = Some(corvid_store::listing::MAX_LIMIT);
    // The first page runs before answering, so a bad filter is a 422, not a broken download.
    let (first, next, _) = records.list_for(&lq, Action::Export).await?;
    match format {
        Format::Csv => {
            let mut head = csv::Writer::from_writer(Vec::new());
            let _ = head.write_record(&cols);
            for r in &first {
                let _ = head.write_record(row(object, &custom, r, &cols));
            }
            let first_chunk = head.into_inner().unwrap_or_default();
            struct State {
                db: Db,
                tenant: Tenant,
                lq: ListQuery,
                cursor: Option<String>,
                sent: usize,
                cols: Vec<String>,
                custom: Vec<Field>,
            }
            let state = State { db, tenant, lq, cursor: next, sent: first.len(), cols, custom };
            let rest = futures_util::stream::unfold(state, move |mut st| async move {
                let cursor = st.cursor.take()?;
                if st.sent >= MAX_ROWS {
                    return None;
                }
                st.lq.cursor = Some(cursor);
                match st.tenant.records(&st.db, object).list_for(&st.lq, Action::Export).await {
                    Ok((recs, next, _)) => {
                        let mut w = csv::Writer::from_writer(Vec::new());
                        for r in &recs {
                            let _ = w.write_record(row(object, &st.custom, r, &st.cols));
                        }
                        st.sent += recs.len();
                        st.cursor = next;
                        Some((Ok::<Bytes, std::io::Error>(Bytes::from(w.into_inner().unwrap_or_default())), st))
                    }
                    Err(e) => {
                        // Headers are sent; the only honest signal left is to cut the stream.
                        tracing::error!(error = %e, "export page failed");
                        Some((Err(std::io::Error::other("export failed")), st))
                    }
                }
            });
            let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(first_chunk)) }).chain(rest);
            Ok(attachment(Body::from_stream(stream).into_response(), object, "csv", "text/csv; charset=utf-8"))
        }
        Format::Xlsx => {
            let path = xlsx(db, tenant, object, lq, first, next, cols, custom).await?;
            let file = tokio::fs::File::open(&path).await.map_err(|_| ApiError::Internal)?;
            let stream = tokio_util_free_stream(file, path);
            Ok(attachment(
                Body::from_stream(stream).into_response(),
                object,
                "xlsx",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn xlsx(
    db: Db,
    tenant: Tenant,
    object: &'static ObjectDef,
    mut lq: ListQuery,
    first: Vec<corvid_core::Record>,
    mut next: Option<String>,
    cols: Vec<String>,
    custom: Vec<Field>,
) -> ApiResult<tempfile::TempPath> {
    use rust_xlsxwriter::Workbook;
    let fail = |e: rust_xlsxwriter::XlsxError| {
        tracing::error!(error = %e, "xlsx export failed");
        ApiError::Internal
    };
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(fail)?;
    for (c, name) in cols.iter().enumerate() {
        sheet.write_string(0, c as u16, name).map_err(fail)?;
    }
    let mut r: u32 = 1;
    let mut page = first;
    loop {
        for rec in &page {
            for (c, v) in row(object, &custom, rec, &cols).iter().enumerate() {
                if !v.is_empty() {
                    sheet.write_string(r, c as u16, v).map_err(fail)?;
                }
            }
            r += 1;
        }
        // The spreadsheet row limit.
        if r as usize >= MAX_ROWS.min(1_048_575) {
            break;
        }
        let Some(c) = next.take() else { break };
        lq.cursor = Some(c);
        let (recs, n, _) = tenant.records(&db, object).list_for(&lq, Action::Export).await?;
        page = recs;
        next = n;
    }
    let tmp = tempfile::NamedTempFile::new().map_err(|_| ApiError::Internal)?.into_temp_path();
    workbook.save(&tmp).map_err(fail)?;
    Ok(tmp)
}

/// Streams a file in chunks, keeping its temporary path alive until the body is done.
fn tokio_util_free_stream(
    file: tokio::fs::File,
    path: tempfile::TempPath,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold((file, Some(path)), |(mut file, path)| async move {
        use tokio::io::AsyncReadExt;
        path.as_ref()?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, path)))
            }
            Err(e) => Some((Err(e), (file, None))),
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn neutralises_formulas() {
        assert_eq!(super::neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(super::neutralise("+91 98"), "'+91 98");
        assert_eq!(super::neutralise("-5"), "'-5");
        assert_eq!(super::neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::neutralise("\tcmd"), "'\tcmd");
        assert_eq!(super::neutralise("Priya"), "Priya");
    }
}
