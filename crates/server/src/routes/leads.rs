//! Leads: buyers leave interest with consent; verified marketing staff list and unlock them.

use crate::error::ProblemBody;
use crate::openapi::OptionalIdempotencyKey;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::idempotency::{self, Outcome};
use kavling_core::services::leads::{ConsentContext, CreateLeadInput};
use kavling_core::services::leads::{LeadCreated, LeadView};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::ApiResult;
use crate::extract::{Auth, RequestCtx};
use crate::state::AppState;

/// The validated `Idempotency-Key` header, if any (400 when empty, too long or not text).
pub fn idempotency_key(req: &HttpRequest) -> ApiResult<Option<String>> {
    let raw = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            kavling_core::CoreError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be printable ASCII",
            )
        })?),
    };
    Ok(idempotency::parse_key(raw)?)
}

/// Sends an idempotent outcome: the fresh body, or the stored one of the first request.
pub fn outcome_response<T>(outcome: &Outcome<T>) -> HttpResponse {
    let (status, body) = outcome.response();
    let mut res = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    res.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    ));
    if matches!(outcome, Outcome::Replayed(_)) {
        res.insert_header(("idempotent-replayed", "true"));
    }
    res.body(body.to_owned())
}

/// `POST /leads` (BUYER): 201 with the new lead, or 200 with the buyer's open lead for the unit.
#[utoipa::path(post, path = "/api/v1/leads", tag = "leads", security(("bearer" = [])), request_body = CreateLeadInput,
    responses((status = 201, description = "A new lead", body = LeadCreated), (status = 200, description = "The buyer's open lead for this unit", body = LeadCreated),
        (status = 401, description = "Missing or invalid token", body = ProblemBody), (status = 403, description = "Wrong role (`forbidden`) or e-KYC not approved (`kyc_required`)", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`)", body = ProblemBody)))]
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
#[utoipa::path(get, path = "/api/v1/leads", tag = "leads", security(("bearer" = [])),
    responses((status = 200, body = Page<LeadView>), (status = 401, description = "Missing or invalid token", body = ProblemBody), (status = 403, description = "Wrong role (`forbidden`) or e-KYC not approved (`kyc_required`)", body = ProblemBody)))]
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
#[utoipa::path(post, path = "/api/v1/leads/{id}/unlock", tag = "leads", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Lead id"), OptionalIdempotencyKey),
    responses((status = 200, description = "Unlocked (or already unlocked by you): the contact revealed", body = LeadView),
        (status = 400, description = "Malformed Idempotency-Key (`invalid_idempotency_key`)", body = ProblemBody),
        (status = 401, description = "Missing or invalid token", body = ProblemBody), (status = 402, description = "`insufficient_balance`; nothing changed", body = ProblemBody), (status = 403, description = "Wrong role (`forbidden`) or e-KYC not approved (`kyc_required`)", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody),
        (status = 409, description = "`lead_already_unlocked` by someone else; no charge", body = ProblemBody),
        (status = 422, description = "`idempotency_key_reused`", body = ProblemBody)))]
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
