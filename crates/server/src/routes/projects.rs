//! Projects.

use crate::error::ProblemBody;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::projects::{NewProject, ProjectView};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /projects` (admin).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", security(("bearer" = ["ADMIN"])), request_body = NewProject,
    responses((status = 201, body = ProjectView), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    body: web::Json<NewProject>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let project = state
        .services
        .create_project(&ctx.actor(&admin), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(project))
}

/// `GET /projects` (public, list conventions).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", 
    responses((status = 200, body = Page<ProjectView>), (status = 400, description = "Unknown field, operator or value (`invalid_query`)", body = ProblemBody)))]
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.services.list_projects(req.query_string()).await?))
}

/// `GET /projects/{id}` (public).
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = Uuid, Path, description = "Project id")),
    responses((status = 200, body = ProjectView), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn get(state: web::Data<AppState>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let project = state.services.project(path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ProjectView::from(project)))
}
