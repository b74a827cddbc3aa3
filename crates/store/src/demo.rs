//! Demo data: the company "Acme Demo" with a user in every role and a year of realistic CRM
//! history (leads, accounts, contacts, deals, tasks, activities).
//!
//! Everything is generated deterministically from a seed and written through the record
//! repository, so validation, numbering and the audit trail apply exactly as for real input.
//! Only the record timestamps are then moved back in time with direct SQL, so that lists,
//! dashboards and reports show a believable spread over the last twelve months.

use crate::audit::AuditCtx;
use crate::companies;
use crate::convert;
use crate::db::{Db, Q};
use crate::records::{BulkRequest, Tenant};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use corvid_core::meta::{DEAL_STAGE, LEAD_SOURCE, LEAD_STATUS};
use corvid_core::role::Role;
use corvid_core::validate::gstin_check_char;
use corvid_core::value::{format_timestamp, now_micros};
use corvid_core::{SqlType, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::HashSet;
use uuid::Uuid;

/// Name of the demo company; its presence is what makes seeding a no-op.
pub const COMPANY_NAME: &str = "Acme Demo";
/// The one password every demo login shares. Demo only.
pub const PASSWORD: &str = "corvid-demo";
const USER_AGENT: &str = "corvid demo";

#[derive(Debug, Clone, Serialize)]
pub struct DemoLogin {
    pub role: Role,
    pub email: String,
    pub password: String,
    pub name: String,
}

/// The reps form the "Inside Sales" team led by the manager, so team scopes have something to
/// show: each rep reads the other's records, the manager works on both.
async fn sales_team(db: &Db, company_id: Uuid, users: &[Uuid]) -> Result<()> {
    let team = crate::new_id();
    let mut tx = db.begin().await?;
    tx.execute(
        &Q::new("INSERT INTO teams (id, company_id, name, manager_id, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(Value::Uuid(team))
            .bind(Value::Uuid(company_id))
            .bind(Value::Text("Inside Sales".into()))
            .bind(Value::Uuid(users[MANAGER]))
            .bind(Value::Timestamp(now_micros())),
    )
    .await?;
    for rep in [REP1, REP2] {
        tx.execute(
            &Q::new("UPDATE memberships SET team_id = $1, manager_id = $2 WHERE company_id = $3 AND user_id = $4")
                .bind(Value::Uuid(team))
                .bind(Value::Uuid(users[MANAGER]))
                .bind(Value::Uuid(company_id))
                .bind(Value::Uuid(users[rep])),
        )
        .await?;
    }
    tx.commit().await
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub company_id: Uuid,
    /// False when the company already existed and nothing was created.
    pub created: bool,
    pub logins: Vec<DemoLogin>,
    /// Live records per object, e.g. `("leads", 1000)`.
    pub counts: Vec<(String, usize)>,
}

/// The demo users: the first registers the company, the others are added as members.
const USERS: [(Role, &str, &str); 6] = [
    (Role::Admin, "admin@acme.demo", "Aarav Mehta"),
    (Role::Manager, "manager@acme.demo", "Priya Raghavan"),
    (Role::SalesRep, "rep1@acme.demo", "Rohan Kulkarni"),
    (Role::SalesRep, "rep2@acme.demo", "Sarah Thompson"),
    (Role::SupportAgent, "support@acme.demo", "Fatima Sheikh"),
    (Role::ReadOnly, "readonly@acme.demo", "Vikram Iyer"),
];
const MANAGER: usize = 1;
const REP1: usize = 2;
const REP2: usize = 3;
const SUPPORT: usize = 4;
/// Owners of sales records (index into `USERS`, weight): the reps carry most of the book.
const SALES: &[(usize, u32)] = &[(REP1, 4), (REP2, 4), (MANAGER, 2)];
/// Users who take turns creating the records, so `created_by` varies.
const ACTORS: [usize; 3] = [REP1, REP2, MANAGER];

const N_ACCOUNTS: usize = 200;
/// Generated contacts; converted leads add about a hundred more.
const N_CONTACTS: usize = 400;
const N_LEADS: usize = 1000;
const N_DEALS: usize = 300;
const N_TASKS: usize = 400;
const N_ACTIVITIES: usize = 1500;
/// Records per bulk create (one transaction each).
const CHUNK: usize = 200;

/// Microseconds.
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// India Standard Time, UTC+05:30: office hours are Indian office hours.
const IST: i64 = 5 * HOUR + 30 * MINUTE;

/// Creates the demo company "Acme Demo" unless a company of that name exists (then returns
/// `created = false` with the logins and counts of what is there, without creating anything).
pub async fn seed(db: &Db, seed: u64) -> Result<DemoSummary> {
    if let Some(company) = companies::find_by_name(db, COMPANY_NAME).await? {
        return Ok(DemoSummary {
            company_id: company.id,
            created: false,
            logins: existing_logins(db, company.id).await?,
            counts: counts(db, company.id).await?,
        });
    }

    let ctx = AuditCtx { user_agent: Some(USER_AGENT.into()), ..AuditCtx::default() };
    let (admin_role, admin_email, admin_name) = USERS[0];
    let (admin, company) = companies::register(db, admin_email, PASSWORD, admin_name, COMPANY_NAME, &ctx).await?;
    let admin_ctx = audit_ctx(company.id, admin.id);
    let mut users = vec![admin.id];
    let mut logins = vec![login(admin_role, admin_email, admin_name)];
    for (role, email, name) in USERS.into_iter().skip(1) {
        users.push(companies::add_member(db, &admin_ctx, email, name, Some(PASSWORD), role).await?.user_id);
        logins.push(login(role, email, name));
    }
    sales_team(db, company.id, &users).await?;
    let actors: Vec<Tenant> = ACTORS
        .iter()
        .map(|&i| Tenant {
            company_id: company.id,
            user_id: users[i],
            role: USERS[i].0,
            calling_code: "91".into(),
            audit: audit_ctx(company.id, users[i]),
            // Seeding writes the history of a whole team, beyond any one role's scope.
            access: crate::access::Access::unrestricted(users[i]),
        })
        .collect();

    let mut g = Gen { rng: StdRng::seed_from_u64(seed), now: now_micros().timestamp_micros(), users };

    let (accounts, items) = g.accounts();
    let account_ids = create(db, &actors, "accounts", &items).await?;
    let (contacts, items) = g.contacts(&accounts, &account_ids);
    let contact_ids = create(db, &actors, "contacts", &items).await?;
    let (leads, items) = g.leads(&accounts);
    let lead_ids = create(db, &actors, "leads", &items).await?;
    convert_leads(db, &actors, &leads, &items, &lead_ids, &account_ids).await?;
    let (deals, items) = g.deals(&accounts, &account_ids, &contacts, &contact_ids);
    let deal_ids = create(db, &actors, "deals", &items).await?;
    let ids = Ids { accounts: &account_ids, contacts: &contact_ids, leads: &lead_ids, deals: &deal_ids };
    let world = World { accounts: &accounts, contacts: &contacts, leads: &leads, deals: &deals };
    let items = g.tasks(&world, &ids);
    create(db, &actors, "tasks", &items).await?;
    let items = g.activities(&world, &ids);
    create(db, &actors, "activities", &items).await?;

    Ok(DemoSummary { company_id: company.id, created: true, logins, counts: counts(db, company.id).await? })
}

fn audit_ctx(company_id: Uuid, user_id: Uuid) -> AuditCtx {
    AuditCtx { company_id, actor_id: Some(user_id), ip: None, user_agent: Some(USER_AGENT.into()), request_id: None }
}

fn login(role: Role, email: &str, name: &str) -> DemoLogin {
    DemoLogin { role, email: email.into(), password: PASSWORD.into(), name: name.into() }
}

/// The demo logins that are members of the existing company, in the usual order.
async fn existing_logins(db: &Db, company_id: Uuid) -> Result<Vec<DemoLogin>> {
    let members = companies::members(db, company_id).await?;
    Ok(USERS
        .iter()
        .filter_map(|(_, email, _)| members.iter().find(|m| m.email == *email))
        .map(|m| login(m.role, &m.email, &m.name))
        .collect())
}

/// Live records of every object in the company.
async fn counts(db: &Db, company_id: Uuid) -> Result<Vec<(String, usize)>> {
    let mut out = Vec::new();
    for name in corvid_core::meta::OBJECT_NAMES {
        let q = Q::new(format!("SELECT COUNT(*) FROM {name} WHERE company_id = $1 AND deleted_at IS NULL")).bind(Value::Uuid(company_id));
        let n = db.fetch_one(&q, &[SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0);
        out.push(((*name).to_string(), usize::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

/// One record to create: its input and the times it should appear to have been written.
struct Item {
    input: Map<String, Json>,
    created: i64,
    updated: i64,
    /// Tasks only: when a completed task was done.
    completed: Option<i64>,
}

impl Item {
    fn new(input: Map<String, Json>, created: i64, updated: i64) -> Self {
        Item { input, created, updated: updated.max(created), completed: None }
    }
}

fn ts(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Config(format!("demo timestamp {micros} is out of range")))
}

/// Creates the items in time order (so record numbers rise with `created_at`), in bulk chunks
/// with the acting users taking turns, then backdates their timestamps. Returns the ids in
/// the order of `items`.
async fn create(db: &Db, actors: &[Tenant], name: &str, items: &[Item]) -> Result<Vec<Uuid>> {
    let object = corvid_core::object(name).ok_or_else(|| StoreError::Config(format!("no object named {name}")))?;
    let first = actors.first().ok_or_else(|| StoreError::Config("no demo users to act as".into()))?;
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].created, i));
    let mut ids = vec![Uuid::nil(); items.len()];
    for (n, chunk) in order.chunks(CHUNK).enumerate() {
        let tenant = actors.get(n % actors.len()).unwrap_or(first);
        let records: Vec<_> = chunk.iter().map(|&i| items[i].input.clone()).collect();
        let made = tenant.records(db, object).bulk(&BulkRequest::Create { records }).await?;
        if made.len() != chunk.len() {
            return Err(StoreError::Config(format!("demo {name}: {} of {} records were created", made.len(), chunk.len())));
        }
        for (&i, record) in chunk.iter().zip(&made) {
            ids[i] = record.id;
        }
    }

    let mut tx = db.begin().await?;
    for (item, id) in items.iter().zip(&ids) {
        let mut q = Q::new(String::new());
        let created = q.param(Value::Timestamp(ts(item.created)?));
        let updated = q.param(Value::Timestamp(ts(item.updated.max(item.created))?));
        let completed = match item.completed {
            Some(at) => format!(", completed_at = {}", q.param(Value::Timestamp(ts(at)?))),
            None => String::new(),
        };
        let company = q.param(Value::Uuid(first.company_id));
        let id = q.param(Value::Uuid(*id));
        q.sql = format!(
            "UPDATE {} SET created_at = {created}, updated_at = {updated}{completed} WHERE company_id = {company} AND id = {id}",
            object.name
        );
        tx.execute(&q).await?;
    }
    tx.commit().await?;
    Ok(ids)
}

/// Converts the leads meant to end up converted into their accounts through the real
/// conversion (a new contact under the existing account, links on the lead, audit), then
/// dates the conversion back to the lead's last update.
async fn convert_leads(db: &Db, actors: &[Tenant], leads: &[Lead], items: &[Item], lead_ids: &[Uuid], account_ids: &[Uuid]) -> Result<()> {
    let first = actors.first().ok_or_else(|| StoreError::Config("no demo users to act as".into()))?;
    let mut done = Vec::new();
    for (i, lead) in leads.iter().enumerate() {
        let (Some(k), Some(&lead_id)) = (lead.converts_into, lead_ids.get(i)) else { continue };
        let account = account_ids.get(k).ok_or_else(|| StoreError::Config(format!("demo lead {i} converts into a missing account")))?;
        let req = convert::ConvertRequest {
            account: Some(convert::PickInput { new: None, existing_id: Some(account.to_string()) }),
            contact: Some(convert::PickInput { new: Some(Map::new()), existing_id: None }),
            ..Default::default()
        };
        let tenant = actors.get(i % actors.len()).unwrap_or(first);
        let c = convert::convert(db, tenant, lead_id, &req, None).await?;
        done.push((lead_id, c.contact.id, items.get(i).map_or(0, |it| it.updated.max(it.created))));
    }
    let mut tx = db.begin().await?;
    for (lead_id, contact_id, at) in done {
        let at = Value::Timestamp(ts(at)?);
        let company = Value::Uuid(first.company_id);
        for (sql, id) in [
            ("UPDATE leads SET converted_at = $1, updated_at = $1 WHERE company_id = $2 AND id = $3", lead_id),
            ("UPDATE contacts SET created_at = $1, updated_at = $1 WHERE company_id = $2 AND id = $3", contact_id),
            ("UPDATE lead_conversions SET converted_at = $1 WHERE company_id = $2 AND lead_id = $3", lead_id),
        ] {
            tx.execute(&Q::new(sql).bind(at.clone()).bind(company.clone()).bind(Value::Uuid(id))).await?;
        }
    }
    tx.commit().await
}

fn put(m: &mut Map<String, Json>, key: &str, value: impl Into<Json>) {
    m.insert(key.to_string(), value.into());
}

fn one<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (v, w) in items {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn pick(rng: &mut StdRng, from: &[usize]) -> Option<usize> {
    if from.is_empty() {
        None
    } else {
        Some(from[rng.gen_range(0..from.len())])
    }
}

fn date(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map(|t| format_timestamp(&t)).unwrap_or_default()
}

/// Lower-case letters and digits only, for email local parts and domains.
fn slug(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// A rounded amount drawn log-uniformly from `lo..hi` (in major units).
fn amount(rng: &mut StdRng, lo: f64, hi: f64, step: i64) -> i64 {
    let x = (lo.ln() + rng.gen::<f64>() * (hi.ln() - lo.ln())).exp();
    let step = step.max(1);
    (((x as i64) + step / 2) / step).max(1) * step
}

// ---------------------------------------------------------------------------------------
// Reference data

struct City {
    city: &'static str,
    state: &'static str,
    /// GST state code.
    gst: &'static str,
    territory: &'static str,
    /// First digits of the postal code.
    pin: &'static str,
    /// STD code for landlines.
    std: &'static str,
    weight: u32,
}

const fn city(
    city: &'static str,
    state: &'static str,
    gst: &'static str,
    territory: &'static str,
    pin: &'static str,
    std: &'static str,
    weight: u32,
) -> City {
    City { city, state, gst, territory, pin, std, weight }
}

const INDIAN_CITIES: &[City] = &[
    city("Mumbai", "Maharashtra", "27", "West", "4000", "22", 16),
    city("Pune", "Maharashtra", "27", "West", "4110", "20", 9),
    city("Ahmedabad", "Gujarat", "24", "West", "3800", "79", 6),
    city("Surat", "Gujarat", "24", "West", "3950", "261", 3),
    city("Indore", "Madhya Pradesh", "23", "West", "4520", "731", 2),
    city("Bengaluru", "Karnataka", "29", "South", "5600", "80", 15),
    city("Chennai", "Tamil Nadu", "33", "South", "6000", "44", 8),
    city("Coimbatore", "Tamil Nadu", "33", "South", "6410", "422", 2),
    city("Hyderabad", "Telangana", "36", "South", "5000", "40", 9),
    city("Kochi", "Kerala", "32", "South", "6820", "484", 3),
    city("New Delhi", "Delhi", "07", "North", "1100", "11", 11),
    city("Gurugram", "Haryana", "06", "North", "1220", "124", 6),
    city("Noida", "Uttar Pradesh", "09", "North", "2013", "120", 4),
    city("Jaipur", "Rajasthan", "08", "North", "3020", "141", 3),
    city("Chandigarh", "Chandigarh", "04", "North", "1600", "172", 2),
    city("Lucknow", "Uttar Pradesh", "09", "North", "2260", "522", 2),
    city("Kolkata", "West Bengal", "19", "East", "7000", "33", 7),
    city("Bhubaneswar", "Odisha", "21", "East", "7510", "674", 2),
    city("Guwahati", "Assam", "18", "East", "7810", "361", 1),
];

/// (country, city, state or region, postal code)
const FOREIGN_CITIES: &[(&str, &str, &str, &str)] = &[
    ("US", "San Francisco", "CA", "94105"),
    ("US", "New York", "NY", "10001"),
    ("US", "Austin", "TX", "78701"),
    ("US", "Seattle", "WA", "98101"),
    ("GB", "London", "England", "EC2A 4NE"),
    ("GB", "Manchester", "England", "M1 1AE"),
    ("GB", "Birmingham", "England", "B1 1BB"),
    ("AE", "Dubai", "Dubai", "00000"),
    ("AE", "Abu Dhabi", "Abu Dhabi", "00000"),
    ("SG", "Singapore", "Singapore", "018956"),
];

const FOREIGN_COUNTRIES: &[(&str, u32)] = &[("US", 35), ("GB", 25), ("AE", 25), ("SG", 15)];
const LEAD_COUNTRIES: &[(&str, u32)] = &[("IN", 82), ("US", 6), ("GB", 4), ("AE", 5), ("SG", 3)];

const INDIAN_FIRST: &[&str] = &[
    "Aarav",
    "Vivaan",
    "Aditya",
    "Arjun",
    "Sai",
    "Reyansh",
    "Krishna",
    "Ishaan",
    "Rohan",
    "Kabir",
    "Ananya",
    "Diya",
    "Aadhya",
    "Saanvi",
    "Priya",
    "Kavya",
    "Neha",
    "Pooja",
    "Sneha",
    "Divya",
    "Rahul",
    "Amit",
    "Suresh",
    "Ramesh",
    "Venkatesh",
    "Karthik",
    "Harish",
    "Manoj",
    "Deepak",
    "Sanjay",
    "Anjali",
    "Lakshmi",
    "Meera",
    "Nandini",
    "Shruti",
    "Swati",
    "Rekha",
    "Sunita",
    "Farhan",
    "Imran",
    "Ayesha",
    "Zoya",
    "Gurpreet",
    "Harpreet",
    "Simran",
    "Manpreet",
    "Joseph",
    "Anita",
    "Vikram",
    "Nikhil",
    "Siddharth",
    "Varun",
    "Tanvi",
    "Ritika",
    "Aparna",
    "Gayatri",
    "Bhavesh",
    "Hitesh",
    "Jignesh",
    "Chirag",
    "Mehul",
    "Pranav",
    "Abhishek",
    "Arnav",
    "Kiran",
    "Sameer",
    "Yash",
    "Tejas",
    "Lavanya",
    "Mohan",
    "Sowmya",
    "Arvind",
    "Naveen",
    "Pallavi",
    "Rashmi",
    "Sunil",
];
const INDIAN_LAST: &[&str] = &[
    "Sharma",
    "Verma",
    "Gupta",
    "Agarwal",
    "Patel",
    "Shah",
    "Mehta",
    "Desai",
    "Joshi",
    "Kulkarni",
    "Deshpande",
    "Patil",
    "Iyer",
    "Iyengar",
    "Nair",
    "Menon",
    "Pillai",
    "Reddy",
    "Rao",
    "Naidu",
    "Krishnan",
    "Subramanian",
    "Banerjee",
    "Chatterjee",
    "Mukherjee",
    "Das",
    "Ghosh",
    "Bose",
    "Sen",
    "Singh",
    "Kaur",
    "Gill",
    "Sandhu",
    "Malhotra",
    "Kapoor",
    "Khanna",
    "Chopra",
    "Bhatia",
    "Khan",
    "Sheikh",
    "Qureshi",
    "Ansari",
    "Fernandes",
    "D'Souza",
    "Pereira",
    "Mathew",
    "Thomas",
    "Jain",
    "Bansal",
    "Goyal",
    "Mishra",
    "Tiwari",
    "Pandey",
    "Yadav",
    "Saxena",
    "Srivastava",
    "Hegde",
    "Shetty",
    "Kamath",
    "Bhat",
    "Chauhan",
    "Rathore",
];
const US_FIRST: &[&str] = &[
    "James",
    "Emily",
    "Michael",
    "Sarah",
    "David",
    "Jessica",
    "Daniel",
    "Ashley",
    "Matthew",
    "Megan",
    "Christopher",
    "Lauren",
    "Andrew",
    "Rachel",
    "Ryan",
    "Hannah",
];
const US_LAST: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Moore", "Martin", "Clark",
    "Walker",
];
const GB_FIRST: &[&str] = &[
    "Oliver",
    "Amelia",
    "Harry",
    "Charlotte",
    "George",
    "Sophie",
    "Jack",
    "Emily",
    "William",
    "Grace",
    "Thomas",
    "Olivia",
    "Alfie",
    "Isla",
];
const GB_LAST: &[&str] =
    &["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Roberts", "Walker", "Wright", "Hughes", "Edwards", "Green"];
const AE_FIRST: &[&str] =
    &["Ahmed", "Mohammed", "Fatima", "Omar", "Layla", "Hassan", "Aisha", "Khalid", "Mariam", "Saeed", "Noura", "Yousef"];
const AE_LAST: &[&str] =
    &["Al Mansoori", "Al Nuaimi", "Al Hashimi", "Al Suwaidi", "Al Marri", "Al Falasi", "Haddad", "Khoury", "Rahman", "Siddiqui"];
const SG_FIRST: &[&str] =
    &["Wei Ming", "Hui Min", "Jun Jie", "Mei Ling", "Kai Wen", "Xin Yi", "Siti", "Nurul", "Marcus", "Rachel", "Daniel"];
const SG_LAST: &[&str] = &["Tan", "Lim", "Lee", "Ng", "Ong", "Wong", "Goh", "Chua", "Teo", "Koh", "Abdullah", "Ramasamy"];

const INDIAN_BRANDS: &[&str] = &[
    "Kaveri",
    "Sahyadri",
    "Nilgiri",
    "Indus",
    "Ganga",
    "Deccan",
    "Bharat",
    "Trident",
    "Lotus",
    "Pinnacle",
    "Zenith",
    "Navkar",
    "Suvidha",
    "Samruddhi",
    "Annapurna",
    "Konark",
    "Arihant",
    "Mahalaxmi",
    "Sai Krupa",
    "Balaji",
    "Shubh",
    "Anand",
    "Prakash",
    "Saraswati",
    "Godavari",
    "Narmada",
    "Malabar",
    "Shree Ganesh",
    "Vardhman",
    "Agarwal",
    "Sharma",
    "Mehta",
    "Kulkarni",
    "Reddy",
    "Iyer",
    "Banerjee",
    "Sterling India",
    "Ashoka",
    "Kalinga",
    "Vindhya",
    "Aravali",
    "Tulsi",
    "Chanakya",
    "Srinivasa",
    "Amrit",
    "Sunrise",
    "Everest",
];
const FOREIGN_BRANDS: &[&str] = &[
    "Northwind",
    "Bluefin",
    "Crestline",
    "Harbor",
    "Summit",
    "Evergreen",
    "Silverline",
    "Redwood",
    "Atlas",
    "Meridian",
    "Falcon",
    "Orion",
    "Beacon",
    "Keystone",
    "Brightwater",
    "Granite",
    "Cascade",
    "Pennine",
    "Thames",
    "Al Noor",
    "Desert Rose",
    "Lion City",
    "Marina Bay",
    "Oasis",
    "Pacific Rim",
    "Copperleaf",
];
/// (word in the company name, industry)
const SECTORS: &[(&str, &str)] = &[
    ("Textiles", "Textiles & Apparel"),
    ("Pharma", "Pharmaceuticals"),
    ("Infotech", "Information Technology"),
    ("Technologies", "Information Technology"),
    ("Software", "Software"),
    ("Logistics", "Logistics & Supply Chain"),
    ("Foods", "Food & Beverage"),
    ("Steels", "Manufacturing"),
    ("Motors", "Automotive"),
    ("Agro", "Agriculture"),
    ("Chemicals", "Chemicals"),
    ("Healthcare", "Healthcare"),
    ("Realty", "Real Estate"),
    ("Exports", "Import & Export"),
    ("Engineering", "Engineering"),
    ("Retail", "Retail"),
    ("Fintech", "Financial Services"),
    ("Capital", "Financial Services"),
    ("Edutech", "Education"),
    ("Hospitality", "Hospitality"),
    ("Energy", "Energy"),
    ("Telecom", "Telecommunications"),
    ("Media", "Media & Entertainment"),
    ("Packaging", "Manufacturing"),
    ("Diagnostics", "Healthcare"),
    ("Builders", "Construction"),
];
const INDIAN_SUFFIXES: &[(&str, u32)] = &[("Pvt Ltd", 50), ("Private Limited", 15), ("LLP", 15), ("Ltd", 12), ("& Co", 8)];

const ROADS: &[&str] = &[
    "MG Road",
    "Linking Road, Bandra West",
    "Bannerghatta Road",
    "Anna Salai",
    "Hitech City Road, Madhapur",
    "Nehru Place",
    "Park Street",
    "Sector 62",
    "Baner Road",
    "SG Highway",
    "Connaught Place",
    "Salt Lake Sector V",
    "Whitefield Main Road",
    "Andheri-Kurla Road",
    "Cyber City, DLF Phase 2",
    "Outer Ring Road, Marathahalli",
    "Residency Road",
    "Station Road",
];
const FOREIGN_STREETS: &[&str] = &[
    "Market Street",
    "5th Avenue",
    "Congress Avenue",
    "Pike Street",
    "Old Street",
    "Deansgate",
    "Colmore Row",
    "Sheikh Zayed Road",
    "Corniche Road",
    "Raffles Place",
];

// ---------------------------------------------------------------------------------------
// Generation

struct Account {
    brand: String,
    name: String,
    domain: String,
    country: &'static str,
    owner: usize,
    created: i64,
    account_type: &'static str,
}

struct Contact {
    account: usize,
    name: String,
    owner: usize,
    created: i64,
}

struct Lead {
    name: String,
    company: String,
    owner: usize,
    created: i64,
    /// Do-not-disturb: only inbound contact and notes may be logged for this lead.
    dnd: bool,
    /// Leads that end up converted: the existing account (index) they convert into. They are
    /// created qualified and converted through the conversion, like real ones.
    converts_into: Option<usize>,
}

struct Deal {
    account: usize,
    contact: usize,
    name: String,
    owner: usize,
    created: i64,
}

struct World<'a> {
    accounts: &'a [Account],
    contacts: &'a [Contact],
    leads: &'a [Lead],
    deals: &'a [Deal],
}

struct Ids<'a> {
    accounts: &'a [Uuid],
    contacts: &'a [Uuid],
    leads: &'a [Uuid],
    deals: &'a [Uuid],
}

fn id_of(ids: &[Uuid], i: usize) -> String {
    ids.get(i).copied().unwrap_or_default().to_string()
}

struct Gen {
    rng: StdRng,
    /// Microseconds since the epoch.
    now: i64,
    users: Vec<Uuid>,
}

impl Gen {
    fn user(&self, i: usize) -> String {
        self.users.get(i).copied().unwrap_or_default().to_string()
    }

    fn sales_owner(&mut self) -> usize {
        weighted(&mut self.rng, SALES)
    }

    /// A moment in Indian office hours (Monday to Saturday) on the day of `us`.
    fn office_time(&mut self, us: i64) -> i64 {
        let mut day = (us + IST).div_euclid(DAY);
        // 1970-01-01 was a Thursday: (day + 4) % 7 == 0 is a Sunday.
        if (day + 4).rem_euclid(7) == 0 {
            day -= 1;
        }
        day * DAY - IST + self.rng.gen_range(9 * HOUR + 30 * MINUTE..19 * HOUR) + self.rng.gen_range(0..MINUTE)
    }

    /// Like `office_time`, but never in the future: a day whose office hours are still to
    /// come gives a time on the working day before.
    fn office_hours(&mut self, us: i64) -> i64 {
        let t = self.office_time(us);
        if t <= self.now {
            t
        } else {
            self.office_time(us - DAY).min(self.now)
        }
    }

    /// A time in the last `days`, more recent times more likely the larger `bias` (> 1).
    fn ago(&mut self, days: f64, bias: f64) -> i64 {
        let u: f64 = self.rng.gen();
        let back = (u.powf(bias) * days * DAY as f64) as i64;
        self.office_hours(self.now - back)
    }

    /// A time from `lo` to `hi` (capped at now); `bias` > 1 leans towards `hi`, < 1 towards `lo`.
    fn between(&mut self, lo: i64, hi: i64, bias: f64) -> i64 {
        let hi = hi.min(self.now);
        if hi <= lo {
            return lo.min(self.now);
        }
        let u: f64 = self.rng.gen();
        let t = hi - (u.powf(bias) * (hi - lo) as f64) as i64;
        self.office_hours(t).clamp(lo, hi)
    }

    fn person(&mut self, country: &str) -> (String, String) {
        let expat = matches!(country, "AE" | "SG" | "US" | "GB") && self.rng.gen_bool(0.25);
        let (first, last) = match country {
            _ if expat => (INDIAN_FIRST, INDIAN_LAST),
            "US" => (US_FIRST, US_LAST),
            "GB" => (GB_FIRST, GB_LAST),
            "AE" => (AE_FIRST, AE_LAST),
            "SG" => (SG_FIRST, SG_LAST),
            _ => (INDIAN_FIRST, INDIAN_LAST),
        };
        (one(&mut self.rng, first).to_string(), one(&mut self.rng, last).to_string())
    }

    fn email(&mut self, first: &str, last: &str, domain: &str) -> String {
        let (f, l) = (slug(first), slug(last));
        let local = match self.rng.gen_range(0..10) {
            0..=5 => format!("{f}.{l}"),
            6 => format!("{f}{l}"),
            7 => format!("{}.{l}", f.chars().next().unwrap_or('x')),
            8 => format!("{f}_{l}"),
            _ => f,
        };
        format!("{local}@{domain}")
    }

    /// A number the numbering plan of its country accepts (generated until one is).
    fn mobile(&mut self, country: &str) -> String {
        let mut n = self.mobile_candidate(country);
        for _ in 0..50 {
            if corvid_core::phone::parse(&n, "91").is_ok() {
                break;
            }
            n = self.mobile_candidate(country);
        }
        n
    }

    fn landline(&mut self, country: &str, std: &str) -> String {
        let mut n = self.landline_candidate(country, std);
        for _ in 0..50 {
            if corvid_core::phone::parse(&n, "91").is_ok() {
                break;
            }
            n = self.landline_candidate(country, std);
        }
        n
    }

    fn mobile_candidate(&mut self, country: &str) -> String {
        let r = &mut self.rng;
        match country {
            "US" => format!("+1 ({}) 555-01{:02}", one(r, &["415", "212", "512", "206", "646"]), r.gen_range(0..100)),
            "GB" => format!("+44 7911 {:06}", r.gen_range(0..1_000_000)),
            "AE" => format!("+971 {} {:03} {:04}", one(r, &["50", "52", "55", "56"]), r.gen_range(200..1000), r.gen_range(0..10_000)),
            "SG" => format!("+65 {}{:03} {:04}", one(r, &["8", "9"]), r.gen_range(0..1000), r.gen_range(0..10_000)),
            _ => {
                let prefix = one(
                    r,
                    &[
                        "98", "99", "97", "96", "95", "94", "93", "91", "90", "89", "88", "87", "86", "85", "84", "81", "80", "79", "78",
                        "77", "76", "75", "73", "70", "63", "62",
                    ],
                );
                if r.gen_bool(0.7) {
                    format!("+91 {prefix}{:08}", r.gen_range(0..100_000_000))
                } else {
                    format!("+91 {prefix}{:03} {:05}", r.gen_range(0..1000), r.gen_range(0..100_000))
                }
            }
        }
    }

    fn landline_candidate(&mut self, country: &str, std: &str) -> String {
        let r = &mut self.rng;
        match country {
            "IN" => {
                let rest = 10 - std.len().min(4);
                let first = r.gen_range(2..7);
                let tail = r.gen_range(0..10i64.pow(rest as u32 - 1));
                format!("+91 {std} {first}{tail:0width$}", width = rest - 1)
            }
            "US" => format!("+1 ({}) 555-01{:02}", one(r, &["415", "212", "512", "206"]), r.gen_range(0..100)),
            "GB" => format!("+44 20 7123 {:04}", r.gen_range(0..10_000)),
            "AE" => format!("+971 4 {:03} {:04}", r.gen_range(300..900), r.gen_range(0..10_000)),
            _ => format!("+65 6{:03} {:04}", r.gen_range(0..1000), r.gen_range(0..10_000)),
        }
    }

    /// A company name: (brand, full legal name, web domain, industry).
    fn company(&mut self, country: &str) -> (String, String, String, &'static str) {
        let (sector, industry) = SECTORS[self.rng.gen_range(0..SECTORS.len())];
        let r = &mut self.rng;
        if country == "IN" {
            let brand = one(r, INDIAN_BRANDS);
            let suffix = weighted(r, INDIAN_SUFFIXES);
            let base = format!("{brand} {sector}");
            let tld = one(r, &["in", "co.in", "com", "in"]);
            let domain = if r.gen_bool(0.2) { format!("{}-{}.{tld}", slug(brand), slug(sector)) } else { format!("{}.{tld}", slug(&base)) };
            (base.clone(), format!("{base} {suffix}"), domain, industry)
        } else {
            let brand = one(r, FOREIGN_BRANDS);
            let (suffix, tld) = match country {
                "US" => (one(r, &["Inc", "LLC", "Corp"]), one(r, &["com", "io"])),
                "GB" => (one(r, &["Ltd", "Ltd", "PLC"]), "co.uk"),
                "AE" => (one(r, &["LLC", "FZ-LLC", "FZE"]), one(r, &["ae", "com"])),
                _ => ("Pte Ltd", one(r, &["com.sg", "sg"])),
            };
            let base = format!("{brand} {sector}");
            (base.clone(), format!("{base} {suffix}"), format!("{}.{tld}", slug(&base)), industry)
        }
    }

    fn gstin(&mut self, state: &str, brand: &str, llp: bool) -> Option<String> {
        const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut letter = || LETTERS[self.rng.gen_range(0..LETTERS.len())] as char;
        let initial = brand.chars().find(char::is_ascii_alphabetic).map_or('A', |c| c.to_ascii_uppercase());
        let pan: String = [letter(), letter(), letter(), if llp { 'F' } else { 'C' }, initial].into_iter().collect();
        let first14 =
            format!("{state}{pan}{:04}{}1Z", self.rng.gen_range(0..10_000), LETTERS[self.rng.gen_range(0..LETTERS.len())] as char);
        gstin_check_char(&first14).map(|c| format!("{first14}{c}"))
    }

    fn accounts(&mut self) -> (Vec<Account>, Vec<Item>) {
        let mut names = HashSet::new();
        let mut out = Vec::with_capacity(N_ACCOUNTS);
        let mut items = Vec::with_capacity(N_ACCOUNTS);
        let indian_weights: Vec<(usize, u32)> = INDIAN_CITIES.iter().enumerate().map(|(i, c)| (i, c.weight)).collect();
        for i in 0..N_ACCOUNTS {
            let country = if i % 6 == 5 { weighted(&mut self.rng, FOREIGN_COUNTRIES) } else { "IN" };
            let (mut brand, mut name, mut domain, mut industry) = self.company(country);
            for _ in 0..50 {
                if !names.contains(&name) {
                    break;
                }
                (brand, name, domain, industry) = self.company(country);
            }
            if !names.insert(name.clone()) {
                name = format!("{name} ({})", i + 1);
                names.insert(name.clone());
            }
            let created = self.ago(365.0, 1.15);
            let owner = self.sales_owner();
            let account_type =
                weighted(&mut self.rng, &[("customer", 40), ("prospect", 38), ("partner", 8), ("reseller", 8), ("competitor", 6)]);
            let size = weighted(&mut self.rng, &[("1-10", 15), ("11-50", 30), ("51-100", 20), ("101-500", 22), ("500+", 13)]);
            let r = &mut self.rng;
            let mut m = Map::new();
            put(&mut m, "name", name.as_str());
            put(&mut m, "account_type", account_type);
            put(&mut m, "industry", industry);
            put(&mut m, "company_size", size);
            let (currency, revenue) = if country == "IN" {
                // Rupees, rounded to lakhs.
                let (lo, hi) = match size {
                    "1-10" => (2.0e6, 2.0e7),
                    "11-50" => (1.0e7, 1.5e8),
                    "51-100" => (5.0e7, 5.0e8),
                    "101-500" => (2.0e8, 3.0e9),
                    _ => (1.0e9, 5.0e10),
                };
                ("INR", amount(r, lo, hi, 100_000))
            } else {
                let (lo, hi) = match size {
                    "1-10" => (3.0e5, 3.0e6),
                    "11-50" => (1.0e6, 1.2e7),
                    "51-100" => (5.0e6, 4.0e7),
                    "101-500" => (2.0e7, 2.5e8),
                    _ => (1.0e8, 2.0e9),
                };
                let currency = match country {
                    "GB" => "GBP",
                    "AE" if r.gen_bool(0.5) => "AED",
                    "SG" if r.gen_bool(0.5) => "SGD",
                    _ => "USD",
                };
                (currency, amount(r, lo, hi, 10_000))
            };
            put(&mut m, "annual_revenue", format!("{revenue}.00"));
            put(&mut m, "currency", currency);
            put(&mut m, "website", format!("https://www.{domain}"));
            put(&mut m, "email", format!("{}@{domain}", one(r, &["info", "sales", "contact", "hello", "accounts"])));
            let health = weighted(r, &[("green", 55), ("yellow", 28), ("red", 13), ("black", 4)]);
            let lifecycle = match account_type {
                "customer" => weighted(r, &[("customer", 85), ("churned", 10), ("inactive", 5)]),
                "prospect" => weighted(r, &[("prospect", 50), ("mqa", 25), ("sqa", 25)]),
                "competitor" => "inactive",
                _ => weighted(r, &[("customer", 60), ("prospect", 40)]),
            };
            put(&mut m, "health_score", if lifecycle == "churned" { "red" } else { health });
            put(&mut m, "lifecycle_stage", lifecycle);
            put(&mut m, "owner_id", self.user(owner));
            let (street, city, state, postal) = if country == "IN" {
                let c = &INDIAN_CITIES[weighted(&mut self.rng, &indian_weights)];
                let r = &mut self.rng;
                let street =
                    format!("{}, {} Floor, {}", r.gen_range(1..400), one(r, &["1st", "2nd", "3rd", "4th", "5th", "Ground"]), one(r, ROADS));
                let postal = format!("{}{:02}", c.pin, r.gen_range(1..60));
                put(&mut m, "territory", c.territory);
                put(&mut m, "phone", self.landline(country, c.std));
                if self.rng.gen_bool(0.65) {
                    if let Some(g) = self.gstin(c.gst, &brand, name.ends_with("LLP")) {
                        put(&mut m, "gstin", g);
                    }
                }
                (street, c.city, c.state, postal)
            } else {
                let options: Vec<usize> = (0..FOREIGN_CITIES.len()).filter(|&k| FOREIGN_CITIES[k].0 == country).collect();
                let (_, city, state, postal) = FOREIGN_CITIES[pick(&mut self.rng, &options).unwrap_or(0)];
                let street = format!("{} {}", self.rng.gen_range(1..900), one(&mut self.rng, FOREIGN_STREETS));
                put(&mut m, "territory", "International");
                put(&mut m, "phone", self.landline(country, ""));
                (street, city, state, postal.to_string())
            };
            for prefix in ["billing", "shipping"] {
                if prefix == "shipping" && self.rng.gen_bool(0.4) {
                    continue;
                }
                put(&mut m, &format!("{prefix}_street"), street.as_str());
                put(&mut m, &format!("{prefix}_city"), city);
                put(&mut m, &format!("{prefix}_state"), state);
                put(&mut m, &format!("{prefix}_postal_code"), postal.as_str());
                put(&mut m, &format!("{prefix}_country"), country);
            }
            if self.rng.gen_bool(0.5) {
                let what = match account_type {
                    "customer" => "Customer since their first rollout; key contact prefers quarterly reviews.",
                    "partner" => "Implementation partner for mid-market deals in their region.",
                    "reseller" => "Authorised reseller; handles billing for their own customers.",
                    "competitor" => "Competitor: tracked for pricing and win/loss analysis.",
                    _ => "Evaluating CRM options to replace spreadsheets and WhatsApp groups.",
                };
                put(&mut m, "description", format!("{industry} company based in {city}. {what}"));
            }
            let updated = self.between(created, self.now, 1.5);
            items.push(Item::new(m, created, updated));
            out.push(Account { brand, name, domain, country, owner, created, account_type });
        }
        (out, items)
    }

    fn contacts(&mut self, accounts: &[Account], account_ids: &[Uuid]) -> (Vec<Contact>, Vec<Item>) {
        // Every account has a primary contact; the rest are spread over the accounts.
        let mut of_account: Vec<usize> = (0..accounts.len()).collect();
        for _ in accounts.len()..N_CONTACTS {
            of_account.push(self.rng.gen_range(0..accounts.len().max(1)));
        }
        let mut out = Vec::with_capacity(of_account.len());
        let mut items = Vec::with_capacity(of_account.len());
        for (k, &a) in of_account.iter().enumerate() {
            let Some(acc) = accounts.get(a) else { continue };
            let primary = k < accounts.len();
            let (first, last) = self.person(acc.country);
            let role = if primary {
                weighted(&mut self.rng, &[("decision_maker", 6), ("executive", 4)])
            } else {
                weighted(
                    &mut self.rng,
                    &[("influencer", 25), ("champion", 15), ("end_user", 25), ("technical", 20), ("decision_maker", 10), ("executive", 5)],
                )
            };
            let r = &mut self.rng;
            let (title, department, score) = match role {
                "executive" => {
                    (one(r, &["Managing Director", "CEO", "Founder & CEO", "Director", "CFO", "COO"]), "Management", r.gen_range(75..=100))
                }
                "decision_maker" => (
                    one(r, &["VP Sales", "Head of Procurement", "General Manager", "Director – Operations", "Head of IT"]),
                    one(r, &["Sales", "Procurement", "Operations", "IT"]),
                    r.gen_range(65..=95),
                ),
                "influencer" => (
                    one(r, &["Senior Manager – Operations", "Finance Controller", "Business Head", "Regional Sales Manager"]),
                    one(r, &["Operations", "Finance", "Sales"]),
                    r.gen_range(45..=85),
                ),
                "champion" => (
                    one(r, &["Sales Operations Manager", "CRM Lead", "Head of Customer Success", "Marketing Manager"]),
                    one(r, &["Sales", "Customer Success", "Marketing"]),
                    r.gen_range(55..=90),
                ),
                "technical" => (
                    one(r, &["IT Manager", "Solutions Architect", "Systems Administrator", "Engineering Lead", "CTO"]),
                    "IT",
                    r.gen_range(30..=75),
                ),
                _ => (
                    one(
                        r,
                        &[
                            "Sales Executive",
                            "Inside Sales Associate",
                            "Customer Support Executive",
                            "Business Development Executive",
                            "Account Manager",
                        ],
                    ),
                    one(r, &["Sales", "Customer Support"]),
                    r.gen_range(10..=50),
                ),
            };
            let channel = match acc.country {
                "IN" | "AE" => weighted(r, &[("whatsapp", 45), ("phone", 30), ("email", 25)]),
                _ => weighted(r, &[("email", 60), ("phone", 30), ("whatsapp", 10)]),
            };
            let language = match acc.country {
                "IN" => weighted(
                    r,
                    &[("English", 60), ("Hindi", 20), ("Marathi", 5), ("Tamil", 5), ("Kannada", 4), ("Gujarati", 3), ("Bengali", 3)],
                ),
                "AE" => weighted(r, &[("English", 70), ("Arabic", 30)]),
                _ => "English",
            };
            let owner = if r.gen_bool(0.85) { acc.owner } else { weighted(r, SALES) };
            let created =
                if primary { self.between(acc.created, acc.created + 3 * DAY, 0.5) } else { self.between(acc.created, self.now, 1.0) };
            let mut m = Map::new();
            put(&mut m, "account_id", id_of(account_ids, a));
            put(&mut m, "first_name", first.as_str());
            put(&mut m, "last_name", last.as_str());
            let email = self.email(&first, &last, &acc.domain);
            put(&mut m, "email", email);
            if self.rng.gen_bool(0.9) {
                put(&mut m, "phone", self.mobile(acc.country));
            }
            put(&mut m, "job_title", title);
            put(&mut m, "department", department);
            put(&mut m, "role", role);
            put(&mut m, "influence_score", score);
            put(&mut m, "preferred_channel", channel);
            put(&mut m, "is_primary", primary);
            put(&mut m, "language", language);
            put(&mut m, "owner_id", self.user(owner));
            let updated = self.between(created, self.now, 1.2);
            items.push(Item::new(m, created, updated));
            out.push(Contact { account: a, name: format!("{first} {last}"), owner, created });
        }
        (out, items)
    }

    fn leads(&mut self, accounts: &[Account]) -> (Vec<Lead>, Vec<Item>) {
        let mut out = Vec::with_capacity(N_LEADS);
        let mut items = Vec::with_capacity(N_LEADS);
        for i in 0..N_LEADS {
            let country = weighted(&mut self.rng, LEAD_COUNTRIES);
            // A handful in the last week, the rest over the year with recent months busier.
            let created = if i < 8 { self.ago(7.0, 1.0) } else { self.ago(365.0, 1.35) };
            let age = (self.now - created) / DAY;
            let (first, last) = self.person(country);
            let (_, mut company, mut domain, _) = self.company(country);
            let r = &mut self.rng;
            let status = if (100..100 + LEAD_STATUS.len()).contains(&i) {
                LEAD_STATUS[i - 100].0
            } else if age < 7 {
                weighted(r, &[("new", 7), ("contacted", 3)])
            } else if age < 30 {
                weighted(r, &[("new", 3), ("contacted", 4), ("nurturing", 2), ("qualified", 2), ("unqualified", 1)])
            } else {
                weighted(
                    r,
                    &[
                        ("new", 1),
                        ("contacted", 3),
                        ("nurturing", 4),
                        ("qualified", 3),
                        ("unqualified", 3),
                        ("converted", 3),
                        ("recycled", 1),
                        ("disqualified", 2),
                    ],
                )
            };
            let source = if (200..200 + LEAD_SOURCE.len()).contains(&i) {
                LEAD_SOURCE[i - 200].0
            } else {
                weighted(
                    r,
                    &[
                        ("website", 20),
                        ("whatsapp", if country == "IN" { 14 } else { 4 }),
                        ("inbound_call", 8),
                        ("email", 6),
                        ("partner", 6),
                        ("event", 6),
                        ("import", 5),
                        ("referral", 10),
                        ("social", 10),
                        ("paid_ads", 12),
                        ("other", 3),
                    ],
                )
            };
            let campaign = match source {
                "paid_ads" => {
                    Some(one(r, &["Google Ads – CRM India", "Diwali Sale 2026", "LinkedIn Lead Gen – CXOs", "Republic Day Offer 2026"]))
                }
                "email" => Some(one(r, &["Q3 Webinar", "Diwali Sale 2026", "Year-End Renewal Push", "Monthly Newsletter"])),
                "social" => Some(one(r, &["Diwali Sale 2026", "Instagram Reels – SMB", "LinkedIn Lead Gen – CXOs", "Holi Offer 2026"])),
                "event" => Some(one(r, &["Q3 Webinar", "Nasscom Tech Summit", "GITEX Dubai 2026", "SaaSBOOMi Annual"])),
                "website" if r.gen_bool(0.6) => Some(one(r, &["Free Trial Signup", "Q3 Webinar", "Pricing Page – Demo Request"])),
                "whatsapp" => Some(one(r, &["WhatsApp Click-to-Chat Ads", "Diwali Sale 2026"])),
                "partner" | "referral" => Some("Partner Referral Programme"),
                _ => None,
            };
            let medium = match source {
                "paid_ads" => Some("cpc"),
                "email" => Some("email"),
                "social" | "whatsapp" => Some("social"),
                "partner" | "referral" => Some("referral"),
                "website" => Some(if r.gen_bool(0.7) { "organic" } else { "cpc" }),
                "event" => Some("event"),
                _ => None,
            };
            // A converted lead came from one of the accounts: it is created qualified, and
            // converted into that account once everything exists (see `convert_leads`).
            let mut converts_into = None;
            let status = if status == "converted" {
                let same_country: Vec<usize> = (0..accounts.len()).filter(|&k| accounts[k].country == country).collect();
                let pool = if same_country.is_empty() { (0..accounts.len()).collect() } else { same_country };
                if let Some(&k) = pool.get(r.gen_range(0..pool.len().max(1))) {
                    converts_into = Some(k);
                    company = accounts[k].name.clone();
                    domain = accounts[k].domain.clone();
                }
                "qualified"
            } else {
                status
            };
            let stage = match status {
                "new" | "contacted" | "unqualified" | "disqualified" => "awareness",
                "nurturing" | "recycled" => "consideration",
                _ => "decision",
            };
            let score: i64 = match status {
                "qualified" => r.gen_range(60..=100),
                "unqualified" | "disqualified" => r.gen_range(0..=35),
                "new" => r.gen_range(0..=60),
                _ => r.gen_range(15..=80),
            };
            let priority = match score {
                70.. => weighted(r, &[("high", 7), ("medium", 3)]),
                30..70 => weighted(r, &[("medium", 6), ("high", 2), ("low", 2)]),
                _ => weighted(r, &[("low", 7), ("medium", 3)]),
            };
            let titles = [
                ("Founder", "decision_maker"),
                ("Co-founder & CEO", "decision_maker"),
                ("Managing Director", "decision_maker"),
                ("Proprietor", "decision_maker"),
                ("CFO", "decision_maker"),
                ("VP Sales", "decision_maker"),
                ("Director – Sales", "influencer"),
                ("Head of Marketing", "influencer"),
                ("Sales Manager", "influencer"),
                ("Business Development Manager", "influencer"),
                ("IT Manager", "influencer"),
                ("Operations Manager", "influencer"),
                ("Purchase Manager", "influencer"),
                ("Marketing Executive", "user"),
                ("Sales Executive", "user"),
                ("Inside Sales Associate", "user"),
            ];
            let (title, authority) = titles[r.gen_range(0..titles.len())];
            let owner = weighted(r, SALES);
            let mut m = Map::new();
            put(&mut m, "first_name", first.as_str());
            put(&mut m, "last_name", last.as_str());
            put(&mut m, "company_name", company.as_str());
            let free_mail = country == "IN" && self.rng.gen_bool(0.12);
            let domain = if free_mail {
                one(&mut self.rng, &["gmail.com", "yahoo.co.in", "outlook.com", "rediffmail.com"]).to_string()
            } else {
                domain
            };
            if self.rng.gen_bool(0.93) {
                let email = self.email(&first, &last, &domain);
                put(&mut m, "email", email);
            }
            if self.rng.gen_bool(if source == "whatsapp" || source == "inbound_call" { 1.0 } else { 0.8 }) {
                put(&mut m, "phone", self.mobile(country));
            }
            let r = &mut self.rng;
            put(&mut m, "country", country);
            put(&mut m, "job_title", title);
            put(&mut m, "source", source);
            if let Some(c) = campaign {
                put(&mut m, "campaign", c);
            }
            if let Some(md) = medium {
                put(&mut m, "medium", md);
                if md == "cpc" {
                    put(
                        &mut m,
                        "term",
                        one(
                            r,
                            &[
                                "crm software india",
                                "best crm for small business",
                                "sales pipeline tool",
                                "whatsapp crm",
                                "lead management software",
                                "crm with gst invoicing",
                            ],
                        ),
                    );
                }
            }
            put(&mut m, "owner_id", self.user(owner));
            let r = &mut self.rng;
            put(&mut m, "status", status);
            put(&mut m, "stage", stage);
            put(&mut m, "lead_score", score);
            put(&mut m, "priority", priority);
            put(
                &mut m,
                "interest_product",
                one(
                    r,
                    &[
                        "Corvid Sales Cloud",
                        "Corvid Service Desk",
                        "WhatsApp Business Integration",
                        "Lead Management",
                        "Analytics & Forecasting",
                        "Field Sales App",
                        "Marketing Automation",
                    ],
                ),
            );
            if r.gen_bool(0.6) {
                let budgets: &[&str] = if country == "IN" {
                    &["Under ₹1 lakh", "₹1–5 lakh", "₹5–20 lakh", "₹20–50 lakh", "Above ₹50 lakh"]
                } else {
                    &["Under $10k", "$10k–50k", "$50k–150k", "Above $150k"]
                };
                put(&mut m, "budget_range", one(r, budgets));
                put(&mut m, "timeline", one(r, &["Immediate", "This quarter", "Next quarter", "6–12 months", "Just exploring"]));
            }
            put(&mut m, "authority_level", authority);
            if status == "qualified" {
                for key in ["bant_budget_score", "bant_authority_score", "bant_need_score", "bant_timeline_score"] {
                    put(&mut m, key, r.gen_range(5..=10));
                }
                put(
                    &mut m,
                    "bant_need_notes",
                    one(
                        r,
                        &[
                            "Sales team tracks leads in Excel; follow-ups are missed.",
                            "Needs WhatsApp and call logging in one place.",
                            "Wants pipeline visibility for the leadership review.",
                            "Field team of 40 needs a mobile app with offline use.",
                        ],
                    ),
                );
                if r.gen_bool(0.5) {
                    put(
                        &mut m,
                        "meddicc_identify_pain",
                        one(
                            r,
                            &[
                                "Leads lost between marketing and sales hand-off.",
                                "No single view of customer conversations across branches.",
                                "Quarterly forecast built manually from spreadsheets.",
                            ],
                        ),
                    );
                    put(
                        &mut m,
                        "meddicc_competition",
                        one(r, &["Zoho CRM", "Salesforce", "HubSpot", "Freshsales", "LeadSquared", "Spreadsheets"]),
                    );
                }
            }
            let consent = country == "GB" || r.gen_bool(0.45);
            put(&mut m, "gdpr_consent", consent);
            if consent || source == "whatsapp" {
                put(&mut m, "opt_in_date", rfc3339(created));
            }
            let dnd = country == "IN" && r.gen_bool(0.05);
            put(&mut m, "dnd_status", dnd);
            put(&mut m, "spam_score", weighted(r, &[("low", 90), ("medium", 8), ("high", 2)]));
            let validation = if age < 3 { "pending" } else { weighted(r, &[("valid", 75), ("pending", 20), ("invalid", 5)]) };
            put(&mut m, "validation_status", validation);
            let mut tags: Vec<String> = Vec::new();
            for _ in 0..weighted(r, &[(0, 35), (1, 35), (2, 22), (3, 8)]) {
                let t = one(
                    r,
                    &[
                        "hot",
                        "enterprise",
                        "smb",
                        "follow-up",
                        "diwali-offer",
                        "partner-referral",
                        "budget-approved",
                        "decision-q1",
                        "whatsapp-optin",
                        "pricing-sent",
                        "demo-done",
                    ],
                );
                if !tags.iter().any(|x| x == t) {
                    tags.push(t.to_string());
                }
            }
            if campaign.is_some_and(|c| c.contains("Webinar")) {
                tags.push("webinar".into());
            }
            if !tags.is_empty() {
                put(&mut m, "tags", tags);
            }
            if r.gen_bool(0.3) {
                put(
                    &mut m,
                    "notes",
                    one(
                        r,
                        &[
                            "Met at the stall; asked for a demo next week.",
                            "Wants Hindi and Marathi support for field staff.",
                            "Currently on spreadsheets; 25-member sales team.",
                            "Asked for GST-compliant invoices and INR billing.",
                            "Call after the quarter close; budget freeze till then.",
                            "Referred by an existing customer in the same industry.",
                        ],
                    ),
                );
            }
            let updated = if status == "new" { created + self.rng.gen_range(0..10 * MINUTE) } else { self.between(created, self.now, 1.3) };
            items.push(Item::new(m, created, updated.min(self.now)));
            out.push(Lead { name: format!("{first} {last}"), company, owner, created, dnd, converts_into });
        }
        (out, items)
    }

    fn deals(&mut self, accounts: &[Account], account_ids: &[Uuid], contacts: &[Contact], contact_ids: &[Uuid]) -> (Vec<Deal>, Vec<Item>) {
        let mut contacts_of: Vec<Vec<usize>> = vec![Vec::new(); accounts.len()];
        for (k, c) in contacts.iter().enumerate() {
            if let Some(list) = contacts_of.get_mut(c.account) {
                list.push(k);
            }
        }
        let with_contacts = |pred: &dyn Fn(&Account) -> bool| -> Vec<usize> {
            (0..accounts.len()).filter(|&a| pred(&accounts[a]) && !contacts_of[a].is_empty()).collect()
        };
        let eligible = with_contacts(&|a| a.account_type != "competitor");
        let customers = with_contacts(&|a| a.account_type == "customer");
        let foreign = with_contacts(&|a| a.country != "IN" && a.account_type != "competitor");
        let mut out = Vec::with_capacity(N_DEALS);
        let mut items = Vec::with_capacity(N_DEALS);
        for i in 0..N_DEALS {
            let stage = match DEAL_STAGE.get(i) {
                Some(s) => s.0,
                None => weighted(
                    &mut self.rng,
                    &[
                        ("prospecting", 15),
                        ("qualification", 15),
                        ("proposal", 15),
                        ("negotiation", 12),
                        ("closed_won", 25),
                        ("closed_lost", 18),
                    ],
                ),
            };
            // The first deals cover both currencies; won deals belong to customers.
            let pool = if i == 0 && !foreign.is_empty() {
                &foreign
            } else if stage == "closed_won" && !customers.is_empty() && self.rng.gen_bool(0.8) {
                &customers
            } else {
                &eligible
            };
            let Some(a) = pick(&mut self.rng, pool) else { break };
            let acc = &accounts[a];
            let Some(c) = pick(&mut self.rng, &contacts_of[a]) else { continue };
            let r = &mut self.rng;
            let deal_type = if acc.account_type == "customer" {
                weighted(r, &[("new_business", 25), ("upsell", 30), ("cross_sell", 20), ("renewal", 25)])
            } else {
                weighted(r, &[("new_business", 85), ("cross_sell", 15)])
            };
            let product = match deal_type {
                "renewal" => one(r, &["Annual subscription renewal", "Support plan renewal", "Multi-year renewal"]),
                "upsell" => one(r, &["Sales Cloud – 50 more users", "Enterprise edition upgrade", "Premium support upgrade"]),
                "cross_sell" => {
                    one(r, &["Analytics add-on", "WhatsApp Business integration", "Service Desk rollout", "Marketing Automation pilot"])
                }
                _ => one(
                    r,
                    &[
                        "Sales Cloud – 25 users",
                        "Sales Cloud – 100 users",
                        "Field Sales App – 40 users",
                        "Enterprise licence",
                        "CRM implementation & training",
                        "Data migration services",
                    ],
                ),
            };
            let (currency, value) =
                if acc.country == "IN" { ("INR", amount(r, 75_000.0, 1.8e7, 5_000)) } else { ("USD", amount(r, 4_000.0, 2.5e5, 500)) };
            let owner = if r.gen_bool(0.8) { acc.owner } else { weighted(r, SALES) };
            let closed = matches!(stage, "closed_won" | "closed_lost");
            let lo = acc.created.max(self.now - 365 * DAY);
            let (created, expected, actual) = if closed {
                // Closed within the last six months, after a sales cycle of weeks to months.
                let close_lo = (lo + 7 * DAY).max(self.now - 182 * DAY);
                let close = self.between(close_lo, self.now, 1.0);
                let created = self.between(lo, close - 7 * DAY, 0.6).min(close);
                let expected = (close + self.rng.gen_range(-20..=20) * DAY).clamp(self.now - 182 * DAY, self.now + 182 * DAY);
                (created, expected, Some(close))
            } else {
                let created = self.between(lo, self.now, 1.6);
                let ahead = self.rng.gen_range(-45..=182) * DAY;
                let expected = (self.now + ahead).max(created + 7 * DAY).min(self.now + 182 * DAY);
                (created, expected, None)
            };
            let name = format!("{} – {product}", acc.brand);
            let r = &mut self.rng;
            let mut m = Map::new();
            put(&mut m, "name", name.as_str());
            put(&mut m, "account_id", id_of(account_ids, a));
            put(&mut m, "primary_contact_id", id_of(contact_ids, c));
            put(&mut m, "value", format!("{value}.00"));
            put(&mut m, "currency", currency);
            put(&mut m, "stage", stage);
            put(&mut m, "deal_type", deal_type);
            put(&mut m, "expected_close_date", date(expected));
            if let Some(at) = actual {
                put(&mut m, "actual_close_date", date(at));
            }
            if stage == "closed_lost" {
                put(
                    &mut m,
                    "loss_reason",
                    one(
                        r,
                        &[
                            "Price too high",
                            "Chose a competitor",
                            "No budget this year",
                            "No decision",
                            "Project postponed",
                            "Missing feature",
                        ],
                    ),
                );
            }
            if r.gen_bool(0.45) {
                let first = one(r, &["Salesforce", "Zoho CRM", "HubSpot", "Freshsales", "LeadSquared", "Pipedrive"]);
                let second = one(r, &["Zoho CRM", "HubSpot", "Microsoft Dynamics", "Spreadsheets"]);
                put(
                    &mut m,
                    "competitors",
                    if first == second || r.gen_bool(0.5) { first.to_string() } else { format!("{first}, {second}") },
                );
            }
            put(&mut m, "owner_id", self.user(owner));
            let r = &mut self.rng;
            if r.gen_bool(0.4) {
                put(
                    &mut m,
                    "description",
                    one(
                        r,
                        &[
                            "Rollout planned in two phases: head office first, then branches.",
                            "Customer asked for annual billing in INR with GST invoice.",
                            "Includes onboarding workshop and data migration from Excel.",
                            "Decision with the CFO after the board meeting.",
                            "Pilot with the inside sales team before wider rollout.",
                        ],
                    ),
                );
            }
            let updated = match actual {
                Some(at) => at.max(created),
                None => self.between(created, self.now, 1.5),
            };
            items.push(Item::new(m, created, updated));
            out.push(Deal { account: a, contact: c, name, owner, created });
        }
        (out, items)
    }

    fn tasks(&mut self, w: &World, ids: &Ids) -> Vec<Item> {
        let mut items = Vec::with_capacity(N_TASKS);
        for _ in 0..N_TASKS {
            let kind = weighted(&mut self.rng, &[("leads", 40), ("deals", 35), ("accounts", 25)]);
            let r = &mut self.rng;
            let (related_object, related_id, title, owner, since) = match kind {
                "leads" if !w.leads.is_empty() => {
                    let k = r.gen_range(0..w.leads.len());
                    let l = &w.leads[k];
                    let title = match r.gen_range(0..5) {
                        0 => format!("Call {} to qualify", l.name),
                        1 => format!("Send product brochure to {}", l.name),
                        2 => format!("Schedule demo with {} ({})", l.name, l.company),
                        3 => format!("Follow up with {} on WhatsApp", l.name),
                        _ => format!("Verify contact details of {}", l.name),
                    };
                    ("leads", id_of(ids.leads, k), title, l.owner, l.created)
                }
                "deals" if !w.deals.is_empty() => {
                    let k = r.gen_range(0..w.deals.len());
                    let d = &w.deals[k];
                    let title = match r.gen_range(0..6) {
                        0 => format!("Send revised proposal: {}", d.name),
                        1 => format!("Prepare quotation: {}", d.name),
                        2 => format!("Negotiate payment terms: {}", d.name),
                        3 => format!("Collect PO: {}", d.name),
                        4 => format!("Share case studies: {}", d.name),
                        _ => format!("Arrange reference call: {}", d.name),
                    };
                    ("deals", id_of(ids.deals, k), title, d.owner, d.created)
                }
                _ => {
                    if w.accounts.is_empty() {
                        continue;
                    }
                    let k = r.gen_range(0..w.accounts.len());
                    let a = &w.accounts[k];
                    let title = match r.gen_range(0..5) {
                        0 => format!("Quarterly business review with {}", a.name),
                        1 => format!("Renewal check-in with {}", a.name),
                        2 => format!("Update GST details for {}", a.name),
                        3 => format!("Send invoice copy to {}", a.name),
                        _ => format!("Introduce new product line to {}", a.name),
                    };
                    ("accounts", id_of(ids.accounts, k), title, a.owner, a.created)
                }
            };
            let upcoming = self.rng.gen_bool(0.2);
            let due = if upcoming {
                let ahead = self.now + self.rng.gen_range(1..=30) * DAY;
                self.office_time(ahead).max(self.now + HOUR)
            } else {
                self.between(since, self.now, 1.2)
            };
            let r = &mut self.rng;
            let status = if upcoming {
                weighted(r, &[("open", 70), ("in_progress", 30)])
            } else {
                weighted(r, &[("completed", 70), ("cancelled", 8), ("open", 14), ("in_progress", 8)])
            };
            let assignee = if r.gen_bool(0.85) { owner } else { weighted(r, SALES) };
            let priority = weighted(r, &[("low", 25), ("medium", 50), ("high", 25)]);
            let mut m = Map::new();
            put(&mut m, "title", title);
            if r.gen_bool(0.35) {
                put(
                    &mut m,
                    "description",
                    one(
                        r,
                        &[
                            "Discussed on the last call; confirm the details by email.",
                            "Customer prefers a call after 4 pm IST.",
                            "Attach the latest price list and GST breakup.",
                            "Loop in the manager if there is no response.",
                        ],
                    ),
                );
            }
            put(&mut m, "due_at", rfc3339(due));
            put(&mut m, "priority", priority);
            put(&mut m, "status", status);
            put(&mut m, "assignee_id", self.user(assignee));
            put(&mut m, "related_object", related_object);
            put(&mut m, "related_id", related_id);
            let lead_time = self.rng.gen_range(1..=10) * DAY;
            let created = (due - lead_time).max(since).min(self.now);
            let mut item = Item::new(m, created, created);
            match status {
                "completed" => {
                    let done = self.between(created, due + 2 * DAY, 1.0);
                    item.completed = Some(done);
                    item.updated = done.max(created);
                }
                "cancelled" | "in_progress" => item.updated = self.between(created, self.now, 1.0).max(created),
                _ => {}
            }
            items.push(item);
        }
        items
    }

    fn activities(&mut self, w: &World, ids: &Ids) -> Vec<Item> {
        let mut deals_of: Vec<Vec<usize>> = vec![Vec::new(); w.accounts.len()];
        for (k, d) in w.deals.iter().enumerate() {
            if let Some(list) = deals_of.get_mut(d.account) {
                list.push(k);
            }
        }
        let mut contacts_of: Vec<Vec<usize>> = vec![Vec::new(); w.accounts.len()];
        for (k, c) in w.contacts.iter().enumerate() {
            if let Some(list) = contacts_of.get_mut(c.account) {
                list.push(k);
            }
        }
        let mut items = Vec::with_capacity(N_ACTIVITIES);
        for _ in 0..N_ACTIVITIES {
            let mut m = Map::new();
            let on_lead = !w.leads.is_empty() && self.rng.gen_bool(0.45);
            // Who the activity is with, which company, who owns the relationship, and since when.
            let (person, company, owner, since) = if on_lead {
                let k = self.rng.gen_range(0..w.leads.len());
                let l = &w.leads[k];
                put(&mut m, "lead_id", id_of(ids.leads, k));
                if l.dnd {
                    put(&mut m, "direction", "inbound");
                }
                (l.name.clone(), l.company.clone(), l.owner, l.created)
            } else {
                if w.accounts.is_empty() {
                    continue;
                }
                let a = self.rng.gen_range(0..w.accounts.len());
                let acc = &w.accounts[a];
                put(&mut m, "account_id", id_of(ids.accounts, a));
                let mut since = acc.created;
                let mut owner = acc.owner;
                let mut person = acc.name.clone();
                if let Some(d) = self.rng.gen_bool(0.5).then(|| pick(&mut self.rng, &deals_of[a])).flatten() {
                    let deal = &w.deals[d];
                    put(&mut m, "deal_id", id_of(ids.deals, d));
                    put(&mut m, "contact_id", id_of(ids.contacts, deal.contact));
                    since = since.max(deal.created);
                    owner = deal.owner;
                    if let Some(c) = w.contacts.get(deal.contact) {
                        person = c.name.clone();
                        since = since.max(c.created);
                    }
                } else if let Some(c) = self.rng.gen_bool(0.75).then(|| pick(&mut self.rng, &contacts_of[a])).flatten() {
                    let contact = &w.contacts[c];
                    put(&mut m, "contact_id", id_of(ids.contacts, c));
                    person = contact.name.clone();
                    owner = contact.owner;
                    since = since.max(contact.created);
                }
                (person, acc.name.clone(), owner, since)
            };
            let kind = weighted(&mut self.rng, &[("call", 30), ("email", 25), ("meeting", 12), ("note", 13), ("whatsapp", 20)]);
            let r = &mut self.rng;
            let title = match kind {
                "call" => match r.gen_range(0..4) {
                    0 => format!("Discovery call with {person}"),
                    1 => format!("Follow-up call with {person}"),
                    2 => format!("Pricing discussion with {person}"),
                    _ => format!("Called {person}: no answer, will retry"),
                },
                "email" => match r.gen_range(0..4) {
                    0 => format!("Sent proposal to {person}"),
                    1 => format!("Shared pricing sheet with {person}"),
                    2 => format!("Meeting recap sent to {person}"),
                    _ => format!("Sent case study to {person}"),
                },
                "meeting" => match r.gen_range(0..4) {
                    0 => format!("Product demo for {company}"),
                    1 => format!("On-site visit to {company}"),
                    2 => format!("Requirements workshop with {company}"),
                    _ => format!("Quarterly review with {company}"),
                },
                "whatsapp" => match r.gen_range(0..3) {
                    0 => format!("WhatsApp: shared brochure with {person}"),
                    1 => format!("WhatsApp: confirmed demo slot with {person}"),
                    _ => format!("WhatsApp: sent payment link to {person}"),
                },
                _ => one(
                    r,
                    &[
                        "Budget approval pending with the CFO",
                        "Prefers communication in Hindi",
                        "Evaluating a competitor in parallel",
                        "Asked for a reference customer in the same city",
                        "Decision expected after the board meeting",
                    ],
                )
                .to_string(),
            };
            put(&mut m, "activity_type", kind);
            put(&mut m, "title", title);
            match kind {
                "call" => put(&mut m, "duration_minutes", r.gen_range(3..=45)),
                "meeting" => put(&mut m, "duration_minutes", 15 * r.gen_range(2..=8)),
                _ => {}
            }
            let outcome = match kind {
                "call" | "meeting" => Some(weighted(r, &[("positive", 40), ("neutral", 25), ("negative", 10), ("follow_up_required", 25)])),
                "email" | "whatsapp" if r.gen_bool(0.6) => {
                    Some(weighted(r, &[("positive", 40), ("neutral", 35), ("follow_up_required", 25)]))
                }
                _ => None,
            };
            if let Some(o) = outcome {
                put(&mut m, "outcome", o);
            }
            if r.gen_bool(0.3) {
                put(
                    &mut m,
                    "description",
                    one(
                        r,
                        &[
                            "Interested in the annual plan; wants a discount for 3 years.",
                            "Asked for integration with Tally and WhatsApp.",
                            "Team of 15 to start, more after the pilot.",
                            "Follow up next week with the revised quote.",
                            "Concerned about data migration from the old system.",
                        ],
                    ),
                );
            }
            let user = if !on_lead && matches!(kind, "note" | "call") && r.gen_bool(0.1) {
                SUPPORT
            } else if r.gen_bool(0.8) {
                owner
            } else {
                weighted(r, SALES)
            };
            put(&mut m, "user_id", self.user(user));
            let at = self.between(since, self.now, 1.3);
            put(&mut m, "activity_date", rfc3339(at));
            items.push(Item::new(m, at, at));
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(db: &Db, q: Q) -> i64 {
        db.fetch_one(&q, &[SqlType::Int]).await.expect("count").and_then(|r| r.int(0)).expect("a number")
    }

    async fn texts(db: &Db, sql: &str) -> Vec<String> {
        db.fetch(&Q::new(sql), &[SqlType::Text]).await.expect("query").iter().filter_map(|r| r.text(0)).collect()
    }

    #[tokio::test]
    async fn demo_seed_creates_a_realistic_company_once() {
        let path = std::env::temp_dir().join(format!("corvid-demo-{}.db", crate::new_id()));
        let db = Db::connect(&format!("sqlite://{}", path.display())).await.expect("connect");
        crate::migrate::run(&db).await.expect("migrate");

        let started = std::time::Instant::now();
        let s = seed(&db, 42).await.expect("seed");
        eprintln!("demo seed took {:.2?}: {:?}", started.elapsed(), s.counts);
        assert!(s.created);
        assert_eq!(s.logins.len(), 6);
        assert!(s.logins.iter().all(|l| l.password == PASSWORD && l.email.ends_with("@acme.demo")));
        assert_eq!(s.logins.iter().filter(|l| l.role == Role::SalesRep).count(), 2);

        for (table, lo, hi) in [
            ("leads", 900, 1100),
            ("accounts", 180, 220),
            ("contacts", 450, 550),
            ("deals", 270, 330),
            ("tasks", 360, 440),
            ("activities", 1350, 1650),
        ] {
            let n = count(&db, Q::new(format!("SELECT COUNT(*) FROM {table}"))).await;
            assert!((lo..=hi).contains(&n), "{table}: {n}");
            assert!(s.counts.contains(&(table.to_string(), n as usize)), "{table} in {:?}", s.counts);
        }

        let mut stages = texts(&db, "SELECT DISTINCT stage FROM deals").await;
        stages.sort();
        let mut all: Vec<String> = DEAL_STAGE.iter().map(|s| s.0.to_string()).collect();
        all.sort();
        assert_eq!(stages, all);
        let currencies = texts(&db, "SELECT DISTINCT currency FROM deals").await;
        assert!(currencies.contains(&"INR".to_string()) && currencies.contains(&"USD".to_string()), "{currencies:?}");
        assert_eq!(count(&db, Q::new("SELECT COUNT(DISTINCT status) FROM leads")).await, LEAD_STATUS.len() as i64);
        assert_eq!(count(&db, Q::new("SELECT COUNT(DISTINCT source) FROM leads")).await, LEAD_SOURCE.len() as i64);
        // Converted leads were converted: each has its conversion and links.
        let converted = count(&db, Q::new("SELECT COUNT(*) FROM leads WHERE status = 'converted'")).await;
        assert!(converted > 50, "{converted}");
        assert_eq!(count(&db, Q::new("SELECT COUNT(*) FROM lead_conversions")).await, converted);
        let unlinked =
            "SELECT COUNT(*) FROM leads WHERE status = 'converted' AND (converted_contact_id IS NULL OR converted_at > updated_at)";
        assert_eq!(count(&db, Q::new(unlinked)).await, 0);

        // One primary contact per account, and deals point at a contact of their own account.
        let primaries = Q::new("SELECT COUNT(DISTINCT account_id) FROM contacts WHERE is_primary = $1").bind(Value::Bool(true));
        assert_eq!(count(&db, primaries).await, count(&db, Q::new("SELECT COUNT(*) FROM accounts")).await);
        let primary_total = Q::new("SELECT COUNT(*) FROM contacts WHERE is_primary = $1").bind(Value::Bool(true));
        assert_eq!(count(&db, primary_total).await, count(&db, Q::new("SELECT COUNT(*) FROM accounts")).await);
        let mismatched = "SELECT COUNT(*) FROM deals d JOIN contacts c ON c.id = d.primary_contact_id WHERE c.account_id <> d.account_id";
        assert_eq!(count(&db, Q::new(mismatched)).await, 0);
        assert!(count(&db, Q::new("SELECT COUNT(*) FROM accounts WHERE gstin IS NOT NULL")).await > 50);

        // Timestamps are spread over the year, with some leads this week, and writers vary.
        let now = now_micros();
        let week = Q::new("SELECT COUNT(*) FROM leads WHERE created_at >= $1").bind(Value::Timestamp(now - chrono::Duration::days(7)));
        let recent = count(&db, week).await;
        assert!((5..200).contains(&recent), "{recent} leads in the last week");
        for table in ["leads", "accounts", "contacts", "deals"] {
            let old = Q::new(format!("SELECT COUNT(*) FROM {table} WHERE created_at < $1"))
                .bind(Value::Timestamp(now - chrono::Duration::days(180)));
            assert!(count(&db, old).await > 10, "{table} has old records");
            let future = Q::new(format!("SELECT COUNT(*) FROM {table} WHERE created_at > $1 OR updated_at < created_at"))
                .bind(Value::Timestamp(now));
            assert_eq!(count(&db, future).await, 0, "{table} timestamps");
        }
        assert!(count(&db, Q::new("SELECT COUNT(DISTINCT created_by) FROM leads")).await >= 2);
        assert!(count(&db, Q::new("SELECT COUNT(DISTINCT owner_id) FROM leads")).await >= 3);
        assert!(count(&db, Q::new("SELECT COUNT(*) FROM tasks WHERE status = 'completed' AND completed_at IS NOT NULL")).await > 100);
        let report = crate::audit::verify(&db, s.company_id).await.expect("verify");
        assert!(report.ok, "{report:?}");

        // A second run finds the company and creates nothing.
        let users = count(&db, Q::new("SELECT COUNT(*) FROM users")).await;
        let audit_rows = count(&db, Q::new("SELECT COUNT(*) FROM audit_log")).await;
        let again = seed(&db, 42).await.expect("second seed");
        assert!(!again.created);
        assert_eq!(again.company_id, s.company_id);
        assert_eq!(again.counts, s.counts);
        assert_eq!(
            again.logins.iter().map(|l| (&l.email, l.role)).collect::<Vec<_>>(),
            s.logins.iter().map(|l| (&l.email, l.role)).collect::<Vec<_>>()
        );
        assert_eq!(count(&db, Q::new("SELECT COUNT(*) FROM users")).await, users);
        assert_eq!(count(&db, Q::new("SELECT COUNT(*) FROM audit_log")).await, audit_rows);
        assert_eq!(count(&db, Q::new("SELECT COUNT(*) FROM companies")).await, 1);

        db.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
