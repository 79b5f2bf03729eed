//! A lean WebSocket client (RFC 6455) for the load tester's subscribers: the opening
//! handshake, a frame reader that parses every frame in a buffer filled by one read, and
//! masked client frames. It replaces tokio-tungstenite here because, profiled with 10,000
//! subscribers, 29% of the load tester's CPU was tungstenite zero-filling its 128 KiB read
//! buffer before every read (`BytesMut::resize` in `FrameCodec::read_in`); this reader does
//! per frame only what the protocol requires: check the header, validate text as UTF-8
//! once, answer pings, reassemble fragments.

use std::borrow::Cow;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest message accepted from the server, fragments summed. The server's largest
/// event (a 2,000-character chat message, escaped) is a few KiB; a frame announcing more
/// than this is refused before it is buffered, so a hostile length cannot make a client
/// allocate it. Answered with close 1009 "message too big" (§7.4.1).
pub const MAX_MESSAGE: usize = 1 << 20;

/// The largest response head accepted during the handshake.
const MAX_HEAD: usize = 16 * 1024;

/// The buffer one read fills: many frames of the size the feeds send (100–300 bytes).
const READ_BUFFER: usize = 4096;

const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// What breaks the protocol (RFC 6455 §5 and §8.1); the session ends with a close frame
/// carrying [`WsError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// RSV1-3 set without a negotiated extension (§5.2).
    Reserved,
    /// A server frame with the MASK bit (§5.1: a client must close the connection).
    Masked,
    /// An opcode RFC 6455 reserves (§5.2).
    Opcode(u8),
    /// A control frame fragmented or longer than 125 bytes (§5.5).
    BadControl,
    /// A 64-bit length with its most significant bit set (§5.2).
    BadLength,
    /// A continuation with no message begun, or a new message inside a fragmented one (§5.4).
    Fragments,
    /// A message (or announced frame) over [`MAX_MESSAGE`].
    TooBig(u64),
    /// A text message or close reason that is not UTF-8 (§8.1).
    Utf8,
    /// A close frame with a one-byte payload (§5.5.1).
    BadClose,
}

impl WsError {
    /// The close code that reports it (§7.4.1): 1009 for size, 1007 for bad text, else 1002.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::TooBig(_) => 1009,
            WsError::Utf8 => 1007,
            _ => 1002,
        }
    }
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsError::Reserved => write!(f, "WebSocket protocol error: reserved bits set"),
            WsError::Masked => write!(f, "WebSocket protocol error: masked server frame"),
            WsError::Opcode(op) => write!(f, "WebSocket protocol error: reserved opcode {op}"),
            WsError::BadControl => write!(f, "WebSocket protocol error: bad control frame"),
            WsError::BadLength => write!(f, "WebSocket protocol error: bad frame length"),
            WsError::Fragments => write!(f, "WebSocket protocol error: bad fragmentation"),
            WsError::TooBig(n) => write!(f, "WebSocket message of {n} bytes is too big"),
            WsError::Utf8 => write!(f, "WebSocket protocol error: text is not UTF-8"),
            WsError::BadClose => write!(f, "WebSocket protocol error: bad close payload"),
        }
    }
}

impl std::error::Error for WsError {}

/// The server answered the upgrade with this status instead of 101.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u16);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebSocket upgrade refused with HTTP status {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// One frame's header, found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    /// Where the payload starts, and where the frame ends.
    pub payload_at: usize,
    pub end: usize,
}

/// Reads the frame header at the start of `buf`: `Ok(Err(n))` when the frame (or its
/// header) needs `n` bytes in all and fewer are there. A hostile header is an error as
/// soon as it is seen, before its payload is waited for.
pub fn header(buf: &[u8]) -> Result<Result<Header, usize>, WsError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(Err(2));
    };
    if b0 & 0x70 != 0 {
        return Err(WsError::Reserved);
    }
    if b1 & 0x80 != 0 {
        return Err(WsError::Masked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let (len, payload_at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(Err(4)),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(Err(10)),
        },
        n => (u64::from(n), 2),
    };
    match opcode {
        OP_CONTINUATION | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin || len > 125 {
                return Err(WsError::BadControl);
            }
        }
        other => return Err(WsError::Opcode(other)),
    }
    if len >> 63 != 0 {
        return Err(WsError::BadLength);
    }
    if len > MAX_MESSAGE as u64 {
        return Err(WsError::TooBig(len));
    }
    // At most MAX_MESSAGE + 10: no overflow.
    let end = payload_at + len as usize;
    if buf.len() < end {
        return Ok(Err(end));
    }
    Ok(Ok(Header {
        fin,
        opcode,
        payload_at,
        end,
    }))
}

/// A whole message, or a control frame the session must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A text message, UTF-8 checked: borrowed from the read buffer when it came in one
    /// frame (the usual case), owned when reassembled from fragments.
    Text(Cow<'a, str>),
    /// A binary message.
    Binary(Cow<'a, [u8]>),
    /// A ping, to be answered with a pong carrying the same payload (§5.5.2).
    Ping(&'a [u8]),
    /// The server's close frame, with its status code if it sent one (§5.5.1).
    Close(Option<u16>),
}

/// The reading side of one connection: a buffer one read fills, the position of the next
/// unparsed byte, and a fragmented message being reassembled.
pub struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes the next frame needs from `start` (0: unknown), so the buffer can make room.
    need: usize,
    /// A fragmented message begun: whether it is text, and its payload so far.
    partial: Option<(bool, Vec<u8>)>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            need: 0,
            partial: None,
        }
    }
}

impl Reader {
    /// Bytes read but not yet parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Adds bytes as if read.
    #[cfg(test)]
    pub fn push(&mut self, bytes: &[u8]) {
        self.make_room(bytes.len());
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// Moves the unparsed bytes to the front and grows the buffer so that `more` bytes fit
    /// after them, and the next frame (`need`) as a whole.
    fn make_room(&mut self, more: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let held = self.end - self.start;
        let wanted = (held + more).max(self.need);
        if self.buf.len() - self.start < wanted || self.buf.len() - self.end < more {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = held;
            if self.buf.len() < wanted {
                self.buf.resize(wanted, 0);
            }
        }
    }

    /// One read from `stream` into the buffer; 0 at the end of the stream.
    pub async fn fill<S: AsyncRead + Unpin>(&mut self, stream: &mut S) -> io::Result<usize> {
        // Reads of at least a few hundred bytes, so a read takes several frames.
        self.make_room(512.max(self.need.saturating_sub(self.end - self.start)));
        let n = stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// The next message or control frame among the bytes read, if one is complete.
    /// Pongs are consumed here (a client sends no pings, so it owes them nothing).
    pub fn next(&mut self) -> Result<Option<Incoming<'_>>, WsError> {
        loop {
            let h = match header(&self.buf[self.start..self.end])? {
                Ok(h) => h,
                Err(need) => {
                    self.need = need;
                    return Ok(None);
                }
            };
            self.need = 0;
            let payload = self.start + h.payload_at..self.start + h.end;
            self.start += h.end;
            match h.opcode {
                OP_TEXT | OP_BINARY if self.partial.is_some() => return Err(WsError::Fragments),
                OP_TEXT | OP_BINARY if !h.fin => {
                    self.partial = Some((h.opcode == OP_TEXT, self.buf[payload].to_vec()));
                }
                OP_TEXT => {
                    let text =
                        std::str::from_utf8(&self.buf[payload]).map_err(|_| WsError::Utf8)?;
                    return Ok(Some(Incoming::Text(Cow::Borrowed(text))));
                }
                OP_BINARY => return Ok(Some(Incoming::Binary(Cow::Borrowed(&self.buf[payload])))),
                OP_CONTINUATION => {
                    let Some((_, so_far)) = &mut self.partial else {
                        return Err(WsError::Fragments);
                    };
                    let total = so_far.len() + payload.len();
                    if total > MAX_MESSAGE {
                        return Err(WsError::TooBig(total as u64));
                    }
                    so_far.extend_from_slice(&self.buf[payload]);
                    if h.fin {
                        let Some((text, whole)) = self.partial.take() else {
                            unreachable!("matched above");
                        };
                        return Ok(Some(if text {
                            let text = String::from_utf8(whole).map_err(|_| WsError::Utf8)?;
                            Incoming::Text(Cow::Owned(text))
                        } else {
                            Incoming::Binary(Cow::Owned(whole))
                        }));
                    }
                }
                OP_PING => return Ok(Some(Incoming::Ping(&self.buf[payload]))),
                OP_CLOSE => {
                    let body = &self.buf[payload];
                    return match body.len() {
                        0 => Ok(Some(Incoming::Close(None))),
                        1 => Err(WsError::BadClose),
                        _ => {
                            std::str::from_utf8(&body[2..]).map_err(|_| WsError::Utf8)?;
                            Ok(Some(Incoming::Close(Some(u16::from_be_bytes([
                                body[0], body[1],
                            ])))))
                        }
                    };
                }
                // OP_PONG; `header` refused every other opcode.
                _ => {}
            }
        }
    }
}

/// A client frame: FIN, the opcode, the length, a fresh masking key from a CSPRNG (§5.3:
/// "derived from a strong source of entropy") and the masked payload.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame_with(opcode, payload, rand::random())
}

fn client_frame_with(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// The upgrade request for `path` (§4.1) with a fresh key: (the key, the request's bytes).
pub fn upgrade_request(host: &str, path: &str) -> (String, String) {
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
    );
    (key, request)
}

/// The opening handshake (§4.1): sends the upgrade request for `path`, reads the response
/// head, and checks it is a 101 that accepts this request's key. Bytes the server sent after
/// the head (its first frames) are left in `reader`. A refusal is its status, as
/// [`Refused`].
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    host: &str,
    path: &str,
    reader: &mut Reader,
) -> anyhow::Result<()> {
    let (key, request) = upgrade_request(host, path);
    stream.write_all(request.as_bytes()).await?;
    let head_len = loop {
        if let Some(at) = reader.pending().windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if reader.pending().len() > MAX_HEAD {
            anyhow::bail!("WebSocket handshake: response head over {MAX_HEAD} bytes");
        }
        if reader.fill(stream).await? == 0 {
            anyhow::bail!("WebSocket handshake: connection closed before the response head");
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response
        .parse(&reader.pending()[..head_len])
        .map_err(|e| anyhow::anyhow!("WebSocket handshake: bad response head: {e}"))?;
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(Refused(status).into());
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = header("upgrade").unwrap_or_default();
    let connection = header("connection").unwrap_or_default();
    let accept = header("sec-websocket-accept").unwrap_or_default();
    let upgrades = connection
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !upgrade.eq_ignore_ascii_case("websocket") || !upgrades || accept != expected {
        anyhow::bail!("WebSocket handshake: the 101 does not accept this upgrade (§4.1)");
    }
    reader.start += head_len;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame: unmasked, as RFC 6455 §5.1 requires of servers.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n @ 126..=0xFFFF => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    fn texts(reader: &mut Reader) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = reader.next().unwrap() {
            match m {
                Incoming::Text(t) => out.push(t.into_owned()),
                other => panic!("not text: {other:?}"),
            }
        }
        out
    }

    #[test]
    fn many_frames_in_one_read_are_all_parsed() {
        let mut reader = Reader::default();
        let mut bytes = Vec::new();
        for i in 0..50 {
            bytes.extend(server_frame(
                true,
                OP_TEXT,
                format!("{{\"id\":{i}}}").as_bytes(),
            ));
        }
        reader.push(&bytes);
        let got = texts(&mut reader);
        assert_eq!(got.len(), 50);
        assert_eq!(got[49], "{\"id\":49}");
        assert!(reader.pending().is_empty());
    }

    #[test]
    fn a_frame_split_across_reads_at_every_byte_is_parsed_once() {
        // 16-bit and 64-bit lengths too: their extended headers are split as well.
        for len in [5, 200, 70_000] {
            let payload = "x".repeat(len);
            let frame = server_frame(true, OP_TEXT, payload.as_bytes());
            for cut in 1..frame.len().min(300) {
                let mut reader = Reader::default();
                reader.push(&frame[..cut]);
                assert_eq!(reader.next().unwrap(), None, "len {len} cut {cut}");
                reader.push(&frame[cut..]);
                assert_eq!(texts(&mut reader), std::slice::from_ref(&payload));
            }
        }
    }

    #[tokio::test]
    async fn fill_grows_the_buffer_for_a_frame_larger_than_it() {
        let payload = "y".repeat(3 * READ_BUFFER);
        let frame = server_frame(true, OP_TEXT, payload.as_bytes());
        let (mut a, mut b) = tokio::io::duplex(256);
        let writer = tokio::spawn(async move {
            a.write_all(&frame).await.unwrap();
        });
        let mut reader = Reader::default();
        let got = loop {
            if let Some(Incoming::Text(t)) = reader.next().unwrap() {
                break t.into_owned();
            }
            assert!(reader.fill(&mut b).await.unwrap() > 0);
        };
        assert_eq!(got, payload);
        writer.await.unwrap();
    }

    #[test]
    fn fragments_reassemble_with_control_frames_between_them() {
        let mut reader = Reader::default();
        reader.push(&server_frame(false, OP_TEXT, b"{\"id\":"));
        reader.push(&server_frame(true, OP_PING, b"p1"));
        reader.push(&server_frame(
            false,
            OP_CONTINUATION,
            "7,\"t\":\"é".as_bytes(),
        ));
        reader.push(&server_frame(true, OP_PONG, b""));
        reader.push(&server_frame(true, OP_CONTINUATION, b"\"}"));
        assert_eq!(reader.next().unwrap(), Some(Incoming::Ping(b"p1")));
        assert_eq!(
            reader.next().unwrap(),
            Some(Incoming::Text(Cow::Owned("{\"id\":7,\"t\":\"é\"}".into())))
        );
        assert_eq!(reader.next().unwrap(), None);
    }

    #[test]
    fn a_character_split_between_fragments_is_valid_text() {
        let bytes = "é".as_bytes();
        let mut reader = Reader::default();
        reader.push(&server_frame(false, OP_TEXT, &bytes[..1]));
        reader.push(&server_frame(true, OP_CONTINUATION, &bytes[1..]));
        assert_eq!(texts(&mut reader), ["é"]);
    }

    #[test]
    fn close_gives_its_code_and_checks_its_payload() {
        let mut reader = Reader::default();
        let mut payload = 4001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"ping timeout");
        reader.push(&server_frame(true, OP_CLOSE, &payload));
        assert_eq!(reader.next().unwrap(), Some(Incoming::Close(Some(4001))));
        reader.push(&server_frame(true, OP_CLOSE, b""));
        assert_eq!(reader.next().unwrap(), Some(Incoming::Close(None)));
        reader.push(&server_frame(true, OP_CLOSE, b"x"));
        assert_eq!(reader.next(), Err(WsError::BadClose));
        let mut reader = Reader::default();
        reader.push(&server_frame(true, OP_CLOSE, &[0x03, 0xE8, 0xFF]));
        assert_eq!(reader.next(), Err(WsError::Utf8));
    }

    #[test]
    fn hostile_frames_are_refused() {
        let cases: [(Vec<u8>, WsError); 10] = [
            // A length of 2^40 refused from its header, before any of it is buffered.
            (
                [vec![0x81, 127], (1u64 << 40).to_be_bytes().to_vec()].concat(),
                WsError::TooBig(1 << 40),
            ),
            (
                [vec![0x81, 127], (1u64 << 63).to_be_bytes().to_vec()].concat(),
                WsError::BadLength,
            ),
            (vec![0x81, 0x85, 1, 2, 3, 4, 0, 0, 0, 0, 0], WsError::Masked),
            (vec![0xC1, 0x00], WsError::Reserved),
            (vec![0x83, 0x00], WsError::Opcode(3)),
            (vec![0x8B, 0x00], WsError::Opcode(11)),
            (vec![0x09, 0x00], WsError::BadControl),
            (
                [vec![0x89, 126, 0, 126], vec![0; 126]].concat(),
                WsError::BadControl,
            ),
            (vec![0x80, 0x01, b'x'], WsError::Fragments),
            (vec![0x81, 0x02, 0xC3, 0x28], WsError::Utf8),
        ];
        for (bytes, error) in cases {
            let mut reader = Reader::default();
            reader.push(&bytes);
            assert_eq!(reader.next(), Err(error), "{bytes:?}");
        }
        // A new message inside a fragmented one.
        let mut reader = Reader::default();
        reader.push(&server_frame(false, OP_TEXT, b"a"));
        reader.push(&server_frame(true, OP_TEXT, b"b"));
        assert_eq!(reader.next(), Err(WsError::Fragments));
        // Fragments that sum past the limit.
        let mut reader = Reader::default();
        let half = vec![b'a'; MAX_MESSAGE / 2 + 1];
        reader.push(&server_frame(false, OP_TEXT, &half));
        reader.push(&server_frame(true, OP_CONTINUATION, &half));
        assert_eq!(reader.next(), Err(WsError::TooBig(2 * half.len() as u64)));
    }

    #[test]
    fn client_frames_are_masked_and_sized_as_rfc_6455_says() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        // RFC 6455 §5.7: a masked "Hello".
        assert_eq!(
            client_frame_with(OP_TEXT, b"Hello", mask),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        for len in [0, 125, 126, 65_535, 65_536] {
            let frame = client_frame(OP_TEXT, &vec![b'a'; len]);
            // Header, 0/2/8 bytes of extended length, the 4-byte key, the payload.
            let extended = match len {
                0..=125 => 0,
                126..=65_535 => 2,
                _ => 8,
            };
            assert_eq!(frame.len(), 2 + extended + 4 + len);
            assert_eq!(frame[1] & 0x80, 0x80, "the MASK bit");
        }
        // Two frames get different keys (a CSPRNG: equal keys have odds 2^-32).
        assert_ne!(
            client_frame(OP_PONG, b"")[2..6],
            client_frame(OP_PONG, b"")[2..6]
        );
    }
}
