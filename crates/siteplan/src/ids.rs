//! Matching elements to units by what design tools do to layer names on export.
//!
//! Ranks, first hit wins (an element claims at most one unit):
//! 1. exact: `data-name`, `inkscape:label` or `id` equals a block number;
//! 2. export escapes undone: Illustrator "Save As" `_xHH_` hex escapes (`_x31_2` is `12`), its
//!    duplicate suffix `_N_` (`A12_1_`), the `_` "Export As" puts before a leading digit (`_91`),
//!    and Figma's duplicate suffix `_N` (`A12_2`), each only if the result is a block number;
//! 3. normalised: case-insensitive, separators (space `_` `-` `.`) removed, the words BLOK, BLOCK,
//!    NO, NOMOR, KAV, KAVLING, LOT, UNIT, RUMAH dropped ("Blok A No 12", `A-12`, `unit-A12` find `A12`).
//!
//! Within a rank the human-typed names come first: `data-name`, then `inkscape:label`, then `id`.
//! When several elements claim one unit: an ancestor beats its descendants silently (the outermost
//! group is the unit), otherwise the best rank wins, then document order, with a warning.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::parse::{Named, Node, Span, decode_lossy};

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

/// The mapping report between a siteplan's elements and a project's units. It also remembers
/// which element each match is, so colouring and geometry need the `Mapping` returned by the
/// same `Siteplan` (or one parsed from its sanitized text: the index is identical).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapping {
    /// Units with their element, in the order the block numbers were given.
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
    /// Ids of closed shapes (and `use` copies) that are not part of a matched unit: what an admin
    /// may map by hand.
    pub unmatched_shape_ids: Vec<String>,
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
    // Tokens are written straight into `out`; a token that is a noise word is cut off again.
    let mut out = String::with_capacity(s.len());
    let mut token_start = 0usize;
    let flush = |out: &mut String, token_start: &mut usize| {
        if NOISE_WORDS.contains(&&out[*token_start..]) {
            out.truncate(*token_start);
        }
        *token_start = out.len();
    };
    let mut prev_digit: Option<bool> = None;
    for c in s.chars() {
        if c.is_whitespace() || matches!(c, '_' | '-' | '.') {
            flush(&mut out, &mut token_start);
            prev_digit = None;
            continue;
        }
        let digit = c.is_ascii_digit();
        if prev_digit.is_some_and(|p| p != digit) {
            flush(&mut out, &mut token_start);
        }
        prev_digit = Some(digit);
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    flush(&mut out, &mut token_start);
    out
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
fn looks_like_block(s: &str) -> bool {
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
    if id.starts_with("_x3C_") {
        return true;
    }
    let figma = id.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ' || c == '_');
    matches!(
        figma,
        "Vector" | "Rectangle" | "Ellipse" | "Group" | "Frame" | "Line" | "Polygon" | "Union"
    )
}

/// Collects warnings up to [`MAX_WARNINGS`]; past that only counts them, so a hostile file with
/// half a million look-alike ids does not format half a million messages.
#[derive(Default)]
struct Warnings {
    list: Vec<String>,
    dropped: usize,
}

impl Warnings {
    fn add(&mut self, message: impl FnOnce() -> String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(message());
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            let more = self.dropped;
            self.list.push(format!("... and {more} more warnings"));
        }
        self.list
    }
}

struct Claim {
    unit: u32,
    rank: u8,
    node: u32,
}

/// Names of one element, decoded and trimmed.
struct Names<'t> {
    id: Option<Cow<'t, str>>,
    data_name: Option<Cow<'t, str>>,
    label: Option<Cow<'t, str>>,
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
        }
    }

    /// Human-typed names first.
    fn ordered(&self) -> impl Iterator<Item = &str> {
        [&self.data_name, &self.label, &self.id]
            .into_iter()
            .filter_map(|n| n.as_deref())
    }

    fn display(&self) -> String {
        self.id
            .as_deref()
            .or(self.data_name.as_deref())
            .or(self.label.as_deref())
            .unwrap_or("")
            .to_string()
    }
}

/// The element id shown for a node (its id, else data-name, else label).
pub(crate) fn display_id(text: &str, named: &[Named], node: u32) -> String {
    named
        .binary_search_by_key(&node, |n| n.node)
        .ok()
        .map(|i| Names::of(text, &named[i]).display())
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

/// Computes the mapping report.
pub(crate) fn map_units(
    text: &str,
    nodes: &[Node],
    named_list: &[Named],
    block_numbers: &[&str],
) -> Mapping {
    let mut warnings = Warnings::default();

    // Units, deduplicated, in the given order.
    let mut units: Vec<&str> = Vec::with_capacity(block_numbers.len());
    let mut exact: FxMap<&str, u32> = FxMap::default();
    exact.reserve(block_numbers.len());
    for &b in block_numbers {
        if !exact.contains_key(b) {
            exact.insert(b, units.len() as u32);
            units.push(b);
        }
    }
    let mut normal: FxMap<String, u32> = FxMap::default();
    normal.reserve(units.len());
    for (i, u) in units.iter().enumerate() {
        let n = normalise(u);
        if n.is_empty() {
            continue;
        }
        match normal.get_mut(&n) {
            Some(existing) if *existing != AMBIGUOUS => {
                warnings.add(|| {
                    format!(
                        "units {} and {} look the same once spaces, dashes and case are ignored; \
                     only exact or export-escaped ids match them",
                        units[*existing as usize], u
                    )
                });
                *existing = AMBIGUOUS;
            }
            Some(_) => {}
            None => {
                normal.insert(n, i as u32);
            }
        }
    }

    let mut claims: Vec<Claim> = Vec::new();
    let mut unclaimed: Vec<usize> = Vec::new();
    for (ni, named) in named_list.iter().enumerate() {
        let node = &nodes[named.node as usize];
        if !node.kind.is_candidate() || node.hidden || node.parent == crate::parse::NONE {
            continue;
        }
        let names = Names::of(text, named);
        if let (Some(id), Some(dn)) = (names.id.as_deref(), names.data_name.as_deref())
            && !names_agree(id, dn)
        {
            warnings.add(|| format!(
                "element id \"{id}\" has data-name \"{dn}\", which disagrees; data-name is used first"
            ));
        }
        let mut found: Option<(u32, u8)> = None;
        for n in names.ordered() {
            if let Some(&u) = exact.get(n) {
                found = Some((u, 1));
                break;
            }
        }
        if found.is_none() {
            'rank2: for n in names.ordered() {
                for v in export_variants(n) {
                    if let Some(&u) = exact.get(v.as_str()) {
                        found = Some((u, 2));
                        break 'rank2;
                    }
                }
            }
        }
        if found.is_none() {
            'rank3: for n in names.ordered() {
                for v in normal_variants(n) {
                    match normal.get(&v) {
                        Some(&AMBIGUOUS) => {
                            warnings.add(|| {
                                format!(
                                    "element \"{}\" could be any of several units once normalised; \
                                 it was not matched",
                                    names.display()
                                )
                            });
                            break 'rank3;
                        }
                        Some(&u) => {
                            found = Some((u, 3));
                            break 'rank3;
                        }
                        None => {}
                    }
                }
            }
        }
        match found {
            Some((unit, rank)) => claims.push(Claim {
                unit,
                rank,
                node: named.node,
            }),
            None => unclaimed.push(ni),
        }
    }

    // Resolve claims unit by unit.
    claims.sort_by_key(|c| (c.unit, c.node));
    let mut winner: Vec<u32> = vec![crate::parse::NONE; units.len()];
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
        if let Some(best) = tops.iter().min_by_key(|c| (c.rank, c.node)) {
            winner[unit as usize] = best.node;
            if tops.len() > 1 {
                let ids: Vec<String> = tops
                    .iter()
                    .map(|c| format!("\"{}\"", display_id(text, named_list, c.node)))
                    .collect();
                warnings.add(|| {
                    format!(
                        "unit {} is claimed by {} elements ({}); using \"{}\"",
                        units[unit as usize],
                        tops.len(),
                        ids.join(", "),
                        display_id(text, named_list, best.node)
                    )
                });
            }
        }
        i = j;
    }

    let mut mapping = Mapping::default();
    let mut covered = vec![false; nodes.len()];
    let mut contains_match = vec![false; nodes.len()];
    for (u, &node) in winner.iter().enumerate() {
        if node == crate::parse::NONE {
            mapping.units_without_element.push(units[u].to_string());
            continue;
        }
        mapping.matched.push(MatchedUnit {
            block_number: units[u].to_string(),
            element_id: display_id(text, named_list, node),
            source: MatchSource::Id,
        });
        mapping.nodes.push(node);
        let n = &nodes[node as usize];
        for c in &mut covered[node as usize..n.end as usize] {
            *c = true;
        }
        let mut p = n.parent;
        while p != crate::parse::NONE && !contains_match[p as usize] {
            contains_match[p as usize] = true;
            p = nodes[p as usize].parent;
        }
    }

    for ni in unclaimed {
        let named = &named_list[ni];
        let i = named.node as usize;
        if covered[i] || contains_match[i] {
            continue;
        }
        let names = Names::of(text, named);
        let human = names.data_name.is_some() || names.label.is_some();
        if let Some(id) = names.id.as_deref()
            && (human || !is_tool_generated(id))
        {
            mapping.unmatched_element_ids.push(id.to_string());
        }
        if let Some(n) = names.ordered().find(|n| looks_like_block(n))
            && names
                .id
                .as_deref()
                .is_none_or(|id| !is_tool_generated(id) || human)
        {
            warnings.add(|| {
                format!(
                    "element \"{}\" looks like block number \"{}\" but no such unit exists",
                    names.display(),
                    n
                )
            });
        }
    }

    mapping.warnings = warnings.finish();
    mapping
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
