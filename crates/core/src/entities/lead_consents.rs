//! The `lead_consents` table.

use sea_orm::entity::prelude::*;

/// A row of `lead_consents`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "lead_consents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub lead_id: Uuid,
    pub consent_version: String,
    pub ip: String,
    pub user_agent: String,
    pub consented_at: DateTimeUtc,
    pub proof_sha256: String,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
