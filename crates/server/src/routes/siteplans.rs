//! Siteplan upload and serving.

use crate::error::ProblemBody;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use kavling_core::CoreError;
use kavling_core::services::siteplans::{GeometryView, MappingInput, MappingReport};
use kavling_core::services::users::Access;
use serde::Deserialize;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// The CSP of a served siteplan: nothing may load or run; inline styles and data: images only.
pub const SITEPLAN_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";

fn too_large(cap: usize) -> CoreError {
    CoreError::TooLarge {
        code: "svg_too_large",
        message: format!(
            "the siteplan is larger than the {} MiB limit",
            cap / (1024 * 1024)
        ),
    }
}

/// `PUT /projects/{id}/siteplan` (admin): the raw SVG body; the size cap is enforced while reading.
#[utoipa::path(put, path = "/api/v1/projects/{id}/siteplan", tag = "siteplans", security(("bearer" = ["ADMIN"])),
    request_body(content = String, content_type = "image/svg+xml", description = "The raw SVG"),
    params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = MappingReport), (status = 400, description = "`invalid_svg`, with line and column", body = ProblemBody),
        (status = 404, description = "Not found", body = ProblemBody), (status = 413, description = "`svg_too_large`", body = ProblemBody)))]
pub async fn upload(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    req: HttpRequest,
    mut body: web::Payload,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let cap = state.max_siteplan_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(too_large(cap).into());
    }
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(64 * 1024).min(cap));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            CoreError::bad_request("bad_request", format!("the upload broke off: {e}"))
        })?;
        if bytes.len() + chunk.len() > cap {
            return Err(too_large(cap).into());
        }
        bytes.extend_from_slice(&chunk);
    }
    let report = state
        .services
        .replace_siteplan(&ctx.actor(&admin), path.into_inner(), &bytes)
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Query of `GET /projects/{id}/siteplan.svg`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SvgQuery {
    /// Colour units by status.
    #[serde(default)]
    pub colored: bool,
}

/// `GET /projects/{id}/siteplan.svg` (public), with ETag/304.
#[utoipa::path(get, path = "/api/v1/projects/{id}/siteplan.svg", tag = "siteplans",
    params(("id" = Uuid, Path, description = "Project id"), SvgQuery, ("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
    responses((status = 200, description = "The sanitized SVG", content_type = "image/svg+xml", body = String), (status = 304, description = "Not modified"), (status = 400, description = "Unknown field, operator or value (`invalid_query`)", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn svg(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    query: web::Query<SvgQuery>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let inm = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let body = state
        .services
        .siteplan_svg(path.into_inner(), query.colored, inm)
        .await?;
    let mut res = match body.svg {
        None => HttpResponse::NotModified(),
        Some(_) => HttpResponse::Ok(),
    };
    res.insert_header((header::ETAG, body.etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, SITEPLAN_CSP));
    Ok(match body.svg {
        None => res.finish(),
        Some(svg) => res
            .content_type("image/svg+xml; charset=utf-8")
            .body(svg.as_bytes().to_vec()),
    })
}

/// `HEAD /projects/{id}/siteplan.svg` (public): the GET's status and headers without its body,
/// so a client can check the ETag or size first.
#[utoipa::path(head, path = "/api/v1/projects/{id}/siteplan.svg", tag = "siteplans",
    params(("id" = Uuid, Path, description = "Project id"), SvgQuery, ("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
    responses((status = 200, description = "The headers of the sanitized SVG (no body)"), (status = 304, description = "Not modified"), (status = 400, description = "Unknown field, operator or value (`invalid_query`); no body"), (status = 404, description = "Not found; no body")))]
pub async fn svg_head(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    query: web::Query<SvgQuery>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    // The same answer as GET; the HTTP layer sends no body for HEAD.
    svg(state, path, query, req).await
}

/// `GET /projects/{id}/siteplan/geometry` (public).
#[utoipa::path(get, path = "/api/v1/projects/{id}/siteplan/geometry", tag = "siteplans", params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = GeometryView), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn geometry(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.services.siteplan_geometry(path.into_inner()).await?))
}

/// `GET /projects/{id}/siteplan/mapping` (admin): the current mapping report.
#[utoipa::path(get, path = "/api/v1/projects/{id}/siteplan/mapping", tag = "siteplans", security(("bearer" = ["ADMIN"])),
    params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = MappingReport),
        (status = 404, description = "No such project (before a siteplan is uploaded, the report of an empty drawing)", body = ProblemBody)))]
pub async fn mapping(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    state.services.require(&auth.0, Access::Admin).await?;
    let report = state.services.siteplan_mapping(path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// `PUT /projects/{id}/siteplan/mapping` (admin): set or clear manual element → unit mappings.
#[utoipa::path(put, path = "/api/v1/projects/{id}/siteplan/mapping", tag = "siteplans", security(("bearer" = ["ADMIN"])),
    request_body = MappingInput,
    params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, description = "The new mapping report", body = MappingReport),
        (status = 400, description = "Malformed body", body = ProblemBody),
        (status = 404, description = "No such project", body = ProblemBody),
        (status = 409, description = "`siteplan_changed`: a new drawing was uploaded meanwhile; `no_siteplan`: none is uploaded yet", body = ProblemBody),
        (status = 422, description = "`validation_failed`: an unknown element id (`unknown_element`) or block number (`unknown_unit`), each named in `errors`", body = ProblemBody)))]
pub async fn set_mapping(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<MappingInput>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let report = state
        .services
        .set_siteplan_mapping(&ctx.actor(&admin), path.into_inner(), &body)
        .await?;
    Ok(HttpResponse::Ok().json(report))
}
