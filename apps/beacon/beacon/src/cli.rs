//! The command line: which target to run and every setting, each an env var
//! that is also a flag. `beacon` alone runs `all`.

use beacon_broadcaster::{BroadcasterArgs, Settings};
use beacon_receiver::ReceiverArgs;
use clap::{Args, Parser, Subcommand};
use platform::{
    bus::{NatsArgs, NatsUrls, Provisioning, Retention, StreamArgs, StreamSettings, StreamSpec},
    config::{AppNames, ConfigError},
    http::HttpArgs,
    telemetry::LogArgs,
};

/// Beacon's names for the settings every service has: `BEACON_HTTP_ADDR`, ...
#[derive(Debug, Clone)]
pub struct Beacon;

impl AppNames for Beacon {
    const ENV_PREFIX: &'static str = "BEACON";
    const HTTP_ADDR: &'static str = "127.0.0.1:8080";
}

/// The stream the hello messages live in: `BEACON_STREAM`, `--stream`, ...
#[derive(Debug, Clone)]
pub struct HelloStream;

impl StreamSpec for HelloStream {
    const ENV_PREFIX: &'static str = "BEACON";
    const FLAG_PREFIX: &'static str = "";
    const HOLDS: &'static str = "the hello messages";
    const NAME: &'static str = "HELLO";
    const SUBJECT: &'static str = "beacon.hello";
    const MAX_AGE: &'static str = "24h";
    const MAX_MESSAGES: &'static str = "1000000";
    const RETENTION: Retention = Retention::Log;
}

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
    /// Creates or updates the stream (retention, replicas), then exits; needs a NATS user allowed to manage streams.
    Provision(ProvisionTarget),
}

/// Settings every target has.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub http: HttpArgs<Beacon>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: StreamArgs<HelloStream>,
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

/// Settings of `beacon provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionTarget {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub stream: StreamArgs<HelloStream>,
}

/// What the process does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Run a long-lived target.
    Serve(Box<Config>),
    /// Create or update the stream, then exit.
    Provision(Box<Provision>),
}

/// A checked configuration for `beacon provision`.
#[derive(Debug, Clone)]
pub struct Provision {
    /// Logging.
    pub log: LogArgs,
    /// The servers.
    pub urls: NatsUrls,
    /// Credentials.
    pub nats: NatsArgs,
    /// The stream to create or update.
    pub stream: StreamSettings,
}

/// Where messages travel.
#[derive(Debug, Clone)]
pub enum BusConfig {
    /// The in-process bus.
    Memory {
        /// The stream, retaining the receiver's window.
        stream: StreamSettings,
    },
    /// NATS JetStream.
    Nats {
        /// The servers.
        urls: NatsUrls,
        /// Credentials.
        nats: NatsArgs,
        /// The stream.
        stream: StreamSettings,
        /// Who creates the stream: `all` itself (no provisioning step runs
        /// beside it), or the provision target (broadcaster and receiver,
        /// whose users may not manage streams).
        provisioning: Provisioning,
    },
}

/// A checked configuration for one process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The target's name, for logs and the NATS connection name.
    pub target: &'static str,
    /// The HTTP server.
    pub http: HttpArgs<Beacon>,
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
    pub fn plan(self) -> Result<Plan, ConfigError> {
        let serve = match self.target.unwrap_or(Target::All(self.all)) {
            Target::All(args) => {
                let bus = match args.common.nats.nats_url.clone() {
                    Some(urls) => nats(urls, &args.common, Provisioning::CreateIfMissing),
                    None => BusConfig::Memory {
                        stream: StreamSettings {
                            max_messages: u64::try_from(args.receiver.window).unwrap_or(u64::MAX),
                            ..args.common.stream.settings()
                        },
                    },
                };
                Config {
                    target: "all",
                    broadcaster: Some(args.broadcaster.settings()?),
                    receiver: Some(args.receiver),
                    http: args.common.http,
                    log: args.common.log,
                    bus,
                }
            }
            Target::Broadcaster(args) => Config {
                target: "broadcaster",
                bus: nats(
                    required_url(&args.common, "broadcaster")?,
                    &args.common,
                    Provisioning::External,
                ),
                broadcaster: Some(args.broadcaster.settings()?),
                receiver: None,
                http: args.common.http,
                log: args.common.log,
            },
            Target::Receiver(args) => Config {
                target: "receiver",
                bus: nats(
                    required_url(&args.common, "receiver")?,
                    &args.common,
                    Provisioning::External,
                ),
                broadcaster: None,
                receiver: Some(args.receiver),
                http: args.common.http,
                log: args.common.log,
            },
            Target::Provision(args) => {
                let urls = args
                    .nats
                    .nats_url
                    .clone()
                    .ok_or_else(|| missing_url("provision"))?;
                return Ok(Plan::Provision(Box::new(Provision {
                    log: args.log,
                    urls,
                    nats: args.nats,
                    stream: args.stream.settings(),
                })));
            }
        };
        Ok(Plan::Serve(Box::new(serve)))
    }
}

fn nats(urls: NatsUrls, common: &CommonArgs, provisioning: Provisioning) -> BusConfig {
    BusConfig::Nats {
        urls,
        nats: common.nats.clone(),
        stream: common.stream.settings(),
        provisioning,
    }
}

fn required_url(common: &CommonArgs, target: &str) -> Result<NatsUrls, ConfigError> {
    common
        .nats
        .nats_url
        .clone()
        .ok_or_else(|| missing_url(target))
}

fn missing_url(target: &str) -> ConfigError {
    ConfigError::new(
        "NATS_URL",
        "--nats-url",
        format!("is required by the {target} target (e.g. nats://127.0.0.1:4222)"),
    )
}
