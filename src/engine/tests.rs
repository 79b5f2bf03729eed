//! The chat's session rules, against every engine: each rule is one function over a
//! [`Sessions`], run once per engine (`embedded::…`, `redis::…`). The Redis runs start their
//! own redis-server (tests/support/redis.rs), or use `PUSHPOLL_TEST_REDIS` under a key prefix
//! of their own; without redis-server they skip, except under CI=true, where they fail.

use std::sync::Arc;

use crate::chat::session::{BYTES_BUDGET, COOKIE, EVENTS_BUDGET, RATE_LIMIT, random_key};
use crate::chat::{Budget, ChatError, EndReason, Engine, Nick, SessionRules, Sessions};

#[path = "../../tests/support/redis.rs"]
mod redis_server;

/// The sessions under `budget`, with a key of their own, over `engine`.
fn sessions_over(engine: &Arc<dyn Engine>, budget: Budget) -> Sessions {
    let rules = SessionRules {
        budget,
        idle: std::time::Duration::from_secs(3600),
    };
    Sessions::new(engine.clone(), rules, random_key())
}

fn embedded() -> (Arc<dyn Engine>, ()) {
    let store = Arc::new(super::embedded::sqlite::SqliteStore::open(":memory:").unwrap());
    (Arc::new(super::embedded::Embedded::new(store, None)), ())
}

/// The Redis engine over a fresh key prefix, and what keeps its server running (if it
/// started one); `None` when there is no redis-server (a skip, outside CI).
async fn redis() -> Option<(Arc<dyn Engine>, Option<redis_server::RedisServer>)> {
    use super::redis::{Redis, RedisEngine, log::RedisLog};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let (url, server) = match std::env::var("PUSHPOLL_TEST_REDIS") {
        Ok(url) => (url, None),
        Err(_) => {
            let server = redis_server::RedisServer::start().await?;
            (server.url(), Some(server))
        }
    };
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = format!("unit{}-{n}:", std::process::id());
    let (redis, pushes) = Redis::connect(&url, &prefix, 10_000, 64).await.unwrap();
    let log = RedisLog::open(redis).await.unwrap();
    Some((Arc::new(RedisEngine::new(log, pushes)), server))
}

/// Each rule as a test per engine: `engine::tests::embedded::RULE`, `engine::tests::redis::RULE`.
macro_rules! on_every_engine {
    ($($rule:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $rule() {
                    let (engine, _keep) = super::embedded();
                    super::$rule(engine).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $rule() {
                    let Some((engine, _keep)) = super::redis().await else { return };
                    super::$rule(engine).await;
                }
            )*
        }
    };
}

on_every_engine!(
    a_signed_cookie_finds_its_session_and_a_forged_one_does_not,
    a_nick_is_held_until_its_session_ends_whatever_its_case,
    live_sessions_are_capped_and_an_ended_one_frees_its_place,
    the_rate_limit_allows_twenty_messages_per_ten_seconds,
    the_byte_budget_refuses_the_write_that_would_pass_it,
);

/// One `Cookie` header holding `cookie`.
fn headers(cookie: &str) -> [&str; 1] {
    [cookie]
}

fn nick(s: &str) -> Nick {
    Nick::parse(s).unwrap()
}

async fn a_signed_cookie_finds_its_session_and_a_forged_one_does_not(engine: Arc<dyn Engine>) {
    let sessions = sessions_over(&engine, Budget::DEFAULT);
    let (session, token) = sessions.create(nick("alice"), 10).await.unwrap();
    let found = sessions
        .from_cookies(headers(&format!("a=1; {COOKIE}={token}")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, session.id);
    let (id, sig) = token.split_once('.').unwrap();
    let forged = format!("{COOKIE}={:x}.{sig}", session.id ^ 1);
    assert!(
        sessions
            .from_cookies(headers(&forged))
            .await
            .unwrap()
            .is_none()
    );
    let bad = format!("{COOKIE}={id}.AAAA");
    assert!(
        sessions
            .from_cookies(headers(&bad))
            .await
            .unwrap()
            .is_none()
    );
    let other = sessions_over(&engine, Budget::DEFAULT);
    let cookie = format!("{COOKIE}={token}");
    assert!(
        other
            .from_cookies(headers(&cookie))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_nick_is_held_until_its_session_ends_whatever_its_case(engine: Arc<dyn Engine>) {
    let sessions = sessions_over(&engine, Budget::DEFAULT);
    let (alice, _) = sessions.create(nick("alice"), 10).await.unwrap();
    assert!(matches!(
        sessions.create(nick("ALICE"), 10).await,
        Err(ChatError::NickTaken(_))
    ));
    let (bob, _) = sessions.create(nick("bob"), 10).await.unwrap();
    assert!(sessions.rename(bob.id, nick("Alice")).await.is_err());
    sessions
        .end(alice.id, EndReason::LoggedOut)
        .await
        .unwrap()
        .unwrap();
    assert!(alice.ended.is_cancelled());
    assert_eq!(alice.end_reason(), Some(EndReason::LoggedOut));
    assert_eq!(sessions.rename(bob.id, nick("Alice")).await.unwrap(), "bob");
    assert_eq!(sessions.by_nick("alice").await.unwrap().unwrap().id, bob.id);
}

async fn live_sessions_are_capped_and_an_ended_one_frees_its_place(engine: Arc<dyn Engine>) {
    let sessions = sessions_over(&engine, Budget::DEFAULT);
    let (a, _) = sessions.create(nick("a"), 2).await.unwrap();
    sessions.create(nick("b"), 2).await.unwrap();
    assert!(matches!(
        sessions.create(nick("c"), 2).await,
        Err(ChatError::TooManySessions(2))
    ));
    sessions.end(a.id, EndReason::LoggedOut).await.unwrap();
    assert!(sessions.create(nick("c"), 2).await.is_ok());
}

async fn the_rate_limit_allows_twenty_messages_per_ten_seconds(engine: Arc<dyn Engine>) {
    let sessions = sessions_over(&engine, Budget::DEFAULT);
    let (s, _) = sessions.create(nick("alice"), 10).await.unwrap();
    for _ in 0..RATE_LIMIT {
        sessions.spend(s.id, 100).await.unwrap();
    }
    match sessions.spend(s.id, 100).await {
        Err(ChatError::RateLimited { retry_after, what }) => {
            assert_eq!(what, EVENTS_BUDGET);
            assert!((1..=10).contains(&retry_after), "{retry_after}")
        }
        other => panic!("{other:?}"),
    }
}

/// The byte half: writes are taken while their sum fits, the one that would pass it is
/// refused (and not charged), a smaller one that fits is still taken, and another session
/// has its own budget.
async fn the_byte_budget_refuses_the_write_that_would_pass_it(engine: Arc<dyn Engine>) {
    let sessions = sessions_over(
        &engine,
        Budget {
            events: 100,
            bytes: 10_000,
        },
    );
    let (s, _) = sessions.create(nick("alice"), 10).await.unwrap();
    let (other, _) = sessions.create(nick("bob"), 10).await.unwrap();
    for _ in 0..4 {
        sessions.spend(s.id, 2_000).await.unwrap();
    }
    match sessions.spend(s.id, 2_001).await {
        Err(ChatError::RateLimited { retry_after, what }) => {
            assert_eq!(what, BYTES_BUDGET);
            assert!((1..=10).contains(&retry_after), "{retry_after}")
        }
        other => panic!("{other:?}"),
    }
    sessions.spend(s.id, 2_000).await.unwrap();
    assert!(sessions.spend(s.id, 1).await.is_err(), "exactly full");
    sessions.spend(other.id, 10_000).await.unwrap();
}
