//! Soft validation of a lead: problems that do not make the input unusable (those are hard
//! errors, answered with 422 by `validate`) but make the lead untrustworthy or incomplete.
//! Each problem is a `Reason` naming the field; the lead's `validation_status` follows from
//! the worst one: `invalid` (the data is wrong or junk), `pending` (a person should check or
//! complete it), `valid` (nothing found).

use crate::{disposable, names, phone};
use serde::{Deserialize, Serialize};

/// The fields of a lead the checks read, as they will be stored (validated and normalised).
#[derive(Debug, Clone, Copy, Default)]
pub struct LeadFacts<'a> {
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub company_name: Option<&'a str>,
    pub email: Option<&'a str>,
    /// E.164.
    pub phone: Option<&'a str>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<&'a str>,
}

/// The lead fields whose change means the checks must run again.
pub const FIELDS: &[&str] = &["first_name", "last_name", "company_name", "email", "phone", "country"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Pending,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable machine code, e.g. `disposable_email`.
    pub code: String,
    pub field: String,
    pub severity: Severity,
    /// Reads after the field label: "email uses a disposable mailbox (mailinator.com)".
    pub message: String,
}

fn reason(code: &str, field: &str, severity: Severity, message: String) -> Reason {
    Reason { code: code.into(), field: field.into(), severity, message }
}

fn present(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// Every soft problem of the lead, in field order.
pub fn check(lead: &LeadFacts<'_>) -> Vec<Reason> {
    let mut out = Vec::new();
    for (field, value) in [("first_name", lead.first_name), ("last_name", lead.last_name)] {
        let Some(v) = present(value) else { continue };
        if let Some(what) = names::link_in_person_name(v) {
            out.push(reason("name_link", field, Severity::Invalid, format!("contains {what}")));
        } else if let Some(why) = names::gibberish(v) {
            out.push(reason("name_gibberish", field, Severity::Invalid, format!("looks like random typing ({why})")));
        } else if names::has_digits(v) {
            out.push(reason("name_digits", field, Severity::Pending, "contains digits".into()));
        }
    }
    if let Some(what) = present(lead.company_name).and_then(names::link_in_company_name) {
        out.push(reason("name_link", "company_name", Severity::Invalid, format!("contains {what}")));
    }
    let email = present(lead.email);
    if let Some((local, domain)) = email.and_then(|e| e.rsplit_once('@')) {
        if disposable::is_disposable(domain) {
            out.push(reason(
                "disposable_email",
                "email",
                Severity::Invalid,
                format!("uses a disposable mailbox ({})", domain.to_lowercase()),
            ));
        } else if disposable::is_role_local(local) {
            out.push(reason("role_email", "email", Severity::Pending, format!("is a shared mailbox ({local}@), not a person's address")));
        }
    }
    let phone = present(lead.phone);
    if let Some(info) = phone.and_then(phone::info) {
        if info.kind == phone::LineKind::PremiumRate {
            out.push(reason("phone_premium", "phone", Severity::Invalid, "is a premium-rate number".into()));
        } else if !info.kind.is_personal() && info.kind != phone::LineKind::Other {
            out.push(reason(
                "phone_not_personal",
                "phone",
                Severity::Pending,
                format!("is a {} number, not a person's line", info.kind.label()),
            ));
        }
        if let Some(country) = present(lead.country) {
            let expected = phone::calling_code_of_region(country);
            if expected.is_some_and(|code| code != info.calling_code) {
                let from = info.region.clone().unwrap_or_else(|| format!("+{}", info.calling_code));
                out.push(reason(
                    "phone_country_mismatch",
                    "phone",
                    Severity::Pending,
                    format!("is a number from {from} but the lead's country is {}", country.to_uppercase()),
                ));
            }
        }
    }
    if email.is_none() && phone.is_none() {
        out.push(reason("no_contact", "email", Severity::Pending, "and phone are both missing: the lead cannot be contacted".into()));
    }
    out
}

/// `valid`, `pending` or `invalid`: the worst severity among the reasons.
pub fn status(reasons: &[Reason]) -> &'static str {
    match reasons.iter().map(|r| r.severity).max() {
        None => "valid",
        Some(Severity::Pending) => "pending",
        Some(Severity::Invalid) => "invalid",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(l: LeadFacts<'_>) -> Vec<String> {
        check(&l).into_iter().map(|r| format!("{}:{}", r.code, r.field)).collect()
    }

    fn base() -> LeadFacts<'static> {
        LeadFacts {
            first_name: Some("Priya"),
            last_name: Some("Shah"),
            company_name: Some("Acme Pvt Ltd"),
            email: Some("priya@acme.in"),
            phone: Some("+919876543210"),
            country: Some("IN"),
        }
    }

    #[test]
    fn a_clean_lead_is_valid() {
        assert!(check(&base()).is_empty());
        assert_eq!(status(&check(&base())), "valid");
        let unicode = LeadFacts { first_name: Some("राजेश"), last_name: Some("Müller-Lüdenscheidt"), ..base() };
        assert!(check(&unicode).is_empty());
    }

    #[test]
    fn each_problem_is_named() {
        assert_eq!(codes(LeadFacts { email: Some("x@mailinator.com"), ..base() }), vec!["disposable_email:email"]);
        assert_eq!(codes(LeadFacts { email: Some("info@acme.in"), ..base() }), vec!["role_email:email"]);
        assert_eq!(codes(LeadFacts { email: None, phone: None, ..base() }), vec!["no_contact:email"]);
        assert_eq!(codes(LeadFacts { first_name: Some("asdfgh"), ..base() }), vec!["name_gibberish:first_name"]);
        assert_eq!(codes(LeadFacts { last_name: Some("Buy now http://x.example"), ..base() }), vec!["name_link:last_name"]);
        assert_eq!(codes(LeadFacts { last_name: Some("Shah2"), ..base() }), vec!["name_digits:last_name"]);
        assert_eq!(codes(LeadFacts { company_name: Some("<a href=x>Acme</a>"), ..base() }), vec!["name_link:company_name"]);
        assert_eq!(codes(LeadFacts { phone: Some("+447911123456"), ..base() }), vec!["phone_country_mismatch:phone"]);
        assert_eq!(codes(LeadFacts { phone: Some("+18004251234"), country: Some("US"), ..base() }), vec!["phone_not_personal:phone"]);
        assert_eq!(codes(LeadFacts { phone: Some("+449098790000"), country: Some("GB"), ..base() }), vec!["phone_premium:phone"]);
    }

    #[test]
    fn status_is_the_worst_severity() {
        let pending = check(&LeadFacts { email: None, phone: None, ..base() });
        assert_eq!(status(&pending), "pending");
        let invalid = check(&LeadFacts { email: Some("x@yopmail.com"), phone: None, ..base() });
        assert_eq!(status(&invalid), "invalid");
    }

    #[test]
    fn reasons_serialise_for_storage() {
        let r = check(&LeadFacts { email: Some("x@mailinator.com"), ..base() });
        let j = serde_json::to_value(&r).expect("json");
        assert_eq!(j[0]["code"], "disposable_email");
        assert_eq!(j[0]["severity"], "invalid");
        assert_eq!(serde_json::from_value::<Vec<Reason>>(j).expect("back"), r);
    }
}
