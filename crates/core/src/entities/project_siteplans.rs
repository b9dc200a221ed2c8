//! The siteplan columns of the `projects` table, kept apart so lists never load megabytes of SVG.

use sea_orm::entity::prelude::*;

/// A row of `projects`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub siteplan_source: Option<String>,
    pub siteplan_sanitized: Option<String>,
    pub siteplan_version: i32,
    pub siteplan_updated_at: Option<DateTimeUtc>,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
