//! Kavling schema migrations. Runs on SQLite and PostgreSQL alike, so it sticks to portable
//! types: UUIDs, `i64` rupiah, UTC timestamps, string enums, partial unique indexes.
//! It never imports the entities: the schema is described here on its own.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_users_projects_units;
mod m20261121_000002_bookings;
mod m20261121_000003_wallet_leads;
mod m20261121_000004_audit_idempotency;
mod m20261203_000001_accounts;
mod m20261203_000002_siteplan_mappings;
mod m20261203_000003_payments;
mod m20261203_000004_units_version;
mod m20261205_000001_notifications;
mod m20261205_000002_conversations;
mod m20261205_000003_bookings_deleted_at;

/// The ordered list of Kavling migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_users_projects_units::Migration),
            Box::new(m20261121_000002_bookings::Migration),
            Box::new(m20261121_000003_wallet_leads::Migration),
            Box::new(m20261121_000004_audit_idempotency::Migration),
            Box::new(m20261203_000001_accounts::Migration),
            Box::new(m20261203_000002_siteplan_mappings::Migration),
            Box::new(m20261203_000003_payments::Migration),
            Box::new(m20261203_000004_units_version::Migration),
            Box::new(m20261205_000001_notifications::Migration),
            Box::new(m20261205_000002_conversations::Migration),
            Box::new(m20261205_000003_bookings_deleted_at::Migration),
        ]
    }
}

/// Names of every migration this build knows, oldest first.
pub fn known_migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// Shared helpers for the migration files.
pub(crate) mod util {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    /// Length of the string columns that hold enum values.
    pub const ENUM_LEN: u32 = 24;

    /// A UUID primary key column named `id`.
    pub fn id() -> ColumnDef {
        pk_uuid("id")
    }

    /// A non-null UTC timestamp column.
    pub fn ts(name: &'static str) -> ColumnDef {
        timestamp_with_time_zone(name)
    }

    /// A nullable UTC timestamp column.
    pub fn ts_null(name: &'static str) -> ColumnDef {
        timestamp_with_time_zone_null(name)
    }

    /// A short string column holding an enum value.
    pub fn enum_col(name: &'static str) -> ColumnDef {
        string_len(name, ENUM_LEN)
    }

    /// A foreign key from `table.column` to `target.id`.
    pub fn fk(
        table: &'static str,
        column: &'static str,
        target: &'static str,
        on_delete: ForeignKeyAction,
    ) -> ForeignKeyCreateStatement {
        ForeignKey::create()
            .name(format!("fk_{table}_{column}"))
            .from(table, column)
            .to(target, "id")
            .on_delete(on_delete)
            .to_owned()
    }

    /// A (possibly unique) index on the given columns.
    pub fn index(table: &'static str, cols: &[&'static str], unique: bool) -> IndexCreateStatement {
        let mut idx = Index::create();
        idx.name(format!(
            "{}_{}_{}",
            if unique { "ux" } else { "ix" },
            table,
            cols.join("_")
        ))
        .table(table);
        for c in cols {
            idx.col(*c);
        }
        if unique {
            idx.unique();
        }
        idx.to_owned()
    }

    /// Drops the given tables, newest first.
    pub async fn drop_tables(
        manager: &SchemaManager<'_>,
        tables: &[&'static str],
    ) -> Result<(), DbErr> {
        for t in tables {
            manager
                .drop_table(Table::drop().table(*t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
