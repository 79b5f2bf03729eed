//! The Redis test harness itself (tests/support/redis.rs): what the scale-out tests build on
//! must hold first. An acknowledged write survives `kill -9` (AOF, `appendfsync always`), a
//! restart comes back on the same port with the same data, and SIGSTOP silences the server
//! until SIGCONT.

use std::time::Duration;

use crate::support::Watchdog;
use crate::support::redis::RedisServer;

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9_and_a_restart_on_the_same_port() {
    let _watchdog = Watchdog::arm();
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let port = redis.port();
    let first_pid = redis.pid().expect("running");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    assert_eq!(
        redis.command(&["SET", "harness:key", "kept"]).await,
        Ok(Some("OK".to_string()))
    );

    redis.kill9();
    assert_eq!(redis.pid(), None);
    assert!(
        redis.command(&["PING"]).await.is_err(),
        "nothing answers after kill -9"
    );

    redis.restart().await;
    assert_eq!(redis.port(), port);
    assert_ne!(redis.pid(), Some(first_pid), "a new process");
    assert_eq!(
        redis.command(&["GET", "harness:key"]).await,
        Ok(Some("kept".to_string())),
        "the acknowledged SET was replayed from the AOF"
    );
    assert_eq!(redis.command(&["GET", "harness:absent"]).await, Ok(None));
}

#[tokio::test]
async fn a_stopped_server_does_not_answer_until_it_is_continued() {
    let _watchdog = Watchdog::arm();
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    redis.stop();
    // The kernel still accepts the connection (the socket is open); the reply never comes.
    let silent = tokio::time::timeout(Duration::from_millis(300), redis.command(&["PING"])).await;
    assert!(silent.is_err(), "a stopped redis answered: {silent:?}");

    redis.cont();
    let answer = tokio::time::timeout(Duration::from_secs(2), redis.command(&["PING"])).await;
    assert_eq!(answer, Ok(Ok(Some("PONG".to_string()))));
}
