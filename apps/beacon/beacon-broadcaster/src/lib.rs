//! The broadcaster: publishes the hello message forever, each one after a
//! wait drawn uniformly from a configured range, and does not move on until
//! the bus has stored it.

mod broadcaster;
mod config;
mod interval;
mod metrics;

pub use self::{
    broadcaster::{Broadcaster, Summary},
    config::{BroadcasterArgs, Settings},
    interval::IntervalRange,
    metrics::Metrics,
};
