//! The `notifications` table: a user's inbox, `seq` per user from 1 without gaps.

use sea_orm::entity::prelude::*;

/// A row of `notifications`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub seq: i64,
    pub kind: String,
    pub title: String,
    pub body: String,
    /// JSON text.
    pub data: String,
    pub created_at: DateTimeUtc,
    pub read_at: Option<DateTimeUtc>,
    /// Unique when set: a derived notification is written once per (change, user).
    pub dedup_key: Option<String>,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
