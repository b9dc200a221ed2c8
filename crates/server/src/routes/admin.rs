//! Admin-only actions: KYC decisions and the audit log.

use crate::error::ProblemBody;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::audit::AuditView;
use kavling_core::list::Page;
use kavling_core::services::users::UserView;
use kavling_core::services::users::{Access, KycDecisionInput};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /admin/users/{id}/kyc`.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/kyc", tag = "admin", security(("bearer" = ["ADMIN"])), request_body = KycDecisionInput,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, body = UserView), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn decide_kyc(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    body: web::Json<KycDecisionInput>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let user = state
        .services
        .decide_kyc(&ctx.actor(&admin), path.into_inner(), body.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// `GET /admin/audit-log` (list conventions).
#[utoipa::path(get, path = "/api/v1/admin/audit-log", tag = "admin", security(("bearer" = ["ADMIN"])), 
    responses((status = 200, body = Page<AuditView>), (status = 400, description = "Unknown field, operator or value (`invalid_query`)", body = ProblemBody)))]
pub async fn audit_log(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    state.services.require(&auth.0, Access::Admin).await?;
    let page = state.services.audit_log(req.query_string()).await?;
    Ok(HttpResponse::Ok().json(page))
}
