//! The unit status vocabulary of the contract with its colours and back-office labels: the one
//! table. The hub's frames, the availability and unit views, the coloured siteplan and the pages
//! (through the generated `/static/statuses.js` and `/static/statuses.css`) all read it.

/// One unit status and how it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitStatusStyle {
    /// The wire value (`AVAILABLE`, ...).
    pub key: &'static str,
    /// The contract's colour, `#rrggbb`.
    pub color: &'static str,
    /// The Indonesian back-office term.
    pub label: &'static str,
    /// The English term.
    pub label_en: &'static str,
    /// The CSS custom property the pages paint with (without the leading `--`).
    pub css_var: &'static str,
}

/// Every unit status, in the contract's order.
pub const UNIT_STATUSES: [UnitStatusStyle; 4] = [
    UnitStatusStyle {
        key: "AVAILABLE",
        color: "#22c55e",
        label: "Tersedia",
        label_en: "Available",
        css_var: "available",
    },
    UnitStatusStyle {
        key: "BOOKED",
        color: "#eab308",
        label: "Dipesan",
        label_en: "Booked",
        css_var: "booked",
    },
    UnitStatusStyle {
        key: "SOLD",
        color: "#ef4444",
        label: "Terjual",
        label_en: "Sold",
        css_var: "sold",
    },
    UnitStatusStyle {
        key: "MAINTENANCE",
        color: "#9ca3af",
        label: "Maintenance",
        label_en: "Maintenance",
        css_var: "maintenance",
    },
];

/// The entry of a wire status, if it is one.
pub fn style_of(status: &str) -> Option<&'static UnitStatusStyle> {
    UNIT_STATUSES.iter().find(|s| s.key == status)
}

/// The contract colour of a wire status, or `None` for an unknown one.
pub fn status_color(status: &str) -> Option<&'static str> {
    style_of(status).map(|s| s.color)
}

/// The ES module the pages import (`/static/statuses.js`): `export const STATUSES = [...]`.
pub fn js_module() -> String {
    let mut out = String::from(
        "// Generated from crates/status (the one status table); do not edit.\n\
         /** Status vocabulary of the contract, with the terms of the Indonesian back office. */\n\
         export const STATUSES = Object.freeze([\n",
    );
    for s in &UNIT_STATUSES {
        out.push_str(&format!(
            "  Object.freeze({{ key: '{}', label: '{}', en: '{}', color: '{}' }}),\n",
            s.key, s.label, s.label_en, s.color
        ));
    }
    out.push_str("]);\n");
    out
}

/// The stylesheet the pages link (`/static/statuses.css`): one custom property per status and
/// the legend swatches.
pub fn css() -> String {
    let mut out = String::from(
        "/* Generated from crates/status (the one status table); do not edit. */\n:root {\n",
    );
    for s in &UNIT_STATUSES {
        out.push_str(&format!("  --{}: {};\n", s.css_var, s.color));
    }
    out.push_str("}\n");
    for s in &UNIT_STATUSES {
        out.push_str(&format!(
            ".swatch[data-status=\"{}\"] {{ background: var(--{}); }}\n",
            s.key, s.css_var
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_colours() {
        assert_eq!(status_color("AVAILABLE"), Some("#22c55e"));
        assert_eq!(status_color("BOOKED"), Some("#eab308"));
        assert_eq!(status_color("SOLD"), Some("#ef4444"));
        assert_eq!(status_color("MAINTENANCE"), Some("#9ca3af"));
        assert_eq!(status_color("available"), None);
        assert_eq!(status_color(""), None);
    }

    #[test]
    fn generated_files_carry_every_status() {
        let js = js_module();
        let css = css();
        for s in &UNIT_STATUSES {
            assert!(js.contains(&format!("key: '{}'", s.key)));
            assert!(js.contains(s.color));
            assert!(css.contains(&format!("--{}: {};", s.css_var, s.color)));
            assert!(css.contains(&format!("[data-status=\"{}\"]", s.key)));
        }
        // Quotes in a label would break the generated module.
        assert!(
            UNIT_STATUSES
                .iter()
                .all(|s| !s.label.contains('\'') && !s.label_en.contains('\''))
        );
    }
}
