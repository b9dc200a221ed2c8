//! Conversations between a buyer and the marketing user who unlocked their lead, and their messages.

use actix_web::{HttpRequest, HttpResponse, web};
use kavling_core::list::Page;
use kavling_core::services::bookings::Viewer;
use kavling_core::services::conversations::{ConversationView, MessageView, NewMessage, Posted};
use kavling_core::services::users::Access;
use uuid::Uuid;

use crate::error::{ApiResult, ProblemBody};
use crate::extract::Auth;
use crate::state::AppState;

/// `GET /conversations` (its two parties; ADMIN sees all; list conventions).
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", operation_id = "list_conversations",
    security(("bearer" = [])),
    description = "The caller's conversations (as the buyer or the marketing user); an admin sees all. A conversation opens when a marketing user unlocks a lead. Live messages: WebSocket channel `conversation:<id>` (parties only).",
    responses((status = 200, body = Page<ConversationView>)))]
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
        .list_conversations(Viewer::of(&user), req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /conversations/{id}/messages` (its parties; ADMIN may read; list conventions, oldest first).
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations", operation_id = "list_messages",
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "Conversation id")),
    description = "Messages in seq order (oldest first unless `sort=seq:desc`); `filters[seq][$gt]=<n>` reads what came after a seq. Message text is user content: show it as text, never as HTML.",
    responses((status = 200, body = Page<MessageView>), (status = 403, description = "Not a party of the conversation (`forbidden`)", body = ProblemBody), (status = 404, description = "Not found", body = ProblemBody)))]
pub async fn messages(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let user = state
        .services
        .require(&auth.0, Access::Authenticated)
        .await?;
    let page = state
        .services
        .list_messages(Viewer::of(&user), path.into_inner(), req.query_string())
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `POST /conversations/{id}/messages` (its two parties only): 201, or 200 with the message an
/// earlier request with the same `clientMessageId` made.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", operation_id = "post_message",
    security(("bearer" = [])), request_body = NewMessage, params(("id" = Uuid, Path, description = "Conversation id")),
    description = "Sends a message; it reaches `conversation:<id>` subscribers as a `message` frame and the other party as a `message` notification. The same `clientMessageId` again (even concurrently) returns the first message with 200.",
    responses((status = 201, description = "A new message", body = MessageView), (status = 200, description = "The message this clientMessageId already made", body = MessageView),
        (status = 403, description = "Not a party of the conversation (`forbidden`)", body = ProblemBody),
        (status = 404, description = "Not found", body = ProblemBody),
        (status = 422, description = "Text or clientMessageId empty or too long (`validation_failed`)", body = ProblemBody),
        (status = 429, description = "Too many messages from this user (`rate_limited`); see Retry-After", body = ProblemBody,
            headers(("Retry-After" = u64, description = "Seconds until the next message is allowed")))))]
pub async fn post_message(
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<Uuid>,
    body: web::Json<NewMessage>,
) -> ApiResult<HttpResponse> {
    let (id, input) = (path.into_inner(), body.into_inner());
    let posted = state
        .write(move |services| async move {
            let user = services.require(&auth.0, Access::Authenticated).await?;
            services.post_message(Viewer::of(&user), id, input).await
        })
        .await?;
    Ok(match posted {
        Posted::Created(m) => HttpResponse::Created().json(m),
        Posted::Existing(m) => HttpResponse::Ok().json(m),
    })
}
