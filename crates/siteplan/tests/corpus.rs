#![allow(clippy::unwrap_used, clippy::expect_used)]
//! v1.1 corpus: drawings in the styles real siteplans arrive in (written for these tests), each
//! with its exact expected mapping, warnings, colouring and outlines.

use std::path::Path;

use kavling_siteplan::{ElementWarning, Limits, Mapping, Siteplan, UnitGeometry, UnmatchedElement};

fn load(name: &str) -> Siteplan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/siteplans")
        .join(name);
    let bytes = std::fs::read(path).unwrap();
    let plan =
        Siteplan::parse(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let again = Siteplan::parse(plan.sanitized().as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        plan.sanitized(),
        again.sanitized(),
        "{name} is not idempotent"
    );
    plan
}

/// (block, element id, source), sorted.
fn matched(m: &Mapping) -> Vec<(String, String, &'static str)> {
    let mut v: Vec<_> = m
        .matched
        .iter()
        .map(|u| {
            (
                u.block_number.clone(),
                u.element_id.clone(),
                u.source.as_str(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expect(v: &[(&str, &str, &'static str)]) -> Vec<(String, String, &'static str)> {
    let mut v: Vec<_> = v
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect();
    v.sort();
    v
}

fn inside(poly: &[kavling_siteplan::Point], x: f64, y: f64) -> bool {
    let mut odd = false;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        if (a.y <= y) != (b.y <= y) && x < a.x + (y - a.y) / (b.y - a.y) * (b.x - a.x) {
            odd = !odd;
        }
    }
    odd
}

fn geo<'g>(g: &'g [UnitGeometry], bn: &str) -> &'g UnitGeometry {
    g.iter().find(|u| u.block_number == bn).unwrap()
}

/// The start tag of the element with this id in `out`.
fn tag_of<'o>(out: &'o str, id: &str) -> &'o str {
    let at = out.find(&format!("id=\"{id}\"")).unwrap();
    let start = out[..at].rfind('<').unwrap();
    let end = start + out[start..].find('>').unwrap();
    &out[start..=end]
}

/// Paints every unit, checks the render parses, and returns it.
fn paint_all(p: &Siteplan, m: &Mapping) -> String {
    let out = p.color_template(m).render(|_| Some("#22c55e"));
    let again = Siteplan::parse(out.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(again.element_count(), p.element_count());
    out
}

/// Each unit's outline is a closed polygon of at most 64 points holding its label's anchor.
fn outlines_hold(g: &[UnitGeometry], anchors: &[(&str, f64, f64)]) {
    for u in g {
        assert!(u.outline.len() >= 3 && u.outline.len() <= 64, "{u:?}");
        assert_ne!(u.outline.first(), u.outline.last(), "{u:?}");
    }
    for &(bn, x, y) in anchors {
        let u = geo(g, bn);
        assert!(
            inside(&u.outline, x, y),
            "{bn}: ({x},{y}) not in {:?}",
            u.outline
        );
        let b = u.bbox;
        assert!(
            x > b.x && x < b.x + b.width && y > b.y && y < b.y + b.height,
            "{u:?}"
        );
    }
}

#[test]
fn autocad_export_maps_by_text_through_the_flip() {
    let p = load("autocad-dwg-export.svg");
    let m = p.map_units(&["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("1", "kv-602c9c07", "text"),
            ("2", "kv-ae26f252", "text"),
            ("3", "kv-349b5df6", "text"),
            ("4", "kv-3b5649f6", "text"),
            ("5", "kv-3a0f8c29", "text"),
            // "06": the leading zero is dropped since that names exactly one unit.
            ("6", "kv-ad3fa0d5", "text"),
        ])
    );
    assert_eq!(m.units_without_element, ["7"]);
    assert_eq!(
        m.warnings,
        ["text label \"KAV 9\" looks like a block number but no such unit exists"]
    );
    // Every shape is `fill="none"` (CAD linework): none is offered for click-to-map.
    assert!(m.unmatched_shape_ids.is_empty());
    let out = paint_all(&p, &m);
    assert_eq!(out.matches("fill=\"#22c55e\"").count(), 6, "{out}");
    assert!(tag_of(&out, "kv-602c9c07").starts_with("<polyline fill=\"#22c55e\""));
    assert!(tag_of(&out, "kv-3b5649f6").starts_with("<path fill=\"#22c55e\""));
    assert!(out.contains("<text transform=\"matrix(1,0,0,-1,512020,9120228)\">1</text>"));
    let g = p.geometry(&m);
    // viewBox coordinates: world x 512010 → 10, world y 9120260 → 40; stroke 0.25 included.
    let one = geo(&g, "1").bbox;
    assert_eq!(
        (one.x, one.y, one.width, one.height),
        (9.875, 39.875, 28.25, 60.25)
    );
    let anchors: Vec<(&str, f64, f64)> = ["1", "2", "3", "4", "5", "6"]
        .iter()
        .enumerate()
        .map(|(i, bn)| (*bn, 20.0 + 30.0 * i as f64, 72.0))
        .collect();
    outlines_hold(&g, &anchors);
    // The arc-cornered lot 6 is flattened, not boxed.
    assert!(geo(&g, "6").outline.len() > 4);
}

#[test]
fn text_only_labels_over_a_raster_background() {
    let p = load("text-labels-raster.svg");
    assert!(p.sanitized().contains("data:image/png;base64,"));
    assert!(p.sanitized().contains("clip-path=\"url(#frame)\""));
    let m = p.map_units(&["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A9", "B1", "B2"]);
    assert_eq!(
        matched(&m),
        expect(&[
            // <tspan>A</tspan><tspan>01</tspan>
            ("A1", "kv-79a66bef", "text"),
            // <tspan>Blok A</tspan><tspan>No 2</tspan>
            ("A2", "kv-c39dd152", "text"),
            ("A3", "kv-39d37aa4", "text"),
            ("A4", "kv-10f1a2bc", "text"),
            // The lot with a courtyard (even-odd hole); its label is on the solid part.
            ("A5", "kv-2b50c81e", "text"),
            ("A6", "kv-828779bb", "text"),
            // Lots in a nested <svg> scaled 2x by its viewBox.
            ("B1", "kv-d770a795", "text"),
            ("B2", "kv-e5899cf5", "text"),
        ])
    );
    // A7's label lies where two lots overlap; A9's lies in A5's courtyard (no shape there; the
    // full-size background never takes labels).
    assert_eq!(m.units_without_element, ["A7", "A9"]);
    assert_eq!(
        m.warnings,
        [
            "text label \"Z 99\" looks like a block number but no such unit exists",
            "text label \"A7\" lies in 2 overlapping shapes (\"kv-5c4e7801\", \"kv-d7a8d453\"); it was not matched",
        ]
    );
    assert_eq!(
        m.unmatched_shape_ids,
        ["kv-96af9d83", "kv-5c4e7801", "kv-d7a8d453", "kv-1fce29f4"]
    );
    let out = paint_all(&p, &m);
    assert_eq!(out.matches("fill=\"#22c55e\"").count(), 8, "{out}");
    assert!(out.contains("<text x=\"210\" y=\"95\">A-3</text>"), "{out}");
    assert!(!tag_of(&out, "kv-96af9d83").contains("22c55e"));
    let g = p.geometry(&m);
    let b1 = geo(&g, "B1").bbox;
    assert_eq!(
        (b1.x, b1.y, b1.width, b1.height),
        (359.0, 49.0, 82.0, 102.0)
    );
    outlines_hold(
        &g,
        &[
            ("A1", 70.0, 95.0),
            ("A2", 140.0, 95.0),
            ("A3", 210.0, 95.0),
            ("A4", 280.0, 95.0),
            ("A5", 70.0, 265.0),
            ("A6", 140.0, 235.0),
            ("B1", 400.0, 100.0),
            ("B2", 500.0, 100.0),
        ],
    );
}

#[test]
fn use_copies_of_one_lot_symbol() {
    let p = load("use-symbol.svg");
    let m = p.map_units(&["C1", "C2", "C3", "C4", "C5", "C6"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("C1", "kv-b1c7f8b7", "text"),
            ("C2", "kv-dcd4b8ca", "text"),
            ("C3", "kv-dcaad781", "text"),
            ("C4", "C4", "id"),
            ("C5", "kv-97b3c441", "text"),
        ])
    );
    assert_eq!(m.units_without_element, ["C6"]);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    // The background and the unlabelled copy in the second row.
    assert_eq!(m.unmatched_shape_ids, ["kv-6f512db6", "kv-79b43f4f"]);
    assert!(p.has_element("kv-79b43f4f") && !p.has_element("lot"));
    let out = paint_all(&p, &m);
    // The fill goes on each `use`; the symbol's lot rect has no fill of its own and shows it,
    // its house rect keeps its own fill (documented: shapes that set a fill keep it).
    assert_eq!(out.matches("<use fill=\"#22c55e\"").count(), 5, "{out}");
    assert!(
        out.contains("<rect x=\"10\" y=\"10\" width=\"20\" height=\"25\" fill=\"#c69c6d\"/>"),
        "{out}"
    );
    let g = p.geometry(&m);
    let c3 = geo(&g, "C3").bbox;
    assert_eq!((c3.x, c3.y, c3.width, c3.height), (110.0, 20.0, 40.0, 70.0));
    outlines_hold(
        &g,
        &[
            ("C1", 30.0, 80.0),
            ("C2", 75.0, 80.0),
            ("C3", 120.0, 80.0),
            ("C4", 175.0, 55.0),
            ("C5", 215.0, 80.0),
        ],
    );
}

#[test]
fn figma_groups_with_outlined_labels() {
    let p = load("figma-outlined.svg");
    let m = p.map_units(&["A1", "A2", "A3", "A4"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("A1", "A1", "id"),
            ("A2", "A2", "id"),
            ("A3", "A3", "id"),
            // Figma's `_2`: the unit is drawn as two groups, both match.
            ("A4", "A4", "id"),
            ("A4", "A4_2", "id"),
        ])
    );
    assert_eq!(
        m.warnings,
        ["unit A4 is drawn as 2 elements (\"A4\", \"A4_2\"); all of them are used"]
    );
    assert_eq!(m.unmatched_shape_ids, ["Background", "Jalan"]);
    let out = paint_all(&p, &m);
    // Lots painted; outlined glyphs (a path inside the group, a "Label" group, small vectors),
    // the dashed line and the groups themselves keep their paint.
    for lot in [
        "Rectangle 1",
        "Rectangle 2",
        "Vector",
        "Rectangle 4",
        "Rectangle 5",
    ] {
        assert!(
            tag_of(&out, lot).contains("fill=\"#22c55e\""),
            "{lot}: {out}"
        );
    }
    for keep in ["A1_2", "Vector_2", "Vector_3", "Vector_4"] {
        assert!(
            tag_of(&out, keep).contains("fill=\"#333333\""),
            "{keep}: {out}"
        );
    }
    assert_eq!(out.matches("fill=\"#22c55e\"").count(), 5, "{out}");
    assert!(
        out.contains("<g id=\"A1\">") && out.contains("<g id=\"Label\">"),
        "{out}"
    );
    let g = p.geometry(&m);
    assert_eq!(geo(&g, "A4").element_ids, ["A4", "A4_2"]);
    outlines_hold(
        &g,
        &[
            ("A1", 40.0, 60.0),
            ("A2", 110.0, 60.0),
            ("A3", 180.0, 60.0),
            ("A4", 250.0, 60.0),
        ],
    );
}

/// Outlines of rectangular-ish lots hold their box centre.
fn outlines_hold_centres(g: &[UnitGeometry]) {
    for u in g {
        assert!(u.outline.len() >= 3 && u.outline.len() <= 64, "{u:?}");
        assert_ne!(u.outline.first(), u.outline.last(), "{u:?}");
        let (x, y) = (
            u.bbox.x + u.bbox.width / 2.0,
            u.bbox.y + u.bbox.height / 2.0,
        );
        assert!(inside(&u.outline, x, y), "{u:?}");
    }
}

#[test]
fn illustrator_save_as_sources_and_colours() {
    let p = load("illustrator-save-as.svg");
    let u: Vec<String> = (1..=16).map(|n| n.to_string()).collect();
    let m = p.map_units(&u.iter().map(String::as_str).collect::<Vec<_>>());
    let mut want: Vec<(String, String, &str)> = (1..=16)
        .map(|n: u32| {
            let id = match n {
                7 => "_x37__1_".to_string(),
                14 => "_x31_4_1_".to_string(),
                16 => "_x31_6_2_".to_string(),
                n if n < 10 => format!("_x3{n}_"),
                n => format!("_x31_{}", n - 10),
            };
            (n.to_string(), id, "id")
        })
        .collect();
    want.sort();
    assert_eq!(matched(&m), want);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m.unmatched_shape_ids, ["kv-dcb97850", "JALAN_x5F_UTAMA"]);
    let out = paint_all(&p, &m);
    assert_eq!(out.matches("fill=\"#22c55e\"").count(), 19, "{out}");
    outlines_hold_centres(&p.geometry(&m));
}

#[test]
fn illustrator_export_as_sources() {
    let p = load("illustrator-export-as.svg");
    let u: Vec<String> = (91..=100).map(|n| n.to_string()).collect();
    let m = p.map_units(&u.iter().map(String::as_str).collect::<Vec<_>>());
    // data-name (the layer name) matched first: source `label`.
    let mut want: Vec<(String, String, &str)> = (91..=100)
        .map(|n: u32| {
            let id = match n {
                95 => "_95-2".to_string(),
                98 => "No_98".to_string(),
                n => format!("_{n}"),
            };
            (n.to_string(), id, "label")
        })
        .collect();
    want.sort();
    assert_eq!(matched(&m), want);
    assert_eq!(m.unmatched_shape_ids, ["kv-7c89ba45", "JALAN"]);
    assert_eq!(paint_all(&p, &m).matches("fill=\"#22c55e\"").count(), 10);
    outlines_hold_centres(&p.geometry(&m));
}

#[test]
fn inkscape_sources() {
    let p = load("inkscape.svg");
    let m = p.map_units(&["A10", "A11", "A12", "A13", "A14", "A15"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("A10", "path1234", "label"),
            ("A11", "path1236", "label"),
            ("A12", "rect1238", "label"),
            ("A13", "g1240", "label"),
            ("A14", "A14", "id"),
            ("A15", "path1250", "label"),
        ])
    );
    assert_eq!(m.unmatched_shape_ids, ["rect101"]);
    assert_eq!(paint_all(&p, &m).matches("fill=\"#22c55e\"").count(), 7);
    outlines_hold_centres(&p.geometry(&m));
}

#[test]
fn figma_sources() {
    let p = load("figma.svg");
    let m = p.map_units(&["A12", "A13", "A14", "A15", "A16"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("A12", "Blok A No 12", "id"),
            ("A13", "A13_2", "id"),
            ("A14", "A14", "id"),
            ("A14", "A14_2", "id"),
            ("A15", "A 15", "id"),
            ("A16", "Unit-A16", "id"),
        ])
    );
    assert_eq!(
        m.unmatched_shape_ids,
        ["kv-169b4caa", "Rectangle 12", "Taman"]
    );
    assert_eq!(paint_all(&p, &m).matches("fill=\"#22c55e\"").count(), 7);
    outlines_hold_centres(&p.geometry(&m));
}

// Issue #21: a mapping report an admin can act on. Each fixture in `report/` reproduces one
// pattern of real exports; each test states the exact report.

fn entry(id: &str, label: Option<&str>, hint: Option<&str>) -> UnmatchedElement {
    UnmatchedElement {
        element_id: id.to_string(),
        label: label.map(str::to_string),
        hint: hint.map(str::to_string),
    }
}

/// Checks that every warning about an element is in `warnings` and names the element.
fn element_warnings(m: &Mapping) -> Vec<(&str, &str)> {
    for w in &m.element_warnings {
        assert!(m.warnings.contains(&w.message), "{w:?}");
        assert!(
            w.message.contains(&format!("\"{}\"", w.element_id)),
            "{w:?}"
        );
    }
    m.element_warnings
        .iter()
        .map(
            |ElementWarning {
                 element_id,
                 message,
             }| (element_id.as_str(), message.as_str()),
        )
        .collect()
}

#[test]
fn a_text_label_that_disagrees_with_the_name_is_warned_and_nothing_is_dropped() {
    let p = load("report/label-disagrees.svg");
    let m = p.map_units(&["81", "82", "83", "84", "85", "86"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("81", "_81", "label"),
            ("83", "_83", "label"),
            ("84", "_84", "label"),
            ("85", "_85", "label"),
            ("86", "_86", "label"),
        ])
    );
    assert_eq!(m.units_without_element, ["82"]);
    let w = "element \"_81\" is matched to unit 81 by its name, but the text drawn in it reads \"82\"; check which is right";
    // The same check for a label drawn over the lot from a separate text layer.
    let w85 = "element \"_85\" is matched to unit 85 by its name, but the text drawn in it reads \"86\"; check which is right";
    assert_eq!(m.warnings, [w, w85]);
    assert_eq!(element_warnings(&m), [("_81", w), ("_85", w85)]);
    // Matched, so not unmatched: every element is in exactly one of the two.
    assert_eq!(m.unmatched_element_ids, ["Labels"]);
    assert!(m.candidates.is_empty());
    assert_eq!(m.other_elements, [entry("Labels", None, None)]);
    assert_eq!(p.shape_count(), 5);
}

#[test]
fn layers_and_groups_of_lots_are_not_lots_tool_ids_are_apart_and_near_misses_hinted() {
    let p = load("report/inkscape-layers.svg");
    let m = p.map_units(&["1", "2", "A1", "A2", "A3", "A4", "7"]);
    assert_eq!(
        matched(&m),
        expect(&[
            ("A1", "rect101", "label"),
            ("A2", "rect102", "label"),
            ("A3", "path1234", "text"),
            ("A4", "path1235", "text"),
            // `unit7` and `Shop-1` split alike; `unit` is a word numbers drop, `Shop` is not.
            ("7", "path5679", "label"),
        ])
    );
    assert_eq!(m.units_without_element, ["1", "2"]);
    let layer = "element \"layer1\" is an Inkscape layer, not a lot: it was not matched to unit 1";
    let group = "element \"g6270\" holds other units (A3, A4); a group holding other lots is not a lot: it was not matched to unit 2";
    let shop = "element \"rect999\" matches no unit; without its leading word it is unit 1";
    assert_eq!(m.warnings, [layer, group, shop]);
    assert_eq!(
        element_warnings(&m),
        [("layer1", layer), ("g6270", group), ("rect999", shop)]
    );
    assert_eq!(m.unmatched_element_ids, ["rect999"]);
    assert_eq!(m.unmatched_shape_ids, ["rect999"]);
    assert_eq!(m.candidates, [entry("rect999", Some("Shop-1"), Some("1"))]);
    // The open road line: a tool's id, not a shape, no hint, no "looks like" warning.
    assert_eq!(m.other_elements, [entry("path5678", None, None)]);
    assert_eq!(p.shape_count(), 6);
    // The layer flag survives sanitizing, so the stored text reports the same.
    let again = Siteplan::parse(p.sanitized().as_bytes(), &Limits::default()).unwrap();
    assert_eq!(again.map_units(&["1", "2", "A1", "A2", "A3", "A4", "7"]), m);
}

#[test]
fn figma_noise_is_reported_apart_from_candidate_lots() {
    let p = load("report/figma-noise.svg");
    let m = p.map_units(&["B1", "B2", "B3"]);
    assert_eq!(
        matched(&m),
        expect(&[("B1", "B1", "id"), ("B2", "B2", "id")])
    );
    assert_eq!(m.units_without_element, ["B3"]);
    // `Rectangle 12` and `Clip path group_12` are Figma's own names: no look-alike warnings.
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m.unmatched_element_ids, ["Tree"]);
    // The background (a generated id) is a shape but over half the drawing: not a candidate.
    let background = &m.unmatched_shape_ids[0];
    assert!(background.starts_with("kv-"), "{background}");
    assert_eq!(
        m.unmatched_shape_ids[1..],
        ["Rectangle 12", "Tree", "Vector_3"]
    );
    assert_eq!(m.candidates, [entry("Rectangle 12", None, None)]);
    assert_eq!(
        m.other_elements,
        [
            entry("Tree", None, None),
            entry("Clip path group_12", None, None),
            entry("Vector_3", None, None),
        ]
    );
    assert_eq!(p.shape_count(), 6);
}

#[test]
fn only_closed_painted_areas_are_filled() {
    let p = load("report/open-strokes.svg");
    let m = p.map_units(&["C1", "C2", "C3"]);
    assert_eq!(
        matched(&m),
        expect(&[("C1", "C1", "id"), ("C2", "C2", "id"), ("C3", "C3", "id")])
    );
    let out = p.color_template(&m).render(|_| Some("#22c55e"));
    assert!(tag_of(&out, "c1-lot").contains("fill=\"#22c55e\""));
    for (id, fill) in [
        ("c1-fence", "fill=\"none\""),
        ("c1-path", ""),
        ("c1-gate", ""),
        // An open path matched by its own id has no area: it keeps its paint.
        ("C2", "fill=\"none\""),
        ("c3-hatch", ""),
    ] {
        let tag = tag_of(&out, id);
        assert!(!tag.contains("#22c55e"), "{tag}");
        assert!(tag.contains(fill), "{tag}");
    }
    // A unit drawn only as an unfilled outline: its closed outline is the lot.
    assert!(tag_of(&out, "c3-outline").contains("fill=\"#22c55e\""));
    assert_eq!(p.shape_count(), 2);
}

#[test]
fn what_sanitizing_removed_is_said_with_the_fix() {
    let p = load("report/external-refs.svg");
    assert_eq!(
        p.removed(),
        [
            "the external stylesheet \"theme.css\" was removed: the server never loads external files; put its rules in a <style> element inside the SVG on export",
            "the external stylesheet \"fonts.css\" was removed: the server never loads external files; put its rules in a <style> element inside the SVG on export",
            "the external font \"fonts/plan-sans.woff2\" was removed: the server never loads external files; convert text to outlines or use a common font on export",
            "the background image \"plan.png\" was removed: the server never loads external files; embed the image as a data: URI on export",
            "the embedded image \"data:image/svg+xml\" was removed: only PNG, JPEG, GIF and WebP images are kept; export the background as PNG or JPEG embedded as a data: URI",
        ]
    );
    let m = p.map_units(&["D1", "D2"]);
    assert_eq!(
        matched(&m),
        expect(&[("D1", "D1", "id"), ("D2", "D2", "id")])
    );
    // The sanitized text has nothing left to remove.
    let again = Siteplan::parse(p.sanitized().as_bytes(), &Limits::default()).unwrap();
    assert!(again.removed().is_empty());
    // Embedded rasters and same-document references are kept and not reported.
    let ok = br##"<svg xmlns="http://www.w3.org/2000/svg"><image href="data:image/png;base64,iVBORw0KGgo=" width="1" height="1"/><use href="#a"/><rect id="a" width="1" height="1"/></svg>"##;
    assert!(
        Siteplan::parse(ok, &Limits::default())
            .unwrap()
            .removed()
            .is_empty()
    );
}
