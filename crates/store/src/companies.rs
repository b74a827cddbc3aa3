//! Companies (tenants), memberships with roles, and teams.

use crate::audit::{self, AuditCtx, Change};
use crate::auth::{self, User};
use crate::db::{Db, Tx, Q};
use crate::{new_id, Result, StoreError};
use chrono::{DateTime, Utc};
use corvid_core::role::Role;
use corvid_core::value::now_micros;
use corvid_core::{SqlType, Value};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub default_currency: String,
    pub default_country: String,
    pub calling_code: String,
    pub time_zone: String,
}

const COMPANY_COLS: &str = "id, name, default_currency, default_country, calling_code, time_zone";
const COMPANY_TYPES: &[SqlType] = &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text];

fn company_from(r: crate::db::Row) -> Company {
    Company {
        id: r.uuid(0).unwrap_or_default(),
        name: r.text(1).unwrap_or_default(),
        default_currency: r.text(2).unwrap_or_default(),
        default_country: r.text(3).unwrap_or_default(),
        calling_code: r.text(4).unwrap_or_default(),
        time_zone: r.text(5).unwrap_or_default(),
    }
}

pub async fn get(db: &Db, id: Uuid) -> Result<Option<Company>> {
    let q = Q::new(format!("SELECT {COMPANY_COLS} FROM companies WHERE id = $1")).bind(Value::Uuid(id));
    Ok(db.fetch_one(&q, COMPANY_TYPES).await?.map(company_from))
}

pub async fn find_by_name(db: &Db, name: &str) -> Result<Option<Company>> {
    let q =
        Q::new(format!("SELECT {COMPANY_COLS} FROM companies WHERE name = $1 ORDER BY created_at LIMIT 1")).bind(Value::Text(name.into()));
    Ok(db.fetch_one(&q, COMPANY_TYPES).await?.map(company_from))
}

pub async fn all_ids(db: &Db) -> Result<Vec<Uuid>> {
    Ok(db
        .fetch(&Q::new("SELECT id FROM companies ORDER BY created_at"), &[SqlType::Uuid])
        .await?
        .iter()
        .filter_map(|r| r.uuid(0))
        .collect())
}

/// Creates a company with `admin` as its first Admin, in the caller's transaction.
pub async fn create_in(tx: &mut Tx, name: &str, admin: Uuid, ctx_template: &AuditCtx) -> Result<Company> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(StoreError::invalid("company_name", "must be 1 to 200 characters"));
    }
    let id = new_id();
    let now = now_micros();
    tx.execute(
        &Q::new("INSERT INTO companies (id, name, created_at, updated_at) VALUES ($1, $2, $3, $3)")
            .bind(Value::Uuid(id))
            .bind(Value::Text(name.into()))
            .bind(Value::Timestamp(now)),
    )
    .await?;
    audit::init_head(tx, id).await?;
    insert_membership(tx, id, admin, Role::Admin, now).await?;
    let ctx = AuditCtx { company_id: id, actor_id: Some(admin), ..ctx_template.clone() };
    audit::append(
        tx,
        &ctx,
        &[
            Change {
                object: "company".into(),
                record_id: Some(id),
                action: "create".into(),
                field: Some("name".into()),
                old: None,
                new: Some(name.into()),
            },
            Change {
                object: "membership".into(),
                record_id: Some(admin),
                action: "create".into(),
                field: Some("role".into()),
                old: None,
                new: Some(Role::Admin.as_str().into()),
            },
        ],
    )
    .await?;
    Ok(Company {
        id,
        name: name.into(),
        default_currency: "INR".into(),
        default_country: "IN".into(),
        calling_code: "91".into(),
        time_zone: "Asia/Kolkata".into(),
    })
}

async fn insert_membership(tx: &mut Tx, company: Uuid, user: Uuid, role: Role, now: DateTime<Utc>) -> Result<()> {
    let q =
        Q::new("INSERT INTO memberships (company_id, user_id, role, is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
            .bind(Value::Uuid(company))
            .bind(Value::Uuid(user))
            .bind(Value::Text(role.as_str().into()))
            .bind(Value::Bool(true))
            .bind(Value::Timestamp(now));
    match tx.execute(&q).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique_violation() => Err(StoreError::Conflict("this user is already a member of the company".into())),
        Err(e) => Err(e),
    }
}

/// Registers a user together with a new company where they are Admin.
pub async fn register(db: &Db, email: &str, password: &str, name: &str, company_name: &str, ctx: &AuditCtx) -> Result<(User, Company)> {
    let mut tx = db.begin().await?;
    let user = auth::create_user(&mut tx, email, name, password).await?;
    let company = create_in(&mut tx, company_name, user.id, ctx).await?;
    tx.commit().await?;
    Ok((user, company))
}

#[derive(Debug, Clone, Serialize)]
pub struct MembershipSummary {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// The active companies a user belongs to.
pub async fn companies_of(db: &Db, user_id: Uuid) -> Result<Vec<MembershipSummary>> {
    let q = Q::new(
        "SELECT c.id, c.name, m.role FROM memberships m JOIN companies c ON c.id = m.company_id \
         WHERE m.user_id = $1 AND m.is_active = $2 ORDER BY c.name",
    )
    .bind(Value::Uuid(user_id))
    .bind(Value::Bool(true));
    Ok(db
        .fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| Some(MembershipSummary { id: r.uuid(0)?, name: r.text(1)?, role: Role::parse(&r.text(2)?)? }))
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub team_id: Option<Uuid>,
    pub manager_id: Option<Uuid>,
    pub joined_at: DateTime<Utc>,
}

const MEMBER_SQL: &str = "SELECT u.id, u.email, u.name, m.role, m.is_active, m.team_id, m.manager_id, m.created_at \
     FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.company_id = $1";
const MEMBER_TYPES: &[SqlType] =
    &[SqlType::Uuid, SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Bool, SqlType::Uuid, SqlType::Uuid, SqlType::Timestamp];

fn member_from(r: crate::db::Row) -> Option<Member> {
    Some(Member {
        user_id: r.uuid(0)?,
        email: r.text(1)?,
        name: r.text(2)?,
        role: Role::parse(&r.text(3)?)?,
        is_active: r.bool(4)?,
        team_id: r.uuid(5),
        manager_id: r.uuid(6),
        joined_at: r.timestamp(7)?,
    })
}

pub async fn members(db: &Db, company_id: Uuid) -> Result<Vec<Member>> {
    let q = Q::new(format!("{MEMBER_SQL} ORDER BY u.name")).bind(Value::Uuid(company_id));
    Ok(db.fetch(&q, MEMBER_TYPES).await?.into_iter().filter_map(member_from).collect())
}

pub async fn member(db: &Db, company_id: Uuid, user_id: Uuid) -> Result<Option<Member>> {
    let q = Q::new(format!("{MEMBER_SQL} AND m.user_id = $2")).bind(Value::Uuid(company_id)).bind(Value::Uuid(user_id));
    Ok(db.fetch_one(&q, MEMBER_TYPES).await?.and_then(member_from))
}

/// Adds a user (created if the email is new, which then needs a password) with a role.
pub async fn add_member(db: &Db, ctx: &AuditCtx, email: &str, name: &str, password: Option<&str>, role: Role) -> Result<Member> {
    let mut tx = db.begin().await?;
    let existing = {
        let q = Q::new("SELECT id FROM users WHERE email = $1").bind(Value::Text(auth::normalise_email(email)));
        tx.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0))
    };
    let user_id = match existing {
        Some(id) => id,
        None => {
            let Some(pw) = password else {
                return Err(StoreError::invalid("password", "is required to create a new user"));
            };
            auth::create_user(&mut tx, email, name, pw).await?.id
        }
    };
    insert_membership(&mut tx, ctx.company_id, user_id, role, now_micros()).await?;
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "membership".into(),
            record_id: Some(user_id),
            action: "create".into(),
            field: Some("role".into()),
            old: None,
            new: Some(role.as_str().into()),
        }],
    )
    .await?;
    tx.commit().await?;
    member(db, ctx.company_id, user_id).await?.ok_or(StoreError::NotFound)
}

/// Changes a member's role and/or active flag. The last active Admin cannot be removed.
pub async fn update_member(db: &Db, ctx: &AuditCtx, user_id: Uuid, role: Option<Role>, active: Option<bool>) -> Result<Member> {
    let mut tx = db.begin().await?;
    let sql = format!("SELECT role, is_active FROM memberships WHERE company_id = $1 AND user_id = $2{}", tx.for_update());
    let row =
        tx.fetch_one(&Q::new(sql).bind(Value::Uuid(ctx.company_id)).bind(Value::Uuid(user_id)), &[SqlType::Text, SqlType::Bool]).await?;
    let Some(row) = row else { return Err(StoreError::NotFound) };
    let old_role = row.text(0).and_then(|r| Role::parse(&r)).unwrap_or(Role::ReadOnly);
    let old_active = row.bool(1).unwrap_or(false);
    let new_role = role.unwrap_or(old_role);
    let new_active = active.unwrap_or(old_active);
    let loses_admin = old_role == Role::Admin && old_active && (new_role != Role::Admin || !new_active);
    if loses_admin {
        let q = Q::new("SELECT COUNT(*) FROM memberships WHERE company_id = $1 AND role = $2 AND is_active = $3")
            .bind(Value::Uuid(ctx.company_id))
            .bind(Value::Text(Role::Admin.as_str().into()))
            .bind(Value::Bool(true));
        let admins = tx.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0);
        if admins <= 1 {
            return Err(StoreError::Conflict("a company needs at least one active Admin".into()));
        }
    }
    let mut changes = Vec::new();
    if new_role != old_role {
        changes.push(Change {
            object: "membership".into(),
            record_id: Some(user_id),
            action: "update".into(),
            field: Some("role".into()),
            old: Some(old_role.as_str().into()),
            new: Some(new_role.as_str().into()),
        });
    }
    if new_active != old_active {
        changes.push(Change {
            object: "membership".into(),
            record_id: Some(user_id),
            action: if new_active { "restore".into() } else { "deactivate".into() },
            field: Some("is_active".into()),
            old: Some(old_active.to_string()),
            new: Some(new_active.to_string()),
        });
    }
    if !changes.is_empty() {
        tx.execute(
            &Q::new("UPDATE memberships SET role = $1, is_active = $2, updated_at = $3 WHERE company_id = $4 AND user_id = $5")
                .bind(Value::Text(new_role.as_str().into()))
                .bind(Value::Bool(new_active))
                .bind(Value::Timestamp(now_micros()))
                .bind(Value::Uuid(ctx.company_id))
                .bind(Value::Uuid(user_id)),
        )
        .await?;
        audit::append(&mut tx, ctx, &changes).await?;
    }
    tx.commit().await?;
    member(db, ctx.company_id, user_id).await?.ok_or(StoreError::NotFound)
}

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub manager_id: Option<Uuid>,
}

pub async fn teams(db: &Db, company_id: Uuid) -> Result<Vec<Team>> {
    let q = Q::new("SELECT id, name, manager_id FROM teams WHERE company_id = $1 ORDER BY name").bind(Value::Uuid(company_id));
    Ok(db
        .fetch(&q, &[SqlType::Uuid, SqlType::Text, SqlType::Uuid])
        .await?
        .into_iter()
        .filter_map(|r| Some(Team { id: r.uuid(0)?, name: r.text(1)?, manager_id: r.uuid(2) }))
        .collect())
}

pub async fn create_team(db: &Db, ctx: &AuditCtx, name: &str, manager_id: Option<Uuid>) -> Result<Team> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
    }
    if let Some(m) = manager_id {
        if member(db, ctx.company_id, m).await?.is_none() {
            return Err(StoreError::invalid("manager_id", "is not a member of this company"));
        }
    }
    let team = Team { id: new_id(), name: name.into(), manager_id };
    let mut tx = db.begin().await?;
    let q = Q::new("INSERT INTO teams (id, company_id, name, manager_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(Value::Uuid(team.id))
        .bind(Value::Uuid(ctx.company_id))
        .bind(Value::Text(team.name.clone()))
        .bind(manager_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
        .bind(Value::Timestamp(now_micros()));
    match tx.execute(&q).await {
        Ok(_) => {}
        Err(e) if e.is_unique_violation() => return Err(StoreError::Conflict("a team with this name exists".into())),
        Err(e) => return Err(e),
    }
    audit::append(
        &mut tx,
        ctx,
        &[Change {
            object: "team".into(),
            record_id: Some(team.id),
            action: "create".into(),
            field: Some("name".into()),
            old: None,
            new: Some(team.name.clone()),
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(team)
}

/// Puts a member in a team (or none) and sets their manager, for reporting lines.
pub async fn set_member_team(db: &Db, ctx: &AuditCtx, user_id: Uuid, team_id: Option<Uuid>, manager_id: Option<Uuid>) -> Result<Member> {
    if let Some(t) = team_id {
        if !teams(db, ctx.company_id).await?.iter().any(|x| x.id == t) {
            return Err(StoreError::invalid("team_id", "is not a team of this company"));
        }
    }
    if let Some(m) = manager_id {
        if m == user_id || member(db, ctx.company_id, m).await?.is_none() {
            return Err(StoreError::invalid("manager_id", "must be another member of this company"));
        }
    }
    let Some(before) = member(db, ctx.company_id, user_id).await? else { return Err(StoreError::NotFound) };
    let mut tx = db.begin().await?;
    tx.execute(
        &Q::new("UPDATE memberships SET team_id = $1, manager_id = $2, updated_at = $3 WHERE company_id = $4 AND user_id = $5")
            .bind(team_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
            .bind(manager_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
            .bind(Value::Timestamp(now_micros()))
            .bind(Value::Uuid(ctx.company_id))
            .bind(Value::Uuid(user_id)),
    )
    .await?;
    let mut changes = Vec::new();
    for (field, old, new) in [("team_id", before.team_id, team_id), ("manager_id", before.manager_id, manager_id)] {
        if old != new {
            changes.push(Change {
                object: "membership".into(),
                record_id: Some(user_id),
                action: "update".into(),
                field: Some(field.into()),
                old: old.map(|u| u.to_string()),
                new: new.map(|u| u.to_string()),
            });
        }
    }
    audit::append(&mut tx, ctx, &changes).await?;
    tx.commit().await?;
    member(db, ctx.company_id, user_id).await?.ok_or(StoreError::NotFound)
}
