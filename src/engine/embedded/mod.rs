//! The embedded engine: this process alone (no `--redis`). The chat's log is a [`Store`]
//! ([`sqlite::SqliteStore`] by default), which also serves the feed's `Backlog`; sessions are
//! in memory ([`sessions`]), written through to a [`SessionStore`] when there is one; this
//! node's presence is the whole presence, and each of its transitions is a `join` or `leave`
//! in the log.

pub mod sessions;
pub mod sqlite;
mod store;

use std::sync::Arc;
use std::time::Duration;

pub use store::*;

use crate::chat::engine::{Answer, Engine, Running, Said, SessionRules};
use crate::chat::presence::{Change, Presence};
use crate::chat::{ChatError, EndReason, Nick, stored_bytes};
use crate::event::{Audience, EventBody, SharedEvent};
use crate::feed::Feed;
use crate::feed::clock::now_micros;
use sessions::Book;

/// The engine of one process: the log in `store`, sessions in memory (and in `sessions` when
/// given, so they survive a restart).
pub struct Embedded {
    store: Arc<dyn Store>,
    book: Book,
}

impl Embedded {
    pub fn new(store: Arc<dyn Store>, sessions: Option<Arc<dyn SessionStore>>) -> Embedded {
        Embedded {
            store,
            book: Book::new(sessions),
        }
    }

    /// Runs `work` on the store on the blocking pool (SQLite blocks); a failure is the
    /// chat's `Internal`, with the store's error as its cause.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ChatError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(|e| ChatError::Internal(e.into()))?
            .map_err(|e| ChatError::Internal(e.into()))
    }

    async fn append_now(
        &self,
        feed: &Feed,
        body: EventBody,
        audience: Audience,
    ) -> Result<SharedEvent, ChatError> {
        let feed = feed.clone();
        self.blocking(move |store| {
            store.append(now_micros(), body, audience, &mut |event| {
                if let Err(err) = feed.publish(event.clone()) {
                    tracing::error!(%err, "chat event out of order");
                }
            })
        })
        .await
    }
}

impl Engine for Embedded {
    fn backlog(&self) -> Arc<dyn crate::feed::Backlog> {
        self.store.clone()
    }

    fn start(&self, running: Running<'_>) {
        self.book.load(running.rules.idle);
    }

    fn request_deadline(&self) -> Option<Duration> {
        None
    }

    fn store(&self) -> &'static str {
        "SQLite"
    }

    fn append<'a>(
        &'a self,
        feed: &'a Feed,
        body: EventBody,
        audience: Audience,
    ) -> Answer<'a, SharedEvent> {
        Box::pin(self.append_now(feed, body, audience))
    }

    fn history(&self, room: Arc<str>, before: u64, limit: usize) -> Answer<'_, Vec<SharedEvent>> {
        Box::pin(self.blocking(move |store| store.history(&room, before, limit)))
    }

    /// The steps one after the other: the session, its budget, the append.
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
            match self.book.nick(id) {
                None => return Ok(Said::SignedOut),
                Some(now) if now != nick => return Ok(Said::Renamed(now)),
                Some(_) => {}
            }
            let body = EventBody::Message {
                room: room.to_string(),
                from: nick.to_string(),
                text: text.to_string(),
            };
            self.book.spend(id, stored_bytes(&body), rules)?;
            let event = self.append_now(feed, body, Audience::Room(room)).await?;
            Ok(Said::Stored(event))
        })
    }

    fn create_session<'a>(
        &'a self,
        id: u64,
        nick: &'a Nick,
        max: u64,
        _rules: SessionRules,
    ) -> Answer<'a, bool> {
        Box::pin(self.book.create(id, nick, max))
    }

    fn session(&self, id: u64, _rules: SessionRules) -> Answer<'_, Option<String>> {
        Box::pin(std::future::ready(Ok(self.book.nick(id))))
    }

    fn session_by_nick<'a>(
        &'a self,
        keys: &'a [String],
        _rules: SessionRules,
    ) -> Answer<'a, Option<(u64, String)>> {
        Box::pin(std::future::ready(Ok(self.book.by_nick(keys))))
    }

    fn spend(&self, id: u64, bytes: usize, rules: SessionRules) -> Answer<'_, ()> {
        Box::pin(std::future::ready(self.book.spend(id, bytes, rules)))
    }

    fn rename_session<'a>(
        &'a self,
        id: u64,
        nick: &'a Nick,
        _rules: SessionRules,
    ) -> Answer<'a, String> {
        Box::pin(self.book.rename(id, nick))
    }

    fn end_session(&self, id: u64, _reason: EndReason) -> Answer<'_, ()> {
        Box::pin(async move {
            self.book.end(id).await;
            Ok(())
        })
    }

    fn expire_idle(&self, rules: SessionRules) -> Answer<'_, Vec<u64>> {
        Box::pin(async move { Ok(self.book.expire_idle(rules.idle).await) })
    }

    fn sessions_live<'a>(&'a self, ids: &'a [u64]) -> Answer<'a, Vec<bool>> {
        Box::pin(std::future::ready(Ok(self.book.live(ids))))
    }

    /// Every transition of this node's presence changes the room's: it is written.
    fn record_presence<'a>(&'a self, feed: &'a Feed, change: &'a Change) -> Answer<'a, ()> {
        let room = change.room.to_string();
        let nick = change.nick.clone();
        let body = if change.joined {
            EventBody::Join { room, nick }
        } else {
            EventBody::Leave { room, nick }
        };
        let audience = Audience::Room(change.room.clone());
        Box::pin(async move { self.append_now(feed, body, audience).await.map(drop) })
    }

    fn online_rooms<'a>(&'a self, here: &'a Presence) -> Answer<'a, Vec<(String, usize)>> {
        Box::pin(std::future::ready(Ok(here.rooms())))
    }

    fn online_users<'a>(&'a self, room: &'a str, here: &'a Presence) -> Answer<'a, Vec<String>> {
        Box::pin(std::future::ready(Ok(here.users(room))))
    }

    fn shared_token<'a>(
        &'a self,
        _name: &'a str,
        _burst: u32,
        _window: Duration,
    ) -> Option<Answer<'a, Option<Duration>>> {
        None
    }
}
