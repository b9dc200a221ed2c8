//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` attributes and the
//! DTOs' `ToSchema` derives, served at `/api/v1/openapi.json` and browsable (offline) at `/docs`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The Strapi-style list parameters every list endpoint accepts (whitelisted per resource).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// A filter: `filters[field][$op]=value` with `$eq $ne $in $containsi $gt $gte $lt $lte`
    /// (`$in` repeats with indices: `filters[status][$in][0]=BOOKED`). Unknown fields or operators: 400 `invalid_query`.
    #[param(rename = "filters[field][$op]", value_type = Option<String>)]
    filters: Option<String>,
    /// Sort: `field:asc,other:desc`.
    #[param(value_type = Option<String>, example = "createdAt:desc")]
    sort: Option<String>,
    /// Page number, from 1.
    #[param(rename = "pagination[page]", value_type = Option<u64>, minimum = 1)]
    page: Option<u64>,
    /// Rows per page (default 25, at most 100).
    #[param(rename = "pagination[pageSize]", value_type = Option<u64>, minimum = 1, maximum = 100)]
    page_size: Option<u64>,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kavling API",
        description = "Real-time siteplan and unit availability for Indonesian housing developers. Errors are \
            application/problem+json with a stable `code`. The WebSocket protocol (`GET /ws`) is described in CONTRACT.md \
            and docs/flutter.md.",
    ),
    modifiers(&BearerAuth),
    paths(
        routes::health::healthz,
        routes::health::readyz,
        routes::auth::register,
        routes::auth::login,
        routes::auth::me,
        routes::admin::decide_kyc,
        routes::admin::audit_log,
        routes::projects::create,
        routes::projects::list,
        routes::projects::get,
        routes::units::create,
        routes::units::list,
        routes::units::get,
        routes::units::patch,
        routes::units::availability,
        routes::siteplans::upload,
        routes::siteplans::svg,
        routes::siteplans::geometry,
    ),
    tags(
        (name = "auth", description = "Registration, login, the caller"),
        (name = "admin", description = "KYC decisions and the audit trail"),
        (name = "projects", description = "Housing projects"),
        (name = "units", description = "Units and availability"),
        (name = "siteplans", description = "Siteplan upload and serving"),
        (name = "operations", description = "Health and readiness"),
    )
)]
pub struct ApiDoc;

/// The document as JSON (served at `/api/v1/openapi.json`).
pub fn json() -> String {
    ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into())
}
