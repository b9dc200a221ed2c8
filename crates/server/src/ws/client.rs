//! The client's half of a WebSocket connection: its messages, decoded from the upgraded
//! request's body one frame at a time.
//!
//! actix-ws's `handle` decodes the same way, but it also opens a channel for a `Session` that
//! this server never uses (our response body writes the frames): ~1.8 KB on every connection
//! for its whole life, 11 % of what an idle connection costs (issue #20, docs/BENCHMARKS.md).
//! Decoding a frame only when the session asks for the next one also keeps the order of a
//! bad frame simple: every message before it has been returned, then the error, then the end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame};
use actix_web::dev::Payload;
use actix_web::web::BytesMut;
use actix_ws::{Message, ProtocolError};
use bytestring::ByteString;
use futures_util::Stream;
use tokio::sync::oneshot;

/// The messages a client sends, in order; ends after an error, or once the connection ended
/// and the last complete frame was returned.
pub(super) struct ClientFrames {
    payload: Payload,
    /// Ready (sent to or dropped) once the response body is gone, which is how the stream learns
    /// the connection ended even if actix-http never ends the request body.
    body_gone: Option<oneshot::Receiver<()>>,
    /// Bytes received and not yet decoded; unallocated between messages.
    buf: BytesMut,
    codec: Codec,
    ended: bool,
}

impl ClientFrames {
    /// Decodes `payload`, refusing frames longer than `max_frame` bytes (1009 by the session).
    pub(super) fn new(
        payload: Payload,
        body_gone: oneshot::Receiver<()>,
        max_frame: usize,
    ) -> Self {
        ClientFrames {
            payload,
            body_gone: Some(body_gone),
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max_frame),
            ended: false,
        }
    }

    /// The next complete frame already received, as a message.
    fn decode(&mut self) -> Option<Result<Message, ProtocolError>> {
        let frame = match self.codec.decode(&mut self.buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(e) => {
                self.end();
                return Some(Err(e));
            }
        };
        if self.buf.is_empty() {
            // A quiet connection holds no receive buffer of its own.
            self.buf = BytesMut::new();
        }
        Some(match frame {
            Frame::Text(bytes) => ByteString::try_from(bytes).map(Message::Text).map_err(|e| {
                self.end();
                ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, e))
            }),
            Frame::Binary(bytes) => Ok(Message::Binary(bytes)),
            Frame::Ping(bytes) => Ok(Message::Ping(bytes)),
            Frame::Pong(bytes) => Ok(Message::Pong(bytes)),
            Frame::Close(reason) => Ok(Message::Close(reason)),
            Frame::Continuation(item) => Ok(Message::Continuation(item)),
        })
    }

    fn end(&mut self) {
        self.ended = true;
        self.buf = BytesMut::new();
        self.body_gone = None;
    }
}

impl Stream for ClientFrames {
    type Item = Result<Message, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.decode() {
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            if this
                .body_gone
                .as_mut()
                .is_some_and(|gone| Pin::new(gone).poll(cx).is_ready())
            {
                this.end();
                continue;
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if this.buf.is_empty() {
                        // Takes the chunk's buffer when no one else holds it, else copies it.
                        this.buf = BytesMut::from(chunk);
                    } else {
                        this.buf.extend_from_slice(&chunk);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.end();
                    return Poll::Ready(Some(Err(ProtocolError::Io(io::Error::other(e)))));
                }
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_codec::Encoder;
    use actix_web::web::Bytes;
    use futures_util::StreamExt;

    /// A client's frames as the server receives them (masked).
    fn client_bytes(messages: Vec<Message>) -> Bytes {
        let mut codec = Codec::new().client_mode();
        let mut out = BytesMut::new();
        for m in messages {
            codec.encode(m, &mut out).unwrap();
        }
        out.freeze()
    }

    fn frames_of(chunks: Vec<Bytes>, max: usize) -> (ClientFrames, oneshot::Sender<()>) {
        let (_, mut payload) = actix_http::h1::Payload::create(false);
        // `unread_data` puts a chunk in front of the others.
        for c in chunks.into_iter().rev() {
            payload.unread_data(c);
        }
        let (tx, rx) = oneshot::channel();
        (ClientFrames::new(Payload::from(payload), rx, max), tx)
    }

    #[actix_web::test]
    async fn messages_split_across_chunks_come_out_whole_and_in_order() {
        let bytes = client_bytes(vec![
            Message::Text("one".into()),
            Message::Ping(Bytes::from_static(b"p")),
            Message::Text("two".into()),
        ]);
        let (a, b) = (bytes.slice(..5), bytes.slice(5..));
        let (mut frames, _tx) = frames_of(vec![a, b], 1024);
        assert!(matches!(frames.next().await, Some(Ok(Message::Text(t))) if t == "one"));
        assert!(matches!(frames.next().await, Some(Ok(Message::Ping(p))) if p == "p"));
        assert!(matches!(frames.next().await, Some(Ok(Message::Text(t))) if t == "two"));
    }

    #[actix_web::test]
    async fn messages_before_a_bad_frame_come_first_then_the_error_then_the_end() {
        let mut bytes = BytesMut::from(&client_bytes(vec![Message::Text("ok".into())])[..]);
        // A frame with a reserved opcode (0x3).
        bytes.extend_from_slice(&[0x83, 0x80, 0, 0, 0, 0]);
        let (mut frames, _tx) = frames_of(vec![bytes.freeze()], 1024);
        assert!(matches!(frames.next().await, Some(Ok(Message::Text(t))) if t == "ok"));
        assert!(matches!(frames.next().await, Some(Err(_))));
        assert!(frames.next().await.is_none());
    }

    #[actix_web::test]
    async fn invalid_utf8_text_is_an_invalid_data_error_and_big_frames_overflow() {
        // Invalid UTF-8 sent as a text frame: a binary frame with the text opcode.
        let mut bytes = BytesMut::from(
            &client_bytes(vec![Message::Binary(Bytes::from_static(b"\xc0\xaf"))])[..],
        );
        bytes[0] = 0x81;
        let (mut frames, _tx) = frames_of(vec![bytes.freeze()], 1024);
        match frames.next().await {
            Some(Err(ProtocolError::Io(e))) => {
                assert!(e.get_ref().is_some_and(|i| i.is::<std::str::Utf8Error>()));
            }
            _ => panic!("expected a UTF-8 error"),
        }
        let big = client_bytes(vec![Message::Binary(Bytes::from(vec![0u8; 2048]))]);
        let (mut frames, _tx) = frames_of(vec![big], 1024);
        assert!(matches!(
            frames.next().await,
            Some(Err(ProtocolError::Overflow))
        ));
    }

    #[actix_web::test]
    async fn the_stream_ends_once_the_body_is_gone() {
        let (mut frames, tx) = frames_of(vec![], 1024);
        drop(tx);
        assert!(frames.next().await.is_none());
    }
}
