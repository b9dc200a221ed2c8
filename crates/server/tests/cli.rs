//! The `kavling` binary's start-up failures: one line naming the variable, exit code 2, no panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn kavling(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kavling"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kavling");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_database_url_exits_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = kavling(
        &["migrate"],
        &[("DATABASE_URL", "mysql://nope")],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("kavling: DATABASE_URL"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn unreachable_redis_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/k.db?mode=rwc", dir.path().display());
    let (code, err) = kavling(
        &["serve"],
        &[
            ("DATABASE_URL", &db),
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("KAVLING_BIND", "127.0.0.1:0"),
            ("KAVLING_SEED_DEMO", "false"),
            ("RUST_LOG", "off"),
        ],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("REDIS_URL"), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn database_from_a_newer_version_is_refused_and_admin_create_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let db = format!("sqlite://{}?mode=rwc", path.display());
    let (code, err) = kavling(&["migrate"], &[("DATABASE_URL", &db)], dir.path());
    assert_eq!(code, 0, "{err}");
    let (code, err) = kavling(
        &[
            "admin",
            "create",
            "--email",
            "boss@kavling.local",
            "--password",
            "rahasia123",
        ],
        &[("DATABASE_URL", &db)],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, err) = kavling(
        &[
            "admin",
            "create",
            "--email",
            "boss@kavling.local",
            "--password",
            "short",
        ],
        &[("DATABASE_URL", &db)],
        dir.path(),
    );
    assert_eq!(code, 2, "{err}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let conn = sea_orm::Database::connect(&db).await.unwrap();
        conn.execute_unprepared("INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000001_from_the_future', 0)")
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    let (code, err) = kavling(&["migrate"], &[("DATABASE_URL", &db)], dir.path());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn a_bad_pool_size_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/k.db?mode=rwc", dir.path().display());
    for bad in ["0", "lots"] {
        let (code, err) = kavling(
            &["serve"],
            &[
                ("DATABASE_URL", &db),
                ("KAVLING_DB_POOL_SIZE", bad),
                ("KAVLING_BIND", "127.0.0.1:0"),
            ],
            dir.path(),
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("KAVLING_DB_POOL_SIZE"), "{err}");
        assert!(!err.contains("panicked"));
    }
}
