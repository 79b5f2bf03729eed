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
}
