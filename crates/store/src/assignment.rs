//! Assignment rules applied to new records: ordered rules with conditions (country, state,
//! source, product, score, company size, any lead field) pick an owner by one of four
//! strategies:
//!
//! - `user`: always the same user;
//! - `round_robin`: the members of a team (or a list of users) in turn, fairly: the position
//!   (the last user given a lead) is kept per rule across transactions and imports, and
//!   inactive members are skipped;
//! - `load_balanced`: the member with the fewest open leads;
//! - `territory`: the first territory whose countries/states match the lead gives its user.
//!
//! Rules apply on create only when no owner was given; the first rule that matches and can
//! name an active member wins. Without one the creator keeps the record. Every assignment is
//! audited (`assign`, `owner_id`, the user id, and the rule's name). Manual reassignment is an
//! ordinary owner update.

use crate::audit::{self, Change};
use crate::db::{Db, Row, Tx, Q};
use crate::pipeline::Write;
use crate::records::Tenant;
use crate::{new_id, scoring, settings, Result, StoreError};
use chrono::{DateTime, Utc};
use corvid_core::meta::ObjectDef;
use corvid_core::record::Record;
use corvid_core::rules::{self, Condition, Facts};
use corvid_core::validate::Changes;
use corvid_core::value::now_micros;
use corvid_core::{FieldError, SqlType, Value};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeSet, HashMap, HashSet};
use uuid::Uuid;

/// Objects assignment rules can apply to.
pub const ASSIGNED_OBJECTS: &[&str] = &["leads"];
pub const MAX_RULES: usize = 200;
const MAX_USERS: usize = 200;
const MAX_TERRITORIES: usize = 100;
/// Lead statuses that count as open for load balancing.
pub const OPEN_STATUSES: &[&str] = &["new", "contacted", "nurturing", "qualified", "recycled"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    User,
    RoundRobin,
    LoadBalanced,
    Territory,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [Strategy::User, Strategy::RoundRobin, Strategy::LoadBalanced, Strategy::Territory];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::User => "user",
            Strategy::RoundRobin => "round_robin",
            Strategy::LoadBalanced => "load_balanced",
            Strategy::Territory => "territory",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Strategy::User => "A user",
            Strategy::RoundRobin => "Round robin",
            Strategy::LoadBalanced => "Fewest open leads",
            Strategy::Territory => "Territory",
        }
    }
}

/// A region and the user who owns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Territory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ISO country codes; empty matches any country.
    #[serde(default)]
    pub countries: Vec<String>,
    /// States or regions (compared without case); empty matches any state.
    #[serde(default)]
    pub states: Vec<String>,
    pub user_id: Uuid,
}

impl Territory {
    fn matches(&self, country: Option<&str>, state: Option<&str>) -> bool {
        let hit = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x.trim().eq_ignore_ascii_case(v.trim())))
        };
        (!self.countries.is_empty() || !self.states.is_empty()) && hit(&self.countries, country) && hit(&self.states, state)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: Uuid,
    pub object: String,
    pub name: String,
    pub position: i64,
    pub active: bool,
    pub conditions: Vec<Condition>,
    pub strategy: Strategy,
    pub user_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub user_ids: Vec<Uuid>,
    pub territories: Vec<Territory>,
    /// The round-robin position: the last user this rule gave a record to.
    pub last_assigned_user_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub name: String,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    pub strategy: Strategy,
    #[serde(default)]
    pub user_id: Option<Uuid>,
    #[serde(default)]
    pub team_id: Option<Uuid>,
    #[serde(default)]
    pub user_ids: Vec<Uuid>,
    #[serde(default)]
    pub territories: Vec<Territory>,
    #[serde(default = "yes")]
    pub active: bool,
    /// 1-based place in the order; the end when absent.
    #[serde(default)]
    pub position: Option<i64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default)]
    pub strategy: Option<Strategy>,
    #[serde(default, deserialize_with = "scoring::double_option")]
    pub user_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "scoring::double_option")]
    pub team_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub user_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub territories: Option<Vec<Territory>>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub version: Option<i64>,
}

const COLS: &str = "id, object, name, position, is_active, conditions, strategy, user_id, team_id, user_ids, territories, rr_last_user_id, version, created_at, updated_at";
const TYPES: &[SqlType] = &[
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Bool,
    SqlType::Json,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Json,
    SqlType::Json,
    SqlType::Uuid,
    SqlType::Int,
    SqlType::Timestamp,
    SqlType::Timestamp,
];

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("assignment rule {what}: {e}"))
}

fn rule_from(r: &Row) -> Result<Rule> {
    Ok(Rule {
        id: r.uuid(0).unwrap_or_default(),
        object: r.text(1).unwrap_or_default(),
        name: r.text(2).unwrap_or_default(),
        position: r.int(3).unwrap_or(0),
        active: r.bool(4).unwrap_or(false),
        conditions: serde_json::from_value(r.json(5).unwrap_or(json!([]))).map_err(|e| corrupt("conditions", e))?,
        strategy: r.text(6).as_deref().and_then(Strategy::parse).ok_or_else(|| corrupt("strategy", "unknown"))?,
        user_id: r.uuid(7),
        team_id: r.uuid(8),
        user_ids: serde_json::from_value(r.json(9).unwrap_or(json!([]))).map_err(|e| corrupt("user_ids", e))?,
        territories: serde_json::from_value(r.json(10).unwrap_or(json!([]))).map_err(|e| corrupt("territories", e))?,
        last_assigned_user_id: r.uuid(11),
        version: r.int(12).unwrap_or(1),
        created_at: r.timestamp(13).unwrap_or_default(),
        updated_at: r.timestamp(14).unwrap_or_default(),
    })
}

pub async fn list(db: &Db, company_id: Uuid) -> Result<Vec<Rule>> {
    let q = Q::new(format!("SELECT {COLS} FROM assignment_rules WHERE company_id = $1 ORDER BY object, position, created_at"))
        .bind(Value::Uuid(company_id));
    db.fetch(&q, TYPES).await?.iter().map(rule_from).collect()
}

pub async fn get(db: &Db, company_id: Uuid, id: Uuid) -> Result<Rule> {
    let q = Q::new(format!("SELECT {COLS} FROM assignment_rules WHERE company_id = $1 AND id = $2"))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    db.fetch_one(&q, TYPES).await?.as_ref().map(rule_from).transpose()?.ok_or(StoreError::NotFound)
}

async fn get_tx(tx: &mut Tx, company_id: Uuid, id: Uuid) -> Result<Rule> {
    let q = Q::new(format!("SELECT {COLS} FROM assignment_rules WHERE company_id = $1 AND id = $2{}", tx.for_update()))
        .bind(Value::Uuid(company_id))
        .bind(Value::Uuid(id));
    tx.fetch_one(&q, TYPES).await?.as_ref().map(rule_from).transpose()?.ok_or(StoreError::NotFound)
}

async fn rules_tx(tx: &mut Tx, company_id: Uuid, object: &str, only_active: bool) -> Result<Vec<Rule>> {
    let active = if only_active { " AND is_active = $3" } else { "" };
    let mut q =
        Q::new(format!("SELECT {COLS} FROM assignment_rules WHERE company_id = $1 AND object = $2{active} ORDER BY position, created_at"))
            .bind(Value::Uuid(company_id))
            .bind(Value::Text(object.into()));
    if only_active {
        q = q.bind(Value::Bool(true));
    }
    tx.fetch(&q, TYPES).await?.iter().map(rule_from).collect()
}

/// Active members (membership and user both active) and their teams.
async fn active_members(conn: &mut Tx, company_id: Uuid) -> Result<HashMap<Uuid, Option<Uuid>>> {
    let q = Q::new(
        "SELECT m.user_id, m.team_id FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.company_id = $1 AND m.is_active = $2 AND u.is_active = $2",
    )
    .bind(Value::Uuid(company_id))
    .bind(Value::Bool(true));
    Ok(conn.fetch(&q, &[SqlType::Uuid, SqlType::Uuid]).await?.iter().filter_map(|r| Some((r.uuid(0)?, r.uuid(1)))).collect())
}

// ---------------------------------------------------------------------------------------
// Validation and changes
// ---------------------------------------------------------------------------------------

/// The parts of a rule that are checked together.
struct Draft<'a> {
    name: &'a str,
    conditions: &'a [Condition],
    strategy: Strategy,
    user_id: Option<Uuid>,
    team_id: Option<Uuid>,
    user_ids: &'a [Uuid],
    territories: &'a [Territory],
}

async fn validate(db: &Db, company_id: Uuid, d: &Draft<'_>) -> Result<()> {
    let fields = scoring::lead_condition_fields(db, company_id, false).await?;
    let mut errors: Vec<FieldError> = Vec::new();
    if let Some(e) = rules::validate_name(d.name, "name") {
        errors.push(e);
    }
    errors.extend(rules::validate_conditions(d.conditions, "conditions", &|f| fields.iter().any(|n| n == f)));
    let members = crate::companies::members(db, company_id).await?;
    let is_member = |u: &Uuid| members.iter().any(|m| m.user_id == *u);
    let member_err = "is not a member of this company";
    match d.strategy {
        Strategy::User => match d.user_id {
            None => errors.push(FieldError::new("user_id", "is required for the user strategy")),
            Some(u) if !is_member(&u) => errors.push(FieldError::new("user_id", member_err)),
            _ => {}
        },
        Strategy::RoundRobin | Strategy::LoadBalanced => {
            if d.team_id.is_none() && d.user_ids.is_empty() {
                errors.push(FieldError::new("team_id", "give a team_id or a list of user_ids to share records among"));
            }
            if let Some(team) = d.team_id {
                if !crate::companies::teams(db, company_id).await?.iter().any(|t| t.id == team) {
                    errors.push(FieldError::new("team_id", "is not a team of this company"));
                }
            }
            if d.user_ids.len() > MAX_USERS {
                errors.push(FieldError::new("user_ids", format!("may list at most {MAX_USERS} users")));
            }
            let mut seen = HashSet::new();
            for (i, u) in d.user_ids.iter().enumerate() {
                if !is_member(u) {
                    errors.push(FieldError::new(format!("user_ids[{i}]"), member_err));
                } else if !seen.insert(*u) {
                    errors.push(FieldError::new(format!("user_ids[{i}]"), "is listed twice"));
                }
            }
        }
        Strategy::Territory => {
            if d.territories.is_empty() || d.territories.len() > MAX_TERRITORIES {
                errors.push(FieldError::new("territories", format!("must list 1 to {MAX_TERRITORIES} territories")));
            }
            for (i, t) in d.territories.iter().enumerate().take(MAX_TERRITORIES) {
                if t.countries.is_empty() && t.states.is_empty() {
                    errors.push(FieldError::new(format!("territories[{i}].countries"), "give countries or states (or both)"));
                }
                if t.countries.len() > MAX_USERS || t.states.len() > MAX_USERS {
                    errors.push(FieldError::new(format!("territories[{i}]"), "may list at most 200 countries and 200 states"));
                }
                for (j, c) in t.countries.iter().enumerate() {
                    if !corvid_core::country::is_country(&c.trim().to_ascii_uppercase()) {
                        errors.push(FieldError::new(format!("territories[{i}].countries[{j}]"), "is not an ISO 3166 country code"));
                    }
                }
                for (j, s) in t.states.iter().enumerate() {
                    if s.trim().is_empty() || s.chars().count() > 100 {
                        errors.push(FieldError::new(format!("territories[{i}].states[{j}]"), "must be 1 to 100 characters"));
                    }
                }
                if t.name.as_ref().is_some_and(|n| n.chars().count() > 100) {
                    errors.push(FieldError::new(format!("territories[{i}].name"), "must be at most 100 characters"));
                }
                if !is_member(&t.user_id) {
                    errors.push(FieldError::new(format!("territories[{i}].user_id"), member_err));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// Country codes upper-cased, as leads store them.
fn normalise_territories(ts: &[Territory]) -> Vec<Territory> {
    ts.iter()
        .map(|t| Territory {
            name: t.name.as_ref().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
            countries: t.countries.iter().map(|c| c.trim().to_ascii_uppercase()).collect(),
            states: t.states.iter().map(|s| s.trim().to_string()).collect(),
            user_id: t.user_id,
        })
        .collect()
}

fn rule_change(id: Uuid, action: &str, field: &str, old: Option<String>, new: Option<String>) -> Change {
    Change { object: "assignment_rule".into(), record_id: Some(id), action: action.into(), field: Some(field.into()), old, new }
}

fn summary(r: &Rule) -> String {
    json!({
        "name": r.name, "conditions": r.conditions, "strategy": r.strategy, "user_id": r.user_id, "team_id": r.team_id,
        "user_ids": r.user_ids, "territories": r.territories, "active": r.active,
    })
    .to_string()
}

fn conflict_name(e: StoreError, name: &str) -> StoreError {
    if e.is_unique_violation() {
        StoreError::Conflict(format!("an assignment rule called \"{}\" already exists", name.trim()))
    } else {
        e
    }
}

fn json_of<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map(Value::Json).map_err(|e| StoreError::Config(e.to_string()))
}

/// Renumbers the object's rules 1..n in `order` (ids not listed keep their relative order after).
async fn renumber(tx: &mut Tx, company_id: Uuid, object: &str, order: &[Uuid]) -> Result<()> {
    let all = rules_tx(tx, company_id, object, false).await?;
    let mut ids: Vec<Uuid> = order.iter().copied().filter(|id| all.iter().any(|r| r.id == *id)).collect();
    ids.extend(all.iter().map(|r| r.id).filter(|id| !order.contains(id)));
    for (i, id) in ids.iter().enumerate() {
        let pos = i as i64 + 1;
        if all.iter().any(|r| r.id == *id && r.position != pos) {
            tx.execute(
                &Q::new("UPDATE assignment_rules SET position = $1 WHERE company_id = $2 AND id = $3")
                    .bind(Value::Int(pos))
                    .bind(Value::Uuid(company_id))
                    .bind(Value::Uuid(*id)),
            )
            .await?;
        }
    }
    Ok(())
}

/// Moves `id` to 1-based `position` among the object's rules.
async fn place(tx: &mut Tx, company_id: Uuid, object: &str, id: Uuid, position: i64) -> Result<()> {
    let mut ids: Vec<Uuid> = rules_tx(tx, company_id, object, false).await?.into_iter().map(|r| r.id).filter(|r| *r != id).collect();
    let at = usize::try_from(position.max(1) - 1).unwrap_or(0).min(ids.len());
    ids.insert(at, id);
    renumber(tx, company_id, object, &ids).await
}

pub async fn create(db: &Db, t: &Tenant, input: RuleInput) -> Result<Rule> {
    let object = input.object.clone().unwrap_or_else(|| "leads".into());
    if !ASSIGNED_OBJECTS.contains(&object.as_str()) {
        return Err(StoreError::invalid("object", "must be leads"));
    }
    if input.position.is_some_and(|p| !(1..=MAX_RULES as i64).contains(&p)) {
        return Err(StoreError::invalid("position", "must be from 1 to 200"));
    }
    let d = Draft {
        name: &input.name,
        conditions: &input.conditions,
        strategy: input.strategy,
        user_id: input.user_id,
        team_id: input.team_id,
        user_ids: &input.user_ids,
        territories: &input.territories,
    };
    validate(db, t.company_id, &d).await?;
    let mut tx = db.begin().await?;
    let existing = rules_tx(&mut tx, t.company_id, &object, false).await?;
    if existing.len() >= MAX_RULES {
        return Err(StoreError::Conflict(format!("a company can have at most {MAX_RULES} assignment rules")));
    }
    let id = new_id();
    let now = now_micros();
    let end = existing.iter().map(|r| r.position).max().unwrap_or(0) + 1;
    let q = Q::new(format!(
        "INSERT INTO assignment_rules (company_id, created_by, updated_by, {COLS}) VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, 1, $14, $14)"
    ))
    .bind(Value::Uuid(t.company_id))
    .bind(Value::Uuid(t.user_id))
    .bind(Value::Uuid(id))
    .bind(Value::Text(object.clone()))
    .bind(Value::Text(input.name.trim().to_string()))
    .bind(Value::Int(end))
    .bind(Value::Bool(input.active))
    .bind(json_of(&input.conditions)?)
    .bind(Value::Text(input.strategy.as_str().into()))
    .bind(input.user_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(input.team_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(json_of(&input.user_ids)?)
    .bind(json_of(&normalise_territories(&input.territories))?)
    .bind(Value::Timestamp(now));
    tx.execute(&q).await.map_err(|e| conflict_name(e, &input.name))?;
    if let Some(p) = input.position {
        place(&mut tx, t.company_id, &object, id, p).await?;
    }
    let rule = get_tx(&mut tx, t.company_id, id).await?;
    audit::append(&mut tx, &t.audit, &[rule_change(id, "create", "rule", None, Some(summary(&rule)))]).await?;
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await?;
    Ok(rule)
}

pub async fn update(db: &Db, t: &Tenant, id: Uuid, patch: RulePatch) -> Result<Rule> {
    let current = get(db, t.company_id, id).await?;
    if patch.version.is_some_and(|v| v != current.version) {
        return Err(StoreError::Stale { current: current.version });
    }
    if patch.position.is_some_and(|p| !(1..=MAX_RULES as i64).contains(&p)) {
        return Err(StoreError::invalid("position", "must be from 1 to 200"));
    }
    let name = patch.name.clone().unwrap_or_else(|| current.name.clone());
    let conditions = patch.conditions.clone().unwrap_or_else(|| current.conditions.clone());
    let strategy = patch.strategy.unwrap_or(current.strategy);
    let user_id = patch.user_id.unwrap_or(current.user_id);
    let team_id = patch.team_id.unwrap_or(current.team_id);
    let user_ids = patch.user_ids.clone().unwrap_or_else(|| current.user_ids.clone());
    let territories = normalise_territories(&patch.territories.clone().unwrap_or_else(|| current.territories.clone()));
    let active = patch.active.unwrap_or(current.active);
    let d = Draft { name: &name, conditions: &conditions, strategy, user_id, team_id, user_ids: &user_ids, territories: &territories };
    validate(db, t.company_id, &d).await?;
    let mut tx = db.begin().await?;
    let locked = get_tx(&mut tx, t.company_id, id).await?;
    if locked.version != current.version {
        return Err(StoreError::Stale { current: locked.version });
    }
    let q = Q::new(
        "UPDATE assignment_rules SET name = $1, conditions = $2, strategy = $3, user_id = $4, team_id = $5, user_ids = $6, territories = $7, \
         is_active = $8, version = version + 1, updated_at = $9, updated_by = $10 WHERE company_id = $11 AND id = $12",
    )
    .bind(Value::Text(name.trim().to_string()))
    .bind(json_of(&conditions)?)
    .bind(Value::Text(strategy.as_str().into()))
    .bind(user_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(team_id.map_or(Value::Null(SqlType::Uuid), Value::Uuid))
    .bind(json_of(&user_ids)?)
    .bind(json_of(&territories)?)
    .bind(Value::Bool(active))
    .bind(Value::Timestamp(now_micros()))
    .bind(Value::Uuid(t.user_id))
    .bind(Value::Uuid(t.company_id))
    .bind(Value::Uuid(id));
    tx.execute(&q).await.map_err(|e| conflict_name(e, &name))?;
    if let Some(p) = patch.position {
        place(&mut tx, t.company_id, &current.object, id, p).await?;
    }
    let rule = get_tx(&mut tx, t.company_id, id).await?;
    let mut rows = Vec::new();
    if summary(&rule) != summary(&current) {
        rows.push(rule_change(id, "update", "rule", Some(summary(&current)), Some(summary(&rule))));
    }
    if rule.position != current.position {
        rows.push(rule_change(id, "update", "position", Some(current.position.to_string()), Some(rule.position.to_string())));
    }
    audit::append(&mut tx, &t.audit, &rows).await?;
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await?;
    Ok(rule)
}

pub async fn delete(db: &Db, t: &Tenant, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    let rule = get_tx(&mut tx, t.company_id, id).await?;
    tx.execute(
        &Q::new("DELETE FROM assignment_rules WHERE company_id = $1 AND id = $2").bind(Value::Uuid(t.company_id)).bind(Value::Uuid(id)),
    )
    .await?;
    renumber(&mut tx, t.company_id, &rule.object, &[]).await?;
    audit::append(&mut tx, &t.audit, &[rule_change(id, "delete", "rule", Some(summary(&rule)), None)]).await?;
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await
}

/// Sets the order of the object's rules: `ids` must list each of them exactly once.
pub async fn reorder(db: &Db, t: &Tenant, object: &str, ids: &[Uuid]) -> Result<Vec<Rule>> {
    let mut tx = db.begin().await?;
    let all = rules_tx(&mut tx, t.company_id, object, false).await?;
    let listed: BTreeSet<Uuid> = ids.iter().copied().collect();
    let have: BTreeSet<Uuid> = all.iter().map(|r| r.id).collect();
    if listed.len() != ids.len() {
        return Err(StoreError::invalid("ids", "lists a rule twice"));
    }
    if listed != have {
        return Err(StoreError::invalid("ids", "must list every assignment rule of the company exactly once"));
    }
    let before: Vec<String> = all.iter().map(|r| r.id.to_string()).collect();
    renumber(&mut tx, t.company_id, object, ids).await?;
    let after: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    if before != after {
        audit::append(&mut tx, &t.audit, &[rule_change(Uuid::nil(), "reorder", "position", Some(before.join(",")), Some(after.join(",")))])
            .await?;
    }
    let out = rules_tx(&mut tx, t.company_id, object, false).await?;
    settings::touch(&mut tx, t.company_id).await?;
    tx.commit().await?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Choosing an owner
// ---------------------------------------------------------------------------------------

/// Who a rule gave a record to.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub rule_id: Uuid,
    pub rule_name: String,
    pub strategy: Strategy,
    pub user_id: Uuid,
    /// The territory that matched (territory strategy).
    pub territory: Option<String>,
}

/// The round robin's next member after `last` in the stable (id) order, wrapping around.
pub fn next_in_turn(members: &[Uuid], last: Option<Uuid>) -> Option<Uuid> {
    let first = members.first().copied()?;
    Some(match last {
        Some(l) => members.iter().copied().find(|m| *m > l).unwrap_or(first),
        None => first,
    })
}

/// The step's state for one transaction or import batch: the active rules (read once), the
/// active members, round-robin positions (read and locked on first use, written by `finish`)
/// and open-lead counts (kept up to date in memory as records are assigned).
#[derive(Debug, Default)]
pub struct Step {
    company_id: Uuid,
    rules: Vec<Rule>,
    members: Option<HashMap<Uuid, Option<Uuid>>>,
    positions: HashMap<Uuid, Option<Uuid>>,
    dirty: HashSet<Uuid>,
    open_leads: HashMap<Uuid, i64>,
    pending: Option<Decision>,
}

/// The active rules that assign records of `object` (none for objects without assignment).
pub async fn active_rules(tx: &mut Tx, company_id: Uuid, object: &ObjectDef) -> Result<Vec<Rule>> {
    if ASSIGNED_OBJECTS.contains(&object.name.as_str()) {
        rules_tx(tx, company_id, &object.name, true).await
    } else {
        Ok(Vec::new())
    }
}

impl Step {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Step> {
        Ok(Step::with_rules(tenant.company_id, active_rules(tx, tenant.company_id, object).await?))
    }

    /// The step with its active rules already read (the pipeline's cache). Round-robin
    /// positions are not part of them: they are read under a lock when first used.
    pub fn with_rules(company_id: Uuid, rules: Vec<Rule>) -> Step {
        Step { company_id, rules, ..Default::default() }
    }

    async fn members(&mut self, tx: &mut Tx) -> Result<&HashMap<Uuid, Option<Uuid>>> {
        if self.members.is_none() {
            self.members = Some(active_members(tx, self.company_id).await?);
        }
        Ok(self.members.get_or_insert_with(HashMap::new))
    }

    /// Active members a team or list rule shares records among, in a stable order.
    async fn pool(&mut self, tx: &mut Tx, rule: &Rule) -> Result<Vec<Uuid>> {
        let members = self.members(tx).await?;
        let mut pool: Vec<Uuid> = if rule.user_ids.is_empty() {
            members.iter().filter(|(_, team)| team.is_some() && **team == rule.team_id).map(|(u, _)| *u).collect()
        } else {
            rule.user_ids.iter().copied().filter(|u| members.contains_key(u)).collect()
        };
        pool.sort();
        pool.dedup();
        Ok(pool)
    }

    /// The round-robin position, read under a row lock the first time this transaction uses
    /// it, so concurrent transactions take turns instead of both giving to the same person.
    async fn position(&mut self, tx: &mut Tx, rule: Uuid) -> Result<Option<Uuid>> {
        if let Some(p) = self.positions.get(&rule) {
            return Ok(*p);
        }
        let q = Q::new(format!("SELECT rr_last_user_id FROM assignment_rules WHERE company_id = $1 AND id = $2{}", tx.for_update()))
            .bind(Value::Uuid(self.company_id))
            .bind(Value::Uuid(rule));
        let p = tx.fetch_one(&q, &[SqlType::Uuid]).await?.and_then(|r| r.uuid(0));
        self.positions.insert(rule, p);
        Ok(p)
    }

    async fn open_counts(&mut self, tx: &mut Tx, users: &[Uuid]) -> Result<()> {
        let missing: Vec<Uuid> = users.iter().copied().filter(|u| !self.open_leads.contains_key(u)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut q = Q::new("SELECT owner_id, COUNT(*) FROM leads WHERE deleted_at IS NULL AND company_id = ");
        let p = q.param(Value::Uuid(self.company_id));
        q.push(&p);
        let st: Vec<String> = OPEN_STATUSES.iter().map(|s| q.param(Value::Text((*s).into()))).collect();
        let us: Vec<String> = missing.iter().map(|u| q.param(Value::Uuid(*u))).collect();
        q.push(&format!(" AND status IN ({}) AND owner_id IN ({}) GROUP BY owner_id", st.join(", "), us.join(", ")));
        for u in &missing {
            self.open_leads.insert(*u, 0);
        }
        for r in tx.fetch(&q, &[SqlType::Uuid, SqlType::Int]).await? {
            if let (Some(u), Some(n)) = (r.uuid(0), r.int(1)) {
                self.open_leads.insert(u, n);
            }
        }
        Ok(())
    }

    /// Which user `rule` would give a record with these values to (without taking a turn).
    async fn choose(&mut self, tx: &mut Tx, rule: &Rule, facts: &Map<String, Json>) -> Result<Option<(Uuid, Option<String>)>> {
        match rule.strategy {
            Strategy::User => {
                let Some(u) = rule.user_id else { return Ok(None) };
                Ok(self.members(tx).await?.contains_key(&u).then_some((u, None)))
            }
            Strategy::RoundRobin => {
                let pool = self.pool(tx, rule).await?;
                if pool.is_empty() {
                    return Ok(None);
                }
                let last = self.position(tx, rule.id).await?;
                Ok(next_in_turn(&pool, last).map(|u| (u, None)))
            }
            Strategy::LoadBalanced => {
                let pool = self.pool(tx, rule).await?;
                self.open_counts(tx, &pool).await?;
                Ok(pool.iter().min_by_key(|u| (self.open_leads.get(*u).copied().unwrap_or(0), **u)).map(|u| (*u, None)))
            }
            Strategy::Territory => {
                let country = facts.get("country").and_then(Json::as_str).map(str::to_string);
                let state = facts.get("state").and_then(Json::as_str).map(str::to_string);
                let members = self.members(tx).await?;
                Ok(rule
                    .territories
                    .iter()
                    .find(|t| members.contains_key(&t.user_id) && t.matches(country.as_deref(), state.as_deref()))
                    .map(|t| {
                        (
                            t.user_id,
                            Some(
                                t.name
                                    .clone()
                                    .unwrap_or_else(|| t.countries.iter().chain(&t.states).cloned().collect::<Vec<_>>().join(", ")),
                            ),
                        )
                    }))
            }
        }
    }

    /// The first active rule that matches and can name an active member.
    pub async fn decide(&mut self, tx: &mut Tx, facts: &Map<String, Json>) -> Result<Option<Decision>> {
        let now = now_micros();
        for i in 0..self.rules.len() {
            if !rules::all_match(&self.rules[i].conditions, &Facts { fields: facts, events: &[], now }) {
                continue;
            }
            // `choose` needs the step mutably (caches), so the matching rule is copied; only
            // matching rules are, not the whole list per record.
            let rule = self.rules[i].clone();
            if let Some((user_id, territory)) = self.choose(tx, &rule, facts).await? {
                return Ok(Some(Decision { rule_id: rule.id, rule_name: rule.name, strategy: rule.strategy, user_id, territory }));
            }
        }
        Ok(None)
    }

    /// Picks an owner for a new record that has none.
    pub async fn before_create(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &mut Changes, _audit: &mut Vec<Change>) -> Result<()> {
        self.pending = None;
        if self.rules.is_empty() || !ASSIGNED_OBJECTS.contains(&w.object.name.as_str()) {
            return Ok(());
        }
        if changes.fields.get("owner_id").is_some_and(|v| !v.is_null()) {
            return Ok(());
        }
        let facts = scoring::facts_of(&changes.fields, &changes.custom.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        if let Some(d) = self.decide(tx, &facts).await? {
            changes.fields.insert("owner_id".into(), Value::Uuid(d.user_id));
            self.pending = Some(d);
        }
        Ok(())
    }

    /// Once the record is written: the rule takes its turn, the owner's load grows, and the
    /// assignment is audited with the rule's name.
    pub async fn after_write(&mut self, _tx: &mut Tx, w: &Write<'_>, record: &Record, audit: &mut Vec<Change>) -> Result<()> {
        if w.existing.is_some() {
            return Ok(());
        }
        let Some(d) = self.pending.take() else { return Ok(()) };
        if record.get("owner_id").and_then(Value::as_uuid) != Some(d.user_id) {
            return Ok(());
        }
        if d.strategy == Strategy::RoundRobin {
            self.positions.insert(d.rule_id, Some(d.user_id));
            self.dirty.insert(d.rule_id);
        }
        if record.text("status").is_none_or(|s| OPEN_STATUSES.contains(&s)) {
            if let Some(n) = self.open_leads.get_mut(&d.user_id) {
                *n += 1;
            }
        }
        let how = match &d.territory {
            Some(t) => format!("rule: {} (territory {t})", d.rule_name),
            None => format!("rule: {}", d.rule_name),
        };
        audit.push(Change {
            object: w.object.name.clone(),
            record_id: Some(record.id),
            action: "assign".into(),
            field: Some("owner_id".into()),
            old: Some(how),
            new: Some(d.user_id.to_string()),
        });
        Ok(())
    }

    /// Writes back the round-robin positions taken in this transaction.
    pub async fn finish(self, tx: &mut Tx) -> Result<()> {
        for rule in &self.dirty {
            let Some(Some(user)) = self.positions.get(rule) else { continue };
            tx.execute(
                &Q::new("UPDATE assignment_rules SET rr_last_user_id = $1 WHERE company_id = $2 AND id = $3")
                    .bind(Value::Uuid(*user))
                    .bind(Value::Uuid(self.company_id))
                    .bind(Value::Uuid(*rule)),
            )
            .await?;
        }
        Ok(())
    }
}

/// Which rule a sample lead would hit and who would get it; takes no turn and writes nothing.
pub async fn preview(db: &Db, t: &Tenant, facts: &Map<String, Json>) -> Result<Option<Decision>> {
    let mut tx = db.begin().await?;
    let lead_def = corvid_core::object("leads").ok_or_else(|| StoreError::Config("the leads object is not declared".into()))?;
    let mut step = Step::load(&mut tx, t, lead_def).await?;
    let out = step.decide(&mut tx, facts).await;
    drop(tx);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_turns_wrap_and_survive_removed_members() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let c = Uuid::from_u128(3);
        let pool = [a, b, c];
        assert_eq!(next_in_turn(&pool, None), Some(a));
        assert_eq!(next_in_turn(&pool, Some(a)), Some(b));
        assert_eq!(next_in_turn(&pool, Some(c)), Some(a));
        // The last one left the team: the turn goes to whoever follows in order.
        assert_eq!(next_in_turn(&[a, c], Some(b)), Some(c));
        assert_eq!(next_in_turn(&[], Some(b)), None);
    }

    #[test]
    fn territories_match_countries_and_states() {
        let t =
            Territory { name: None, countries: vec!["IN".into()], states: vec!["Karnataka".into(), "Kerala".into()], user_id: Uuid::nil() };
        assert!(t.matches(Some("IN"), Some("kerala")));
        assert!(!t.matches(Some("IN"), Some("Goa")));
        assert!(!t.matches(Some("LK"), Some("Kerala")));
        assert!(!t.matches(None, None));
        let any_state = Territory { name: None, countries: vec!["LK".into()], states: vec![], user_id: Uuid::nil() };
        assert!(any_state.matches(Some("LK"), None));
        let empty = Territory { name: None, countries: vec![], states: vec![], user_id: Uuid::nil() };
        assert!(!empty.matches(Some("IN"), Some("Goa")));
    }
}
