//! The command line: which target to run and every setting, each an env var
//! that is also a flag. `udaconnect` alone runs `all`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use platform::{
    bus::{NatsArgs, NatsUrls, Provisioning, StreamArgs, StreamSettings},
    config::{AppNames, ConfigError, parse_duration, parse_positive, parse_socket_addr},
    grpc::GrpcArgs,
    http::HttpArgs,
    telemetry::LogArgs,
};
use udaconnect_domain::{
    Timestamp,
    conference::ScaleConfig,
    meeting::{MeetingRules, shard::Shard},
};
use udaconnect_store::{PgConfig, SslMode};

use crate::{
    simulate::SimulateArgs,
    streams::{self, DeadLetters, Locations, MeetingEvents, Stored},
};

/// UdaConnect's names for the settings every service has:
/// `UDACONNECT_HTTP_ADDR`, `UDACONNECT_SHUTDOWN_TIMEOUT`.
#[derive(Debug, Clone)]
pub struct UdaConnect;

impl AppNames for UdaConnect {
    const ENV_PREFIX: &'static str = "UDACONNECT";
    const HTTP_ADDR: &'static str = "127.0.0.1:8090";
}

/// UdaConnect: persons at a conference, where their phones were, and who was
/// near whom, when and where.
#[derive(Debug, Parser)]
#[command(name = "udaconnect", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// The part of UdaConnect to run [default: all].
    #[command(subcommand)]
    pub target: Option<Target>,

    #[command(flatten)]
    pub all: AllArgs,
}

/// What a process runs.
// Parsed once at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Target {
    /// Everything in one process (API, ingest edge, writer, meetings); the embedded store with a demo conference unless DATABASE_URL is set, the in-process bus unless NATS_URL is set.
    All(AllArgs),
    /// The HTTP API (the original's under /api, v2 under /api/v2) and its documentation; locations are written through `ingest`.
    Api(ServeArgs),
    /// The ingest edge: takes locations over gRPC and HTTP, answers once they are on the bus.
    Ingest(IngestTargetArgs),
    /// Writes the locations from the bus into PostgreSQL, in batches.
    Writer(WriterTargetArgs),
    /// Computes the meetings from the stored locations as the writers store them.
    Meetings(MeetingsTargetArgs),
    /// Folds into the meetings every stored location they were not computed from (a database migrated from the original, or locations the stream dropped), then exits.
    MeetingsBackfill(BackfillArgs),
    /// Attendees walking between venues, sending their positions to an edge: the demo feed and the load generator.
    Simulate(SimulateArgs),
    /// Brings the database's schema up to date (a database created by the original too), then exits.
    Migrate(MigrateArgs),
    /// Writes a made-up conference of the given size into the database, then exits.
    Generate(GenerateArgs),
    /// Creates the streams on NATS, or updates their retention and replicas, then exits.
    Provision(ProvisionArgs),
}

/// Where persons and locations are kept.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// PostgreSQL with PostGIS (`postgres://user:password@host:5432/db`). Unset: the embedded store.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: Option<String>,

    /// Apply the schema migrations at start (with DATABASE_URL).
    #[arg(long, env = "UDACONNECT_MIGRATE", default_value = "true", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub migrate: bool,

    /// Answer the connection queries from an in-memory replica of every location, loaded at start and caught up before each query (with DATABASE_URL). Its memory grows with the stored history, about 210 bytes a location (240 MB at 1 M, 840 MB at 4 M): only for a bounded history. `false`, the default: in SQL, the process's memory independent of the history.
    #[arg(long, env = "UDACONNECT_REPLICA", default_value = "false", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub replica: bool,

    /// Seed of the demo conference the embedded store starts with.
    #[arg(long, env = "UDACONNECT_DEMO_SEED", default_value = "1")]
    pub demo_seed: u64,

    #[command(flatten)]
    pub pg: PgArgs,
}

/// How a target talks to PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct PgArgs {
    /// TLS to PostgreSQL, as libpq's sslmode: disable, prefer (TLS if offered, the certificate not checked), require (likewise, but TLS only), verify-ca (a trusted CA), verify-full (and the host's name) [default: the URL's sslmode, else prefer].
    #[arg(long, env = "UDACONNECT_PG_SSLMODE")]
    pub pg_sslmode: Option<SslMode>,
    /// The CA certificates (a PEM file) that verify-ca and verify-full trust [default: the URL's sslrootcert, else the system's].
    #[arg(long, env = "UDACONNECT_PG_SSLROOTCERT")]
    pub pg_sslrootcert: Option<PathBuf>,
    /// Connections to PostgreSQL a process keeps at most.
    #[arg(long, env = "UDACONNECT_PG_POOL_SIZE", default_value = "16", value_parser = parse_bounded::<1024>)]
    pub pg_pool_size: usize,
    /// Longest a statement may run; the server cancels it past that.
    #[arg(long, env = "UDACONNECT_PG_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub pg_statement_timeout: Duration,
}

impl PgArgs {
    /// The store's settings for the database at `url`.
    pub fn config(&self, url: &str) -> PgConfig {
        PgConfig {
            ssl_mode: self.pg_sslmode,
            root_cert: self.pg_sslrootcert.clone(),
            pool_size: self.pg_pool_size,
            statement_timeout: self.pg_statement_timeout,
            ..PgConfig::new(url)
        }
    }
}

/// What the API answers at most.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The most rows the original's connection endpoint answers; a larger answer is cut there, in the original's order, and says so in the header X-Truncated-At-Rows.
    #[arg(long, env = "UDACONNECT_COMPAT_MAX_ROWS", default_value = "100000", value_parser = parse_count)]
    pub compat_max_rows: usize,
    /// Longest a connection query (the original's and v2's) may run: past it the work stops (the statement is cancelled, the in-memory search gives up) and the client is answered 503 with Retry-After.
    #[arg(long, env = "UDACONNECT_QUERY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub query_timeout: Duration,
    /// Connection queries answered at once; one more is answered 503 with Retry-After at once. Persons, health and metrics always answer.
    #[arg(long, env = "UDACONNECT_QUERY_CONCURRENCY", default_value = "4", value_parser = parse_bounded::<1024>)]
    pub query_concurrency: usize,
    /// How often the API reads the meetings written since its last read, for the live streams of meetings (one read per process, whatever the streams open).
    #[arg(long, env = "UDACONNECT_MEETINGS_LIVE_EVERY", default_value = "500ms", value_parser = parse_duration)]
    pub meetings_live_every: Duration,
    /// Most meetings one such read takes; past it every live stream is told to read its meetings again (event `reset`).
    #[arg(long, env = "UDACONNECT_MEETINGS_LIVE_MAX", default_value = "10000", value_parser = parse_bounded::<1_000_000>)]
    pub meetings_live_max: usize,
}

/// Who may call: the organiser's token, the open API, and how long a
/// credential's lookup is trusted.
#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// The organiser's token: everything, for whoever presents it (`Authorization: Bearer …`). At least 32 characters (`openssl rand -hex 32`). Unset: no one is the organiser, but on an open API.
    #[arg(long, env = "UDACONNECT_ORGANISER_TOKEN", hide_env_values = true, value_parser = parse_organiser_token)]
    pub organiser_token: Option<String>,
    /// Everyone reads and writes everything without a token, as with the original's API (for its frontend, and the embedded demo). Default: on with the embedded store, off with DATABASE_URL.
    #[arg(long, env = "UDACONNECT_OPEN_API", value_parser = clap::builder::BoolishValueParser::new())]
    pub open_api: Option<bool>,
    /// How long what a token stands for is trusted before it is looked up again: a credential revoked through another process is refused within it (at once through this one). 0s: looked up on every call.
    #[arg(long, env = "UDACONNECT_AUTH_CACHE", default_value = "5s", value_parser = parse_duration)]
    pub auth_cache: Duration,
    /// Most tokens whose lookups are kept (unknown ones too).
    #[arg(long, env = "UDACONNECT_AUTH_CACHE_MAX", default_value = "100000", value_parser = parse_bounded::<10_000_000>)]
    pub auth_cache_max: usize,
    /// The address phones reach UdaConnect at (`https://udaconnect.example.org`), for the setup links handed out with a device's token. Unset: the address the organiser's request came to.
    #[arg(long, env = "UDACONNECT_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
}

impl AccessArgs {
    /// The rules, the open API's default decided by `store`.
    fn config(&self, store: &StoreConfig) -> AccessConfig {
        AccessConfig {
            organiser_token: self.organiser_token.clone(),
            open_api: self
                .open_api
                .unwrap_or(matches!(store, StoreConfig::Embedded { .. })),
            cache_ttl: self.auth_cache,
            cache_max: self.auth_cache_max,
            public_url: self.public_url.clone(),
        }
    }
}

/// Who may call, decided.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The organiser's token (never log it).
    pub organiser_token: Option<String>,
    /// Whether nobody needs a token.
    pub open_api: bool,
    /// How long a lookup is trusted.
    pub cache_ttl: Duration,
    /// Most lookups kept.
    pub cache_max: usize,
    /// Where phones reach UdaConnect, if set.
    pub public_url: Option<String>,
}

/// The organiser's token as set: [`crate::access::token::check_organiser`].
pub(crate) fn parse_organiser_token(input: &str) -> Result<String, String> {
    crate::access::token::check_organiser(input).map(|()| input.to_owned())
}

fn parse_public_url(input: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(input.trim()).map_err(|err| format!("is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// address with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query or fragment".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Settings of the serving targets.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub http: HttpArgs<UdaConnect>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// A database the target cannot do without.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL with PostGIS (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,

    /// Apply the schema migrations at start.
    #[arg(long, env = "UDACONNECT_MIGRATE", default_value = "true", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub migrate: bool,

    #[command(flatten)]
    pub pg: PgArgs,
}

/// The bus and UdaConnect's streams on it.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub locations: StreamArgs<Locations>,
    #[command(flatten)]
    pub dead: StreamArgs<DeadLetters>,
    #[command(flatten)]
    pub stored: StreamArgs<Stored>,
    #[command(flatten)]
    pub events: StreamArgs<MeetingEvents>,
    /// Create the streams if they are missing; `false`: only look them up and wait (`udaconnect provision` creates them, with the only NATS user allowed to).
    #[arg(long, env = "UDACONNECT_CREATE_STREAMS", default_value = "true", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub create_streams: bool,
}

/// Settings of `udaconnect provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub locations: StreamArgs<Locations>,
    #[command(flatten)]
    pub dead: StreamArgs<DeadLetters>,
    #[command(flatten)]
    pub stored: StreamArgs<Stored>,
    #[command(flatten)]
    pub events: StreamArgs<MeetingEvents>,
}

/// A checked configuration for `udaconnect provision`.
#[derive(Debug, Clone)]
pub struct Provision {
    /// Logging.
    pub log: LogArgs,
    /// The servers.
    pub urls: NatsUrls,
    /// Credentials.
    pub nats: NatsArgs,
    /// The streams to create or update.
    pub streams: [StreamSettings; 4],
}

impl ProvisionArgs {
    fn config(self) -> Result<Provision, ConfigError> {
        let urls = self.nats.nats_url.clone().ok_or_else(|| {
            ConfigError::new(
                "NATS_URL",
                "--nats-url",
                "is required by `udaconnect provision`",
            )
        })?;
        let (locations, dead, stored, events) = (
            self.locations.settings(),
            self.dead.settings(),
            self.stored.settings(),
            self.events.settings(),
        );
        check_streams(&locations, &dead, &stored, &events)?;
        Ok(Provision {
            log: self.log,
            urls,
            nats: self.nats,
            streams: [locations, dead, stored, events],
        })
    }
}

/// The largest `UDACONNECT_INGEST_MAX_BATCH`.
pub const INGEST_MAX_BATCH_BOUND: usize = 100_000;

/// Settings of the ingest edge.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Address the gRPC server listens on (IP:port; port 0 picks a free one).
    #[arg(long, env = "UDACONNECT_GRPC_ADDR", default_value = "127.0.0.1:50051", value_parser = parse_socket_addr)]
    pub grpc_addr: SocketAddr,
    #[command(flatten)]
    pub grpc: GrpcArgs<UdaConnect>,
    /// Most locations one request (HTTP batch or gRPC batch) may carry.
    #[arg(long, env = "UDACONNECT_INGEST_MAX_BATCH", default_value = "10000", value_parser = parse_bounded::<{ INGEST_MAX_BATCH_BOUND as u64 }>)]
    pub ingest_max_batch: usize,
    /// Largest request body, bytes (HTTP batch, gRPC message).
    #[arg(long, env = "UDACONNECT_INGEST_MAX_BODY", default_value = "16777216", value_parser = parse_bounded::<268_435_456>)]
    pub ingest_max_body: usize,
    /// Most locations per bus message; an accepted batch is cut into messages of this size (1: one message per location).
    #[arg(long, env = "UDACONNECT_INGEST_CHUNK", default_value = "1000", value_parser = parse_bounded::<10_000>)]
    pub ingest_chunk: usize,
    /// How far in the future a location's time may be (clocks of phones drift).
    #[arg(long, env = "UDACONNECT_INGEST_MAX_FUTURE", default_value = "10m", value_parser = parse_duration)]
    pub ingest_max_future: Duration,
    /// Location ids reserved from the database at a time.
    #[arg(long, env = "UDACONNECT_INGEST_ID_BLOCK", default_value = "10000", value_parser = parse_bounded::<1_000_000>)]
    pub ingest_id_block: usize,
    /// How often the edge asks the database for persons created meanwhile.
    #[arg(long, env = "UDACONNECT_INGEST_PERSON_REFRESH", default_value = "1s", value_parser = parse_duration)]
    pub ingest_person_refresh: Duration,
    /// How long a request may wait for the bus to store its locations before it is answered "retry later".
    #[arg(long, env = "UDACONNECT_INGEST_PUBLISH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub ingest_publish_timeout: Duration,
    /// What `Retry-After` (and gRPC's `retry-after`) says when the bus is full or away: whole seconds.
    #[arg(long, env = "UDACONNECT_INGEST_RETRY_AFTER", default_value = "1s", value_parser = parse_whole_seconds)]
    pub ingest_retry_after: Duration,
}

/// Settings of the writer.
#[derive(Debug, Clone, Args)]
pub struct WriterArgs {
    /// Most rows written in one transaction.
    #[arg(long, env = "UDACONNECT_WRITER_BATCH_ROWS", default_value = "5000", value_parser = parse_bounded::<100_000>)]
    pub writer_batch_rows: usize,
    /// Most bus messages taken at a time (bounds the writer's memory: at most this many messages of UDACONNECT_INGEST_CHUNK locations).
    #[arg(long, env = "UDACONNECT_WRITER_FETCH", default_value = "64", value_parser = parse_bounded::<100_000>)]
    pub writer_fetch: usize,
    /// Transactions one writer runs at once (each of up to UDACONNECT_WRITER_BATCH_ROWS rows).
    #[arg(long, env = "UDACONNECT_WRITER_CONCURRENCY", default_value = "2", value_parser = parse_bounded::<16>)]
    pub writer_concurrency: usize,
    /// After the first message of a batch, how long to wait for more.
    #[arg(long, env = "UDACONNECT_WRITER_LINGER", default_value = "50ms", value_parser = parse_duration)]
    pub writer_linger: Duration,
    /// A message not acknowledged within this time (a writer that died) is delivered to another writer.
    #[arg(long, env = "UDACONNECT_WRITER_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub writer_ack_wait: Duration,
    /// Name of the durable consumer the writers share.
    #[arg(long, env = "UDACONNECT_WRITER_CONSUMER", default_value = "writer", value_parser = parse_consumer)]
    pub writer_consumer: String,
    /// Days ahead (UTC) whose partitions (of the locations and of the meetings' positions) the writers create in advance (PostgreSQL; 1 to 366).
    #[arg(long, env = "UDACONNECT_PARTITIONS_AHEAD", default_value = "7", value_parser = parse_days_ahead)]
    pub partitions_ahead: u16,
    /// How long locations and meetings are kept, such as 90days (PostgreSQL; at least 1day): whole days past it are dropped from the locations and the meetings' positions, with their idempotency keys' claims, and the meetings that ended before them are deleted. Unset, everything is kept.
    #[arg(long, env = "UDACONNECT_RETENTION", value_parser = parse_retention)]
    pub retention: Option<Duration>,
    /// How often the writers run the partitioned tables' upkeep (partitions ahead, retention); also at start.
    #[arg(long, env = "UDACONNECT_MAINTENANCE_EVERY", default_value = "1h", value_parser = parse_duration)]
    pub maintenance_every: Duration,
}

/// Settings of the meetings target (see `udaconnect_domain::meeting`).
#[derive(Debug, Clone, Args)]
pub struct MeetingsArgs {
    /// Two persons' locations at most this far apart, metres, may be a meeting (0 to 100).
    #[arg(long, env = "UDACONNECT_MEETINGS_DISTANCE", default_value = "5")]
    pub meetings_distance: f64,
    /// ... and at most this far apart in time (at most 7 days).
    #[arg(long, env = "UDACONNECT_MEETINGS_WITHIN", default_value = "2m", value_parser = parse_duration)]
    pub meetings_within: Duration,
    /// Contacts at most this far apart in time belong to one meeting (at most 7 days).
    #[arg(long, env = "UDACONNECT_MEETINGS_GAP", default_value = "2m", value_parser = parse_duration)]
    pub meetings_gap: Duration,
    /// Most bus messages taken at a time (each of up to UDACONNECT_WRITER_BATCH_ROWS locations), folded in one transaction.
    #[arg(long, env = "UDACONNECT_MEETINGS_FETCH", default_value = "4", value_parser = parse_bounded::<1000>)]
    pub meetings_fetch: usize,
    /// Most locations folded in one transaction (1 to 100000): what a fold holds in memory grows with the meetings its locations start.
    #[arg(long, env = "UDACONNECT_MEETINGS_FOLD_MAX", default_value = "1000", value_parser = parse_bounded::<100_000>)]
    pub meetings_fold_max: usize,
    /// After the first message of a batch, how long to wait for more.
    #[arg(long, env = "UDACONNECT_MEETINGS_LINGER", default_value = "50ms", value_parser = parse_duration)]
    pub meetings_linger: Duration,
    /// A message not acknowledged within this time (a meetings process that died) is delivered to another.
    #[arg(long, env = "UDACONNECT_MEETINGS_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub meetings_ack_wait: Duration,
    /// Name of the durable consumer the meetings processes share; with several shards, each shard's is this name and `-<shard>-of-<shards>`.
    #[arg(long, env = "UDACONNECT_MEETINGS_CONSUMER", default_value = "meetings", value_parser = parse_consumer)]
    pub meetings_consumer: String,
    /// How many shards the meetings' work is cut into by space (1 to 1024): each meetings process folds in the locations of its shard's regions only.
    #[arg(long, env = "UDACONNECT_MEETINGS_SHARDS", default_value = "1")]
    pub meetings_shards: u32,
    /// Which shard this process folds in, from 0 (below UDACONNECT_MEETINGS_SHARDS).
    #[arg(long, env = "UDACONNECT_MEETINGS_SHARD", default_value = "0")]
    pub meetings_shard: u32,
    /// Side of the square regions the shards share, metres (10 to 100000); larger than a venue, so that few crowds straddle a border.
    #[arg(long, env = "UDACONNECT_MEETINGS_REGION", default_value = "500")]
    pub meetings_region: f64,
    /// How often the meetings written are published on the events' stream (MEETINGS).
    #[arg(long, env = "UDACONNECT_MEETINGS_EVENTS_EVERY", default_value = "250ms", value_parser = parse_duration)]
    pub meetings_events_every: Duration,
    /// Most meetings published at a time; past it, the others written meanwhile are not published (counted in udaconnect_meetings_events_missed_total).
    #[arg(long, env = "UDACONNECT_MEETINGS_EVENTS_MAX", default_value = "10000", value_parser = parse_bounded::<1_000_000>)]
    pub meetings_events_max: usize,
    /// With the embedded store, fold the demo conference's own locations into meetings at start (in the background; a few seconds in a release build).
    #[arg(long, env = "UDACONNECT_DEMO_MEETINGS", default_value = "true", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub demo_meetings: bool,
}

impl MeetingsArgs {
    /// This process's shard, checked.
    pub fn shard(&self) -> Result<Shard, ConfigError> {
        Shard::new(
            self.meetings_shard,
            self.meetings_shards,
            self.meetings_region,
        )
        .map_err(|err| {
            let (var, flag) = match err.field {
                "shards" => ("UDACONNECT_MEETINGS_SHARDS", "--meetings-shards"),
                "shard" => ("UDACONNECT_MEETINGS_SHARD", "--meetings-shard"),
                _ => ("UDACONNECT_MEETINGS_REGION", "--meetings-region"),
            };
            ConfigError::new(var, flag, err.message)
        })
    }

    /// The durable consumer of this process's shard, and the family its
    /// name belongs to with every other cut's.
    pub fn consumer(&self) -> (String, &str) {
        let family = self.meetings_consumer.as_str();
        if self.meetings_shards == 1 {
            (family.to_owned(), family)
        } else {
            (
                format!(
                    "{family}-{}-of-{}",
                    self.meetings_shard, self.meetings_shards
                ),
                family,
            )
        }
    }

    /// The rules, checked.
    pub fn rules(&self) -> Result<MeetingRules, ConfigError> {
        let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        MeetingRules::new(
            self.meetings_distance,
            micros(self.meetings_within),
            micros(self.meetings_gap),
        )
        .map_err(|err| {
            let (var, flag) = match err.field {
                "distance" => ("UDACONNECT_MEETINGS_DISTANCE", "--meetings-distance"),
                "within" => ("UDACONNECT_MEETINGS_WITHIN", "--meetings-within"),
                _ => ("UDACONNECT_MEETINGS_GAP", "--meetings-gap"),
            };
            ConfigError::new(var, flag, err.message)
        })
    }
}

/// A checked `udaconnect meetings-backfill`.
#[derive(Debug, Clone)]
pub struct Backfill {
    /// What a meeting is.
    pub rules: MeetingRules,
    /// Which locations it folds in.
    pub shard: Shard,
    /// Where, and how much at a time.
    pub args: BackfillArgs,
}

/// A checked meetings target.
#[derive(Debug, Clone)]
pub struct MeetingsConfig {
    /// What a meeting is.
    pub rules: MeetingRules,
    /// Which locations it folds in.
    pub shard: Shard,
    /// How it consumes.
    pub args: MeetingsArgs,
}

/// Settings of `udaconnect meetings`.
#[derive(Debug, Clone, Args)]
pub struct MeetingsTargetArgs {
    #[command(flatten)]
    pub http: HttpArgs<UdaConnect>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub meetings: MeetingsArgs,
}

/// The demo feed's locations a second when the embedded store is used
/// and `UDACONNECT_DEMO_FEED` is not set.
pub const DEMO_FEED_DEFAULT: f64 = 5.0;
/// The largest `UDACONNECT_DEMO_FEED`.
pub const DEMO_FEED_MAX: f64 = 1_000.0;

/// The embedded demo's live feed.
#[derive(Debug, Clone, Args)]
pub struct DemoFeedArgs {
    /// Locations a second, in all, that the embedded demo's attendees report as they walk between booths, taken by the ingest edge like any client's; 0: none. Only with the embedded store [default: 5 without DATABASE_URL, 0 with it].
    #[arg(long, env = "UDACONNECT_DEMO_FEED", value_parser = parse_feed_rate)]
    pub demo_feed: Option<f64>,
    /// Most locations the demo feed sends before it stops (the embedded store keeps every location in memory).
    #[arg(long, env = "UDACONNECT_DEMO_FEED_LIMIT", default_value = "1000000", value_parser = parse_count)]
    pub demo_feed_limit: usize,
}

/// The demo feed, checked: on, with the embedded store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemoFeedConfig {
    /// Locations a second, more than 0.
    pub rate: f64,
    /// Locations sent in all, at most.
    pub limit: u64,
    /// Where the attendees start and which way they walk.
    pub seed: u64,
}

impl DemoFeedArgs {
    /// The feed for `store`: on by default with the embedded store, never
    /// with PostgreSQL (made-up locations are not written to a database).
    fn config(&self, store: &StoreConfig) -> Result<Option<DemoFeedConfig>, ConfigError> {
        match store {
            StoreConfig::Embedded { seed } => {
                let rate = self.demo_feed.unwrap_or(DEMO_FEED_DEFAULT);
                Ok((rate > 0.0).then(|| DemoFeedConfig {
                    rate,
                    limit: u64::try_from(self.demo_feed_limit).unwrap_or(u64::MAX),
                    seed: *seed,
                }))
            }
            StoreConfig::Postgres { .. } => match self.demo_feed {
                Some(rate) if rate > 0.0 => Err(ConfigError::new(
                    "UDACONNECT_DEMO_FEED",
                    "--demo-feed",
                    "feeds only the embedded store's demo, never a database: unset it, or DATABASE_URL",
                )),
                _ => Ok(None),
            },
        }
    }
}

/// Settings of `udaconnect all`.
#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub writer: WriterArgs,
    #[command(flatten)]
    pub meetings: MeetingsArgs,
    #[command(flatten)]
    pub demo: DemoFeedArgs,
}

/// Settings of `udaconnect ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestTargetArgs {
    #[command(flatten)]
    pub http: HttpArgs<UdaConnect>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// Settings of `udaconnect writer`.
#[derive(Debug, Clone, Args)]
pub struct WriterTargetArgs {
    #[command(flatten)]
    pub http: HttpArgs<UdaConnect>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub bus: BusArgs,
    #[command(flatten)]
    pub writer: WriterArgs,
}

/// Settings of `udaconnect migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// PostgreSQL with PostGIS (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,
    #[command(flatten)]
    pub pg: PgArgs,
}

/// Settings of `udaconnect meetings-backfill`.
#[derive(Debug, Clone, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// PostgreSQL with PostGIS, migrated (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,
    #[command(flatten)]
    pub pg: PgArgs,
    /// Location ids read and folded in at a time, in one transaction (1 to 100,000): bounds each read, each fold and what is held in memory.
    #[arg(long, env = "UDACONNECT_BACKFILL_WINDOW", default_value = "20000", value_parser = parse_bounded::<100_000>)]
    pub window: usize,
    #[command(flatten)]
    pub meetings: MeetingsArgs,
}

/// Settings of `udaconnect generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// PostgreSQL with PostGIS, migrated (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,
    #[command(flatten)]
    pub pg: PgArgs,
    /// Persons to create.
    #[arg(long, env = "UDACONNECT_GENERATE_PERSONS", default_value = "1000", value_parser = parse_count)]
    pub persons: usize,
    /// Locations to create.
    #[arg(long, env = "UDACONNECT_GENERATE_LOCATIONS", default_value = "1000000", value_parser = parse_count)]
    pub locations: usize,
    /// Venues (at least 150 m apart; locations fall in 50 m discs around them).
    #[arg(long, env = "UDACONNECT_GENERATE_VENUES", default_value = "50", value_parser = parse_count)]
    pub venues: usize,
    /// First day of the locations.
    #[arg(long, env = "UDACONNECT_GENERATE_START", default_value = "2020-06-01", value_parser = parse_date)]
    pub start: NaiveDate,
    /// Days the locations span.
    #[arg(long, env = "UDACONNECT_GENERATE_DAYS", default_value = "30", value_parser = parse_days)]
    pub days: u32,
    /// Random seed: the same seed makes the same conference.
    #[arg(long, env = "UDACONNECT_GENERATE_SEED", default_value = "2020")]
    pub seed: u64,
    /// `scatter`: each location at a random place and time; `walk`: attendees walking between spots of the venues, reporting steadily from 09:00 to 18:00 UTC each day (meetings as at a conference).
    #[arg(
        long,
        env = "UDACONNECT_GENERATE_SHAPE",
        default_value = "scatter",
        value_enum
    )]
    pub shape: Shape,
}

/// How `udaconnect generate` lays the locations out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Each at a random place of a venue and a random time.
    Scatter,
    /// Attendees walking between spots of the venues.
    Walk,
}

impl GenerateArgs {
    /// What the generator is asked to make.
    pub fn scale(&self) -> ScaleConfig {
        ScaleConfig {
            persons: self.persons,
            locations: self.locations,
            venues: self.venues,
            start: Timestamp::start_of(self.start),
            days: self.days,
            seed: self.seed,
            ..ScaleConfig::default()
        }
    }
}

fn parse_database_url(input: &str) -> Result<String, String> {
    let url = input.trim();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        Err("expected a URL such as postgres://user:password@127.0.0.1:5432/udaconnect".to_owned())
    }
}

fn parse_bounded<const MAX: u64>(input: &str) -> Result<usize, String> {
    let value = parse_positive(input)?;
    if value > MAX {
        return Err(format!("must be at most {MAX}"));
    }
    usize::try_from(value).map_err(|_| format!("must be at most {MAX}"))
}

fn parse_whole_seconds(input: &str) -> Result<Duration, String> {
    let duration = parse_duration(input)?;
    if duration.subsec_millis() != 0 {
        return Err("must be whole seconds, such as 1s".to_owned());
    }
    Ok(duration)
}

fn parse_days_ahead(input: &str) -> Result<u16, String> {
    let days = parse_bounded::<366>(input)?;
    u16::try_from(days).map_err(|_| "must be at most 366".to_owned())
}

/// Partitions are days: a retention is a day at least (and a century at
/// most, which keeps it a valid interval however it is written).
fn parse_retention(input: &str) -> Result<Duration, String> {
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    let retention = parse_duration(input)?;
    if retention < DAY {
        return Err("must be at least 1day".to_owned());
    }
    if retention > DAY * 36_525 {
        return Err("must be at most 100years".to_owned());
    }
    Ok(retention)
}

fn parse_consumer(input: &str) -> Result<String, String> {
    let name = input.trim();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err("expected 1 to 64 letters, digits, - or _".to_owned())
    }
}

fn parse_count(input: &str) -> Result<usize, String> {
    let count = parse_positive(input)?;
    usize::try_from(count)
        .ok()
        .filter(|count| *count <= 100_000_000)
        .ok_or_else(|| "must be at most 100000000".to_owned())
}

fn parse_feed_rate(input: &str) -> Result<f64, String> {
    let rate: f64 = input
        .trim()
        .parse()
        .map_err(|_| "expected locations a second, such as 5 or 0.5".to_owned())?;
    if !(0.0..=DEMO_FEED_MAX).contains(&rate) {
        return Err(format!("must be from 0 to {DEMO_FEED_MAX}"));
    }
    Ok(rate)
}

fn parse_days(input: &str) -> Result<u32, String> {
    let days = parse_positive(input)?;
    u32::try_from(days)
        .ok()
        .filter(|days| *days <= 366)
        .ok_or_else(|| "must be at most 366".to_owned())
}

fn parse_date(input: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d")
        .map_err(|_| "expected a date such as 2020-06-01".to_owned())
}

/// Where persons and locations are kept, checked.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// PostgreSQL with PostGIS.
    Postgres {
        /// The URL (with its password: never log it).
        url: String,
        /// TLS, pool and statement timeout.
        pg: PgArgs,
        /// Migrate at start.
        migrate: bool,
        /// Answer the connection queries from an in-memory replica.
        replica: bool,
    },
    /// In memory, starting with a demo conference.
    Embedded {
        /// The demo's seed.
        seed: u64,
    },
}

impl StoreArgs {
    fn config(&self) -> StoreConfig {
        match &self.database_url {
            Some(url) => StoreConfig::Postgres {
                url: url.clone(),
                pg: self.pg.clone(),
                migrate: self.migrate,
                replica: self.replica,
            },
            None => StoreConfig::Embedded {
                seed: self.demo_seed,
            },
        }
    }
}

/// The bus, checked: NATS when `nats.nats_url` is set, else in-process.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Where NATS is, if anywhere.
    pub nats: NatsArgs,
    /// The LOCATIONS stream.
    pub locations: StreamSettings,
    /// The dead-letter stream.
    pub dead: StreamSettings,
    /// The stored locations' stream.
    pub stored: StreamSettings,
    /// The meetings' events' stream.
    pub events: StreamSettings,
    /// Who creates the streams: this process, or a provisioning step.
    pub provisioning: Provisioning,
}

impl BusArgs {
    fn config(&self, target: &str, required: bool) -> Result<BusConfig, ConfigError> {
        if required && self.nats.nats_url.is_none() {
            return Err(ConfigError::new(
                "NATS_URL",
                "--nats-url",
                format!("is required by `udaconnect {target}`"),
            ));
        }
        let (locations, dead, stored, events) = (
            self.locations.settings(),
            self.dead.settings(),
            self.stored.settings(),
            self.events.settings(),
        );
        check_streams(&locations, &dead, &stored, &events)?;
        Ok(BusConfig {
            nats: self.nats.clone(),
            locations,
            dead,
            stored,
            events,
            provisioning: if self.create_streams {
                Provisioning::CreateIfMissing
            } else {
                Provisioning::External
            },
        })
    }
}

impl DatabaseArgs {
    fn config(&self) -> StoreConfig {
        StoreConfig::Postgres {
            url: self.database_url.clone(),
            pg: self.pg.clone(),
            migrate: self.migrate,
            replica: false,
        }
    }
}

/// A checked configuration for one serving process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The target's name, for logs.
    pub target: &'static str,
    /// The HTTP server.
    pub http: HttpArgs<UdaConnect>,
    /// Logging.
    pub log: LogArgs,
    /// The store.
    pub store: StoreConfig,
    /// The query API's limits, if it serves the query API.
    pub api: Option<ApiArgs>,
    /// The bus, for the ingest edge and the writer.
    pub bus: Option<BusConfig>,
    /// The ingest edge, if it runs one.
    pub ingest: Option<IngestArgs>,
    /// The writer, if it runs one.
    pub writer: Option<WriterArgs>,
    /// The meetings, if it computes them.
    pub meetings: Option<MeetingsConfig>,
    /// The embedded demo's live feed, if on.
    pub demo_feed: Option<DemoFeedConfig>,
    /// Who may call, for a target serving the API or the edge.
    pub access: Option<AccessConfig>,
}

/// What the process does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Run a long-lived target.
    Serve(Box<Config>),
    /// Migrate the database, then exit.
    Migrate(MigrateArgs),
    /// Fill the database with a made-up conference, then exit.
    Generate(GenerateArgs),
    /// Fold the stored locations the meetings were not computed from into them, then exit.
    MeetingsBackfill(Box<Backfill>),
    /// Send simulated attendees' positions to an edge.
    Simulate(SimulateArgs),
    /// Create or update the streams, then exit.
    Provision(Box<Provision>),
}

impl Cli {
    /// Checks what clap cannot check alone.
    pub fn plan(self) -> Result<Plan, ConfigError> {
        let config = match self.target.unwrap_or(Target::All(self.all)) {
            Target::All(args) => {
                // On the in-process bus no other process can fold the
                // other shards' regions in: their meetings would never be.
                if args.meetings.meetings_shards > 1 && args.bus.nats.nats_url.is_none() {
                    return Err(ConfigError::new(
                        "UDACONNECT_MEETINGS_SHARDS",
                        "--meetings-shards",
                        "must be 1 on the in-process bus (set NATS_URL to share the work)",
                    ));
                }
                let store = args.serve.store.config();
                Config {
                    target: "all",
                    access: Some(args.serve.access.config(&store)),
                    demo_feed: args.demo.config(&store)?,
                    store,
                    http: args.serve.http,
                    log: args.serve.log,
                    api: Some(args.serve.api),
                    bus: Some(args.bus.config("all", false)?),
                    ingest: Some(args.ingest),
                    writer: Some(args.writer),
                    meetings: Some(MeetingsConfig {
                        rules: args.meetings.rules()?,
                        shard: args.meetings.shard()?,
                        args: args.meetings,
                    }),
                }
            }
            Target::Api(args) => Config {
                target: "api",
                demo_feed: None,
                access: Some(args.access.config(&args.store.config())),
                store: args.store.config(),
                http: args.http,
                log: args.log,
                api: Some(args.api),
                bus: None,
                ingest: None,
                writer: None,
                meetings: None,
            },
            Target::Ingest(args) => Config {
                target: "ingest",
                demo_feed: None,
                store: args.database.config(),
                access: Some(args.access.config(&args.database.config())),
                bus: Some(args.bus.config("ingest", true)?),
                http: args.http,
                log: args.log,
                api: None,
                ingest: Some(args.ingest),
                writer: None,
                meetings: None,
            },
            Target::Writer(args) => Config {
                target: "writer",
                demo_feed: None,
                access: None,
                store: args.database.config(),
                bus: Some(args.bus.config("writer", true)?),
                http: args.http,
                log: args.log,
                api: None,
                ingest: None,
                writer: Some(args.writer),
                meetings: None,
            },
            Target::Meetings(args) => Config {
                target: "meetings",
                demo_feed: None,
                access: None,
                store: args.database.config(),
                bus: Some(args.bus.config("meetings", true)?),
                http: args.http,
                log: args.log,
                api: None,
                ingest: None,
                writer: None,
                meetings: Some(MeetingsConfig {
                    rules: args.meetings.rules()?,
                    shard: args.meetings.shard()?,
                    args: args.meetings,
                }),
            },
            Target::Migrate(args) => return Ok(Plan::Migrate(args)),
            Target::Generate(args) => return Ok(Plan::Generate(args)),
            Target::MeetingsBackfill(args) => {
                return Ok(Plan::MeetingsBackfill(Box::new(Backfill {
                    rules: args.meetings.rules()?,
                    shard: args.meetings.shard()?,
                    args,
                })));
            }
            Target::Simulate(args) => return Ok(Plan::Simulate(args)),
            Target::Provision(args) => return Ok(Plan::Provision(Box::new(args.config()?))),
        };
        Ok(Plan::Serve(Box::new(config)))
    }
}

/// Refuses UdaConnect's streams if two would collide.
fn check_streams(
    locations: &StreamSettings,
    dead: &StreamSettings,
    stored: &StreamSettings,
    events: &StreamSettings,
) -> Result<(), ConfigError> {
    streams::check_distinct(&[
        ("UDACONNECT_LOCATIONS", locations),
        ("UDACONNECT_DEAD", dead),
        ("UDACONNECT_STORED", stored),
        ("UDACONNECT_EVENTS", events),
    ])
}

/// The database's address without its credentials, for logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparsable URL)".to_owned();
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let rest = rest.split_once('?').map_or(rest, |(address, _)| address);
    format!("{scheme}://{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_feed_runs_on_the_embedded_demo_only() {
        let feed = |rate: Option<f64>| DemoFeedArgs {
            demo_feed: rate,
            demo_feed_limit: 1_000,
        };
        let embedded = StoreConfig::Embedded { seed: 7 };
        let on = |rate| {
            Some(DemoFeedConfig {
                rate,
                limit: 1_000,
                seed: 7,
            })
        };
        assert_eq!(feed(None).config(&embedded).ok(), Some(on(5.0)));
        assert_eq!(feed(Some(0.5)).config(&embedded).ok(), Some(on(0.5)));
        assert_eq!(feed(Some(0.0)).config(&embedded).ok(), Some(None));
        let postgres = StoreConfig::Postgres {
            url: "postgres://db/x".to_owned(),
            pg: PgArgs {
                pg_sslmode: None,
                pg_sslrootcert: None,
                pg_pool_size: 16,
                pg_statement_timeout: Duration::from_secs(10),
            },
            migrate: true,
            replica: true,
        };
        assert_eq!(feed(None).config(&postgres).ok(), Some(None));
        assert_eq!(feed(Some(0.0)).config(&postgres).ok(), Some(None));
        let refused = feed(Some(5.0))
            .config(&postgres)
            .err()
            .map(|err| err.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|err| err.contains("UDACONNECT_DEMO_FEED")),
            "{refused:?}"
        );
    }

    #[test]
    fn the_demo_feed_rate_is_bounded() {
        assert_eq!(parse_feed_rate("5"), Ok(5.0));
        assert_eq!(parse_feed_rate(" 0.5 "), Ok(0.5));
        assert_eq!(parse_feed_rate("0"), Ok(0.0));
        assert_eq!(parse_feed_rate("1000"), Ok(1000.0));
        for bad in ["-1", "1000.5", "NaN", "inf", "fast", ""] {
            assert!(parse_feed_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retention_is_whole_days_or_more_and_partitions_ahead_bounded() {
        assert_eq!(
            parse_retention("90days"),
            Ok(Duration::from_secs(90 * 24 * 60 * 60))
        );
        assert_eq!(
            parse_retention("1day"),
            Ok(Duration::from_secs(24 * 60 * 60))
        );
        assert!(parse_retention("23h").is_err());
        assert!(parse_retention("200years").is_err());
        assert!(parse_retention("soon").is_err());
        assert_eq!(parse_days_ahead("7"), Ok(7));
        assert_eq!(parse_days_ahead("366"), Ok(366));
        assert!(parse_days_ahead("0").is_err());
        assert!(parse_days_ahead("367").is_err());
    }

    #[test]
    fn database_urls_are_checked_and_never_logged_with_a_password() {
        assert!(parse_database_url("postgres://u:p@h:5432/db").is_ok());
        assert!(parse_database_url("mysql://h/db").is_err());
        assert_eq!(
            redacted("postgres://user:s3cret@db:5432/udaconnect?sslmode=disable"),
            "postgres://db:5432/udaconnect"
        );
        assert_eq!(redacted("postgres://db/x"), "postgres://db/x");
    }
}
