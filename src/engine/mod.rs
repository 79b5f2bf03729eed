//! The chat's engines, side by side: where its log, sessions and presence are kept.
//! [`embedded`]: this process alone (sessions in memory, the log in SQLite); [`redis`]: one
//! node of many, everything in Redis (`--redis`). Each implements `chat::Engine`; the chat
//! never asks which one it has, and the edge (`state`) picks one at start.

pub mod embedded;
pub mod redis;

#[cfg(test)]
mod tests;
