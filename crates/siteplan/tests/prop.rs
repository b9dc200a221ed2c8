#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: random SVG-ish input (well-formed trees full of hostile names and values, and
//! random token soup) never panics the engine, and whatever it accepts comes out clean: every
//! element and attribute of the output is re-checked here with an independent walk over
//! quick-xml events, the output re-parses to itself, and mapping, geometry and colouring run.

use proptest::prelude::*;
use quick_xml::Reader;
use quick_xml::events::Event;

use kavling_siteplan::{Limits, Siteplan};

const TAGS: &[&str] = &[
    "g",
    "rect",
    "path",
    "circle",
    "polygon",
    "text",
    "tspan",
    "a",
    "use",
    "image",
    "defs",
    "style",
    "script",
    "SCRIPT",
    "Script",
    "foreignObject",
    "foreignobject",
    "animate",
    "set",
    "animateTransform",
    "svg",
    "iframe",
    "svg:script",
    "x:g",
    "clipPath",
    "linearGradient",
    "stop",
    "feImage",
    "title",
    "metadata",
];

const ATTRS: &[&str] = &[
    "id",
    "data-name",
    "inkscape:label",
    "class",
    "style",
    "fill",
    "stroke",
    "href",
    "xlink:href",
    "XLinK:HrEf",
    "HREF",
    "onload",
    "ONLOAD",
    "onclick",
    "OnMouseOver",
    "d",
    "points",
    "transform",
    "x",
    "y",
    "width",
    "height",
    "r",
    "cx",
    "attributeName",
    "values",
    "to",
    "from",
    "xmlns",
    "xmlns:xlink",
    "xml:base",
    "xml:space",
    "data-x",
    "mask",
    "filter",
    "clip-path",
    "begin",
    "cursor",
    "src",
];

const VALUES: &[&str] = &[
    "A12",
    "_x31_2",
    "A12_1_",
    "_91",
    "Blok A No 12",
    "a-12",
    "#A1",
    "#",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java&#9;script:alert(1)",
    "&#x6A;avascript:x",
    " javascript:x",
    "data:image/png;base64,AAAA",
    "data:image/svg+xml;base64,AAAA",
    "data:text/html,x",
    "http://evil.example/x",
    "//evil.example/x",
    "url(#g)",
    "url('http://evil.example/x')",
    "URL(//evil)",
    "u\\72l(http://x)",
    "fill:red",
    "fill:url(http://x);stroke:#000",
    "background:url(http://x)",
    "@import 'x'",
    "expression(alert(1))",
    "cls-1",
    "cls-1 cls-2",
    "M0,0 C0,100 100,100 100,0 A50,50 0 1 1 0,50 z",
    "m1 2l3-4q1 1 2 2t3 3s1 1 2 2h1v1z",
    "0,0 10,0 5,8",
    "rotate(30 5 5) scale(2) skewX(10)",
    "matrix(1 0 0 1 3 4)",
    "translate(",
    "1e308",
    "-1e308",
    "NaN",
    "&amp;",
    "&lt;&gt;&quot;&apos;",
    "a\"b",
    "a'b",
    "<",
    ">",
    "&",
    "&foo;",
    "&#0;",
    "&#xD800;",
    "xlink:href",
    "href",
    "onclick",
    "style",
    "fill",
    "preserve",
    "http://www.w3.org/2000/svg",
    "Blok \u{c9} No 12",
    "\u{1f3e0}A12",
    "&abcdefghijklmnopqrstuvwxyz012345\u{feff}\u{e9};",
    "&#x1F3E0;",
    "\u{feff}",
    "",
    " ",
    "\t\n",
];

const STYLES: &[&str] = &[
    ".cls-1{fill:#c69c6d}",
    ".cls-1,.cls-2{stroke:#000;stroke-width:2px}",
    "@import url(http://evil.example/x.css);",
    ".cls-2{fill:url(http://evil.example/p)}",
    "rect{fill:red}",
    "@media print{.cls-1{fill:blue}}",
    "/* c */",
    ".cls-1{fill:expression(alert(1))}",
];

const TEXTS: &[&str] = &[
    "A12",
    "label",
    "alert(1)",
    "<!-- c -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<?php x ?>",
    "\u{e9}\u{20ac}\u{1f600}",
    "&xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\u{e9};",
    "&amp;",
    "&#65;",
    "&lt;script&gt;",
    "&foo;",
    ">",
    "]]>",
    " ",
    "\n",
];

#[derive(Clone, Debug)]
enum Node {
    Elem {
        tag: &'static str,
        attrs: Vec<(&'static str, &'static str)>,
        children: Vec<Node>,
    },
    Text(&'static str),
    Style(Vec<&'static str>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        prop::sample::select(TEXTS).prop_map(Node::Text),
        prop::collection::vec(prop::sample::select(STYLES), 0..4).prop_map(Node::Style),
        (
            prop::sample::select(TAGS),
            prop::collection::vec(
                (prop::sample::select(ATTRS), prop::sample::select(VALUES)),
                0..5
            )
        )
            .prop_map(|(tag, attrs)| Node::Elem {
                tag,
                attrs,
                children: vec![]
            }),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        (
            prop::sample::select(TAGS),
            prop::collection::vec(
                (prop::sample::select(ATTRS), prop::sample::select(VALUES)),
                0..5,
            ),
            prop::collection::vec(inner, 0..6),
        )
            .prop_map(|(tag, attrs, children)| Node::Elem {
                tag,
                attrs,
                children,
            })
    })
}

fn write(n: &Node, out: &mut String) {
    match n {
        Node::Text(t) => out.push_str(t),
        Node::Style(rules) => {
            out.push_str("<style>");
            for r in rules {
                out.push_str(r);
            }
            out.push_str("</style>");
        }
        Node::Elem {
            tag,
            attrs,
            children,
        } => {
            out.push('<');
            out.push_str(tag);
            let mut seen = Vec::new();
            for (k, v) in attrs {
                if seen.contains(k) {
                    continue;
                }
                seen.push(*k);
                let q = if v.contains('"') { '\'' } else { '"' };
                out.push(' ');
                out.push_str(k);
                out.push('=');
                out.push(q);
                out.push_str(v);
                out.push(q);
            }
            if children.is_empty() {
                out.push_str("/>");
            } else {
                out.push('>');
                for c in children {
                    write(c, out);
                }
                out.push_str("</");
                out.push_str(tag);
                out.push('>');
            }
        }
    }
}

fn document() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            (prop::sample::select(ATTRS), prop::sample::select(VALUES)),
            0..4,
        ),
        prop::collection::vec(node(), 0..8),
        prop::bool::ANY,
    )
        .prop_map(|(attrs, children, decl)| {
            let mut s = String::new();
            if decl {
                s.push_str("<?xml version=\"1.0\"?>\n<?xml-stylesheet href=\"http://x\"?>\n");
            }
            write(
                &Node::Elem {
                    tag: "svg",
                    attrs,
                    children,
                },
                &mut s,
            );
            s
        })
}

/// Token soup: mostly malformed on purpose.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let tokens: &[&str] = &[
        "<svg>",
        "</svg>",
        "<g>",
        "</g>",
        "<rect/>",
        "<rect id=\"A1\"/>",
        "<script>",
        "</script>",
        "<!DOCTYPE x [<!ENTITY a \"b\">]>",
        "&a;",
        "&amp;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<?x",
        "?>",
        "\"",
        "'",
        "=",
        " onload=",
        "<",
        ">",
        "/>",
        "&#",
        ";",
        "\u{feff}",
        "\u{e9}",
        "\n",
        "<style>.a{fill:red}</style>",
        "<path d=\"M0 0 A",
        "<svg xmlns=\"x\">",
        "<a href=\"",
    ];
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(tokens).prop_map(|t| t.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..4),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

/// Independent check of a sanitized document.
fn assert_clean(out: &str) {
    let mut r = Reader::from_str(out);
    r.config_mut().check_end_names = true;
    let allowed_url = |v: &str| {
        let lower = v.to_ascii_lowercase();
        let mut rest = lower.as_str();
        while let Some(p) = rest.find("url(") {
            let arg = rest[p + 4..].trim_start_matches([' ', '"', '\'']);
            if !arg.starts_with('#') {
                return false;
            }
            rest = &rest[p + 4..];
        }
        true
    };
    loop {
        match r
            .read_event()
            .unwrap_or_else(|e| panic!("output not well-formed: {e}\n{out}"))
        {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().0.to_ascii_lowercase();
                for bad in ["script", "foreignobject", "style", "iframe", "metadata"] {
                    assert!(!name.contains(bad), "element {name} in\n{out}");
                }
                assert!(!name.contains(':'), "prefixed element {name} in\n{out}");
                for a in e.attributes() {
                    let a = a.unwrap();
                    let k = a.key.0.to_ascii_lowercase();
                    let v = quick_xml::escape::unescape(&a.value).unwrap().to_string();
                    assert!(!k.starts_with("on"), "handler {k} in\n{out}");
                    assert!(k != "xml:base" && k != "src", "{k} in\n{out}");
                    if k.ends_with("href") {
                        assert!(k == "href" || k == "xlink:href", "{k} in\n{out}");
                        let c: String = v
                            .chars()
                            .filter(|c| !c.is_whitespace() && !c.is_control())
                            .collect::<String>()
                            .to_ascii_lowercase();
                        assert!(
                            c.starts_with('#') || c.starts_with("data:image/png"),
                            "href {v:?} in\n{out}"
                        );
                    }
                    if k.starts_with("xmlns") {
                        assert!(
                            [
                                "http://www.w3.org/2000/svg",
                                "http://www.w3.org/1999/xlink",
                                "http://www.inkscape.org/namespaces/inkscape"
                            ]
                            .contains(&v.as_str()),
                            "{k}={v} in\n{out}"
                        );
                    }
                    let free_text = matches!(
                        k.as_str(),
                        "d" | "points" | "id" | "data-name" | "inkscape:label" | "class"
                    ) || k.starts_with("data-")
                        || k.starts_with("aria-");
                    assert!(free_text || allowed_url(&v), "{k}={v} in\n{out}");
                    let lv = v.to_ascii_lowercase();
                    if k == "style" || k == "fill" || k == "stroke" || k == "to" || k == "values" {
                        assert!(
                            !lv.contains("@import")
                                && !lv.contains('\\')
                                && !lv.contains("expression"),
                            "{k}={v} in\n{out}"
                        );
                    }
                    if k == "attributename" {
                        assert!(
                            !lv.contains("href") && !lv.trim().starts_with("on"),
                            "{v} in\n{out}"
                        );
                    }
                }
            }
            Event::Comment(_)
            | Event::CData(_)
            | Event::PI(_)
            | Event::DocType(_)
            | Event::Decl(_) => {
                panic!("comment, CDATA, PI or DOCTYPE in\n{out}")
            }
            Event::Eof => break,
            _ => {}
        }
    }
}

fn exercise(input: &[u8]) {
    let Ok(plan) = Siteplan::parse(input, &Limits::default()) else {
        return;
    };
    let out = plan.sanitized();
    assert_clean(out);
    let again = Siteplan::parse(out.as_bytes(), &Limits::default())
        .unwrap_or_else(|e| panic!("output does not re-parse: {e}\n{out}"));
    assert_eq!(again.sanitized(), out, "not idempotent");
    let units = ["A12", "A1", "12", "91", "a-12"];
    let m = plan.map_units(&units);
    assert_eq!(m, again.map_units(&units));
    for g in plan.geometry(&m) {
        assert!(g.bbox.width >= 0.0 && g.bbox.height >= 0.0);
    }
    let rendered = plan.color_template(&m).render(|_| Some("#ef4444"));
    assert_clean(&rendered);
    let re = Siteplan::parse(rendered.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(re.element_count(), plan.element_count());
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2048),
        ..ProptestConfig::default()
    })]

    #[test]
    fn structured_documents_come_out_clean(doc in document()) {
        exercise(doc.as_bytes());
    }

    #[test]
    fn token_soup_never_panics(bytes in soup()) {
        exercise(&bytes);
    }
}
