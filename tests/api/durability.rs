//! Durability: after `kill -9` and a restart on the same file, every acknowledged message is
//! there and ids continue above the old ones; a cursor from before the restart still
//! resumes.

use std::process::Stdio;

use pushpoll::feed::{EventBody, WireEvent};
use tokio::process::{Child, Command};

/// Starts the real binary on a free port with the chat in `db`; returns it and its base URL.
async fn start(db: &str) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushpoll"));
    command
        .args(["--addr", "127.0.0.1:0", "--db", db, "--rate-limit", "1000"])
        .args(["--rate-limit-bytes", "1073741824"])
        .stderr(Stdio::null());
    let spawned = pushpoll::spawn::start(&mut command).await.unwrap();
    (spawned.child, spawned.url)
}

async fn messages(http: &reqwest::Client, base: &str, after: u64) -> Vec<WireEvent> {
    let body: serde_json::Value = http
        .get(format!("{base}/poll/chat?after={after}&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events: Vec<WireEvent> = serde_json::from_value(body["events"].clone()).unwrap();
    events
        .into_iter()
        .filter(|e| matches!(e.body, EventBody::Message { .. }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_and_ids_continue_above_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("data/chat.sqlite");
    let db = db.to_str().unwrap();
    let http = reqwest::Client::new();

    let (mut first, base) = start(db).await;
    let cookie = login(&http, &base, "alice").await;
    let mut acked = Vec::new();
    for i in 0..25 {
        let res = http
            .post(format!("{base}/api/chat/messages"))
            .header("cookie", &cookie)
            .json(&serde_json::json!({"room": "lobby", "text": format!("m{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: serde_json::Value = res.json().await.unwrap();
        acked.push((body["id"].as_u64().unwrap(), format!("m{i}")));
    }
    // SIGKILL: no shutdown code runs at all.
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let (_second, base) = start(db).await;
    let got = messages(&http, &base, 0).await;
    let got: Vec<(u64, String)> = got
        .into_iter()
        .map(|e| match e.body {
            EventBody::Message { text, .. } => (e.id, text),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(got, acked, "every acknowledged message, under its id");

    // A cursor from before the restart resumes exactly after it.
    let resumed = messages(&http, &base, acked[9].0).await;
    assert_eq!(resumed.first().map(|e| e.id), Some(acked[10].0));
    assert_eq!(resumed.len(), 15);

    // The session survived too (it is in the database with its key), and the ids continue.
    let res = http
        .post(format!("{base}/api/chat/messages"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"room": "lobby", "text": "after restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["id"].as_u64().unwrap() > acked.last().unwrap().0);
}

async fn login(http: &reqwest::Client, base: &str, nick: &str) -> String {
    let res = http
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({"nick": nick}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Sessions survive a restart on SQLite: the cookie still signs in (same key, kept in the
/// database), the nick is still held; a logged-out session stays out.
#[tokio::test]
async fn a_session_survives_kill_9_and_a_restart_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.sqlite");
    let db = db.to_str().unwrap();
    let http = reqwest::Client::new();
    let login = |base: String, nick: &'static str| {
        let http = http.clone();
        async move {
            let res = http
                .post(format!("{base}/api/session"))
                .json(&serde_json::json!({ "nick": nick }))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let cookie = res
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
            (status, cookie)
        }
    };
    let (mut child, base) = start(db).await;
    let (_, kept) = login(base.clone(), "kept").await;
    let (_, gone) = login(base.clone(), "gone").await;
    let res = http
        .delete(format!("{base}/api/session"))
        .header("cookie", gone.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    child.kill().await.unwrap();

    let (mut child, base) = start(db).await;
    let whoami = |cookie: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            http.get(format!("{base}/api/session"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        whoami(kept.unwrap()).await,
        200,
        "the cookie of before the kill"
    );
    assert_eq!(
        whoami(gone.unwrap()).await,
        401,
        "a logged-out session stays out"
    );
    assert_eq!(
        login(base.clone(), "KEPT").await.0,
        409,
        "the nick is still held"
    );
    assert_eq!(login(base.clone(), "gone").await.0, 201);
    child.kill().await.unwrap();
}
