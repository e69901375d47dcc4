//! The receiver assembled: the stream followed into the hub, and the HTTP routes over it.

use std::{sync::Arc, time::Duration};

use axum::Router;
use platform::{
    bus::BusStream,
    health::{Readiness, ReadyFlag},
    service::{BoxFuture, Component},
    takeover::Takeover,
};

use tokio_util::sync::CancellationToken;

use crate::{ReceiverArgs, follow::Follower, history::History, http, hub::Hub, metrics::Metrics};

/// A receiver on one bus; cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    pub(crate) hub: Arc<Hub>,
    pub(crate) history: History,
    pub(crate) metrics: Metrics,
    ready: ReadyFlag,
    window: usize,
}

impl Receiver {
    /// A receiver reading `bus`. Its readiness (bus connected, consuming and
    /// caught up) is registered in `readiness`.
    pub fn new(
        bus: BusStream,
        args: &ReceiverArgs,
        metrics: Metrics,
        readiness: &Readiness,
    ) -> Self {
        let probe = bus.clone();
        readiness.add_check("receiver: bus connected", move || probe.is_connected());
        let cap = args.client_cap();
        metrics.set_client_cap(cap);
        tracing::info!(max_clients = cap, "client cap");
        Self {
            hub: Arc::new(Hub::new(args.window)),
            history: History::new(bus),
            metrics,
            ready: readiness.flag("receiver: consuming the stream"),
            window: args.window,
        }
    }

    /// The page, `/events`, `/ws` and `/api/messages`. Open streams end when
    /// `shutdown` is cancelled.
    pub fn router(&self, shutdown: CancellationToken) -> Router {
        http::router(self.clone(), shutdown)
    }

    /// The connections this receiver serves itself rather than through
    /// the router (event streams), for [`platform::http::serve`].
    /// They end when `shutdown` is cancelled.
    pub fn takeover(&self, shutdown: CancellationToken) -> Takeover {
        http::takeover(self.clone(), shutdown)
    }

    /// Follows the stream until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        Follower {
            bus: self.history.bus().clone(),
            hub: self.hub,
            metrics: self.metrics,
            ready: self.ready,
            window: self.window,
        }
        .run(shutdown)
        .await;
    }
}

impl Component for Receiver {
    fn name(&self) -> &'static str {
        "receiver"
    }

    fn serves_page(&self) -> bool {
        true
    }

    fn router(&self, shutdown: &CancellationToken) -> Option<Router> {
        Some(Receiver::router(self, shutdown.clone()))
    }

    fn takeover(&self, shutdown: &CancellationToken) -> Option<Takeover> {
        Some(Receiver::takeover(self, shutdown.clone()))
    }

    fn run(
        self: Box<Self>,
        shutdown: CancellationToken,
        _deadline: Duration,
    ) -> BoxFuture<'static, ()> {
        Box::pin(Receiver::run(*self, shutdown))
    }
}
