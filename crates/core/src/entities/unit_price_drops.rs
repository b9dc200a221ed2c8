//! The `unit_price_drops` table: price drops waiting for the notifier (an outbox).

use sea_orm::entity::prelude::*;

/// A row of `unit_price_drops`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "unit_price_drops")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub unit_id: Uuid,
    pub old_price: i64,
    pub new_price: i64,
    pub at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
