//! Streams created or updated by a one-shot step.
//!
//! On a cluster the long-lived targets run with NATS users that may only
//! publish or only consume; managing streams needs other credentials, used
//! only by a one-shot step (a Kubernetes Job), so that retention and replica
//! changes roll out with each deployment. Every app's `provision` target is
//! this function on its own streams.

use tokio_util::sync::CancellationToken;

use super::{Bus, NatsArgs, NatsBus, NatsUrls, StreamSettings};
use crate::backoff::retry;

/// Connects to `urls` as `client` and creates or updates each of
/// `streams`, retrying each until it is in place; `false` if the
/// connection cannot be set up, or if `shutdown` comes first.
pub async fn provision(
    urls: &NatsUrls,
    nats: &NatsArgs,
    client: &str,
    streams: &[StreamSettings],
    shutdown: &CancellationToken,
) -> bool {
    let bus = match NatsBus::connect(urls, nats, client).await {
        Ok(bus) => Bus::Nats(bus),
        Err(err) => {
            tracing::error!(error = %err, "cannot set up a NATS connection");
            return false;
        }
    };
    for settings in streams {
        let stream = bus.stream(settings.clone());
        if retry(shutdown, "cannot provision the stream yet", || {
            stream.provision()
        })
        .await
        .is_none()
        {
            return false;
        }
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
    true
}
