//! Siteplans: upload (parse, sanitize, map ids to units) atomically, and serve the sanitized or
//! coloured SVG and the unit geometry from a per-project cache, so a request never re-parses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use kavling_siteplan::{
    ColorTemplate, Limits, ManualMapping, Mapping, MatchSource, Siteplan, UnitGeometry,
    UnmatchedElement,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::audit::{self, ActorRef, AuditEntry};
use crate::db::begin_write;
use crate::domain::Palette;
use crate::entities::{project_siteplans, projects, siteplan_mappings, units};
use crate::error::{CoreError, CoreResult, FieldError};

/// How a report entry was matched (`id`, `label`, `text`, `manual`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchSourceView {
    /// The element's own id, de-mangled.
    Id,
    /// `data-name`, `inkscape:label` or `<title>`.
    Label,
    /// A `<text>` label drawn over the shape.
    Text,
    /// An admin's manual mapping.
    Manual,
}

impl From<MatchSource> for MatchSourceView {
    fn from(s: MatchSource) -> Self {
        match s {
            MatchSource::Id => MatchSourceView::Id,
            MatchSource::Label => MatchSourceView::Label,
            MatchSource::Text => MatchSourceView::Text,
            MatchSource::Manual => MatchSourceView::Manual,
        }
    }
}

/// One matched element in the mapping report (a unit drawn as several shapes has several).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchedView {
    /// The unit's block number.
    pub block_number: String,
    /// The element's id.
    pub element_id: String,
    /// How the element was matched.
    pub source: MatchSourceView,
}

/// An unmatched element as the report lists it: a candidate lot or one of the rest.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmatchedElementView {
    /// The element's id (generated `kv-` ids included): what a manual mapping names.
    pub element_id: String,
    /// Its human name (`data-name`, `inkscape:label`, `<title>`), when it has one.
    pub label: Option<String>,
    /// A unit's block number its name nearly spells (`Shop-1` for unit `1`); candidates only.
    pub hint: Option<String>,
}

impl From<&UnmatchedElement> for UnmatchedElementView {
    fn from(e: &UnmatchedElement) -> Self {
        UnmatchedElementView {
            element_id: e.element_id.clone(),
            label: e.label.clone(),
            hint: e.hint.clone(),
        }
    }
}

/// A warning about one element, for showing next to it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElementWarningView {
    /// The element's id.
    pub element_id: String,
    /// The warning (also in `warnings`).
    pub message: String,
}

/// The mapping report of `PUT /projects/{id}/siteplan` and `PUT /projects/{id}/siteplan/mapping`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingReport {
    /// Elements in the document.
    pub element_count: usize,
    /// Closed shapes in the document (rects, circles, ellipses, polygons, closed paths and
    /// polylines, `use` copies), outside `defs` and text.
    pub shape_count: usize,
    /// Closed shapes of lot-like size no unit matches yet: the entries of `candidates`.
    pub candidate_count: usize,
    /// Units found, with their elements.
    pub matched: Vec<MatchedView>,
    /// Element ids that look like units but match none.
    pub unmatched_element_ids: Vec<String>,
    /// Block numbers with no element.
    pub units_without_element: Vec<String>,
    /// Closed shapes (and `use` copies) not part of any unit: what an admin may map by hand.
    pub unmatched_shape_ids: Vec<String>,
    /// Ambiguities worth a designer's look, and manual mappings dropped by a re-upload.
    /// What sanitizing removed (external images, stylesheets, fonts) comes first, with the fix.
    pub warnings: Vec<String>,
    /// Unmatched closed shapes of lot-like size, in document order: the lots left to map,
    /// with their human label and a near-miss hint.
    pub candidates: Vec<UnmatchedElementView>,
    /// Unmatched named elements that are not candidate lots: design tools' automatic ids
    /// (`path1234`, `g6270`, Figma's `Clip path group_12`), groups and layers, open or
    /// lot-unlike shapes, with their human label.
    pub other_elements: Vec<UnmatchedElementView>,
    /// The warnings that concern one element, with its id.
    pub element_warnings: Vec<ElementWarningView>,
}

impl MappingReport {
    /// The report before a drawing is uploaded: every unit without an element.
    fn empty(blocks: Vec<String>) -> MappingReport {
        MappingReport {
            element_count: 0,
            shape_count: 0,
            candidate_count: 0,
            matched: Vec::new(),
            unmatched_element_ids: Vec::new(),
            units_without_element: blocks,
            unmatched_shape_ids: Vec::new(),
            warnings: Vec::new(),
            candidates: Vec::new(),
            other_elements: Vec::new(),
            element_warnings: Vec::new(),
        }
    }
}

fn report(siteplan: &Siteplan, mapping: &Mapping) -> MappingReport {
    MappingReport {
        element_count: siteplan.element_count(),
        shape_count: siteplan.shape_count(),
        candidate_count: mapping.candidates.len(),
        matched: mapping
            .matched
            .iter()
            .map(|m| MatchedView {
                block_number: m.block_number.clone(),
                element_id: m.element_id.clone(),
                source: m.source.into(),
            })
            .collect(),
        unmatched_element_ids: mapping.unmatched_element_ids.clone(),
        units_without_element: mapping.units_without_element.clone(),
        unmatched_shape_ids: mapping.unmatched_shape_ids.clone(),
        warnings: siteplan
            .removed()
            .iter()
            .chain(&mapping.warnings)
            .cloned()
            .collect(),
        candidates: mapping.candidates.iter().map(Into::into).collect(),
        other_elements: mapping.other_elements.iter().map(Into::into).collect(),
        element_warnings: mapping
            .element_warnings
            .iter()
            .map(|w| ElementWarningView {
                element_id: w.element_id.clone(),
                message: w.message.clone(),
            })
            .collect(),
    }
}

/// `PUT /projects/{id}/siteplan/mapping` input.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingInput {
    /// Element id → the unit's block number, or `null` to clear that element's manual mapping.
    #[schema(value_type = HashMap<String, Option<String>>, example = json!({"kv-3f2a91c0": "A12", "path812": null}))]
    pub elements: BTreeMap<String, Option<String>>,
}

/// Most manual mappings one request may set or clear.
pub const MAX_MAPPING_CHANGES: usize = 10_000;
/// Longest element id a manual mapping may name (the column's width).
pub const MAX_ELEMENT_ID_LEN: usize = 200;

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
    /// The lot shapes the server's colouring paints: recolour these, not the whole group, so
    /// labels and glyphs keep their paint.
    pub shape_ids: Vec<String>,
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
    /// `siteplan_version` of the project row: bumped by an upload and by every manual mapping
    /// change, so every instance sees a stale entry as stale.
    version: i32,
    /// Block numbers the mapping was computed for (units may be added after an upload).
    blocks_key: u64,
    siteplan: Siteplan,
    sanitized: Arc<str>,
    report: MappingReport,
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

fn task_failed(e: tokio::task::JoinError) -> CoreError {
    CoreError::Internal(format!("siteplan task failed: {e}"))
}

async fn parse_blocking(bytes: Vec<u8>) -> CoreResult<Siteplan> {
    tokio::task::spawn_blocking(move || Siteplan::parse(&bytes, &Limits::default()))
        .await
        .map_err(task_failed)?
        .map_err(invalid_svg)
}

/// Whether an upload is gzip-compressed (an `.svgz`): its magic bytes.
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// An `.svgz` upload decompressed, read no further than `cap` bytes so a small bomb cannot
/// inflate past the siteplan size limit.
fn gunzip(bytes: &[u8], cap: usize) -> CoreResult<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(cap));
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| {
            CoreError::bad_request(
                "invalid_svg",
                format!("the file is gzip-compressed (.svgz) but does not decompress: {e}"),
            )
        })?;
    if out.len() > cap {
        return Err(CoreError::TooLarge {
            code: "svg_too_large",
            message: format!("the siteplan is larger than {cap} bytes once decompressed (.svgz)"),
        });
    }
    Ok(out)
}

/// A manual mapping as stored: the element and its unit's current block number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct ManualRow {
    element_id: String,
    block_number: String,
}

/// Maps units (automatic matching, then the manual rows) off the async executor: text labels
/// over thousands of lots take tens of milliseconds.
async fn map_blocking(
    siteplan: Siteplan,
    blocks: Vec<String>,
    manual: Vec<ManualRow>,
) -> CoreResult<(Siteplan, Mapping)> {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
        let manual: Vec<ManualMapping<'_>> = manual
            .iter()
            .map(|m| ManualMapping {
                element_id: &m.element_id,
                block_number: &m.block_number,
            })
            .collect();
        let mapping = siteplan.map_units_with(&refs, &manual);
        (siteplan, mapping)
    })
    .await
    .map_err(task_failed)
}

/// Splits stored manual mappings into those whose element the drawing still has and the rest.
fn split_surviving(
    siteplan: &Siteplan,
    rows: &[(Uuid, ManualRow)],
) -> (Vec<ManualRow>, Vec<(Uuid, ManualRow)>) {
    let mut kept = Vec::with_capacity(rows.len());
    let mut dropped = Vec::new();
    for (id, row) in rows {
        if siteplan.has_element(&row.element_id) {
            kept.push(row.clone());
        } else {
            dropped.push((*id, row.clone()));
        }
    }
    (kept, dropped)
}

/// Compares block numbers with their digit runs as numbers: `A2` < `A10` < `B1`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> impl Iterator<Item = (bool, &str)> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            Some((digit, run))
        })
    }
    let mut x = runs(a);
    let mut y = runs(b);
    loop {
        match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some((true, p)), Some((true, q))) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                let o = p.len().cmp(&q.len()).then_with(|| p.cmp(q));
                if o.is_ne() {
                    return o;
                }
            }
            (Some((_, p)), Some((_, q))) => {
                let o = p.to_lowercase().cmp(&q.to_lowercase());
                if o.is_ne() {
                    return o;
                }
            }
        }
    }
}

/// The units of a project: `(id, block number, status)`.
type UnitRow = (Uuid, String, String);

impl Services {
    /// The project's units in natural block order (`A2` before `A10`), so every report lists
    /// them the same way.
    async fn block_numbers(&self, project_id: Uuid) -> CoreResult<Vec<UnitRow>> {
        let mut rows: Vec<UnitRow> = units::Entity::find()
            .select_only()
            .column(units::Column::Id)
            .column(units::Column::BlockNumber)
            .column(units::Column::Status)
            .filter(units::Column::ProjectId.eq(project_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.sort_by(|a, b| natural_cmp(&a.1, &b.1));
        Ok(rows)
    }

    /// The stored manual mappings of a project, by element id, with their units' block numbers.
    async fn manual_rows<C: ConnectionTrait>(
        conn: &C,
        project_id: Uuid,
        units: &[UnitRow],
    ) -> CoreResult<Vec<(Uuid, ManualRow)>> {
        let blocks: HashMap<Uuid, &str> =
            units.iter().map(|(id, b, _)| (*id, b.as_str())).collect();
        let rows = siteplan_mappings::Entity::find()
            .filter(siteplan_mappings::Column::ProjectId.eq(project_id))
            .order_by_asc(siteplan_mappings::Column::ElementId)
            .all(conn)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let block = blocks.get(&r.unit_id)?;
                Some((
                    r.id,
                    ManualRow {
                        element_id: r.element_id,
                        block_number: (*block).to_owned(),
                    },
                ))
            })
            .collect())
    }

    /// Replaces a project's siteplan. A rejected upload changes nothing. Manual mappings whose
    /// element is still in the drawing are kept; the others are deleted and named in `warnings`.
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
        let gunzipped;
        let svg: &[u8] = if is_gzip(svg) {
            // Inflating megabytes is CPU work: on the blocking pool, like parsing.
            let (bytes, cap) = (svg.to_vec(), self.max_siteplan_bytes);
            gunzipped = tokio::task::spawn_blocking(move || gunzip(&bytes, cap))
                .await
                .map_err(task_failed)??;
            &gunzipped
        } else {
            svg
        };
        let siteplan = parse_blocking(svg.to_vec()).await?;
        let units = self.block_numbers(project_id).await?;
        let blocks: Vec<String> = units.iter().map(|(_, b, _)| b.clone()).collect();
        let manual = Self::manual_rows(&self.db, project_id, &units).await?;
        let (kept, _) = split_surviving(&siteplan, &manual);
        let (mut siteplan, mut mapping) = map_blocking(siteplan, blocks.clone(), kept).await?;

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
        // Read again under the write lock: a mapping saved since the first read counts too.
        let manual_now = Self::manual_rows(&txn, project_id, &units).await?;
        let (kept_now, dropped) = split_surviving(&siteplan, &manual_now);
        if manual_now != manual {
            (siteplan, mapping) = map_blocking(siteplan, blocks.clone(), kept_now).await?;
        }
        if !dropped.is_empty() {
            siteplan_mappings::Entity::delete_many()
                .filter(siteplan_mappings::Column::Id.is_in(dropped.iter().map(|(id, _)| *id)))
                .exec(&txn)
                .await?;
        }
        let mut report = report(&siteplan, &mapping);
        for (_, m) in &dropped {
            report.warnings.push(format!(
                "the manual mapping of element \"{}\" to unit {} was dropped: the new drawing has no such element",
                m.element_id, m.block_number
            ));
        }
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
                    "manualMappingsDropped": dropped.iter().map(|(_, m)| &m.element_id).collect::<Vec<_>>(),
                })),
            },
        )
        .await?;
        txn.commit().await?;
        self.siteplans
            .store(project_id, version, &blocks, siteplan, &mapping);
        Ok(report)
    }

    /// Sets (`Some(block)`) or clears (`None`) manual mappings of elements of the current
    /// drawing, and answers the new report. Unknown element ids or block numbers: 422 naming
    /// each; nothing changes. Every instance sees the change: it bumps `siteplan_version`.
    pub async fn set_siteplan_mapping(
        &self,
        actor: &ActorRef,
        project_id: Uuid,
        input: &MappingInput,
    ) -> CoreResult<MappingReport> {
        let changes = &input.elements;
        if changes.len() > MAX_MAPPING_CHANGES {
            return Err(CoreError::invalid_field(
                "elements",
                "too_many",
                format!("at most {MAX_MAPPING_CHANGES} elements per request"),
            ));
        }
        let project = self.project(project_id).await?;
        if project.siteplan_version == 0 {
            // The project exists; its state (no drawing yet) is what stands in the way.
            return Err(CoreError::conflict(
                "no_siteplan",
                "the project has no siteplan yet: upload one first",
            ));
        }
        let units = self.block_numbers(project_id).await?;
        let blocks: Vec<String> = units.iter().map(|(_, b, _)| b.clone()).collect();
        let prepared = self.prepared(&project, &blocks).await?;
        let unit_of: HashMap<&str, Uuid> =
            units.iter().map(|(id, b, _)| (b.as_str(), *id)).collect();

        let mut errors = Vec::new();
        let mut resolved: Vec<(&str, Option<Uuid>)> = Vec::with_capacity(changes.len());
        for (element_id, block) in changes {
            let field = format!("elements.{element_id}");
            if element_id.len() > MAX_ELEMENT_ID_LEN || !prepared.siteplan.has_element(element_id) {
                errors.push(FieldError::new(
                    &field,
                    "unknown_element",
                    format!("the siteplan has no mappable element with id \"{element_id}\""),
                ));
                continue;
            }
            match block {
                None => resolved.push((element_id, None)),
                Some(b) => match unit_of.get(b.as_str()) {
                    Some(unit) => resolved.push((element_id, Some(*unit))),
                    None => errors.push(FieldError::new(
                        &field,
                        "unknown_unit",
                        format!("the project has no unit with block number \"{b}\""),
                    )),
                },
            }
        }
        if !errors.is_empty() {
            return Err(CoreError::Validation(errors));
        }

        let txn = begin_write(&self.db).await?;
        // Conditional on the version the ids were checked against: a re-upload in between
        // could have removed them.
        let bumped = project_siteplans::Entity::update_many()
            .col_expr(
                project_siteplans::Column::SiteplanVersion,
                Expr::col(project_siteplans::Column::SiteplanVersion).add(1),
            )
            .filter(project_siteplans::Column::Id.eq(project_id))
            .filter(project_siteplans::Column::SiteplanVersion.eq(prepared.version))
            .exec(&txn)
            .await?;
        if bumped.rows_affected == 0 {
            return Err(CoreError::conflict(
                "siteplan_changed",
                "the siteplan changed while the mapping was being saved; load it again",
            ));
        }
        let version = prepared.version + 1;
        let now = self.clock.now();
        siteplan_mappings::Entity::delete_many()
            .filter(siteplan_mappings::Column::ProjectId.eq(project_id))
            .filter(siteplan_mappings::Column::ElementId.is_in(resolved.iter().map(|(e, _)| *e)))
            .exec(&txn)
            .await?;
        let rows: Vec<siteplan_mappings::ActiveModel> = resolved
            .iter()
            .filter_map(|(element_id, unit)| {
                Some(siteplan_mappings::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    project_id: Set(project_id),
                    element_id: Set((*element_id).to_owned()),
                    unit_id: Set((*unit)?),
                    created_by: Set(actor.user_id),
                    created_at: Set(now),
                })
            })
            .collect();
        if !rows.is_empty() {
            siteplan_mappings::Entity::insert_many(rows)
                .exec(&txn)
                .await?;
        }
        let manual = Self::manual_rows(&txn, project_id, &units).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            actor,
            AuditEntry {
                action: "siteplan.mapping_changed",
                entity_type: "project",
                entity_id: project_id,
                old_values: Some(serde_json::json!({"siteplanVersion": version - 1})),
                new_values: Some(serde_json::json!({
                    "siteplanVersion": version,
                    "elements": changes,
                })),
            },
        )
        .await?;
        txn.commit().await?;
        let manual = manual.into_iter().map(|(_, m)| m).collect();
        let (siteplan, mapping) =
            map_blocking(prepared.siteplan.clone(), blocks.clone(), manual).await?;
        let prepared = self
            .siteplans
            .store(project_id, version, &blocks, siteplan, &mapping);
        Ok(prepared.report.clone())
    }

    /// The current mapping report of a project's siteplan. Before one is uploaded, the report of
    /// an empty drawing: no elements, every unit without one (like the empty geometry).
    pub async fn siteplan_mapping(&self, project_id: Uuid) -> CoreResult<MappingReport> {
        let project = self.project(project_id).await?;
        let units = self.block_numbers(project_id).await?;
        let blocks: Vec<String> = units.iter().map(|(_, b, _)| b.clone()).collect();
        if project.siteplan_version == 0 {
            return Ok(MappingReport::empty(blocks));
        }
        Ok(self.prepared(&project, &blocks).await?.report.clone())
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
        // The upload itself, when it still sanitizes to the stored text, so the report says
        // what sanitizing removed; else (an engine change since) the stored text as served.
        let from_source = match row.siteplan_source {
            Some(source) => parse_blocking(source.into_bytes())
                .await
                .ok()
                .filter(|p| p.sanitized() == sanitized),
            None => None,
        };
        let siteplan = match from_source {
            Some(p) => p,
            None => parse_blocking(sanitized.into_bytes()).await?,
        };
        let units = self.block_numbers(project.id).await?;
        let manual = Self::manual_rows(&self.db, project.id, &units)
            .await?
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let (siteplan, mapping) = map_blocking(siteplan, blocks.to_vec(), manual).await?;
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
                        shape_ids: g.shape_ids.clone(),
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
            report: report(&siteplan, mapping),
            template: siteplan.color_template(mapping),
            geometry: siteplan.geometry(mapping),
            view_box: siteplan.view_box().map(|v| BoxView {
                x: v.min_x,
                y: v.min_y,
                width: v.width,
                height: v.height,
            }),
            colored: Mutex::new(None),
            siteplan,
        });
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(project_id, prepared.clone());
        }
        prepared
    }
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;

    #[test]
    fn block_numbers_sort_naturally() {
        let mut v = vec!["A10", "B1", "A2", "a3", "A02", "10", "9", "A"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["9", "10", "A", "A02", "A2", "a3", "A10", "B1"]);
    }
}
