//! Leads: buyers leave interest with consent; verified marketing staff list and unlock them.

use crate::error::ProblemBody;
use crate::openapi::OptionalIdempotencyKey;
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::leads::{ConsentContext, CreateLeadInput};
use kavling_core::services::leads::{LeadCreated, LeadView};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx, idempotency_key, outcome_response};
use crate::state::AppState;

/// `POST /leads` (BUYER): 201 with the new lead, or 200 with the buyer's open lead for the unit.
#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", security(("bearer" = ["BUYER"])), request_body = CreateLeadInput,
    responses((status = 201, description = "A new lead", body = LeadCreated), (status = 200, description = "The buyer's open lead for this unit", body = LeadCreated),
        (status = 404, description = "Not found", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
pub async fn create(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    body: web::Json<CreateLeadInput>,
) -> ApiResult<HttpResponse> {
    let buyer = state.services.require(&auth.0, Access::Buyer).await?;
    let (created, lead) = state
        .services
        .create_lead(
            &ctx.actor(&buyer),
            &buyer,
            body.into_inner(),
            ConsentContext {
                ip: ctx.ip.clone(),
                user_agent: ctx.user_agent.clone(),
            },
        )
        .await?;
    Ok(if created {
        HttpResponse::Created().json(lead)
    } else {
        HttpResponse::Ok().json(lead)
    })
}

/// `GET /leads` (verified MARKETING, ADMIN; list conventions): contacts masked unless unlocked
/// by the caller.
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", security(("bearer" = ["ADMIN", "MARKETING with approved e-KYC"])),
    responses((status = 200, body = Page<LeadView>)))]
pub async fn list(
    state: web::Data<AppState>,
    auth: Auth,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let viewer = state
        .services
        .require(&auth.0, Access::VerifiedStaff)
        .await?;
    let page = state
        .services
        .list_leads(&viewer, req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /leads/{id}/unlock` (verified MARKETING), optional `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/leads/{id}/unlock", tag = "leads", security(("bearer" = ["MARKETING with approved e-KYC"])),
    params(("id" = Uuid, Path, description = "Lead id"), OptionalIdempotencyKey),
    responses((status = 200, description = "Unlocked (or already unlocked by you): the contact revealed", body = LeadView),
        (status = 400, description = "Malformed Idempotency-Key (`invalid_idempotency_key`)", body = ProblemBody),
        (status = 402, description = "`insufficient_balance`; nothing changed", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "`lead_already_unlocked` by someone else, no charge; or `idempotency_key_reused` (the key was used for a different request)", body = ProblemBody)))]
pub async fn unlock(
    state: web::Data<AppState>,
    auth: Auth,
    ctx: RequestCtx,
    path: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::VerifiedMarketing)
        .await?;
    let key = idempotency_key(&req)?;
    let outcome = state
        .services
        .unlock_lead(&ctx.actor(&user), user.id, path.into_inner(), key)
        .await?;
    Ok(outcome_response(&outcome))
}
