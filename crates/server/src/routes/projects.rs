//! Projects.

use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::services::projects::{NewProject, ProjectView};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /projects` (admin).
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
pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.services.list_projects(req.query_string()).await?))
}

/// `GET /projects/{id}` (public).
pub async fn get(state: web::Data<AppState>, path: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    let project = state.services.project(path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ProjectView::from(project)))
}
