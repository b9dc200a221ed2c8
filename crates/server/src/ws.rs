//! `GET /ws`: WebSocket sessions. All protocol logic lives in the realtime hub; this module only
//! moves frames. The handlers accept the handshake (through the app: routing, middleware,
//! authentication); then `ws/upgrade.rs` takes the socket from actix-http and runs the session
//! on it, one future per connection with two halves:
//! - Outbound, [`Outgoing`] drains the session's own frames (pongs, pings, its Close) and then
//!   the hub's queue for this connection, encodes them in batches, and writes them to the socket
//!   with vectored writes: a snapshot or replay page shared by every subscriber goes from its one
//!   copy into the kernel. No task, channel or buffer stands between the hub and the socket.
//! - Inbound, the session reads the client's frames (requests go to the hub), answers pings,
//!   pings, closes idle connections and enforces the WebSocket rules (fragments, UTF-8, close
//!   codes, size cap).
//!
//! The same session serves `/ws-echo` (enabled by `KAVLING_WS_ECHO=1`), which echoes data
//! messages back so the Autobahn protocol cases can test exactly this code.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_codec::Encoder;
use actix_http::ws::Codec;
use actix_web::rt::net::TcpStream;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Item, Message, ProtocolError};
use bytestring::ByteString;
use futures_util::StreamExt;
use kavling_core::services::users::{Access, authorize};
use kavling_realtime::{CLOSE_SLOW_CLIENT, ConnectionHandle, Hub, Outbound, Outbox, Principal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::state::AppState;

mod client;
mod upgrade;
use client::ClientFrames;
use upgrade::UpgradeSlot;
pub use upgrade::Upgrades;

/// Close code for an idle connection ("going away").
pub const CLOSE_IDLE: u16 = 1001;
/// Close code for a protocol error.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code for a text message that is not UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code for a message over the size cap.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Largest message of the protocol-compliance echo route (Autobahn's section 9 sends up to 16 MiB).
pub const ECHO_MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Timers and limits of WebSocket sessions; `Default` gives production values.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// How often the server pings.
    pub ping_every: Duration,
    /// Silence after which a connection is closed (1001).
    pub idle_timeout: Duration,
    /// Longest wait for room to queue an echoed message (`/ws-echo`); a client that reads
    /// slower than this is closed with 1013. (On `/ws` the hub's bounded queue closes a slow
    /// client instead: nothing there waits for the socket.)
    pub write_timeout: Duration,
    /// Largest client message in bytes (one frame or all fragments together); larger closes with 1009.
    pub max_message: usize,
    /// A connection whose peer acknowledges none of our bytes for this long is dropped by the
    /// kernel (`TCP_USER_TIMEOUT`, every accepted socket): a client that stopped reading (an app
    /// suspended in the background) would otherwise hold its buffers for ever, since its TCP
    /// stack keeps answering the zero-window probes.
    pub unacked_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            ping_every: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_message: 64 * 1024,
            unacked_timeout: Duration::from_secs(60),
        }
    }
}

/// Who the caller's token (header or `?token=`) says they are, checked once here: the
/// principal the hub closes the connection for when that token is revoked, and whether it
/// allows staff channels. A missing, bad or revoked token connects anonymously.
async fn authenticate(state: &AppState, req: &HttpRequest) -> (Option<Principal>, bool) {
    let token = bearer_token(req).or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned())
    });
    let Some(token) = token else {
        return (None, false);
    };
    let Ok(claims) = state.services.tokens.verify(&token) else {
        return (None, false);
    };
    let Ok(user) = state.services.current_user(&claims).await else {
        return (None, false);
    };
    let principal = Principal {
        user_id: user.id,
        token_version: claims.ver,
    };
    let staff = authorize(&user, Access::VerifiedStaff).is_ok();
    (Some(principal), staff)
}

/// Frames the session writes itself at most queued at once; a client that does not read its
/// pongs and pings is closed as slow beyond this.
const OWN_FRAMES_LIMIT: usize = 64;
/// Echoed messages wait while this many frames or bytes are queued (`/ws-echo` back-pressure).
const ECHO_WINDOW_FRAMES: usize = 32;
const ECHO_WINDOW_BYTES: usize = 1024 * 1024;
/// One batch encodes at most about this much of a long backlog before it is written.
const CHUNK_BYTES: usize = 64 * 1024;
/// How much actix-http buffers from an HTTP response body before writing (its default is 32 KiB,
/// and a grown buffer is kept for the connection's life); WebSocket frames no longer pass
/// through it (see `ws/upgrade.rs`).
pub const H1_WRITE_LIMIT: usize = 4 * 1024;
/// A hub frame at least this long is not copied: its header goes in the batch and its payload
/// is written as the hub's own shared bytes (a server frame is not masked, so the payload goes
/// out as is). A snapshot is the same bytes for every subscriber at a seq: copied, 10,000
/// subscribes of a 200-unit project held 10,000 copies (~20 KB each) at once. Shorter frames
/// (live events) are copied into one batch, which is one write for a burst of them.
const SHARE_MIN_BYTES: usize = 1024;
/// Most buffers one vectored write takes (a batch of short frames, then shared payloads and
/// their headers).
const WRITE_SLICES: usize = 8;
/// After the server's Close and end of writing, how long the client may take to close its side;
/// what it sends meanwhile is read and dropped, so closing does not reset the connection under
/// its Close frame (RFC 6455 7.1.1: the server closes the TCP connection first).
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// `GET /ws`: accepts the WebSocket upgrade; the connection then runs a hub session.
pub async fn ws(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let mut handshake = handshake(&req)?;
    let slot = upgrade_slot(&req)?;
    let (principal, staff) = authenticate(&state, &req).await;
    let (handle, outbox) = state.hub.connect_as(principal);
    slot.accept(Accepted {
        hub: Some(outbox),
        mode: Mode::Hub {
            hub: state.hub.clone(),
            handle,
            staff,
        },
        config: state.ws.clone(),
        max_message: state.ws.max_message,
    });
    Ok(HttpResponse::from(handshake.finish().map_into_boxed_body()))
}

/// `GET /ws-echo` (only with `KAVLING_WS_ECHO=1`): the same session, echoing every text and
/// binary message; for WebSocket protocol-compliance runs (Autobahn).
pub async fn echo(state: web::Data<AppState>, req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let mut handshake = handshake(&req)?;
    upgrade_slot(&req)?.accept(Accepted {
        hub: None,
        mode: Mode::Echo,
        config: state.ws.clone(),
        max_message: ECHO_MAX_MESSAGE,
    });
    Ok(HttpResponse::from(handshake.finish().map_into_boxed_body()))
}

/// The 101 answer to a valid WebSocket handshake; any other request to a WebSocket route is
/// 400 `bad_request` (problem+json, like every refusal), saying what is wrong with it.
fn handshake(req: &HttpRequest) -> Result<actix_http::ResponseBuilder, ApiError> {
    actix_http::ws::handshake(req.head())
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket handshake: {e}")))
}

/// The connection's slot for an accepted session. Only a handshake that actix-http handed to
/// the upgrade service has one; a handshake it read as an ordinary request (one with a chunked
/// body) cannot become a WebSocket.
fn upgrade_slot(req: &HttpRequest) -> Result<UpgradeSlot, ApiError> {
    req.extensions()
        .get::<UpgradeSlot>()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("a WebSocket handshake carries no request body"))
}

/// A session its handler accepted, waiting for the socket.
pub(crate) struct Accepted {
    /// The hub's queue for this connection (`None` on the echo route).
    hub: Option<Outbox>,
    mode: Mode,
    config: WsConfig,
    max_message: usize,
}

impl Accepted {
    /// Runs the session on the connection's socket until it ends; `received` holds what the
    /// client sent right behind its handshake. The reading half is a task of its own: the hub's
    /// frames wake only the writer (polling both halves on every frame, as one future, cost
    /// latency at 10,000 sockets on a saturated core: docs/BENCHMARKS.md, session 12).
    async fn run(self, socket: TcpStream, received: BytesMut) {
        let (read, write) = socket.into_split();
        let own = SharedFrames::default();
        let (body_gone, gone) = oneshot::channel();
        let outgoing = Outgoing::new(own.clone(), self.hub, body_gone);
        let client = ClientFrames::new(read, received, gone, self.max_message);
        actix_web::rt::spawn(read_half(
            own,
            client,
            self.mode,
            self.config,
            self.max_message,
        ));
        write_frames(write, outgoing).await;
    }
}

/// The session, reading the client; after a clean close it lingers up to [`CLOSE_LINGER`]
/// for the client to close its side.
async fn read_half(
    own: SharedFrames,
    mut client: ClientFrames<OwnedReadHalf>,
    mode: Mode,
    config: WsConfig,
    max_message: usize,
) {
    run_session(own, &mut client, mode, config, max_message).await;
    if client.writer_closed() {
        let mut read = client.into_reader();
        // Boxed: only a closing connection needs its buffer.
        let _ = Box::pin(timeout(CLOSE_LINGER, discard_until_eof(&mut read))).await;
    }
}

/// Writes the session's frames until its Close is written and the sending side shut down (then
/// it tells the reading half so) or the socket fails. Returning drops `outgoing`, which ends the
/// client's stream and so the session.
async fn write_frames(mut socket: OwnedWriteHalf, mut outgoing: Outgoing) {
    loop {
        match std::future::poll_fn(|cx| outgoing.poll_ready(cx)).await {
            Ok(true) => {}
            Ok(false) => {
                if socket.shutdown().await.is_ok()
                    && let Some(closed) = outgoing.body_gone.take()
                {
                    let _ = closed.send(());
                }
                return;
            }
            Err(_) => return,
        }
        while outgoing.unsent_len > 0 {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let n = outgoing.io_slices(&mut slices);
            match socket.write_vectored(&slices[..n]).await {
                Ok(0) | Err(_) => return,
                Ok(written) => outgoing.advance(written),
            }
        }
    }
}

/// Reads and drops whatever arrives until the client closes its side.
async fn discard_until_eof(read: &mut OwnedReadHalf) {
    let mut sink = [0u8; 1024];
    while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
}

fn close_reason(code: u16, reason: &str) -> CloseReason {
    CloseReason {
        code: CloseCode::from(code),
        description: Some(reason.to_owned()),
    }
}

/// The close code for a frame the codec rejected.
fn protocol_close(e: &ProtocolError) -> CloseReason {
    match e {
        ProtocolError::Overflow => close_reason(CLOSE_TOO_BIG, "message too big"),
        ProtocolError::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<std::str::Utf8Error>()) =>
        {
            close_reason(CLOSE_INVALID_DATA, "text is not valid UTF-8")
        }
        _ => close_reason(CLOSE_PROTOCOL, "protocol error"),
    }
}

/// A complete data message from the client.
enum Data {
    Text(ByteString),
    Binary(Bytes),
}

/// What a session does with the client's data messages.
enum Mode {
    /// `/ws`: text goes to the hub; the hub's frames reach the client through the body.
    Hub {
        hub: Arc<Hub>,
        handle: ConnectionHandle,
        staff: bool,
    },
    /// `/ws-echo`: every text and binary message goes straight back.
    Echo,
}

impl Mode {
    /// Acts on one data message; `Err` ends the session with that close.
    async fn on_data(
        &mut self,
        own: &SharedFrames,
        data: Data,
        write_timeout: Duration,
    ) -> Result<(), Option<CloseReason>> {
        match self {
            Mode::Hub { handle, staff, .. } => {
                match data {
                    Data::Text(text) => handle.handle_text(&text, *staff),
                    // The protocol is JSON text: a binary message is a malformed request.
                    Data::Binary(_) => handle.handle_text("binary frame", *staff),
                }
                Ok(())
            }
            Mode::Echo => {
                let msg = match data {
                    Data::Text(text) => Message::Text(text),
                    Data::Binary(bytes) => Message::Binary(bytes),
                };
                let room = std::future::poll_fn(|cx| own.borrow_mut().poll_echo_room(cx));
                match timeout(write_timeout, room).await {
                    Ok(true) => {
                        own.borrow_mut().push(msg);
                        Ok(())
                    }
                    Ok(false) => Err(None),
                    Err(_) => Err(Some(close_reason(CLOSE_SLOW_CLIENT, "client too slow"))),
                }
            }
        }
    }

    /// Queues a control frame; a client too slow to take its own frames is closed with 1013.
    fn control(&self, own: &SharedFrames, msg: Message) -> Result<(), Option<CloseReason>> {
        if own.borrow().frames.len() < OWN_FRAMES_LIMIT {
            own.borrow_mut().push(msg);
            return Ok(());
        }
        if let Mode::Hub { hub, .. } = self {
            hub.metrics().slow_client_closes.inc();
        }
        Err(Some(close_reason(CLOSE_SLOW_CLIENT, "client too slow")))
    }
}

/// The frames a session writes itself (pongs, pings, echoes, its Close), shared with the body
/// on the connection's worker thread.
type SharedFrames = Rc<RefCell<OwnFrames>>;

/// The session's own outbound frames, waiting for the body.
#[derive(Default)]
struct OwnFrames {
    frames: VecDeque<Message>,
    /// Payload bytes of `frames` (echo back-pressure).
    bytes: usize,
    /// The body wrote its last frame or was dropped: nothing more goes out.
    ended: bool,
    /// The body, waiting for frames.
    body: Option<Waker>,
    /// The session, waiting for room to echo.
    session: Option<Waker>,
}

impl OwnFrames {
    fn push(&mut self, msg: Message) {
        self.bytes += payload_len(&msg);
        self.frames.push_back(msg);
        if let Some(w) = self.body.take() {
            w.wake();
        }
    }

    /// Ready once an echo fits in the window: `true`, or `false` if the body ended.
    fn poll_echo_room(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.ended {
            return Poll::Ready(false);
        }
        let full = self.frames.len() >= ECHO_WINDOW_FRAMES || self.bytes >= ECHO_WINDOW_BYTES;
        if full && !self.frames.is_empty() {
            self.session = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Poll::Ready(true)
    }

    fn end(&mut self) {
        self.ended = true;
        self.frames = VecDeque::new();
        self.bytes = 0;
        if let Some(w) = self.session.take() {
            w.wake();
        }
    }
}

fn payload_len(msg: &Message) -> usize {
    match msg {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        _ => 0,
    }
}

/// The connection's outbound frames: the session's own, then the hub's queued ones, encoded
/// in batches as the socket can take them.
struct Outgoing {
    own: SharedFrames,
    /// The hub's queue for this connection (`None` on the echo route, or once drained shut).
    hub: Option<Outbox>,
    codec: Codec,
    /// The batch being encoded; a fresh buffer each batch, so an idle connection keeps none.
    buf: BytesMut,
    /// Encoded bytes not yet written: these first...
    unsent: Bytes,
    /// ...then these, in order (batches, and the shared payloads of large hub frames). Empty,
    /// and unallocated, while only short frames go out.
    queued: VecDeque<Bytes>,
    /// Total length of `unsent` and `queued`.
    unsent_len: usize,
    /// A Close was encoded: nothing is encoded after it, and writing ends once it is written.
    closed: bool,
    /// Sent to once the Close is written, else dropped with this value: either way the session's
    /// [`ClientFrames`] learns that writing ended.
    body_gone: Option<oneshot::Sender<()>>,
}

impl Outgoing {
    /// Nothing queued yet; dropping it (with `body_gone`) ends the client's stream.
    fn new(own: SharedFrames, hub: Option<Outbox>, body_gone: oneshot::Sender<()>) -> Self {
        Outgoing {
            own,
            hub,
            codec: Codec::new(),
            buf: BytesMut::new(),
            unsent: Bytes::new(),
            queued: VecDeque::new(),
            unsent_len: 0,
            closed: false,
            body_gone: Some(body_gone),
        }
    }

    fn encode(&mut self, msg: Message) -> Result<(), ProtocolError> {
        if matches!(msg, Message::Close(_)) {
            self.closed = true;
        }
        self.codec.encode(msg, &mut self.buf)
    }

    /// Bytes encoded and not yet written.
    fn pending_len(&self) -> usize {
        self.unsent_len + self.buf.len()
    }

    /// Appends bytes to write after everything unsent.
    fn push_unsent(&mut self, bytes: Bytes) {
        self.unsent_len += bytes.len();
        if self.unsent.is_empty() && self.queued.is_empty() {
            self.unsent = bytes;
        } else {
            self.queued.push_back(bytes);
        }
    }

    /// Moves what `buf` holds behind what is unsent.
    fn flush_buf(&mut self) {
        if !self.buf.is_empty() {
            let bytes = std::mem::take(&mut self.buf).freeze();
            self.push_unsent(bytes);
        }
    }

    /// Encodes a text frame from the hub: a short one into `buf`; a long one as its header in
    /// `buf` followed by the shared payload itself (no copy).
    fn encode_hub_text(&mut self, text: ByteString) -> Result<(), ProtocolError> {
        if text.len() < SHARE_MIN_BYTES {
            return self.encode(Message::Text(text));
        }
        write_text_header(&mut self.buf, text.len());
        self.flush_buf();
        self.push_unsent(text.into_bytes());
        Ok(())
    }

    /// Encodes the session's queued frames; registers for more when there are none.
    fn encode_own(&mut self, cx: &mut Context<'_>) -> Result<(), ProtocolError> {
        let own = self.own.clone();
        let mut own = own.borrow_mut();
        let mut took = false;
        while !self.closed && self.pending_len() < CHUNK_BYTES {
            let Some(msg) = own.frames.pop_front() else {
                if !own.body.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    own.body = Some(cx.waker().clone());
                }
                break;
            };
            took = true;
            own.bytes -= payload_len(&msg);
            self.encode(msg)?;
        }
        if self.closed {
            own.end();
        } else if took && let Some(w) = own.session.take() {
            w.wake();
        }
        Ok(())
    }

    /// Encodes the hub's queued frames; `poll_recv` registers for more when there are none.
    fn encode_hub(&mut self, cx: &mut Context<'_>) -> Result<(), ProtocolError> {
        while !self.closed && self.pending_len() < CHUNK_BYTES {
            let Some(hub) = self.hub.as_mut() else { break };
            match hub.poll_recv(cx) {
                Poll::Ready(Some(Outbound::Text(text))) => self.encode_hub_text(text)?,
                Poll::Ready(Some(Outbound::Close { code, reason })) => {
                    self.encode(Message::Close(Some(close_reason(code, &reason))))?;
                    self.own.borrow_mut().end();
                }
                Poll::Ready(None) => self.hub = None,
                Poll::Pending => break,
            }
        }
        Ok(())
    }

    /// Ready with `true` once there are bytes to write, `false` once the Close is written;
    /// pending (registered for new frames) while there is nothing to write.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ProtocolError>> {
        if self.unsent_len == 0 && !self.closed {
            self.encode_own(cx)?;
            self.encode_hub(cx)?;
            self.flush_buf();
        }
        if self.unsent_len > 0 {
            Poll::Ready(Ok(true))
        } else if self.closed {
            Poll::Ready(Ok(false))
        } else {
            Poll::Pending
        }
    }

    /// Fills `slices` with the unsent bytes, in order; the number filled.
    fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let parts = std::iter::once(&self.unsent).chain(&self.queued);
        let mut n = 0;
        for (slot, part) in slices.iter_mut().zip(parts.filter(|p| !p.is_empty())) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    /// Forgets the first `written` unsent bytes.
    fn advance(&mut self, mut written: usize) {
        self.unsent_len -= written;
        while written > 0 {
            if written < self.unsent.len() {
                let _ = self.unsent.split_to(written);
                return;
            }
            written -= self.unsent.len();
            self.unsent = self.queued.pop_front().unwrap_or_default();
        }
        if self.queued.is_empty() && self.queued.capacity() > 0 {
            // Give its buffer back: it is needed only around large frames.
            self.queued = VecDeque::new();
        }
    }
}

/// Writes the header of an unmasked, final text frame of `len` payload bytes (RFC 6455 5.2),
/// as actix-http's codec does for a server.
fn write_text_header(dst: &mut BytesMut, len: usize) {
    const FIN_TEXT: u8 = 0x81;
    if len < 126 {
        dst.extend_from_slice(&[FIN_TEXT, len as u8]);
    } else if let Ok(len) = u16::try_from(len) {
        dst.extend_from_slice(&[FIN_TEXT, 126]);
        dst.extend_from_slice(&len.to_be_bytes());
    } else {
        dst.extend_from_slice(&[FIN_TEXT, 127]);
        dst.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // Writing ended: an echo waiting for room must not wait for the timeout.
        self.own.borrow_mut().end();
    }
}

/// Reassembles fragmented messages up to the size cap, checking UTF-8 as fragments arrive so
/// invalid text fails at once rather than at the last fragment.
struct Assembler {
    text: bool,
    buf: BytesMut,
    /// Length of the prefix of `buf` known to be valid UTF-8 (text only).
    valid: usize,
    max: usize,
}

impl Assembler {
    fn new(max: usize) -> Self {
        Assembler {
            text: false,
            buf: BytesMut::new(),
            valid: 0,
            max,
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), CloseReason> {
        if self.buf.len() + bytes.len() > self.max {
            self.buf = BytesMut::new();
            return Err(close_reason(CLOSE_TOO_BIG, "message too big"));
        }
        self.buf.extend_from_slice(bytes);
        if self.text {
            let rest = self.buf.get(self.valid..).unwrap_or_default();
            match std::str::from_utf8(rest) {
                Ok(_) => self.valid = self.buf.len(),
                // An incomplete character at the end may be completed by the next fragment.
                Err(e) if e.error_len().is_none() => self.valid += e.valid_up_to(),
                Err(_) => return Err(close_reason(CLOSE_INVALID_DATA, "text is not valid UTF-8")),
            }
        }
        Ok(())
    }

    /// Takes one fragment; a complete message once the last one arrives.
    /// (The codec already rejects fragments out of order.)
    fn push(&mut self, item: Item) -> Result<Option<Data>, CloseReason> {
        match item {
            Item::FirstText(bytes) => {
                self.start(true);
                self.append(&bytes)?;
                Ok(None)
            }
            Item::FirstBinary(bytes) => {
                self.start(false);
                self.append(&bytes)?;
                Ok(None)
            }
            Item::Continue(bytes) => {
                self.append(&bytes)?;
                Ok(None)
            }
            Item::Last(bytes) => {
                self.append(&bytes)?;
                let buf = std::mem::take(&mut self.buf).freeze();
                if !self.text {
                    return Ok(Some(Data::Binary(buf)));
                }
                // A character cut off at the very end is invalid too.
                ByteString::try_from(buf)
                    .map(|t| Some(Data::Text(t)))
                    .map_err(|_| close_reason(CLOSE_INVALID_DATA, "text is not valid UTF-8"))
            }
        }
    }

    fn start(&mut self, text: bool) {
        self.text = text;
        self.buf = BytesMut::new();
        self.valid = 0;
    }
}

/// Acts on one message from the client; `Err` ends the session with that close.
async fn on_message(
    own: &SharedFrames,
    mode: &mut Mode,
    fragments: &mut Assembler,
    msg: Message,
    config: &WsConfig,
) -> Result<(), Option<CloseReason>> {
    let data = match msg {
        Message::Text(text) => Data::Text(text),
        Message::Binary(bytes) => Data::Binary(bytes),
        Message::Continuation(item) => match fragments.push(item) {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(reason) => return Err(Some(reason)),
        },
        Message::Ping(payload) => return mode.control(own, Message::Pong(payload)),
        Message::Pong(_) | Message::Nop => return Ok(()),
        // Echo the code (the codec only lets valid ones through), without the reason.
        Message::Close(reason) => {
            return Err(reason.map(|r| CloseReason {
                code: r.code,
                description: None,
            }));
        }
    };
    mode.on_data(own, data, config.write_timeout).await
}

/// The session shared by `/ws` and `/ws-echo`. Its future lives as long as the connection, so
/// it is kept small (a test below bounds the connection's).
async fn run_session<R: AsyncRead + Unpin>(
    own: SharedFrames,
    stream: &mut ClientFrames<R>,
    mut mode: Mode,
    config: WsConfig,
    max_message: usize,
) {
    let close = session_loop(&own, stream, &mut mode, &config, max_message).await;
    // The Close goes out ahead of anything still queued. Then dropping the mode drops the hub
    // handle, which removes every subscription (its own Close never follows ours).
    own.borrow_mut().push(Message::Close(close));
    drop(mode);
}

/// The loop of a session until it ends, with the close to send.
async fn session_loop<R: AsyncRead + Unpin>(
    own: &SharedFrames,
    stream: &mut ClientFrames<R>,
    mode: &mut Mode,
    config: &WsConfig,
    max_message: usize,
) -> Option<CloseReason> {
    let mut fragments = Assembler::new(max_message);
    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + config.ping_every,
        config.ping_every,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = stream.next() => {
                last_heard = Instant::now();
                let msg = match msg {
                    None => break None,
                    Some(Ok(msg)) => msg,
                    // Every message before the bad frame was acted on already.
                    Some(Err(e)) => break Some(protocol_close(&e)),
                };
                // Boxed: client messages are rare, and an inline future for them would make every
                // idle session carry its bytes.
                if let Err(close) = Box::pin(on_message(own, mode, &mut fragments, msg, config)).await {
                    break close;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= config.idle_timeout {
                    break Some(close_reason(CLOSE_IDLE, "idle"));
                }
                if let Err(close) = mode.control(own, Message::Ping(Bytes::new())) {
                    break close;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Decoder;
    use actix_http::ws::Frame;

    fn outgoing_without_hub() -> (Outgoing, SharedFrames) {
        let own = SharedFrames::default();
        (Outgoing::new(own.clone(), None, oneshot::channel().0), own)
    }

    /// Writes everything `out` has ready, at most `per_write` bytes per write (a socket that
    /// takes part of what it is offered): the bytes written, the buffers of each first write
    /// offer, and whether writing ended (its Close was written).
    fn drain(out: &mut Outgoing, per_write: usize) -> (Vec<u8>, Vec<Vec<Bytes>>, bool) {
        let mut cx = Context::from_waker(Waker::noop());
        let (mut wire, mut offers) = (Vec::new(), Vec::new());
        loop {
            match out.poll_ready(&mut cx) {
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) => return (wire, offers, true),
                Poll::Ready(Err(e)) => panic!("encoding failed: {e}"),
                Poll::Pending => return (wire, offers, false),
            }
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let n = out.io_slices(&mut slices);
            offers.push(
                slices[..n]
                    .iter()
                    .map(|s| Bytes::copy_from_slice(s))
                    .collect(),
            );
            let offered: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            let taken = offered.len().min(per_write);
            wire.extend_from_slice(&offered[..taken]);
            out.advance(taken);
        }
    }

    fn decode_all(wire: &[u8]) -> Vec<Frame> {
        let mut wire = BytesMut::from(wire);
        let mut codec = Codec::new().client_mode().max_size(1 << 20);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut wire).unwrap() {
            frames.push(frame);
        }
        assert!(wire.is_empty(), "{} bytes left over", wire.len());
        frames
    }

    #[test]
    fn partial_writes_resume_where_they_stopped_and_nothing_follows_the_close() {
        let (mut out, own) = outgoing_without_hub();
        assert_eq!(drain(&mut out, usize::MAX), (vec![], vec![], false));
        let big = "x".repeat(20_000);
        own.borrow_mut().push(Message::Text(big.clone().into()));
        own.borrow_mut()
            .push(Message::Pong(Bytes::from_static(b"p")));
        let (wire, offers, ended) = drain(&mut out, 1_000);
        assert!(!ended);
        assert!(offers.len() >= 20, "{} writes", offers.len());
        let frames = decode_all(&wire);
        assert!(
            matches!(&frames[..], [Frame::Text(t), Frame::Pong(p)] if t[..] == *big.as_bytes() && &p[..] == b"p")
        );
        assert_eq!((out.unsent_len, out.queued.capacity()), (0, 0));

        // Nothing after the Close goes out, and writing ends.
        own.borrow_mut()
            .push(Message::Close(Some(close_reason(CLOSE_IDLE, "idle"))));
        own.borrow_mut().push(Message::Text("late".into()));
        let (wire, _, ended) = drain(&mut out, usize::MAX);
        assert!(ended);
        let frames = decode_all(&wire);
        assert!(matches!(&frames[..], [Frame::Close(Some(r))] if u16::from(r.code) == CLOSE_IDLE));
        assert!(own.borrow().ended);
    }

    #[test]
    fn the_text_header_is_the_codecs() {
        for len in [0, 1, 125, 126, 1_000, 65_535, 65_536, 200_000] {
            let text = "x".repeat(len);
            let mut ours = BytesMut::new();
            write_text_header(&mut ours, len);
            ours.extend_from_slice(text.as_bytes());
            let mut codecs = BytesMut::new();
            Codec::new()
                .encode(Message::Text(text.into()), &mut codecs)
                .unwrap();
            assert_eq!(ours, codecs, "length {len}");
        }
    }

    /// A snapshot goes out as the hub's own bytes: two connections subscribing at the same seq
    /// offer the socket the very same memory, not two copies, in one write with its header.
    #[actix_web::test]
    async fn a_large_hub_frame_is_written_shared_and_decodes_in_order() {
        use kavling_realtime::testing::MemoryStore;
        let store = Arc::new(MemoryStore::new());
        let (project, _) = store.add_project(300);
        let hub = Hub::new(store, kavling_realtime::HubConfig::default());
        let channel = format!("project:{project}");
        let mut connections = Vec::new();
        for _ in 0..2 {
            let (handle, outbox) = hub.connect();
            handle.handle_text(
                &format!(r#"{{"op":"subscribe","channel":"{channel}"}}"#),
                false,
            );
            while hub.metrics().subscriptions.get() < connections.len() as i64 + 1 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let (mut out, _) = outgoing_without_hub();
            out.hub = Some(outbox);
            connections.push((handle, out));
        }
        let mut payload_starts = Vec::new();
        for (_, out) in &mut connections {
            let mut cx = Context::from_waker(Waker::noop());
            assert!(matches!(out.poll_ready(&mut cx), Poll::Ready(Ok(true))));
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let n = out.io_slices(&mut slices);
            // The snapshot's header alone, its shared payload, then the short `subscribed`.
            assert_eq!(n, 3);
            assert!(slices[0].len() <= 10, "{}", slices[0].len());
            payload_starts.push(slices[1].as_ptr());
            let (wire, _, ended) = drain(out, usize::MAX);
            assert!(!ended);
            let texts: Vec<String> = decode_all(&wire)
                .iter()
                .map(|f| match f {
                    Frame::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            assert_eq!(texts.len(), 2);
            assert!(
                texts[0].starts_with(r#"{"type":"snapshot""#),
                "{}",
                &texts[0][..40]
            );
            assert!(texts[0].len() > 20_000);
            assert!(texts[1].starts_with(r#"{"type":"subscribed""#));
        }
        assert_eq!(payload_starts[0], payload_starts[1]);
    }

    fn code(r: Result<Option<Data>, CloseReason>) -> u16 {
        match r {
            Err(reason) => u16::from(reason.code),
            Ok(_) => 0,
        }
    }

    #[test]
    fn reassembles_text_split_inside_a_character() {
        let e = "é".as_bytes();
        let mut a = Assembler::new(64);
        assert!(matches!(
            a.push(Item::FirstText(Bytes::copy_from_slice(&[b'a', e[0]]))),
            Ok(None)
        ));
        match a.push(Item::Last(Bytes::copy_from_slice(&e[1..]))) {
            Ok(Some(Data::Text(t))) => assert_eq!(&*t, "aé"),
            _ => panic!("expected text"),
        }
        // The assembler is ready for the next message.
        a.push(Item::FirstBinary(Bytes::from_static(&[0xff])))
            .unwrap();
        match a.push(Item::Last(Bytes::from_static(&[0xfe]))) {
            Ok(Some(Data::Binary(b))) => assert_eq!(&b[..], &[0xff, 0xfe]),
            _ => panic!("expected binary"),
        }
    }

    #[test]
    fn invalid_utf8_fails_at_the_first_bad_fragment_and_at_a_cut_off_end() {
        let mut a = Assembler::new(64);
        assert_eq!(
            code(a.push(Item::FirstText(Bytes::from_static(b"ok\xc0\xaf")))),
            1007
        );
        let mut a = Assembler::new(64);
        a.push(Item::FirstText(Bytes::from_static(b"ok\xe2\x82")))
            .unwrap();
        assert_eq!(code(a.push(Item::Last(Bytes::new()))), 1007);
    }

    /// Every open socket holds its two halves' futures for its whole life: most of what an idle
    /// WebSocket costs besides the kernel's socket (issue #20: 16 KiB per subscribed connection
    /// at most; the session alone was 1,384 bytes before trimming).
    #[test]
    fn the_connection_futures_stay_small() {
        fn output_size<A, B, C, F: Future>(_: impl Fn(A, B, C) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        fn output_size5<A, B, C, D, E, F: Future>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let writer = output_size(Accepted::run);
        let reader = output_size5(read_half);
        assert!(writer <= 1024, "the writing half grew to {writer} bytes");
        assert!(reader <= 1280, "the reading half grew to {reader} bytes");
    }

    #[test]
    fn fragments_over_the_cap_close_with_1009() {
        let mut a = Assembler::new(4);
        a.push(Item::FirstBinary(Bytes::from_static(b"abc")))
            .unwrap();
        assert_eq!(
            code(a.push(Item::Continue(Bytes::from_static(b"de")))),
            1009
        );
    }
}
