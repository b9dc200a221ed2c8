//! The audit trail and idempotency keys.

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
                    .table("audit_log")
                    .col(id())
                    .col(uuid_null("actor_id"))
                    .col(string_len("action", 64))
                    .col(string_len("entity_type", 32))
                    .col(uuid("entity_id"))
                    .col(json_null("old_values"))
                    .col(json_null("new_values"))
                    .col(string_len_null("request_id", 64))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("audit_log", &["entity_type", "entity_id"], false))
            .await?;
        manager
            .create_index(index("audit_log", &["created_at"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("idempotency_keys")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string_len("idem_key", 200))
                    .col(string_len("scope", 64))
                    .col(string_len("request_hash", 64))
                    .col(integer_null("response_status"))
                    .col(text_null("response_body"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("idempotency_keys", &["user_id", "idem_key"], true))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["idempotency_keys", "audit_log"]).await
    }
}
