//! Siteplans: upload (parse, sanitize, map ids to units) atomically, and serve the sanitized or
//! coloured SVG and the unit geometry from a per-project cache, so a request never re-parses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kavling_siteplan::{ColorTemplate, Limits, Mapping, Siteplan, UnitGeometry};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde::Serialize;
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::Palette;
use crate::entities::{project_siteplans, projects, units};
use crate::error::{CoreError, CoreResult};

/// One matched unit in the mapping report.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchedView {
    /// The unit's block number.
    pub block_number: String,
    /// The element's id.
    pub element_id: String,
    /// How the element was matched: `id`, `label`, `text` or `manual`.
    #[schema(value_type = String, example = "id")]
    pub source: &'static str,
}

/// The mapping report of `PUT /projects/{id}/siteplan`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingReport {
    /// Elements in the document.
    pub element_count: usize,
    /// Units found, with their elements.
    pub matched: Vec<MatchedView>,
    /// Element ids that look like units but match none.
    pub unmatched_element_ids: Vec<String>,
    /// Block numbers with no element.
    pub units_without_element: Vec<String>,
    /// Closed shapes (and `use` copies) not part of any unit: what an admin may map by hand.
    pub unmatched_shape_ids: Vec<String>,
    /// Ambiguities worth a designer's look.
    pub warnings: Vec<String>,
}

fn report(siteplan: &Siteplan, mapping: &Mapping) -> MappingReport {
    MappingReport {
        element_count: siteplan.element_count(),
        matched: mapping
            .matched
            .iter()
            .map(|m| MatchedView {
                block_number: m.block_number.clone(),
                element_id: m.element_id.clone(),
                source: m.source.as_str(),
            })
            .collect(),
        unmatched_element_ids: mapping.unmatched_element_ids.clone(),
        units_without_element: mapping.units_without_element.clone(),
        unmatched_shape_ids: mapping.unmatched_shape_ids.clone(),
        warnings: mapping.warnings.clone(),
    }
}

/// A box in the root coordinate system.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct BoxView {
    /// Left.
    pub x: f64,
    /// Top.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// A point in the root coordinate system.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct PointView {
    /// X.
    pub x: f64,
    /// Y.
    pub y: f64,
}

/// One unit's geometry, for turning a tap into a unit.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitGeometryView {
    /// Unit id.
    pub unit_id: Uuid,
    /// Block number.
    pub block_number: String,
    /// The first matched element's id.
    pub element_id: String,
    /// Every element drawn for the unit.
    pub element_ids: Vec<String>,
    /// Bounding box.
    pub bbox: BoxView,
    /// Centre of the box.
    pub center: PointView,
    /// The lot's outline, a closed polygon of at most 64 points in viewBox coordinates.
    pub outline: Vec<PointView>,
}

/// `GET /projects/{id}/siteplan/geometry`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeometryView {
    /// The root viewBox.
    pub view_box: Option<BoxView>,
    /// Every matched unit.
    pub units: Vec<UnitGeometryView>,
}

/// A rendered siteplan body with its validator.
#[derive(Clone, Debug)]
pub struct SiteplanBody {
    /// Strong ETag (quoted).
    pub etag: String,
    /// The SVG, or None when the client's copy is current.
    pub svg: Option<Arc<str>>,
}

/// The prepared form of one project's siteplan: parsed once, rendered many times.
struct Prepared {
    version: i32,
    /// Block numbers the mapping was computed for (units may be added after an upload).
    blocks_key: u64,
    sanitized: Arc<str>,
    template: ColorTemplate,
    geometry: Vec<UnitGeometry>,
    view_box: Option<BoxView>,
    colored: Mutex<Option<(i64, Arc<str>)>>,
}

/// Per-project cache of prepared siteplans (this instance).
#[derive(Default)]
pub struct SiteplanCache {
    entries: Mutex<HashMap<Uuid, Arc<Prepared>>>,
}

impl std::fmt::Debug for SiteplanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteplanCache(..)")
    }
}

fn blocks_key(blocks: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut sorted: Vec<&String> = blocks.iter().collect();
    sorted.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sorted.hash(&mut h);
    h.finish()
}

fn invalid_svg(e: kavling_siteplan::SvgError) -> CoreError {
    CoreError::bad_request("invalid_svg", e.to_string())
}

async fn parse_blocking(bytes: Vec<u8>) -> CoreResult<Siteplan> {
    tokio::task::spawn_blocking(move || Siteplan::parse(&bytes, &Limits::default()))
        .await
        .map_err(|e| CoreError::Internal(format!("siteplan task failed: {e}")))?
        .map_err(invalid_svg)
}

impl Services {
    async fn block_numbers(&self, project_id: Uuid) -> CoreResult<Vec<(Uuid, String, String)>> {
        Ok(units::Entity::find()
            .select_only()
            .column(units::Column::Id)
            .column(units::Column::BlockNumber)
            .column(units::Column::Status)
            .filter(units::Column::ProjectId.eq(project_id))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Replaces a project's siteplan. A rejected upload changes nothing.
    pub async fn replace_siteplan(
        &self,
        actor: &ActorRef,
        project_id: Uuid,
        svg: &[u8],
    ) -> CoreResult<MappingReport> {
        if svg.len() > self.max_siteplan_bytes {
            return Err(CoreError::TooLarge {
                code: "svg_too_large",
                message: format!(
                    "the siteplan is larger than {} bytes",
                    self.max_siteplan_bytes
                ),
            });
        }
        self.project(project_id).await?;
        let siteplan = parse_blocking(svg.to_vec()).await?;
        let blocks: Vec<String> = self
            .block_numbers(project_id)
            .await?
            .into_iter()
            .map(|(_, b, _)| b)
            .collect();
        let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
        let mapping = siteplan.map_units(&refs);
        let report = report(&siteplan, &mapping);

        let txn = begin_write(&self.db).await?;
        let current = project_siteplans::Entity::find_by_id(project_id)
            .one(&txn)
            .await?
            .ok_or(CoreError::NotFound("project"))?;
        let version = current.siteplan_version + 1;
        let now = self.clock.now();
        let mut active: project_siteplans::ActiveModel = current.into();
        active.siteplan_source = Set(Some(String::from_utf8_lossy(svg).into_owned()));
        active.siteplan_sanitized = Set(Some(siteplan.sanitized().to_owned()));
        active.siteplan_version = Set(version);
        active.siteplan_updated_at = Set(Some(now));
        active.update(&txn).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "siteplan.replaced",
                entity_type: "project",
                entity_id: project_id,
                old_values: Some(serde_json::json!({"siteplanVersion": version - 1})),
                new_values: Some(serde_json::json!({
                    "siteplanVersion": version,
                    "bytes": svg.len(),
                    "matched": report.matched.len(),
                    "unitsWithoutElement": report.units_without_element.len(),
                })),
            },
        )
        .await?;
        txn.commit().await?;
        self.siteplans
            .store(project_id, version, &blocks, siteplan, &mapping);
        Ok(report)
    }

    /// The prepared siteplan for a project at its current version and unit list.
    async fn prepared(
        &self,
        project: &projects::Model,
        blocks: &[String],
    ) -> CoreResult<Arc<Prepared>> {
        let key = blocks_key(blocks);
        if let Some(p) = self.siteplans.get(project.id)
            && p.version == project.siteplan_version
            && p.blocks_key == key
        {
            return Ok(p);
        }
        let row = project_siteplans::Entity::find_by_id(project.id)
            .one(&self.db)
            .await?
            .ok_or(CoreError::NotFound("project"))?;
        let sanitized = row
            .siteplan_sanitized
            .ok_or(CoreError::NotFound("siteplan"))?;
        let siteplan = parse_blocking(sanitized.into_bytes()).await?;
        let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
        let mapping = siteplan.map_units(&refs);
        Ok(self
            .siteplans
            .store(project.id, row.siteplan_version, blocks, siteplan, &mapping))
    }

    /// The sanitized (or coloured) SVG, unless `if_none_match` already names the current version.
    pub async fn siteplan_svg(
        &self,
        project_id: Uuid,
        colored: bool,
        if_none_match: Option<&str>,
    ) -> CoreResult<SiteplanBody> {
        let project = self.project(project_id).await?;
        if project.siteplan_version == 0 {
            return Err(CoreError::NotFound("siteplan"));
        }
        let etag = format!(
            "\"sp-{}-{}-{}\"",
            project.siteplan_version,
            project.event_seq,
            if colored { "c" } else { "p" }
        );
        if if_none_match
            .is_some_and(|inm| inm.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        {
            return Ok(SiteplanBody { etag, svg: None });
        }
        // The plain SVG does not depend on the units: serve the cached text of this version as is.
        if !colored
            && let Some(p) = self.siteplans.get(project.id)
            && p.version == project.siteplan_version
        {
            return Ok(SiteplanBody {
                etag,
                svg: Some(p.sanitized.clone()),
            });
        }
        let units = self.block_numbers(project_id).await?;
        let blocks: Vec<String> = units.iter().map(|(_, b, _)| b.clone()).collect();
        let prepared = self.prepared(&project, &blocks).await?;
        if !colored {
            return Ok(SiteplanBody {
                etag,
                svg: Some(prepared.sanitized.clone()),
            });
        }
        // The statuses were read after the project row, so they are at least as new as its seq.
        if let Ok(guard) = prepared.colored.lock()
            && let Some((seq, svg)) = guard.as_ref()
            && *seq == project.event_seq
        {
            return Ok(SiteplanBody {
                etag,
                svg: Some(svg.clone()),
            });
        }
        let palette = Palette::from_json(project.palette.as_ref());
        let colors: HashMap<&str, String> = units
            .iter()
            .map(|(_, b, s)| (b.as_str(), palette.color(s)))
            .collect();
        let svg: Arc<str> = prepared
            .template
            .render(|block| colors.get(block).map(String::as_str))
            .into();
        if let Ok(mut guard) = prepared.colored.lock() {
            *guard = Some((project.event_seq, svg.clone()));
        }
        Ok(SiteplanBody {
            etag,
            svg: Some(svg),
        })
    }

    /// Bounding boxes and centres of every matched unit (empty until a siteplan is uploaded).
    pub async fn siteplan_geometry(&self, project_id: Uuid) -> CoreResult<GeometryView> {
        let project = self.project(project_id).await?;
        if project.siteplan_version == 0 {
            return Ok(GeometryView {
                view_box: None,
                units: Vec::new(),
            });
        }
        let units = self.block_numbers(project_id).await?;
        let blocks: Vec<String> = units.iter().map(|(_, b, _)| b.clone()).collect();
        let ids: HashMap<&str, Uuid> = units.iter().map(|(id, b, _)| (b.as_str(), *id)).collect();
        let prepared = self.prepared(&project, &blocks).await?;
        Ok(GeometryView {
            view_box: prepared.view_box,
            units: prepared
                .geometry
                .iter()
                .filter_map(|g| {
                    Some(UnitGeometryView {
                        unit_id: *ids.get(g.block_number.as_str())?,
                        block_number: g.block_number.clone(),
                        element_id: g.element_id.clone(),
                        element_ids: g.element_ids.clone(),
                        bbox: BoxView {
                            x: g.bbox.x,
                            y: g.bbox.y,
                            width: g.bbox.width,
                            height: g.bbox.height,
                        },
                        center: PointView {
                            x: g.center.x,
                            y: g.center.y,
                        },
                        outline: g
                            .outline
                            .iter()
                            .map(|p| PointView { x: p.x, y: p.y })
                            .collect(),
                    })
                })
                .collect(),
        })
    }
}

impl SiteplanCache {
    fn get(&self, project_id: Uuid) -> Option<Arc<Prepared>> {
        self.entries.lock().ok()?.get(&project_id).cloned()
    }

    fn store(
        &self,
        project_id: Uuid,
        version: i32,
        blocks: &[String],
        siteplan: Siteplan,
        mapping: &Mapping,
    ) -> Arc<Prepared> {
        let prepared = Arc::new(Prepared {
            version,
            blocks_key: blocks_key(blocks),
            sanitized: siteplan.sanitized().into(),
            template: siteplan.color_template(mapping),
            geometry: siteplan.geometry(mapping),
            view_box: siteplan.view_box().map(|v| BoxView {
                x: v.min_x,
                y: v.min_y,
                width: v.width,
                height: v.height,
            }),
            colored: Mutex::new(None),
        });
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(project_id, prepared.clone());
        }
        prepared
    }
}
