//! Lead disputes: the unlocking marketing user files one; an admin approves (refund) or rejects.

use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::bookings::Viewer;
use kavling_core::services::disputes::{DisputeDecision, DisputeView, NewDispute};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::{ApiResult, ProblemBody};
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /leads/{id}/disputes` (the marketing user who unlocked the lead, within 7 days).
#[utoipa::path(post, path = "/api/v1/leads/{id}/disputes", tag = "leads", operation_id = "file_dispute",
    security(("bearer" = [])), request_body = NewDispute, params(("id" = Uuid, Path, description = "Lead id")),
    responses((status = 201, body = DisputeView), (status = 403, description = "Not the user who unlocked the lead (`forbidden`)", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "More than 7 days after the unlock (`dispute_window_closed`), or an open or approved dispute exists (`dispute_exists`)", body = ProblemBody),
        (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<NewDispute>,
) -> ApiResult<HttpResponse> {
    let (id, input) = (path.into_inner(), body.into_inner());
    let dispute = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::Authenticated).await?;
            services
                .file_dispute(&ctx.actor(&user), Viewer::of(&user), id, input)
                .await
        })
        .await?;
    Ok(HttpResponse::Created().json(dispute))
}

/// `GET /disputes` (staff; admins all, marketing users their own; list conventions).
#[utoipa::path(get, path = "/api/v1/disputes", tag = "leads", operation_id = "list_disputes", security(("bearer" = ["ADMIN", "MARKETING"])),
    responses((status = 200, body = Page<DisputeView>)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state.services.require(&auth.0, Access::Staff).await?;
    let page = state
        .services
        .list_disputes(Viewer::of(&user), req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `PATCH /disputes/{id}` (ADMIN): approve (refund once) or reject.
#[utoipa::path(patch, path = "/api/v1/disputes/{id}", tag = "leads", operation_id = "decide_dispute",
    security(("bearer" = ["ADMIN"])), request_body = DisputeDecision, params(("id" = Uuid, Path, description = "Dispute id")),
    description = "Approval refunds the lead's price once (a REFUND ledger row). The same decision again: 200, nothing more.",
    responses((status = 200, body = DisputeView), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "The opposite decision was made already (`dispute_already_decided`)", body = ProblemBody),
        (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
pub async fn decide(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<DisputeDecision>,
) -> ApiResult<HttpResponse> {
    let (id, input) = (path.into_inner(), body.into_inner());
    let dispute = state
        .write(move |services| async move {
            let admin = services.require(&auth.0, Access::Admin).await?;
            services
                .decide_dispute(&ctx.actor(&admin), Viewer::of(&admin), id, input)
                .await
        })
        .await?;
    Ok(HttpResponse::Ok().json(dispute))
}
