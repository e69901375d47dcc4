//! Readiness: a service is ready only while every dependency it registered
//! says so, and never once shutdown has begun.
//!
//! Kubernetes routes traffic by `/readyz`, so a receiver that lost the broker
//! or is draining must drop out of its Service while `/livez` stays green.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

type Check = Box<dyn Fn() -> bool + Send + Sync>;

/// The named checks behind `/readyz`. Cloning shares them.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<Vec<(&'static str, Check)>>>,
}

impl Readiness {
    /// Adds a check computed on each probe.
    pub fn add_check(&self, name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, Box::new(check)));
    }

    /// Adds a check that a task turns on and off; it starts off.
    pub fn flag(&self, name: &'static str) -> ReadyFlag {
        let flag = ReadyFlag::default();
        let probe = flag.clone();
        self.add_check(name, move || probe.get());
        flag
    }

    /// The names of the checks that currently fail; empty means ready.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, check)| !check())
            .map(|(name, _)| *name)
            .collect()
    }
}

/// One on/off readiness condition, e.g. "consuming the stream".
#[derive(Clone, Default, Debug)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    /// Turns the condition on or off.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether the condition holds.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let readiness = Readiness::default();
        let bus = readiness.flag("bus");
        readiness.add_check("always", || true);
        assert_eq!(readiness.waiting_for(), vec!["bus"]);
        bus.set(true);
        assert!(readiness.waiting_for().is_empty());
        bus.set(false);
        assert_eq!(readiness.waiting_for(), vec!["bus"]);
    }
}
