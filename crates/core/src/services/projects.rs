//! Projects: housing developments, each with its siteplan, units, hold time and event sequence.

use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::Palette;
use crate::entities::projects;
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};

/// Default hold time of a booking awaiting payment.
pub const DEFAULT_HOLD_MINUTES: i32 = 60;
/// Default price of unlocking one lead, in rupiah.
pub const DEFAULT_LEAD_PRICE: i64 = 50_000;

/// A project as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Location.
    pub location: String,
    /// Minutes a PENDING_PAYMENT booking holds its unit.
    pub hold_minutes: i32,
    /// Rupiah to unlock one lead.
    pub lead_price: i64,
    /// Colour overrides by unit status.
    pub palette: Palette,
    /// Current realtime sequence number.
    pub seq: i64,
    /// Siteplan version (0 = none uploaded).
    pub siteplan_version: i32,
    /// When the siteplan was last replaced.
    pub siteplan_updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Updated.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<projects::Model> for ProjectView {
    fn from(p: projects::Model) -> Self {
        ProjectView {
            id: p.id,
            name: p.name,
            description: p.description,
            location: p.location,
            hold_minutes: p.hold_minutes,
            lead_price: p.lead_price,
            palette: Palette::from_json(p.palette.as_ref()),
            seq: p.event_seq,
            siteplan_version: p.siteplan_version,
            siteplan_updated_at: p.siteplan_updated_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `POST /projects` input.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewProject {
    /// Name (required).
    #[schema(
        pattern = r"[^\s\x85]",
        max_length = 200,
        example = "Griya Asri Residence"
    )]
    pub name: String,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: String,
    /// Location.
    #[serde(default)]
    #[schema(max_length = 300)]
    pub location: String,
    /// Hold minutes (default 60, 1 to 10080).
    #[schema(minimum = 1, maximum = 10080)]
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i32_whole")]
    pub hold_minutes: Option<i32>,
    /// Lead price in rupiah (default 50,000).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i64_whole")]
    pub lead_price: Option<i64>,
    /// Colour overrides by unit status.
    pub palette: Option<Palette>,
}

/// The whitelist of `GET /projects`.
pub const PROJECT_LIST: ListSpec<projects::Column> = ListSpec {
    fields: &[
        ListField {
            name: "name",
            column: projects::Column::Name,
            kind: FieldKind::Text,
        },
        ListField {
            name: "location",
            column: projects::Column::Location,
            kind: FieldKind::Text,
        },
        ListField {
            name: "createdAt",
            column: projects::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(projects::Column::CreatedAt, false)],
    tiebreak: projects::Column::Id,
};

impl Services {
    /// Creates a project (admin).
    pub async fn create_project(
        &self,
        actor: &ActorRef,
        input: NewProject,
    ) -> CoreResult<ProjectView> {
        let mut errors = Vec::new();
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(FieldError::new(
                "name",
                "required",
                "enter a name of at most 200 characters",
            ));
        }
        if input.description.chars().count() > 10_000 {
            errors.push(FieldError::new(
                "description",
                "too_long",
                "at most 10,000 characters",
            ));
        }
        if input.location.chars().count() > 300 {
            errors.push(FieldError::new(
                "location",
                "too_long",
                "at most 300 characters",
            ));
        }
        let hold = input.hold_minutes.unwrap_or(DEFAULT_HOLD_MINUTES);
        if !(1..=10_080).contains(&hold) {
            errors.push(FieldError::new(
                "holdMinutes",
                "out_of_range",
                "between 1 and 10080 minutes",
            ));
        }
        let lead_price = input.lead_price.unwrap_or(DEFAULT_LEAD_PRICE);
        if !(0..=1_000_000_000).contains(&lead_price) {
            errors.push(FieldError::new(
                "leadPrice",
                "out_of_range",
                "between 0 and 1,000,000,000 rupiah",
            ));
        }
        let palette = input.palette.unwrap_or_default();
        if !palette.is_valid() {
            errors.push(FieldError::new(
                "palette",
                "invalid_palette",
                "palette colours are #rrggbb",
            ));
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let now = self.clock.now();
        let txn = begin_write(&self.db).await?;
        let project = projects::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name),
            description: Set(input.description),
            location: Set(input.location),
            hold_minutes: Set(hold),
            lead_price: Set(lead_price),
            palette: Set(if palette.is_default() {
                None
            } else {
                serde_json::to_value(&palette).ok()
            }),
            siteplan_version: Set(0),
            siteplan_updated_at: Set(None),
            event_seq: Set(0),
            units_version: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "project.created",
                entity_type: "project",
                entity_id: project.id,
                old_values: None,
                new_values: Some(serde_json::json!({"name": project.name, "holdMinutes": hold})),
            },
        )
        .await?;
        txn.commit().await?;
        Ok(project.into())
    }

    /// Lists projects (public).
    pub async fn list_projects(&self, query: &str) -> CoreResult<Page<ProjectView>> {
        let q = ListQuery::parse(query, &PROJECT_LIST)?;
        Ok(q.fetch(projects::Entity::find(), &self.db)
            .await?
            .map(ProjectView::from))
    }

    /// Loads a project row.
    pub async fn project(&self, id: Uuid) -> CoreResult<projects::Model> {
        projects::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("project"))
    }
}
