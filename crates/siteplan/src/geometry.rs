//! Bounding boxes of units in the root's user coordinates (the viewBox space).
//!
//! Shapes are transformed first and measured after: an affine map sends a Bézier to a Bézier
//! (so control points are transformed, then the curve's extrema are solved) and an elliptical
//! arc to an elliptical arc (so the centre parametrisation is transformed, then its extrema are
//! solved). Rotated and skewed shapes therefore get tight boxes, not boxes of boxes.
//! Text (needs font metrics) and `use` (needs reference resolution) are not measured.

use std::f64::consts::{PI, TAU};

use crate::allow::Kind;
use crate::parse::{NONE, Node, decode_lossy, for_each_attr, parse_length};

/// An axis-aligned box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width (≥ 0).
    pub width: f64,
    /// Height (≥ 0).
    pub height: f64,
}

/// A point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
}

/// Where a matched unit is drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitGeometry {
    /// The unit's block number.
    pub block_number: String,
    /// The first matched element's id.
    pub element_id: String,
    /// Every element drawn for the unit, in document order.
    pub element_ids: Vec<String>,
    /// Ids of the lot shapes colouring paints (a matched shape itself; a group's lot shapes, not
    /// its labels, glyphs or strokes), so a client recolouring locally paints the same ones.
    pub shape_ids: Vec<String>,
    /// Bounding box in root user coordinates (the union over the unit's elements).
    pub bbox: BBox,
    /// The lot's outline as a closed polygon (at most 64 points, root user coordinates), for
    /// exact hit-testing of taps.
    pub outline: Vec<Point>,
    /// Centre of the bounding box.
    pub center: Point,
}

/// An affine transform `[a b c d e f]`: x' = a·x + c·y + e, y' = b·x + d·y + f.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Affine([f64; 6]);

impl Affine {
    pub(crate) const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// A translation.
    pub(crate) fn translate(x: f64, y: f64) -> Affine {
        Affine([1.0, 0.0, 0.0, 1.0, x, y])
    }

    /// `self × o`: apply `o` first, then `self`.
    pub(crate) fn then(self, o: Affine) -> Affine {
        let [a, b, c, d, e, f] = self.0;
        let [a2, b2, c2, d2, e2, f2] = o.0;
        Affine([
            a * a2 + c * b2,
            b * a2 + d * b2,
            a * c2 + c * d2,
            b * c2 + d * d2,
            a * e2 + c * f2 + e,
            b * e2 + d * f2 + f,
        ])
    }

    pub(crate) fn apply(self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, e, f] = self.0;
        (a * x + c * y + e, b * x + d * y + f)
    }

    /// The linear part applied to a vector.
    fn apply_vec(self, x: f64, y: f64) -> (f64, f64) {
        let [a, b, c, d, _, _] = self.0;
        (a * x + c * y, b * x + d * y)
    }
}

/// Parses a `transform` attribute. Malformed items end the list (as browsers treat it as invalid,
/// the rest is ignored rather than guessed).
pub(crate) fn parse_transform(s: &str) -> Affine {
    let mut m = Affine::IDENTITY;
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if rest.is_empty() {
            break;
        }
        let name_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let name = &rest[..name_len];
        let after = rest[name_len..].trim_start();
        let Some(args_str) = after.strip_prefix('(') else {
            break;
        };
        let Some(close) = args_str.find(')') else {
            break;
        };
        let args = numbers(&args_str[..close]);
        rest = &args_str[close + 1..];
        let t = match (name, args.as_slice()) {
            ("matrix", [a, b, c, d, e, f]) => Affine([*a, *b, *c, *d, *e, *f]),
            ("translate", [x]) => Affine([1.0, 0.0, 0.0, 1.0, *x, 0.0]),
            ("translate", [x, y]) => Affine([1.0, 0.0, 0.0, 1.0, *x, *y]),
            ("scale", [s]) => Affine([*s, 0.0, 0.0, *s, 0.0, 0.0]),
            ("scale", [sx, sy]) => Affine([*sx, 0.0, 0.0, *sy, 0.0, 0.0]),
            ("rotate", [a]) => rotation(*a),
            ("rotate", [a, cx, cy]) => Affine([1.0, 0.0, 0.0, 1.0, *cx, *cy])
                .then(rotation(*a))
                .then(Affine([1.0, 0.0, 0.0, 1.0, -cx, -cy])),
            ("skewX", [a]) => Affine([1.0, 0.0, a.to_radians().tan(), 1.0, 0.0, 0.0]),
            ("skewY", [a]) => Affine([1.0, a.to_radians().tan(), 0.0, 1.0, 0.0, 0.0]),
            _ => break,
        };
        m = m.then(t);
    }
    m
}

fn rotation(deg: f64) -> Affine {
    let (s, c) = deg.to_radians().sin_cos();
    Affine([c, s, -s, c, 0.0, 0.0])
}

/// All numbers in a list separated by whitespace and/or commas (`1,2 3-4` is 1, 2, 3, -4).
pub(crate) fn numbers(s: &str) -> Vec<f64> {
    let mut p = NumParser::new(s);
    let mut v = Vec::new();
    while let Some(n) = p.number() {
        v.push(n);
    }
    v
}

/// A cursor over SVG number syntax.
struct NumParser<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl<'a> NumParser<'a> {
    fn new(s: &'a str) -> Self {
        NumParser {
            b: s.as_bytes(),
            s,
            i: 0,
        }
    }

    fn skip_sep(&mut self) {
        while self.i < self.b.len()
            && (self.b[self.i].is_ascii_whitespace() || self.b[self.i] == b',')
        {
            self.i += 1;
        }
    }

    fn number(&mut self) -> Option<f64> {
        self.skip_sep();
        let b = self.b;
        let start = self.i;
        let mut i = self.i;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let mut digits = i - int_start;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let f = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            digits += i - f;
        }
        if digits == 0 {
            return None;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            let e = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > e {
                i = j;
            }
        }
        self.i = i;
        self.s[start..i]
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
    }

    /// An arc flag: a single `0` or `1`, which may be written without separators.
    fn flag(&mut self) -> Option<bool> {
        self.skip_sep();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        match c {
            b'0' => Some(false),
            b'1' => Some(true),
            _ => None,
        }
    }

    fn command(&mut self) -> Option<u8> {
        self.skip_sep();
        let c = *self.b.get(self.i)?;
        if c.is_ascii_alphabetic() {
            self.i += 1;
            Some(c)
        } else {
            None
        }
    }

    fn at_number(&mut self) -> bool {
        self.skip_sep();
        self.b
            .get(self.i)
            .is_some_and(|&c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.'))
    }

    fn pair(&mut self) -> Option<(f64, f64)> {
        Some((self.number()?, self.number()?))
    }
}

/// A growing bounding box.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Acc {
    min_x: f64,
    min_y: f64,
    max_x: f64,
    max_y: f64,
}

impl Acc {
    pub(crate) fn new() -> Acc {
        Acc {
            min_x: f64::INFINITY,
            min_y: f64::INFINITY,
            max_x: f64::NEG_INFINITY,
            max_y: f64::NEG_INFINITY,
        }
    }

    fn add(&mut self, (x, y): (f64, f64)) {
        if x.is_finite() && y.is_finite() {
            self.min_x = self.min_x.min(x);
            self.min_y = self.min_y.min(y);
            self.max_x = self.max_x.max(x);
            self.max_y = self.max_y.max(y);
        }
    }

    fn add_x(&mut self, x: f64) {
        if x.is_finite() {
            self.min_x = self.min_x.min(x);
            self.max_x = self.max_x.max(x);
        }
    }

    fn add_y(&mut self, y: f64) {
        if y.is_finite() {
            self.min_y = self.min_y.min(y);
            self.max_y = self.max_y.max(y);
        }
    }

    pub(crate) fn bbox(&self) -> Option<BBox> {
        (self.min_x <= self.max_x && self.min_y <= self.max_y).then_some(BBox {
            x: self.min_x,
            y: self.min_y,
            width: self.max_x - self.min_x,
            height: self.max_y - self.min_y,
        })
    }

    /// Adds a cubic Bézier given in final coordinates, with its extrema.
    fn cubic(&mut self, p0: (f64, f64), p1: (f64, f64), p2: (f64, f64), p3: (f64, f64)) {
        self.add(p0);
        self.add(p3);
        let eval = |t: f64, a: f64, b: f64, c: f64, d: f64| {
            let u = 1.0 - t;
            u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
        };
        for axis in 0..2 {
            let g = |p: (f64, f64)| if axis == 0 { p.0 } else { p.1 };
            let (a, b, c, d) = (g(p0), g(p1), g(p2), g(p3));
            // B'(t)/3 = A t² + B t + C with d0 = b-a, d1 = c-b, d2 = d-c.
            let (d0, d1, d2) = (b - a, c - b, d - c);
            let qa = d0 - 2.0 * d1 + d2;
            let qb = 2.0 * (d1 - d0);
            let qc = d0;
            for t in quadratic_roots(qa, qb, qc).into_iter().flatten() {
                if t > 0.0 && t < 1.0 {
                    let v = eval(t, a, b, c, d);
                    if axis == 0 {
                        self.add_x(v)
                    } else {
                        self.add_y(v)
                    }
                }
            }
        }
    }

    /// Adds a quadratic Bézier given in final coordinates, with its extremum.
    fn quad(&mut self, p0: (f64, f64), p1: (f64, f64), p2: (f64, f64)) {
        self.add(p0);
        self.add(p2);
        for axis in 0..2 {
            let g = |p: (f64, f64)| if axis == 0 { p.0 } else { p.1 };
            let (a, b, c) = (g(p0), g(p1), g(p2));
            let den = a - 2.0 * b + c;
            if den.abs() > 1e-12 {
                let t = (a - b) / den;
                if t > 0.0 && t < 1.0 {
                    let u = 1.0 - t;
                    let v = u * u * a + 2.0 * u * t * b + t * t * c;
                    if axis == 0 {
                        self.add_x(v)
                    } else {
                        self.add_y(v)
                    }
                }
            }
        }
    }

    /// Adds the points of `c + u·cosθ + v·sinθ` for θ in the sweep from `t1` by `dt` (all in final
    /// coordinates), with its extrema. A full ellipse is `dt = 2π`.
    fn ellipse_arc(&mut self, c: (f64, f64), u: (f64, f64), v: (f64, f64), t1: f64, dt: f64) {
        let point = |t: f64| {
            (
                c.0 + u.0 * t.cos() + v.0 * t.sin(),
                c.1 + u.1 * t.cos() + v.1 * t.sin(),
            )
        };
        self.add(point(t1));
        self.add(point(t1 + dt));
        let in_sweep = |t: f64| {
            if dt.abs() >= TAU - 1e-12 {
                return true;
            }
            let off = if dt >= 0.0 { t - t1 } else { t1 - t };
            off.rem_euclid(TAU) <= dt.abs()
        };
        for axis in 0..2 {
            let (ua, va) = if axis == 0 { (u.0, v.0) } else { (u.1, v.1) };
            if ua == 0.0 && va == 0.0 {
                continue;
            }
            let t0 = va.atan2(ua);
            for t in [t0, t0 + PI] {
                if in_sweep(t) {
                    let p = point(t);
                    if axis == 0 {
                        self.add_x(p.0)
                    } else {
                        self.add_y(p.1)
                    }
                }
            }
        }
    }
}

/// Real roots of a t² + b t + c (linear if a ≈ 0).
fn quadratic_roots(a: f64, b: f64, c: f64) -> [Option<f64>; 2] {
    let scale = a.abs().max(b.abs()).max(c.abs());
    if scale == 0.0 {
        return [None, None];
    }
    if a.abs() <= 1e-12 * scale {
        if b.abs() <= 1e-12 * scale {
            return [None, None];
        }
        return [Some(-c / b), None];
    }
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return [None, None];
    }
    let r = disc.sqrt();
    [Some((-b + r) / (2.0 * a)), Some((-b - r) / (2.0 * a))]
}

/// Adds an SVG arc segment from `p0` to `p1` (local coordinates) under `m`.
#[allow(clippy::too_many_arguments)]
fn arc(
    acc: &mut Acc,
    m: Affine,
    p0: (f64, f64),
    rx: f64,
    ry: f64,
    phi_deg: f64,
    large: bool,
    sweep: bool,
    p1: (f64, f64),
) {
    if p0 == p1 {
        return;
    }
    let (mut rx, mut ry) = (rx.abs(), ry.abs());
    if rx == 0.0 || ry == 0.0 {
        acc.add(m.apply(p0.0, p0.1));
        acc.add(m.apply(p1.0, p1.1));
        return;
    }
    // Endpoint to centre parametrisation (SVG 1.1, appendix F.6.5).
    let (sin_phi, cos_phi) = phi_deg.to_radians().sin_cos();
    let dx2 = (p0.0 - p1.0) / 2.0;
    let dy2 = (p0.1 - p1.1) / 2.0;
    let x1p = cos_phi * dx2 + sin_phi * dy2;
    let y1p = -sin_phi * dx2 + cos_phi * dy2;
    let lambda = (x1p * x1p) / (rx * rx) + (y1p * y1p) / (ry * ry);
    if lambda > 1.0 {
        let s = lambda.sqrt();
        rx *= s;
        ry *= s;
    }
    let num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p;
    let den = rx * rx * y1p * y1p + ry * ry * x1p * x1p;
    let mut coef = if den == 0.0 {
        0.0
    } else {
        (num / den).max(0.0).sqrt()
    };
    if large == sweep {
        coef = -coef;
    }
    let cxp = coef * rx * y1p / ry;
    let cyp = -coef * ry * x1p / rx;
    let cx = cos_phi * cxp - sin_phi * cyp + (p0.0 + p1.0) / 2.0;
    let cy = sin_phi * cxp + cos_phi * cyp + (p0.1 + p1.1) / 2.0;
    let angle = |ux: f64, uy: f64, vx: f64, vy: f64| (ux * vy - uy * vx).atan2(ux * vx + uy * vy);
    let ux = (x1p - cxp) / rx;
    let uy = (y1p - cyp) / ry;
    let vx = (-x1p - cxp) / rx;
    let vy = (-y1p - cyp) / ry;
    let t1 = angle(1.0, 0.0, ux, uy);
    let mut dt = angle(ux, uy, vx, vy).rem_euclid(TAU);
    if !sweep && dt > 0.0 {
        dt -= TAU;
    }
    // Point(θ) = C + U cosθ + V sinθ, with U = rx·(cosφ, sinφ) and V = ry·(−sinφ, cosφ).
    let c = m.apply(cx, cy);
    let u = m.apply_vec(rx * cos_phi, rx * sin_phi);
    let v = m.apply_vec(-ry * sin_phi, ry * cos_phi);
    acc.ellipse_arc(c, u, v, t1, dt);
}

/// Adds a path's `d` to the box.
pub(crate) fn path_bbox(acc: &mut Acc, m: Affine, d: &str) {
    let mut p = NumParser::new(d);
    let tf = |x: f64, y: f64| m.apply(x, y);
    let mut cur = (0.0f64, 0.0f64);
    let mut start = cur;
    // Last control point of a cubic (for S) or a quadratic (for T), local coordinates.
    let mut last_c: Option<(f64, f64)> = None;
    let mut last_q: Option<(f64, f64)> = None;
    while let Some(cmd) = p.command() {
        let rel = cmd.is_ascii_lowercase();
        let up = cmd.to_ascii_uppercase();
        let base = |cur: (f64, f64)| if rel { cur } else { (0.0, 0.0) };
        let mut first = true;
        loop {
            if !first && (up == b'Z' || !p.at_number()) {
                break;
            }
            match up {
                b'M' => {
                    let Some((x, y)) = p.pair() else { return };
                    let b = base(cur);
                    cur = (b.0 + x, b.1 + y);
                    if first {
                        start = cur;
                    } else {
                        // Extra pairs after a moveto are implicit linetos.
                        acc.add(tf(cur.0, cur.1));
                    }
                    acc.add(tf(cur.0, cur.1));
                    last_c = None;
                    last_q = None;
                }
                b'L' => {
                    let Some((x, y)) = p.pair() else { return };
                    let b = base(cur);
                    acc.add(tf(cur.0, cur.1));
                    cur = (b.0 + x, b.1 + y);
                    acc.add(tf(cur.0, cur.1));
                    last_c = None;
                    last_q = None;
                }
                b'H' => {
                    let Some(x) = p.number() else { return };
                    acc.add(tf(cur.0, cur.1));
                    cur.0 = if rel { cur.0 + x } else { x };
                    acc.add(tf(cur.0, cur.1));
                    last_c = None;
                    last_q = None;
                }
                b'V' => {
                    let Some(y) = p.number() else { return };
                    acc.add(tf(cur.0, cur.1));
                    cur.1 = if rel { cur.1 + y } else { y };
                    acc.add(tf(cur.0, cur.1));
                    last_c = None;
                    last_q = None;
                }
                b'C' | b'S' => {
                    let b = base(cur);
                    let c1 = if up == b'C' {
                        let Some((x, y)) = p.pair() else { return };
                        (b.0 + x, b.1 + y)
                    } else {
                        last_c.map_or(cur, |c| (2.0 * cur.0 - c.0, 2.0 * cur.1 - c.1))
                    };
                    let Some((x2, y2)) = p.pair() else { return };
                    let Some((x, y)) = p.pair() else { return };
                    let c2 = (b.0 + x2, b.1 + y2);
                    let end = (b.0 + x, b.1 + y);
                    acc.cubic(
                        tf(cur.0, cur.1),
                        tf(c1.0, c1.1),
                        tf(c2.0, c2.1),
                        tf(end.0, end.1),
                    );
                    last_c = Some(c2);
                    last_q = None;
                    cur = end;
                }
                b'Q' | b'T' => {
                    let b = base(cur);
                    let c1 = if up == b'Q' {
                        let Some((x, y)) = p.pair() else { return };
                        (b.0 + x, b.1 + y)
                    } else {
                        last_q.map_or(cur, |c| (2.0 * cur.0 - c.0, 2.0 * cur.1 - c.1))
                    };
                    let Some((x, y)) = p.pair() else { return };
                    let end = (b.0 + x, b.1 + y);
                    acc.quad(tf(cur.0, cur.1), tf(c1.0, c1.1), tf(end.0, end.1));
                    last_q = Some(c1);
                    last_c = None;
                    cur = end;
                }
                b'A' => {
                    let (Some(rx), Some(ry), Some(phi)) = (p.number(), p.number(), p.number())
                    else {
                        return;
                    };
                    let (Some(large), Some(sweep)) = (p.flag(), p.flag()) else {
                        return;
                    };
                    let Some((x, y)) = p.pair() else { return };
                    let b = base(cur);
                    let end = (b.0 + x, b.1 + y);
                    arc(acc, m, cur, rx, ry, phi, large, sweep, end);
                    cur = end;
                    last_c = None;
                    last_q = None;
                }
                b'Z' => {
                    cur = start;
                    last_c = None;
                    last_q = None;
                }
                _ => return,
            }
            first = false;
        }
    }
}

/// The attributes geometry needs, decoded.
#[derive(Default)]
pub(crate) struct ShapeAttrs {
    transform: Option<String>,
    d: Option<String>,
    points: Option<String>,
    nums: [Option<f64>; 11],
    x2y2: [Option<f64>; 2],
    view_box: Option<String>,
    width_raw: Option<String>,
    height_raw: Option<String>,
    par: Option<String>,
}

const NUM_ATTRS: [&str; 11] = [
    "x", "y", "width", "height", "cx", "cy", "r", "rx", "ry", "x1", "y1",
];

impl ShapeAttrs {
    fn read(text: &str, node: &Node) -> ShapeAttrs {
        let mut s = ShapeAttrs::default();
        let mut x2y2 = [None, None];
        for_each_attr(text, node, |k, v, _| {
            let val = || decode_lossy(&text[v.range()]).into_owned();
            match k {
                "transform" => s.transform = Some(val()),
                "d" => s.d = Some(val()),
                "points" => s.points = Some(val()),
                "viewBox" if node.kind == Kind::Svg => s.view_box = Some(val()),
                "preserveAspectRatio" if node.kind == Kind::Svg => s.par = Some(val()),
                "width" if node.kind == Kind::Svg => {
                    let v = val();
                    s.nums[2] = parse_length(&v);
                    s.width_raw = Some(v);
                }
                "height" if node.kind == Kind::Svg => {
                    let v = val();
                    s.nums[3] = parse_length(&v);
                    s.height_raw = Some(v);
                }
                "x2" => x2y2[0] = parse_length(&val()),
                "y2" => x2y2[1] = parse_length(&val()),
                _ => {
                    if let Some(i) = NUM_ATTRS.iter().position(|n| *n == k) {
                        s.nums[i] = parse_length(&val());
                    }
                }
            }
        });
        s.x2y2 = x2y2;
        s
    }

    fn num(&self, name: &str) -> f64 {
        NUM_ATTRS
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.nums[i])
            .unwrap_or(0.0)
    }
}

/// The transform a node applies to its content: its own `transform`; for a nested `svg` its
/// x/y and its `viewBox` mapped into its `width`×`height` viewport
/// (`xMidYMid meet`, the default; percentages taken of the root's viewBox, missing sizes as 100%).
pub(crate) fn own_transform_in(
    text: &str,
    node: &Node,
    attrs: Option<&ShapeAttrs>,
    root: Option<crate::ViewBox>,
) -> Affine {
    let owned;
    let a = match attrs {
        Some(a) => a,
        None => {
            owned = ShapeAttrs::read(text, node);
            &owned
        }
    };
    let mut m = a
        .transform
        .as_deref()
        .map_or(Affine::IDENTITY, parse_transform);
    if node.kind == Kind::Svg {
        m = m.then(Affine([1.0, 0.0, 0.0, 1.0, a.num("x"), a.num("y")]));
        if let Some(vb) = &a.view_box {
            let n = numbers(vb);
            if let [minx, miny, vw, vh] = n[..]
                && vw > 0.0
                && vh > 0.0
            {
                let size = |v: &Option<String>, full: f64| -> f64 {
                    match v.as_deref().map(str::trim) {
                        Some(s) if s.ends_with('%') => s
                            .trim_end_matches('%')
                            .parse::<f64>()
                            .ok()
                            .filter(|p| p.is_finite())
                            .map_or(full, |p| full * p / 100.0),
                        Some(s) => parse_length(s).unwrap_or(full),
                        None => full,
                    }
                };
                let (rw, rh) = root.map_or((vw, vh), |r| (r.width, r.height));
                let w = size(&a.width_raw, rw);
                let h = size(&a.height_raw, rh);
                let none = a.par.as_deref().is_some_and(|p| p.trim() == "none");
                let (sx, sy) = if none {
                    (w / vw, h / vh)
                } else {
                    let s = (w / vw).min(h / vh);
                    (s, s)
                };
                let tx = if none { 0.0 } else { (w - vw * sx) / 2.0 } - minx * sx;
                let ty = if none { 0.0 } else { (h - vh * sy) / 2.0 } - miny * sy;
                if sx.is_finite() && sy.is_finite() && sx > 0.0 && sy > 0.0 {
                    m = m.then(Affine([sx, 0.0, 0.0, sy, tx, ty]));
                }
            }
        }
    }
    m
}

/// Adds one element's own shape (not its children) given its content transform.
fn shape_bbox(acc: &mut Acc, kind: Kind, a: &ShapeAttrs, m: Affine) {
    match kind {
        Kind::Path => {
            if let Some(d) = &a.d {
                path_bbox(acc, m, d);
            }
        }
        Kind::Rect | Kind::Image => {
            let (x, y, w, h) = (a.num("x"), a.num("y"), a.num("width"), a.num("height"));
            if w > 0.0 && h > 0.0 {
                for (px, py) in [(x, y), (x + w, y), (x + w, y + h), (x, y + h)] {
                    acc.add(m.apply(px, py));
                }
            }
        }
        Kind::Circle | Kind::Ellipse => {
            let (rx, ry) = if kind == Kind::Circle {
                (a.num("r"), a.num("r"))
            } else {
                (a.num("rx"), a.num("ry"))
            };
            if rx > 0.0 && ry > 0.0 {
                let c = m.apply(a.num("cx"), a.num("cy"));
                acc.ellipse_arc(c, m.apply_vec(rx, 0.0), m.apply_vec(0.0, ry), 0.0, TAU);
            }
        }
        Kind::Line => {
            acc.add(m.apply(a.num("x1"), a.num("y1")));
            acc.add(m.apply(a.x2y2[0].unwrap_or(0.0), a.x2y2[1].unwrap_or(0.0)));
        }
        Kind::Polyline | Kind::Polygon => {
            if let Some(p) = &a.points {
                for xy in numbers(p).chunks_exact(2) {
                    acc.add(m.apply(xy[0], xy[1]));
                }
            }
        }
        _ => {}
    }
}

/// Stroke paint state inherited down a subtree: whether a stroke is drawn, and its width.
#[derive(Clone, Copy)]
struct StrokeState {
    on: bool,
    width: f64,
}

fn stroke_of(text: &str, node: &Node, parent: StrokeState) -> StrokeState {
    let stroke = crate::labels::own_property(text, node, "stroke");
    let width = crate::labels::own_property(text, node, "stroke-width")
        .and_then(|w| parse_length(&w))
        .filter(|w| *w >= 0.0);
    StrokeState {
        on: match stroke.as_deref() {
            None | Some("inherit") => parent.on,
            Some(s) => s != "none" && s != "transparent",
        },
        width: width.unwrap_or(parent.width),
    }
}

/// Bounding box of a node and its rendered descendants, in root user space, with half the
/// stroke width added around stroked shapes and `use` copies resolved.
pub(crate) fn node_bbox(
    doc: crate::ids::Doc<'_>,
    xf: &mut Transforms<'_>,
    node: u32,
) -> Option<BBox> {
    let text = doc.text;
    let nodes = doc.nodes;
    let n = nodes.get(node as usize)?;
    let parent_m = if n.parent == NONE {
        Affine::IDENTITY
    } else {
        xf.content(n.parent)
    };
    // The stroke inherited from above the subtree.
    let mut chain = Vec::new();
    let mut p = n.parent;
    while let Some(pn) = nodes.get(p as usize) {
        chain.push(pn);
        p = pn.parent;
    }
    let mut inherited = StrokeState {
        on: false,
        width: 1.0,
    };
    for pn in chain.iter().rev() {
        inherited = stroke_of(text, pn, inherited);
    }
    let first = node as usize;
    let end = (n.end as usize).min(nodes.len());
    let mut content: Vec<Affine> = Vec::with_capacity(end - first);
    let mut strokes: Vec<StrokeState> = Vec::with_capacity(end - first);
    let mut acc = Acc::new();
    let mut rings = Vec::new();
    for (i, nd) in nodes.iter().enumerate().take(end).skip(first) {
        let (pm, ps) = if i == first {
            (parent_m, inherited)
        } else {
            let k = (nd.parent as usize).wrapping_sub(first);
            (
                content.get(k).copied().unwrap_or(parent_m),
                strokes.get(k).copied().unwrap_or(inherited),
            )
        };
        let attrs = ShapeAttrs::read(text, nd);
        let own = if nd.parent == NONE {
            Affine::IDENTITY
        } else {
            own_transform_in(text, nd, Some(&attrs), doc.view_box)
        };
        let m = pm.then(own);
        let st = stroke_of(text, nd, ps);
        content.push(m);
        strokes.push(st);
        // Shapes inside defs, clipPath, etc. are not drawn where they stand.
        if nd.hidden && !(i == first && n.hidden) {
            continue;
        }
        let mut one = Acc::new();
        if nd.kind == Kind::Use {
            rings.clear();
            crate::labels::node_rings(doc, xf, i as u32, &mut rings);
            for r in &rings {
                for &pt in r {
                    one.add(pt);
                }
            }
        } else {
            shape_bbox(&mut one, nd.kind, &attrs, m);
        }
        if let Some(b) = one.bbox() {
            let [a, bb, c, d, _, _] = m.0;
            let scale = (a * d - bb * c).abs().sqrt();
            let half = if st.on && nd.kind != Kind::Text && nd.kind != Kind::Image {
                st.width * scale / 2.0
            } else {
                0.0
            };
            acc.add((b.x - half, b.y - half));
            acc.add((b.x + b.width + half, b.y + b.height + half));
        }
    }
    acc.bbox()
}

/// A closed ring of points in final coordinates.
pub(crate) type Ring = Vec<(f64, f64)>;

/// Segments per cubic or quadratic Bézier when flattening.
const CURVE_STEPS: usize = 8;

/// An arc's centre parametrisation: centre, axis vectors, start angle, sweep.
type ArcCenter = ((f64, f64), (f64, f64), (f64, f64), f64, f64);

/// Centre parametrisation of an SVG arc in local coordinates (SVG 1.1, appendix F.6.5).
/// `None` for a degenerate arc (drawn as a line).
fn arc_center(
    p0: (f64, f64),
    (rx, ry, phi_deg): (f64, f64, f64),
    large: bool,
    sweep: bool,
    p1: (f64, f64),
) -> Option<ArcCenter> {
    let (mut rx, mut ry) = (rx.abs(), ry.abs());
    if p0 == p1 || rx == 0.0 || ry == 0.0 {
        return None;
    }
    let (sin_phi, cos_phi) = phi_deg.to_radians().sin_cos();
    let dx2 = (p0.0 - p1.0) / 2.0;
    let dy2 = (p0.1 - p1.1) / 2.0;
    let x1p = cos_phi * dx2 + sin_phi * dy2;
    let y1p = -sin_phi * dx2 + cos_phi * dy2;
    let lambda = (x1p * x1p) / (rx * rx) + (y1p * y1p) / (ry * ry);
    if lambda > 1.0 {
        let s = lambda.sqrt();
        rx *= s;
        ry *= s;
    }
    let num = rx * rx * ry * ry - rx * rx * y1p * y1p - ry * ry * x1p * x1p;
    let den = rx * rx * y1p * y1p + ry * ry * x1p * x1p;
    let mut coef = if den == 0.0 {
        0.0
    } else {
        (num / den).max(0.0).sqrt()
    };
    if large == sweep {
        coef = -coef;
    }
    let cxp = coef * rx * y1p / ry;
    let cyp = -coef * ry * x1p / rx;
    let cx = cos_phi * cxp - sin_phi * cyp + (p0.0 + p1.0) / 2.0;
    let cy = sin_phi * cxp + cos_phi * cyp + (p0.1 + p1.1) / 2.0;
    let angle = |ux: f64, uy: f64, vx: f64, vy: f64| (ux * vy - uy * vx).atan2(ux * vx + uy * vy);
    let ux = (x1p - cxp) / rx;
    let uy = (y1p - cyp) / ry;
    let vx = (-x1p - cxp) / rx;
    let vy = (-y1p - cyp) / ry;
    let t1 = angle(1.0, 0.0, ux, uy);
    let mut dt = angle(ux, uy, vx, vy).rem_euclid(TAU);
    if !sweep && dt > 0.0 {
        dt -= TAU;
    }
    Some((
        (cx, cy),
        (rx * cos_phi, rx * sin_phi),
        (-ry * sin_phi, ry * cos_phi),
        t1,
        dt,
    ))
}

/// Flattens a path's `d` into rings (curves and arcs sampled), each subpath closed implicitly
/// as filling does. Stops at the first error, keeping what came before, like a renderer.
pub(crate) fn path_rings(m: Affine, d: &str, out: &mut Vec<Ring>) {
    let mut p = NumParser::new(d);
    let mut ring: Ring = Vec::new();
    let mut cur = (0.0f64, 0.0f64);
    let mut start = cur;
    let mut last_c: Option<(f64, f64)> = None;
    let mut last_q: Option<(f64, f64)> = None;
    let push = |ring: &mut Ring, pt: (f64, f64)| {
        let q = m.apply(pt.0, pt.1);
        if q.0.is_finite() && q.1.is_finite() && ring.last() != Some(&q) {
            ring.push(q);
        }
    };
    let flush = |ring: &mut Ring, out: &mut Vec<Ring>| {
        if ring.len() >= 3 {
            out.push(std::mem::take(ring));
        } else {
            ring.clear();
        }
    };
    'cmds: while let Some(cmd) = p.command() {
        let rel = cmd.is_ascii_lowercase();
        let up = cmd.to_ascii_uppercase();
        let mut first = true;
        loop {
            if !first && (up == b'Z' || !p.at_number()) {
                break;
            }
            let b = if rel { cur } else { (0.0, 0.0) };
            match up {
                b'M' => {
                    let Some((x, y)) = p.pair() else { break 'cmds };
                    cur = (b.0 + x, b.1 + y);
                    if first {
                        flush(&mut ring, out);
                        start = cur;
                    }
                    push(&mut ring, cur);
                    last_c = None;
                    last_q = None;
                }
                b'L' | b'H' | b'V' => {
                    match up {
                        b'L' => {
                            let Some((x, y)) = p.pair() else { break 'cmds };
                            cur = (b.0 + x, b.1 + y);
                        }
                        b'H' => {
                            let Some(x) = p.number() else { break 'cmds };
                            cur.0 = if rel { cur.0 + x } else { x };
                        }
                        _ => {
                            let Some(y) = p.number() else { break 'cmds };
                            cur.1 = if rel { cur.1 + y } else { y };
                        }
                    }
                    push(&mut ring, cur);
                    last_c = None;
                    last_q = None;
                }
                b'C' | b'S' => {
                    let c1 = if up == b'C' {
                        let Some((x, y)) = p.pair() else { break 'cmds };
                        (b.0 + x, b.1 + y)
                    } else {
                        last_c.map_or(cur, |c| (2.0 * cur.0 - c.0, 2.0 * cur.1 - c.1))
                    };
                    let Some((x2, y2)) = p.pair() else {
                        break 'cmds;
                    };
                    let Some((x, y)) = p.pair() else { break 'cmds };
                    let c2 = (b.0 + x2, b.1 + y2);
                    let end = (b.0 + x, b.1 + y);
                    for k in 1..=CURVE_STEPS {
                        let t = k as f64 / CURVE_STEPS as f64;
                        let u = 1.0 - t;
                        let f = |a: f64, b1: f64, c: f64, d: f64| {
                            u * u * u * a
                                + 3.0 * u * u * t * b1
                                + 3.0 * u * t * t * c
                                + t * t * t * d
                        };
                        push(
                            &mut ring,
                            (f(cur.0, c1.0, c2.0, end.0), f(cur.1, c1.1, c2.1, end.1)),
                        );
                    }
                    last_c = Some(c2);
                    last_q = None;
                    cur = end;
                }
                b'Q' | b'T' => {
                    let c1 = if up == b'Q' {
                        let Some((x, y)) = p.pair() else { break 'cmds };
                        (b.0 + x, b.1 + y)
                    } else {
                        last_q.map_or(cur, |c| (2.0 * cur.0 - c.0, 2.0 * cur.1 - c.1))
                    };
                    let Some((x, y)) = p.pair() else { break 'cmds };
                    let end = (b.0 + x, b.1 + y);
                    for k in 1..=CURVE_STEPS {
                        let t = k as f64 / CURVE_STEPS as f64;
                        let u = 1.0 - t;
                        let f = |a: f64, b1: f64, c: f64| u * u * a + 2.0 * u * t * b1 + t * t * c;
                        push(&mut ring, (f(cur.0, c1.0, end.0), f(cur.1, c1.1, end.1)));
                    }
                    last_q = Some(c1);
                    last_c = None;
                    cur = end;
                }
                b'A' => {
                    let (Some(rx), Some(ry), Some(phi)) = (p.number(), p.number(), p.number())
                    else {
                        break 'cmds;
                    };
                    let (Some(large), Some(sweep)) = (p.flag(), p.flag()) else {
                        break 'cmds;
                    };
                    let Some((x, y)) = p.pair() else { break 'cmds };
                    let end = (b.0 + x, b.1 + y);
                    if let Some((c, u, v, t1, dt)) =
                        arc_center(cur, (rx, ry, phi), large, sweep, end)
                    {
                        let steps = ((dt.abs() / TAU * 32.0).ceil() as usize).clamp(2, 32);
                        for k in 1..steps {
                            let t = t1 + dt * k as f64 / steps as f64;
                            let (st, ct) = t.sin_cos();
                            push(
                                &mut ring,
                                (c.0 + u.0 * ct + v.0 * st, c.1 + u.1 * ct + v.1 * st),
                            );
                        }
                    }
                    push(&mut ring, end);
                    cur = end;
                    last_c = None;
                    last_q = None;
                }
                b'Z' => {
                    cur = start;
                    flush(&mut ring, out);
                    last_c = None;
                    last_q = None;
                }
                _ => break 'cmds,
            }
            first = false;
            if ring.len() > 100_000 {
                break 'cmds;
            }
        }
    }
    flush(&mut ring, out);
}

/// Rings of one element's own shape under `m` (rect corners, 32-gon ellipses, points lists).
pub(crate) fn shape_rings(text: &str, node: &Node, m: Affine, out: &mut Vec<Ring>) {
    let a = ShapeAttrs::read(text, node);
    match node.kind {
        Kind::Path => {
            if let Some(d) = &a.d {
                path_rings(m, d, out);
            }
        }
        Kind::Rect => {
            let (x, y, w, h) = (a.num("x"), a.num("y"), a.num("width"), a.num("height"));
            if w > 0.0 && h > 0.0 {
                out.push(
                    [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
                        .iter()
                        .map(|&(px, py)| m.apply(px, py))
                        .collect(),
                );
            }
        }
        Kind::Circle | Kind::Ellipse => {
            let (rx, ry) = if node.kind == Kind::Circle {
                (a.num("r"), a.num("r"))
            } else {
                (a.num("rx"), a.num("ry"))
            };
            if rx > 0.0 && ry > 0.0 {
                let (cx, cy) = (a.num("cx"), a.num("cy"));
                out.push(
                    (0..32)
                        .map(|k| {
                            let t = TAU * k as f64 / 32.0;
                            m.apply(cx + rx * t.cos(), cy + ry * t.sin())
                        })
                        .collect(),
                );
            }
        }
        Kind::Polyline | Kind::Polygon => {
            if let Some(p) = &a.points {
                let mut ring: Ring = numbers(p)
                    .chunks_exact(2)
                    .map(|xy| m.apply(xy[0], xy[1]))
                    .collect();
                if ring.len() > 1 && ring.first() == ring.last() {
                    ring.pop();
                }
                if ring.len() >= 3 {
                    out.push(ring);
                }
            }
        }
        _ => {}
    }
}

/// The content transform of every node, computed on demand and remembered.
pub(crate) struct Transforms<'a> {
    text: &'a str,
    nodes: &'a [Node],
    root: Option<crate::ViewBox>,
    content: Vec<Option<Affine>>,
    /// Elements `use` references may still expand into during this operation: a hostile file
    /// of uses referring to groups of uses cannot blow up (4 levels of 1,000 would be 10¹²);
    /// a real plan (thousands of copies of a small symbol) stays far below it.
    pub(crate) use_budget: usize,
}

impl<'a> Transforms<'a> {
    pub(crate) fn new(text: &'a str, nodes: &'a [Node], root: Option<crate::ViewBox>) -> Self {
        Transforms {
            text,
            nodes,
            root,
            content: vec![None; nodes.len()],
            use_budget: 250_000,
        }
    }

    /// The transform from a node's content to root user space (the root's own transform
    /// excluded, as the viewBox space is what the report uses).
    pub(crate) fn content(&mut self, node: u32) -> Affine {
        let mut chain = Vec::new();
        let mut n = node;
        let mut base = Affine::IDENTITY;
        while let Some(nd) = self.nodes.get(n as usize) {
            if let Some(Some(m)) = self.content.get(n as usize) {
                base = *m;
                break;
            }
            if nd.parent == NONE {
                self.content[n as usize] = Some(Affine::IDENTITY);
                break;
            }
            chain.push(n);
            n = nd.parent;
        }
        for &c in chain.iter().rev() {
            base = base.then(own_transform_in(
                self.text,
                &self.nodes[c as usize],
                None,
                self.root,
            ));
            self.content[c as usize] = Some(base);
        }
        base
    }
}

/// Signed area of a ring (shoelace).
pub(crate) fn ring_area(r: &[(f64, f64)]) -> f64 {
    let n = r.len();
    let mut s = 0.0;
    for i in 0..n {
        let (x0, y0) = r[i];
        let (x1, y1) = r[(i + 1) % n];
        s += x0 * y1 - x1 * y0;
    }
    s / 2.0
}

/// Winding number of a ring around `p`, and whether a ray from `p` crosses it an odd number of times.
pub(crate) fn winding(r: &[(f64, f64)], p: (f64, f64)) -> (i32, bool) {
    let n = r.len();
    let mut w = 0i32;
    let mut odd = false;
    for i in 0..n {
        let (x0, y0) = r[i];
        let (x1, y1) = r[(i + 1) % n];
        if (y0 <= p.1) != (y1 <= p.1) {
            let x = x0 + (p.1 - y0) / (y1 - y0) * (x1 - x0);
            if x > p.0 {
                odd = !odd;
                w += if y1 > y0 { 1 } else { -1 };
            }
        }
    }
    (w, odd)
}

/// Douglas–Peucker on a closed ring down to at most `max` points: one pass ranks every point by
/// the deviation at which DP would keep it (capped by its parent split's, so the ranking is
/// monotone), then the `max` highest-ranked points are kept in ring order.
pub(crate) fn simplify_ring(r: &[(f64, f64)], max: usize) -> Ring {
    let mut ring: Ring = r.to_vec();
    while ring.len() > 1 && ring.first() == ring.last() {
        ring.pop();
    }
    ring.dedup();
    let n = ring.len();
    if n <= max || max < 3 {
        return ring;
    }
    // Split at the point farthest from the first, rank both open halves.
    let far = (1..n)
        .max_by(|&a, &b| dist2(ring[0], ring[a]).total_cmp(&dist2(ring[0], ring[b])))
        .unwrap_or(0);
    let mut rank = vec![0.0f64; n + 1];
    rank[0] = f64::INFINITY;
    rank[far] = f64::INFINITY;
    rank[n] = f64::INFINITY;
    let mut closed: Ring = ring.clone();
    closed.push(ring[0]);
    dp_rank(&closed, 0, far, &mut rank);
    dp_rank(&closed, far, n, &mut rank);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| rank[b].total_cmp(&rank[a]));
    let mut keep = vec![false; n];
    for &i in order.iter().take(max) {
        keep[i] = true;
    }
    ring.iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(p, _)| *p)
        .collect()
}

fn dist2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
}

fn dp_rank(pts: &[(f64, f64)], first: usize, last: usize, rank: &mut [f64]) {
    let mut stack = vec![(first, last, f64::INFINITY)];
    while let Some((a, b, cap)) = stack.pop() {
        if b <= a + 1 {
            continue;
        }
        let (p, q) = (pts[a], pts[b]);
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len = (dx * dx + dy * dy).sqrt();
        let mut best = (-1.0f64, a + 1);
        for (i, &r) in pts.iter().enumerate().take(b).skip(a + 1) {
            let d = if len == 0.0 {
                dist2(p, r).sqrt()
            } else {
                ((r.0 - p.0) * dy - (r.1 - p.1) * dx).abs() / len
            };
            if d > best.0 {
                best = (d, i);
            }
        }
        let d = best.0.min(cap);
        if let Some(slot) = rank.get_mut(best.1) {
            *slot = d;
        }
        stack.push((a, best.1, d));
        stack.push((best.1, b, d));
    }
}

/// Convex hull (monotone chain) of points.
pub(crate) fn convex_hull(mut pts: Vec<(f64, f64)>) -> Ring {
    pts.retain(|p| p.0.is_finite() && p.1.is_finite());
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let cross = |o: (f64, f64), a: (f64, f64), b: (f64, f64)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut lower: Ring = Vec::new();
    for &p in &pts {
        while lower.len() >= 2 && cross(lower[lower.len() - 2], lower[lower.len() - 1], p) <= 0.0 {
            lower.pop();
        }
        lower.push(p);
    }
    let mut upper: Ring = Vec::new();
    for &p in pts.iter().rev() {
        while upper.len() >= 2 && cross(upper[upper.len() - 2], upper[upper.len() - 1], p) <= 0.0 {
            upper.pop();
        }
        upper.push(p);
    }
    lower.pop();
    upper.pop();
    lower.extend(upper);
    lower
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(d: &str) -> BBox {
        path_t(d, Affine::IDENTITY)
    }

    fn path_t(d: &str, m: Affine) -> BBox {
        let mut a = Acc::new();
        path_bbox(&mut a, m, d);
        a.bbox().unwrap()
    }

    fn close(a: BBox, b: (f64, f64, f64, f64)) {
        let ok = (a.x - b.0).abs() < 1e-6
            && (a.y - b.1).abs() < 1e-6
            && (a.width - b.2).abs() < 1e-6
            && (a.height - b.3).abs() < 1e-6;
        assert!(ok, "{a:?} != {b:?}");
    }

    #[test]
    fn lines_and_relative_commands() {
        close(path("M10,10 h20 v30 H5 z"), (5.0, 10.0, 25.0, 30.0));
        close(path("m10 10 l5-5 L0 0"), (0.0, 0.0, 15.0, 10.0));
        // Implicit lineto after moveto, numbers without separators.
        close(path("M0,0 10,10-5.5.5"), (-5.5, 0.0, 15.5, 10.0));
    }

    #[test]
    fn cubic_uses_extrema_not_control_points() {
        // Control points reach y=100 but the curve peaks at 75.
        close(path("M0,0 C0,100 100,100 100,0"), (0.0, 0.0, 100.0, 75.0));
        // Smooth continuation reflects the last control point: the second hump dips to -75.
        close(
            path("M0,0 C0,100 100,100 100,0 S200,-100 200,0"),
            (0.0, -75.0, 200.0, 150.0),
        );
        close(
            path("M0,0 c0,100 100,100 100,0 s100,-100 100,0"),
            (0.0, -75.0, 200.0, 150.0),
        );
    }

    #[test]
    fn quadratic_and_smooth_quadratic() {
        close(path("M0,0 Q50,100 100,0"), (0.0, 0.0, 100.0, 50.0));
        close(
            path("M0,0 Q50,100 100,0 T200,0"),
            (0.0, -50.0, 200.0, 100.0),
        );
        close(
            path("M0,0 q50,100 100,0 t100,0"),
            (0.0, -50.0, 200.0, 100.0),
        );
    }

    #[test]
    fn arcs() {
        // Half circle of radius 50 above the chord (sweep 1 goes clockwise in y-down space).
        close(path("M0,50 A50,50 0 0 1 100,50"), (0.0, 0.0, 100.0, 50.0));
        close(path("M0,50 A50,50 0 0 0 100,50"), (0.0, 50.0, 100.0, 50.0));
        // Relative, compact flags.
        let sag = 50.0 - (2500.0f64 - 25.0).sqrt();
        close(path("M0,50 a50,50 0 0010 0"), (0.0, 50.0, 10.0, sag));
        // Radii too small are scaled up: a half circle of radius 50.
        close(path("M0,0 A1,1 0 0 1 100,0"), (0.0, -50.0, 100.0, 50.0));
        // Large arc: three quarters of a circle centred at (50,50)... from (50,0) to (0,50).
        close(path("M50,0 A50,50 0 1 1 0,50"), (0.0, 0.0, 100.0, 100.0));
        // Rotated ellipse arc: full ellipse rx=100 ry=50 rotated 90° gives a tall box.
        let b = path("M0,-100 A100,50 90 0 1 0,100 A100,50 90 0 1 0,-100");
        close(b, (-50.0, -100.0, 100.0, 200.0));
    }

    #[test]
    fn transforms() {
        close(
            path_t(
                "M0,0 H10 V10 H0 z",
                parse_transform("translate(5 5) scale(2)"),
            ),
            (5.0, 5.0, 20.0, 20.0),
        );
        let r = path_t("M0,0 H10 V10 H0 z", parse_transform("rotate(90 5 5)"));
        close(r, (0.0, 0.0, 10.0, 10.0));
        let r = path_t("M0,0 H10 V10 H0 z", parse_transform("rotate(45)"));
        let s = 10.0 * std::f64::consts::SQRT_2;
        close(r, (-s / 2.0, 0.0, s, s));
        let k = path_t("M0,0 H10 V10 H0 z", parse_transform("skewX(45)"));
        close(k, (0.0, 0.0, 20.0, 10.0));
        let k = path_t("M0,0 H10 V10 H0 z", parse_transform("skewY(45)"));
        close(k, (0.0, 0.0, 10.0, 20.0));
        let mx = path_t("M0,0 H10 V10 H0 z", parse_transform("matrix(1 0 0 1 3 4)"));
        close(mx, (3.0, 4.0, 10.0, 10.0));
        // A rotated circle is still a circle; its box must not grow.
        let mut a = Acc::new();
        let m = parse_transform("rotate(30)");
        a.ellipse_arc(
            m.apply(0.0, 0.0),
            m.apply_vec(10.0, 0.0),
            m.apply_vec(0.0, 10.0),
            0.0,
            TAU,
        );
        close(a.bbox().unwrap(), (-10.0, -10.0, 20.0, 20.0));
    }

    #[test]
    fn number_syntax() {
        assert_eq!(numbers("1,2 3-4.5.5e1"), vec![1.0, 2.0, 3.0, -4.5, 5.0]);
        assert_eq!(numbers("1e-2-1E+1"), vec![0.01, -10.0]);
    }
}
