//! `corvid import` and `corvid export`, run as the real binary against a fresh SQLite file
//! (and a fresh PostgreSQL schema when CORVID_TEST_POSTGRES_URL is set).

use corvid_core::SqlType;
use corvid_store::{Db, Q};
use std::path::Path;
use std::process::{Command, Output};

struct Env {
    url: String,
    data: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Env {
    fn corvid(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_corvid"))
            .args(args)
            .env("CORVID_DATABASE_URL", &self.url)
            .env("CORVID_DATA_DIR", self.data.path())
            .env("CORVID_LOG", "warn")
            .output()
            .expect("run corvid")
    }

    async fn count(&self, sql: &str) -> i64 {
        let db = Db::connect(&self.url).await.expect("db");
        let n = db.fetch_one(&Q::new(sql), &[SqlType::Int]).await.expect("count").and_then(|r| r.int(0)).unwrap_or(-1);
        db.close().await;
        n
    }
}

async fn envs() -> Vec<Env> {
    let dir = tempfile::tempdir().expect("dir");
    let mut out =
        vec![Env { url: format!("sqlite://{}", dir.path().join("cli.db").display()), data: tempfile::tempdir().expect("data"), _dir: dir }];
    if let Some(pg) = std::env::var("CORVID_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
        let schema = format!("cli_{}", uuid::Uuid::now_v7().simple());
        let admin = Db::connect(&pg).await.expect("postgres");
        admin.execute(&Q::new(format!("CREATE SCHEMA {schema}"))).await.expect("schema");
        admin.close().await;
        let sep = if pg.contains('?') { '&' } else { '?' };
        out.push(Env {
            url: format!("{pg}{sep}options=-c%20search_path%3D{schema}"),
            data: tempfile::tempdir().expect("data"),
            _dir: tempfile::tempdir().expect("dir"),
        });
    }
    out
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn company(env: &Env, name: &str, email: &str) -> String {
    let o = env.corvid(&["admin", "create-company", "--name", name, "--admin-email", email, "--admin-password", "long enough password"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    out.split('(').nth(1).and_then(|s| s.split(')').next()).expect("company id").to_string()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write");
    p.display().to_string()
}

#[tokio::test]
async fn import_and_export_through_the_binary() {
    for env in envs().await {
        let cid = company(&env, "Cli Co", "admin@cli.test");
        let files = tempfile::tempdir().expect("files");
        let mut csv = String::from("First Name,Surname,E-mail,Mobile,Lead Source\n");
        for i in 0..1200 {
            csv.push_str(&format!("Cli{i},Person{i},cli{i}@example.in,98765{i:05},Website form\n"));
        }
        csv.push_str("Formula,=HYPERLINK(\"x\"),formula@example.in,,Referral\n");
        csv.push_str("Bad,Row,not-an-email,,Referral\n");
        let file = write(files.path(), "leads.csv", &csv);
        let errors_out = files.path().join("failed.csv").display().to_string();

        let o = env.corvid(&[
            "import",
            "--company",
            &cid,
            "--object",
            "leads",
            &file,
            "--default",
            "campaign=CLI 2026",
            "--errors-out",
            &errors_out,
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        assert!(out.contains("created      1201") && out.contains("failed          1"), "{out}");
        assert!(out.contains("row 1203: email is not a valid email address"), "{out}");
        assert!(err.contains("1202 of 1202 rows (100 %)"), "progress line: {err}");
        assert_eq!(env.count("SELECT COUNT(*) FROM leads").await, 1201);
        assert_eq!(env.count("SELECT COUNT(*) FROM leads WHERE campaign = 'CLI 2026'").await, 1201);
        let failed = std::fs::read_to_string(&errors_out).expect("errors csv");
        assert!(failed.starts_with("row,errors,First Name") && failed.contains("not-an-email"), "{failed}");
        assert_eq!(std::fs::read_dir(env.data.path().join("imports")).map(|d| d.count()).unwrap_or(0), 0, "the copy is removed");

        // The same command again imports nothing twice.
        let o = env.corvid(&["import", "--company", &cid, "--object", "leads", &file, "--default", "campaign=CLI 2026"]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        assert!(err.contains("already imported"), "{err}");
        assert_eq!(env.count("SELECT COUNT(*) FROM leads").await, 1201);
        assert_eq!(env.count("SELECT COUNT(*) FROM imports").await, 1);

        // A mapping file by heading, and the update policy.
        let upd = write(files.path(), "titles.csv", "Mail,Position\ncli7@example.in,CTO\n");
        let mapping = write(files.path(), "mapping.json", r#"{"mail": "email", "Position": "job_title"}"#);
        let o =
            env.corvid(&["import", "--company", &cid, "--object", "leads", &upd, "--mapping", &mapping, "--duplicate-policy", "update"]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        assert!(out.contains("updated         1"), "{out}");
        assert_eq!(env.count("SELECT COUNT(*) FROM leads WHERE job_title = 'CTO' AND version = 2").await, 1);

        // Export with a filter, to a file; formulas are neutralised.
        let out_csv = files.path().join("export.csv");
        let o = env.corvid(&[
            "export",
            "--company",
            &cid,
            "--object",
            "leads",
            "--filter",
            "email=formula@example.in",
            "--fields",
            "first_name,last_name,email",
            "--out",
            &out_csv.display().to_string(),
        ]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        let exported = std::fs::read_to_string(&out_csv).expect("export");
        let lines: Vec<&str> = exported.lines().collect();
        assert_eq!(lines.len(), 2, "{exported}");
        assert_eq!(lines[0], "id,first_name,last_name,email");
        assert!(lines[1].ends_with(",Formula,\"'=HYPERLINK(\"\"x\"\")\",formula@example.in"), "{exported}");
        // Everything, to standard output; and XLSX.
        let o = env.corvid(&["export", "--company", &cid, "--object", "leads", "--sort", "last_name"]);
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1202);
        let xlsx = files.path().join("leads.xlsx");
        let o = env.corvid(&[
            "export",
            "--company",
            &cid,
            "--object",
            "leads",
            "--format",
            "xlsx",
            "--filter",
            "created_at[gte]=2000-01-01",
            "--out",
            &xlsx.display().to_string(),
        ]);
        assert!(o.status.success(), "{:?}", text(&o));
        assert!(std::fs::read(&xlsx).expect("xlsx").starts_with(b"PK\x03\x04"));

        // Refusals: clear messages, nothing written.
        let before = env.count("SELECT COUNT(*) FROM leads").await;
        let empty = write(files.path(), "empty.csv", "");
        let bad_map = write(files.path(), "bad.json", r#"["nope"]"#);
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["import", "--company", &cid, "--object", "leads", &empty], "the file is empty"),
            (vec!["import", "--company", &cid, "--object", "widgets", &file], "is not an object"),
            (vec!["import", "--company", &cid, "--object", "leads", &upd, "--mapping", &bad_map], "the mapping does not fit"),
            (vec!["import", "--company", &cid, "--object", "leads", &upd, "--as", "nobody@cli.test"], "there is no user"),
            (vec!["import", "--company", &cid, "--object", "leads", &upd, "--duplicate-policy", "merge"], "skip, update or create"),
            (vec!["import", "--company", &cid, "--object", "leads", &upd, "--default", "source=pigeon"], "defaults.source"),
            (vec!["import", "--company", "00000000-0000-0000-0000-000000000000", "--object", "leads", &upd], "there is no company"),
            (vec!["export", "--company", &cid, "--object", "leads", "--filter", "shoe=1"], "shoe"),
            (vec!["export", "--company", &cid, "--object", "leads", "--format", "xlsx"], "--out"),
        ];
        for (args, want) in cases {
            let o = env.corvid(&args);
            let (out, err) = text(&o);
            assert!(!o.status.success(), "{args:?}: {out}{err}");
            assert!(err.contains(want), "{args:?}: {err}");
        }
        // Another company's admin cannot act in this one.
        company(&env, "Other Cli Co", "other@cli.test");
        let o = env.corvid(&["import", "--company", &cid, "--object", "leads", &upd, "--as", "other@cli.test"]);
        assert!(!o.status.success());
        assert!(text(&o).1.contains("not an active member"));
        assert_eq!(env.count("SELECT COUNT(*) FROM leads").await, before);
    }
}

#[tokio::test]
async fn an_interrupted_cli_import_resumes_when_run_again() {
    for env in envs().await {
        let cid = company(&env, "Resume Cli Co", "admin@resume-cli.test");
        let files = tempfile::tempdir().expect("files");
        let mut csv = String::from("Last Name,Email\n");
        for i in 0..1100 {
            csv.push_str(&format!("R{i},r{i}@example.in\n"));
        }
        let file = write(files.path(), "r.csv", &csv);
        let key = "resume-test-key";
        // A CLI import that died after its first batch: recorded with the key, its copy in
        // the data directory, 500 rows committed (those leads are not in this database, so
        // re-importing them would show).
        let db = Db::connect(&env.url).await.expect("db");
        let company_id = uuid::Uuid::parse_str(&cid).expect("cid");
        let admin = corvid_store::companies::members(&db, company_id).await.expect("members").remove(0);
        let tenant = corvid_store::Tenant {
            company_id,
            user_id: admin.user_id,
            role: admin.role,
            calling_code: "91".into(),
            audit: corvid_store::audit::AuditCtx { company_id, ..Default::default() },
            access: corvid_store::access::Access::unrestricted(admin.user_id),
        };
        let stored = env.data.path().join("imports").join("interrupted");
        std::fs::create_dir_all(stored.parent().expect("dir")).expect("dir");
        std::fs::copy(&file, &stored).expect("copy");
        let leads = corvid_core::object("leads").expect("leads");
        let sniffed = corvid_store::import::open(&stored, "r.csv").expect("open").sniffed;
        let mapping = corvid_store::import::suggest_mapping(leads, &[], &sniffed.headers);
        let (imp, _) = corvid_store::import::create(
            &db,
            &tenant,
            corvid_store::import::NewImport {
                object: leads,
                file_name: "r.csv",
                stored_path: &stored,
                sniffed: &sniffed,
                mapping: &mapping,
                options: &corvid_store::import::Options::default(),
                idempotency_key: Some(key),
            },
        )
        .await
        .expect("create");
        db.execute(&Q::new(format!("UPDATE imports SET state = 'running', rows_done = 500, created_count = 500 WHERE id = '{}'", imp.id)))
            .await
            .expect("simulate");
        db.close().await;
        let o = env.corvid(&["import", "--company", &cid, "--object", "leads", &file, "--idempotency-key", key]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}{err}");
        assert!(err.contains("Resuming import") && err.contains("after row 500"), "{err}");
        assert!(out.contains("created      1100"), "500 before the interruption and 600 now: {out}");
        assert_eq!(env.count("SELECT COUNT(*) FROM leads").await, 600, "rows before the committed mark are not imported again");
        assert_eq!(env.count("SELECT COUNT(*) FROM leads WHERE email = 'r500@example.in'").await, 1);
        assert_eq!(env.count("SELECT COUNT(*) FROM leads WHERE email = 'r499@example.in'").await, 0);
        assert!(!stored.exists(), "the copy is removed at the end");
    }
}
