//! Phone numbers: parsing to E.164 with each country's real numbering plan (libphonenumber's
//! metadata through the `phonenumber` crate), and what kind of line a number is.
//!
//! Numbers written without a country code are read in the company's default country (its
//! calling code, e.g. "91"), so "098765 43210" and "+91 98765 43210" are the same number.

use phonenumber::metadata::DATABASE;
use phonenumber::{country, Mode, PhoneNumber, Type};
use serde::Serialize;

/// Longest input we try to parse; real numbers with formatting are well under this.
const MAX_INPUT: usize = 40;

/// What kind of line a number belongs to, from the country's numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    Mobile,
    FixedLine,
    /// Plans that cannot tell the two apart (the US and Canada).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    /// Universal access ("company") numbers.
    Uan,
    Voicemail,
    Other,
}

impl LineKind {
    fn of(t: Type) -> LineKind {
        match t {
            Type::Mobile => LineKind::Mobile,
            Type::FixedLine => LineKind::FixedLine,
            Type::FixedLineOrMobile => LineKind::FixedLineOrMobile,
            Type::TollFree => LineKind::TollFree,
            Type::PremiumRate => LineKind::PremiumRate,
            Type::SharedCost => LineKind::SharedCost,
            Type::Voip => LineKind::Voip,
            Type::PersonalNumber => LineKind::PersonalNumber,
            Type::Pager => LineKind::Pager,
            Type::Uan => LineKind::Uan,
            Type::Voicemail => LineKind::Voicemail,
            _ => LineKind::Other,
        }
    }

    /// A line a person can be reached on directly (calls and, usually, messages).
    pub fn is_personal(self) -> bool {
        matches!(self, LineKind::Mobile | LineKind::FixedLine | LineKind::FixedLineOrMobile | LineKind::Voip | LineKind::PersonalNumber)
    }

    pub fn label(self) -> &'static str {
        match self {
            LineKind::Mobile => "mobile",
            LineKind::FixedLine => "fixed line",
            LineKind::FixedLineOrMobile => "fixed line or mobile",
            LineKind::TollFree => "toll-free",
            LineKind::PremiumRate => "premium-rate",
            LineKind::SharedCost => "shared-cost",
            LineKind::Voip => "VoIP",
            LineKind::PersonalNumber => "personal (forwarding)",
            LineKind::Pager => "pager",
            LineKind::Uan => "universal access",
            LineKind::Voicemail => "voicemail",
            LineKind::Other => "unknown",
        }
    }
}

/// A valid number, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneInfo {
    /// `+` and digits, e.g. "+919876543210".
    pub e164: String,
    pub calling_code: u16,
    /// ISO 3166-1 alpha-2 region the number belongs to, when the plan tells ("IN", "GB").
    pub region: Option<String>,
    pub kind: LineKind,
}

/// The main region of a calling code ("91" -> IN, "1" -> US, "44" -> GB).
pub fn region_for_calling_code(code: &str) -> Option<country::Id> {
    let code: u16 = code.trim().trim_start_matches('+').parse().ok()?;
    let metas = DATABASE.by_code(&code)?;
    let main = metas.iter().find(|m| m.is_main_country_for_code()).or(metas.first())?;
    main.id().parse().ok()
}

/// The calling code of a region ("IN" -> 91, "CA" -> 1).
pub fn calling_code_of_region(region: &str) -> Option<u16> {
    DATABASE.by_id(region.trim().to_ascii_uppercase().as_str()).map(|m| m.country_code())
}

/// The number's description if it is valid. Validity is the line type being known, so one
/// type check answers both: the crate's `is_valid` and `number_type` each run the plan's
/// regular expressions (the costliest part of a lead write), and with `country().id()` they
/// looked the number's plan up three times (here twice: `number_type` looks it up itself).
fn describe_valid(n: &PhoneNumber) -> Option<PhoneInfo> {
    let meta = n.metadata(&DATABASE)?;
    let kind = n.number_type(&DATABASE);
    if kind == Type::Unknown {
        return None;
    }
    Some(PhoneInfo {
        e164: n.format().mode(Mode::E164).to_string(),
        calling_code: n.code().value(),
        region: meta.id().parse::<country::Id>().ok().map(|id| id.as_ref().to_string()),
        kind: LineKind::of(kind),
    })
}

/// Numbers described lately, by E.164. A write parses a number (validation) and then
/// describes the stored form again (the quality check); the metadata's regular expressions
/// make parsing the costliest step of a lead write, and its regex cache (100 entries for
/// every country's patterns) recompiles them as soon as numbers of a few countries mix.
/// Describing is a pure function of the number, so a hit answers exactly as parsing would.
static RECENT: std::sync::LazyLock<std::sync::Mutex<Recent>> = std::sync::LazyLock::new(Default::default);
const RECENT_MAX: usize = 4096;

/// Two generations: when the newer is full it becomes the older one, so the numbers parsed
/// just before (an import validates a batch ahead of writing it) survive the turnover that
/// emptying one map at its bound would take them down with.
#[derive(Default)]
struct Recent {
    newer: std::collections::HashMap<String, PhoneInfo>,
    older: std::collections::HashMap<String, PhoneInfo>,
}

fn remember(info: &PhoneInfo) {
    if let Ok(mut recent) = RECENT.lock() {
        if recent.newer.len() >= RECENT_MAX {
            recent.older = std::mem::take(&mut recent.newer);
        }
        recent.newer.insert(info.e164.clone(), info.clone());
    }
}

fn recalled(e164: &str) -> Option<PhoneInfo> {
    let recent = RECENT.lock().ok()?;
    recent.newer.get(e164).or_else(|| recent.older.get(e164)).cloned()
}

/// The parser belongs to a third-party crate; a panic inside it must not take a request down.
fn parse_guarded(region: Option<country::Id>, s: &str) -> Option<PhoneNumber> {
    std::panic::catch_unwind(|| phonenumber::parse(region, s).ok()).ok().flatten()
}

/// Parses what a person typed into a valid number. Errors are phrased to follow the field
/// name ("phone is not a valid ...").
pub fn parse(raw: &str, calling_code: &str) -> Result<PhoneInfo, String> {
    let s = raw.trim();
    if s.len() > MAX_INPUT {
        return Err("is too long for a phone number".into());
    }
    if !s.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return Err("may contain only digits, spaces, + - ( ) and .".into());
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    if digits < 4 || s.matches('+').count() > 1 || (s.contains('+') && !s.starts_with('+')) {
        return Err("is not a valid phone number".into());
    }
    let region = region_for_calling_code(calling_code);
    let mut candidates = vec![s.to_string()];
    // "00" is the international prefix in most of the world; accept it even where the
    // default country dials abroad differently (011 in the US).
    if let Some(rest) = s.strip_prefix("00") {
        candidates.push(format!("+{rest}"));
    }
    let mut seen_code = None;
    for c in &candidates {
        if let Some(n) = parse_guarded(region, c) {
            if let Some(info) = describe_valid(&n) {
                remember(&info);
                return Ok(info);
            }
            seen_code.get_or_insert(n.code().value());
        }
    }
    Err(match seen_code {
        Some(code) => format!("is not a valid phone number for country code +{code}"),
        None => "is not a valid phone number".into(),
    })
}

/// Describes a stored E.164 number (`None` when it is not a valid one).
pub fn info(e164: &str) -> Option<PhoneInfo> {
    let s = e164.trim();
    if !s.starts_with('+') || s.len() > MAX_INPUT {
        return None;
    }
    if let Some(hit) = recalled(s) {
        return Some(hit);
    }
    let info = parse_guarded(None, s).as_ref().and_then(describe_valid);
    if let Some(i) = &info {
        remember(i);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers remembered just before the bound is reached are still recalled after it.
    #[test]
    fn remembered_numbers_survive_the_turnover() {
        let fake = |i: usize| PhoneInfo { e164: format!("+0turnover{i}"), calling_code: 0, region: None, kind: LineKind::Other };
        for i in 0..RECENT_MAX + 10 {
            remember(&fake(i));
        }
        for i in [RECENT_MAX - 500, RECENT_MAX - 1, RECENT_MAX + 9] {
            assert_eq!(recalled(&fake(i).e164), Some(fake(i)), "{i}");
        }
    }

    /// `describe_valid` answers as the crate's own three calls would, for valid and invalid
    /// numbers of single- and shared-code plans (+1 is shared by the US, Canada and others).
    #[test]
    fn one_type_check_describes_as_the_crate_does() {
        for raw in [
            "+919876543210",
            "+911123456789",
            "+9118001234567",
            "+14155552671",
            "+16135550123",
            "+18765550123",
            "+442079460958",
            "+447911123456",
            "+4930123456",
            "+61412345678",
            "+971501234567",
            "+911234",
            "+10000000000",
            "+80012345678",
            "+8613800138000",
        ] {
            let Some(n) = parse_guarded(None, raw) else { continue };
            let by_crate = n.is_valid().then(|| PhoneInfo {
                e164: n.format().mode(Mode::E164).to_string(),
                calling_code: n.code().value(),
                region: n.country().id().map(|id| id.as_ref().to_string()),
                kind: LineKind::of(n.number_type(&DATABASE)),
            });
            assert_eq!(describe_valid(&n), by_crate, "{raw}");
        }
    }

    #[test]
    fn national_numbers_take_the_default_country() {
        assert_eq!(parse("98765 43210", "91").map(|p| p.e164), Ok("+919876543210".into()));
        assert_eq!(parse("098765-43210", "91").map(|p| p.e164), Ok("+919876543210".into()));
        assert_eq!(parse("(415) 555-2671", "1").map(|p| p.e164), Ok("+14155552671".into()));
        assert_eq!(parse("020 7946 0958", "44").map(|p| p.e164), Ok("+442079460958".into()));
        assert_eq!(parse("07911 123456", "44").map(|p| p.e164), Ok("+447911123456".into()));
        assert_eq!(parse("030 1234567", "49").map(|p| p.e164), Ok("+49301234567".into()));
    }

    /// `info` answers from what `parse` remembered; it must be what parsing the stored form
    /// gives.
    #[test]
    fn remembered_descriptions_match_parsing_the_stored_form() {
        for (raw, code) in [
            ("98765 43210", "91"),
            ("(415) 555-2671", "1"),
            ("020 7946 0958", "44"),
            ("030 1234567", "49"),
            ("+971 50 123 4567", "91"),
            ("+65 8123 4567", "91"),
            ("+61 412 345 678", "91"),
        ] {
            let parsed = parse(raw, code).expect(raw);
            let fresh = parse_guarded(None, &parsed.e164).as_ref().and_then(describe_valid);
            assert_eq!(fresh.as_ref(), Some(&parsed), "{raw}");
            assert_eq!(info(&parsed.e164), Some(parsed));
        }
    }

    #[test]
    fn international_forms() {
        assert_eq!(parse("+1 (415) 555-2671", "91").map(|p| p.e164), Ok("+14155552671".into()));
        assert_eq!(parse("0044 20 7946 0958", "91").map(|p| p.e164), Ok("+442079460958".into()));
        assert_eq!(parse("0044 20 7946 0958", "1").map(|p| p.e164), Ok("+442079460958".into()));
        assert_eq!(parse("+971 50 123 4567", "91").map(|p| p.region), Ok(Some("AE".into())));
    }

    #[test]
    fn country_rules_reject_impossible_numbers() {
        // Indian ten-digit numbers starting with 5 are not assigned; mobiles have ten digits.
        assert!(parse("55555 55555", "91").is_err());
        assert!(parse("98765 4321", "91").is_err());
        assert!(parse("98765 432100", "91").is_err());
        assert!(parse("+1 123 456 7890", "91").is_err());
        assert!(parse("+44 7700 900123", "91").is_err(), "Ofcom drama range is not a real number");
        assert_eq!(parse("+91 12345 67890", "1").err(), Some("is not a valid phone number for country code +91".into()));
        assert!(parse("123", "91").is_err());
        assert!(parse("call me", "91").is_err());
        assert!(parse("98+765 43210", "91").is_err());
    }

    #[test]
    fn line_kinds_and_regions() {
        let m = parse("+91 98765 43210", "91").expect("mobile");
        assert_eq!((m.kind, m.region.as_deref(), m.calling_code), (LineKind::Mobile, Some("IN"), 91));
        assert_eq!(parse("1800 425 1234", "91").map(|p| p.kind), Ok(LineKind::TollFree));
        assert_eq!(parse("+44 909 879 0000", "91").map(|p| p.kind), Ok(LineKind::PremiumRate));
        assert!(parse("+44 909 879 0000", "91").map(|p| !p.kind.is_personal()).unwrap_or(false));
        assert_eq!(info("+14155552671").and_then(|p| p.region), Some("US".into()));
        assert_eq!(info("+16135550123").and_then(|p| p.region), Some("CA".into()));
        assert!(info("+9112").is_none());
        assert!(info("9876543210").is_none());
    }

    #[test]
    fn calling_codes_to_regions() {
        assert_eq!(region_for_calling_code("91"), Some(country::IN));
        assert_eq!(region_for_calling_code("+1"), Some(country::US));
        assert_eq!(region_for_calling_code("44"), Some(country::GB));
        assert_eq!(region_for_calling_code("999"), None);
        assert_eq!(region_for_calling_code("x"), None);
        assert_eq!(calling_code_of_region("in"), Some(91));
        assert_eq!(calling_code_of_region("CA"), Some(1));
        assert_eq!(calling_code_of_region("XX"), None);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A small deterministic fuzz over the characters the parser accepts.
        let alphabet: Vec<char> = "0123456789 +-().".chars().collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 30) as usize;
            let s: String = (0..len).map(|i| alphabet[((state >> (i % 50)) as usize + i * 7) % alphabet.len()]).collect();
            let _ = parse(&s, "91");
            let _ = parse(&s, "1");
        }
    }
}
