//! The `corvid` binary: serve the API, the web app and the background job workers, run migrations,
//! seed demo data, administer companies, verify the audit trail.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use corvid_store::{audit, companies, migrate, Db};
use std::net::SocketAddr;

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
}

#[derive(Subcommand)]
enum AdminCommand {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORVID_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn")),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { bind, demo, jwt_secret, workers } => {
            let db = open(&cli.database_url).await?;
            let summary = if demo { Some(corvid_store::demo::seed(&db, 42).await.context("demo data")?) } else { None };
            let state = corvid_server::AppState::new(db.clone(), jwt_secret).await?;
            let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("cannot listen on {bind}"))?;
            let url = format!("http://{}", listener.local_addr()?);
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
