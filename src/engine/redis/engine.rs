//! The chat's engine over Redis: each method is one of [`Redis`]'s scripts or commands, its
//! answer put in the chat's terms.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::log::{RedisLog, Said as Stored};
use super::sessions::{Created, Half, Renamed, Spent};
use super::{Pushes, REQUEST_DEADLINE, Redis, presence};
use crate::chat::engine::{Answer, Engine, Running, Said, SessionRules};
use crate::chat::presence::{Change, Presence};
use crate::chat::session::{BYTES_BUDGET, EVENTS_BUDGET, RATE_WINDOW, rate_limited};
use crate::chat::{ChatError, EndReason, Nick};
use crate::event::{Audience, EventBody, SharedEvent};
use crate::feed::Feed;
use crate::feed::clock::now_micros;

/// Most sessions one idle sweep ends, so one script stays short.
const SWEEP_STEP: usize = 1000;

/// One node of a cluster: the log, sessions and presence in Redis.
pub struct RedisEngine {
    log: Arc<RedisLog>,
    /// The subscribed connection, until [`Engine::start`] hands it to the ingest task.
    pushes: Mutex<Option<Pushes>>,
}

impl RedisEngine {
    /// The engine over `log`; `pushes` is the connection subscribed to the cluster's channels.
    pub fn new(log: Arc<RedisLog>, pushes: Pushes) -> RedisEngine {
        RedisEngine {
            log,
            pushes: Mutex::new(Some(pushes)),
        }
    }

    fn redis(&self) -> &Redis {
        self.log.redis()
    }
}

/// The name of the half of the budget a script found full.
fn half_name(half: Half) -> &'static str {
    match half {
        Half::Events => EVENTS_BUDGET,
        Half::Bytes => BYTES_BUDGET,
    }
}

impl Engine for RedisEngine {
    fn backlog(&self) -> Arc<dyn crate::feed::Backlog> {
        self.log.clone()
    }

    /// The ingest task (Redis's log into this node's feed, ended sessions to the chat) and
    /// the heartbeat with the reaper of dead nodes.
    fn start(&self, running: Running<'_>) {
        let pushes = self.pushes.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(pushes) = pushes else {
            tracing::error!("the Redis engine was started twice; the second start does nothing");
            return;
        };
        running.tracker.spawn(self.log.clone().run(
            running.feed.clone(),
            pushes,
            running.ended,
            running.shutdown.clone(),
        ));
        running.tracker.spawn(presence::beat(
            self.redis().clone(),
            running.feed,
            running.presence,
            running.shutdown,
        ));
    }

    fn request_deadline(&self) -> Option<Duration> {
        Some(REQUEST_DEADLINE)
    }

    fn store(&self) -> &'static str {
        super::STORE
    }

    fn append<'a>(
        &'a self,
        feed: &'a Feed,
        body: EventBody,
        audience: Audience,
    ) -> Answer<'a, SharedEvent> {
        Box::pin(async move { Ok(self.log.append(feed, now_micros(), body, audience).await?) })
    }

    fn history(&self, room: Arc<str>, before: u64, limit: usize) -> Answer<'_, Vec<SharedEvent>> {
        Box::pin(async move { Ok(self.log.history(&room, before, limit).await?) })
    }

    /// One script: the session check, the budget and the append (one round trip, one write).
    fn say<'a>(
        &'a self,
        feed: &'a Feed,
        id: u64,
        nick: &'a str,
        room: Arc<str>,
        text: &'a str,
        rules: SessionRules,
    ) -> Answer<'a, Said> {
        Box::pin(async move {
            let budget = (rules.budget.events, rules.budget.bytes);
            let said = self
                .log
                .say(feed, id, nick, room, text, budget, RATE_WINDOW, rules.idle)
                .await?;
            match said {
                Stored::Stored(event) => Ok(Said::Stored(event)),
                Stored::Wait(wait, half) => Err(rate_limited(half_name(half), wait)),
                Stored::Renamed(now) => Ok(Said::Renamed(now)),
                Stored::SignedOut => Ok(Said::SignedOut),
            }
        })
    }

    fn create_session<'a>(
        &'a self,
        id: u64,
        nick: &'a Nick,
        max: u64,
        rules: SessionRules,
    ) -> Answer<'a, bool> {
        Box::pin(async move {
            let created = self
                .redis()
                .create_session(id, nick.as_str(), &nick.keys(), max, rules.idle)
                .await?;
            match created {
                Created::Ok => Ok(true),
                Created::IdInUse => Ok(false),
                Created::NickTaken => Err(ChatError::NickTaken(nick.as_str().to_string())),
                Created::Full => Err(ChatError::TooManySessions(max)),
            }
        })
    }

    fn session(&self, id: u64, rules: SessionRules) -> Answer<'_, Option<String>> {
        Box::pin(async move { Ok(self.redis().session(id, rules.idle).await?) })
    }

    fn session_by_nick<'a>(
        &'a self,
        keys: &'a [String],
        rules: SessionRules,
    ) -> Answer<'a, Option<(u64, String)>> {
        Box::pin(async move { Ok(self.redis().session_by_nick(keys, rules.idle).await?) })
    }

    fn spend(&self, id: u64, bytes: usize, rules: SessionRules) -> Answer<'_, ()> {
        Box::pin(async move {
            let budget = (rules.budget.events, rules.budget.bytes);
            let spent = self
                .redis()
                .spend(id, budget, bytes, RATE_WINDOW, rules.idle)
                .await?;
            match spent {
                Spent::Ok => Ok(()),
                Spent::Wait(wait, half) => Err(rate_limited(half_name(half), wait)),
                Spent::SignedOut => Err(ChatError::SignedOut),
            }
        })
    }

    fn rename_session<'a>(
        &'a self,
        id: u64,
        nick: &'a Nick,
        rules: SessionRules,
    ) -> Answer<'a, String> {
        Box::pin(async move {
            let renamed = self
                .redis()
                .rename_session(id, nick.as_str(), &nick.keys(), rules.idle)
                .await?;
            match renamed {
                Renamed::Ok(old) => Ok(old),
                Renamed::NickTaken => Err(ChatError::NickTaken(nick.as_str().to_string())),
                Renamed::SignedOut => Err(ChatError::SignedOut),
            }
        })
    }

    /// Announced on `control`, so every node closes the session's streams.
    fn end_session(&self, id: u64, reason: EndReason) -> Answer<'_, ()> {
        Box::pin(async move {
            self.redis().end_session(id, reason.as_str()).await?;
            Ok(())
        })
    }

    /// Every node asks; each session is ended once, by whichever node finds it first.
    fn expire_idle(&self, rules: SessionRules) -> Answer<'_, Vec<u64>> {
        Box::pin(async move { Ok(self.redis().sweep_sessions(rules.idle, SWEEP_STEP).await?) })
    }

    fn sessions_live<'a>(&'a self, ids: &'a [u64]) -> Answer<'a, Vec<bool>> {
        Box::pin(async move { Ok(self.redis().sessions_live(ids).await?) })
    }

    fn record_presence<'a>(&'a self, feed: &'a Feed, change: &'a Change) -> Answer<'a, ()> {
        Box::pin(async move { Ok(presence::record(self.redis(), feed, change).await?) })
    }

    fn online_rooms<'a>(&'a self, _here: &'a Presence) -> Answer<'a, Vec<(String, usize)>> {
        Box::pin(async move { Ok(self.redis().presence_rooms().await?) })
    }

    fn online_users<'a>(&'a self, room: &'a str, _here: &'a Presence) -> Answer<'a, Vec<String>> {
        Box::pin(async move { Ok(self.redis().presence_users(room).await?) })
    }

    /// One bucket per name over every node, in Redis.
    fn shared_token<'a>(
        &'a self,
        name: &'a str,
        burst: u32,
        window: Duration,
    ) -> Option<Answer<'a, Option<Duration>>> {
        Some(Box::pin(async move {
            Ok(self.redis().take_token(name, burst, window).await?)
        }))
    }
}
