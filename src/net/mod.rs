//! Connections and addresses: everything the server knows of a client before a handler runs.
//! The accept loop and its caps ([`listener`]), TLS ([`tls`]), the accounting per client
//! address ([`addresses`]: connections, requests in flight, budgets), who a request is from
//! behind a trusted proxy ([`forwarded`]), the Host and Origin checks ([`origin`]) and this
//! machine's own addresses ([`interfaces`]), and WebTransport's QUIC endpoint with its
//! certificate ([`quic`]) and the tickets that carry a chat session onto a session
//! ([`tickets`]). All of it is edge: it may import the HTTP
//! framework, and nothing of the core imports it.

pub(crate) mod addresses;
pub mod forwarded;
pub mod interfaces;
pub(crate) mod listener;
pub(crate) mod origin;
pub mod quic;
pub mod tickets;
pub mod tls;
