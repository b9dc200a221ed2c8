//! Every migration applies up and down, and up again, on SQLite and (when a URL is given) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kavling_migration::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

const TABLES: &[&str] = &[
    "users",
    "projects",
    "units",
    "unit_events",
    "customers",
    "bookings",
    "booking_counters",
    "booking_documents",
    "wallets",
    "wallet_transactions",
    "leads",
    "lead_consents",
    "audit_log",
    "idempotency_keys",
];

async fn table_exists(db: &DatabaseConnection, table: &str) -> bool {
    let sql = match db.get_database_backend() {
        DbBackend::Sqlite => {
            format!("SELECT name FROM sqlite_master WHERE type='table' AND name='{table}'")
        }
        _ => format!(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name='{table}'"
        ),
    };
    !db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .is_empty()
}

async fn exercise(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("up");
    for t in TABLES {
        assert!(table_exists(db, t).await, "{t} missing after up");
    }
    Migrator::down(db, None).await.expect("down");
    for t in TABLES {
        assert!(!table_exists(db, t).await, "{t} left after down");
    }
    Migrator::up(db, None).await.expect("up again");
    assert_eq!(Migrator::get_pending_migrations(db).await.unwrap().len(), 0);
}

#[tokio::test]
async fn up_down_up_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::connect(format!("sqlite://{}/m.db?mode=rwc", dir.path().display()))
        .await
        .unwrap();
    exercise(&db).await;
}

#[tokio::test]
async fn up_down_up_on_postgres() {
    let Some(url) = std::env::var("KAVLING_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .ok()
        .filter(|u| u.starts_with("postgres"))
    else {
        eprintln!("skipped: set DATABASE_URL=postgres://... to run against PostgreSQL");
        return;
    };
    let admin_url = format!(
        "{}/postgres",
        url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url)
    );
    let admin = Database::connect(&admin_url).await.unwrap();
    let name = format!("kavling_mig_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap();
    let db = Database::connect(format!(
        "{}/{name}",
        url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&url)
    ))
    .await
    .unwrap();
    exercise(&db).await;
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
}
