//! Manual siteplan mapping over HTTP (`GET`/`PUT /projects/{id}/siteplan/mapping`): setting and
//! clearing mappings, sources in the report, 422s naming each bad id or block, mappings kept across
//! re-uploads where the element survives, and a mapping saved on one instance served by another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::http::{Method, StatusCode};
use common::{SpawnOptions, TestApp, TestResponse};
use kavling_core::domain::Role;
use serde_json::{Value, json};
use uuid::Uuid;

/// A1 carries its block number as an id; the other two lots have meaningless ids.
const DRAWING: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 100">
  <rect id="A1" x="10" y="10" width="80" height="80" fill="#cccccc"/>
  <rect id="shape-7" x="110" y="10" width="80" height="80" fill="#cccccc"/>
  <rect id="shape-8" x="210" y="10" width="80" height="80" fill="#cccccc"/>
  <path id="road" d="M0 95 H400" stroke="#333333" fill="none"/>
</svg>"##;

/// The same drawing redrawn: `shape-8` is gone, a new lot `shape-9` appears.
const REDRAWN: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 100">
  <rect id="A1" x="10" y="10" width="80" height="80" fill="#cccccc"/>
  <rect id="shape-7" x="110" y="10" width="80" height="80" fill="#cccccc"/>
  <rect id="shape-9" x="310" y="10" width="80" height="80" fill="#cccccc"/>
</svg>"##;

async fn put_svg(app: &TestApp, project: Uuid, token: &str, body: &str) -> TestResponse {
    let mut res = app
        .client
        .put(app.url(&format!("/api/v1/projects/{project}/siteplan")))
        .insert_header(("content-type", "image/svg+xml"))
        .bearer_auth(token)
        .send_body(body.to_owned())
        .await
        .unwrap();
    let bytes = res.body().limit(16 * 1024 * 1024).await.unwrap();
    TestResponse {
        status: res.status(),
        headers: res.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes: bytes.to_vec(),
    }
}

async fn put_mapping(
    app: &TestApp,
    project: Uuid,
    token: Option<&str>,
    body: &Value,
) -> TestResponse {
    app.send(
        Method::PUT,
        &format!("/api/v1/projects/{project}/siteplan/mapping"),
        token,
        Some(body),
    )
    .await
}

/// `(blockNumber, elementId, source)` of every matched entry, sorted.
fn matched(report: &Value) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = report["matched"]
        .as_array()
        .expect("matched is an array")
        .iter()
        .map(|m| {
            (
                m["blockNumber"].as_str().unwrap().to_owned(),
                m["elementId"].as_str().unwrap().to_owned(),
                m["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn entry(block: &str, element: &str, source: &str) -> (String, String, String) {
    (block.to_owned(), element.to_owned(), source.to_owned())
}

/// The `fill` of the element with this id in a served SVG.
fn fill_of(svg: &str, id: &str) -> Option<String> {
    let at = svg.find(&format!("id=\"{id}\""))?;
    let tag_start = svg[..at].rfind('<')?;
    let tag_end = at + svg[at..].find('>')?;
    let tag = &svg[tag_start..tag_end];
    let f = tag.find(" fill=\"")? + 7;
    Some(tag[f..f + tag[f..].find('"')?].to_owned())
}

async fn colored_svg(app: &TestApp, project: Uuid) -> String {
    let res = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan.svg?colored=true"),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    String::from_utf8(res.bytes).unwrap()
}

#[actix_web::test]
async fn manual_mappings_are_set_reported_coloured_and_cleared() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 3).await;

    let res = put_svg(&app, project, &admin, DRAWING).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(matched(&res.json), vec![entry("A1", "A1", "id")]);
    assert_eq!(res.json["unitsWithoutElement"], json!(["A2", "A3"]));
    let shapes = res.json["unmatchedShapeIds"].as_array().unwrap();
    assert!(shapes.contains(&json!("shape-7")), "{}", res.json);
    assert!(shapes.contains(&json!("shape-8")), "{}", res.json);
    assert!(
        !shapes.contains(&json!("road")),
        "a stroke is no lot: {}",
        res.json
    );
    let etag_before = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan.svg?colored=true"),
            None,
        )
        .await
        .header("etag")
        .unwrap();

    let res = put_mapping(
        &app,
        project,
        Some(&admin),
        &json!({"elements": {"shape-7": "A2"}}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(
        matched(&res.json),
        vec![entry("A1", "A1", "id"), entry("A2", "shape-7", "manual")]
    );
    assert_eq!(res.json["unitsWithoutElement"], json!(["A3"]));
    assert!(
        !res.json["unmatchedShapeIds"]
            .as_array()
            .unwrap()
            .contains(&json!("shape-7"))
    );

    // The report is stored, not only answered.
    let got = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/mapping"),
            Some(&admin),
        )
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(matched(&got.json), matched(&res.json));

    // The mapped shape now takes its unit's colour, and the ETag moved on.
    let svg = colored_svg(&app, project).await;
    assert_eq!(
        fill_of(&svg, "shape-7").as_deref(),
        Some("#22c55e"),
        "{svg}"
    );
    assert_eq!(fill_of(&svg, "shape-8").as_deref(), Some("#cccccc"));
    let etag_after = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan.svg?colored=true"),
            None,
        )
        .await
        .header("etag")
        .unwrap();
    assert_ne!(etag_before, etag_after);

    // A status change recolours it.
    let a2 = units.iter().find(|(b, _)| b == "A2").unwrap().1;
    let res = app
        .patch(
            &format!("/api/v1/units/{a2}"),
            Some(&admin),
            &json!({"status": "SOLD"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let svg = colored_svg(&app, project).await;
    assert_eq!(fill_of(&svg, "shape-7").as_deref(), Some("#ef4444"));

    // Geometry follows the manual mapping.
    let geo = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    let g = geo.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["blockNumber"] == "A2")
        .cloned()
        .expect("A2 has geometry");
    assert_eq!(g["elementId"], "shape-7");
    assert_eq!(g["unitId"], a2.to_string());
    assert_eq!(g["bbox"]["x"], 110.0);

    // Clearing gives the element back.
    let res = put_mapping(
        &app,
        project,
        Some(&admin),
        &json!({"elements": {"shape-7": null}}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(matched(&res.json), vec![entry("A1", "A1", "id")]);
    assert_eq!(res.json["unitsWithoutElement"], json!(["A2", "A3"]));

    // A manual mapping can also move an element that matched automatically.
    let res = put_mapping(
        &app,
        project,
        Some(&admin),
        &json!({"elements": {"A1": "A3", "shape-8": "A1"}}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(
        matched(&res.json),
        vec![
            entry("A1", "shape-8", "manual"),
            entry("A3", "A1", "manual")
        ]
    );

    let audit = app
        .get(
            "/api/v1/admin/audit-log?filters[action][$eq]=siteplan.mapping_changed",
            Some(&admin),
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.json);
    assert_eq!(
        audit.json["meta"]["pagination"]["total"], 3,
        "{}",
        audit.json
    );
}

#[actix_web::test]
async fn bad_mappings_name_each_unknown_element_and_block_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 3).await;

    // No drawing yet: nothing to map (409), and the report is that of an empty drawing.
    put_mapping(
        &app,
        project,
        Some(&admin),
        &json!({"elements": {"shape-7": "A2"}}),
    )
    .await
    .assert_problem(StatusCode::CONFLICT, "no_siteplan");
    let empty = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/mapping"),
            Some(&admin),
        )
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.json);
    assert_eq!(empty.json["elementCount"], 0);
    assert_eq!(empty.json["matched"], json!([]));
    assert_eq!(
        empty.json["unitsWithoutElement"].as_array().map(Vec::len),
        Some(3)
    );
    let res = put_svg(&app, project, &admin, DRAWING).await;
    assert_eq!(res.status, StatusCode::OK);
    let before = matched(&res.json);

    let res = put_mapping(
        &app,
        project,
        Some(&admin),
        &json!({"elements": {"nope": "A2", "shape-8": "Z9", "shape-7": "A2"}}),
    )
    .await;
    res.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let mut errors: Vec<(String, String)> = res.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().into(),
                e["code"].as_str().unwrap().into(),
            )
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        vec![
            ("elements.nope".into(), "unknown_element".into()),
            ("elements.shape-8".into(), "unknown_unit".into()),
        ]
    );
    assert!(res.json["errors"].to_string().contains("Z9"));
    let got = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/mapping"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        matched(&got.json),
        before,
        "a refused request changes nothing"
    );

    // Malformed bodies are refused like every other body, never with a 5xx.
    for body in [
        json!({"elements": {"shape-7": 12}}),
        json!({"elements": ["shape-7"]}),
        json!({"elements": {}, "extra": true}),
        json!({}),
    ] {
        put_mapping(&app, project, Some(&admin), &body)
            .await
            .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    // Roles.
    put_mapping(&app, project, None, &json!({"elements": {}}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let (_, marketing) = app.user(Role::Marketing, true).await;
    put_mapping(&app, project, Some(&marketing), &json!({"elements": {}}))
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    app.get(
        &format!("/api/v1/projects/{project}/siteplan/mapping"),
        Some(&marketing),
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN, "forbidden");
    put_mapping(&app, Uuid::now_v7(), Some(&admin), &json!({"elements": {}}))
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[actix_web::test]
async fn manual_mappings_survive_a_reupload_where_the_element_survives() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 3).await;
    assert_eq!(
        put_svg(&app, project, &admin, DRAWING).await.status,
        StatusCode::OK
    );
    let res = put_mapping(
        &app,
        project,
        Some(&admin),
        &json!({"elements": {"shape-7": "A2", "shape-8": "A3"}}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);

    let res = put_svg(&app, project, &admin, REDRAWN).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    assert_eq!(
        matched(&res.json),
        vec![entry("A1", "A1", "id"), entry("A2", "shape-7", "manual")]
    );
    assert_eq!(res.json["unitsWithoutElement"], json!(["A3"]));
    let warnings = res.json["warnings"].to_string();
    assert!(
        warnings.contains("shape-8") && warnings.contains("A3"),
        "{warnings}"
    );

    // The dropped mapping is gone for good: the old drawing back does not revive it.
    let res = put_svg(&app, project, &admin, DRAWING).await;
    assert_eq!(
        matched(&res.json),
        vec![entry("A1", "A1", "id"), entry("A2", "shape-7", "manual")]
    );
    assert!(!res.json["warnings"].to_string().contains("shape-8"));
}

#[actix_web::test]
async fn a_mapping_saved_through_one_instance_is_served_by_the_other() {
    let a = TestApp::spawn().await;
    let b = a.spawn_peer(SpawnOptions::default()).await;
    let (_, admin) = a.admin().await;
    let (project, _) = a.project_with_units(&admin, 3).await;
    assert_eq!(
        put_svg(&a, project, &admin, DRAWING).await.status,
        StatusCode::OK
    );

    // B prepares and caches the drawing before the mapping exists.
    let svg = colored_svg(&b, project).await;
    assert_eq!(fill_of(&svg, "shape-7").as_deref(), Some("#cccccc"));
    let geo = b
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    assert!(!geo.json.to_string().contains("shape-7"));

    let res = put_mapping(
        &a,
        project,
        Some(&admin),
        &json!({"elements": {"shape-7": "A2"}}),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);

    let svg = colored_svg(&b, project).await;
    assert_eq!(
        fill_of(&svg, "shape-7").as_deref(),
        Some("#22c55e"),
        "{svg}"
    );
    let geo = b
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    assert!(geo.json.to_string().contains("shape-7"), "{}", geo.json);
    let report = b
        .get(
            &format!("/api/v1/projects/{project}/siteplan/mapping"),
            Some(&admin),
        )
        .await;
    assert!(matched(&report.json).contains(&entry("A2", "shape-7", "manual")));
}

/// The hit test of docs/flutter.md ("Geometry: turning a tap into a unit"), in Rust: the smallest
/// unit whose outline contains the point (even-odd ray casting), else none.
fn hit(geometry: &Value, x: f64, y: f64) -> Option<String> {
    let mut best: Option<(f64, String)> = None;
    for u in geometry["units"].as_array()? {
        let b = &u["bbox"];
        let (bx, by) = (b["x"].as_f64()?, b["y"].as_f64()?);
        let (bw, bh) = (b["width"].as_f64()?, b["height"].as_f64()?);
        if x < bx || x > bx + bw || y < by || y > by + bh {
            continue;
        }
        let pts: Vec<(f64, f64)> = u["outline"]
            .as_array()?
            .iter()
            .map(|p| (p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap()))
            .collect();
        assert!(
            (3..=64).contains(&pts.len()),
            "an outline has 3 to 64 points: {u}"
        );
        let mut inside = false;
        let mut j = pts.len() - 1;
        for i in 0..pts.len() {
            let (a, c) = (pts[i], pts[j]);
            if (a.1 > y) != (c.1 > y) && x < (c.0 - a.0) * (y - a.1) / (c.1 - a.1) + a.0 {
                inside = !inside;
            }
            j = i;
        }
        if inside && best.as_ref().is_none_or(|(area, _)| bw * bh < *area) {
            best = Some((bw * bh, u["blockNumber"].as_str()?.to_owned()));
        }
    }
    best.map(|(_, b)| b)
}

#[actix_web::test]
async fn outlines_hit_test_taps_like_the_flutter_guide() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let res = app
        .post(
            "/api/v1/projects",
            Some(&admin),
            &json!({"name": "Outline", "location": "Bogor"}),
        )
        .await;
    let project: Uuid = res.json["id"].as_str().unwrap().parse().unwrap();
    let units: Vec<Value> = ["C1", "C2", "C3", "C4"]
        .iter()
        .map(|b| json!({"blockNumber": b, "type": "36/72", "price": 1}))
        .collect();
    let res = app
        .post(
            &format!("/api/v1/projects/{project}/units"),
            Some(&admin),
            &Value::Array(units),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.json);
    // C1 is an L whose notch holds C2; C3 is a square turned 45°; C4 is a `<use>` of a lot symbol.
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100%" height="100%" viewBox="0 0 300 200">
  <defs><symbol id="lot"><rect width="40" height="40"/></symbol></defs>
  <path id="C1" d="M0 0 H100 V50 H50 V100 H0 Z" fill="#eee"/>
  <rect id="C2" x="55" y="55" width="40" height="40" fill="#eee"/>
  <g transform="translate(120 0)"><g transform="rotate(45 30 30)"><rect id="C3" x="10" y="10" width="40" height="40" fill="#eee"/></g></g>
  <use id="C4" xlink:href="#lot" x="220" y="120"/>
</svg>"##;
    let res = put_svg(&app, project, &admin, svg).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let geo = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    assert_eq!(geo.status, StatusCode::OK);
    assert_eq!(
        geo.json["units"].as_array().unwrap().len(),
        4,
        "{}",
        geo.json
    );

    assert_eq!(hit(&geo.json, 25.0, 25.0).as_deref(), Some("C1"));
    assert_eq!(hit(&geo.json, 75.0, 25.0).as_deref(), Some("C1"));
    // Inside C1's box but in its notch: C2, which a box test alone would not decide.
    assert_eq!(hit(&geo.json, 75.0, 75.0).as_deref(), Some("C2"));
    assert_eq!(hit(&geo.json, 52.0, 97.0), None, "in the notch, on no lot");
    // The turned square: its centre, and a corner of its box that is off the lot.
    assert_eq!(hit(&geo.json, 150.0, 30.0).as_deref(), Some("C3"));
    assert_eq!(hit(&geo.json, 150.0, 4.0).as_deref(), Some("C3"));
    assert_eq!(hit(&geo.json, 128.0, 6.0), None);
    // The `<use>` copy is placed by its x/y.
    assert_eq!(hit(&geo.json, 240.0, 140.0).as_deref(), Some("C4"));
    assert_eq!(hit(&geo.json, 200.0, 140.0), None);
}

#[actix_web::test]
async fn text_labels_map_the_shapes_under_them_and_are_never_coloured() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 4).await;
    // Lots without meaningful ids, numbered only by text: A1 through a transform and tspans,
    // "a-2" and "A 03" normalised like ids, and one label where two lots overlap (ambiguous, so unmapped).
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 500 100">
  <g id="lots" fill="#dddddd">
    <rect id="r1" x="0" y="0" width="100" height="100"/>
    <path id="r2" d="M110 0 H210 V100 H110 Z"/>
    <polygon id="r3" points="220,0 320,0 320,100 220,100"/>
    <rect id="r4a" x="330" y="0" width="90" height="100"/>
    <rect id="r4b" x="400" y="0" width="90" height="100"/>
  </g>
  <g id="labels" fill="#111111">
    <g transform="translate(40 50)"><text><tspan x="0" y="0">A</tspan><tspan>1</tspan></text></g>
    <text x="150" y="50">a-2</text>
    <text x="260" y="50">A 03</text>
    <text x="408" y="50" fill="#111111">A4</text>
  </g>
</svg>"##;
    let res = put_svg(&app, project, &admin, svg).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let got = matched(&res.json);
    assert!(got.contains(&entry("A1", "r1", "text")), "{got:?}");
    assert!(got.contains(&entry("A2", "r2", "text")), "{got:?}");
    assert!(got.contains(&entry("A3", "r3", "text")), "{got:?}");
    assert!(
        !got.iter().any(|(b, _, _)| b == "A4"),
        "a label over two lots is not guessed: {got:?}"
    );
    assert!(
        res.json["warnings"].to_string().contains("A4"),
        "the ambiguity is named: {}",
        res.json
    );

    let geo = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    let a1 = geo.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["blockNumber"] == "A1")
        .cloned()
        .unwrap();
    assert_eq!(
        a1["shapeIds"],
        json!(["r1"]),
        "what a client repaints: {a1}"
    );

    let svg = colored_svg(&app, project).await;
    assert_eq!(fill_of(&svg, "r1").as_deref(), Some("#22c55e"), "{svg}");
    assert!(
        !svg.contains("<text fill=\"#22c55e\""),
        "labels keep their paint: {svg}"
    );
    assert_eq!(
        svg.matches("#22c55e").count(),
        6,
        "three lots, fill and style each: {svg}"
    );
}
