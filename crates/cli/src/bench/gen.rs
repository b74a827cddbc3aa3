//! Deterministic synthetic leads: the same seed gives the same rows on every machine.
//!
//! Names, companies, places and phones follow the mix of an Indian business with international
//! customers. A known fraction of rows are near-duplicates of an earlier row (a typo, a
//! nickname, swapped names, another phone format, the email in capitals), so duplicate detection
//! has real work to do.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const IN_FIRST: &[&str] = &[
    "Aarav",
    "Vivaan",
    "Aditya",
    "Vihaan",
    "Arjun",
    "Sai",
    "Reyansh",
    "Ayaan",
    "Krishna",
    "Ishaan",
    "Rajesh",
    "Suresh",
    "Ramesh",
    "Mahesh",
    "Venkatesh",
    "Srinivas",
    "Anil",
    "Sunil",
    "Rahul",
    "Rohit",
    "Amit",
    "Sanjay",
    "Vijay",
    "Deepak",
    "Manoj",
    "Ananya",
    "Diya",
    "Aadhya",
    "Saanvi",
    "Pari",
    "Anika",
    "Priya",
    "Pooja",
    "Neha",
    "Kavya",
    "Lakshmi",
    "Meera",
    "Divya",
    "Sneha",
    "Shreya",
    "Nisha",
    "Sunita",
    "Anjali",
    "Rekha",
    "Geeta",
    "Harpreet",
    "Gurpreet",
    "Farhan",
    "Imran",
    "Ayesha",
    "Zoya",
    "Karthik",
    "Naveen",
    "Prakash",
    "Ganesh",
    "Bhavna",
    "Swati",
    "Ritu",
    "Tanvi",
    "Arnav",
];
const IN_LAST: &[&str] = &[
    "Sharma",
    "Verma",
    "Gupta",
    "Singh",
    "Kumar",
    "Patel",
    "Shah",
    "Mehta",
    "Reddy",
    "Rao",
    "Naidu",
    "Iyer",
    "Iyengar",
    "Nair",
    "Menon",
    "Pillai",
    "Das",
    "Banerjee",
    "Chatterjee",
    "Mukherjee",
    "Bose",
    "Ghosh",
    "Joshi",
    "Kulkarni",
    "Deshpande",
    "Patil",
    "Jadhav",
    "Chopra",
    "Kapoor",
    "Malhotra",
    "Khanna",
    "Bhatia",
    "Agarwal",
    "Jain",
    "Bansal",
    "Mittal",
    "Goyal",
    "Saxena",
    "Srivastava",
    "Tiwari",
    "Mishra",
    "Pandey",
    "Chauhan",
    "Thakur",
    "Yadav",
    "Khan",
    "Qureshi",
    "Siddiqui",
    "Fernandes",
    "D'Souza",
];
const INTL_FIRST: &[&str] = &[
    "James",
    "Robert",
    "John",
    "Michael",
    "William",
    "David",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Elizabeth",
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Steven",
    "Andrew",
    "Emma",
    "Olivia",
    "Sophia",
    "Isabella",
    "Lukas",
    "Jonas",
    "Hannah",
    "Lena",
    "Mohammed",
    "Fatima",
    "Omar",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Chloé",
    "Zoë",
    "José",
    "María",
    "Søren",
    "Björn",
    "Ana",
    "Lucas",
    "Noah",
];
const INTL_LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Martin",
    "Jackson",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Walker",
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Al-Farsi",
    "Haddad",
    "Tan",
    "Lim",
    "Lee",
    "Wong",
    "Chen",
    "Sato",
    "Suzuki",
    "García",
    "Rodríguez",
    "Martínez",
    "O'Brien",
    "Murphy",
    "Kelly",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Russo",
    "Nielsen",
    "Andersson",
    "Costa",
];
const NICKNAMES: &[(&str, &str)] = &[
    ("Robert", "Bob"),
    ("William", "Bill"),
    ("Elizabeth", "Liz"),
    ("Michael", "Mike"),
    ("Richard", "Rick"),
    ("Joseph", "Joe"),
    ("Thomas", "Tom"),
    ("Charles", "Charlie"),
    ("Jennifer", "Jen"),
    ("Daniel", "Dan"),
    ("Matthew", "Matt"),
    ("Anthony", "Tony"),
    ("Andrew", "Andy"),
    ("Rajesh", "Raj"),
    ("Venkatesh", "Venky"),
    ("Srinivas", "Srini"),
    ("Suresh", "Suri"),
    ("Lakshmi", "Lux"),
    ("Karthik", "Karthi"),
];
const COMPANY_STEMS: &[&str] = &[
    "Tata",
    "Infosys",
    "Wipro",
    "Sundaram",
    "Bharat",
    "Shakti",
    "Ganga",
    "Himalaya",
    "Lotus",
    "Sagar",
    "Pinnacle",
    "Zenith",
    "Apex",
    "Vertex",
    "Nimbus",
    "Orbit",
    "Quantum",
    "Horizon",
    "Evergreen",
    "Bluebird",
    "Silverline",
    "Ironclad",
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Acme",
    "Hooli",
    "Vandelay",
    "Cyberdyne",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Gringotts",
    "Aperture",
    "Monarch",
    "Saffron",
    "Peacock",
    "Banyan",
    "Neem",
    "Tulsi",
    "Kaveri",
    "Narmada",
    "Deccan",
    "Konkan",
    "Malabar",
    "Coromandel",
    "Vindhya",
    "Aravali",
    "Sahyadri",
    "Indus",
    "Brahma",
    "Surya",
    "Chandra",
    "Agni",
    "Vayu",
];
const COMPANY_KINDS: &[&str] =
    &["Technologies", "Solutions", "Systems", "Industries", "Traders", "Logistics", "Pharma", "Foods", "Textiles", "Motors", "Labs"];
const SUFFIXES_IN: &[&str] = &["Pvt Ltd", "Private Limited", "LLP", "Ltd", ""];
const SUFFIXES_INTL: &[&str] = &["Inc", "LLC", "GmbH", "Ltd", "Corp", "AG", ""];
const FREE_MAIL: &[&str] = &["gmail.com", "yahoo.co.in", "outlook.com", "hotmail.com", "rediffmail.com"];
const TITLES: &[&str] = &[
    "CEO",
    "CTO",
    "CFO",
    "Founder",
    "Director",
    "VP Sales",
    "Head of Procurement",
    "Purchase Manager",
    "IT Manager",
    "Operations Manager",
    "Marketing Manager",
    "Analyst",
    "Engineer",
    "Consultant",
    "Owner",
];
const SOURCES: &[(&str, u32)] = &[
    ("website", 30),
    ("whatsapp", 12),
    ("inbound_call", 8),
    ("email", 10),
    ("partner", 8),
    ("event", 7),
    ("referral", 10),
    ("social", 7),
    ("paid_ads", 8),
];
const CAMPAIGNS: &[&str] = &["diwali-2026", "q4-webinar", "trade-fair-mumbai", "spring-launch", "retargeting", "newsletter-nov", ""];
const MEDIUMS: &[&str] = &["cpc", "organic", "email", "social", "referral", "offline"];
const PRODUCTS: &[&str] = &["CRM Suite", "Analytics", "Support Desk", "Payments", "Inventory", "HR Cloud"];
const IN_PLACES: &[(&str, &str)] = &[
    ("Mumbai", "Maharashtra"),
    ("Pune", "Maharashtra"),
    ("Bengaluru", "Karnataka"),
    ("Chennai", "Tamil Nadu"),
    ("Hyderabad", "Telangana"),
    ("New Delhi", "Delhi"),
    ("Gurugram", "Haryana"),
    ("Kolkata", "West Bengal"),
    ("Ahmedabad", "Gujarat"),
    ("Jaipur", "Rajasthan"),
    ("Kochi", "Kerala"),
    ("Lucknow", "Uttar Pradesh"),
];
/// (country, weight, calling code, city, state)
const INTL_PLACES: &[(&str, u32, &str, &str)] = &[
    ("US", 15, "New York", "NY"),
    ("GB", 8, "London", "England"),
    ("DE", 5, "Berlin", "Berlin"),
    ("AE", 5, "Dubai", "Dubai"),
    ("SG", 4, "Singapore", ""),
    ("AU", 3, "Sydney", "NSW"),
];

pub const HEADERS: &[&str] = &[
    "First Name",
    "Last Name",
    "Company",
    "Email",
    "Phone",
    "Country",
    "City",
    "State",
    "Job Title",
    "Source",
    "Campaign",
    "Medium",
    "Company Size",
    "Product of interest",
];

/// One generated lead, as the cells of a CSV row (same order as `HEADERS`).
#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub first_name: String,
    pub last_name: String,
    pub company: String,
    pub email: String,
    pub phone: String,
    pub country: String,
    pub city: String,
    pub state: String,
    pub job_title: String,
    pub source: String,
    pub campaign: String,
    pub medium: String,
    pub company_size: String,
    pub product: String,
    /// Index of the row this one is a near-duplicate of.
    pub duplicate_of: Option<usize>,
}

impl Lead {
    pub fn cells(&self) -> [&str; 14] {
        [
            &self.first_name,
            &self.last_name,
            &self.company,
            &self.email,
            &self.phone,
            &self.country,
            &self.city,
            &self.state,
            &self.job_title,
            &self.source,
            &self.campaign,
            &self.medium,
            &self.company_size,
            &self.product,
        ]
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let names = [
            "first_name",
            "last_name",
            "company_name",
            "email",
            "phone",
            "country",
            "city",
            "state",
            "job_title",
            "source",
            "campaign",
            "medium",
            "company_size",
            "interest_product",
        ];
        for (k, v) in names.iter().zip(self.cells()) {
            if v.is_empty() {
                continue;
            }
            let value = match *k {
                "company_size" => v.parse::<i64>().map(serde_json::Value::from).unwrap_or_else(|_| v.into()),
                _ => v.into(),
            };
            m.insert((*k).into(), value);
        }
        serde_json::Value::Object(m)
    }
}

pub struct Generator {
    rng: StdRng,
    /// Recent originals that near-duplicates are made from (bounded, so memory stays flat).
    recent: Vec<(usize, Lead)>,
    next: usize,
    dup_per_mille: u32,
}

fn pick<'a, T>(rng: &mut StdRng, list: &'a [T]) -> &'a T {
    &list[rng.gen_range(0..list.len())]
}

fn weighted<'a>(rng: &mut StdRng, list: &'a [(&'a str, u32)]) -> &'a str {
    let total: u32 = list.iter().map(|(_, w)| w).sum();
    let mut n = rng.gen_range(0..total);
    for (v, w) in list {
        if n < *w {
            return v;
        }
        n -= w;
    }
    list[0].0
}

fn ascii_slug(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            'é' | 'è' | 'É' => Some('e'),
            'ü' | 'ú' => Some('u'),
            'ö' | 'ø' => Some('o'),
            'ä' | 'á' => Some('a'),
            'í' => Some('i'),
            _ => None,
        })
        .collect()
}

/// A mobile number that the country's numbering plan accepts, in E.164.
fn phone(rng: &mut StdRng, country: &str) -> String {
    let mut n = phone_candidate(rng, country);
    for _ in 0..50 {
        if corvid_core::phone::parse(&n, "91").is_ok() {
            break;
        }
        n = phone_candidate(rng, country);
    }
    n
}

fn phone_candidate(rng: &mut StdRng, country: &str) -> String {
    let digits = |rng: &mut StdRng, n: usize| (0..n).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect::<String>();
    match country {
        "IN" => format!("+91{}{}", rng.gen_range(6..10), digits(rng, 9)),
        "US" => format!(
            "+1{}{}{}{}",
            pick(rng, &["212", "415", "646", "312", "617", "206"]),
            rng.gen_range(2..10),
            digits(rng, 2),
            digits(rng, 4)
        ),
        "GB" => format!("+447{}{}", rng.gen_range(4..10), digits(rng, 8)),
        "DE" => format!("+4915{}{}", rng.gen_range(1..8), digits(rng, 8)),
        "AE" => format!("+9715{}{}", pick(rng, &["0", "2", "5", "6"]), digits(rng, 7)),
        "SG" => format!("+65{}{}", rng.gen_range(8..10), digits(rng, 7)),
        _ => format!("+614{}", digits(rng, 8)),
    }
}

impl Generator {
    /// `dup_per_mille`: near-duplicates per thousand rows.
    pub fn new(seed: u64, dup_per_mille: u32) -> Generator {
        Generator { rng: StdRng::seed_from_u64(seed), recent: Vec::new(), next: 0, dup_per_mille }
    }

    fn original(&mut self) -> Lead {
        let rng = &mut self.rng;
        let indian = rng.gen_range(0..100) < 60;
        let (country, city, state) = if indian {
            let (c, s) = pick(rng, IN_PLACES);
            ("IN", *c, *s)
        } else {
            let total: u32 = INTL_PLACES.iter().map(|p| p.1).sum();
            let mut n = rng.gen_range(0..total);
            let mut chosen = INTL_PLACES[0];
            for p in INTL_PLACES {
                if n < p.1 {
                    chosen = *p;
                    break;
                }
                n -= p.1;
            }
            (chosen.0, chosen.2, chosen.3)
        };
        let (first, last) =
            if indian { (*pick(rng, IN_FIRST), *pick(rng, IN_LAST)) } else { (*pick(rng, INTL_FIRST), *pick(rng, INTL_LAST)) };
        let stem = *pick(rng, COMPANY_STEMS);
        let kind = *pick(rng, COMPANY_KINDS);
        let suffix = if indian { *pick(rng, SUFFIXES_IN) } else { *pick(rng, SUFFIXES_INTL) };
        let company = [stem, kind, suffix].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
        let n: u32 = rng.gen_range(1..10_000);
        let domain = if rng.gen_range(0..100) < 35 {
            (*pick(rng, FREE_MAIL)).to_string()
        } else {
            format!("{}{}.{}", ascii_slug(stem), ascii_slug(kind), if indian { "in" } else { "com" })
        };
        let email = format!("{}.{}{n}@{domain}", ascii_slug(first), ascii_slug(last));
        Lead {
            first_name: first.into(),
            last_name: last.into(),
            company,
            email,
            phone: phone(rng, country),
            country: country.into(),
            city: city.into(),
            state: state.into(),
            job_title: (*pick(rng, TITLES)).into(),
            source: weighted(rng, SOURCES).into(),
            campaign: (*pick(rng, CAMPAIGNS)).into(),
            medium: (*pick(rng, MEDIUMS)).into(),
            company_size: [10, 50, 200, 1000, 5000][rng.gen_range(0..5)].to_string(),
            product: (*pick(rng, PRODUCTS)).into(),
            duplicate_of: None,
        }
    }

    /// A near-duplicate of `orig`: the same person written differently.
    fn variant(&mut self, index: usize, orig: &Lead) -> Lead {
        let rng = &mut self.rng;
        let mut l = orig.clone();
        l.duplicate_of = Some(index);
        match rng.gen_range(0..6) {
            0 => {
                // A typo: two neighbouring letters swapped in the last name.
                let mut cs: Vec<char> = l.last_name.chars().collect();
                if cs.len() > 3 {
                    let i = rng.gen_range(1..cs.len() - 1);
                    cs.swap(i, i + 1);
                }
                l.last_name = cs.into_iter().collect();
                l.email = String::new();
            }
            1 => {
                if let Some((_, nick)) = NICKNAMES.iter().find(|(full, _)| *full == l.first_name) {
                    l.first_name = (*nick).into();
                } else {
                    l.first_name = l.first_name.chars().take(1).collect::<String>() + ".";
                }
            }
            2 => std::mem::swap(&mut l.first_name, &mut l.last_name),
            3 => {
                // The same number as people type it, with spaces.
                let p = l.phone.clone();
                if p.len() > 9 {
                    l.phone = format!("{} {} {}", &p[..3], &p[3..8], &p[8..]);
                }
                l.email = String::new();
            }
            4 => l.email = l.email.to_uppercase(),
            _ => {
                l.company = l.company.replace(" Pvt Ltd", "").replace(" Private Limited", " Pvt. Ltd.").replace(" Inc", ", Inc.");
                l.phone = String::new();
            }
        }
        l
    }

    pub fn next_lead(&mut self) -> Lead {
        let index = self.next;
        self.next += 1;
        if !self.recent.is_empty() && self.rng.gen_range(0..1000) < self.dup_per_mille {
            let (i, orig) = self.recent[self.rng.gen_range(0..self.recent.len())].clone();
            return self.variant(i, &orig);
        }
        let lead = self.original();
        if self.recent.len() < 4096 {
            self.recent.push((index, lead.clone()));
        } else {
            let slot = self.rng.gen_range(0..self.recent.len());
            self.recent[slot] = (index, lead.clone());
        }
        lead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_rows_and_a_known_share_of_duplicates() {
        let a: Vec<Lead> = {
            let mut g = Generator::new(7, 50);
            (0..5000).map(|_| g.next_lead()).collect()
        };
        let b: Vec<Lead> = {
            let mut g = Generator::new(7, 50);
            (0..5000).map(|_| g.next_lead()).collect()
        };
        assert_eq!(a, b);
        let dups = a.iter().filter(|l| l.duplicate_of.is_some()).count();
        assert!((150..350).contains(&dups), "{dups} duplicates in 5000 rows");
        let mut g = Generator::new(8, 50);
        assert_ne!(g.next_lead(), a[0]);
    }
}
