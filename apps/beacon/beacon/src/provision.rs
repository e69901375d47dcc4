//! `beacon provision`: creates or updates the stream, then exits.
//!
//! Broadcasters and receivers run with NATS users that may only publish or
//! only read; managing the stream is this one-shot step's job (a Kubernetes
//! Job with the only credentials allowed to), so retention and replica
//! changes roll out with `make up`.

use platform::{
    backoff::retry,
    bus::{Bus, NatsBus},
};
use tokio_util::sync::CancellationToken;

use crate::cli::Provision;

/// Retries until the stream is in place; `false` if stopped first.
pub async fn run(provision: Provision, shutdown: CancellationToken) -> bool {
    let bus = match NatsBus::connect(&provision.urls, &provision.nats, "beacon-provision").await {
        Ok(bus) => Bus::Nats(bus),
        Err(err) => {
            tracing::error!(error = %err, "cannot set up a NATS connection");
            return false;
        }
    };
    let stream = bus.stream(provision.stream);
    let provisioned = retry(&shutdown, "cannot provision the stream yet", || {
        stream.provision()
    })
    .await;
    if provisioned.is_some() {
        let settings = stream.settings();
        tracing::info!(
            stream = %settings.name,
            subject = %settings.subject,
            max_age = ?settings.max_age,
            max_messages = settings.max_messages,
            replicas = settings.replicas,
            "stream provisioned"
        );
    }
    provisioned.is_some()
}
