//! The chat: one room space whatever the transport. Messages, whispers and presence events
//! all go through one durable log ([`Log`]): stored under the next id, then published to the
//! chat feed, before anyone is told they happened. Presence events stay in the log (so a
//! cursor resumes them like any event, over every transport) and are bounded per session
//! instead (see [`presence`]). Identity is the session ([`session`]) and its nick ([`name`]);
//! who is online where is [`presence`].

pub mod command;
pub mod engine;
pub mod error;
pub mod name;
pub mod presence;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::event::{Audience, EventBody, SharedEvent};
use crate::feed::clock::now_micros;
use crate::feed::{Feed, Limits, Retention};
use crate::names::FeedName;
pub use command::{Command, Message};
use engine::{Ended, Running, Said};
pub use engine::{Engine, SessionRules};
pub use error::ChatError;
pub use name::{Nick, parse_room};
pub use presence::Presence;
pub use session::{Budget, EndReason, Session, Sessions};

/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Most messages `history=` may ask for.
pub const MAX_HISTORY: u64 = 200;

/// What a write costs its session's byte budget ([`Budget::bytes`]): the bytes of the event's
/// JSON as it is stored and delivered, with the id counted as one digit (`{"id":0,…}`), so the
/// charge does not grow with the log's ids. `ts` only needs the right number of digits.
pub fn stored_bytes(body: &EventBody) -> usize {
    /// Counts what serde_json writes, without keeping it.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        id: u64,
        ts: u64,
        #[serde(flatten)]
        body: &'a EventBody,
    }
    let mut count = Count(0);
    let stored = Stored {
        id: 0,
        ts: now_micros(),
        body,
    };
    // Serializing to a counter cannot fail: every field is a string or a number.
    let _ = serde_json::to_writer(&mut count, &stored);
    count.0
}

/// The chat's durable, ordered log: the engine's log and the live feed it fills.
#[derive(Clone)]
pub struct Log {
    feed: Feed,
    engine: Arc<dyn Engine>,
}

impl Log {
    /// Stores the event under the next id and publishes it; returns it once it is durable
    /// (and in this node's feed).
    pub async fn append(
        &self,
        body: EventBody,
        audience: Audience,
    ) -> Result<SharedEvent, ChatError> {
        self.engine.append(&self.feed, body, audience).await
    }

    /// The live feed the log fills.
    pub fn live(&self) -> &Feed {
        &self.feed
    }

    /// Records one transition of this node's presence (see [`presence`]).
    pub async fn record(&self, change: &presence::Change) -> Result<(), ChatError> {
        self.engine.record_presence(&self.feed, change).await
    }

    async fn history(
        &self,
        room: Arc<str>,
        before: u64,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, ChatError> {
        self.engine.history(room, before, limit).await
    }
}

/// How the chat is run: chosen at start from the flags.
pub struct Settings {
    /// The feed's memory window, live ring and replay paging (`--chat-window`…).
    pub limits: Limits,
    /// `history=` when a subscription does not say.
    pub history: usize,
    /// What one session may store per window (`--rate-limit`, `--rate-limit-bytes`).
    pub budget: Budget,
    /// A session without activity for this long is ended (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// The key that signs the session cookies.
    pub key: Vec<u8>,
}

/// A cheap-to-clone handle on the chat.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    log: Log,
    sessions: Sessions,
    presence: Presence,
    history: usize,
}

impl Chat {
    /// Starts the chat over `engine`: its presence task, its idle-session sweeper, the task
    /// that ends here what ended on other nodes, and the engine's own work.
    pub fn start(
        engine: Arc<dyn Engine>,
        settings: Settings,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Chat {
        let feed = Feed::new(
            FeedName::Chat,
            Retention::All,
            settings.limits,
            Some(engine.backlog()),
        );
        let log = Log {
            feed: feed.clone(),
            engine: engine.clone(),
        };
        let rules = SessionRules {
            budget: settings.budget,
            idle: settings.idle_timeout,
        };
        let sessions = Sessions::new(engine.clone(), rules, settings.key);
        let presence = Presence::start(log.clone(), shutdown.clone(), tracker);
        // Sessions ended on other nodes wait here for the chat; bounded (an engine drops what
        // does not fit, and the idle sweep finds those ends later).
        let (ended_tx, ended_rx) = tokio::sync::mpsc::channel(1024);
        engine.start(Running {
            feed,
            presence: presence.clone(),
            rules: sessions.rules(),
            ended: ended_tx,
            shutdown: shutdown.clone(),
            tracker,
        });
        let chat = Chat {
            inner: Arc::new(Inner {
                log,
                sessions,
                presence,
                history: settings.history,
            }),
        };
        tracker.spawn(chat.clone().obey(ended_rx, shutdown.clone()));
        tracker.spawn(chat.clone().sweep_idle(settings.idle_timeout, shutdown));
        chat
    }

    /// Ends here the sessions the engine says ended on other nodes.
    async fn obey(
        self,
        mut ended: tokio::sync::mpsc::Receiver<Ended>,
        shutdown: CancellationToken,
    ) {
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return,
                message = ended.recv() => message,
            };
            let Some(Ended { id, reason }) = message else {
                return;
            };
            if self.inner.sessions.end_here(id, reason).is_some() {
                self.inner.presence.ended(id);
            }
        }
    }

    pub fn feed(&self) -> &Feed {
        &self.inner.log.feed
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Rooms with people online and their counts (`lobby` always listed), over every node.
    pub async fn online_rooms(&self) -> Result<Vec<(String, usize)>, ChatError> {
        let online = self
            .inner
            .log
            .engine
            .online_rooms(&self.inner.presence)
            .await?;
        let mut counts = std::collections::BTreeMap::from([("lobby".to_string(), 0)]);
        counts.extend(online);
        Ok(counts.into_iter().collect())
    }

    /// Nicks online in `room`, sorted, over every node.
    pub async fn online_users(&self, room: &str) -> Result<Vec<String>, ChatError> {
        let mut nicks = self
            .inner
            .log
            .engine
            .online_users(room, &self.inner.presence)
            .await?;
        nicks.sort_by_key(|n| n.to_lowercase());
        Ok(nicks)
    }

    /// Takes a token from the bucket `name` (`burst` per `window`) that every node shares:
    /// `Some(Ok(Some(wait)))` when it is empty; `None` when this node serves alone (its own
    /// budgets are the shared ones).
    pub async fn shared_token(
        &self,
        name: &str,
        burst: u32,
        window: Duration,
    ) -> Option<Result<Option<Duration>, ChatError>> {
        let take = self.inner.log.engine.shared_token(name, burst, window)?;
        Some(take.await)
    }

    /// `history=` when a subscription does not say.
    pub fn default_history(&self) -> usize {
        self.inner.history
    }

    async fn sweep_idle(self, idle: Duration, shutdown: CancellationToken) {
        let every = (idle / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut timer = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = timer.tick() => {}
            }
            match self.inner.sessions.expire_idle().await {
                Ok(ended) => {
                    for session in ended {
                        tracing::info!(nick = session.nick, "session idle: ended");
                        self.inner.presence.ended(session.id);
                    }
                }
                Err(err) => tracing::warn!(%err, "could not expire idle sessions"),
            }
        }
    }

    /// Starts a session for `nick`; `503 too_many_sessions` while `max_sessions` are live.
    pub async fn login(
        &self,
        nick: &str,
        max_sessions: u64,
    ) -> Result<(Session, String), ChatError> {
        self.inner
            .sessions
            .create(Nick::parse(nick)?, max_sessions)
            .await
    }

    async fn session(&self, id: u64) -> Result<Session, ChatError> {
        self.inner
            .sessions
            .get(id)
            .await?
            .ok_or(ChatError::SignedOut)
    }

    /// Runs one request's work under one deadline for all the engine work it does
    /// ([`engine::within`], the engine's [`Engine::request_deadline`]), so it is answered
    /// within it however many requests wait on the engine.
    pub async fn bounded<F: Future>(&self, work: F) -> F::Output {
        engine::within(self.inner.log.engine.request_deadline(), work).await
    }

    /// Renames the session and tells everyone; returns the new nick. A rename is stored and
    /// fanned out like a message, so it spends from the same per-session budget
    /// (`--rate-limit` per 10 s): one budget for everything a session writes to everyone, so
    /// mixing renames and messages cannot double a client's write rate. Renaming to the
    /// current nick writes nothing and costs nothing; an attempt refused for a taken nick
    /// has been charged (checking it is the work the budget limits). `401` (`SignedOut`) if
    /// session `id` is not live.
    pub async fn rename(&self, id: u64, nick: &str) -> Result<String, ChatError> {
        self.bounded(self.rename_now(id, nick)).await
    }

    async fn rename_now(&self, id: u64, nick: &str) -> Result<String, ChatError> {
        let nick = Nick::parse(nick)?;
        let current = self.session(id).await?.nick;
        if current == nick.as_str() {
            return Ok(nick.as_str().to_string());
        }
        // Charged as the event it writes, named by the nick known now (a rename racing
        // another of the same session may store a `from` of another length: a few bytes).
        let bytes = stored_bytes(&EventBody::Rename {
            from: current,
            nick: nick.as_str().to_string(),
        });
        self.inner.sessions.spend(id, bytes).await?;
        let old = self.inner.sessions.rename(id, nick.clone()).await?;
        if old != nick.as_str() {
            self.inner.presence.renamed(id, nick.as_str());
            let body = EventBody::Rename {
                from: old,
                nick: nick.as_str().to_string(),
            };
            self.inner.log.append(body, Audience::Everyone).await?;
        }
        Ok(nick.as_str().to_string())
    }

    /// Ends the session: `leave` in its rooms, its streams and sockets close.
    pub async fn logout(&self, id: u64) -> Result<(), ChatError> {
        if self
            .inner
            .sessions
            .end(id, EndReason::LoggedOut)
            .await?
            .is_some()
        {
            self.inner.presence.ended(id);
        }
        Ok(())
    }

    fn check_text(text: &str) -> Result<(), ChatError> {
        let chars = text.chars().count();
        if text.trim().is_empty() || chars > MAX_TEXT_CHARS {
            return Err(ChatError::Invalid(
                "invalid_text",
                format!("text must be 1–{MAX_TEXT_CHARS} characters, not blank (got {chars})"),
            ));
        }
        Ok(())
    }

    /// Carries out what a client sent (a WebSocket frame): a message, or a rename.
    pub async fn run(&self, id: u64, command: Command) -> Result<(), ChatError> {
        match command {
            Command::Send(message) => self.send(id, message).await.map(drop),
            Command::Nick(nick) => self.rename(id, &nick).await.map(drop),
        }
    }

    /// Sends a message to a room or a whisper from session `id`; returns it once it is
    /// stored. `401` (`SignedOut`) if the session is not live.
    pub async fn send(&self, id: u64, message: Message) -> Result<SharedEvent, ChatError> {
        self.bounded(async {
            match message {
                Message::Room { room, text } => self.say(id, &room, &text).await,
                Message::Whisper { to, text } => self.whisper(id, &to, &text).await,
            }
        })
        .await
    }

    /// A message to a room, stored before this returns. The engine checks the session, its
    /// budget and stores the message in one step where it can; it checks the nick this node
    /// knows the session by, and after a rename on another node it says the new one, and the
    /// message is built again.
    async fn say(&self, id: u64, room: &str, text: &str) -> Result<SharedEvent, ChatError> {
        let sessions = &self.inner.sessions;
        let mut nick = match sessions.known_nick(id) {
            Some(nick) => nick,
            None => self.session(id).await?.nick,
        };
        let room = parse_room(room)?;
        Self::check_text(text)?;
        let log = &self.inner.log;
        // A rename between two tries is a race with the user's own other tab; three tries
        // and it is reported as the engine being busy rather than looping.
        for _ in 0..3 {
            let said = log
                .engine
                .say(&log.feed, id, &nick, room.clone(), text, sessions.rules())
                .await?;
            match said {
                Said::Stored(event) => return Ok(event),
                Said::Renamed(now) => {
                    sessions.remember(id, &now);
                    nick = now;
                }
                Said::SignedOut => {
                    sessions.end_here(id, EndReason::Idle);
                    return Err(ChatError::SignedOut);
                }
            }
        }
        Err(ChatError::Unavailable {
            store: self.inner.log.engine.store(),
            retry_after: 1,
        })
    }

    /// A private message, delivered only to the two sessions' subscriptions.
    async fn whisper(&self, id: u64, to: &str, text: &str) -> Result<SharedEvent, ChatError> {
        let session = self.session(id).await?;
        Self::check_text(text)?;
        let recipient = self
            .inner
            .sessions
            .by_nick(to)
            .await?
            .ok_or_else(|| ChatError::UnknownUser(to.to_string()))?;
        let body = EventBody::Whisper {
            from: session.nick,
            to: recipient.nick,
            text: text.to_string(),
        };
        self.inner.sessions.spend(id, stored_bytes(&body)).await?;
        self.inner
            .log
            .append(body, Audience::Sessions(session.id, recipient.id))
            .await
    }

    /// Messages of `room` before `before`, newest last.
    pub async fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<SharedEvent>, ChatError> {
        let room = parse_room(room)?;
        self.inner
            .log
            .history(room, before.unwrap_or(u64::MAX), limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::WireEvent;

    /// The charge is the stored JSON with a one-digit id; the largest event a client can
    /// write fits under the smallest budget `--rate-limit-bytes` takes (16384), so every
    /// valid message can be sent once the window is empty.
    #[test]
    fn a_write_is_charged_its_json_and_the_largest_fits_the_smallest_budget() {
        let body = EventBody::Message {
            room: "lobby".into(),
            from: "alice".into(),
            text: "hi".into(),
        };
        let json = serde_json::to_string(&WireEvent {
            id: 0,
            ts: now_micros(),
            body: body.clone(),
        })
        .unwrap();
        assert_eq!(stored_bytes(&body), json.len());
        // 24 four-byte letters per name; text of control characters, each escaped `\u00XX`.
        let name = "𝒜".repeat(24);
        let largest = EventBody::Whisper {
            from: name.clone(),
            to: name,
            text: "\u{1}".repeat(MAX_TEXT_CHARS),
        };
        let bytes = stored_bytes(&largest);
        assert!(bytes > 6 * MAX_TEXT_CHARS, "{bytes}");
        assert!(bytes < 16_384, "{bytes}");
    }
}
