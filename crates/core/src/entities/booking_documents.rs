//! The `booking_documents` table.

use sea_orm::entity::prelude::*;

/// A row of `booking_documents`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "booking_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub booking_id: Uuid,
    pub document_type: String,
    pub document_name: String,
    pub storage_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub verified: bool,
    pub verified_by: Option<Uuid>,
    pub verified_date: Option<DateTimeUtc>,
    pub notes: Option<String>,
    pub uploaded_by: Uuid,
    pub created_at: DateTimeUtc,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
