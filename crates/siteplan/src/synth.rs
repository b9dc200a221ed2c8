//! Synthetic siteplans for benchmarks, property tests and fuzz seeds (not part of the API).
//!
//! The output imitates an Illustrator "Save As" export of a large estate: a `<style>` of
//! `.cls-N` rules in `<defs>`, one translated group per block, each unit a group or a single
//! path with a hand-traced outline using every path command (absolute and relative M L H V C S
//! Q T A Z), ids with `_N_` duplicate suffixes, `data-name`, `_xHH_` escapes, and labels.

use std::fmt::Write;

/// Units per block (and per row of 25 lots, four rows).
const PER_BLOCK: usize = 100;

/// Block letter(s) of block index `b`: A..Z, then AA, AB, ...
fn block_name(b: usize) -> String {
    if b < 26 {
        ((b'A' + b as u8) as char).to_string()
    } else {
        format!(
            "{}{}",
            (b'A' + (b / 26 - 1) as u8 % 26) as char,
            (b'A' + (b % 26) as u8) as char
        )
    }
}

/// The block numbers of a generated siteplan of `units` units, in drawing order.
pub fn block_numbers(units: usize) -> Vec<String> {
    (0..units)
        .map(|i| format!("{}{}", block_name(i / PER_BLOCK), i % PER_BLOCK + 1))
        .collect()
}

/// A siteplan of `units` units (5,000 gives about 10 MB).
pub fn generate_siteplan(units: usize) -> String {
    let blocks = units.div_ceil(PER_BLOCK).max(1);
    let cols = (blocks as f64).sqrt().ceil() as usize;
    let block_w = 25.0 * 40.0 + 60.0;
    let block_h = 4.0 * 90.0 + 80.0;
    let width = cols as f64 * block_w;
    let height = blocks.div_ceil(cols) as f64 * block_h;
    let mut s = String::with_capacity(units * 2100 + 4096);
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <!-- Generator: Adobe Illustrator 28.0.0, SVG Export Plug-In . SVG Version: 6.00 Build 0)  -->\n\
         <svg version=\"1.1\" id=\"Layer_1\" xmlns=\"http://www.w3.org/2000/svg\" \
         xmlns:xlink=\"http://www.w3.org/1999/xlink\" x=\"0px\" y=\"0px\"\n\t viewBox=\"0 0 {width} {height}\" \
         style=\"enable-background:new 0 0 {width} {height};\" xml:space=\"preserve\">\n\
         <defs>\n<style>\n\
         \t.cls-1{{fill:#e6e2d8;}}\n\t.cls-2{{fill:#bfbfbf;}}\n\
         \t.cls-3{{fill:#ffffff;stroke:#4d4d4d;stroke-width:1.5px;stroke-miterlimit:10;}}\n\
         \t.cls-4{{fill:#c69c6d;}}\n\t.cls-5{{fill:#7ac143;}}\n\
         \t.cls-6,.cls-7{{fill:#333333;}}\n\t.cls-6{{font-family:'ArialMT', 'Arial';font-size:14px;}}\n\
         </style>\n</defs>\n\
         <rect class=\"cls-1\" width=\"{width}\" height=\"{height}\"/>\n"
    );
    let mut unit = 0usize;
    for b in 0..blocks {
        let name = block_name(b);
        let bx = (b % cols) as f64 * block_w;
        let by = (b / cols) as f64 * block_h;
        let _ = writeln!(
            s,
            "<g id=\"BLOK_{name}\" transform=\"translate({bx} {by})\">\n\
             \t<rect x=\"0\" y=\"190\" class=\"cls-2\" width=\"{}\" height=\"40\"/>",
            block_w - 20.0
        );
        for i in 0..PER_BLOCK {
            if unit >= units {
                break;
            }
            unit += 1;
            let n = i + 1;
            let bn = format!("{name}{n}");
            let x = 20.0 + (i % 25) as f64 * 40.0;
            let y = 20.0 + (i / 25) as f64 * 90.0 + if i / 25 >= 2 { 60.0 } else { 0.0 };
            let outline = lot_outline(x, y, 38.0, 80.0, i);
            match i % 10 {
                // A single path whose id carries Illustrator's duplicate suffix.
                3 => {
                    let _ = writeln!(
                        s,
                        "\t<path id=\"{bn}_1_\" class=\"cls-3\" d=\"{outline}\"/>"
                    );
                }
                // Export As: id deduplicated, data-name keeps the layer name.
                5 => {
                    let _ = writeln!(
                        s,
                        "\t<path id=\"{bn}-2\" data-name=\"{bn}\" class=\"cls-3\" d=\"{outline}\"/>"
                    );
                }
                // A rotated lot: a group with a transform.
                7 => {
                    let _ = writeln!(
                        s,
                        "\t<g id=\"{bn}\" transform=\"rotate(2 {} {})\">\n\
                         \t\t<path class=\"cls-3\" d=\"{outline}\"/>\n\
                         \t\t<rect x=\"{}\" y=\"{}\" class=\"cls-4\" width=\"22\" height=\"30\"/>\n\
                         \t</g>",
                        x + 19.0,
                        y + 40.0,
                        x + 8.0,
                        y + 10.0
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "\t<g id=\"{bn}\">\n\
                         \t\t<path class=\"cls-3\" d=\"{outline}\"/>\n\
                         \t\t<rect x=\"{}\" y=\"{}\" class=\"cls-4\" width=\"22\" height=\"30\"/>\n\
                         \t\t<circle class=\"cls-5\" cx=\"{}\" cy=\"{}\" r=\"4.5\"/>\n\
                         \t\t<text transform=\"matrix(1 0 0 1 {} {})\" class=\"cls-6\">{bn}</text>\n\
                         \t</g>",
                        x + 8.0,
                        y + 10.0,
                        x + 30.0,
                        y + 70.0,
                        x + 6.0,
                        y + 60.0
                    );
                }
            }
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// A siteplan of `units` lots labelled only by text, the way CAD exports and hand-drawn plans
/// come: no meaningful ids (no ids at all), one background rect under everything, one outline
/// rect per block around its lots (so every label lies in nested shapes), lots as closed `<path>`
/// or `<rect>` (every third one rotated by a `transform`), lot numbers as `<text><tspan>` over
/// them in varied spellings (`A12`, `A 12`, `Blok A No 12`, `A-012`), positioned by
/// `transform="translate(...)"`. The block numbers are [`block_numbers`].
pub fn generate_text_labelled_siteplan(units: usize) -> String {
    let blocks = units.div_ceil(PER_BLOCK).max(1);
    let cols = (blocks as f64).sqrt().ceil() as usize;
    let block_w = 25.0 * 40.0 + 60.0;
    let block_h = 4.0 * 90.0 + 80.0;
    let width = cols as f64 * block_w;
    let height = blocks.div_ceil(cols) as f64 * block_h;
    let mut s = String::with_capacity(units * 320 + 4096);
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" height=\"100%\" viewBox=\"0 0 {width} {height}\">\n\
         <rect width=\"{width}\" height=\"{height}\" fill=\"#eeeeee\"/>\n"
    );
    let mut unit = 0usize;
    for b in 0..blocks {
        let name = block_name(b);
        let bx = (b % cols) as f64 * block_w;
        let by = (b / cols) as f64 * block_h;
        let _ = writeln!(
            s,
            "<g transform=\"translate({bx},{by})\">\n\
             <rect x=\"5\" y=\"5\" width=\"{}\" height=\"{}\" fill=\"#dddddd\" stroke=\"#999999\"/>\n\
             <path d=\"M0,210 H{}\" stroke=\"#777777\" fill=\"none\"/>",
            block_w - 20.0,
            block_h - 10.0,
            block_w - 20.0
        );
        for i in 0..PER_BLOCK {
            if unit >= units {
                break;
            }
            unit += 1;
            let n = i + 1;
            let x = 20.0 + (i % 25) as f64 * 40.0;
            let y = 20.0 + (i / 25) as f64 * 90.0 + if i / 25 >= 2 { 60.0 } else { 0.0 };
            match i % 3 {
                0 => {
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x}\" y=\"{y}\" width=\"38\" height=\"80\" fill=\"#ffffff\" stroke=\"#333333\" stroke-width=\"0.5\"/>"
                    );
                }
                1 => {
                    let _ = writeln!(
                        s,
                        "<path d=\"M{x},{y} h38 v80 h-38 Z\" fill=\"#ffffff\" stroke=\"#333333\"/>"
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "<path transform=\"rotate(3 {} {})\" d=\"M{x},{y} l38,0 0,80 -38,0 z\" fill=\"#ffffff\" stroke=\"#333333\"/>",
                        x + 19.0,
                        y + 40.0
                    );
                }
            }
            let label = match i % 4 {
                0 => format!("{name}{n}"),
                1 => format!("{name} {n}"),
                2 => format!("Blok {name} No {n}"),
                _ => format!("{name}-{n:03}"),
            };
            let _ = writeln!(
                s,
                "<text transform=\"translate({} {})\" font-size=\"9\" text-anchor=\"middle\"><tspan x=\"0\" y=\"0\">{label}</tspan></text>",
                x + 19.0,
                y + 44.0
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// A lot boundary traced the way a designer's pen tool leaves it: many short segments of every
/// command kind, relative and absolute, with Illustrator's number formatting.
fn lot_outline(x: f64, y: f64, w: f64, h: f64, seed: usize) -> String {
    let mut d = String::with_capacity(1500);
    let j = |k: usize| ((seed * 7 + k * 13) % 17) as f64 * 0.011;
    let _ = write!(d, "M{:.3},{:.3}", x + 2.0, y);
    // Top edge: relative cubic wiggles and smooth continuations.
    for k in 0..10 {
        let _ = write!(
            d,
            "c{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}s{:.3},{:.3},{:.3},0",
            1.1 + j(k),
            -0.21 - j(k + 1),
            2.05,
            0.19 + j(k + 2),
            2.1,
            -0.012,
            0.9,
            0.17 + j(k + 3),
            1.2 + j(k)
        );
    }
    // Top-right corner as an arc.
    let _ = write!(d, "L{:.3},{:.3}a2,2 0 0 1 2,2", x + w - 2.0, y);
    // Right edge: absolute and relative lines and verticals.
    for k in 0..14 {
        let _ = write!(
            d,
            "v{:.3}l{:.3},{:.3}",
            2.6 + j(k),
            0.013 + j(k) / 10.0,
            2.9
        );
    }
    let _ = write!(d, "V{:.3}", y + h - 2.0);
    // Bottom-right corner: quadratic, then smooth quadratics along the bottom edge.
    let _ = write!(
        d,
        "Q{:.3},{:.3} {:.3},{:.3}",
        x + w,
        y + h,
        x + w - 2.0,
        y + h
    );
    for k in 0..10 {
        let _ = write!(d, "t{:.3},{:.3}", -(3.2 + j(k)), 0.0);
    }
    let _ = write!(d, "H{:.3}", x + 2.0);
    let _ = write!(d, "A2,2 0 0 1 {:.3},{:.3}", x, y + h - 2.0);
    // Left edge: absolute cubics and smooth cubics.
    let mut yy = y + h - 2.0;
    for k in 0..8 {
        let step = (h - 4.0) / 16.0;
        let _ = write!(
            d,
            "C{:.3},{:.3} {:.3},{:.3} {:.3},{:.3}S{:.3},{:.3} {:.3},{:.3}",
            x - 0.15 - j(k),
            yy - step * 0.3,
            x + 0.12,
            yy - step * 0.6,
            x,
            yy - step,
            x + 0.1 + j(k + 1),
            yy - step * 1.6,
            x,
            yy - 2.0 * step
        );
        yy -= 2.0 * step;
    }
    let _ = write!(d, "T{:.3},{:.3}", x + 0.5, y + 0.7);
    let _ = write!(d, "q0.4,-0.6,1.5,-0.7h-0.001z");
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(block_name(0), "A");
        assert_eq!(block_name(25), "Z");
        assert_eq!(block_name(26), "AA");
        assert_eq!(block_name(49), "AX");
        assert_eq!(block_numbers(201)[200], "C1");
    }

    #[test]
    fn size_is_about_two_kilobytes_per_unit() {
        let s = generate_siteplan(100);
        assert!(s.len() > 100 * 1500, "{}", s.len());
    }
}
