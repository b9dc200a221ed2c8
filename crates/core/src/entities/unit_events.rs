//! The `unit_events` table.

use sea_orm::entity::prelude::*;

/// A row of `unit_events`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "unit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub seq: i64,
    pub unit_id: Uuid,
    pub block_number: String,
    pub old_status: String,
    pub new_status: String,
    pub actor_id: Option<Uuid>,
    pub booking_id: Option<Uuid>,
    pub at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
