//! Payments after the booking: invoices (numbered per year like bookings), payments with their
//! proof files awaiting an admin's verification, and lead disputes with at most one open per lead.

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
                    .table("invoices")
                    .col(id())
                    .col(uuid("booking_id"))
                    .col(string_len_uniq("invoice_number", 32))
                    .col(integer("year"))
                    .col(enum_col("kind"))
                    .col(big_integer("amount"))
                    .col(big_integer("paid_amount").default(0))
                    .col(date("due_date"))
                    .col(enum_col("status"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .col(ts_null("paid_at"))
                    .foreign_key(&mut fk(
                        "invoices",
                        "booking_id",
                        "bookings",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("invoices", &["booking_id"], false))
            .await?;
        // The overdue sweep looks for UNPAID invoices by due date.
        manager
            .create_index(index("invoices", &["status", "due_date"], false))
            .await?;
        // At most one booking fee per booking, even if application code is wrong.
        manager
            .create_index(
                Index::create()
                    .name("ux_invoices_booking_fee")
                    .table("invoices")
                    .col("booking_id")
                    .unique()
                    .and_where(Expr::col("kind").eq("BOOKING_FEE"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("invoice_counters")
                    .col(integer("year").primary_key())
                    .col(big_integer("last_value").default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("payments")
                    .col(id())
                    .col(uuid("invoice_id"))
                    .col(big_integer("amount"))
                    .col(enum_col("method"))
                    .col(ts("paid_at"))
                    .col(string_len("proof_storage_name", 64))
                    .col(string_len("proof_content_type", 64))
                    .col(big_integer("proof_size_bytes"))
                    .col(string_len("proof_sha256", 64))
                    .col(enum_col("status"))
                    .col(text_null("reason"))
                    .col(uuid("created_by"))
                    .col(uuid_null("verified_by"))
                    .col(ts_null("verified_at"))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "payments",
                        "invoice_id",
                        "invoices",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("payments", &["invoice_id"], false))
            .await?;
        manager
            .create_index(index("payments", &["status"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("lead_disputes")
                    .col(id())
                    .col(uuid("lead_id"))
                    .col(uuid("marketing_id"))
                    .col(enum_col("reason"))
                    .col(text("note"))
                    .col(enum_col("status"))
                    .col(uuid_null("decided_by"))
                    .col(ts_null("decided_at"))
                    .col(text_null("decision_note"))
                    .col(uuid_null("refund_transaction_id").unique_key())
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "lead_disputes",
                        "lead_id",
                        "leads",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // One OPEN dispute per lead: concurrent filings are settled by this index.
        manager
            .create_index(
                Index::create()
                    .name("ux_lead_disputes_open_lead")
                    .table("lead_disputes")
                    .col("lead_id")
                    .unique()
                    .and_where(Expr::col("status").eq("OPEN"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("lead_disputes", &["marketing_id"], false))
            .await?;
        // A lead's price is refunded at most once, whatever the disputes.
        manager
            .create_index(
                Index::create()
                    .name("ux_wallet_transactions_refund_lead")
                    .table("wallet_transactions")
                    .col("lead_id")
                    .unique()
                    .and_where(Expr::col("tx_type").eq("REFUND"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_wallet_transactions_refund_lead")
                    .table("wallet_transactions")
                    .to_owned(),
            )
            .await?;
        drop_tables(
            manager,
            &["lead_disputes", "payments", "invoice_counters", "invoices"],
        )
        .await
    }
}
