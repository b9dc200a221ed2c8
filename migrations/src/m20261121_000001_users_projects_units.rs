//! Users, projects (with siteplan and event seq), units and their event log.

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
                    .table("users")
                    .col(id())
                    .col(string_len_uniq("email", 320))
                    .col(string("password_hash"))
                    .col(string_len("full_name", 200))
                    .col(string_len_null("phone", 32))
                    .col(enum_col("role"))
                    .col(boolean("is_verified").default(false))
                    .col(enum_col("kyc_status").default("NONE"))
                    .col(text_null("kyc_reason"))
                    .col(string_len_null("company_name", 200))
                    .col(string_null("kyc_id_card_path"))
                    .col(string_null("kyc_selfie_path"))
                    .col(string_null("kyc_office_id_card_path"))
                    .col(ts_null("kyc_submitted_at"))
                    .col(ts_null("kyc_decided_at"))
                    .col(uuid_null("kyc_decided_by"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("projects")
                    .col(id())
                    .col(string_len("name", 200))
                    .col(text("description").default(""))
                    .col(string_len("location", 300).default(""))
                    .col(integer("hold_minutes").default(60))
                    .col(big_integer("lead_price").default(50_000))
                    // Optional per-project colour overrides: {"AVAILABLE":"#..", ...}.
                    .col(json_null("palette"))
                    .col(text_null("siteplan_source"))
                    .col(text_null("siteplan_sanitized"))
                    .col(integer("siteplan_version").default(0))
                    .col(ts_null("siteplan_updated_at"))
                    // The per-project realtime sequence: number of unit status changes so far.
                    .col(big_integer("event_seq").default(0))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("units")
                    .col(id())
                    .col(uuid("project_id"))
                    .col(string_len("block_number", 32))
                    .col(string_len("unit_type", 64))
                    .col(big_integer("price"))
                    .col(double_null("land_area"))
                    .col(double_null("building_area"))
                    .col(integer_null("bedrooms"))
                    .col(integer_null("bathrooms"))
                    .col(enum_col("status").default("AVAILABLE"))
                    .col(integer("version").default(0))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .foreign_key(&mut fk(
                        "units",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("units", &["project_id", "block_number"], true))
            .await?;
        manager
            .create_index(index("units", &["project_id", "status"], false))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("unit_events")
                    .col(id())
                    .col(uuid("project_id"))
                    .col(big_integer("seq"))
                    .col(uuid("unit_id"))
                    .col(string_len("block_number", 32))
                    .col(enum_col("old_status"))
                    .col(enum_col("new_status"))
                    .col(uuid_null("actor_id"))
                    .col(uuid_null("booking_id"))
                    .col(ts("at"))
                    .foreign_key(&mut fk(
                        "unit_events",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "unit_events",
                        "unit_id",
                        "units",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("unit_events", &["project_id", "seq"], true))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["unit_events", "units", "projects", "users"]).await
    }
}
