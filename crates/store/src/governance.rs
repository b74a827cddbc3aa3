//! Normalisation beyond field syntax, soft validation (`validation_status` with reasons) and the spam score.
//!
//! Runs first in the pipeline, inside the write's transaction, for every way in (API, UI,
//! bulk, import). Field syntax (422 errors) was already checked by `corvid_core::validate`;
//! this step
//! - tidies name fields of leads, contacts and accounts (inner whitespace collapsed);
//! - for leads, stores the soft problems (`corvid_core::quality`) as `validation_reasons` and
//!   their verdict as `validation_status`, and the spam signals (`corvid_core::spam`) as
//!   `spam_reasons` with their band as `spam_score`.
//!
//! The checks run on create and whenever a field they read changes. An update that only sets
//! `validation_status` or `spam_score` is a person's review and is kept as it is; an update
//! that changes checked fields and also sets them keeps the person's value too (the reasons
//! are still refreshed).

use crate::audit::Change;
use crate::db::{Db, Tx, Q};
use crate::pipeline::Write;
use crate::records::Tenant;
use crate::{settings, Result};
use chrono::{DateTime, Duration, Utc};
use corvid_core::meta::ObjectDef;
use corvid_core::quality::{self, LeadFacts};
use corvid_core::spam::{self, Burst, Policy, Signal};
use corvid_core::validate::Changes;
use corvid_core::value::now_micros;
use corvid_core::{names, SqlType, Value};
use uuid::Uuid;

/// Settings key of the company's spam policy (`corvid_core::spam::Policy`).
pub const SPAM_POLICY_KEY: &str = "governance.spam";

/// Channels whose writes are deliberate batches: a burst there is an import, not spam.
const BATCH_CHANNELS: &[&str] = &["import", "bulk"];

/// Name fields tidied per object.
fn name_fields(object: &str) -> &'static [&'static str] {
    match object {
        "leads" => &["first_name", "last_name", "company_name"],
        "contacts" => &["first_name", "last_name", "full_name"],
        "accounts" => &["name"],
        _ => &[],
    }
}

/// The step's state for one transaction or import batch.
#[derive(Debug, Default)]
pub struct Step {
    policy: Policy,
    /// Batch mode: the recent leads burst counts look at, read once per batch and kept up to
    /// date with the batch's own new leads (`None` outside batch mode).
    recent: Option<Recent>,
}

/// One recent arrival: when, and its source/campaign key and company domain.
type Arrival = (DateTime<Utc>, Option<String>, Option<String>, Option<String>);

/// The most recent live leads (at most `BURST_SCAN`), newest first: created at, source,
/// campaign, email. `None` until first needed.
#[derive(Debug, Default)]
pub struct Recent {
    since: Option<DateTime<Utc>>,
    rows: Vec<Arrival>,
}

/// The company's spam policy; a stored value that no longer reads falls back to the default
/// (and is logged) rather than blocking every lead write.
pub async fn spam_policy_in(tx: &mut Tx, company_id: Uuid) -> Result<Policy> {
    match settings::get_in::<Policy>(tx, company_id, SPAM_POLICY_KEY).await {
        Ok(p) => Ok(p.filter(|p| p.check().is_ok()).unwrap_or_default()),
        Err(crate::StoreError::Corrupt(e)) => {
            tracing::warn!(%company_id, error = %e, "unreadable spam policy; using the default");
            Ok(Policy::default())
        }
        Err(e) => Err(e),
    }
}

/// The company's spam policy (for showing it).
pub async fn spam_policy(db: &Db, company_id: Uuid) -> Result<Policy> {
    let mut tx = db.begin().await?;
    let p = spam_policy_in(&mut tx, company_id).await?;
    tx.commit().await?;
    Ok(p)
}

/// Stores a new spam policy after checking it (audited as a settings change).
pub async fn set_spam_policy(db: &Db, tenant: &Tenant, policy: &Policy) -> Result<()> {
    policy.check().map_err(|e| crate::StoreError::invalid("policy", &e))?;
    settings::set(db, &tenant.audit, SPAM_POLICY_KEY, policy).await
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Text(s)) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl Step {
    pub async fn load(tx: &mut Tx, tenant: &Tenant, object: &'static ObjectDef) -> Result<Step> {
        if object.name != "leads" {
            return Ok(Step::default());
        }
        Ok(Step { policy: spam_policy_in(tx, tenant.company_id).await?, recent: None })
    }

    /// Batch mode: burst counts read the recent leads once and count the batch's own.
    pub fn for_batch(&mut self) {
        self.recent = Some(Recent::default());
    }

    /// What this batch knows of the recent leads (what it read and what it wrote), for the
    /// next batch or group of the same company (`Pipeline::take_over`).
    pub fn kept_recent(&mut self) -> Option<Recent> {
        self.recent.take().filter(|r| r.since.is_some())
    }

    /// Starts from the recent leads an earlier batch knew, instead of reading them again.
    pub fn keep_recent(&mut self, kept: Recent) {
        if self.recent.is_some() {
            self.recent = Some(kept);
        }
    }

    /// Batch mode: a lead written by this batch is among the recent ones for later rows.
    pub fn note_created(&mut self, object: &ObjectDef, record: &corvid_core::record::Record) {
        let Some(recent) = self.recent.as_mut().filter(|r| r.since.is_some() && object.name == "leads") else { return };
        let text = |f: &str| record.text(f).map(str::to_string);
        recent.rows.insert(0, (record.created_at, text("source"), text("campaign"), text("email")));
        recent.rows.truncate(BURST_SCAN);
    }

    pub async fn before_write(&mut self, tx: &mut Tx, w: &Write<'_>, changes: &mut Changes, _audit: &mut Vec<Change>) -> Result<()> {
        tidy_names(&w.object.name, changes);
        if w.object.name != "leads" {
            return Ok(());
        }
        let checked_changed = match w.existing {
            None => true,
            Some(rec) => quality::FIELDS.iter().any(|f| changes.fields.get(*f).is_some_and(|v| rec.fields.get(*f) != Some(v))),
        };
        if !checked_changed {
            return Ok(());
        }
        // The lead as it will be stored: the change over the stored record.
        let value = |name: &str| match changes.fields.get(name) {
            Some(v) => text(Some(v)),
            None => text(w.existing.and_then(|r| r.fields.get(name))),
        };
        let (first, last, company, email, phone, country) =
            (value("first_name"), value("last_name"), value("company_name"), value("email"), value("phone"), value("country"));
        let facts = LeadFacts {
            first_name: first.as_deref(),
            last_name: last.as_deref(),
            company_name: company.as_deref(),
            email: email.as_deref(),
            phone: phone.as_deref(),
            country: country.as_deref(),
        };

        let reasons = quality::check(&facts);
        let status = quality::status(&reasons);
        let mut signals = spam::content_signals(&facts);
        match w.existing {
            None if !BATCH_CHANNELS.contains(&w.channel) => {
                let burst = self.burst(tx, w, email.as_deref(), value("source"), value("campaign")).await?;
                signals.extend(spam::burst_signals(&burst, &self.policy));
            }
            None => {}
            // A burst is about when the lead arrived: keep what was found then.
            Some(rec) => signals.extend(stored_burst_signals(rec.fields.get("spam_reasons"))),
        }
        let band = self.policy.band(spam::total(&signals));

        // On update, a value the person set in this same request is their review: keep it.
        let reviewed_status = w.existing.is_some() && changes.fields.contains_key("validation_status");
        let reviewed_spam = w.existing.is_some() && changes.fields.contains_key("spam_score");
        if !reviewed_status {
            changes.fields.insert("validation_status".into(), Value::Text(status.into()));
        }
        if !reviewed_spam {
            changes.fields.insert("spam_score".into(), Value::Text(band.into()));
        }
        changes.fields.insert("validation_reasons".into(), Value::Json(serde_json::to_value(&reasons).unwrap_or_default()));
        changes.fields.insert("spam_reasons".into(), Value::Json(serde_json::to_value(&signals).unwrap_or_default()));
        Ok(())
    }

    /// Leads created within the policy's window before this one from the same source and
    /// campaign, and with the same (company) email domain: one query over the
    /// `(company_id, created_at)` index, bounded by the window.
    async fn burst(
        &mut self,
        tx: &mut Tx,
        w: &Write<'_>,
        email: Option<&str>,
        source: Option<String>,
        campaign: Option<String>,
    ) -> Result<Burst> {
        let domain = spam::burst_domain(email);
        let by_source = source.is_some() || campaign.is_some();
        if !by_source && domain.is_none() {
            return Ok(Burst::default());
        }
        let since = now_micros() - Duration::minutes(self.policy.burst_window_minutes);
        if self.recent.is_some() {
            return self.burst_in_batch(tx, w, since, domain, source, campaign).await;
        }
        let mut q = Q::new(String::new());
        let pc = q.param(Value::Uuid(w.tenant.company_id));
        let ps = q.param(Value::Timestamp(since));
        let same = |column: &str, v: &Option<String>, q: &mut Q| match v {
            Some(s) => format!("{column} = {}", q.param(Value::Text(s.clone()))),
            None => format!("{column} IS NULL"),
        };
        let source_cond = if by_source {
            format!("{} AND {}", same("source", &source, &mut q), same("campaign", &campaign, &mut q))
        } else {
            "1 = 0".into()
        };
        // Domains hold only letters, digits, dots and hyphens: no LIKE wildcards to escape.
        let domain_cond = match &domain {
            Some(d) => format!("email LIKE {}", q.param(Value::Text(format!("%@{d}")))),
            None => "1 = 0".into(),
        };
        q.sql = format!(
            "SELECT SUM(CASE WHEN {source_cond} THEN 1 ELSE 0 END), SUM(CASE WHEN {domain_cond} THEN 1 ELSE 0 END) \
             FROM (SELECT source, campaign, email FROM leads WHERE company_id = {pc} AND created_at >= {ps} AND deleted_at IS NULL \
             ORDER BY created_at DESC LIMIT {BURST_SCAN}) recent"
        );
        let row = tx.fetch_one(&q, &[SqlType::Int, SqlType::Int]).await?;
        let count = |i: usize| row.as_ref().and_then(|r| r.int(i)).unwrap_or(0);
        let label = [source.as_deref(), campaign.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" / ");
        Ok(Burst {
            same_source: by_source.then(|| count(0)),
            same_domain: domain.as_ref().map(|_| count(1)),
            source_label: format!("source {label}"),
            domain: domain.unwrap_or_default(),
        })
    }
}

/// The most recent arrivals a burst is counted among: enough to see any burst the policy
/// can flag, and a bound on the work when a big import has just landed.
const BURST_SCAN: usize = 500;

impl Step {
    /// `burst` in batch mode: the same counts as its query, over the recent leads read once
    /// (the query's rows, without its aggregation) and the batch's own new leads.
    async fn burst_in_batch(
        &mut self,
        tx: &mut Tx,
        w: &Write<'_>,
        since: DateTime<Utc>,
        domain: Option<String>,
        source: Option<String>,
        campaign: Option<String>,
    ) -> Result<Burst> {
        let Some(recent) = self.recent.as_mut() else { return Ok(Burst::default()) };
        // Rows kept from an earlier batch answer for any window inside the one they were read
        // for (the newest first, so the window's newest are a prefix); a wider window (the
        // policy changed) reads again.
        if recent.since.is_none_or(|read_since| since < read_since) {
            let q = Q::new(format!(
                "SELECT created_at, source, campaign, email FROM leads WHERE company_id = $1 AND created_at >= $2 AND deleted_at IS NULL \
                 ORDER BY created_at DESC LIMIT {BURST_SCAN}"
            ))
            .bind(Value::Uuid(w.tenant.company_id))
            .bind(Value::Timestamp(since));
            let types = [SqlType::Timestamp, SqlType::Text, SqlType::Text, SqlType::Text];
            recent.rows =
                tx.fetch(&q, &types).await?.into_iter().filter_map(|r| Some((r.timestamp(0)?, r.text(1), r.text(2), r.text(3)))).collect();
            recent.since = Some(since);
        }
        let by_source = source.is_some() || campaign.is_some();
        // SQLite's LIKE ignores ASCII case, PostgreSQL's does not: the same answer as the query.
        let fold = tx.backend() == crate::Backend::Sqlite;
        let suffix = domain.as_ref().map(|d| format!("@{d}"));
        let in_domain = |email: &Option<String>| match (email, &suffix) {
            (Some(e), Some(s)) if e.len() >= s.len() => {
                let tail = &e.as_bytes()[e.len() - s.len()..];
                if fold {
                    tail.eq_ignore_ascii_case(s.as_bytes())
                } else {
                    tail == s.as_bytes()
                }
            }
            _ => false,
        };
        let (mut same_source, mut same_domain) = (0i64, 0i64);
        for (_, s, c, e) in recent.rows.iter().filter(|(at, ..)| *at >= since).take(BURST_SCAN) {
            if by_source && *s == source && *c == campaign {
                same_source += 1;
            }
            if in_domain(e) {
                same_domain += 1;
            }
        }
        let label = [source.as_deref(), campaign.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" / ");
        Ok(Burst {
            same_source: by_source.then_some(same_source),
            same_domain: domain.as_ref().map(|_| same_domain),
            source_label: format!("source {label}"),
            domain: domain.unwrap_or_default(),
        })
    }
}

/// Collapses inner whitespace of the object's name fields in the change (the first thing
/// the step does; imports also do it before their duplicate lookups).
pub fn tidy_names(object: &str, changes: &mut Changes) {
    for field in name_fields(object) {
        if let Some(Value::Text(s)) = changes.fields.get_mut(*field) {
            let tidy = names::collapse_whitespace(s);
            if tidy != *s {
                *s = tidy;
            }
        }
    }
}

/// The burst signals among stored spam reasons.
fn stored_burst_signals(stored: Option<&Value>) -> Vec<Signal> {
    let Some(Value::Json(j)) = stored else { return Vec::new() };
    serde_json::from_value::<Vec<Signal>>(j.clone()).unwrap_or_default().into_iter().filter(|s| s.signal.starts_with("burst_")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_tidied_per_object() {
        let mut c = Changes::default();
        c.fields.insert("first_name".into(), Value::Text("Priya  \t Devi".into()));
        c.fields.insert("notes".into(), Value::Text("keep   this".into()));
        tidy_names("leads", &mut c);
        assert_eq!(c.fields["first_name"], Value::Text("Priya Devi".into()));
        assert_eq!(c.fields["notes"], Value::Text("keep   this".into()));
        let mut a = Changes::default();
        a.fields.insert("name".into(), Value::Text("Acme   Pvt  Ltd".into()));
        tidy_names("accounts", &mut a);
        assert_eq!(a.fields["name"], Value::Text("Acme Pvt Ltd".into()));
    }

    #[test]
    fn only_burst_signals_are_carried_over() {
        let stored = Value::Json(serde_json::json!([
            {"signal": "burst_source", "points": 25, "detail": "x"},
            {"signal": "gibberish_name", "points": 30, "detail": "y"}
        ]));
        let kept = stored_burst_signals(Some(&stored));
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].signal, "burst_source");
        assert!(stored_burst_signals(Some(&Value::Json(serde_json::json!("junk")))).is_empty());
        assert!(stored_burst_signals(None).is_empty());
    }
}
