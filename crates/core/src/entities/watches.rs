//! The `watches` table: a user watching a unit, or a project's units matching a filter.

use sea_orm::entity::prelude::*;

/// A row of `watches`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "watches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub project_id: Uuid,
    /// Set for a unit watch; None for a project watch with a filter.
    pub unit_id: Option<Uuid>,
    pub filter_type: Option<String>,
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    pub bedrooms_min: Option<i32>,
    pub created_at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
