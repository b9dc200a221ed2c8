//! Wallets with an exact signed ledger, leads and their immutable consent proofs.

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
                    .table("wallets")
                    .col(id())
                    .col(uuid_uniq("user_id"))
                    .col(
                        big_integer("balance")
                            .default(0)
                            .check(Expr::col("balance").gte(0)),
                    )
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .foreign_key(&mut fk(
                        "wallets",
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
                    .table("wallet_transactions")
                    .col(id())
                    .col(uuid("wallet_id"))
                    .col(big_integer("amount"))
                    .col(enum_col("tx_type"))
                    .col(big_integer("balance_after").check(Expr::col("balance_after").gte(0)))
                    .col(string_len("description", 300))
                    .col(string_len_null("reference", 200))
                    .col(uuid_null("lead_id"))
                    .col(uuid_null("actor_id"))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "wallet_transactions",
                        "wallet_id",
                        "wallets",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "wallet_transactions",
                &["wallet_id", "created_at"],
                false,
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("leads")
                    .col(id())
                    .col(uuid("project_id"))
                    .col(uuid("unit_id"))
                    .col(uuid("buyer_id"))
                    .col(text_null("message"))
                    .col(big_integer_null("monthly_income"))
                    .col(big_integer_null("down_payment"))
                    .col(integer("buyer_score").default(0))
                    .col(enum_col("status").default("OPEN"))
                    .col(boolean("is_unlocked").default(false))
                    .col(uuid_null("unlocked_by"))
                    .col(ts_null("unlocked_at"))
                    .col(big_integer_null("unlock_price"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .foreign_key(&mut fk(
                        "leads",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "leads",
                        "unit_id",
                        "units",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "leads",
                        "buyer_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // One open lead per buyer and unit.
        manager
            .create_index(
                Index::create()
                    .name("ux_leads_open_buyer_unit")
                    .table("leads")
                    .col("buyer_id")
                    .col("unit_id")
                    .unique()
                    .and_where(Expr::col("status").eq("OPEN"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("lead_consents")
                    .col(id())
                    .col(uuid_uniq("lead_id"))
                    .col(string_len("consent_version", 32))
                    .col(string_len("ip", 64))
                    .col(string_len("user_agent", 512))
                    .col(ts("consented_at"))
                    .col(string_len("proof_sha256", 64))
                    .foreign_key(&mut fk(
                        "lead_consents",
                        "lead_id",
                        "leads",
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
            &["lead_consents", "leads", "wallet_transactions", "wallets"],
        )
        .await
    }
}
