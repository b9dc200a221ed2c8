//! Units and availability.

use crate::error::ProblemBody;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::units::{Availability, CreatedUnits, UnitView};
use kavling_core::services::units::{NewUnits, UnitPatch};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /projects/{id}/units` (admin): one unit or an array; answers with the same shape.
#[utoipa::path(post, path = "/api/v1/projects/{id}/units", tag = "units", security(("bearer" = ["ADMIN"])), request_body = NewUnits,
    params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 201, description = "The created unit, or an array when an array was sent", body = CreatedUnits), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "`duplicate_block_number`", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<NewUnits>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let many = matches!(body.0, NewUnits::Many(_));
    let project_id = path.into_inner();
    let mut created = state
        .services
        .create_units(&ctx.actor(&admin), project_id, body.into_inner())
        .await?;
    Ok(match (many, created.pop()) {
        (false, Some(one)) => HttpResponse::Created().json(one),
        (_, last) => {
            created.extend(last);
            HttpResponse::Created().json(created)
        }
    })
}

/// `GET /projects/{id}/units` (public, list conventions).
#[utoipa::path(get, path = "/api/v1/projects/{id}/units", tag = "units", params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = Page<UnitView>), (status = 400, description = "Unknown field, operator or value (`invalid_query`)", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn list(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(
        state
            .services
            .list_units(path.into_inner(), req.query_string())
            .await?,
    ))
}

/// `GET /units/{id}` (public).
#[utoipa::path(get, path = "/api/v1/units/{id}", tag = "units", params(("id" = Uuid, Path, description = "Unit id")),
    responses((status = 200, body = UnitView), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn get(state: web::Data<AppState>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.services.get_unit(path.into_inner()).await?))
}

/// `PATCH /units/{id}` (admin or verified marketing).
#[utoipa::path(patch, path = "/api/v1/units/{id}", tag = "units", security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])), request_body = UnitPatch,
    params(("id" = Uuid, Path, description = "Unit id")),
    responses((status = 200, body = UnitView), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "`status_conflict` (expectedStatus no longer holds) or `unit_has_booking`", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn patch(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<UnitPatch>,
) -> ApiResult<HttpResponse> {
    let (id, patch) = (path.into_inner(), body.into_inner());
    let unit = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::VerifiedStaff).await?;
            services.patch_unit(&ctx.actor(&user), id, patch).await
        })
        .await?;
    Ok(HttpResponse::Ok().json(unit))
}

/// `GET /projects/{id}/availability` (public).
#[utoipa::path(get, path = "/api/v1/projects/{id}/availability", tag = "units", params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = Availability), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn availability(
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.services.availability(path.into_inner()).await?))
}
