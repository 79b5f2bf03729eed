//! The draw feed: strokes (short polylines with a colour and a width) sent by every page and
//! shared by all. An event feed like the chat (ids, cursor, resume), but kept in memory only:
//! the canvas is a scratch pad, so it is not worth a store. The last [`WINDOW`] strokes are
//! replayed to any cursor; an older cursor (or one from before a restart) gets a `gap` first.
//!
//! Everything a client sends is checked here before it becomes an event: coordinates are
//! integers in `0..=`[`MAX_COORD`], widths in [`WIDTHS`], colours exactly `#rrggbb`, at most
//! [`MAX_POINTS`] points per stroke and [`MAX_STROKES`] strokes per send. So an event can
//! carry nothing a page could mistake for markup, and its size is bounded (about 1.1 KiB).
//! Who may send how often is not decided here but by the caller (`crate::peers`).

use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::{Event, EventBody, Feed, FeedName, Limits, Retention, WireEvent};

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

/// What a client sends: `{"strokes":[…]}` (the WebSocket frame adds `"type":"draw"`).
#[derive(Debug, Clone, Deserialize)]
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
    /// The next id. A std mutex held across id assignment and `publish`, so ids reach the
    /// feed in order whatever the number of senders; never held across an `.await`.
    next_id: Arc<Mutex<u64>>,
}

impl Default for Draw {
    fn default() -> Self {
        Draw::new()
    }
}

impl Draw {
    pub fn new() -> Draw {
        let limits = Limits {
            // The whole window is replayable and nothing older exists: backfill = window.
            max_backfill: WINDOW as u64,
            ..Limits::new(WINDOW, LAG)
        };
        Draw {
            feed: Feed::new(FeedName::Draw, Retention::All, limits, None),
            next_id: Arc::new(Mutex::new(1)),
        }
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Publishes a checked batch, one event per stroke; returns their ids.
    pub fn publish(&self, batch: Batch) -> Result<Vec<u64>, Invalid> {
        batch.check()?;
        let mut next = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids = Vec::with_capacity(batch.strokes.len());
        for stroke in batch.strokes {
            let id = *next;
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
                *next += 1;
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
        let draw = Draw::new();
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
}
