//! `beacon provision`: creates or updates the stream, then exits.
//!
//! Broadcasters and receivers run with NATS users that may only publish or
//! only read; managing the stream is this one-shot step's job (a Kubernetes
//! Job with the only credentials allowed to), so retention and replica
//! changes roll out with `make up`.

use beacon_platform::{backoff::retry, bus::NatsBus};
use tokio_util::sync::CancellationToken;

use crate::cli::Provision;

/// Retries until the stream is in place; `false` if stopped first.
pub async fn run(provision: Provision, shutdown: CancellationToken) -> bool {
    let stream = provision.stream.clone();
    let bus = match NatsBus::connect(
        &provision.urls,
        &provision.nats,
        provision.stream,
        "beacon-provision",
    )
    .await
    {
        Ok(bus) => bus,
        Err(err) => {
            tracing::error!(error = %err, "cannot set up a NATS connection");
            return false;
        }
    };
    let provisioned = retry(&shutdown, "cannot provision the stream yet", || {
        bus.provision()
    })
    .await;
    if provisioned.is_some() {
        tracing::info!(
            stream = %stream.stream,
            subject = %stream.subject,
            max_age = ?stream.stream_max_age,
            max_messages = stream.stream_max_messages,
            replicas = stream.stream_replicas,
            "stream provisioned"
        );
    }
    provisioned.is_some()
}
