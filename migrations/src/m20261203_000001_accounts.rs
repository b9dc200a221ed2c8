//! Accounts: per-user token revocation and disabling.
//!
//! - `token_version`: the version every valid access token of the user carries; a password change
//!   or a disable increments it, which revokes every token issued before.
//! - `disabled_at`: set while an admin has disabled the account.
//! - `tokens_changed_at`: when `token_version` last changed, indexed, so each instance's periodic
//!   catch-up finds recent revocations with one range scan.
//!
//! SQLite takes one change per ALTER, so each column is its own statement.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            big_integer("token_version").default(0).to_owned(),
            ts_null("disabled_at"),
            ts_null("tokens_changed_at"),
        ];
        for column in columns {
            manager
                .alter_table(Table::alter().table("users").add_column(column).to_owned())
                .await?;
        }
        manager
            .create_index(index("users", &["tokens_changed_at"], false))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_users_tokens_changed_at")
                    .table("users")
                    .to_owned(),
            )
            .await?;
        for column in ["tokens_changed_at", "disabled_at", "token_version"] {
            manager
                .alter_table(Table::alter().table("users").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
