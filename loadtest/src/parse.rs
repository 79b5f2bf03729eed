//! Incremental parsers for the two streaming formats: they take chunks as the network cuts
//! them (an event split across chunks, several events in one) and give whole events.

/// Server-Sent Events: yields the `data:` of each message (comments and `retry:` skipped).
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8], mut on_data: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(end) = find(&self.buf[start..], b"\n\n") {
            let block = &self.buf[start..start + end];
            for line in block.split(|b| *b == b'\n') {
                if let Some(data) = line
                    .strip_prefix(b"data: ")
                    .or_else(|| line.strip_prefix(b"data:"))
                {
                    on_data(data);
                }
            }
            start += end + 2;
        }
        self.buf.drain(..start);
    }
}

/// The hidden-iframe stream: yields the JSON inside each `<script>parent.pushpoll(…)</script>`.
#[derive(Default)]
pub struct IframeParser {
    buf: Vec<u8>,
}

const OPEN: &[u8] = b"<script>parent.pushpoll(";
const CLOSE: &[u8] = b")</script>";

impl IframeParser {
    pub fn push(&mut self, chunk: &[u8], mut on_json: impl FnMut(&[u8])) {
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
            on_json(&body[..close]);
            consumed += open + OPEN.len() + close + CLOSE.len();
        }
        self.buf.drain(..consumed);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSE: &[u8] = b"retry: 2000\n\nid: 1\nevent: message\ndata: {\"id\":1}\n\n: ping\n\nid: 2\nevent: join\ndata: {\"id\":2}\n\n";

    fn sse_in_chunks(size: usize) -> Vec<String> {
        let mut parser = SseParser::default();
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
            let mut parser = IframeParser::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(size) {
                parser.push(chunk, |j| out.push(String::from_utf8(j.to_vec()).unwrap()));
            }
            assert_eq!(
                out,
                vec!["{\"id\":1,\"t\":\"a\\u003c/script\\u003e\"}", "{\"id\":2}"],
                "chunks of {size}"
            );
            assert!(parser.buf.len() < OPEN.len());
        }
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
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, |d| out.push(d.to_vec()));
        }
        out
    }

    fn iframe_decode(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut parser = IframeParser::default();
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
            prop_assert!(left < OPEN.len());
        }

        #[test]
        fn iframe_arbitrary_bytes_never_panic_and_ignore_the_cuts(
            parts in proptest::collection::vec(prop_oneof![
                3 => proptest::collection::vec(any::<u8>(), 0..16),
                1 => Just(OPEN.to_vec()),
                1 => Just(CLOSE.to_vec()),
                1 => Just(OPEN[..7].to_vec()),
            ], 0..32),
            sizes in proptest::collection::vec(1usize..64, 1..8),
        ) {
            let bytes = parts.concat();
            prop_assert_eq!(iframe_decode(&cut(&bytes, &sizes)).0, iframe_decode(&[&bytes]).0);
        }
    }
}
