#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The committed fixtures: exports of real design tools map as expected, and every file of the
//! hostile corpus is either refused or comes out clean, well-formed and idempotent.

use std::path::{Path, PathBuf};

use kavling_siteplan::{Limits, Mapping, Siteplan, SvgErrorKind};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/siteplans")
}

fn load(name: &str) -> Siteplan {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
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

fn matched(m: &Mapping) -> Vec<(&str, &str)> {
    let mut v: Vec<_> = m
        .matched
        .iter()
        .map(|u| (u.block_number.as_str(), u.element_id.as_str()))
        .collect();
    v.sort();
    v
}

fn units(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|n| format!("{prefix}{n}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn illustrator_save_as() {
    let plan = load("illustrator-save-as.svg");
    let u = units("", 1..=16);
    let m = plan.map_units(&refs(&u));
    assert!(m.units_without_element.is_empty(), "{m:?}");
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let ids: Vec<_> = matched(&m);
    assert!(ids.contains(&("12", "_x31_2")));
    assert!(ids.contains(&("7", "_x37__1_")));
    assert!(ids.contains(&("14", "_x31_4_1_")));
    assert_eq!(
        m.unmatched_element_ids,
        ["BACKGROUND", "JALAN", "JALAN_x5F_UTAMA", "LABEL"]
    );
    // Class rules (.st2) became attributes; the <style> is gone.
    let s = plan.sanitized();
    assert!(!s.contains("<style"));
    assert!(s.contains("<rect id=\"_x33_\" x=\"160\" y=\"20\" class=\"st2\" width=\"60\" height=\"150\" fill=\"#FFFFFF\" stroke=\"#4D4D4D\" stroke-width=\"1.2\" stroke-miterlimit=\"10\"/>"), "{s}");
    let g = plan.geometry(&m);
    let twelve = g.iter().find(|u| u.block_number == "12").unwrap();
    let r = |v: f64| (v * 1e6).round() / 1e6;
    assert_eq!(
        (
            r(twelve.bbox.x),
            r(twelve.bbox.y),
            r(twelve.bbox.width),
            r(twelve.bbox.height)
        ),
        // v1.1: the box includes half the stroke width (1.2).
        (229.4, 229.4, 61.2, 151.2)
    );
}

#[test]
fn illustrator_export_as() {
    let plan = load("illustrator-export-as.svg");
    let u = units("", 91..=100);
    let m = plan.map_units(&refs(&u));
    assert!(m.units_without_element.is_empty(), "{m:?}");
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let ids = matched(&m);
    assert!(ids.contains(&("91", "_91")));
    assert!(ids.contains(&("95", "_95-2")));
    assert!(ids.contains(&("98", "No_98")));
    assert_eq!(m.unmatched_element_ids, ["JALAN"]);
    // A rotated lot is measured where it is drawn.
    let g = plan.geometry(&m);
    let b = g.iter().find(|u| u.block_number == "96").unwrap().bbox;
    // v1.1: half the 1.2 stroke width is included.
    assert!(
        (b.x - 259.4).abs() < 1e-9 && (b.y - 9.4).abs() < 1e-9,
        "{b:?}"
    );
}

#[test]
fn inkscape() {
    let plan = load("inkscape.svg");
    let u = units("A", 10..=15);
    let m = plan.map_units(&refs(&u));
    assert_eq!(
        matched(&m),
        [
            ("A10", "path1234"),
            ("A11", "path1236"),
            ("A12", "rect1238"),
            ("A13", "g1240"),
            ("A14", "A14"),
            ("A15", "path1250")
        ]
    );
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    // The road layer has a human label, so its automatic id is reported.
    assert_eq!(m.unmatched_element_ids, ["layer2"]);
    let s = plan.sanitized();
    assert!(
        !s.contains("sodipodi") && !s.contains("rdf:") && !s.contains("metadata"),
        "{s}"
    );
    assert!(s.contains("inkscape:label=\"A10\""));
    let vb = plan.view_box().unwrap();
    assert_eq!((vb.width, vb.height), (210.0, 148.0));
    // The layer's translate(-12.5,-30) applies.
    let g = plan.geometry(&m);
    let a10 = g.iter().find(|u| u.block_number == "A10").unwrap().bbox;
    // v1.1: half the 0.5 stroke width is included.
    assert_eq!(
        (a10.x, a10.y, a10.width, a10.height),
        (9.75, 9.75, 30.5, 50.5)
    );
    // rotate(90, 127.5, 65) turns the 30×50 lot into a 50×30 one around its centre.
    let a13 = g.iter().find(|u| u.block_number == "A13").unwrap();
    assert!(
        (a13.bbox.width - 50.5).abs() < 1e-9 && (a13.bbox.height - 30.5).abs() < 1e-9,
        "{a13:?}"
    );
    assert!(
        (a13.center.x - 115.0).abs() < 1e-9 && (a13.center.y - 35.0).abs() < 1e-9,
        "{a13:?}"
    );
}

#[test]
fn figma() {
    let plan = load("figma.svg");
    let u = units("A", 12..=16);
    let m = plan.map_units(&refs(&u));
    assert_eq!(
        matched(&m),
        [
            ("A12", "Blok A No 12"),
            ("A13", "A13_2"),
            ("A14", "A14"),
            ("A14", "A14_2"),
            ("A15", "A 15"),
            ("A16", "Unit-A16")
        ]
    );
    // A14 was duplicated in Figma (`A14_2`). v1.1: the unit is drawn twice, both copies match,
    // and the warning names them.
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("A14") && m.warnings[0].contains("drawn as 2"));
    assert_eq!(m.unmatched_element_ids, ["Jalan", "Taman"]);
}

#[test]
fn demo_seed_fixture_maps_all_units_and_colours() {
    let plan = load("demo-illustrator.svg");
    let u: Vec<String> = ["A", "B", "C", "D"]
        .iter()
        .flat_map(|b| units(b, 1..=30))
        .collect();
    let m = plan.map_units(&refs(&u));
    assert_eq!(m.matched.len(), 120);
    let t = plan.color_template(&m);
    let out = t.render(|_| Some("#22c55e"));
    // Each unit is painted at least once; the render parses.
    assert!(out.matches("fill=\"#22c55e\"").count() >= 120);
    let again = Siteplan::parse(out.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(again.element_count(), plan.element_count());
}

/// Constructs that must never survive sanitization.
fn forbidden(out: &str) -> Option<&'static str> {
    let lower = out
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "")
        .replace(
            "xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\"",
            "",
        )
        .to_ascii_lowercase();
    [
        "<script",
        "script:",
        "javascript",
        "alert",
        "foreignobject",
        " on",
        "<!doctype",
        "<!entity",
        "<?",
        "<!--",
        "<![cdata[",
        "http",
        "//",
        "@import",
        "<style",
        "data:text",
        "svg+xml",
        "expression",
        "xml:base",
        "xhtml",
        "iframe",
        "evil",
    ]
    .into_iter()
    .find(|f| lower.contains(f))
}

#[test]
fn hostile_corpus() {
    let dir = fixtures().join("hostile");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "svg"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 15);
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let result = Siteplan::parse(&bytes, &Limits::default());
        if name.starts_with("reject-") {
            let e = result
                .err()
                .unwrap_or_else(|| panic!("{name} was accepted"));
            let expected = match name.as_str() {
                "reject-billion-laughs.svg" | "reject-doctype-entities.svg" | "reject-xxe.svg" => {
                    matches!(e.kind, SvgErrorKind::DocType)
                }
                "reject-unknown-entity.svg" => matches!(e.kind, SvgErrorKind::UnknownEntity(_)),
                "reject-html-root.svg" => matches!(e.kind, SvgErrorKind::RootNotSvg(_)),
                "reject-unclosed.svg" => matches!(e.kind, SvgErrorKind::Unclosed(_)),
                "reject-deep-nesting.svg" => matches!(e.kind, SvgErrorKind::TooDeep(256)),
                _ => true,
            };
            assert!(expected, "{name}: unexpected error {e}");
            assert!(e.line >= 1 && e.column >= 1);
            continue;
        }
        let plan = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = plan.sanitized();
        assert_eq!(forbidden(out), None, "{name}:\n{out}");
        let again = Siteplan::parse(out.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(again.sanitized(), out, "{name} is not idempotent");
        // The unit drawn in each file survives and still maps.
        if out.contains("id=\"A1\"") {
            let m = plan.map_units(&["A1"]);
            assert_eq!(m.matched.len(), 1, "{name}");
        }
    }
}

#[test]
fn hostile_details() {
    let read = |n: &str| std::fs::read(fixtures().join("hostile").join(n)).unwrap();
    let plan = Siteplan::parse(&read("style-import.svg"), &Limits::default()).unwrap();
    let s = plan.sanitized();
    // Safe declarations of the same rules survive; unsafe ones are skipped.
    assert!(
        s.contains("<rect id=\"A1\" class=\"cls-1\" width=\"10\" height=\"10\" stroke=\"#000\"/>"),
        "{s}"
    );
    assert!(
        s.contains("<rect id=\"A2\" class=\"cls-2\" width=\"10\" height=\"10\" fill=\"#abc\"/>"),
        "{s}"
    );
    assert!(
        s.contains(
            "<rect id=\"A3\" class=\"cls-3 cls-4\" width=\"10\" height=\"10\" fill=\"#def\"/>"
        ),
        "{s}"
    );
    let plan = Siteplan::parse(&read("external-refs.svg"), &Limits::default()).unwrap();
    let s = plan.sanitized();
    assert!(
        s.contains("<rect id=\"A2\" style=\"fill:#fff\" width=\"10\" height=\"10\"/>"),
        "{s}"
    );
    assert!(
        // v1.1: an id-less rendered shape gets a generated id.
        s.contains("<rect clip-path=\"url(#ok)\" width=\"10\" height=\"10\" id=\"kv-"),
        "{s}"
    );
    let plan = Siteplan::parse(&read("javascript-hrefs.svg"), &Limits::default()).unwrap();
    assert!(
        plan.sanitized()
            .contains("<a href=\"#A1\"><text>ok</text></a>")
    );
    let e = Siteplan::parse(&read("reject-doctype-entities.svg"), &Limits::default()).unwrap_err();
    assert_eq!((e.line, e.column), (2, 1));
    assert!(
        e.to_string()
            .starts_with("line 2, column 1: DOCTYPE is not allowed in a siteplan")
    );
}

#[test]
fn synthetic_benchmark_siteplan_is_consistent() {
    let svg = kavling_siteplan::synth::generate_siteplan(250);
    let units = kavling_siteplan::synth::block_numbers(250);
    let refs = refs(&units);
    let plan = Siteplan::parse(svg.as_bytes(), &Limits::default()).unwrap();
    let again = Siteplan::parse(plan.sanitized().as_bytes(), &Limits::default()).unwrap();
    assert_eq!(plan.sanitized(), again.sanitized());
    let m = plan.map_units(&refs);
    assert_eq!(m.matched.len(), 250);
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m, again.map_units(&refs));
    let g = plan.geometry(&m);
    assert_eq!(g.len(), 250);
    for u in &g {
        // Lots are 38×80 (a little more when rotated by 2°).
        assert!(u.bbox.width > 37.0 && u.bbox.width < 44.0, "{u:?}");
        assert!(u.bbox.height > 79.0 && u.bbox.height < 84.0, "{u:?}");
    }
    let out = plan.color_template(&m).render(|_| Some("#eab308"));
    assert!(out.len() > plan.sanitized().len());
    Siteplan::parse(out.as_bytes(), &Limits::default()).unwrap();
}

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(plan) = Siteplan::parse(&bytes, &Limits::default()) {
            let again = Siteplan::parse(plan.sanitized().as_bytes(), &Limits::default()).unwrap();
            assert_eq!(again.sanitized(), plan.sanitized());
        }
    }
}

#[test]
fn synthetic_text_labelled_siteplan_maps_every_lot_by_text() {
    let svg = kavling_siteplan::synth::generate_text_labelled_siteplan(300);
    let units = kavling_siteplan::synth::block_numbers(300);
    let refs = refs(&units);
    let plan = Siteplan::parse(svg.as_bytes(), &Limits::default()).unwrap();
    let m = plan.map_units(&refs);
    assert_eq!(m.matched.len(), 300, "{:?}", m.units_without_element);
    assert!(m.matched.iter().all(
        |u| u.source == kavling_siteplan::MatchSource::Text && u.element_id.starts_with("kv-")
    ));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    // The background and the block outlines are left for the admin.
    assert_eq!(
        m.unmatched_shape_ids.len(),
        1 + 3,
        "{:?}",
        m.unmatched_shape_ids
    );
    let again = Siteplan::parse(plan.sanitized().as_bytes(), &Limits::default()).unwrap();
    assert_eq!(again.sanitized(), plan.sanitized());
    assert_eq!(again.map_units(&refs), m);
}
