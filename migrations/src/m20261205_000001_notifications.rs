//! Watches and notifications (contract v1.1 "Watching units, notifications, chat"):
//! - `notifications`: a user's inbox, `seq` per user from 1 without gaps (`UNIQUE(user_id, seq)`),
//!   and an optional `dedup_key` (unique) so a derived notification is written once per change;
//! - `notification_heads`: each user's last seq, incremented in the inserting transaction;
//! - `watches`: a unit, or a project with a filter, indexed by unit and by project;
//! - `notifier_cursors`: per project, the last `unit_events.seq` the notifier has turned into
//!   notifications (existing projects start at their current seq: no notifications for the past);
//! - `unit_price_drops`: price drops recorded in the change's transaction, deleted by the
//!   notifier in the transaction that writes their notifications.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(big_integer("seq"))
                    .col(enum_col("kind"))
                    .col(string_len("title", 200))
                    .col(text("body"))
                    .col(text("data"))
                    .col(ts("created_at"))
                    .col(ts_null("read_at"))
                    .col(string_len_null("dedup_key", 120).unique_key())
                    .foreign_key(&mut fk(
                        "notifications",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("notifications", &["user_id", "seq"], true))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("notification_heads")
                    .col(uuid("user_id").primary_key())
                    .col(big_integer("seq").default(0))
                    .foreign_key(&mut fk(
                        "notification_heads",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("watches")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(uuid("project_id"))
                    .col(uuid_null("unit_id"))
                    .col(string_len_null("filter_type", 64))
                    .col(big_integer_null("price_min"))
                    .col(big_integer_null("price_max"))
                    .col(integer_null("bedrooms_min"))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "watches",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "watches",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "watches",
                        "unit_id",
                        "units",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // The notifier finds a change's watchers by unit, and a project's filter watches by
        // (project_id, unit_id IS NULL); the list reads a user's own.
        manager
            .create_index(index("watches", &["unit_id"], false))
            .await?;
        manager
            .create_index(index("watches", &["project_id", "unit_id"], false))
            .await?;
        manager
            .create_index(index("watches", &["user_id"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("notifier_cursors")
                    .col(uuid("project_id").primary_key())
                    .col(big_integer("seq").default(0))
                    .foreign_key(&mut fk(
                        "notifier_cursors",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Changes committed before this release notify nobody: the cursors start at the head.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO notifier_cursors (project_id, seq) SELECT id, event_seq FROM projects",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("unit_price_drops")
                    .col(id())
                    .col(uuid("project_id"))
                    .col(uuid("unit_id"))
                    .col(big_integer("old_price"))
                    .col(big_integer("new_price"))
                    .col(ts("at"))
                    .foreign_key(&mut fk(
                        "unit_price_drops",
                        "unit_id",
                        "units",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "unit_price_drops",
                "notifier_cursors",
                "watches",
                "notification_heads",
                "notifications",
            ],
        )
        .await
    }
}
