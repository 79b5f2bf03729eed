//! The request log span: off at the default level (it cost 2–3 µs of CPU per request),
//! and with `PUSHPOLL_LOG=info,pushpoll=debug` every log line of a request names its client
//! and TCP peer (docs/PROXY.md, "Behind a reverse proxy: whose address is it?").

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Starts the binary with `PUSHPOLL_LOG=filter`, has it log inside a request (a kill, which
/// logs at info), and returns that log line.
async fn kill_log_line(filter: &str) -> String {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pushpoll"));
    command
        .args(["--addr", "127.0.0.1:0", "--db", ":memory:"])
        .env("PUSHPOLL_LOG", filter)
        // Plain text, no colour codes between the span's name and its fields.
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped());
    let mut spawned = pushpoll::spawn::start(&mut command).await.unwrap();
    let stderr = spawned.child.stderr.take().unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/api/debug/kill", spawned.url))
        .json(&serde_json::json!({ "tag": "logs-test-0123456789abcdef" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut lines = BufReader::new(stderr).lines();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("killed tagged connections") {
                return strip_ansi(&line);
            }
        }
        panic!("pushpoll exited without logging the kill");
    })
    .await
    .expect("the kill is logged within 10 s")
}

#[tokio::test]
async fn the_request_span_is_off_by_default_and_names_the_client_at_debug() {
    let default = kill_log_line("info").await;
    assert!(!default.contains("request{"), "{default}");
    let debug = kill_log_line("info,pushpoll=debug").await;
    assert!(
        debug.contains("request{client=127.0.0.1 peer=127.0.0.1:"),
        "{debug}"
    );
}

/// The line without ANSI escape sequences (`ESC [ … letter`), in case colour is on.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
