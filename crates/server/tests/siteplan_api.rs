//! Siteplan endpoints over HTTP: atomic upload with a mapping report, designer-readable
//! rejections, size cap, sanitized serving with security headers, ETag/304, colouring, geometry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::http::StatusCode;
use common::{SpawnOptions, TestApp, TestResponse};
use serde_json::json;
use uuid::Uuid;

const SMALL: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 100">
  <defs><style>.cls-1{fill:#c69c6d}</style></defs>
  <g id="A1"><rect class="cls-1" x="10" y="10" width="80" height="80"/></g>
  <path id="_x41_2" d="M110 10 H190 V90 H110 Z" onclick="steal()"/>
  <rect id="Blok A No 3" x="210" y="10" width="80" height="80"/>
  <rect id="A99" x="0" y="0" width="1" height="1"/>
  <script>alert(1)</script>
  <a href="javascript:alert(2)"><text x="5" y="98">Griya</text></a>
</svg>"#;

async fn put_svg(app: &TestApp, project: Uuid, token: Option<&str>, body: &str) -> TestResponse {
    put_bytes(app, project, token, body.as_bytes().to_vec()).await
}

async fn put_bytes(
    app: &TestApp,
    project: Uuid,
    token: Option<&str>,
    body: Vec<u8>,
) -> TestResponse {
    let mut req = app
        .client
        .put(app.url(&format!("/api/v1/projects/{project}/siteplan")))
        .insert_header(("content-type", "image/svg+xml"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let len = body.len();
    let mut res = req
        .send_body(body)
        .await
        .unwrap_or_else(|e| panic!("PUT of {len} bytes: {e:?}"));
    let bytes = res.body().limit(64 * 1024 * 1024).await.unwrap();
    TestResponse {
        status: res.status(),
        headers: res.headers().clone(),
        json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        bytes: bytes.to_vec(),
    }
}

#[actix_web::test]
async fn upload_maps_sanitizes_and_serves_with_headers_etag_and_colours() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin().await;
    let (project, units) = app.project_with_units(&admin, 4).await;

    let svg_path = format!("/api/v1/projects/{project}/siteplan.svg");
    app.get(&svg_path, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let res = put_svg(&app, project, Some(&admin), SMALL).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    let matched: Vec<(String, String)> = res.json["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["blockNumber"].as_str().unwrap().into(),
                m["elementId"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(matched.contains(&("A1".into(), "A1".into())), "{matched:?}");
    assert!(
        matched.contains(&("A2".into(), "_x41_2".into())),
        "{matched:?}"
    );
    assert!(
        matched.contains(&("A3".into(), "Blok A No 3".into())),
        "{matched:?}"
    );
    assert_eq!(res.json["unitsWithoutElement"], json!(["A4"]));
    assert!(
        res.json["unmatchedElementIds"]
            .as_array()
            .unwrap()
            .contains(&json!("A99"))
    );
    assert!(res.json["elementCount"].as_u64().unwrap() >= 5);

    let res = app.get(&svg_path, None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(
        res.header("content-type")
            .unwrap()
            .starts_with("image/svg+xml")
    );
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(
        res.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    let body = String::from_utf8(res.bytes.clone()).unwrap();
    for forbidden in ["<script", "onclick", "javascript:", "<style"] {
        assert!(
            !body.to_lowercase().contains(forbidden),
            "{forbidden} survived: {body}"
        );
    }
    assert!(body.contains("#c69c6d"), "class rule not inlined: {body}");
    let etag = res.header("etag").unwrap();

    // 304 while nothing changes; a new ETag after a unit status change.
    let res = app
        .client
        .get(app.url(&svg_path))
        .insert_header(("if-none-match", etag.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let a1 = units.iter().find(|(b, _)| b == "A1").unwrap().1;
    let res = app
        .patch(
            &format!("/api/v1/units/{a1}"),
            Some(&admin),
            &json!({"status": "SOLD"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let res = app
        .client
        .get(app.url(&svg_path))
        .insert_header(("if-none-match", etag.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let colored = app.get(&format!("{svg_path}?colored=true"), None).await;
    assert_eq!(colored.status, StatusCode::OK);
    let text = String::from_utf8(colored.bytes.clone()).unwrap();
    assert!(text.contains("#ef4444"), "SOLD colour missing");
    assert!(text.contains("#22c55e"), "AVAILABLE colour missing");
    assert_ne!(
        colored.header("etag"),
        res.headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned())
    );
    app.get(&format!("{svg_path}?colored=maybe"), None)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_query");

    let geo = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    assert_eq!(geo.status, StatusCode::OK, "{}", geo.json);
    assert_eq!(
        geo.json["viewBox"],
        json!({"x": 0.0, "y": 0.0, "width": 300.0, "height": 100.0})
    );
    let a1_geo = geo.json["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["blockNumber"] == "A1")
        .unwrap();
    assert_eq!(a1_geo["unitId"], a1.to_string());
    assert_eq!(
        a1_geo["bbox"],
        json!({"x": 10.0, "y": 10.0, "width": 80.0, "height": 80.0})
    );
    assert_eq!(a1_geo["center"], json!({"x": 50.0, "y": 50.0}));
}

#[actix_web::test]
async fn rejected_uploads_are_designer_readable_and_change_nothing() {
    let app = TestApp::spawn_with(SpawnOptions {
        max_siteplan_bytes: 4096,
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (_, buyer) = app.user(kavling_core::domain::Role::Buyer, false).await;
    let (project, _) = app.project_with_units(&admin, 2).await;

    put_svg(&app, project, None, SMALL)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    put_svg(&app, project, Some(&buyer), SMALL)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "forbidden");

    let res = put_svg(&app, project, Some(&admin), SMALL).await;
    assert_eq!(res.status, StatusCode::OK);
    let before = app
        .get(&format!("/api/v1/projects/{project}/siteplan.svg"), None)
        .await;

    let doctype = "<?xml version=\"1.0\"?>\n<!DOCTYPE svg [<!ENTITY x \"boom\">]>\n<svg xmlns=\"http://www.w3.org/2000/svg\">&x;</svg>";
    let res = put_svg(&app, project, Some(&admin), doctype).await;
    res.assert_problem(StatusCode::BAD_REQUEST, "invalid_svg");
    let detail = res.json["detail"].as_str().unwrap();
    assert!(detail.starts_with("line 2, column "), "{detail}");
    assert!(detail.to_lowercase().contains("doctype"), "{detail}");

    for bad in [
        "",
        "not xml at all",
        "<html><body/></html>",
        "<svg><g></svg>",
    ] {
        put_svg(&app, project, Some(&admin), bad)
            .await
            .assert_problem(StatusCode::BAD_REQUEST, "invalid_svg");
    }
    let deep = format!("<svg>{}{}</svg>", "<g>".repeat(300), "</g>".repeat(300));
    put_svg(&app, project, Some(&admin), &deep)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_svg");
    let huge = format!("<svg>{}</svg>", "<g/>".repeat(2000));
    put_svg(&app, project, Some(&admin), &huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "svg_too_large");
    put_svg(&app, Uuid::now_v7(), Some(&admin), SMALL)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    let after = app
        .get(&format!("/api/v1/projects/{project}/siteplan.svg"), None)
        .await;
    assert_eq!(after.bytes, before.bytes);
    assert_eq!(after.header("etag"), before.header("etag"));
    let p = app.get(&format!("/api/v1/projects/{project}"), None).await;
    assert_eq!(p.json["siteplanVersion"], 1);
}

#[actix_web::test]
async fn demo_seed_maps_every_unit_of_the_illustrator_siteplan() {
    let app = TestApp::spawn_with(SpawnOptions {
        seed_demo: true,
        ..SpawnOptions::default()
    })
    .await;
    let list = app.get("/api/v1/projects", None).await;
    assert_eq!(list.json["meta"]["pagination"]["total"], 1);
    let project = list.json["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list.json["data"][0]["name"], "Griya Asri Residence");
    let geo = app
        .get(
            &format!("/api/v1/projects/{project}/siteplan/geometry"),
            None,
        )
        .await;
    assert_eq!(geo.json["units"].as_array().unwrap().len(), 120);
    let avail = app
        .get(&format!("/api/v1/projects/{project}/availability"), None)
        .await;
    assert_eq!(avail.json["units"].as_array().unwrap().len(), 120);
    assert_eq!(avail.json["seq"], 8);
}

/// Issue #21 over HTTP: a lot whose text disagrees with its name, a near-miss, a tool's id, an
/// external background; the report's counts, lists and per-element warnings, the same after a
/// restart of the cache (GET mapping), `.svgz` uploads and HEAD.
const REPORT_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" viewBox="0 0 400 100">
  <image href="plan.png" width="400" height="100"/>
  <g id="A1"><rect x="10" y="10" width="80" height="80" fill="#fff"/><text x="30" y="50">A2</text></g>
  <rect id="A3" x="110" y="10" width="80" height="80" fill="#fff"/>
  <rect id="rect9" inkscape:label="Shop-A4" x="210" y="10" width="80" height="80" fill="#fff"/>
  <path id="path1234" d="M 300,95 H 390" fill="none" stroke="#777"/>
</svg>"##;

fn expected_report_fields(report: &serde_json::Value) {
    let image = "the background image \"plan.png\" was removed: the server never loads external files; embed the image as a data: URI on export";
    let disagree = "element \"A1\" is matched to unit A1 by its id, but the text drawn in it reads \"A2\"; check which is right";
    let hint = "element \"rect9\" matches no unit; without its leading word it is unit A4";
    assert_eq!(
        report["warnings"],
        json!([image, disagree, hint]),
        "{report}"
    );
    assert_eq!(
        report["elementWarnings"],
        json!([
            {"elementId": "A1", "message": disagree},
            {"elementId": "rect9", "message": hint},
        ])
    );
    assert_eq!(
        report["matched"],
        json!([
            {"blockNumber": "A1", "elementId": "A1", "source": "id"},
            {"blockNumber": "A3", "elementId": "A3", "source": "id"},
        ])
    );
    assert_eq!(report["unitsWithoutElement"], json!(["A2", "A4"]));
    assert_eq!(report["shapeCount"], 3);
    assert_eq!(report["candidateCount"], 1);
    assert_eq!(
        report["candidates"],
        json!([{"elementId": "rect9", "label": "Shop-A4", "hint": "A4"}])
    );
    assert_eq!(
        report["otherElements"],
        json!([{"elementId": "path1234", "label": null, "hint": null}])
    );
    assert_eq!(report["unmatchedElementIds"], json!(["rect9"]));
    assert_eq!(report["unmatchedShapeIds"], json!(["rect9"]));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[actix_web::test]
async fn report_an_admin_can_act_on_with_svgz_and_head() {
    // A 1 MiB cap keeps the gzip bomb below quick to inflate in a debug build.
    let cap = 1024 * 1024;
    let app = TestApp::spawn_with(SpawnOptions {
        max_siteplan_bytes: cap,
        ..SpawnOptions::default()
    })
    .await;
    let (_, admin) = app.admin().await;
    let (project, _) = app.project_with_units(&admin, 4).await;

    let res = put_svg(&app, project, Some(&admin), REPORT_SVG).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    expected_report_fields(&res.json);
    // Another instance prepares the report from the database: the same, removals included.
    let peer = app.spawn_peer(SpawnOptions::default()).await;
    let mapping_path = format!("/api/v1/projects/{project}/siteplan/mapping");
    let res = peer.get(&mapping_path, Some(&admin)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    expected_report_fields(&res.json);

    // HEAD answers like GET, without a body.
    let svg_path = format!("/api/v1/projects/{project}/siteplan.svg");
    let get = app.get(&svg_path, None).await;
    assert_eq!(get.status, StatusCode::OK);
    let mut head = app.client.head(app.url(&svg_path)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let body = head.body().await.unwrap();
    assert!(body.is_empty(), "{body:?}");
    for h in [
        "etag",
        "content-type",
        "content-security-policy",
        "cache-control",
    ] {
        assert_eq!(
            head.headers().get(h).and_then(|v| v.to_str().ok()),
            get.header(h).as_deref(),
            "{h}"
        );
    }
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(get.bytes.len().to_string().as_str())
    );
    let etag = get.header("etag").unwrap();
    let head = app
        .client
        .head(app.url(&svg_path))
        .insert_header(("if-none-match", etag.as_str()))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::NOT_MODIFIED);
    let missing = app
        .client
        .head(app.url(&format!("/api/v1/projects/{}/siteplan.svg", Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // A gzip-compressed upload (.svgz) is decompressed: the same drawing, the same report.
    let res = put_bytes(&app, project, Some(&admin), gzip(REPORT_SVG.as_bytes())).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json);
    expected_report_fields(&res.json);
    assert_eq!(app.get(&svg_path, None).await.bytes, get.bytes);
    // A small file that inflates past the size limit stops at the limit: 413, nothing stored.
    let bomb = format!("<svg>{}</svg>", " ".repeat(cap));
    let packed = gzip(bomb.as_bytes());
    assert!(packed.len() < cap / 100);
    put_bytes(&app, project, Some(&admin), packed)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "svg_too_large");
    let mut broken = gzip(REPORT_SVG.as_bytes());
    broken.truncate(broken.len() / 2);
    put_bytes(&app, project, Some(&admin), broken)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, "invalid_svg");
    assert_eq!(app.get(&svg_path, None).await.bytes, get.bytes);
}
