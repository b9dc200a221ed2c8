//! Conversations between a buyer and the marketing user who unlocked their lead, their messages
//! (numbered per conversation from 1 without gaps, idempotent by the sender's `clientMessageId`),
//! and the rate-limit rows that hold across instances (one GCRA "theoretical arrival time" per key).

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
                    .table("conversations")
                    .col(id())
                    // One conversation per lead: the unlock's insert is a no-op the second time.
                    .col(uuid_uniq("lead_id"))
                    .col(uuid("buyer_id"))
                    .col(uuid("marketing_id"))
                    // The seq of the newest message: the next message takes last_seq + 1 by a
                    // conditional update, which also serializes writers of one conversation.
                    .col(big_integer("last_seq").default(0))
                    .col(ts_null("last_message_at"))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "conversations",
                        "lead_id",
                        "leads",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "conversations",
                        "buyer_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "conversations",
                        "marketing_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("conversations", &["buyer_id"], false))
            .await?;
        manager
            .create_index(index("conversations", &["marketing_id"], false))
            .await?;
        // Leads unlocked before conversations existed get theirs, under the lead's own id
        // (unique, and never a later UUID v7).
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO conversations (id, lead_id, buyer_id, marketing_id, last_seq, created_at) \
                 SELECT id, id, buyer_id, unlocked_by, 0, COALESCE(unlocked_at, updated_at) \
                 FROM leads WHERE is_unlocked = TRUE AND unlocked_by IS NOT NULL",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("messages")
                    .col(id())
                    .col(uuid("conversation_id"))
                    .col(big_integer("seq"))
                    .col(uuid("sender_id"))
                    .col(text("text"))
                    .col(string_len("client_message_id", 128))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "messages",
                        "conversation_id",
                        "conversations",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Gap-free numbering is a database fact, and replays read by (conversation, seq).
        manager
            .create_index(index("messages", &["conversation_id", "seq"], true))
            .await?;
        // A sender's clientMessageId names one message in a conversation, even under concurrency.
        manager
            .create_index(index(
                "messages",
                &["conversation_id", "sender_id", "client_message_id"],
                true,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("rate_limits")
                    .col(string_len("key", 96).primary_key())
                    // GCRA: the theoretical arrival time, in microseconds since the epoch.
                    .col(big_integer("tat"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["rate_limits", "messages", "conversations"]).await
    }
}
