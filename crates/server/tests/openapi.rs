//! The OpenAPI document is served, is 3.1, documents every route with its errors, and `/docs` works offline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use actix_web::http::StatusCode;
use common::TestApp;

/// Every (method, path) the server routes under /api/v1 and at the root, as documented.
const DOCUMENTED: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/admin/users/{id}/kyc"),
    ("get", "/api/v1/admin/audit-log"),
    ("get", "/api/v1/admin/users"),
    ("post", "/api/v1/me/password"),
    ("post", "/api/v1/me/watches"),
    ("get", "/api/v1/me/watches"),
    ("delete", "/api/v1/me/watches/{id}"),
    ("get", "/api/v1/me/notifications"),
    ("post", "/api/v1/me/notifications/read"),
    ("post", "/api/v1/admin/users/{id}/disable"),
    ("post", "/api/v1/admin/users/{id}/enable"),
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/{id}"),
    ("put", "/api/v1/projects/{id}/siteplan"),
    ("get", "/api/v1/projects/{id}/siteplan.svg"),
    ("get", "/api/v1/projects/{id}/siteplan/geometry"),
    ("get", "/api/v1/projects/{id}/siteplan/mapping"),
    ("put", "/api/v1/projects/{id}/siteplan/mapping"),
    ("get", "/api/v1/projects/{id}/units"),
    ("post", "/api/v1/projects/{id}/units"),
    ("get", "/api/v1/projects/{id}/availability"),
    ("get", "/api/v1/units/{id}"),
    ("patch", "/api/v1/units/{id}"),
    ("post", "/api/v1/me/kyc"),
    ("get", "/api/v1/admin/users/{id}/kyc/{document}"),
    ("post", "/api/v1/leads"),
    ("get", "/api/v1/leads"),
    ("post", "/api/v1/leads/{id}/unlock"),
    ("get", "/api/v1/wallet"),
    ("get", "/api/v1/wallet/transactions"),
    ("post", "/api/v1/admin/wallets/{userId}/topup"),
    ("post", "/api/v1/customers"),
    ("get", "/api/v1/customers"),
    ("get", "/api/v1/customers/{id}"),
    ("post", "/api/v1/bookings"),
    ("get", "/api/v1/bookings"),
    ("get", "/api/v1/bookings/export.csv"),
    ("get", "/api/v1/bookings/{id}"),
    ("patch", "/api/v1/bookings/{id}"),
    ("delete", "/api/v1/bookings/{id}"),
    ("post", "/api/v1/bookings/{id}/documents"),
    ("get", "/api/v1/bookings/{id}/documents"),
    ("get", "/api/v1/booking-documents/{id}/file"),
    ("patch", "/api/v1/booking-documents/{id}"),
    ("post", "/api/v1/bookings/{id}/schedule"),
    ("get", "/api/v1/bookings/{id}/invoices"),
    ("get", "/api/v1/invoices"),
    ("get", "/api/v1/invoices/export.csv"),
    ("get", "/api/v1/invoices/{id}"),
    ("post", "/api/v1/invoices/{id}/payments"),
    ("get", "/api/v1/payments"),
    ("get", "/api/v1/payments/{id}"),
    ("patch", "/api/v1/payments/{id}"),
    ("get", "/api/v1/payments/{id}/proof"),
    ("post", "/api/v1/leads/{id}/disputes"),
    ("get", "/api/v1/disputes"),
    ("patch", "/api/v1/disputes/{id}"),
    ("get", "/api/v1/conversations"),
    ("get", "/api/v1/conversations/{id}/messages"),
    ("post", "/api/v1/conversations/{id}/messages"),
];

#[actix_web::test]
async fn openapi_document_covers_the_routes_and_docs_load_offline() {
    let app = TestApp::spawn().await;
    let res = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for (method, path) in DOCUMENTED {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }
    // OpenAPI requires a description on every response (client generators refuse it otherwise)
    // and unique operation ids (generated clients are named after them).
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            assert!(!id.is_empty(), "{method} {path} has no operationId");
            assert!(ids.insert(id.clone()), "operationId {id} is used twice");
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ProblemBody"].is_object());
    assert!(doc["paths"]["/api/v1/units/{id}"]["patch"]["responses"]["409"].is_object());

    let mut res = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("cdn."),
        "the docs page must not load from a CDN"
    );
}

/// Every link names an operation that exists and fills a parameter it has (or merges into a
/// body it takes); every create operation links to something; the identifier patterns are the
/// server's own rule strings; and the rules JSON Schema states beside the derives are there.
#[actix_web::test]
async fn links_resolve_and_the_rules_are_stated() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.json;
    let mut ops = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.insert(
                op["operationId"].as_str().unwrap().to_owned(),
                (path, method, op),
            );
        }
    }
    let mut links = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut has_links = false;
            for response in op["responses"].as_object().unwrap().values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    has_links = true;
                    links += 1;
                    let target = link["operationId"].as_str().unwrap();
                    let (_, _, target_op) = ops.get(target).unwrap_or_else(|| {
                        panic!("{method} {path}: link {name} to unknown {target}")
                    });
                    for param in link["parameters"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|p| p.0)
                    {
                        assert!(
                            target_op["parameters"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|p| p["name"] == param.as_str()),
                            "{method} {path}: link {name} fills {param}, which {target} lacks"
                        );
                    }
                    if link["requestBody"].is_object() {
                        assert!(
                            target_op["requestBody"].is_object(),
                            "{name}: {target} has no body"
                        );
                    }
                }
            }
            if *method == "post" && op["responses"]["201"].is_object() {
                assert!(
                    has_links,
                    "{method} {path} creates something but links nowhere"
                );
            }
        }
    }
    assert!(links >= 38, "{links} links");

    let customer = &doc["components"]["schemas"]["NewCustomer"]["properties"];
    use kavling_core::services::identity_numbers;
    assert_eq!(
        customer["ktpNumber"]["pattern"],
        identity_numbers::nik_field_pattern()
    );
    assert_eq!(
        customer["npwpNumber"]["pattern"],
        identity_numbers::npwp_field_pattern()
    );
    assert_eq!(
        customer["phone"]["pattern"],
        identity_numbers::phone_pattern()
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["NewBooking"]["if"]["required"][0], "customerId");
    assert_eq!(schemas["PaymentDecision"]["then"]["required"][0], "reason");
    assert_eq!(
        schemas["ScheduleInput"]["properties"]["items"]["maxContains"],
        1
    );
    for form in ["KycUploadDoc", "DocumentUploadDoc", "PaymentUploadDoc"] {
        assert_eq!(schemas[form]["additionalProperties"], false, "{form}");
    }
}

/// 401 and 403 are stated once, by the document's conventions: every secured operation answers
/// 401, and one open to some roles only answers a 403 naming them (from its bearer scopes),
/// unless it states a more specific 403 itself.
#[actix_web::test]
async fn auth_failures_come_from_the_conventions() {
    let app = TestApp::spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.json;
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();

    let wallet = op("/api/v1/wallet", "get");
    assert!(
        wallet["responses"]["401"]["description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    assert!(wallet["responses"]["403"].is_null(), "{wallet}");

    let create_project = op("/api/v1/projects", "post");
    assert_eq!(create_project["security"][0]["bearer"][0], "ADMIN");
    assert_eq!(
        create_project["responses"]["403"]["description"],
        "Not ADMIN (`forbidden`)"
    );
    let book = op("/api/v1/bookings", "post");
    let text = book["responses"]["403"]["description"].as_str().unwrap();
    assert!(
        text.contains("kyc_required") && text.contains("ADMIN or MARKETING"),
        "{text}"
    );

    let disable = op("/api/v1/admin/users/{id}/disable", "post");
    assert!(
        disable["responses"]["403"]["description"]
            .as_str()
            .unwrap()
            .contains("cannot_disable_self")
    );
    assert!(op("/api/v1/projects", "get")["responses"]["401"].is_null());
}
