//! The client's half of a WebSocket connection: its messages, decoded from the socket one frame
//! at a time.
//!
//! actix-ws's `handle` decodes the same way, but it also opens a channel for a `Session` that
//! this server never uses: ~1.8 KB on every connection for its whole life (issue #20,
//! docs/BENCHMARKS.md). Reading straight from the socket into a stack buffer, and keeping
//! received bytes only until their frame is complete, leaves a quiet connection with no
//! receive buffer at all. Decoding a frame only when the session asks for the next one also
//! keeps the order of a bad frame simple: every message before it has been returned, then the
//! error, then the end.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_codec::Decoder;
use actix_http::ws::{Codec, Frame};
use actix_web::web::BytesMut;
use actix_ws::{Message, ProtocolError};
use bytestring::ByteString;
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

/// Bytes one read takes from the socket (on the stack, not kept).
const READ_BYTES: usize = 8 * 1024;

/// The messages a client sends, in order; ends after an error, or once the connection ended
/// and the last complete frame was returned.
pub(super) struct ClientFrames<R> {
    reader: R,
    /// Ready (sent to or dropped) once writing has ended, which is how the stream learns the
    /// connection is over even while the client keeps it open.
    body_gone: Option<oneshot::Receiver<()>>,
    /// Bytes received and not yet decoded; unallocated between messages.
    buf: BytesMut,
    codec: Codec,
    ended: bool,
    /// The writer sent its Close and shut down its side (rather than failing).
    writer_closed: bool,
}

impl<R: AsyncRead + Unpin> ClientFrames<R> {
    /// Decodes what `reader` delivers after the bytes already `received`, refusing frames longer
    /// than `max_frame` bytes (1009 by the session).
    pub(super) fn new(
        reader: R,
        received: BytesMut,
        body_gone: oneshot::Receiver<()>,
        max_frame: usize,
    ) -> Self {
        ClientFrames {
            reader,
            body_gone: Some(body_gone),
            buf: if received.is_empty() {
                BytesMut::new()
            } else {
                received
            },
            codec: Codec::new().max_size(max_frame),
            ended: false,
            writer_closed: false,
        }
    }

    /// Whether writing ended with the server's Close (not with a failed socket).
    pub(super) fn writer_closed(&self) -> bool {
        self.writer_closed
    }

    /// The socket's read half back, once the session is over.
    pub(super) fn into_reader(self) -> R {
        self.reader
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

impl<R: AsyncRead + Unpin> Stream for ClientFrames<R> {
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
            if let Some(gone) = this.body_gone.as_mut()
                && let Poll::Ready(closed) = Pin::new(gone).poll(cx)
            {
                this.writer_closed = closed.is_ok();
                this.end();
                continue;
            }
            let mut chunk = [0u8; READ_BYTES];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.reader).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => this.ended = true,
                Poll::Ready(Ok(())) => this.buf.extend_from_slice(read.filled()),
                Poll::Ready(Err(e)) => {
                    this.end();
                    return Poll::Ready(Some(Err(ProtocolError::Io(e))));
                }
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

    /// A reader that delivers each chunk in its own read, then stays open (never ends).
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            match self.0.pop_front() {
                Some(chunk) => {
                    buf.put_slice(&chunk);
                    Poll::Ready(Ok(()))
                }
                None => Poll::Pending,
            }
        }
    }

    fn frames_of(chunks: Vec<Bytes>, max: usize) -> (ClientFrames<Chunks>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        let reader = Chunks(chunks.into());
        (ClientFrames::new(reader, BytesMut::new(), rx, max), tx)
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
    async fn bytes_received_with_the_handshake_come_first_and_the_end_of_input_ends_the_stream() {
        let bytes = client_bytes(vec![
            Message::Text("one".into()),
            Message::Text("two".into()),
        ]);
        let (first, rest) = (BytesMut::from(&bytes[..4]), bytes.slice(4..));
        let (_tx, rx) = oneshot::channel();
        let mut frames = ClientFrames::new(&rest[..], first, rx, 1024);
        assert!(matches!(frames.next().await, Some(Ok(Message::Text(t))) if t == "one"));
        assert!(matches!(frames.next().await, Some(Ok(Message::Text(t))) if t == "two"));
        assert!(frames.next().await.is_none());
    }

    #[actix_web::test]
    async fn the_stream_ends_once_the_body_is_gone() {
        let (mut frames, tx) = frames_of(vec![], 1024);
        drop(tx);
        assert!(frames.next().await.is_none());
    }
}
