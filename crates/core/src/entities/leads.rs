//! The `leads` table.

use sea_orm::entity::prelude::*;

/// A row of `leads`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "leads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub unit_id: Uuid,
    pub buyer_id: Uuid,
    pub message: Option<String>,
    pub monthly_income: Option<i64>,
    pub down_payment: Option<i64>,
    pub buyer_score: i32,
    pub status: String,
    pub is_unlocked: bool,
    pub unlocked_by: Option<Uuid>,
    pub unlocked_at: Option<DateTimeUtc>,
    pub unlock_price: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
