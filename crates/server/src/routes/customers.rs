//! Customers (staff).

use crate::error::ProblemBody;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::bookings::Viewer;
use kavling_core::services::customers::CustomerView;
use kavling_core::services::customers::NewCustomer;
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /customers` (ADMIN or MARKETING).
#[utoipa::path(post, path = "/api/v1/customers", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])), request_body = NewCustomer,
    responses((status = 201, body = CustomerView), (status = 409, description = "`duplicate_customer` (same NIK)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
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
#[utoipa::path(get, path = "/api/v1/customers", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, body = Page<CustomerView>)))]
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
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "bookings", security(("bearer" = ["ADMIN", "MARKETING"])), params(("id" = Uuid, Path, description = "Customer id")),
    responses((status = 200, body = CustomerView), (status = 404, description = "Not found", body = ProblemBody)))]
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
