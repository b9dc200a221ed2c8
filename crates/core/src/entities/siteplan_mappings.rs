//! The `siteplan_mappings` table: an admin's manual element → unit choices per project.

use sea_orm::entity::prelude::*;

/// A row of `siteplan_mappings`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "siteplan_mappings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub element_id: String,
    pub unit_id: Uuid,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
