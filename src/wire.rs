//! The two streaming formats read back: where a Server-Sent Events message and a hidden-iframe
//! call begin and end, and incremental decoders that take chunks as the network cuts them (an
//! event split across chunks, several events in one) and give whole events. The server writes
//! these formats (`feed::event`), the load tester's clients and the tests read them, all with
//! the constants here.

/// What the iframe stream wraps each event's JSON in: the stream calls its parent page's
/// `pushpoll` function once per event.
pub const IFRAME_CALL_OPEN: &[u8] = b"<script>parent.pushpoll(";
/// What ends each call, the newline included (one call per line).
pub const IFRAME_CALL_CLOSE: &[u8] = b")</script>\n";
/// The end of a call for a reader: the newline after `</script>` is markup between calls, so
/// a decoder does not wait for it.
pub const IFRAME_CALL_END: &[u8] = match IFRAME_CALL_CLOSE.split_last() {
    Some((_, end)) => end,
    None => IFRAME_CALL_CLOSE,
};

/// After this many bytes an iframe stream's document ends, so the page can drop the grown
/// document and reopen the stream from its cursor.
pub const IFRAME_DOCUMENT_BYTES: usize = 256 * 1024;

/// What ends each Server-Sent Events message: a blank line.
pub const SSE_MESSAGE_END: &[u8] = b"\n\n";

/// What ends each line of the `fetch` stream (NDJSON: one JSON value per line). An event's
/// JSON is compact, and JSON escapes a newline inside a string, so the line end is unique.
pub const NDJSON_LINE_END: &[u8] = b"\n";

/// The `fetch` stream's media type. NDJSON (ndjson.org, "Newline Delimited JSON") names it
/// `application/x-ndjson`, the type the HTTP APIs that stream JSON lines send; JSON Lines
/// (jsonlines.org) suggests `application/jsonl`, which, like `x-ndjson`, is not registered
/// with IANA. The format is the same (UTF-8, one value per `\n`-ended line).
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// The heartbeat every long-lived transport sends when nothing else was sent for
/// `--keepalive`, and once at the start of each stream and WebSocket: `{"heartbeat":MS}`, where
/// MS is that interval in milliseconds, so a client knows how long a silence means a dead
/// stream. SSE sends it as a message named [`SSE_HEARTBEAT_EVENT`] (no `id:`, so the cursor
/// stays), the iframe as one more `parent.pushpoll(…)` call, the `fetch` stream as one more
/// line, WebSocket as a text message.
/// It is not an event of a feed: it has no `id`, `ts` or `type`.
pub fn heartbeat_json(every: std::time::Duration) -> String {
    format!("{{\"{HEARTBEAT_MEMBER}\":{}}}", every.as_millis())
}

/// The heartbeat's one JSON member (`{"heartbeat":MS}`), served to the pages in facts.js.
pub const HEARTBEAT_MEMBER: &str = "heartbeat";

/// The SSE event name of the heartbeat (`event: heartbeat`), served to the pages in facts.js.
pub const SSE_HEARTBEAT_EVENT: &str = HEARTBEAT_MEMBER;

/// Whether `json` (an SSE `data:`, an iframe call's argument, a WebSocket text message) is
/// a heartbeat rather than an event.
pub fn is_heartbeat(json: &[u8]) -> bool {
    // Only a heartbeat starts with its member: events start with `"id"`.
    json.strip_prefix(b"{\"")
        .and_then(|rest| rest.strip_prefix(HEARTBEAT_MEMBER.as_bytes()))
        .is_some_and(|rest| rest.starts_with(b"\""))
}

/// The heartbeat framed for the `fetch` stream: one more line.
pub fn ndjson_heartbeat(every: std::time::Duration) -> String {
    format!("{}\n", heartbeat_json(every))
}

/// The heartbeat framed for SSE.
pub fn sse_heartbeat(every: std::time::Duration) -> String {
    format!(
        "event: {SSE_HEARTBEAT_EVENT}\ndata: {}\n\n",
        heartbeat_json(every)
    )
}

/// The heartbeat framed for the iframe stream (its JSON has nothing to escape).
pub fn iframe_heartbeat(every: std::time::Duration) -> String {
    format!(
        "{}{}{}",
        String::from_utf8_lossy(IFRAME_CALL_OPEN),
        heartbeat_json(every),
        String::from_utf8_lossy(IFRAME_CALL_CLOSE)
    )
}

/// Server-Sent Events: yields the `data:` of each message (comments, `retry:` and heartbeats
/// skipped).
#[derive(Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
}

impl SseDecoder {
    /// Appends `chunk` and calls `on_data` with the value of every `data:` line of each
    /// message the chunk completes; an incomplete message waits for the next chunk.
    pub fn push(&mut self, chunk: &[u8], mut on_data: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = find(&self.buf[start..], SSE_MESSAGE_END) {
            let block = &self.buf[start..start + end];
            for line in block.split(|b| *b == b'\n') {
                if let Some(data) = line
                    .strip_prefix(b"data: ")
                    .or_else(|| line.strip_prefix(b"data:"))
                    && !is_heartbeat(data)
                {
                    on_data(data);
                }
            }
            start += end + SSE_MESSAGE_END.len();
        }
        self.buf.drain(..start);
    }
}

/// The hidden-iframe stream: yields the JSON inside each `<script>parent.pushpoll(…)</script>`
/// that is an event (heartbeats skipped).
#[derive(Default)]
pub struct IframeDecoder {
    buf: Vec<u8>,
}

impl IframeDecoder {
    /// Appends `chunk` and calls `on_json` with the JSON of each call the chunk completes;
    /// what is kept is at most an incomplete call (or the start of an opening tag).
    pub fn push(&mut self, chunk: &[u8], mut on_json: impl FnMut(&[u8])) {
        const OPEN: &[u8] = IFRAME_CALL_OPEN;
        const CLOSE: &[u8] = IFRAME_CALL_END;
        self.buf.extend_from_slice(chunk);
        let mut consumed = 0;
        loop {
            let rest = &self.buf[consumed..];
            let Some(open) = find(rest, OPEN) else {
                // Keep only a tail that could be the start of an opening tag.
                consumed = self.buf.len().saturating_sub(OPEN.len() - 1).max(consumed);
                break;
            };
            let body = &rest[open + OPEN.len()..];
            let Some(close) = find(body, CLOSE) else {
                consumed += open;
                break;
            };
            if !is_heartbeat(&body[..close]) {
                on_json(&body[..close]);
            }
            consumed += open + OPEN.len() + close + CLOSE.len();
        }
        self.buf.drain(..consumed);
    }
}

/// The `fetch` stream (NDJSON): yields each line that is an event (heartbeats and blank
/// lines skipped).
#[derive(Default)]
pub struct NdjsonDecoder {
    buf: Vec<u8>,
}

impl NdjsonDecoder {
    /// Appends `chunk` and calls `on_json` with each whole line the chunk completes; what is
    /// kept is at most one incomplete line.
    pub fn push(&mut self, chunk: &[u8], mut on_json: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = find(&self.buf[start..], NDJSON_LINE_END) {
            let line = &self.buf[start..start + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() && !is_heartbeat(line) {
                on_json(line);
            }
            start += end + NDJSON_LINE_END.len();
        }
        self.buf.drain(..start);
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSE: &[u8] = b"retry: 2000\n\nid: 1\nevent: message\ndata: {\"id\":1}\n\nevent: heartbeat\ndata: {\"heartbeat\":15000}\n\nid: 2\nevent: join\ndata: {\"id\":2}\n\n";

    fn sse_in_chunks(size: usize) -> Vec<String> {
        let mut parser = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in SSE.chunks(size) {
            parser.push(chunk, |d| out.push(String::from_utf8(d.to_vec()).unwrap()));
        }
        out
    }

    #[test]
    fn sse_events_survive_any_split_and_joined_chunks() {
        for size in [1, 2, 3, 7, 16, SSE.len()] {
            assert_eq!(
                sse_in_chunks(size),
                vec!["{\"id\":1}", "{\"id\":2}"],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn iframe_events_survive_any_split_and_joined_chunks() {
        let mut stream = b"<!doctype html><body>\n<!-- padding <script> -->\n".to_vec();
        stream.extend_from_slice(b"<script>parent.pushpoll({\"id\":1,\"t\":\"a\\u003c/script\\u003e\"})</script>\n<!-- -->\n");
        stream.extend_from_slice(b"<script>parent.pushpoll({\"id\":2})</script>\n");
        for size in [1, 2, 5, 13, stream.len()] {
            let mut parser = IframeDecoder::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(size) {
                parser.push(chunk, |j| out.push(String::from_utf8(j.to_vec()).unwrap()));
            }
            assert_eq!(
                out,
                vec!["{\"id\":1,\"t\":\"a\\u003c/script\\u003e\"}", "{\"id\":2}"],
                "chunks of {size}"
            );
            assert!(parser.buf.len() < IFRAME_CALL_OPEN.len());
        }
    }

    #[test]
    fn ndjson_lines_survive_any_split_and_joined_chunks() {
        let stream: &[u8] =
            b"{\"heartbeat\":15000}\n{\"id\":1,\"t\":\"a\\nb\"}\n\n{\"id\":2}\r\n{\"id\":3";
        for size in [1, 2, 5, 13, stream.len()] {
            let mut parser = NdjsonDecoder::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(size) {
                parser.push(chunk, |j| out.push(String::from_utf8(j.to_vec()).unwrap()));
            }
            assert_eq!(
                out,
                vec!["{\"id\":1,\"t\":\"a\\nb\"}", "{\"id\":2}"],
                "chunks of {size}"
            );
            // The unfinished last line waits for its end.
            assert_eq!(parser.buf, b"{\"id\":3");
        }
    }

    /// The server's own frames decode back to the JSON they carry, escaped or not.
    #[test]
    fn the_servers_frames_decode_to_their_json() {
        use crate::feed::{Event, EventBody, WireEvent};
        let ev = Event::new(&WireEvent {
            id: 7,
            ts: 9,
            body: EventBody::Tick {
                time: "</script> \u{2028}".into(),
            },
        });
        let mut sse = Vec::new();
        SseDecoder::default().push(&ev.sse_frame(), |d| sse.push(d.to_vec()));
        assert_eq!(sse, vec![ev.json.to_vec()]);
        let mut iframe = Vec::new();
        IframeDecoder::default().push(&ev.iframe_chunk(), |j| iframe.push(j.to_vec()));
        let decoded: WireEvent = serde_json::from_slice(&iframe[0]).unwrap();
        assert_eq!(
            decoded,
            serde_json::from_slice::<WireEvent>(&ev.json).unwrap()
        );
        assert!(ev.iframe_chunk().starts_with(IFRAME_CALL_OPEN));
        assert!(ev.iframe_chunk().ends_with(IFRAME_CALL_CLOSE));
        let mut lines = Vec::new();
        NdjsonDecoder::default().push(&ev.ndjson_line(), |j| lines.push(j.to_vec()));
        assert_eq!(lines, vec![ev.json.to_vec()]);
    }

    // Property tests: the network may cut a stream anywhere, so the events must not depend
    // on where the cuts fall, and no bytes a server sends may panic the load tester.

    use proptest::prelude::*;

    /// Cuts `bytes` into chunks of the given sizes (cycled), the way reads arrive.
    fn cut<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut rest = bytes;
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }

    fn sse_decode(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut parser = SseDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, |d| out.push(d.to_vec()));
        }
        out
    }

    fn iframe_decode(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut parser = IframeDecoder::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, |j| out.push(j.to_vec()));
        }
        (out, parser.buf.len())
    }

    /// One SSE message as the server writes it, or a comment / `retry:` line (no data).
    fn sse_block() -> impl Strategy<Value = (String, Option<String>)> {
        prop_oneof![
            3 => (any::<u64>(), "[a-z]{1,8}", "[ -~]{0,40}").prop_map(|(id, event, data)| {
                (format!("id: {id}\nevent: {event}\ndata: {data}\n\n"), Some(data))
            }),
            1 => Just((": ping\n\n".to_string(), None)),
            1 => Just(("retry: 2000\n\n".to_string(), None)),
        ]
    }

    /// Iframe payload: JSON as the server escapes it (no `<`, so never `</script>`).
    fn iframe_payload() -> impl Strategy<Value = String> {
        "[a-z0-9{}\\[\\]\":,. ]{0,40}"
            .prop_map(|s| format!("{{\"t\":\"{s}\\u003c/script\\u003e\"}}"))
    }

    proptest! {
        #[test]
        fn sse_any_split_of_a_valid_stream_gives_the_same_events(
            blocks in proptest::collection::vec(sse_block(), 0..20),
            sizes in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let stream: String = blocks.iter().map(|(text, _)| text.as_str()).collect();
            let expected: Vec<Vec<u8>> =
                blocks.iter().filter_map(|(_, d)| d.clone().map(String::into_bytes)).collect();
            prop_assert_eq!(sse_decode(&[stream.as_bytes()]), expected.clone());
            prop_assert_eq!(sse_decode(&cut(stream.as_bytes(), &sizes)), expected);
        }

        #[test]
        fn sse_arbitrary_bytes_never_panic_and_ignore_the_cuts(
            bytes in proptest::collection::vec(
                prop_oneof![3 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b':')], 0..512),
            sizes in proptest::collection::vec(1usize..64, 1..8),
        ) {
            prop_assert_eq!(sse_decode(&cut(&bytes, &sizes)), sse_decode(&[&bytes]));
        }

        #[test]
        fn iframe_any_split_of_a_valid_stream_gives_the_same_events(
            events in proptest::collection::vec((iframe_payload(), "[ -;=-~\n]{0,20}"), 0..12),
            sizes in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let mut stream = b"<!doctype html><body>\n<!-- padding <script> -->\n".to_vec();
            for (json, padding) in &events {
                stream.extend_from_slice(format!("<script>parent.pushpoll({json})</script>\n").as_bytes());
                // Keep-alive comments and other markup between events (no `<`).
                stream.extend_from_slice(padding.as_bytes());
            }
            let expected: Vec<Vec<u8>> = events.iter().map(|(j, _)| j.clone().into_bytes()).collect();
            let (whole, _) = iframe_decode(&[&stream]);
            prop_assert_eq!(&whole, &expected);
            let (split, left) = iframe_decode(&cut(&stream, &sizes));
            prop_assert_eq!(split, expected);
            // What is left buffered is at most a partial opening tag.
            prop_assert!(left < IFRAME_CALL_OPEN.len());
        }

        #[test]
        fn iframe_arbitrary_bytes_never_panic_and_ignore_the_cuts(
            parts in proptest::collection::vec(prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..16),
                1 => Just(IFRAME_CALL_OPEN.to_vec()),
                1 => Just(IFRAME_CALL_END.to_vec()),
                1 => Just(IFRAME_CALL_OPEN[..7].to_vec()),
            ], 0..32),
            sizes in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let bytes = parts.concat();
            prop_assert_eq!(iframe_decode(&cut(&bytes, &sizes)).0, iframe_decode(&[&bytes]).0);
        }
    }
}
