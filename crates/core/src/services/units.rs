//! Units: the houses of a project, their prices and their status, changed only by conditional
//! updates so that concurrent changes cannot both win.

use kavling_realtime::UnitsChanged;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::{BookingStatus, Palette, UnitStatus};
use crate::entities::{bookings, projects, units};
use crate::error::{CoreError, CoreResult, FieldError};
use crate::list::{FieldKind, ListField, ListQuery, ListSpec, Page};
use crate::services::watches::record_price_drop;
use crate::unit_changes::{UnitChange, record_unit_change, set_unit_status_returning};

/// Most units accepted in one create request.
pub const MAX_UNITS_PER_REQUEST: usize = 1000;

/// A unit as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitView {
    /// Id.
    pub id: Uuid,
    /// Project id.
    pub project_id: Uuid,
    /// Block number (`A12`).
    pub block_number: String,
    /// House type (`36/72`).
    #[serde(rename = "type")]
    pub unit_type: String,
    /// Price in rupiah.
    pub price: i64,
    /// Land area, m².
    pub land_area: Option<f64>,
    /// Building area, m².
    pub building_area: Option<f64>,
    /// Bedrooms.
    pub bedrooms: Option<i32>,
    /// Bathrooms.
    pub bathrooms: Option<i32>,
    /// Status.
    #[schema(value_type = crate::domain::UnitStatus)]
    pub status: String,
    /// Colour of the status (project palette).
    pub color: String,
    /// Optimistic version, bumped on every change.
    pub version: i32,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Updated.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl UnitView {
    /// A view of a unit under a palette.
    pub fn new(u: units::Model, palette: &Palette) -> Self {
        let color = palette.color(&u.status);
        Self::with_color(u, color)
    }

    /// A view of a unit whose colour is already known (from its event).
    pub fn with_color(u: units::Model, color: String) -> Self {
        UnitView {
            color,
            id: u.id,
            project_id: u.project_id,
            block_number: u.block_number,
            unit_type: u.unit_type,
            price: u.price,
            land_area: u.land_area,
            building_area: u.building_area,
            bedrooms: u.bedrooms,
            bathrooms: u.bathrooms,
            status: u.status,
            version: u.version,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// One unit to create.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewUnit {
    /// Block number, unique in the project.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 32,
        example = "A12"
    )]
    pub block_number: String,
    /// House type.
    #[serde(rename = "type")]
    #[schema(pattern = r"[^\s\x85]", max_length = 64, example = "36/72")]
    pub unit_type: String,
    /// Price in rupiah.
    #[schema(minimum = 0, example = 450_000_000)]
    #[serde(deserialize_with = "crate::whole_numbers::i64_whole")]
    pub price: i64,
    /// Land area, m².
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub land_area: Option<f64>,
    /// Building area, m².
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub building_area: Option<f64>,
    /// Bedrooms.
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i32_whole")]
    pub bedrooms: Option<i32>,
    /// Bathrooms.
    #[schema(minimum = 0, maximum = 100)]
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i32_whole")]
    pub bathrooms: Option<i32>,
}

/// An array of 1 to [`MAX_UNITS_PER_REQUEST`] new units.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct UnitBatch(pub Vec<NewUnit>);

// Written by hand: the derive cannot put item bounds on a newtype's array.
impl utoipa::PartialSchema for UnitBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            .items(utoipa::openapi::Ref::from_schema_name("NewUnit"))
            .min_items(Some(1))
            .max_items(Some(MAX_UNITS_PER_REQUEST))
            .into()
    }
}

impl utoipa::ToSchema for UnitBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "NewUnit".into(),
            <NewUnit as utoipa::PartialSchema>::schema(),
        ));
        <NewUnit as utoipa::ToSchema>::schemas(schemas);
    }
}

/// `POST /projects/{id}/units` body: one unit or an array.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NewUnits {
    /// Many.
    Many(UnitBatch),
    /// One.
    One(NewUnit),
}

/// `POST /projects/{id}/units` answer: the created unit, or all of them when an array was sent.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CreatedUnits {
    /// Many.
    Many(Vec<UnitView>),
    /// One.
    One(UnitView),
}

/// `PATCH /units/{id}` input.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnitPatch {
    /// New status.
    pub status: Option<UnitStatus>,
    /// New price.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::whole_numbers::opt_i64_whole")]
    pub price: Option<i64>,
    /// New type.
    #[serde(rename = "type")]
    #[schema(pattern = r"[^\s\x85]", max_length = 64)]
    pub unit_type: Option<String>,
    /// Compare-and-set: change only if the unit still has this status.
    pub expected_status: Option<UnitStatus>,
}

/// One unit in an availability snapshot: the hub's `UnitState` with its OpenAPI schema.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityUnit {
    /// Unit id.
    pub unit_id: Uuid,
    /// Block number.
    pub block_number: String,
    /// Status.
    #[schema(value_type = crate::domain::UnitStatus)]
    pub status: String,
    /// Colour.
    pub color: String,
}

impl From<kavling_realtime::UnitState> for AvailabilityUnit {
    fn from(u: kavling_realtime::UnitState) -> Self {
        AvailabilityUnit {
            unit_id: u.unit_id,
            block_number: u.block_number,
            status: u.status,
            color: u.color,
        }
    }
}

/// `GET /projects/{id}/availability`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// Project id.
    pub project_id: Uuid,
    /// The seq these statuses are current as of.
    pub seq: i64,
    /// Every unit.
    pub units: Vec<AvailabilityUnit>,
}

/// The whitelist of `GET /projects/{id}/units`.
pub const UNIT_LIST: ListSpec<units::Column> = ListSpec {
    fields: &[
        ListField {
            name: "status",
            column: units::Column::Status,
            kind: FieldKind::Enum(UnitStatus::ALL),
        },
        ListField {
            name: "type",
            column: units::Column::UnitType,
            kind: FieldKind::Text,
        },
        ListField {
            name: "price",
            column: units::Column::Price,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "blockNumber",
            column: units::Column::BlockNumber,
            kind: FieldKind::Text,
        },
        ListField {
            name: "bedrooms",
            column: units::Column::Bedrooms,
            kind: FieldKind::Integer,
        },
        ListField {
            name: "createdAt",
            column: units::Column::CreatedAt,
            kind: FieldKind::Timestamp,
        },
        ListField {
            name: "updatedAt",
            column: units::Column::UpdatedAt,
            kind: FieldKind::Timestamp,
        },
    ],
    default_sort: &[(units::Column::BlockNumber, false)],
    tiebreak: units::Column::Id,
};

/// Validates one new unit, collecting errors under `prefix` (`units[3].price`).
fn validate_unit(u: &NewUnit, prefix: &str, errors: &mut Vec<FieldError>) {
    let field = |f: &str| {
        if prefix.is_empty() {
            f.to_owned()
        } else {
            format!("{prefix}.{f}")
        }
    };
    let bn = u.block_number.trim();
    if bn.is_empty() || bn.chars().count() > 32 || bn.chars().any(|c| c.is_control()) {
        errors.push(FieldError::new(
            &field("blockNumber"),
            "invalid",
            "1 to 32 printable characters",
        ));
    }
    if u.unit_type.trim().is_empty() || u.unit_type.chars().count() > 64 {
        errors.push(FieldError::new(
            &field("type"),
            "invalid",
            "1 to 64 characters",
        ));
    }
    if u.price < 0 {
        errors.push(FieldError::new(
            &field("price"),
            "out_of_range",
            "a price is a whole number of rupiah, at least 0",
        ));
    }
    for (name, v) in [("landArea", u.land_area), ("buildingArea", u.building_area)] {
        if v.is_some_and(|a| !a.is_finite() || !(0.0..=1_000_000.0).contains(&a)) {
            errors.push(FieldError::new(
                &field(name),
                "out_of_range",
                "an area in m², 0 to 1,000,000",
            ));
        }
    }
    for (name, v) in [("bedrooms", u.bedrooms), ("bathrooms", u.bathrooms)] {
        if v.is_some_and(|n| !(0..=100).contains(&n)) {
            errors.push(FieldError::new(&field(name), "out_of_range", "0 to 100"));
        }
    }
}

impl Services {
    /// Creates one or many units in a project, all or nothing (admin).
    pub async fn create_units(
        &self,
        actor: &ActorRef,
        project_id: Uuid,
        input: NewUnits,
    ) -> CoreResult<Vec<UnitView>> {
        let (list, many) = match input {
            NewUnits::Many(UnitBatch(v)) => (v, true),
            NewUnits::One(u) => (vec![u], false),
        };
        if list.is_empty() || list.len() > MAX_UNITS_PER_REQUEST {
            return Err(CoreError::invalid_field(
                "units",
                "out_of_range",
                format!("send 1 to {MAX_UNITS_PER_REQUEST} units"),
            ));
        }
        let mut errors = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, u) in list.iter().enumerate() {
            let prefix = if many {
                format!("[{i}]")
            } else {
                String::new()
            };
            validate_unit(u, &prefix, &mut errors);
            if !seen.insert(u.block_number.trim().to_owned()) {
                return Err(CoreError::conflict(
                    "duplicate_block_number",
                    format!(
                        "block number {} appears twice in the request",
                        u.block_number.trim()
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }
        let txn = begin_write(&self.db).await?;
        let project = projects::Entity::find_by_id(project_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("project"))?;
        let palette = Palette::from_json(project.palette.as_ref());
        let existing = units::Entity::find()
            .filter(units::Column::ProjectId.eq(project_id))
            .filter(units::Column::BlockNumber.is_in(seen.iter().cloned()))
            .one(&txn)
            .await?;
        if let Some(dup) = existing {
            return Err(CoreError::conflict(
                "duplicate_block_number",
                format!(
                    "block number {} already exists in this project",
                    dup.block_number
                ),
            ));
        }
        let now = self.clock.now();
        let mut created = Vec::with_capacity(list.len());
        for u in list {
            let model = units::ActiveModel {
                id: Set(Uuid::now_v7()),
                project_id: Set(project_id),
                block_number: Set(u.block_number.trim().to_owned()),
                unit_type: Set(u.unit_type.trim().to_owned()),
                price: Set(u.price),
                land_area: Set(u.land_area),
                building_area: Set(u.building_area),
                bedrooms: Set(u.bedrooms),
                bathrooms: Set(u.bathrooms),
                status: Set(UnitStatus::Available.as_str().to_owned()),
                version: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await
            .map_err(|e| {
                if CoreError::is_unique_violation(&e) {
                    CoreError::conflict(
                        "duplicate_block_number",
                        "a block number already exists in this project",
                    )
                } else {
                    e.into()
                }
            })?;
            audit::record(
                &txn,
                self.clock.as_ref(),
                actor,
                AuditEntry {
                    action: "unit.created",
                    entity_type: "unit",
                    entity_id: model.id,
                    old_values: None,
                    new_values: Some(serde_json::json!({
                        "blockNumber": model.block_number, "type": model.unit_type, "price": model.price,
                    })),
                },
            )
            .await?;
            created.push(UnitView::new(model, &palette));
        }
        let units_version = self.bump_units_version(&txn, project_id).await?;
        txn.commit().await?;
        self.publish_units_changed(project_id, units_version).await;
        Ok(created)
    }

    /// Increments a project's unit-list version inside the caller's transaction (the change is
    /// the project row's, so two concurrent changes get consecutive versions) and returns it.
    async fn bump_units_version(
        &self,
        txn: &DatabaseTransaction,
        project_id: Uuid,
    ) -> CoreResult<i64> {
        projects::Entity::update_many()
            .col_expr(
                projects::Column::UnitsVersion,
                Expr::col(projects::Column::UnitsVersion).add(1),
            )
            .filter(projects::Column::Id.eq(project_id))
            .exec(txn)
            .await?;
        let version: Option<i64> = projects::Entity::find_by_id(project_id)
            .select_only()
            .column(projects::Column::UnitsVersion)
            .into_tuple()
            .one(txn)
            .await?;
        version.ok_or(CoreError::NotFound("project"))
    }

    /// Tells every instance's hub, after commit, that a project's unit list changed. A lost
    /// message is covered by the hubs' catch-up tick, which compares unit-list versions.
    async fn publish_units_changed(&self, project_id: Uuid, units_version: i64) {
        let change = UnitsChanged {
            project_id,
            units_version,
        };
        if let Err(e) = self.bus.publish_units_changed(&change).await {
            tracing::warn!(project = %project_id, error = %e, "publishing a unit-list change failed; the catch-up tick will find it");
        }
    }

    /// Lists a project's units (public).
    pub async fn list_units(&self, project_id: Uuid, query: &str) -> CoreResult<Page<UnitView>> {
        let q = ListQuery::parse(query, &UNIT_LIST)?;
        let project = self.project(project_id).await?;
        let palette = Palette::from_json(project.palette.as_ref());
        let page = q
            .fetch(
                units::Entity::find().filter(units::Column::ProjectId.eq(project_id)),
                &self.db,
            )
            .await?;
        Ok(page.map(|u| UnitView::new(u, &palette)))
    }

    /// One unit (public).
    pub async fn get_unit(&self, id: Uuid) -> CoreResult<UnitView> {
        let unit = units::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("unit"))?;
        let project = self.project(unit.project_id).await?;
        Ok(UnitView::new(
            unit,
            &Palette::from_json(project.palette.as_ref()),
        ))
    }

    /// Changes a unit's status, price or type (ADMIN or verified MARKETING; the caller checks).
    /// A status change is compare-and-set on the current (or `expectedStatus`) status and emits one event.
    pub async fn patch_unit(
        &self,
        actor: &ActorRef,
        id: Uuid,
        patch: UnitPatch,
    ) -> CoreResult<UnitView> {
        if patch.price.is_some_and(|p| p < 0) {
            return Err(CoreError::invalid_field(
                "price",
                "out_of_range",
                "a price is at least 0 rupiah",
            ));
        }
        if patch
            .unit_type
            .as_ref()
            .is_some_and(|t| t.trim().is_empty() || t.chars().count() > 64)
        {
            return Err(CoreError::invalid_field(
                "type",
                "invalid",
                "1 to 64 characters",
            ));
        }
        let txn = begin_write(&self.db).await?;
        // The transaction's own view of the row: as read, then as each update returns it.
        let mut unit = units::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("unit"))?;
        let current = UnitStatus::parse(&unit.status)
            .ok_or_else(|| CoreError::Internal("unknown unit status".into()))?;
        if let Some(expected) = patch.expected_status
            && expected != current
        {
            return Err(CoreError::conflict(
                "status_conflict",
                format!("the unit is {current}, not {expected}"),
            ));
        }
        let now = self.clock.now();
        let mut event = None;
        let mut price_dropped = false;
        if let Some(to) = patch.status.filter(|to| *to != current) {
            // A unit held by a live booking follows its booking; change the booking instead.
            let live = bookings::Entity::find()
                .filter(bookings::Column::UnitId.eq(id))
                .filter(bookings::Column::Status.is_in([
                    BookingStatus::PendingPayment.as_str(),
                    BookingStatus::Active.as_str(),
                ]))
                .one(&txn)
                .await?;
            if let Some(b) = live {
                return Err(CoreError::conflict(
                    "unit_has_booking",
                    format!(
                        "the unit is held by booking {}; change the booking instead",
                        b.booking_code
                    ),
                ));
            }
            unit = set_unit_status_returning(&txn, now, id, current, to)
                .await?
                .ok_or_else(|| {
                    CoreError::conflict(
                        "status_conflict",
                        "the unit changed meanwhile; reload and retry",
                    )
                })?;
            event = Some((current, to));
        }
        if patch.price.is_some() || patch.unit_type.is_some() {
            let old = serde_json::json!({"price": unit.price, "type": unit.unit_type});
            let old_price = unit.price;
            let mut active: units::ActiveModel = unit.into();
            if let Some(p) = patch.price {
                active.price = Set(p);
            }
            if let Some(t) = &patch.unit_type {
                active.unit_type = Set(t.trim().to_owned());
            }
            active.updated_at = Set(now);
            unit = active.update(&txn).await?;
            if unit.price < old_price {
                price_dropped = true;
                record_price_drop(&txn, &unit, old_price, now).await?;
            }
            audit::record(
                &txn,
                self.clock.as_ref(),
                actor,
                AuditEntry {
                    action: "unit.updated",
                    entity_type: "unit",
                    entity_id: id,
                    old_values: Some(old),
                    new_values: Some(
                        serde_json::json!({"price": unit.price, "type": unit.unit_type}),
                    ),
                },
            )
            .await?;
        }
        let mut published = Vec::new();
        if let Some((from, to)) = event {
            published.push(
                record_unit_change(
                    &txn,
                    self.clock.as_ref(),
                    actor,
                    UnitChange {
                        project_id: unit.project_id,
                        unit_id: id,
                        block_number: unit.block_number.clone(),
                        from,
                        to,
                        booking: None,
                    },
                )
                .await?,
            );
        }
        txn.commit().await?;
        self.publish(&published).await;
        if price_dropped {
            self.notifier.wake();
        }
        // A status change's event already carries the colour; only other edits read the palette.
        Ok(match published.first() {
            Some(e) => UnitView::with_color(unit, e.color.clone()),
            None => {
                let project = self.project(unit.project_id).await?;
                UnitView::new(unit, &Palette::from_json(project.palette.as_ref()))
            }
        })
    }

    /// The public availability snapshot, read in one consistent transaction so `seq` matches the statuses.
    pub async fn availability(&self, project_id: Uuid) -> CoreResult<Availability> {
        let snapshot = crate::event_store::project_snapshot(&self.db, project_id)
            .await?
            .ok_or(CoreError::NotFound("project"))?;
        Ok(Availability {
            project_id,
            seq: snapshot.seq,
            units: snapshot
                .units
                .into_iter()
                .map(AvailabilityUnit::from)
                .collect(),
        })
    }
}
