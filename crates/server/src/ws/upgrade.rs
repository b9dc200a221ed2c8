//! Where a WebSocket connection leaves actix-http: its HTTP/1 dispatcher hands every request
//! that asks for a WebSocket upgrade, with the connection's socket, to [`Upgrades`].
//!
//! The request still goes through the application (routing, middleware, authentication, the
//! handlers in `ws.rs`, problem+json for every refusal). A handler that accepts leaves its
//! session in the request's [`UpgradeSlot`] and answers 101; this service then writes the 101
//! and runs the session on the bare socket. Anything else (a 401, a 404, another route's answer)
//! is written as is and the connection closed, since it asked to stop speaking HTTP.
//!
//! Why: after the handshake, actix-http keeps a dispatcher with an 8 KiB read and an 8 KiB write
//! buffer for the connection's life and copies every outbound byte into the latter. Those
//! buffers' touched pages were ~9 of the ~12.5 KiB an idle WebSocket cost (issue #20,
//! docs/BENCHMARKS.md); on the bare socket a quiet connection holds no buffer at all, and a
//! snapshot shared by every subscriber goes from its one copy straight into the kernel.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use actix_codec::{Framed, FramedParts};
use actix_http::body::BodySize;
use actix_http::{ConnectionType, HttpMessage, Request, Response, StatusCode, h1};
use actix_service::{Service, ServiceFactory};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::rt::net::TcpStream;
use futures_util::SinkExt;

use super::Accepted;

/// Left in an upgrade request's extensions: the handler that accepts the WebSocket puts its
/// session here (a request that reached the app some other way has no slot and is refused).
#[derive(Clone, Default)]
pub(crate) struct UpgradeSlot(Rc<Cell<Option<Accepted>>>);

impl UpgradeSlot {
    /// Hands the accepted session to the connection.
    pub(crate) fn accept(&self, session: Accepted) {
        self.0.set(Some(session));
    }

    fn take(&self) -> Option<Accepted> {
        self.0.take()
    }
}

/// The upgrade handler's factory: `app` builds this worker's own instance of the application
/// that upgrade requests are routed through.
pub struct Upgrades<F> {
    app: F,
}

impl<F> Upgrades<F> {
    /// Routes upgrade requests through the application `app` builds.
    pub fn new(app: F) -> Self {
        Upgrades { app }
    }
}

impl<F, S, B> ServiceFactory<(Request, Framed<TcpStream, h1::Codec>)> for Upgrades<F>
where
    F: ServiceFactory<Request, Config = (), Service = S, InitError = ()>,
    F::Future: 'static,
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ();
    type Error = actix_web::Error;
    type Config = ();
    type Service = UpgradeService<S>;
    type InitError = ();
    type Future = Pin<Box<dyn Future<Output = Result<Self::Service, ()>>>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let app = self.app.new_service(());
        Box::pin(async move {
            Ok(UpgradeService {
                app: Rc::new(app.await?),
            })
        })
    }
}

/// Serves one worker's upgrade requests (see the module documentation).
pub struct UpgradeService<S> {
    app: Rc<S>,
}

impl<S, B> Service<(Request, Framed<TcpStream, h1::Codec>)> for UpgradeService<S>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ();
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), actix_web::Error>>>>;

    actix_service::always_ready!();

    fn call(&self, (req, framed): (Request, Framed<TcpStream, h1::Codec>)) -> Self::Future {
        Box::pin(upgrade(self.app.clone(), req, framed))
    }
}

/// Routes the request, then either runs the accepted session on the socket or writes the
/// app's answer and closes.
async fn upgrade<S, B>(
    app: Rc<S>,
    req: Request,
    mut framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let slot = UpgradeSlot::default();
    req.extensions_mut().insert(slot.clone());
    // Boxed: the app's future can be larger than the session, and this future lives as long as
    // the connection, sized for its largest state.
    let mut response: Response<BoxBody> = match Box::pin(app.call(req)).await {
        Ok(res) => res.map_into_boxed_body().into(),
        Err(e) => e.into(),
    };
    match slot.take() {
        Some(session) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let (head, _) = response.into_parts();
            if framed.send((head, BodySize::None).into()).await.is_err() {
                // The client left during the handshake; dropping the session disconnects it.
                return Ok(());
            }
            // Only the socket and what the client sent behind its handshake go on; the codec and
            // the dispatcher's 8 KiB write buffer are dropped here, not kept for the session.
            let FramedParts { io, read_buf, .. } = framed.into_parts();
            session.run(io, read_buf).await;
        }
        // Refused (or a middleware replaced the 101): the session, if any, is dropped unused.
        _ => {
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            // A client that leaves before reading the answer only ends its own connection.
            let _ = send_response(&mut framed, response).await;
        }
    }
    Ok(())
}

/// Writes a whole response (head, then its body as it streams).
async fn send_response(
    framed: &mut Framed<TcpStream, h1::Codec>,
    response: Response<BoxBody>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (head, body) = response.into_parts();
    framed.feed((head, body.size()).into()).await?;
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        framed.feed(h1::Message::Chunk(Some(chunk?))).await?;
    }
    framed.send(h1::Message::Chunk(None)).await?;
    Ok(())
}
