//! Customers (staff).

use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::services::bookings::Viewer;
use kavling_core::services::customers::NewCustomer;
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /customers` (ADMIN or MARKETING).
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    body: web::Json<NewCustomer>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let customer = state
        .services
        .create_customer(&ctx.actor(&user), Viewer::of(&user).role, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(customer))
}

/// `GET /customers` (staff, list conventions).
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let page = state
        .services
        .list_customers(Viewer::of(&user).role, req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /customers/{id}` (staff).
pub async fn get(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let customer = state
        .services
        .get_customer(Viewer::of(&user).role, path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(customer))
}
