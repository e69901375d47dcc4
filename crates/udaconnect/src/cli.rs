//! The command line: which target to run and every setting, each an env var
//! that is also a flag. `udaconnect` alone runs `all`.

use beacon_platform::{
    config::{AppNames, ConfigError, parse_positive},
    http::HttpArgs,
    telemetry::LogArgs,
};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use udaconnect_connect::{Timestamp, conference::ScaleConfig};

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
    pub all: ServeArgs,
}

/// What a process runs.
#[derive(Debug, Subcommand)]
pub enum Target {
    /// Everything in one process; the embedded store with a demo conference unless DATABASE_URL is set.
    All(ServeArgs),
    /// The HTTP API (the original's under /api, v2 under /api/v2) and its documentation.
    Api(ServeArgs),
    /// Brings the database's schema up to date (a database created by the original too), then exits.
    Migrate(MigrateArgs),
    /// Writes a made-up conference of the given size into the database, then exits.
    Generate(GenerateArgs),
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

    /// Seed of the demo conference the embedded store starts with.
    #[arg(long, env = "UDACONNECT_DEMO_SEED", default_value = "1")]
    pub demo_seed: u64,
}

/// What the API answers at most.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The most rows the original's connection endpoint answers; beyond, it asks for a narrower question.
    #[arg(long, env = "UDACONNECT_COMPAT_MAX_ROWS", default_value = "1000000", value_parser = parse_count)]
    pub compat_max_rows: usize,
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
}

/// Settings of `udaconnect migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// PostgreSQL with PostGIS (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,
}

/// Settings of `udaconnect generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// PostgreSQL with PostGIS, migrated (`postgres://user:password@host:5432/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_database_url)]
    pub database_url: String,
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

fn parse_count(input: &str) -> Result<usize, String> {
    let count = parse_positive(input)?;
    usize::try_from(count)
        .ok()
        .filter(|count| *count <= 100_000_000)
        .ok_or_else(|| "must be at most 100000000".to_owned())
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
        /// Migrate at start.
        migrate: bool,
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
                migrate: self.migrate,
            },
            None => StoreConfig::Embedded {
                seed: self.demo_seed,
            },
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
    /// What the API answers at most.
    pub api: ApiArgs,
}

/// What the process does.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Run a long-lived target.
    Serve(Config),
    /// Migrate the database, then exit.
    Migrate(MigrateArgs),
    /// Fill the database with a made-up conference, then exit.
    Generate(GenerateArgs),
}

impl Cli {
    /// Checks what clap cannot check alone.
    pub fn plan(self) -> Result<Plan, ConfigError> {
        let (target, args) = match self.target.unwrap_or(Target::All(self.all)) {
            Target::All(args) => ("all", args),
            Target::Api(args) => ("api", args),
            Target::Migrate(args) => return Ok(Plan::Migrate(args)),
            Target::Generate(args) => return Ok(Plan::Generate(args)),
        };
        Ok(Plan::Serve(Config {
            target,
            store: args.store.config(),
            api: args.api,
            http: args.http,
            log: args.log,
        }))
    }
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
