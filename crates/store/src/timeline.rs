//! A record's timeline: its activities, tasks and field changes, newest first.

use crate::audit::{self, AuditFilter, AuditRow};
use crate::{Db, Result, Tenant};
use corvid_core::value::format_timestamp;
use corvid_core::{ObjectDef, Record};
use uuid::Uuid;

pub enum Entry {
    Activity(Record),
    Task(Record),
    Change(AuditRow),
}

impl Entry {
    /// RFC 3339 time the entry sorts by.
    pub fn at(&self) -> String {
        match self {
            Entry::Activity(r) => r.get("activity_date").and_then(|v| v.to_json().as_str().map(str::to_string)).unwrap_or_default(),
            Entry::Task(r) => format_timestamp(&r.created_at),
            Entry::Change(a) => a.at.clone(),
        }
    }
}

pub async fn for_record(db: &Db, t: &Tenant, object: &'static ObjectDef, id: Uuid, limit: usize) -> Result<Vec<Entry>> {
    let mut items = Vec::new();
    if object.name != "activities" {
        if let Some(acts) = corvid_core::object("activities") {
            let link = format!("{}_id", object.singular);
            items.extend(t.records(db, acts).linked(&link, id, limit).await?.into_iter().map(Entry::Activity));
        }
    }
    if let Some(tasks) = corvid_core::object("tasks") {
        let linked = t.records(db, tasks).linked("related_id", id, limit).await?;
        items.extend(linked.into_iter().filter(|r| r.text("related_object") == Some(object.name.as_str())).map(Entry::Task));
    }
    let f = AuditFilter { object: Some(object.name.clone()), record_id: Some(id), limit, ..Default::default() };
    let changes = audit::list(db, t.company_id, &f).await?;
    items.extend(t.access.visible_history(changes).into_iter().map(Entry::Change));
    items.sort_by_key(|e| std::cmp::Reverse(e.at()));
    items.truncate(limit);
    Ok(items)
}
