//! The caller's wallet and ledger, and the admin top-up.

use crate::error::ProblemBody;
use crate::openapi::RequiredIdempotencyKey;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::CoreError;
use kavling_core::list::Page;
use kavling_core::services::users::Access;
use kavling_core::services::wallet::TopupInput;
use kavling_core::services::wallet::{TopupView, WalletTxView, WalletView};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::extract::{idempotency_key, outcome_response};
use crate::state::AppState;

/// `GET /wallet`: `{balance, currency}` (0 without a wallet).
#[utoipa::path(get, path = "/api/v1/wallet", tag = "wallet", security(("bearer" = [])), responses((status = 200, body = WalletView)))]
pub async fn get(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    Ok(HttpResponse::Ok().json(state.services.wallet(user.id).await?))
}

/// `GET /wallet/transactions` (list conventions): signed ledger rows, newest first.
#[utoipa::path(get, path = "/api/v1/wallet/transactions", tag = "wallet", security(("bearer" = [])),
    responses((status = 200, body = Page<WalletTxView>)))]
pub async fn transactions(
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
        .wallet_transactions(user.id, req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /admin/wallets/{userId}/topup` (ADMIN) with a required `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/admin/wallets/{userId}/topup", tag = "wallet", security(("bearer" = ["ADMIN"])), request_body = TopupInput,
    params(("userId" = Uuid, Path, description = "The wallet owner"), RequiredIdempotencyKey),
    responses((status = 200, body = TopupView), (status = 400, description = "Missing or malformed Idempotency-Key", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "`idempotency_key_reused` (the key was used for a different request) or `balance_limit` (the wallet would exceed its cap)", body = ProblemBody),
        (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn topup(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    req: HttpRequest,
    body: web::Json<TopupInput>,
) -> ApiResult<HttpResponse> {
    let admin = state.services.require(&auth.0, Access::Admin).await?;
    let key = idempotency_key(&req)?.ok_or_else(|| {
        CoreError::bad_request(
            "idempotency_key_required",
            "send an Idempotency-Key header so a retried top-up cannot credit twice",
        )
    })?;
    let outcome = state
        .services
        .topup(
            &ctx.actor(&admin),
            path.into_inner(),
            body.into_inner(),
            Some(key),
        )
        .await?;
    Ok(outcome_response(&outcome))
}
