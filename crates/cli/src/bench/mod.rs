//! `corvid bench`: measures the figures the product promises, on this machine, from
//! deterministic synthetic data. One run prints one table (or one JSON object):
//!
//! 1. importing N leads from CSV through the full pipeline (validation, normalisation,
//!    duplicate check, scoring, assignment, audit), with the process's peak RSS;
//! 2. the same rows into a bare table with one prepared statement in one transaction — the
//!    floor this machine and database allow — and the ratio of 1 to 2;
//! 3. list (filter + sort) and search over the imported leads through HTTP: p50/p99;
//! 4. creating leads through HTTP with 32 concurrent clients: requests/s and p99;
//! 5. the duplicate check of one new lead against the base: p50/p99.

mod gen;
mod http;

use anyhow::{bail, Context};
use corvid_core::role::Role;
use corvid_core::validate::{Mode, Validator};
use corvid_store::audit::AuditCtx;
use corvid_store::pipeline::{Pipeline, Write};
use corvid_store::{companies, import, Db, Tenant, Q};
use gen::Generator;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Args {
    pub database_url: Option<String>,
    pub leads: usize,
    pub seed: u64,
    pub json: bool,
    pub clients: usize,
    pub creates: usize,
    pub queries: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub database: String,
    pub leads: usize,
    pub seed: u64,
    pub cores: usize,
    pub near_duplicates: usize,
    pub import_rows_per_s: f64,
    pub import_seconds: f64,
    pub import_created: i64,
    pub import_failed: i64,
    pub floor_rows_per_s: f64,
    pub floor_seconds: f64,
    pub import_to_floor_ratio: f64,
    pub peak_rss_mb: f64,
    pub list_p50_ms: f64,
    pub list_p99_ms: f64,
    pub search_p50_ms: f64,
    pub search_p99_ms: f64,
    pub http_create_per_s: f64,
    pub http_create_p50_ms: f64,
    pub http_create_p99_ms: f64,
    pub http_create_errors: usize,
    pub dedupe_check_p50_ms: f64,
    pub dedupe_check_p99_ms: f64,
    pub flagged_duplicates: i64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn p50_p99(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (percentile(&v, 0.50), percentile(&v, 0.99))
}

/// Linux keeps the high-water mark of resident memory; writing 5 to clear_refs resets it so
/// the figure belongs to the import alone.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

fn write_csv(path: &Path, leads: usize, seed: u64) -> anyhow::Result<usize> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(gen::HEADERS)?;
    let mut g = Generator::new(seed, 50);
    let mut dups = 0;
    for _ in 0..leads {
        let l = g.next_lead();
        dups += usize::from(l.duplicate_of.is_some());
        w.write_record(l.cells())?;
    }
    w.flush()?;
    Ok(dups)
}

/// A fresh database for the run: a temporary SQLite file, or a new schema in the given
/// PostgreSQL database (dropped afterwards).
async fn fresh_db(url: Option<&str>, dir: &Path) -> anyhow::Result<(Db, String, Option<String>)> {
    match url {
        Some(u) if u.starts_with("postgres") => {
            use std::str::FromStr;
            let admin = Db::connect(u).await?;
            let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
            admin.execute(&Q::new(format!("CREATE SCHEMA {schema}"))).await?;
            admin.close().await;
            let opts = sqlx::postgres::PgConnectOptions::from_str(u)?.options([("search_path", schema.as_str())]);
            let db = Db::connect_postgres(opts, 40).await?;
            Ok((db, "PostgreSQL".into(), Some(schema)))
        }
        Some(u) => Ok((Db::connect(u).await?, "SQLite".into(), None)),
        None => {
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            Ok((Db::connect(&url).await?, "SQLite".into(), None))
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<Report> {
    if args.leads == 0 {
        bail!("--leads must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let say = |s: &str| {
        if !args.json {
            eprintln!("{s}");
        }
    };
    let (db, database, pg_schema) = fresh_db(args.database_url.as_deref(), dir.path()).await?;
    corvid_store::migrate::run(&db).await?;
    let mut report = Report {
        database,
        leads: args.leads,
        seed: args.seed,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Default::default()
    };

    say(&format!("generating {} leads (seed {})…", args.leads, args.seed));
    let csv_path = dir.path().join("leads.csv");
    report.near_duplicates = write_csv(&csv_path, args.leads, args.seed)?;

    let ctx = AuditCtx { user_agent: Some("corvid bench".into()), ..Default::default() };
    let (admin, company) = companies::register(&db, "bench@corvid.test", "bench-password-1", "Bench Admin", "Bench Co", &ctx).await?;
    let audit =
        AuditCtx { company_id: company.id, actor_id: Some(admin.id), user_agent: Some("corvid bench".into()), ..Default::default() };
    for i in 1..=4 {
        companies::add_member(&db, &audit, &format!("rep{i}@corvid.test"), &format!("Rep {i}"), Some("bench-password-1"), Role::SalesRep)
            .await?;
    }
    let tenant = Tenant::system(company.id, admin.id, "91".into(), audit);
    setup::configure(&db, &tenant).await?;

    // 2. The floor, measured first on the empty database (the import consumes its file).
    say("measuring the floor (bare table, one prepared statement, one transaction)…");
    let (floor_secs, floor_rows) = floor(&db, &csv_path).await?;
    report.floor_seconds = floor_secs;
    report.floor_rows_per_s = floor_rows as f64 / floor_secs;

    // 1. The import, through the same engine as the API and the CLI.
    say("importing through the full pipeline…");
    let object = corvid_core::object("leads").context("leads object")?;
    let sniffed = {
        let p = csv_path.clone();
        tokio::task::spawn_blocking(move || import::open(&p, "leads.csv").map(|s| s.sniffed)).await??
    };
    let custom = Vec::new();
    let mapping = import::suggest_mapping(object, &custom, &sniffed.headers);
    let options = import::Options { duplicate_policy: import::DuplicatePolicy::Create, run_assignment: true, ..Default::default() };
    let (imp, _) = import::create(
        &db,
        &tenant,
        import::NewImport {
            object,
            file_name: "leads.csv",
            stored_path: &csv_path,
            sniffed: &sniffed,
            mapping: &mapping,
            options: &options,
            idempotency_key: None,
        },
    )
    .await?;
    reset_peak_rss();
    let started = Instant::now();
    let done = import::run(&db, &tenant, imp.id, &|_| {}).await?;
    let secs = started.elapsed().as_secs_f64();
    report.peak_rss_mb = peak_rss_mb();
    report.import_seconds = secs;
    report.import_created = done.created;
    report.import_failed = done.failed;
    report.import_rows_per_s = args.leads as f64 / secs;
    if done.state != "succeeded" {
        bail!("the import ended {}: {}", done.state, done.error.unwrap_or_default());
    }
    report.import_to_floor_ratio = report.floor_rows_per_s / report.import_rows_per_s;
    report.flagged_duplicates = count(&db, company.id, "is_duplicate = TRUE").await.unwrap_or(0);

    // 3-4. HTTP.
    say("starting the HTTP server…");
    let (_, token) = corvid_store::auth::create_api_token(&db, admin.id, "bench", None).await?;
    let mut state = corvid_server::AppState::new(db.clone(), Some("bench-secret-bench-secret-bench-secret".into())).await?;
    // The benchmark is one caller sending thousands of requests a second: per-caller rate
    // limits would measure the limiter, not the server.
    state.limiter = std::sync::Arc::new(corvid_server::ratelimit::Limiter::new(corvid_server::ratelimit::Limits::unlimited()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(corvid_server::serve(state, listener));
    let base = format!("/api/v1/companies/{}/leads", company.id);
    let reps = rep_ids(&db, company.id).await?;

    say("list and search through HTTP…");
    let mut client = http::Client::connect(addr, &token).await?;
    let lists = list_queries(&base, &reps);
    let mut times = Vec::new();
    for i in 0..args.queries {
        let path = &lists[i % lists.len()];
        let t = Instant::now();
        let r = client.get(path).await?;
        times.push(t.elapsed());
        if r.status != 200 {
            bail!("GET {path} answered {}: {}", r.status, String::from_utf8_lossy(&r.body));
        }
    }
    (report.list_p50_ms, report.list_p99_ms) = p50_p99(times);
    let searches = search_queries(&base, args.seed);
    let mut times = Vec::new();
    for i in 0..args.queries {
        let path = &searches[i % searches.len()];
        let t = Instant::now();
        let r = client.get(path).await?;
        times.push(t.elapsed());
        if r.status != 200 {
            bail!("GET {path} answered {}: {}", r.status, String::from_utf8_lossy(&r.body));
        }
    }
    (report.search_p50_ms, report.search_p99_ms) = p50_p99(times);

    say(&format!("creating {} leads through HTTP with {} clients…", args.creates, args.clients));
    let (rate, p50, p99, errors) = http_creates(addr, &token, &base, args.clients, args.creates, args.seed).await?;
    report.http_create_per_s = rate;
    report.http_create_p50_ms = p50;
    report.http_create_p99_ms = p99;
    report.http_create_errors = errors;
    server.abort();

    // 5. The duplicate check alone.
    say("duplicate checks…");
    (report.dedupe_check_p50_ms, report.dedupe_check_p99_ms) = dedupe_checks(&db, &tenant, args.seed, 1000).await?;

    if let Some(schema) = pg_schema {
        db.execute(&Q::new(format!("DROP SCHEMA {schema} CASCADE"))).await?;
    }
    db.close().await;
    Ok(report)
}

async fn count(db: &Db, company: uuid::Uuid, cond: &str) -> anyhow::Result<i64> {
    let q = Q::new(format!("SELECT COUNT(*) FROM leads WHERE company_id = $1 AND {cond}")).bind(corvid_core::Value::Uuid(company));
    Ok(db.fetch_one(&q, &[corvid_core::SqlType::Int]).await?.and_then(|r| r.int(0)).unwrap_or(0))
}

async fn rep_ids(db: &Db, company: uuid::Uuid) -> anyhow::Result<Vec<uuid::Uuid>> {
    Ok(companies::members(db, company).await?.into_iter().map(|m| m.user_id).collect())
}

fn list_queries(base: &str, reps: &[uuid::Uuid]) -> Vec<String> {
    let mut v = vec![
        format!("{base}?filter[status]=new&sort=-created_at&limit=50"),
        format!("{base}?filter[source]=website&sort=-created_at&limit=50"),
        format!("{base}?filter[country]=IN&sort=-created_at&limit=50"),
        format!("{base}?filter[lead_score][gte]=40&sort=-lead_score&limit=50"),
        format!("{base}?sort=-updated_at&limit=50"),
    ];
    for r in reps {
        v.push(format!("{base}?filter[owner_id]={r}&sort=-created_at&limit=50"));
    }
    v
}

fn search_queries(base: &str, seed: u64) -> Vec<String> {
    let mut g = Generator::new(seed, 0);
    let mut v = Vec::new();
    for i in 0..40 {
        let l = g.next_lead();
        let term = match i % 4 {
            0 => l.last_name.clone(),
            1 => l.email.clone(),
            2 => l.company.split(' ').next().unwrap_or("").to_string(),
            _ => format!("{} {}", l.first_name, l.last_name),
        };
        v.push(format!("{base}?q={}&limit=50", urlencode(&term)));
    }
    v
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn http_creates(
    addr: std::net::SocketAddr,
    token: &str,
    base: &str,
    clients: usize,
    total: usize,
    seed: u64,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let per = total.div_ceil(clients.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let token = token.to_string();
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut client = http::Client::connect(addr, &token).await?;
            let mut g = Generator::new(seed.wrapping_add(1000 + c as u64), 50);
            let mut times = Vec::with_capacity(per);
            let mut errors = 0usize;
            for _ in 0..per {
                let body = serde_json::to_vec(&g.next_lead().to_json())?;
                let t = Instant::now();
                let r = client.post_json(&base, &body).await?;
                times.push(t.elapsed());
                if r.status != 201 && r.status != 200 {
                    errors += 1;
                    if errors <= 3 {
                        tracing::warn!(status = r.status, body = %String::from_utf8_lossy(&r.body), "create failed");
                    }
                }
            }
            anyhow::Ok((times, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (times, e) = t.await??;
        all.extend(times);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = all.len();
    let (p50, p99) = p50_p99(all);
    Ok((n as f64 / secs, p50, p99, errors))
}

/// Times the duplicate step of the pipeline alone, for new leads of which some resemble
/// existing ones; nothing is written (each transaction is dropped, i.e. rolled back).
async fn dedupe_checks(db: &Db, tenant: &Tenant, seed: u64, n: usize) -> anyhow::Result<(f64, f64)> {
    let object = corvid_core::object("leads").context("leads object")?;
    // The same seed regenerates leads of the base; a fresh one gives new people.
    let mut same = Generator::new(seed, 200);
    let mut fresh = Generator::new(seed ^ 0x5eed, 200);
    let validator = Validator { object, custom_fields: &[], default_calling_code: "91" };
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let lead = if i % 2 == 0 { same.next_lead() } else { fresh.next_lead() };
        let input = lead.to_json();
        let Some(map) = input.as_object() else { continue };
        let Ok(mut changes) = validator.validate(map, Mode::Create) else { continue };
        let mut tx = db.begin().await?;
        let mut pipeline = Pipeline::load(&mut tx, tenant, object).await?;
        let write = Write { tenant, object, existing: None, channel: "bench" };
        let mut audit = Vec::new();
        let t = Instant::now();
        pipeline.dedupe.before_write(&mut tx, &write, &mut changes, &mut audit).await?;
        times.push(t.elapsed());
        drop(tx);
    }
    Ok(p50_p99(times))
}

/// The floor: the same CSV rows into a table without indexes, one prepared statement, one
/// transaction.
async fn floor(db: &Db, csv_path: &PathBuf) -> anyhow::Result<(f64, usize)> {
    let cols = gen::HEADERS.len();
    let names: Vec<String> = (0..cols).map(|i| format!("c{i}")).collect();
    db.execute(&Q::new(format!(
        "CREATE TABLE bench_floor (id TEXT, {})",
        names.iter().map(|n| format!("{n} TEXT")).collect::<Vec<_>>().join(", ")
    )))
    .await?;
    let placeholders: Vec<String> = (1..=cols + 1).map(|i| format!("${i}")).collect();
    let sql = format!("INSERT INTO bench_floor (id, {}) VALUES ({})", names.join(", "), placeholders.join(", "));
    let sqlite_sql = sql.replace('$', "?");
    let mut reader = csv::Reader::from_path(csv_path)?;
    let started = Instant::now();
    let mut rows = 0usize;
    match db {
        Db::Sqlite(pool, _) => {
            let mut tx = pool.begin().await?;
            for rec in reader.records() {
                let rec = rec?;
                let mut q = sqlx::query(&sqlite_sql).bind(uuid::Uuid::now_v7().to_string());
                for cell in rec.iter() {
                    q = q.bind(cell.to_string());
                }
                q.execute(&mut *tx).await?;
                rows += 1;
            }
            tx.commit().await?;
        }
        Db::Postgres(pool, _) => {
            let mut tx = pool.begin().await?;
            for rec in reader.records() {
                let rec = rec?;
                let mut q = sqlx::query(&sql).bind(uuid::Uuid::now_v7().to_string());
                for cell in rec.iter() {
                    q = q.bind(cell.to_string());
                }
                q.execute(&mut *tx).await?;
                rows += 1;
            }
            tx.commit().await?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    db.execute(&Q::new("DROP TABLE bench_floor")).await?;
    Ok((secs, rows))
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn print_table(r: &Report) {
    println!("Corvid benchmark · {} · {} leads · seed {} · {} cores", r.database, thousands(r.leads as f64), r.seed, r.cores);
    println!("{:<48} {:>14} {:>14}", "measure", "result", "detail");
    let row = |a: &str, b: String, c: String| println!("{a:<48} {b:>14} {c:>14}");
    row("1. import CSV, full pipeline (rows/s)", thousands(r.import_rows_per_s), format!("{:.1} s", r.import_seconds));
    row("   peak RSS during import (MB)", format!("{:.0}", r.peak_rss_mb), format!("{} failed", r.import_failed));
    row("   near-duplicates generated / flagged", format!("{}", r.near_duplicates), format!("{}", r.flagged_duplicates));
    row("2. floor: bare table, 1 statement (rows/s)", thousands(r.floor_rows_per_s), format!("{:.1} s", r.floor_seconds));
    row("   import / floor ratio", format!("{:.2}×", r.import_to_floor_ratio), String::new());
    row("3. list, filter + sort, HTTP (ms)", format!("p50 {:.2}", r.list_p50_ms), format!("p99 {:.2}", r.list_p99_ms));
    row("   search, HTTP (ms)", format!("p50 {:.2}", r.search_p50_ms), format!("p99 {:.2}", r.search_p99_ms));
    row("4. create, HTTP, concurrent clients (req/s)", thousands(r.http_create_per_s), format!("p99 {:.1} ms", r.http_create_p99_ms));
    row("   create errors", format!("{}", r.http_create_errors), format!("p50 {:.1} ms", r.http_create_p50_ms));
    row(
        "5. duplicate check, one lead vs base (ms)",
        format!("p50 {:.3}", r.dedupe_check_p50_ms),
        format!("p99 {:.3}", r.dedupe_check_p99_ms),
    );
}

mod setup {
    //! The rules a realistic company runs with, so the import pays for them: an active
    //! scoring rule set (field and engagement rules, decay) and two assignment rules (round
    //! robin for India, territories for the rest). The duplicate policy stays at its
    //! default (flag), so every lead is checked.
    use corvid_core::role::Role;
    use corvid_store::{assignment, companies, scoring, Db, Tenant};
    use serde_json::json;

    pub async fn configure(db: &Db, tenant: &Tenant) -> anyhow::Result<()> {
        let set: scoring::RuleSetInput = serde_json::from_value(json!({
            "name": "Inbound",
            "active": true,
            "rules": [
                {"name": "India", "points": 15, "conditions": [{"field": "country", "op": "eq", "value": "IN"}]},
                {"name": "Mid-size or larger", "points": 20, "conditions": [{"field": "company_size", "op": "gte", "value": 200}]},
                {"name": "Decision maker", "points": 25, "conditions": [{"field": "job_title", "op": "in", "value": ["CEO", "CTO", "CFO", "Founder", "Director", "Owner"]}]},
                {"name": "Website or referral", "points": 10, "conditions": [{"field": "source", "op": "in", "value": ["website", "referral"]}]},
                {"name": "Opens our emails", "points": 20, "conditions": [{"engagement": "email_opened", "op": "gte", "value": 2, "within_days": 30}]},
                {"name": "Analyst", "points": -10, "conditions": [{"field": "job_title", "op": "contains", "value": "analyst"}]}
            ],
            "decay": {"points_per_week": 5}
        }))?;
        scoring::create_set(db, tenant, set).await?;
        let reps: Vec<String> = companies::members(db, tenant.company_id)
            .await?
            .into_iter()
            .filter(|m| m.role == Role::SalesRep)
            .map(|m| m.user_id.to_string())
            .collect();
        anyhow::ensure!(reps.len() >= 2, "the benchmark company needs at least two sales reps");
        let (india, world) = reps.split_at(reps.len() / 2);
        for rule in [
            json!({"name": "India inbound", "conditions": [{"field": "country", "op": "eq", "value": "IN"}], "strategy": "round_robin", "user_ids": india}),
            json!({"name": "International", "strategy": "territory", "territories": [
                {"name": "Americas and Europe", "countries": ["US", "GB", "DE"], "user_id": world[0]},
                {"name": "Middle East and APAC", "countries": ["AE", "SG", "AU"], "user_id": world[world.len() - 1]}
            ]}),
        ] {
            assignment::create(db, tenant, serde_json::from_value(rule)?).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The harness runs end to end on a small base and every figure is measured (no timing
    /// thresholds here: speed is judged from the full run, not in tests).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_measures_every_figure() {
        let mut urls = vec![None];
        if let Ok(pg) = std::env::var("CORVID_TEST_POSTGRES_URL") {
            urls.push(Some(pg));
        }
        for database_url in urls {
            small_run(database_url).await;
        }
    }

    async fn small_run(database_url: Option<String>) {
        let report = super::run(super::Args { database_url, leads: 600, seed: 7, json: true, clients: 4, creates: 40, queries: 20 })
            .await
            .expect("bench run");
        assert_eq!(report.import_created + report.import_failed, 600);
        assert_eq!(report.import_failed, 0, "{report:?}");
        assert_eq!(report.http_create_errors, 0, "{report:?}");
        for (name, v) in [
            ("import", report.import_rows_per_s),
            ("floor", report.floor_rows_per_s),
            ("list", report.list_p99_ms),
            ("search", report.search_p99_ms),
            ("create", report.http_create_per_s),
            ("dedupe", report.dedupe_check_p99_ms),
        ] {
            assert!(v.is_finite() && v > 0.0, "{name} = {v}");
        }
        assert!(report.near_duplicates > 0);
    }
}
