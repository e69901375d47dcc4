//! The receiver: follows the hello stream from the bus into a bounded
//! in-memory window, and serves it to browsers live, with resume by sequence
//! number over Server-Sent Events and WebSocket, plus a history API and the
//! page itself.
//!
//! Each message is serialized once when it arrives ([`frame`]); every client
//! then gets the same shared bytes. Clients that resume from further back
//! than the window are caught up from the stream ([`feed`]).

mod config;
mod feed;
mod follow;
mod frame;
mod history;
mod http;
mod hub;
mod metrics;
mod receiver;
#[cfg(test)]
mod testing;

pub use self::{config::ReceiverArgs, metrics::Metrics, receiver::Receiver};
