//! Sessions in Redis, shared by every node: `s:ID` (nick, and in `lower` its look-alike keys,
//! newline-separated), `nicks` (each key of a held nick → id: the nick rule, see
//! `chat::name::look_alike_keys`), `seen` (id → last activity in ms, Redis's clock: the idle
//! timeout and the count of live sessions), `r:ID` (the send times of the rate limit's
//! window). A session whose last activity is `idle` old is ended by whichever node looks at
//! it first; an ended session is announced on `control`, so every node closes its streams.

use std::time::Duration;

use super::{Redis, RedisError};

/// What [`Redis::create_session`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Ok,
    NickTaken,
    Full,
    /// The random id is in use: draw another.
    IdInUse,
}

/// What [`Redis::rename_session`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Renamed {
    /// Renamed; the old nick.
    Ok(String),
    NickTaken,
    SignedOut,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl Redis {
    pub async fn create_session(
        &self,
        id: u64,
        nick: &str,
        keys: &[String],
        max: u64,
        idle: Duration,
    ) -> Result<Created, RedisError> {
        let answer: String = self
            .scripts
            .session_create
            .arg(self.prefix())
            .arg(id)
            .arg(nick)
            .arg(keys.join("\n"))
            .arg(max)
            .arg(ms(idle))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match answer.as_str() {
            "ok" => Created::Ok,
            "taken" => Created::NickTaken,
            "full" => Created::Full,
            _ => Created::IdInUse,
        })
    }

    /// The nick of live session `id`, if it is live.
    pub async fn session(&self, id: u64, idle: Duration) -> Result<Option<String>, RedisError> {
        Ok(self
            .scripts
            .session_get
            .arg(self.prefix())
            .arg(id)
            .arg(ms(idle))
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// The live session holding a nick with one of `keys`: its id and nick.
    pub async fn session_by_nick(
        &self,
        keys: &[String],
        idle: Duration,
    ) -> Result<Option<(u64, String)>, RedisError> {
        Ok(self
            .scripts
            .session_by_nick
            .arg(self.prefix())
            .arg(keys.join("\n"))
            .arg(ms(idle))
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Charges one write of `bytes` to the session's budget (`limits`: writes and bytes per
    /// `window`).
    pub async fn spend(
        &self,
        id: u64,
        limits: (usize, usize),
        bytes: usize,
        window: Duration,
        idle: Duration,
    ) -> Result<Spent, RedisError> {
        let answer: Vec<String> = self
            .scripts
            .session_spend
            .arg(self.prefix())
            .arg(id)
            .arg(limits.0)
            .arg(ms(window))
            .arg(ms(idle))
            .arg(bytes)
            .arg(limits.1)
            .invoke_async(&mut self.conn())
            .await?;
        spent(&answer)
    }

    pub async fn rename_session(
        &self,
        id: u64,
        nick: &str,
        keys: &[String],
        idle: Duration,
    ) -> Result<Renamed, RedisError> {
        let answer: Vec<String> = self
            .scripts
            .session_rename
            .arg(self.prefix())
            .arg(id)
            .arg(nick)
            .arg(keys.join("\n"))
            .arg(ms(idle))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match answer.first().map(String::as_str) {
            Some("ok") => Renamed::Ok(answer.get(1).cloned().unwrap_or_default()),
            Some("taken") => Renamed::NickTaken,
            _ => Renamed::SignedOut,
        })
    }

    /// Ends session `id` (`reason`: `logout` or `idle`); its nick if it was live.
    pub async fn end_session(&self, id: u64, reason: &str) -> Result<Option<String>, RedisError> {
        Ok(self
            .scripts
            .session_end
            .arg(self.prefix())
            .arg(id)
            .arg(reason)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// For each id, whether Redis still has the session (one round trip, in steps of 512).
    pub async fn sessions_live(&self, ids: &[u64]) -> Result<Vec<bool>, RedisError> {
        let mut live = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(512) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("ZSCORE").arg(self.key("seen")).arg(id);
            }
            let scores: Vec<Option<f64>> = pipe.query_async(&mut self.conn()).await?;
            live.extend(scores.into_iter().map(|s| s.is_some()));
        }
        Ok(live)
    }

    /// Ends up to `most` sessions idle for `idle`; their ids.
    pub async fn sweep_sessions(
        &self,
        idle: Duration,
        most: usize,
    ) -> Result<Vec<u64>, RedisError> {
        Ok(self
            .scripts
            .session_sweep
            .arg(self.prefix())
            .arg(ms(idle))
            .arg(most)
            .invoke_async(&mut self.conn())
            .await?)
    }
}

/// What [`Redis::spend`] (or the `SAY` script) found.
#[derive(Debug, PartialEq, Eq)]
pub enum Spent {
    Ok,
    /// Past the budget: room again after this; which half is full.
    Wait(Duration, Half),
    SignedOut,
}

/// The two halves of a session's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Events,
    Bytes,
}

/// A budget script's answer: `{'ok'}`, `{'out'}` or `{'wait', ms, 'events' | 'bytes'}`.
pub(super) fn spent(answer: &[String]) -> Result<Spent, RedisError> {
    let unexpected = || RedisError(format!("unexpected answer {answer:?}"));
    Ok(match answer.first().map(String::as_str) {
        Some("ok") => Spent::Ok,
        Some("out") => Spent::SignedOut,
        Some("wait") => {
            let ms = answer
                .get(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(unexpected)?;
            let half = match answer.get(2).map(String::as_str) {
                Some("events") => Half::Events,
                Some("bytes") => Half::Bytes,
                _ => return Err(unexpected()),
            };
            Spent::Wait(Duration::from_millis(ms), half)
        }
        _ => return Err(unexpected()),
    })
}
