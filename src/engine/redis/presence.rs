//! Presence summed over the nodes. Each node keeps its own presence (which of its
//! subscriptions keep whom online where, `crate::chat::presence`) and tells Redis only its
//! transitions: "session S is now online in room R through this node", and "no longer".
//! Redis keeps, per (room, session), the set of nodes it is online through (`pn:R:S`); the
//! `join` is written when the first node joins, the `leave` when the last one leaves, each by
//! the script that made the change, so once globally.
//!
//! A node that dies cannot say "no longer". Every node writes a heartbeat to `nodes` every
//! [`HEARTBEAT`]; a node silent for [`NODE_TTL`] is dead, and the next surviving node to run
//! its reaper (every [`HEARTBEAT`]) undoes its presence, writing the `leave`s. So a dead
//! node's users leave within `NODE_TTL + HEARTBEAT` (plus the reaper's steps for a node
//! with more than [`REAP_STEP`] memberships).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Redis, RedisError};
use crate::chat::presence::{Change, JOIN_BUDGET, JOIN_WINDOW, MAX_ROOMS_PER_SESSION, Presence};
use crate::feed::Feed;
use crate::feed::clock::now_micros;

pub const HEARTBEAT: Duration = Duration::from_secs(1);
pub const NODE_TTL: Duration = Duration::from_secs(5);
/// Memberships one reaper call undoes at most, so one script stays short.
pub const REAP_STEP: usize = 500;

/// The bounds a join must stay within (the chat's per-session presence budgets), checked by
/// Redis over all nodes.
#[derive(Debug, Clone, Copy)]
pub struct JoinBounds {
    pub max_rooms: usize,
    pub budget: u32,
    pub window: Duration,
}

impl Redis {
    /// This node's session `sid` is online in `room`: returns whether a `join` was written
    /// (`false`: already online through another node, or past the bounds).
    #[allow(clippy::too_many_arguments)]
    pub async fn presence_join(
        &self,
        room: &str,
        sid: u64,
        nick: &str,
        ts: u64,
        floor: u64,
        bounds: JoinBounds,
    ) -> Result<bool, RedisError> {
        let answer: i64 = self
            .scripts
            .presence_join
            .arg(self.prefix())
            .arg(self.node())
            .arg(room)
            .arg(sid)
            .arg(nick)
            .arg(ts.to_string())
            .arg(floor)
            .arg(self.retention)
            .arg(bounds.max_rooms)
            .arg(bounds.budget)
            .arg(bounds.window.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(answer == 1)
    }

    /// This node's session `sid` is no longer online in `room`: whether a `leave` was
    /// written (it was the last node).
    pub async fn presence_leave(
        &self,
        room: &str,
        sid: u64,
        ts: u64,
        floor: u64,
    ) -> Result<bool, RedisError> {
        let answer: i64 = self
            .scripts
            .presence_leave
            .arg(self.prefix())
            .arg(self.node())
            .arg(room)
            .arg(sid)
            .arg(ts.to_string())
            .arg(floor)
            .arg(self.retention)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(answer == 1)
    }

    /// Says this node is alive; `true` if Redis did not know it (first beat, or reaped as
    /// dead): the node must then state its presence again.
    pub async fn heartbeat(&self) -> Result<bool, RedisError> {
        let answer: i64 = self
            .scripts
            .node_heartbeat
            .arg(self.prefix())
            .arg(self.node())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(answer == 1)
    }

    /// Marks this node dead at once (graceful shutdown): the next reaper on another node
    /// writes its users' `leave`s.
    pub async fn retire(&self) -> Result<(), RedisError> {
        let () = redis::cmd("ZADD")
            .arg(self.key("nodes"))
            .arg(0)
            .arg(self.node())
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Undoes the presence of nodes silent for [`NODE_TTL`]; how many `leave`s it wrote.
    pub async fn reap(&self, ts: u64, floor: u64) -> Result<u64, RedisError> {
        Ok(self
            .scripts
            .node_reap
            .arg(self.prefix())
            .arg(self.node())
            .arg(NODE_TTL.as_millis() as u64)
            .arg(ts.to_string())
            .arg(floor)
            .arg(self.retention)
            .arg(REAP_STEP)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Rooms with someone online, with their counts.
    pub async fn presence_rooms(&self) -> Result<Vec<(String, usize)>, RedisError> {
        let counts: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.key("rooms"))
            .query_async(&mut self.conn())
            .await?;
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(room, n)| (room, n as usize))
            .collect())
    }

    /// The nicks online in `room`, over every node.
    pub async fn presence_users(&self, room: &str) -> Result<Vec<String>, RedisError> {
        Ok(redis::cmd("HVALS")
            .arg(self.key(&format!("pr:{room}")))
            .query_async(&mut self.conn())
            .await?)
    }
}

/// One transition of this node, told to Redis, which writes the `join` or `leave` if it
/// changes the room's presence over all nodes.
pub async fn record(redis: &Redis, feed: &Feed, change: &Change) -> Result<(), RedisError> {
    let floor = feed.latest_id().unwrap_or(0);
    if change.joined {
        let bounds = JoinBounds {
            max_rooms: MAX_ROOMS_PER_SESSION,
            budget: JOIN_BUDGET,
            window: JOIN_WINDOW,
        };
        redis
            .presence_join(
                &change.room,
                change.session,
                &change.nick,
                now_micros(),
                floor,
                bounds,
            )
            .await?;
    } else {
        redis
            .presence_leave(&change.room, change.session, now_micros(), floor)
            .await?;
    }
    Ok(())
}

/// This node's heartbeat and the reaper of dead nodes' presence, every [`HEARTBEAT`]. If
/// Redis did not know this node (first beat, or it was taken for dead), its presence is
/// stated again. At shutdown the node marks itself dead, so the other nodes' reapers write
/// its users' `leave`s within a beat.
pub async fn beat(redis: Redis, feed: Feed, presence: Presence, shutdown: CancellationToken) {
    let mut timer = tokio::time::interval(HEARTBEAT);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                if let Err(err) = redis.retire().await {
                    tracing::warn!(%err, "could not retire this node from the cluster");
                }
                return;
            }
            _ = timer.tick() => {}
        }
        match redis.heartbeat().await {
            Ok(true) => presence.restate(),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%err, "cluster heartbeat failed");
                continue;
            }
        }
        let floor = feed.latest_id().unwrap_or(0);
        if let Err(err) = redis.reap(now_micros(), floor).await {
            tracing::warn!(%err, "could not reap dead nodes");
        }
    }
}
