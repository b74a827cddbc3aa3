//! Duplicate matching of people (leads, contacts) and organisations (accounts): normalised
//! keys for blocking, and a pairwise comparison that explains its score.
//!
//! Blocking keeps the work linear: a record is only compared with records that share at least
//! one key (normalised email, E.164 phone, GSTIN, website domain, or a phonetic name key), so
//! a check never looks at all pairs.
//!
//! The comparison weighs independent evidence, like a record-linkage model: how well the names
//! agree (case, accents, nicknames, initials, swapped first and last names, typos and
//! transpositions, phonetic spellings), and whether email, phone and company agree, disagree
//! or are unknown. Agreement adds points, disagreement takes them away; a clear conflict in
//! the names caps the score so that two people sharing an office phone or a family mailbox are
//! not merged. Every contribution is reported as a human-readable reason.

use crate::{disposable, names};
use once_cell::sync::Lazy;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// The parts of a person that matching looks at, as stored (already validated).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Person {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company_name: Option<String>,
}

/// The parts of an organisation that matching looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Org {
    pub name: Option<String>,
    pub website: Option<String>,
    pub gstin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// 0..=100
    pub score: u8,
    /// Human-readable reasons, e.g. "same email", "similar name (Jon ~ John)".
    pub reasons: Vec<String>,
}

/// Scores at or above this are treated as likely duplicates.
pub const THRESHOLD: u8 = 70;

// ---------------------------------------------------------------------------------------------
// String similarity
// ---------------------------------------------------------------------------------------------

/// Jaro-Winkler similarity (0..=1) of two strings, by characters.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    if a.is_ascii() && b.is_ascii() {
        jaro_winkler_of(a.as_bytes(), b.as_bytes())
    } else {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        jaro_winkler_of(&a, &b)
    }
}

/// Names are short: flags live on the stack up to this length.
const STACK: usize = 64;

fn jaro_winkler_of<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut a_buf, mut b_buf) = ([false; STACK], [false; STACK]);
    let (mut a_vec, mut b_vec) = (Vec::new(), Vec::new());
    let a_hit: &mut [bool] = if a.len() <= STACK {
        &mut a_buf[..a.len()]
    } else {
        a_vec.resize(a.len(), false);
        &mut a_vec
    };
    let b_hit: &mut [bool] = if b.len() <= STACK {
        &mut b_buf[..b.len()]
    } else {
        b_vec.resize(b.len(), false);
        &mut b_vec
    };
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut matches = 0usize;
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_hit[j] && b[j] == *ca {
                a_hit[i] = true;
                b_hit[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // Matched characters in order on both sides; half the mismatches are transpositions.
    let mut mismatched = 0usize;
    let mut bj = b_hit.iter().enumerate().filter(|(_, h)| **h).map(|(j, _)| j);
    for (i, _) in a_hit.iter().enumerate().filter(|(_, h)| **h) {
        if let Some(j) = bj.next() {
            if a[i] != b[j] {
                mismatched += 1;
            }
        }
    }
    let m = matches as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - (mismatched / 2) as f64) / m) / 3.0;
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count() as f64;
    jaro + prefix * 0.1 * (1.0 - jaro)
}

/// Edit distance counting insertions, deletions, substitutions and transpositions of adjacent
/// characters as one edit each (optimal string alignment).
pub fn damerau_levenshtein(a: &str, b: &str) -> usize {
    if a.is_ascii() && b.is_ascii() {
        osa(a.as_bytes(), b.as_bytes())
    } else {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        osa(&a, &b)
    }
}

fn osa<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return n.max(m);
    }
    let mut buf = [[0usize; STACK + 1]; 3];
    let mut heap = Vec::new();
    let [prev2, prev, cur]: [&mut [usize]; 3] = if m < STACK {
        let [x, y, z] = &mut buf;
        [&mut x[..=m], &mut y[..=m], &mut z[..=m]]
    } else {
        heap.resize(3 * (m + 1), 0);
        let (x, rest) = heap.split_at_mut(m + 1);
        let (y, z) = rest.split_at_mut(m + 1);
        [x, y, z]
    };
    let (mut prev2, mut prev, mut cur) = (prev2, prev, cur);
    for (j, v) in prev.iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// American Soundex of a folded word ("robert" -> "R163"); empty for words without ASCII letters.
pub fn soundex(word: &str) -> String {
    let code = |c: char| match c {
        'b' | 'f' | 'p' | 'v' => '1',
        'c' | 'g' | 'j' | 'k' | 'q' | 's' | 'x' | 'z' => '2',
        'd' | 't' => '3',
        'l' => '4',
        'm' | 'n' => '5',
        'r' => '6',
        'h' | 'w' => 'h',
        _ => '0',
    };
    let letters: Vec<char> = word.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect();
    let Some(first) = letters.first() else { return String::new() };
    let mut out = first.to_ascii_uppercase().to_string();
    let mut last = code(*first);
    for c in &letters[1..] {
        let d = code(*c);
        if d == 'h' {
            continue;
        }
        if d != '0' && d != last {
            out.push(d);
            if out.len() == 4 {
                break;
            }
        }
        last = d;
    }
    while out.len() < 4 {
        out.push('0');
    }
    out
}

/// A consonant skeleton that survives the usual spelling variation of names, including
/// transliterated Indian names: "Mohammed"/"Muhammad" -> "md", "Lakshmi"/"Laxmi" -> "lksm",
/// "Smith"/"Smyth" -> "smt", "Geeta"/"Gita" -> "gt". Words in other scripts are returned as
/// they are, so they only meet their exact spelling.
pub fn skeleton(word: &str) -> String {
    let w = names::fold(word);
    if !w.chars().all(|c| c.is_ascii_alphabetic()) {
        return w;
    }
    let mut s = w;
    for (from, to) in [
        ("ksh", "x"),
        ("x", "ks"),
        ("sch", "s"),
        ("ph", "f"),
        ("kh", "k"),
        ("gh", "g"),
        ("bh", "b"),
        ("dh", "d"),
        ("th", "t"),
        ("sh", "s"),
        ("ch", "c"),
        ("ck", "k"),
        ("q", "k"),
        ("c", "k"),
        ("w", "v"),
        ("z", "s"),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        let keep = i == 0 || !matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y' | 'h');
        if keep && !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Given names: nicknames, spelling variants, and names known to be different
// ---------------------------------------------------------------------------------------------

/// Groups of given names that refer to the same person: formal name first, then short forms
/// and spelling variants (English and Indian). A short form may belong to several groups
/// ("Raj": Rajesh, Rajendra...).
const NICKNAMES: &[&[&str]] = &[
    &["robert", "bob", "bobby", "rob", "robbie", "robby", "bert"],
    &["william", "bill", "billy", "will", "willy", "willie", "liam"],
    &["elizabeth", "liz", "lizzie", "beth", "betty", "eliza", "libby", "liza", "elisabeth", "betsy", "bess"],
    &["richard", "rick", "ricky", "dick", "rich", "richie"],
    &["james", "jim", "jimmy", "jamie", "jimmie"],
    &["john", "jon", "johnny", "jack", "johnnie", "jonny"],
    &["jonathan", "jon", "jonny", "nathan"],
    &["michael", "mike", "mikey", "mick", "mickey", "micheal"],
    &["christopher", "chris", "kit", "topher"],
    &["christine", "christina", "chris", "tina", "chrissy", "kristina", "kristine"],
    &["katherine", "catherine", "kathryn", "katharine", "kate", "katie", "kathy", "cathy", "kat", "kitty", "katy"],
    &["margaret", "maggie", "meg", "peggy", "marge", "margie", "greta"],
    &["thomas", "tom", "tommy"],
    &["joseph", "joe", "joey"],
    &["josephine", "jo", "josie"],
    &["daniel", "dan", "danny"],
    &["david", "dave", "davey"],
    &["anthony", "tony", "antony"],
    &["andrew", "andy", "drew"],
    &["alexander", "alex", "alec", "xander", "sasha"],
    &["alexandra", "alex", "lexi", "sasha"],
    &["benjamin", "ben", "benny", "benji"],
    &["charles", "charlie", "chuck", "chas"],
    &["edward", "ed", "eddie", "ted", "ned", "teddy"],
    &["stephen", "steven", "steve", "stevie", "stephan"],
    &["matthew", "matt", "matty"],
    &["nicholas", "nick", "nicky", "nicolas"],
    &["patrick", "pat", "paddy"],
    &["patricia", "pat", "patty", "trish", "tricia"],
    &["samuel", "sam", "sammy"],
    &["samantha", "sam", "sammy"],
    &["susan", "sue", "susie", "suzy", "suzanne"],
    &["timothy", "tim", "timmy"],
    &["peter", "pete"],
    &["jennifer", "jen", "jenny", "jenn"],
    &["jessica", "jess", "jessie"],
    &["rebecca", "becky", "becca"],
    &["deborah", "deb", "debbie", "debra"],
    &["victoria", "vicky", "tori"],
    &["gregory", "greg"],
    &["jeffrey", "jeff", "geoffrey"],
    &["kenneth", "ken", "kenny"],
    &["ronald", "ron", "ronnie"],
    &["donald", "don", "donnie"],
    &["gerald", "gerry", "jerry"],
    &["lawrence", "larry", "laurence"],
    &["leonard", "leo", "len", "lenny"],
    &["frederick", "fred", "freddie"],
    &["francis", "frank", "fran"],
    &["abigail", "abby"],
    &["nathaniel", "nate", "nat", "nathan"],
    &["zachary", "zach", "zack"],
    &["jacob", "jake"],
    &["joshua", "josh"],
    &["harold", "harry", "hal"],
    &["henry", "harry", "hank"],
    &["theodore", "theo", "ted", "teddy"],
    &["isabella", "isabel", "bella", "izzy"],
    &["sarah", "sara"],
    &["mark", "marc"],
    &["brian", "bryan"],
    &["carl", "karl"],
    &["eric", "erik"],
    &["philip", "phillip", "phil"],
    &["ann", "anne", "anna", "annie"],
    &["mary", "mae", "molly", "polly"],
    // Indian names: short forms and common transliteration variants.
    &["rajesh", "raj", "raju"],
    &["rajendra", "raj", "raju", "rajen"],
    &["rajkumar", "raj", "raju"],
    &["venkatesh", "venky", "venkat", "venki"],
    &["venkataraman", "venky", "venkat"],
    &["venkatesan", "venky", "venkat"],
    &["suresh", "suri"],
    &["ramesh", "ramu"],
    &["krishna", "kris", "krish", "kittu"],
    &["krishnan", "krish"],
    &["subramanian", "subramaniam", "subrahmanyam", "subbu", "subra"],
    &["srinivas", "srinivasan", "sreenivas", "srinivasa", "srini", "cheenu", "seenu"],
    &["balasubramanian", "balu", "bala"],
    &["mohammed", "mohammad", "muhammad", "mohamed", "muhammed", "mohd", "md"],
    &["lakshmi", "laxmi", "lakshmy"],
    &["gopalakrishnan", "gopal", "gopi"],
    &["gopal", "gopi"],
    &["ravindra", "ravindran", "ravi"],
    &["chandrasekhar", "chandrasekaran", "chandrashekhar", "chandru", "sekhar", "shekhar"],
    &["parthasarathy", "partha"],
    &["ramakrishnan", "ramakrishna", "ramki"],
    &["radhakrishnan", "radha"],
    &["jayalakshmi", "jaya"],
    &["vishwanath", "viswanath", "vishwanathan", "viswanathan", "vishu"],
    &["siddharth", "siddhartha", "sid", "siddhu"],
    &["aditya", "adi"],
    &["abhishek", "abhi"],
    &["abhijit", "abhijeet", "abhi"],
    &["anirudh", "ani"],
    &["nikhil", "nik"],
    &["sanjay", "sanju"],
    &["raghavendra", "raghu"],
    &["raghunath", "raghu"],
    &["raghavan", "raghu"],
    &["deepak", "deepu"],
    &["deepika", "deepu"],
    &["sandeep", "sandy"],
    &["satish", "sathish", "satheesh"],
    &["sivakumar", "siva", "shiva"],
    &["sivaraman", "siva", "shiva"],
    &["nagarajan", "nagaraj", "naga"],
    &["priyanka", "priya", "pinky"],
    &["bhagyalakshmi", "bhagya"],
    &["vaishnavi", "vaishu"],
    &["aishwarya", "aish"],
    &["kavitha", "kavita"],
    &["sridhar", "shridhar"],
    &["pooja", "puja"],
    &["jyoti", "jyothi"],
    &["geeta", "gita", "geetha"],
    &["seeta", "sita", "seetha"],
    &["sunita", "suneeta"],
    &["vijay", "vijai"],
    &["vijayakumar", "vijay"],
    &["narayanan", "narayan", "narayana"],
    &["shankar", "sankar"],
    &["mahalakshmi", "maha"],
    &["rahul", "raul"],
    &["harish", "hari"],
    &["haribabu", "hari"],
    &["harikrishnan", "hari"],
    &["ahmed", "ahmad", "ahmet"],
    &["hamid", "hamed"],
    &["rashid", "rasheed"],
    &["sameer", "samir"],
    &["aamir", "amir"],
    &["vikas", "vikash"],
    &["rajiv", "rajeev"],
    &["sanjiv", "sanjeev"],
    &["saurav", "sourav", "saurabh", "sourabh"],
];

/// Common given names that look alike but are different people's names ("Rajesh" vs
/// "Rakesh", "Arun" vs "Varun"): never read as a typo of one another.
const DISTINCT_NAMES: &[&str] = &[
    "aman", "amar", "amal", "amol", "amit", "sumit", "sumil", "ajit", "arun", "varun", "tarun", "karun", "kiran", "karan", "rohit",
    "mohit", "sohit", "lohit", "rajesh", "rakesh", "ramesh", "mahesh", "mukesh", "dinesh", "ganesh", "naresh", "suresh", "lokesh",
    "yogesh", "umesh", "hitesh", "ritesh", "nitesh", "jitesh", "nilesh", "kamlesh", "rupesh", "paresh", "anil", "sunil", "sushil", "akhil",
    "nikhil", "neha", "nisha", "asha", "usha", "isha", "rekha", "lekha", "sita", "gita", "rita", "nita", "mita", "anita", "amita",
    "ankita", "anima", "sunita", "vinita", "ravi", "rani", "raji", "hari", "sonia", "sonal", "sona", "mona", "meena", "reena", "veena",
    "beena", "seema", "reema", "neema", "prem", "ram", "shyam", "arjun", "manoj", "vinod", "pramod", "anand", "arvind", "govind", "mark",
    "mary", "mara", "maria", "marie", "mario", "jan", "jane", "jean", "joan", "john", "dean", "sean", "paul", "saul", "raul", "ryan",
    "bryan", "brian", "adam", "adan", "tina", "dina", "nina", "gina", "lisa", "lina", "luke", "lucy", "jack", "jake", "dan", "don", "ben",
    "ken", "tom", "tim", "jim", "kim", "sam", "pam", "priya", "riya", "diya", "siya", "pooja", "puja", "rahul", "mukul", "vipul", "atul",
    "kunal", "kamal", "komal", "vimal", "nirmal", "vijay", "ajay", "sanjay", "akshay", "abhay", "uday", "vinay", "sanjeev", "rajeev",
    "sandeep", "pradeep", "kuldeep", "mandeep", "amir", "aamir", "samir", "sameer", "zahir", "tahir", "ahmed", "ahmad", "hamid", "hamed",
    "rashid", "rasheed", "carl", "karl", "eric", "erik", "sara", "sarah", "emma", "emily", "ella", "anna", "ann", "anne", "mohan", "rohan",
    "sohan", "gautam", "gaurav", "saurav", "sourav", "vikas", "vikash", "vishal", "vishnu", "jitendra", "jatin", "nitin", "sachin",
    "sameer", "manish", "ashish", "girish", "harish", "satish", "jagdish", "ashok", "alok", "lokesh", "rajiv", "sanjiv", "dev", "raj",
    "ravi", "kavi", "avi", "sunny", "bunny", "danny",
];

static GROUPS: Lazy<HashMap<&'static str, Vec<usize>>> = Lazy::new(|| {
    let mut m: HashMap<&'static str, Vec<usize>> = HashMap::new();
    for (i, group) in NICKNAMES.iter().enumerate() {
        for name in group.iter() {
            m.entry(name).or_default().push(i);
        }
    }
    m
});

static DISTINCT: Lazy<HashSet<&'static str>> = Lazy::new(|| DISTINCT_NAMES.iter().copied().collect());

/// The formal name a given name stands for ("bob" -> "robert"); the name itself when it is
/// unknown or already formal. Short forms of several names take the first group's.
pub fn canonical_given(name: &str) -> &str {
    match GROUPS.get(name).and_then(|g| g.first()) {
        Some(i) => NICKNAMES[*i][0],
        None => name,
    }
}

// ---------------------------------------------------------------------------------------------
// Normalisation helpers (also used by the store to build keys and suggestions)
// ---------------------------------------------------------------------------------------------

/// Providers that ignore dots in the local part.
const DOTLESS: &[&str] = &["gmail.com", "googlemail.com"];

/// An email address as a mailbox: lower case, `+tag` removed, dots removed where the
/// provider ignores them ("J.Smith+crm@GMail.com" -> "jsmith@gmail.com").
pub fn normalise_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    let local = local.split('+').next().unwrap_or(local);
    let domain = if domain == "googlemail.com" { "gmail.com" } else { domain };
    let local = if DOTLESS.contains(&domain) { local.replace('.', "") } else { local.to_string() };
    (!local.is_empty()).then(|| format!("{local}@{domain}"))
}

/// A phone number as `+` and digits (stored numbers are already E.164).
pub fn normalise_phone(phone: &str) -> Option<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 6).then(|| format!("+{digits}"))
}

/// Second-level labels under which registries sell names ("acme.co.in", "acme.com.au").
const SECOND_LEVEL: &[&str] = &["ac", "co", "com", "edu", "firm", "gen", "gov", "ind", "ltd", "net", "nic", "org", "plc", "res"];

/// The registrable domain of a host ("www.shop.acme.co.in" -> "acme.co.in").
pub fn registrable_domain(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.').to_lowercase();
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 || labels.iter().any(|l| !l.chars().all(|c| c.is_alphanumeric() || c == '-')) {
        return None;
    }
    let n = labels.len();
    let take = if n >= 3 && labels[n - 1].len() == 2 && SECOND_LEVEL.contains(&labels[n - 2]) { 3 } else { 2 };
    Some(labels[n - take..].join("."))
}

/// The registrable domain of a website URL ("https://www.acme.in/about" -> "acme.in").
pub fn website_domain(url: &str) -> Option<String> {
    let u = url.trim();
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next()?.rsplit('@').next()?.split(':').next()?;
    registrable_domain(host)
}

/// The company domain of an email address; `None` for free-mail providers (gmail.com says
/// nothing about where a person works).
pub fn company_domain_of_email(email: &str) -> Option<String> {
    let domain = disposable::email_domain(email)?;
    if disposable::is_free_mail(&domain) || disposable::is_disposable(&domain) {
        return None;
    }
    registrable_domain(&domain)
}

/// Words that only state a company's legal form.
const LEGAL_WORDS: &[&str] = &[
    "pvt",
    "private",
    "ltd",
    "limited",
    "llp",
    "inc",
    "incorporated",
    "gmbh",
    "llc",
    "corp",
    "corporation",
    "co",
    "company",
    "sa",
    "ag",
    "plc",
    "bv",
    "nv",
    "srl",
    "spa",
    "oy",
    "ab",
    "aps",
    "kk",
    "pte",
    "pty",
    "sdn",
    "bhd",
    "sarl",
    "sas",
    "kg",
    "ohg",
    "ug",
    "lp",
    "pllc",
    "opc",
    "mbh",
    "eg",
    "se",
    "ltda",
    "cia",
    "pl",
    "oyj",
    "asa",
    "doo",
    "sro",
    "as",
];

/// The distinctive words of a company name: folded, "&" read as "and", dotted abbreviations
/// joined ("S.A." -> "sa"), legal-form words and a leading "the" removed ("The Acme Co. Pvt.
/// Ltd." -> ["acme"]). The first word is always kept, so "AB InBev" stays itself.
pub fn org_name_words(name: &str) -> Vec<String> {
    let folded = names::fold(name).replace('&', " and ");
    // Dots inside abbreviations vanish; other punctuation separates words.
    let cleaned: String = folded.chars().filter(|c| *c != '.' && *c != '\'' && *c != '’').collect();
    let mut words: Vec<String> = cleaned.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect();
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for (i, w) in words.into_iter().enumerate() {
        if i > 0 && LEGAL_WORDS.contains(&w.as_str()) {
            continue;
        }
        out.push(w);
    }
    // "Smith and Co" -> "smith": a trailing "and" only joined a legal word.
    while out.len() > 1 && out.last().is_some_and(|w| w == "and") {
        out.pop();
    }
    out
}

/// The comparison key of a company name ("ACME Private Limited" -> "acme").
pub fn org_name_key(name: &str) -> Option<String> {
    let words = org_name_words(name);
    (!words.is_empty()).then(|| words.join(" "))
}

/// How two company names relate, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum OrgNameRel {
    Different,
    Acronym,
    Contains,
    Typo,
    Same,
}

/// Words that do not make a company name distinctive on their own.
const GENERIC_ORG_WORDS: &[&str] = &[
    "india",
    "indian",
    "global",
    "international",
    "group",
    "services",
    "service",
    "solutions",
    "technologies",
    "technology",
    "tech",
    "systems",
    "enterprises",
    "industries",
    "trading",
    "traders",
    "consulting",
    "consultants",
    "and",
    "of",
    "the",
    "software",
    "infotech",
];

fn org_name_rel(a: &str, b: &str) -> OrgNameRel {
    org_words_rel(&OrgWords::new(org_name_words(a)), &OrgWords::new(org_name_words(b)))
}

/// A company name's distinctive words, spaced and joined, derived once for comparing.
#[derive(Debug, Clone)]
struct OrgWords {
    words: Vec<String>,
    spaced: String,
    joined: String,
}

impl OrgWords {
    fn new(words: Vec<String>) -> OrgWords {
        OrgWords { spaced: words.join(" "), joined: words.concat(), words }
    }
}

fn org_words_rel(a: &OrgWords, b: &OrgWords) -> OrgNameRel {
    let (wa, wb) = (a.words.as_slice(), b.words.as_slice());
    if wa.is_empty() || wb.is_empty() {
        return OrgNameRel::Different;
    }
    let (ja, jb) = (&a.joined, &b.joined);
    if a.spaced == b.spaced || ja == jb {
        return OrgNameRel::Same;
    }
    let (la, lb) = (ja.chars().count(), jb.chars().count());
    let min_len = la.min(lb);
    if min_len >= 5 && la.abs_diff(lb) <= 2 {
        let d = damerau_levenshtein(ja, jb);
        if (d == 1 || (d == 2 && min_len >= 9)) && jaro_winkler(ja, jb) >= 0.9 {
            return OrgNameRel::Typo;
        }
    }
    let (short, long) = if wa.len() <= wb.len() { (wa, wb) } else { (wb, wa) };
    let distinctive = short.iter().any(|w| !GENERIC_ORG_WORDS.contains(&w.as_str()) && w.chars().count() >= 3);
    // "Acme" ~ "Acme Technologies", "Airtel" ~ "Bharti Airtel": the shorter name's words
    // appear together in the longer one.
    if distinctive && short.len() < long.len() && long.windows(short.len()).any(|w| w == short) {
        return OrgNameRel::Contains;
    }
    let acronym = |one: &[String], many: &[String]| {
        one.len() == 1
            && many.len() >= 2
            && one[0].chars().count() >= 2
            && one[0] == many.iter().filter_map(|w| w.chars().next()).collect::<String>()
    };
    if acronym(wa, wb) || acronym(wb, wa) {
        return OrgNameRel::Acronym;
    }
    OrgNameRel::Different
}

// ---------------------------------------------------------------------------------------------
// Person names
// ---------------------------------------------------------------------------------------------

const TITLES: &[&str] = &["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "shri", "sri", "smt", "kumari", "sir", "er", "adv", "capt", "col"];
const GENERATIONS: &[&str] = &["jr", "junior", "sr", "senior", "ii", "iii", "iv"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    family: bool,
    /// Nickname groups the word belongs to (looked up once, not per comparison).
    groups: &'static [usize],
    /// A given name in its own right (listed as distinct, or in a nickname group).
    known: bool,
    /// The initial of the formal name ("bob" -> 'r').
    formal_initial: Option<char>,
}

impl Token {
    fn new(text: String, family: bool) -> Token {
        let groups: &'static [usize] = GROUPS.get(text.as_str()).map_or(&[], |g| g.as_slice());
        let known = !groups.is_empty() || DISTINCT.contains(text.as_str());
        let formal_initial = canonical_given(&text).chars().next();
        Token { text, family, groups, known, formal_initial }
    }

    fn is_initial(&self) -> bool {
        self.text.chars().count() == 1
    }
}

#[derive(Debug, Clone, Default)]
struct NameParts {
    tokens: Vec<Token>,
    /// "jr", "sr", "ii"...: tells a father from a son of the same name.
    generation: Option<String>,
}

impl NameParts {
    fn given(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| !t.family)
    }
    fn family(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| t.family)
    }
}

fn generation_key(w: &str) -> &str {
    match w {
        "junior" => "jr",
        "senior" => "sr",
        other => other,
    }
}

/// Splits a person's name into folded tokens. Titles are dropped; a generation suffix is
/// kept aside; when only one field is filled with a full name ("Rajesh Kumar" as the last
/// name), its last word is read as the family name.
fn name_parts(first: Option<&str>, last: Option<&str>) -> NameParts {
    let mut generation = None;
    let mut clean = |s: Option<&str>| -> Vec<String> {
        let mut ws = s.map(names::words).unwrap_or_default();
        ws.retain(|w| {
            if GENERATIONS.contains(&w.as_str()) {
                generation = Some(generation_key(w).to_string());
                false
            } else {
                !TITLES.contains(&w.as_str())
            }
        });
        ws.truncate(6);
        ws
    };
    let given = clean(first);
    let family = clean(last);
    let mut tokens: Vec<Token> = Vec::new();
    match (given.is_empty(), family.is_empty()) {
        (false, false) => {
            tokens.extend(given.into_iter().map(|text| Token::new(text, false)));
            tokens.extend(family.into_iter().map(|text| Token::new(text, true)));
        }
        (true, false) | (false, true) => {
            let all = if given.is_empty() { family } else { given };
            let n = all.len();
            tokens.extend(all.into_iter().enumerate().map(|(i, text)| Token::new(text, n == 1 || i == n - 1)));
        }
        (true, true) => {}
    }
    NameParts { tokens, generation }
}

/// How two name tokens relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rel {
    Exact,
    Nickname,
    Initial,
    Typo,
    Phonetic,
    Prefix,
}

fn token_sim(ta: &Token, tb: &Token) -> Option<(f64, Rel)> {
    let (a, b) = (ta.text.as_str(), tb.text.as_str());
    if a == b {
        return Some((if a.chars().count() == 1 { 0.9 } else { 1.0 }, Rel::Exact));
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la == 1 || lb == 1 {
        let (i, full) = if la == 1 { (ta, tb) } else { (tb, ta) };
        let c = i.text.chars().next();
        return (full.text.chars().next() == c || full.formal_initial == c).then_some((0.75, Rel::Initial));
    }
    // Nicknames of one name; or two different names that merely look alike.
    if ta.groups.iter().any(|g| tb.groups.contains(g)) {
        return Some((0.95, Rel::Nickname));
    }
    if ta.known && tb.known {
        return None;
    }
    let m = la.min(lb);
    // No rule below accepts more than three edits, and the length gap is a lower bound.
    let d = if la.abs_diff(lb) <= 3 { damerau_levenshtein(a, b) } else { usize::MAX };
    let jw = jaro_winkler(a, b);
    if d == 1 && (m >= 4 || jw >= 0.9) {
        return Some((0.9, Rel::Typo));
    }
    if d == 2 && m >= 7 {
        return Some((0.85, Rel::Typo));
    }
    // Long names are spelled more ways ("Bhattacharya" / "Bhattacharjee").
    if d == 3 && m >= 10 && jw >= 0.92 {
        return Some((0.85, Rel::Typo));
    }
    if m >= 3 && jw >= 0.8 && skeleton(a) == skeleton(b) {
        return Some((0.85, Rel::Phonetic));
    }
    let (short, long) = if la < lb { (a, b) } else { (b, a) };
    if short.chars().count() >= 3 && long.chars().count() >= short.chars().count() + 2 && long.starts_with(short) {
        return Some((0.8, Rel::Prefix));
    }
    None
}

/// The outcome of comparing two names.
#[derive(Debug, Clone, Default)]
struct NameCmp {
    /// 0..=1.
    sim: f64,
    notes: Vec<String>,
    /// Different generation markers (Jr / Sr): different people.
    generation_conflict: bool,
}

/// Aligns the tokens of two names (greedy best pairs; names have few tokens) and scores the
/// alignment. Tokens left over on both sides are a conflict ("John Smith" vs "Peter Smith");
/// left over on one side only, a missing middle name, which costs little.
fn compare_names(a: &NameParts, b: &NameParts, notes: bool) -> Option<NameCmp> {
    if a.tokens.is_empty() || b.tokens.is_empty() {
        return None;
    }
    let mut cands: Vec<(f64, bool, usize, usize, Rel)> = Vec::new();
    for (i, ta) in a.tokens.iter().enumerate() {
        for (j, tb) in b.tokens.iter().enumerate() {
            if let Some((s, rel)) = token_sim(ta, tb) {
                cands.push((s, ta.family == tb.family, i, j, rel));
            }
        }
    }
    // Best similarity first; at equal similarity, the same role (given/family) first.
    cands.sort_by(|x, y| y.0.total_cmp(&x.0).then(y.1.cmp(&x.1)).then(x.2.cmp(&y.2)).then(x.3.cmp(&y.3)));
    let (mut used_a, mut used_b) = (vec![false; a.tokens.len()], vec![false; b.tokens.len()]);
    let mut pairs: Vec<(f64, bool, usize, usize, Rel)> = Vec::new();
    for c in cands {
        if !used_a[c.2] && !used_b[c.3] {
            used_a[c.2] = true;
            used_b[c.3] = true;
            pairs.push(c);
        }
    }
    let mut out = NameCmp::default();
    if pairs.is_empty() {
        if notes {
            out.notes.push("names differ".into());
        }
        return Some(out);
    }
    let un_a = used_a.iter().filter(|u| !**u).count();
    let un_b = used_b.iter().filter(|u| !**u).count();
    let conflict = un_a.min(un_b) as f64;
    let extra = un_a.abs_diff(un_b) as f64;
    let total: f64 = pairs.iter().map(|p| p.0).sum();
    let mut sim = total / (pairs.len() as f64 + conflict + 0.25 * extra);
    // Initials alone ("J. S." vs "John Smith") prove little.
    if pairs.iter().all(|p| a.tokens[p.2].is_initial() || b.tokens[p.3].is_initial()) {
        sim *= 0.6;
    }
    // Family names that do not meet anything while both sides have one: a different family.
    let fam_a = a.family().count() > 0 && a.given().count() > 0;
    let fam_b = b.family().count() > 0 && b.given().count() > 0;
    let family_met = pairs.iter().any(|p| a.tokens[p.2].family || b.tokens[p.3].family);
    if fam_a && fam_b && !family_met {
        sim = sim.min(0.5);
    }
    if let (Some(ga), Some(gb)) = (&a.generation, &b.generation) {
        out.generation_conflict = ga != gb;
    }
    out.sim = sim;
    if !notes {
        return Some(out);
    }
    for p in &pairs {
        let (ta, tb) = (&a.tokens[p.2].text, &b.tokens[p.3].text);
        let note = match p.4 {
            Rel::Exact => continue,
            Rel::Nickname => format!("nickname ({ta} ~ {tb})"),
            Rel::Initial => format!("initial ({ta} ~ {tb})"),
            Rel::Typo => format!("spelling difference ({ta} ~ {tb})"),
            Rel::Phonetic => format!("sounds alike ({ta} ~ {tb})"),
            Rel::Prefix => format!("short form ({ta} ~ {tb})"),
        };
        out.notes.push(note);
    }
    let swapped = pairs.iter().filter(|p| !p.1 && !a.tokens[p.2].is_initial() && !b.tokens[p.3].is_initial()).count();
    if swapped >= 2 || (swapped == 1 && pairs.len() == 1 && fam_a && fam_b) {
        out.notes.push("first and last names swapped".into());
    }
    if conflict > 0.0 {
        out.notes.push("some name parts differ".into());
    } else if extra > 0.0 {
        out.notes.push("a middle name or initial is missing on one side".into());
    }
    if let (Some(ga), Some(gb)) = (&a.generation, &b.generation) {
        if ga != gb {
            out.notes.push(format!("different generation ({ga} ~ {gb})"));
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// People
// ---------------------------------------------------------------------------------------------

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The first letters a given name is known by: its own and its formal name's ("bob" -> b, r).
fn initials_of(given: &str) -> Vec<char> {
    let mut out: Vec<char> = given.chars().take(1).collect();
    if let Some(c) = canonical_given(given).chars().next() {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Blocking keys of a person, each prefixed with its kind: `e:` normalised email, `p:` phone,
/// `n:` consonant skeleton and `s:` Soundex of the family name with the first given initial,
/// and the same of the given name with the family initial (so swapped names still meet).
pub fn person_keys(p: &Person) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(e) = present(&p.email).and_then(normalise_email) {
        keys.push(format!("e:{e}"));
    }
    if let Some(ph) = present(&p.phone).and_then(normalise_phone) {
        keys.push(format!("p:{ph}"));
    }
    let parts = name_parts(present(&p.first_name), present(&p.last_name));
    let first_given = parts.given().next().map(|t| t.text.clone());
    let families: Vec<&Token> = parts.family().filter(|t| !t.is_initial()).collect();
    let family_initial = parts.family().last().and_then(|t| t.text.chars().next());
    let mut push = |word: &str, initials: &[char]| {
        for i in initials {
            for (kind, code) in [("n", skeleton(word)), ("s", soundex(word))] {
                if !code.is_empty() {
                    let k = format!("{kind}:{code}:{i}");
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
    };
    if let Some(g) = &first_given {
        for f in families.iter().rev().take(2) {
            push(&f.text, &initials_of(g));
        }
        if g.chars().count() >= 2 {
            if let Some(fi) = family_initial {
                push(canonical_given(g), &[fi]);
                push(g, &[fi]);
            }
        }
    }
    keys
}

/// How two email addresses relate.
enum EmailRel {
    Same,
    SameShared,
    Typo,
    SameLocal,
    SimilarLocal,
    Different { same_company_domain: bool, both_free: bool },
}

/// The letters of a local part, for comparing across domains ("rahul.nair82" -> "rahulnair").
fn local_letters(local: &str) -> String {
    local.chars().filter(|c| c.is_alphabetic()).collect()
}

/// An email address taken apart once for comparing (see `email_rel`).
#[derive(Debug, Clone)]
struct EmailParts {
    normalised: String,
    /// Where the domain starts in `normalised`.
    domain_at: usize,
    /// The local part without dots (ignored by some providers and not others).
    undotted: String,
    letters: String,
    role: bool,
    free: bool,
    company: bool,
}

impl EmailParts {
    fn new(raw: &str) -> Option<EmailParts> {
        let normalised = normalise_email(raw)?;
        let at = normalised.rfind('@')?;
        let (local, domain) = (&normalised[..at], &normalised[at + 1..]);
        let undotted = local.replace('.', "");
        let free = disposable::is_free_mail(domain);
        Some(EmailParts {
            letters: local_letters(&undotted),
            role: disposable::is_role_local(local),
            company: !free && !disposable::is_disposable(domain),
            free,
            undotted,
            domain_at: at + 1,
            normalised,
        })
    }

    fn domain(&self) -> &str {
        &self.normalised[self.domain_at..]
    }
}

fn email_rel(a: &EmailParts, b: &EmailParts) -> EmailRel {
    if a.normalised == b.normalised {
        return if a.role { EmailRel::SameShared } else { EmailRel::Same };
    }
    let shared = a.role || b.role;
    let (pa, pb) = (a.undotted.as_str(), b.undotted.as_str());
    let (da, db) = (a.domain(), b.domain());
    // On one domain, local parts that differ only in digits are namesakes the mail system
    // told apart (rahul.sharma@ and rahul.sharma2@), not a typo.
    if da == db && a.letters != b.letters && !shared {
        let min_local = pa.chars().count().min(pb.chars().count());
        let dl = damerau_levenshtein(pa, pb);
        if (dl == 1 && min_local >= 4) || (dl == 2 && min_local >= 8) {
            return EmailRel::Typo;
        }
    }
    if da != db && !shared {
        // A mistyped domain ("gmial.com") with the same mailbox name.
        if pa == pb && da.len().min(db.len()) >= 6 && damerau_levenshtein(da, db) <= 2 {
            return EmailRel::Typo;
        }
        // The same mailbox name at another domain: work and personal addresses of one person.
        // With different digits ("amit.patel" ~ "amitpatel77") the name was probably taken
        // by a namesake, so it counts for less.
        if pa == pb && pa.chars().count() >= 5 {
            return EmailRel::SameLocal;
        }
        if a.letters.chars().count() >= 5 && a.letters == b.letters {
            return EmailRel::SimilarLocal;
        }
    }
    EmailRel::Different { same_company_domain: da == db && a.company, both_free: a.free && b.free }
}

/// The name a company domain spells ("tcs.com" -> "tcs", "acme.co.in" -> "acme").
fn domain_label(domain: &str) -> &str {
    domain.split('.').next().unwrap_or(domain)
}

/// How a company email domain relates to a company name ("infosys.com" ~ "Infosys Ltd" is
/// the same; "tcs.com" ~ "Tata Consultancy Services" an acronym).
fn domain_name_rel(domain: &str, words: &[String]) -> OrgNameRel {
    let label: String = domain_label(domain).chars().filter(|c| c.is_alphanumeric()).collect();
    if label.chars().count() < 2 || words.is_empty() {
        return OrgNameRel::Different;
    }
    if label == words.concat() {
        OrgNameRel::Same
    } else if words.len() >= 2 && label == words.iter().filter_map(|w| w.chars().next()).collect::<String>() {
        OrgNameRel::Acronym
    } else {
        OrgNameRel::Different
    }
}

/// Compares two people.
pub fn compare_people(a: &Person, b: &Person) -> Match {
    compare_prepared(&PreparedPerson::new(a.clone()), &PreparedPerson::new(b.clone()))
}

/// A person with what comparing looks at derived once (name tokens, email parts, phone,
/// company words and domain): a new lead is compared with up to two hundred candidates, and
/// a candidate with every new lead of a batch.
#[derive(Debug, Clone)]
pub struct PreparedPerson {
    person: Person,
    names: NameParts,
    email: Option<EmailParts>,
    phone: Option<String>,
    company_domain: Option<String>,
    company_words: Option<OrgWords>,
    /// `person_keys`, worked out on first use: a new lead's keys are asked for at every
    /// step of a batch (lookup, comparison, index write), a stored candidate's seldom.
    keys: std::sync::OnceLock<Vec<String>>,
}

impl PreparedPerson {
    pub fn new(person: Person) -> PreparedPerson {
        PreparedPerson {
            keys: std::sync::OnceLock::new(),
            names: name_parts(present(&person.first_name), present(&person.last_name)),
            email: present(&person.email).and_then(EmailParts::new),
            phone: present(&person.phone).and_then(normalise_phone),
            company_domain: present(&person.email).and_then(company_domain_of_email),
            company_words: present(&person.company_name).map(|c| OrgWords::new(org_name_words(c))),
            person,
        }
    }

    /// The blocking keys of `person_keys`.
    pub fn keys(&self) -> &[String] {
        self.keys.get_or_init(|| person_keys(&self.person))
    }

    fn shown(&self) -> String {
        [present(&self.person.first_name), present(&self.person.last_name)].into_iter().flatten().collect::<Vec<_>>().join(" ")
    }
}

impl std::ops::Deref for PreparedPerson {
    type Target = Person;
    fn deref(&self) -> &Person {
        &self.person
    }
}

impl PartialEq for PreparedPerson {
    fn eq(&self, other: &Self) -> bool {
        self.person == other.person
    }
}

/// `compare_people` of prepared people.
pub fn compare_prepared(a: &PreparedPerson, b: &PreparedPerson) -> Match {
    let mut reasons = Vec::new();
    let score = person_score(a, b, Some(&mut reasons));
    Match { score, reasons }
}

/// The score of `compare_prepared` alone, without writing its reasons (most pairs compared
/// are not duplicates, and their reasons would be thrown away).
pub fn prepared_score(a: &PreparedPerson, b: &PreparedPerson) -> u8 {
    person_score(a, b, None)
}

fn person_score(a: &PreparedPerson, b: &PreparedPerson, mut reasons: Option<&mut Vec<String>>) -> u8 {
    let names = name_points(a, b, reasons.as_deref_mut());
    capped(names, contact_and_company_points(a, b, reasons))
}

/// The score from its two parts: within 0 to 100, and capped when names or generations conflict.
fn capped((names, name_conflict, generation_conflict): (i32, bool, bool), rest: i32) -> u8 {
    let mut score = (names + rest).clamp(0, 100);
    if name_conflict {
        score = score.min(60);
    }
    if generation_conflict {
        score = score.min(40);
    }
    score as u8
}

/// The most `name_points` gives (the same name); `score_within_reach` counts on it being the most.
const MAX_NAME_POINTS: i32 = 45;

/// The names' part of `person_score`: points, and whether the names or the generations
/// conflict (which cap the score).
fn name_points(a: &PreparedPerson, b: &PreparedPerson, mut reasons: Option<&mut Vec<String>>) -> (i32, bool, bool) {
    macro_rules! say {
        ($($arg:tt)*) => {
            if let Some(r) = reasons.as_deref_mut() {
                r.push(format!($($arg)*));
            }
        };
    }
    let mut score: i32 = 0;
    let names = compare_names(&a.names, &b.names, reasons.is_some());
    let mut name_conflict = false;
    let mut generation_conflict = false;
    if let Some(n) = &names {
        let (sa, sb) = if reasons.is_some() { (a.shown(), b.shown()) } else { (String::new(), String::new()) };
        let detail = if n.notes.is_empty() { String::new() } else { format!(": {}", n.notes.join(", ")) };
        if n.sim >= 0.95 {
            score += MAX_NAME_POINTS;
            if n.notes.is_empty() {
                say!("same name ({sa})");
            } else {
                say!("same name ({sa} ~ {sb}{detail})");
            }
        } else if n.sim >= 0.85 {
            score += 38;
            say!("similar name ({sa} ~ {sb}{detail})");
        } else if n.sim >= 0.8 {
            score += 30;
            say!("partly similar name ({sa} ~ {sb}{detail})");
        } else if n.sim >= 0.7 {
            score += 20;
            say!("partly similar name ({sa} ~ {sb}{detail})");
        } else if n.sim >= 0.6 {
            score += 10;
            say!("weakly similar name ({sa} ~ {sb}{detail})");
        } else {
            name_conflict = true;
            say!("different names ({sa} ~ {sb})");
        }
        generation_conflict = n.generation_conflict;
        if generation_conflict {
            say!("different generation (Jr. / Sr.)");
        }
    }
    (score, name_conflict, generation_conflict)
}

/// The emails', phones' and companies' part of `person_score`.
fn contact_and_company_points(a: &PreparedPerson, b: &PreparedPerson, mut reasons: Option<&mut Vec<String>>) -> i32 {
    macro_rules! say {
        ($($arg:tt)*) => {
            if let Some(r) = reasons.as_deref_mut() {
                r.push(format!($($arg)*));
            }
        };
    }
    let mut score: i32 = 0;
    let mut same_contact = false;
    let (ea, eb) = (present(&a.person.email).unwrap_or_default(), present(&b.person.email).unwrap_or_default());
    if let (Some(pa), Some(pb)) = (&a.email, &b.email) {
        match email_rel(pa, pb) {
            EmailRel::Same => {
                score += 50;
                same_contact = true;
                say!("same email ({})", ea.to_lowercase());
            }
            EmailRel::SameShared => {
                score += 15;
                say!("same shared mailbox ({})", ea.to_lowercase());
            }
            EmailRel::Typo => {
                score += 30;
                say!("email differs by a typo ({ea} ~ {eb})");
            }
            EmailRel::SameLocal => {
                score += 25;
                say!("same email name at another domain ({ea} ~ {eb})");
            }
            EmailRel::SimilarLocal => {
                score += 10;
                say!("similar email name at another domain ({ea} ~ {eb})");
            }
            EmailRel::Different { same_company_domain, both_free } => {
                let (points, why) = if same_company_domain {
                    (30, "different email addresses at the same company")
                } else if both_free {
                    (20, "different personal email addresses")
                } else {
                    (10, "different email addresses")
                };
                score -= points;
                say!("{why}");
            }
        }
    }
    if let (Some(pa), Some(pb)) = (&a.phone, &b.phone) {
        if pa == pb {
            score += 40;
            same_contact = true;
            say!("same phone ({pa})");
        } else {
            score -= 15;
            say!("different phones");
        }
    }

    // Company: the names, the company email domains, or one side's domain against the other's name.
    let (ca, cb) = (present(&a.person.company_name), present(&b.person.company_name));
    let (da, db) = (a.company_domain.as_deref(), b.company_domain.as_deref());
    let (wa, wb) = (a.company_words.as_ref(), b.company_words.as_ref());
    let names_rel = match (wa, wb) {
        (Some(x), Some(y)) => Some(org_words_rel(x, y)),
        _ => None,
    };
    let domains_same = matches!((da, db), (Some(x), Some(y)) if x == y);
    let cross = [(da, wb, cb), (db, wa, ca)]
        .into_iter()
        .filter_map(|(d, w, n)| Some((domain_name_rel(d?, &w?.words), d?, n?)))
        .max_by_key(|(rel, _, _)| *rel);
    if let Some(OrgNameRel::Same | OrgNameRel::Typo) = names_rel {
        let (x, y) = (ca.unwrap_or_default(), cb.unwrap_or_default());
        score += 25;
        if x == y {
            say!("same company ({x})");
        } else {
            say!("same company ({x} ~ {y})");
        }
    } else if domains_same && !same_contact {
        score += 25;
        say!("same company email domain ({})", da.unwrap_or_default());
    } else if let Some((OrgNameRel::Same, d, n)) = cross {
        score += 25;
        say!("email domain matches the company ({d} ~ {n})");
    } else if matches!(names_rel, Some(OrgNameRel::Contains | OrgNameRel::Acronym)) || matches!(cross, Some((OrgNameRel::Acronym, _, _))) {
        score += 10;
        say!("related company names");
    } else if names_rel == Some(OrgNameRel::Different) {
        score -= 10;
        say!("different companies");
    }
    score
}

/// The score of `prepared_score`, or `None` when the pair cannot reach `THRESHOLD` whatever
/// its names are: its emails, phones and companies with the most the names could add. The
/// names are the costly part of a comparison, and most candidates a blocking key brings share
/// a name and little else (other emails, phones and companies), so those are answered without
/// comparing names.
pub fn score_within_reach(a: &PreparedPerson, b: &PreparedPerson) -> Option<u8> {
    let rest = contact_and_company_points(a, b, None);
    (rest + MAX_NAME_POINTS >= i32::from(THRESHOLD)).then(|| capped(name_points(a, b, None), rest))
}

// ---------------------------------------------------------------------------------------------
// Organisations
// ---------------------------------------------------------------------------------------------

/// The PAN inside a GSTIN (characters 3 to 12): one legal entity registers once per state.
fn pan_of(gstin: &str) -> Option<&str> {
    (gstin.len() == 15 && gstin.is_ascii()).then(|| &gstin[2..12])
}

/// Blocking keys of an organisation: `g:` GSTIN, `pan:` its PAN, `d:` website domain, `o:`
/// normalised name, `os:` consonant skeleton of the name (survives vowel typos).
pub fn org_keys(o: &Org) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(g) = present(&o.gstin).map(str::to_uppercase) {
        if let Some(pan) = pan_of(&g) {
            keys.push(format!("pan:{pan}"));
        }
        keys.push(format!("g:{g}"));
    }
    if let Some(d) = present(&o.website).and_then(website_domain) {
        keys.push(format!("d:{d}"));
    }
    let words = present(&o.name).map(org_name_words).unwrap_or_default();
    if !words.is_empty() {
        keys.push(format!("o:{}", words.join(" ")));
        let sk = skeleton(&words.concat());
        if sk.chars().count() >= 3 {
            keys.push(format!("os:{sk}"));
        }
    }
    keys
}

/// Compares two organisations.
pub fn compare_orgs(a: &Org, b: &Org) -> Match {
    let mut reasons = Vec::new();
    let mut score: i32 = 0;
    if let (Some(ga), Some(gb)) = (present(&a.gstin).map(str::to_uppercase), present(&b.gstin).map(str::to_uppercase)) {
        if ga == gb {
            score += 80;
            reasons.push(format!("same GSTIN ({ga})"));
        } else if pan_of(&ga).is_some() && pan_of(&ga) == pan_of(&gb) {
            score += 60;
            reasons.push(format!("same PAN in another state's GSTIN ({ga} ~ {gb})"));
        } else {
            score -= 40;
            reasons.push("different GSTINs".into());
        }
    }
    if let (Some(da), Some(db)) = (present(&a.website).and_then(website_domain), present(&b.website).and_then(website_domain)) {
        if da == db {
            score += 55;
            reasons.push(format!("same website domain ({da})"));
        } else {
            score -= 15;
            reasons.push(format!("different website domains ({da} ~ {db})"));
        }
    }
    if let (Some(na), Some(nb)) = (present(&a.name), present(&b.name)) {
        match org_name_rel(na, nb) {
            OrgNameRel::Same if na.eq_ignore_ascii_case(nb) => {
                score += 70;
                reasons.push(format!("same name ({na})"));
            }
            OrgNameRel::Same => {
                score += 70;
                reasons.push(format!("same name without legal suffixes ({na} ~ {nb})"));
            }
            OrgNameRel::Typo => {
                score += 55;
                reasons.push(format!("similar name ({na} ~ {nb})"));
            }
            OrgNameRel::Contains => {
                score += 30;
                reasons.push(format!("one name contains the other ({na} ~ {nb})"));
            }
            OrgNameRel::Acronym => {
                score += 25;
                reasons.push(format!("name is an acronym of the other ({na} ~ {nb})"));
            }
            OrgNameRel::Different => {
                score -= 10;
                reasons.push(format!("different names ({na} ~ {nb})"));
            }
        }
    }
    Match { score: score.clamp(0, 100) as u8, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(first: &str, last: &str, email: &str, phone: &str, company: &str) -> Person {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Person { first_name: s(first), last_name: s(last), email: s(email), phone: s(phone), company_name: s(company) }
    }

    fn org(name: &str, website: &str, gstin: &str) -> Org {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Org { name: s(name), website: s(website), gstin: s(gstin) }
    }

    #[test]
    fn similarity_functions() {
        assert!((jaro_winkler("martha", "marhta") - 0.961).abs() < 0.001);
        assert!((jaro_winkler("dixon", "dicksonx") - 0.813).abs() < 0.001);
        assert_eq!(jaro_winkler("", ""), 1.0);
        assert_eq!(jaro_winkler("abc", ""), 0.0);
        assert_eq!(damerau_levenshtein("sharma", "shamra"), 1);
        assert_eq!(damerau_levenshtein("ca", "abc"), 3);
        assert_eq!(damerau_levenshtein("smith", "simth"), 1);
        assert_eq!(damerau_levenshtein("kitten", "sitting"), 3);
        assert_eq!(damerau_levenshtein("", "abc"), 3);
        assert_eq!(damerau_levenshtein("राजेश", "राजेश"), 0);
        assert_eq!(soundex("robert"), "R163");
        assert_eq!(soundex("rupert"), "R163");
        assert_eq!(soundex("ashcraft"), "A261");
        assert_eq!(soundex("tymczak"), "T522");
        assert_eq!(soundex("pfister"), "P236");
        assert_eq!(soundex(""), "");
    }

    #[test]
    fn skeletons_fold_spelling_variants() {
        assert_eq!(skeleton("Mohammed"), skeleton("Muhammad"));
        assert_eq!(skeleton("Lakshmi"), skeleton("Laxmi"));
        assert_eq!(skeleton("Smith"), skeleton("Smyth"));
        assert_eq!(skeleton("Geeta"), skeleton("Gita"));
        assert_eq!(skeleton("Srinivasan"), skeleton("Sreenivasan"));
        assert_eq!(skeleton("Müller"), skeleton("Muller"));
        assert_ne!(skeleton("Sharma"), skeleton("Verma"));
        assert_eq!(skeleton("राजेश"), "राजेश");
    }

    #[test]
    fn normalisers() {
        assert_eq!(normalise_email(" J.Smith+crm@GoogleMail.com"), Some("jsmith@gmail.com".into()));
        assert_eq!(normalise_email("J.Smith@Acme.in"), Some("j.smith@acme.in".into()));
        assert_eq!(normalise_email("nope"), None);
        assert_eq!(normalise_phone("+91 98765-43210"), Some("+919876543210".into()));
        assert_eq!(website_domain("https://www.shop.acme.co.in/about?x=1"), Some("acme.co.in".into()));
        assert_eq!(website_domain("acme.com"), Some("acme.com".into()));
        assert_eq!(website_domain("http://user@acme.io:8080"), Some("acme.io".into()));
        assert_eq!(website_domain("localhost"), None);
        assert_eq!(company_domain_of_email("a@mail.acme.in"), Some("acme.in".into()));
        assert_eq!(company_domain_of_email("a@gmail.com"), None);
        assert_eq!(org_name_key("The ACME Co. Pvt. Ltd."), Some("acme".into()));
        assert_eq!(org_name_key("Müller & Söhne GmbH"), Some("muller and sohne".into()));
        assert_eq!(org_name_key("Smith & Co"), Some("smith".into()));
        assert_eq!(org_name_key("Nestlé S.A."), Some("nestle".into()));
        assert_eq!(org_name_key("AB InBev"), Some("ab inbev".into()));
        assert_eq!(org_name_key("Ltd"), Some("ltd".into()));
        assert_eq!(org_name_key("  "), None);
        assert_eq!(canonical_given("bob"), "robert");
        assert_eq!(canonical_given("venky"), "venkatesh");
        assert_eq!(canonical_given("zoltan"), "zoltan");
    }

    #[test]
    fn people_examples() {
        let a = person("Priya", "Shah", "priya.shah@acme.in", "+919876543210", "Acme Pvt Ltd");
        let m = compare_people(&a, &person("priya", "SHAH", "Priya.Shah@acme.in", "", ""));
        assert!(m.score >= 90, "{m:?}");
        assert!(m.reasons.iter().any(|r| r.starts_with("same email")));
        let m = compare_people(&person("Bob", "Smith", "", "+14155552671", ""), &person("Robert", "Smith", "", "+14155552671", ""));
        assert!(m.score >= THRESHOLD && m.reasons.iter().any(|r| r.contains("nickname (bob ~ robert)")), "{m:?}");
        let m = compare_people(&person("Kumar", "Rajesh", "", "+919812345678", ""), &person("Rajesh", "Kumar", "", "+919812345678", ""));
        assert!(m.score >= THRESHOLD && m.reasons.iter().any(|r| r.contains("swapped")), "{m:?}");
        // Office switchboard shared by different people.
        let m = compare_people(&person("Anil", "Mehta", "", "+912223456789", ""), &person("Sunita", "Rao", "", "+912223456789", ""));
        assert!(m.score < THRESHOLD, "{m:?}");
        // Father and son.
        let m =
            compare_people(&person("Ramesh", "Iyer Sr.", "", "+919812345678", ""), &person("Ramesh", "Iyer Jr.", "", "+919812345678", ""));
        assert!(m.score < THRESHOLD && m.reasons.iter().any(|r| r.contains("generation")), "{m:?}");
        // Same name, different people at the same company.
        let m = compare_people(
            &person("Rahul", "Sharma", "rahul.sharma@infosys.com", "", ""),
            &person("Rahul", "Sharma", "rsharma2@infosys.com", "", ""),
        );
        assert!(m.score < THRESHOLD, "{m:?}");
        let empty = compare_people(&Person::default(), &Person::default());
        assert_eq!(empty.score, 0);
    }

    #[test]
    fn keys_meet_for_variants() {
        let shares = |a: &Person, b: &Person| person_keys(a).iter().any(|k| person_keys(b).contains(k));
        assert!(shares(&person("Bob", "Smith", "", "", ""), &person("Robert", "Smyth", "", "", "")));
        assert!(shares(&person("Kumar", "Rajesh", "", "", ""), &person("Rajesh", "Kumar", "", "", "")));
        assert!(shares(&person("", "Rajesh Kumar", "", "", ""), &person("Rajesh", "Kumar", "", "", "")));
        assert!(shares(&person("K.", "Ramesh", "", "", ""), &person("Ramesh", "Kumar", "", "", "")));
        assert!(shares(&person("José", "Núñez", "", "", ""), &person("Jose", "Nunez", "", "", "")));
        assert!(!shares(&person("Priya", "Shah", "", "", ""), &person("Anil", "Mehta", "", "", "")));
        let keys = person_keys(&person("Priya", "Shah", "P.Shah+x@Gmail.com", "+91 98765 43210", ""));
        assert!(keys.contains(&"e:pshah@gmail.com".to_string()), "{keys:?}");
        assert!(keys.contains(&"p:+919876543210".to_string()), "{keys:?}");
        assert!(keys.len() <= 10, "{keys:?}");
    }

    #[test]
    fn org_examples() {
        let m = compare_orgs(&org("Acme Pvt Ltd", "", ""), &org("ACME Private Limited", "", ""));
        assert!(m.score >= THRESHOLD, "{m:?}");
        let m = compare_orgs(&org("Acme Technologies", "https://www.acme.in", ""), &org("Acme", "acme.in/contact", ""));
        assert!(m.score >= THRESHOLD, "{m:?}");
        let m = compare_orgs(&org("Acme Inc", "acme.com", ""), &org("Acme GmbH", "acme.de", ""));
        assert!(m.score < THRESHOLD, "{m:?}");
        let m = compare_orgs(&org("Foo", "", "27AAPFU0939F1ZV"), &org("Bar", "", "27AAPFU0939F1ZV"));
        assert!(m.score >= THRESHOLD, "{m:?}");
        assert!(org_keys(&org("Acme Pvt Ltd", "https://acme.in", "27AAPFU0939F1ZV")).contains(&"d:acme.in".to_string()));
    }
}
