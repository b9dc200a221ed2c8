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
    let mut req = app
        .client
        .put(app.url(&format!("/api/v1/projects/{project}/siteplan")))
        .insert_header(("content-type", "image/svg+xml"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let mut res = req.send_body(body.to_owned()).await.unwrap();
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
