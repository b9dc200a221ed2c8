//! The `notifier_cursors` table: per project, the last unit event turned into notifications.

use sea_orm::entity::prelude::*;

/// A row of `notifier_cursors`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notifier_cursors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    pub seq: i64,
}

/// No declared relations: joins are written explicitly where needed.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
