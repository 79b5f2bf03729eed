//! The draw feed: strokes (short polylines with a colour and a width) sent by every page and
//! shared by all. An event feed like the chat (ids, cursor, resume), but kept in memory only:
//! the canvas is a scratch pad, so it is not worth a store. The last [`WINDOW`] strokes are
//! replayed to any cursor; an older cursor (or one from before a restart) gets a `gap` first.
//!
//! Everything a client sends is checked here before it becomes an event: coordinates are
//! integers in `0..=`[`MAX_COORD`], widths in [`WIDTHS`], colours exactly `#rrggbb`, at most
//! [`MAX_POINTS`] points per stroke and [`MAX_STROKES`] strokes per send. So an event can
//! carry nothing a page could mistake for markup, and its size is bounded (about 1.1 KiB).
//! How often one address may send is decided by the caller (`crate::net::addresses`); how many strokes
//! the whole server takes per second is bounded here ([`Draw::new`]'s `total_per_s`), since
//! every stroke is fanned out to every subscriber.

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Deserialize;

use super::{Event, EventBody, Feed, Limits, Retention, WireEvent};
use crate::names::FeedName;

/// Strokes kept in memory and replayable from a cursor; older cursors get a `gap`.
pub const WINDOW: usize = 4096;
/// How far a live subscriber may fall behind before it resyncs from its cursor.
pub const LAG: usize = 1024;
/// The canvas is `0..=MAX_COORD` in both directions; pages scale it to their size.
pub const MAX_COORD: u32 = 1000;
/// Points in one stroke (a longer line is sent as several strokes).
pub const MAX_POINTS: usize = 64;
/// Strokes in one `POST /api/draw` or one WebSocket `draw` frame.
pub const MAX_STROKES: usize = 16;
/// Line widths accepted, in canvas units.
pub const WIDTHS: RangeInclusive<u32> = 1..=20;

/// One stroke as a client sends it: `{"color":"#rrggbb","width":3,"points":[x0,y0,x1,y1,…]}`.
/// Unknown fields are refused, so a typo is an error rather than a silently default stroke.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrokeIn {
    pub color: String,
    pub width: u32,
    pub points: Vec<u32>,
}

/// What a client sends: `{"strokes":[…]}` (the WebSocket frame adds `"type":"draw"`); any
/// other field is refused, as in a stroke.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub strokes: Vec<StrokeIn>,
}

/// Why a batch was refused; `code` is the contract's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(message: String) -> Invalid {
    Invalid {
        code: "invalid_stroke",
        message,
    }
}

impl StrokeIn {
    /// Checks every rule; the first broken one is the error.
    pub fn check(&self, index: usize) -> Result<(), Invalid> {
        let c = self.color.as_bytes();
        if c.len() != 7 || c[0] != b'#' || !c[1..].iter().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(format!(
                "stroke {index}: color must be #rrggbb (six hex digits)"
            )));
        }
        if !WIDTHS.contains(&self.width) {
            return Err(invalid(format!(
                "stroke {index}: width must be {} to {}",
                WIDTHS.start(),
                WIDTHS.end()
            )));
        }
        let n = self.points.len();
        if n < 2 || !n.is_multiple_of(2) || n / 2 > MAX_POINTS {
            return Err(invalid(format!(
                "stroke {index}: points must be 1 to {MAX_POINTS} x,y pairs (a flat array of an even length)"
            )));
        }
        if self.points.iter().any(|&v| v > MAX_COORD) {
            return Err(invalid(format!(
                "stroke {index}: coordinates must be whole numbers from 0 to {MAX_COORD}"
            )));
        }
        Ok(())
    }
}

impl Batch {
    /// Checks the whole batch: all its strokes are published, or none.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.strokes.is_empty() || self.strokes.len() > MAX_STROKES {
            return Err(invalid(format!("send 1 to {MAX_STROKES} strokes at once")));
        }
        self.strokes
            .iter()
            .enumerate()
            .try_for_each(|(i, s)| s.check(i))
    }
}

/// A cheap-to-clone handle on the draw feed.
#[derive(Clone)]
pub struct Draw {
    feed: Feed,
    /// The next id and the server-wide token bucket. A std mutex held across id assignment
    /// and `publish`, so ids reach the feed in order whatever the number of senders; never
    /// held across an `.await`.
    state: Arc<Mutex<State>>,
    total_per_s: u32,
}

struct State {
    next_id: u64,
    /// Strokes the server may still take now (a bucket of `total_per_s`, refilled per second).
    tokens: f64,
    at: Instant,
}

/// Why [`Draw::publish`] refused a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The server takes at most `total_per_s` strokes a second from everyone together.
    #[error("the server takes at most {0} strokes a second; retry in {1} s")]
    Busy(u32, u64),
}

impl Draw {
    /// A canvas taking at most `total_per_s` strokes a second from all senders together
    /// (a burst of as many).
    pub fn new(total_per_s: u32) -> Draw {
        let total_per_s = total_per_s.max(MAX_STROKES as u32);
        let limits = Limits {
            // The whole window is replayable and nothing older exists: backfill = window.
            max_backfill: WINDOW as u64,
            ..Limits::new(WINDOW, LAG)
        };
        Draw {
            feed: Feed::new(FeedName::Draw, Retention::All, limits, None),
            state: Arc::new(Mutex::new(State {
                next_id: 1,
                tokens: f64::from(total_per_s),
                at: Instant::now(),
            })),
            total_per_s,
        }
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Publishes a checked batch, one event per stroke, if the server-wide budget has room
    /// for all of it; returns their ids.
    pub fn publish(&self, batch: Batch) -> Result<Vec<u64>, Refused> {
        batch.check()?;
        // Every update is a few field writes; a poisoned lock is still consistent.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let rate = f64::from(self.total_per_s);
        let now = Instant::now();
        state.tokens = (state.tokens + now.duration_since(state.at).as_secs_f64() * rate).min(rate);
        state.at = now;
        let n = batch.strokes.len() as f64;
        if state.tokens < n {
            let wait = ((n - state.tokens) / rate).ceil().max(1.0) as u64;
            return Err(Refused::Busy(self.total_per_s, wait));
        }
        state.tokens -= n;
        let mut ids = Vec::with_capacity(batch.strokes.len());
        for stroke in batch.strokes {
            let id = state.next_id;
            let event = Event::new(&WireEvent {
                id,
                ts: super::clock::now_micros(),
                body: EventBody::Stroke {
                    color: stroke.color.to_ascii_lowercase(),
                    width: stroke.width,
                    points: stroke.points,
                },
            });
            // Ids come from this counter alone, under this lock: always above the last.
            if self.feed.publish(event).is_ok() {
                state.next_id += 1;
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stroke(color: &str, width: u32, points: Vec<u32>) -> StrokeIn {
        StrokeIn {
            color: color.into(),
            width,
            points,
        }
    }

    #[test]
    fn good_strokes_pass_and_each_rule_is_checked() {
        assert!(
            stroke("#00ffAA", 3, vec![0, 0, 1000, 1000])
                .check(0)
                .is_ok()
        );
        for bad in [
            stroke("red", 3, vec![0, 0]),
            stroke("#00ff0g", 3, vec![0, 0]),
            stroke("#00ff00\"", 3, vec![0, 0]),
            stroke("#00ff00", 0, vec![0, 0]),
            stroke("#00ff00", 21, vec![0, 0]),
            stroke("#00ff00", 3, vec![]),
            stroke("#00ff00", 3, vec![1, 2, 3]),
            stroke("#00ff00", 3, vec![1001, 0]),
            stroke("#00ff00", 3, vec![5; 2 * MAX_POINTS + 2]),
        ] {
            assert_eq!(bad.check(0).unwrap_err().code, "invalid_stroke", "{bad:?}");
        }
    }

    #[test]
    fn a_batch_is_published_in_order_or_not_at_all() {
        let draw = Draw::new(1000);
        let good = stroke("#112233", 2, vec![1, 2, 3, 4]);
        let ids = draw
            .publish(Batch {
                strokes: vec![good.clone(), good.clone()],
            })
            .unwrap();
        assert_eq!(ids, vec![1, 2]);
        let refused = draw.publish(Batch {
            strokes: vec![good.clone(), stroke("#1122", 2, vec![1, 2])],
        });
        assert!(refused.is_err());
        assert_eq!(draw.feed().latest_id(), Some(2));
        let mut sub = draw.feed().subscribe(
            Some(1),
            crate::feed::Start::Now,
            0,
            crate::feed::Filter::default(),
            Default::default(),
        );
        let event = sub.try_next().unwrap();
        assert_eq!(event.id, 2);
        let json = std::str::from_utf8(&event.json).unwrap();
        assert!(
            json.ends_with(r##""type":"stroke","color":"#112233","width":2,"points":[1,2,3,4]}"##),
            "{json}"
        );
    }

    #[test]
    fn the_server_wide_budget_refuses_past_its_rate() {
        let draw = Draw::new(16);
        let batch = || Batch {
            strokes: vec![stroke("#112233", 2, vec![1, 2]); MAX_STROKES],
        };
        assert_eq!(draw.publish(batch()).unwrap().len(), MAX_STROKES);
        assert_eq!(draw.publish(batch()), Err(Refused::Busy(16, 1)));
        assert_eq!(draw.feed().latest_id(), Some(MAX_STROKES as u64));
    }
}
