//! Registration, login and the caller's profile.

use crate::error::ProblemBody;
use actix_web::{HttpResponse, web};
use kavling_core::services::users::Session;
use kavling_core::services::users::{Access, LoginInput, RegisterInput, UserView};

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::state::AppState;

/// `POST /auth/register`.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterInput,
    responses((status = 201, body = Session), (status = 403, description = "ADMIN cannot self-register", body = ProblemBody),
        (status = 409, description = "`email_taken`", body = ProblemBody),
        (status = 429, description = "Too many attempts from this address (`rate_limited`, with Retry-After)", body = ProblemBody), (status = 422, description = "Validation failed (`validation_failed`, with field errors)", body = ProblemBody)))]
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterInput>,
) -> ApiResult<HttpResponse> {
    let session = state.services.register(body.into_inner()).await?;
    Ok(HttpResponse::Created().json(session))
}

/// `POST /auth/login`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, body = Session), (status = 401, description = "`invalid_credentials`", body = ProblemBody),
        (status = 429, description = "Too many attempts from this address (`rate_limited`, with Retry-After)", body = ProblemBody)))]
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginInput>,
) -> ApiResult<HttpResponse> {
    let session = state.services.login(body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(session))
}

/// `GET /me`.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = UserView)))]
pub async fn me(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}
