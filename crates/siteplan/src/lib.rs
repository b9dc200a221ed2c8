//! Siteplan SVG engine: parse an uploaded siteplan in one streaming pass, sanitize it by
//! allowlist into Flutter-ready SVG, index its elements, map element ids to units, compute unit
//! geometry, and colour units by status through a precomputed splice template.
//!
//! ```
//! use kavling_siteplan::{Limits, Palette, Siteplan};
//! let svg = br#"<svg viewBox="0 0 10 10"><rect id="A1" width="4" height="4"/></svg>"#;
//! let plan = Siteplan::parse(svg, &Limits::default()).unwrap();
//! let mapping = plan.map_units(&["A1", "A2"]);
//! assert_eq!(mapping.matched[0].element_id, "A1");
//! assert_eq!(mapping.units_without_element, ["A2"]);
//! let palette = Palette::default();
//! let coloured = plan.color_template(&mapping).render(|_| palette.color("SOLD"));
//! assert!(coloured.contains(r##"fill="#ef4444""##));
//! ```

mod allow;
mod color;
mod css;
mod error;
mod geometry;
mod ids;
mod parse;
#[doc(hidden)]
pub mod synth;

use std::sync::Arc;

pub use color::{ColorTemplate, Palette, STATUS_COLORS};
pub use error::{SvgError, SvgErrorKind};
pub use geometry::{BBox, Point, UnitGeometry};
pub use ids::{Mapping, MatchedUnit};

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

/// A parsed and sanitized siteplan with its element index.
pub struct Siteplan {
    text: Arc<String>,
    nodes: Vec<parse::Node>,
    named: Vec<parse::Named>,
    view_box: Option<ViewBox>,
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
            view_box: p.view_box,
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

    /// The root's `viewBox`, else its `width` and `height` (in px or unitless), else `None`.
    pub fn view_box(&self) -> Option<ViewBox> {
        self.view_box
    }

    /// Matches elements to the given block numbers (see the ranking in the crate docs of `ids`).
    pub fn map_units(&self, block_numbers: &[&str]) -> Mapping {
        ids::map_units(&self.text, &self.nodes, &self.named, block_numbers)
    }

    /// Bounding box and centre of each matched unit in root user coordinates. Units whose
    /// element has no measurable shape (only text, or only `use`) are left out.
    pub fn geometry(&self, mapping: &Mapping) -> Vec<UnitGeometry> {
        mapping
            .matched
            .iter()
            .zip(&mapping.nodes)
            .filter_map(|(m, &node)| {
                let bbox = geometry::node_bbox(&self.text, &self.nodes, node)?;
                Some(UnitGeometry {
                    block_number: m.block_number.clone(),
                    element_id: m.element_id.clone(),
                    bbox,
                    center: Point {
                        x: bbox.x + bbox.width / 2.0,
                        y: bbox.y + bbox.height / 2.0,
                    },
                })
            })
            .collect()
    }

    /// Precomputes the splice points for colouring the mapping's units.
    pub fn color_template(&self, mapping: &Mapping) -> ColorTemplate {
        ColorTemplate::build(Arc::clone(&self.text), &self.nodes, mapping)
    }
}

#[cfg(test)]
mod tests;
