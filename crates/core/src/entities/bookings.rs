//! The `bookings` table.

use sea_orm::entity::prelude::*;

/// A row of `bookings`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub booking_code: String,
    pub project_id: Uuid,
    pub unit_id: Uuid,
    pub customer_id: Uuid,
    pub marketing_id: Uuid,
    pub booking_date: DateTimeUtc,
    pub status: String,
    pub payment_status: String,
    pub payment_method: Option<String>,
    pub payment_date: Option<DateTimeUtc>,
    pub booking_fee: i64,
    pub notes: Option<String>,
    pub expires_at: DateTimeUtc,
    pub cancelled_at: Option<DateTimeUtc>,
    /// Set by `DELETE /bookings/{id}` (a soft delete): the API no longer serves the row.
    pub deleted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
