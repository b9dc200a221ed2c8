//! The `payments` table.

use sea_orm::entity::prelude::*;

/// A row of `payments`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub invoice_id: Uuid,
    pub amount: i64,
    pub method: String,
    pub paid_at: DateTimeUtc,
    pub proof_storage_name: String,
    pub proof_content_type: String,
    pub proof_size_bytes: i64,
    pub proof_sha256: String,
    pub status: String,
    pub reason: Option<String>,
    pub created_by: Uuid,
    pub verified_by: Option<Uuid>,
    pub verified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
