//! The `users` table.

use sea_orm::entity::prelude::*;

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub role: String,
    pub is_verified: bool,
    pub kyc_status: String,
    pub kyc_reason: Option<String>,
    pub company_name: Option<String>,
    pub kyc_id_card_path: Option<String>,
    pub kyc_selfie_path: Option<String>,
    pub kyc_office_id_card_path: Option<String>,
    pub kyc_submitted_at: Option<DateTimeUtc>,
    pub kyc_decided_at: Option<DateTimeUtc>,
    pub kyc_decided_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Version every valid token of this user carries; bumped to revoke them all.
    pub token_version: i64,
    /// Set while the account is disabled.
    pub disabled_at: Option<DateTimeUtc>,
    /// When `token_version` last changed (the instances' revocation catch-up reads it).
    pub tokens_changed_at: Option<DateTimeUtc>,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
