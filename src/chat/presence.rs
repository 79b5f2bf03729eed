//! Who is online where. A user is online in a room while a push subscription (iframe, SSE,
//! WebSocket) of theirs to it is open, or a poll of it arrived within the last
//! [`POLL_PRESENCE`]. `join` and `leave` are emitted on those transitions.
//!
//! One task owns the state and handles every change in order, so the events it emits are
//! in the order the transitions happened. Its inbox is unbounded on purpose: commands are
//! a few words each, one or two per connection opened or closed, and a subscription's drop
//! (which cannot wait) must always be able to say it left.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Log;
use crate::feed::{Audience, EventBody};

/// How long a poll keeps its user online in the rooms it asked for.
pub const POLL_PRESENCE: Duration = Duration::from_secs(30);

enum Command {
    Attach {
        session: u64,
        nick: String,
        rooms: Vec<Arc<str>>,
    },
    Detach {
        session: u64,
        rooms: Vec<Arc<str>>,
    },
    Polled {
        session: u64,
        nick: String,
        rooms: Vec<Arc<str>>,
    },
    Renamed {
        session: u64,
        nick: String,
    },
    Ended {
        session: u64,
    },
    Rooms(oneshot::Sender<Vec<(String, usize)>>),
    Users(Arc<str>, oneshot::Sender<Vec<String>>),
}

/// A cheap handle on the presence task.
#[derive(Clone)]
pub struct Presence {
    tx: mpsc::UnboundedSender<Command>,
}

/// Holds a push subscription's presence; dropping it detaches.
pub struct Attached {
    tx: mpsc::UnboundedSender<Command>,
    session: u64,
    rooms: Vec<Arc<str>>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Detach {
            session: self.session,
            rooms: std::mem::take(&mut self.rooms),
        });
    }
}

#[derive(Default)]
struct Slot {
    pushes: u32,
    polled_at: Option<Instant>,
}

impl Slot {
    fn online(&self) -> bool {
        self.pushes > 0 || self.polled_at.is_some_and(|t| t.elapsed() < POLL_PRESENCE)
    }
}

struct State {
    /// (session, room) → what keeps it online.
    slots: HashMap<(u64, Arc<str>), Slot>,
    nicks: HashMap<u64, String>,
}

impl Presence {
    /// Starts the presence task; it stops at `shutdown`.
    pub fn start(
        log: Log,
        shutdown: CancellationToken,
        tracker: &tokio_util::task::TaskTracker,
    ) -> Presence {
        let (tx, rx) = mpsc::unbounded_channel();
        tracker.spawn(run(log, rx, shutdown));
        Presence { tx }
    }

    pub fn attach(&self, session: u64, nick: &str, rooms: &[Arc<str>]) -> Attached {
        let _ = self.tx.send(Command::Attach {
            session,
            nick: nick.to_string(),
            rooms: rooms.to_vec(),
        });
        Attached {
            tx: self.tx.clone(),
            session,
            rooms: rooms.to_vec(),
        }
    }

    pub fn polled(&self, session: u64, nick: &str, rooms: &[Arc<str>]) {
        let _ = self.tx.send(Command::Polled {
            session,
            nick: nick.to_string(),
            rooms: rooms.to_vec(),
        });
    }

    pub fn renamed(&self, session: u64, nick: &str) {
        let _ = self.tx.send(Command::Renamed {
            session,
            nick: nick.to_string(),
        });
    }

    pub fn ended(&self, session: u64) {
        let _ = self.tx.send(Command::Ended { session });
    }

    /// Rooms with people online, with their counts (`lobby` always listed).
    pub async fn rooms(&self) -> Vec<(String, usize)> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Rooms(tx));
        rx.await.unwrap_or_default()
    }

    /// Nicks online in `room`, sorted.
    pub async fn users(&self, room: Arc<str>) -> Vec<String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Command::Users(room, tx));
        rx.await.unwrap_or_default()
    }
}

async fn run(log: Log, mut rx: mpsc::UnboundedReceiver<Command>, shutdown: CancellationToken) {
    let mut state = State {
        slots: HashMap::new(),
        nicks: HashMap::new(),
    };
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        let command = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = sweep.tick() => None,
            command = rx.recv() => match command {
                Some(command) => Some(command),
                None => return,
            },
        };
        for (joined, room, nick) in state.apply(command) {
            let body = if joined {
                EventBody::Join {
                    room: room.to_string(),
                    nick,
                }
            } else {
                EventBody::Leave {
                    room: room.to_string(),
                    nick,
                }
            };
            if let Err(err) = log.append(body, Audience::Room(room)).await {
                tracing::error!(%err, "could not record a presence change");
            }
        }
    }
}

impl State {
    /// Applies one command (or a sweep, for `None`); returns the transitions as
    /// `(joined, room, nick)`.
    fn apply(&mut self, command: Option<Command>) -> Vec<(bool, Arc<str>, String)> {
        let mut changes = Vec::new();
        match command {
            Some(Command::Attach {
                session,
                nick,
                rooms,
            }) => {
                self.nicks.insert(session, nick.clone());
                for room in rooms {
                    let slot = self.slots.entry((session, room.clone())).or_default();
                    let was = slot.online();
                    slot.pushes += 1;
                    if !was {
                        changes.push((true, room, nick.clone()));
                    }
                }
            }
            Some(Command::Polled {
                session,
                nick,
                rooms,
            }) => {
                self.nicks.insert(session, nick.clone());
                for room in rooms {
                    let slot = self.slots.entry((session, room.clone())).or_default();
                    let was = slot.online();
                    slot.polled_at = Some(Instant::now());
                    if !was {
                        changes.push((true, room, nick.clone()));
                    }
                }
            }
            Some(Command::Detach { session, rooms }) => {
                for room in rooms {
                    let key = (session, room.clone());
                    let Some(slot) = self.slots.get_mut(&key) else {
                        continue;
                    };
                    slot.pushes = slot.pushes.saturating_sub(1);
                    if !slot.online() {
                        self.slots.remove(&key);
                        changes.push((false, room, self.nick(session)));
                    }
                }
            }
            Some(Command::Renamed { session, nick }) => {
                self.nicks.insert(session, nick);
            }
            Some(Command::Ended { session }) => {
                let rooms: Vec<Arc<str>> = self
                    .slots
                    .keys()
                    .filter(|(s, _)| *s == session)
                    .map(|(_, r)| r.clone())
                    .collect();
                let mut rooms = rooms;
                rooms.sort();
                for room in rooms {
                    self.slots.remove(&(session, room.clone()));
                    changes.push((false, room, self.nick(session)));
                }
                self.nicks.remove(&session);
            }
            Some(Command::Rooms(reply)) => {
                let mut counts: BTreeMap<String, usize> =
                    BTreeMap::from([("lobby".to_string(), 0)]);
                for ((_, room), slot) in &self.slots {
                    if slot.online() {
                        *counts.entry(room.to_string()).or_default() += 1;
                    }
                }
                let _ = reply.send(counts.into_iter().collect());
            }
            Some(Command::Users(room, reply)) => {
                let mut nicks: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|((_, r), slot)| *r == room && slot.online())
                    .map(|((s, _), _)| self.nick(*s))
                    .collect();
                nicks.sort_by_key(|n| n.to_lowercase());
                let _ = reply.send(nicks);
            }
            None => {
                let mut expired: Vec<(u64, Arc<str>)> = self
                    .slots
                    .iter()
                    .filter(|(_, slot)| !slot.online())
                    .map(|(k, _)| k.clone())
                    .collect();
                expired.sort();
                for (session, room) in expired {
                    self.slots.remove(&(session, room.clone()));
                    changes.push((false, room, self.nick(session)));
                }
            }
        }
        changes
    }

    fn nick(&self, session: u64) -> String {
        self.nicks.get(&session).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    fn state() -> State {
        State {
            slots: HashMap::new(),
            nicks: HashMap::new(),
        }
    }

    #[test]
    fn joins_once_and_leaves_when_the_last_push_subscription_closes() {
        let mut s = state();
        let attach = || {
            Some(Command::Attach {
                session: 1,
                nick: "al".into(),
                rooms: rooms(&["lobby", "red"]),
            })
        };
        assert_eq!(s.apply(attach()).len(), 2);
        assert!(
            s.apply(attach()).is_empty(),
            "a second tab does not join again"
        );
        let detach = || {
            Some(Command::Detach {
                session: 1,
                rooms: rooms(&["lobby", "red"]),
            })
        };
        assert!(s.apply(detach()).is_empty());
        let left = s.apply(detach());
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|(joined, _, nick)| !joined && nick == "al"));
    }

    #[test]
    fn a_poll_keeps_its_user_online_and_ending_the_session_leaves_everywhere() {
        let mut s = state();
        let polled = s.apply(Some(Command::Polled {
            session: 2,
            nick: "bo".into(),
            rooms: rooms(&["lobby"]),
        }));
        assert_eq!(polled, vec![(true, Arc::from("lobby"), "bo".to_string())]);
        assert!(s.apply(None).is_empty(), "a fresh poll keeps bo online");
        let left = s.apply(Some(Command::Ended { session: 2 }));
        assert_eq!(left, vec![(false, Arc::from("lobby"), "bo".to_string())]);
    }
}
