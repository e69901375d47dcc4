//! The command line: which target to run and every setting, each an env var
//! that is also a flag. `beacon` alone runs `all`.

use beacon_broadcaster::{BroadcasterArgs, Settings};
use beacon_platform::{
    bus::{NatsArgs, NatsUrls, StreamArgs},
    config::ConfigError,
    http::HttpArgs,
    telemetry::LogArgs,
};
use beacon_receiver::ReceiverArgs;
use clap::{Args, Parser, Subcommand};

/// Beacon: a broadcaster publishes "Hello world" at random intervals through
/// NATS JetStream; a receiver shows every message live in the browser.
#[derive(Debug, Parser)]
#[command(name = "beacon", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The part of Beacon to run [default: all].
    #[command(subcommand)]
    pub target: Option<Target>,

    #[command(flatten)]
    pub all: AllArgs,
}

/// What a process runs.
#[derive(Debug, Subcommand)]
pub enum Target {
    /// Broadcaster and receiver in one process; an in-process bus unless NATS_URL is set.
    All(AllArgs),
    /// Publishes the message to NATS JetStream; serves /livez, /readyz and /metrics.
    Broadcaster(BroadcasterTarget),
    /// Follows the stream from NATS JetStream and serves the page, SSE, WebSocket and the API.
    Receiver(ReceiverTarget),
}

/// Settings every target has.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: StreamArgs,
}

/// Settings of `beacon all`.
#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub broadcaster: BroadcasterArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
}

/// Settings of `beacon broadcaster`.
#[derive(Debug, Clone, Args)]
pub struct BroadcasterTarget {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub broadcaster: BroadcasterArgs,
}

/// Settings of `beacon receiver`.
#[derive(Debug, Clone, Args)]
pub struct ReceiverTarget {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
}

/// Where messages travel.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// The in-process bus, keeping `window` messages.
    Memory {
        /// Messages retained.
        window: usize,
    },
    /// NATS JetStream.
    Nats {
        /// The servers.
        urls: NatsUrls,
        /// Credentials.
        nats: NatsArgs,
        /// The stream.
        stream: StreamArgs,
    },
}

/// A checked configuration for one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The target's name, for logs and the NATS connection name.
    pub target: &'static str,
    /// The HTTP server.
    pub http: HttpArgs,
    /// Logging.
    pub log: LogArgs,
    /// The bus.
    pub bus: BusConfig,
    /// The broadcaster, if this target runs one.
    pub broadcaster: Option<Settings>,
    /// The receiver, if this target runs one.
    pub receiver: Option<ReceiverArgs>,
}

impl Cli {
    /// Checks what clap cannot check alone: settings that depend on each other
    /// and on the target.
    pub fn config(self) -> Result<Config, ConfigError> {
        match self.target.unwrap_or(Target::All(self.all)) {
            Target::All(args) => {
                let bus = match args.common.nats.nats_url.clone() {
                    Some(urls) => nats(urls, &args.common),
                    None => BusConfig::Memory {
                        window: args.receiver.window,
                    },
                };
                Ok(Config {
                    target: "all",
                    broadcaster: Some(args.broadcaster.settings()?),
                    receiver: Some(args.receiver),
                    http: args.common.http,
                    log: args.common.log,
                    bus,
                })
            }
            Target::Broadcaster(args) => Ok(Config {
                target: "broadcaster",
                bus: nats(required_url(&args.common, "broadcaster")?, &args.common),
                broadcaster: Some(args.broadcaster.settings()?),
                receiver: None,
                http: args.common.http,
                log: args.common.log,
            }),
            Target::Receiver(args) => Ok(Config {
                target: "receiver",
                bus: nats(required_url(&args.common, "receiver")?, &args.common),
                broadcaster: None,
                receiver: Some(args.receiver),
                http: args.common.http,
                log: args.common.log,
            }),
        }
    }
}

fn nats(urls: NatsUrls, common: &CommonArgs) -> BusConfig {
    BusConfig::Nats {
        urls,
        nats: common.nats.clone(),
        stream: common.stream.clone(),
    }
}

fn required_url(common: &CommonArgs, target: &str) -> Result<NatsUrls, ConfigError> {
    common.nats.nats_url.clone().ok_or_else(|| {
        ConfigError::new(
            "NATS_URL",
            "--nats-url",
            format!("is required by the {target} target (e.g. nats://127.0.0.1:4222)"),
        )
    })
}
