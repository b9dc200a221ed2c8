//! `bookings.deleted_at`: `DELETE /bookings/{id}` is a soft delete. The row stays (its code keeps
//! the numbering gap-free, and the audit trail, ledger and unit events still name it), but the API
//! no longer serves a booking whose `deleted_at` is set. A booking cancelled by PATCH or by hold
//! expiry keeps a NULL here and stays readable.

use sea_orm_migration::prelude::*;

use crate::util::ts_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("bookings")
                    .add_column(ts_null("deleted_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("bookings")
                    .drop_column("deleted_at")
                    .to_owned(),
            )
            .await
    }
}
