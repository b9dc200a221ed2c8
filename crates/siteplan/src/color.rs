//! Colouring by splicing: the sanitized text is cut once, at mapping time, around the `fill` and
//! `style` attributes of every element to paint, so a render is only string concatenation.

use std::sync::Arc;

use crate::css::{split_decl, split_decls};
use crate::geometry::Transforms;
use crate::ids::{Doc, Mapping};
use crate::labels::lot_shapes;
use crate::parse::{NONE, decode_lossy, for_each_attr, push_escaped};

/// Whether a colour string can be written into an attribute and a `style` safely.
fn color_ok(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 64
        && c.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'#' | b'(' | b')' | b',' | b'.' | b'%' | b' ')
        })
}

#[derive(Clone, Copy, Debug)]
enum Piece {
    /// A slice of the sanitized text.
    Text { start: u32, end: u32 },
    /// The paint attributes of one element. Without a colour, the element's original `fill` and
    /// `style` attributes (cut out of the text around it) are written back instead.
    Paint {
        unit: u32,
        rest_start: u32,
        rest_end: u32,
        fill: (u32, u32),
        style: (u32, u32),
    },
}

/// Precomputed splice points into the sanitized text for colouring matched units.
#[derive(Clone, Debug)]
pub struct ColorTemplate {
    text: Arc<String>,
    /// Other `style` declarations of painted elements, pre-escaped, each starting with `;`.
    lits: String,
    pieces: Vec<Piece>,
    /// Block number of each unit index.
    units: Vec<String>,
}

impl ColorTemplate {
    pub(crate) fn build(text: Arc<String>, doc: Doc<'_>, mapping: &Mapping) -> ColorTemplate {
        let t = text.as_str();
        let nodes = doc.nodes;
        let mut xf = Transforms::new(doc.text, nodes, doc.view_box);
        // Each entry paints its lot shape(s); where entries overlap (an element mapped by hand
        // inside an automatic group), the innermost matched element wins.
        let mut owner = vec![NONE; nodes.len()];
        let mut owner_node = vec![NONE; nodes.len()];
        for (i, &n) in mapping.nodes.iter().enumerate() {
            for s in lot_shapes(doc, &mut xf, n) {
                let s = s as usize;
                if s < owner.len() && (owner_node[s] == NONE || owner_node[s] < n) {
                    owner[s] = i as u32;
                    owner_node[s] = n;
                }
            }
        }
        let mut pieces = Vec::new();
        let mut lits = String::new();
        let mut cursor = 0u32;
        let push_text = |pieces: &mut Vec<Piece>, start: u32, end: u32| {
            if end > start {
                pieces.push(Piece::Text { start, end });
            }
        };
        for (i, nd) in nodes.iter().enumerate() {
            let unit = owner[i];
            if unit == NONE {
                continue;
            }
            let mut fill = (0u32, 0u32);
            let mut style = (0u32, 0u32);
            let mut style_value = None;
            for_each_attr(t, nd, |k, v, whole| match k {
                "fill" => fill = (whole.start, whole.start + whole.len),
                "style" => {
                    style = (whole.start, whole.start + whole.len);
                    style_value = Some(v);
                }
                _ => {}
            });
            let rest_start = lits.len() as u32;
            if let Some(v) = style_value {
                let decoded = decode_lossy(&t[v.range()]);
                for d in split_decls(&decoded) {
                    let d = d.trim();
                    if d.is_empty()
                        || split_decl(d).is_some_and(|(p, _)| p.eq_ignore_ascii_case("fill"))
                    {
                        continue;
                    }
                    lits.push(';');
                    push_escaped(&mut lits, d);
                }
            }
            let tag = &t[nd.tag_start as usize..nd.tag_end as usize];
            let name_len = tag[1..]
                .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
                .unwrap_or(tag.len() - 1);
            let name_end = nd.tag_start + 1 + name_len as u32;
            push_text(&mut pieces, cursor, name_end);
            pieces.push(Piece::Paint {
                unit,
                rest_start,
                rest_end: lits.len() as u32,
                fill,
                style,
            });
            cursor = name_end;
            let mut cuts = [fill, style];
            cuts.sort_unstable();
            for (s, e) in cuts {
                if e > s {
                    push_text(&mut pieces, cursor, s);
                    cursor = e;
                }
            }
        }
        push_text(&mut pieces, cursor, t.len() as u32);
        ColorTemplate {
            units: mapping
                .matched
                .iter()
                .map(|m| m.block_number.clone())
                .collect(),
            text,
            lits,
            pieces,
        }
    }

    /// Renders the siteplan with each matched unit painted in `color_of(block_number)`.
    /// A unit without a colour (or with a colour that is not a plain CSS colour) keeps its
    /// original paint. Sets `fill` and `style="fill:…"` on each unit's lot shape(s) only: a
    /// matched shape or `use` itself; for a matched group, its filled closed shapes that are not
    /// text, not inside a text-like group (`Labels`, `text`, `nomor`, ...), not glyph-like (a
    /// path under 4 % of the largest shape's box area) and not `fill="none"` strokes, else its
    /// largest closed shape. The group element itself is not painted, so labels, glyphs and
    /// lines that inherit their paint keep it. A `use` is painted on the `use` element: the
    /// referenced shapes show the colour only where they do not set a fill of their own (a
    /// symbol whose shapes carry `fill` keeps it).
    pub fn render<'c>(&self, color_of: impl Fn(&str) -> Option<&'c str>) -> String {
        let mut out = String::new();
        self.render_into(&mut out, color_of);
        out
    }

    /// Like [`ColorTemplate::render`], writing into `out` (cleared first) so a caller can reuse
    /// one buffer across renders.
    pub fn render_into<'c>(&self, out: &mut String, color_of: impl Fn(&str) -> Option<&'c str>) {
        let colors: Vec<Option<&str>> = self
            .units
            .iter()
            .map(|u| color_of(u).filter(|c| color_ok(c)))
            .collect();
        let t = self.text.as_str();
        out.clear();
        out.reserve(t.len() + self.lits.len() + self.pieces.len() * 24);
        for p in &self.pieces {
            match *p {
                Piece::Text { start, end } => out.push_str(&t[start as usize..end as usize]),
                Piece::Paint {
                    unit,
                    rest_start,
                    rest_end,
                    fill,
                    style,
                } => match colors.get(unit as usize).copied().flatten() {
                    Some(c) => {
                        out.push_str(" fill=\"");
                        out.push_str(c);
                        out.push_str("\" style=\"fill:");
                        out.push_str(c);
                        out.push_str(&self.lits[rest_start as usize..rest_end as usize]);
                        out.push('"');
                    }
                    None => {
                        out.push_str(&t[fill.0 as usize..fill.1 as usize]);
                        out.push_str(&t[style.0 as usize..style.1 as usize]);
                    }
                },
            }
        }
    }

    /// Number of units this template can colour.
    pub fn unit_count(&self) -> usize {
        self.units.len()
    }
}
