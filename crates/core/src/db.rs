//! Connecting, configuring and migrating the database (SQLite or PostgreSQL).

use std::time::Duration;

use kavling_migration::{Migrator, MigratorTrait, known_migration_names};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    DbBackend, DbErr, IsolationLevel, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The URL is not a supported database URL.
    #[error("DATABASE_URL is not a sqlite:// or postgres:// URL: {0}")]
    BadUrl(String),
    /// The database did not answer.
    #[error("cannot connect to the database at DATABASE_URL: {0}")]
    Connect(DbErr),
    /// The database holds migrations this build does not know.
    #[error(
        "the database was created by a newer Kavling (unknown migrations: {0}); refusing to start: upgrade Kavling or point DATABASE_URL elsewhere"
    )]
    TooNew(String),
    /// A migration failed.
    #[error("migrating the database failed: {0}")]
    Migrate(DbErr),
}

/// PostgreSQL connections a pool opens as soon as it is created, on the runtime that creates it.
///
/// A socket's readiness is driven by the runtime it was opened on. The server opens its pool on
/// the main runtime, which is otherwise quiet. A connection opened later, on demand, belongs to an
/// HTTP worker, and a worker busy with a 10,000-socket fan-out polls its I/O only between batches of
/// tasks and then queues the woken handler behind the remaining sessions. Every round trip of a
/// `PATCH` (the commit too) then waits for the fan-out, and so does the publish. Measured at 10,000
/// subscribers on PostgreSQL (docs/BENCHMARKS.md): p99 543 ms with one connection opened up front,
/// 337 ms with all of them.
/// A few are enough for the event path; a test run with many pools must not exhaust the server.
const EAGER_PG_CONNECTIONS: u32 = 8;

/// Opens a pool. SQLite files get WAL, NORMAL sync, a busy timeout and foreign keys;
/// their parent directory is created.
pub async fn connect(
    url: &str,
    max_connections: Option<u32>,
) -> Result<DatabaseConnection, DbSetupError> {
    let is_sqlite = url.starts_with("sqlite:");
    let is_pg = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !is_sqlite && !is_pg {
        return Err(DbSetupError::BadUrl(redact(url)));
    }
    if is_sqlite && let Some(dir) = sqlite_parent_dir(url) {
        {
            std::fs::create_dir_all(&dir).map_err(|e| {
                DbSetupError::Connect(DbErr::Custom(format!(
                    "cannot create {}: {e}",
                    dir.display()
                )))
            })?;
        }
    }
    let max = max_connections.unwrap_or(if is_sqlite { 8 } else { 32 });
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(max)
        .min_connections(if is_sqlite {
            1
        } else {
            max.min(EAGER_PG_CONNECTIONS)
        })
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(opts).await.map_err(DbSetupError::Connect)
}

fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
}

/// Hides a password in a database URL for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..s], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Refuses a database that has migrations this build does not know (created by a newer version).
pub async fn check_not_newer(db: &DatabaseConnection) -> Result<(), DbSetupError> {
    let stmt = Statement::from_string(
        db.get_database_backend(),
        "SELECT version FROM seaql_migrations",
    );
    // No migrations table yet means a fresh database.
    let Ok(rows) = db.query_all_raw(stmt).await else {
        return Ok(());
    };
    let known = known_migration_names();
    let unknown: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "version").ok())
        .filter(|v| !known.contains(v))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(DbSetupError::TooNew(unknown.join(", ")))
    }
}

/// Checks the version, then applies pending migrations.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbSetupError> {
    check_not_newer(db).await?;
    Migrator::up(db, None).await.map_err(DbSetupError::Migrate)
}

/// Begins a transaction that will write. On SQLite it starts as a write (`BEGIN IMMEDIATE`) so a
/// read-then-write transaction cannot fail with SQLITE_BUSY half-way; PostgreSQL ignores the mode.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let mut options = TransactionOptions::default();
    if db.get_database_backend() == DbBackend::Sqlite {
        options.sqlite_transaction_mode = Some(SqliteTransactionMode::Immediate);
    }
    db.begin_with_options(options).await
}

/// Begins a read-only transaction that sees one consistent snapshot (REPEATABLE READ on
/// PostgreSQL; a SQLite read transaction in WAL mode already is one).
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.begin_with_config(
            Some(IsolationLevel::RepeatableRead),
            Some(AccessMode::ReadOnly),
        )
        .await
    } else {
        db.begin().await
    }
}

/// Answers whether the database responds (for `/readyz`).
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite://data/k.db"), "sqlite://data/k.db");
    }

    #[test]
    fn sqlite_dirs() {
        assert_eq!(
            sqlite_parent_dir("sqlite://data/kavling.db?mode=rwc"),
            Some(std::path::PathBuf::from("data"))
        );
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
    }
}
