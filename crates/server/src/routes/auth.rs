//! Registration, login and the caller's profile.

use actix_web::{HttpResponse, web};
use kavling_core::services::users::{Access, LoginInput, RegisterInput, UserView};

use crate::error::ApiResult;
use crate::extract::Auth;
use crate::state::AppState;

/// `POST /auth/register`.
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterInput>,
) -> ApiResult<HttpResponse> {
    let session = state.services.register(body.into_inner()).await?;
    Ok(HttpResponse::Created().json(session))
}

/// `POST /auth/login`.
pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<LoginInput>,
) -> ApiResult<HttpResponse> {
    let session = state.services.login(body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(session))
}

/// `GET /me`.
pub async fn me(state: web::Data<AppState>, auth: Auth) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}
