//! The OpenAPI 3.1 document of the JSON API, and the Swagger UI page that shows it.
//!
//! The document is built in code. The fixed routes are described here one by one; the object
//! routes (`/api/v1/companies/{company_id}/{object}/…`) are generated for every object from
//! the metadata in `corvid_core`, so each object gets exact record, input, filter, sort and
//! bulk schemas (`Lead`, `LeadInput`, `LeadCreate`, `LeadFilter`, …). The tests below check
//! the document against the router in `lib.rs`, so a new route without documentation fails.
//!
//! Swagger UI is vendored from npm into `assets/swagger-ui/` (version in `VERSION`) and
//! embedded in the binary. The page has no inline script or style, so it runs under a
//! Content-Security-Policy without `'unsafe-inline'`.

use crate::error::ApiError;
use crate::extract::Params;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use corvid_core::meta::{DeleteMode, EnumOption, Field, FieldKind, ObjectDef, OBJECT_NAMES, SYSTEM_COLUMNS};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Prefix of every company-scoped route (the `c` in `lib.rs`'s router).
const C: &str = "/api/v1/companies/{company_id}";

/// API names of custom fields (`corvid_core::validate::custom_field_api_name`).
const CUSTOM_FIELD_PATTERN: &str = "^cf_[a-z][a-z0-9_]{0,56}$";
/// Money as the API writes it: a decimal string in major units.
const MONEY_PATTERN: &str = "^[0-9]+(\\.[0-9]{1,3})?$";
const GSTIN_PATTERN: &str = "^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$";
const E164_PATTERN: &str = "^\\+[1-9][0-9]{7,14}$";

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// `GET /api/openapi.json`: the document, built once per process.
pub async fn json() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let body: &'static str = DOC.get_or_init(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// The exact swagger-ui-dist version vendored in `assets/swagger-ui/`.
pub fn swagger_ui_version() -> &'static str {
    include_str!("../assets/swagger-ui/VERSION").trim()
}

/// A file of the docs page, embedded at compile time.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// Everything `/api/docs/{file}` can serve. Nothing else is ever read: there is no
/// filesystem access at run time, so no path can reach outside this list.
const ASSETS: &[Asset] = &[
    Asset { name: "swagger-ui.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css") },
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset { name: "init.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../assets/swagger-ui/init.js") },
];

/// Policy of the docs page. Swagger UI 5 creates no `<style>` elements and no `style`
/// attributes (React writes styles through the CSSOM, which CSP allows), so styles need no
/// `'unsafe-inline'`; its CSS draws icons with `data:` images; it fetches the document and
/// "Try it out" requests from this origin only.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Assets are served with a year-long cache; the page links them with a content hash in the
/// query string, so a new build is fetched at once.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

fn asset_tag(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..6])
}

fn asset_url(name: &str) -> String {
    let tag = ASSETS.iter().find(|a| a.name == name).map(|a| asset_tag(a.bytes)).unwrap_or_default();
    format!("/api/docs/{name}?v={tag}")
}

fn docs_html() -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Corvid API</title>\n\
         <link rel=\"stylesheet\" href=\"{css}\">\n\
         <script src=\"{bundle}\" defer></script>\n\
         <script src=\"{init}\" defer></script>\n\
         </head>\n<body>\n\
         <noscript><p>The API reference needs JavaScript. The OpenAPI document itself is at \
         <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p></noscript>\n\
         <div id=\"docs\"></div>\n</body>\n</html>\n",
        css = asset_url("swagger-ui.css"),
        bundle = asset_url("swagger-ui-bundle.js"),
        init = asset_url("init.js"),
    )
}

/// `GET /api/docs`: Swagger UI for the document.
pub async fn docs_page() -> impl IntoResponse {
    static PAGE: OnceLock<String> = OnceLock::new();
    let body: &'static str = PAGE.get_or_init(docs_html);
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, DOCS_CSP)], body)
}

/// `GET /api/docs/{file}`: one of the embedded assets of the docs page, or a 404 problem.
pub async fn docs_asset(p: Params) -> Response {
    let name = p.str("file");
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => ([(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, ASSET_CACHE)], a.bytes).into_response(),
        None => ApiError::NotFound("no such docs file; the docs page is at /api/docs".into()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Small JSON helpers
// ---------------------------------------------------------------------------------------

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn param_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn response_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// Lets a schema also be `null`.
fn nullable(schema: Value) -> Value {
    let Value::Object(mut obj) = schema else { return schema };
    if obj.contains_key("$ref") {
        return json!({ "anyOf": [Value::Object(obj), { "type": "null" }] });
    }
    match obj.get("type").cloned() {
        Some(Value::String(t)) => {
            obj.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(mut types)) => {
            if !types.iter().any(|t| t == "null") {
                types.push("null".into());
            }
            obj.insert("type".into(), Value::Array(types));
        }
        // No type: any JSON value, null included.
        _ => return Value::Object(obj),
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.push(Value::Null);
    }
    Value::Object(obj)
}

/// Adds (or replaces) keys of a JSON object.
fn with(mut schema: Value, extra: Value) -> Value {
    if let (Some(obj), Value::Object(extra)) = (schema.as_object_mut(), extra) {
        for (k, v) in extra {
            obj.insert(k, v);
        }
    }
    schema
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn date_time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn string_max(max: usize) -> Value {
    json!({ "type": "string", "maxLength": max })
}

/// `{"data": [item]}`.
fn data_list(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "properties": { "data": { "type": "array", "items": item } },
    })
}

fn pascal(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn options_text(options: &[EnumOption]) -> String {
    options.iter().map(|o| format!("`{}` ({})", o.value, o.label)).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// The problem responses an operation can give (see `crate::error::ApiError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Problem {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    TooLarge,
    UnsupportedMedia,
    Invalid,
    PreconditionRequired,
    TooManyRequests,
}

use Problem as P;

const ALL_PROBLEMS: &[Problem] = &[
    P::BadRequest,
    P::Unauthorized,
    P::Forbidden,
    P::NotFound,
    P::Conflict,
    P::PreconditionFailed,
    P::TooLarge,
    P::UnsupportedMedia,
    P::Invalid,
    P::PreconditionRequired,
    P::TooManyRequests,
];

impl Problem {
    fn status(self) -> &'static str {
        match self {
            P::BadRequest => "400",
            P::Unauthorized => "401",
            P::Forbidden => "403",
            P::NotFound => "404",
            P::Conflict => "409",
            P::PreconditionFailed => "412",
            P::TooLarge => "413",
            P::UnsupportedMedia => "415",
            P::Invalid => "422",
            P::PreconditionRequired => "428",
            P::TooManyRequests => "429",
        }
    }

    fn component(self) -> &'static str {
        match self {
            P::BadRequest => "BadRequest",
            P::Unauthorized => "Unauthorized",
            P::Forbidden => "Forbidden",
            P::NotFound => "NotFound",
            P::Conflict => "Conflict",
            P::PreconditionFailed => "PreconditionFailed",
            P::TooLarge => "PayloadTooLarge",
            P::UnsupportedMedia => "UnsupportedMediaType",
            P::Invalid => "UnprocessableEntity",
            P::PreconditionRequired => "PreconditionRequired",
            P::TooManyRequests => "TooManyRequests",
        }
    }

    /// (description, example body)
    fn describe(self) -> (&'static str, Value) {
        let ex = |slug: &str, title: &str, status: u16, detail: &str| {
            json!({ "type": format!("/problems/{slug}"), "title": title, "status": status, "detail": detail,
                    "request_id": "0190f7a2c3b47c0e9d1f2a3b4c5d6e7f" })
        };
        match self {
            P::BadRequest => (
                "Malformed request: the body is not JSON, a path id or header is malformed, or the query string cannot be read.",
                ex("malformed", "Malformed request", 400, "the body is not valid JSON: EOF while parsing an object at line 1 column 1"),
            ),
            P::Unauthorized => (
                "No valid credentials: send `Authorization: Bearer <access token or cvd_ API token>`.",
                ex("unauthenticated", "Authentication required", 401, "the access token is not valid (Expired); sign in or refresh it"),
            ),
            P::Forbidden => (
                "Authenticated, but the caller's role does not allow this (Admin-only, or a read-only role writing).",
                ex("forbidden", "Not allowed", 403, "only Admins of this company can do this"),
            ),
            P::NotFound => (
                "No such resource, or the caller is not a member of the company (both give the same answer).",
                ex("not-found", "Not found", 404, "record not found"),
            ),
            P::Conflict => (
                "The request conflicts with the current state (a duplicate, a reused Idempotency-Key, the last Admin, a limit).",
                ex("conflict", "Conflict", 409, "this Idempotency-Key was already used for a different request"),
            ),
            P::PreconditionFailed => (
                "The version sent (If-Match or `version`) is stale; `current_version` says what it is now.",
                with(
                    ex(
                        "stale-version",
                        "Stale version",
                        412,
                        "the record was changed by someone else; it is now at version 4. Reload it and apply your change again",
                    ),
                    json!({ "current_version": 4 }),
                ),
            ),
            P::TooLarge => (
                "The request body is larger than the API accepts (1 MiB).",
                ex("too-large", "Request too large", 413, "the request body is larger than this route accepts"),
            ),
            P::UnsupportedMedia => (
                "The body is not sent as JSON (`Content-Type: application/json`).",
                ex("unsupported-media-type", "Unsupported media type", 415, "send application/json"),
            ),
            P::Invalid => (
                "Well-formed but invalid input; `errors` names each failing field (bulk items as `items[i].field`).",
                with(
                    ex("validation", "Invalid input", 422, "last_name is required; email is not a valid email address"),
                    json!({ "errors": [
                        { "field": "last_name", "reason": "is required" },
                        { "field": "email", "reason": "is not a valid email address" },
                    ] }),
                ),
            ),
            P::PreconditionRequired => (
                "A change needs the version it is based on: send `If-Match: \"<version>\"` or a `version` field.",
                ex(
                    "version-required",
                    "Version required",
                    428,
                    "send the version you are changing, in an If-Match header or a version field",
                ),
            ),
            P::TooManyRequests => (
                "Too many attempts; wait the number of seconds in `Retry-After`.",
                ex("throttled", "Too many requests", 429, "try again in 300 seconds"),
            ),
        }
    }

    fn response(self) -> Value {
        let (description, example) = self.describe();
        let mut r = json!({
            "description": description,
            "content": { "application/problem+json": { "schema": schema_ref("Problem"), "example": example } },
        });
        if self == P::TooManyRequests {
            r["headers"] = json!({ "Retry-After": header_ref("RetryAfter") });
        }
        r
    }
}

/// Errors of a JSON request body: unreadable JSON, too large, not JSON, wrong shape.
const BODY: &[Problem] = &[P::BadRequest, P::TooLarge, P::UnsupportedMedia, P::Invalid];
/// Errors of any route under `/api/v1/companies/{company_id}` for members.
const MEMBER: &[Problem] = &[P::BadRequest, P::Unauthorized, P::NotFound];
/// Errors of Admin-only company routes.
const ADMIN: &[Problem] = &[P::BadRequest, P::Unauthorized, P::Forbidden, P::NotFound];

// ---------------------------------------------------------------------------------------
// Operations and paths
// ---------------------------------------------------------------------------------------

/// One operation under construction.
struct Op {
    fields: Map<String, Value>,
    responses: Map<String, Value>,
    problems: Vec<Problem>,
}

impl Op {
    fn new(operation_id: &str, tag: &str, summary: &str) -> Op {
        let mut fields = Map::new();
        fields.insert("operationId".into(), operation_id.into());
        fields.insert("tags".into(), json!([tag]));
        fields.insert("summary".into(), summary.into());
        Op { fields, responses: Map::new(), problems: Vec::new() }
    }

    fn description(mut self, text: &str) -> Op {
        self.fields.insert("description".into(), text.into());
        self
    }

    /// No credentials needed.
    fn public(mut self) -> Op {
        self.fields.insert("security".into(), json!([]));
        self
    }

    fn param(mut self, p: Value) -> Op {
        if let Some(Value::Array(list)) = self.fields.get_mut("parameters") {
            list.push(p);
        } else {
            self.fields.insert("parameters".into(), json!([p]));
        }
        self
    }

    fn params(self, ps: Vec<Value>) -> Op {
        ps.into_iter().fold(self, Op::param)
    }

    /// A required JSON body.
    fn body(mut self, schema: Value) -> Op {
        self.fields.insert("requestBody".into(), json!({ "required": true, "content": { "application/json": { "schema": schema } } }));
        self
    }

    fn optional_body(mut self, schema: Value) -> Op {
        self.fields.insert("requestBody".into(), json!({ "required": false, "content": { "application/json": { "schema": schema } } }));
        self
    }

    /// A JSON success response.
    fn ok(self, status: &str, description: &str, schema: Value) -> Op {
        self.response(status, json!({ "description": description, "content": { "application/json": { "schema": schema } } }))
    }

    fn response(mut self, status: &str, response: Value) -> Op {
        self.responses.insert(status.into(), response);
        self
    }

    fn no_content(self, description: &str) -> Op {
        self.response("204", json!({ "description": description }))
    }

    fn problems(mut self, list: &[Problem]) -> Op {
        self.problems.extend_from_slice(list);
        self
    }

    fn build(mut self) -> Value {
        self.problems.sort();
        self.problems.dedup();
        for p in &self.problems {
            self.responses.insert(p.status().into(), response_ref(p.component()));
        }
        self.fields.insert("responses".into(), Value::Object(self.responses));
        Value::Object(self.fields)
    }
}

/// The path parameter component for a `{name}` in a route.
fn path_param_component(name: &str) -> &'static str {
    match name {
        "company_id" => "CompanyId",
        "id" => "RecordId",
        "token_id" => "TokenId",
        "session_id" => "SessionId",
        "user_id" => "UserId",
        "import_id" => "ImportId",
        "template_id" => "ImportTemplateId",
        "job_id" => "JobId",
        "scan_id" => "DedupeScanId",
        "schedule_id" => "ScheduleId",
        "rule_set_id" => "ScoringRuleSetId",
        "rule_id" => "AssignmentRuleId",
        "key" => "RoleKey",
        "team_id" => "TeamId",
        "object" => "ObjectName",
        "name" => "CustomFieldName",
        "file" => "DocsFile",
        _ => "Unknown",
    }
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).map(str::to_string).collect()
}

/// The `paths` object being built.
#[derive(Default)]
struct Paths(Map<String, Value>);

impl Paths {
    fn add(&mut self, path: &str, method: &str, op: Op) {
        let item = self.0.entry(path.to_string()).or_insert_with(|| {
            let mut item = Map::new();
            let params: Vec<Value> = path_params(path).iter().map(|p| param_ref(path_param_component(p))).collect();
            if !params.is_empty() {
                item.insert("parameters".into(), Value::Array(params));
            }
            Value::Object(item)
        });
        if let Some(obj) = item.as_object_mut() {
            obj.insert(method.into(), op.build());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Object schemas, from the metadata
// ---------------------------------------------------------------------------------------

/// The schema of a field's value as the API writes it (`input == false`) or accepts it.
fn kind_schema(kind: &FieldKind, input: bool) -> Value {
    match kind {
        FieldKind::Text { max_len } => with(
            string_max(*max_len),
            json!({ "description": "Single line; surrounding spaces are trimmed and an empty string clears the field." }),
        ),
        FieldKind::LongText { max_len } => string_max(*max_len),
        FieldKind::Email => json!({ "type": "string", "format": "email", "maxLength": 254, "description": "The domain is lower-cased." }),
        FieldKind::Phone if input => json!({
            "type": "string", "maxLength": 40, "pattern": "^[0-9 +().-]*$",
            "description": "Digits with optional spaces, `+ - ( ) .`; stored in E.164. Numbers without a country code take the company's calling code.",
        }),
        FieldKind::Phone => json!({ "type": "string", "pattern": E164_PATTERN, "description": "E.164, e.g. `+919876543210`." }),
        FieldKind::Url if input => {
            json!({ "type": "string", "maxLength": 2048, "description": "An http(s) URL; `https://` is added when no scheme is given." })
        }
        FieldKind::Url => json!({ "type": "string", "format": "uri", "pattern": "^https?://" }),
        FieldKind::Integer { min, max } => json!({ "type": "integer", "format": "int64", "minimum": min, "maximum": max }),
        FieldKind::Decimal if input => json!({ "type": "number", "description": "A finite number (a numeric string is also accepted)." }),
        FieldKind::Decimal => json!({ "type": "number", "format": "double" }),
        FieldKind::Money { currency_field } if input => json!({
            "type": ["string", "number"], "pattern": MONEY_PATTERN, "minimum": 0,
            "description": format!(
                "Amount in major units of the currency in `{currency_field}`, preferably as a decimal string such as \"1500000.00\"; \
                 no more decimals than the currency has (none for JPY, three for KWD)."
            ),
        }),
        FieldKind::Money { currency_field } => json!({
            "type": "string", "pattern": MONEY_PATTERN,
            "description": format!("Amount in major units of the currency in `{currency_field}`, as a decimal string such as \"1500000.00\"."),
        }),
        FieldKind::Percent => json!({ "type": "integer", "minimum": 0, "maximum": 100 }),
        FieldKind::Date => json!({ "type": "string", "format": "date" }),
        FieldKind::DateTime => with(date_time(), json!({ "description": "RFC 3339; written in UTC with microseconds." })),
        FieldKind::Boolean => json!({ "type": "boolean" }),
        FieldKind::Enum { options } => json!({
            "type": "string",
            "enum": options.iter().map(|o| o.value.clone()).collect::<Vec<_>>(),
            "description": format!("One of {}.", options_text(options)),
        }),
        FieldKind::MultiEnum { options } => json!({
            "type": "array", "uniqueItems": true,
            "items": { "type": "string", "enum": options.iter().map(|o| o.value.clone()).collect::<Vec<_>>() },
            "description": format!("Any of {}.", options_text(options)),
        }),
        FieldKind::Reference { object } if object == "*" => {
            with(uuid(), json!({ "description": "Id of the record named by `related_object`." }))
        }
        FieldKind::Reference { object } => {
            with(uuid(), json!({ "description": format!("Id of a record of `{object}` in the same company.") }))
        }
        FieldKind::User => with(uuid(), json!({ "description": "Id of a user of the company." })),
        FieldKind::Tags => json!({
            "type": "array", "maxItems": 50,
            "items": { "type": "string", "minLength": 1, "maxLength": 50 },
            "description": "Free tags; blanks and case-insensitive duplicates are dropped.",
        }),
        FieldKind::Json => json!({ "description": "Any JSON value, at most 64 KiB when serialised." }),
        FieldKind::Currency => schema_ref("CurrencyCode"),
        FieldKind::Country => schema_ref("CountryCode"),
        FieldKind::Gstin => json!({
            "type": "string", "minLength": 15, "maxLength": 15, "pattern": GSTIN_PATTERN,
            "description": "Indian GST identification number with a valid check character.",
        }),
    }
}

fn field_schema(f: &Field, input: bool) -> Value {
    let base = kind_schema(&f.kind, input);
    let mut s = if f.required { base } else { nullable(base) };
    s = with(s, json!({ "title": f.label }));
    if f.read_only {
        s = with(s, json!({ "readOnly": true }));
    }
    if input {
        if let Some(d) = &f.default {
            s = with(s, json!({ "default": d }));
        }
    }
    s
}

/// Schema names and words for one object.
struct Names {
    /// `Lead`
    one: String,
    /// `Leads`
    many: String,
}

impl Names {
    fn of(o: &ObjectDef) -> Names {
        Names { one: pascal(&o.singular), many: pascal(&o.name) }
    }
    fn s(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.one)
    }
}

/// System columns a client can filter, sort and project on (not the tenant or custom columns).
fn system_fields() -> impl Iterator<Item = String> {
    SYSTEM_COLUMNS.iter().map(|(c, _)| *c).filter(|c| !matches!(*c, "company_id" | "custom")).map(str::to_string)
}

fn name_pattern(names: &[String], prefix: &str) -> String {
    format!("^{prefix}(?:{}|cf_[a-z][a-z0-9_]{{0,56}})$", names.join("|"))
}

fn custom_fields_schema() -> Value {
    json!({ "description": "A custom field defined for this company (see the metadata endpoints)." })
}

fn record_schema(o: &ObjectDef) -> Value {
    let mut props = Map::new();
    props.insert("id".into(), with(uuid(), json!({ "readOnly": true })));
    props.insert("object".into(), json!({ "type": "string", "const": o.singular, "readOnly": true }));
    props.insert(
        "number".into(),
        json!({
            "type": "string", "readOnly": true,
            "pattern": format!("^{}-[0-9]{{5,}}$", o.number_prefix),
            "description": "Human number, sequential per company.",
            "examples": [format!("{}-00042", o.number_prefix)],
        }),
    );
    props.insert(
        "version".into(),
        json!({ "type": "integer", "format": "int64", "readOnly": true,
                "description": "Grows with every change. Send it back in `If-Match` (or `version`) to change the record; also the `ETag`." }),
    );
    props.insert("created_at".into(), with(date_time(), json!({ "readOnly": true })));
    props.insert("updated_at".into(), with(date_time(), json!({ "readOnly": true })));
    let deleted = match o.delete_mode {
        DeleteMode::SoftDelete => "When the record was deleted; deleted records are hidden from lists unless filtered on `deleted_at`.",
        DeleteMode::Deactivate => "Unused: these records are deactivated (`is_active = false`), never deleted.",
    };
    props.insert("deleted_at".into(), with(nullable(date_time()), json!({ "readOnly": true, "description": deleted })));
    props.insert("created_by".into(), with(nullable(uuid()), json!({ "readOnly": true })));
    props.insert("updated_by".into(), with(nullable(uuid()), json!({ "readOnly": true })));
    for f in &o.fields {
        props.insert(f.name.clone(), field_schema(f, false));
    }
    json!({
        "type": "object",
        "title": o.label,
        "description": format!(
            "A {} record. Money is a decimal string in major units beside its currency field. \
             With `fields=` only the fields asked for are present (`id`, `object` and `version` always are).",
            o.singular
        ),
        "required": ["id", "object", "version"],
        "properties": props,
        "patternProperties": { CUSTOM_FIELD_PATTERN: custom_fields_schema() },
        "additionalProperties": false,
    })
}

fn input_schema(o: &ObjectDef) -> Value {
    let mut props = Map::new();
    for f in o.fields.iter().filter(|f| !f.read_only) {
        props.insert(f.name.clone(), field_schema(f, true));
    }
    props.insert(
        "version".into(),
        json!({ "type": ["integer", "null"], "format": "int64",
                "description": "Update only: the version this change is based on, instead of an If-Match header. Ignored on create." }),
    );
    let read_only: Vec<&str> = o.fields.iter().filter(|f| f.read_only).map(|f| f.name.as_str()).collect();
    let mut description = format!(
        "Writable fields of a {}. On update send only what changes; `null` (or an empty string) clears a field. \
         Unknown fields are rejected.",
        o.singular
    );
    if !read_only.is_empty() {
        description.push_str(&format!(" Set by Corvid and rejected here: {}.", read_only.join(", ")));
    }
    json!({
        "type": "object",
        "title": format!("{} input", o.label),
        "description": description,
        "properties": props,
        "patternProperties": { CUSTOM_FIELD_PATTERN: custom_fields_schema() },
        "additionalProperties": false,
    })
}

/// Fields a create must carry: required, writable and without a default.
fn create_required(o: &ObjectDef) -> Vec<String> {
    o.fields.iter().filter(|f| f.required && !f.read_only && f.default.is_none()).map(|f| f.name.clone()).collect()
}

fn object_schemas(o: &ObjectDef, schemas: &mut Map<String, Value>) {
    let n = Names::of(o);
    let fields: Vec<String> = system_fields().chain(o.fields.iter().map(|f| f.name.clone())).collect();
    let sortable: Vec<String> = system_fields()
        .chain(o.fields.iter().filter(|f| f.kind.sql_type() != corvid_core::SqlType::Json).map(|f| f.name.clone()))
        .collect();
    schemas.insert(n.one.clone(), record_schema(o));
    schemas.insert(n.s("Input"), input_schema(o));
    let mut create = vec![schema_ref(&n.s("Input"))];
    let required = create_required(o);
    if !required.is_empty() {
        create.push(json!({ "required": required }));
    }
    schemas.insert(
        n.s("Create"),
        json!({ "title": format!("New {}", o.singular), "description": "A new record: the input fields, with the required ones present. Fields left out take their defaults.", "allOf": create }),
    );
    schemas.insert(
        n.s("FieldName"),
        json!({ "type": "string", "pattern": name_pattern(&fields, ""),
                "description": format!("A field of {}: a system field, a standard field or a custom `cf_` field.", o.name) }),
    );
    schemas.insert(
        n.s("SortKey"),
        json!({ "type": "string", "pattern": name_pattern(&sortable, "[+-]?"),
                "description": "A sortable field (not list or JSON fields), prefixed with `-` for descending." }),
    );
    schemas.insert(
        n.s("Filter"),
        json!({
            "type": "object",
            "description": "Conditions by field name, ANDed: `filter[status]=new` (equals) or `filter[lead_score][gte]=50`.",
            "propertyNames": schema_ref(&n.s("FieldName")),
            "additionalProperties": schema_ref("FilterValue"),
        }),
    );
    schemas.insert(
        n.s("Condition"),
        json!({
            "type": "object",
            "required": ["field", "op"],
            "properties": {
                "field": schema_ref(&n.s("FieldName")),
                "op": schema_ref("FilterOp"),
                "value": { "description": "Compared with the field: a scalar; an array for `in`; text for `contains` (an element for list fields); true or false for `is_null`." },
            },
        }),
    );
    schemas.insert(
        n.s("Search"),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "A search: conditions in groups (AND within a group, OR between groups), free text, sort, projection and paging.",
            "properties": {
                "filter_groups": {
                    "type": "array",
                    "items": { "type": "array", "items": schema_ref(&n.s("Condition")) },
                    "description": "At most 100 conditions in all.",
                },
                "sort": {
                    "anyOf": [
                        { "type": "string", "description": "Comma-separated sort keys, e.g. `-created_at,last_name`." },
                        { "type": "array", "maxItems": 5, "items": schema_ref(&n.s("SortKey")) },
                    ],
                },
                "q": { "type": "string", "maxLength": 200, "description": "Text searched in the searchable fields and the number." },
                "fields": { "type": "array", "items": schema_ref(&n.s("FieldName")) },
                "cursor": { "type": "string", "maxLength": 4096, "description": "`next_cursor` of the previous page." },
                "limit": { "type": "integer", "minimum": 1, "maximum": 200, "default": 50 },
            },
        }),
    );
    schemas.insert(
        n.s("Page"),
        json!({
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": { "type": "array", "items": schema_ref(&n.one) },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `cursor` for the next page; null on the last page." },
            },
        }),
    );
    schemas.insert(
        n.s("BulkCreate"),
        json!({
            "type": "object", "required": ["action", "records"], "additionalProperties": false,
            "properties": {
                "action": { "type": "string", "const": "create" },
                "records": { "type": "array", "minItems": 1, "maxItems": 500, "items": schema_ref(&n.s("Create")) },
            },
        }),
    );
    schemas.insert(
        n.s("BulkUpdate"),
        json!({
            "type": "object", "required": ["action", "ids", "changes"], "additionalProperties": false,
            "properties": {
                "action": { "type": "string", "const": "update" },
                "ids": schema_ref("BulkIds"),
                "changes": with(schema_ref(&n.s("Input")), json!({ "description": "Applied to every record at its current version; leave `version` out." })),
            },
        }),
    );
    let mapping = json!({
        "create": format!("#/components/schemas/{}", n.s("BulkCreate")),
        "update": format!("#/components/schemas/{}", n.s("BulkUpdate")),
        "delete": "#/components/schemas/BulkDelete",
        "restore": "#/components/schemas/BulkRestore",
    });
    schemas.insert(
        n.s("Bulk"),
        json!({
            "description": "One action on up to 500 records, in one transaction: all succeed or nothing changes.",
            "oneOf": [schema_ref(&n.s("BulkCreate")), schema_ref(&n.s("BulkUpdate")), schema_ref("BulkDelete"), schema_ref("BulkRestore")],
            "discriminator": { "propertyName": "action", "mapping": mapping },
        }),
    );
    schemas.insert(
        n.s("BulkResult"),
        json!({
            "type": "object",
            "required": ["data", "count"],
            "properties": { "data": { "type": "array", "items": schema_ref(&n.one) }, "count": { "type": "integer", "minimum": 0 } },
        }),
    );
}

// ---------------------------------------------------------------------------------------
// Shared schemas
// ---------------------------------------------------------------------------------------

fn kind_names() -> Vec<&'static str> {
    vec![
        "text",
        "long_text",
        "email",
        "phone",
        "url",
        "integer",
        "decimal",
        "money",
        "percent",
        "date",
        "datetime",
        "boolean",
        "enum",
        "multi_enum",
        "reference",
        "user",
        "tags",
        "json",
        "currency",
        "country",
        "gstin",
    ]
}

fn shared_schemas() -> Map<String, Value> {
    let mut s = Map::new();
    let mut put = |name: &str, v: Value| {
        s.insert(name.to_string(), v);
    };
    put(
        "Problem",
        json!({
            "type": "object",
            "description": "An error, as RFC 9457 problem details (`application/problem+json`).",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": { "type": "string", "format": "uri-reference", "examples": ["/problems/validation"],
                          "description": "Stable kind of problem: malformed, unauthenticated, forbidden, not-found, method-not-allowed, conflict, stale-version, version-required, too-large, unsupported-media-type, validation, throttled or internal, under `/problems/`." },
                "title": { "type": "string" },
                "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": { "type": "string" },
                "errors": { "type": "array", "items": schema_ref("FieldError"), "description": "Per-field problems (400 and 422)." },
                "request_id": { "type": "string", "description": "Also in the `x-request-id` response header; quote it when reporting a problem." },
                "current_version": { "type": "integer", "format": "int64", "description": "412 only: the record's version now." },
            },
        }),
    );
    put(
        "FieldError",
        json!({
            "type": "object",
            "required": ["field", "reason"],
            "properties": {
                "field": { "type": "string", "description": "Field, parameter or header name; `items[i].field` in bulk requests." },
                "reason": { "type": "string" },
            },
        }),
    );
    put(
        "CurrencyCode",
        json!({ "type": "string", "enum": corvid_core::money::currencies().collect::<Vec<_>>(),
                "description": "ISO 4217 code of a supported currency (input is case-insensitive)." }),
    );
    put(
        "CountryCode",
        json!({ "type": "string", "enum": corvid_core::country::codes().collect::<Vec<_>>(),
                "description": "ISO 3166-1 alpha-2 country code (input is case-insensitive)." }),
    );
    put(
        "Role",
        json!({ "type": "string", "enum": ["admin", "manager", "sales_rep", "support_agent", "read_only"],
                "description": "Role in a company. `read_only` can read but not change records." }),
    );
    put(
        "User",
        json!({
            "type": "object",
            "required": ["id", "email", "name", "is_active"],
            "properties": { "id": uuid(), "email": { "type": "string", "format": "email" }, "name": { "type": "string" }, "is_active": { "type": "boolean" } },
        }),
    );
    put(
        "MembershipSummary",
        json!({
            "type": "object",
            "required": ["id", "name", "role"],
            "properties": { "id": with(uuid(), json!({ "description": "Company id." })), "name": { "type": "string" }, "role": schema_ref("Role") },
        }),
    );
    put(
        "Session",
        json!({
            "type": "object",
            "required": ["access_token", "refresh_token", "token_type", "expires_in", "user", "companies"],
            "properties": {
                "access_token": { "type": "string", "description": "JWT for `Authorization: Bearer`, valid for `expires_in` seconds." },
                "refresh_token": { "type": "string", "description": "Single use: each refresh returns a new one. Reusing an old one ends the session." },
                "token_type": { "type": "string", "const": "Bearer" },
                "expires_in": { "type": "integer", "examples": [crate::jwt::ACCESS_TTL_SECS] },
                "user": schema_ref("User"),
                "companies": { "type": "array", "items": schema_ref("MembershipSummary") },
            },
        }),
    );
    put(
        "Me",
        json!({
            "type": "object",
            "required": ["user", "companies"],
            "properties": { "user": schema_ref("User"), "companies": { "type": "array", "items": schema_ref("MembershipSummary") } },
        }),
    );
    put(
        "RegisterRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["email", "password", "name", "company_name"],
            "properties": {
                "email": { "type": "string", "format": "email", "maxLength": 254 },
                "password": { "type": "string", "minLength": 10, "maxLength": 200, "format": "password" },
                "name": { "type": "string", "minLength": 1, "maxLength": 200 },
                "company_name": { "type": "string", "minLength": 1, "maxLength": 200 },
            },
        }),
    );
    put(
        "LoginRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["email", "password"],
            "properties": { "email": { "type": "string", "format": "email" }, "password": { "type": "string", "format": "password" } },
        }),
    );
    put(
        "RefreshRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["refresh_token"],
            "properties": { "refresh_token": { "type": "string", "maxLength": 200 } },
        }),
    );
    put(
        "LogoutRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "properties": { "refresh_token": { "type": ["string", "null"], "description": "Also ends the session of this refresh token (if it is yours)." } },
        }),
    );
    security_schemas(&mut put);
    put(
        "ApiToken",
        json!({
            "type": "object",
            "required": ["id", "name", "prefix", "created_at", "expires_at", "last_used_at"],
            "properties": {
                "id": uuid(),
                "name": { "type": "string" },
                "prefix": { "type": "string", "description": "First characters of the token, to recognise it." },
                "created_at": date_time(),
                "expires_at": nullable(date_time()),
                "last_used_at": nullable(date_time()),
            },
        }),
    );
    put(
        "ApiTokenCreated",
        json!({
            "allOf": [schema_ref("ApiToken"), {
                "type": "object",
                "required": ["token"],
                "properties": { "token": { "type": "string", "pattern": "^cvd_", "description": "The token itself. Shown only now; Corvid keeps only a hash." } },
            }],
        }),
    );
    put(
        "NewApiToken",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                "expires_in_days": { "type": ["integer", "null"], "minimum": 1, "maximum": 3650, "description": "Omit for a token that does not expire." },
            },
        }),
    );
    put(
        "NewCompany",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["name"],
            "properties": { "name": { "type": "string", "minLength": 1, "maxLength": 200 } },
        }),
    );
    put(
        "Company",
        json!({
            "type": "object",
            "required": ["id", "name", "default_currency", "default_country", "calling_code", "time_zone", "role"],
            "properties": {
                "id": uuid(),
                "name": { "type": "string" },
                "default_currency": schema_ref("CurrencyCode"),
                "default_country": schema_ref("CountryCode"),
                "calling_code": { "type": "string", "pattern": "^[0-9]{1,4}$", "description": "For phone numbers written without one, e.g. `91`." },
                "time_zone": { "type": "string", "examples": ["Asia/Kolkata"] },
                "role": with(schema_ref("Role"), json!({ "description": "The caller's role in this company." })),
            },
        }),
    );
    put(
        "Member",
        json!({
            "type": "object",
            "required": ["user_id", "email", "name", "role", "is_active", "team_id", "manager_id", "joined_at"],
            "properties": {
                "user_id": uuid(),
                "email": { "type": "string", "format": "email" },
                "name": { "type": "string" },
                "role": schema_ref("Role"),
                "is_active": { "type": "boolean" },
                "team_id": nullable(uuid()),
                "manager_id": nullable(uuid()),
                "joined_at": date_time(),
            },
        }),
    );
    put(
        "NewMember",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["email", "role"],
            "properties": {
                "email": { "type": "string", "format": "email", "maxLength": 254 },
                "name": { "type": ["string", "null"], "minLength": 1, "maxLength": 200, "description": "Defaults to the part of the email before `@`." },
                "password": { "type": ["string", "null"], "minLength": 10, "maxLength": 200, "format": "password", "description": "For a new user; an existing user keeps theirs." },
                "role": schema_ref("Role"),
            },
        }),
    );
    put(
        "MemberChange",
        json!({
            "type": "object", "additionalProperties": false,
            "properties": {
                "role": schema_ref("Role"),
                "is_active": { "type": "boolean" },
                "team_id": nullable(uuid()),
                "manager_id": nullable(uuid()),
            },
        }),
    );
    put(
        "Team",
        json!({
            "type": "object",
            "required": ["id", "name", "manager_id", "members"],
            "properties": {
                "id": uuid(),
                "name": { "type": "string" },
                "manager_id": nullable(uuid()),
                "members": { "type": "integer", "minimum": 0, "description": "Members in the team, active or not." },
            },
        }),
    );
    put(
        "NewTeam",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                "manager_id": with(nullable(uuid()), json!({ "description": "An active member." })),
            },
        }),
    );
    put(
        "EnumOption",
        json!({
            "type": "object",
            "required": ["value", "label", "colour"],
            "properties": { "value": { "type": "string" }, "label": { "type": "string" }, "colour": { "type": "string" } },
        }),
    );
    put(
        "FieldMetadata",
        json!({
            "type": "object",
            "required": ["name", "label", "type", "required", "read_only", "searchable", "custom", "section"],
            "properties": {
                "name": { "type": "string" },
                "label": { "type": "string" },
                "type": { "type": "string", "enum": kind_names() },
                "max_len": { "type": "integer", "description": "text and long_text." },
                "min": { "type": "integer", "format": "int64", "description": "integer." },
                "max": { "type": "integer", "format": "int64", "description": "integer." },
                "currency_field": { "type": "string", "description": "money: the field holding its currency." },
                "options": { "type": "array", "items": schema_ref("EnumOption"), "description": "enum and multi_enum." },
                "object": { "type": "string", "description": "reference: the object referred to (`*` when another field names it)." },
                "required": { "type": "boolean" },
                "read_only": { "type": "boolean", "description": "Set by Corvid; rejected on input." },
                "searchable": { "type": "boolean", "description": "Matched by `q`." },
                "custom": { "type": "boolean" },
                "section": { "type": "string" },
                "default": { "description": "Value used on create when the field is left out." },
            },
        }),
    );
    put(
        "ObjectMetadata",
        json!({
            "type": "object",
            "required": ["name", "singular", "label", "label_plural", "number_prefix", "delete_mode", "title_fields", "fields"],
            "properties": {
                "name": { "type": "string", "enum": OBJECT_NAMES },
                "singular": { "type": "string" },
                "label": { "type": "string" },
                "label_plural": { "type": "string" },
                "number_prefix": { "type": "string" },
                "delete_mode": { "type": "string", "enum": ["soft_delete", "deactivate"] },
                "title_fields": { "type": "array", "items": { "type": "string" } },
                "fields": { "type": "array", "items": schema_ref("FieldMetadata"), "description": "Standard fields, then this company's custom fields." },
            },
        }),
    );
    put(
        "NewCustomField",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["name", "type"],
            "properties": {
                "name": { "type": "string", "description": "Becomes the API name `cf_<name>` (lower-cased, other characters as `_`)." },
                "label": { "type": ["string", "null"], "minLength": 1, "maxLength": 100, "description": "Defaults to the name." },
                "type": { "type": "string", "enum": ["text", "long_text", "email", "phone", "url", "integer", "decimal", "percent", "date", "datetime", "boolean", "enum", "multi_enum"] },
                "required": { "type": "boolean", "default": false },
                "options": {
                    "type": "array", "maxItems": 200,
                    "description": "enum and multi_enum (at least one): values, or objects with a label and colour.",
                    "items": { "anyOf": [
                        { "type": "string", "minLength": 1, "maxLength": 100 },
                        { "type": "object", "required": ["value"], "properties": {
                            "value": { "type": "string", "minLength": 1, "maxLength": 100 },
                            "label": { "type": ["string", "null"], "maxLength": 100 },
                            "colour": { "type": ["string", "null"], "maxLength": 20 },
                        } },
                    ] },
                },
                "max_len": { "type": ["integer", "null"], "minimum": 1, "description": "text (up to 255) and long_text (up to 20000)." },
            },
        }),
    );
    put(
        "AuditEntry",
        json!({
            "type": "object",
            "required": ["id", "seq", "at", "actor_id", "object", "record_id", "action", "field", "old_value", "new_value", "ip", "user_agent", "request_id", "hash"],
            "properties": {
                "id": uuid(),
                "seq": { "type": "integer", "format": "int64", "description": "Position in the company's hash chain." },
                "at": date_time(),
                "actor_id": nullable(uuid()),
                "object": { "type": "string" },
                "record_id": nullable(uuid()),
                "action": { "type": "string", "examples": ["create", "update", "delete", "restore", "deactivate"] },
                "field": { "type": ["string", "null"] },
                "old_value": { "type": ["string", "null"] },
                "new_value": { "type": ["string", "null"] },
                "ip": { "type": ["string", "null"] },
                "user_agent": { "type": ["string", "null"] },
                "request_id": { "type": ["string", "null"] },
                "hash": { "type": "string", "pattern": "^[0-9a-f]{64}$" },
            },
        }),
    );
    put(
        "AuditPage",
        json!({
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": {
                "data": { "type": "array", "items": schema_ref("AuditEntry"), "description": "Newest first." },
                "next_cursor": { "type": ["string", "null"], "description": "Pass as `before` for the next page." },
            },
        }),
    );
    put(
        "AuditVerifyReport",
        json!({
            "type": "object",
            "required": ["company_id", "rows", "ok", "first_bad_seq", "problem"],
            "properties": {
                "company_id": uuid(),
                "rows": { "type": "integer", "format": "int64" },
                "ok": { "type": "boolean" },
                "first_bad_seq": { "type": ["integer", "null"], "format": "int64" },
                "problem": { "type": ["string", "null"] },
            },
        }),
    );
    put(
        "Bucket",
        json!({
            "type": "object",
            "required": ["key", "count"],
            "properties": { "key": { "type": ["string", "null"], "description": "The grouped value; null for records without one." }, "count": { "type": "integer", "format": "int64" } },
        }),
    );
    let buckets = || json!({ "type": "array", "items": schema_ref("Bucket") });
    put(
        "LeadStats",
        json!({
            "type": "object",
            "required": ["by_status", "by_source", "by_owner"],
            "properties": { "by_status": buckets(), "by_source": buckets(), "by_owner": buckets() },
        }),
    );
    put(
        "StageSum",
        json!({
            "type": "object",
            "required": ["stage", "currency", "count", "value", "weighted_value"],
            "properties": {
                "stage": { "type": "string" },
                "currency": schema_ref("CurrencyCode"),
                "count": { "type": "integer", "format": "int64" },
                "value": { "type": "string", "pattern": MONEY_PATTERN },
                "weighted_value": { "type": "string", "pattern": MONEY_PATTERN, "description": "Value times probability." },
            },
        }),
    );
    put(
        "DealStats",
        json!({
            "type": "object",
            "required": ["by_stage"],
            "properties": { "by_stage": { "type": "array", "items": schema_ref("StageSum") } },
        }),
    );
    put("ActivityStats", json!({ "type": "object", "required": ["by_type"], "properties": { "by_type": buckets() } }));
    put("FilterOp", json!({ "type": "string", "enum": ["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "is_null"] }));
    put(
        "FilterOperators",
        json!({
            "type": "object",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": {
                "eq": { "type": "string" },
                "ne": { "type": "string" },
                "lt": { "type": "string" },
                "lte": { "type": "string" },
                "gt": { "type": "string" },
                "gte": { "type": "string" },
                "in": { "type": "string", "description": "Comma-separated values." },
                "contains": { "type": "string", "maxLength": 200, "description": "Substring for text; an element for list fields." },
                "is_null": { "type": "string", "enum": ["true", "false", "1", "0", ""] },
            },
        }),
    );
    put("FilterValue", json!({ "anyOf": [{ "type": "string", "description": "Equals." }, schema_ref("FilterOperators")] }));
    put("BulkIds", json!({ "type": "array", "minItems": 1, "maxItems": 500, "uniqueItems": true, "items": uuid() }));
    put(
        "BulkDelete",
        json!({
            "type": "object", "required": ["action", "ids"], "additionalProperties": false,
            "properties": { "action": { "type": "string", "const": "delete" }, "ids": schema_ref("BulkIds") },
        }),
    );
    put(
        "BulkRestore",
        json!({
            "type": "object", "required": ["action", "ids"], "additionalProperties": false,
            "properties": { "action": { "type": "string", "const": "restore" }, "ids": schema_ref("BulkIds") },
        }),
    );
    put(
        "TimelineActivity",
        json!({
            "type": "object", "required": ["kind", "at", "record"],
            "properties": { "kind": { "type": "string", "const": "activity" }, "at": date_time(), "record": schema_ref("Activity") },
        }),
    );
    put(
        "TimelineTask",
        json!({
            "type": "object", "required": ["kind", "at", "record"],
            "properties": { "kind": { "type": "string", "const": "task" }, "at": date_time(), "record": schema_ref("Task") },
        }),
    );
    put(
        "TimelineChange",
        json!({
            "type": "object", "required": ["kind", "at", "change"],
            "properties": { "kind": { "type": "string", "const": "change" }, "at": date_time(), "change": schema_ref("AuditEntry") },
        }),
    );
    put(
        "TimelineItem",
        json!({
            "oneOf": [schema_ref("TimelineActivity"), schema_ref("TimelineTask"), schema_ref("TimelineChange")],
            "discriminator": { "propertyName": "kind", "mapping": {
                "activity": "#/components/schemas/TimelineActivity",
                "task": "#/components/schemas/TimelineTask",
                "change": "#/components/schemas/TimelineChange",
            } },
        }),
    );
    put("Timeline", with(data_list(schema_ref("TimelineItem")), json!({ "description": "Newest first." })));
    s
}

fn shared_parameters() -> Value {
    let query =
        |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "schema": schema, "description": description });
    let path = |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "path", "required": true, "schema": schema, "description": description });
    json!({
        "CompanyId": path("company_id", uuid(), "A company the caller is an active member of."),
        "RecordId": path("id", uuid(), "Record id."),
        "TokenId": path("token_id", uuid(), "API token id."),
        "SessionId": path("session_id", json!({ "type": "string", "maxLength": 64 }), "A session id from `GET /api/v1/auth/sessions`."),
        "UserId": path("user_id", uuid(), "User id of the member."),
        "ImportId": path("import_id", uuid(), "Import id."),
        "ImportTemplateId": path("template_id", uuid(), "Import mapping template id."),
        "JobId": path("job_id", uuid(), "Job id."),
        "DedupeScanId": path("scan_id", uuid(), "Duplicate scan id."),
        "ScheduleId": path("schedule_id", uuid(), "Schedule id."),
        "ScoringRuleSetId": path("rule_set_id", uuid(), "Scoring rule set id."),
        "AssignmentRuleId": path("rule_id", uuid(), "Assignment rule id."),
        "RoleKey": path("key", json!({ "type": "string", "pattern": "^(admin|manager|sales_rep|support_agent|read_only|custom_[a-z0-9_]+)$" }), "A built-in role's key, or a custom role's (`custom_…`)."),
        "TeamId": path("team_id", uuid(), "Team id."),
        "ObjectName": path("object", json!({ "type": "string", "enum": OBJECT_NAMES }), "Object API name."),
        "CustomFieldName": path("name", json!({ "type": "string", "pattern": CUSTOM_FIELD_PATTERN }), "API name of a custom field."),
        "DocsFile": path("file", json!({ "type": "string", "enum": ASSETS.iter().map(|a| a.name).collect::<Vec<_>>() }), "A file of the docs page."),
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
            "description": "Makes a create safe to retry: a repeat with the same key and body returns the first result (with `Idempotent-Replayed: true`); the same key with a different body is a 409.",
        },
        "IfMatch": {
            "name": "If-Match", "in": "header",
            "schema": { "type": "string", "pattern": "^(W/)?\"?[0-9]+\"?$", "examples": ["\"3\""] },
            "description": "The record version the change is based on (its `ETag`). A stale version is a 412.",
        },
        "Limit": query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200, "default": 50 }), "Page size."),
        "Cursor": query("cursor", json!({ "type": "string", "maxLength": 4096 }), "`next_cursor` of the previous page (same filters and sort)."),
        "Q": query("q", json!({ "type": "string", "maxLength": 200 }), "Text searched (case-insensitively) in the searchable fields and the record number."),
        "AuditBefore": query("before", json!({ "type": "integer", "format": "int64" }), "Entries before this sequence number (`next_cursor` of the previous page)."),
        "AuditLimit": query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200, "default": 100 }), "Page size."),
        "AuditActorId": query("actor_id", uuid(), "Only changes by this user."),
        "AuditAction": query("action", json!({ "type": "string" }), "Only this action, e.g. `update`."),
        "AuditFrom": query("from", date_time(), "Only entries at or after this time."),
        "AuditTo": query("to", date_time(), "Only entries at or before this time."),
        "AuditObject": query("object", json!({ "type": "string" }), "Only entries about this object, e.g. `leads`, or `company`, `membership`, `team`, `role`, `custom_field`."),
        "AuditRecordId": query("record_id", uuid(), "Only entries about this record."),
    })
}

fn shared_headers() -> Value {
    json!({
        "ETag": { "description": "The record's version, quoted: send it back in `If-Match`.", "schema": { "type": "string", "examples": ["\"3\""] } },
        "Location": { "description": "URL of the new record.", "schema": { "type": "string", "format": "uri-reference" } },
        "IdempotentReplayed": { "description": "`true` when this is the stored result of an earlier request with the same Idempotency-Key.", "schema": { "type": "string", "enum": ["true"] } },
        "RetryAfter": { "description": "Seconds to wait.", "schema": { "type": "integer", "minimum": 0 } },
    })
}

// ---------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------

fn text_response(description: &str, media: &str, example: &str) -> Value {
    json!({ "description": description, "content": { media: { "schema": { "type": "string" }, "example": example } } })
}

fn record_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "headers": { "ETag": header_ref("ETag") },
        "content": { "application/json": { "schema": schema_ref(schema) } },
    })
}

fn fixed_paths(paths: &mut Paths) {
    let v1 = "/api/v1";
    let auth = "Auth";
    paths.add(
        &format!("{v1}/auth/register"),
        "post",
        Op::new("register", auth, "Sign up")
            .description("Creates a user and their first company (the user is its Admin) and signs them in.")
            .public()
            .body(schema_ref("RegisterRequest"))
            .ok("201", "Signed up and signed in.", schema_ref("Session"))
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{v1}/auth/login"),
        "post",
        Op::new("login", auth, "Sign in")
            .description("Repeated failures for an email or a client address lock sign-in for a while (429 with Retry-After).")
            .public()
            .body(schema_ref("LoginRequest"))
            .ok(
                "200",
                "Signed in, or (with two-step sign-in on) a challenge for `POST /api/v1/auth/login/mfa`.",
                json!({ "oneOf": [schema_ref("Session"), schema_ref("MfaChallenge")] }),
            )
            .problems(BODY)
            .problems(&[P::Unauthorized, P::TooManyRequests]),
    );
    paths.add(
        &format!("{v1}/auth/refresh"),
        "post",
        Op::new("refreshSession", auth, "Refresh the access token")
            .description("Trades a refresh token for a new access token and a new refresh token. A refresh token works once; presenting a used one ends the whole session.")
            .public()
            .body(schema_ref("RefreshRequest"))
            .ok("200", "New tokens.", schema_ref("Session"))
            .problems(BODY)
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/auth/logout"),
        "post",
        Op::new("logout", auth, "Sign out")
            .description("Ends the session of the access token, and that of a refresh token if one is sent. The body is optional.")
            .optional_body(schema_ref("LogoutRequest"))
            .no_content("Signed out.")
            .problems(&[P::BadRequest, P::Unauthorized, P::Invalid]),
    );

    security_paths(paths);

    let me = "Me";
    paths.add(
        &format!("{v1}/me"),
        "get",
        Op::new("getMe", me, "The caller and their companies")
            .ok("200", "The caller.", schema_ref("Me"))
            .problems(&[P::Unauthorized, P::NotFound]),
    );
    paths.add(
        &format!("{v1}/me/tokens"),
        "get",
        Op::new("listApiTokens", me, "List personal API tokens")
            .ok("200", "The caller's tokens (never the secrets).", data_list(schema_ref("ApiToken")))
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/me/tokens"),
        "post",
        Op::new("createApiToken", me, "Create a personal API token")
            .description("The token (`cvd_…`) works like an access token in `Authorization: Bearer` until it expires or is revoked. It is shown only in this response.")
            .body(schema_ref("NewApiToken"))
            .ok("201", "The new token, with its secret.", schema_ref("ApiTokenCreated"))
            .problems(BODY)
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/me/tokens/{{token_id}}"),
        "delete",
        Op::new("revokeApiToken", me, "Revoke a personal API token").no_content("Revoked.").problems(&[
            P::BadRequest,
            P::Unauthorized,
            P::NotFound,
        ]),
    );

    let companies = "Companies";
    paths.add(
        &format!("{v1}/companies"),
        "get",
        Op::new("listMyCompanies", companies, "List the caller's companies")
            .ok("200", "Companies the caller is an active member of.", data_list(schema_ref("MembershipSummary")))
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/companies"),
        "post",
        Op::new("createCompany", companies, "Create a company")
            .description("The caller becomes its Admin.")
            .body(schema_ref("NewCompany"))
            .ok("201", "The new company.", schema_ref("MembershipSummary"))
            .problems(BODY)
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        C,
        "get",
        Op::new("getCompany", companies, "Show a company")
            .ok("200", "The company and the caller's role in it.", schema_ref("Company"))
            .problems(MEMBER),
    );

    let members = "Members";
    paths.add(
        &format!("{C}/members"),
        "get",
        Op::new("listMembers", members, "List members")
            .ok("200", "Members, active and not.", data_list(schema_ref("Member")))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/members"),
        "post",
        Op::new("addMember", members, "Add a member")
            .description("Admins only. Adds an existing user by email, or creates the user.")
            .body(schema_ref("NewMember"))
            .ok("201", "The new member.", schema_ref("Member"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/members/{{user_id}}"),
        "patch",
        Op::new("updateMember", members, "Change a member's role, status, team or manager")
            .description("Admins only. A company always keeps at least one active Admin (409). A built-in `role` replaces any custom role (use `PUT …/members/{user_id}/role` for custom roles). `team_id` and `manager_id` follow `PATCH …/members/{user_id}/reporting`: `null` clears, loops are refused.")
            .body(schema_ref("MemberChange"))
            .ok("200", "The member after the change.", schema_ref("Member"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/members/{{user_id}}"),
        "delete",
        Op::new("deactivateMember", members, "Deactivate a member")
            .description("Admins only. Members are never deleted (their records and audit entries keep pointing at them); this sets `is_active` to false.")
            .ok("200", "The deactivated member.", schema_ref("Member"))
            .problems(ADMIN)
            .problems(&[P::Conflict]),
    );

    let teams = "Teams";
    paths.add(
        &format!("{C}/teams"),
        "get",
        Op::new("listTeams", teams, "List teams")
            .description("Any member. Teams by name with their manager and member count.")
            .ok("200", "Teams by name.", data_list(schema_ref("Team")))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/teams"),
        "post",
        Op::new("createTeam", teams, "Create a team")
            .description("Admins only. Team names are unique in a company (409); the manager must be an active member (422 naming `manager_id`). Audited.")
            .body(schema_ref("NewTeam"))
            .ok("201", "The new team.", schema_ref("Team"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );

    let meta = "Metadata";
    paths.add(
        &format!("{C}/metadata/objects"),
        "get",
        Op::new("listObjectMetadata", meta, "Describe every object")
            .ok("200", "Objects with their fields, this company's custom fields included.", data_list(schema_ref("ObjectMetadata")))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/metadata/objects/{{object}}"),
        "get",
        Op::new("getObjectMetadata", meta, "Describe one object")
            .ok("200", "The object and its fields.", schema_ref("ObjectMetadata"))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/metadata/objects/{{object}}/fields"),
        "post",
        Op::new("createCustomField", meta, "Add a custom field")
            .description("Admins only. At most 100 custom fields per object. The field's API name is `cf_<name>`; records carry it beside the standard fields.")
            .body(schema_ref("NewCustomField"))
            .ok("201", "The new field.", schema_ref("FieldMetadata"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/metadata/objects/{{object}}/fields/{{name}}"),
        "delete",
        Op::new("deleteCustomField", meta, "Remove a custom field").description("Admins only.").no_content("Removed.").problems(ADMIN),
    );

    let audit = "Audit";
    paths.add(
        &format!("{C}/audit"),
        "get",
        Op::new("listAuditEntries", audit, "Read the company's audit trail")
            .description("Admins only. Every change, newest first, with who made it and from where.")
            .params(
                ["AuditBefore", "AuditLimit", "AuditActorId", "AuditObject", "AuditRecordId", "AuditAction", "AuditFrom", "AuditTo"]
                    .iter()
                    .map(|p| param_ref(p))
                    .collect(),
            )
            .ok("200", "A page of entries.", schema_ref("AuditPage"))
            .problems(ADMIN)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &format!("{C}/audit/verify"),
        "get",
        Op::new("verifyAuditTrail", audit, "Verify the audit hash chain")
            .description("Admins only. Recomputes the company's chain and reports the first entry that does not match.")
            .ok("200", "The result; `ok` is false when the chain is broken.", schema_ref("AuditVerifyReport"))
            .problems(ADMIN),
    );

    let stats = "Stats";
    paths.add(
        &format!("{C}/stats/leads"),
        "get",
        Op::new("getLeadStats", stats, "Lead counts")
            .ok("200", "Live leads by status, source and owner.", schema_ref("LeadStats"))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/stats/deals"),
        "get",
        Op::new("getDealStats", stats, "Deal pipeline")
            .ok("200", "Deals by stage and currency, with values.", schema_ref("DealStats"))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/stats/activities"),
        "get",
        Op::new("getActivityStats", stats, "Activity counts")
            .ok("200", "Activities by type.", schema_ref("ActivityStats"))
            .problems(MEMBER),
    );

    let data = "Data";
    let upload_body = json!({
        "required": true,
        "content": { "multipart/form-data": { "schema": {
            "type": "object",
            "required": ["file", "object"],
            "properties": {
                "file": { "type": "string", "contentMediaType": "application/octet-stream", "description": "CSV (UTF-8, UTF-8 with BOM or Windows-1252; comma, semicolon, tab or pipe separated) or XLSX, at most 200 MB." },
                "object": { "type": "string", "enum": corvid_core::meta::OBJECT_NAMES },
                "mapping": { "type": "string", "description": "JSON array, one entry per column: a field name or null to ignore the column. Suggested from the headers when absent (and when no template_id is given)." },
                "template_id": { "type": "string", "format": "uuid", "description": "A saved mapping template of this object (see import-templates), applied by column heading; columns it does not name are ignored. Instead of `mapping`." },
                "options": { "type": "string", "description": "JSON object: {\"duplicate_policy\": \"skip\" | \"update\" | \"create\", \"defaults\": {field: value}, \"run_assignment\": bool}." },
                "idempotency_key": { "type": "string", "maxLength": 255, "description": "Same as the Idempotency-Key header." },
            },
        } } },
    });
    let import_schema = json!({ "type": "object", "description": "An import: state (draft — uploaded in the web app and not yet started —, queued, running, succeeded, failed), mapping, options and counts (rows_done, rows_total once counted, created, updated, skipped, failed), the job running it, and on GET the first failed rows under `errors`.", "additionalProperties": true });
    let template_schema = json!({ "type": "object", "required": ["id", "object", "name", "mapping"], "properties": {
        "id": uuid(), "object": { "type": "string", "enum": corvid_core::meta::OBJECT_NAMES }, "name": string_max(80),
        "mapping": { "type": "object", "description": "Column heading → field name, or null for a column to ignore. Headings match ignoring case, spaces and punctuation.", "additionalProperties": { "type": ["string", "null"] } },
        "created_at": date_time(), "updated_at": nullable(date_time()), "created_by": nullable(uuid()) } });
    paths.add(
        &format!("{C}/data/export"),
        "get",
        Op::new("exportRecords", data, "Export a list as CSV or XLSX")
            .description("Takes `object`, `format` (csv, default, or xlsx) and every list parameter (filters, sort, q, fields). CSV is streamed. Cells that start with = + - @, tab or CR are prefixed with ' so spreadsheets do not run them.")
            .params(vec![
                json!({ "name": "object", "in": "query", "required": true, "schema": { "type": "string", "enum": corvid_core::meta::OBJECT_NAMES } }),
                json!({ "name": "format", "in": "query", "schema": { "type": "string", "enum": ["csv", "xlsx"], "default": "csv" } }),
            ])
            .response("200", json!({ "description": "The file, as an attachment.", "content": {
                "text/csv": { "schema": { "type": "string" } },
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } },
            } }))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &format!("{C}/data/import"),
        "get",
        Op::new("listImports", data, "Recent imports")
            .ok("200", "The latest 50 imports.", data_list(import_schema.clone()))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/data/import"),
        "post",
        Op::new("startImport", data, "Import a CSV or XLSX file")
            .description("Admins and Managers. Stores the file and queues the `import.run` job; poll the import for progress (`rows_done` of `rows_total`). The `run_assignment` option lets assignment rules pick the owner of created records; otherwise the importer owns them. Rows go through the same validation as the API; each batch of 500 commits with its progress, so an interrupted import resumes. With an `Idempotency-Key` already used, answers 200 with the existing import and imports nothing.")
            .param(param_ref("IdempotencyKey"))
            .body(upload_body.clone())
            .ok("202", "The import, queued.", import_schema.clone())
            .response("200", json!({ "description": "The import started earlier with the same idempotency key.", "content": { "application/json": { "schema": import_schema.clone() } } }))
            .problems(ADMIN)
            .problems(&[P::TooLarge, P::Invalid]),
    );
    paths.add(
        &format!("{C}/data/validate"),
        "post",
        Op::new("validateImport", data, "Dry-run an import")
            .description("Admins and Managers. Reads the header and the first 20 rows: detected format and encoding, the suggested (or given, or templated) mapping, and each row's validation errors. Writes nothing.")
            .body(upload_body)
            .ok("200", "The preview.", json!({ "type": "object", "additionalProperties": true }))
            .problems(ADMIN)
            .problems(&[P::TooLarge, P::Invalid]),
    );
    paths.add(
        &format!("{C}/data/import/{{import_id}}"),
        "get",
        Op::new("getImport", data, "An import's progress and result").ok("200", "The import.", import_schema).problems(MEMBER),
    );
    paths.add(
        &format!("{C}/data/import-templates"),
        "get",
        Op::new("listImportTemplates", data, "Saved import mapping templates")
            .param(json!({ "name": "object", "in": "query", "schema": { "type": "string", "enum": corvid_core::meta::OBJECT_NAMES }, "description": "Only templates of this object." }))
            .ok("200", "The company's templates, by object and name.", data_list(template_schema.clone()))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &format!("{C}/data/import-templates"),
        "post",
        Op::new("saveImportTemplate", data, "Save an import mapping template")
            .description("Admins and Managers. Saving under an existing name of the same object replaces that template's mapping (200); a new name creates one (201). Every field must be writable and used once. Audited.")
            .body(json!({ "type": "object", "required": ["object", "name", "mapping"], "additionalProperties": false, "properties": {
                "object": { "type": "string", "enum": corvid_core::meta::OBJECT_NAMES },
                "name": string_max(80),
                "mapping": { "type": "object", "description": "Column heading → field name, or null for a column to ignore.", "additionalProperties": { "type": ["string", "null"] } } } }))
            .ok("201", "The new template.", template_schema.clone())
            .response("200", json!({ "description": "The template, replaced.", "content": { "application/json": { "schema": template_schema.clone() } } }))
            .problems(ADMIN)
            .problems(BODY),
    );
    paths.add(
        &format!("{C}/data/import-templates/{{template_id}}"),
        "delete",
        Op::new("deleteImportTemplate", data, "Delete an import mapping template")
            .description("Admins and Managers. Audited.")
            .no_content("Deleted.")
            .problems(ADMIN),
    );
    paths.add(
        &format!("{C}/data/import/{{import_id}}/errors.csv"),
        "get",
        Op::new("getImportErrors", data, "Failed rows as CSV")
            .description("The spreadsheet row number, the reasons, and the row's original cells.")
            .response(
                "200",
                text_response("The failed rows.", "text/csv", "row,errors,First Name\n12,email is not a valid email address,Asha\n"),
            )
            .problems(MEMBER),
    );

    let jobs = "Jobs";
    let job = json!({ "type": "object", "description": "A job: kind, state (queued, running, succeeded, failed, dead, cancelled), attempts, progress (done, total, message), last error, result and times.", "additionalProperties": true });
    let schedule = json!({ "type": "object", "description": "A recurring schedule: name, kind, cron (5 fields), timezone, payload, enabled, next_run_at.", "additionalProperties": true });
    paths.add(
        &format!("{C}/jobs"),
        "get",
        Op::new("listJobs", jobs, "The company's jobs")
            .description("Newest first; filter with `state` and `kind`, page with `cursor` and `limit` (≤ 200).")
            .params(vec![
                json!({ "name": "state", "in": "query", "schema": { "type": "string", "enum": ["queued", "running", "succeeded", "failed", "dead", "cancelled"] } }),
                json!({ "name": "kind", "in": "query", "schema": { "type": "string" } }),
                json!({ "name": "cursor", "in": "query", "schema": { "type": "string" } }),
                json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200 } }),
            ])
            .ok("200", "A page of jobs.", json!({ "type": "object", "properties": { "data": { "type": "array", "items": job.clone() }, "next_cursor": { "type": ["string", "null"] } } }))
            .problems(ADMIN)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &format!("{C}/jobs"),
        "post",
        Op::new("enqueueJob", jobs, "Start a job")
            .description("Only kinds tenants may start (`audit.verify`). With an idempotency key seen before, answers 200 with the existing job.")
            .param(param_ref("IdempotencyKey"))
            .body(json!({ "type": "object", "required": ["kind"], "additionalProperties": false, "properties": {
                "kind": { "type": "string" }, "payload": { "type": "object" }, "run_at": date_time(),
                "max_attempts": { "type": "integer", "minimum": 1 }, "idempotency_key": string_max(255) } }))
            .ok("201", "The job, queued.", job.clone())
            .response("200", json!({ "description": "The existing job with this idempotency key.", "content": { "application/json": { "schema": job.clone() } } }))
            .problems(ADMIN)
            .problems(&[P::Invalid]),
    );
    paths.add(&format!("{C}/jobs/{{job_id}}"), "get", Op::new("getJob", jobs, "A job").ok("200", "The job.", job.clone()).problems(ADMIN));
    paths.add(
        &format!("{C}/jobs/{{job_id}}/cancel"),
        "post",
        Op::new("cancelJob", jobs, "Cancel a job")
            .description("A queued job is cancelled at once; a running one stops at its next progress report.")
            .ok("200", "The job.", job.clone())
            .problems(ADMIN)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/jobs/{{job_id}}/retry"),
        "post",
        Op::new("retryJob", jobs, "Retry a failed, dead or cancelled job")
            .ok("200", "The job, queued again.", job)
            .problems(ADMIN)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/job-schedules"),
        "get",
        Op::new("listJobSchedules", jobs, "Recurring schedules").ok("200", "The schedules.", data_list(schedule.clone())).problems(ADMIN),
    );
    paths.add(
        &format!("{C}/job-schedules"),
        "post",
        Op::new("createJobSchedule", jobs, "Create a recurring schedule")
            .body(json!({ "type": "object", "required": ["name", "kind", "cron"], "additionalProperties": false, "properties": {
                "name": string_max(100), "kind": { "type": "string" }, "cron": { "type": "string", "description": "Five fields: minute hour day-of-month month day-of-week." },
                "timezone": { "type": "string" }, "payload": { "type": "object" }, "enabled": { "type": "boolean" } } }))
            .ok("201", "The schedule.", schedule.clone())
            .problems(ADMIN)
            .problems(&[P::Conflict, P::Invalid]),
    );
    paths.add(
        &format!("{C}/job-schedules/{{schedule_id}}"),
        "patch",
        Op::new("updateJobSchedule", jobs, "Change a schedule")
            .body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "cron": { "type": "string" }, "timezone": { "type": "string" }, "payload": { "type": "object" }, "enabled": { "type": "boolean" } } }))
            .ok("200", "The schedule.", schedule)
            .problems(ADMIN)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &format!("{C}/job-schedules/{{schedule_id}}"),
        "delete",
        Op::new("deleteJobSchedule", jobs, "Delete a schedule").no_content("Deleted.").problems(ADMIN),
    );

    let docs = "Docs";
    paths.add(
        "/api/openapi.json",
        "get",
        Op::new("getOpenApiDocument", docs, "This OpenAPI document").public().ok(
            "200",
            "The OpenAPI 3.1 document.",
            json!({ "type": "object" }),
        ),
    );
    paths.add(
        "/api/docs",
        "get",
        Op::new("getApiDocs", docs, "API reference page")
            .description("Swagger UI for this document.")
            .public()
            .response("200", text_response("HTML page.", "text/html", "<!DOCTYPE html>…")),
    );
    paths.add(
        "/api/docs/{file}",
        "get",
        Op::new("getApiDocsAsset", docs, "A file of the API reference page")
            .public()
            .response(
                "200",
                json!({
                    "description": "The file, cacheable for a year.",
                    "content": {
                        "text/css": { "schema": { "type": "string" } },
                        "text/javascript": { "schema": { "type": "string" } },
                    },
                }),
            )
            .problems(&[P::NotFound]),
    );

    let ops = "Operations";
    paths.add(
        "/healthz",
        "get",
        Op::new("healthz", ops, "Liveness").public().response("200", text_response("The process is up.", "text/plain", "ok")),
    );
    paths.add(
        "/readyz",
        "get",
        Op::new("readyz", ops, "Readiness")
            .public()
            .response("200", text_response("The database is reachable.", "text/plain", "ready"))
            .response("503", text_response("The database is not reachable.", "text/plain", "database not reachable")),
    );
    paths.add(
        "/metrics",
        "get",
        Op::new("getMetrics", ops, "Prometheus metrics")
            .description("Request counts and latency sums by method, route and status, in the Prometheus text format.")
            .public()
            .response(
                "200",
                text_response("Metrics.", "text/plain", "corvid_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1\n"),
            ),
    );
}

fn list_params(n: &Names) -> Vec<Value> {
    vec![
        json!({
            "name": "filter", "in": "query", "style": "deepObject", "explode": true,
            "schema": schema_ref(&n.s("Filter")),
            "description": "`filter[field]=value` (equals) or `filter[field][op]=value` with op one of eq, ne, lt, lte, gt, gte, in (comma-separated), contains, is_null (true/false). Conditions are ANDed. Deleted records are left out unless a condition names `deleted_at`.",
        }),
        json!({
            "name": "sort", "in": "query", "style": "form", "explode": false,
            "schema": { "type": "array", "maxItems": 5, "items": schema_ref(&n.s("SortKey")) },
            "description": "Comma-separated sort keys, `-` for descending, e.g. `-created_at,last_name`. Default `-created_at`; ties are ordered by id.",
        }),
        param_ref("Q"),
        param_ref("Cursor"),
        param_ref("Limit"),
        fields_param(n),
    ]
}

fn fields_param(n: &Names) -> Value {
    json!({
        "name": "fields", "in": "query", "style": "form", "explode": false,
        "schema": { "type": "array", "items": schema_ref(&n.s("FieldName")) },
        "description": "Only these fields, comma-separated (`id`, `object` and `version` are always included).",
    })
}

fn history_params() -> Vec<Value> {
    ["AuditBefore", "AuditLimit", "AuditActorId", "AuditAction", "AuditFrom", "AuditTo"].iter().map(|p| param_ref(p)).collect()
}

fn object_paths(o: &ObjectDef, paths: &mut Paths) {
    let n = Names::of(o);
    let tag = o.label_plural.as_str();
    let base = format!("{C}/{}", o.name);
    let one = &o.singular;
    let many = &o.name;
    let writes: &[Problem] = &[P::Forbidden];

    paths.add(
        &base,
        "get",
        Op::new(&format!("list{}", n.many), tag, &format!("List {many}"))
            .description("Filtered, searched, sorted and paged with a cursor.")
            .params(list_params(&n))
            .ok("200", &format!("A page of {many}."), schema_ref(&n.s("Page")))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    let required = create_required(o);
    let required_text = if required.is_empty() { String::new() } else { format!(" Required: {}.", required.join(", ")) };
    paths.add(
        &base,
        "post",
        Op::new(&format!("create{}", n.one), tag, &format!("Create a {one}"))
            .description(&format!(
                "Fields left out take their defaults.{required_text} Send an Idempotency-Key to make retries safe. Roles that can only read get 403."
            ))
            .param(param_ref("IdempotencyKey"))
            .body(schema_ref(&n.s("Create")))
            .response(
                "201",
                json!({
                    "description": format!("The new {one} (or, for a replayed Idempotency-Key, the one created first)."),
                    "headers": { "Location": header_ref("Location"), "ETag": header_ref("ETag"), "Idempotent-Replayed": header_ref("IdempotentReplayed") },
                    "content": { "application/json": { "schema": schema_ref(&n.one) } },
                }),
            )
            .problems(MEMBER)
            .problems(BODY)
            .problems(writes)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{base}/search"),
        "post",
        Op::new(&format!("search{}", n.many), tag, &format!("Search {many}"))
            .description("Like the list, with the query in the body: groups of conditions (AND within a group, OR between groups).")
            .body(schema_ref(&n.s("Search")))
            .ok("200", &format!("A page of {many}."), schema_ref(&n.s("Page")))
            .problems(MEMBER)
            .problems(BODY),
    );
    paths.add(
        &format!("{base}/bulk"),
        "post",
        Op::new(&format!("bulk{}", n.many), tag, &format!("Create, update, delete or restore many {many}"))
            .description("Up to 500 records in one transaction: all succeed or nothing changes. Errors name the item, as `items[i].field`.")
            .body(schema_ref(&n.s("Bulk")))
            .ok("200", "The records after the action.", schema_ref(&n.s("BulkResult")))
            .problems(MEMBER)
            .problems(BODY)
            .problems(writes),
    );
    let item = format!("{base}/{{id}}");
    paths.add(
        &item,
        "get",
        Op::new(&format!("get{}", n.one), tag, &format!("Show a {one}"))
            .description("Deleted records are shown too (with `deleted_at` set).")
            .param(fields_param(&n))
            .response("200", record_response(&format!("The {one}."), &n.one))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &item,
        "patch",
        Op::new(&format!("update{}", n.one), tag, &format!("Change a {one}"))
            .description("Send only the fields that change, and the version they are based on (If-Match or `version`): without it the answer is 428, with a stale one 412.")
            .param(param_ref("IfMatch"))
            .body(schema_ref(&n.s("Input")))
            .response("200", record_response(&format!("The {one} after the change."), &n.one))
            .problems(MEMBER)
            .problems(BODY)
            .problems(writes)
            .problems(&[P::PreconditionFailed, P::PreconditionRequired]),
    );
    let delete_text = match o.delete_mode {
        DeleteMode::SoftDelete => {
            format!("Soft-deletes the {one}: it leaves lists and can be restored. If-Match is optional; a stale version is a 412.")
        }
        DeleteMode::Deactivate => {
            format!("{} are never deleted: this deactivates the {one} (`is_active = false`); restore reactivates it. If-Match is optional; a stale version is a 412.", o.label_plural)
        }
    };
    paths.add(
        &item,
        "delete",
        Op::new(&format!("delete{}", n.one), tag, &format!("Delete a {one}"))
            .description(&delete_text)
            .param(param_ref("IfMatch"))
            .response("200", record_response(&format!("The {one} as it is now."), &n.one))
            .problems(MEMBER)
            .problems(writes)
            .problems(&[P::PreconditionFailed]),
    );
    paths.add(
        &format!("{item}/restore"),
        "post",
        Op::new(&format!("restore{}", n.one), tag, &format!("Restore a {one}"))
            .description("Undoes a delete (or a deactivation). Restoring a live record changes nothing. A record merged into another cannot be restored (409, naming the survivor).")
            .response("200", record_response(&format!("The {one} as it is now."), &n.one))
            .problems(MEMBER)
            .problems(writes),
    );
    paths.add(
        &format!("{item}/history"),
        "get",
        Op::new(&format!("get{}History", n.one), tag, &format!("Change history of a {one}"))
            .description("The audit entries of this record, newest first.")
            .params(history_params())
            .ok("200", "A page of audit entries.", schema_ref("AuditPage"))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    paths.add(
        &format!("{item}/timeline"),
        "get",
        Op::new(&format!("get{}Timeline", n.one), tag, &format!("Timeline of a {one}"))
            .description("Linked activities and tasks and the record's changes, newest first.")
            .ok("200", "The timeline.", schema_ref("Timeline"))
            .problems(MEMBER),
    );
    if o.name == "activities" {
        paths.add(
            &format!("{base}/timeline"),
            "get",
            Op::new("listActivityFeed", tag, "Company activity feed")
                .description(
                    "Every activity of the company, newest first by `activity_date` unless sorted otherwise; takes the list parameters.",
                )
                .params(list_params(&n))
                .ok("200", "A page of activities.", schema_ref(&n.s("Page")))
                .problems(MEMBER)
                .problems(&[P::Invalid]),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Accounts and the edge: password reset, two-step sign-in, sessions, system log
// ---------------------------------------------------------------------------------------

fn security_schemas(put: &mut impl FnMut(&str, Value)) {
    let code =
        json!({ "type": "string", "maxLength": 40, "description": "The 6-digit code of the authenticator app.", "examples": ["287082"] });
    let recovery = json!({ "type": "string", "maxLength": 100, "description": "One of the recovery codes (case, spaces and dashes do not matter).", "examples": ["abcd-efgh-jkmn-pqrs"] });
    put(
        "MfaChallenge",
        json!({
            "type": "object",
            "required": ["mfa_required", "mfa_token", "expires_in"],
            "properties": {
                "mfa_required": { "type": "boolean", "const": true },
                "mfa_token": { "type": "string", "pattern": "^cvm_", "description": "Send it to `POST /api/v1/auth/login/mfa` with a code; it allows five tries." },
                "expires_in": { "type": "integer", "description": "Seconds the challenge stays valid." },
            },
        }),
    );
    put(
        "MfaLoginRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["mfa_token"],
            "description": "Exactly one of `code` and `recovery_code`.",
            "properties": { "mfa_token": { "type": "string" }, "code": code.clone(), "recovery_code": recovery.clone() },
        }),
    );
    put(
        "PasswordResetRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["email"],
            "properties": { "email": { "type": "string", "format": "email", "maxLength": 254 } },
        }),
    );
    put("PasswordResetAccepted", json!({ "type": "object", "required": ["detail"], "properties": { "detail": { "type": "string" } } }));
    put(
        "PasswordResetConfirm",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["token", "new_password"],
            "properties": {
                "token": { "type": "string", "description": "The `token` of the emailed link." },
                "new_password": { "type": "string", "minLength": 10, "maxLength": 200, "format": "password" },
            },
        }),
    );
    put(
        "SessionInfo",
        json!({
            "type": "object",
            "required": ["id", "kind", "created_at", "last_used_at", "ip", "user_agent", "current"],
            "properties": {
                "id": { "type": "string", "description": "Refresh-family id (API) or an opaque id (web); never a secret." },
                "kind": { "type": "string", "enum": ["api", "web"] },
                "created_at": date_time(),
                "last_used_at": with(date_time(), json!({ "description": "Last refresh (API) or page view, to within minutes (web)." })),
                "ip": { "type": ["string", "null"] },
                "user_agent": { "type": ["string", "null"] },
                "current": { "type": "boolean", "description": "The session of the calling access token." },
            },
        }),
    );
    put(
        "SecurityEvent",
        json!({
            "type": "object",
            "required": ["id", "at", "action"],
            "properties": {
                "id": uuid(),
                "at": date_time(),
                "action": { "type": "string", "examples": ["signed_in", "password_reset", "two_factor_enabled", "session_revoked"] },
                "detail": { "type": ["string", "null"] },
                "ip": { "type": ["string", "null"] },
                "user_agent": { "type": ["string", "null"] },
                "request_id": { "type": ["string", "null"] },
            },
        }),
    );
    put(
        "MfaStatus",
        json!({
            "type": "object",
            "required": ["totp_enabled", "totp_pending", "recovery_codes_left"],
            "properties": {
                "totp_enabled": { "type": "boolean" },
                "totp_pending": { "type": "boolean", "description": "Enrolment started but not confirmed with a code." },
                "recovery_codes_left": { "type": "integer" },
            },
        }),
    );
    put(
        "TotpEnrolment",
        json!({
            "type": "object",
            "required": ["secret", "otpauth_uri"],
            "properties": {
                "secret": { "type": "string", "description": "Base32 key to type into the authenticator app." },
                "otpauth_uri": { "type": "string", "format": "uri", "description": "The same as an `otpauth://totp/…` URI (SHA-1, 6 digits, 30 s), for a QR code." },
            },
        }),
    );
    put(
        "TotpConfirm",
        json!({ "type": "object", "additionalProperties": false, "required": ["code"], "properties": { "code": code.clone() } }),
    );
    put(
        "Reauthentication",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["password"],
            "description": "The password and exactly one of `code` and `recovery_code`.",
            "properties": { "password": { "type": "string", "format": "password" }, "code": code, "recovery_code": recovery },
        }),
    );
    put(
        "RecoveryCodes",
        json!({
            "type": "object",
            "required": ["recovery_codes"],
            "properties": { "recovery_codes": { "type": "array", "items": { "type": "string" }, "minItems": 10, "maxItems": 10, "description": "Shown only now; each works once." } },
        }),
    );
    put(
        "LogEntry",
        json!({
            "type": "object",
            "required": ["id", "at", "level", "target", "message", "fields", "request_id", "node"],
            "properties": {
                "id": uuid(),
                "at": date_time(),
                "level": { "type": "string", "enum": ["error", "warn", "info", "debug", "trace"] },
                "target": { "type": "string", "description": "Where in the server it was logged; `corvid::access` is the one line per request." },
                "message": { "type": "string" },
                "fields": { "type": "object", "description": "Structured values (status, ms, method, route, error …)." },
                "request_id": { "type": ["string", "null"] },
                "node": { "type": "string", "description": "Host and process that wrote it." },
            },
        }),
    );
    put(
        "LogPage",
        json!({
            "type": "object",
            "required": ["data", "next_cursor"],
            "properties": { "data": { "type": "array", "items": schema_ref("LogEntry") }, "next_cursor": { "type": ["string", "null"] } },
        }),
    );
}

fn security_paths(paths: &mut Paths) {
    let v1 = "/api/v1";
    let auth = "Auth";
    let me = "Me";
    paths.add(
        &format!("{v1}/auth/login/mfa"),
        "post",
        Op::new("loginMfa", auth, "Finish a two-step sign-in")
            .description("Sends the `mfa_token` from sign-in with an authenticator code or a recovery code. Five wrong codes end the challenge; repeated failures lock the second step for a while (429).")
            .public()
            .body(schema_ref("MfaLoginRequest"))
            .ok("200", "Signed in.", schema_ref("Session"))
            .problems(BODY)
            .problems(&[P::Unauthorized, P::TooManyRequests]),
    );
    paths.add(
        &format!("{v1}/auth/password-reset"),
        "post",
        Op::new("requestPasswordReset", auth, "Email a link to set a new password")
            .description("Always 202 with the same body, whether or not an account exists. An active account gets a single-use link valid for 30 minutes (at most three an hour). Throttled per client address and per email (429).")
            .public()
            .body(schema_ref("PasswordResetRequest"))
            .ok("202", "Accepted.", schema_ref("PasswordResetAccepted"))
            .problems(BODY)
            .problems(&[P::TooManyRequests]),
    );
    paths.add(
        &format!("{v1}/auth/password-reset/confirm"),
        "post",
        Op::new("confirmPasswordReset", auth, "Set a new password with an emailed token")
            .description("Sets the password and signs the account out everywhere (browser sessions and API sessions; personal API tokens stay). An unknown, used or expired token is a 400 naming `token`.")
            .public()
            .body(schema_ref("PasswordResetConfirm"))
            .no_content("Password set.")
            .problems(BODY)
            .problems(&[P::TooManyRequests]),
    );
    paths.add(
        &format!("{v1}/auth/sessions"),
        "get",
        Op::new("listSessions", me, "Where the caller is signed in")
            .description("API sign-ins (refresh families) and browser sessions that are still live, most recently used first.")
            .ok("200", "The sessions.", data_list(schema_ref("SessionInfo")))
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/auth/sessions/{{session_id}}"),
        "delete",
        Op::new("revokeSession", me, "Sign one session out")
            .description("Its access tokens and refresh token stop working at once.")
            .no_content("Signed out.")
            .problems(&[P::BadRequest, P::Unauthorized, P::NotFound]),
    );
    paths.add(
        &format!("{v1}/auth/logout-all"),
        "post",
        Op::new("logoutEverywhere", me, "Sign out everywhere")
            .description(
                "Ends every session of the caller, this one included. Personal API tokens are not sessions and stay until revoked.",
            )
            .no_content("Signed out everywhere.")
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/me/security-events"),
        "get",
        Op::new("listSecurityEvents", me, "The caller's security log")
            .description("The latest 100 sign-ins, password changes and resets, second-factor changes and revoked sessions.")
            .ok("200", "Newest first.", data_list(schema_ref("SecurityEvent")))
            .problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/auth/mfa"),
        "get",
        Op::new("getMfaStatus", me, "Two-step sign-in status").ok("200", "Status.", schema_ref("MfaStatus")).problems(&[P::Unauthorized]),
    );
    paths.add(
        &format!("{v1}/auth/mfa/totp"),
        "post",
        Op::new("enrolTotp", me, "Start two-step sign-in (TOTP)")
            .description("Makes a new secret for an authenticator app (RFC 6238: SHA-1, 6 digits, 30 seconds). It takes effect once confirmed with a code. 409 if it is already on.")
            .ok("201", "The secret, shown now only.", schema_ref("TotpEnrolment"))
            .problems(&[P::Unauthorized, P::Conflict]),
    );
    paths.add(
        &format!("{v1}/auth/mfa/totp/confirm"),
        "post",
        Op::new("confirmTotp", me, "Turn two-step sign-in on")
            .description("Confirms enrolment with the code the app shows now, and returns ten single-use recovery codes (stored hashed; shown only now).")
            .body(schema_ref("TotpConfirm"))
            .ok("200", "On; the recovery codes.", schema_ref("RecoveryCodes"))
            .problems(BODY)
            .problems(&[P::Unauthorized, P::Conflict]),
    );
    paths.add(
        &format!("{v1}/auth/mfa/totp/disable"),
        "post",
        Op::new("disableTotp", me, "Turn two-step sign-in off")
            .description("Needs the password and a current code or a recovery code (each wrong one is a 422 naming it; repeated failures lock for a while).")
            .body(schema_ref("Reauthentication"))
            .no_content("Off.")
            .problems(BODY)
            .problems(&[P::Unauthorized, P::Conflict, P::TooManyRequests]),
    );
    paths.add(
        &format!("{v1}/auth/mfa/recovery-codes"),
        "post",
        Op::new("replaceRecoveryCodes", me, "Make new recovery codes")
            .description("Needs the password and a current code or a recovery code. The old codes stop working.")
            .body(schema_ref("Reauthentication"))
            .ok("200", "The new codes.", schema_ref("RecoveryCodes"))
            .problems(BODY)
            .problems(&[P::Unauthorized, P::Conflict, P::TooManyRequests]),
    );
    let query =
        |name: &str, schema: Value, description: &str| json!({ "name": name, "in": "query", "schema": schema, "description": description });
    paths.add(
        &format!("{C}/admin/logs"),
        "get",
        Op::new("listSystemLog", "System log", "The company's system log (Admins)")
            .description("Structured server log entries of this company's requests, newest first: one `corvid::access` line per request (status, duration, route) plus info, warnings and errors logged while serving it. Kept for `CORVID_LOG_RETENTION_DAYS` (default 14). The route is under the company because Admins are Admins of a company: entries of other companies, and of requests whose company was not proven, are never shown.")
            .params(vec![
                query("level", json!({ "type": "string", "enum": ["error", "warn", "info", "debug", "trace"] }), "At least this severe (`warn`: warnings and errors)."),
                query("q", json!({ "type": "string", "maxLength": 200 }), "Text in the message, target or fields (case-insensitive)."),
                query("request_id", json!({ "type": "string", "maxLength": 100 }), "One request's entries (the `x-request-id` of a response)."),
                query("since", date_time(), "Entries at or after this time."),
                query("until", date_time(), "Entries at or before this time."),
                query("cursor", json!({ "type": "string" }), "`next_cursor` of the previous page."),
                query("limit", json!({ "type": "integer", "minimum": 1, "maximum": 200, "default": 100 }), "Page size."),
            ])
            .ok("200", "A page of entries.", schema_ref("LogPage"))
            .problems(ADMIN),
    );
}

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Lead qualification and conversion (`api::leads`)
// ---------------------------------------------------------------------------------------

fn lead_journey_paths(paths: &mut Paths) {
    let leads = "Leads";
    let text = |max: usize| json!({ "type": ["string", "null"], "maxLength": max });
    let score = json!({ "type": ["integer", "null"], "minimum": 0, "maximum": 10 });
    let check = json!({ "type": "object", "properties": {
        "key": { "type": "string", "enum": ["not_converted", "qualified", "min_score", "consent"] },
        "field": { "type": "string" }, "label": { "type": "string" }, "required": { "type": "boolean" },
        "met": { "type": "boolean" }, "detail": { "type": "string" } } });
    let eligibility = json!({ "type": "object", "description": "The company's conversion rules as a checklist; `eligible` when every required check is met.",
        "properties": { "eligible": { "type": "boolean" }, "auto_convert": { "type": "boolean" }, "checks": { "type": "array", "items": check } } });
    let qualification = json!({ "type": "object", "description": "BANT scores and notes, MEDDICC answers, completeness (percent answered), the suggested outcome with reasons, the eligibility checklist and the decision history (newest first).",
        "properties": {
            "lead_id": uuid(), "version": { "type": "integer" }, "status": { "type": "string" },
            "qualification_reason": { "type": ["string", "null"] }, "recycle_date": { "type": ["string", "null"], "format": "date" },
            "bant": { "type": "array", "items": { "type": "object", "properties": { "key": { "type": "string", "enum": ["budget", "authority", "need", "timeline"] }, "label": { "type": "string" }, "score": score.clone(), "notes": { "type": ["string", "null"] } } } },
            "meddicc": { "type": "array", "items": { "type": "object", "properties": { "key": { "type": "string" }, "label": { "type": "string" }, "value": { "type": ["string", "null"] } } } },
            "completeness": { "type": "object", "properties": { "bant": { "type": "integer" }, "meddicc": { "type": "integer" }, "overall": { "type": "integer" } } },
            "suggestion": { "type": "object", "properties": { "outcome": { "type": "string", "enum": ["qualified", "unqualified", "undecided"] }, "bant_total": { "type": ["integer", "null"] }, "reasons": { "type": "array", "items": { "type": "string" } } } },
            "eligibility": eligibility.clone(),
            "history": { "type": "array", "items": { "type": "object", "additionalProperties": true } },
        } });
    paths.add(
        &format!("{C}/leads/{{id}}/qualification"),
        "get",
        Op::new("getLeadQualification", leads, "A lead's qualification")
            .ok("200", "Answers, completeness, suggested outcome, eligibility checklist and history.", qualification.clone())
            .problems(MEMBER),
    );
    let bant_answers: Map<String, Value> = [
        ("budget_score", score.clone()),
        ("budget_notes", text(20_000)),
        ("authority_score", score.clone()),
        ("authority_notes", text(20_000)),
        ("need_score", score.clone()),
        ("need_notes", text(20_000)),
        ("timeline_score", score.clone()),
        ("timeline_notes", text(20_000)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let meddicc_answers: Map<String, Value> =
        ["metrics", "economic_buyer", "decision_criteria", "decision_process", "identify_pain", "champion", "competition"]
            .iter()
            .map(|k| (k.to_string(), text(20_000)))
            .collect();
    paths.add(
        &format!("{C}/leads/{{id}}/qualify"),
        "post",
        Op::new("qualifyLead", leads, "Record qualification answers and the outcome")
            .description("Stores the answers of one framework and, with `outcome`, the decision: `qualified`; or `unqualified` with a `reason` and an `unqualified_action` of `recycle` (back to nurturing on `recycle_date`, which must be after today) or `disqualify`. When the company's rules enable automatic conversion and the qualified lead meets them, the lead is converted in the same transaction (`auto_conversion`). A converted lead answers 409.")
            .body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "framework": { "type": "string", "enum": ["bant", "meddicc"], "description": "Required with `answers`." },
                "answers": { "description": "Answers of the framework; unknown keys are errors naming `answers.<key>`.", "oneOf": [
                    { "title": "BANT", "type": "object", "additionalProperties": false, "properties": bant_answers },
                    { "title": "MEDDICC", "type": "object", "additionalProperties": false, "properties": meddicc_answers } ] },
                "outcome": { "type": "string", "enum": ["qualified", "unqualified"] },
                "reason": string_max(255),
                "unqualified_action": { "type": "string", "enum": ["recycle", "disqualify"] },
                "recycle_date": { "type": "string", "format": "date" },
                "version": { "type": "integer", "description": "Optional: the lead version the answers are based on (412 when stale)." } } }))
            .ok("200", "The lead, its qualification, and what happened to an automatic conversion.", json!({ "type": "object", "properties": {
                "lead": schema_ref("Lead"), "qualification": qualification,
                "auto_conversion": { "type": "object", "properties": { "attempted": { "type": "boolean" }, "converted": { "type": "boolean" }, "reason": { "type": "string" }, "conversion": { "type": "object" } } } } }))
            .problems(MEMBER)
            .problems(BODY)
            .problems(&[P::Forbidden, P::Conflict, P::PreconditionFailed]),
    );
    paths.add(
        &format!("{C}/leads/{{id}}/risk-score"),
        "get",
        Op::new("getLeadRiskScore", leads, "A lead's risk score")
            .description("0-100 from explained factors: no economic buyer, no activity linked to the lead in `inactive_days`, unknown budget, a competitor in MEDDICC competition, only low-influence people engaged, and lead age. Levels: low under 30, medium under 60, high.")
            .param(json!({ "name": "inactive_days", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 365, "default": 14 }, "description": "Days without activity after which the lead counts as cold." }))
            .ok("200", "The score, its level and every factor.", json!({ "type": "object", "properties": {
                "score": { "type": "integer", "minimum": 0, "maximum": 100 }, "level": { "type": "string", "enum": ["low", "medium", "high"] },
                "inactive_days": { "type": "integer" },
                "factors": { "type": "array", "items": { "type": "object", "properties": {
                    "key": { "type": "string", "enum": ["no_economic_buyer", "no_recent_activity", "unknown_budget", "competitor_present", "low_influence", "lead_age"] },
                    "label": { "type": "string" }, "applies": { "type": "boolean" }, "points": { "type": "integer" }, "max": { "type": "integer" }, "detail": { "type": "string" } } } } } }))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    let rules = json!({ "type": "object", "additionalProperties": false, "properties": {
        "require_qualified": { "type": "boolean", "default": true }, "min_score": { "type": ["integer", "null"], "minimum": 0, "maximum": 100 },
        "require_consent": { "type": "boolean", "default": false }, "auto_convert": { "type": "boolean", "default": false },
        "auto_create_deal": { "type": "boolean", "default": false } } });
    paths.add(
        &format!("{C}/data/conversion/rules"),
        "get",
        Op::new("getConversionRules", "Data", "Lead conversion rules")
            .ok("200", "The company's rules (defaults when never set).", rules.clone())
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/data/conversion/rules"),
        "put",
        Op::new("putConversionRules", "Data", "Set lead conversion rules")
            .description("Admins only. Replaces the rule set; omitted keys take their defaults. Audited.")
            .body(rules.clone())
            .ok("200", "The stored rules.", rules)
            .problems(ADMIN)
            .problems(BODY),
    );
    let suggestion = json!({ "type": "object", "properties": { "id": uuid(), "number": { "type": "string" }, "score": { "type": "integer" }, "reasons": { "type": "array", "items": { "type": "string" } } }, "additionalProperties": true });
    paths.add(
        &format!("{C}/leads/{{id}}/convert"),
        "get",
        Op::new("previewLeadConversion", leads, "Prepare a conversion")
            .description("Existing accounts that match the lead (normalised company name, website or email domain, GSTIN) and contacts with its email or phone, the new account and contact as the lead would create them, and the eligibility checklist. `name`, `website` and `gstin` refine the organisation used for matching.")
            .params(["name", "website", "gstin"].iter().map(|n| json!({ "name": n, "in": "query", "schema": string_max(255) })).collect())
            .ok("200", "Suggestions and prefills.", json!({ "type": "object", "properties": {
                "lead": schema_ref("Lead"), "converted": { "type": "boolean" }, "eligibility": eligibility, "can_override": { "type": "boolean" },
                "suggestions": { "type": "object", "properties": {
                    "accounts": { "type": "array", "items": suggestion.clone() }, "contacts": { "type": "array", "items": suggestion },
                    "account_prefill": { "type": "object" }, "contact_prefill": { "type": "object" } } } } }))
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
    let pick = |what: &str| {
        json!({ "type": "object", "additionalProperties": false, "description": format!("Either `new` (fields of a new {what}, over the values prefilled from the lead) or `existing_id`. Default: a new {what} from the lead."),
        "properties": { "new": { "type": "object" }, "existing_id": uuid() } })
    };
    let conversion = json!({ "type": "object", "properties": {
        "lead": schema_ref("Lead"), "account": schema_ref("Account"), "contact": schema_ref("Contact"),
        "deal": { "oneOf": [schema_ref("Deal"), { "type": "null" }] }, "activity": { "oneOf": [schema_ref("Activity"), { "type": "null" }] },
        "links": { "type": "object", "properties": { "lead_id": uuid(), "account_id": uuid(), "contact_id": uuid(), "deal_id": nullable(uuid()), "activity_id": nullable(uuid()) } },
        "created": { "type": "object", "properties": { "account": { "type": "boolean" }, "contact": { "type": "boolean" }, "deal": { "type": "boolean" }, "activity": { "type": "boolean" } } },
        "override_used": { "type": "boolean" }, "automatic": { "type": "boolean" }, "converted_at": date_time(), "converted_by": nullable(uuid()) } });
    paths.add(
        &format!("{C}/leads/{{id}}/convert"),
        "post",
        Op::new("convertLead", leads, "Convert a lead (account first)")
            .description("One transaction: the account (new or existing), the contact under it (new or existing), optionally a deal and a first activity; the lead becomes converted with links to them and keeps every field. The lead's consent and do-not-disturb go to the contact: a new contact takes them as they are; an existing one keeps do-not-disturb if either has it and the newer consent decision with its time, source and text version; taking the lead's decision is written to the contact's consent log (channel `convert`). Only this endpoint marks a lead converted: an edit, bulk change or import that sets `status` (or `stage`) to `converted`, or moves a converted lead out of it, is refused with 422 naming the field. A repeat for a converted lead returns the same result with 200 and creates nothing. A lead that misses the conversion rules is refused with 422 unless an Admin or Manager sends `override_qualification: true` (audited as `conversion_override`); other roles get 403 for the override. Another company's ids are 404 and nothing is written.")
            .param(param_ref("IdempotencyKey"))
            .body(json!({ "type": "object", "additionalProperties": false, "properties": {
                "account": pick("account"), "contact": pick("contact"),
                "deal": { "type": "object", "additionalProperties": false, "properties": {
                    "name": string_max(255), "amount": { "type": ["string", "number"], "description": "Decimal in major units of `currency`." },
                    "currency": { "type": "string" }, "stage": { "type": "string" }, "close_date": { "type": "string", "format": "date" }, "description": string_max(20_000) } },
                "activity": { "type": "object", "additionalProperties": false, "properties": {
                    "type": { "type": "string", "enum": ["call", "email", "meeting", "note", "status_change", "whatsapp"] }, "subject": string_max(255), "notes": string_max(20_000) } },
                "override_qualification": { "type": "boolean", "default": false } } }))
            .ok("201", "Converted: what was created and linked.", conversion.clone())
            .response("200", json!({ "description": "The lead was converted before: the same result; nothing was created.", "headers": { "Idempotent-Replayed": header_ref("IdempotentReplayed") }, "content": { "application/json": { "schema": conversion } } }))
            .problems(MEMBER)
            .problems(BODY)
            .problems(&[P::Forbidden, P::Conflict]),
    );
}

const DESCRIPTION: &str = "\
The JSON API of Corvid, the CRM.

**Authentication.** Sign in (`POST /api/v1/auth/login`) for a short-lived JWT access token and a \
single-use refresh token, or create a personal API token (`cvd_…`) under `/api/v1/me/tokens`. \
Send either as `Authorization: Bearer <token>`.

**Companies.** Data lives under `/api/v1/companies/{company_id}`. A company the caller is not an \
active member of answers 404, exactly like one that does not exist. Admin-only routes answer 403 \
to other roles; the `read_only` role cannot change records.

**Records.** Every object (leads, accounts, contacts, deals, tasks, activities) has the same \
routes: list with filters, search, sort and cursor paging; create (with `Idempotency-Key`); show; \
change (with the version in `If-Match` or `version`, else 428; stale is 412); delete and restore; \
bulk actions; history and timeline. Money is a decimal string in major units beside its currency \
field. Companies can add custom fields (`cf_…`), which records carry beside the standard ones.

**Errors** are `application/problem+json` (RFC 9457) with `type`, `title`, `status`, `detail`, \
per-field `errors` where it helps, and the `request_id` that every response also carries in \
`x-request-id`. Unexpected failures are a 500 of the same shape; an unsupported method is a 405.";

// ---------------------------------------------------------------------------------------
// Duplicates (`api::dedupe`)
// ---------------------------------------------------------------------------------------

fn dedupe_paths(paths: &mut Paths) {
    let tag = "Duplicates";
    let candidate = json!({ "type": "object", "required": ["object", "id", "number", "title", "score", "reasons"], "properties": {
        "object": { "type": "string", "enum": ["leads", "contacts", "accounts"] }, "id": uuid(), "number": { "type": "string" },
        "title": { "type": "string" }, "score": { "type": "integer", "minimum": 0, "maximum": 100 },
        "reasons": { "type": "array", "items": { "type": "string" }, "description": "Why they match, e.g. \"same email\", \"similar name (Jon ~ John)\"." } } });
    let list = json!({ "type": "object", "required": ["record", "data"], "properties": {
        "record": { "type": "object", "properties": { "object": { "type": "string" }, "id": uuid(), "number": { "type": "string" }, "title": { "type": "string" } } },
        "policy": { "type": "string", "enum": ["block", "flag", "allow"] },
        "threshold": { "type": "integer", "description": "Scores at or above this are likely duplicates." },
        "data": { "type": "array", "items": candidate.clone() } } });
    for (object, op, who) in [
        ("leads", "getLeadDuplicates", "leads and contacts"),
        ("contacts", "getContactDuplicates", "contacts"),
        ("accounts", "getAccountDuplicates", "accounts (name, website domain, GSTIN)"),
    ] {
        paths.add(
            &format!("{C}/{object}/{{id}}/duplicates"),
            "get",
            Op::new(op, tag, "Likely duplicates of a record")
                .description(&format!("Records among the company's {who} sharing a blocking key (normalised email, E.164 phone, GSTIN, domain, name keys) and scoring at or above the threshold, best first, with the reasons. Pairs dismissed earlier are left out. Works whatever the policy."))
                .ok("200", "The candidates.", list.clone())
                .problems(MEMBER),
        );
    }
    paths.add(
        &format!("{C}/leads/{{id}}/duplicates/dismiss"),
        "post",
        Op::new("dismissLeadDuplicate", tag, "Not a duplicate")
            .description("Remembers that the lead and `other_id` (a lead or contact) are different people: the pair is no longer listed, flagged or reported by scans. The lead is checked again, so its duplicate flag goes or moves to the next candidate. Audited.")
            .body(json!({ "type": "object", "required": ["other_id"], "additionalProperties": false, "properties": { "other_id": uuid() } }))
            .ok("200", "The lead as it is now.", json!({ "type": "object", "properties": { "dismissed": uuid(), "record": schema_ref("Lead") } }))
            .problems(MEMBER)
            .problems(BODY)
            .problems(&[P::Forbidden]),
    );
    paths.add(
        &format!("{C}/leads/merge"),
        "post",
        Op::new("mergeLeads", tag, "Merge duplicate leads")
            .description("One transaction: the survivor takes each listed field's value from the record named for it (others keep the survivor's value); activities, tasks, deals and duplicate marks of the merged leads move to the survivor; the merged leads are soft-deleted and remember the survivor, so `GET .../leads/{merged id}` answers `308` with `Location` of the survivor. Everything is audited. 422: a lead merged into itself, bad ids, a read-only or unknown field, a source outside the merge, a converted lead as merged lead. 404: an id not in this company. 409: a lead already deleted or merged. 412: a `versions` entry is stale.")
            .body(json!({ "type": "object", "required": ["survivor_id", "merged_ids"], "additionalProperties": false, "properties": {
                "survivor_id": uuid(),
                "merged_ids": { "type": "array", "minItems": 1, "maxItems": 10, "items": uuid() },
                "fields": { "type": "object", "description": "Field name → id of the record (survivor or merged) whose value the survivor keeps.", "additionalProperties": uuid() },
                "versions": { "type": "object", "description": "Optional: record id → the version the caller saw.", "additionalProperties": { "type": "integer" } } } }))
            .ok("200", "The survivor as it is now, the merged ids and how many records moved per object.", json!({ "type": "object", "properties": {
                "survivor": schema_ref("Lead"), "merged_ids": { "type": "array", "items": uuid() },
                "moved": { "type": "object", "additionalProperties": { "type": "integer" } } } }))
            .problems(MEMBER)
            .problems(BODY)
            .problems(&[P::Forbidden, P::Conflict, P::PreconditionFailed]),
    );
    paths.add(
        &format!("{C}/contacts/merge"),
        "post",
        Op::new("mergeContacts", tag, "Merge duplicate contacts")
            .description("Like merging leads: one transaction; the survivor takes each listed field's value from the record named for it; activities, tasks, deals (as primary contact), converted leads' links and duplicate marks of the merged contacts move to the survivor; the merged contacts are soft-deleted and remember the survivor, so `GET .../contacts/{merged id}` answers `308` to it and restoring one is refused (409). Do-not-disturb on any of them stays on the survivor, and the survivor becomes primary contact if a merged one was. Everything is audited. 422: a contact merged into itself, bad ids, a read-only or unknown field, a source outside the merge, contacts of different accounts. 404: an id not in this company. 409: a contact already deleted or merged. 412: a `versions` entry is stale.")
            .body(json!({ "type": "object", "required": ["survivor_id", "merged_ids"], "additionalProperties": false, "properties": {
                "survivor_id": uuid(),
                "merged_ids": { "type": "array", "minItems": 1, "maxItems": 10, "items": uuid() },
                "fields": { "type": "object", "description": "Field name → id of the record (survivor or merged) whose value the survivor keeps.", "additionalProperties": uuid() },
                "versions": { "type": "object", "description": "Optional: record id → the version the caller saw.", "additionalProperties": { "type": "integer" } } } }))
            .ok("200", "The survivor as it is now, the merged ids and how many records moved per object.", json!({ "type": "object", "properties": {
                "survivor": schema_ref("Contact"), "merged_ids": { "type": "array", "items": uuid() },
                "moved": { "type": "object", "additionalProperties": { "type": "integer" } } } }))
            .problems(MEMBER)
            .problems(BODY)
            .problems(&[P::Forbidden, P::Conflict, P::PreconditionFailed]),
    );
    let policy = json!({ "type": "object", "properties": { "policy": { "type": "string", "enum": ["block", "flag", "allow"] },
        "options": { "type": "array", "items": { "type": "string" } } } });
    paths.add(
        &format!("{C}/data/dedupe/policy"),
        "get",
        Op::new("getDedupePolicy", tag, "The duplicate policy")
            .description("`block`: a create or update (API, web, bulk) that looks like a duplicate answers 409 `/problems/duplicate` with `candidates`, and writes nothing; import rows fail with the reason. `flag` (default): the lead is saved with `is_duplicate`, `duplicate_of_id`, `duplicate_score` and `duplicate_reasons`. `allow`: no check.")
            .ok("200", "The policy.", policy.clone())
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/data/dedupe/policy"),
        "put",
        Op::new("setDedupePolicy", tag, "Change the duplicate policy")
            .description("Admins. Audited.")
            .body(json!({ "type": "object", "required": ["policy"], "additionalProperties": false, "properties": { "policy": { "type": "string", "enum": ["block", "flag", "allow"] } } }))
            .ok("200", "The policy.", policy)
            .problems(ADMIN)
            .problems(BODY),
    );
    let scan = json!({ "type": "object", "description": "A whole-base scan: state (queued, running, succeeded, failed, cancelled), its job, and counts: records re-indexed first, blocks (keys shared by 2 to 50 records), skipped keys (shared by more), pairs compared, clusters and records in them.", "additionalProperties": true });
    paths.add(
        &format!("{C}/data/dedupe/scan"),
        "post",
        Op::new("startDedupeScan", tag, "Scan the whole base for duplicates")
            .description("Admins. Queues the `dedupe.scan` job (progress on the jobs page): records are grouped by shared blocking keys in SQL, pairs inside each block are scored once, and matching records are joined into clusters. While a scan is queued or running, answers 200 with it instead of starting another.")
            .ok("202", "The scan, queued.", scan.clone())
            .response("200", json!({ "description": "The scan already queued or running.", "content": { "application/json": { "schema": scan.clone() } } }))
            .problems(ADMIN),
    );
    paths.add(
        &format!("{C}/data/dedupe/scans"),
        "get",
        Op::new("listDedupeScans", tag, "Recent duplicate scans")
            .ok("200", "The latest 50 scans.", data_list(scan.clone()))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/data/dedupe/scans/{{scan_id}}"),
        "get",
        Op::new("getDedupeScan", tag, "A duplicate scan and its clusters")
            .description("Clusters best first: `{seq, kind, size, score, members: [{object, id, number, title}], pairs: [{a, b, score, reasons}]}`. Page with `cursor` (from `next_cursor`) and `limit` (1 to 200, default 50).")
            .params(vec![
                json!({ "name": "cursor", "in": "query", "schema": { "type": "string" } }),
                json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 200 } }),
            ])
            .ok("200", "The scan with a page of clusters and `next_cursor`.", scan)
            .problems(MEMBER)
            .problems(&[P::Invalid]),
    );
}

// ---------------------------------------------------------------------------------------
// Consent, data-subject rights and data quality (`api::privacy`)
// ---------------------------------------------------------------------------------------

fn privacy_paths(paths: &mut Paths) {
    let tag = "Privacy";
    let text = |max: usize| json!({ "type": ["string", "null"], "maxLength": max });
    let entry = json!({ "type": "object", "description": "One consent decision.", "properties": {
        "id": uuid(), "object": { "type": "string", "enum": ["leads", "contacts"] }, "record_id": uuid(), "at": date_time(),
        "given": { "type": "boolean" }, "decision": { "type": "string", "enum": ["given", "withdrawn"] },
        "channel": { "type": "string", "description": "Where the decision was captured: for decisions made by editing the record the write path (`interactive`, `bulk`, `import`), otherwise the `channel` sent to the consent API." },
        "source": { "type": ["string", "null"] }, "text_version": { "type": ["string", "null"] }, "actor_id": nullable(uuid()),
        "ip": { "type": ["string", "null"] }, "note": { "type": ["string", "null"] } } });
    let person = "`{object}` is `leads` or `contacts` (other objects answer 404).";
    paths.add(
        &format!("{C}/{{object}}/{{id}}/consent"),
        "get",
        Op::new("getConsentLog", tag, "A person's consent log")
            .description(&format!("The current consent state of a lead or contact and every consent decision about them, oldest first. Decisions are logged whenever `gdpr_consent` changes through any write path (API, web forms, bulk, import) and when recorded through `POST`. {person}"))
            .ok("200", "The state and the log.", json!({ "type": "object", "properties": {
                "record": { "type": "object", "properties": { "object": { "type": "string" }, "id": uuid(), "number": { "type": "string" } } },
                "consent": { "type": "object", "properties": { "given": { "type": "boolean" }, "at": nullable(date_time()), "source": { "type": ["string", "null"] },
                    "text_version": { "type": ["string", "null"] }, "opt_in_date": nullable(date_time()), "dnd": { "type": "boolean" } } },
                "data": { "type": "array", "items": entry.clone() } } }))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/{{object}}/{{id}}/consent"),
        "post",
        Op::new("recordConsent", tag, "Record a consent decision")
            .description(&format!("Sets `gdpr_consent` (and `gdpr_consent_source`, `gdpr_consent_version` when given) through the write pipeline: a grant stamps `gdpr_consent_at` (and `opt_in_date` when empty) and must meet the consent policy (422 naming `gdpr_consent_source` or `gdpr_consent_version`); a withdrawal clears `gdpr_consent_at`. The decision is logged and audited even when it repeats the current state. Read Only members get 403. {person}"))
            .body(json!({ "type": "object", "required": ["consent", "channel"], "additionalProperties": false, "properties": {
                "consent": { "type": "boolean", "description": "true: consent given; false: withdrawn." },
                "channel": { "type": "string", "enum": corvid_store::privacy::CONSENT_CHANNELS },
                "source": text(255), "text_version": text(255), "note": text(2000),
                "ip": { "type": ["string", "null"], "description": "The person's IP address when they decided online (default: the caller's)." } } }))
            .ok("201", "The log entry and the record as it is now.", json!({ "type": "object", "properties": { "entry": entry.clone(), "record": { "type": "object" } } }))
            .problems(MEMBER)
            .problems(BODY)
            .problems(&[P::Forbidden]),
    );
    let policy = json!({ "type": "object", "additionalProperties": false, "properties": {
        "require_source": { "type": "boolean", "default": false, "description": "A grant without `gdpr_consent_source` is refused." },
        "require_version": { "type": "boolean", "default": false, "description": "A grant without `gdpr_consent_version` is refused (unless `current_text_version` fills it)." },
        "current_text_version": { "type": ["string", "null"], "maxLength": 255, "description": "Fills `gdpr_consent_version` when a grant leaves it out." } } });
    paths.add(
        &format!("{C}/privacy/consent-policy"),
        "get",
        Op::new("getConsentPolicy", tag, "The consent policy")
            .ok("200", "The policy (nothing required when never set).", policy.clone())
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/privacy/consent-policy"),
        "put",
        Op::new("putConsentPolicy", tag, "Change the consent policy")
            .description("Admins. Replaces the policy; omitted keys take their defaults. Audited.")
            .body(policy.clone())
            .ok("200", "The stored policy.", policy)
            .problems(ADMIN)
            .problems(BODY),
    );
    paths.add(
        &format!("{C}/privacy/subjects/{{object}}/{{id}}/export"),
        "get",
        Op::new("exportDataSubject", tag, "Export everything about a person")
            .description(&format!("One JSON document (sent as an attachment): the record, its activities, tasks and deals, the consent log, the record's audit history, and the other leads and contacts with the same email address or phone number. The export is audited (`privacy_export`). {person}"))
            .ok("200", "The export.", json!({ "type": "object", "properties": {
                "subject": { "type": "object" }, "exported_at": date_time(), "record": { "type": "object" },
                "activities": { "type": "array", "items": { "type": "object" } }, "tasks": { "type": "array", "items": { "type": "object" } },
                "deals": { "type": "array", "items": { "type": "object" } }, "consent_log": { "type": "array", "items": entry },
                "audit_history": { "type": "array", "items": { "type": "object" } },
                "matching_records": { "type": "object", "properties": { "leads": { "type": "array", "items": { "type": "object" } }, "contacts": { "type": "array", "items": { "type": "object" } } } } } }))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/privacy/subjects/{{object}}/{{id}}/erase"),
        "post",
        Op::new("eraseDataSubject", tag, "Erase a person's personal data")
            .description(&format!("Admins. One transaction: the lead or contact, every lead and contact with the same email or phone (and a converted lead's contact), and the free text of their activities, tasks and qualification history are anonymised: names become \"Erased\", contact details, notes and other personal fields are emptied. Records stay with their status, source, stage, amounts and dates, so reports keep their figures. The audit trail gets an `erase` row per erased field with no old or new value, and the values of earlier audit rows for those fields are redacted; `GET .../audit/verify` still verifies (rows hash a salted digest of their values; `audit.not_redactable` counts rows written before that scheme, which keep their values). Their email and phone are also replaced with `[erased]` where other records' text mentions them (audited as `erase`, earlier audit values of those fields and any audit value mentioning them redacted), and their email, phone and name in failed import rows, the system log, jobs and other stored free text (`elsewhere`). Repeating it changes nothing. {person}"))
            .ok("200", "What was anonymised.", json!({ "type": "object", "properties": {
                "subject": { "type": "object" },
                "people": { "type": "array", "items": { "type": "object", "properties": { "object": { "type": "string" }, "id": uuid(), "number": { "type": "string" }, "fields": { "type": "array", "items": { "type": "string" } } } } },
                "activities": { "type": "integer" }, "tasks": { "type": "integer" }, "consent_entries": { "type": "integer" }, "qualification_entries": { "type": "integer" },
                "audit": { "type": "object", "properties": { "redacted": { "type": "integer" }, "not_redactable": { "type": "integer" } } },
                "elsewhere": { "type": "object", "properties": {
                    "records": { "type": "array", "description": "Other records whose text mentioned the email or phone.", "items": { "type": "object", "properties": { "object": { "type": "string" }, "id": uuid(), "number": { "type": "string" }, "fields": { "type": "array", "items": { "type": "string" } } } } },
                    "rows": { "type": "object", "description": "Rows changed per table (import_errors, system_logs, jobs …).", "additionalProperties": { "type": "integer" } } } } } }))
            .problems(ADMIN),
    );
    let count = json!({ "type": ["integer", "null"] });
    paths.add(
        &format!("{C}/data/quality-report"),
        "get",
        Op::new("getQualityReport", tag, "Data quality report")
            .description("Per object (leads, contacts, accounts), computed now in one pass each: completeness of every user-entered field (records with a value and the share), and where the object has them the counts of invalid and pending validation, duplicates, high spam score, do-not-disturb and consent. Leads also report open leads (new, contacted, nurturing, qualified, recycled) and stale ones: open with no update and no activity for 30, 60 and 90 days. Deleted records are left out.")
            .ok("200", "The report.", json!({ "type": "object", "properties": { "generated_at": date_time(), "objects": { "type": "array", "items": { "type": "object", "properties": {
                "object": { "type": "string" }, "total": { "type": "integer" }, "completeness_percent": { "type": ["number", "null"] },
                "completeness": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "label": { "type": "string" }, "filled": { "type": "integer" }, "percent": { "type": ["number", "null"] } } } },
                "invalid": count.clone(), "pending_validation": count.clone(), "duplicates": count.clone(), "spam_high": count.clone(),
                "do_not_disturb": count.clone(), "with_consent": count.clone(), "open": count,
                "stale": { "type": "array", "items": { "type": "object", "properties": { "days": { "type": "integer" }, "count": { "type": "integer" } } } } } } } } }))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/data/governance/policies"),
        "get",
        Op::new("getGovernancePolicies", tag, "Governance policies in effect")
            .description("The duplicate policy, conversion rules, active scoring rule sets and assignment rules, consent policy, do-not-disturb enforcement, validation rules and erasure, each with where its value comes from (`settings`, `default`, `built-in`, `tables`), and the company's other settings.")
            .ok("200", "The policies.", json!({ "type": "object", "properties": {
                "data": { "type": "array", "items": { "type": "object", "properties": { "id": { "type": "string" }, "name": { "type": "string" }, "source": { "type": "string" }, "value": {}, "description": { "type": "string" } } } },
                "other_settings": { "type": "array", "items": { "type": "object", "properties": { "key": { "type": "string" }, "value": {} } } } } }))
            .problems(MEMBER),
    );
}

/// Lead scoring and assignment rules (`api::rules`).
fn scoring_paths(paths: &mut Paths) {
    let (scoring, assign) = ("Scoring", "Assignment");
    let condition = json!({
        "type": "object",
        "description": "A test on a lead field (`field`) or on an engagement count (`engagement`, optionally `within_days`). Text compares without case; a list value matches when any element does.",
        "properties": {
            "field": { "type": "string", "description": "A lead field (standard or `cf_…`)." },
            "engagement": { "type": "string", "enum": ["activity_logged", "email_opened", "email_clicked", "form_submitted", "meeting_held"] },
            "op": { "type": "string", "enum": ["eq", "neq", "in", "not_in", "contains", "not_contains", "starts_with", "gt", "gte", "lt", "lte", "is_set", "is_not_set"] },
            "value": { "description": "Text (at most 255 characters), a number or a boolean; a list for in/not_in; absent for is_set/is_not_set; a count for engagement." },
            "within_days": { "type": "integer", "minimum": 1, "maximum": 3650 },
        },
        "required": ["op"],
        "additionalProperties": false,
    });
    let rule = json!({ "type": "object", "required": ["name", "points"], "additionalProperties": false, "properties": {
        "name": string_max(100), "conditions": { "type": "array", "maxItems": 20, "items": condition.clone() },
        "points": { "type": "integer", "minimum": -100, "maximum": 100 }, "weight": { "type": "number", "minimum": 0, "maximum": 10, "default": 1 } } });
    let bands = json!({ "type": "object", "additionalProperties": false, "required": ["warm", "hot", "very_hot"], "description": "Lower bounds: below warm is Cold.",
        "properties": { "warm": { "type": "integer", "default": 40 }, "hot": { "type": "integer", "default": 70 }, "very_hot": { "type": "integer", "default": 90 } } });
    let decay = json!({ "type": ["object", "null"], "additionalProperties": false, "required": ["points_per_week"], "description": "Points lost per full week without activity after grace_days.",
        "properties": { "points_per_week": { "type": "integer", "minimum": 0, "maximum": 100 }, "grace_days": { "type": "integer", "minimum": 0, "maximum": 365 } } });
    let set = json!({ "type": "object", "properties": {
        "id": uuid(), "object": { "type": "string", "enum": ["leads"] }, "name": { "type": "string" }, "description": { "type": ["string", "null"] },
        "active": { "type": "boolean" }, "rules": { "type": "array", "items": rule.clone() }, "bands": bands.clone(), "decay": decay.clone(),
        "version": { "type": "integer" }, "created_at": date_time(), "updated_at": date_time(), "created_by": nullable(uuid()), "updated_by": nullable(uuid()) } });
    let set_input = json!({ "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
        "name": string_max(100), "object": { "type": "string", "enum": ["leads"], "default": "leads" }, "description": string_max(1000),
        "rules": { "type": "array", "maxItems": 100, "items": rule.clone() }, "bands": bands.clone(), "decay": decay.clone(),
        "active": { "type": "boolean", "default": false, "description": "Activate it now (the object's previous active set is deactivated)." } } });
    let set_patch = json!({ "type": "object", "additionalProperties": false, "properties": {
        "name": string_max(100), "description": { "type": ["string", "null"], "maxLength": 1000 }, "rules": { "type": "array", "maxItems": 100, "items": rule },
        "bands": bands, "decay": decay, "active": { "type": "boolean" }, "version": { "type": "integer", "description": "The version the change is based on; stale is 412." } } });
    let engagement_counts = json!({ "type": "object", "description": "Recent events to assume, by kind, e.g. {\"email_opened\": 2}.", "additionalProperties": { "type": "integer", "minimum": 0, "maximum": 1000 } });
    let contribution = json!({ "type": "object", "properties": { "rule": { "type": "string" }, "points": { "type": "integer" } } });
    let band = json!({ "type": "object", "properties": { "value": { "type": "string", "enum": ["cold", "warm", "hot", "very_hot"] }, "label": { "type": "string" }, "colour": { "type": "string" } } });
    let score_preview = json!({ "type": "object", "properties": { "rule_set": { "type": ["object", "null"] }, "score": { "type": ["integer", "null"] }, "band": band.clone(),
        "explanation": { "type": "array", "items": contribution.clone() }, "message": { "type": ["string", "null"] } } });
    let job = json!({ "type": "object", "properties": { "job": { "type": "object", "description": "The queued job (see Jobs)." }, "message": { "type": "string" }, "fallback": { "type": "boolean" } } });
    let rule_set_problems = [P::BadRequest, P::Unauthorized, P::Forbidden, P::NotFound];

    paths.add(
        &format!("{C}/scoring/rule-sets"),
        "get",
        Op::new("listScoringRuleSets", scoring, "Scoring rule sets")
            .ok("200", "Every rule set of the company, active first.", data_list(set.clone()))
            .problems(MEMBER),
    );
    paths.add(&format!("{C}/scoring/rule-sets"), "post",
        Op::new("createScoringRuleSet", scoring, "Create a scoring rule set")
            .description("Admins only. A rule gives `round(points × weight)` when all its conditions hold; the score is the sum over matching rules minus inactivity decay, clamped to 0–100, with an explanation line per rule. Invalid parts are 422 naming e.g. `rules[0].conditions[1].op`; a taken name is 409.")
            .body(set_input).ok("201", "The rule set.", set.clone()).problems(ADMIN).problems(&[P::Conflict]).problems(BODY));
    paths.add(
        &format!("{C}/scoring/rule-sets/{{rule_set_id}}"),
        "get",
        Op::new("getScoringRuleSet", scoring, "A scoring rule set").ok("200", "The rule set.", set.clone()).problems(MEMBER),
    );
    paths.add(&format!("{C}/scoring/rule-sets/{{rule_set_id}}"), "patch",
        Op::new("updateScoringRuleSet", scoring, "Change a scoring rule set")
            .description("Admins only. Absent keys stay. Changing the active set (or activating one) queues a rescore of every lead (`scoring.rescore`).")
            .body(set_patch).ok("200", "The rule set.", set.clone()).problems(&rule_set_problems).problems(&[P::Conflict, P::PreconditionFailed]).problems(BODY));
    paths.add(
        &format!("{C}/scoring/rule-sets/{{rule_set_id}}"),
        "delete",
        Op::new("deleteScoringRuleSet", scoring, "Delete a scoring rule set")
            .description("Admins only. Leads keep the scores it gave them.")
            .no_content("Deleted.")
            .problems(&rule_set_problems),
    );
    paths.add(&format!("{C}/scoring/rule-sets/{{rule_set_id}}/activate"), "post",
        Op::new("activateScoringRuleSet", scoring, "Activate a scoring rule set")
            .description("Admins only. Exactly one set per object is active: the previous one is deactivated, and every lead is rescored in the background.")
            .ok("200", "The rule set, now active.", set).problems(&rule_set_problems));
    paths.add(&format!("{C}/scoring/preview"), "post",
        Op::new("previewScore", scoring, "Score a sample lead")
            .description("Scores sample lead values (validated like a lead, errors name `values.field`) with assumed engagement, under the active set or `rule_set_id`. Writes nothing.")
            .body(json!({ "type": "object", "additionalProperties": false, "properties": { "values": { "type": "object" }, "engagement": engagement_counts.clone(), "rule_set_id": uuid() } }))
            .ok("200", "The score, band and explanation.", score_preview.clone()).problems(MEMBER).problems(BODY));
    paths.add(
        &format!("{C}/scoring/rescore"),
        "post",
        Op::new("rescoreLeads", scoring, "Rescore every lead")
            .description("Admins only. Queues `scoring.rescore` for the company (it also runs daily for decay).")
            .ok("202", "The job.", job.clone())
            .problems(ADMIN),
    );
    paths.add(&format!("{C}/scoring/predictive"), "get",
        Op::new("getPredictiveModel", scoring, "Predictive model status")
            .description("`status` is not_trained, trained or fallback (fewer than 50 converted or 50 lost leads: leads are scored by rules, `using` is `rules`). With a model: AUC on the held-out 20 %, sample counts, when it was trained and its strongest features. `available` counts the labelled leads there are now.")
            .ok("200", "The status.", json!({ "type": "object", "properties": {
                "status": { "type": "string", "enum": ["not_trained", "trained", "fallback"] }, "using": { "type": "string", "enum": ["predictive", "rules"] },
                "message": { "type": "string" }, "auc": { "type": ["number", "null"] }, "positives": { "type": "integer" }, "negatives": { "type": "integer" },
                "train_count": { "type": "integer" }, "test_count": { "type": "integer" }, "min_per_class": { "type": "integer" },
                "trained_at": nullable(date_time()), "trained_by": nullable(uuid()), "job_id": nullable(uuid()),
                "top_features": { "type": "array", "items": { "type": "object", "properties": { "feature": { "type": "string" }, "label": { "type": "string" }, "weight": { "type": "number" } } } },
                "available": { "type": "object", "properties": { "converted": { "type": "integer" }, "lost": { "type": "integer" }, "enough": { "type": "boolean" } } } } }))
            .problems(MEMBER));
    paths.add(&format!("{C}/scoring/predictive/train"), "post",
        Op::new("trainPredictiveModel", scoring, "Train the predictive model")
            .description("Admins only. Queues `scoring.predictive.train`: logistic regression on the company's converted (1) and disqualified/unqualified (0) leads over source, country, contact details, title keywords, company size bucket, engagement counts and BANT scores; 20 % held out for AUC; then every lead's `predictive_score` (probability × 100) is refreshed. With too little history the run records a fallback to rules, and `fallback` says so now. Also runs weekly.")
            .ok("202", "The job.", job).problems(ADMIN));
    paths.add(&format!("{C}/leads/{{id}}/score"), "get",
        Op::new("getLeadScore", scoring, "A lead's score card")
            .description("The rule score with band and explanation, the predictive score with its top feature contributions (or the fallback), engagement counts (all time and last 30 days), last activity and the score history (newest first).")
            .ok("200", "The score card.", json!({ "type": "object", "properties": {
                "lead_id": uuid(), "lead_score": { "type": ["integer", "null"] }, "band": band, "explanation": { "type": "array", "items": contribution },
                "rule_set": { "type": ["object", "null"] }, "predictive": { "type": "object" }, "last_activity_at": nullable(date_time()),
                "engagement": { "type": "array", "items": { "type": "object" } },
                "history": { "type": "array", "items": { "type": "object", "properties": { "at": date_time(), "score": { "type": "integer" }, "previous_score": { "type": ["integer", "null"] }, "reason": { "type": "string" }, "rule_set_id": nullable(uuid()) } } } } }))
            .problems(MEMBER));
    paths.add(&format!("{C}/leads/{{id}}/engagement"), "post",
        Op::new("recordLeadEngagement", scoring, "Record engagement on a lead")
            .description("For events from outside (email tracking, forms, meetings held elsewhere): stores the event, sets `last_activity_at` and rescores the lead in one transaction, audited. Activities logged against the lead count on their own. Read Only members get 403.")
            .body(json!({ "type": "object", "required": ["type"], "additionalProperties": false, "properties": {
                "type": { "type": "string", "enum": ["email_opened", "email_clicked", "form_submitted", "meeting_held"] },
                "occurred_at": date_time(), "source": string_max(200) } }))
            .ok("201", "The lead's score card after the event.", json!({ "type": "object" }))
            .problems(MEMBER).problems(&[P::Forbidden]).problems(BODY));

    let territory = json!({ "type": "object", "required": ["user_id"], "additionalProperties": false, "properties": {
        "name": string_max(100), "countries": { "type": "array", "items": { "type": "string", "pattern": "^[A-Za-z]{2}$" } },
        "states": { "type": "array", "items": string_max(100) }, "user_id": uuid() } });
    let strategy = json!({ "type": "string", "enum": ["user", "round_robin", "load_balanced", "territory"],
        "description": "user: `user_id`; round_robin: the active members of `team_id` (or `user_ids`) in turn, position kept per rule; load_balanced: the member with the fewest open leads; territory: the first of `territories` matching the lead's country/state." });
    let arule = json!({ "type": "object", "properties": {
        "id": uuid(), "object": { "type": "string" }, "name": { "type": "string" }, "position": { "type": "integer" }, "active": { "type": "boolean" },
        "conditions": { "type": "array", "items": condition.clone() }, "strategy": strategy.clone(), "user_id": nullable(uuid()), "team_id": nullable(uuid()),
        "user_ids": { "type": "array", "items": uuid() }, "territories": { "type": "array", "items": territory.clone() },
        "last_assigned_user_id": nullable(uuid()), "version": { "type": "integer" }, "created_at": date_time(), "updated_at": date_time() } });
    let arule_input = json!({ "type": "object", "required": ["name", "strategy"], "additionalProperties": false, "properties": {
        "name": string_max(100), "object": { "type": "string", "enum": ["leads"] }, "conditions": { "type": "array", "maxItems": 20, "items": condition.clone() },
        "strategy": strategy.clone(), "user_id": uuid(), "team_id": uuid(), "user_ids": { "type": "array", "maxItems": 200, "items": uuid() },
        "territories": { "type": "array", "maxItems": 100, "items": territory.clone() }, "active": { "type": "boolean", "default": true },
        "position": { "type": "integer", "minimum": 1, "description": "1-based place in the order; the end when absent." } } });
    let arule_patch = json!({ "type": "object", "additionalProperties": false, "properties": {
        "name": string_max(100), "conditions": { "type": "array", "maxItems": 20, "items": condition }, "strategy": strategy,
        "user_id": nullable(uuid()), "team_id": nullable(uuid()), "user_ids": { "type": "array", "items": uuid() }, "territories": { "type": "array", "items": territory },
        "active": { "type": "boolean" }, "position": { "type": "integer", "minimum": 1 }, "version": { "type": "integer" } } });
    paths.add(
        &format!("{C}/assignment/rules"),
        "get",
        Op::new("listAssignmentRules", assign, "Assignment rules")
            .ok("200", "The rules in order.", data_list(arule.clone()))
            .problems(MEMBER),
    );
    paths.add(&format!("{C}/assignment/rules"), "post",
        Op::new("createAssignmentRule", assign, "Create an assignment rule")
            .description("Admins only. On creating a lead without an owner (API, web, bulk, and imports with `run_assignment`), the first active rule whose conditions match and that can name an active member sets `owner_id`; the assignment is audited (`assign`, field `owner_id`, old `rule: <name>`, new the user id). Without a match the creator keeps the lead. Members named must belong to the company (422 naming the field).")
            .body(arule_input).ok("201", "The rule.", arule.clone()).problems(ADMIN).problems(&[P::Conflict]).problems(BODY));
    paths.add(&format!("{C}/assignment/rules/reorder"), "post",
        Op::new("reorderAssignmentRules", assign, "Set the order of assignment rules")
            .description("Admins only. `ids` lists every rule exactly once, first to last.")
            .body(json!({ "type": "object", "required": ["ids"], "additionalProperties": false, "properties": { "ids": { "type": "array", "items": uuid() } } }))
            .ok("200", "The rules in their new order.", data_list(arule.clone())).problems(ADMIN).problems(BODY));
    paths.add(
        &format!("{C}/assignment/rules/{{rule_id}}"),
        "get",
        Op::new("getAssignmentRule", assign, "An assignment rule").ok("200", "The rule.", arule.clone()).problems(MEMBER),
    );
    paths.add(
        &format!("{C}/assignment/rules/{{rule_id}}"),
        "patch",
        Op::new("updateAssignmentRule", assign, "Change an assignment rule")
            .description("Admins only. Absent keys stay; `position` moves the rule.")
            .body(arule_patch)
            .ok("200", "The rule.", arule)
            .problems(ADMIN)
            .problems(&[P::Conflict, P::PreconditionFailed])
            .problems(BODY),
    );
    paths.add(
        &format!("{C}/assignment/rules/{{rule_id}}"),
        "delete",
        Op::new("deleteAssignmentRule", assign, "Delete an assignment rule")
            .description("Admins only.")
            .no_content("Deleted.")
            .problems(ADMIN),
    );
    paths.add(&format!("{C}/assignment/preview"), "post",
        Op::new("previewAssignment", assign, "Which rule a sample lead would hit")
            .description("Scores the sample (assignment rules may test `lead_score`; a given `values.lead_score` wins), then finds the rule that would fire and the user it would pick now. Takes no round-robin turn and writes nothing.")
            .body(json!({ "type": "object", "additionalProperties": false, "properties": { "values": { "type": "object" }, "engagement": engagement_counts } }))
            .ok("200", "The rule, user and score.", json!({ "type": "object", "properties": {
                "assignment": { "type": ["object", "null"], "properties": { "rule_id": uuid(), "rule_name": { "type": "string" }, "strategy": { "type": "string" }, "user_id": uuid(), "territory": { "type": ["string", "null"] } } },
                "user": { "type": ["object", "null"] }, "message": { "type": ["string", "null"] }, "score": score_preview } }))
            .problems(MEMBER).problems(BODY));
}

fn roles_schemas(schemas: &mut Map<String, Value>) {
    let mut put = |name: &str, v: Value| {
        schemas.insert(name.to_string(), v);
    };
    let scope = json!({ "type": "string", "enum": ["none", "own", "team", "all"] });
    let actions = ["read", "create", "edit", "delete", "import", "export"];
    let access = json!({ "type": "string", "enum": ["hidden", "read_only", "editable"] });
    let mut full = Map::new();
    let mut partial = Map::new();
    for a in actions {
        full.insert(a.into(), scope.clone());
        partial.insert(a.into(), scope.clone());
    }
    full.insert("fields".into(), json!({ "type": "object", "additionalProperties": access.clone(), "description": "Fields that are not editable (absent = editable)." }));
    partial.insert("fields".into(), json!({ "type": "object", "additionalProperties": access, "description": "Field name (standard or `cf_…`) → access; fields not named keep theirs, `editable` clears a restriction." }));
    put(
        "ObjectPermissions",
        json!({
            "type": "object", "additionalProperties": false,
            "required": actions,
            "description": "What a role may do with one object: per action the records it reaches (`none`, `own`: owned by the member, `team`: owned by the member's team mates or anyone below them in the reporting lines, or by nobody, `all`), and per field hidden or read-only. Edit, delete and export never reach beyond read.",
            "properties": full,
        }),
    );
    let objects: Map<String, Value> = OBJECT_NAMES.iter().map(|o| ((*o).to_string(), schema_ref("ObjectPermissions"))).collect();
    put(
        "PermissionMatrix",
        json!({ "type": "object", "additionalProperties": false, "required": OBJECT_NAMES, "properties": objects, "description": "Every object's permissions." }),
    );
    let patch_objects: Map<String, Value> = OBJECT_NAMES
        .iter()
        .map(|o| ((*o).to_string(), json!({ "type": "object", "additionalProperties": false, "properties": partial.clone() })))
        .collect();
    put(
        "PermissionMatrixPatch",
        json!({
            "type": "object", "additionalProperties": false, "properties": patch_objects,
            "description": "Changes to a matrix: objects, actions and fields not named keep their value. Unknown objects, actions, fields (including custom fields of other companies) and values are 422s naming `permissions.<object>.<key>`. The result is normalised (edit, delete and export lowered to read).",
        }),
    );
    put(
        "RoleDefinition",
        json!({
            "type": "object",
            "required": ["key", "label", "base_role", "builtin", "customised", "members", "permissions", "updated_at", "updated_by"],
            "properties": {
                "key": { "type": "string", "description": "A built-in role key, or `custom_…`." },
                "label": { "type": "string" },
                "base_role": with(schema_ref("Role"), json!({ "description": "The built-in role this one is, or acts as where a coarse role decides (Admin-only pages)." })),
                "builtin": { "type": "boolean" },
                "customised": { "type": "boolean", "description": "A built-in role whose matrix this company changed." },
                "members": { "type": "integer", "minimum": 0, "description": "Active members with this role." },
                "permissions": schema_ref("PermissionMatrix"),
                "updated_at": nullable(date_time()),
                "updated_by": nullable(uuid()),
            },
        }),
    );
    put(
        "RoleWithFields",
        json!({
            "allOf": [schema_ref("RoleDefinition"), {
                "type": "object",
                "required": ["fields"],
                "properties": { "fields": {
                    "type": "object",
                    "description": "Per object, the fields a matrix can restrict (standard, then this company's custom fields).",
                    "additionalProperties": { "type": "array", "items": {
                        "type": "object", "required": ["name", "label", "custom"],
                        "properties": { "name": { "type": "string" }, "label": { "type": "string" }, "custom": { "type": "boolean" } },
                    } },
                } },
            }],
        }),
    );
    put(
        "NewRole",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["label", "base_role"],
            "properties": {
                "label": { "type": "string", "minLength": 1, "maxLength": 100, "description": "Unique in the company (409), any script." },
                "base_role": schema_ref("Role"),
                "permissions": schema_ref("PermissionMatrixPatch"),
            },
        }),
    );
    put(
        "RolePatch",
        json!({
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": {
                "label": { "type": "string", "minLength": 1, "maxLength": 100, "description": "Custom roles only; built-in roles keep their names (422)." },
                "permissions": schema_ref("PermissionMatrixPatch"),
            },
        }),
    );
    put(
        "RoleChoice",
        json!({ "type": "object", "additionalProperties": false, "required": ["role"], "properties": { "role": { "type": "string", "description": "A built-in role key or a custom role's key." } } }),
    );
    put(
        "MemberRole",
        json!({
            "type": "object",
            "required": ["user_id", "email", "name", "is_active", "role", "role_key", "role_label", "team_id", "manager_id"],
            "properties": {
                "user_id": uuid(),
                "email": { "type": "string", "format": "email" },
                "name": { "type": "string" },
                "is_active": { "type": "boolean" },
                "role": with(schema_ref("Role"), json!({ "description": "The built-in role (a custom role's base)." })),
                "role_key": { "type": "string", "description": "The built-in role's key, or the custom role's." },
                "role_label": { "type": "string" },
                "team_id": nullable(uuid()),
                "manager_id": nullable(uuid()),
            },
        }),
    );
    put(
        "ReportingChange",
        json!({
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": {
                "team_id": with(nullable(uuid()), json!({ "description": "A team of this company; `null` takes the member out of their team." })),
                "manager_id": with(nullable(uuid()), json!({ "description": "Another active member; `null` clears." })),
            },
        }),
    );
    put(
        "TeamPatch",
        json!({
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": {
                "name": { "type": "string", "minLength": 1, "maxLength": 100 },
                "manager_id": with(nullable(uuid()), json!({ "description": "An active member; `null` clears." })),
            },
        }),
    );
    put(
        "TransferRequest",
        json!({
            "type": "object", "additionalProperties": false,
            "required": ["to_user_id"],
            "properties": {
                "to_user_id": with(uuid(), json!({ "description": "An active member other than the one the records come from." })),
                "objects": { "type": "array", "minItems": 1, "items": { "type": "string", "enum": OBJECT_NAMES }, "description": "Default: all six." },
                "only_open": { "type": "boolean", "default": false, "description": "Only records still in play: leads new, contacted, nurturing, qualified or recycled; active accounts; contacts; open deals; tasks open or in progress; activities dated in the future. Deleted records never move then." },
            },
        }),
    );
    let counts: Map<String, Value> = OBJECT_NAMES.iter().map(|o| ((*o).to_string(), json!({ "type": "integer", "minimum": 0 }))).collect();
    put(
        "TransferResult",
        json!({
            "type": "object",
            "required": ["from_user_id", "to_user_id", "only_open", "moved", "total"],
            "properties": {
                "from_user_id": uuid(),
                "to_user_id": uuid(),
                "only_open": { "type": "boolean" },
                "moved": { "type": "object", "properties": counts, "description": "Records moved per object asked for." },
                "total": { "type": "integer", "minimum": 0 },
            },
        }),
    );
    put(
        "MyPermissions",
        json!({
            "type": "object",
            "required": ["user_id", "role", "label", "base_role", "permissions", "team"],
            "properties": {
                "user_id": uuid(),
                "role": { "type": "string", "description": "The caller's role key (built-in or `custom_…`)." },
                "label": { "type": "string" },
                "base_role": schema_ref("Role"),
                "permissions": schema_ref("PermissionMatrix"),
                "team": { "type": "array", "items": uuid(), "description": "Whose records `team` scopes reach: the caller, their team mates and everyone below them in the reporting lines (only the caller when no scope is `team`)." },
            },
        }),
    );
}

fn roles_paths(paths: &mut Paths) {
    let tag = "Roles";
    paths.add(
        &format!("{C}/roles"),
        "get",
        Op::new("listRoles", tag, "List roles")
            .description("Admins only. The five built-in roles with this company's changes (`customised`), then custom roles by name, each with its effective matrix and active member count.")
            .ok("200", "Roles.", data_list(schema_ref("RoleDefinition")))
            .problems(ADMIN),
    );
    paths.add(
        &format!("{C}/roles"),
        "post",
        Op::new("createRole", tag, "Create a custom role")
            .description("Admins only. The key is `custom_` and the label in lower-case ASCII. The matrix starts as the company's version of `base_role`, with `permissions` applied. Members with the role act as `base_role` where a coarse role decides (Admin-only pages). At most 50 custom roles (409); labels are unique (409). Audited (object `role`).")
            .body(schema_ref("NewRole"))
            .ok("201", "The new role.", schema_ref("RoleDefinition"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/roles/{{key}}"),
        "get",
        Op::new("getRole", tag, "Show a role")
            .description("Admins only. With the fields each object's matrix can restrict, custom fields included.")
            .ok("200", "The role.", schema_ref("RoleWithFields"))
            .problems(ADMIN),
    );
    paths.add(
        &format!("{C}/roles/{{key}}"),
        "patch",
        Op::new("updateRole", tag, "Change a role's matrix or name")
            .description("Admins only. `permissions` changes some or all objects; `label` renames a custom role. The `admin` role always keeps `all` read and edit on every object and sees every field (422 naming the cell), so an Admin cannot lock everyone out. Members feel the change on their next request. Audited with the old and new matrix as JSON (object `role`, field `<key>.permissions`).")
            .body(schema_ref("RolePatch"))
            .ok("200", "The role after the change.", schema_ref("RoleDefinition"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/roles/{{key}}"),
        "delete",
        Op::new("deleteRole", tag, "Delete a custom role, or reset a built-in one")
            .description("Admins only. A custom role is deleted (204) when no member has it, active or not (409 otherwise). A built-in role goes back to its defaults (200 with the role). Audited.")
            .ok("200", "The built-in role, back at its defaults.", schema_ref("RoleDefinition"))
            .no_content("The custom role was deleted.")
            .problems(ADMIN)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/members/{{user_id}}/role"),
        "put",
        Op::new("setMemberRole", tag, "Give a member a role")
            .description("Admins only. A built-in key clears any custom role; a custom role's key also sets the member's built-in role to its base. The last active Admin keeps an Admin role (409). Takes effect on the member's next request. Audited (object `membership`, field `role`, old and new key).")
            .body(schema_ref("RoleChoice"))
            .ok("200", "The member after the change.", schema_ref("MemberRole"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/members/{{user_id}}/reporting"),
        "patch",
        Op::new("setMemberReporting", tag, "Set a member's team and manager")
            .description("Admins only. Keys left out keep their value; `null` clears. A member cannot manage themself, and reporting lines (managers, and teams' managers over their members) never loop: 422 naming `manager_id` or `team_id`. Audited (object `membership`).")
            .body(schema_ref("ReportingChange"))
            .ok("200", "The member after the change.", schema_ref("MemberRole"))
            .problems(ADMIN)
            .problems(BODY),
    );
    paths.add(
        &format!("{C}/members/{{user_id}}/transfer"),
        "post",
        Op::new("transferRecords", tag, "Move a member's records to another member")
            .description("Admins only. Every record the member owns (tasks: is assigned; activities: logged) in `objects` moves to `to_user_id` in one transaction, each with a new version and one audit row (field = owner column, old and new user id). Works for deactivated members too, the usual case when someone leaves.")
            .body(schema_ref("TransferRequest"))
            .ok("200", "How many records moved.", schema_ref("TransferResult"))
            .problems(ADMIN)
            .problems(BODY),
    );
    paths.add(
        &format!("{C}/me/permissions"),
        "get",
        Op::new("myPermissions", tag, "The caller's permissions")
            .description("Any member. The caller's role, its effective matrix and whom `team` scopes cover, so a client can offer only what will be allowed.")
            .ok("200", "The caller's permissions.", schema_ref("MyPermissions"))
            .problems(MEMBER),
    );
    paths.add(
        &format!("{C}/teams/{{team_id}}"),
        "patch",
        Op::new("updateTeam", "Teams", "Rename a team or change its manager")
            .description("Admins only. Names are unique (409); the manager must be an active member and must not report, directly or not, to a member of the team (422 naming `manager_id`). Audited (object `team`).")
            .body(schema_ref("TeamPatch"))
            .ok("200", "The team after the change.", schema_ref("Team"))
            .problems(ADMIN)
            .problems(BODY)
            .problems(&[P::Conflict]),
    );
    paths.add(
        &format!("{C}/teams/{{team_id}}"),
        "delete",
        Op::new("deleteTeam", "Teams", "Delete a team")
            .description("Admins only. Only an empty team that no assignment rule uses (409 otherwise). Audited.")
            .no_content("The team was deleted.")
            .problems(ADMIN)
            .problems(&[P::Conflict]),
    );
}

fn tags() -> Vec<Value> {
    let mut tags = vec![
        json!({ "name": "Auth", "description": "Sign-up, sign-in, token refresh and sign-out." }),
        json!({ "name": "Me", "description": "The caller's profile and personal API tokens." }),
        json!({ "name": "Companies", "description": "Companies the caller belongs to." }),
        json!({ "name": "Members", "description": "People in a company and their roles." }),
        json!({ "name": "Teams", "description": "Teams in a company." }),
        json!({ "name": "Roles", "description": "Role permission matrices (built-in and custom), members' roles and reporting lines, moving records between members, and the caller's own permissions." }),
        json!({ "name": "Metadata", "description": "Objects, their fields and custom fields." }),
    ];
    for o in corvid_core::objects() {
        tags.push(json!({ "name": o.label_plural, "description": format!("{} records.", o.label) }));
    }
    tags.extend([
        json!({ "name": "Stats", "description": "Counts and pipeline totals." }),
        json!({ "name": "Data", "description": "Import from CSV and XLSX, and export any list." }),
        json!({ "name": "Jobs", "description": "Background jobs and recurring schedules (Admins)." }),
        json!({ "name": "Duplicates", "description": "Likely duplicates, merging, dismissing, the duplicate policy and whole-base scans." }),
        json!({ "name": "Privacy", "description": "Consent logs, do-not-disturb, data-subject export and erasure, data quality and governance policies." }),
        json!({ "name": "Scoring", "description": "Lead scoring rule sets, score previews, the predictive model, a lead's score card and engagement events." }),
        json!({ "name": "Assignment", "description": "Ordered assignment rules that pick the owner of new leads, and previews." }),
        json!({ "name": "Audit", "description": "The hash-chained audit trail." }),
        json!({ "name": "System log", "description": "The server's structured log of a company's requests (Admins)." }),
        json!({ "name": "Docs", "description": "This document and its reference page." }),
        json!({ "name": "Operations", "description": "Health checks and metrics for operators." }),
    ]);
    tags
}

/// The OpenAPI 3.1 document of every route in [`crate::router`].
pub fn document() -> Value {
    let mut schemas = shared_schemas();
    let mut paths = Paths::default();
    fixed_paths(&mut paths);
    lead_journey_paths(&mut paths);
    dedupe_paths(&mut paths);
    privacy_paths(&mut paths);
    scoring_paths(&mut paths);
    roles_paths(&mut paths);
    roles_schemas(&mut schemas);
    for o in corvid_core::objects() {
        object_schemas(o, &mut schemas);
        object_paths(o, &mut paths);
    }
    let responses: Map<String, Value> = ALL_PROBLEMS.iter().map(|p| (p.component().to_string(), p.response())).collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Corvid API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "/", "description": "The server this document was fetched from." }],
        "tags": tags(),
        "security": [{ "bearerAuth": [] }],
        "paths": paths.0,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT or cvd_ API token",
                    "description": "An access token from sign-in or refresh (a JWT, valid 15 minutes), or a personal API token starting with `cvd_`.",
                },
            },
            "schemas": schemas,
            "parameters": shared_parameters(),
            "headers": shared_headers(),
            "responses": responses,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use axum::Router;
    use http_body_util::BodyExt;
    use std::collections::{BTreeSet, HashMap};
    use tower::ServiceExt;

    const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    /// Every `.route(path, method(handler)...)` of `lib.rs`'s router, as (path, methods).
    fn router_routes() -> Vec<(String, BTreeSet<String>)> {
        let src = include_str!("lib.rs");
        let start = src.find("pub fn router(").expect("router fn in lib.rs");
        let body = &src[start..];
        let body = &body[..body.find("\n}\n").expect("end of router fn")];
        // The web app's HTML pages are merged in; they are not part of the JSON API.
        let body = body.replacen(".merge(web::routes())", "", 1);
        for other in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
            assert!(!body.contains(other), "router uses {other}; teach this test to read it");
        }
        let body = body.as_str();
        let c = {
            let at = body.find("let c = \"").expect("let c in router") + "let c = \"".len();
            &body[at..at + body[at..].find('"').expect("end of c")]
        };
        assert_eq!(c, C);
        let mut routes = Vec::new();
        for chunk in body.split(".route(").skip(1) {
            let chunk = chunk.trim_start();
            let chunk = [".fallback(", ".method_not_allowed_fallback(", ".layer(", ".with_state("]
                .iter()
                .filter_map(|end| chunk.find(end))
                .min()
                .map_or(chunk, |end| &chunk[..end]);
            let (path, rest) = if let Some(r) = chunk.strip_prefix("&format!(\"") {
                let end = r.find('"').expect("end of format string");
                (r[..end].replace("{c}", c).replace("{{", "{").replace("}}", "}"), &r[end + 1..])
            } else if let Some(r) = chunk.strip_prefix('"') {
                let end = r.find('"').expect("end of path literal");
                (r[..end].to_string(), &r[end + 1..])
            } else if let Some(r) = chunk.strip_prefix("c,") {
                (c.to_string(), r)
            } else {
                panic!("cannot read route: {chunk}");
            };
            let mut methods = BTreeSet::new();
            for m in HTTP_METHODS {
                let needle = format!("{m}(");
                let mut from = 0;
                while let Some(i) = rest[from..].find(&needle) {
                    let at = from + i;
                    let before = rest[..at].chars().last();
                    if before.is_none_or(|ch| " .(,\n".contains(ch)) {
                        methods.insert(m.to_string());
                    }
                    from = at + needle.len();
                }
            }
            assert!(!methods.is_empty(), "no method found for route {path}");
            routes.push((path, methods));
        }
        assert!(routes.len() >= 30, "only {} routes read from lib.rs", routes.len());
        routes
    }

    fn doc() -> Value {
        document()
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if HTTP_METHODS.contains(&method.as_str()) {
                    out.push((path.clone(), method.clone(), op.clone()));
                }
            }
        }
        out
    }

    fn documented_methods(doc: &Value, path: &str) -> Option<BTreeSet<String>> {
        let item = doc["paths"].get(path)?.as_object()?;
        Some(item.keys().filter(|k| HTTP_METHODS.contains(&k.as_str())).cloned().collect())
    }

    #[test]
    fn document_is_openapi_3_1_json() {
        let d = doc();
        let text = serde_json::to_string(&d).expect("serialise");
        let back: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back["openapi"], "3.1.0");
        assert_eq!(back["info"]["title"], "Corvid API");
        assert_eq!(back["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(back["servers"][0]["url"], "/");
        assert_eq!(back["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
        assert!(back["components"]["schemas"]["Problem"].is_object());
    }

    #[tokio::test]
    async fn json_handler_serves_the_document() {
        let resp = json().await.into_response();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let served: Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(served, doc());
    }

    #[test]
    fn operation_ids_are_unique_and_tagged() {
        let d = doc();
        let declared: BTreeSet<&str> = d["tags"].as_array().expect("tags").iter().filter_map(|t| t["name"].as_str()).collect();
        let mut seen = BTreeSet::new();
        for (path, method, op) in operations(&d) {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(seen.insert(id.to_string()), "operationId {id} is used twice");
            let tags = op["tags"].as_array().unwrap_or_else(|| panic!("{id} has no tags"));
            assert_eq!(tags.len(), 1, "{id}");
            assert!(declared.contains(tags[0].as_str().unwrap_or("")), "{id} has an undeclared tag");
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{id} has no responses"));
            assert!(responses.keys().any(|k| k.starts_with('2')), "{id} has no success response");
        }
        assert!(seen.len() > 80, "only {} operations", seen.len());
    }

    #[test]
    fn every_router_route_is_documented() {
        let d = doc();
        for (path, methods) in router_routes() {
            let expansions: Vec<String> = match documented_methods(&d, &path) {
                Some(_) => vec![path.clone()],
                None if path.contains("{object}") => corvid_core::objects().iter().map(|o| path.replace("{object}", &o.name)).collect(),
                None => panic!("route {path} is not in the OpenAPI paths"),
            };
            for p in expansions {
                let documented = documented_methods(&d, &p).unwrap_or_else(|| panic!("{p} (from {path}) is not documented"));
                for m in &methods {
                    assert!(documented.contains(m), "{m} {p} is not documented");
                }
                assert_eq!(&documented, &methods, "{p}: documented methods differ from the router's");
            }
        }
        // Explicit object paths the brief relies on.
        for p in [
            format!("{C}/leads"),
            format!("{C}/leads/{{id}}"),
            format!("{C}/leads/{{id}}/restore"),
            format!("{C}/leads/search"),
            format!("{C}/leads/bulk"),
            format!("{C}/leads/{{id}}/history"),
            format!("{C}/leads/{{id}}/timeline"),
            format!("{C}/activities/timeline"),
        ] {
            assert!(d["paths"].get(&p).is_some(), "{p} missing");
        }
    }

    /// The reverse: nothing is documented that the router does not serve.
    #[test]
    fn every_documented_path_is_routed() {
        let routes = router_routes();
        let matches = |route: &str, path: &str| {
            let (r, p): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
            r.len() == p.len()
                && r.iter()
                    .zip(&p)
                    .all(|(rs, ps)| rs == ps || (rs.starts_with('{') && (rs == &"{object}" || rs == &"{id}" || ps.starts_with('{'))))
        };
        for (path, method, _) in operations(&doc()) {
            assert!(
                routes.iter().any(|(r, methods)| matches(r, &path) && methods.contains(&method)),
                "{method} {path} is documented but not routed"
            );
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, val) in map {
                    if k == "$ref" {
                        out.push(val.as_str().expect("$ref is a string").to_string());
                    } else if k == "mapping" && val.get("description").is_none() {
                        // Discriminator mappings are references too (a property named
                        // `mapping` has a description instead).
                        for target in val.as_object().into_iter().flat_map(|m| m.values()) {
                            out.push(target.as_str().expect("mapping target").to_string());
                        }
                    } else {
                        collect_refs(val, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves() {
        let d = doc();
        let mut refs = Vec::new();
        collect_refs(&d, &mut refs);
        assert!(refs.len() > 100);
        for r in &refs {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r} is not local"));
            assert!(pointer.starts_with("/components/"), "{r} does not point at a component");
            assert!(d.pointer(pointer).is_some_and(Value::is_object), "{r} does not resolve");
        }
        // And every component is used (a stale component usually means a typo somewhere).
        let used: BTreeSet<&str> = refs.iter().map(String::as_str).collect();
        for kind in ["schemas", "parameters", "responses", "headers"] {
            for name in d["components"][kind].as_object().expect("components").keys() {
                let r = format!("#/components/{kind}/{name}");
                assert!(used.contains(r.as_str()), "{r} is never used");
            }
        }
    }

    fn resolve<'a>(d: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => d.pointer(&r[1..]).expect("ref resolves"),
            None => v,
        }
    }

    #[test]
    fn path_parameters_are_declared() {
        let d = doc();
        for (path, item) in d["paths"].as_object().expect("paths") {
            let mut declared: Vec<String> = item["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| resolve(&d, p))
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            declared.sort();
            let mut wanted = path_params(path);
            wanted.sort();
            assert_eq!(declared, wanted, "{path}");
            for p in item["parameters"].as_array().into_iter().flatten() {
                assert_eq!(resolve(&d, p)["required"], true, "{path}: path parameters are required");
            }
        }
    }

    #[test]
    fn problems_are_problem_json() {
        let d = doc();
        for (path, method, op) in operations(&d) {
            for (status, resp) in op["responses"].as_object().expect("responses") {
                let resp = resolve(&d, resp);
                if status.starts_with('4') {
                    assert_eq!(
                        resp["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
        }
        // Changes need a version; creates take an idempotency key; logins can be throttled.
        let update = &d["paths"][format!("{C}/deals/{{id}}")]["patch"];
        for s in ["200", "401", "403", "404", "409", "412", "422", "428"].iter().filter(|s| **s != "409") {
            assert!(update["responses"].get(*s).is_some(), "updateDeal lacks {s}");
        }
        let create = &d["paths"][format!("{C}/leads")]["post"];
        assert!(create["responses"].get("201").is_some() && create["responses"].get("409").is_some());
        assert!(create["parameters"].as_array().expect("params").iter().any(|p| p["$ref"] == "#/components/parameters/IdempotencyKey"));
        assert!(d["paths"]["/api/v1/auth/login"]["post"]["responses"].get("429").is_some());
        assert_eq!(d["paths"]["/api/v1/auth/login"]["post"]["security"], json!([]));
    }

    #[test]
    fn object_schemas_follow_the_metadata() {
        let d = doc();
        let schemas = &d["components"]["schemas"];
        for o in corvid_core::objects() {
            let n = Names::of(o);
            let record = &schemas[&n.one];
            let input = &schemas[n.s("Input")];
            for f in &o.fields {
                assert!(record["properties"].get(&f.name).is_some(), "{}.{} missing from {}", o.name, f.name, n.one);
                assert_eq!(input["properties"].get(&f.name).is_some(), !f.read_only, "{}.{} in {}Input", o.name, f.name, n.one);
            }
            assert_eq!(record["properties"]["object"]["const"], o.singular);
            let required: Vec<String> = schemas[n.s("Create")]["allOf"]
                .as_array()
                .and_then(|a| a.get(1))
                .map(|r| serde_json::from_value(r["required"].clone()).expect("required list"))
                .unwrap_or_default();
            assert_eq!(required, create_required(o));
        }
        let lead = &schemas["Lead"]["properties"];
        assert_eq!(lead["email"]["format"], "email");
        assert_eq!(lead["lead_score"]["minimum"], 0);
        assert_eq!(lead["lead_score"]["maximum"], 100);
        assert_eq!(lead["owner_id"]["format"], "uuid");
        assert_eq!(lead["opt_in_date"]["format"], "date-time");
        assert_eq!(lead["tags"]["type"], json!(["array", "null"]));
        assert!(lead["status"]["enum"].as_array().expect("enum").contains(&json!("qualified")));
        assert_eq!(lead["converted_at"]["readOnly"], true);
        let deal = &schemas["Deal"]["properties"];
        assert_eq!(deal["value"]["pattern"], MONEY_PATTERN);
        assert_eq!(deal["expected_close_date"]["format"], "date");
        assert_eq!(deal["currency"]["$ref"], "#/components/schemas/CurrencyCode");
        assert_eq!(schemas["DealCreate"]["allOf"][1]["required"], json!(["name", "account_id"]));
        assert_eq!(schemas["LeadCreate"]["allOf"][1]["required"], json!(["last_name"]));
        assert_eq!(schemas["Account"]["properties"]["gstin"]["type"], json!(["string", "null"]));
    }

    #[test]
    fn patterns_are_sane() {
        let d = doc();
        let sort = d["components"]["schemas"]["LeadSortKey"]["pattern"].as_str().expect("pattern");
        assert!(sort.contains("|last_name|") && !sort.contains("|tags|"), "{sort}");
        let names = d["components"]["schemas"]["LeadFieldName"]["pattern"].as_str().expect("pattern");
        assert!(names.starts_with("^(?:id|") && names.contains("|tags|") && !names.contains("company_id"), "{names}");
    }

    // ---- docs page ----

    fn docs_router() -> Router {
        Router::new().route("/api/docs", get(docs_page)).route("/api/docs/{file}", get(docs_asset))
    }

    async fn fetch(uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let req = Request::builder().uri(uri).body(Body::empty()).expect("request");
        let resp = docs_router().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
        (status, headers, body)
    }

    #[tokio::test]
    async fn docs_page_has_no_inline_code_and_a_strict_policy() {
        let (status, headers, body) = fetch("/api/docs").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'") && csp.contains("frame-ancestors 'none'"));
        let html = String::from_utf8(body).expect("utf-8");
        assert!(!html.contains("<style") && !html.contains("style="), "inline style in the page");
        assert!(!html.contains(" on"), "inline event handler in the page");
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').expect("end of tag")];
            assert!(open.contains("src=\"/api/docs/"), "inline script: {open}");
            assert!(tag[open.len() + 1..].starts_with("</script>"), "script with content");
        }
        for (file, ty) in [("swagger-ui.css", "text/css"), ("swagger-ui-bundle.js", "text/javascript"), ("init.js", "text/javascript")] {
            let at = html.find(&format!("\"/api/docs/{file}")).unwrap_or_else(|| panic!("page does not load {file}"));
            let url = &html[at + 1..at + 1 + html[at + 1..].find('"').expect("end of url")];
            let (status, headers, body) = fetch(url).await;
            assert_eq!(status, StatusCode::OK, "{url}");
            assert!(headers[header::CONTENT_TYPE].to_str().expect("ascii").starts_with(ty), "{url}");
            assert!(headers[header::CACHE_CONTROL].to_str().expect("ascii").contains("max-age=31536000"));
            assert!(!body.is_empty());
        }
        assert!(html.contains("id=\"docs\""));
    }

    #[tokio::test]
    async fn docs_assets_are_the_vendored_files() {
        let (_, _, js) = fetch("/api/docs/swagger-ui-bundle.js").await;
        assert_eq!(js, include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"));
        let version = format!("PACKAGE_VERSION:\"{}\"", swagger_ui_version());
        assert!(String::from_utf8_lossy(&js).contains(&version), "VERSION does not match the bundle");
        let (_, _, init) = fetch("/api/docs/init.js").await;
        let init = String::from_utf8(init).expect("utf-8");
        assert!(init.contains("url: '/api/openapi.json'") && init.contains("dom_id: '#docs'"));
    }

    #[tokio::test]
    async fn unknown_docs_files_are_404_problems() {
        for uri in [
            "/api/docs/nope.js",
            "/api/docs/index.html",
            "/api/docs/swagger-ui.css.map",
            "/api/docs/..%2Flib.rs",
            "/api/docs/..%2F..%2FCargo.toml",
            "/api/docs/%2e%2e",
            "/api/docs/SWAGGER-UI.CSS",
            "/api/docs/init.js%00",
            "/api/docs/swagger-ui.css%2F..%2Finit.js",
        ] {
            let (status, headers, body) = fetch(uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json", "{uri}");
            let problem: Value = serde_json::from_slice(&body).expect("problem JSON");
            assert_eq!(problem["status"], 404);
        }
        // Direct calls with odd names, whatever the router would have made of them.
        for name in ["", ".", "..", "../lib.rs", "/etc/passwd", "init.js/", " init.js"] {
            let resp = docs_asset(Params(HashMap::from([("file".to_string(), name.to_string())]))).await;
            assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{name:?}");
        }
    }

    /// The docs routes through the whole middleware stack of [`crate::router`].
    #[tokio::test]
    async fn docs_through_the_real_router() {
        use axum::extract::connect_info::MockConnectInfo;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = corvid_store::Db::connect(&format!("sqlite://{}", dir.path().join("docs.db").display())).await.expect("sqlite");
        corvid_store::migrate::run(&db).await.expect("migrate");
        let state = crate::AppState::new(db, Some("test-secret".into())).await.expect("state");
        let app = crate::router(state).layer(MockConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
        let call = |uri: &str| {
            let app = app.clone();
            let req = Request::builder().uri(uri).body(Body::empty()).expect("request");
            async move {
                let resp = app.oneshot(req).await.expect("infallible");
                let (parts, body) = resp.into_parts();
                (parts.status, parts.headers, body.collect().await.expect("body").to_bytes())
            }
        };
        let (status, headers, body) = call("/api/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(serde_json::from_slice::<Value>(&body).expect("JSON"), document());

        let (status, headers, body) = call("/api/docs").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], DOCS_CSP);
        let html = String::from_utf8(body.to_vec()).expect("utf-8");
        let at = html.find("/api/docs/init.js").expect("init.js link");
        let init = &html[at..at + html[at..].find('"').expect("end of url")];
        let (status, headers, _) = call(init).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], ASSET_CACHE);

        for uri in ["/api/docs/..%2Flib.rs", "/api/docs/missing.js"] {
            let (status, headers, _) = call(uri).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        }
        // A documented error of a real API route has the documented shape.
        let (status, headers, body) = call("/api/v1/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        let problem: Value = serde_json::from_slice(&body).expect("problem");
        let d = document();
        assert!(d["paths"]["/api/v1/me"]["get"]["responses"].get("401").is_some());
        for key in d["components"]["schemas"]["Problem"]["required"].as_array().expect("required") {
            assert!(problem.get(key.as_str().expect("name")).is_some(), "problem lacks {key}");
        }
    }
}
