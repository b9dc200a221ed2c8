//! Admin-only actions: KYC decisions and the audit log.

use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::services::users::{Access, KycDecisionInput};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// `POST /admin/users/{id}/kyc`.
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
pub async fn audit_log(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    state.services.require(&auth.0, Access::Admin).await?;
    let page = state.services.audit_log(req.query_string()).await?;
    Ok(HttpResponse::Ok().json(page))
}
