//! Assembling and running a target: bind, build the parts the target runs,
//! serve, and stop them all within the shutdown deadline.
//!
//! [`Application::build`] binds the listener, so tests (and the log line
//! people click) get the real port before anything runs;
//! [`Application::run_until_stopped`] takes the shutdown token from its
//! caller: a signal handler in `main`, a plain token in tests.

use beacon_broadcaster::Broadcaster;
use beacon_receiver::Receiver;
use platform::{
    bus::{Bus, MemoryBus, NatsBus, Provisioning},
    config::ConfigError,
    service::{Service, ServiceBuilder},
};
use tokio_util::sync::CancellationToken;

use crate::cli::{BusConfig, Config};

/// A target, bound and ready to run.
pub struct Application {
    service: Service,
}

impl Application {
    /// Binds the HTTP listener and builds the parts `config` asks for. The
    /// only error is a listen address that cannot be used.
    pub async fn build(config: Config) -> Result<Self, ConfigError> {
        let mut service = ServiceBuilder::bind(config.target, &config.http, "beacon").await?;
        let (bus, stream, provisioning) = match config.bus {
            BusConfig::Memory { stream } => (
                Bus::Memory(MemoryBus::new()),
                stream,
                Provisioning::CreateIfMissing,
            ),
            BusConfig::Nats {
                urls,
                nats,
                stream,
                provisioning,
            } => {
                let name = format!("beacon-{}", config.target);
                let bus = NatsBus::connect(&urls, &nats, &name)
                    .await
                    .map_err(|err| ConfigError::new("NATS_URL", "--nats-url", err.to_string()))?;
                (Bus::Nats(bus), stream, provisioning)
            }
        };
        let stream = bus.stream(stream).with_provisioning(provisioning);
        if let Some(settings) = config.broadcaster {
            let metrics = beacon_broadcaster::Metrics::register(service.registry());
            let broadcaster =
                Broadcaster::new(stream.clone(), settings, metrics, service.readiness());
            service.add(broadcaster);
        }
        if let Some(args) = config.receiver {
            let metrics = beacon_receiver::Metrics::register(service.registry());
            let receiver = Receiver::new(stream, &args, metrics, service.readiness());
            service.add(receiver);
        }
        Ok(Self {
            service: service.build(),
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Where a browser on this machine reaches the server.
    pub fn url(&self) -> String {
        self.service.url()
    }

    /// Runs until `shutdown` is cancelled, then stops accepting, ends open
    /// streams and lets the last publish finish, all within the deadline.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
