//! The single streaming pass: validate, sanitize, and index elements.
//!
//! Output is canonical so that sanitizing the output again gives the same bytes:
//! - start tags are rebuilt as `<name a="v" ...>` with only allowlisted attributes, in input order,
//!   values copied raw (entity references validated, `<`, `>` and `"` escaped);
//! - the root always carries `xmlns` and `xmlns:xlink` (and `xmlns:inkscape` if it declared it);
//!   other namespace declarations are dropped, and an element using `inkscape:label` under a root
//!   that does not declare the prefix gets its own declaration;
//! - end tags come from the element stack; comments, processing instructions, the XML declaration
//!   and CDATA (outside `<style>`) are dropped; text keeps its references, with `>` escaped.
//!
//! Class rules of `<style>` become presentation attributes. Rules already read are inlined into
//! each start tag as it is written (the usual Illustrator layout, `<style>` in `<defs>` first);
//! elements written before later rules arrived are fixed after the pass through a list of
//! patches applied to the output, so a `<style>` after the shapes works too without a second parse.

use std::borrow::Cow;
use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::allow::{
    AttrKind, ElemAction, Kind, PRESENTATION, animation_target_ok, attr_kind, css_value_ok,
    element_action, href_ok,
};
use crate::attrs::Attrs;
use crate::css::{StyleSheet, filter_style};
use crate::error::{SvgError, SvgErrorKind};
use crate::{Limits, ViewBox};

/// Marks "no node" in parent links.
pub(crate) const NONE: u32 = u32::MAX;

const SVG_NS: &str = "http://www.w3.org/2000/svg";
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
const INKSCAPE_NS: &str = "http://www.inkscape.org/namespaces/inkscape";

/// A byte range of the sanitized text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// One kept element of the sanitized document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    /// Offset of `<` of the start tag in the sanitized text.
    pub tag_start: u32,
    /// Offset just past the `>` of the start tag.
    pub tag_end: u32,
    pub parent: u32,
    /// Index one past the last descendant: descendants are `self+1..end`.
    pub end: u32,
    pub kind: Kind,
    /// Inside (or itself) defs, symbol, clipPath, mask, marker, pattern, gradient, filter.
    pub hidden: bool,
    /// Inside (or itself) a `text`, `tspan` or `textPath`.
    pub in_text: bool,
    /// A shape that draws a closed area (see `draws_area`), or a `use` with a reference.
    pub closed: bool,
    /// An Inkscape layer (`inkscape:groupmode="layer"`): never a lot.
    pub layer: bool,
}

/// The naming attributes of an element (decoded lazily from the sanitized text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Named {
    pub node: u32,
    pub id: Option<Span>,
    pub data_name: Option<Span>,
    pub label: Option<Span>,
    /// Text content of the element's `<title>` child.
    pub title: Option<Span>,
    /// The id has the generated form (`kv-…`), so it names nothing (kept here so mapping need
    /// not read the id's bytes out of a large text).
    pub generated: bool,
}

/// Prefix of the ids generated for id-less shapes.
pub(crate) const GENERATED_PREFIX: &str = "kv-";

/// Whether an id has the form the sanitizer generates (`kv-` and 8 hex digits, maybe `-N`).
pub(crate) fn is_generated_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix(GENERATED_PREFIX) else {
        return false;
    };
    let (hex, dup) = match rest.get(8..) {
        Some("") => (rest, None),
        Some(tail) => (rest.get(..8).unwrap_or(""), tail.strip_prefix('-')),
        None => return false,
    };
    hex.len() == 8
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && dup.is_none_or(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// A 32-bit hash of a start tag for generated ids: FNV-1a over 64-bit words in four lanes
/// (so long path data hashes at memory speed), folded and finished with a 64-bit mixer.
/// Part of the stored-id format: changing it changes every generated id.
pub(crate) fn tag_hash(bytes: &[u8]) -> u32 {
    const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut lanes = [BASIS, BASIS ^ 1, BASIS ^ 2, BASIS ^ 3];
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        for (k, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&c[k * 8..k * 8 + 8]);
            *lane = (*lane ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
        }
    }
    let mut h = BASIS;
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(PRIME);
        h ^= h >> 29;
    }
    h ^= bytes.len() as u64;
    // fmix64 (MurmurHash3): FNV's multiply only carries low bits upwards.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h ^ (h >> 32)) as u32
}

/// A hasher for keys that are already hashes (one multiply to spread them).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        // hashbrown tags buckets with the top bits: spread a 32-bit key over all 64.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// A map keyed by precomputed hashes.
pub(crate) type HashKeyed<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdentityHasher>>;

/// Whether a `points` list closes on itself (first point repeated at the end).
pub(crate) fn points_closed(points: &str) -> bool {
    let n = crate::geometry::numbers(&decode_lossy(points));
    let pairs = n.len() / 2;
    if pairs < 4 {
        return false;
    }
    let last = 2 * (pairs - 1);
    match (n.first(), n.get(1), n.get(last), n.get(last + 1)) {
        (Some(a), Some(b), Some(c), Some(d)) => (a - c).abs() < 1e-9 && (b - d).abs() < 1e-9,
        _ => false,
    }
}

/// Kinds that get a generated id when they draw a closed area.
fn is_shape_kind(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Rect
            | Kind::Circle
            | Kind::Ellipse
            | Kind::Path
            | Kind::Polyline
            | Kind::Polygon
            | Kind::Use
    )
}

/// Whether a shape draws a closed area: a path whose data closes (`Z`), a polyline that returns
/// to its start, a polygon with points, a rect/circle/ellipse with a size, a use with a reference
/// (`closes` says it has one).
fn draws_area(kind: Kind, closes: bool, data: Option<&str>, sizes: [Option<&str>; 2]) -> bool {
    let positive = |v: Option<&str>| v.is_some_and(positive_length);
    match kind {
        // `Z` usually ends the data: search from the end.
        Kind::Path => data.is_some_and(|d| d.bytes().rev().any(|b| b == b'z' || b == b'Z')),
        Kind::Polyline => data.is_some_and(points_closed),
        Kind::Polygon => data.is_some_and(|p| crate::geometry::numbers(p).len() >= 6),
        Kind::Rect => positive(sizes[0]) && positive(sizes[1]),
        Kind::Circle => positive(sizes[0]),
        Kind::Ellipse => positive(sizes[0]) || positive(sizes[1]),
        Kind::Use => closes,
        _ => false,
    }
}

/// Whether a length such as `38`, `0.5px`, `+2` or `50%` is positive, without parsing the float
/// (this runs for every id-less shape): no minus sign and a non-zero digit before anything else.
fn positive_length(raw: &str) -> bool {
    let t = raw.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    t.bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .any(|b| (b'1'..=b'9').contains(&b))
}

/// Result of the pass.
pub(crate) struct Parsed {
    pub text: String,
    pub nodes: Vec<Node>,
    pub named: Vec<Named>,
    /// (node, id span) of elements whose only name is a generated id, in node order: kept apart
    /// so mapping by name never walks them.
    pub gen_ids: Vec<(u32, Span)>,
    pub view_box: Option<ViewBox>,
    /// Rendered closed shapes (and `use` copies with a reference).
    pub shape_count: usize,
    /// What sanitizing removed that the designer meant to show, each with the fix.
    pub removed: Vec<String>,
}

/// Most notes about removed resources; the rest are counted in one line.
const MAX_REMOVED_NOTES: usize = 20;

/// The note for an external (or non-raster `data:`) image reference dropped from `image`.
fn image_note(href: &str) -> String {
    let shown = shown_ref(href);
    if href
        .trim_start()
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("data:"))
    {
        format!(
            "the embedded image \"{shown}\" was removed: only PNG, JPEG, GIF and WebP images are kept; \
             export the background as PNG or JPEG embedded as a data: URI"
        )
    } else {
        format!(
            "the background image \"{shown}\" was removed: the server never loads external files; \
             embed the image as a data: URI on export"
        )
    }
}

/// The note for an external stylesheet (`<?xml-stylesheet?>`, `@import`, `<link>`).
fn stylesheet_note(href: &str) -> String {
    format!(
        "the external stylesheet \"{}\" was removed: the server never loads external files; \
         put its rules in a <style> element inside the SVG on export",
        shown_ref(href)
    )
}

/// The note for an external font (`@font-face` `src: url(...)`, `font-face-uri`).
fn font_note(href: &str) -> String {
    format!(
        "the external font \"{}\" was removed: the server never loads external files; \
         convert text to outlines or use a common font on export",
        shown_ref(href)
    )
}

/// A reference as shown in a note: trimmed, a `data:` URL cut to its type, at most 80 characters.
fn shown_ref(href: &str) -> String {
    let t = href.trim();
    let t = if t.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
        t.split([',', ';']).next().unwrap_or(t)
    } else {
        t
    };
    let mut out: String = t.chars().take(80).collect();
    if out.len() < t.len() {
        out.push('…');
    }
    out
}

/// The first `url(...)` or quoted string of a CSS fragment (what `@import` or `src:` names).
fn css_ref(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let (s, url) = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("url(") => (s[4..].trim_start(), true),
        _ => (s, false),
    };
    let r = match s.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => s[1..].split(char::from(q)).next(),
        _ if url => s.split(')').next().map(str::trim),
        _ => None,
    }?;
    (!r.is_empty() && !r.starts_with('#')).then_some(r)
}

/// Notes for what a `<style>` asked to load: `@import`s and `@font-face` sources.
fn css_notes(css: &str, out: &mut Vec<String>) {
    let lower = css.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find("@import") {
        let at = from + p + "@import".len();
        if let Some(r) = css_ref(&css[at..]) {
            out.push(stylesheet_note(r));
        }
        from = at;
    }
    let mut from = 0;
    while let Some(p) = lower[from..].find("@font-face") {
        let at = from + p;
        let end = lower[at..].find('}').map_or(lower.len(), |e| at + e);
        let mut k = at;
        while let Some(u) = lower[k..end].find("url(") {
            let start = k + u;
            if let Some(r) = css_ref(&css[start..end])
                .filter(|r| !r.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")))
            {
                out.push(font_note(r));
            }
            k = start + 4;
        }
        from = end.max(at + 1);
    }
}

/// An element with a `class` attribute, remembered for inlining class rules.
struct ClassRec {
    node: u32,
    class: Span,
    /// Presentation properties declared in its `style` (those beat class rules).
    style_mask: u64,
    pres_start: u32,
    pres_len: u32,
    /// Number of stylesheet declarations already inlined while streaming (0: none).
    version: u32,
}

/// Class rules resolved for one (class list, style mask): the attribute text to append and
/// where each attribute sits in it.
struct Inline {
    style_mask: u64,
    text: String,
    props: Vec<(u8, u32, u32)>,
    mask: u64,
}

/// A presentation attribute written on a classed element: ` name="value"` span.
struct PresSpan {
    prop: u8,
    start: u32,
    end: u32,
}

enum FrameWhat {
    Kept { node: u32, name: &'static str },
    Dropped,
    Style,
}

struct Frame {
    pos: usize,
    what: FrameWhat,
}

/// Resolves an entity reference name: the five XML entities and character references only.
pub(crate) fn resolve_ref(name: &str) -> Result<char, SvgErrorKind> {
    match name {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "quot" => Ok('"'),
        "apos" => Ok('\''),
        _ => {
            let Some(num) = name.strip_prefix('#') else {
                return Err(SvgErrorKind::UnknownEntity(name.to_string()));
            };
            let code = if let Some(hex) = num.strip_prefix('x') {
                u32::from_str_radix(hex, 16).ok()
            } else if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                num.parse::<u32>().ok()
            } else {
                None
            };
            let ok = |c: u32| matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF);
            match code.filter(|&c| ok(c)).and_then(char::from_u32) {
                Some(c) => Ok(c),
                None => Err(SvgErrorKind::InvalidCharRef(name.to_string())),
            }
        }
    }
}

/// Finds the reference starting at `s[0] == '&'`; returns its name and total length.
fn ref_at(s: &str) -> Result<(&str, usize), SvgErrorKind> {
    // Search bytes: the window may end inside a multi-byte character, but `;` is ASCII, so the
    // slice up to it is always on a character boundary.
    let limit = s.len().min(34);
    match s.as_bytes()[1..limit].iter().position(|&b| b == b';') {
        Some(p) if p > 0 => Ok((&s[1..1 + p], p + 2)),
        _ => Err(SvgErrorKind::Malformed(
            "a bare `&` must be written as `&amp;`".to_string(),
        )),
    }
}

/// Decodes an attribute value's references. Errors carry the byte offset within `raw`.
pub(crate) fn decode(raw: &str) -> Result<Cow<'_, str>, (usize, SvgErrorKind)> {
    if !raw.as_bytes().contains(&b'&') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut s = String::with_capacity(raw.len());
    let mut i = 0;
    let b = raw.as_bytes();
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'&' {
            let (name, len) = ref_at(&raw[i..]).map_err(|k| (i, k))?;
            let c = resolve_ref(name).map_err(|k| (i, k))?;
            s.push_str(&raw[last..i]);
            s.push(c);
            i += len;
            last = i;
        } else {
            i += 1;
        }
    }
    s.push_str(&raw[last..]);
    Ok(Cow::Owned(s))
}

/// Decodes a value known to be valid (it came out of the sanitizer).
pub(crate) fn decode_lossy(raw: &str) -> Cow<'_, str> {
    decode(raw).unwrap_or(Cow::Borrowed(raw))
}

/// Whether any byte needs attention when copying an attribute value raw (SIMD searches: values
/// are most of a siteplan's bytes, and almost none of them need anything).
#[inline]
fn has_special(b: &[u8]) -> bool {
    memchr::memchr3(b'&', b'<', b'>', b).is_some() || memchr::memchr(b'"', b).is_some()
}

/// Copies a raw attribute value, validating references and escaping `<`, `>`, `"`.
fn push_raw_value(out: &mut String, raw: &str) -> Result<(), (usize, SvgErrorKind)> {
    let b = raw.as_bytes();
    if !has_special(b) {
        out.push_str(raw);
        return Ok(());
    }
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        let esc = match b[i] {
            b'&' => {
                let (name, len) = ref_at(&raw[i..]).map_err(|k| (i, k))?;
                resolve_ref(name).map_err(|k| (i, k))?;
                i += len;
                continue;
            }
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => {
                i += 1;
                continue;
            }
        };
        out.push_str(&raw[last..i]);
        out.push_str(esc);
        i += 1;
        last = i;
    }
    out.push_str(&raw[last..]);
    Ok(())
}

/// Escapes decoded text for an attribute value.
pub(crate) fn push_escaped(out: &mut String, v: &str) {
    let mut last = 0;
    for (i, c) in v.char_indices() {
        let esc = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            _ => continue,
        };
        out.push_str(&v[last..i]);
        out.push_str(esc);
        last = i + 1;
    }
    out.push_str(&v[last..]);
}

/// First byte that is a C0 control character XML 1.0 forbids (all but tab, LF, CR). Chunked so
/// the common "none" answer is a vectorised scan.
fn find_control_char(b: &[u8]) -> Option<usize> {
    let bad = |x: u8| x < 0x20 && x != b'\t' && x != b'\n' && x != b'\r';
    let mut chunks = b.chunks_exact(32);
    let mut base = 0;
    for c in &mut chunks {
        let mut f = false;
        for &x in c {
            f |= bad(x);
        }
        if f {
            return c.iter().position(|&x| bad(x)).map(|p| base + p);
        }
        base += 32;
    }
    chunks
        .remainder()
        .iter()
        .position(|&x| bad(x))
        .map(|p| base + p)
}

fn is_xml_space(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Byte offset of `inner` in `outer` when it is a subslice of it.
fn offset_in(outer: &str, inner: &str) -> Option<usize> {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    (i >= o && i + inner.len() <= o + outer.len()).then(|| i - o)
}

/// Parses the leading number of a length such as `1600`, `1600px` or `12.5e1`.
pub(crate) fn parse_length(s: &str) -> Option<f64> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|&(i, c)| {
            !(c.is_ascii_digit()
                || c == '.'
                || ((c == '-' || c == '+')
                    && (i == 0 || matches!(s.as_bytes()[i - 1], b'e' | b'E')))
                || ((c == 'e' || c == 'E') && i > 0))
        })
        .map_or(s.len(), |(i, _)| i);
    let unit = s[end..].trim();
    if !(unit.is_empty() || unit == "px") {
        return None;
    }
    s[..end].parse().ok().filter(|v: &f64| v.is_finite())
}

fn parse_view_box(vb: Option<&str>, w: Option<&str>, h: Option<&str>) -> Option<ViewBox> {
    if let Some(vb) = vb {
        let n: Vec<f64> = vb
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok())
            .collect();
        if n.len() == 4 && n[2] > 0.0 && n[3] > 0.0 && n.iter().all(|v| v.is_finite()) {
            return Some(ViewBox {
                min_x: n[0],
                min_y: n[1],
                width: n[2],
                height: n[3],
            });
        }
    }
    let width = parse_length(w?)?;
    let height = parse_length(h?)?;
    (width > 0.0 && height > 0.0).then_some(ViewBox {
        min_x: 0.0,
        min_y: 0.0,
        width,
        height,
    })
}

/// Calls `f(name, value span, whole-attribute span)` for each attribute of a node's start tag in
/// the sanitized text. Used off the hot path (geometry, colouring, patched tags).
pub(crate) fn for_each_attr(text: &str, node: &Node, mut f: impl FnMut(&str, Span, Span)) {
    let tag = &text[node.tag_start as usize..node.tag_end as usize];
    let inner = tag
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix("/>").or_else(|| t.strip_suffix('>')))
        .unwrap_or("");
    let name_len = inner
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(inner.len());
    for (key, val) in Attrs::with_buffer(&inner[name_len..], Vec::new()).flatten() {
        let (Some(k), Some(v)) = (offset_in(text, key), offset_in(text, val)) else {
            continue;
        };
        let value = Span {
            start: v as u32,
            len: val.len() as u32,
        };
        // Canonical output: ` name="value"`, so the whole attribute is easy to delimit.
        let whole = Span {
            start: k as u32 - 1,
            len: (v + val.len() + 1 - (k - 1)) as u32,
        };
        f(key, value, whole);
    }
}

/// The streaming pass.
pub(crate) fn run(input: &[u8], limits: &Limits) -> Result<Parsed, SvgError> {
    // SIMD validation (std's is a tenth of a parse); std's again only to place an error.
    let text = match simdutf8::basic::from_utf8(input).or_else(|_| std::str::from_utf8(input)) {
        Ok(t) => t,
        Err(e) => {
            let valid = std::str::from_utf8(&input[..e.valid_up_to()]).unwrap_or("");
            return Err(SvgError::at(valid, valid.len(), SvgErrorKind::NotUtf8));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) = find_control_char(text.as_bytes()) {
        let c = text.as_bytes()[at];
        return Err(SvgError::at(
            text,
            at,
            SvgErrorKind::Malformed(format!("control character U+{c:04X} is not allowed in XML")),
        ));
    }
    if is_xml_space(text) {
        return Err(SvgError::at(text, 0, SvgErrorKind::Empty));
    }
    if text.len() >= (u32::MAX / 2) as usize {
        return Err(SvgError::at(text, 0, SvgErrorKind::TooLarge));
    }
    Pass::new(text, limits).run()
}

/// The cascade of class rules for one class list: later rules win; properties the element's
/// `style` declares are left to it.
fn resolve_inline(sheet: &StyleSheet, classes: &str, style_mask: u64) -> Inline {
    let mut best = [NONE; 64];
    let mut touched: Vec<u8> = Vec::new();
    for c in classes.split_ascii_whitespace() {
        let Some(list) = sheet.classes.get(c) else {
            continue;
        };
        for &d in list {
            let p = sheet.decls[d as usize].0 as usize;
            if best[p] == NONE {
                touched.push(p as u8);
                best[p] = d;
            } else {
                best[p] = best[p].max(d);
            }
        }
    }
    let mut apply: Vec<(u32, u8)> = touched
        .iter()
        .filter(|&&p| style_mask & (1u64 << p) == 0)
        .map(|&p| (best[p as usize], p))
        .collect();
    apply.sort_unstable();
    let mut text = String::new();
    let mut props = Vec::with_capacity(apply.len());
    let mut mask = 0u64;
    for (d, p) in apply {
        let start = text.len() as u32;
        text.push(' ');
        text.push_str(PRESENTATION[p as usize]);
        text.push_str("=\"");
        push_escaped(&mut text, &sheet.decls[d as usize].1);
        text.push('"');
        props.push((p, start, text.len() as u32));
        mask |= 1u64 << p;
    }
    Inline {
        style_mask,
        text,
        props,
        mask,
    }
}

struct Pass<'a> {
    text: &'a str,
    limits: &'a Limits,
    out: String,
    nodes: Vec<Node>,
    named: Vec<Named>,
    gen_ids: Vec<(u32, Span)>,
    stack: Vec<Frame>,
    /// Dropped or style frames on the stack: while non-zero nothing is written.
    dropping: usize,
    root_seen: bool,
    root_done: bool,
    root_inkscape: bool,
    elements: usize,
    /// Text of the `<style>` element being read.
    css: String,
    /// Class rules of the `<style>` elements read so far.
    sheet: StyleSheet,
    class_recs: Vec<ClassRec>,
    pres_spans: Vec<PresSpan>,
    scratch: String,
    /// Buffer lent to the attribute scanner.
    attr_buf: Vec<(usize, usize)>,
    /// Resolved class rules per class list, valid for the current stylesheet.
    inline_cache: HashMap<String, Vec<Inline>>,
    view_box: Option<ViewBox>,
    /// How many id-less shapes got each generated hash so far (for `-2`, `-3` suffixes).
    generated: HashKeyed<u32>,
    shape_count: usize,
    removed: Vec<String>,
}

impl<'a> Pass<'a> {
    fn new(text: &'a str, limits: &'a Limits) -> Self {
        Pass {
            text,
            limits,
            // Headroom for inlined class rules, so patching in place rarely reallocates.
            out: String::with_capacity(text.len() + text.len() / 4 + 256),
            nodes: Vec::with_capacity(text.len() / 256 + 16),
            // Generated ids name most shapes: about one per element.
            named: Vec::new(),
            gen_ids: Vec::with_capacity(text.len() / 512 + 16),
            stack: Vec::with_capacity(64),
            dropping: 0,
            root_seen: false,
            root_done: false,
            root_inkscape: false,
            elements: 0,
            css: String::new(),
            sheet: StyleSheet::default(),
            class_recs: Vec::new(),
            pres_spans: Vec::new(),
            scratch: String::new(),
            attr_buf: Vec::new(),
            inline_cache: HashMap::new(),
            view_box: None,
            generated: HashKeyed::default(),
            shape_count: 0,
            removed: Vec::new(),
        }
    }

    /// Records what sanitizing removed (first occurrence of each note only).
    fn note_removed(&mut self, note: String) {
        if !self.removed.contains(&note) {
            self.removed.push(note);
        }
    }

    fn err(&self, offset: usize, kind: SvgErrorKind) -> SvgError {
        SvgError::at(self.text, offset, kind)
    }

    /// Error inside a value borrowed from the input: points at the exact byte.
    fn err_in(&self, raw: &str, fallback: usize, (off, kind): (usize, SvgErrorKind)) -> SvgError {
        let at = offset_in(self.text, raw).map_or(fallback, |o| o + off);
        self.err(at, kind)
    }

    fn run(mut self) -> Result<Parsed, SvgError> {
        let mut reader = Reader::from_str(self.text);
        {
            let cfg = reader.config_mut();
            cfg.check_end_names = true;
            cfg.check_comments = true;
            cfg.allow_dangling_amp = false;
            cfg.allow_unmatched_ends = false;
            cfg.expand_empty_elements = false;
            cfg.trim_text(false);
        }
        loop {
            let pos = reader.buffer_position() as usize;
            let ev = match reader.read_event() {
                Ok(ev) => ev,
                Err(e) => {
                    let at = reader.error_position() as usize;
                    return Err(self.err(at, SvgErrorKind::Malformed(e.to_string())));
                }
            };
            match ev {
                Event::Start(e) => self.start(&e, pos, false)?,
                Event::Empty(e) => self.start(&e, pos, true)?,
                Event::End(_) => self.end(pos)?,
                Event::Text(t) => self.text_event(&t, pos)?,
                Event::GeneralRef(r) => {
                    let c = resolve_ref(&r).map_err(|k| self.err(pos, k))?;
                    if self.stack.is_empty() {
                        return Err(self.outside_root(pos));
                    }
                    if self.dropping == 0 {
                        self.out.push('&');
                        self.out.push_str(&r);
                        self.out.push(';');
                    } else if self.in_style() {
                        self.css.push(c);
                    }
                }
                Event::CData(c) => {
                    if self.stack.is_empty() {
                        return Err(self.outside_root(pos));
                    }
                    if self.in_style() {
                        self.css.push_str(&c);
                    }
                }
                Event::Decl(_) => {
                    if pos != 0 {
                        return Err(self.err(
                            pos,
                            SvgErrorKind::Malformed(
                                "the XML declaration must be at the very start".to_string(),
                            ),
                        ));
                    }
                }
                Event::PI(pi) => {
                    // `<?xml-stylesheet href="..."?>`: dropped like every instruction; say so.
                    let body: &str = &pi;
                    if let Some(rest) = body.trim_start().strip_prefix("xml-stylesheet")
                        && let Some(h) = rest.find("href")
                        && let Some(r) = rest[h + 4..]
                            .trim_start()
                            .strip_prefix('=')
                            .and_then(css_ref)
                    {
                        self.note_removed(stylesheet_note(r));
                    }
                }
                Event::Comment(_) => {}
                Event::DocType(_) => return Err(self.err(pos, SvgErrorKind::DocType)),
                Event::Eof => break,
            }
        }
        if let Some(f) = self.stack.last() {
            let name: String = self.text[f.pos + 1..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
                .take(64)
                .collect();
            return Err(self.err(f.pos, SvgErrorKind::Unclosed(name)));
        }
        if !self.root_seen {
            return Err(self.err(self.text.len(), SvgErrorKind::NoRoot));
        }
        self.out.push('\n');
        // Classed elements written before the last rules arrived (a `<style>` after the shapes)
        // are patched with the whole stylesheet; the others were inlined while streaming.
        let version = self.sheet.decls.len() as u32;
        self.class_recs.retain(|r| r.version != version);
        if !self.class_recs.is_empty() && !self.sheet.is_empty() {
            let sheet = std::mem::take(&mut self.sheet);
            self.apply_classes(&sheet);
        }
        let mut removed = std::mem::take(&mut self.removed);
        if removed.len() > MAX_REMOVED_NOTES {
            let more = removed.len() - MAX_REMOVED_NOTES;
            removed.truncate(MAX_REMOVED_NOTES);
            removed.push(format!("... and {more} more removed references"));
        }
        Ok(Parsed {
            text: self.out,
            nodes: self.nodes,
            named: self.named,
            gen_ids: self.gen_ids,
            view_box: self.view_box,
            shape_count: self.shape_count,
            removed,
        })
    }

    fn outside_root(&self, pos: usize) -> SvgError {
        let kind = if self.root_done {
            SvgErrorKind::ContentAfterRoot
        } else {
            SvgErrorKind::TextBeforeRoot
        };
        self.err(pos, kind)
    }

    fn in_style(&self) -> bool {
        self.dropping == 1
            && matches!(
                self.stack.last(),
                Some(Frame {
                    what: FrameWhat::Style,
                    ..
                })
            )
    }

    fn text_event(&mut self, t: &str, pos: usize) -> Result<(), SvgError> {
        if self.stack.is_empty() {
            if is_xml_space(t) {
                return Ok(());
            }
            return Err(self.outside_root(pos));
        }
        if self.dropping == 0 {
            if t.as_bytes().contains(&b'>') {
                self.out.push_str(&t.replace('>', "&gt;"));
            } else {
                self.out.push_str(t);
            }
        } else if self.in_style() {
            self.css.push_str(t);
        }
        Ok(())
    }

    fn end(&mut self, pos: usize) -> Result<(), SvgError> {
        let Some(frame) = self.stack.pop() else {
            return Err(self.err(
                pos,
                SvgErrorKind::Malformed("closing tag without an open element".to_string()),
            ));
        };
        match frame.what {
            FrameWhat::Kept { node, name } => {
                if name == "title" {
                    self.attach_title(node);
                }
                self.out.push_str("</");
                self.out.push_str(name);
                self.out.push('>');
                let end = self.nodes.len() as u32;
                if let Some(n) = self.nodes.get_mut(node as usize) {
                    n.end = end;
                }
            }
            FrameWhat::Style => {
                self.dropping -= 1;
                if self.dropping == 0 && !self.css.is_empty() {
                    let mut notes = Vec::new();
                    css_notes(&self.css, &mut notes);
                    for n in notes {
                        self.note_removed(n);
                    }
                    self.sheet.add(&self.css);
                    self.css.clear();
                    self.inline_cache.clear();
                }
            }
            FrameWhat::Dropped => self.dropping -= 1,
        }
        if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    /// Checks the attributes of an element that is dropped: they must still be well-formed.
    fn validate_attrs(&mut self, e: &BytesStart<'_>, pos: usize) -> Result<(), SvgError> {
        let raw = e.attributes_raw();
        let mut it = Attrs::with_buffer(raw, std::mem::take(&mut self.attr_buf));
        for a in &mut it {
            let (_, value) = a.map_err(|x| self.attr_err(raw, pos, x))?;
            decode(value).map_err(|x| self.err_in(value, pos, x))?;
        }
        self.attr_buf = it.into_buffer();
        Ok(())
    }

    /// An attribute syntax error, placed at its byte in the input.
    fn attr_err(&self, raw: &str, pos: usize, (off, msg): (usize, String)) -> SvgError {
        self.err_in(raw, pos, (off, SvgErrorKind::Malformed(msg)))
    }

    fn start(&mut self, e: &BytesStart<'_>, pos: usize, empty: bool) -> Result<(), SvgError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(self.err(pos, SvgErrorKind::TooManyElements(self.limits.max_elements)));
        }
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(self.err(pos, SvgErrorKind::TooDeep(self.limits.max_depth)));
        }
        let name = e.name().0;
        let is_root = self.stack.is_empty();
        if is_root {
            if self.root_done {
                return Err(self.err(pos, SvgErrorKind::ContentAfterRoot));
            }
            if name != "svg" {
                let shown: String = name.chars().take(64).collect();
                return Err(self.err(pos, SvgErrorKind::RootNotSvg(shown)));
            }
            self.root_seen = true;
        }
        let action = if self.dropping > 0 {
            ElemAction::Drop
        } else {
            element_action(name)
        };
        let (canon, kind) = match action {
            ElemAction::Keep(canon, kind) => (canon, kind),
            ElemAction::Style => return self.skip(e, pos, empty, FrameWhat::Style),
            ElemAction::Drop => return self.skip(e, pos, empty, FrameWhat::Dropped),
        };
        if kind == Kind::Anim && !self.animation_ok(e, pos)? {
            return self.skip(e, pos, empty, FrameWhat::Dropped);
        }
        self.keep(e, pos, empty, canon, kind, is_root)
    }

    fn skip(
        &mut self,
        e: &BytesStart<'_>,
        pos: usize,
        empty: bool,
        what: FrameWhat,
    ) -> Result<(), SvgError> {
        self.validate_attrs(e, pos)?;
        if self.dropping == 0 {
            self.note_dropped(e);
        }
        if !empty {
            self.stack.push(Frame { pos, what });
            self.dropping += 1;
        }
        Ok(())
    }

    /// Notes a dropped `<link href>` (an HTML stylesheet) or `<font-face-uri href>` (an SVG
    /// font file) outside already dropped content.
    fn note_dropped(&mut self, e: &BytesStart<'_>) {
        let name = e.name().0;
        let local = name.rsplit(':').next().unwrap_or(name);
        let font = local.eq_ignore_ascii_case("font-face-uri");
        if !font && !local.eq_ignore_ascii_case("link") {
            return;
        }
        for (key, value) in Attrs::with_buffer(e.attributes_raw(), Vec::new()).flatten() {
            let key = key.rsplit(':').next().unwrap_or(key);
            if key == "href" && !value.trim().is_empty() && !value.trim().starts_with('#') {
                let v = decode_lossy(value).into_owned();
                self.note_removed(if font {
                    font_note(&v)
                } else {
                    stylesheet_note(&v)
                });
            }
        }
    }

    /// An animation element is kept only if it does not target `href`, `style` or an event handler.
    fn animation_ok(&self, e: &BytesStart<'_>, pos: usize) -> Result<bool, SvgError> {
        let raw = e.attributes_raw();
        for a in Attrs::with_buffer(raw, Vec::new()) {
            let (key, value) = a.map_err(|x| self.attr_err(raw, pos, x))?;
            if key.eq_ignore_ascii_case("attributeName") {
                let v = decode(value).map_err(|x| self.err_in(value, pos, x))?;
                if !animation_target_ok(&v) {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Writes ` name="raw"`; returns the span of the value in the output.
    fn write_attr(&mut self, name: &str, raw: &str, pos: usize) -> Result<Span, SvgError> {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        let start = self.out.len();
        if let Err(x) = push_raw_value(&mut self.out, raw) {
            return Err(self.err_in(raw, pos, x));
        }
        let len = self.out.len() - start;
        self.out.push('"');
        Ok(Span {
            start: start as u32,
            len: len as u32,
        })
    }

    fn keep(
        &mut self,
        e: &BytesStart<'_>,
        pos: usize,
        empty: bool,
        canon: &'static str,
        kind: Kind,
        is_root: bool,
    ) -> Result<(), SvgError> {
        let node = self.nodes.len() as u32;
        let parent = match self.stack.last() {
            Some(Frame {
                what: FrameWhat::Kept { node, .. },
                ..
            }) => *node,
            _ => NONE,
        };
        let hidden =
            kind == Kind::Hidden || self.nodes.get(parent as usize).is_some_and(|p| p.hidden);
        let in_text =
            kind == Kind::Text || self.nodes.get(parent as usize).is_some_and(|p| p.in_text);
        let tag_start = self.out.len();
        self.out.push('<');
        self.out.push_str(canon);
        if is_root {
            self.out.push_str(" xmlns=\"");
            self.out.push_str(SVG_NS);
            self.out.push_str("\" xmlns:xlink=\"");
            self.out.push_str(XLINK_NS);
            self.out.push('"');
            let mut declares_inkscape = false;
            // A label on the root itself also needs the declaration up front.
            for (key, _) in Attrs::with_buffer(e.attributes_raw(), Vec::new()).flatten() {
                declares_inkscape |= matches!(
                    key,
                    "xmlns:inkscape" | "inkscape:label" | "inkscape:groupmode"
                );
            }
            if declares_inkscape {
                self.out.push_str(" xmlns:inkscape=\"");
                self.out.push_str(INKSCAPE_NS);
                self.out.push('"');
                self.root_inkscape = true;
            }
        }
        let allows_data = kind == Kind::Image || canon == "feImage";
        let mut named = Named {
            node,
            id: None,
            data_name: None,
            label: None,
            title: None,
            generated: false,
        };
        let mut class = None;
        // Whether the shape draws a closed area: a path's data closes it, a polyline returns to
        // its start, a rect/circle/ellipse has a size, a polygon has points, a use a reference.
        let mut closes = false;
        let mut shape_data: Option<&str> = None;
        let mut sizes: [Option<&str>; 2] = [None, None];
        let mut style_mask = 0u64;
        let mut layer = false;
        // The root declares the prefix up front when it uses it; others declare it once here.
        let mut inkscape_declared = self.root_inkscape;
        let pres_start = self.pres_spans.len();
        let (mut vb, mut width, mut height) = (None, None, None);
        let attrs_raw = e.attributes_raw();
        let mut it = Attrs::with_buffer(attrs_raw, std::mem::take(&mut self.attr_buf));
        for a in &mut it {
            let (key, raw) = a.map_err(|x| self.attr_err(attrs_raw, pos, x))?;
            match attr_kind(key) {
                AttrKind::Plain => {
                    if !matches!(key, "d" | "points")
                        && !key.starts_with("data-")
                        && !key.starts_with("aria-")
                        && !css_value_ok(&decode(raw).map_err(|x| self.err_in(raw, pos, x))?)
                    {
                        continue;
                    }
                    let span = self.write_attr(key, raw, pos)?;
                    // Only remembered here: checked at the end, and only for id-less shapes.
                    match (kind, key) {
                        (Kind::Path, "d") | (Kind::Polyline | Kind::Polygon, "points") => {
                            shape_data = Some(raw);
                        }
                        (Kind::Rect, "width") | (Kind::Ellipse, "rx") | (Kind::Circle, "r") => {
                            sizes[0] = Some(raw);
                        }
                        (Kind::Rect, "height") | (Kind::Ellipse, "ry") => sizes[1] = Some(raw),
                        _ => {}
                    }
                    if is_root {
                        let v = &self.out[span.range()];
                        match key {
                            "viewBox" => vb = Some(decode_lossy(v).into_owned()),
                            "width" => width = Some(decode_lossy(v).into_owned()),
                            "height" => height = Some(decode_lossy(v).into_owned()),
                            _ => {}
                        }
                    }
                }
                AttrKind::Id => {
                    let s = self.write_attr(key, raw, pos)?;
                    named.id = Some(s);
                    named.generated = is_generated_id(&self.out[s.range()]);
                }
                AttrKind::DataName => {
                    let s = self.write_attr(key, raw, pos)?;
                    named.data_name = Some(s);
                }
                AttrKind::Label => {
                    self.declare_inkscape(&mut inkscape_declared);
                    let s = self.write_attr(key, raw, pos)?;
                    named.label = Some(s);
                }
                AttrKind::GroupMode => {
                    let dec = decode(raw).map_err(|x| self.err_in(raw, pos, x))?;
                    if kind == Kind::G && dec.trim() == "layer" {
                        self.declare_inkscape(&mut inkscape_declared);
                        self.write_attr(key, raw, pos)?;
                        layer = true;
                    }
                }
                AttrKind::Class => {
                    class = Some(self.write_attr(key, raw, pos)?);
                }
                AttrKind::Style => {
                    let dec = decode(raw).map_err(|x| self.err_in(raw, pos, x))?;
                    let mut kept = std::mem::take(&mut self.scratch);
                    let check = filter_style(&dec, &mut kept);
                    style_mask = check.mask;
                    if !check.changed {
                        self.write_attr(key, raw, pos)?;
                    } else if !kept.is_empty() {
                        self.out.push_str(" style=\"");
                        push_escaped(&mut self.out, &kept);
                        self.out.push('"');
                    }
                    self.scratch = kept;
                }
                AttrKind::Href => {
                    let dec = decode(raw).map_err(|x| self.err_in(raw, pos, x))?;
                    if href_ok(&dec, allows_data) {
                        self.write_attr(key, raw, pos)?;
                        closes |= kind == Kind::Use;
                    } else if kind == Kind::Image && !dec.trim().is_empty() {
                        let note = image_note(&dec);
                        self.note_removed(note);
                    }
                }
                AttrKind::Presentation(prop) => {
                    let dec = decode(raw).map_err(|x| self.err_in(raw, pos, x))?;
                    if css_value_ok(&dec) {
                        let start = self.out.len() as u32;
                        self.write_attr(key, raw, pos)?;
                        self.pres_spans.push(PresSpan {
                            prop,
                            start,
                            end: self.out.len() as u32,
                        });
                    }
                }
                AttrKind::CssChecked => {
                    let dec = decode(raw).map_err(|x| self.err_in(raw, pos, x))?;
                    if css_value_ok(&dec) {
                        self.write_attr(key, raw, pos)?;
                    }
                }
                AttrKind::AnimTarget if kind == Kind::Anim => {
                    self.write_attr(key, raw, pos)?;
                }
                AttrKind::AnimTarget | AttrKind::Xmlns | AttrKind::Drop => {
                    decode(raw).map_err(|x| self.err_in(raw, pos, x))?;
                }
            }
        }
        self.attr_buf = it.into_buffer();
        let mut version = 0;
        if let Some(class_span) = class.as_mut()
            && !self.sheet.is_empty()
        {
            version = self.sheet.decls.len() as u32;
            self.inline_classes(class_span, style_mask, pres_start, &mut named);
        }
        let wants_id = named.id.is_none() && !hidden && !in_text && !is_root;
        let closed = is_shape_kind(kind) && draws_area(kind, closes, shape_data, sizes);
        if wants_id && closed {
            named.id = Some(self.generate_id(tag_start));
            named.generated = true;
        }
        if closed && !hidden && !in_text && !is_root {
            self.shape_count += 1;
        }
        self.out.push_str(if empty { "/>" } else { ">" });
        self.nodes.push(Node {
            tag_start: tag_start as u32,
            tag_end: self.out.len() as u32,
            parent,
            end: node + 1,
            kind,
            hidden,
            in_text,
            closed,
            layer,
        });
        if let (Some(id), true, None, None) =
            (named.id, named.generated, named.data_name, named.label)
        {
            self.gen_ids.push((node, id));
        } else if named.id.is_some() || named.data_name.is_some() || named.label.is_some() {
            self.named.push(named);
        }
        match class {
            Some(class) => self.class_recs.push(ClassRec {
                node,
                class,
                style_mask,
                pres_start: pres_start as u32,
                pres_len: (self.pres_spans.len() - pres_start) as u32,
                version,
            }),
            None => self.pres_spans.truncate(pres_start),
        }
        if is_root {
            self.view_box = parse_view_box(vb.as_deref(), width.as_deref(), height.as_deref());
        }
        if !empty {
            self.stack.push(Frame {
                pos,
                what: FrameWhat::Kept { node, name: canon },
            });
        } else if is_root {
            self.root_done = true;
        }
        Ok(())
    }

    /// Declares the `inkscape` prefix on the tag being written unless it already is.
    fn declare_inkscape(&mut self, declared: &mut bool) {
        if !*declared {
            self.out.push_str(" xmlns:inkscape=\"");
            self.out.push_str(INKSCAPE_NS);
            self.out.push('"');
            *declared = true;
        }
    }

    /// Appends ` id="kv-XXXXXXXX"` (hash of the tag written so far: name and sanitized
    /// attributes), with `-N` for the N-th exact duplicate; returns the value's span.
    fn generate_id(&mut self, tag_start: usize) -> Span {
        let h = tag_hash(self.out.as_bytes().get(tag_start..).unwrap_or(&[]));
        let n = self.generated.entry(u64::from(h)).or_insert(0);
        *n += 1;
        let n = *n;
        self.out.push_str(" id=\"");
        let start = self.out.len();
        self.out.push_str(GENERATED_PREFIX);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for k in 0..8 {
            self.out
                .push(char::from(HEX[((h >> ((7 - k) * 4)) & 0xf) as usize]));
        }
        if n > 1 {
            use std::fmt::Write;
            let _ = write!(self.out, "-{n}");
        }
        let len = self.out.len() - start;
        self.out.push('"');
        Span {
            start: start as u32,
            len: len as u32,
        }
    }

    /// Records a closing `<title>`'s text as a name of its parent element.
    fn attach_title(&mut self, title_node: u32) {
        let Some(t) = self.nodes.get(title_node as usize) else {
            return;
        };
        let (parent, start) = (t.parent, t.tag_end);
        let end = self.out.len() as u32;
        if parent == NONE || end <= start || self.out[start as usize..].trim().is_empty() {
            return;
        }
        let span = Span {
            start,
            len: end - start,
        };
        // A titled element is named by its title now: move it out of the generated-only list.
        let mut gen_id = None;
        if let Ok(g) = self.gen_ids.binary_search_by_key(&parent, |g| g.0) {
            gen_id = Some(self.gen_ids.remove(g).1);
        }
        match self.named.binary_search_by_key(&parent, |n| n.node) {
            Ok(i) => {
                if let Some(n) = self.named.get_mut(i) {
                    n.title.get_or_insert(span);
                }
            }
            Err(i) => self.named.insert(
                i,
                Named {
                    node: parent,
                    id: gen_id,
                    data_name: None,
                    label: None,
                    title: Some(span),
                    generated: gen_id.is_some(),
                },
            ),
        }
    }

    /// Inlines the class rules known so far into the start tag being written (it is at the end
    /// of the output, so removing an overridden attribute only moves the rest of this tag).
    fn inline_classes(
        &mut self,
        class_span: &mut Span,
        style_mask: u64,
        pres_start: usize,
        named: &mut Named,
    ) {
        let Pass {
            out,
            sheet,
            inline_cache,
            pres_spans,
            ..
        } = self;
        let class_value = &out[class_span.range()];
        let entries = match inline_cache.get_mut(class_value) {
            Some(v) => v,
            None => inline_cache.entry(class_value.to_string()).or_default(),
        };
        let idx = match entries.iter().position(|e| e.style_mask == style_mask) {
            Some(i) => i,
            None => {
                entries.push(resolve_inline(
                    sheet,
                    &decode_lossy(class_value),
                    style_mask,
                ));
                entries.len() - 1
            }
        };
        let inline = &entries[idx];
        if inline.mask == 0 {
            return;
        }
        // Remove attributes the rules override, last first so earlier offsets stay valid.
        let mut i = pres_spans.len();
        while i > pres_start {
            i -= 1;
            let PresSpan { prop, start, end } = pres_spans[i];
            if inline.mask & (1u64 << prop) == 0 {
                continue;
            }
            out.replace_range(start as usize..end as usize, "");
            pres_spans.remove(i);
            let len = end - start;
            let shift = |s: &mut Span| {
                if s.start > start {
                    s.start -= len;
                }
            };
            shift(class_span);
            for s in [&mut named.id, &mut named.data_name, &mut named.label]
                .into_iter()
                .flatten()
            {
                shift(s);
            }
            for p in &mut pres_spans[i..] {
                p.start -= len;
                p.end -= len;
            }
        }
        let base = out.len() as u32;
        out.push_str(&inline.text);
        for &(prop, s, e) in &inline.props {
            pres_spans.push(PresSpan {
                prop,
                start: base + s,
                end: base + e,
            });
        }
    }

    /// Inlines class rules as presentation attributes. A class rule beats a presentation
    /// attribute of the same property (the attribute is replaced) and loses to `style=""`
    /// (the rule is skipped), as the CSS cascade does in a browser.
    fn apply_classes(&mut self, sheet: &StyleSheet) {
        struct Patch {
            pos: u32,
            del: u32,
            ins_start: u32,
            ins_len: u32,
        }
        let mut patches: Vec<Patch> = Vec::new();
        let mut ins = String::new();
        // Elements share a handful of class lists: compute each (classes, style mask) once and
        // reuse its inserted text.
        let mut cache: HashMap<(&str, u64), (u32, u32, u64)> = HashMap::new();
        let out = &self.out;
        for rec in &self.class_recs {
            let key = (&out[rec.class.range()], rec.style_mask);
            let (ins_start, ins_len, applied) = match cache.get(&key) {
                Some(v) => *v,
                None => {
                    let inline = resolve_inline(sheet, &decode_lossy(key.0), rec.style_mask);
                    let start = ins.len();
                    ins.push_str(&inline.text);
                    let v = (start as u32, inline.text.len() as u32, inline.mask);
                    cache.insert(key, v);
                    v
                }
            };
            if applied == 0 {
                continue;
            }
            let spans =
                &self.pres_spans[rec.pres_start as usize..(rec.pres_start + rec.pres_len) as usize];
            for s in spans {
                if applied & (1u64 << s.prop) != 0 {
                    patches.push(Patch {
                        pos: s.start,
                        del: s.end - s.start,
                        ins_start: 0,
                        ins_len: 0,
                    });
                }
            }
            let node = &self.nodes[rec.node as usize];
            let close = if out.as_bytes()[node.tag_end as usize - 2] == b'/' {
                2
            } else {
                1
            };
            patches.push(Patch {
                pos: node.tag_end - close,
                del: 0,
                ins_start,
                ins_len,
            });
        }
        drop(cache);
        if patches.is_empty() {
            return;
        }
        let ins_of = |p: &Patch| &ins[p.ins_start as usize..(p.ins_start + p.ins_len) as usize];
        let mut running = 0i64;
        let only_right = patches.iter().all(|p| {
            running += i64::from(p.ins_len) - i64::from(p.del);
            running >= 0
        });
        let new = if only_right {
            // Every byte moves right (or stays): patch in place from the end, so a 10 MB output
            // is neither allocated twice nor page-faulted twice.
            let old_len = self.out.len();
            let final_len = (old_len as i64 + running) as usize;
            let mut bytes = std::mem::take(&mut self.out).into_bytes();
            bytes.resize(final_len, 0);
            let mut src_end = old_len;
            let mut dst_end = final_len;
            for p in patches.iter().rev() {
                let seg_start = (p.pos + p.del) as usize;
                let seg_len = src_end - seg_start;
                bytes.copy_within(seg_start..src_end, dst_end - seg_len);
                dst_end -= seg_len;
                let add = ins_of(p).as_bytes();
                bytes[dst_end - add.len()..dst_end].copy_from_slice(add);
                dst_end -= add.len();
                src_end = p.pos as usize;
            }
            // Only whole UTF-8 runs were moved, so this cannot fail; stay total anyway.
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        } else {
            let mut new = String::with_capacity(self.out.len() + ins.len());
            let mut last = 0usize;
            for p in &patches {
                new.push_str(&self.out[last..p.pos as usize]);
                new.push_str(ins_of(p));
                last = (p.pos + p.del) as usize;
            }
            new.push_str(&self.out[last..]);
            new
        };
        // Map old offsets to new ones: an offset moves by the patches before it. Names are never
        // inside a deleted span (only presentation attributes are deleted), and a tag's end lies
        // after its own insertion point.
        let mut cum = Vec::with_capacity(patches.len() + 1);
        let mut total = 0i64;
        cum.push(0i64);
        for p in &patches {
            total += i64::from(p.ins_len) - i64::from(p.del);
            cum.push(total);
        }
        let map = |off: u32| -> u32 {
            let k = patches.partition_point(|p| p.pos < off);
            (i64::from(off) + cum[k]) as u32
        };
        for n in &mut self.nodes {
            n.tag_start = map(n.tag_start);
            n.tag_end = map(n.tag_end);
        }
        for (_, s) in &mut self.gen_ids {
            s.start = map(s.start);
        }
        for named in &mut self.named {
            for s in [
                &mut named.id,
                &mut named.data_name,
                &mut named.label,
                &mut named.title,
            ]
            .into_iter()
            .flatten()
            {
                s.start = map(s.start);
            }
        }
        self.out = new;
    }
}
