//! `projects.units_version`: the version of a project's unit list. Adding (and later removing
//! or renaming) units emits no status event, so without it an instance's realtime cache could not
//! tell that its list is old; the bus carries each change and the catch-up tick compares versions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("projects")
                    .add_column(big_integer("units_version").default(0).to_owned())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("projects")
                    .drop_column("units_version")
                    .to_owned(),
            )
            .await
    }
}
