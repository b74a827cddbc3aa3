//! The `corvid` binary: serve the API, the web app and the background job workers, run migrations,
//! seed demo data, administer companies, verify the audit trail.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use corvid_store::{audit, companies, migrate, Db};
use std::net::SocketAddr;

mod bench;
mod transfer;

// Request handling allocates many small, short-lived values on several threads; glibc's
// allocator spent about a fifth of the CPU time of a create-heavy load in its own
// bookkeeping (measured with `perf` during `corvid bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_DB: &str = "sqlite://corvid-data/corvid.db";

#[derive(Parser)]
#[command(name = "corvid", version, about = "Corvid, the CRM: one binary for the API, web app and workers")]
struct Cli {
    /// Database URL: sqlite://path/to/file.db (created on first use) or postgres://...
    #[arg(long, global = true, env = "CORVID_DATABASE_URL", default_value = DEFAULT_DB, hide_env_values = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve HTTP.
    ///
    /// Security settings come from the environment: CORVID_ALLOWED_HOSTS, CORVID_CORS_ORIGINS,
    /// CORVID_RATE_LIMIT_PER_MIN (per client address, default 2400), CORVID_RATE_LIMIT_USER_PER_MIN
    /// (per signed-in caller, default 1200), CORVID_RATE_LIMIT_AUTH_PER_MIN (password reset and
    /// second sign-in step per address, default 30; 0 turns a limit off), CORVID_SMTP_URL
    /// (smtp://user:pass@host:port), CORVID_MAIL_FROM, CORVID_PUBLIC_URL (base of links in mail),
    /// CORVID_JWT_PREVIOUS_SECRET, CORVID_LOG_RETENTION_DAYS (default 14), CORVID_LOG_MAX_ROWS.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "CORVID_BIND", default_value = "127.0.0.1:8080")]
        bind: SocketAddr,
        /// Create the demo company "Acme Demo" with sample data if it does not exist.
        #[arg(long)]
        demo: bool,
        /// Token signing secret shared by all nodes (default: generated once, kept in the database).
        #[arg(long, env = "CORVID_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// Background job workers in this process (0: run no jobs here; the scheduler still runs).
        #[arg(long, env = "CORVID_WORKERS", default_value_t = 2)]
        workers: usize,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Create the demo company with sample data (if absent) and print its logins.
    Demo,
    /// Administration tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Import a CSV or XLSX file through the import engine (validation, duplicates, batches
    /// that resume when the same command is run again after an interruption).
    Import(transfer::ImportArgs),
    /// Export a company's records (with list filters) as CSV or XLSX.
    Export(transfer::ExportArgs),
    /// Measure import, list/search, HTTP create and duplicate-check speed on synthetic data
    /// (a fresh temporary SQLite database unless --database-url is given).
    Bench {
        /// Leads to generate and import.
        #[arg(long, default_value_t = 1_000_000)]
        leads: usize,
        /// Seed of the synthetic data (same seed, same rows).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Concurrent HTTP clients for the create measurement.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Leads created through HTTP.
        #[arg(long, default_value_t = 6400)]
        creates: usize,
        /// List and search requests (each).
        #[arg(long, default_value_t = 400)]
        queries: usize,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Make a new access-token signing key; the current one stays valid for tokens already
    /// issued. Running servers pick the new key up within a minute. (Not for a key given by
    /// CORVID_JWT_SECRET: rotate that by moving it to CORVID_JWT_PREVIOUS_SECRET.)
    RotateJwtKey,
    /// Create a company and its first Admin (the user is created if the email is new).
    CreateCompany {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
        #[arg(long)]
        admin_name: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every company's audit hash chain; exits non-zero if any is broken.
    Verify,
}

/// The URL with any password masked, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn open(url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(url).await.with_context(|| format!("cannot open database {}", redact(url)))?;
    let applied = migrate::run(&db).await.context("migrations failed")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "migrations applied");
    }
    Ok(db)
}

fn print_demo(summary: &corvid_store::demo::DemoSummary, url: Option<&str>) {
    if summary.created {
        println!("Created the demo company \"Acme Demo\":");
        for (what, n) in &summary.counts {
            println!("  {n:>5} {what}");
        }
    } else {
        println!("The demo company \"Acme Demo\" already exists; its data was left as it is.");
    }
    if let Some(url) = url {
        println!("\nCorvid is running at {url}");
        println!("API docs: {url}/api/docs");
    }
    println!("\nDemo logins (password for all: {}):", summary.logins.first().map_or("", |l| l.password.as_str()));
    for l in &summary.logins {
        println!("  {:<14} {}", l.role.label(), l.email);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The console shows what CORVID_LOG selects; the system log (in the database, for Admins)
    // keeps its own selection, so each layer has its own filter.
    let cli = Cli::parse();
    {
        use tracing_subscriber::prelude::*;
        // The benchmark prints its own table; only warnings belong beside it.
        let default_filter = if matches!(cli.command, Command::Bench { .. }) { "warn" } else { "info,sqlx=warn,tower_http=warn" };
        let console = tracing_subscriber::EnvFilter::try_from_env("CORVID_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_target(false).with_filter(console))
            .with(corvid_server::syslog::layer())
            .init();
    }
    let explicit_db = std::env::args().any(|a| a.starts_with("--database-url")) || std::env::var_os("CORVID_DATABASE_URL").is_some();
    match cli.command {
        Command::Import(args) => {
            let db = open(&cli.database_url).await?;
            let imp = transfer::import(&db, &args, &mut std::io::stderr()).await?;
            transfer::print_summary(&db, args.company, &imp, &mut std::io::stdout()).await?;
            if imp.state != "succeeded" {
                bail!("the import did not finish: {}", imp.error.unwrap_or_else(|| imp.state.clone()));
            }
        }
        Command::Export(args) => {
            let db = open(&cli.database_url).await?;
            let bytes = transfer::export(&db, &args).await?;
            if let Some(out) = args.out.as_ref().filter(|p| p.as_os_str() != "-") {
                eprintln!("Wrote {} ({bytes} bytes).", out.display());
            }
        }
        Command::Bench { leads, seed, json, clients, creates, queries } => {
            let database_url = explicit_db.then(|| cli.database_url.clone());
            let report = bench::run(bench::Args { database_url, leads, seed, json, clients, creates, queries }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                bench::print_table(&report);
            }
        }
        Command::Serve { bind, demo, jwt_secret, workers } => {
            let db = open(&cli.database_url).await?;
            let summary = if demo { Some(corvid_store::demo::seed(&db, 42).await.context("demo data")?) } else { None };
            let settings = corvid_server::edge::Settings::from_env(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
            let mut state = corvid_server::AppState::new(db.clone(), jwt_secret.clone()).await?;
            let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
            let url = format!("http://{}", listener.local_addr()?);
            settings.apply(&mut state, jwt_secret.as_deref(), &url, demo);
            corvid_server::syslog::set_default(state.syslog.clone());
            tracing::info!(%url, database = %redact(&cli.database_url), "serving");
            match &summary {
                Some(s) => print_demo(s, Some(&url)),
                None => println!("Corvid is running at {url} (API docs at {url}/api/docs)"),
            }
            let jobs = corvid_server::jobs::Runtime::start(db, corvid_server::jobs::Registry::builtin(), workers);
            tracing::info!(workers, "background jobs started");
            let served = corvid_server::serve(state, listener).await;
            // Workers finish (or hand back) their current jobs before the process exits.
            jobs.shutdown().await;
            served?;
        }
        Command::Migrate => {
            let db = open(&cli.database_url).await?;
            println!("Database is at schema version {}.", migrate::latest_version());
            db.close().await;
        }
        Command::Demo => {
            let db = open(&cli.database_url).await?;
            let s = corvid_store::demo::seed(&db, 42).await?;
            print_demo(&s, None);
        }
        Command::Admin { command: AdminCommand::RotateJwtKey } => {
            let db = open(&cli.database_url).await?;
            let keys = corvid_server::jwt::Keys::stored(&db).await?;
            let old = keys.current_kid();
            corvid_store::auth::rotate_jwt_secret(&db, &corvid_server::jwt::new_secret()).await?;
            keys.reload(&db).await?;
            println!("Token signing key rotated: {old} -> {} ({old} is still accepted until the next rotation).", keys.current_kid());
        }
        Command::Admin { command: AdminCommand::CreateCompany { name, admin_email, admin_password, admin_name } } => {
            corvid_core::validate::parse_email(&admin_email).map_err(|e| anyhow::anyhow!("--admin-email {e}"))?;
            if admin_password.chars().count() < 10 {
                bail!("--admin-password must be at least 10 characters");
            }
            let db = open(&cli.database_url).await?;
            let ctx = audit::AuditCtx { user_agent: Some("corvid admin".into()), ..Default::default() };
            let display = admin_name.unwrap_or_else(|| admin_email.split('@').next().unwrap_or("Admin").to_string());
            let mut tx = db.begin().await?;
            let user = match corvid_store::auth::user_by_email(&db, &admin_email).await? {
                Some(u) => u,
                None => corvid_store::auth::create_user(&mut tx, &admin_email, &display, &admin_password).await?,
            };
            let company = companies::create_in(&mut tx, &name, user.id, &ctx).await?;
            tx.commit().await?;
            println!("Created company \"{}\" ({}) with admin {}.", company.name, company.id, user.email);
        }
        Command::Audit { command: AuditCommand::Verify } => {
            let db = open(&cli.database_url).await?;
            let mut broken = 0;
            for id in companies::all_ids(&db).await? {
                let r = audit::verify(&db, id).await?;
                if r.ok {
                    println!("ok      {id}  {} rows", r.rows);
                } else {
                    broken += 1;
                    println!("BROKEN  {id}  at row {}: {}", r.first_bad_seq.unwrap_or(0), r.problem.unwrap_or_default());
                }
            }
            if broken > 0 {
                bail!("{broken} audit chain(s) failed verification");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("postgres://corvid:s3cret@db:5432/crm"), "postgres://corvid:***@db:5432/crm");
        assert_eq!(super::redact("sqlite://corvid-data/corvid.db"), "sqlite://corvid-data/corvid.db");
    }
}
