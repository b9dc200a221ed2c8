//! Matching elements to units by what design tools do to layer names on export, then by text
//! labels (`labels.rs`), then by the admin's manual mappings.
//!
//! Ranks, first hit wins (an element claims at most one unit):
//! 1. exact: `data-name`, `inkscape:label`, `<title>` or `id` equals a block number, or is it
//!    with a duplicate suffix (Illustrator `_N_` as in `A12_1_`, Figma `_N` as in `A12_2`: the
//!    same layer name drawn again, so the copies rank together);
//! 2. export escapes undone: Illustrator "Save As" `_xHH_` hex escapes (`_x31_2` is `12`), the
//!    `_` "Export As" puts before a leading digit (`_91`), each only if the result is a block
//!    number;
//! 3. normalised: case-insensitive, separators (space `_` `-` `.`) removed, the words BLOK, BLOCK,
//!    NO, NOMOR, KAV, KAVLING, LOT, UNIT, RUMAH dropped ("Blok A No 12", `A-12`, `unit-A12` find `A12`).
//!
//! Within a rank the human-typed names come first: `data-name`, `inkscape:label`, `<title>`, then
//! `id`; generated `kv-` ids name nothing. When several elements claim one unit: an ancestor
//! beats its descendants silently (the outermost group is the unit); of the rest, all claims at
//! the best rank match (one unit, several shapes) with a warning naming them, worse ranks lose
//! with a warning.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::allow::Kind;
use crate::parse::{NONE, Named, Node, Span, decode_lossy, is_generated_id};

/// How an element was matched to its unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchSource {
    /// The element's own `id`, de-mangled.
    Id,
    /// A human name on the element: `data-name`, `inkscape:label` or `<title>`.
    Label,
    /// A `<text>` label drawn over the shape.
    Text,
    /// An admin's manual mapping.
    Manual,
}

impl MatchSource {
    /// The report's wire name: `id`, `label`, `text` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchSource::Id => "id",
            MatchSource::Label => "label",
            MatchSource::Text => "text",
            MatchSource::Manual => "manual",
        }
    }
}

/// An admin's mapping of one element (by id) to a block number, applied over automatic matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManualMapping<'a> {
    /// The element's id in the sanitized document.
    pub element_id: &'a str,
    /// The unit's block number.
    pub block_number: &'a str,
}

/// A unit and one element drawn for it (a unit drawn as several shapes has several entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedUnit {
    /// The unit's block number, as given to `map_units`.
    pub block_number: String,
    /// The element's `id` (or its `data-name` / `inkscape:label` when it has no id).
    pub element_id: String,
    /// How the element was matched.
    pub source: MatchSource,
}

/// An element no unit matched, as the report lists it apart from the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmatchedElement {
    /// The element's id (generated `kv-` ids included).
    pub element_id: String,
    /// Its human name (`data-name`, `inkscape:label`, `<title>`), when it has one.
    pub label: Option<String>,
    /// A unit its name nearly spells (`Shop-1` for unit `1`: a leading word dropped), never for
    /// a design tool's automatic id.
    pub hint: Option<String>,
}

/// A warning about one element, for showing next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementWarning {
    /// The element's id (what `matched` and the unmatched lists show).
    pub element_id: String,
    /// The warning, as in [`Mapping::warnings`].
    pub message: String,
}

/// The mapping report between a siteplan's elements and a project's units. It also remembers
/// which element each match is, so colouring and geometry need the `Mapping` returned by the
/// same `Siteplan` (or one parsed from its sanitized text: the index is identical).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Units with their elements, in the order the block numbers were given; a unit drawn as
    /// several elements has one entry per element, consecutive, in document order.
    pub matched: Vec<MatchedUnit>,
    /// Ids of unit-like elements (groups and shapes with an `id`, rendered, not part of a matched
    /// unit and not containing one, and not a tool's automatic id such as `path1234` or
    /// `XMLID_12_` unless they carry a human name) that match no unit.
    pub unmatched_element_ids: Vec<String>,
    /// Block numbers no element was found for.
    pub units_without_element: Vec<String>,
    /// Things an admin should look at: double claims, id/data-name disagreements, ids that look
    /// like block numbers but match no unit, units that collide once normalised.
    pub warnings: Vec<String>,
    /// Ids (generated `kv-` ones included) of rendered closed shapes and `use` copies that are
    /// not inside a matched unit, not painted `fill="none"` (decorative strokes) and not inside a
    /// text-like group (`Labels`, `text`, `nomor`, ...), in document order: what an admin page
    /// highlights for click-to-map.
    pub unmatched_shape_ids: Vec<String>,
    /// Unmatched closed shapes of lot-like size (a box within 10× of the drawing's typical lot,
    /// not a background over half the drawing), in document order: the lots left to map.
    pub candidates: Vec<UnmatchedElement>,
    /// Unmatched named elements that are not candidate lots: a design tool's automatic ids
    /// (`path1234`, `g6270`, `layer5`, Figma's `Clip path group_12`), groups and layers, open or
    /// lot-unlike shapes; with their human label. Never hinted.
    pub other_elements: Vec<UnmatchedElement>,
    /// The warnings that concern one element, with its id (also in `warnings`).
    pub element_warnings: Vec<ElementWarning>,
    /// Node index of each `matched` entry.
    pub(crate) nodes: Vec<u32>,
}

/// Most warnings reported; the rest are summarised in one line.
const MAX_WARNINGS: usize = 100;

const NOISE_WORDS: &[&str] = &[
    "blok", "block", "no", "nomor", "kav", "kavling", "lot", "unit", "rumah",
];

/// Marks a normalised key shared by several units.
const AMBIGUOUS: u32 = u32::MAX;

/// Decodes Illustrator's `_xHH_` escapes (`_x31_` is `1`, `_x5F_` is `_`, `_x2013_` is `–`).
pub(crate) fn decode_ai_escapes(s: &str) -> Cow<'_, str> {
    if !s.contains("_x") {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find("_x") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let hex_len = after
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .take(6)
            .count();
        let decoded = (hex_len >= 2 && after.as_bytes().get(hex_len) == Some(&b'_'))
            .then(|| u32::from_str_radix(&after[..hex_len], 16).ok())
            .flatten()
            .and_then(char::from_u32);
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[hex_len + 1..];
            }
            None => {
                out.push_str("_x");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `A12_1_` → `A12` (Illustrator "Save As" duplicate suffix).
fn strip_ai_dup(s: &str) -> Option<&str> {
    let body = s.strip_suffix('_')?;
    let (prefix, n) = body.rsplit_once('_')?;
    (!prefix.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(prefix)
}

/// `_91` → `91` (Illustrator "Export As" prefixes ids that start with a digit).
fn strip_lead_underscore(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('_')?;
    rest.as_bytes()
        .first()
        .is_some_and(u8::is_ascii_digit)
        .then_some(rest)
}

/// `A12_2` → `A12` (Figma's duplicate suffix).
fn strip_figma_dup(s: &str) -> Option<&str> {
    let (prefix, n) = s.rsplit_once('_')?;
    (!prefix.is_empty()
        && !prefix.ends_with('_')
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit()))
    .then_some(prefix)
}

/// Whether `variant` is `name` with only a design tool's duplicate suffix removed (after its
/// escapes are undone): Illustrator's `_N_`, Figma's `_N`.
fn is_dup_of(name: &str, variant: &str) -> bool {
    let d = decode_ai_escapes(name);
    let d = d.as_ref();
    let lead = strip_lead_underscore(d);
    [
        strip_ai_dup(d),
        strip_figma_dup(d),
        lead.and_then(strip_figma_dup),
        strip_ai_dup(d).and_then(strip_lead_underscore),
    ]
    .into_iter()
    .flatten()
    .any(|x| x == variant)
}

/// Rank-2 candidates for a name, most specific first.
fn export_variants(s: &str) -> Vec<String> {
    let d = decode_ai_escapes(s);
    let d = d.as_ref();
    let mut v: Vec<String> = Vec::with_capacity(6);
    let mut add = |x: Option<&str>| {
        if let Some(x) = x
            && x != s
            && !x.is_empty()
            && !v.iter().any(|e| e == x)
        {
            v.push(x.to_string());
        }
    };
    add(Some(d));
    add(strip_ai_dup(d));
    add(strip_lead_underscore(d));
    add(strip_ai_dup(d).and_then(strip_lead_underscore));
    add(strip_figma_dup(d));
    add(strip_lead_underscore(d).and_then(strip_figma_dup));
    v
}

/// The normalised form used by rank 3.
pub(crate) fn normalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    normalise_into(s, &mut out);
    out
}

/// [`normalise`] appending to `out` (a buffer reused across calls).
fn normalise_into(s: &str, out: &mut String) {
    // Tokens are written straight into `out`; a token that is a noise word is cut off again.
    let base = out.len();
    let mut token_start = base;
    let flush = |out: &mut String, token_start: &mut usize| {
        if NOISE_WORDS.contains(&&out[*token_start..]) {
            out.truncate(*token_start);
        }
        *token_start = out.len();
    };
    let mut prev_digit: Option<bool> = None;
    for c in s.chars() {
        if c.is_whitespace() || matches!(c, '_' | '-' | '.') {
            flush(out, &mut token_start);
            prev_digit = None;
            continue;
        }
        let digit = c.is_ascii_digit();
        if prev_digit.is_some_and(|p| p != digit) {
            flush(out, &mut token_start);
        }
        prev_digit = Some(digit);
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    flush(out, &mut token_start);
}

/// A fast hasher for maps keyed by the admin's block numbers (trusted keys; the upload only
/// looks them up, so hash flooding cannot grow a bucket).
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// The hash a normalised form is kept under.
fn key_hash(s: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = FxHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

/// Rank-3 candidates for a name.
fn normal_variants(s: &str) -> Vec<String> {
    let d = decode_ai_escapes(s);
    let d = d.as_ref();
    let mut v: Vec<String> = Vec::with_capacity(3);
    for x in [Some(d), strip_ai_dup(d), strip_figma_dup(d)]
        .into_iter()
        .flatten()
    {
        let n = normalise(x);
        if !n.is_empty() && !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

/// Whether a name looks like a block number (`E5`, `AB12`, `12`, `C3A`) once normalised.
pub(crate) fn looks_like_block(s: &str) -> bool {
    let n = normalise(&decode_ai_escapes(s));
    let b = n.as_bytes();
    let letters = b.iter().take_while(|c| c.is_ascii_lowercase()).count();
    let digits = b[letters..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let tail = b.len() - letters - digits;
    letters <= 3
        && (1..=4).contains(&digits)
        && (tail == 0 || (tail == 1 && b[b.len() - 1].is_ascii_lowercase()))
}

/// Ids that design tools generate by themselves.
fn is_tool_generated(id: &str) -> bool {
    let trimmed = id.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
    let generated_prefix = [
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "g", "layer", "use",
        "text", "tspan", "image", "svg",
    ];
    if trimmed.len() < id.len() && generated_prefix.contains(&trimmed) {
        return true;
    }
    if let Some(body) = id
        .strip_prefix("XMLID_")
        .or_else(|| id.strip_prefix("SVGID_"))
    {
        return body
            .trim_end_matches('_')
            .bytes()
            .all(|b| b.is_ascii_digit());
    }
    if let Some(rest) = id.strip_prefix("Layer_") {
        return rest.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    }
    if id.starts_with("_x3C_") || is_generated_id(id) {
        return true;
    }
    let figma = id.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '_');
    matches!(
        figma,
        "Vector"
            | "Rectangle"
            | "Ellipse"
            | "Group"
            | "Frame"
            | "Line"
            | "Polygon"
            | "Union"
            | "Subtract"
            | "Intersect"
            | "Exclude"
            | "Star"
            | "Clip path group"
            | "Mask group"
            | "Clip path"
    )
}

/// The unit a name nearly spells: the same tokens as [`normalise`] (separators and letter/digit
/// boundaries split, so `Shop-1`, `Shop 1` and `Shop1` alike) with a leading word of three or
/// more letters dropped (`Shop-1` → `1`). The words [`normalise`] drops itself (`unit136` →
/// `136`) already match; this names the others as hints, never as matches.
fn near_miss(units: &Units<'_>, name: &str) -> Option<u32> {
    let d = decode_ai_escapes(name);
    let d = d.trim();
    let letters = d.chars().take_while(|c| c.is_alphabetic()).count();
    if letters < 3 {
        return None;
    }
    let rest = d.char_indices().nth(letters).map_or("", |(i, _)| &d[i..]);
    let n = normalise(rest);
    if n.is_empty() || !n.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    units.normal_unit(&n).filter(|&u| u != AMBIGUOUS)
}

/// Collects warnings up to [`MAX_WARNINGS`]; past that only counts them, so a hostile file with
/// half a million look-alike ids does not format half a million messages.
#[derive(Default)]
pub(crate) struct Warnings {
    list: Vec<String>,
    of_element: Vec<ElementWarning>,
    dropped: usize,
}

impl Warnings {
    pub(crate) fn add(&mut self, message: impl FnOnce() -> String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(message());
        } else {
            self.dropped += 1;
        }
    }

    /// A warning about one element: also listed with its id, for showing next to it.
    pub(crate) fn add_for(&mut self, element_id: &str, message: impl FnOnce() -> String) {
        if self.list.len() < MAX_WARNINGS {
            let message = message();
            self.of_element.push(ElementWarning {
                element_id: element_id.to_string(),
                message: message.clone(),
            });
            self.list.push(message);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> (Vec<String>, Vec<ElementWarning>) {
        if self.dropped > 0 {
            let more = self.dropped;
            self.list.push(format!("... and {more} more warnings"));
        }
        (self.list, self.of_element)
    }
}

struct Claim {
    unit: u32,
    rank: u8,
    node: u32,
    source: MatchSource,
    named: u32,
}

/// Names of one element, decoded and trimmed.
struct Names<'t> {
    id: Option<Cow<'t, str>>,
    data_name: Option<Cow<'t, str>>,
    label: Option<Cow<'t, str>>,
    title: Option<Cow<'t, str>>,
}

fn name_at(text: &str, s: Option<Span>) -> Option<Cow<'_, str>> {
    let s = s?;
    let v = decode_lossy(&text[s.range()]);
    let t = v.trim();
    if t.is_empty() {
        return None;
    }
    Some(match v {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(ref o) if o.len() == t.len() => v,
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    })
}

impl<'t> Names<'t> {
    fn of(text: &'t str, n: &Named) -> Names<'t> {
        Names {
            id: name_at(text, n.id),
            data_name: name_at(text, n.data_name),
            label: name_at(text, n.label),
            title: name_at(text, n.title),
        }
    }

    /// Human-typed names first, each with the source it stands for; generated ids name nothing.
    fn ordered(&self) -> impl Iterator<Item = (&str, MatchSource)> {
        let id = self.id.as_deref().filter(|i| !is_generated_id(i));
        [
            (self.data_name.as_deref(), MatchSource::Label),
            (self.label.as_deref(), MatchSource::Label),
            (self.title.as_deref(), MatchSource::Label),
            (id, MatchSource::Id),
        ]
        .into_iter()
        .filter_map(|(n, s)| n.map(|n| (n, s)))
    }

    fn display(&self) -> String {
        self.id
            .as_deref()
            .or(self.data_name.as_deref())
            .or(self.label.as_deref())
            .or(self.title.as_deref())
            .unwrap_or("")
            .to_string()
    }
}

/// [`Names::display`] without decoding the names it does not show (one per matched element).
fn display_of(text: &str, n: &Named) -> String {
    [n.id, n.data_name, n.label, n.title]
        .into_iter()
        .find_map(|s| name_at(text, s))
        .map(Cow::into_owned)
        .unwrap_or_default()
}

/// Whether an element's `id` and `data-name` name the same thing once export changes are undone.
fn names_agree(id: &str, data_name: &str) -> bool {
    let dn = normalise(data_name);
    let d = decode_ai_escapes(id);
    let d = d.as_ref();
    let candidates = [
        Some(d),
        strip_ai_dup(d),
        strip_lead_underscore(d),
        strip_figma_dup(d),
        // Illustrator "Export As" deduplicates ids with `-2` while data-name keeps the name.
        d.rsplit_once('-')
            .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map(|(p, _)| p),
    ];
    candidates
        .into_iter()
        .flatten()
        .any(|c| normalise(c) == dn || strip_lead_underscore(c).is_some_and(|x| normalise(x) == dn))
}

/// Everything mapping, colouring and geometry read of a parsed document.
#[derive(Clone, Copy)]
pub(crate) struct Doc<'a> {
    pub text: &'a str,
    pub nodes: &'a [Node],
    pub named: &'a [Named],
    /// Elements named only by a generated id.
    pub gen_ids: &'a [(u32, Span)],
    /// Built on first use: mapping by names alone never needs it.
    pub index: &'a std::sync::OnceLock<IdIndex>,
    pub view_box: Option<crate::ViewBox>,
}

impl<'a> Doc<'a> {
    /// The first element (document order) with this id.
    pub(crate) fn find_id(&self, id: &str) -> Option<u32> {
        self.index
            .get_or_init(|| IdIndex::build(self.text, self.named, self.gen_ids))
            .find(self.text, id)
    }

    /// The id span of a node, if it has an id (its own or generated).
    pub(crate) fn id_span(&self, node: u32) -> Option<Span> {
        match self.named.binary_search_by_key(&node, |n| n.node) {
            Ok(i) => self.named.get(i).and_then(|n| n.id),
            Err(_) => self
                .gen_ids
                .binary_search_by_key(&node, |g| g.0)
                .ok()
                .and_then(|i| self.gen_ids.get(i))
                .map(|g| g.1),
        }
    }

    /// The element id shown for a node: its id (own or generated), else data-name, label, title.
    pub(crate) fn display(&self, node: u32) -> String {
        match self.named.binary_search_by_key(&node, |n| n.node) {
            Ok(i) => Names::of(self.text, &self.named[i]).display(),
            Err(_) => self
                .id_span(node)
                .map(|s| decode_lossy(&self.text[s.range()]).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Element ids (decoded) to nodes, sorted by hash: O(log n) look-ups, built once per document.
#[derive(Clone, Debug, Default)]
pub(crate) struct IdIndex {
    /// (hash of the decoded id, node, id span), sorted.
    entries: Vec<(u32, u32, Span)>,
}

impl IdIndex {
    pub(crate) fn build(text: &str, named: &[Named], gen_ids: &[(u32, Span)]) -> IdIndex {
        let ids = named
            .iter()
            .filter_map(|n| Some((n.node, n.id?)))
            .chain(gen_ids.iter().copied());
        let mut entries: Vec<(u32, u32, Span)> = ids
            .map(|(node, s)| {
                let id = decode_lossy(&text[s.range()]);
                (crate::parse::tag_hash(id.as_bytes()), node, s)
            })
            .collect();
        entries.sort_unstable_by_key(|e| (e.0, e.1));
        IdIndex { entries }
    }

    /// The first element (document order) with this id.
    pub(crate) fn find(&self, text: &str, id: &str) -> Option<u32> {
        let h = crate::parse::tag_hash(id.as_bytes());
        let from = self.entries.partition_point(|e| e.0 < h);
        self.entries
            .get(from..)?
            .iter()
            .take_while(|e| e.0 == h)
            .find(|e| decode_lossy(&text[e.2.range()]) == id)
            .map(|e| e.1)
    }
}

/// Whether a node may be mapped to a unit: a rendered group, shape or `use`, not the root.
pub(crate) fn is_mappable(nodes: &[Node], node: u32) -> bool {
    nodes
        .get(node as usize)
        .is_some_and(|n| n.kind.is_candidate() && !n.hidden && !n.in_text && n.parent != NONE)
}

/// Words that name a group of text labels or outlined glyphs (first word of its name).
const TEXT_WORDS: &[&str] = &[
    "text",
    "texts",
    "label",
    "labels",
    "teks",
    "nomor",
    "number",
    "numbers",
    "txt",
    "glyphs",
    "lettering",
    "angka",
];

/// Whether a group's name says it holds labels (`Labels`, `text`, `Nomor kavling`, `number 12`).
pub(crate) fn is_text_like_name(name: &str) -> bool {
    let first: String = name
        .trim()
        .chars()
        .take_while(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    TEXT_WORDS.contains(&first.as_str())
}

/// Whether a node's own names mark it as a text-like group.
pub(crate) fn node_text_like(text: &str, nodes: &[Node], named: &[Named], node: u32) -> bool {
    if nodes.get(node as usize).is_none_or(|n| n.kind != Kind::G) {
        return false;
    }
    let Ok(i) = named.binary_search_by_key(&node, |n| n.node) else {
        return false;
    };
    let names = Names::of(text, &named[i]);
    names.ordered().any(|(n, _)| is_text_like_name(n))
}

/// Lookup tables of the units being mapped.
pub(crate) struct Units<'b> {
    pub list: Vec<&'b str>,
    exact: FxMap<&'b str, u32>,
    /// Hash of each unit's normalised form → the unit ([`AMBIGUOUS`] when several share it):
    /// no string kept per unit, a hit is confirmed by normalising that unit again.
    normal: FxMap<u64, u32>,
    /// Normalised with the leading zeros of number runs dropped (`a03` → `a3`), built on demand.
    no_zeros: Option<FxMap<String, u32>>,
}

/// `a03b007` → `a3b7`.
fn drop_leading_zeros(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut started = false;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c.is_ascii_digit() {
            let next_digit = it.peek().is_some_and(char::is_ascii_digit);
            if c == '0' && !started && next_digit {
                continue;
            }
            started = true;
        } else {
            started = false;
        }
        out.push(c);
    }
    out
}

impl<'b> Units<'b> {
    fn new(block_numbers: &[&'b str], warnings: &mut Warnings) -> Units<'b> {
        let mut list: Vec<&str> = Vec::with_capacity(block_numbers.len());
        let mut exact: FxMap<&str, u32> = FxMap::default();
        exact.reserve(block_numbers.len());
        for &b in block_numbers {
            if !exact.contains_key(b) {
                exact.insert(b, list.len() as u32);
                list.push(b);
            }
        }
        let mut normal: FxMap<u64, u32> = FxMap::default();
        normal.reserve(list.len());
        let mut n = String::new();
        for (i, u) in list.iter().enumerate() {
            n.clear();
            normalise_into(u, &mut n);
            if n.is_empty() {
                continue;
            }
            match normal.get_mut(&key_hash(&n)) {
                Some(existing) if *existing != AMBIGUOUS => {
                    // Equal forms (or, never in practice, equal 64-bit hashes of different
                    // ones: both units then match only exactly, like equal forms).
                    if normalise(list[*existing as usize]) == n {
                        warnings.add(|| {
                            format!(
                                "units {} and {} look the same once spaces, dashes and case are ignored; \
                                 only exact or export-escaped ids match them",
                                list[*existing as usize], u
                            )
                        });
                    }
                    *existing = AMBIGUOUS;
                }
                Some(_) => {}
                None => {
                    normal.insert(key_hash(&n), i as u32);
                }
            }
        }
        Units {
            list,
            exact,
            normal,
            no_zeros: None,
        }
    }

    /// The unit whose normalised form is `key` ([`AMBIGUOUS`] when several units share it).
    fn normal_unit(&self, key: &str) -> Option<u32> {
        let &u = self.normal.get(&key_hash(key))?;
        if u == AMBIGUOUS {
            return Some(AMBIGUOUS);
        }
        (normalise(self.list[u as usize]) == key).then_some(u)
    }

    /// The unit a text label names: exact, normalised, or normalised without leading zeros when
    /// that is unambiguous. `Err(())` when the label could be several units.
    pub(crate) fn for_label(&mut self, label: &str) -> Result<Option<u32>, ()> {
        if let Some(&u) = self.exact.get(label) {
            return Ok(Some(u));
        }
        let n = normalise(label);
        match self.normal_unit(&n) {
            Some(AMBIGUOUS) => return Err(()),
            Some(u) => return Ok(Some(u)),
            None => {}
        }
        let list = &self.list;
        let nz = self.no_zeros.get_or_insert_with(|| {
            let mut m: FxMap<String, u32> = FxMap::default();
            for (u, name) in list.iter().enumerate() {
                let k = normalise(name);
                if k.is_empty() {
                    continue;
                }
                let z = drop_leading_zeros(&k);
                match m.get_mut(&z) {
                    Some(e) => *e = AMBIGUOUS,
                    None => {
                        m.insert(z, u as u32);
                    }
                }
            }
            m
        });
        match nz.get(&drop_leading_zeros(&n)) {
            Some(&AMBIGUOUS) => Err(()),
            Some(&u) => Ok(Some(u)),
            None => Ok(None),
        }
    }
}

/// One element drawn for a unit.
#[derive(Clone, Copy)]
struct Hit {
    unit: u32,
    node: u32,
    source: MatchSource,
    /// Index into the names list when known (saves a search for the display id).
    named: u32,
}

/// Computes the mapping report: names, then text labels, then manual mappings.
pub(crate) fn map_units(
    doc: Doc<'_>,
    block_numbers: &[&str],
    manual: &[ManualMapping<'_>],
) -> Mapping {
    let Doc {
        text,
        nodes,
        named: named_list,
        ..
    } = doc;
    let mut warnings = Warnings::default();
    let mut units = Units::new(block_numbers, &mut warnings);

    let mut claims: Vec<Claim> = Vec::new();
    let mut unclaimed: Vec<usize> = Vec::new();
    // Names that would match but were refused (layers, groups of lots): warned already.
    let mut refused: Vec<usize> = Vec::new();
    for (ni, named) in named_list.iter().enumerate() {
        // Only a generated id: nothing to match, nothing to report.
        if named.generated
            && named.data_name.is_none()
            && named.label.is_none()
            && named.title.is_none()
        {
            continue;
        }
        if !is_mappable(nodes, named.node) {
            continue;
        }
        let names = Names::of(text, named);
        if let (Some(id), Some(dn)) = (names.id.as_deref(), names.data_name.as_deref())
            && !is_generated_id(id)
            && !names_agree(id, dn)
        {
            warnings.add(|| format!(
                "element id \"{id}\" has data-name \"{dn}\", which disagrees; data-name is used first"
            ));
        }
        let mut found: Option<(u32, u8, MatchSource)> = None;
        for (n, src) in names.ordered() {
            if let Some(&u) = units.exact.get(n) {
                found = Some((u, 1, src));
                break;
            }
        }
        if found.is_none() {
            'rank2: for (n, src) in names.ordered() {
                for v in export_variants(n) {
                    if let Some(&u) = units.exact.get(v.as_str()) {
                        // A duplicate suffix (`A12_1_`, `A12_2`) is the same name drawn again:
                        // it ranks with the exact name, so the copies match together.
                        let rank = if is_dup_of(n, &v) { 1 } else { 2 };
                        found = Some((u, rank, src));
                        break 'rank2;
                    }
                }
            }
        }
        if found.is_none() {
            'rank3: for (n, src) in names.ordered() {
                for v in normal_variants(n) {
                    match units.normal_unit(&v) {
                        Some(AMBIGUOUS) => {
                            warnings.add(|| {
                                format!(
                                    "element \"{}\" could be any of several units once normalised; \
                                 it was not matched",
                                    names.display()
                                )
                            });
                            break 'rank3;
                        }
                        Some(u) => {
                            found = Some((u, 3, src));
                            break 'rank3;
                        }
                        None => {}
                    }
                }
            }
        }
        match found {
            Some((unit, _, _)) if nodes[named.node as usize].layer => {
                let display = names.display();
                warnings.add_for(&display, || {
                    format!(
                        "element \"{display}\" is an Inkscape layer, not a lot: it was not matched to unit {}",
                        units.list[unit as usize]
                    )
                });
                unclaimed.push(ni);
                refused.push(ni);
            }
            Some((unit, rank, source)) => claims.push(Claim {
                unit,
                rank,
                node: named.node,
                source,
                named: ni as u32,
            }),
            None => unclaimed.push(ni),
        }
    }

    // A group is a lot only if it holds no other lots: claims of other units inside it, or
    // labels of two other units, make it a container (a block, a layer) that matches nothing.
    // One other unit's label inside a matched group is a disagreement: warned, the name wins.
    let mut dropped: Vec<usize> = Vec::new();
    for (ci, c) in claims.iter().enumerate() {
        let n = &nodes[c.node as usize];
        if n.kind != Kind::G || n.end <= c.node + 1 {
            continue;
        }
        let unit = units.list[c.unit as usize];
        let mut others: Vec<&str> = Vec::new();
        for d in claims[ci + 1..].iter().take_while(|d| d.node < n.end) {
            let u = units.list[d.unit as usize];
            if d.unit != c.unit && !others.contains(&u) {
                others.push(u);
            }
        }
        let claimed_inside = !others.is_empty();
        let (own_text, texts) = texts_inside(text, nodes, c.node, unit, &mut units);
        let mut labelled = 0;
        for (_, named_unit) in &texts {
            if let Ok(Some(u)) = named_unit {
                let u = units.list[*u as usize];
                if !others.contains(&u) {
                    others.push(u);
                    labelled += 1;
                }
            }
        }
        // Named only when warned: most groups hold nothing but their own lot.
        let display = || match named_list.get(c.named as usize) {
            Some(nm) => Names::of(text, nm).display(),
            None => doc.display(c.node),
        };
        if claimed_inside || labelled >= 2 {
            let id = display();
            let shown = others
                .iter()
                .take(5)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            warnings.add_for(&id, || {
                format!(
                    "element \"{id}\" holds other units ({shown}); a group holding other lots is not a lot: it was not matched to unit {unit}"
                )
            });
            dropped.push(ci);
        } else if !own_text && let Some((content, _)) = texts.first() {
            let id = display();
            let by = if c.source == MatchSource::Id {
                "id"
            } else {
                "name"
            };
            warnings.add_for(&id, || disagreement(&id, unit, by, content));
        }
    }
    for &ci in dropped.iter().rev() {
        let c = claims.remove(ci);
        if c.named != NONE {
            unclaimed.push(c.named as usize);
            refused.push(c.named as usize);
        }
    }
    unclaimed.sort_unstable();

    // Resolve claims unit by unit: an ancestor beats its descendants silently; among the rest
    // every claim at the best rank is kept (a unit drawn as several shapes: duplicate suffixes,
    // a data-name repeated on siblings), worse ranks lose.
    claims.sort_by_key(|c| (c.unit, c.node));
    let mut hits: Vec<Hit> = Vec::new();
    let mut i = 0;
    while i < claims.len() {
        let unit = claims[i].unit;
        let mut j = i;
        let mut tops: Vec<&Claim> = Vec::new();
        while j < claims.len() && claims[j].unit == unit {
            let c = &claims[j];
            let nested = tops
                .last()
                .is_some_and(|t| c.node > t.node && c.node < nodes[t.node as usize].end);
            if !nested {
                tops.push(c);
            }
            j += 1;
        }
        let best_rank = tops.iter().map(|c| c.rank).min().unwrap_or(u8::MAX);
        if let [only] = tops[..] {
            // The common case: one element per unit, nothing to report.
            hits.push(Hit {
                unit,
                node: only.node,
                source: only.source,
                named: only.named,
            });
            i = j;
            continue;
        }
        let winners: Vec<&Claim> = tops
            .iter()
            .copied()
            .filter(|c| c.rank == best_rank)
            .collect();
        for w in &winners {
            hits.push(Hit {
                unit,
                node: w.node,
                source: w.source,
                named: w.named,
            });
        }
        let quote = |cs: &[&Claim]| {
            cs.iter()
                .map(|c| format!("\"{}\"", doc.display(c.node)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if winners.len() < tops.len() {
            warnings.add(|| {
                format!(
                    "unit {} is claimed by {} elements ({}); using {}",
                    units.list[unit as usize],
                    tops.len(),
                    quote(&tops),
                    quote(&winners)
                )
            });
        } else if winners.len() > 1 {
            warnings.add(|| {
                format!(
                    "unit {} is drawn as {} elements ({}); all of them are used",
                    units.list[unit as usize],
                    winners.len(),
                    quote(&winners)
                )
            });
        }
        i = j;
    }

    // Text labels for the units still without an element.
    let mut has_hit = vec![false; units.list.len()];
    for h in &hits {
        has_hit[h.unit as usize] = true;
    }
    let mut covered = vec![false; nodes.len()];
    mark_covered(nodes, hits.iter().map(|h| h.node), &mut covered);
    // Labels drawn over a matched lot (from a separate text layer) are checked like the ones
    // inside its group; a disagreeing one is that lot's, never another shape's.
    let name_hits: Vec<(u32, u32)> = hits.iter().map(|h| (h.node, h.unit)).collect();
    for (t, node, unit, content) in
        crate::labels::texts_over_matched(doc, &mut units, &name_hits, &covered)
    {
        covered[t as usize] = true;
        let id = match hits.iter().find(|h| h.node == node) {
            Some(h) if h.named != NONE => display_of(text, &named_list[h.named as usize]),
            _ => doc.display(node),
        };
        let by = match hits.iter().find(|h| h.node == node).map(|h| h.source) {
            Some(MatchSource::Id) => "id",
            _ => "name",
        };
        let unit = units.list[unit as usize];
        warnings.add_for(&id, || disagreement(&id, unit, by, &content));
    }
    let texts =
        crate::labels::match_text_labels(doc, &mut units, &has_hit, &covered, &mut warnings);
    for (unit, node) in texts {
        hits.push(Hit {
            unit,
            node,
            source: MatchSource::Text,
            named: NONE,
        });
    }

    apply_manual(doc, &units, manual, &mut hits, &mut warnings);

    // Report: units in the given order, each unit's elements in document order.
    hits.sort_by_key(|h| (h.unit, h.node));
    hits.dedup_by_key(|h| (h.unit, h.node));
    let mut mapping = Mapping::default();
    let mut covered = vec![false; nodes.len()];
    mark_covered(nodes, hits.iter().map(|h| h.node), &mut covered);
    let mut contains_match = vec![false; nodes.len()];
    let mut has_hit = vec![false; units.list.len()];
    for h in &hits {
        has_hit[h.unit as usize] = true;
        mapping.matched.push(MatchedUnit {
            block_number: units.list[h.unit as usize].to_string(),
            element_id: match named_list.get(h.named as usize) {
                Some(n) => display_of(text, n),
                None => doc.display(h.node),
            },
            source: h.source,
        });
        mapping.nodes.push(h.node);
        let mut p = nodes[h.node as usize].parent;
        while p != NONE && !contains_match[p as usize] {
            contains_match[p as usize] = true;
            p = nodes[p as usize].parent;
        }
    }
    for (u, name) in units.list.iter().enumerate() {
        if !has_hit[u] {
            mapping.units_without_element.push(name.to_string());
        }
    }

    // Unmatched named elements: their human label and a near-miss hint, apart from what a
    // design tool named by itself (never hinted).
    let mut unmatched_named: Vec<(u32, UnmatchedElement)> = Vec::new();
    for ni in unclaimed {
        let named = &named_list[ni];
        let i = named.node as usize;
        if covered[i] || contains_match[i] {
            continue;
        }
        let names = Names::of(text, named);
        let label = names
            .data_name
            .as_deref()
            .or(names.label.as_deref())
            .or(names.title.as_deref())
            .map(str::to_string);
        let human = label.is_some();
        let tool = names.id.as_deref().is_some_and(is_tool_generated);
        if let Some(id) = names.id.as_deref()
            && (human || !tool)
        {
            mapping.unmatched_element_ids.push(id.to_string());
        }
        let display = names.display();
        let hintable = |&(_, src): &(&str, MatchSource)| !(tool && src == MatchSource::Id);
        let hint = names
            .ordered()
            .filter(hintable)
            .find_map(|(n, _)| near_miss(&units, n));
        match hint {
            _ if refused.contains(&ni) => {}
            Some(u) => warnings.add_for(&display, || {
                format!(
                    "element \"{display}\" matches no unit; without its leading word it is unit {}",
                    units.list[u as usize]
                )
            }),
            None => {
                if let Some((n, _)) = names
                    .ordered()
                    .filter(hintable)
                    .find(|(n, _)| looks_like_block(n))
                {
                    warnings.add_for(&display, || {
                        format!(
                            "element \"{display}\" looks like block number \"{n}\" but no such unit exists"
                        )
                    });
                }
            }
        }
        unmatched_named.push((
            named.node,
            UnmatchedElement {
                element_id: display,
                label,
                hint: hint.map(|u| units.list[u as usize].to_string()),
            },
        ));
    }

    let shapes = unmatched_shapes(doc, &covered, &contains_match);
    let shape_nodes: Vec<u32> = shapes.iter().map(|s| s.0).collect();
    let lot_sized = crate::labels::lot_sized(doc, &shape_nodes, &mapping.nodes);
    let mut candidate_nodes = Vec::with_capacity(shapes.len());
    for ((node, id), lot) in shapes.into_iter().zip(lot_sized) {
        if lot {
            let known = unmatched_named
                .binary_search_by_key(&node, |e| e.0)
                .ok()
                .map(|k| &unmatched_named[k].1);
            mapping.candidates.push(UnmatchedElement {
                element_id: id.clone(),
                label: known.and_then(|k| k.label.clone()),
                hint: known.and_then(|k| k.hint.clone()),
            });
            candidate_nodes.push(node);
        }
        mapping.unmatched_shape_ids.push(id);
    }
    mapping.other_elements = unmatched_named
        .into_iter()
        .filter(|(node, _)| candidate_nodes.binary_search(node).is_err())
        .map(|(_, mut e)| {
            // Hints are for lots; a group or an odd shape only shows its label.
            e.hint = None;
            e
        })
        .collect();
    (mapping.warnings, mapping.element_warnings) = warnings.finish();
    mapping
}

/// The warning for a name-matched element whose drawn text names something else.
fn disagreement(id: &str, unit: &str, by: &str, content: &str) -> String {
    format!(
        "element \"{id}\" is matched to unit {unit} by its {by}, but the text drawn in it reads \"{content}\"; check which is right"
    )
}

/// A text inside a matched group that names another unit (or looks like a block number).
type OtherText = (String, Result<Option<u32>, ()>);

/// The top-level `<text>`s inside a group: whether one names `own` (the group's unit), and the
/// others that name another unit or look like a block number. Texts spelling `own` exactly
/// are recognised without decoding (the common case).
fn texts_inside(
    text: &str,
    nodes: &[Node],
    group: u32,
    own: &str,
    units: &mut Units<'_>,
) -> (bool, Vec<OtherText>) {
    let Some(g) = nodes.get(group as usize) else {
        return (false, Vec::new());
    };
    let mut own_seen = false;
    let mut others = Vec::new();
    for n in nodes
        .iter()
        .take((g.end as usize).min(nodes.len()))
        .skip(group as usize + 1)
    {
        if n.kind != Kind::Text || nodes.get(n.parent as usize).is_some_and(|p| p.in_text) {
            continue;
        }
        let raw = text.get(n.tag_end as usize..).unwrap_or("");
        let first = &raw[..memchr::memchr(b'<', raw.as_bytes()).unwrap_or(raw.len())];
        if first.trim() == own {
            own_seen = true;
            continue;
        }
        let content = crate::labels::text_content(text, n);
        if content.is_empty() {
            continue;
        }
        match units.for_label(&content) {
            Ok(Some(u)) if units.list[u as usize] == own => own_seen = true,
            Ok(Some(u)) => others.push((content, Ok(Some(u)))),
            r => {
                if looks_like_block(&content) {
                    others.push((content, r.map(|_| None)));
                }
            }
        }
    }
    (own_seen, others)
}

/// Marks each node and its descendants.
fn mark_covered(nodes: &[Node], roots: impl Iterator<Item = u32>, covered: &mut [bool]) {
    for node in roots {
        let Some(n) = nodes.get(node as usize) else {
            continue;
        };
        if covered[node as usize] {
            continue;
        }
        for c in covered
            .get_mut(node as usize..n.end as usize)
            .into_iter()
            .flatten()
        {
            *c = true;
        }
    }
}

/// Manual mappings on top: the element goes to its unit (taken from any other unit, split out
/// of an automatic group, its own automatic descendants dropped), and a unit mapped by hand
/// keeps only its manual elements.
fn apply_manual(
    doc: Doc<'_>,
    units: &Units<'_>,
    manual: &[ManualMapping<'_>],
    hits: &mut Vec<Hit>,
    warnings: &mut Warnings,
) {
    let mut manual_hits: Vec<Hit> = Vec::new();
    for m in manual {
        let node = doc
            .find_id(m.element_id)
            .filter(|&n| is_mappable(doc.nodes, n));
        let Some(node) = node else {
            warnings.add(|| {
                format!(
                    "manual mapping of element \"{}\" skipped: no such element in the siteplan",
                    m.element_id
                )
            });
            continue;
        };
        let Some(&unit) = units.exact.get(m.block_number) else {
            warnings.add(|| {
                format!(
                    "manual mapping of element \"{}\" skipped: no unit \"{}\"",
                    m.element_id, m.block_number
                )
            });
            continue;
        };
        manual_hits.push(Hit {
            unit,
            node,
            source: MatchSource::Manual,
            named: NONE,
        });
    }
    if manual_hits.is_empty() {
        return;
    }
    let nodes = doc.nodes;
    let manual_units: Vec<u32> = manual_hits.iter().map(|h| h.unit).collect();
    hits.retain(|h| {
        !manual_units.contains(&h.unit)
            && !manual_hits.iter().any(|m| {
                let end = nodes.get(m.node as usize).map_or(m.node + 1, |n| n.end);
                h.node >= m.node && h.node < end
            })
    });
    hits.extend(manual_hits);
}

/// Ids of rendered closed shapes and `use` copies outside every matched unit, not painted
/// `fill="none"`, not inside a text-like group: what an admin may click to map by hand.
fn unmatched_shapes(doc: Doc<'_>, covered: &[bool], contains_match: &[bool]) -> Vec<(u32, String)> {
    let Doc {
        text, nodes, named, ..
    } = doc;
    let mut text_like = vec![false; nodes.len()];
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        // Everything inside a matched unit is skipped, so its names need no look.
        if covered[i] {
            continue;
        }
        let parent_tl =
            n.parent != NONE && text_like.get(n.parent as usize).copied().unwrap_or(false);
        let own = n.kind == Kind::G && node_text_like(text, nodes, named, i as u32);
        text_like[i] = parent_tl || own;
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
            || contains_match[i]
            || text_like[i]
        {
            continue;
        }
        let Some(id) = doc.id_span(i as u32) else {
            continue;
        };
        if crate::labels::is_closed(text, n) && !crate::labels::fill_none(text, nodes, i as u32) {
            out.push((i as u32, decode_lossy(&text[id.range()]).into_owned()));
        }
    }
    out
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illustrator_escapes() {
        assert_eq!(decode_ai_escapes("_x31_2"), "12");
        assert_eq!(decode_ai_escapes("A_x5F_12"), "A_12");
        assert_eq!(decode_ai_escapes("_x3C_Path_x3E_"), "<Path>");
        assert_eq!(decode_ai_escapes("no_xescape"), "no_xescape");
        assert_eq!(strip_ai_dup("A12_1_"), Some("A12"));
        assert_eq!(strip_ai_dup("A12_"), None);
        assert_eq!(strip_lead_underscore("_91"), Some("91"));
        assert_eq!(strip_lead_underscore("_A1"), None);
        assert_eq!(strip_figma_dup("A12_2"), Some("A12"));
        assert!(export_variants("_x31_2_1_").contains(&"12".to_string()));
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise("Blok A No 12"), "a12");
        assert_eq!(normalise("A-12"), "a12");
        assert_eq!(normalise("unit-A12"), "a12");
        assert_eq!(normalise("a12"), "a12");
        assert_eq!(normalise("KAV.B 7"), "b7");
        assert_eq!(normalise("Kavling_C_No.3"), "c3");
        assert_eq!(normalise("Rumah D15"), "d15");
        assert_eq!(normalise("Nomor 12"), "12");
    }

    #[test]
    fn lookalikes_and_generated() {
        assert!(looks_like_block("E5"));
        assert!(looks_like_block("Blok E No 5"));
        assert!(looks_like_block("_x39_1"));
        assert!(!looks_like_block("JALAN_UTAMA"));
        assert!(!looks_like_block("Layer_1"));
        assert!(is_tool_generated("path1234"));
        assert!(is_tool_generated("g12"));
        assert!(is_tool_generated("XMLID_3_"));
        assert!(is_tool_generated("Layer_1"));
        assert!(is_tool_generated("Rectangle 12"));
        assert!(!is_tool_generated("A12"));
        assert!(!is_tool_generated("pathway"));
    }

    #[test]
    fn agreement() {
        assert!(names_agree("Blok_A_No_12", "Blok A No 12"));
        assert!(names_agree("A12-2", "A12"));
        assert!(names_agree("_91", "91"));
        assert!(names_agree("_x39_1", "91"));
        assert!(!names_agree("_91", "81"));
    }
}
