//! The audit trail: one row per changed field (a record's creation: one row holding all its
//! values), written in the transaction of the change, append-only and hash-chained per company
//! so that an edited or removed row is detectable.

use crate::db::{Db, Tx, Q};
use crate::{new_id, Result};
use chrono::{DateTime, Utc};
use corvid_core::value::{format_timestamp, now_micros};
use corvid_core::{SqlType, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made a change and from where; carried from the request into every audit row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditCtx {
    pub company_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub object: String,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub field: Option<String>,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: Uuid,
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub object: String,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub hash: String,
}

impl AuditRow {
    /// A record's creation is stored as one row holding all its values as a JSON object (one
    /// hashed row per record, not one per field); readers see it as one row per field, as they
    /// see updates. The rows of one stored row share its id, sequence number and hash.
    pub fn expand_create(self) -> Vec<AuditRow> {
        if self.action != "create" || self.field.is_some() {
            return vec![self];
        }
        let Some(Ok(serde_json::Value::Object(values))) = self.new_value.as_deref().map(serde_json::from_str::<serde_json::Value>) else {
            return vec![self];
        };
        if values.is_empty() {
            return vec![AuditRow { new_value: None, ..self }];
        }
        values
            .into_iter()
            .map(|(field, v)| AuditRow {
                field: Some(field),
                new_value: Some(match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
                ..self.clone()
            })
            .collect()
    }
}

/// Long values are kept whole up to this size; beyond it the audit keeps a marked prefix.
const MAX_AUDIT_VALUE: usize = 8 * 1024;

fn clip(v: Option<String>) -> Option<String> {
    v.map(|s| if s.len() > MAX_AUDIT_VALUE { format!("{}…", &s[..s.floor_char_boundary(MAX_AUDIT_VALUE)]) } else { s })
}

#[allow(clippy::too_many_arguments)]
fn row_hash(
    prev: &str,
    seq: i64,
    company: Uuid,
    at: &str,
    actor: Option<Uuid>,
    object: &str,
    record: Option<Uuid>,
    action: &str,
    field: Option<&str>,
    old: Option<&str>,
    new: Option<&str>,
    ip: Option<&str>,
    ua: Option<&str>,
    rid: Option<&str>,
) -> String {
    // A JSON array is an unambiguous encoding of the fields (no separator collisions). It is
    // serialised from a tuple, without building a JSON value first: the same bytes (ids as
    // their hyphenated text), a fraction of the allocations, for every audit row written.
    let canonical =
        serde_json::to_vec(&(prev, seq, company, at, actor, object, record, action, field, old, new, ip, ua, rid)).unwrap_or_default();
    hex::encode(Sha256::digest(&canonical))
}

/// The hash scheme of new rows. Version 1 hashed old and new values themselves; version 2
/// hashes a salted digest of each, so that erasure can drop a value and its salt (keeping the
/// digest) and the row still verifies, while the dropped value cannot be guessed back from
/// the digest (the salt is random and gone).
pub const HASH_V: i64 = 2;

fn new_salt() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What a version-2 row's hash covers of a value.
pub(crate) fn value_digest(salt: &str, value: Option<&str>) -> Option<String> {
    value.map(|v| {
        let mut h = Sha256::new();
        h.update(salt.as_bytes());
        h.update([0u8]);
        h.update(v.as_bytes());
        hex::encode(h.finalize())
    })
}

/// Creates the chain head for a new company.
pub async fn init_head(tx: &mut Tx, company_id: Uuid) -> Result<()> {
    tx.execute(
        &Q::new("INSERT INTO audit_heads (company_id, seq, hash) VALUES ($1, 0, $2)")
            .bind(Value::Uuid(company_id))
            .bind(Value::Text(GENESIS.into())),
    )
    .await?;
    Ok(())
}

/// The company's latest audit sequence number. Every change of a record is audited, so an
/// unchanged number means no record changed in between.
pub async fn head_seq(tx: &mut Tx, company_id: Uuid) -> Result<Option<i64>> {
    let row =
        tx.fetch_one(&Q::new("SELECT seq FROM audit_heads WHERE company_id = $1").bind(Value::Uuid(company_id)), &[SqlType::Int]).await?;
    Ok(row.and_then(|r| r.int(0)))
}

/// Appends rows to the company's chain. Locks the head row so concurrent writers of one
/// company serialise (PostgreSQL row lock; SQLite's write lock is already held).
pub async fn append(tx: &mut Tx, ctx: &AuditCtx, changes: &[Change]) -> Result<()> {
    append_many(tx, ctx.company_id, &[(ctx, changes)]).await
}

/// Appends the rows of several requests of one company (grouped writes), each with its own
/// context, in order: one read and one update of the chain head for all of them.
pub async fn append_many(tx: &mut Tx, company_id: Uuid, entries: &[(&AuditCtx, &[Change])]) -> Result<()> {
    let rows: Vec<(&AuditCtx, &Change)> = entries
        .iter()
        .filter(|(ctx, _)| ctx.company_id == company_id)
        .flat_map(|(ctx, changes)| changes.iter().map(move |c| (*ctx, c)))
        .collect();
    if rows.len() != entries.iter().map(|(_, c)| c.len()).sum::<usize>() {
        return Err(crate::StoreError::Config("audit rows of another company in one append".into()));
    }
    if rows.is_empty() {
        return Ok(());
    }
    let head_sql = format!("SELECT seq, hash FROM audit_heads WHERE company_id = $1{}", tx.for_update());
    let head = tx.fetch_one(&Q::new(head_sql).bind(Value::Uuid(company_id)), &[SqlType::Int, SqlType::Text]).await?;
    let (mut seq, mut prev) = match head {
        Some(r) => (r.int(0).unwrap_or(0), r.text(1).unwrap_or_else(|| GENESIS.into())),
        None => return Err(crate::StoreError::Corrupt(format!("company {company_id} has no audit head"))),
    };
    let at = now_micros();
    let at_text = format_timestamp(&at);
    // 18 values per row: 1,024 rows stay under both backends' parameter limits.
    for range in crate::db::stable_chunks(rows.len(), 1024) {
        let chunk = &rows[range];
        let mut q = Q::new(
            "INSERT INTO audit_log (id, company_id, seq, at, actor_id, object, record_id, action, field, old_value, new_value, ip, user_agent, request_id, prev_hash, hash, hash_v, value_salt) VALUES ",
        );
        for (i, (ctx, c)) in chunk.iter().enumerate() {
            let ip = clip(ctx.ip.clone());
            let ua = clip(ctx.user_agent.clone());
            seq += 1;
            let old = clip(c.old.clone());
            let new = clip(c.new.clone());
            let salt = new_salt();
            let hash = row_hash(
                &prev,
                seq,
                ctx.company_id,
                &at_text,
                ctx.actor_id,
                &c.object,
                c.record_id,
                &c.action,
                c.field.as_deref(),
                value_digest(&salt, old.as_deref()).as_deref(),
                value_digest(&salt, new.as_deref()).as_deref(),
                ip.as_deref(),
                ua.as_deref(),
                ctx.request_id.as_deref(),
            );
            let opt_text = |v: Option<String>| v.map_or(Value::Null(SqlType::Text), Value::Text);
            let opt_uuid = |v: Option<Uuid>| v.map_or(Value::Null(SqlType::Uuid), Value::Uuid);
            let vals = [
                Value::Uuid(new_id()),
                Value::Uuid(ctx.company_id),
                Value::Int(seq),
                Value::Timestamp(at),
                opt_uuid(ctx.actor_id),
                Value::Text(c.object.clone()),
                opt_uuid(c.record_id),
                Value::Text(c.action.clone()),
                opt_text(c.field.clone()),
                opt_text(old),
                opt_text(new),
                opt_text(ip.clone()),
                opt_text(ua.clone()),
                opt_text(ctx.request_id.clone()),
                Value::Text(prev.clone()),
                Value::Text(hash.clone()),
                Value::Int(HASH_V),
                Value::Text(salt),
            ];
            let placeholders: Vec<String> = vals.into_iter().map(|v| q.param(v)).collect();
            if i > 0 {
                q.push(", ");
            }
            q.push(&format!("({})", placeholders.join(", ")));
            prev = hash;
        }
        tx.execute(&q).await?;
    }
    tx.execute(
        &Q::new("UPDATE audit_heads SET seq = $1, hash = $2 WHERE company_id = $3")
            .bind(Value::Int(seq))
            .bind(Value::Text(prev))
            .bind(Value::Uuid(company_id)),
    )
    .await?;
    Ok(())
}

const ROW_TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Int,
    SqlType::Timestamp,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
];
const ROW_COLS: &str =
    "id, seq, at, actor_id, object, record_id, action, field, old_value, new_value, ip, user_agent, request_id, prev_hash, hash";

fn to_row(r: crate::db::Row) -> (AuditRow, String) {
    let row = AuditRow {
        id: r.uuid(0).unwrap_or_default(),
        seq: r.int(1).unwrap_or(0),
        at: r.timestamp(2).map(|t| format_timestamp(&t)).unwrap_or_default(),
        actor_id: r.uuid(3),
        object: r.text(4).unwrap_or_default(),
        record_id: r.uuid(5),
        action: r.text(6).unwrap_or_default(),
        field: r.text(7),
        old_value: r.text(8),
        new_value: r.text(9),
        ip: r.text(10),
        user_agent: r.text(11),
        request_id: r.text(12),
        hash: r.text(14).unwrap_or_default(),
    };
    (row, r.text(13).unwrap_or_default())
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub object: Option<String>,
    pub record_id: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Rows with a smaller sequence number than this (newest first paging).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

pub async fn list(db: &Db, company_id: Uuid, f: &AuditFilter) -> Result<Vec<AuditRow>> {
    let mut q = Q::new(format!("SELECT {ROW_COLS} FROM audit_log WHERE company_id = "));
    let p = q.param(Value::Uuid(company_id));
    q.push(&p);
    if let Some(a) = f.actor_id {
        let p = q.param(Value::Uuid(a));
        q.push(&format!(" AND actor_id = {p}"));
    }
    if let Some(o) = &f.object {
        let p = q.param(Value::Text(o.clone()));
        q.push(&format!(" AND object = {p}"));
    }
    if let Some(r) = f.record_id {
        let p = q.param(Value::Uuid(r));
        q.push(&format!(" AND record_id = {p}"));
    }
    if let Some(a) = &f.action {
        let p = q.param(Value::Text(a.clone()));
        q.push(&format!(" AND action = {p}"));
    }
    if let Some(t) = f.from {
        let p = q.param(Value::Timestamp(t));
        q.push(&format!(" AND at >= {p}"));
    }
    if let Some(t) = f.to {
        let p = q.param(Value::Timestamp(t));
        q.push(&format!(" AND at < {p}"));
    }
    if let Some(s) = f.before_seq {
        let p = q.param(Value::Int(s));
        q.push(&format!(" AND seq < {p}"));
    }
    q.push(&format!(" ORDER BY seq DESC LIMIT {}", f.limit.clamp(1, 1000)));
    Ok(db.fetch(&q, ROW_TYPES).await?.into_iter().map(|r| to_row(r).0).collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub company_id: Uuid,
    pub rows: i64,
    pub ok: bool,
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Recomputes a company's chain from the start and compares it with the stored head.
pub async fn verify(db: &Db, company_id: Uuid) -> Result<VerifyReport> {
    let mut prev = GENESIS.to_string();
    let mut expected_seq = 1;
    let mut last_seq = 0;
    let mut report = VerifyReport { company_id, rows: 0, ok: true, first_bad_seq: None, problem: None };
    loop {
        let q = Q::new(format!(
            "SELECT {ROW_COLS}, hash_v, value_salt, old_digest, new_digest FROM audit_log WHERE company_id = $1 AND seq > $2 ORDER BY seq LIMIT 5000"
        ))
        .bind(Value::Uuid(company_id))
        .bind(Value::Int(last_seq));
        let mut types = ROW_TYPES.to_vec();
        types.extend([SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Text]);
        let rows = db.fetch(&q, &types).await?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            let (hash_v, salt, old_digest, new_digest) = (r.int(15).unwrap_or(1), r.text(16), r.text(17), r.text(18));
            let (row, prev_hash) = to_row(r);
            // Version 2 rows cover digests: recomputed from the value while it is there, the
            // stored digest once the value was redacted.
            let covered = |value: Option<&str>, digest: Option<String>| -> Option<String> {
                if hash_v < 2 {
                    value.map(str::to_string)
                } else if value.is_some() {
                    value_digest(salt.as_deref().unwrap_or(""), value)
                } else {
                    digest
                }
            };
            let old_covered = covered(row.old_value.as_deref(), old_digest);
            let new_covered = covered(row.new_value.as_deref(), new_digest);
            last_seq = row.seq;
            report.rows += 1;
            let recomputed = row_hash(
                &prev,
                row.seq,
                company_id,
                &row.at,
                row.actor_id,
                &row.object,
                row.record_id,
                &row.action,
                row.field.as_deref(),
                old_covered.as_deref(),
                new_covered.as_deref(),
                row.ip.as_deref(),
                row.user_agent.as_deref(),
                row.request_id.as_deref(),
            );
            let problem = if row.seq != expected_seq {
                Some(format!("row {expected_seq} is missing"))
            } else if prev_hash != prev {
                Some("link to the previous row is broken".to_string())
            } else if recomputed != row.hash {
                Some("row content does not match its hash".to_string())
            } else {
                None
            };
            if let Some(p) = problem {
                report.ok = false;
                report.first_bad_seq = Some(row.seq);
                report.problem = Some(p);
                return Ok(report);
            }
            prev = row.hash;
            expected_seq += 1;
        }
    }
    let head = db
        .fetch_one(
            &Q::new("SELECT seq, hash FROM audit_heads WHERE company_id = $1").bind(Value::Uuid(company_id)),
            &[SqlType::Int, SqlType::Text],
        )
        .await?;
    if let Some(h) = head {
        if h.int(0) != Some(last_seq) || h.text(1).as_deref() != Some(prev.as_str()) {
            report.ok = false;
            report.first_bad_seq = Some(last_seq + 1);
            report.problem = Some("the newest rows were removed (head does not match)".into());
        }
    }
    Ok(report)
}

/// What `redact` did: rows whose values were dropped, and older rows (hash version 1) that
/// still hold values because dropping them would break the chain.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Redaction {
    pub redacted: i64,
    pub not_redactable: i64,
}

/// Drops the old and new values of a record's audit rows for `fields` (erasure), keeping
/// each value's digest so the chain still verifies. Version 1 rows are left and counted.
pub async fn redact(tx: &mut Tx, company_id: Uuid, object: &str, record_ids: &[Uuid], fields: &[String]) -> Result<Redaction> {
    let mut out = Redaction::default();
    if record_ids.is_empty() || fields.is_empty() {
        return Ok(out);
    }
    for chunk in record_ids.chunks(200) {
        let mut q = Q::new("SELECT id, hash_v, value_salt, old_value, new_value FROM audit_log WHERE company_id = ");
        let p = q.param(Value::Uuid(company_id));
        q.push(&p);
        let p = q.param(Value::Text(object.into()));
        q.push(&format!(" AND object = {p} AND record_id IN ("));
        let ids: Vec<String> = chunk.iter().map(|id| q.param(Value::Uuid(*id))).collect();
        q.push(&ids.join(", "));
        q.push(") AND field IN (");
        let fs: Vec<String> = fields.iter().map(|f| q.param(Value::Text(f.clone()))).collect();
        q.push(&fs.join(", "));
        q.push(") AND (old_value IS NOT NULL OR new_value IS NOT NULL)");
        let rows = tx.fetch(&q, &[SqlType::Uuid, SqlType::Int, SqlType::Text, SqlType::Text, SqlType::Text]).await?;
        for r in rows {
            if r.int(1).unwrap_or(1) < 2 {
                out.not_redactable += 1;
                continue;
            }
            let salt = r.text(2).unwrap_or_default();
            let opt_text = |v: Option<String>| v.map_or(Value::Null(SqlType::Text), Value::Text);
            tx.execute(
                &Q::new(
                    "UPDATE audit_log SET old_digest = $1, new_digest = $2, old_value = NULL, new_value = NULL, value_salt = NULL \
                     WHERE company_id = $3 AND id = $4",
                )
                .bind(opt_text(value_digest(&salt, r.text(3).as_deref())))
                .bind(opt_text(value_digest(&salt, r.text(4).as_deref())))
                .bind(Value::Uuid(company_id))
                .bind(r.uuid(0).map_or(Value::Null(SqlType::Uuid), Value::Uuid)),
            )
            .await?;
            out.redacted += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows written before are verified with the same function: its bytes must not change.
    #[test]
    fn the_canonical_encoding_is_the_json_array_of_the_fields() {
        let company = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);
        let actor = Some(Uuid::from_u128(42));
        let texts = ["plain", "quote \" and \\ back", "ünïcödé ✓", "tab\tnew\nline\u{1}"];
        for t in texts {
            let legacy = serde_json::json!([
                GENESIS,
                7,
                company.to_string(),
                "2026-11-21T10:00:00.000001Z",
                actor.map(|u| u.to_string()),
                "leads",
                None::<String>,
                "create",
                Some("first_name"),
                None::<&str>,
                Some(t),
                Some("127.0.0.1"),
                Some(t),
                None::<&str>
            ]);
            let expected = hex::encode(Sha256::digest(legacy.to_string().as_bytes()));
            let got = row_hash(
                GENESIS,
                7,
                company,
                "2026-11-21T10:00:00.000001Z",
                actor,
                "leads",
                None,
                "create",
                Some("first_name"),
                None,
                Some(t),
                Some("127.0.0.1"),
                Some(t),
                None,
            );
            assert_eq!(got, expected, "{t:?}");
        }
    }

    fn row(action: &str, field: Option<&str>, new: Option<&str>) -> AuditRow {
        AuditRow {
            id: Uuid::from_u128(1),
            seq: 9,
            at: "2026-11-21T10:00:00Z".into(),
            actor_id: None,
            object: "leads".into(),
            record_id: Some(Uuid::from_u128(2)),
            action: action.into(),
            field: field.map(str::to_string),
            old_value: None,
            new_value: new.map(str::to_string),
            ip: None,
            user_agent: None,
            request_id: None,
            hash: "h".into(),
        }
    }

    #[test]
    fn a_creation_reads_as_one_row_per_field() {
        let rows = row("create", None, Some(r#"{"email":"a@b.in","tags":["x"],"last_name":"Rāo"}"#)).expand_create();
        let got: Vec<_> = rows.iter().map(|r| (r.field.as_deref(), r.new_value.as_deref(), r.seq, r.hash.as_str())).collect();
        assert_eq!(
            got,
            [(Some("email"), Some("a@b.in"), 9, "h"), (Some("last_name"), Some("Rāo"), 9, "h"), (Some("tags"), Some(r#"["x"]"#), 9, "h")]
        );
        // Nothing recorded: one row without values. Other rows and unparsable values stay as stored.
        let empty = row("create", None, Some("{}")).expand_create();
        assert_eq!((empty.len(), empty[0].new_value.as_deref()), (1, None));
        for r in
            [row("update", None, Some(r#"{"a":"b"}"#)), row("create", Some("email"), Some("{}")), row("create", None, Some("not json"))]
        {
            assert_eq!(r.clone().expand_create().len(), 1);
            assert_eq!(r.clone().expand_create()[0].new_value, r.new_value);
        }
    }
}
