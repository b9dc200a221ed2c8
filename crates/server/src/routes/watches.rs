//! Watches and the notification inbox of the signed-in user (`/me/watches`, `/me/notifications`).

use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::notifications::{NotificationView, ReadMark, ReadResult};
use kavling_core::services::users::Access;
use kavling_core::services::watches::{NewWatch, WatchView};
use uuid::Uuid;

use crate::error::{ApiResult, ProblemBody};
use crate::extract::Auth;
use crate::state::AppState;

/// `POST /me/watches` (any signed-in user): a unit, or a project with a filter.
#[utoipa::path(post, path = "/api/v1/me/watches", tag = "notifications", operation_id = "create_watch",
    security(("bearer" = [])), request_body = NewWatch,
    description = "Watch a unit (`{unitId}`) or a project's units matching a filter (`{projectId, filter?}`). \
        When a watched unit becomes AVAILABLE or its price drops, the user gets exactly one notification per change.",
    responses((status = 201, body = WatchView), (status = 404, description = "Unknown unit or project", body = ProblemBody),
        (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    body: web::Json<NewWatch>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    let watch = state
        .services
        .create_watch(user.id, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(watch))
}

/// `GET /me/watches` (the caller's own; list conventions).
#[utoipa::path(get, path = "/api/v1/me/watches", tag = "notifications", operation_id = "list_watches",
    security(("bearer" = [])),
    responses((status = 200, body = Page<WatchView>), (status = 400, description = "Bad list query (`invalid_query`)", body = ProblemBody)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    let page = state
        .services
        .list_watches(user.id, req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `DELETE /me/watches/{id}` (the caller's own).
#[utoipa::path(delete, path = "/api/v1/me/watches/{id}", tag = "notifications", operation_id = "delete_watch",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Watch id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such watch of the caller's", body = ProblemBody)))]
pub async fn delete(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    state
        .services
        .delete_watch(user.id, path.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /me/notifications` (the caller's own, newest first; `filters[readAt][$null]=true` for unread).
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "notifications", operation_id = "list_notifications",
    security(("bearer" = [])),
    description = "The inbox, newest first by default. `filters[readAt][$null]=true` lists the unread ones. \
        The same items arrive live on the WebSocket channel `user:<ownUserId>` with `since` replay.",
    responses((status = 200, body = Page<NotificationView>), (status = 400, description = "Bad list query (`invalid_query`)", body = ProblemBody)))]
pub async fn notifications(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    let page = state
        .services
        .list_notifications(user.id, req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /me/notifications/read` `{upTo}`: marks the caller's notifications up to that seq read.
#[utoipa::path(post, path = "/api/v1/me/notifications/read", tag = "notifications", operation_id = "mark_notifications_read",
    security(("bearer" = [])), request_body = ReadMark,
    responses((status = 200, body = ReadResult), (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
pub async fn mark_read(
    state: web::Data<AppState>,
    auth: Auth,
    body: web::Json<ReadMark>,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    let result = state
        .services
        .mark_notifications_read(user.id, body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(result))
}
