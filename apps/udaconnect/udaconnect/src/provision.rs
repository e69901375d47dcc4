//! `udaconnect provision`: creates or updates the LOCATIONS and
//! LOCATIONS_DEAD streams, then exits.
//!
//! On a cluster the edges and the writers run with NATS users that may only
//! publish or consume (`UDACONNECT_CREATE_STREAMS=false`); managing the
//! streams is this one-shot step's job, with the only credentials allowed
//! to, so retention and replica changes roll out with it.

use platform::{
    backoff::retry,
    bus::{Bus, NatsBus},
};
use tokio_util::sync::CancellationToken;

use crate::cli::Provision;

/// Retries until both streams are in place; `false` if stopped first.
pub async fn run(provision: Provision, shutdown: CancellationToken) -> bool {
    let bus = match NatsBus::connect(&provision.urls, &provision.nats, "udaconnect-provision").await
    {
        Ok(bus) => Bus::Nats(bus),
        Err(err) => {
            tracing::error!(error = %err, "cannot set up a NATS connection");
            return false;
        }
    };
    for settings in provision.streams {
        let stream = bus.stream(settings);
        if retry(&shutdown, "cannot provision the stream yet", || {
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
