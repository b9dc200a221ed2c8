//! Siteplan SVG engine: parse an uploaded siteplan in one streaming pass, sanitize it by
//! allowlist into Flutter-ready SVG, index its elements, map element ids to units, compute unit
//! geometry, and colour units by status through a precomputed splice template.
//!
//! # Validation
//! One quick-xml pass over borrowed events. Refused, with line and column: non-UTF-8 or empty
//! input, anything not well-formed (end tags are matched, unclosed elements at the end are
//! reported, comments are checked for `--`), a root other than `<svg>`, any `<!DOCTYPE>` (the only
//! place entities can be declared: entities are never expanded, so XXE and billion laughs cannot
//! happen), an entity reference other than the five XML ones or a character reference, nesting
//! deeper than [`Limits::max_depth`], more than [`Limits::max_elements`] elements.
//!
//! # Sanitization
//! By allowlist (modelled on svg-hush and DOMPurify's SVG profile), with exact XML names, so
//! `<SCRIPT>`, `XLinK:HrEf` or `ONLOAD` are not on the list and go. Dropped: `script`,
//! `foreignObject`, `style` (after its rules are inlined), metadata, every element with a prefix
//! or not on the list (with its subtree), animations whose `attributeName` is `href`, `style` or an
//! `on*` handler (checked case-insensitively), every attribute not on the list (so all `on*`),
//! `href`/`xlink:href` unless a `#fragment` (or a PNG/JPEG/GIF/WebP `data:` URL on `image` and
//! `feImage`), CSS values (in `style`, presentation attributes, animation values, geometry
//! attributes) with a `url()` not pointing at `#fragment`, a function not on a short list, a
//! backslash escape, a comment or an at-rule; processing instructions, comments, the XML
//! declaration, and CDATA sections outside `<style>` (their content too: CDATA in a label is rare,
//! and dropping it is what the threat model asks). Kept: ids, `data-name`, `inkscape:label`,
//! `data-*`, `xml:space`, geometry, transforms, presentation attributes and text. The root always
//! declares the SVG and XLink namespaces. The output is canonical, so sanitizing it again gives
//! the same bytes and the same element index.
//!
//! # Flutter-ready styles
//! flutter_svg ignores `<style>` and `class`, so the simple rules of every `<style>` (selectors
//! made only of `.class` names, comma lists included) become presentation attributes on the
//! elements with those classes, whether the `<style>` comes before or after them. Precedence
//! follows the CSS cascade a browser applies to the designer's file: a class rule replaces a
//! presentation attribute of the same property, loses to the element's `style=""`, and a later
//! rule beats an earlier one.
//!
//! # Generated ids
//! Manual mapping and the report need an id for every shape an admin might click. Every
//! rendered closed shape (rect/circle/ellipse with a size, polygon, path with `Z`, polyline
//! back at its start) and `use` with a reference that has no `id` gets one while sanitizing:
//! `kv-` and 8 hex digits of a hash (word-wise FNV-1a with a final mixer, in
//! `parse::tag_hash`) of its sanitized start tag (name and attributes), `-2`, `-3`... for exact
//! duplicates in document order. Not inside `defs`, `symbol`, `clipPath`, `mask`, `pattern`,
//! `marker` or text. The same drawing gives the same ids, editing one shape leaves the
//! others' alone, and sanitizing the output again keeps them (they are ids now).
//!
//! # Mapping, colouring, geometry
//! See [`Siteplan::map_units`] (names, then text labels), [`Siteplan::map_units_with`]
//! (manual mappings), [`ColorTemplate::render`] (lot shapes only) and [`Siteplan::geometry`]
//! (one box and outline per unit).
//!
//! ```
//! use kavling_siteplan::{Limits, Siteplan};
//! let svg = br#"<svg viewBox="0 0 10 10"><rect id="A1" width="4" height="4"/></svg>"#;
//! let plan = Siteplan::parse(svg, &Limits::default()).unwrap();
//! let mapping = plan.map_units(&["A1", "A2"]);
//! assert_eq!(mapping.matched[0].element_id, "A1");
//! assert_eq!(mapping.units_without_element, ["A2"]);
//! // The engine knows no statuses: the caller says which colour each unit gets.
//! let coloured = plan.color_template(&mapping).render(|_| Some("#ef4444"));
//! assert!(coloured.contains(r##"fill="#ef4444""##));
//! ```

mod allow;
mod attrs;
mod color;
mod css;
mod error;
mod geometry;
mod ids;
mod labels;
mod parse;
#[doc(hidden)]
pub mod synth;

use std::sync::{Arc, OnceLock};

pub use color::ColorTemplate;
pub use error::{SvgError, SvgErrorKind};
pub use geometry::{BBox, Point, UnitGeometry};
pub use ids::{ElementWarning, ManualMapping, Mapping, MatchSource, MatchedUnit, UnmatchedElement};

/// Resource limits applied while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting allowed (the root is depth 1).
    pub max_depth: usize,
    /// Most elements allowed, counting dropped ones.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 256,
            max_elements: 500_000,
        }
    }
}

/// The root's coordinate system: its `viewBox`, else `0 0 width height`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewBox {
    /// Left edge.
    pub min_x: f64,
    /// Top edge.
    pub min_y: f64,
    /// Width (> 0).
    pub width: f64,
    /// Height (> 0).
    pub height: f64,
}

/// A parsed and sanitized siteplan with its element index. Cloning is cheap for the text (shared)
/// and copies the index.
#[derive(Clone)]
pub struct Siteplan {
    text: Arc<String>,
    nodes: Vec<parse::Node>,
    named: Vec<parse::Named>,
    gen_ids: Vec<(u32, parse::Span)>,
    view_box: Option<ViewBox>,
    shape_count: usize,
    removed: Vec<String>,
    /// Element ids to nodes, built on first use (parsing alone does not pay for it).
    index: OnceLock<ids::IdIndex>,
}

impl std::fmt::Debug for Siteplan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Siteplan")
            .field("sanitized_len", &self.text.len())
            .field("elements", &self.nodes.len())
            .field("view_box", &self.view_box)
            .finish()
    }
}

impl Siteplan {
    /// Parses, validates and sanitizes an SVG in one streaming pass and indexes its elements.
    /// Parsing the sanitized output again gives the same text and the same index.
    pub fn parse(svg: &[u8], limits: &Limits) -> Result<Siteplan, SvgError> {
        let p = parse::run(svg, limits)?;
        Ok(Siteplan {
            text: Arc::new(p.text),
            nodes: p.nodes,
            named: p.named,
            gen_ids: p.gen_ids,
            view_box: p.view_box,
            shape_count: p.shape_count,
            removed: p.removed,
            index: OnceLock::new(),
        })
    }

    /// The sanitized, Flutter-ready SVG text (what gets stored and served).
    pub fn sanitized(&self) -> &str {
        &self.text
    }

    /// Number of elements in the sanitized document.
    pub fn element_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of rendered closed shapes: rects, circles and ellipses with a size, polygons,
    /// closed paths and polylines, and `use` copies (not inside `defs`, `clipPath`, ... or text).
    pub fn shape_count(&self) -> usize {
        self.shape_count
    }

    /// What sanitizing removed that the drawing meant to show, each note with the fix: external
    /// or non-raster background images (`<image href="plan.png">`), external stylesheets
    /// (`<?xml-stylesheet?>`, `@import`, `<link>`) and fonts (`@font-face` sources,
    /// `font-face-uri`). Empty for an already sanitized text (those references are gone).
    pub fn removed(&self) -> &[String] {
        &self.removed
    }

    /// The root's `viewBox`, else its `width` and `height` (in px or unitless), else `None`.
    pub fn view_box(&self) -> Option<ViewBox> {
        self.view_box
    }

    /// Matches elements to the given block numbers.
    ///
    /// **By name.** Candidates are rendered groups and shapes (`g`, `path`, `rect`, `circle`,
    /// `ellipse`, `line`, `polyline`, `polygon`, `use`; not text, not inside
    /// `defs`/`clipPath`/`symbol`/..., not the root). Each is named by its `data-name`,
    /// `inkscape:label`, `<title>` child (source `label`) and `id` (source `id`; generated `kv-`
    /// ids name nothing), tried in that order at each rank, first hit wins:
    /// 1. exact equality with a block number, or a design tool's duplicate suffix of it
    ///    (Illustrator `A12_1_`, Figma `A12_2`: the same layer name drawn again);
    /// 2. after undoing export changes, only when that yields a block number: Illustrator
    ///    "Save As" `_xHH_` escapes (`_x31_2` is `12`), the `_` "Export As" puts before a
    ///    leading digit (`_91`);
    /// 3. normalised: case-insensitive, space `_` `-` `.` removed, and the words BLOK, BLOCK, NO,
    ///    NOMOR, KAV, KAVLING, LOT, UNIT, RUMAH dropped ("Blok A No 12", `A-12`, `unit-A12`).
    ///
    /// An element claims at most one unit; a unit may have several elements. When several
    /// claim one unit, an ancestor silently beats its descendants (the outermost group is the
    /// unit). Among the remaining (non-nested) claims every one at the best rank matches (a lot
    /// drawn as several shapes: duplicate suffixes, a `data-name` repeated on siblings), each a
    /// `matched` entry, with a warning naming them; claims at worse ranks lose, with a warning.
    /// Also warned: an `id` and `data-name` that disagree (`id="_91" data-name="81"`), names
    /// that look like block numbers (`E5`) but match no unit (never a design tool's own id such
    /// as `path1234` or `g6270`), names one leading word away from a unit (`Shop-1` for unit
    /// `1`: a hint, not a match), and units that become equal once normalised (those match only
    /// at ranks 1–2).
    ///
    /// **Not lots** (warned, never matched by name): an Inkscape layer
    /// (`inkscape:groupmode="layer"`), and a group holding other units' elements or the text
    /// labels of two other units. A matched group holding one other unit's text label (its
    /// name says 81, the text drawn in it reads 82) stays matched by its name, with a warning
    /// naming both values.
    ///
    /// **Unmatched elements** are listed once each: closed shapes of lot-like size in
    /// `candidates` (with a human label and a near-miss hint), the other named elements in
    /// `other_elements`; warnings about one element are also in `element_warnings`.
    ///
    /// **By text label** (source `text`), for units still without an element: a `<text>` not
    /// inside a matched unit whose content (its `<tspan>`s joined as words, trimmed) equals a
    /// block number exactly, once normalised, or once normalised with leading zeros dropped
    /// (`A03` is `A3` when that names exactly one unit), maps the closed shape its anchor lies
    /// in. The anchor is the text's (or first tspan's) x/y through every transform (nested
    /// `svg` x/y and viewBox too); when it lies in no shape, the centre of the text's estimated
    /// box is tried. Shapes are rects, circles, ellipses, polygons, closed paths and polylines
    /// (curves flattened, `fill-rule` honoured) and `use` copies (their referenced shapes under
    /// the use's x/y and transform), outside matched units and text-like groups. Nested shapes:
    /// the innermost is the candidate; a background (a box over half the drawing holding other
    /// shapes) never is. Warned and left unmatched: a label in two overlapping shapes that do not
    /// nest, a shape holding labels of two units, a unit whose label lies in two shapes, a label
    /// that looks like a block number but names no unit.
    pub fn map_units(&self, block_numbers: &[&str]) -> Mapping {
        self.map_units_with(block_numbers, &[])
    }

    /// [`Siteplan::map_units`], then the admin's manual mappings on top (source `manual`): a
    /// manually mapped element belongs to its unit whatever automatic matching said of it (a
    /// unit that had it loses it; inside an automatically matched group it is split out and
    /// coloured as its own unit; automatic matches inside it are dropped), and a unit mapped by
    /// hand keeps only its manual elements (the admin took it over). A manual entry whose
    /// element id is not mappable (see [`Siteplan::has_element`]) or whose block number is not
    /// given is skipped and named in `warnings`.
    pub fn map_units_with(&self, block_numbers: &[&str], manual: &[ManualMapping<'_>]) -> Mapping {
        ids::map_units(self.doc(), block_numbers, manual)
    }

    fn doc(&self) -> ids::Doc<'_> {
        ids::Doc {
            text: &self.text,
            nodes: &self.nodes,
            named: &self.named,
            gen_ids: &self.gen_ids,
            index: &self.index,
            view_box: self.view_box,
        }
    }

    /// Whether the document has a mappable element (a rendered group, shape or `use`, generated
    /// `kv-` ids included) with this id. O(log n) through an id index built on first use.
    pub fn has_element(&self, element_id: &str) -> bool {
        let doc = self.doc();
        doc.find_id(element_id)
            .is_some_and(|n| ids::is_mappable(doc.nodes, n))
    }

    /// One geometry per matched unit (not per element), in root user coordinates (the viewBox
    /// space: a root with `width="100%"` and a viewBox uses the viewBox's numbers).
    ///
    /// `bbox` is the union over the unit's elements and their rendered descendants, through
    /// every `transform` of them and their ancestors, nested `svg` x/y and `viewBox`
    /// (`xMidYMid meet`, or `none`; percentage sizes taken of the root viewBox), and `use`
    /// copies (their reference under the use's x/y and transform), with exact curve and arc
    /// extrema, plus half the stroke width (scaled by the transform) around shapes whose
    /// inherited `stroke` is set and not `none` (unlike `getBBox()`). Text (needs font metrics)
    /// is not measured; a unit drawn only with text is left out. `element_id` is the first
    /// element, `element_ids` all of them in document order.
    ///
    /// `outline` is a closed polygon (3–64 points, no repeated closing point) of the unit's
    /// largest lot shape (for a group: its lot shapes as colouring picks them; see
    /// [`ColorTemplate::render`]): the shape's largest ring, transformed and flattened (curves
    /// and arcs sampled), then simplified by Douglas–Peucker ranking to at most 64 points. A
    /// rect gives its 4 corners, a circle 32 points. A unit with no closed shape gets the convex
    /// hull of what it draws. The largest shape, not a hull of all shapes, because hulls of a
    /// lot with its house and tree would also take taps on the neighbouring street corner.
    pub fn geometry(&self, mapping: &Mapping) -> Vec<UnitGeometry> {
        labels::unit_geometry(self.doc(), mapping)
    }

    /// Precomputes the splice points for colouring the mapping's units.
    pub fn color_template(&self, mapping: &Mapping) -> ColorTemplate {
        ColorTemplate::build(Arc::clone(&self.text), self.doc(), mapping)
    }
}

#[cfg(test)]
mod tests;
