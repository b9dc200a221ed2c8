//! Allowlists for elements and attributes, and the value checks that close URL and CSS vectors.
//!
//! Modelled on svg-hush and DOMPurify's SVG profile: anything not listed here is dropped, so
//! case tricks (`<SCRIPT>`, `XLinK:HrEf`, `ONLOAD`) never reach the output because they are
//! simply not on the list. Element and attribute names are matched exactly, as XML does.

/// What an element is, as far as the engine cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Svg,
    G,
    Path,
    Rect,
    Circle,
    Ellipse,
    Line,
    Polyline,
    Polygon,
    Use,
    Image,
    Text,
    A,
    /// Not rendered where it stands: defs, symbol, clipPath, mask, marker, pattern, gradients, filter.
    Hidden,
    /// SMIL animation elements; their target attribute is checked before they are kept.
    Anim,
    Other,
}

impl Kind {
    /// Elements a unit can be drawn with.
    pub(crate) fn is_candidate(self) -> bool {
        matches!(
            self,
            Kind::G
                | Kind::Path
                | Kind::Rect
                | Kind::Circle
                | Kind::Ellipse
                | Kind::Line
                | Kind::Polyline
                | Kind::Polygon
                | Kind::Use
        )
    }
}

/// What the sanitizer does with an element.
pub(crate) enum ElemAction {
    Keep(&'static str, Kind),
    Style,
    Drop,
}

/// Classifies an element by its exact (case-sensitive) name.
pub(crate) fn element_action(name: &str) -> ElemAction {
    use ElemAction::Keep;
    match name {
        // The common ones first: the match is a chain of comparisons.
        "path" => Keep("path", Kind::Path),
        "g" => Keep("g", Kind::G),
        "rect" => Keep("rect", Kind::Rect),
        "polygon" => Keep("polygon", Kind::Polygon),
        "text" => Keep("text", Kind::Text),
        "tspan" => Keep("tspan", Kind::Text),
        "circle" => Keep("circle", Kind::Circle),
        "line" => Keep("line", Kind::Line),
        "polyline" => Keep("polyline", Kind::Polyline),
        "ellipse" => Keep("ellipse", Kind::Ellipse),
        "use" => Keep("use", Kind::Use),
        "svg" => Keep("svg", Kind::Svg),
        "defs" => Keep("defs", Kind::Hidden),
        "style" => ElemAction::Style,
        "image" => Keep("image", Kind::Image),
        "a" => Keep("a", Kind::A),
        "title" => Keep("title", Kind::Other),
        "desc" => Keep("desc", Kind::Other),
        "textPath" => Keep("textPath", Kind::Text),
        "switch" => Keep("switch", Kind::Other),
        "view" => Keep("view", Kind::Other),
        "symbol" => Keep("symbol", Kind::Hidden),
        "clipPath" => Keep("clipPath", Kind::Hidden),
        "mask" => Keep("mask", Kind::Hidden),
        "marker" => Keep("marker", Kind::Hidden),
        "pattern" => Keep("pattern", Kind::Hidden),
        "linearGradient" => Keep("linearGradient", Kind::Hidden),
        "radialGradient" => Keep("radialGradient", Kind::Hidden),
        "stop" => Keep("stop", Kind::Other),
        "filter" => Keep("filter", Kind::Hidden),
        "animate" => Keep("animate", Kind::Anim),
        "animateTransform" => Keep("animateTransform", Kind::Anim),
        "animateMotion" => Keep("animateMotion", Kind::Anim),
        "animateColor" => Keep("animateColor", Kind::Anim),
        "set" => Keep("set", Kind::Anim),
        "mpath" => Keep("mpath", Kind::Other),
        _ => match fe_element(name) {
            Some(n) => Keep(n, Kind::Other),
            None => ElemAction::Drop,
        },
    }
}

fn fe_element(name: &str) -> Option<&'static str> {
    const FE: &[&str] = &[
        "feBlend",
        "feColorMatrix",
        "feComponentTransfer",
        "feComposite",
        "feConvolveMatrix",
        "feDiffuseLighting",
        "feDisplacementMap",
        "feDistantLight",
        "feDropShadow",
        "feFlood",
        "feFuncA",
        "feFuncB",
        "feFuncG",
        "feFuncR",
        "feGaussianBlur",
        "feImage",
        "feMerge",
        "feMergeNode",
        "feMorphology",
        "feOffset",
        "fePointLight",
        "feSpecularLighting",
        "feSpotLight",
        "feTile",
        "feTurbulence",
    ];
    if !name.starts_with("fe") {
        return None;
    }
    FE.iter().copied().find(|n| *n == name)
}

/// CSS properties that are also SVG presentation attributes; the index is used in bit masks.
pub(crate) const PRESENTATION: &[&str] = &[
    "fill",
    "fill-opacity",
    "fill-rule",
    "stroke",
    "stroke-width",
    "stroke-opacity",
    "stroke-linecap",
    "stroke-linejoin",
    "stroke-miterlimit",
    "stroke-dasharray",
    "stroke-dashoffset",
    "opacity",
    "display",
    "visibility",
    "font-family",
    "font-size",
    "font-weight",
    "font-style",
    "font-variant",
    "font-stretch",
    "text-anchor",
    "letter-spacing",
    "word-spacing",
    "text-decoration",
    "dominant-baseline",
    "alignment-baseline",
    "baseline-shift",
    "clip-path",
    "clip-rule",
    "mask",
    "filter",
    "color",
    "stop-color",
    "stop-opacity",
    "flood-color",
    "flood-opacity",
    "lighting-color",
    "marker-start",
    "marker-mid",
    "marker-end",
    "shape-rendering",
    "text-rendering",
    "image-rendering",
    "color-interpolation",
    "color-interpolation-filters",
    "overflow",
    "paint-order",
    "vector-effect",
    "writing-mode",
    "direction",
    "unicode-bidi",
    "enable-background",
    "cursor",
    "pointer-events",
    "font-size-adjust",
    "kerning",
    "color-rendering",
];

/// Index of `fill` in [`PRESENTATION`].
#[cfg(test)]
pub(crate) const PROP_FILL: u8 = 0;

/// Looks a presentation property up by exact name.
pub(crate) fn presentation_index(name: &str) -> Option<u8> {
    // Fast rejection: every presentation name is lowercase ASCII letters and dashes.
    let first = *name.as_bytes().first()?;
    if !first.is_ascii_lowercase() {
        return None;
    }
    PRESENTATION
        .iter()
        .position(|p| *p == name)
        .map(|i| i as u8)
}

/// What the sanitizer does with an attribute value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrKind {
    /// Geometry, numbers, keywords: CSS-checked too (SVG 2 reads many of them as CSS), except
    /// path data and free-text `data-*`/`aria-*` values, which no renderer fetches from.
    Plain,
    Id,
    DataName,
    Label,
    /// `inkscape:groupmode`: kept when it says `layer` (a layer is never a lot).
    GroupMode,
    Class,
    Style,
    /// `href` / `xlink:href`: only `#fragment` (and raster `data:` on images).
    Href,
    /// A presentation attribute (index into [`PRESENTATION`]); its value is CSS-checked.
    Presentation(u8),
    /// Animation values (`from`, `to`, `by`, `values`): CSS-checked so `url(http:..)` cannot sneak in.
    CssChecked,
    /// `attributeName`: kept on animation elements only (which were checked to target no
    /// `href`, `style` or handler).
    AnimTarget,
    /// `xmlns` declarations: rewritten canonically on the root, dropped elsewhere.
    Xmlns,
    Drop,
}

/// Classifies an attribute by its exact name. Returns the canonical name to write.
pub(crate) fn attr_kind(name: &str) -> AttrKind {
    use AttrKind::*;
    match name {
        "d" | "x" | "y" | "width" | "height" | "transform" | "points" | "cx" | "cy" | "r"
        | "rx" | "ry" | "x1" | "y1" | "x2" | "y2" | "viewBox" => Plain,
        "id" => Id,
        "class" => Class,
        "style" => Style,
        "data-name" => DataName,
        "inkscape:label" => Label,
        "inkscape:groupmode" => GroupMode,
        "href" | "xlink:href" => Href,
        "xmlns" => Xmlns,
        "from" | "to" | "by" | "values" => CssChecked,
        "attributeName" => AnimTarget,
        "version"
        | "baseProfile"
        | "preserveAspectRatio"
        | "xml:space"
        | "xml:lang"
        | "lang"
        | "fx"
        | "fy"
        | "fr"
        | "pathLength"
        | "gradientTransform"
        | "gradientUnits"
        | "patternTransform"
        | "patternUnits"
        | "patternContentUnits"
        | "spreadMethod"
        | "offset"
        | "clipPathUnits"
        | "maskUnits"
        | "maskContentUnits"
        | "markerUnits"
        | "markerWidth"
        | "markerHeight"
        | "refX"
        | "refY"
        | "orient"
        | "dx"
        | "dy"
        | "rotate"
        | "textLength"
        | "lengthAdjust"
        | "startOffset"
        | "method"
        | "spacing"
        | "side"
        | "filterUnits"
        | "primitiveUnits"
        | "in"
        | "in2"
        | "result"
        | "stdDeviation"
        | "mode"
        | "operator"
        | "k1"
        | "k2"
        | "k3"
        | "k4"
        | "type"
        | "tableValues"
        | "slope"
        | "intercept"
        | "amplitude"
        | "exponent"
        | "scale"
        | "xChannelSelector"
        | "yChannelSelector"
        | "baseFrequency"
        | "numOctaves"
        | "seed"
        | "stitchTiles"
        | "surfaceScale"
        | "diffuseConstant"
        | "specularConstant"
        | "specularExponent"
        | "kernelUnitLength"
        | "kernelMatrix"
        | "order"
        | "divisor"
        | "bias"
        | "targetX"
        | "targetY"
        | "edgeMode"
        | "preserveAlpha"
        | "radius"
        | "azimuth"
        | "elevation"
        | "limitingConeAngle"
        | "pointsAtX"
        | "pointsAtY"
        | "pointsAtZ"
        | "z"
        | "attributeType"
        | "begin"
        | "dur"
        | "end"
        | "min"
        | "max"
        | "restart"
        | "repeatCount"
        | "repeatDur"
        | "calcMode"
        | "keyTimes"
        | "keySplines"
        | "keyPoints"
        | "additive"
        | "accumulate"
        | "path"
        | "systemLanguage"
        | "transform-origin"
        | "zoomAndPan"
        | "role"
        | "focusable" => Plain,
        _ => {
            if let Some(i) = presentation_index(name) {
                Presentation(i)
            } else if let Some(rest) = name.strip_prefix("data-") {
                if is_simple_name(rest) { Plain } else { Drop }
            } else if let Some(rest) = name.strip_prefix("aria-") {
                if is_simple_name(rest) { Plain } else { Drop }
            } else {
                Drop
            }
        }
    }
}

/// Names made of ASCII letters, digits, `-`, `_`, `.` only, so the output stays well-formed.
fn is_simple_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Whether an animation element may target this attribute. Compared case-insensitively and
/// ignoring any prefix, so `XLINK:HREF` and ` href ` are refused like `href`.
pub(crate) fn animation_target_ok(target: &str) -> bool {
    let t: String = target
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect();
    let local = t.rsplit(':').next().unwrap_or("");
    let is_name = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'));
    is_name
        && !local.is_empty()
        && !(local == "href" || local.starts_with("on") || local == "style")
}

/// Whether an `href` value is safe: a same-document fragment, or (on images) a raster `data:` URL.
/// The value is already entity-decoded; whitespace and control characters are removed before the
/// scheme is compared, case-insensitively, so `java&#9;script:` and `JaVaScRiPt:` are both refused.
pub(crate) fn href_ok(decoded: &str, kind_allows_data: bool) -> bool {
    let mut compact = String::with_capacity(decoded.len().min(64));
    for c in decoded.chars() {
        if c.is_whitespace() || c.is_control() {
            continue;
        }
        compact.push(c.to_ascii_lowercase());
        if compact.len() >= 24 {
            break;
        }
    }
    if compact.starts_with('#') {
        return compact.len() > 1;
    }
    if kind_allows_data {
        for mime in ["png", "jpeg", "jpg", "gif", "webp"] {
            if let Some(rest) = compact.strip_prefix("data:image/")
                && let Some(after) = rest.strip_prefix(mime)
                && (after.starts_with(';') || after.starts_with(','))
            {
                return true;
            }
        }
    }
    false
}

/// Whether a CSS value (a presentation attribute or one `style` declaration) is free of external
/// references and script: every function must be on a short list, and `url()` may only point at
/// `#fragment`. Backslash escapes, comments and at-rules are refused outright because they can
/// disguise a function name.
pub(crate) fn css_value_ok(v: &str) -> bool {
    let b = v.as_bytes();
    // Fast path: colours, numbers, keywords.
    if !b
        .iter()
        .any(|&c| matches!(c, b'(' | b'\\' | b'/' | b'@' | b'<' | b'&'))
    {
        return true;
    }
    if b.contains(&b'\\') || b.contains(&b'@') || b.contains(&b'<') || v.contains("/*") {
        return false;
    }
    for (i, &c) in b.iter().enumerate() {
        if c != b'(' {
            continue;
        }
        let mut s = i;
        while s > 0 && (b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'-' || b[s - 1] == b'_') {
            s -= 1;
        }
        let func = v[s..i].to_ascii_lowercase();
        match func.as_str() {
            "url" => {
                let arg = v[i + 1..]
                    .trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
                if !arg.starts_with('#') {
                    return false;
                }
            }
            "" | "rgb" | "rgba" | "hsl" | "hsla" | "calc" | "var" | "min" | "max" | "clamp"
            | "matrix" | "translate" | "translatex" | "translatey" | "scale" | "scalex"
            | "scaley" | "rotate" | "skew" | "skewx" | "skewy" | "cubic-bezier" | "steps"
            | "drop-shadow" | "blur" | "brightness" | "contrast" | "grayscale" | "hue-rotate"
            | "invert" | "opacity" | "saturate" | "sepia" => {}
            _ => return false,
        }
    }
    true
}

/// Whether a CSS property name may be kept in a `style` attribute.
pub(crate) fn css_property_ok(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    !(n.is_empty() || n == "behavior" || n.starts_with("-moz-binding") || n.contains('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn href_checks() {
        assert!(href_ok("#unit-a12", false));
        assert!(href_ok("  #a", false));
        assert!(!href_ok("#", false));
        assert!(!href_ok("javascript:alert(1)", false));
        assert!(!href_ok("java\tscript:alert(1)", false));
        assert!(!href_ok("JaVaScRiPt:alert(1)", false));
        assert!(!href_ok("http://evil.example/x.svg#a", false));
        assert!(!href_ok("//evil.example/x", false));
        assert!(!href_ok("data:image/png;base64,AAAA", false));
        assert!(href_ok("data:image/png;base64,AAAA", true));
        assert!(href_ok("DATA:IMAGE/JPEG;base64,AAAA", true));
        assert!(href_ok(" data:image/gif,xyz", true));
        assert!(!href_ok("data:image/svg+xml;base64,AAAA", true));
        assert!(!href_ok("data:text/html,<script>", true));
        assert!(!href_ok("data:image/pngx;base64,AAAA", true));
    }

    #[test]
    fn css_checks() {
        assert!(css_value_ok("#c69c6d"));
        assert!(css_value_ok("url(#grad1)"));
        assert!(css_value_ok("url( '#grad1' )"));
        assert!(css_value_ok("rgb(1,2,3)"));
        assert!(!css_value_ok("url('http://evil.example/x')"));
        assert!(!css_value_ok("url(//evil.example/x)"));
        assert!(!css_value_ok("URL(http://x)"));
        assert!(!css_value_ok("url(#a) url(http://x)"));
        assert!(!css_value_ok("u\\72l(http://x)"));
        assert!(!css_value_ok("expression(alert(1))"));
        assert!(!css_value_ok("image-set('x.png' 1x)"));
        assert!(!css_value_ok("@import 'x'"));
        assert!(!css_value_ok("url(/**/http://x)"));
        assert!(css_value_ok("12px"));
    }

    #[test]
    fn animation_targets() {
        assert!(animation_target_ok("fill"));
        assert!(animation_target_ok("transform"));
        assert!(!animation_target_ok("href"));
        assert!(!animation_target_ok("xlink:href"));
        assert!(!animation_target_ok("XLINK:HREF"));
        assert!(!animation_target_ok(" href "));
        assert!(!animation_target_ok("onclick"));
        assert!(!animation_target_ok("style"));
        assert!(!animation_target_ok("fill:url(http://x)"));
        assert!(!animation_target_ok(""));
    }

    #[test]
    fn attribute_kinds() {
        assert_eq!(attr_kind("XLinK:HrEf"), AttrKind::Drop);
        assert_eq!(attr_kind("onload"), AttrKind::Drop);
        assert_eq!(attr_kind("ONLOAD"), AttrKind::Drop);
        assert_eq!(attr_kind("data-name"), AttrKind::DataName);
        assert_eq!(attr_kind("data-x"), AttrKind::Plain);
        assert_eq!(attr_kind("data-x\"y"), AttrKind::Drop);
        assert_eq!(attr_kind("fill"), AttrKind::Presentation(PROP_FILL));
        assert_eq!(attr_kind("xml:base"), AttrKind::Drop);
        assert!(PRESENTATION.len() <= 64);
    }
}
