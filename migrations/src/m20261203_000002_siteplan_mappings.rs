//! Manual siteplan mappings: an admin's choice of which drawing element is which unit, applied on
//! top of automatic matching and kept across re-uploads wherever the element id survives.

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
                    .table("siteplan_mappings")
                    .col(id())
                    .col(uuid("project_id"))
                    .col(string_len("element_id", 200))
                    // The unit, not its block number: a renamed unit keeps its shapes.
                    .col(uuid("unit_id"))
                    .col(uuid_null("created_by"))
                    .col(ts("created_at"))
                    .foreign_key(&mut fk(
                        "siteplan_mappings",
                        "project_id",
                        "projects",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "siteplan_mappings",
                        "unit_id",
                        "units",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // One manual choice per element of a project's drawing.
        manager
            .create_index(index(
                "siteplan_mappings",
                &["project_id", "element_id"],
                true,
            ))
            .await?;
        manager
            .create_index(index("siteplan_mappings", &["unit_id"], false))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["siteplan_mappings"]).await
    }
}
