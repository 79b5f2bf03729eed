//! The embedded engine: this process alone, the chat's log in SQLite.

pub mod private;
pub mod sqlite;
mod store;

pub use store::*;
