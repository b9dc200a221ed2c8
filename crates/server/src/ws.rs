//! `GET /ws`: the actix-ws session loop. All protocol logic lives in the realtime hub; this loop
//! only moves frames: client text to the hub, the hub's queued frames to the socket, pings, an
//! idle close, and the WebSocket rules (fragments, UTF-8, close codes, size cap). The same loop
//! serves `/ws-echo` (enabled by `KAVLING_WS_ECHO=1`), which echoes data messages back so the
//! Autobahn protocol cases can test exactly this code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::{Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Item, Message, ProtocolError, Session};
use bytestring::ByteString;
use futures_util::{FutureExt, StreamExt};
use kavling_core::services::users::Access;
use kavling_realtime::{CLOSE_SLOW_CLIENT, ConnectionHandle, Hub, Outbound, Outbox};
use tokio::time::timeout;

use crate::extract::bearer_token;
use crate::state::AppState;

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
    /// Longest wait to hand one frame to the client's socket; a client slower than this is
    /// closed with 1013 instead of holding its session up.
    pub write_timeout: Duration,
    /// Largest client message in bytes (one frame or all fragments together); larger closes with 1009.
    pub max_message: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            ping_every: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            max_message: 64 * 1024,
        }
    }
}

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

/// `GET /ws`: upgrades to a WebSocket and runs a hub session.
pub async fn ws(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let staff = staff_allowed(&state, &req).await;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let (handle, outbound) = state.hub.connect();
    let mode = Mode::Hub {
        hub: state.hub.clone(),
        handle,
        outbound,
        staff,
    };
    let config = state.ws.clone();
    let cap = config.max_message;
    actix_web::rt::spawn(run_session(session, stream, mode, config, cap));
    Ok(response)
}

/// `GET /ws-echo` (only with `KAVLING_WS_ECHO=1`): the same session loop, echoing every text
/// and binary message; for WebSocket protocol-compliance runs (Autobahn).
pub async fn echo(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let config = state.ws.clone();
    actix_web::rt::spawn(run_session(
        session,
        stream,
        Mode::Echo,
        config,
        ECHO_MAX_MESSAGE,
    ));
    Ok(response)
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
    /// `/ws`: text goes to the hub; the hub's queued frames go to the client.
    Hub {
        hub: Arc<Hub>,
        handle: ConnectionHandle,
        outbound: Outbox,
        staff: bool,
    },
    /// `/ws-echo`: every text and binary message goes straight back.
    Echo,
}

impl Mode {
    /// Acts on one data message; `Err` ends the session with that close.
    async fn on_data(
        &mut self,
        session: &mut Session,
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
                let sent = match data {
                    Data::Text(text) => timeout(write_timeout, session.text(text)).await,
                    Data::Binary(bytes) => timeout(write_timeout, session.binary(bytes)).await,
                };
                match sent {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(None),
                    Err(_) => Err(Some(close_reason(CLOSE_SLOW_CLIENT, "client too slow"))),
                }
            }
        }
    }

    /// The next frame the hub queued for this client (never, in echo mode).
    async fn next_outbound(&mut self) -> Option<Outbound> {
        match self {
            Mode::Hub { outbound, .. } => outbound.recv().await,
            Mode::Echo => std::future::pending().await,
        }
    }

    /// Once the hub closed the connection (slow, flooding), the queued Close and its code;
    /// frames still queued before it are dropped: that client is leaving.
    fn hub_close(&mut self) -> Option<CloseReason> {
        let Mode::Hub {
            handle, outbound, ..
        } = self
        else {
            return None;
        };
        if !handle.is_closed() {
            return None;
        }
        while let Some(out) = outbound.try_recv() {
            if let Outbound::Close { code, reason } = out {
                return Some(close_reason(code, &reason));
            }
        }
        Some(close_reason(CLOSE_SLOW_CLIENT, "client too slow"))
    }

    /// Counts a client closed because its socket would not take a frame in time.
    fn count_slow(&self) {
        if let Mode::Hub { hub, handle, .. } = self
            && !handle.is_closed()
        {
            hub.metrics().slow_client_closes.inc();
        }
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

/// Hands a control frame to the socket within the write timeout; false if that failed.
async fn send_control(session: &mut Session, write_timeout: Duration, pong: Option<&[u8]>) -> bool {
    let sent = match pong {
        Some(payload) => timeout(write_timeout, session.pong(payload)).await,
        None => timeout(write_timeout, session.ping(b"")).await,
    };
    matches!(sent, Ok(Ok(())))
}

/// True for codec errors raised before the bad frame is consumed: decoding again fails at
/// the same frame, so frames queued before it can be drained safely.
fn leaves_bad_frame_unread(e: &ProtocolError) -> bool {
    match e {
        ProtocolError::InvalidOpcode(_) | ProtocolError::UnmaskedFrame => true,
        // Reserved bits set (not a UTF-8 error, which comes after the frame was consumed).
        ProtocolError::Io(io) => {
            io.kind() == std::io::ErrorKind::InvalidData
                && !io
                    .get_ref()
                    .is_some_and(|inner| inner.is::<std::str::Utf8Error>())
        }
        _ => false,
    }
}

/// Acts on one message from the client; `Err` ends the session with that close.
async fn on_message(
    session: &mut Session,
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
        Message::Ping(payload) => {
            return if send_control(session, config.write_timeout, Some(&payload)).await {
                Ok(())
            } else {
                Err(None)
            };
        }
        Message::Pong(_) | Message::Nop => return Ok(()),
        // Echo the code (the codec only lets valid ones through), without the reason.
        Message::Close(reason) => {
            return Err(reason.map(|r| CloseReason {
                code: r.code,
                description: None,
            }));
        }
    };
    mode.on_data(session, data, config.write_timeout).await
}

/// The session shared by `/ws` and `/ws-echo`. Its future lives as long as the connection, so
/// it is kept small: a plain fn returning an `async move` block stores the session's state once,
/// where an `async fn` would keep its arguments and the locals they move into side by side.
fn run_session(
    mut session: Session,
    stream: actix_ws::MessageStream,
    mut mode: Mode,
    config: WsConfig,
    max_message: usize,
) -> impl Future<Output = ()> + 'static {
    let mut stream = stream.max_frame_size(max_message);
    async move {
        let close = session_loop(&mut session, &mut stream, &mut mode, &config, max_message).await;
        // Dropping the mode drops the hub handle, which removes every subscription.
        drop(mode);
        // A client that stopped reading may never take the Close: do not wait for it forever.
        let _ = timeout(config.write_timeout, session.close(close)).await;
    }
}

/// The loop of a session until it ends, with the close to send.
async fn session_loop(
    session: &mut Session,
    stream: &mut actix_ws::MessageStream,
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
    'session: loop {
        tokio::select! {
            msg = stream.next() => {
                last_heard = Instant::now();
                let msg = match msg {
                    None => break None,
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        if leaves_bad_frame_unread(&e) {
                            // Frames decoded before the bad one are still queued in the
                            // stream: act on them first, in order, then fail.
                            while let Some(Some(Ok(msg))) = stream.next().now_or_never() {
                                let done = Box::pin(on_message(session, mode, &mut fragments, msg, config)).await;
                                if let Err(close) = done {
                                    break 'session close;
                                }
                            }
                        }
                        break Some(protocol_close(&e));
                    }
                };
                // Boxed: client messages are rare, and an inline future for them would make every
                // idle session carry its ~570 bytes.
                if let Err(close) = Box::pin(on_message(session, mode, &mut fragments, msg, config)).await {
                    break close;
                }
            }
            out = mode.next_outbound() => match out {
                Some(Outbound::Text(frame)) => {
                    if let Some(close) = mode.hub_close() {
                        break Some(close);
                    }
                    match timeout(config.write_timeout, session.text(frame)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => {
                            mode.count_slow();
                            break mode
                                .hub_close()
                                .or_else(|| Some(close_reason(CLOSE_SLOW_CLIENT, "client too slow")));
                        }
                    }
                }
                Some(Outbound::Close { code, reason }) => break Some(close_reason(code, &reason)),
                None => break None,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= config.idle_timeout {
                    break Some(close_reason(CLOSE_IDLE, "idle"));
                }
                if !send_control(session, config.write_timeout, None).await {
                    break None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Every open socket holds one session future for its whole life, next to actix-http's
    /// ~15 KiB; the goal is 16 KiB per idle connection (it was 1,384 bytes before trimming).
    #[test]
    fn the_session_future_stays_small() {
        fn output_size<F: Future>(
            _: impl Fn(Session, actix_ws::MessageStream, Mode, WsConfig, usize) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        let size = output_size(run_session);
        assert!(size <= 1024, "the session future grew to {size} bytes");
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
