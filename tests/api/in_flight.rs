//! Requests in flight per peer: a client's held long polls and streams,
//! over HTTP/1.1 connections or the streams of several HTTP/2 connections, share one bound,
//! `--max-requests-per-peer`; past it, `503 too_many_requests` with `Retry-After: 1`, while
//! another address is served; a finished request gives its slot back.

use std::time::{Duration, Instant};

use crate::support::{client_from, spawn_app};
use crate::tls::TlsServer;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn held_long_polls_share_the_peers_request_bound_and_others_are_served() {
    let app = spawn_app(&["--max-requests-per-peer", "4"]).await;
    let url = app.url("/longpoll/chat?timeout=3");
    // Four long polls held (each on its own connection).
    let held: Vec<_> = (0..4)
        .map(|_| {
            let (http, url) = (reqwest::Client::new(), url.clone());
            tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
        })
        .collect();
    let refused = {
        let until = Instant::now() + 15 * SECOND;
        loop {
            let res = reqwest::Client::new()
                .get(app.url("/poll/clock"))
                .send()
                .await
                .unwrap();
            if res.status() == 503 || Instant::now() > until {
                break res;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    // Another address is served meanwhile.
    let other = client_from(2)
        .get(app.url("/poll/clock"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // Once the long polls answer, their slots are free again.
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    let res = reqwest::get(app.url("/poll/clock")).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn http2_streams_of_several_connections_share_the_peers_request_bound() {
    let server = TlsServer::start(&["--tls-self-signed", "--max-requests-per-peer", "40"]).await;
    // Two HTTP/2 connections from 127.0.0.1 hold 20 long polls each (32 per connection is
    // the stream cap, so the per-connection bound alone would allow 64).
    let mut held = Vec::new();
    for _ in 0..2 {
        let h2 = server.h2_from(1).await;
        for _ in 0..20 {
            let mut h2 = h2.clone();
            let req = server.request("GET", "/longpoll/chat?timeout=30", String::new());
            held.push(tokio::spawn(async move { h2.send_request(req).await }));
        }
    }
    // The 41st, on a third connection, is refused once the 40 are in (40 TLS streams take
    // seconds to be in on a loaded two-core machine: the deadline is generous, the loop ends
    // as soon as the refusal comes).
    let mut third = server.h2_from(1).await;
    let until = Instant::now() + 25 * SECOND;
    let status = loop {
        let res = third
            .send_request(server.request("GET", "/poll/clock", String::new()))
            .await
            .expect("an answer");
        if res.status() == 503 || Instant::now() > until {
            let body = crate::tls::read_all(res.into_body()).await;
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            break body["error"]["code"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, "too_many_requests");
    // Another address is served.
    let mut other = server.h2_from(2).await;
    server.get_json(&mut other, "/poll/clock").await;
    // A stream the client resets (its request dropped) gives its slot back.
    held.pop().unwrap().abort();
    let until = Instant::now() + 5 * SECOND;
    loop {
        let res = third
            .send_request(server.request("GET", "/poll/clock", String::new()))
            .await
            .expect("an answer");
        if res.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the reset stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
