//! Unit tests of the engine through its public API, one small SVG per rule.

use super::*;

fn plan(s: &str) -> Siteplan {
    match Siteplan::parse(s.as_bytes(), &Limits::default()) {
        Ok(p) => p,
        Err(e) => panic!("parse failed: {e}\n{s}"),
    }
}

fn san(s: &str) -> String {
    plan(s).sanitized().to_string()
}

fn err(s: &[u8]) -> SvgError {
    match Siteplan::parse(s, &Limits::default()) {
        Ok(p) => panic!("expected an error, got {}", p.sanitized()),
        Err(e) => e,
    }
}

/// Sanitizing twice gives the same text and the same element index.
fn assert_idempotent(s: &str) {
    let a = plan(s);
    let b = plan(a.sanitized());
    assert_eq!(a.sanitized(), b.sanitized(), "not idempotent for\n{s}");
    assert_eq!(a.nodes, b.nodes);
    assert_eq!(a.named, b.named);
    assert_eq!(a.gen_ids, b.gen_ids);
}

// ---- validation -------------------------------------------------------------------------

#[test]
fn empty_input_is_refused() {
    assert_eq!(err(b"").kind, SvgErrorKind::Empty);
    assert_eq!(err(b"  \n\t ").kind, SvgErrorKind::Empty);
}

#[test]
fn non_utf8_is_refused_with_position() {
    let e = err(b"<svg>\n  <text>\xff</text></svg>");
    assert_eq!(e.kind, SvgErrorKind::NotUtf8);
    assert_eq!((e.line, e.column), (2, 9));
    // UTF-16 with a byte order mark is not UTF-8 either.
    assert_eq!(err(b"\xff\xfe<\x00s\x00").kind, SvgErrorKind::NotUtf8);
}

#[test]
fn utf8_bom_is_accepted() {
    let p = plan("\u{feff}<svg><rect id=\"A1\"/></svg>");
    assert_eq!(p.element_count(), 2);
}

#[test]
fn doctype_is_refused_with_line_and_column() {
    let e = err(b"<?xml version=\"1.0\"?>\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x.dtd\">\n<svg/>");
    assert_eq!(e.kind, SvgErrorKind::DocType);
    assert_eq!((e.line, e.column), (2, 1));
    assert!(
        e.to_string()
            .starts_with("line 2, column 1: DOCTYPE is not allowed in a siteplan")
    );
}

#[test]
fn entity_attacks_are_refused() {
    let laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n\
                  <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n]>\n\
                  <svg><text>&lol2;</text></svg>";
    assert_eq!(err(laughs.as_bytes()).kind, SvgErrorKind::DocType);
    let xxe = "<!DOCTYPE svg [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><svg>&xxe;</svg>";
    assert_eq!(err(xxe.as_bytes()).kind, SvgErrorKind::DocType);
    // Without a DOCTYPE an entity reference is unknown: refused, never expanded.
    let e = err(b"<svg>\n<text>&xxe;</text></svg>");
    assert_eq!(e.kind, SvgErrorKind::UnknownEntity("xxe".into()));
    assert_eq!((e.line, e.column), (2, 7));
    let e = err(b"<svg><rect id=\"a&foo;\"/></svg>");
    assert_eq!(e.kind, SvgErrorKind::UnknownEntity("foo".into()));
    assert_eq!((e.line, e.column), (1, 17));
    assert_eq!(
        err(b"<svg><text>&#0;</text></svg>").kind,
        SvgErrorKind::InvalidCharRef("#0".into())
    );
    assert!(matches!(
        err(b"<svg><rect id=\"&#xD800;\"/></svg>").kind,
        SvgErrorKind::InvalidCharRef(_)
    ));
}

#[test]
fn malformed_xml_is_refused() {
    let e = err(b"<svg>\n<g>\n</svg>");
    assert!(matches!(e.kind, SvgErrorKind::Malformed(_)), "{e}");
    assert_eq!(e.line, 3);
    assert!(matches!(err(b"<svg><g></g>").kind, SvgErrorKind::Unclosed(ref n) if n == "svg"));
    assert!(matches!(err(b"<svg><g>").kind, SvgErrorKind::Unclosed(ref n) if n == "g"));
    assert!(matches!(
        err(b"<svg></g></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><rect a=\"1\" a=\"2\"/></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><rect a=1/></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><text>a & b</text></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><rect id=\"a & b\"/></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><!-- a -- b --></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><![CDATA[x</svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><rect").kind,
        SvgErrorKind::Malformed(_)
    ));
    // Unknown elements still have to be well-formed.
    assert!(matches!(
        err(b"<svg><script a=\"1\" a=\"1\"/></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(matches!(
        err(b"<svg><script><b></script></svg>").kind,
        SvgErrorKind::Malformed(_)
    ));
}

#[test]
fn control_characters_are_refused() {
    let e = err(b"<svg>\n<text>a\x01</text></svg>");
    assert!(
        matches!(e.kind, SvgErrorKind::Malformed(ref m) if m.contains("U+0001")),
        "{e}"
    );
    assert_eq!((e.line, e.column), (2, 8));
    let long = format!("<svg>{}<rect id=\"a\x00\"/></svg>", " ".repeat(100));
    assert!(matches!(
        err(long.as_bytes()).kind,
        SvgErrorKind::Malformed(_)
    ));
    assert!(plan("<svg>\t\r\n<text>\u{7f}\u{85}</text></svg>").element_count() == 2);
}

#[test]
fn root_must_be_svg() {
    assert_eq!(
        err(b"<html><svg/></html>").kind,
        SvgErrorKind::RootNotSvg("html".into())
    );
    assert_eq!(err(b"<SVG/>").kind, SvgErrorKind::RootNotSvg("SVG".into()));
    assert_eq!(
        err(b"<?xml version=\"1.0\"?><!-- c -->").kind,
        SvgErrorKind::NoRoot
    );
    assert_eq!(err(b"<svg/><svg/>").kind, SvgErrorKind::ContentAfterRoot);
    assert_eq!(err(b"<svg/>trailing").kind, SvgErrorKind::ContentAfterRoot);
    assert_eq!(err(b"lead<svg/>").kind, SvgErrorKind::TextBeforeRoot);
    assert!(plan("<?xml version=\"1.0\"?>\n<!-- c -->\n<svg/>\n<!-- c -->\n").element_count() == 1);
}

#[test]
fn depth_limit_is_256() {
    let nest = |n: usize| {
        let mut s = String::from("<svg>");
        for _ in 1..n {
            s.push_str("<g>");
        }
        for _ in 1..n {
            s.push_str("</g>");
        }
        s.push_str("</svg>");
        s
    };
    assert_eq!(plan(&nest(256)).element_count(), 256);
    let e = err(nest(257).as_bytes());
    assert_eq!(e.kind, SvgErrorKind::TooDeep(256));
    // Empty elements count too.
    let mut s = nest(256);
    s.insert_str(5 + 255 * 3, "<rect/>");
    assert_eq!(err(s.as_bytes()).kind, SvgErrorKind::TooDeep(256));
    // Dropped subtrees count too.
    let s = nest(257)
        .replacen("<g>", "<foreignObject>", 1)
        .replacen("</g>", "</foreignObject>", 1);
    assert!(matches!(
        err(s.as_bytes()).kind,
        SvgErrorKind::TooDeep(256) | SvgErrorKind::Malformed(_)
    ));
}

#[test]
fn element_limit() {
    let limits = Limits {
        max_depth: 256,
        max_elements: 10,
    };
    let ok = format!("<svg>{}</svg>", "<rect/>".repeat(9));
    assert!(Siteplan::parse(ok.as_bytes(), &limits).is_ok());
    let over = format!("<svg>{}</svg>", "<script/>".repeat(10));
    let e = Siteplan::parse(over.as_bytes(), &limits).unwrap_err();
    assert_eq!(e.kind, SvgErrorKind::TooManyElements(10));
    assert_eq!(Limits::default().max_elements, 500_000);
    assert_eq!(Limits::default().max_depth, 256);
}

// ---- sanitization -----------------------------------------------------------------------

fn forbidden(out: &str) -> Option<&'static str> {
    // The namespace declarations the sanitizer writes itself are the only URLs allowed.
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
        "javascript",
        "foreignobject",
        "onload",
        "onclick",
        "onerror",
        "onmouseover",
        "<!doctype",
        "<!entity",
        "<?",
        "<!--",
        "<![cdata[",
        "http:",
        "https:",
        "//evil",
        "@import",
        "<style",
        "data:text",
        "svg+xml;",
    ]
    .into_iter()
    .find(|f| lower.contains(f))
}

#[test]
fn scripts_and_foreign_objects_are_dropped() {
    for s in [
        "<svg><script>alert(1)</script><rect/></svg>",
        "<svg><SCRIPT>alert(1)</SCRIPT><rect/></svg>",
        "<svg><ScRiPt type=\"text/javascript\"><![CDATA[alert(1)]]></ScRiPt><rect/></svg>",
        "<svg xmlns:svg=\"http://www.w3.org/2000/svg\"><svg:script>alert(1)</svg:script><rect/></svg>",
        "<svg><foreignObject><html xmlns=\"http://www.w3.org/1999/xhtml\"><body onload=\"alert(1)\"><script>alert(1)</script></body></html></foreignObject><rect/></svg>",
        "<svg><g><script href=\"http://evil.example/x.js\"/></g><rect/></svg>",
    ] {
        let out = san(s);
        assert_eq!(forbidden(&out), None, "{out}");
        assert!(out.contains("<rect/>"), "{out}");
    }
}

#[test]
fn event_handlers_are_dropped() {
    let out = san(
        "<svg onload=\"alert(1)\" ONLOAD=\"x\"><rect onclick=\"alert(1)\" OnMouseOver=\"x\" width=\"1\"/></svg>",
    );
    assert_eq!(forbidden(&out), None, "{out}");
    assert!(out.contains("<rect width=\"1\"/>"), "{out}");
}

#[test]
fn hrefs_are_limited_to_fragments_and_raster_data() {
    let out = san(concat!(
        "<svg xmlns:xlink=\"http://www.w3.org/1999/xlink\">",
        "<a href=\"javascript:alert(1)\"><rect/></a>",
        "<a xlink:href=\"javascript&#9;:alert(1)\"><rect/></a>",
        "<a href=\"JaVaScRiPt:alert(1)\"><rect/></a>",
        "<a href=\" &#x6A;avascript:alert(1)\"><rect/></a>",
        "<a XLinK:HrEf=\"javascript:alert(1)\"><rect/></a>",
        "<use href=\"http://evil.example/sprite.svg#a\"/>",
        "<use xlink:href=\"//evil.example/sprite.svg#a\"/>",
        "<image href=\"data:image/svg+xml;base64,PHN2Zz4=\"/>",
        "<image href=\"https://evil.example/p.png\"/>",
        "<use href=\"#unit\"/>",
        "<use xlink:href=\"#unit2\"/>",
        "<image href=\"data:image/png;base64,iVBORw0KGgo=\"/>",
        "</svg>"
    ));
    assert_eq!(forbidden(&out), None, "{out}");
    // v1.1: a `use` copy gets a generated id for manual mapping.
    assert!(out.contains("<use href=\"#unit\" id=\"kv-"), "{out}");
    assert!(out.contains("<use xlink:href=\"#unit2\" id=\"kv-"), "{out}");
    assert!(out.contains("data:image/png;base64"), "{out}");
    assert_eq!(out.matches("<a>").count(), 5, "{out}");
    assert!(out.contains("xmlns:xlink=\"http://www.w3.org/1999/xlink\""));
}

#[test]
fn animations_targeting_href_or_handlers_are_dropped() {
    let out = san(concat!(
        "<svg><a href=\"#x\"><rect/>",
        "<animate attributeName=\"xlink:href\" values=\"javascript:alert(1)\"/>",
        "<animate attributeName=\"href\" values=\"javascript:alert(1)\"/>",
        "<set attributeName=\"HREF\" to=\"javascript:alert(1)\"/>",
        "<animateTransform attributeName=\" onclick \" values=\"alert(1)\"/>",
        "<set attributeName=\"style\" to=\"background:url(http://x)\"/>",
        "<set attributeName=\"fill\" to=\"url(http://evil.example/p#x)\"/>",
        "<animate attributeName=\"opacity\" values=\"0;1\" dur=\"1s\"/>",
        "</a></svg>"
    ));
    assert_eq!(forbidden(&out), None, "{out}");
    assert!(
        out.contains("<animate attributeName=\"opacity\" values=\"0;1\" dur=\"1s\"/>"),
        "{out}"
    );
    assert!(out.contains("<set attributeName=\"fill\"/>"), "{out}");
    assert_eq!(out.matches("<animate").count(), 1, "{out}");
}

#[test]
fn external_references_in_css_are_dropped() {
    let out = san(concat!(
        "<svg>",
        "<rect fill=\"url('http://evil.example/p')\" stroke=\"url(#grad)\"/>",
        "<rect style=\"background:url(http://x);fill:red\"/>",
        "<rect style=\"fill:url(//evil.example/x)\"/>",
        "<rect filter=\"url(https://evil.example/f.svg#f)\" mask=\"URL(http://x)\"/>",
        "<rect style=\"fill:u\\72l(http://x)\"/>",
        "<rect style=\"behavior:url(#x.htc);-moz-binding:url(#y)\"/>",
        "<style>@import url(http://evil.example/x.css); .a{fill:url(http://evil.example/x)}</style>",
        "</svg>"
    ));
    assert_eq!(forbidden(&out), None, "{out}");
    assert!(out.contains("<rect stroke=\"url(#grad)\"/>"), "{out}");
    assert!(out.contains("<rect style=\"fill:red\"/>"), "{out}");
    assert!(!out.contains("behavior"), "{out}");
}

#[test]
fn processing_instructions_comments_and_cdata_are_dropped() {
    let out = san(concat!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
        "<?xml-stylesheet type=\"text/css\" href=\"http://evil.example/x.css\"?>\n",
        "<!-- Generator: Adobe Illustrator -->\n",
        "<svg><!-- comment --><text>a<![CDATA[<b>]]>b<?php echo 1 ?></text></svg>"
    ));
    assert_eq!(forbidden(&out), None, "{out}");
    assert!(out.contains("<text>ab</text>"), "{out}");
    assert!(out.starts_with("<svg"), "{out}");
}

#[test]
fn unknown_elements_and_attributes_are_dropped_but_names_kept() {
    let out = san(concat!(
        "<svg xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\" ",
        "xmlns:sodipodi=\"http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd\" sodipodi:docname=\"x.svg\">",
        "<sodipodi:namedview pagecolor=\"#fff\"/><metadata><rdf:RDF/></metadata>",
        "<g inkscape:groupmode=\"layer\" inkscape:label=\"Kavling\" id=\"layer1\" xml:space=\"preserve\">",
        "<path id=\"path1234\" inkscape:label=\"A12\" data-name=\"A12\" data-status=\"x\" d=\"M0 0h1\" ",
        "sodipodi:nodetypes=\"cc\" style=\"fill:#fff\" xml:base=\"http://evil.example/\" unknown=\"1\"/>",
        "</g></svg>"
    ));
    assert_eq!(forbidden(&out), None, "{out}");
    assert!(!out.contains("sodipodi"), "{out}");
    assert!(!out.contains("metadata"), "{out}");
    assert!(!out.contains("unknown"), "{out}");
    assert!(
        out.contains("xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\""),
        "{out}"
    );
    assert!(
        out.contains("inkscape:label=\"A12\" data-name=\"A12\" data-status=\"x\""),
        "{out}"
    );
    assert!(out.contains("xml:space=\"preserve\""), "{out}");
    // Kept since #21: a layer is never a lot, also when the sanitized text is parsed again.
    assert!(out.contains("<g inkscape:groupmode=\"layer\""), "{out}");
}

#[test]
fn inkscape_label_without_root_declaration_gets_one() {
    let out = san(
        "<svg><g xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\"><rect inkscape:label=\"A1\"/></g></svg>",
    );
    assert!(
        out.contains("<rect xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\" inkscape:label=\"A1\"/>"),
        "{out}"
    );
    assert_idempotent(&out);
}

#[test]
fn output_is_canonical_and_escaped() {
    let out = san(
        "<svg xmlns=\"http://www.w3.org/1999/xhtml\"><text x='1' id='a\"b'>x &amp; y &#65; &lt;&gt; ></text></svg>",
    );
    assert_eq!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\
         <text x=\"1\" id=\"a&quot;b\">x &amp; y &#65; &lt;&gt; &gt;</text></svg>\n"
    );
}

#[test]
fn sanitizing_is_idempotent() {
    for s in [
        "<svg><g id=\"A1\" class=\"a\"><rect class=\"a b\" fill=\"red\" style=\"stroke:blue\"/></g>\
         <style>.a{fill:#111;stroke:#222}.b{opacity:.5}</style></svg>",
        "<svg viewBox=\"0 0 10 10\"><text>&lt;tag&gt; &amp; &#x41;</text><rect id=\"&quot;q&quot;\"/></svg>",
        "<svg><rect style=\"fill:red;background:url(http://x);;\"/></svg>",
        "<svg><a href=\"#x\"><rect/></a><![CDATA[x]]><!-- c --></svg>",
        "<svg><rect id='a\tb' d='M0\n0'/></svg>",
    ] {
        assert_idempotent(s);
    }
}

// ---- class inlining ---------------------------------------------------------------------

#[test]
fn class_rules_are_inlined_before_and_after_shapes() {
    let style = "<defs><style type=\"text/css\">\n.cls-1{fill:#c69c6d}\n.cls-1,.cls-2{stroke:#000;stroke-width:2px}\n</style></defs>";
    let shapes = "<rect class=\"cls-1\" width=\"1\"/><path class=\"cls-2\" d=\"M0 0\"/>";
    let before = san(&format!("<svg>{style}{shapes}</svg>"));
    let after = san(&format!("<svg>{shapes}{style}</svg>"));
    for out in [&before, &after] {
        assert!(!out.contains("<style"), "{out}");
        assert!(
            out.contains("<rect class=\"cls-1\" width=\"1\" fill=\"#c69c6d\" stroke=\"#000\" stroke-width=\"2px\"/>"),
            "{out}"
        );
        assert!(
            out.contains("<path class=\"cls-2\" d=\"M0 0\" stroke=\"#000\" stroke-width=\"2px\"/>"),
            "{out}"
        );
        assert_idempotent(out);
    }
}

#[test]
fn each_style_element_is_parsed_on_its_own() {
    let out =
        san("<svg><style>.a{fill:red</style><style>.b{fill:blue}</style><rect class=\"b\"/></svg>");
    assert!(out.contains("<rect class=\"b\" fill=\"blue\"/>"), "{out}");
}

#[test]
fn class_rule_beats_attribute_and_loses_to_style() {
    let out = san(concat!(
        "<svg><style>.u{fill:#111;stroke:#222;opacity:0.5}</style>",
        "<rect id=\"A1\" fill=\"#999\" class=\"u\" style=\"stroke:#333\" x=\"1\"/></svg>"
    ));
    assert!(
        out.contains("<rect id=\"A1\" class=\"u\" style=\"stroke:#333\" x=\"1\" fill=\"#111\" opacity=\"0.5\"/>"),
        "{out}"
    );
    // Later rules win for the same property; class order in the attribute does not matter.
    let out = san(
        "<svg><style>.b{fill:#bbb}.a{fill:#aaa}</style><rect class=\"a b\"/><rect class=\"b a\"/></svg>",
    );
    assert_eq!(out.matches("fill=\"#aaa\"").count(), 2, "{out}");
    // Ids recorded after patching still point at the ids.
    let p = plan(
        "<svg><rect class=\"a\" id=\"A1\"/><style>.a{fill:red}</style><rect class=\"a\" id=\"A2\"/></svg>",
    );
    let m = p.map_units(&["A1", "A2"]);
    assert_eq!(m.matched.len(), 2);
    assert!(m.unmatched_element_ids.is_empty());
}

// ---- view box ---------------------------------------------------------------------------

#[test]
fn view_box_from_attribute_or_size() {
    let vb = plan("<svg viewBox=\"0,0 1600 1000\"/>").view_box().unwrap();
    assert_eq!((vb.width, vb.height), (1600.0, 1000.0));
    let vb = plan("<svg width=\"800px\" height=\"600\"/>")
        .view_box()
        .unwrap();
    assert_eq!((vb.min_x, vb.width, vb.height), (0.0, 800.0, 600.0));
    assert!(
        plan("<svg width=\"100%\" height=\"100%\"/>")
            .view_box()
            .is_none()
    );
    assert!(plan("<svg viewBox=\"0 0 0 10\"/>").view_box().is_none());
}

// ---- id resolution ----------------------------------------------------------------------

fn matched(m: &Mapping) -> Vec<(String, String)> {
    let mut v: Vec<_> = m
        .matched
        .iter()
        .map(|u| (u.block_number.clone(), u.element_id.clone()))
        .collect();
    v.sort();
    v
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = v
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn rank_one_exact_names() {
    let p = plan(concat!(
        "<svg xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\">",
        "<rect id=\"A1\"/><rect id=\"x\" data-name=\"A2\"/><path id=\"path1234\" inkscape:label=\"A3\"/>",
        "</svg>"
    ));
    let m = p.map_units(&["A1", "A2", "A3", "A4"]);
    assert_eq!(
        matched(&m),
        pairs(&[("A1", "A1"), ("A2", "x"), ("A3", "path1234")])
    );
    assert_eq!(m.units_without_element, ["A4"]);
}

#[test]
fn rank_two_export_escapes() {
    let p = plan(concat!(
        "<svg>",
        "<rect id=\"_x31_2\"/>",    // Illustrator Save As: "12"
        "<rect id=\"A12_1_\"/>",    // Illustrator duplicate
        "<rect id=\"_91\"/>",       // Illustrator Export As leading digit
        "<rect id=\"B7_2\"/>",      // Figma duplicate
        "<rect id=\"_x31_3_1_\"/>", // escaped and duplicated: "13"
        "</svg>"
    ));
    let m = p.map_units(&["12", "A12", "91", "B7", "13"]);
    assert_eq!(
        matched(&m),
        pairs(&[
            ("12", "_x31_2"),
            ("A12", "A12_1_"),
            ("91", "_91"),
            ("B7", "B7_2"),
            ("13", "_x31_3_1_")
        ])
    );
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn rank_three_normalised() {
    let p = plan(concat!(
        "<svg>",
        "<rect id=\"Blok A No 12\"/>",
        "<rect id=\"A-13\"/>",
        "<rect id=\"unit-A14\"/>",
        "<rect id=\"a15\"/>",
        "<rect id=\"Blok_A_No_16\" data-name=\"Blok A No 16\"/>",
        "<rect id=\"KAV.B_x5F_1\"/>",
        "</svg>"
    ));
    let m = p.map_units(&["A12", "A13", "A14", "A15", "A16", "B1"]);
    assert_eq!(m.matched.len(), 6, "{m:?}");
    assert!(m.units_without_element.is_empty());
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
}

#[test]
fn better_rank_wins_and_double_claims_warn() {
    let p = plan("<svg><rect id=\"A-12\"/><rect id=\"A12_1_\"/><rect id=\"A12\"/></svg>");
    let m = p.map_units(&["A12"]);
    // v1.1: `A12_1_` is Illustrator's duplicate of the layer `A12` (the unit drawn twice), so it
    // ranks with the exact name and both match; the normalised `A-12` loses.
    assert_eq!(matched(&m), pairs(&[("A12", "A12"), ("A12", "A12_1_")]));
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(
        m.warnings[0].contains("claimed by 3 elements"),
        "{:?}",
        m.warnings
    );
    // v1.1: the same rank (Illustrator duplicates of one layer name) is a unit drawn as several
    // shapes: all of them match, and a warning names them.
    let m = plan("<svg><rect id=\"A12_1_\"/><rect id=\"A12_2_\"/></svg>").map_units(&["A12"]);
    assert_eq!(matched(&m), pairs(&[("A12", "A12_1_"), ("A12", "A12_2_")]));
    assert_eq!(m.warnings.len(), 1);
    assert!(
        m.warnings[0].contains("drawn as 2 elements"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn outermost_group_wins_silently() {
    let p = plan("<svg><g id=\"Blok A No 12\"><path id=\"A12\"/><text>A12</text></g></svg>");
    let m = p.map_units(&["A12"]);
    assert_eq!(matched(&m), pairs(&[("A12", "Blok A No 12")]));
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert!(m.unmatched_element_ids.is_empty());
}

#[test]
fn id_and_data_name_disagreement_warns() {
    let p =
        plan("<svg><rect id=\"_91\" data-name=\"81\"/><rect id=\"A1-2\" data-name=\"A1\"/></svg>");
    let m = p.map_units(&["81", "91", "A1"]);
    // data-name is the designer's layer name: it is used first.
    assert_eq!(matched(&m), pairs(&[("81", "_91"), ("A1", "A1-2")]));
    assert_eq!(m.units_without_element, ["91"]);
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("\"_91\"") && m.warnings[0].contains("\"81\""));
}

#[test]
fn unmatched_ids_and_lookalikes() {
    let p = plan(concat!(
        "<svg xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\">",
        "<g id=\"BLOK_A\"><rect id=\"A1\"/><rect id=\"E5\"/></g>",
        "<rect id=\"JALAN\"/><path id=\"path99\"/><path id=\"path98\" inkscape:label=\"Taman\"/>",
        "<g id=\"A2\"><rect id=\"inner\"/></g>",
        "<text id=\"A9\">A9</text>",
        "<defs><rect id=\"A3\"/></defs>",
        "</svg>"
    ));
    let m = p.map_units(&["A1", "A2", "A3", "A9"]);
    assert_eq!(matched(&m), pairs(&[("A1", "A1"), ("A2", "A2")]));
    // BLOK_A contains a unit, inner is part of one, path99 is automatic, text is a label.
    assert_eq!(m.unmatched_element_ids, ["E5", "JALAN", "path98"]);
    assert_eq!(m.units_without_element, ["A3", "A9"]);
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("\"E5\""));
}

#[test]
fn colliding_units_are_reported() {
    let m = plan("<svg><rect id=\"a 12\"/><rect id=\"A-12\"/></svg>").map_units(&["A-12", "A12"]);
    assert_eq!(matched(&m), pairs(&[("A-12", "A-12")]));
    assert!(
        m.warnings.iter().any(|w| w.contains("look the same")),
        "{:?}",
        m.warnings
    );
}

#[test]
fn mapping_survives_reparse() {
    let src = "<svg><style>.c{fill:red}</style><g id=\"_x31_2\" class=\"c\"><rect class=\"c\"/></g><rect id=\"A1_1_\" class=\"c\"/></svg>";
    let a = plan(src);
    let b = plan(a.sanitized());
    let units = ["12", "A1", "Z9"];
    assert_eq!(a.map_units(&units), b.map_units(&units));
}

// ---- colouring --------------------------------------------------------------------------

#[test]
fn render_paints_matched_elements_and_their_shapes() {
    // v1.1: only the unit's lot shapes are painted (the group element, its text, its open
    // path and line, its `fill="none"` outline and its label group keep their paint).
    let p = plan(concat!(
        "<svg><style>.lot{fill:#fff;stroke:#000}</style>",
        "<g id=\"A1\"><path class=\"lot\" d=\"M0 0h10v10z\"/><rect fill=\"#eee\" style=\"opacity:.9;fill:#ddd\"/>",
        "<text fill=\"#333\">A1</text><line x2=\"1\"/><path d=\"M0 0h1\"/>",
        "<rect width=\"9\" height=\"9\" fill=\"none\" stroke=\"#000\"/>",
        "<g id=\"label\"><path d=\"M1 1h1v1z\"/><path d=\"M3 1h1v1z\"/></g></g>",
        "<rect id=\"A2\" class=\"lot\"/><rect id=\"road\" fill=\"#bbb\"/></svg>"
    ));
    let m = p.map_units(&["A1", "A2"]);
    let t = p.color_template(&m);
    let out = t.render(|bn| match bn {
        "A1" => Some("#ef4444"),
        _ => None,
    });
    assert!(out.contains("<g id=\"A1\">"), "{out}");
    assert!(
        out.contains("<path fill=\"#ef4444\" style=\"fill:#ef4444\" class=\"lot\" d=\"M0 0h10v10z\" stroke=\"#000\" id=\"kv-"),
        "{out}"
    );
    assert!(
        out.contains("<rect fill=\"#ef4444\" style=\"fill:#ef4444;opacity:.9\"/>"),
        "{out}"
    );
    assert_eq!(out.matches("#ef4444").count(), 4, "{out}");
    assert!(out.contains("<text fill=\"#333\">A1</text>"), "{out}");
    assert!(
        out.contains("<line x2=\"1\"/><path d=\"M0 0h1\"/>"),
        "{out}"
    );
    assert!(
        out.contains("fill=\"none\" stroke=\"#000\" id=\"kv-"),
        "{out}"
    );
    assert!(
        out.contains("<g id=\"label\"><path d=\"M1 1h1v1z\" id=\"kv-"),
        "{out}"
    );
    // A2 has no colour: unchanged (attribute order aside).
    assert!(
        out.contains("<rect fill=\"#fff\" id=\"A2\" class=\"lot\" stroke=\"#000\"/>"),
        "{out}"
    );
    assert!(out.contains("<rect id=\"road\" fill=\"#bbb\"/>"), "{out}");
    // The render is itself a valid siteplan.
    let again = plan(&out);
    assert_eq!(again.element_count(), p.element_count());
    // Without any colour the render equals the sanitized text up to attribute order.
    let plain = t.render(|_| None);
    assert_eq!(plain.len(), p.sanitized().len());
}

#[test]
fn render_refuses_unsafe_colours_and_paints_the_given_colour() {
    let p = plan("<svg><rect id=\"A1\" fill=\"#fff\"/></svg>");
    let t = p.color_template(&p.map_units(&["A1"]));
    let out = t.render(|_| Some("red\" onload=\"alert(1)"));
    assert!(!out.contains("onload"), "{out}");
    let out = t.render(|_| Some("#9ca3af"));
    assert!(out.contains("fill=\"#9ca3af\""), "{out}");
    let mut buf = String::from("stale");
    t.render_into(&mut buf, |_| Some("#9ca3af"));
    assert_eq!(buf, out);
}

#[test]
fn types_are_thread_safe() {
    fn check<T: Send + Sync + Clone>() {}
    check::<ColorTemplate>();
    check::<Mapping>();
    check::<Siteplan>();
}

// ---- geometry ---------------------------------------------------------------------------

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn geometry_follows_ancestor_transforms() {
    let p = plan(concat!(
        "<svg viewBox=\"0 0 100 100\" transform=\"scale(9)\">",
        "<g transform=\"translate(10,20)\"><g id=\"A1\" transform=\"scale(2)\">",
        "<rect x=\"1\" y=\"1\" width=\"4\" height=\"3\"/><circle cx=\"10\" cy=\"10\" r=\"1\"/>",
        "<text>A1</text></g></g>",
        "<polygon id=\"A2\" points=\"0,0 10,0 5,8\" transform=\"rotate(90 0 0)\"/>",
        "<ellipse id=\"A3\" cx=\"50\" cy=\"50\" rx=\"10\" ry=\"5\"/>",
        "<line id=\"A4\" x1=\"1\" y1=\"2\" x2=\"3\" y2=\"-4\"/>",
        "<path id=\"A5\" d=\"M0,0 C0,100 100,100 100,0\"/>",
        "<g id=\"A6\"><text>only text</text></g>",
        "<svg x=\"5\" y=\"6\"><rect id=\"A7\" width=\"1\" height=\"1\"/></svg>",
        "</svg>"
    ));
    let m = p.map_units(&["A1", "A2", "A3", "A4", "A5", "A6", "A7"]);
    let g = p.geometry(&m);
    let by = |bn: &str| g.iter().find(|u| u.block_number == bn).map(|u| u.bbox);
    let b = by("A1").unwrap();
    assert!(
        near(b.x, 12.0) && near(b.y, 22.0) && near(b.width, 20.0) && near(b.height, 20.0),
        "{b:?}"
    );
    let b = by("A2").unwrap();
    assert!(
        near(b.x, -8.0) && near(b.y, 0.0) && near(b.width, 8.0) && near(b.height, 10.0),
        "{b:?}"
    );
    let b = by("A3").unwrap();
    assert!(
        near(b.x, 40.0) && near(b.y, 45.0) && near(b.width, 20.0) && near(b.height, 10.0),
        "{b:?}"
    );
    let b = by("A4").unwrap();
    assert!(
        near(b.x, 1.0) && near(b.y, -4.0) && near(b.width, 2.0) && near(b.height, 6.0),
        "{b:?}"
    );
    let b = by("A5").unwrap();
    assert!(near(b.height, 75.0), "{b:?}");
    assert!(by("A6").is_none());
    let b = by("A7").unwrap();
    assert!(near(b.x, 5.0) && near(b.y, 6.0), "{b:?}");
    let c = g.iter().find(|u| u.block_number == "A3").unwrap().center;
    assert!(near(c.x, 50.0) && near(c.y, 50.0));
}

// ---- the demo fixture -------------------------------------------------------------------

#[test]
fn demo_fixture_maps_all_120_units() {
    let src = include_str!("../../../fixtures/siteplans/demo-illustrator.svg");
    let p = plan(src);
    let units: Vec<String> = ["A", "B", "C", "D"]
        .iter()
        .flat_map(|b| (1..=30).map(move |n| format!("{b}{n}")))
        .collect();
    let refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let m = p.map_units(&refs);
    assert_eq!(m.matched.len(), 120, "{:?}", m.units_without_element);
    assert!(m.units_without_element.is_empty());
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(
        m.unmatched_element_ids,
        [
            "BACKGROUND",
            "JALAN",
            "JALAN_UTAMA",
            "JALAN_TENGAH",
            "TAMAN",
            "LABEL"
        ]
    );
    let vb = p.view_box().unwrap();
    assert_eq!((vb.width, vb.height), (1600.0, 1000.0));
    assert!(!p.sanitized().contains("<style"));
    assert!(p.sanitized().contains("fill=\"#C69C6D\""));
    let g = p.geometry(&m);
    assert_eq!(g.len(), 120);
    for u in &g {
        assert!(
            u.bbox.x >= 0.0 && u.bbox.x + u.bbox.width <= 1600.0,
            "{u:?}"
        );
        assert!(u.bbox.width > 40.0 && u.bbox.height > 150.0, "{u:?}");
    }
    assert_idempotent(src);
}

// ---- regressions found by the property test ---------------------------------------------

#[test]
fn root_label_declares_its_namespace_on_the_root() {
    let out = san("<svg inkscape:label=\"Plan\" height=\"1\"/>");
    assert!(
        out.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\" inkscape:label=\"Plan\""),
        "{out}"
    );
    assert_idempotent(&out);
}

#[test]
fn attribute_name_only_on_animations_and_geometry_is_css_checked() {
    let out = san(
        "<svg><g attributeName=\"xlink:href\" width=\"url(http://x)\" transform=\"translate(1 2)\"/></svg>",
    );
    assert!(out.contains("<g transform=\"translate(1 2)\"/>"), "{out}");
}

#[test]
fn class_patching_in_place_and_shrinking() {
    // Growing (in place) and shrinking (rebuilt) outputs keep ids and spans right.
    for (fill, rule) in [
        ("#999", "#111111111111111111"),
        ("#99999999999999999999999999", "red"),
    ] {
        let src = format!(
            "<svg><rect id=\"A1\" fill=\"{fill}\" class=\"a\"/><g id=\"A2\"><rect class=\"a\" fill=\"{fill}\"/></g>\
             <style>.a{{fill:{rule}}}</style><rect id=\"A3\" class=\"a\"/></svg>"
        );
        let p = plan(&src);
        let out = p.sanitized();
        assert!(
            out.contains(&format!("<rect id=\"A1\" class=\"a\" fill=\"{rule}\"/>")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "<g id=\"A2\"><rect class=\"a\" fill=\"{rule}\"/></g>"
            )),
            "{out}"
        );
        let m = p.map_units(&["A1", "A2", "A3"]);
        assert_eq!(m.matched.len(), 3);
        assert!(m.unmatched_element_ids.is_empty());
        let r = p.color_template(&m).render(|_| Some("#22c55e"));
        // v1.1: A2's lot rect is painted, the group element itself is not.
        assert_eq!(r.matches("fill=\"#22c55e\"").count(), 3, "{r}");
        assert_idempotent(&src);
    }
}

#[test]
fn quoted_angle_brackets_stay_inside_values() {
    let out = san("<svg><text id=\"a>b\" data-x='c\"d'>x</text><rect id=\"e<f\"/></svg>");
    assert!(
        out.contains("<text id=\"a&gt;b\" data-x=\"c&quot;d\">x</text>"),
        "{out}"
    );
    assert!(out.contains("<rect id=\"e&lt;f\"/>"), "{out}");
    assert_idempotent(&out);
    let e = err(b"<svg>\n  <rect x=\"1\"y=\"2\"/></svg>");
    assert!(matches!(e.kind, SvgErrorKind::Malformed(_)));
    assert_eq!((e.line, e.column), (2, 14));
}

#[test]
fn warnings_are_capped() {
    let body: String = (0..300).map(|i| format!("<rect id=\"E{i}\"/>")).collect();
    let p = plan(&format!("<svg>{body}</svg>"));
    let m = p.map_units(&["A1"]);
    assert_eq!(m.warnings.len(), 101);
    assert_eq!(m.warnings[100], "... and 200 more warnings");
    assert_eq!(m.unmatched_element_ids.len(), 300);
}

/// The start tag of the element with this id in `out`.
fn tag_of<'o>(out: &'o str, id: &str) -> &'o str {
    let at = out.find(&format!("id=\"{id}\"")).unwrap();
    let start = out[..at].rfind('<').unwrap();
    let end = start + out[start..].find('>').unwrap();
    &out[start..=end]
}

#[test]
fn class_rules_streamed_and_patched_agree_with_the_cascade() {
    let src = concat!(
        "<svg><rect id=\"A0\" class=\"a\" fill=\"#000\"/>",
        "<style>.a{fill:#111}.b{stroke:#222}</style>",
        "<rect fill=\"#999\" id=\"A1\" class=\"a b\" stroke=\"#888\" data-name=\"Blok A No 1\"/>",
        "<rect id=\"A2\" class=\"b\" style=\"stroke:#777\"/>",
        "<style>.a{fill:#333}.b{opacity:0.5}</style>",
        "<rect id=\"A3\" class=\"a\" fill=\"#555\"/><rect id=\"A4\" class=\"b a\"/></svg>"
    );
    let p = plan(src);
    let out = p.sanitized();
    let a0 = tag_of(out, "A0");
    assert!(a0.contains("fill=\"#333\"") && !a0.contains("#000"), "{a0}");
    let a1 = tag_of(out, "A1");
    assert!(
        a1.contains("fill=\"#333\"") && a1.contains("stroke=\"#222\""),
        "{a1}"
    );
    assert!(
        a1.contains("opacity=\"0.5\"") && a1.contains("data-name=\"Blok A No 1\""),
        "{a1}"
    );
    assert!(
        !a1.contains("#999") && !a1.contains("#888") && !a1.contains("#111"),
        "{a1}"
    );
    let a2 = tag_of(out, "A2");
    assert!(
        a2.contains("style=\"stroke:#777\"") && !a2.contains("#222"),
        "{a2}"
    );
    assert!(a2.contains("opacity=\"0.5\""), "{a2}");
    let a3 = tag_of(out, "A3");
    assert!(a3.contains("fill=\"#333\"") && !a3.contains("#555"), "{a3}");
    let a4 = tag_of(out, "A4");
    assert!(
        a4.contains("fill=\"#333\"") && a4.contains("stroke=\"#222\""),
        "{a4}"
    );
    // Names were tracked through the in-tag edits.
    let m = p.map_units(&["A0", "A1", "A2", "A3", "A4"]);
    assert_eq!(m.matched.len(), 5);
    assert!(
        m.warnings.iter().all(|w| !w.contains("disagrees")),
        "{:?}",
        m.warnings
    );
    let g = p.color_template(&m).render(|_| Some("#22c55e"));
    assert_eq!(g.matches("fill=\"#22c55e\"").count(), 5, "{g}");
    assert_idempotent(src);
}

#[test]
fn reference_scan_window_may_end_inside_a_character() {
    // Found by the fuzzer: a bare `&` followed by multi-byte characters past the scan window.
    let e =
        err("<svg><rect id=\"&ltxxxxxxxxxxxxxxxxxxxxxxxxxxx\u{feff}\u{feff}\"/></svg>".as_bytes());
    assert!(matches!(e.kind, SvgErrorKind::Malformed(_)), "{e}");
    for pad in 0..40 {
        let s = format!(
            "<svg><text id=\"&{}\u{e9}\u{20ac}\u{1f600};\"/></svg>",
            "x".repeat(pad)
        );
        let _ = Siteplan::parse(s.as_bytes(), &Limits::default());
    }
}

// ---- v1.1: sources, generated ids, text labels, manual mappings, outlines -----------------

fn sources(m: &Mapping) -> Vec<(String, String, &'static str)> {
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

#[test]
fn match_sources_name_where_the_match_came_from() {
    let p = plan(concat!(
        "<svg xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\">",
        "<rect id=\"A1\" width=\"5\" height=\"5\"/>",
        "<rect id=\"x1\" data-name=\"A2\" width=\"5\" height=\"5\"/>",
        "<rect id=\"rect77\" inkscape:label=\"Blok A No 3\" width=\"5\" height=\"5\"/>",
        "<g id=\"g9\"><title> A4 </title><rect x=\"20\" width=\"5\" height=\"5\"/></g>",
        "<rect id=\"_x35_\" x=\"30\" width=\"5\" height=\"5\"/>",
        "<rect id=\"lot6\" x=\"40\" width=\"10\" height=\"10\"/><text x=\"42\" y=\"6\">A6</text>",
        "</svg>"
    ));
    let m = p.map_units(&["A1", "A2", "A3", "A4", "5", "A6"]);
    assert_eq!(
        sources(&m),
        [
            ("5".into(), "_x35_".into(), "id"),
            ("A1".into(), "A1".into(), "id"),
            ("A2".into(), "x1".into(), "label"),
            ("A3".into(), "rect77".into(), "label"),
            ("A4".into(), "g9".into(), "label"),
            ("A6".into(), "lot6".into(), "text"),
        ]
    );
    assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("\"x1\" has data-name \"A2\""));
}

#[test]
fn id_less_shapes_get_stable_generated_ids() {
    let src = concat!(
        "<svg><defs><rect id=\"d\" width=\"1\" height=\"1\"/><rect width=\"2\" height=\"2\"/></defs>",
        "<rect width=\"3\" height=\"3\"/><rect width=\"3\" height=\"3\"/><circle r=\"2\"/>",
        "<path d=\"M0 0h4v4z\"/><path d=\"M0 0h4\"/><polyline points=\"0,0 1,0 1,1 0,0\"/>",
        "<polyline points=\"0,0 1,0 1,1\"/><rect width=\"0\" height=\"3\"/><use href=\"#d\"/>",
        "<text><tspan>t</tspan></text><g><ellipse rx=\"1\" ry=\"2\"/></g></svg>"
    );
    let a = plan(src);
    let out = a.sanitized();
    assert_eq!(out.matches(" id=\"kv-").count(), 7, "{out}");
    let at = out.find("id=\"kv-").unwrap() + 4;
    let id = &out[at..at + 11];
    assert!(out.contains(&format!("id=\"{id}-2\"")), "{out}");
    // Not inside defs, not on open paths or polylines, not on degenerate rects or text.
    assert!(
        out.contains(
            "<defs><rect id=\"d\" width=\"1\" height=\"1\"/><rect width=\"2\" height=\"2\"/></defs>"
        ),
        "{out}"
    );
    assert!(out.contains("<path d=\"M0 0h4\"/>"), "{out}");
    assert!(out.contains("<polyline points=\"0,0 1,0 1,1\"/>"), "{out}");
    assert!(out.contains("<rect width=\"0\" height=\"3\"/>"), "{out}");
    assert!(out.contains("<text><tspan>t</tspan></text>"), "{out}");
    // Same input, same ids; an edit elsewhere leaves them alone; sanitizing again changes nothing.
    assert_eq!(plan(src).sanitized(), out);
    let edited = plan(&src.replace("<circle r=\"2\"/>", "<circle r=\"5\"/>"));
    assert!(edited.sanitized().contains(&format!("id=\"{id}\"")));
    assert_idempotent(src);
    assert!(a.has_element(id));
    assert!(a.has_element(&format!("{id}-2")));
    assert!(!a.has_element("d"), "inside defs: not mappable");
    assert!(!a.has_element("kv-00000000"));
    // Generated ids name nothing: not matched, not reported as unmatched element ids.
    let m = a.map_units(&["A1"]);
    assert!(m.unmatched_element_ids.is_empty(), "{m:?}");
    assert_eq!(m.unmatched_shape_ids.len(), 7, "{m:?}");
}

#[test]
fn text_labels_map_the_innermost_shape() {
    let p = plan(concat!(
        "<svg viewBox=\"0 0 1000 1000\">",
        // A background and a block outline under the lots: the innermost shape takes the label.
        "<rect width=\"1000\" height=\"1000\" fill=\"#eee\"/>",
        "<rect x=\"10\" y=\"10\" width=\"500\" height=\"200\" fill=\"#ddd\"/>",
        "<g transform=\"translate(20 20)\">",
        "<path id=\"p1\" d=\"M0 0h50v80h-50z\" fill=\"#fff\"/>",
        "<path id=\"p2\" d=\"M60 0h50v80h-50z\" fill=\"#fff\"/>",
        "<circle id=\"c3\" cx=\"145\" cy=\"40\" r=\"25\" fill=\"#fff\"/>",
        "</g>",
        "<text x=\"30\" y=\"60\">A-1</text>",
        "<text transform=\"translate(80 60)\"><tspan x=\"5\" y=\"0\">Blok A</tspan> <tspan>No 2</tspan></text>",
        "<g transform=\"scale(2)\"><text x=\"82.5\" y=\"30\">A03</text></g>",
        "</svg>"
    ));
    let m = p.map_units(&["A1", "A2", "A3"]);
    assert_eq!(
        sources(&m),
        [
            ("A1".into(), "p1".into(), "text"),
            ("A2".into(), "p2".into(), "text"),
            ("A3".into(), "c3".into(), "text"),
        ]
    );
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m.unmatched_shape_ids.len(), 2, "{m:?}");
    // Labels are never coloured.
    let out = p.color_template(&m).render(|_| Some("#22c55e"));
    assert_eq!(out.matches("#22c55e").count(), 6, "{out}");
    assert!(out.contains("<text x=\"30\" y=\"60\">A-1</text>"), "{out}");
}

#[test]
fn text_label_ambiguities_are_warnings_not_guesses() {
    let p = plan(concat!(
        "<svg viewBox=\"0 0 400 100\">",
        // Two overlapping lots, neither inside the other: B1's label is in both.
        "<rect id=\"left\" x=\"0\" y=\"0\" width=\"60\" height=\"60\"/>",
        "<rect id=\"right\" x=\"40\" y=\"0\" width=\"60\" height=\"60\"/>",
        "<text x=\"50\" y=\"30\">B1</text>",
        // Two units' labels in one lot.
        "<rect id=\"two\" x=\"120\" y=\"0\" width=\"60\" height=\"60\"/>",
        "<text x=\"125\" y=\"20\">B2</text><text x=\"125\" y=\"40\">B3</text>",
        // One unit's label in two lots.
        "<rect id=\"first\" x=\"200\" y=\"0\" width=\"40\" height=\"40\"/>",
        "<rect id=\"second\" x=\"250\" y=\"0\" width=\"40\" height=\"40\"/>",
        "<text x=\"210\" y=\"20\">B4</text><text x=\"260\" y=\"20\">B4</text>",
        // A label that names no unit; one inside a hole (even-odd) of a ring-shaped lot.
        "<text x=\"310\" y=\"20\">E9</text>",
        "<path id=\"ring\" fill-rule=\"evenodd\" d=\"M300 50h90v45h-90z M320 60h20v20h-20z\"/>",
        "<text x=\"330\" y=\"70\">B5</text><text x=\"305\" y=\"90\">B6</text>",
        "</svg>"
    ));
    let m = p.map_units(&["B1", "B2", "B3", "B4", "B5", "B6"]);
    assert_eq!(sources(&m), [("B6".into(), "ring".into(), "text")]);
    let w = m.warnings.join("\n");
    assert!(
        w.contains("\"B1\" lies in 2 overlapping shapes (\"left\", \"right\")"),
        "{w}"
    );
    assert!(
        w.contains("shape \"two\" holds the text labels of several units (B2, B3)"),
        "{w}"
    );
    assert!(
        w.contains("unit B4's text label lies in 2 shapes (\"first\", \"second\")"),
        "{w}"
    );
    assert!(
        w.contains("text label \"E9\" looks like a block number"),
        "{w}"
    );
    assert_eq!(m.warnings.len(), 4, "{w}");
    assert_eq!(m.units_without_element, ["B1", "B2", "B3", "B4", "B5"]);
}

#[test]
fn labels_find_use_copies_and_nested_svg_viewboxes() {
    let p = plan(concat!(
        "<svg width=\"100%\" height=\"100%\" viewBox=\"0 0 200 200\">",
        "<defs><symbol id=\"lot\"><rect width=\"20\" height=\"30\"/></symbol></defs>",
        "<use href=\"#lot\" x=\"10\" y=\"10\"/>",
        "<use xlink:href=\"#lot\" transform=\"translate(50 10)\"/>",
        "<svg x=\"100\" y=\"100\" width=\"50\" height=\"50\" viewBox=\"0 0 10 10\">",
        "<rect id=\"tiny\" width=\"4\" height=\"4\"/></svg>",
        "<text x=\"15\" y=\"20\">C1</text><text x=\"55\" y=\"20\">C2</text>",
        "<text x=\"110\" y=\"110\">C3</text>",
        "</svg>"
    ));
    let m = p.map_units(&["C1", "C2", "C3"]);
    assert_eq!(m.matched.len(), 3, "{m:?}");
    assert!(m.matched.iter().all(|u| u.source == MatchSource::Text));
    assert_eq!(m.matched[2].element_id, "tiny");
    let g = p.geometry(&m);
    let c2 = &g[1];
    assert!(
        near(c2.bbox.x, 50.0) && near(c2.bbox.y, 10.0) && near(c2.bbox.width, 20.0),
        "{c2:?}"
    );
    assert_eq!(c2.outline.len(), 4);
    let c3 = &g[2];
    assert!(
        near(c3.bbox.x, 100.0) && near(c3.bbox.width, 20.0),
        "{c3:?}"
    );
    // The use is painted on the `use` element.
    let out = p.color_template(&m).render(|_| Some("#22c55e"));
    assert!(
        out.contains("<use fill=\"#22c55e\" style=\"fill:#22c55e\" href=\"#lot\""),
        "{out}"
    );
}

#[test]
fn manual_mappings_override_automatic_ones() {
    let p = plan(concat!(
        "<svg><g id=\"A1\"><rect id=\"lotA1\" width=\"9\" height=\"9\"/><rect id=\"house\" width=\"3\" height=\"3\"/></g>",
        "<rect id=\"A2\" x=\"20\" width=\"9\" height=\"9\"/><rect x=\"40\" width=\"9\" height=\"9\"/>",
        "<rect id=\"A3\" x=\"60\" width=\"9\" height=\"9\"/></svg>"
    ));
    let loose = p.map_units(&["A1"]).unmatched_shape_ids;
    let free = loose.iter().find(|i| i.starts_with("kv-")).unwrap().clone();
    assert!(p.has_element(&free) && p.has_element("house") && p.has_element("A1"));
    let manual = [
        ManualMapping {
            element_id: "A2",
            block_number: "A3",
        },
        ManualMapping {
            element_id: "house",
            block_number: "A4",
        },
        ManualMapping {
            element_id: &free,
            block_number: "A2",
        },
        ManualMapping {
            element_id: "nope",
            block_number: "A1",
        },
        ManualMapping {
            element_id: "A3",
            block_number: "Z9",
        },
    ];
    let m = p.map_units_with(&["A1", "A2", "A3", "A4"], &manual);
    assert_eq!(
        sources(&m),
        [
            ("A1".into(), "A1".into(), "id"),
            ("A2".into(), free.clone(), "manual"),
            ("A3".into(), "A2".into(), "manual"),
            ("A4".into(), "house".into(), "manual"),
        ]
    );
    let w = m.warnings.join("\n");
    assert!(w.contains("\"nope\" skipped: no such element"), "{w}");
    assert!(w.contains("\"A3\" skipped: no unit \"Z9\""), "{w}");
    // The rect A3 lost its unit to the manual mapping and is free to map again.
    assert_eq!(m.unmatched_shape_ids, ["A3"]);
    // The house is split out of A1's group: it takes A4's colour, the lot keeps A1's.
    let out = p.color_template(&m).render(|bn| match bn {
        "A1" => Some("#111111"),
        "A4" => Some("#444444"),
        _ => None,
    });
    assert!(
        out.contains("<rect fill=\"#444444\" style=\"fill:#444444\" id=\"house\""),
        "{out}"
    );
    assert!(
        out.contains("<rect fill=\"#111111\" style=\"fill:#111111\" id=\"lotA1\""),
        "{out}"
    );
}

#[test]
fn unmatched_shapes_skip_strokes_labels_and_units() {
    let p = plan(concat!(
        "<svg><g id=\"A1\"><rect id=\"in\" width=\"9\" height=\"9\"/></g>",
        "<rect id=\"free\" width=\"9\" height=\"9\"/><rect id=\"stroke\" width=\"9\" height=\"9\" fill=\"none\"/>",
        "<g fill=\"none\"><circle id=\"ring\" r=\"3\"/></g>",
        "<g id=\"Labels\"><path id=\"glyph\" d=\"M0 0h1v1z\"/></g><use id=\"copy\" href=\"#free\"/>",
        "<path id=\"open\" d=\"M0 0h9\"/></svg>"
    ));
    let m = p.map_units(&["A1"]);
    assert_eq!(m.unmatched_shape_ids, ["free", "copy"]);
}

#[test]
fn outlines_are_closed_polygons_of_at_most_64_points() {
    let p = plan(concat!(
        "<svg viewBox=\"0 0 100 100\"><rect id=\"A1\" x=\"10\" y=\"10\" width=\"20\" height=\"10\" transform=\"rotate(90 20 15)\"/>",
        "<circle id=\"A2\" cx=\"50\" cy=\"50\" r=\"10\" stroke=\"#000\" stroke-width=\"2\"/>",
        "<path id=\"A3\" d=\"M0 80 C 10 60 30 60 40 80 A 20 20 0 0 1 0 80 Z\"/>",
        "<g id=\"A4\"><rect x=\"60\" y=\"0\" width=\"30\" height=\"30\" fill=\"#fff\"/><rect x=\"62\" y=\"2\" width=\"5\" height=\"5\"/></g>",
        "<rect id=\"A5_1_\" x=\"0\" y=\"0\" width=\"5\" height=\"5\"/><rect id=\"A5_2_\" x=\"90\" y=\"90\" width=\"5\" height=\"5\"/>",
        "</svg>"
    ));
    let m = p.map_units(&["A1", "A2", "A3", "A4", "A5"]);
    let g = p.geometry(&m);
    assert_eq!(g.len(), 5);
    let a1 = &g[0];
    assert_eq!(a1.outline.len(), 4);
    assert!(
        near(a1.bbox.width, 10.0) && near(a1.bbox.height, 20.0),
        "{a1:?}"
    );
    let a2 = &g[1];
    assert!(
        (24..=32).contains(&a2.outline.len()),
        "{}",
        a2.outline.len()
    );
    // The stroke (width 2) adds 1 on each side.
    assert!(near(a2.bbox.x, 39.0) && near(a2.bbox.width, 22.0), "{a2:?}");
    let a3 = &g[2];
    assert!(a3.outline.len() <= 64 && a3.outline.len() >= 8, "{a3:?}");
    assert_ne!(a3.outline.first(), a3.outline.last());
    // A group's outline is its largest lot shape.
    let a4 = &g[3];
    assert_eq!(a4.outline.len(), 4);
    assert!(
        a4.outline
            .iter()
            .any(|p| near(p.x, 90.0) && near(p.y, 30.0)),
        "{a4:?}"
    );
    // One geometry per unit: A5 drawn twice, box over both.
    let a5 = &g[4];
    assert_eq!(a5.element_ids, ["A5_1_", "A5_2_"]);
    assert!(
        near(a5.bbox.width, 95.0) && near(a5.bbox.height, 95.0),
        "{a5:?}"
    );
}

#[test]
fn uses_of_groups_of_uses_stay_cheap() {
    // Each level multiplies by 30: without a budget, 4 levels are 810,000 expansions per label.
    let uses: String = (0..30).map(|_| "<use href=\"#g\"/>").collect();
    let labels: String = (0..50)
        .map(|i| format!("<text x=\"{i}\" y=\"1\">Q{i}</text>"))
        .collect();
    let src = format!(
        "<svg viewBox=\"0 0 100 100\"><defs><g id=\"g\"><rect width=\"1\" height=\"1\"/>{uses}</g></defs>{uses}{labels}</svg>"
    );
    let p = plan(&src);
    let units: Vec<String> = (0..50).map(|i| format!("Q{i}")).collect();
    let refs: Vec<&str> = units.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let m = p.map_units(&refs);
    let _ = p.geometry(&m);
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

#[test]
fn a_title_names_an_id_less_shape() {
    let src = "<svg><rect width=\"5\" height=\"5\"><title>Kav A7</title></rect><rect x=\"9\" width=\"5\" height=\"5\"/></svg>";
    let p = plan(src);
    let m = p.map_units(&["A7"]);
    assert_eq!(m.matched.len(), 1, "{m:?}");
    assert_eq!(m.matched[0].source, MatchSource::Label);
    assert!(m.matched[0].element_id.starts_with("kv-"), "{m:?}");
    assert!(p.has_element(&m.matched[0].element_id));
    assert_eq!(m.unmatched_shape_ids.len(), 1);
    assert_idempotent(src);
}
