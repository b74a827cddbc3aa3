//! Settings → Roles, Teams, and moving a member's records (Admins): the list of roles, a
//! matrix editor per role (objects × actions, a scope in each cell, and per object every
//! field as hidden, read-only or editable), custom roles, teams with their managers, each
//! member's team and manager, and a confirmation page that moves a member's records to
//! someone else.
//!
//! Forms call the same store services as the API (`corvid_store::roles`), so validation,
//! the Admin lock-out guard and the audit trail are the same.

use super::records::Choice;
use super::{redirect, render, render_status, Ctx, Page, WebError, WebResult};
use crate::AppState;
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use corvid_core::access::{Action, FieldAccess, Matrix, Scope};
use corvid_core::meta::OBJECT_NAMES;
use corvid_core::role::Role;
use corvid_core::{FieldError, SqlType, Value};
use corvid_store::roles::{self, FieldInfo, RoleInfo};
use corvid_store::{StoreError, Q};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use uuid::Uuid;

type Pairs = Vec<(String, String)>;

fn pairs(raw: Option<&str>) -> Pairs {
    serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default()
}

fn first<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn get(pairs: &Pairs, key: &str) -> String {
    first(pairs, key).unwrap_or("").trim().to_string()
}

fn message(pairs: &Pairs, key: &str) -> String {
    first(pairs, key).unwrap_or("").chars().take(300).collect()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap_or_default().trim_start_matches("x=").to_string()
}

fn admin_only(page: &Page) -> WebResult<Ctx> {
    if !page.ctx.is_admin() {
        return Err(WebError::new(StatusCode::FORBIDDEN, "Only Admins can change roles, teams and record owners."));
    }
    let mut ctx = page.ctx.clone();
    ctx.nav = "settings".into();
    Ok(ctx)
}

/// "permissions.leads.fields.email must …" → "Leads, field email: must …".
fn readable(errs: &[FieldError]) -> String {
    errs.iter()
        .map(|e| {
            let parts: Vec<&str> = e.field.split('.').collect();
            let what = match parts.as_slice() {
                ["permissions", o, "fields", f] => format!("{}, field {f}", object_label(o)),
                ["permissions", o, a] => format!("{}, {a}", object_label(o)),
                ["permissions", o] => object_label(o),
                _ => e.field.replace('_', " "),
            };
            format!("{what}: {}", e.reason)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn object_label(name: &str) -> String {
    corvid_core::object(name).map_or_else(|| name.to_string(), |o| o.label_plural.clone())
}

fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect::<String>(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

fn base_choices() -> Vec<Choice> {
    Role::ALL.iter().map(|r| Choice { value: r.as_str().into(), label: r.label().into() }).collect()
}

// ---------------------------------------------------------------------------------------
// Role list
// ---------------------------------------------------------------------------------------

pub struct RoleLine {
    pub key: String,
    pub label: String,
    pub base_label: String,
    pub members: i64,
    pub builtin: bool,
    pub customised: bool,
}

#[derive(Default)]
pub struct NewRoleForm {
    pub label: String,
    pub base_role: String,
    pub label_error: String,
    pub base_error: String,
}

#[derive(Template)]
#[template(path = "settings_roles.html")]
struct RolesPage {
    ctx: Ctx,
    section: &'static str,
    rows: Vec<RoleLine>,
    bases: Vec<Choice>,
    form: NewRoleForm,
    notice: String,
    error: String,
}

async fn roles_page(st: &AppState, page: &Page, ctx: Ctx, form: NewRoleForm, notice: String, error: String) -> WebResult<RolesPage> {
    let rows = roles::list(&st.db, page.tenant.company_id)
        .await?
        .into_iter()
        .map(|r| RoleLine {
            base_label: r.base_role.label().into(),
            key: r.key,
            label: r.label,
            members: r.members,
            builtin: r.builtin,
            customised: r.customised,
        })
        .collect();
    Ok(RolesPage { ctx, section: "roles", rows, bases: base_choices(), form, notice, error })
}

pub async fn list(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let qp = pairs(raw.as_deref());
    let form = NewRoleForm { base_role: Role::SalesRep.as_str().into(), ..Default::default() };
    render(&roles_page(&st, &page, ctx, form, message(&qp, "notice"), String::new()).await?)
}

pub async fn create(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let mut form = NewRoleForm { label: get(&f, "label"), base_role: get(&f, "base_role"), ..Default::default() };
    let status = match roles::create(&st.db, &page.tenant.audit, &form.label, &form.base_role, None).await {
        Ok(r) => {
            let msg = format!("The role {} was created from {}. Adjust what it may do, then save.", r.label, r.base_role.label());
            return Ok(redirect(&headers, &format!("{}/settings/roles/{}?notice={}", page.ctx.base(), r.key, urlencode(&msg))));
        }
        Err(StoreError::Invalid(errs)) => {
            for e in errs {
                match e.field.as_str() {
                    "base_role" => form.base_error = e.reason,
                    _ => form.label_error = e.reason,
                }
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(StoreError::Conflict(m)) => {
            form.label_error = m;
            StatusCode::CONFLICT
        }
        Err(e) => return Err(e.into()),
    };
    let p = roles_page(&st, &page, ctx, form, String::new(), "The role was not created; see the form below.".into()).await?;
    render_status(status, &p)
}

// ---------------------------------------------------------------------------------------
// Matrix editor
// ---------------------------------------------------------------------------------------

pub struct Cell {
    pub action: &'static str,
    pub action_label: &'static str,
    pub value: String,
    pub error: String,
}

pub struct FieldLine {
    pub name: String,
    pub label: String,
    pub custom: bool,
    pub value: String,
    pub error: String,
}

pub struct ObjectLine {
    pub name: String,
    pub label: String,
    pub cells: Vec<Cell>,
    pub fields: Vec<FieldLine>,
    pub restricted: usize,
}

#[derive(Template)]
#[template(path = "settings_role.html")]
struct RolePage {
    ctx: Ctx,
    section: &'static str,
    key: String,
    label: String,
    label_value: String,
    label_error: String,
    base_label: String,
    builtin: bool,
    customised: bool,
    is_admin_role: bool,
    members: i64,
    actions: Vec<Choice>,
    scopes: Vec<Choice>,
    accesses: Vec<Choice>,
    objects: Vec<ObjectLine>,
    notice: String,
    error: String,
}

/// What the editor shows: per object, per action, and per field, the chosen value.
#[derive(Default)]
struct Draft {
    scopes: BTreeMap<(String, String), String>,
    fields: BTreeMap<(String, String), String>,
}

impl Draft {
    fn of(m: &Matrix) -> Draft {
        let mut d = Draft::default();
        for (o, p) in m {
            for a in Action::ALL {
                d.scopes.insert((o.clone(), a.as_str().into()), p.scope(a).as_str().into());
            }
            for (f, acc) in &p.fields {
                d.fields.insert((o.clone(), f.clone()), acc.as_str().into());
            }
        }
        d
    }

    fn from_form(f: &Pairs) -> Draft {
        let mut d = Draft::default();
        for (k, v) in f {
            let mut parts = k.splitn(3, '.');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("scope"), Some(o), Some(a)) => {
                    d.scopes.insert((o.into(), a.into()), v.trim().into());
                }
                (Some("field"), Some(o), Some(name)) => {
                    d.fields.insert((o.into(), name.into()), v.trim().into());
                }
                _ => {}
            }
        }
        d
    }

    /// The change the form asks for, as the API's matrix patch.
    fn patch(&self) -> Json {
        let mut out = Map::new();
        for ((o, a), v) in &self.scopes {
            let entry = out.entry(o.clone()).or_insert_with(|| Json::Object(Map::new()));
            if let Some(obj) = entry.as_object_mut() {
                obj.insert(a.clone(), Json::String(v.clone()));
            }
        }
        for ((o, f), v) in &self.fields {
            let entry = out.entry(o.clone()).or_insert_with(|| Json::Object(Map::new()));
            if let Some(obj) = entry.as_object_mut() {
                let fields = obj.entry("fields").or_insert_with(|| Json::Object(Map::new()));
                if let Some(fm) = fields.as_object_mut() {
                    fm.insert(f.clone(), Json::String(v.clone()));
                }
            }
        }
        Json::Object(out)
    }
}

fn editor_lines(draft: &Draft, fields: &BTreeMap<String, Vec<FieldInfo>>, errors: &[FieldError]) -> Vec<ObjectLine> {
    let error_of = |path: String| errors.iter().find(|e| e.field == path).map(|e| e.reason.clone()).unwrap_or_default();
    OBJECT_NAMES
        .iter()
        .map(|o| {
            let cells = Action::ALL
                .iter()
                .map(|a| Cell {
                    action: a.as_str(),
                    action_label: a.label(),
                    value: draft.scopes.get(&((*o).to_string(), a.as_str().to_string())).cloned().unwrap_or_else(|| "none".into()),
                    error: error_of(format!("permissions.{o}.{}", a.as_str())),
                })
                .collect();
            let lines: Vec<FieldLine> = fields
                .get(*o)
                .map(|list| {
                    list.iter()
                        .map(|f| FieldLine {
                            name: f.name.clone(),
                            label: f.label.clone(),
                            custom: f.custom,
                            value: draft
                                .fields
                                .get(&((*o).to_string(), f.name.clone()))
                                .cloned()
                                .unwrap_or_else(|| FieldAccess::Editable.as_str().into()),
                            error: error_of(format!("permissions.{o}.fields.{}", f.name)),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ObjectLine {
                name: (*o).to_string(),
                label: object_label(o),
                restricted: lines.iter().filter(|l| l.value != FieldAccess::Editable.as_str()).count(),
                cells,
                fields: lines,
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn role_page(
    st: &AppState,
    page: &Page,
    ctx: Ctx,
    role: &RoleInfo,
    draft: &Draft,
    label_value: String,
    errors: &[FieldError],
    notice: String,
    error: String,
) -> WebResult<RolePage> {
    let fields = roles::fields(&st.db, page.tenant.company_id).await?;
    Ok(RolePage {
        ctx,
        section: "roles",
        key: role.key.clone(),
        label: role.label.clone(),
        label_value,
        label_error: errors.iter().find(|e| e.field == "label").map(|e| e.reason.clone()).unwrap_or_default(),
        base_label: role.base_role.label().into(),
        builtin: role.builtin,
        customised: role.customised,
        is_admin_role: role.key == Role::Admin.as_str(),
        members: role.members,
        actions: Action::ALL.iter().map(|a| Choice { value: a.as_str().into(), label: a.label().into() }).collect(),
        scopes: Scope::ALL.iter().map(|s| Choice { value: s.as_str().into(), label: s.label().into() }).collect(),
        accesses: [(FieldAccess::Editable, "Editable"), (FieldAccess::ReadOnly, "Read-only"), (FieldAccess::Hidden, "Hidden")]
            .iter()
            .map(|(a, l)| Choice { value: a.as_str().into(), label: (*l).into() })
            .collect(),
        objects: editor_lines(draft, &fields, errors),
        notice,
        error,
    })
}

async fn load_role(st: &AppState, page: &Page, key: &str) -> WebResult<RoleInfo> {
    match roles::get(&st.db, page.tenant.company_id, key).await {
        Ok(r) => Ok(r),
        Err(StoreError::NotFound) => Err(WebError::not_found()),
        Err(e) => Err(e.into()),
    }
}

pub async fn editor(State(st): State<AppState>, page: Page, p: crate::extract::Params, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let role = load_role(&st, &page, p.str("key")).await?;
    let qp = pairs(raw.as_deref());
    let draft = Draft::of(&role.permissions);
    let label = role.label.clone();
    render(&role_page(&st, &page, ctx, &role, &draft, label, &[], message(&qp, "notice"), String::new()).await?)
}

pub async fn save(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let role = load_role(&st, &page, p.str("key")).await?;
    let draft = Draft::from_form(&f);
    let label = if role.builtin { None } else { first(&f, "label").map(str::to_string) };
    let patch = draft.patch();
    let permissions = patch.as_object().is_some_and(|m| !m.is_empty()).then_some(&patch);
    let (status, errors, text) = match roles::update(&st.db, &page.tenant.audit, &role.key, label.as_deref(), permissions).await {
        Ok(r) => {
            let msg = format!("The {} role was saved. Members with it see the change on their next page.", r.label);
            return Ok(redirect(&headers, &format!("{}/settings/roles/{}?notice={}", page.ctx.base(), r.key, urlencode(&msg))));
        }
        Err(StoreError::Invalid(errs)) => {
            let text = format!("Not saved. {}", sentence(&readable(&errs)));
            (StatusCode::UNPROCESSABLE_ENTITY, errs, text)
        }
        Err(StoreError::Conflict(m)) => {
            (StatusCode::CONFLICT, vec![FieldError::new("label", m.clone())], format!("Not saved. {}", sentence(&m)))
        }
        Err(StoreError::NotFound) => return Err(WebError::not_found()),
        Err(e) => return Err(e.into()),
    };
    let label_value = label.unwrap_or_else(|| role.label.clone());
    let p = role_page(&st, &page, ctx, &role, &draft, label_value, &errors, String::new(), text).await?;
    render_status(status, &p)
}

pub async fn reset(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    admin_only(&page)?;
    let key = p.str("key");
    if roles::is_custom_key(key) {
        return Err(WebError::new(StatusCode::UNPROCESSABLE_ENTITY, "Only built-in roles have defaults to go back to."));
    }
    match roles::reset(&st.db, &page.tenant.audit, key).await {
        Ok(r) => {
            let msg = format!("The {} role is back to its defaults.", r.label);
            Ok(redirect(&headers, &format!("{}/settings/roles/{}?notice={}", page.ctx.base(), r.key, urlencode(&msg))))
        }
        Err(StoreError::NotFound) => Err(WebError::not_found()),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let role = load_role(&st, &page, p.str("key")).await?;
    if role.builtin {
        return Err(WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Built-in roles cannot be deleted; reset them to their defaults instead.",
        ));
    }
    match roles::delete(&st.db, &page.tenant.audit, &role.key).await {
        Ok(()) => {
            let msg = format!("The role {} was deleted.", role.label);
            Ok(redirect(&headers, &format!("{}/settings/roles?notice={}", page.ctx.base(), urlencode(&msg))))
        }
        Err(StoreError::Conflict(m)) => {
            let draft = Draft::of(&role.permissions);
            let label = role.label.clone();
            let p = role_page(&st, &page, ctx, &role, &draft, label, &[], String::new(), format!("Not deleted: {}", sentence(&m))).await?;
            render_status(StatusCode::CONFLICT, &p)
        }
        Err(StoreError::NotFound) => Err(WebError::not_found()),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------------------

pub struct TeamLine {
    pub id: Uuid,
    pub name: String,
    pub manager_id: String,
    pub manager_name: String,
    pub members: i64,
}

pub struct ReportLine {
    pub user_id: Uuid,
    pub name: String,
    pub role_label: String,
    pub active: bool,
    pub team_id: String,
    pub manager_id: String,
}

#[derive(Default)]
pub struct TeamForm {
    pub name: String,
    pub manager_id: String,
    pub name_error: String,
    pub manager_error: String,
}

#[derive(Template)]
#[template(path = "settings_teams.html")]
struct TeamsPage {
    ctx: Ctx,
    section: &'static str,
    teams: Vec<TeamLine>,
    members: Vec<ReportLine>,
    team_choices: Vec<Choice>,
    manager_choices: Vec<Choice>,
    form: TeamForm,
    notice: String,
    error: String,
}

async fn teams_page(st: &AppState, page: &Page, ctx: Ctx, form: TeamForm, notice: String, error: String) -> WebResult<TeamsPage> {
    let cid = page.tenant.company_id;
    let members = roles::members(&st.db, cid).await?;
    let names: BTreeMap<Uuid, String> = members.iter().map(|m| (m.user_id, m.name.clone())).collect();
    let teams = roles::teams(&st.db, cid).await?;
    let mut team_choices = vec![Choice { value: String::new(), label: "No team".into() }];
    team_choices.extend(teams.iter().map(|t| Choice { value: t.id.to_string(), label: t.name.clone() }));
    let mut manager_choices = vec![Choice { value: String::new(), label: "Nobody".into() }];
    manager_choices.extend(
        members.iter().filter(|m| m.is_active).map(|m| Choice { value: m.user_id.to_string(), label: format!("{} ({})", m.name, m.email) }),
    );
    let team_lines = teams
        .into_iter()
        .map(|t| TeamLine {
            id: t.id,
            name: t.name,
            manager_id: t.manager_id.map(|u| u.to_string()).unwrap_or_default(),
            manager_name: t.manager_id.and_then(|u| names.get(&u).cloned()).unwrap_or_default(),
            members: t.members,
        })
        .collect();
    let member_lines = members
        .into_iter()
        .map(|m| ReportLine {
            user_id: m.user_id,
            name: m.name,
            role_label: m.role_label,
            active: m.is_active,
            team_id: m.team_id.map(|u| u.to_string()).unwrap_or_default(),
            manager_id: m.manager_id.map(|u| u.to_string()).unwrap_or_default(),
        })
        .collect();
    Ok(TeamsPage { ctx, section: "teams", teams: team_lines, members: member_lines, team_choices, manager_choices, form, notice, error })
}

/// An optional id from a select ("" = none); `Err` names the field.
fn opt_id(f: &Pairs, key: &str) -> Result<Option<Uuid>, FieldError> {
    match first(f, key).map(str::trim).unwrap_or("") {
        "" => Ok(None),
        s => Uuid::parse_str(s).map(Some).map_err(|_| FieldError::new(key, "is not one of the choices")),
    }
}

pub async fn teams(State(st): State<AppState>, page: Page, RawQuery(raw): RawQuery) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let qp = pairs(raw.as_deref());
    render(&teams_page(&st, &page, ctx, TeamForm::default(), message(&qp, "notice"), String::new()).await?)
}

async fn teams_error(st: &AppState, page: &Page, ctx: Ctx, form: TeamForm, e: StoreError) -> WebResult<Response> {
    let (status, text) = match e {
        StoreError::Invalid(errs) => (StatusCode::UNPROCESSABLE_ENTITY, sentence(&readable(&errs))),
        StoreError::Conflict(m) => (StatusCode::CONFLICT, sentence(&m)),
        StoreError::NotFound => return Err(WebError::not_found()),
        other => return Err(other.into()),
    };
    let p = teams_page(st, page, ctx, form, String::new(), format!("Not saved. {text}")).await?;
    render_status(status, &p)
}

pub async fn create_team(State(st): State<AppState>, page: Page, headers: HeaderMap, Form(f): Form<Pairs>) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let mut form = TeamForm { name: get(&f, "name"), manager_id: get(&f, "manager_id"), ..Default::default() };
    let manager = match opt_id(&f, "manager_id") {
        Ok(m) => m,
        Err(e) => {
            form.manager_error = e.reason.clone();
            return teams_error(&st, &page, ctx, form, StoreError::Invalid(vec![e])).await;
        }
    };
    match roles::create_team(&st.db, &page.tenant.audit, &form.name, manager).await {
        Ok(t) => {
            let msg = format!("The team {} was created.", t.name);
            Ok(redirect(&headers, &format!("{}/settings/teams?notice={}", page.ctx.base(), urlencode(&msg))))
        }
        Err(e) => {
            match &e {
                StoreError::Invalid(errs) => {
                    for x in errs {
                        match x.field.as_str() {
                            "manager_id" => form.manager_error = x.reason.clone(),
                            _ => form.name_error = x.reason.clone(),
                        }
                    }
                }
                StoreError::Conflict(m) => form.name_error = m.clone(),
                _ => {}
            }
            teams_error(&st, &page, ctx, form, e).await
        }
    }
}

fn team_id(p: &crate::extract::Params) -> WebResult<Uuid> {
    Uuid::parse_str(p.str("team_id")).map_err(|_| WebError::not_found())
}

pub async fn update_team(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let id = team_id(&p)?;
    let manager = match opt_id(&f, "manager_id") {
        Ok(m) => m,
        Err(e) => return teams_error(&st, &page, ctx, TeamForm::default(), StoreError::Invalid(vec![e])).await,
    };
    let name = get(&f, "name");
    match roles::update_team(&st.db, &page.tenant.audit, id, Some(&name), Some(manager)).await {
        Ok(t) => {
            let msg = format!("The team {} was saved.", t.name);
            Ok(redirect(&headers, &format!("{}/settings/teams?notice={}", page.ctx.base(), urlencode(&msg))))
        }
        Err(e) => teams_error(&st, &page, ctx, TeamForm::default(), e).await,
    }
}

pub async fn delete_team(State(st): State<AppState>, page: Page, p: crate::extract::Params, headers: HeaderMap) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let id = team_id(&p)?;
    match roles::delete_team(&st.db, &page.tenant.audit, id).await {
        Ok(()) => Ok(redirect(&headers, &format!("{}/settings/teams?notice={}", page.ctx.base(), urlencode("The team was deleted.")))),
        Err(e) => teams_error(&st, &page, ctx, TeamForm::default(), e).await,
    }
}

pub async fn set_reporting(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let user_id = Uuid::parse_str(p.str("user_id")).map_err(|_| WebError::not_found())?;
    let (team, manager) = match (opt_id(&f, "team_id"), opt_id(&f, "manager_id")) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => return teams_error(&st, &page, ctx, TeamForm::default(), StoreError::Invalid(vec![e])).await,
    };
    match roles::set_reporting(&st.db, &page.tenant.audit, user_id, Some(team), Some(manager)).await {
        Ok(m) => {
            let msg = format!("{}'s team and manager were saved.", m.name);
            Ok(redirect(&headers, &format!("{}/settings/teams?notice={}", page.ctx.base(), urlencode(&msg))))
        }
        Err(e) => teams_error(&st, &page, ctx, TeamForm::default(), e).await,
    }
}

// ---------------------------------------------------------------------------------------
// Moving a member's records
// ---------------------------------------------------------------------------------------

pub struct OwnedCount {
    pub object: String,
    pub label: String,
    pub count: i64,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "settings_transfer.html")]
struct TransferPage {
    ctx: Ctx,
    section: &'static str,
    user_id: Uuid,
    name: String,
    active: bool,
    counts: Vec<OwnedCount>,
    targets: Vec<Choice>,
    to_user_id: String,
    only_open: bool,
    to_error: String,
    objects_error: String,
    error: String,
}

/// How many records of each object the member owns (deleted ones included: they move too).
async fn owned_counts(st: &AppState, company_id: Uuid, user_id: Uuid) -> WebResult<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for o in OBJECT_NAMES {
        // `o` and its owner column come from the fixed object list.
        let col = corvid_core::access::owner_column(o);
        let q = Q::new(format!("SELECT COUNT(*) FROM {o} WHERE company_id = $1 AND {col} = $2"))
            .bind(Value::Uuid(company_id))
            .bind(Value::Uuid(user_id));
        let n = st.db.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0);
        out.push(((*o).to_string(), n));
    }
    Ok(out)
}

struct TransferForm {
    to_user_id: String,
    objects: Vec<String>,
    only_open: bool,
    to_error: String,
    objects_error: String,
    error: String,
}

async fn transfer_page(st: &AppState, page: &Page, ctx: Ctx, user_id: Uuid, form: TransferForm) -> WebResult<TransferPage> {
    let cid = page.tenant.company_id;
    let members = roles::members(&st.db, cid).await?;
    let Some(me) = members.iter().find(|m| m.user_id == user_id) else { return Err(WebError::not_found()) };
    let targets = members
        .iter()
        .filter(|m| m.is_active && m.user_id != user_id)
        .map(|m| Choice { value: m.user_id.to_string(), label: format!("{} ({})", m.name, m.email) })
        .collect();
    let counts = owned_counts(st, cid, user_id)
        .await?
        .into_iter()
        .map(|(o, n)| OwnedCount { label: object_label(&o), checked: form.objects.contains(&o), object: o, count: n })
        .collect();
    Ok(TransferPage {
        ctx,
        section: "members",
        user_id,
        name: me.name.clone(),
        active: me.is_active,
        counts,
        targets,
        to_user_id: form.to_user_id,
        only_open: form.only_open,
        to_error: form.to_error,
        objects_error: form.objects_error,
        error: form.error,
    })
}

fn member_id(p: &crate::extract::Params) -> WebResult<Uuid> {
    Uuid::parse_str(p.str("user_id")).map_err(|_| WebError::not_found())
}

pub async fn transfer_form(State(st): State<AppState>, page: Page, p: crate::extract::Params) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let user_id = member_id(&p)?;
    let form = TransferForm {
        to_user_id: String::new(),
        objects: OBJECT_NAMES.iter().map(|o| (*o).to_string()).collect(),
        only_open: false,
        to_error: String::new(),
        objects_error: String::new(),
        error: String::new(),
    };
    render(&transfer_page(&st, &page, ctx, user_id, form).await?)
}

pub async fn transfer(
    State(st): State<AppState>,
    page: Page,
    p: crate::extract::Params,
    headers: HeaderMap,
    Form(f): Form<Pairs>,
) -> WebResult<Response> {
    let ctx = admin_only(&page)?;
    let from = member_id(&p)?;
    let mut form = TransferForm {
        to_user_id: get(&f, "to_user_id"),
        objects: f.iter().filter(|(k, _)| k == "objects").map(|(_, v)| v.trim().to_string()).collect(),
        only_open: first(&f, "only_open").is_some_and(|v| !v.is_empty()),
        to_error: String::new(),
        objects_error: String::new(),
        error: String::new(),
    };
    let result = match Uuid::parse_str(&form.to_user_id) {
        Ok(to) => roles::transfer(&st.db, &page.tenant.audit, from, to, &form.objects, form.only_open).await,
        Err(_) => Err(StoreError::invalid("to_user_id", "choose whom the records go to")),
    };
    let status = match result {
        Ok(moved) => {
            let members = roles::members(&st.db, page.tenant.company_id).await?;
            let name = |id: &str| members.iter().find(|m| m.user_id.to_string() == id).map(|m| m.name.clone()).unwrap_or_default();
            let total: i64 = moved.values().sum();
            let detail =
                moved.iter().filter(|(_, n)| **n > 0).map(|(o, n)| format!("{} {n}", object_label(o).to_lowercase())).collect::<Vec<_>>();
            let msg = format!(
                "Moved {total} record{} of {} to {}{}.",
                if total == 1 { "" } else { "s" },
                name(&from.to_string()),
                name(&form.to_user_id),
                if detail.is_empty() { String::new() } else { format!(" ({})", detail.join(", ")) }
            );
            return Ok(redirect(&headers, &format!("{}/settings/members?notice={}", page.ctx.base(), urlencode(&msg))));
        }
        Err(StoreError::Invalid(errs)) => {
            for e in &errs {
                if e.field == "to_user_id" {
                    form.to_error = e.reason.clone();
                } else {
                    form.objects_error = e.reason.clone();
                }
            }
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(StoreError::NotFound) => return Err(WebError::not_found()),
        Err(e) => return Err(e.into()),
    };
    form.error = "Nothing was moved; see the form below.".into();
    let p = transfer_page(&st, &page, ctx, from, form).await?;
    render_status(status, &p)
}
