//! Text of people's and companies' names: tidying (whitespace), folding for comparison (case
//! and Latin accents), and the checks that tell a real name from junk (links, HTML, digits,
//! keyboard mashing, random letters).
//!
//! The junk checks only judge Latin-script words: a name in Devanagari, Tamil, Arabic or Han
//! script is never called gibberish because these rules know nothing about those scripts.

use once_cell::sync::Lazy;
use regex::Regex;

/// Trims and turns every run of whitespace (tabs, non-breaking spaces...) into one space.
pub fn collapse_whitespace(s: &str) -> String {
    s.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The ASCII spelling of a Latin letter with a diacritic (lower case), if it has one.
fn fold_char(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' | 'ǎ' | 'ạ' | 'ả' | 'ấ' | 'ầ' | 'ẩ' | 'ẫ' | 'ậ' | 'ắ' | 'ằ' | 'ẳ' | 'ẵ'
        | 'ặ' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' | 'ẹ' | 'ẻ' | 'ẽ' | 'ế' | 'ề' | 'ể' | 'ễ' | 'ệ' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' | 'ǐ' | 'ỉ' | 'ị' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' | 'ǒ' | 'ọ' | 'ỏ' | 'ố' | 'ồ' | 'ổ' | 'ỗ' | 'ộ' | 'ớ' | 'ờ' | 'ở' | 'ỡ'
        | 'ợ' | 'ơ' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' | 'ǔ' | 'ư' | 'ụ' | 'ủ' | 'ứ' | 'ừ' | 'ử' | 'ữ' | 'ự' => {
            "u"
        }
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' | 'ỳ' | 'ỵ' | 'ỷ' | 'ỹ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// Combining marks (decomposed accents, Devanagari vowel signs are NOT in this range).
fn is_combining_mark(c: char) -> bool {
    ('\u{0300}'..='\u{036F}').contains(&c)
}

/// Lower case with Latin accents removed: "José Ñúñez" -> "jose nunez", "Straße" -> "strasse".
/// Letters of other scripts are kept (lower-cased where the script has case).
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        if is_combining_mark(c) {
            continue;
        }
        match fold_char(c) {
            Some(ascii) => out.push_str(ascii),
            None => out.push(c),
        }
    }
    out
}

/// Folded words of a name: punctuation splits words except apostrophes, which join them
/// ("O'Brien" -> "obrien", "Mary-Jane  D'Souza" -> ["mary", "jane", "dsouza"]).
pub fn words(s: &str) -> Vec<String> {
    let folded = fold(s);
    folded
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’' || is_combining_mark(c)))
        .map(|w| w.chars().filter(|c| *c != '\'' && *c != '’').collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

static LINK: Lazy<Regex> =
    Lazy::new(|| Regex::new(r"(?i)(https?:|ftp:|//|\bwww\.|\[url|\bhref\s*=|\bbit\.ly\b|\bt\.me/)").expect("link regex"));
static HTML: Lazy<Regex> = Lazy::new(|| Regex::new(r"(?i)(<\s*/?\s*[a-z!][^>]*>|&[a-z]+;|&#[0-9]+;)").expect("html regex"));
/// A bare domain such as "cheap-pills.ru" or "example.com/offer".
static DOMAIN: Lazy<Regex> = Lazy::new(|| {
    Regex::new(r"(?i)\b[a-z0-9-]{2,}\.(com|net|org|info|biz|ru|cn|xyz|top|io|co|in|me|ly|link|click|site|online|shop|store|app|us|uk|tk|ml|ga|cf|gq|club|live|win|bid|loan|vip)\b")
        .expect("domain regex")
});

/// A web link, bare domain, email address or HTML in a person's name field.
pub fn link_in_person_name(s: &str) -> Option<&'static str> {
    if HTML.is_match(s) {
        Some("HTML")
    } else if LINK.is_match(s) || DOMAIN.is_match(s) {
        Some("a link")
    } else if s.contains('@') {
        Some("an email address")
    } else {
        None
    }
}

/// Company names may legitimately look like domains ("Booking.com"): only explicit links
/// and HTML count there.
pub fn link_in_company_name(s: &str) -> Option<&'static str> {
    if HTML.is_match(s) {
        Some("HTML")
    } else if LINK.is_match(s) {
        Some("a link")
    } else {
        None
    }
}

pub fn has_digits(s: &str) -> bool {
    s.chars().any(|c| c.is_numeric())
}

/// Written in capitals only ("PRIYA SHAH"), with enough letters for that to mean shouting
/// rather than initials.
pub fn is_all_caps(s: &str) -> bool {
    let letters: Vec<char> = s.chars().filter(|c| c.is_alphabetic()).collect();
    letters.len() >= 4 && letters.iter().all(|c| c.is_uppercase()) && letters.iter().any(|c| c.is_lowercase() != c.is_uppercase())
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// Keyboard-row runs that do not occur in real names ("erty" is left out: Doherty, Liberty).
const KEYBOARD_RUNS: &[&str] = &[
    "qwer", "rtyu", "tyui", "yuio", "uiop", "asdf", "sdfg", "dfgh", "fghj", "ghjk", "hjkl", "zxcv", "xcvb", "cvbn", "vbnm", "poiu", "lkjh",
    "kjhg", "jhgf", "hgfd", "gfds", "fdsa", "mnbv", "nbvc", "bvcx", "vcxz", "rewq", "qazw", "wsxe", "azsx",
];

/// Letter pairs that no transliteration of a real name produces.
fn rare_pair(a: char, b: char) -> bool {
    const ODD: &str = "qxjzv";
    let both_odd = ODD.contains(a) && ODD.contains(b) && a != b;
    let with_q = (a == 'q' && "wgkfpvxzjh".contains(b)) || (b == 'q' && "wgkfpvxzj".contains(a));
    let with_x = (a == 'x' && "bdfgjkmvwz".contains(b)) || (b == 'x' && "bdfgjkvwz".contains(a));
    both_odd || with_q || with_x
}

/// Length of the longest run of consonants, reading common digraphs (sch, ch, sh, th, ph,
/// gh, ck) as one sound so that "Hirschsprung" or "Knightsbridge" are not counted as mashing.
fn longest_consonant_run(word: &str) -> usize {
    let mut s = word.to_string();
    for (from, to) in [("sch", "S"), ("ch", "C"), ("sh", "S"), ("th", "T"), ("ph", "F"), ("gh", "G"), ("ck", "K")] {
        s = s.replace(from, to);
    }
    let (mut best, mut run) = (0, 0);
    for c in s.chars() {
        if c.is_alphabetic() && !is_vowel(c.to_ascii_lowercase()) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// Why a name looks like random typing, or `None` when it looks like a name. Each finding
/// adds weight; two or more is gibberish, so one odd feature (a rare spelling) is tolerated.
pub fn gibberish(s: &str) -> Option<String> {
    let folded = fold(s);
    // Judge only Latin-script text; other scripts are left alone.
    if folded.chars().any(|c| c.is_alphabetic() && !c.is_ascii_alphabetic()) {
        return None;
    }
    let mut weight = 0;
    let mut findings: Vec<String> = Vec::new();
    let mut note = |w: u32, what: String, findings: &mut Vec<String>| {
        weight += w;
        if !findings.contains(&what) {
            findings.push(what);
        }
    };
    for word in folded.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
        let n = word.chars().count();
        if n >= 4 && !word.chars().any(is_vowel) {
            note(2, format!("no vowels in \"{word}\""), &mut findings);
        }
        let run = longest_consonant_run(word);
        if run >= 6 {
            note(2, format!("{run} consonants in a row in \"{word}\""), &mut findings);
        } else if run == 5 {
            note(1, format!("5 consonants in a row in \"{word}\""), &mut findings);
        }
        if let Some(k) = KEYBOARD_RUNS.iter().find(|k| word.contains(*k)) {
            note(2, format!("keyboard sequence \"{k}\""), &mut findings);
        }
        let chars: Vec<char> = word.chars().collect();
        if chars.windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) {
            note(2, format!("repeated letters in \"{word}\""), &mut findings);
        }
        let odd = chars.windows(2).filter(|w| rare_pair(w[0], w[1])).count();
        if odd > 0 {
            note(odd as u32, format!("unusual letter pairs in \"{word}\""), &mut findings);
        }
        let vowels = chars.iter().filter(|c| is_vowel(**c)).count();
        if n >= 6 && vowels > 0 && vowels * 6 < n {
            note(1, format!("few vowels in \"{word}\""), &mut findings);
        }
        // Random strings use many different letters; long real names repeat some.
        if n >= 10 {
            let mut distinct = chars.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() * 10 >= n * 9 {
                note(1, format!("\"{word}\" repeats almost no letters"), &mut findings);
            }
        }
    }
    (weight >= 2).then(|| findings.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace() {
        assert_eq!(collapse_whitespace("  Priya \t  Shah\u{a0} "), "Priya Shah");
        assert_eq!(collapse_whitespace("   "), "");
    }

    #[test]
    fn folding() {
        assert_eq!(fold("José Ñúñez"), "jose nunez");
        assert_eq!(fold("Straße Øster Łódź"), "strasse oster lodz");
        assert_eq!(fold("Jose\u{301}"), "jose", "decomposed accents");
        assert_eq!(fold("राजेश"), "राजेश");
        assert_eq!(words("Mary-Jane  D'Souza, Jr."), vec!["mary", "jane", "dsouza", "jr"]);
        assert_eq!(words("O’Brien"), vec!["obrien"]);
    }

    #[test]
    fn links_and_html() {
        assert_eq!(link_in_person_name("Visit http://spam.example"), Some("a link"));
        assert_eq!(link_in_person_name("cheap-pills.ru"), Some("a link"));
        assert_eq!(link_in_person_name("www.win"), Some("a link"));
        assert_eq!(link_in_person_name("<script>alert(1)</script>"), Some("HTML"));
        assert_eq!(link_in_person_name("a@b.example"), Some("an email address"));
        assert_eq!(link_in_person_name("Dr. A. P. J. Abdul Kalam"), None);
        assert_eq!(link_in_person_name("St. John-Smith"), None);
        assert_eq!(link_in_company_name("Booking.com"), None);
        assert_eq!(link_in_company_name("Acme <b>Ltd</b>"), Some("HTML"));
    }

    #[test]
    fn real_names_are_not_gibberish() {
        for name in [
            "Priya Shah",
            "Venkataraman",
            "Subramanian",
            "Chandrasekharan",
            "Hirschsprung",
            "Knightsbridge",
            "Doherty",
            "Schwarzkopf",
            "Brzęczyszczykiewicz",
            "Nguyen",
            "Mkhize",
            "Tkachenko",
            "Szczepański",
            "Lakshminarayanan",
            "Iqbal",
            "Farooq Qureshi",
            "Przybylski",
            "Fitzgerald",
            "Srinivas",
            "Bhattacharya",
            "Oyelaran-Oyeyinka",
            "Xi Jinping",
            "Aadhya",
            "Jyoti",
            "Ng",
            "Bartholomew",
            "Christopher",
            "Vaidyanathan",
            "राजेश कुमार",
            "Zhang Wei",
            "Jacques",
            "Llwyd",
            "Gwynn",
        ] {
            assert_eq!(gibberish(name), None, "{name}");
        }
    }

    #[test]
    fn mashing_is_gibberish() {
        for junk in ["asdfgh", "qwerty", "xkcdqz", "jjjjjj", "Bcdfghjk", "zxqvbnm", "hjkl", "Aaaaaa", "sdfsdf sdfgsdf", "qxzvjk", "wqxzpt"]
        {
            assert!(gibberish(junk).is_some(), "{junk}");
        }
    }

    #[test]
    fn caps_and_digits() {
        assert!(is_all_caps("PRIYA SHAH"));
        assert!(!is_all_caps("IBM"));
        assert!(!is_all_caps("Priya"));
        assert!(!is_all_caps("राजेश"));
        assert!(has_digits("Priya2"));
        assert!(!has_digits("Priya"));
    }
}
