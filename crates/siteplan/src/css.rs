//! The small slice of CSS a siteplan needs: simple `.class{...}` rules from `<style>` (to inline
//! them, since flutter_svg ignores `<style>` and `class`) and `style=""` declaration filtering.

use std::collections::HashMap;

use crate::allow::{css_property_ok, css_value_ok, presentation_index};

/// Splits a declaration list at top-level `;` (not inside quotes or parentheses).
pub(crate) fn split_decls(s: &str) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut start = 0usize;
    let mut i = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut depth = 0u32;
        let mut quote = 0u8;
        while i < b.len() {
            let c = b[i];
            if quote != 0 {
                if c == quote {
                    quote = 0;
                }
            } else {
                match c {
                    b'"' | b'\'' => quote = c,
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    b';' if depth == 0 => {
                        let d = &s[start..i];
                        i += 1;
                        start = i;
                        return Some(d);
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        done = true;
        Some(&s[start..])
    })
}

/// Splits one declaration into a trimmed property name and value.
pub(crate) fn split_decl(d: &str) -> Option<(&str, &str)> {
    let (p, v) = d.split_once(':')?;
    Some((p.trim(), v.trim()))
}

/// Result of filtering a `style` attribute.
pub(crate) struct StyleCheck {
    /// Some declaration was dropped: write `kept` instead of the original text.
    pub changed: bool,
    /// Presentation properties the style declares (bit = index in `PRESENTATION`).
    pub mask: u64,
}

/// Filters a decoded `style` attribute: declarations with an external reference, script or an
/// unparseable shape are dropped. `kept` receives the surviving declarations joined by `;`.
pub(crate) fn filter_style(decoded: &str, kept: &mut String) -> StyleCheck {
    kept.clear();
    let mut changed = false;
    let mut mask = 0u64;
    for d in split_decls(decoded) {
        if d.trim().is_empty() {
            continue;
        }
        let Some((p, v)) = split_decl(d) else {
            changed = true;
            continue;
        };
        if !css_property_ok(p) || !css_value_ok(v) || !css_value_ok(p) {
            changed = true;
            continue;
        }
        if let Some(i) = presentation_index(&p.to_ascii_lowercase()) {
            mask |= 1 << i;
        }
        if !kept.is_empty() {
            kept.push(';');
        }
        kept.push_str(d.trim());
    }
    StyleCheck { changed, mask }
}

/// Declarations of the simple class rules of a document's `<style>` elements.
#[derive(Default)]
pub(crate) struct StyleSheet {
    /// (presentation property index, value) in stylesheet order; later ones win.
    pub decls: Vec<(u8, String)>,
    /// Class name to the indices of its declarations, ascending.
    pub classes: HashMap<String, Vec<u32>>,
}

impl StyleSheet {
    /// Parses the concatenated text of the `<style>` elements. Anything that is not a rule whose
    /// selectors are all plain `.class` names is skipped (at-rules such as `@import` included).
    #[cfg(test)]
    pub(crate) fn parse(css: &str) -> StyleSheet {
        let mut sheet = StyleSheet::default();
        sheet.add(css);
        sheet
    }

    /// Adds the rules of one `<style>` element (each element is parsed on its own, as browsers
    /// do, so an unclosed block cannot swallow the next element's rules).
    pub(crate) fn add(&mut self, css: &str) {
        let sheet = self;
        let css = strip_comments(css);
        let b = css.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_whitespace() || c == b'}' || c == b';' {
                i += 1;
                continue;
            }
            if c == b'@' {
                // At-rule: ends at `;` or spans a balanced block. One scan for either keeps
                // a run of `@` linear.
                i = match css[i..].find([';', '{']).map(|p| p + i) {
                    Some(p) if b[p] == b';' => p + 1,
                    Some(p) => skip_block(b, p),
                    None => b.len(),
                };
                continue;
            }
            let Some(open) = css[i..].find('{').map(|p| p + i) else {
                break;
            };
            let close = skip_block(b, open);
            let selectors = &css[i..open];
            let body_end = if close > 0 && b.get(close - 1) == Some(&b'}') {
                close - 1
            } else {
                close
            };
            let body = &css[open + 1..body_end.max(open + 1)];
            i = close;
            sheet.add_rule(selectors, body);
        }
    }

    fn add_rule(&mut self, selectors: &str, body: &str) {
        let mut classes = Vec::new();
        for sel in selectors.split(',') {
            let sel = sel.trim();
            let Some(name) = sel.strip_prefix('.') else {
                return;
            };
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
            {
                return;
            }
            classes.push(name);
        }
        for d in split_decls(body) {
            let Some((p, v)) = split_decl(d) else {
                continue;
            };
            let p = p.to_ascii_lowercase();
            let v = v.strip_suffix("!important").map_or(v, str::trim_end).trim();
            let Some(prop) = presentation_index(&p) else {
                continue;
            };
            if v.is_empty() || !css_value_ok(v) {
                continue;
            }
            let idx = self.decls.len() as u32;
            self.decls.push((prop, v.to_string()));
            for c in &classes {
                self.classes.entry((*c).to_string()).or_default().push(idx);
            }
        }
    }

    /// True when no class rule was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// Replaces `/* ... */` comments with a space.
fn strip_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(p) = rest.find("/*") {
        out.push_str(&rest[..p]);
        out.push(' ');
        rest = match rest[p + 2..].find("*/") {
            Some(e) => &rest[p + 2 + e + 2..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Given the index of a `{`, returns the index just past its matching `}` (or the end).
fn skip_block(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    let mut quote = 0u8;
    let mut i = open;
    while i < b.len() {
        let c = b[i];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else {
            match c {
                b'"' | b'\'' => quote = c,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illustrator_style_block() {
        let s = StyleSheet::parse(
            "\n .cls-1{fill:#c69c6d;}\n .cls-1,.cls-2{stroke:#000;stroke-width:2px}\n\
             /* c */ @import url(http://evil.example/x.css);\n\
             @media print { .cls-3{fill:red} }\n\
             .cls-4{fill:url(http://evil.example/p.png)}\n\
             rect{fill:blue}\n .st0{fill:none;stroke:#4D4D4D !important;mix-blend-mode:multiply}",
        );
        let props = |c: &str| -> Vec<(String, String)> {
            s.classes[c]
                .iter()
                .map(|&i| {
                    let (p, v) = &s.decls[i as usize];
                    (
                        crate::allow::PRESENTATION[*p as usize].to_string(),
                        v.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(
            props("cls-1"),
            vec![
                ("fill".into(), "#c69c6d".into()),
                ("stroke".into(), "#000".into()),
                ("stroke-width".into(), "2px".into())
            ]
        );
        assert_eq!(props("cls-2").len(), 2);
        assert!(!s.classes.contains_key("cls-3"));
        assert!(!s.classes.contains_key("cls-4"));
        assert_eq!(
            props("st0"),
            vec![
                ("fill".into(), "none".into()),
                ("stroke".into(), "#4D4D4D".into())
            ]
        );
    }

    #[test]
    fn hostile_stylesheets_stay_linear() {
        let many_at = "@x;".repeat(200_000) + "{";
        let t = std::time::Instant::now();
        let s = StyleSheet::parse(&many_at);
        assert!(s.is_empty());
        let s = StyleSheet::parse(&"@".repeat(200_000));
        assert!(s.is_empty());
        let s = StyleSheet::parse(&"{".repeat(200_000));
        assert!(s.is_empty());
        assert!(t.elapsed().as_secs() < 5);
    }

    #[test]
    fn style_attribute_filter() {
        let mut kept = String::new();
        let c = filter_style("fill:#fff;stroke:#000", &mut kept);
        assert!(!c.changed);
        assert_eq!(c.mask, 0b1001);
        let c = filter_style("background:url(http://x);fill:red;;", &mut kept);
        assert!(c.changed);
        assert_eq!(kept, "fill:red");
        let c = filter_style(
            "fill:url('#g');behavior:url(#x);-moz-binding:url(#y)",
            &mut kept,
        );
        assert!(c.changed);
        assert_eq!(kept, "fill:url('#g')");
        let c = filter_style("font-family:'a;b';fill:red", &mut kept);
        assert!(!c.changed);
        assert_eq!(split_decls("a:'x;y';b:c").count(), 2);
    }
}
