//! Customers, bookings (with the one-live-booking-per-unit guarantee), booking counters, documents.

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
                    .table("customers")
                    .col(id())
                    .col(string_len("name", 200))
                    .col(string_len("phone", 20))
                    .col(string_len_null("email", 320))
                    // NIK and NPWP are personal data (UU PDP): AES-256-GCM ciphertext plus a keyed
                    // hash for uniqueness and lookup; the clear value is never stored.
                    .col(text_null("ktp_encrypted"))
                    .col(string_len_null("ktp_hash", 64))
                    .col(text_null("npwp_encrypted"))
                    .col(string_len_null("npwp_hash", 64))
                    .col(text_null("address"))
                    .col(uuid_null("created_by"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("customers", &["ktp_hash"], true))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("bookings")
                    .col(id())
                    .col(string_len_uniq("booking_code", 32))
                    .col(uuid("project_id"))
                    .col(uuid("unit_id"))
                    .col(uuid("customer_id"))
                    .col(uuid("marketing_id"))
                    .col(ts("booking_date"))
                    .col(enum_col("status"))
                    .col(enum_col("payment_status"))
                    .col(string_len_null("payment_method", 24))
                    .col(ts_null("payment_date"))
                    .col(big_integer("booking_fee"))
                    .col(text_null("notes"))
                    .col(ts("expires_at"))
                    .col(ts_null("cancelled_at"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .foreign_key(&mut fk(
                        "bookings",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "bookings",
                        "unit_id",
                        "units",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "bookings",
                        "customer_id",
                        "customers",
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "bookings",
                        "marketing_id",
                        "users",
                        ForeignKeyAction::Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        // At most one live booking per unit, even if application code is wrong.
        manager
            .create_index(
                Index::create()
                    .name("ux_bookings_live_unit")
                    .table("bookings")
                    .col("unit_id")
                    .unique()
                    .and_where(Expr::col("status").is_in(["PENDING_PAYMENT", "ACTIVE"]))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("bookings", &["status", "expires_at"], false))
            .await?;
        manager
            .create_index(index("bookings", &["marketing_id"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("booking_counters")
                    .col(integer("year").primary_key())
                    .col(big_integer("last_value").default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("booking_documents")
                    .col(id())
                    .col(uuid("booking_id"))
                    .col(string_len("document_type", 24))
                    .col(string_len("document_name", 200))
                    .col(string_len("storage_name", 64))
                    .col(string_len("content_type", 64))
                    .col(big_integer("size_bytes"))
                    .col(boolean("verified").default(false))
                    .col(uuid_null("verified_by"))
                    .col(ts_null("verified_date"))
                    .col(text_null("notes"))
                    .col(uuid("uploaded_by"))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "booking_documents",
                        "booking_id",
                        "bookings",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("booking_documents", &["booking_id"], false))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(
            manager,
            &[
                "booking_documents",
                "booking_counters",
                "bookings",
                "customers",
            ],
        )
        .await
    }
}
