//! Keeps the protocol examples of `docs/flutter.md` honest: every ```json block is one frame that
//! parses into the server's own message types and serializes back to the same JSON (so a renamed,
//! misspelt or extra field fails), and every message type of the protocol appears at least once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use kavling_realtime::{ClientMessage, ServerMessage};
use serde_json::Value;

fn guide() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/flutter.md");
    std::fs::read_to_string(path).expect("docs/flutter.md is readable")
}

/// The bodies of the ```json fences, with the line each starts on.
fn json_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match current.take() {
            None if fence == "```json" => current = Some((i + 2, String::new())),
            None => {}
            Some(block) if fence.starts_with("```") => blocks.push(block),
            Some((start, mut body)) => {
                body.push_str(line);
                body.push('\n');
                current = Some((start, body));
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```json block");
    blocks
}

/// Parses one frame as the server would read it (client frames) or the client would (server
/// frames), checks the round trip, and returns its kind (`op:…` or `type:…`).
fn check_frame(line: usize, text: &str) -> String {
    let value: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("docs/flutter.md:{line}: not JSON ({e}): {text}"));
    let (kind, back) = if let Some(op) = value.get("op").and_then(Value::as_str) {
        let msg: ClientMessage = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("docs/flutter.md:{line}: not a client frame ({e}): {text}"));
        (format!("op:{op}"), serde_json::to_value(&msg).unwrap())
    } else if let Some(ty) = value.get("type").and_then(Value::as_str) {
        let msg: ServerMessage = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("docs/flutter.md:{line}: not a server frame ({e}): {text}"));
        (format!("type:{ty}"), serde_json::to_value(&msg).unwrap())
    } else {
        panic!("docs/flutter.md:{line}: a frame needs an `op` or a `type`: {text}");
    };
    assert_eq!(
        back, value,
        "docs/flutter.md:{line}: the frame does not survive a round trip through the server's types \
         (a misspelt, extra or differently formatted field?)"
    );
    kind
}

#[test]
fn every_protocol_example_in_the_flutter_guide_is_a_real_frame() {
    let blocks = json_blocks(&guide());
    assert!(
        blocks.len() >= 10,
        "only {} json blocks found",
        blocks.len()
    );
    let mut kinds = BTreeSet::new();
    let mut recovered = BTreeSet::new();
    let mut since = false;
    let mut staff_booking = false;
    for (line, text) in &blocks {
        kinds.insert(check_frame(*line, text));
        let v: Value = serde_json::from_str(text).unwrap();
        if let Some(r) = v.get("recovered").and_then(Value::as_bool) {
            recovered.insert(r);
        }
        since |= v.get("since").is_some();
        staff_booking |= v.get("booking").is_some();
    }
    let expected: BTreeSet<String> = [
        "op:subscribe",
        "op:unsubscribe",
        "op:ping",
        "type:snapshot",
        "type:unit",
        "type:subscribed",
        "type:pong",
        "type:error",
        "type:notification",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let missing: Vec<_> = expected.difference(&kinds).collect();
    assert!(
        missing.is_empty(),
        "the guide shows no example of {missing:?}"
    );
    assert_eq!(
        recovered,
        BTreeSet::from([false, true]),
        "both subscribed cases"
    );
    assert!(since, "a resume with `since`");
    assert!(staff_booking, "a staff unit frame with its booking");
    assert!(
        kinds.contains("type:message"),
        "the chat section shows a message frame"
    );
}

#[test]
fn the_checker_rejects_frames_that_drifted_from_the_protocol() {
    let ok = r#"{"type":"subscribed","channel":"project:x","seq":1,"recovered":true}"#;
    assert_eq!(check_frame(1, ok), "type:subscribed");
    for bad in [
        // misspelt field (serde would silently ignore it without the round trip)
        r#"{"type":"subscribed","channel":"project:x","seq":1,"recovered":true,"recoverd":1}"#,
        // `at` without the microseconds the server writes
        r##"{"type":"unit","channel":"c","seq":2,"unitId":"0192f0c4-8a8f-7d20-8f2b-1c9a7e3b5d01","blockNumber":"A1","status":"SOLD","previousStatus":"BOOKED","color":"#ef4444","at":"2026-11-21T08:00:00Z"}"##,
        // snake_case instead of camelCase
        r#"{"type":"subscribed","channel":"project:x","seq":1,"recovered":true,"block_number":"A1"}"#,
    ] {
        let result = std::panic::catch_unwind(|| check_frame(1, bad));
        assert!(result.is_err(), "accepted {bad}");
    }
    for unknown in [r#"{"op":"subscribe"}"#, r#"{"type":"hello"}"#, r#"{"x":1}"#] {
        assert!(std::panic::catch_unwind(|| check_frame(1, unknown)).is_err());
    }
    let blocks = json_blocks("a\n```json\n{\"op\":\"ping\"}\n```\n```dart\nx\n```\n");
    assert_eq!(blocks, [(3, "{\"op\":\"ping\"}\n".to_owned())]);
}
