//! The attack suite, on every backend: every operation of the OpenAPI document without
//! credentials, across tenants and with roles that may not use it; SQL injection through
//! every list parameter; mass assignment; another company's ids inside bodies; forged and
//! stale tokens and password guessing; oversized and deeply nested bodies; path traversal;
//! formula injection in exports. Every refused request is also checked to have changed
//! nothing: a digest of every table's rows is compared before and after.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use corvid_core::SqlType;
use corvid_server::ratelimit::{Limiter, Limits};
use corvid_server::AppState;
use corvid_store::Q;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------
// Harness: apps without request limits, a digest of every table, raw requests
// ---------------------------------------------------------------------------------------

/// The walks send thousands of requests from one address; the request limits have tests of
/// their own (edge.rs), so they are off here.
async fn apps() -> Vec<TestApp> {
    TestApp::all_with(&async |s: &mut AppState| {
        s.limiter = Arc::new(Limiter::new(Limits::unlimited()));
    })
    .await
}

/// Tables left out of the digest, with the reason. Everything else must be byte-for-byte
/// unchanged by a refused request.
const DIGEST_SKIPS: &[(&str, &str)] = &[
    // Written in the background by the log writer for every request, refused or not.
    ("system_logs", "request log lines, written asynchronously"),
];

/// Columns left out of the digest, with the reason: bookkeeping stamped on every use.
const DIGEST_VOLATILE: &[(&str, &str, &str)] = &[("api_tokens", "last_used_at", "stamped whenever the token is presented")];

/// Every table's row count and contents (SQLite: the rows themselves; PostgreSQL: an md5 of
/// them), by table. Comparing two digests names the tables that changed.
async fn digest(app: &TestApp) -> BTreeMap<String, (i64, String)> {
    // The schema does not change during a test: the query is built once per app.
    static QUERIES: std::sync::Mutex<BTreeMap<std::path::PathBuf, String>> = std::sync::Mutex::new(BTreeMap::new());
    let key = app.data.path().to_path_buf();
    let cached = QUERIES.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    let sql = match cached {
        Some(sql) => sql,
        None => {
            let sql = digest_query(app).await;
            QUERIES.lock().unwrap_or_else(|e| e.into_inner()).insert(key, sql.clone());
            sql
        }
    };
    let rows = app.db.fetch(&Q::new(sql), &[SqlType::Text, SqlType::Int, SqlType::Text]).await.expect("digest");
    rows.into_iter().map(|r| (r.text(0).unwrap_or_default(), (r.int(1).unwrap_or(-1), r.text(2).unwrap_or_default()))).collect()
}

async fn digest_query(app: &TestApp) -> String {
    let pg = app.backend == "postgres";
    let tables: Vec<String> = if pg {
        let q = Q::new(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        );
        app.db.fetch(&q, &[SqlType::Text]).await.expect("tables").into_iter().filter_map(|r| r.text(0)).collect()
    } else {
        let q = Q::new(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%\\_fts%' ESCAPE '\\'",
        );
        app.db.fetch(&q, &[SqlType::Text]).await.expect("tables").into_iter().filter_map(|r| r.text(0)).collect()
    };
    let mut parts = Vec::new();
    for t in tables.iter().filter(|t| !DIGEST_SKIPS.iter().any(|(s, _)| s == *t)) {
        let cols_sql = if pg {
            format!("SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{t}' ORDER BY ordinal_position")
        } else {
            format!("SELECT name FROM pragma_table_info('{t}')")
        };
        let cols: Vec<String> = app
            .db
            .fetch(&Q::new(cols_sql), &[SqlType::Text])
            .await
            .expect("columns")
            .into_iter()
            .filter_map(|r| r.text(0))
            .filter(|c| !DIGEST_VOLATILE.iter().any(|(vt, vc, _)| vt == t && vc == c))
            .collect();
        if pg {
            let row = cols.iter().map(|c| format!("COALESCE(\"{c}\"::text, '<null>')")).collect::<Vec<_>>().join(", ");
            parts.push(format!(
                "SELECT '{t}', COUNT(*), COALESCE(md5(string_agg(r, E'\\n' ORDER BY r)), '') FROM (SELECT concat_ws(',', {row}) AS r FROM \"{t}\") x"
            ));
        } else {
            let row = cols.iter().map(|c| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || ',' || ");
            parts.push(format!(
                "SELECT '{t}', COUNT(*), COALESCE(group_concat(r, char(10)), '') FROM (SELECT {row} AS r FROM \"{t}\" ORDER BY 1)"
            ));
        }
    }
    parts.join(" UNION ALL ")
}

/// The tables whose rows differ between two digests.
fn changed(before: &BTreeMap<String, (i64, String)>, after: &BTreeMap<String, (i64, String)>) -> Vec<String> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|t| before.get(*t) != after.get(*t))
        .map(|t| {
            let (a, b) = (before.get(t).map_or(-1, |x| x.0), after.get(t).map_or(-1, |x| x.0));
            format!("{t} ({a} -> {b} rows)")
        })
        .collect()
}

/// A request body.
#[derive(Clone)]
enum Payload {
    None,
    Json(Value),
    /// A `multipart/form-data` upload: content type and bytes.
    Form(String, Vec<u8>),
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::None => write!(f, "(no body)"),
            Payload::Json(v) => write!(f, "{}", v.to_string().chars().take(400).collect::<String>()),
            Payload::Form(_, b) => write!(f, "{}", String::from_utf8_lossy(&b[..b.len().min(400)])),
        }
    }
}

fn multipart(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> Payload {
    let boundary = "corvidattackboundary0b4d5e6f";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(file);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    Payload::Form(format!("multipart/form-data; boundary={boundary}"), body)
}

async fn send(app: &TestApp, method: &Method, path: &str, token: Option<&str>, payload: &Payload) -> Resp {
    let mut b = Request::builder().method(method.clone()).uri(path).header("user-agent", "corvid-attack/1.0");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = match payload {
        Payload::None => b.body(Body::empty()),
        Payload::Json(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
        Payload::Form(ct, bytes) => b.header("content-type", ct.as_str()).body(Body::from(bytes.clone())),
    }
    .expect("request");
    app.raw(req).await
}

/// Percent-encodes a query value (or path segment).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn id_of(r: &Resp) -> String {
    r.body["id"].as_str().unwrap_or_else(|| panic!("no id in {r:?}")).to_string()
}

// ---------------------------------------------------------------------------------------
// Two companies with one of everything
// ---------------------------------------------------------------------------------------

/// A company with an Admin, a Read Only member, a Sales Rep, a Manager and one record of
/// every kind a path can name.
struct Company {
    admin: Session,
    ro: Session,
    rep: Session,
    manager: Session,
    /// Text every record of this company carries, to spot it in another tenant's answers.
    marker: String,
    /// Path-parameter kind → id (`leads`, `accounts`, …, `team`, `import`, `rule`, …).
    ids: BTreeMap<&'static str, String>,
    /// A custom field of leads that only this company has.
    field: String,
}

impl Company {
    fn id(&self, kind: &str) -> &str {
        self.ids.get(kind).unwrap_or_else(|| panic!("no {kind} in the fixture"))
    }
    fn record_ids(&self) -> BTreeSet<String> {
        ["leads", "leads2", "accounts", "accounts2", "contacts", "contacts2", "deals", "tasks", "activities"]
            .iter()
            .map(|k| self.id(k).to_string())
            .collect()
    }
}

const CSV: &str = "First Name,Last Name,Email\nAsha,Rao,asha@example.in\n";

async fn seed(app: &TestApp, tag: &str) -> Company {
    let admin = app.register(&format!("admin-{tag}@attack.test"), &format!("Attack {tag} Co")).await;
    let ro = app.member(&admin, &format!("ro-{tag}@attack.test"), "read_only").await;
    let rep = app.member(&admin, &format!("rep-{tag}@attack.test"), "sales_rep").await;
    let manager = app.member(&admin, &format!("mgr-{tag}@attack.test"), "manager").await;
    let marker = format!("Secret{}", tag.to_uppercase());
    let mut ids = BTreeMap::new();
    let post = |path: String, body: Value| {
        let (app, admin) = (app, &admin);
        async move {
            let r = app.post(admin, &admin.path(&path), body.clone()).await;
            assert!(r.status.is_success(), "seeding {path} {body}: {r:?}");
            r
        }
    };
    let m = &marker;
    ids.insert(
        "leads",
        id_of(
            &post("leads".into(), json!({"first_name": m, "last_name": format!("{m} Lead"), "email": format!("lead@{tag}.example")})).await,
        ),
    );
    ids.insert(
        "leads2",
        id_of(
            &post("leads".into(), json!({"first_name": m, "last_name": format!("{m} Other"), "email": format!("other@{tag}.example")}))
                .await,
        ),
    );
    let acc = id_of(&post("accounts".into(), json!({"name": format!("{m} Account")})).await);
    ids.insert("accounts", acc.clone());
    ids.insert("accounts2", id_of(&post("accounts".into(), json!({"name": format!("{m} Second Account")})).await));
    ids.insert("contacts", id_of(&post("contacts".into(), json!({"last_name": format!("{m} Contact"), "account_id": acc})).await));
    ids.insert("contacts2", id_of(&post("contacts".into(), json!({"last_name": format!("{m} Second Contact"), "account_id": acc})).await));
    ids.insert("deals", id_of(&post("deals".into(), json!({"name": format!("{m} Deal"), "account_id": acc})).await));
    ids.insert("tasks", id_of(&post("tasks".into(), json!({"title": format!("{m} Task")})).await));
    ids.insert("activities", id_of(&post("activities".into(), json!({"activity_type": "note", "title": format!("{m} Note")})).await));
    let field = format!("only_{tag}");
    post("metadata/objects/leads/fields".into(), json!({"name": field, "type": "text"})).await;
    ids.insert("team", id_of(&post("teams".into(), json!({"name": format!("{m} Team")})).await));
    ids.insert(
        "template",
        id_of(
            &post(
                "data/import-templates".into(),
                json!({"object": "leads", "name": format!("{m} template"), "mapping": {"Last Name": "last_name"}}),
            )
            .await,
        ),
    );
    let up = send(
        app,
        &Method::POST,
        &admin.path("data/import"),
        Some(&admin.token),
        &multipart(&[("object", "leads")], "people.csv", CSV.as_bytes()),
    )
    .await;
    assert_eq!(up.status, StatusCode::ACCEPTED, "{up:?}");
    ids.insert("import", id_of(&up));
    ids.insert("job", id_of(&post("jobs".into(), json!({"kind": "audit.verify"})).await));
    ids.insert(
        "schedule",
        id_of(&post("job-schedules".into(), json!({"name": format!("{m} nightly"), "kind": "audit.verify", "cron": "0 3 * * *"})).await),
    );
    let scan = app.call(Method::POST, &admin.path("data/dedupe/scan"), Some(&admin.token), None, &[]).await;
    assert!(scan.status.is_success(), "{scan:?}");
    ids.insert("scan", id_of(&scan));
    ids.insert("rule_set", id_of(&post("scoring/rule-sets".into(), json!({"name": format!("{m} scoring")})).await));
    ids.insert(
        "rule",
        id_of(&post("assignment/rules".into(), json!({"name": format!("{m} rule"), "strategy": "user", "user_id": admin.user_id})).await),
    );
    ids.insert("member", ro.user_id.clone());
    let role = post("roles".into(), json!({"label": format!("{m} role"), "base_role": "sales_rep"})).await;
    ids.insert("role", role.body["key"].as_str().unwrap_or_else(|| panic!("{role:?}")).to_string());
    let t = app.post(&admin, "/api/v1/me/tokens", json!({"name": format!("{m} token")})).await;
    assert_eq!(t.status, StatusCode::CREATED, "{t:?}");
    ids.insert("token", id_of(&t));
    let sessions = app.get(&admin, "/api/v1/auth/sessions").await;
    let sid = sessions.body["data"].as_array().and_then(|a| a.iter().find(|s| s["current"] == true)).and_then(|s| s["id"].as_str());
    ids.insert("session", sid.unwrap_or_else(|| panic!("{sessions:?}")).to_string());
    Company { admin, ro, rep, manager, marker, ids, field: format!("cf_{field}") }
}

// ---------------------------------------------------------------------------------------
// The operations of the OpenAPI document
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Op {
    id: String,
    method: Method,
    path: String,
}

impl Op {
    fn company_scoped(&self) -> bool {
        self.path.starts_with("/api/v1/companies/{company_id}")
    }
    fn is_get(&self) -> bool {
        self.method == Method::GET
    }
    /// Path parameters naming something that belongs to a company or a user (not the company
    /// itself, an object name or a docs file).
    fn record_params(&self) -> Vec<&str> {
        params(&self.path).into_iter().filter(|p| !["company_id", "object", "file"].contains(p)).collect()
    }
}

fn params(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

fn operations() -> Vec<Op> {
    let doc = corvid_server::openapi::document();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) else { continue };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                continue;
            }
            let id = op["operationId"].as_str().expect("operationId").to_string();
            ops.push(Op { id, method: m, path: path.clone() });
        }
    }
    assert!(ops.len() > 150, "the document lists every route: {}", ops.len());
    ops
}

/// Operations anyone may call, and why. The document marks them `security: []`; the test
/// checks the two lists agree, so a route cannot quietly become public.
const PUBLIC: &[(&str, &str)] = &[
    ("register", "signing up is how a caller gets credentials"),
    ("login", "signing in is how a caller gets credentials"),
    ("loginMfa", "the second sign-in step: holds an MFA challenge token, not an access token"),
    ("refreshSession", "trades a refresh token (in the body) for new tokens"),
    ("requestPasswordReset", "for people who cannot sign in; answers the same whether the account exists"),
    ("confirmPasswordReset", "holds the emailed reset token instead of credentials"),
    ("getOpenApiDocument", "the API description, no data"),
    ("getApiDocs", "the API reference page, no data"),
    ("getApiDocsAsset", "the reference page's embedded files"),
    ("healthz", "load balancer liveness"),
    ("readyz", "load balancer readiness"),
    ("getMetrics", "Prometheus scraping: request counts by route, no tenant data"),
    // There are no public web forms (lead capture) yet; when they come, list them here.
];

/// Operations that are not writes to company data, though not GETs: a Read Only member may
/// use them. Everything else that is not a GET is a write.
const NOT_COMPANY_WRITES: &[(&str, &str)] = &[
    ("logout", "the caller's own session"),
    ("logoutEverywhere", "the caller's own sessions"),
    ("revokeSession", "the caller's own session"),
    ("enrolTotp", "the caller's own second factor"),
    ("confirmTotp", "the caller's own second factor"),
    ("disableTotp", "the caller's own second factor"),
    ("replaceRecoveryCodes", "the caller's own second factor"),
    ("createApiToken", "the caller's own API token"),
    ("revokeApiToken", "the caller's own API token"),
    ("createCompany", "a new company of the caller's own"),
    ("previewAssignment", "a dry run: computes, stores nothing"),
    ("previewScore", "a dry run: computes, stores nothing"),
];

fn is_search(op: &Op) -> bool {
    op.method == Method::POST && op.path.ends_with("/search")
}

/// A write to company data: what Read Only may never do.
fn is_company_write(op: &Op) -> bool {
    op.company_scoped() && !op.is_get() && !is_search(op) && !NOT_COMPANY_WRITES.iter().any(|(id, _)| *id == op.id)
}

/// Admin-only operations (the `Admin` extractor): every other role gets 403.
const ADMIN_ONLY: &[&str] = &[
    "addMember",
    "updateMember",
    "deactivateMember",
    "createTeam",
    "createCustomField",
    "deleteCustomField",
    "listAuditEntries",
    "verifyAuditTrail",
    "listSystemLog",
    "listJobs",
    "enqueueJob",
    "getJob",
    "cancelJob",
    "retryJob",
    "listJobSchedules",
    "createJobSchedule",
    "updateJobSchedule",
    "deleteJobSchedule",
    "putConversionRules",
    "setDedupePolicy",
    "startDedupeScan",
    "eraseDataSubject",
    "putConsentPolicy",
    "createScoringRuleSet",
    "updateScoringRuleSet",
    "deleteScoringRuleSet",
    "activateScoringRuleSet",
    "rescoreLeads",
    "trainPredictiveModel",
    "createAssignmentRule",
    "updateAssignmentRule",
    "deleteAssignmentRule",
    "reorderAssignmentRules",
    "listRoles",
    "getRole",
    "createRole",
    "updateRole",
    "deleteRole",
    "setMemberRole",
    "setMemberReporting",
    "transferRecords",
    "updateTeam",
    "deleteTeam",
];

/// Admins and Managers only (importing is a bulk write).
const IMPORTERS_ONLY: &[&str] = &["startImport", "validateImport", "saveImportTemplate", "deleteImportTemplate"];

/// Who is refused what: a role, the operations it may not use, the answer. The permission
/// matrix (roles × object × action × scope, field-level rules) adds its rows here.
struct RoleRule {
    role: &'static str,
    refused: fn(&Op) -> bool,
    status: u16,
    why: &'static str,
}

const ROLE_RULES: &[RoleRule] = &[
    RoleRule { role: "read_only", refused: is_company_write, status: 403, why: "Read Only changes nothing" },
    RoleRule {
        role: "read_only",
        refused: |op| ADMIN_ONLY.contains(&op.id.as_str()),
        status: 403,
        why: "Admin-only reads (audit, logs, jobs)",
    },
    RoleRule { role: "sales_rep", refused: |op| ADMIN_ONLY.contains(&op.id.as_str()), status: 403, why: "Admin only" },
    RoleRule { role: "sales_rep", refused: |op| IMPORTERS_ONLY.contains(&op.id.as_str()), status: 403, why: "Admins and Managers import" },
    RoleRule { role: "manager", refused: |op| ADMIN_ONLY.contains(&op.id.as_str()), status: 403, why: "Admin only" },
];

fn session_of<'a>(c: &'a Company, role: &str) -> &'a Session {
    match role {
        "read_only" => &c.ro,
        "sales_rep" => &c.rep,
        "manager" => &c.manager,
        "admin" => &c.admin,
        other => panic!("no {other} in the fixture"),
    }
}

/// The path of `op` for the company `company`, naming records of `records` and the user-level
/// things (API tokens, sessions) of `user`.
fn fill(op: &Op, company: &Company, records: &Company, user: &Company) -> String {
    let segments: Vec<&str> = op.path.split('/').collect();
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
            out.push(seg.to_string());
            continue;
        };
        let value = match name {
            "company_id" => company.admin.company_id.clone(),
            "object" => "leads".to_string(),
            "file" => "init.js".to_string(),
            "id" => {
                // The object is the segment before: a literal name or `{object}` (leads).
                let object = segments[i - 1].trim_start_matches('{').trim_end_matches('}');
                let object = if object == "object" { "leads" } else { object };
                records.id(object).to_string()
            }
            "user_id" => records.id("member").to_string(),
            "name" => records.field.clone(),
            "import_id" => records.id("import").to_string(),
            "template_id" => records.id("template").to_string(),
            "job_id" => records.id("job").to_string(),
            "schedule_id" => records.id("schedule").to_string(),
            "scan_id" => records.id("scan").to_string(),
            "rule_set_id" => records.id("rule_set").to_string(),
            "rule_id" => records.id("rule").to_string(),
            "team_id" => records.id("team").to_string(),
            "key" => records.id("role").to_string(),
            "token_id" => user.id("token").to_string(),
            "session_id" => user.id("session").to_string(),
            other => panic!("{} {}: the attack walk does not know the path parameter {{{other}}}; add it to `fill`", op.method, op.path),
        };
        out.push(value);
    }
    out.join("/")
}

/// A body the operation accepts, naming records of `c`, so that the answer depends only on
/// who asks and where, not on a malformed request.
fn body_for(op: &Op, c: &Company) -> Payload {
    let record_object = corvid_core::meta::OBJECT_NAMES.iter().find(|o| {
        let base = format!("/api/v1/companies/{{company_id}}/{o}");
        op.path == base || op.path == format!("{base}/bulk") || op.path == format!("{base}/{{id}}")
    });
    if let Some(o) = record_object {
        let id = c.id(o);
        return match (op.method.as_str(), op.path.ends_with("/bulk"), op.path.ends_with("{id}")) {
            ("POST", true, _) => Payload::Json(json!({"action": "delete", "ids": [id]})),
            ("POST", false, false) => Payload::Json(create_body(o, c)),
            ("PATCH", _, true) => Payload::Json(json!({"version": 1, update_field(o): "Probe change"})),
            _ => Payload::None,
        };
    }
    if is_search(op) {
        return Payload::Json(json!({}));
    }
    let j = |v: Value| Payload::Json(v);
    match op.id.as_str() {
        "logout" | "logoutEverywhere" | "enrolTotp" => Payload::None,
        "confirmTotp" => j(json!({"code": "123456"})),
        "disableTotp" | "replaceRecoveryCodes" => j(json!({"password": PASSWORD})),
        "createApiToken" => j(json!({"name": "probe"})),
        "createCompany" => j(json!({"name": "Probe Co"})),
        "previewAssignment" | "previewScore" => j(json!({"values": {}})),
        "createAssignmentRule" => j(json!({"name": "Probe rule", "strategy": "user", "user_id": c.admin.user_id})),
        "updateAssignmentRule" => j(json!({"name": "Probe renamed"})),
        "reorderAssignmentRules" => j(json!({"ids": [c.id("rule")]})),
        "putConversionRules" => {
            j(json!({"require_qualified": false, "require_consent": true, "auto_convert": false, "auto_create_deal": false}))
        }
        "setDedupePolicy" => j(json!({"policy": "block"})),
        "startImport" | "validateImport" => multipart(&[("object", "leads")], "probe.csv", CSV.as_bytes()),
        "saveImportTemplate" => j(json!({"object": "leads", "name": "Probe template", "mapping": {"Last Name": "last_name"}})),
        "enqueueJob" => j(json!({"kind": "audit.verify"})),
        "createJobSchedule" => j(json!({"name": "probe", "kind": "audit.verify", "cron": "0 5 * * *"})),
        "updateJobSchedule" => j(json!({"enabled": false})),
        id if id.starts_with("merge") => {
            // `/{object}/merge`: the record and its second of the fixture.
            let object = op.path.trim_end_matches("/merge").rsplit('/').next().unwrap_or("leads");
            j(json!({"survivor_id": c.id(object), "merged_ids": [c.id(&format!("{object}2"))]}))
        }
        "convertLead" => j(json!({"override_qualification": true})),
        "dismissLeadDuplicate" => j(json!({"other_id": c.id("leads2")})),
        "recordLeadEngagement" => j(json!({"type": "email_opened"})),
        "qualifyLead" => j(json!({"outcome": "qualified"})),
        "addMember" => j(json!({"email": "probe-member@attack.test", "name": "Probe", "password": PASSWORD, "role": "admin"})),
        "updateMember" => j(json!({"role": "admin"})),
        "createCustomField" => j(json!({"name": "probe", "type": "text"})),
        "putConsentPolicy" => j(json!({"require_source": true, "require_version": true})),
        "createScoringRuleSet" => j(json!({"name": "Probe set"})),
        "updateScoringRuleSet" => j(json!({"name": "Probe renamed"})),
        "createTeam" => j(json!({"name": "Probe team"})),
        "updateTeam" => j(json!({"name": "Probe renamed"})),
        "createRole" => j(json!({"label": "Probe role", "base_role": "sales_rep"})),
        "updateRole" => j(json!({"label": "Probe renamed"})),
        "setMemberRole" => j(json!({"role": "admin"})),
        "setMemberReporting" => j(json!({"team_id": c.id("team")})),
        "transferRecords" => j(json!({"to_user_id": c.admin.user_id})),
        "recordConsent" => j(json!({"consent": true, "channel": "email", "source": "probe"})),
        // Reads, deletes and actions without a body (restore, activate, cancel, retry, erase,
        // scan, rescore, train).
        _ => Payload::None,
    }
}

fn create_body(object: &str, c: &Company) -> Value {
    match object {
        "leads" => json!({"last_name": "Probe"}),
        "accounts" => json!({"name": "Probe"}),
        "contacts" => json!({"last_name": "Probe", "account_id": c.id("accounts")}),
        "deals" => json!({"name": "Probe", "account_id": c.id("accounts")}),
        "tasks" => json!({"title": "Probe"}),
        "activities" => json!({"activity_type": "note", "title": "Probe"}),
        other => panic!("no create body for {other}"),
    }
}

fn update_field(object: &str) -> &'static str {
    match object {
        "leads" | "contacts" => "job_title",
        "accounts" => "industry",
        _ => "description",
    }
}

/// Sends `op` and checks the answer's status, that it is a problem, and that nothing changed.
async fn expect_refused(app: &TestApp, op: &Op, path: &str, token: Option<&str>, payload: &Payload, want: u16, case: &str) {
    let before = digest(app).await;
    let r = send(app, &op.method, path, token, payload).await;
    assert_eq!(r.status.as_u16(), want, "[{}] {case}: {} {} ({}) answered {r:?}", app.backend, op.method, path, op.id);
    assert!(is_problem(&r), "[{}] {case}: {} {path}: not problem+json: {r:?}", app.backend, op.method);
    let after = digest(app).await;
    assert!(changed(&before, &after).is_empty(), "[{}] {case}: {} {path} changed {:?}", app.backend, op.method, changed(&before, &after));
}

#[tokio::test]
async fn every_operation_refuses_callers_without_credentials() {
    let ops = operations();
    let documented: BTreeSet<String> = {
        let doc = corvid_server::openapi::document();
        let mut s = BTreeSet::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for op in item.as_object().expect("item").values() {
                if op.get("security") == Some(&json!([])) {
                    s.insert(op["operationId"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        s
    };
    let listed: BTreeSet<String> = PUBLIC.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(documented, listed, "the public operations of the document are exactly the listed ones");
    for app in apps().await {
        let a = seed(&app, "a").await;
        let mut cases = 0;
        for op in ops.iter().filter(|op| !listed.contains(&op.id)) {
            let path = fill(op, &a, &a, &a);
            let payload = body_for(op, &a);
            expect_refused(&app, op, &path, None, &payload, 401, "no credentials").await;
            // A token that is not one (garbage, a refresh token, an API token's id) is the same.
            expect_refused(&app, op, &path, Some(&a.admin.refresh), &payload, 401, "refresh token as bearer").await;
            cases += 2;
        }
        eprintln!("[{}] unauthenticated: {cases} cases", app.backend);
    }
}

#[tokio::test]
async fn every_operation_hides_another_companys_data() {
    let ops = operations();
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let (mut swapped, mut foreign_ids) = (0, 0);
        for op in &ops {
            if PUBLIC.iter().any(|(id, _)| *id == op.id) {
                continue;
            }
            if op.company_scoped() {
                // A's Admin, B's company id in the path (and B's records): not found.
                let path = fill(op, &b, &b, &a);
                expect_refused(&app, op, &path, Some(&a.admin.token), &body_for(op, &b), 404, "another company's id").await;
                swapped += 1;
            }
            if !op.record_params().is_empty() {
                // A's Admin in A's company, with B's record (or B's token, session) ids.
                let path = fill(op, &a, &b, &b);
                expect_refused(&app, op, &path, Some(&a.admin.token), &body_for(op, &a), 404, "another company's record id").await;
                foreign_ids += 1;
            }
        }
        eprintln!("[{}] tenant isolation: {swapped} company-id cases, {foreign_ids} record-id cases", app.backend);
        assert!(swapped > 120 && foreign_ids > 50, "{swapped} {foreign_ids}");
    }
}

#[tokio::test]
async fn roles_are_refused_what_they_may_not_do() {
    let ops = operations();
    for app in apps().await {
        let a = seed(&app, "a").await;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for rule in ROLE_RULES {
            let who = session_of(&a, rule.role);
            for op in ops.iter().filter(|op| (rule.refused)(op)) {
                let path = fill(op, &a, &a, &a);
                expect_refused(&app, op, &path, Some(&who.token), &body_for(op, &a), rule.status, &format!("{}: {}", rule.role, rule.why))
                    .await;
                *counts.entry(rule.role).or_default() += 1;
            }
        }
        eprintln!("[{}] role refusals: {counts:?}", app.backend);
        assert!(counts.get("read_only").copied().unwrap_or(0) > 80, "{counts:?}");
    }
}

#[tokio::test]
async fn the_digest_sees_every_change() {
    // The control for every "nothing changed" above: an allowed write shows up.
    for app in apps().await {
        let a = seed(&app, "a").await;
        let before = digest(&app).await;
        let r = app.patch(&a.admin, &a.admin.path(&format!("leads/{}", a.id("leads"))), json!({"version": 1, "job_title": "CTO"})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let diff = changed(&before, &digest(&app).await);
        assert!(diff.iter().any(|t| t.starts_with("leads ")) && diff.iter().any(|t| t.starts_with("audit_log ")), "{diff:?}");
        // Public operations answer without credentials.
        for path in ["/api/openapi.json", "/api/docs", "/api/docs/init.js", "/healthz", "/readyz", "/metrics"] {
            assert_eq!(app.call(Method::GET, path, None, None, &[]).await.status, StatusCode::OK, "{path}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// SQL injection through every list parameter
// ---------------------------------------------------------------------------------------

const SQLI: &[&str] = &[
    "' OR 1=1--",
    "\"; DROP TABLE leads;--",
    "1) OR (1=1",
    "’ OR ’1’=’1",
    "ʼ OR 1=1--",
    "＇ OR 1=1 --",
    "' UNION SELECT id, company_id FROM users--",
    "\\'; DELETE FROM accounts WHERE '1'='1",
    "x\u{0}y",
    "$1",
    "?",
    "%",
    "_",
];

/// What an injected list request may answer: a 4xx problem, or a normal page holding only
/// the caller's own records (none at all when the payload had to match a value exactly).
fn check_list_answer(app: &TestApp, what: &str, r: &Resp, a: &Company, b: &Company, must_be_empty: bool) {
    let ctx = format!("[{}] {what}", app.backend);
    assert!(r.status.as_u16() < 500, "{ctx}: {r:?}");
    assert!(!r.text.contains(&b.marker), "{ctx}: another company's data: {r:?}");
    for id in b.record_ids() {
        assert!(!r.text.contains(&id), "{ctx}: another company's record id: {r:?}");
    }
    if r.status.is_success() {
        if let Some(rows) = r.body["data"].as_array() {
            let mine = a.record_ids();
            for row in rows {
                if let Some(id) = row["id"].as_str() {
                    assert!(mine.contains(id) || row["object"].is_null(), "{ctx}: a row that is not the caller's: {row}");
                }
            }
            if must_be_empty {
                assert!(rows.is_empty(), "{ctx}: the payload matched rows: {r:?}");
            }
        }
    } else {
        assert!(r.status.is_client_error() && is_problem(r), "{ctx}: {r:?}");
    }
}

fn text_like(kind: &corvid_core::meta::FieldKind) -> bool {
    use corvid_core::meta::FieldKind as K;
    matches!(kind, K::Text { .. } | K::LongText { .. } | K::Email | K::Phone | K::Url)
}

#[tokio::test]
async fn sql_injection_in_every_list_parameter_is_just_a_value() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let before = digest(&app).await;
        let s = &a.admin;
        let mut cases = 0usize;
        for object in corvid_core::objects() {
            let o = object.name.as_str();
            let list = |qs: String| s.path(&format!("{o}?{qs}"));
            // Every field, the system columns and a custom field, with every payload.
            let mut fields: Vec<(String, bool)> = object.fields.iter().map(|f| (f.name.clone(), text_like(&f.kind))).collect();
            for sys in
                ["id", "number", "version", "created_at", "updated_at", "created_by", "updated_by", "deleted_at", "company_id", "custom"]
            {
                fields.push((sys.to_string(), sys == "number"));
            }
            if o == "leads" {
                fields.push((a.field.clone(), true));
            }
            for p in SQLI {
                let v = enc(p);
                for (f, text) in &fields {
                    let r = app.get(s, &list(format!("filter[{f}]={v}"))).await;
                    check_list_answer(&app, &format!("{o} filter[{f}]={p:?}"), &r, &a, &b, true);
                    cases += 1;
                    if *text {
                        for op in ["contains", "in"] {
                            let r = app.get(s, &list(format!("filter[{f}][{op}]={v}"))).await;
                            check_list_answer(&app, &format!("{o} filter[{f}][{op}]={p:?}"), &r, &a, &b, true);
                        }
                        for op in ["ne", "gte", "lt"] {
                            let r = app.get(s, &list(format!("filter[{f}][{op}]={v}"))).await;
                            check_list_answer(&app, &format!("{o} filter[{f}][{op}]={p:?}"), &r, &a, &b, false);
                        }
                        cases += 5;
                    }
                }
                // The parameter names and the other list parameters.
                for (qs, empty) in [
                    (format!("filter[{v}]=1"), true),
                    (format!("filter[last_name][{v}]=1"), true),
                    (format!("sort={v}"), false),
                    (format!("sort=-{v}"), false),
                    (format!("sort=created_at,{v}"), false),
                    (format!("q={v}"), true),
                    (format!("cursor={v}"), false),
                    (format!("fields={v}"), false),
                    (format!("fields=id,{v}"), false),
                    (format!("limit={v}"), false),
                    (format!("{v}=1"), false),
                ] {
                    let r = app.get(s, &list(qs.clone())).await;
                    check_list_answer(&app, &format!("{o}?{qs}"), &r, &a, &b, empty);
                    cases += 1;
                }
                // The same through search, export and the record routes' id.
                for body in [
                    json!({"filter_groups": [[{"field": "number", "op": "eq", "value": p}]]}),
                    json!({"filter_groups": [[{"field": "number", "op": "contains", "value": p}], [{"field": "number", "op": "in", "value": [p, p]}]]}),
                    json!({"filter_groups": [[{"field": p, "op": "eq", "value": "x"}]]}),
                    json!({"q": p}),
                    json!({"sort": p}),
                    json!({"sort": ["-created_at", p]}),
                    json!({"cursor": p}),
                    json!({"fields": [p]}),
                ] {
                    let r = app.post(s, &s.path(&format!("{o}/search")), body.clone()).await;
                    let empty = body.get("filter_groups").is_some_and(|g| g[0][0]["field"] == "number") || body.get("q").is_some();
                    check_list_answer(&app, &format!("{o}/search {body}"), &r, &a, &b, empty);
                    cases += 1;
                }
                for qs in [
                    format!("object={o}&filter[number]={v}"),
                    format!("object={o}&sort={v}"),
                    format!("object={o}&q={v}"),
                    format!("object={v}"),
                ] {
                    let r = app.get(s, &s.path(&format!("data/export?{qs}"))).await;
                    check_list_answer(&app, &format!("export?{qs}"), &r, &a, &b, false);
                    if r.status.is_success() {
                        assert_eq!(r.text.lines().count(), 1, "[{}] export?{qs} matched rows: {}", app.backend, r.text);
                    }
                    cases += 1;
                }
                for rest in [v.clone(), format!("{v}/history"), format!("{v}/timeline"), format!("{v}/restore")] {
                    let method = if rest.ends_with("restore") { Method::POST } else { Method::GET };
                    let r = app.call(method, &s.path(&format!("{o}/{rest}")), Some(&s.token), None, &[]).await;
                    check_list_answer(&app, &format!("{o}/{rest}"), &r, &a, &b, true);
                    assert!(matches!(r.status.as_u16(), 400 | 404), "[{}] {o}/{rest}: {r:?}", app.backend);
                    cases += 1;
                }
            }
        }
        // The other lists with parameters of their own.
        let lead = a.id("leads");
        let scan = a.id("scan");
        for p in SQLI {
            let v = enc(p);
            for path in [
                format!("activities/timeline?filter[title]={v}"),
                format!("activities/timeline?sort={v}"),
                format!("audit?object={v}"),
                format!("audit?action={v}"),
                format!("audit?actor_id={v}"),
                format!("audit?record_id={v}"),
                format!("audit?before={v}"),
                format!("audit?from={v}"),
                format!("leads/{lead}/history?action={v}"),
                format!("leads/{lead}/history?actor_id={v}"),
                format!("jobs?kind={v}"),
                format!("jobs?state={v}"),
                format!("jobs?cursor={v}"),
                format!("admin/logs?q={v}"),
                format!("admin/logs?level={v}"),
                format!("admin/logs?cursor={v}"),
                format!("admin/logs?request_id={v}"),
                format!("data/import-templates?object={v}"),
                format!("data/dedupe/scans/{scan}?cursor={v}"),
                format!("leads/{lead}/convert?name={v}"),
                format!("leads/{lead}/convert?website={v}"),
                format!("leads/{lead}/convert?gstin={v}"),
                format!("metadata/objects/{v}"),
                v.clone(),
            ] {
                let r = app.get(s, &s.path(&path)).await;
                let empty = path.starts_with("activities/timeline?filter") || path.contains("object=");
                check_list_answer(&app, &path, &r, &a, &b, empty);
                cases += 1;
            }
        }
        assert!(changed(&before, &digest(&app).await).is_empty(), "[{}] the injections changed data", app.backend);
        // Both companies' records are all still there.
        for c in [&a, &b] {
            for o in corvid_core::meta::OBJECT_NAMES {
                let r = app.get(&c.admin, &c.admin.path(o)).await;
                assert_eq!(r.status, StatusCode::OK);
                let n = r.body["data"].as_array().map_or(0, Vec::len);
                assert!(n >= 1, "[{}] {o} of {} lost its rows", app.backend, c.marker);
            }
        }
        eprintln!("[{}] sql injection: {cases} requests", app.backend);
    }
}

// ---------------------------------------------------------------------------------------
// Mass assignment
// ---------------------------------------------------------------------------------------

/// A value of the right shape for a field, so that only the field's being settable decides.
fn sample_value(kind: &corvid_core::meta::FieldKind, a: &Company) -> Value {
    use corvid_core::meta::FieldKind as K;
    match kind {
        K::DateTime => json!("2020-01-01T00:00:00Z"),
        K::Date => json!("2020-01-01"),
        K::Integer { min, .. } => json!(min + 1),
        K::Enum { options } => json!(options.last().map(|o| o.value.clone()).unwrap_or_default()),
        K::Reference { object } if object != "*" => json!(a.id(object)),
        K::Reference { .. } => json!(a.id("leads")),
        K::Json => json!({"planted": true}),
        K::Boolean => json!(true),
        K::User => json!(a.admin.user_id),
        _ => json!("planted"),
    }
}

/// Checks a create or update that carried a field the caller may not set: a 422 naming the
/// field with nothing changed, or success with the field ignored.
async fn check_planted(app: &TestApp, what: &str, r: &Resp, field: &str, planted: &Value, before: &BTreeMap<String, (i64, String)>) {
    let ctx = format!("[{}] {what}", app.backend);
    match r.status.as_u16() {
        422 | 403 => {
            assert!(errors_name(r, field) || r.text.contains(field), "{ctx}: the refusal does not name {field}: {r:?}");
            assert!(changed(before, &digest(app).await).is_empty(), "{ctx}: refused but changed data");
        }
        200 | 201 => {
            let records: Vec<&Value> = match r.body["data"].as_array() {
                Some(rows) => rows.iter().collect(),
                None => vec![&r.body],
            };
            for rec in records {
                assert_ne!(&rec[field], planted, "{ctx}: the planted value was stored: {r:?}");
            }
        }
        _ => panic!("{ctx}: {r:?}"),
    }
}

#[tokio::test]
async fn mass_assignment_of_system_and_read_only_fields_has_no_effect() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let s = &a.admin;
        let mut cases = 0;
        for object in corvid_core::objects() {
            let o = object.name.as_str();
            let mut planted: Vec<(String, Value)> = vec![
                ("company_id".into(), json!(b.admin.company_id)),
                ("id".into(), json!(b.id(o))),
                ("version".into(), json!(99)),
                ("number".into(), json!("X-99999")),
                ("created_by".into(), json!(b.admin.user_id)),
                ("updated_by".into(), json!(b.admin.user_id)),
                ("created_at".into(), json!("2000-01-01T00:00:00Z")),
                ("updated_at".into(), json!("2000-01-01T00:00:00Z")),
                ("deleted_at".into(), json!("2000-01-01T00:00:00Z")),
                ("custom".into(), json!({"cf_planted": 1})),
                ("object".into(), json!("accounts")),
            ];
            for f in object.fields.iter().filter(|f| f.read_only) {
                planted.push((f.name.clone(), sample_value(&f.kind, &a)));
            }
            // Owners and assignees from another company.
            for f in object.fields.iter().filter(|f| f.kind == corvid_core::meta::FieldKind::User) {
                planted.push((f.name.clone(), json!(b.admin.user_id)));
            }
            let target = a.id(o).to_string();
            for (field, value) in &planted {
                let mut body = create_body(o, &a);
                body[field.as_str()] = value.clone();
                let before = digest(&app).await;
                let r = app.post(s, &s.path(o), body.clone()).await;
                check_planted(&app, &format!("create {o} with {field}"), &r, field, value, &before).await;
                let before = digest(&app).await;
                let r = app.post(s, &s.path(&format!("{o}/bulk")), json!({"action": "create", "records": [body]})).await;
                check_planted(&app, &format!("bulk create {o} with {field}"), &r, field, value, &before).await;
                if field == "version" {
                    // The version of an update is the precondition, not a value (tested below).
                    continue;
                }
                let version = app.get(s, &s.path(&format!("{o}/{target}"))).await.body["version"].clone();
                let before = digest(&app).await;
                let r = app.patch(s, &s.path(&format!("{o}/{target}")), json!({"version": version, field.as_str(): value})).await;
                check_planted(&app, &format!("update {o} with {field}"), &r, field, value, &before).await;
                let before = digest(&app).await;
                let r = app
                    .post(
                        s,
                        &s.path(&format!("{o}/bulk")),
                        json!({"action": "update", "ids": [target], "changes": {field.as_str(): value}}),
                    )
                    .await;
                check_planted(&app, &format!("bulk update {o} with {field}"), &r, field, value, &before).await;
                cases += 4;
            }
            // Whatever happened, every row of the table still belongs to the company it was
            // created in, and B's record is as it was.
            let theirs = app.get(&b.admin, &b.admin.path(&format!("{o}/{}", b.id(o)))).await;
            assert_eq!(theirs.status, StatusCode::OK);
            assert_eq!(theirs.body["version"], 1, "[{}] B's {o} was touched: {theirs:?}", app.backend);
            let ours = app.count(&format!("SELECT COUNT(*) FROM {o} WHERE company_id = '{}'", b.admin.company_id)).await;
            let listed =
                app.get(&b.admin, &b.admin.path(&format!("{o}?limit=200"))).await.body["data"].as_array().map_or(0, Vec::len) as i64;
            assert!(ours >= listed, "[{}] {o}: rows were moved into B", app.backend);
        }
        let b_rows: i64 = {
            let mut n = 0;
            for o in corvid_core::meta::OBJECT_NAMES {
                n += app.count(&format!("SELECT COUNT(*) FROM {o} WHERE company_id = '{}'", b.admin.company_id)).await;
            }
            n
        };
        assert_eq!(b_rows, 9, "[{}] B has exactly the rows it created", app.backend);

        // Members: roles are not self-service, and bodies carry no company or user ids.
        for who in [&a.manager, &a.rep, &a.ro] {
            let before = digest(&app).await;
            for body in [json!({"role": "admin"}), json!({"is_active": true}), json!({"team_id": a.id("team")})] {
                let r = app.patch(who, &who.path(&format!("members/{}", who.user_id)), body.clone()).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "[{}] {} edits itself with {body}: {r:?}", app.backend, who.email);
            }
            let r =
                app.post(who, &who.path("members"), json!({"email": "friend@attack.test", "password": PASSWORD, "role": "admin"})).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
            assert!(changed(&before, &digest(&app).await).is_empty());
            cases += 4;
        }
        let member = a.id("member").to_string();
        for (method, path, body, field) in [
            (
                Method::PATCH,
                s.path(&format!("members/{member}")),
                json!({"role": "manager", "company_id": b.admin.company_id}),
                "company_id",
            ),
            (Method::PATCH, s.path(&format!("members/{member}")), json!({"user_id": b.admin.user_id}), "user_id"),
            (
                Method::POST,
                s.path("members"),
                json!({"email": "x@attack.test", "role": "sales_rep", "company_id": b.admin.company_id}),
                "company_id",
            ),
            (Method::POST, s.path("members"), json!({"email": "x@attack.test", "role": "owner"}), "role"),
            (Method::POST, s.path("teams"), json!({"name": "T", "company_id": b.admin.company_id}), "company_id"),
            (
                Method::POST,
                s.path("metadata/objects/leads/fields"),
                json!({"name": "p", "type": "text", "company_id": b.admin.company_id}),
                "company_id",
            ),
            (Method::POST, s.path("scoring/rule-sets"), json!({"name": "P", "company_id": b.admin.company_id}), "company_id"),
            (
                Method::POST,
                s.path("assignment/rules"),
                json!({"name": "P", "strategy": "user", "user_id": a.admin.user_id, "company_id": b.admin.company_id}),
                "company_id",
            ),
            (
                Method::POST,
                s.path("data/import-templates"),
                json!({"object": "leads", "name": "P", "mapping": {}, "company_id": b.admin.company_id}),
                "company_id",
            ),
            (
                Method::POST,
                s.path("job-schedules"),
                json!({"name": "p", "kind": "audit.verify", "cron": "0 1 * * *", "company_id": b.admin.company_id}),
                "company_id",
            ),
            (Method::POST, s.path("jobs"), json!({"kind": "audit.verify", "company_id": b.admin.company_id}), "company_id"),
            (
                Method::POST,
                s.path("jobs"),
                json!({"kind": "import.run", "payload": {"import_id": b.id("import"), "user_id": b.admin.user_id}}),
                "kind",
            ),
            (Method::POST, s.path("jobs"), json!({"kind": "maintenance.cleanup"}), "kind"),
            (Method::POST, "/api/v1/me/tokens".to_string(), json!({"name": "t", "user_id": b.admin.user_id}), "user_id"),
            (Method::POST, "/api/v1/companies".to_string(), json!({"name": "C", "id": b.admin.company_id}), "id"),
            (
                Method::POST,
                s.path(&format!("leads/{}/convert", a.id("leads"))),
                json!({"override_qualification": true, "company_id": b.admin.company_id}),
                "company_id",
            ),
        ] {
            let before = digest(&app).await;
            let r = app.call(method.clone(), &path, Some(&s.token), Some(body.clone()), &[]).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "[{}] {method} {path} {body}: {r:?}", app.backend);
            assert!(errors_name(&r, field) || r.text.contains(field), "[{}] {body}: {r:?}", app.backend);
            assert!(changed(&before, &digest(&app).await).is_empty(), "[{}] {body}", app.backend);
            cases += 1;
        }
        // A job's payload cannot point it at another company: the job is this company's.
        let r = app.post(s, &s.path("jobs"), json!({"kind": "audit.verify", "payload": {"company_id": b.admin.company_id}})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let owner =
            app.count(&format!("SELECT COUNT(*) FROM jobs WHERE id = '{}' AND company_id = '{}'", id_of(&r), a.admin.company_id)).await;
        assert_eq!(owner, 1, "[{}] the job runs for the company that started it", app.backend);
        // Sign-up cannot choose a role or a company.
        let before = digest(&app).await;
        for extra in [
            json!({"role": "admin"}),
            json!({"company_id": b.admin.company_id}),
            json!({"is_active": true}),
            json!({"id": b.admin.user_id}),
        ] {
            let mut body = json!({"email": "new@attack.test", "password": PASSWORD, "name": "N", "company_name": "N Co"});
            for (k, v) in extra.as_object().expect("obj") {
                body[k] = v.clone();
            }
            let r = app.call(Method::POST, "/api/v1/auth/register", None, Some(body.clone()), &[]).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "[{}] {body}: {r:?}", app.backend);
            cases += 1;
        }
        assert!(changed(&before, &digest(&app).await).is_empty());
        eprintln!("[{}] mass assignment: {cases} cases", app.backend);
    }
}

// ---------------------------------------------------------------------------------------
// Another company's ids inside bodies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_companys_ids_in_bodies_are_refused_and_change_nothing() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let s = &a.admin;
        let theirs = |k: &str| json!(b.id(k));
        let b_user = json!(b.admin.user_id);
        let mut cases: Vec<(Method, String, Payload)> = Vec::new();
        let mut add = |m: Method, p: String, v: Value| cases.push((m, p, Payload::Json(v)));
        // Bulk actions with B's ids, alone or mixed with A's (all or nothing).
        for o in corvid_core::meta::OBJECT_NAMES {
            let (mine, other) = (a.id(o), b.id(o));
            for ids in [json!([other]), json!([mine, other])] {
                add(
                    Method::POST,
                    s.path(&format!("{o}/bulk")),
                    json!({"action": "update", "ids": ids, "changes": {update_field(o): "Overwritten"}}),
                );
                add(Method::POST, s.path(&format!("{o}/bulk")), json!({"action": "delete", "ids": ids}));
                add(Method::POST, s.path(&format!("{o}/bulk")), json!({"action": "restore", "ids": ids}));
            }
        }
        // Merge: B's lead as the survivor, a merged lead, or the source of a field.
        let merge = s.path("leads/merge");
        add(Method::POST, merge.clone(), json!({"survivor_id": a.id("leads"), "merged_ids": [b.id("leads")]}));
        add(Method::POST, merge.clone(), json!({"survivor_id": b.id("leads"), "merged_ids": [a.id("leads")]}));
        add(
            Method::POST,
            merge.clone(),
            json!({"survivor_id": a.id("leads"), "merged_ids": [a.id("leads2")], "fields": {"email": b.id("leads")}}),
        );
        add(
            Method::POST,
            merge.clone(),
            json!({"survivor_id": a.id("leads"), "merged_ids": [a.id("leads2")], "versions": {b.id("leads"): 1}}),
        );
        // Convert: B's account or contact, or new records that point into B.
        let convert = s.path(&format!("leads/{}/convert", a.id("leads")));
        for body in [
            json!({"account": {"existing_id": b.id("accounts")}}),
            json!({"contact": {"existing_id": b.id("contacts")}}),
            json!({"account": {"new": {"name": "N", "parent_account_id": b.id("accounts")}}}),
            json!({"account": {"new": {"name": "N", "owner_id": b.admin.user_id}}}),
            json!({"contact": {"new": {"last_name": "N", "reports_to_id": b.id("contacts")}}}),
            json!({"contact": {"new": {"last_name": "N", "account_id": b.id("accounts")}}}),
            json!({"contact": {"new": {"last_name": "N", "owner_id": b.admin.user_id}}}),
        ] {
            let mut body = body;
            body["override_qualification"] = json!(true);
            add(Method::POST, convert.clone(), body);
        }
        // References from records to B's records and users, on create, update and bulk.
        let refs: Vec<(&str, &str, Value)> = vec![
            ("leads", "duplicate_of_id", theirs("leads")),
            ("leads", "owner_id", b_user.clone()),
            ("accounts", "parent_account_id", theirs("accounts")),
            ("accounts", "owner_id", b_user.clone()),
            ("contacts", "account_id", theirs("accounts")),
            ("contacts", "reports_to_id", theirs("contacts")),
            ("contacts", "owner_id", b_user.clone()),
            ("deals", "account_id", theirs("accounts")),
            ("deals", "primary_contact_id", theirs("contacts")),
            ("deals", "lead_id", theirs("leads")),
            ("deals", "owner_id", b_user.clone()),
            ("tasks", "assignee_id", b_user.clone()),
            ("activities", "lead_id", theirs("leads")),
            ("activities", "account_id", theirs("accounts")),
            ("activities", "contact_id", theirs("contacts")),
            ("activities", "deal_id", theirs("deals")),
            ("activities", "task_id", theirs("tasks")),
            ("activities", "user_id", b_user.clone()),
        ];
        for (o, field, value) in &refs {
            let mut body = create_body(o, &a);
            body[*field] = value.clone();
            add(Method::POST, s.path(o), body.clone());
            add(Method::POST, s.path(&format!("{o}/bulk")), json!({"action": "create", "records": [body]}));
            add(Method::PATCH, s.path(&format!("{o}/{}", a.id(o))), json!({"version": 1, *field: value}));
            add(Method::POST, s.path(&format!("{o}/bulk")), json!({"action": "update", "ids": [a.id(o)], "changes": {*field: value}}));
        }
        for (related, object) in [("leads", "leads"), ("accounts", "accounts"), ("contacts", "contacts"), ("deals", "deals")] {
            add(Method::POST, s.path("tasks"), json!({"title": "T", "related_object": related, "related_id": b.id(object)}));
            add(
                Method::PATCH,
                s.path(&format!("tasks/{}", a.id("tasks"))),
                json!({"version": 1, "related_object": related, "related_id": b.id(object)}),
            );
        }
        // Company settings that name users, teams, rules and templates.
        let member = a.id("member");
        for (m, p, v) in [
            (Method::POST, s.path("teams"), json!({"name": "Cross team", "manager_id": b.admin.user_id})),
            (Method::PATCH, s.path(&format!("members/{member}")), json!({"team_id": b.id("team")})),
            (Method::PATCH, s.path(&format!("members/{member}")), json!({"manager_id": b.admin.user_id})),
            (Method::POST, s.path("assignment/rules"), json!({"name": "X", "strategy": "user", "user_id": b.admin.user_id})),
            (Method::POST, s.path("assignment/rules"), json!({"name": "X", "strategy": "round_robin", "team_id": b.id("team")})),
            (
                Method::POST,
                s.path("assignment/rules"),
                json!({"name": "X", "strategy": "load_balanced", "user_ids": [a.admin.user_id, b.admin.user_id]}),
            ),
            (Method::PATCH, s.path(&format!("assignment/rules/{}", a.id("rule"))), json!({"user_id": b.admin.user_id})),
            (Method::POST, s.path("assignment/rules/reorder"), json!({"ids": [b.id("rule")]})),
            (Method::POST, s.path("assignment/rules/reorder"), json!({"ids": [a.id("rule"), b.id("rule")]})),
            (Method::POST, s.path("scoring/preview"), json!({"values": {}, "rule_set_id": b.id("rule_set")})),
            (Method::POST, s.path(&format!("leads/{}/duplicates/dismiss", a.id("leads"))), json!({"other_id": b.id("leads")})),
            (Method::POST, s.path("leads/search"), json!({"filter_groups": [[{"field": "id", "op": "eq", "value": b.id("leads")}]]})),
        ] {
            add(m, p, v);
        }
        let with_template = multipart(&[("object", "leads"), ("template_id", b.id("template"))], "people.csv", CSV.as_bytes());
        cases.push((Method::POST, s.path("data/import"), with_template.clone()));
        cases.push((Method::POST, s.path("data/validate"), with_template));

        let b_before = {
            let mut v = Vec::new();
            for o in corvid_core::meta::OBJECT_NAMES {
                v.push(app.get(&b.admin, &b.admin.path(&format!("{o}/{}", b.id(o)))).await.body);
            }
            v
        };
        let total = cases.len();
        for (method, path, payload) in cases {
            let before = digest(&app).await;
            let r = send(&app, &method, &path, Some(&s.token), &payload).await;
            let what = format!("[{}] {method} {path} {payload:?}", app.backend);
            if path.ends_with("/search") || path.ends_with("scoring/preview") {
                // Reads: nothing of B's comes back.
                assert!(!r.text.contains(&b.marker), "{what}: {r:?}");
                assert!(
                    r.status.is_success() && r.body["data"].as_array().is_none_or(|d| d.is_empty()) || r.status.is_client_error(),
                    "{what}: {r:?}"
                );
            } else {
                assert!(matches!(r.status.as_u16(), 404 | 422), "{what}: {r:?}");
                assert!(is_problem(&r), "{what}: {r:?}");
            }
            assert!(changed(&before, &digest(&app).await).is_empty(), "{what}: changed {:?}", changed(&before, &digest(&app).await));
        }
        for (i, o) in corvid_core::meta::OBJECT_NAMES.iter().enumerate() {
            let now = app.get(&b.admin, &b.admin.path(&format!("{o}/{}", b.id(o)))).await.body;
            assert_eq!(now, b_before[i], "[{}] B's {o} changed", app.backend);
        }
        eprintln!("[{}] foreign ids in bodies: {total} cases", app.backend);
    }
}

/// A one-column import of `object` (its title field) with these `defaults`.
fn import_with_defaults(object: &str, defaults: &Value) -> Payload {
    let title = match object {
        "leads" | "contacts" => "last_name",
        "accounts" | "deals" => "name",
        _ => "title",
    };
    let mapping = json!([title]).to_string();
    let options = json!({"defaults": defaults, "run_assignment": false}).to_string();
    multipart(&[("object", object), ("mapping", &mapping), ("options", &options)], "defaults.csv", b"Title\nProbe\n")
}

/// Files in the uploads folder: a refused upload must not leave one behind.
fn stored_uploads(app: &TestApp) -> usize {
    std::fs::read_dir(app.data.path().join("imports")).map_or(0, |d| d.count())
}

fn error_fields(r: &Resp) -> Vec<String> {
    r.body["errors"].as_array().map_or_else(Vec::new, |a| a.iter().filter_map(|e| e["field"].as_str().map(str::to_string)).collect())
}

/// Sends an import upload (or dry run) that must be refused with `want`, naming exactly
/// `defaults.<field>`, and checks that no row and no file was stored.
async fn expect_defaults_refused(app: &TestApp, s: &Session, endpoint: &str, payload: &Payload, want: u16, field: &str, case: &str) {
    let (before, files) = (digest(app).await, stored_uploads(app));
    let r = send(app, &Method::POST, &s.path(endpoint), Some(&s.token), payload).await;
    let what = format!("[{}] {case} ({endpoint})", app.backend);
    assert_eq!(r.status.as_u16(), want, "{what}: {r:?}");
    assert!(is_problem(&r), "{what}: {r:?}");
    assert_eq!(error_fields(&r), vec![format!("defaults.{field}")], "{what}: {r:?}");
    let after = digest(app).await;
    assert!(changed(&before, &after).is_empty(), "{what}: changed {:?}", changed(&before, &after));
    assert_eq!(stored_uploads(app), files, "{what}: the upload was kept");
}

/// Sends the same upload with an id of the importer's own company: the dry run answers 200 and
/// the import is recorded and queued, so the refusals above are about the ids, not the shape.
async fn expect_defaults_accepted(app: &TestApp, s: &Session, object: &str, defaults: &Value, case: &str) {
    let payload = import_with_defaults(object, defaults);
    let r = send(app, &Method::POST, &s.path("data/validate"), Some(&s.token), &payload).await;
    assert_eq!(r.status, StatusCode::OK, "[{}] {case} (dry run): {r:?}", app.backend);
    let r = send(app, &Method::POST, &s.path("data/import"), Some(&s.token), &payload).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "[{}] {case} (import): {r:?}", app.backend);
    assert!(r.body["job_id"].is_string(), "[{}] {case}: the import is queued: {r:?}", app.backend);
    let id = id_of(&r);
    let stored = app.count(&format!("SELECT COUNT(*) FROM imports WHERE id = '{id}' AND company_id = '{}'", s.company_id)).await;
    assert_eq!(stored, 1, "[{}] {case}", app.backend);
}

/// An import whose defaults name another company's user or record would fail on every row
/// when it runs; it is refused at upload and at dry run instead (422 naming the default),
/// storing nothing. Every user and reference field of every object is tried.
#[tokio::test]
async fn import_defaults_naming_another_companys_user_or_record_are_refused_at_upload() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let s = &a.admin;
        // (object, defaults with B's id, the same with A's, the field named)
        let mut cases: Vec<(&str, Value, Value, String)> = Vec::new();
        for object in corvid_core::objects() {
            for f in object.fields.iter().filter(|f| !f.read_only) {
                let (name, o) = (f.name.clone(), object.name.as_str());
                match &f.kind {
                    corvid_core::meta::FieldKind::User => {
                        cases.push((o, json!({name.clone(): b.admin.user_id}), json!({name.clone(): a.rep.user_id}), name));
                    }
                    // A task's related record: with the related object given, and without
                    // (then any of the company's records will do, and B's is none of them).
                    corvid_core::meta::FieldKind::Reference { object: target } if target == "*" => {
                        cases.push((
                            o,
                            json!({"related_object": "leads", name.clone(): b.id("leads")}),
                            json!({"related_object": "leads", name.clone(): a.id("leads")}),
                            name.clone(),
                        ));
                        cases.push((o, json!({name.clone(): b.id("deals")}), json!({name.clone(): a.id("deals")}), name));
                    }
                    corvid_core::meta::FieldKind::Reference { object: target } => {
                        cases.push((o, json!({name.clone(): b.id(target)}), json!({name.clone(): a.id(target)}), name));
                    }
                    _ => {}
                }
            }
        }
        assert!(cases.len() >= 15, "every user and reference field is tried: {}", cases.len());
        for (object, theirs, mine, field) in &cases {
            let payload = import_with_defaults(object, theirs);
            for endpoint in ["data/import", "data/validate"] {
                expect_defaults_refused(&app, s, endpoint, &payload, 422, field, &format!("{object} defaults {theirs}")).await;
            }
            expect_defaults_accepted(&app, s, object, mine, &format!("{object} defaults {mine}")).await;
        }
        // A's own record once deleted, and a member once deactivated, are refused the same way
        // (accounts are only deactivated, and stay valid references).
        let r = app.delete(s, &s.path(&format!("contacts/{}", a.id("contacts2")))).await;
        assert!(r.status.is_success(), "{r:?}");
        let r = app.patch(s, &s.path(&format!("members/{}", a.ro.user_id)), json!({"is_active": false})).await;
        assert!(r.status.is_success(), "{r:?}");
        for (object, defaults, field) in [
            ("contacts", json!({"reports_to_id": a.id("contacts2")}), "reports_to_id"),
            ("leads", json!({"owner_id": a.ro.user_id}), "owner_id"),
        ] {
            let payload = import_with_defaults(object, &defaults);
            for endpoint in ["data/import", "data/validate"] {
                expect_defaults_refused(&app, s, endpoint, &payload, 422, field, &format!("{object} defaults {defaults}")).await;
            }
        }
        eprintln!("[{}] import defaults naming another company: {} cases", app.backend, cases.len());
    }
}

/// A default owner the importer may not import for is refused at upload and at dry run (403
/// naming the default), storing nothing: a Manager imports for the team, and with the
/// import scope narrowed to "own", for themself only.
#[tokio::test]
async fn import_default_owners_outside_the_import_scope_are_refused_at_upload() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let m = &a.manager;
        for endpoint in ["data/import", "data/validate"] {
            for (object, field) in [("leads", "owner_id"), ("deals", "owner_id"), ("tasks", "assignee_id"), ("activities", "user_id")] {
                let payload = import_with_defaults(object, &json!({field: a.admin.user_id}));
                expect_defaults_refused(&app, m, endpoint, &payload, 403, field, &format!("manager, {object} {field} = the admin")).await;
            }
            let payload = import_with_defaults("leads", &json!({"owner_id": a.rep.user_id}));
            expect_defaults_refused(&app, m, endpoint, &payload, 403, "owner_id", "manager, a rep outside the team").await;
            // Another company's user is not a member at all: that is the answer, whatever the scope.
            let payload = import_with_defaults("leads", &json!({"owner_id": b.admin.user_id}));
            expect_defaults_refused(&app, m, endpoint, &payload, 422, "owner_id", "manager, B's admin").await;
        }
        // Within the scope: the manager, and the rep once in the manager's reporting line;
        // an Admin imports for anyone.
        expect_defaults_accepted(&app, m, "leads", &json!({"owner_id": m.user_id}), "manager for themself").await;
        app.reports_to(&a.rep, m).await;
        expect_defaults_accepted(&app, m, "leads", &json!({"owner_id": a.rep.user_id}), "manager for a report").await;
        expect_defaults_accepted(&app, m, "tasks", &json!({"assignee_id": a.rep.user_id}), "manager, a task for a report").await;
        expect_defaults_accepted(&app, &a.admin, "leads", &json!({"owner_id": a.manager.user_id}), "admin for the manager").await;
        // Narrowed to "own": the report is now outside it.
        let r = app.patch(&a.admin, &a.admin.path("roles/manager"), json!({"permissions": {"leads": {"import": "own"}}})).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["permissions"]["leads"]["import"], "own", "{r:?}");
        for endpoint in ["data/import", "data/validate"] {
            let payload = import_with_defaults("leads", &json!({"owner_id": a.rep.user_id}));
            expect_defaults_refused(&app, m, endpoint, &payload, 403, "owner_id", "manager (own), a report").await;
        }
        expect_defaults_accepted(&app, m, "leads", &json!({"owner_id": m.user_id}), "manager (own) for themself").await;
    }
}

// ---------------------------------------------------------------------------------------
// Tokens and password guessing
// ---------------------------------------------------------------------------------------

mod tokens {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use serde_json::Value;

    pub fn parts(token: &str) -> (Value, Value, String) {
        let p: Vec<&str> = token.split('.').collect();
        let h = serde_json::from_slice(&B64.decode(p[0]).expect("b64")).expect("header");
        let c = serde_json::from_slice(&B64.decode(p[1]).expect("b64")).expect("claims");
        (h, c, p[2].to_string())
    }

    /// The token with its claims replaced and its signature kept.
    pub fn tampered(token: &str, claims: &Value) -> String {
        let p: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", p[0], B64.encode(claims.to_string()), p[2])
    }

    pub fn signed(header: &Value, claims: &Value, secret: &[u8]) -> String {
        let h = B64.encode(header.to_string());
        let c = B64.encode(claims.to_string());
        let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("key");
        m.update(format!("{h}.{c}").as_bytes());
        format!("{h}.{c}.{}", B64.encode(m.finalize().into_bytes()))
    }
}

#[tokio::test]
async fn forged_tampered_and_orphaned_tokens_are_refused() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let b = seed(&app, "b").await;
        let (h, c, _) = tokens::parts(&a.ro.token);
        let mut variants: Vec<(&str, String)> = Vec::new();
        // Claims a client might wish it had; edge.rs covers alg none, other keys, unknown
        // key ids, a changed subject and expiry.
        for (what, key, value) in [
            ("company claim", "company_id", json!(b.admin.company_id)),
            ("role claim", "role", json!("admin")),
            ("admin flag", "admin", json!(true)),
            ("another session", "sid", json!(tokens::parts(&a.admin.token).1["sid"])),
            ("a later expiry", "exp", json!(chrono::Utc::now().timestamp() + 86_400 * 365)),
            ("an older issue time", "iat", json!(0)),
        ] {
            let mut claims = c.clone();
            claims[key] = value;
            variants.push((what, tokens::tampered(&a.ro.token, &claims)));
        }
        // Well signed with a wrong key that merely looks right.
        variants.push(("the test secret with a suffix", tokens::signed(&h, &c, b"test-secret ")));
        variants.push(("an empty key", tokens::signed(&h, &c, b"")));
        variants.push((
            "a key id of another algorithm",
            tokens::signed(&json!({"alg": "HS256", "kid": "../../etc/passwd"}), &c, b"test-secret"),
        ));
        variants.push(("a key id of another algorithm", tokens::signed(&json!({"alg": "HS256", "kid": "' OR 1=1--"}), &c, b"test-secret")));
        variants.push(("the refresh token", a.ro.refresh.clone()));
        variants.push(("an API token id", format!("cvd_{}", a.id("token"))));
        variants.push(("two tokens", format!("{} {}", a.ro.token, a.admin.token)));
        let ops: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, "/api/v1/me".into(), None),
            (Method::GET, a.admin.path("leads"), None),
            (Method::GET, b.admin.path("leads"), None),
            (Method::POST, a.admin.path("leads"), Some(json!({"last_name": "Forged"}))),
            (Method::PATCH, a.admin.path(&format!("members/{}", a.ro.user_id)), Some(json!({"role": "admin"}))),
        ];
        let before = digest(&app).await;
        for (what, token) in &variants {
            for (m, p, body) in &ops {
                let r = app.call(m.clone(), p, Some(token), body.clone(), &[]).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "[{}] {what}: {m} {p}: {r:?}", app.backend);
                assert!(is_problem(&r));
            }
        }
        assert!(changed(&before, &digest(&app).await).is_empty());
        // A valid token, correctly re-signed, still works (the control).
        let control = tokens::signed(&h, &c, b"test-secret");
        assert_eq!(app.call(Method::GET, "/api/v1/me", Some(&control), None, &[]).await.status, StatusCode::OK);

        // A member whose membership was ended: still signed in (they may belong elsewhere),
        // but the company does not exist for them on any route.
        let pat =
            app.post(&a.rep, "/api/v1/me/tokens", json!({"name": "rep token"})).await.body["token"].as_str().expect("pat").to_string();
        let r = app.delete(&a.admin, &a.admin.path(&format!("members/{}", a.rep.user_id))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let mut refused = 0;
        for op in operations().iter().filter(|op| op.company_scoped()) {
            let path = fill(op, &a, &a, &a);
            for token in [a.rep.token.as_str(), pat.as_str()] {
                expect_refused(&app, op, &path, Some(token), &body_for(op, &a), 404, "deactivated member").await;
                refused += 1;
            }
        }
        assert_eq!(app.get(&a.rep, "/api/v1/me").await.status, StatusCode::OK);

        // A deactivated user: nothing works, not even refreshing or an API token.
        let ro_pat =
            app.post(&a.ro, "/api/v1/me/tokens", json!({"name": "ro token"})).await.body["token"].as_str().expect("pat").to_string();
        let off = if app.backend == "postgres" { "false" } else { "0" };
        app.db
            .execute(&Q::new(format!("UPDATE users SET is_active = {off} WHERE id = '{}'", a.ro.user_id)))
            .await
            .expect("deactivate user");
        let before = digest(&app).await;
        for (m, p, body) in &ops {
            for token in [&a.ro.token, &ro_pat] {
                let r = app.call(m.clone(), p, Some(token), body.clone(), &[]).await;
                assert_eq!(r.status, StatusCode::UNAUTHORIZED, "[{}] deactivated user: {m} {p}: {r:?}", app.backend);
            }
        }
        let r = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": a.ro.refresh})), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
        let r = app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": a.ro.email, "password": PASSWORD})), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
        // What may change: the failed sign-in is counted, and the refresh ended the session.
        let diff = changed(&before, &digest(&app).await);
        assert!(diff.iter().all(|t| t.starts_with("login_failures") || t.starts_with("refresh_tokens")), "{diff:?}");
        let live = format!("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = '{}' AND revoked_at IS NULL", a.ro.user_id);
        assert_eq!(app.count(&live).await, 0, "[{}] the deactivated user keeps no session", app.backend);
        eprintln!("[{}] tokens: {} forged × {} routes, {refused} deactivated-member cases", app.backend, variants.len(), ops.len());
    }
}

async fn login(app: &TestApp, email: &str, password: &str, headers: &[(&str, &str)]) -> Resp {
    app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": password})), headers).await
}

/// What the lock-out waits grow to: the lock is lifted in the database between rounds (as
/// time passing would), and each further failure locks for longer.
#[tokio::test]
async fn password_guessing_locks_out_for_longer_and_longer() {
    for app in apps().await {
        let s = app.register("guessed@attack.test", "Guessed Co").await;
        for _ in 0..5 {
            assert_eq!(login(&app, &s.email, "wrong password!", &[]).await.status, StatusCode::UNAUTHORIZED);
        }
        // The lock each failure set, read from the database (Retry-After is rounded down and
        // would depend on how fast the test runs).
        let lock_secs = async || {
            let q = Q::new("SELECT locked_until, updated_at FROM login_failures WHERE key = $1")
                .bind(corvid_core::Value::Text(format!("email:{}", s.email)));
            let row = app.db.fetch_one(&q, &[SqlType::Timestamp, SqlType::Timestamp]).await.expect("lock").expect("a lock row");
            (row.timestamp(0).expect("locked_until") - row.timestamp(1).expect("updated_at")).num_seconds()
        };
        let mut locks = Vec::new();
        for round in 0..4 {
            locks.push(lock_secs().await);
            let r = login(&app, &s.email, "wrong password!", &[]).await;
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "[{}] round {round}: {r:?}", app.backend);
            assert!(is_problem(&r));
            let wait: i64 = r.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).expect("retry-after");
            assert!((1..=locks[round]).contains(&wait), "[{}] Retry-After {wait} for a lock of {}s", app.backend, locks[round]);
            // Even the right password waits.
            assert_eq!(login(&app, &s.email, PASSWORD, &[]).await.status, StatusCode::TOO_MANY_REQUESTS);
            // The wait is over: one more wrong guess locks again, for longer.
            app.db.execute(&Q::new("UPDATE login_failures SET locked_until = NULL")).await.expect("time passes");
            assert_eq!(login(&app, &s.email, "wrong password!", &[]).await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(locks, vec![1, 2, 4, 8], "[{}] the lock doubles with each failure", app.backend);
        // The web form shares the lock.
        let form = serde_urlencoded::to_string([("email", s.email.as_str()), ("password", PASSWORD)]).expect("form");
        let r = app
            .raw(
                Request::builder()
                    .method(Method::POST)
                    .uri("/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(form))
                    .expect("req"),
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "[{}] web sign-in: {r:?}", app.backend);
        assert!(r.headers.get("set-cookie").is_none(), "no session while locked");
        // After the lock, the right password works and clears the count.
        app.db.execute(&Q::new("UPDATE login_failures SET locked_until = NULL")).await.expect("time passes");
        assert_eq!(login(&app, &s.email, PASSWORD, &[]).await.status, StatusCode::OK);
        assert_eq!(app.count("SELECT COUNT(*) FROM login_failures").await, 0);
    }
}

/// Guessing across many accounts from one address locks the address; a forged
/// X-Forwarded-For does not give a fresh one, and unknown emails are treated exactly like
/// known ones (no account discovery).
#[tokio::test]
async fn password_spraying_locks_the_address_and_reveals_no_accounts() {
    for app in apps().await {
        let s = app.register("sprayed@attack.test", "Sprayed Co").await;
        let known = login(&app, &s.email, "wrong password!", &[]).await;
        let unknown = login(&app, "nobody@attack.test", "wrong password!", &[]).await;
        assert_eq!((known.status, &known.body["detail"]), (unknown.status, &unknown.body["detail"]), "no account discovery");
        for i in 0..3 {
            let xff = format!("203.0.113.{i}");
            let r = login(&app, &format!("user{i}@attack.test"), "Winter2026!", &[("x-forwarded-for", &xff), ("x-real-ip", &xff)]).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
        }
        // Five failures from this address in all: a different, correct account is locked out too.
        let r = login(&app, &s.email, PASSWORD, &[("x-forwarded-for", "198.51.100.7")]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "[{}] {r:?}", app.backend);
        let r = login(&app, "other-unknown@attack.test", "x", &[("x-forwarded-for", "198.51.100.8")]).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "[{}] {r:?}", app.backend);
        // A password reset request says the same thing for every address.
        let r1 = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": s.email})), &[]).await;
        let r2 = app.call(Method::POST, "/api/v1/auth/password-reset", None, Some(json!({"email": "nobody@attack.test"})), &[]).await;
        assert_eq!((r1.status, &r1.body), (r2.status, &r2.body));
    }
}

// ---------------------------------------------------------------------------------------
// Oversized, deeply nested and hostile bodies; path traversal
// ---------------------------------------------------------------------------------------

/// The server still answers, signed in and not.
async fn still_serving(app: &TestApp, s: &Session, after: &str) {
    assert_eq!(app.call(Method::GET, "/healthz", None, None, &[]).await.status, StatusCode::OK, "[{}] after {after}", app.backend);
    assert_eq!(app.get(s, &s.path("leads")).await.status, StatusCode::OK, "[{}] after {after}", app.backend);
}

#[tokio::test]
async fn oversized_and_deeply_nested_bodies_are_refused_and_the_server_carries_on() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let s = &a.admin;
        let lead = a.id("leads");
        let routes: Vec<(Method, String, Option<&str>)> = vec![
            (Method::POST, s.path("leads"), Some(&s.token)),
            (Method::PATCH, s.path(&format!("leads/{lead}")), Some(&s.token)),
            (Method::POST, s.path("leads/bulk"), Some(&s.token)),
            (Method::POST, s.path("leads/search"), Some(&s.token)),
            (Method::POST, s.path("leads/merge"), Some(&s.token)),
            (Method::POST, s.path(&format!("leads/{lead}/convert")), Some(&s.token)),
            (Method::POST, s.path(&format!("leads/{lead}/qualify")), Some(&s.token)),
            (Method::PUT, s.path("data/conversion/rules"), Some(&s.token)),
            (Method::POST, s.path("members"), Some(&s.token)),
            (Method::POST, s.path("scoring/rule-sets"), Some(&s.token)),
            (Method::POST, s.path("assignment/preview"), Some(&s.token)),
            (Method::POST, s.path("data/import-templates"), Some(&s.token)),
            (Method::POST, "/api/v1/auth/register".into(), None),
            (Method::POST, "/api/v1/auth/login".into(), None),
        ];
        let ten_mb = format!("{{\"last_name\": \"{}\"}}", "x".repeat(10 * 1024 * 1024));
        let deep_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let deep_field = format!("{{\"last_name\": \"x\", \"tags\": {}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let many_keys = format!("{{{}}}", (0..60_000).map(|i| format!("\"k{i}\":1")).collect::<Vec<_>>().join(","));
        let mut cases = 0;
        for (method, path, token) in &routes {
            for (what, body, want) in [
                ("10 MB", &ten_mb, &[413u16][..]),
                ("10,000-deep arrays", &deep_arrays, &[400, 422][..]),
                ("10,000-deep objects", &deep_objects, &[400, 422][..]),
                ("a 10,000-deep field", &deep_field, &[400, 422][..]),
                ("60,000 keys", &many_keys, &[400, 422, 428][..]),
            ] {
                let before = digest(&app).await;
                let mut b = Request::builder().method(method.clone()).uri(path.as_str()).header("content-type", "application/json");
                if let Some(t) = token {
                    b = b.header("authorization", format!("Bearer {t}"));
                }
                let r = app.raw(b.body(Body::from(body.clone())).expect("req")).await;
                assert!(want.contains(&r.status.as_u16()), "[{}] {what} to {method} {path}: {r:?}", app.backend);
                assert!(is_problem(&r), "[{}] {what} to {method} {path}: {r:?}", app.backend);
                assert!(changed(&before, &digest(&app).await).is_empty(), "[{}] {what} to {path}", app.backend);
                still_serving(&app, s, what).await;
                cases += 1;
            }
        }
        // An upload larger than the import limit is refused while streaming, and leaves no file.
        let huge_query = format!("leads?q={}", "a".repeat(20 * 1024));
        let r = app.get(s, &s.path(&huge_query)).await;
        assert!(r.status.is_client_error() && is_problem(&r), "[{}] a 20 KB query string: {r:?}", app.backend);
        still_serving(&app, s, "a long query string").await;
        eprintln!("[{}] oversized and nested bodies: {cases} cases", app.backend);
    }
}

/// Every string of every JSON body the walk sends, one at a time, made hostile: a NUL
/// character, 100,000 characters, and markup. The answer may be anything but a 5xx.
#[tokio::test]
async fn hostile_strings_in_every_body_field_are_never_a_server_error() {
    fn leaves(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::String(s) if uuid::Uuid::parse_str(s).is_err() => out.push(path),
            Value::Object(m) => {
                for (k, x) in m {
                    let mut p = path.clone();
                    p.push(k.clone());
                    leaves(x, p, out);
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(i.to_string());
                    leaves(x, p, out);
                }
            }
            _ => {}
        }
    }
    fn set(v: &mut Value, path: &[String], to: Value) {
        let mut cur = v;
        for k in path {
            cur = match cur {
                Value::Array(items) => &mut items[k.parse::<usize>().expect("index")],
                other => &mut other[k.as_str()],
            };
        }
        *cur = to;
    }
    let long = "y".repeat(100_000);
    let hostile = [json!("x\u{0}y"), json!(long), json!("<script>alert(1)</script>"), json!("\u{202e}gnp.exe"), json!("\u{feff}")];
    for app in apps().await {
        let a = seed(&app, "a").await;
        let mut cases = 0;
        for op in operations() {
            if PUBLIC.iter().any(|(id, _)| *id == op.id) || !op.company_scoped() && op.id != "createApiToken" && op.id != "createCompany" {
                continue;
            }
            let Payload::Json(body) = body_for(&op, &a) else { continue };
            let mut paths = Vec::new();
            leaves(&body, Vec::new(), &mut paths);
            for p in paths {
                for h in &hostile {
                    let mut b = body.clone();
                    set(&mut b, &p, h.clone());
                    let path = fill(&op, &a, &a, &a);
                    let r = send(&app, &op.method, &path, Some(&a.admin.token), &Payload::Json(b.clone())).await;
                    assert!(
                        r.status.as_u16() < 500,
                        "[{}] {} {path} with {}={:?}: {r:?}",
                        app.backend,
                        op.id,
                        p.join("."),
                        h.to_string().chars().take(40).collect::<String>()
                    );
                    cases += 1;
                }
            }
        }
        still_serving(&app, &a.admin, "hostile strings").await;
        eprintln!("[{}] hostile strings: {cases} cases", app.backend);
    }
}

#[tokio::test]
async fn no_path_reaches_files_outside_the_app() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let s = &a.admin;
        let web = app.web_sign_in(&s.email).await;
        let c = &s.company_id;
        let leaks = ["root:x:0:0", "[package]", "[workspace]", "pub fn ", "PRAGMA", "CREATE TABLE"];
        let mut cases = 0;
        for path in [
            "/static/../../etc/passwd".to_string(),
            "/static/..%2f..%2f..%2fetc%2fpasswd".into(),
            "/assets/../../etc/passwd".into(),
            "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd".into(),
            "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd".into(),
            "/assets/%2e%2e%2f%2e%2e%2fCargo.toml".into(),
            "/assets/..%5c..%5cCargo.toml".into(),
            "/assets/....%2f%2f....%2f%2fCargo.toml".into(),
            "/assets/app.css%00.html".into(),
            "/assets/%252e%252e%252fCargo.toml".into(),
            "/assets/..%c0%af..%c0%afetc%c0%afpasswd".into(),
            "/assets/%2fetc%2fpasswd".into(),
            "/assets//etc/passwd".into(),
            "/api/docs/..%2f..%2fsrc%2flib.rs".into(),
            "/api/docs/%2e%2e%2f%2e%2e%2fCargo.toml".into(),
            "/api/docs/%2fetc%2fpasswd".into(),
            format!("/api/v1/companies/{c}/..%2f..%2f..%2fetc%2fpasswd"),
            format!("/api/v1/companies/{c}/leads/..%2f..%2f..%2fetc%2fpasswd"),
            format!("/api/v1/companies/{c}/metadata/objects/..%2f..%2fCargo.toml"),
            format!("/api/v1/companies/{c}/data/import/..%2f..%2fcorvid.db/errors.csv"),
            format!("/app/{c}/..%2f..%2f..%2fetc%2fpasswd"),
            format!("/app/{c}/leads/..%2f..%2fetc%2fpasswd"),
            format!("/app/{c}/imports/..%2f..%2fcorvid.db"),
            "/..%2f..%2f..%2fetc%2fpasswd".into(),
            "/%2e%2e/%2e%2e/etc/passwd".into(),
        ] {
            for r in [app.get(s, &path).await, app.web_get(&web, &path, &[]).await] {
                assert!(r.status.is_client_error() || r.status.is_redirection(), "[{}] {path}: {r:?}", app.backend);
                for leak in leaks {
                    assert!(!r.text.contains(leak), "[{}] {path} served a file: {r:?}", app.backend);
                }
                cases += 1;
            }
        }
        // Upload file names are labels: the stored file gets a generated name in the imports
        // folder, whatever the client calls it.
        let outside = app.data.path().parent().expect("parent").join(format!("escaped-{}.csv", uuid::Uuid::now_v7().simple()));
        let escape = format!("../../{}", outside.file_name().and_then(|n| n.to_str()).expect("name"));
        for name in [
            escape.clone(),
            format!("..\\..\\{}", outside.file_name().and_then(|n| n.to_str()).expect("name")),
            outside.display().to_string(),
            "/etc/passwd".into(),
            "%2e%2e%2f%2e%2e%2fescaped.csv".into(),
            "C:\\Windows\\System32\\escaped.csv".into(),
            "leads.csv\u{0}.exe".into(),
        ] {
            for route in ["data/import", "data/validate"] {
                let r =
                    send(&app, &Method::POST, &s.path(route), Some(&s.token), &multipart(&[("object", "leads")], &name, CSV.as_bytes()))
                        .await;
                assert!(r.status.as_u16() < 500, "[{}] {route} {name:?}: {r:?}", app.backend);
                if let Some(label) = r.body["file_name"].as_str() {
                    assert!(
                        !label.contains('/') && !label.contains('\\') && !label.contains('\0'),
                        "[{}] stored label {label:?}",
                        app.backend
                    );
                }
                cases += 1;
            }
        }
        assert!(!outside.exists(), "a file was written outside the data folder");
        let stored: Vec<String> = std::fs::read_dir(app.data.path().join("imports"))
            .expect("imports folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert!(stored.iter().all(|n| n.chars().all(|c| c.is_ascii_hexdigit())), "[{}] stored names {stored:?}", app.backend);
        let data_entries: Vec<String> = std::fs::read_dir(app.data.path())
            .expect("data")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(data_entries, vec!["imports".to_string()], "[{}] only the imports folder: {data_entries:?}", app.backend);
        // Download names are the server's own.
        let r = app.get(s, &s.path("data/export?object=leads&filename=..%2f..%2fetc%2fpasswd")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "[{}] {r:?}", app.backend);
        assert!(errors_name(&r, "filename"), "{r:?}");
        for (path, want) in [
            (s.path("data/export?object=leads"), "leads-"),
            (s.path(&format!("data/import/{}/errors.csv", a.id("import"))), "import-"),
            (s.path(&format!("privacy/subjects/leads/{}/export", a.id("leads"))), "lead-"),
        ] {
            let r = app.get(s, &path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
            let cd = r.headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let name = cd.split("filename=\"").nth(1).and_then(|n| n.split('"').next()).unwrap_or("");
            assert!(
                name.starts_with(want) && !name.contains("..") && !name.contains('/') && !name.contains('\\'),
                "[{}] {cd}",
                app.backend
            );
            cases += 1;
        }
        eprintln!("[{}] path traversal: {cases} cases", app.backend);
    }
}

// ---------------------------------------------------------------------------------------
// Formula injection in exports
// ---------------------------------------------------------------------------------------

const FORMULAS: &[&str] =
    &["=1+1", "+1+1", "-1+1", "@SUM(1,1)", "\t=1+1", "\r=1+1", "=HYPERLINK(\"http://evil.example\",\"x\")", "=cmd|' /C calc'!A0"];

fn unzip(bytes: &[u8], name: &str) -> String {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("xlsx is a zip");
    let mut f = z.by_name(name).unwrap_or_else(|_| panic!("{name} in the xlsx"));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut f, &mut out).expect("utf-8");
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[tokio::test]
async fn exports_neutralise_every_formula_prefix_in_csv_and_xlsx() {
    for app in apps().await {
        let s = app.register("formula@attack.test", "Formula Co").await;
        let r = app.post(&s, &s.path("metadata/objects/leads/fields"), json!({"name": "note", "type": "text"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let mut stored = Vec::new();
        for (i, f) in FORMULAS.iter().enumerate() {
            let r = app
                .post(
                    &s,
                    &s.path("leads"),
                    json!({"first_name": f, "last_name": format!("Formula{i}"), "notes": f, "job_title": f, "tags": [f], "cf_note": f}),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{f:?}: {r:?}");
            // What the API kept (text fields may be trimmed) is what must come out neutralised.
            stored.push((
                r.body["first_name"].as_str().unwrap_or_default().to_string(),
                r.body["notes"].as_str().unwrap_or_default().to_string(),
            ));
        }
        let web = app.web_sign_in(&s.email).await;
        let api_csv = app.get(&s, &s.path("data/export?object=leads&format=csv")).await;
        let web_csv = app.web_get(&web, &format!("/app/{}/leads/export?format=csv", s.company_id), &[]).await;
        for (what, r) in [("API", &api_csv), ("web", &web_csv)] {
            assert_eq!(r.status, StatusCode::OK, "{what}: {r:?}");
            let mut reader = csv::Reader::from_reader(r.text.as_bytes());
            let headers = reader.headers().expect("headers").clone();
            let rows: Vec<csv::StringRecord> = reader.records().map(|x| x.expect("row")).collect();
            assert_eq!(rows.len(), FORMULAS.len());
            for row in &rows {
                for (h, cell) in headers.iter().zip(row.iter()) {
                    if let Some(c) = cell.chars().next() {
                        assert!(!matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'), "[{}] {what} CSV {h} = {cell:?}", app.backend);
                    }
                }
            }
            for (first, notes) in &stored {
                for (col, v) in [("first_name", first), ("notes", notes), ("job_title", first), ("cf_note", first)] {
                    let i = headers.iter().position(|h| h == col).expect("column");
                    assert!(rows.iter().any(|r| r[i] == format!("'{v}")), "[{}] {what} CSV {col} {v:?} not neutralised", app.backend);
                }
                let tags = headers.iter().position(|h| h == "tags").expect("tags");
                assert!(rows.iter().any(|r| r[tags].starts_with('\'')), "[{}] {what} tags", app.backend);
            }
        }
        let xlsx_requests = [
            (
                "API",
                Request::builder()
                    .uri(s.path("data/export?object=leads&format=xlsx"))
                    .header("authorization", format!("Bearer {}", s.token)),
            ),
            ("web", Request::builder().uri(format!("/app/{}/leads/export?format=xlsx", s.company_id)).header("cookie", &web.cookie)),
        ];
        for (what, req) in xlsx_requests {
            let bytes = raw_bytes(&app, req.body(Body::empty()).expect("req")).await;
            assert!(
                bytes.starts_with(b"PK"),
                "[{}] {what}: not an xlsx: {}",
                app.backend,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
            let sheet = unzip(&bytes, "xl/worksheets/sheet1.xml");
            let shared = {
                let z = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).expect("zip");
                if z.file_names().any(|n| n.is_ok_and(|n| n == "xl/sharedStrings.xml")) {
                    unzip(&bytes, "xl/sharedStrings.xml")
                } else {
                    String::new()
                }
            };
            assert!(!sheet.contains("<f>") && !sheet.contains("<f "), "[{}] {what} XLSX has formulas", app.backend);
            for (first, _) in &stored {
                let want = xml_escape(&format!("'{first}"));
                let want = want.replace('\t', "&#9;").replace('\r', "&#13;");
                let plain = want.replace("&quot;", "\"");
                assert!(
                    sheet.contains(&want) || shared.contains(&want) || sheet.contains(&plain) || shared.contains(&plain),
                    "[{}] {what} XLSX lacks {:?}",
                    app.backend,
                    format!("'{first}")
                );
            }
        }
    }
}

async fn raw_bytes(app: &TestApp, req: Request<Body>) -> Vec<u8> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = app.router.clone().oneshot(req).await.expect("infallible");
    resp.into_body().collect().await.expect("body").to_bytes().to_vec()
}

/// The failed rows of an import come back as CSV with their original cells, headings
/// included: neutralised the same way.
#[tokio::test]
async fn import_error_reports_neutralise_formulas() {
    use corvid_server::jobs::{Registry, Runtime};
    for app in apps().await {
        let s = app.register("errors@attack.test", "Errors Co").await;
        let runtime = Runtime::start(app.db.clone(), Registry::builtin(), 1);
        let csv = "Last Name,Email,=SUM(1;1)\n=cmd|' /C calc'!A0,not-an-email,@x\n+Plus,also bad,-2+3\n";
        let r = send(
            &app,
            &Method::POST,
            &s.path("data/import"),
            Some(&s.token),
            &multipart(&[("object", "leads"), ("mapping", r#"["last_name","email",null]"#)], "f.csv", csv.as_bytes()),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
        let id = id_of(&r);
        let mut done = Value::Null;
        for _ in 0..400 {
            done = app.get(&s, &s.path(&format!("data/import/{id}"))).await.body;
            if matches!(done["state"].as_str(), Some("succeeded" | "failed")) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(done["failed"], 2, "{done}");
        runtime.shutdown().await;
        let r = app.get(&s, &s.path(&format!("data/import/{id}/errors.csv"))).await;
        assert_eq!(r.status, StatusCode::OK);
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(r.text.as_bytes());
        let mut cells = 0;
        for row in reader.records() {
            for cell in row.expect("row").iter() {
                if let Some(c) = cell.chars().next() {
                    assert!(!matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'), "[{}] {cell:?} in {}", app.backend, r.text);
                }
                cells += 1;
            }
        }
        assert!(
            r.text.contains("'=SUM(1;1)") && r.text.contains("'=cmd") && r.text.contains("'+Plus") && r.text.contains("'-2+3"),
            "{}",
            r.text
        );
        assert!(cells > 6);
    }
}

/// The sign-in, sign-up and password forms are open to anyone: hostile text in them is a
/// page with a message, never a server error.
#[tokio::test]
async fn public_forms_with_hostile_text_are_never_a_server_error() {
    for app in apps().await {
        app.register("forms@attack.test", "Forms Co").await;
        let mut cases = 0;
        for value in ["x\u{0}y", "forms@attack.test\u{0}", "' OR 1=1--", &"z".repeat(100_000), "\u{202e}"] {
            for (path, fields) in [
                ("/login", vec![("email", value), ("password", value)]),
                ("/login", vec![("email", "forms@attack.test"), ("password", value)]),
                ("/register", vec![("email", value), ("password", value), ("name", value), ("company_name", value)]),
                ("/register", vec![("email", "new-forms@attack.test"), ("password", PASSWORD), ("name", value), ("company_name", value)]),
                ("/forgot-password", vec![("email", value)]),
                ("/reset-password", vec![("token", value), ("password", value), ("confirm", value)]),
                ("/login/mfa", vec![("code", value)]),
            ] {
                let body = serde_urlencoded::to_string(&fields).expect("form");
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(path)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body))
                    .expect("req");
                let r = app.raw(req).await;
                assert!(r.status.as_u16() < 500, "[{}] {path} {:?}: {r:?}", app.backend, value.chars().take(20).collect::<String>());
                cases += 1;
            }
        }
        eprintln!("[{}] public forms: {cases} cases", app.backend);
    }
}

/// Signed-in forms too: text with a NUL character is refused before any handler, so no
/// form can turn it into a database error.
#[tokio::test]
async fn signed_in_forms_refuse_nul_characters_and_change_nothing() {
    for app in apps().await {
        let a = seed(&app, "a").await;
        let s = &a.admin;
        let web = app.web_sign_in(&s.email).await;
        let c = &s.company_id;
        let lead = a.id("leads");
        let mut cases = 0;
        for (path, fields) in [
            (
                format!("/app/{c}/settings/members"),
                vec![("email", "p@attack.test"), ("name", "x\u{0}y"), ("role", "sales_rep"), ("password", PASSWORD)],
            ),
            (format!("/app/{c}/settings/fields"), vec![("object", "leads"), ("name", "probe"), ("label", "x\u{0}y"), ("type", "text")]),
            (format!("/app/{c}/leads"), vec![("last_name", "x\u{0}y")]),
            (format!("/app/{c}/leads/views"), vec![("name", "x\u{0}y")]),
            (format!("/app/{c}/leads/{lead}"), vec![("version", "1"), ("job_title", "x\u{0}y")]),
            (format!("/app/{c}/leads/{lead}/log"), vec![("activity_type", "note"), ("title", "x\u{0}y")]),
            (format!("/app/{c}/settings/scoring"), vec![("action", "create_set"), ("name", "x\u{0}y")]),
            ("/profile/tokens".to_string(), vec![("name", "x\u{0}y")]),
            (
                "/profile/password".to_string(),
                vec![("current", PASSWORD), ("password", "new\u{0}password!"), ("confirm", "new\u{0}password!")],
            ),
        ] {
            let before = digest(&app).await;
            let r = app.web_post(&web, &path, &fields, true).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "[{}] {path}: {r:?}", app.backend);
            assert!(changed(&before, &digest(&app).await).is_empty(), "[{}] {path}", app.backend);
            // Without the form's token it is still the CSRF refusal, whatever the text.
            let r = app.web_post(&web, &path, &fields, false).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "[{}] {path}: {r:?}", app.backend);
            cases += 2;
        }
        eprintln!("[{}] signed-in forms: {cases} cases", app.backend);
    }
}
