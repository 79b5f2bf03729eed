//! Integration tests: the real server on 127.0.0.1:0, real clients over real sockets.
//! `TEST_LOG=1` shows the server's logs.

#[path = "../support/nginx.rs"]
mod nginx;
#[path = "../support/mod.rs"]
mod support;

mod backlog;
mod bad_input;
mod chat;
mod chat_answers;
mod chat_budgets;
mod chat_limits;
mod cluster;
mod connections;
mod dead_peer;
mod delivery;
mod diag_bounds;
mod diagnostics;
mod draw;
mod durability;
mod fetch;
mod flow_control;
mod iframe;
mod in_flight;
mod input_edges;
mod lan;
mod logs;
mod operator;
mod proxy;
mod redis_harness;
mod resume;
mod retention;
mod secrets;
mod shutdown;
mod stats;
mod tls;
mod watchdog;
mod websocket;
mod webtransport;
