//! The spam score of a lead: explainable signals, each worth points, summed into a band
//! (`low`, `medium`, `high`). Every signal is stored with its points and a detail, so a user
//! sees exactly why a lead was marked.
//!
//! Content signals come from the lead itself; burst signals come from how many leads arrived
//! from the same source or email domain shortly before (counted by the store).

use crate::quality::LeadFacts;
use crate::{disposable, names};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// Stable machine code, e.g. `disposable_email`.
    pub signal: String,
    pub points: u32,
    pub detail: String,
}

fn signal(code: &str, points: u32, detail: String) -> Signal {
    Signal { signal: code.into(), points, detail }
}

/// Per-company tuning (setting `governance.spam`); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Points from which a lead is `medium`.
    pub medium_at: u32,
    /// Points from which a lead is `high`.
    pub high_at: u32,
    /// How far back a burst is counted.
    pub burst_window_minutes: i64,
    /// Leads from the same source and campaign within the window that make a burst.
    pub burst_source_count: i64,
    /// Leads from the same (non free-mail) email domain within the window that make a burst.
    pub burst_domain_count: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { medium_at: 30, high_at: 60, burst_window_minutes: 10, burst_source_count: 20, burst_domain_count: 5 }
    }
}

impl Policy {
    /// Rejects settings that would make the score meaningless.
    pub fn check(&self) -> Result<(), String> {
        if self.medium_at == 0 || self.high_at <= self.medium_at {
            return Err("medium_at must be above 0 and high_at above medium_at".into());
        }
        if !(1..=1440).contains(&self.burst_window_minutes) {
            return Err("burst_window_minutes must be from 1 to 1440".into());
        }
        if self.burst_source_count < 1 || self.burst_domain_count < 1 {
            return Err("burst counts must be at least 1".into());
        }
        Ok(())
    }

    pub fn band(&self, points: u32) -> &'static str {
        if points >= self.high_at {
            "high"
        } else if points >= self.medium_at {
            "medium"
        } else {
            "low"
        }
    }
}

/// Leads that arrived within the policy's window before this one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Burst {
    /// Same source and campaign (`None`: the lead has neither, so it is not counted).
    pub same_source: Option<i64>,
    /// Same email domain (`None`: no email, or a free-mail domain).
    pub same_domain: Option<i64>,
    /// Describes the source for the detail ("website / diwali-sale").
    pub source_label: String,
    pub domain: String,
}

/// The email domain whose burst is worth counting: free-mail providers are shared by
/// millions, so a run of gmail.com leads says nothing.
pub fn burst_domain(email: Option<&str>) -> Option<String> {
    let domain = disposable::email_domain(email?)?;
    (!disposable::is_free_mail(&domain)).then_some(domain)
}

/// Signals in the lead's own content.
pub fn content_signals(lead: &LeadFacts<'_>) -> Vec<Signal> {
    let mut out = Vec::new();
    if let Some(domain) = lead.email.and_then(disposable::email_domain).filter(|d| disposable::is_disposable(d)) {
        out.push(signal("disposable_email", 35, format!("email uses the disposable mailbox service {domain}")));
    }
    let person = [("first name", lead.first_name), ("last name", lead.last_name)];
    let mut links = Vec::new();
    for (label, value) in person {
        if let Some(what) = value.and_then(names::link_in_person_name) {
            links.push(format!("{label} contains {what}"));
        }
    }
    if let Some(what) = lead.company_name.and_then(names::link_in_company_name) {
        links.push(format!("company contains {what}"));
    }
    if !links.is_empty() {
        out.push(signal("link_in_name", 60, links.join("; ")));
    }
    for (label, value) in person {
        let Some(v) = value.filter(|v| names::link_in_person_name(v).is_none()) else { continue };
        if let Some(why) = names::gibberish(v) {
            out.push(signal("gibberish_name", 30, format!("{label} looks like random typing: {why}")));
        } else if names::has_digits(v) {
            out.push(signal("digits_in_name", 15, format!("{label} contains digits")));
        }
    }
    let full: String = [lead.first_name, lead.last_name].into_iter().flatten().collect::<Vec<_>>().join(" ");
    if names::is_all_caps(&full) {
        out.push(signal("all_caps", 10, "name is written in capitals only".into()));
    }
    if let Some(local) = lead.email.and_then(|e| e.rsplit_once('@')).map(|(l, _)| l) {
        if let Some(why) = names::gibberish(local) {
            out.push(signal("gibberish_email", 20, format!("email address looks random: {why}")));
        }
    }
    out
}

/// Signals from a burst of submissions.
pub fn burst_signals(b: &Burst, policy: &Policy) -> Vec<Signal> {
    let mut out = Vec::new();
    let window = policy.burst_window_minutes;
    let strength = |count: i64, threshold: i64| if count >= threshold * 3 { 40 } else { 25 };
    if let Some(n) = b.same_source.filter(|n| *n >= policy.burst_source_count) {
        out.push(signal(
            "burst_source",
            strength(n, policy.burst_source_count),
            format!("{n} other leads from {} in the last {window} minutes", b.source_label),
        ));
    }
    if let Some(n) = b.same_domain.filter(|n| *n >= policy.burst_domain_count) {
        out.push(signal(
            "burst_domain",
            strength(n, policy.burst_domain_count),
            format!("{n} other leads with @{} addresses in the last {window} minutes", b.domain),
        ));
    }
    out
}

pub fn total(signals: &[Signal]) -> u32 {
    signals.iter().map(|s| s.points).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead() -> LeadFacts<'static> {
        LeadFacts {
            first_name: Some("Priya"),
            last_name: Some("Shah"),
            company_name: Some("Acme"),
            email: Some("priya.shah@acme.in"),
            phone: None,
            country: None,
        }
    }

    fn names_of(s: &[Signal]) -> Vec<&str> {
        s.iter().map(|x| x.signal.as_str()).collect()
    }

    #[test]
    fn a_normal_lead_is_low() {
        let s = content_signals(&lead());
        assert!(s.is_empty(), "{s:?}");
        assert_eq!(Policy::default().band(total(&s)), "low");
        let unicode = LeadFacts { first_name: Some("अनन्या"), last_name: Some("Ñúñez"), ..lead() };
        assert!(content_signals(&unicode).is_empty());
    }

    #[test]
    fn signals_add_up_to_bands() {
        let p = Policy::default();
        let disposable = content_signals(&LeadFacts { email: Some("x.y@mailinator.com"), ..lead() });
        assert_eq!(names_of(&disposable), vec!["disposable_email"]);
        assert_eq!(p.band(total(&disposable)), "medium");
        let junk =
            content_signals(&LeadFacts { first_name: Some("asdf"), last_name: Some("qwerty"), email: Some("sdfg@yopmail.com"), ..lead() });
        assert_eq!(names_of(&junk), vec!["disposable_email", "gibberish_name", "gibberish_name", "gibberish_email"]);
        assert_eq!(p.band(total(&junk)), "high");
        let link = content_signals(&LeadFacts { last_name: Some("Cheap meds at pills.ru"), ..lead() });
        assert_eq!(names_of(&link), vec!["link_in_name"]);
        assert_eq!(p.band(total(&link)), "high");
        let shouting = content_signals(&LeadFacts { first_name: Some("PRIYA"), last_name: Some("SHAH"), ..lead() });
        assert_eq!(names_of(&shouting), vec!["all_caps"]);
        assert_eq!(p.band(total(&shouting)), "low");
    }

    #[test]
    fn bursts() {
        let p = Policy::default();
        let b = Burst { same_source: Some(19), same_domain: Some(4), source_label: "website".into(), domain: "acme.in".into() };
        assert!(burst_signals(&b, &p).is_empty());
        let b = Burst { same_source: Some(20), same_domain: Some(15), ..b };
        let s = burst_signals(&b, &p);
        assert_eq!(names_of(&s), vec!["burst_source", "burst_domain"]);
        assert_eq!(s[0].points, 25);
        assert_eq!(s[1].points, 40);
        assert_eq!(s[1].detail, "15 other leads with @acme.in addresses in the last 10 minutes");
        assert_eq!(burst_domain(Some("a@Gmail.com")), None);
        assert_eq!(burst_domain(Some("a@Acme.IN")), Some("acme.in".into()));
    }

    #[test]
    fn policy_checks_and_defaults() {
        assert!(Policy::default().check().is_ok());
        assert!(Policy { high_at: 10, ..Policy::default() }.check().is_err());
        assert!(Policy { burst_window_minutes: 0, ..Policy::default() }.check().is_err());
        let partial: Policy = serde_json::from_value(serde_json::json!({"high_at": 80})).expect("partial");
        assert_eq!(partial, Policy { high_at: 80, ..Policy::default() });
        assert!(serde_json::from_value::<Policy>(serde_json::json!({"nope": 1})).is_err());
    }
}
