//! The seam between the WebSocket serving loop and the library that speaks the frames
//! (`--ws-engine`): the loop sends text, pings and closes and waits for the client's next
//! message through [`Socket`], whichever library is underneath.
//!
//! Both engines keep the same bounds and the same bytes on the wire: a client message
//! (after reassembly of its fragments) or a single frame over [`MAX_MESSAGE_BYTES`] is
//! [`In::TooBig`]; control frames are at most 125 bytes; an unmasked client frame, a frame
//! with reserved bits, text that is not UTF-8 or a stray continuation ends the connection
//! without a close frame. A peer's close frame ends the loop with [`Out::Answer`], the close
//! frame RFC 6455 §5.5.1 asks for: the peer's code and reason echoed (nothing for a close
//! without a code; 1002 for a code a peer may not send, RFC 6455 §7.4), after which the
//! server drops the connection, as §7.1.1 has the server close TCP first.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::{Bytes, BytesMut};
use fastwebsockets::{Frame, OpCode, Payload, WebSocketError, WebSocketRead, WebSocketWrite};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{ReadHalf, WriteHalf};

use super::MAX_MESSAGE_BYTES;

/// What the serving loop sends.
pub(super) enum Out {
    Text(Utf8Bytes),
    /// An event's JSON: UTF-8 by construction (serde_json writes nothing else).
    Event(Bytes),
    Ping,
    /// The answer to a client's ping: its payload.
    Pong(BytesMut),
    Close(u16, &'static str),
    /// The answer to the peer's close frame (see the module's text). Only after [`In::Close`].
    Answer,
}

/// What the client sent, as the serving loop sees it.
pub(super) enum In {
    Text(Utf8Bytes),
    Binary,
    /// A ping or pong: the peer is alive.
    Control,
    /// The peer sent a close frame.
    Close,
    /// A message or frame over [`MAX_MESSAGE_BYTES`].
    TooBig,
    /// The connection ended or broke the protocol.
    Gone,
}

/// One WebSocket, on either engine.
pub(super) enum Socket {
    Tungstenite(Box<WebSocket>),
    Fast(Box<Fast>),
}

impl Socket {
    /// Sends one message and flushes it.
    pub(super) async fn send(&mut self, out: Out) -> Result<(), Gone> {
        match self {
            Socket::Tungstenite(socket) => {
                let message = match out {
                    Out::Text(text) => Message::Text(text),
                    // The check cannot fail (see `Out::Event`) and costs a pass over a few
                    // hundred bytes.
                    Out::Event(json) => {
                        Message::Text(Utf8Bytes::try_from(json).unwrap_or_default())
                    }
                    Out::Ping => Message::Ping(Bytes::new()),
                    Out::Pong(payload) => Message::Pong(payload.freeze()),
                    Out::Close(code, reason) => Message::Close(Some(CloseFrame {
                        code,
                        reason: Utf8Bytes::from_static(reason),
                    })),
                    // tungstenite queued the answer when it read the close: a flush sends
                    // it. It then reports the connection closed, which is the point.
                    Out::Answer => {
                        let _ = futures_util::SinkExt::flush(&mut **socket).await;
                        return Ok(());
                    }
                };
                socket.send(message).await.map_err(|_| Gone)
            }
            Socket::Fast(socket) => {
                let frame = match &out {
                    Out::Text(text) => Frame::text(Payload::Borrowed(text.as_bytes())),
                    Out::Event(json) => Frame::text(Payload::Borrowed(json)),
                    Out::Ping => Frame::new(true, OpCode::Ping, None, Payload::Borrowed(&[])),
                    Out::Pong(payload) => Frame::pong(Payload::Borrowed(payload)),
                    Out::Close(code, reason) => Frame::close(*code, reason.as_bytes()),
                    Out::Answer => match socket.answer.take() {
                        Some(payload) => Frame::close_raw(Payload::Bytes(payload)),
                        None => return Ok(()),
                    },
                };
                socket.write(frame).await
            }
        }
    }

    /// The client's next message. Cancel-safe: a message half read when the caller stops
    /// waiting is finished by the next call.
    pub(super) async fn recv(&mut self) -> In {
        match self {
            Socket::Tungstenite(socket) => match socket.recv().await {
                None => In::Gone,
                Some(Err(err)) if is_too_big(&err) => In::TooBig,
                Some(Err(_)) => In::Gone,
                Some(Ok(Message::Text(text))) => In::Text(text),
                Some(Ok(Message::Binary(_))) => In::Binary,
                // tungstenite answers pings itself (and queues the answer to a close, see above).
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => In::Control,
                Some(Ok(Message::Close(_))) => In::Close,
            },
            Socket::Fast(socket) => socket.recv().await,
        }
    }

    /// What the protocol owes the peer for the message [`Socket::recv`] returned last: the
    /// pong for a ping. tungstenite sends that by itself.
    pub(super) fn owed(&mut self) -> Option<Out> {
        match self {
            Socket::Tungstenite(_) => None,
            Socket::Fast(socket) => socket.owed.take().map(Out::Pong),
        }
    }
}

/// The peer is gone (the write failed).
#[derive(Debug, thiserror::Error)]
#[error("the peer is gone")]
pub(super) struct Gone;

fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

type Io = TokioIo<Upgraded>;

/// A read under way: it ends with the read half and the message.
type Reading = std::pin::Pin<Box<dyn Future<Output = (Reader, In)> + Send>>;

/// A fastwebsockets socket. Its read and write halves are apart because a frame read is
/// not cancel-safe (the header is consumed before the payload arrives): the read runs in
/// a future of its own that outlives each `select!` round, while the loop writes.
pub(super) struct Fast {
    writer: WebSocketWrite<WriteHalf<Io>>,
    /// The read half, when no read is under way.
    reader: Option<Reader>,
    /// The read under way; it hands the read half back when it finishes.
    reading: Option<Reading>,
    /// The payload of a ping not answered yet.
    owed: Option<BytesMut>,
    /// The payload of the answer to the peer's close frame.
    answer: Option<BytesMut>,
}

struct Reader {
    ws: WebSocketRead<ReadHalf<Io>>,
    /// A fragmented message so far: whether it is text, and its bytes.
    partial: Option<(bool, BytesMut)>,
    /// Set with a ping, whose pong the loop sends.
    owed: Option<BytesMut>,
    /// Set with a close, whose answer the loop sends.
    answer: Option<BytesMut>,
}

impl Fast {
    pub(super) fn new(io: Io) -> Fast {
        let (read, write) = tokio::io::split(io);
        let (mut reader, writer) =
            fastwebsockets::after_handshake_split(read, write, fastwebsockets::Role::Server);
        // Pings are answered from the loop (`Socket::owed`), so that a pong is never
        // half written when a read is dropped; closes are not answered (see above).
        reader.set_auto_pong(false);
        reader.set_auto_close(false);
        // Its limit refuses a frame of exactly this many bytes; tungstenite's refuses one
        // longer than its limit.
        reader.set_max_message_size(MAX_MESSAGE_BYTES + 1);
        Fast {
            writer,
            reader: Some(Reader {
                ws: reader,
                partial: None,
                owed: None,
                answer: None,
            }),
            reading: None,
            owed: None,
            answer: None,
        }
    }

    async fn write(&mut self, frame: Frame<'_>) -> Result<(), Gone> {
        self.writer.write_frame(frame).await.map_err(|_| Gone)?;
        // A TLS stream holds written bytes until flushed; on plain TCP this is free.
        self.writer.flush().await.map_err(|_| Gone)
    }

    async fn recv(&mut self) -> In {
        if self.reading.is_none() {
            let Some(mut reader) = self.reader.take() else {
                return In::Gone;
            };
            self.reading = Some(Box::pin(async move {
                let message = reader.next().await;
                (reader, message)
            }));
        }
        let Some(reading) = self.reading.as_mut() else {
            return In::Gone;
        };
        let (mut reader, message) = reading.await;
        self.reading = None;
        self.owed = reader.owed.take();
        self.answer = reader.answer.take();
        self.reader = Some(reader);
        message
    }
}

impl Reader {
    async fn next(&mut self) -> In {
        loop {
            // Never called: automatic pongs and closes are off.
            let mut no_send =
                |_: Frame<'_>| std::future::ready(Ok::<(), std::convert::Infallible>(()));
            let mut frame = match self.ws.read_frame(&mut no_send).await {
                Ok(frame) => frame,
                Err(WebSocketError::FrameTooLarge) => return In::TooBig,
                Err(_) => return In::Gone,
            };
            // A client must mask every frame (RFC 6455 §5.1). The library unmasks without
            // checking; the frame's header, formatted again, shows the mask bit.
            let mut head = [0u8; 14];
            frame.fmt_head(&mut head);
            if head[1] & 0x80 == 0 {
                return In::Gone;
            }
            let fin = frame.fin;
            let opcode = frame.opcode;
            let payload = into_bytes(frame.payload);
            match opcode {
                OpCode::Ping | OpCode::Pong | OpCode::Close if payload.len() > 125 => {
                    return In::Gone;
                }
                OpCode::Ping => {
                    self.owed = Some(payload);
                    return In::Control;
                }
                OpCode::Pong => return In::Control,
                OpCode::Close => {
                    return match close_answer(payload) {
                        Some(answer) => {
                            self.answer = Some(answer);
                            In::Close
                        }
                        None => In::Gone,
                    };
                }
                OpCode::Text | OpCode::Binary if self.partial.is_some() => return In::Gone,
                OpCode::Text | OpCode::Binary if fin => {
                    return message(opcode == OpCode::Text, payload);
                }
                OpCode::Text | OpCode::Binary => {
                    self.partial = Some((opcode == OpCode::Text, payload));
                }
                OpCode::Continuation => {
                    let Some((_, so_far)) = self.partial.as_mut() else {
                        return In::Gone;
                    };
                    if so_far.len() + payload.len() > MAX_MESSAGE_BYTES {
                        return In::TooBig;
                    }
                    so_far.extend_from_slice(&payload);
                    if fin && let Some((text, whole)) = self.partial.take() {
                        return message(text, whole);
                    }
                }
            }
        }
    }
}

fn message(text: bool, payload: BytesMut) -> In {
    if !text {
        return In::Binary;
    }
    match Utf8Bytes::try_from(payload.freeze()) {
        Ok(text) => In::Text(text),
        // Not UTF-8: a protocol error, as tungstenite treats it.
        Err(_) => In::Gone,
    }
}

/// The payload of the answer to a close frame whose payload is `payload`, as tungstenite
/// answers it: the same code and reason, none where it had none, 1002 "Protocol violation"
/// for a code a peer may not send. `None` for a payload that breaks the protocol (one byte,
/// or a reason that is not UTF-8), which ends the connection without an answer.
fn close_answer(payload: BytesMut) -> Option<BytesMut> {
    match payload.len() {
        0 => Some(payload),
        1 => None,
        _ => {
            std::str::from_utf8(&payload[2..]).ok()?;
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if tungstenite::protocol::frame::coding::CloseCode::from(code).is_allowed() {
                return Some(payload);
            }
            let mut answer = BytesMut::from(&1002u16.to_be_bytes()[..]);
            answer.extend_from_slice(b"Protocol violation");
            Some(answer)
        }
    }
}

fn into_bytes(payload: Payload<'_>) -> BytesMut {
    match payload {
        Payload::Bytes(bytes) => bytes,
        other => BytesMut::from(&other[..]),
    }
}
