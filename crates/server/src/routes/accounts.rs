//! Accounts: the admins' user list, password changes, disabling and enabling users.

use crate::error::ProblemBody;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::accounts::{AdminUserView, ChangePasswordInput};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `GET /admin/users` (list conventions): the KYC queue.
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = ["ADMIN"])),
    responses((status = 200, body = Page<AdminUserView>), (status = 400, description = "Unknown field, operator or value (`invalid_query`)", body = ProblemBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    state.services.require(&auth.0, Access::Admin).await?;
    let page = state.services.list_users(req.query_string()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /me/password`: 204; every token of the user issued before, this one included, stops
/// working on every instance.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", security(("bearer" = [])), request_body = ChangePasswordInput,
    responses((status = 204, description = "Changed; sign in again with the new password"),
        (status = 403, description = "The current password is wrong (`invalid_credentials`; 403, not 401: the session itself is fine)", body = ProblemBody),
        (status = 422, description = "The new password is shorter than 8 characters or equals the current one (`validation_failed`)", body = ProblemBody),
        (status = 429, description = "Too many attempts from this address (`rate_limited`, with Retry-After)", body = ProblemBody)))]
pub async fn change_password(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    body: web::Json<ChangePasswordInput>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    state
        .services
        .change_password(&ctx.actor(&user), &user, body.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /admin/users/{id}/disable`: the user's tokens stop working at once, everywhere.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/disable", tag = "admin", security(("bearer" = ["ADMIN"])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = AdminUserView), (status = 403, description = "Not an ADMIN (`forbidden`), or the caller's own account (`cannot_disable_self`)", body = ProblemBody), (status = 404, description = "No such user (`not_found`)", body = ProblemBody)))]
pub async fn disable(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let user = state
        .services
        .disable_user(&ctx.actor(&admin), admin.id, path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `POST /admin/users/{id}/enable`: the user may sign in again (tokens from before the disable
/// stay revoked).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/enable", tag = "admin", security(("bearer" = ["ADMIN"])),
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = AdminUserView), (status = 404, description = "No such user (`not_found`)", body = ProblemBody)))]
pub async fn enable(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let user = state
        .services
        .enable_user(&ctx.actor(&admin), path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(user))
}
