//! Lists: filters (groups of ANDed conditions, ORed together), search, sort and keyset
//! pagination, resolved against the object metadata and turned into SQL with bound values.

use crate::db::{Backend, Q};
use base64::Engine;
use corvid_core::meta::{ObjectDef, SYSTEM_COLUMNS};
use corvid_core::validate::parse_timestamp;
use corvid_core::{Field, FieldError, FieldKind, SqlType, Value};
use serde::Deserialize;
use uuid::Uuid;

pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 50;
const MAX_IN: usize = 500;
const MAX_CONDITIONS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    Contains,
    IsNull,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "in" => Op::In,
            "contains" => Op::Contains,
            "is_null" => Op::IsNull,
            _ => return None,
        })
    }
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
            _ => "=",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    #[serde(default)]
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub field: String,
    pub desc: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub groups: Vec<Vec<Condition>>,
    pub sort: Vec<SortKey>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    pub fields: Option<Vec<String>>,
}

/// `sort=-created_at,name` → keys.
pub fn parse_sort(s: &str) -> Vec<SortKey> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('-') {
            Some(f) => SortKey { field: f.to_string(), desc: true },
            None => SortKey { field: p.trim_start_matches('+').to_string(), desc: false },
        })
        .collect()
}

impl ListQuery {
    /// Builds a query from URL pairs: `filter[f]=v`, `filter[f][op]=v`, `sort`, `q`, `cursor`,
    /// `limit`, `fields`. Unknown parameters are errors, so typos do not silently match all.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<ListQuery, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut q = ListQuery::default();
        let mut group = Vec::new();
        for (k, v) in pairs {
            if let Some(rest) = k.strip_prefix("filter[") {
                let mut parts = rest.split("][");
                let field = parts.next().unwrap_or("").trim_end_matches(']').to_string();
                let op = parts.next().map(|o| o.trim_end_matches(']'));
                let op = match op {
                    None => Some(Op::Eq),
                    Some(o) => Op::parse(o),
                };
                match op {
                    Some(op) if !field.is_empty() => {
                        let value = if op == Op::In {
                            serde_json::Value::Array(v.split(',').map(|s| serde_json::Value::String(s.to_string())).collect())
                        } else {
                            serde_json::Value::String(v.clone())
                        };
                        group.push(Condition { field, op, value });
                    }
                    _ => errors.push(FieldError::new(short(k), "is not a valid filter; use filter[field] or filter[field][op] with op one of eq, ne, lt, lte, gt, gte, in, contains, is_null")),
                }
                continue;
            }
            match k.as_str() {
                "sort" => q.sort = parse_sort(v),
                "q" => q.q = Some(v.clone()),
                "cursor" => q.cursor = Some(v.clone()),
                "limit" => match v.parse::<usize>() {
                    Ok(n) => q.limit = Some(n),
                    Err(_) => errors.push(FieldError::new("limit", "must be a whole number from 1 to 200")),
                },
                "fields" => q.fields = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()),
                _ => errors.push(FieldError::new(short(k), "is not a known query parameter")),
            }
        }
        if !group.is_empty() {
            q.groups.push(group);
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(errors)
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// What a field name in a filter or sort refers to.
#[derive(Debug, Clone)]
pub enum Target {
    Column {
        name: String,
        ty: SqlType,
        kind: Option<FieldKind>,
    },
    Custom {
        name: String,
        ty: SqlType,
        kind: FieldKind,
    },
    /// The combined full name of objects with first and last names (for search and sort).
    Expr(&'static str),
}

impl Target {
    fn ty(&self) -> SqlType {
        match self {
            Target::Column { ty, .. } | Target::Custom { ty, .. } => *ty,
            Target::Expr(_) => SqlType::Text,
        }
    }
    fn kind(&self) -> Option<&FieldKind> {
        match self {
            Target::Column { kind, .. } => kind.as_ref(),
            Target::Custom { kind, .. } => Some(kind),
            Target::Expr(_) => None,
        }
    }
    /// SQL for the value of this target; custom fields read the JSON column with a bound key.
    fn sql(&self, q: &mut Q, backend: Backend) -> String {
        match self {
            Target::Column { name, .. } => name.clone(),
            Target::Expr(e) => (*e).to_string(),
            Target::Custom { name, ty, .. } => match backend {
                Backend::Sqlite => {
                    let p = q.param(Value::Text(format!("$.\"{name}\"")));
                    format!("json_extract(custom, {p})")
                }
                Backend::Postgres => {
                    let p = q.param(Value::Text(name.clone()));
                    match ty {
                        SqlType::Json => format!("(custom->{p})"),
                        SqlType::Int => format!("((custom->>{p})::bigint)"),
                        SqlType::Float => format!("((custom->>{p})::double precision)"),
                        SqlType::Bool => format!("((custom->>{p})::boolean)"),
                        SqlType::Date => format!("((custom->>{p})::date)"),
                        SqlType::Timestamp => format!("((custom->>{p})::timestamptz)"),
                        _ => format!("(custom->>{p})"),
                    }
                }
            },
        }
    }
}

pub struct Resolver<'a> {
    pub object: &'a ObjectDef,
    pub custom: &'a [Field],
}

impl Resolver<'_> {
    pub fn target(&self, name: &str) -> Option<Target> {
        if let Some(f) = self.object.field(name) {
            return Some(Target::Column { name: f.name.clone(), ty: f.kind.sql_type(), kind: Some(f.kind.clone()) });
        }
        if let Some((c, ty)) = SYSTEM_COLUMNS.iter().find(|(c, _)| *c == name && !matches!(*c, "company_id" | "custom")) {
            return Some(Target::Column { name: (*c).to_string(), ty: *ty, kind: None });
        }
        self.custom.iter().find(|f| f.name == name).map(|f| Target::Custom {
            name: f.name.clone(),
            ty: f.kind.sql_type(),
            kind: f.kind.clone(),
        })
    }

    fn sortable(&self, name: &str) -> Result<Target, String> {
        match self.target(name) {
            Some(t) if t.ty() == SqlType::Json => Err("cannot be sorted on".into()),
            Some(t) => Ok(t),
            None => Err(format!("\"{}\" is not a field of {}", short(name), self.object.name)),
        }
    }

    /// Checks a `fields=` projection.
    pub fn check_fields(&self, fields: &[String]) -> Result<(), Vec<FieldError>> {
        let bad: Vec<FieldError> = fields
            .iter()
            .filter(|f| self.target(f).is_none() && !matches!(f.as_str(), "id" | "version" | "object"))
            .map(|f| FieldError::new("fields", format!("\"{}\" is not a field of {}", short(f), self.object.name)))
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad)
        }
    }
}

/// Turns a filter value (a JSON value, or a string from the URL) into a typed value.
pub fn coerce(kind: Option<&FieldKind>, ty: SqlType, raw: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    if raw.is_null() {
        return Ok(Value::Null(ty));
    }
    let s = match raw {
        J::String(s) => Some(s.trim().to_string()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let Some(s) = s else { return Err("must be a single value".into()) };
    if s.chars().count() > 1000 {
        return Err("is too long".into());
    }
    Ok(match (kind, ty) {
        (Some(FieldKind::Money { .. }), _) => {
            Value::Int(corvid_core::money::parse_minor(&s, 2).map_err(|e| format!("must be an amount: it {e}"))?)
        }
        (Some(FieldKind::Enum { options }), _) => {
            if !options.iter().any(|o| o.value == s) {
                return Err(format!("\"{}\" is not an option", short(&s)));
            }
            Value::Text(s)
        }
        (_, SqlType::Int) => Value::Int(s.parse().map_err(|_| "must be a whole number")?),
        (_, SqlType::Float) => Value::Float(s.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or("must be a number")?),
        (_, SqlType::Bool) => match s.as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => return Err("must be true or false".into()),
        },
        (_, SqlType::Uuid) => Value::Uuid(Uuid::parse_str(&s).map_err(|_| "must be a valid id (UUID)")?),
        (_, SqlType::Date) => Value::Date(chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| "must be a date (YYYY-MM-DD)")?),
        (_, SqlType::Timestamp) => match parse_timestamp(&s) {
            Some(t) => Value::Timestamp(t),
            None => match chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
                Ok(d) => Value::Timestamp(d.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).ok_or("must be a date-time")?),
                Err(_) => return Err("must be a date-time (RFC 3339) or a date".into()),
            },
        },
        (_, SqlType::Json) => Value::Text(s),
        (_, SqlType::Text) => Value::Text(s),
    })
}

fn like_pattern(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

fn like(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "LIKE",
        Backend::Postgres => "ILIKE",
    }
}

/// How SQLite reads a search (see `Records::search_plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchPlan {
    /// Read every match of the search index, then sort them: cheap when there are few.
    #[default]
    Matches,
    /// Read the list in its order from the list's own index and keep the rows that match:
    /// a common word fills a page after a few rows, where reading and sorting every match
    /// (a last name shared by ten thousand leads) cost tens of milliseconds and more.
    InOrder,
}

/// Words of a search up to this many characters are checked on the rows the longer words
/// find (PostgreSQL), not looked up in the index.
const SHORT_WORD: usize = 3;

/// Matches of a search at or below which reading them all is cheaper than walking the list.
pub const FEW_MATCHES: i64 = 2000;

/// The search index's query for the words of a search (`None` when the text has no words).
pub fn search_expr(backend: Backend, text: &str) -> Option<String> {
    let words = search_words(text);
    (!words.is_empty()).then(|| words_expr(backend, &words))
}

/// Every word as a prefix, all required, in the search index's syntax.
fn words_expr<W: AsRef<str>>(backend: Backend, words: &[W]) -> String {
    let words = words.iter().map(AsRef::as_ref);
    match backend {
        Backend::Sqlite => words.map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" "),
        Backend::Postgres => words.map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & "),
    }
}

/// The query that counts a search's matches on SQLite, up to one past `FEW_MATCHES` (the
/// index spans every company, so this bounds the work, not the company's matches).
pub fn count_matches_query(table: &str, expr: &str) -> Q {
    Q::new(format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table}_fts WHERE {table}_fts MATCH $1 LIMIT {})", FEW_MATCHES + 1))
        .bind(Value::Text(expr.to_string()))
}

/// The WHERE part (after company scoping) for filters and search. Appends to `q`.
pub fn push_where(q: &mut Q, backend: Backend, r: &Resolver, lq: &ListQuery, plan: SearchPlan) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut mentions_deleted = false;
    let total: usize = lq.groups.iter().map(Vec::len).sum();
    if total > MAX_CONDITIONS {
        return Err(vec![FieldError::new("filter", format!("at most {MAX_CONDITIONS} conditions are allowed"))]);
    }
    let mut group_sql = Vec::new();
    for group in &lq.groups {
        let mut conds = Vec::new();
        for c in group {
            let label = format!("filter[{}]", short(&c.field));
            if c.field == "deleted_at" {
                mentions_deleted = true;
            }
            let Some(target) = r.target(&c.field) else {
                errors.push(FieldError::new(label, format!("is not a field of {}", r.object.name)));
                continue;
            };
            match condition_sql(q, backend, &target, c) {
                Ok(sql) => conds.push(sql),
                Err(e) => errors.push(FieldError::new(label, e)),
            }
        }
        if !conds.is_empty() {
            group_sql.push(format!("({})", conds.join(" AND ")));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !group_sql.is_empty() {
        q.push(&format!(" AND ({})", group_sql.join(" OR ")));
    }
    if !mentions_deleted {
        q.push(" AND deleted_at IS NULL");
    }
    if let Some(text) = lq.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() > 200 {
            return Err(vec![FieldError::new("q", "must be at most 200 characters")]);
        }
        // Word-prefix search through the search index (FTS5 / GIN): every word of the query
        // must start a word of the record ("ram sha" finds "Ramesh Sharma").
        let words = search_words(text);
        if words.is_empty() {
            q.push(" AND 1 = 0");
            return Ok(());
        }
        let t = &r.object.name;
        let p = q.param(Value::Text(words_expr(backend, &words)));
        match backend {
            Backend::Sqlite => {
                // `+rowid` keeps the planner from reading the rows by the matches' row ids,
                // so it walks the index that gives the list's order instead.
                let rowid = if plan == SearchPlan::InOrder { "+rowid" } else { "rowid" };
                q.push(&format!(" AND {rowid} IN (SELECT rowid FROM {t}_fts WHERE {t}_fts MATCH {p})"));
            }
            Backend::Postgres => {
                let doc = crate::schema::SEARCH_DOC_PG;
                // GIN answers a prefix by reading every indexed word it starts: for a short
                // word ("in" or "com" of an email address) most of the index, 35 ms at a
                // million leads. The index finds the records by the longer words, and the
                // whole query is checked on those rows only (`ts_match_vq` is `@@` without
                // the index).
                let long: Vec<&String> = words.iter().filter(|w| w.chars().count() > SHORT_WORD).collect();
                if long.is_empty() || long.len() == words.len() {
                    q.push(&format!(" AND {doc} @@ to_tsquery('simple'::regconfig, {p})"));
                } else {
                    let pl = q.param(Value::Text(words_expr(backend, &long)));
                    q.push(&format!(
                        " AND {doc} @@ to_tsquery('simple'::regconfig, {pl}) AND ts_match_vq({doc}, to_tsquery('simple'::regconfig, {p}))"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The words of a search: lower-cased, Latin accents folded, split on anything that is not a
/// letter or digit (as the index splits records), at most 8.
pub fn search_words(text: &str) -> Vec<String> {
    let from: Vec<char> = crate::schema::SEARCH_FOLD_FROM.chars().collect();
    let to: Vec<char> = crate::schema::SEARCH_FOLD_TO.chars().collect();
    let folded: String = text.to_lowercase().chars().map(|c| from.iter().position(|f| *f == c).map_or(c, |i| to[i])).collect();
    folded.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).take(8).map(str::to_string).collect()
}

/// Whether a filter value holds a NUL character (also inside an `in` list).
fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        _ => false,
    }
}

fn condition_sql(q: &mut Q, backend: Backend, t: &Target, c: &Condition) -> Result<String, String> {
    // PostgreSQL text cannot hold NUL, so the database would fail the query (a 500); no stored
    // value contains one either, so it is bad input on both backends.
    if has_nul(&c.value) {
        return Err("must not contain NUL characters".into());
    }
    let ty = t.ty();
    let kind = t.kind();
    let is_list = ty == SqlType::Json;
    match c.op {
        Op::IsNull => {
            let want = match &c.value {
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(s) if s == "true" || s == "1" || s.is_empty() => true,
                serde_json::Value::String(s) if s == "false" || s == "0" => false,
                _ => return Err("is_null takes true or false".into()),
            };
            let e = t.sql(q, backend);
            Ok(if want { format!("{e} IS NULL") } else { format!("{e} IS NOT NULL") })
        }
        Op::Contains => {
            let s = match &c.value {
                serde_json::Value::String(s) => s.clone(),
                _ => return Err("contains takes text".into()),
            };
            if s.chars().count() > 200 {
                return Err("is too long".into());
            }
            if is_list {
                let e = t.sql(q, backend);
                Ok(match backend {
                    Backend::Sqlite => {
                        let p = q.param(Value::Text(s));
                        format!("EXISTS (SELECT 1 FROM json_each({e}) WHERE json_each.value = {p})")
                    }
                    Backend::Postgres => {
                        let p = q.param(Value::Json(serde_json::json!([s])));
                        format!("{e} @> {p}")
                    }
                })
            } else if ty == SqlType::Text {
                let e = t.sql(q, backend);
                let p = q.param(Value::Text(like_pattern(&s)));
                Ok(format!("{e} {} {p} ESCAPE '\\'", like(backend)))
            } else {
                Err("contains works on text and list fields".into())
            }
        }
        _ if is_list => Err("list fields support contains and is_null".into()),
        Op::In => {
            let items = match &c.value {
                serde_json::Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            if items.is_empty() || items.len() > MAX_IN {
                return Err(format!("in takes 1 to {MAX_IN} values"));
            }
            let values = items.iter().map(|v| coerce(kind, ty, v)).collect::<Result<Vec<_>, _>>()?;
            let e = t.sql(q, backend);
            let ps: Vec<String> = values.into_iter().map(|v| q.param(v)).collect();
            Ok(format!("{e} IN ({})", ps.join(", ")))
        }
        op => {
            let v = coerce(kind, ty, &c.value)?;
            if v.is_null() {
                return Err("use is_null to match empty values".into());
            }
            let e = t.sql(q, backend);
            let p = q.param(v);
            // `ne` also matches empty values, as users expect "status is not X" to include blanks.
            Ok(if op == Op::Ne { format!("({e} <> {p} OR {e} IS NULL)") } else { format!("{e} {} {p}", op.sql()) })
        }
    }
}

/// Resolved sort keys plus the id tie-breaker.
pub fn sort_targets(r: &Resolver, sort: &[SortKey]) -> Result<Vec<(Target, bool)>, Vec<FieldError>> {
    let keys = if sort.is_empty() { vec![SortKey { field: "created_at".into(), desc: true }] } else { sort.to_vec() };
    if keys.len() > 5 {
        return Err(vec![FieldError::new("sort", "at most 5 sort fields")]);
    }
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for k in &keys {
        if k.field == "id" {
            continue;
        }
        match r.sortable(&k.field) {
            Ok(t) => out.push((t, k.desc)),
            Err(e) => errors.push(FieldError::new("sort", e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let id_desc = keys.first().is_some_and(|k| k.desc);
    out.push((Target::Column { name: "id".into(), ty: SqlType::Uuid, kind: None }, id_desc));
    Ok(out)
}

pub fn push_order(q: &mut Q, backend: Backend, keys: &[(Target, bool)]) {
    // Columns that are never null need no NULLS LAST, and without it an index on them
    // serves the order in both directions on both backends.
    let parts: Vec<String> = keys
        .iter()
        .map(|(t, desc)| {
            let never_null =
                matches!(t, Target::Column { name, .. } if matches!(name.as_str(), "id" | "number" | "created_at" | "updated_at"));
            let nulls = if never_null { "" } else { " NULLS LAST" };
            format!("{} {}{nulls}", t.sql(q, backend), if *desc { "DESC" } else { "ASC" })
        })
        .collect();
    q.push(&format!(" ORDER BY {}", parts.join(", ")));
}

/// Keyset condition: rows strictly after the cursor in the sort order (nulls last).
pub fn push_after(q: &mut Q, backend: Backend, keys: &[(Target, bool)], cursor: &[Value]) {
    let mut ors = Vec::new();
    for i in 0..keys.len() {
        let Some(vi) = cursor.get(i) else { break };
        if vi.is_null() {
            continue;
        }
        let mut ands = Vec::new();
        for (j, (t, _)) in keys.iter().enumerate().take(i) {
            let e = t.sql(q, backend);
            match cursor.get(j) {
                Some(v) if !v.is_null() => {
                    let p = q.param(v.clone());
                    ands.push(format!("{e} = {p}"));
                }
                _ => ands.push(format!("{e} IS NULL")),
            }
        }
        let (t, desc) = &keys[i];
        let e = t.sql(q, backend);
        let p = q.param(vi.clone());
        let cmp = if *desc { "<" } else { ">" };
        let nulls_after = if matches!(t, Target::Column { name, .. } if name == "id") { String::new() } else { format!(" OR {e} IS NULL") };
        ands.push(format!("({e} {cmp} {p}{nulls_after})"));
        ors.push(format!("({})", ands.join(" AND ")));
    }
    if ors.is_empty() {
        q.push(" AND 1 = 0");
    } else {
        q.push(&format!(" AND ({})", ors.join(" OR ")));
    }
}

/// Cursors are opaque to clients: base64 of the sort values of the last row.
pub fn encode_cursor(values: &[Value]) -> String {
    let json = serde_json::Value::Array(values.iter().map(Value::to_json).collect());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

pub fn decode_cursor(cursor: &str, keys: &[(Target, bool)]) -> Result<Vec<Value>, FieldError> {
    let bad = || FieldError::new("cursor", "is not a valid cursor for this list");
    if cursor.len() > 4096 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let items = json.as_array().filter(|a| a.len() == keys.len()).ok_or_else(bad)?;
    items
        .iter()
        .zip(keys)
        .map(|(raw, (t, _))| match (raw, t.ty()) {
            (serde_json::Value::Null, ty) => Ok(Value::Null(ty)),
            // Money is carried as minor units in cursors, not as an amount.
            (serde_json::Value::Number(n), SqlType::Int) => n.as_i64().map(Value::Int).ok_or_else(bad),
            (raw, ty) => coerce(None, ty, raw).map_err(|_| bad()),
        })
        .collect()
}

/// The sort values of a record, to build the next cursor.
pub fn cursor_values(keys: &[(Target, bool)], record: &corvid_core::Record) -> Vec<Value> {
    keys.iter()
        .map(|(t, _)| match t {
            Target::Column { name, ty, .. } => match name.as_str() {
                "id" => Value::Uuid(record.id),
                "number" => Value::Text(record.number.clone()),
                "version" => Value::Int(record.version),
                "created_at" => Value::Timestamp(record.created_at),
                "updated_at" => Value::Timestamp(record.updated_at),
                "deleted_at" => record.deleted_at.map_or(Value::Null(*ty), Value::Timestamp),
                "created_by" => record.created_by.map_or(Value::Null(*ty), Value::Uuid),
                "updated_by" => record.updated_by.map_or(Value::Null(*ty), Value::Uuid),
                _ => record.fields.get(name).cloned().unwrap_or(Value::Null(*ty)),
            },
            Target::Custom { name, ty, kind } => {
                record.custom.get(name).map(|j| coerce(Some(kind), *ty, j).unwrap_or(Value::Null(*ty))).unwrap_or(Value::Null(*ty))
            }
            Target::Expr(_) => Value::Null(SqlType::Text),
        })
        .collect()
}
