//! Fuzzes the whole engine: parse + sanitize, then checks what it accepts.
//! Run with `cargo +nightly fuzz run parse_sanitize ../fixtures/siteplans ../fixtures/siteplans/hostile`.
#![no_main]

use kavling_siteplan::{Limits, Siteplan};
use libfuzzer_sys::fuzz_target;

/// Constructs that must never survive sanitization (namespace URIs written by the engine aside).
fn assert_clean(out: &str) {
    let lower = out
        .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
        .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "")
        .replace("xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\"", "")
        .to_ascii_lowercase();
    for bad in ["<script", "<foreignobject", "<style", "<!doctype", "<!entity", "<?", "<!--", "<![cdata["] {
        assert!(!lower.contains(bad), "{bad} in {out}");
    }
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        // Every attribute name in a start tag: none may be an event handler.
        for part in tag.split('"').step_by(2) {
            for word in part.split_whitespace() {
                assert!(!word.starts_with("on"), "handler in {out}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_depth: 64, max_elements: 20_000 };
    let Ok(plan) = Siteplan::parse(data, &limits) else {
        return;
    };
    let out = plan.sanitized();
    assert_clean(out);
    let again = Siteplan::parse(out.as_bytes(), &limits).expect("sanitized output must re-parse");
    assert_eq!(again.sanitized(), out, "sanitize is not idempotent");
    let units = ["A1", "A12", "12", "91", "Blok A No 12"];
    let mapping = plan.map_units(&units);
    assert_eq!(mapping, again.map_units(&units));
    let _ = plan.geometry(&mapping);
    let rendered = plan.color_template(&mapping).render(|_| Some("#ef4444"));
    assert_clean(&rendered);
    Siteplan::parse(rendered.as_bytes(), &limits).expect("coloured render must re-parse");
});
