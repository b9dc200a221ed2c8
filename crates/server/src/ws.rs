//! `GET /ws`: the actix-ws session loop. All protocol logic lives in the realtime hub; this loop
//! only moves frames: client text to the hub, the hub's queued frames to the socket, pings every
//! 20 s, and a close after 60 s of silence.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt;
use kavling_core::services::users::Access;
use kavling_realtime::{ConnectionHandle, Outbound};
use tokio::sync::mpsc;

use crate::extract::bearer_token;
use crate::state::AppState;

/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// Silence after which a connection is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest accepted client frame.
pub const MAX_FRAME: usize = 64 * 1024;

/// Whether the caller's token (header or `?token=`) allows staff channels.
async fn staff_allowed(state: &AppState, req: &HttpRequest) -> bool {
    let token = bearer_token(req).or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned())
    });
    let Some(token) = token else { return false };
    let Ok(claims) = state.services.tokens.verify(&token) else {
        return false;
    };
    state
        .services
        .require(&claims, Access::VerifiedStaff)
        .await
        .is_ok()
}

/// Upgrades to a WebSocket and runs the session.
pub async fn ws(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let staff = staff_allowed(&state, &req).await;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let (handle, outbound) = state.hub.connect();
    actix_web::rt::spawn(run_session(session, stream, handle, outbound, staff));
    Ok(response)
}

fn close_reason(code: u16, reason: &str) -> CloseReason {
    CloseReason {
        code: CloseCode::from(code),
        description: Some(reason.to_owned()),
    }
}

/// The session loop shared by `/ws` and the protocol-compliance echo route.
async fn run_session(
    mut session: actix_ws::Session,
    stream: actix_ws::MessageStream,
    handle: ConnectionHandle,
    mut outbound: mpsc::Receiver<Outbound>,
    staff: bool,
) {
    let mut stream = stream
        .max_frame_size(MAX_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME);
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let close = loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    last_heard = Instant::now();
                    handle.handle_text(&text, staff);
                }
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    last_heard = Instant::now();
                    // The protocol is JSON text; a binary frame is a malformed request.
                    handle.handle_text("\u{0}binary", staff);
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    last_heard = Instant::now();
                    if session.pong(&bytes).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(AggregatedMessage::Close(reason))) => break reason,
                Some(Err(e)) => {
                    let code = match e {
                        actix_ws::ProtocolError::Overflow => 1009,
                        _ => 1002,
                    };
                    break Some(close_reason(code, "protocol error"));
                }
                None => break None,
            },
            out = outbound.recv() => match out {
                Some(Outbound::Text(frame)) => {
                    if session.text(frame).await.is_err() {
                        break None;
                    }
                }
                Some(Outbound::Close { code, reason }) => break Some(close_reason(code, &reason)),
                None => break None,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    break Some(close_reason(1001, "idle for 60 s"));
                }
                if session.ping(b"").await.is_err() {
                    break None;
                }
            }
        }
    };
    drop(handle);
    let _ = session.close(close).await;
}
