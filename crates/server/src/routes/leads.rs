//! Leads: buyers leave interest with consent; verified marketing staff list and unlock them.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::services::idempotency::{self, Outcome};
use kavling_core::services::leads::{ConsentContext, CreateLeadInput};
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
