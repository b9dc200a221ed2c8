//! Text labels: a `<text>` naming a unit maps the one closed shape its anchor lies in.
//!
//! Shapes are flattened once (curves sampled, through every transform, `<use>` resolved) and put
//! in a uniform grid over their boxes, so each label tests only the few shapes of its cell.
//! Ambiguities are warnings, never guesses: the innermost of nested shapes is the candidate (a
//! lot inside a block outline inside a background), two overlapping shapes that are not nested
//! match nothing, a shape holding labels of two units matches neither, and a unit whose label
//! lies in two shapes matches neither. A background (a shape whose box covers half the drawing
//! or more and holds other shapes) never takes a label.

use std::borrow::Cow;

use crate::allow::Kind;
use crate::css::{split_decl, split_decls};
use crate::geometry::{Affine, Ring, Transforms, ring_area, shape_rings, winding};
use crate::ids::{Doc, Units, Warnings, looks_like_block, node_text_like};
use crate::parse::{NONE, Node, decode_lossy, for_each_attr};

/// How deep `<use>` references are followed (a use of a group holding uses...).
const MAX_USE_DEPTH: u32 = 4;

/// A node's own value of a presentation property: its `style` declaration, else its attribute.
pub(crate) fn own_property(text: &str, node: &Node, name: &str) -> Option<String> {
    let mut attr = None;
    let mut style = None;
    for_each_attr(text, node, |k, v, _| {
        if k == name {
            attr = Some(decode_lossy(&text[v.range()]).trim().to_string());
        } else if k == "style" {
            let d = decode_lossy(&text[v.range()]);
            for decl in split_decls(&d) {
                if let Some((p, val)) = split_decl(decl)
                    && p.eq_ignore_ascii_case(name)
                {
                    style = Some(val.trim_end_matches("!important").trim().to_string());
                }
            }
        }
    });
    style.or(attr)
}

/// The inherited value of a property: the nearest ancestor-or-self that sets it.
pub(crate) fn property(text: &str, nodes: &[Node], node: u32, name: &str) -> Option<String> {
    let mut n = node;
    while let Some(nd) = nodes.get(n as usize) {
        if let Some(v) = own_property(text, nd, name).filter(|v| v != "inherit") {
            return Some(v);
        }
        n = nd.parent;
    }
    None
}

/// Whether the shape is painted `fill="none"` (by itself or inherited).
pub(crate) fn fill_none(text: &str, nodes: &[Node], node: u32) -> bool {
    property(text, nodes, node, "fill").is_some_and(|f| f.eq_ignore_ascii_case("none"))
}

/// Whether an element is a closed shape: rect, circle, ellipse, polygon, a path with `Z`, a
/// polyline that returns to its start, or a `use` copy.
pub(crate) fn is_closed(_text: &str, node: &Node) -> bool {
    // Decided once while parsing.
    node.closed
}

/// A flattened closed shape in root user space.
pub(crate) struct Shape {
    pub node: u32,
    pub rings: Vec<Ring>,
    /// min x, min y, max x, max y.
    pub bbox: [f64; 4],
    pub area: f64,
    pub evenodd: bool,
}

impl Shape {
    pub(crate) fn contains(&self, p: (f64, f64)) -> bool {
        let [x0, y0, x1, y1] = self.bbox;
        if p.0 < x0 || p.0 > x1 || p.1 < y0 || p.1 > y1 {
            return false;
        }
        let mut total = 0i32;
        let mut odd = false;
        for r in &self.rings {
            let (w, o) = winding(r, p);
            total += w;
            odd ^= o;
        }
        if self.evenodd { odd } else { total != 0 }
    }
}

/// The rings a node draws: its own shape, or for a `use` the closed shapes of what it refers
/// to under the use's transform and x/y.
pub(crate) fn node_rings(doc: Doc<'_>, xf: &mut Transforms<'_>, node: u32, out: &mut Vec<Ring>) {
    let Some(nd) = doc.nodes.get(node as usize) else {
        return;
    };
    if nd.kind == Kind::Use {
        let base = xf.content(node).then(use_offset(doc.text, nd));
        use_rings(doc, base, nd, out, 0, &mut xf.use_budget);
    } else {
        shape_rings(doc.text, nd, xf.content(node), out);
    }
}

/// The use's `x`/`y` as a translation (its `transform` is part of its content transform).
pub(crate) fn use_offset(text: &str, node: &Node) -> Affine {
    let (mut x, mut y) = (0.0, 0.0);
    for_each_attr(text, node, |k, v, _| {
        let val = || crate::parse::parse_length(&decode_lossy(&text[v.range()])).unwrap_or(0.0);
        match k {
            "x" => x = val(),
            "y" => y = val(),
            _ => {}
        }
    });
    Affine::translate(x, y)
}

/// The node a `use` refers to (`href` or `xlink:href` = `#id`).
pub(crate) fn use_target(doc: Doc<'_>, node: &Node) -> Option<u32> {
    let mut target: Option<Cow<'_, str>> = None;
    for_each_attr(doc.text, node, |k, v, _| {
        if k == "href" || (k == "xlink:href" && target.is_none()) {
            target = Some(decode_lossy(&doc.text[v.range()]));
        }
    });
    let id = target?;
    let id = id.trim().strip_prefix('#')?;
    doc.find_id(id)
}

fn use_rings(
    doc: Doc<'_>,
    base: Affine,
    use_node: &Node,
    out: &mut Vec<Ring>,
    depth: u32,
    budget: &mut usize,
) {
    if depth >= MAX_USE_DEPTH || *budget == 0 {
        return;
    }
    let Some(target) = use_target(doc, use_node) else {
        return;
    };
    let nodes = doc.nodes;
    let Some(t) = nodes.get(target as usize) else {
        return;
    };
    let first = target as usize;
    let end = (t.end as usize).min(nodes.len());
    // Content transforms inside the referenced subtree, relative to `base`.
    let mut content: Vec<Affine> = Vec::with_capacity(end.saturating_sub(first));
    for (i, nd) in nodes.iter().enumerate().take(end).skip(first) {
        let pm = if i == first {
            base
        } else {
            content
                .get((nd.parent as usize).wrapping_sub(first))
                .copied()
                .unwrap_or(base)
        };
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let m = pm.then(crate::geometry::own_transform_in(
            doc.text,
            nd,
            None,
            doc.view_box,
        ));
        content.push(m);
        if nd.in_text {
            continue;
        }
        match nd.kind {
            Kind::Use => use_rings(
                doc,
                m.then(use_offset(doc.text, nd)),
                nd,
                out,
                depth + 1,
                budget,
            ),
            Kind::Path
            | Kind::Rect
            | Kind::Circle
            | Kind::Ellipse
            | Kind::Polygon
            | Kind::Polyline
                if is_closed(doc.text, nd) =>
            {
                shape_rings(doc.text, nd, m, out);
            }
            _ => {}
        }
    }
}

/// Flattens one node into a [`Shape`], if it draws anything.
pub(crate) fn shape_of(doc: Doc<'_>, xf: &mut Transforms<'_>, node: u32) -> Option<Shape> {
    let mut rings = Vec::new();
    node_rings(doc, xf, node, &mut rings);
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    let mut area = 0.0;
    for r in &rings {
        for &(x, y) in r {
            b[0] = b[0].min(x);
            b[1] = b[1].min(y);
            b[2] = b[2].max(x);
            b[3] = b[3].max(y);
        }
        area += ring_area(r).abs();
    }
    if !(b[0] <= b[2] && b[1] <= b[3]) {
        return None;
    }
    let evenodd = property(doc.text, doc.nodes, node, "fill-rule").is_some_and(|v| v == "evenodd");
    Some(Shape {
        node,
        rings,
        bbox: b,
        area,
        evenodd,
    })
}

/// The text content of a `<text>`: its pieces (`<tspan>`s) joined, references decoded, trimmed.
pub(crate) fn text_content(text: &str, node: &Node) -> String {
    let mut out = String::new();
    let mut rest = text.get(node.tag_end as usize..).unwrap_or("");
    if text
        .get(node.tag_start as usize..node.tag_end as usize)
        .is_some_and(|t| t.ends_with("/>"))
    {
        return out;
    }
    let mut depth = 0usize;
    // Text inside `<title>`/`<desc>` children is not drawn.
    let mut skip_depth: Option<usize> = None;
    while let Some(lt) = rest.find('<') {
        if skip_depth.is_none() {
            out.push_str(&decode_lossy(&rest[..lt]));
        }
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        let tag = &rest[lt..lt + gt + 1];
        rest = &rest[lt + gt + 1..];
        // Each tspan is a piece of its own (often a line of its own): keep the words apart.
        if tag.starts_with("<tspan") && !out.is_empty() && !out.ends_with(char::is_whitespace) {
            out.push(' ');
        }
        if tag.starts_with("</") {
            if depth == 0 {
                break;
            }
            depth -= 1;
            if skip_depth == Some(depth) {
                skip_depth = None;
            }
        } else if !tag.ends_with("/>") {
            if skip_depth.is_none() && (tag.starts_with("<title") || tag.starts_with("<desc")) {
                skip_depth = Some(depth);
            }
            depth += 1;
        }
        if out.len() > 256 {
            break;
        }
    }
    out.trim().to_string()
}

/// The first number of an `x`/`y` list attribute.
fn first_coord(text: &str, node: &Node, name: &str) -> Option<f64> {
    let mut v = None;
    for_each_attr(text, node, |k, s, _| {
        if k == name {
            v = crate::geometry::numbers(&decode_lossy(&text[s.range()]))
                .first()
                .copied();
        }
    });
    v
}

/// The anchor of a text: its x/y (else its first tspan's), in root user space, and a guess at
/// the centre of its box (for labels whose baseline start misses the shape).
fn anchors(doc: Doc<'_>, xf: &mut Transforms<'_>, t: u32, content: &str) -> [(f64, f64); 2] {
    let nodes = doc.nodes;
    let nd = &nodes[t as usize];
    let mut x = first_coord(doc.text, nd, "x");
    let mut y = first_coord(doc.text, nd, "y");
    for c in nodes
        .get(t as usize + 1..nd.end as usize)
        .into_iter()
        .flatten()
    {
        if x.is_some() && y.is_some() {
            break;
        }
        if c.kind == Kind::Text {
            x = x.or_else(|| first_coord(doc.text, c, "x"));
            y = y.or_else(|| first_coord(doc.text, c, "y"));
        }
    }
    let (x, y) = (x.unwrap_or(0.0), y.unwrap_or(0.0));
    let m = xf.content(t);
    let size = property(doc.text, nodes, t, "font-size")
        .and_then(|s| crate::parse::parse_length(&s))
        .unwrap_or(16.0);
    let width = content.chars().count() as f64 * size * 0.6;
    let dx = match property(doc.text, nodes, t, "text-anchor").as_deref() {
        Some("middle") => 0.0,
        Some("end") => -width / 2.0,
        _ => width / 2.0,
    };
    [m.apply(x, y), m.apply(x + dx, y - size * 0.35)]
}

/// A uniform grid over shape boxes.
struct Grid {
    x0: f64,
    y0: f64,
    cw: f64,
    ch: f64,
    nx: usize,
    ny: usize,
    cells: Vec<Vec<u32>>,
    /// Shapes covering a large part of the grid, tested for every point.
    big: Vec<u32>,
}

impl Grid {
    fn new(shapes: &[Shape]) -> Grid {
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for s in shapes {
            b[0] = b[0].min(s.bbox[0]);
            b[1] = b[1].min(s.bbox[1]);
            b[2] = b[2].max(s.bbox[2]);
            b[3] = b[3].max(s.bbox[3]);
        }
        let side = ((shapes.len() as f64).sqrt().ceil() as usize).clamp(1, 512);
        let (w, h) = ((b[2] - b[0]).max(1e-9), (b[3] - b[1]).max(1e-9));
        let mut g = Grid {
            x0: b[0],
            y0: b[1],
            cw: w / side as f64,
            ch: h / side as f64,
            nx: side,
            ny: side,
            cells: vec![Vec::new(); side * side],
            big: Vec::new(),
        };
        for (i, s) in shapes.iter().enumerate() {
            let (cx0, cy0) = g.cell(s.bbox[0], s.bbox[1]);
            let (cx1, cy1) = g.cell(s.bbox[2], s.bbox[3]);
            if (cx1.saturating_sub(cx0) + 1) * (cy1.saturating_sub(cy0) + 1) > 64 {
                g.big.push(i as u32);
                continue;
            }
            for cy in cy0..=cy1 {
                for cx in cx0..=cx1 {
                    if let Some(c) = g.cells.get_mut(cy * g.nx + cx) {
                        c.push(i as u32);
                    }
                }
            }
        }
        g
    }

    fn cell(&self, x: f64, y: f64) -> (usize, usize) {
        let cx = ((x - self.x0) / self.cw).floor();
        let cy = ((y - self.y0) / self.ch).floor();
        let clamp = |v: f64, n: usize| {
            if v.is_finite() {
                (v.max(0.0) as usize).min(n - 1)
            } else {
                0
            }
        };
        (clamp(cx, self.nx), clamp(cy, self.ny))
    }

    fn candidates(&self, p: (f64, f64)) -> impl Iterator<Item = u32> + '_ {
        let (cx, cy) = self.cell(p.0, p.1);
        self.cells
            .get(cy * self.nx + cx)
            .into_iter()
            .flatten()
            .chain(&self.big)
            .copied()
    }
}

/// Shape for a label point: the innermost containing shape, `Err` listing them when they overlap
/// without nesting.
fn locate(shapes: &[Shape], grid: &Grid, p: (f64, f64)) -> Result<Option<u32>, Vec<u32>> {
    let mut inside: Vec<u32> = grid
        .candidates(p)
        .filter(|&i| shapes[i as usize].contains(p))
        .collect();
    if inside.len() <= 1 {
        return Ok(inside.first().copied());
    }
    inside.sort_by(|&a, &b| shapes[a as usize].area.total_cmp(&shapes[b as usize].area));
    let s = &shapes[inside[0] as usize];
    let eps = 1e-6 * (1.0 + s.bbox[2].abs().max(s.bbox[3].abs()));
    let nested = inside[1..].iter().all(|&o| {
        let b = shapes[o as usize].bbox;
        b[0] <= s.bbox[0] + eps
            && b[1] <= s.bbox[1] + eps
            && b[2] >= s.bbox[2] - eps
            && b[3] >= s.bbox[3] - eps
            && shapes[o as usize].area > s.area
    });
    if nested {
        Ok(Some(inside[0]))
    } else {
        Err(inside)
    }
}

/// Texts outside every matched element drawn over a name-matched element's lot shape that name
/// another unit, or a block number no unit has: `(text node, element node, element's unit,
/// content)`. Measures nothing when there is no such text (labels inside their own groups, or
/// drawings matched by text only).
pub(crate) fn texts_over_matched(
    doc: Doc<'_>,
    units: &mut Units<'_>,
    matched: &[(u32, u32)],
    covered: &[bool],
) -> Vec<(u32, u32, u32, String)> {
    let nodes = doc.nodes;
    if matched.is_empty() {
        return Vec::new();
    }
    let mut texts = Vec::new();
    let mut i = 0;
    while let Some(n) = nodes.get(i) {
        // A covered node's whole subtree is covered: skip it in one step.
        if covered.get(i).copied().unwrap_or(true) {
            i = (n.end as usize).max(i + 1);
            continue;
        }
        i += 1;
        if n.kind != Kind::Text
            || n.hidden
            || nodes.get(n.parent as usize).is_none_or(|p| p.in_text)
        {
            continue;
        }
        let content = text_content(doc.text, n);
        if content.is_empty() {
            continue;
        }
        let named = units.for_label(&content);
        if matches!(named, Ok(Some(_))) || looks_like_block(&content) {
            texts.push(((i - 1) as u32, content, named));
        }
    }
    if texts.is_empty() {
        return Vec::new();
    }
    let mut xf = Transforms::new(doc.text, nodes, doc.view_box);
    let mut shapes = Vec::new();
    let mut owner = Vec::new();
    for &(node, unit) in matched {
        for s in lot_shapes(doc, &mut xf, node) {
            if let Some(shape) = shape_of(doc, &mut xf, s) {
                shapes.push(shape);
                owner.push((node, unit));
            }
        }
    }
    if shapes.is_empty() {
        return Vec::new();
    }
    let grid = Grid::new(&shapes);
    let mut out = Vec::new();
    for (t, content, named) in texts {
        let [p, _] = anchors(doc, &mut xf, t, &content);
        let Ok(Some(s)) = locate(&shapes, &grid, p) else {
            continue;
        };
        let (node, unit) = owner[s as usize];
        if named != Ok(Some(unit)) {
            out.push((t, node, unit, content));
        }
    }
    out
}

/// Maps units (still without an element) to the shapes their text labels lie in.
pub(crate) fn match_text_labels(
    doc: Doc<'_>,
    units: &mut Units<'_>,
    has_hit: &[bool],
    covered: &[bool],
    warnings: &mut Warnings,
) -> Vec<(u32, u32)> {
    let nodes = doc.nodes;
    let text = doc.text;
    // (unit, text node, content)
    let mut labels: Vec<(u32, u32, String)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        // A text inside a matched unit is that unit's own label.
        if n.kind != Kind::Text
            || covered[i]
            || n.hidden
            || nodes.get(n.parent as usize).is_none_or(|p| p.in_text)
        {
            continue;
        }
        let content = text_content(text, n);
        if content.is_empty() {
            continue;
        }
        match units.for_label(&content) {
            Ok(Some(u)) => {
                if !has_hit.get(u as usize).copied().unwrap_or(true) {
                    labels.push((u, i as u32, content));
                }
            }
            Ok(None) => {
                if looks_like_block(&content) {
                    warnings.add(|| {
                        format!("text label \"{content}\" looks like a block number but no such unit exists")
                    });
                }
            }
            Err(()) => warnings.add(|| {
                format!("text label \"{content}\" could be any of several units once normalised; it was not matched")
            }),
        }
    }
    if labels.is_empty() {
        return Vec::new();
    }

    let mut xf = Transforms::new(text, nodes, doc.view_box);
    // Closed shapes outside matched units and outside text-like groups.
    let mut text_like = vec![false; nodes.len()];
    let mut shapes: Vec<Shape> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let parent_tl =
            n.parent != NONE && text_like.get(n.parent as usize).copied().unwrap_or(false);
        text_like[i] = parent_tl || node_text_like(text, nodes, doc.named, i as u32);
        if !matches!(
            n.kind,
            Kind::Path
                | Kind::Rect
                | Kind::Circle
                | Kind::Ellipse
                | Kind::Polygon
                | Kind::Polyline
                | Kind::Use
        ) || n.hidden
            || n.in_text
            || n.parent == NONE
            || covered[i]
            || text_like[i]
            || !is_closed(text, n)
        {
            continue;
        }
        if let Some(s) = shape_of(doc, &mut xf, i as u32) {
            shapes.push(s);
        }
    }
    // A background (a box over half the drawing or more, with other shapes on it) never takes a
    // label: it would catch every label whose lot is not drawn as a closed shape.
    let area_of = |b: [f64; 4]| (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    let drawing = match doc.view_box {
        Some(v) => v.width * v.height,
        None => {
            let mut u = [
                f64::INFINITY,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NEG_INFINITY,
            ];
            for s in &shapes {
                u = [
                    u[0].min(s.bbox[0]),
                    u[1].min(s.bbox[1]),
                    u[2].max(s.bbox[2]),
                    u[3].max(s.bbox[3]),
                ];
            }
            area_of(u)
        }
    };
    let big: Vec<usize> = (0..shapes.len())
        .filter(|&i| area_of(shapes[i].bbox) >= drawing * 0.5)
        .collect();
    let within =
        |o: [f64; 4], b: [f64; 4]| o[0] >= b[0] && o[1] >= b[1] && o[2] <= b[2] && o[3] <= b[3];
    let backgrounds: Vec<usize> = big
        .into_iter()
        .filter(|&i| {
            shapes
                .iter()
                .enumerate()
                .any(|(j, o)| j != i && within(o.bbox, shapes[i].bbox))
        })
        .collect();
    let mut k = 0;
    shapes.retain(|_| {
        k += 1;
        !backgrounds.contains(&(k - 1))
    });
    if shapes.is_empty() {
        return Vec::new();
    }
    let grid = Grid::new(&shapes);
    let id_of = |s: u32| doc.display(shapes[s as usize].node);

    // (shape, unit) for every located label.
    let mut placed: Vec<(u32, u32)> = Vec::new();
    for (unit, t, content) in &labels {
        let [a, centre] = anchors(doc, &mut xf, *t, content);
        let mut r = locate(&shapes, &grid, a);
        if matches!(r, Ok(None)) {
            r = locate(&shapes, &grid, centre);
        }
        match r {
            Ok(Some(s)) => placed.push((s, *unit)),
            Ok(None) => {}
            Err(list) => {
                let ids: Vec<String> = list.iter().map(|&s| format!("\"{}\"", id_of(s))).collect();
                warnings.add(|| {
                    format!(
                        "text label \"{content}\" lies in {} overlapping shapes ({}); it was not matched",
                        ids.len(),
                        ids.join(", ")
                    )
                });
            }
        }
    }
    placed.sort_unstable();
    placed.dedup();
    let mut out = Vec::new();
    let mut bad_units: Vec<u32> = Vec::new();
    // A unit whose label lies in two shapes matches neither.
    let mut by_unit = placed.clone();
    by_unit.sort_unstable_by_key(|&(s, u)| (u, s));
    let mut i = 0;
    while i < by_unit.len() {
        let u = by_unit[i].1;
        let j = i + by_unit[i..].iter().take_while(|p| p.1 == u).count();
        if j - i > 1 {
            bad_units.push(u);
            let ids: Vec<String> = by_unit[i..j]
                .iter()
                .map(|p| format!("\"{}\"", id_of(p.0)))
                .collect();
            warnings.add(|| {
                format!(
                    "unit {}'s text label lies in {} shapes ({}); it was not matched",
                    units.list[u as usize],
                    ids.len(),
                    ids.join(", ")
                )
            });
        }
        i = j;
    }
    let mut i = 0;
    while i < placed.len() {
        let s = placed[i].0;
        let j = i + placed[i..].iter().take_while(|p| p.0 == s).count();
        if j - i > 1 {
            let names: Vec<&str> = placed[i..j]
                .iter()
                .map(|p| units.list[p.1 as usize])
                .collect();
            warnings.add(|| {
                format!(
                    "shape \"{}\" holds the text labels of several units ({}); it was not matched",
                    id_of(s),
                    names.join(", ")
                )
            });
        } else if !bad_units.contains(&placed[i].1) {
            out.push((placed[i].1, shapes[s as usize].node));
        }
        i = j;
    }
    out
}

/// Fillable closed kinds a lot can be drawn with.
fn lot_kind(k: Kind) -> bool {
    matches!(
        k,
        Kind::Path
            | Kind::Rect
            | Kind::Circle
            | Kind::Ellipse
            | Kind::Polygon
            | Kind::Polyline
            | Kind::Use
    )
}

/// A path smaller than this share of the unit's largest shape is taken for a glyph.
const GLYPH_SHARE: f64 = 0.04;

/// The lot shape(s) of a matched element: the element itself when it is a shape; for a group,
/// its closed shapes that are filled (not `fill="none"`), not inside text or a text-like group,
/// and not glyph-like (a path under 4 % of the largest shape's box area, as outlined label
/// glyphs are); if that leaves nothing, its largest closed shape.
pub(crate) fn lot_shapes(doc: Doc<'_>, xf: &mut Transforms<'_>, node: u32) -> Vec<u32> {
    let nodes = doc.nodes;
    let text = doc.text;
    let Some(n) = nodes.get(node as usize) else {
        return Vec::new();
    };
    if n.kind != Kind::G && n.kind != Kind::A && n.kind != Kind::Svg {
        // An open path, polyline or line has no area of its own: filling it would paint the
        // wedge its ends enclose, so it keeps its paint.
        let area = matches!(
            n.kind,
            Kind::Rect | Kind::Circle | Kind::Ellipse | Kind::Polygon | Kind::Use
        ) || n.closed;
        return if lot_kind(n.kind) && area {
            vec![node]
        } else {
            Vec::new()
        };
    }
    let first = node as usize + 1;
    let end = (n.end as usize).min(nodes.len());
    let mut text_like = vec![false; end.saturating_sub(first)];
    let mut closed: Vec<u32> = Vec::new();
    let mut filled: Vec<u32> = Vec::new();
    for (i, d) in nodes.iter().enumerate().take(end).skip(first) {
        let parent_tl = (d.parent as usize) >= first
            && text_like
                .get(d.parent as usize - first)
                .copied()
                .unwrap_or(false);
        let tl = parent_tl || node_text_like(text, nodes, doc.named, i as u32);
        text_like[i - first] = tl;
        // Rects, circles, ellipses, polygons and uses are closed by kind (even without a size,
        // painting them is harmless); paths and polylines only when they close.
        let closed_kind = matches!(
            d.kind,
            Kind::Rect | Kind::Circle | Kind::Ellipse | Kind::Polygon | Kind::Use
        ) || d.closed;
        if tl || d.hidden || d.in_text || !lot_kind(d.kind) || !closed_kind {
            continue;
        }
        closed.push(i as u32);
        if !fill_none(text, nodes, i as u32) {
            filled.push(i as u32);
        }
    }
    let is_path = |i: &u32| nodes[*i as usize].kind == Kind::Path;
    let paths = filled.iter().filter(|i| is_path(i)).count();
    // Sizes are only measured when a path could be a glyph: several paths, or one drawn above
    // another shape (a lot is drawn first, its decorations over it).
    let glyph_possible = paths >= 2 || (paths == 1 && filled.first().is_some_and(|f| !is_path(f)));
    if glyph_possible || filled.is_empty() && closed.len() > 1 {
        let areas: Vec<(u32, f64)> = (if filled.is_empty() { &closed } else { &filled })
            .iter()
            .map(|&i| {
                let a = shape_of(doc, xf, i)
                    .map_or(0.0, |s| (s.bbox[2] - s.bbox[0]) * (s.bbox[3] - s.bbox[1]));
                (i, a)
            })
            .collect();
        let max = areas.iter().map(|a| a.1).fold(0.0, f64::max);
        if filled.is_empty() {
            return areas
                .iter()
                .find(|a| a.1 == max)
                .map(|a| vec![a.0])
                .unwrap_or_default();
        }
        filled = areas
            .iter()
            .filter(|&&(i, a)| nodes[i as usize].kind != Kind::Path || a >= max * GLYPH_SHARE)
            .map(|a| a.0)
            .collect();
    }
    if filled.is_empty() {
        return closed.first().map(|&c| vec![c]).unwrap_or_default();
    }
    filled
}

/// Which of `shapes` are of lot-like size: a box area within 10× of the drawing's typical lot
/// (the median of 3 matched elements' largest lot shapes, spread over the matches; with no match yet, the upper
/// quartile of these shapes themselves), and not a background (a box over half the drawing).
/// Only the unmatched shapes and a sample of the matches are measured, so a report of
/// thousands of matched lots flattens a few shapes more than it leaves unmatched.
pub(crate) fn lot_sized(doc: Doc<'_>, shapes: &[u32], matched: &[u32]) -> Vec<bool> {
    if shapes.is_empty() {
        return Vec::new();
    }
    let mut xf = Transforms::new(doc.text, doc.nodes, doc.view_box);
    let mut rings = Vec::new();
    // The box of what a node draws (no fill rule needed, unlike `shape_of`).
    let mut box_area = |xf: &mut Transforms<'_>, n: u32| {
        rings.clear();
        node_rings(doc, xf, n, &mut rings);
        let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for &(x, y) in rings.iter().flatten() {
            b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
        if b[0] <= b[2] && b[1] <= b[3] {
            (b[2] - b[0]) * (b[3] - b[1])
        } else {
            0.0
        }
    };
    let areas: Vec<f64> = shapes.iter().map(|&n| box_area(&mut xf, n)).collect();
    let drawing = doc.view_box.map_or(0.0, |v| v.width * v.height);
    let background = |a: f64| drawing > 0.0 && a >= drawing * 0.5;
    let mut sample: Vec<f64> = Vec::new();
    let step = (matched.len() / 3).max(1);
    for &m in matched.iter().step_by(step).take(3) {
        let largest = lot_shapes(doc, &mut xf, m)
            .into_iter()
            .map(|s| box_area(&mut xf, s))
            .fold(0.0, f64::max);
        if largest > 0.0 {
            sample.push(largest);
        }
    }
    let typical = if sample.is_empty() {
        let mut own: Vec<f64> = areas
            .iter()
            .copied()
            .filter(|&a| a > 0.0 && !background(a))
            .collect();
        own.sort_by(f64::total_cmp);
        own.get(own.len() * 3 / 4).copied()
    } else {
        sample.sort_by(f64::total_cmp);
        sample.get(sample.len() / 2).copied()
    };
    let Some(typical) = typical else {
        return vec![false; shapes.len()];
    };
    areas
        .iter()
        .map(|&a| a > 0.0 && !background(a) && a >= typical / 10.0 && a <= typical * 10.0)
        .collect()
}

/// Most points of a unit outline.
pub(crate) const MAX_OUTLINE: usize = 64;

/// One geometry per unit: the union of its elements' boxes, and the outline of its largest lot
/// shape (its largest ring, flattened and simplified), or the convex hull of everything it
/// draws when it has no closed shape.
pub(crate) fn unit_geometry(doc: Doc<'_>, mapping: &crate::Mapping) -> Vec<crate::UnitGeometry> {
    use crate::{BBox, Point, UnitGeometry};
    let mut xf = Transforms::new(doc.text, doc.nodes, doc.view_box);
    let mut out: Vec<UnitGeometry> = Vec::new();
    let mut i = 0;
    let entries: Vec<(&crate::MatchedUnit, u32)> = mapping
        .matched
        .iter()
        .zip(mapping.nodes.iter().copied())
        .collect();
    while i < entries.len() {
        let bn = &entries[i].0.block_number;
        let j = i + entries[i..]
            .iter()
            .take_while(|e| &e.0.block_number == bn)
            .count();
        let group = &entries[i..j];
        i = j;
        let mut acc: Option<BBox> = None;
        for &(_, node) in group {
            if let Some(b) = crate::geometry::node_bbox(doc, &mut xf, node) {
                acc = Some(match acc {
                    None => b,
                    Some(a) => {
                        let x0 = a.x.min(b.x);
                        let y0 = a.y.min(b.y);
                        let x1 = (a.x + a.width).max(b.x + b.width);
                        let y1 = (a.y + a.height).max(b.y + b.height);
                        BBox {
                            x: x0,
                            y: y0,
                            width: x1 - x0,
                            height: y1 - y0,
                        }
                    }
                });
            }
        }
        let Some(bbox) = acc else {
            continue;
        };
        // The largest ring among the unit's lot shapes.
        let mut best: Option<(f64, Ring)> = None;
        let mut all_points: Vec<(f64, f64)> = Vec::new();
        let mut shape_ids: Vec<String> = Vec::new();
        for &(_, node) in group {
            for s in lot_shapes(doc, &mut xf, node) {
                let Some(n) = doc.nodes.get(s as usize) else {
                    continue;
                };
                crate::parse::for_each_attr(doc.text, n, |k, v, _| {
                    if k == "id" {
                        shape_ids
                            .push(crate::parse::decode_lossy(&doc.text[v.range()]).into_owned());
                    }
                });
                let mut rings = Vec::new();
                node_rings(doc, &mut xf, s, &mut rings);
                let closed = is_closed(doc.text, n);
                for r in rings {
                    all_points.extend_from_slice(&r);
                    let a = ring_area(&r).abs();
                    if closed && best.as_ref().is_none_or(|b| a > b.0) {
                        best = Some((a, r));
                    }
                }
            }
        }
        let ring = match best {
            Some((_, r)) => r,
            None if all_points.len() >= 3 => crate::geometry::convex_hull(all_points),
            None => vec![
                (bbox.x, bbox.y),
                (bbox.x + bbox.width, bbox.y),
                (bbox.x + bbox.width, bbox.y + bbox.height),
                (bbox.x, bbox.y + bbox.height),
            ],
        };
        let outline = crate::geometry::simplify_ring(&ring, MAX_OUTLINE)
            .into_iter()
            .map(|(x, y)| Point { x, y })
            .collect();
        out.push(UnitGeometry {
            block_number: bn.clone(),
            element_id: group[0].0.element_id.clone(),
            element_ids: group.iter().map(|e| e.0.element_id.clone()).collect(),
            shape_ids,
            bbox,
            outline,
            center: Point {
                x: bbox.x + bbox.width / 2.0,
                y: bbox.y + bbox.height / 2.0,
            },
        });
    }
    out
}
