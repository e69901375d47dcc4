//! The gRPC server's limits as settings, named after the application as
//! the HTTP ones are (`UDACONNECT_GRPC_IDLE_TIMEOUT` beside
//! `UDACONNECT_IDLE_TIMEOUT`).

use std::{marker::PhantomData, time::Duration};

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, error::ErrorKind};

use crate::config::{AppNames, parse_duration, parse_positive};

/// Most connections the cap may be set to.
const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;

/// How long gRPC clients may take and how many may connect; see
/// [`super`] for what each limit closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcLimits {
    /// From accept to the first call's headers.
    pub header_timeout: Duration,
    /// A connection with no call open for this long is closed.
    pub idle_timeout: Duration,
    /// A call whose client sends nothing for this long, while the server
    /// waits for its next message, ends with `DEADLINE_EXCEEDED`.
    pub stream_idle_timeout: Duration,
    /// After this long without a frame from the client, the server pings it.
    pub keepalive_interval: Duration,
    /// A ping not answered within this time closes the connection.
    pub keepalive_timeout: Duration,
    /// Time a client has to accept any byte the server writes.
    pub write_timeout: Duration,
    /// Most connections open at once; beyond, new ones are closed at once.
    pub max_connections: usize,
}

/// [`GrpcLimits`] read from env vars and flags; the env vars are named
/// after the application `A` (`UDACONNECT_GRPC_HEADER_TIMEOUT`, ...).
#[derive(Debug, Clone)]
pub struct GrpcArgs<A> {
    limits: GrpcLimits,
    app: PhantomData<A>,
}

impl<A> GrpcArgs<A> {
    /// The limits set.
    pub fn limits(&self) -> GrpcLimits {
        self.limits
    }
}

/// One duration setting: its id (also the flag, with dashes), the end of
/// its env var, its default and its help.
const DURATIONS: [(&str, &str, &str, &str); 6] = [
    (
        "grpc_header_timeout",
        "GRPC_HEADER_TIMEOUT",
        "10s",
        "Time a new gRPC connection has to send the HTTP/2 preface and its first call's headers; a connection that has not is closed",
    ),
    (
        "grpc_idle_timeout",
        "GRPC_IDLE_TIMEOUT",
        "60s",
        "Time a gRPC connection may stay without a call open before it is closed (GOAWAY)",
    ),
    (
        "grpc_stream_idle_timeout",
        "GRPC_STREAM_IDLE_TIMEOUT",
        "60s",
        "Time a gRPC call's client may send nothing while the server waits for its next message; the call then ends with DEADLINE_EXCEEDED",
    ),
    (
        "grpc_keepalive_interval",
        "GRPC_KEEPALIVE_INTERVAL",
        "30s",
        "Time without a frame from a gRPC client after which the server sends it an HTTP/2 ping",
    ),
    (
        "grpc_keepalive_timeout",
        "GRPC_KEEPALIVE_TIMEOUT",
        "10s",
        "Time a gRPC client has to answer a ping before its connection is closed",
    ),
    (
        "grpc_write_timeout",
        "GRPC_WRITE_TIMEOUT",
        "30s",
        "Time a gRPC client has to accept any byte the server writes before its connection is dropped",
    ),
];

impl<A: AppNames> Args for GrpcArgs<A> {
    fn augment_args(command: Command) -> Command {
        let command = DURATIONS
            .iter()
            .fold(command, |command, (id, var, default, help)| {
                command.arg(
                    Arg::new(*id)
                        .long(id.replace('_', "-"))
                        .env(format!("{}_{var}", A::ENV_PREFIX))
                        .default_value(*default)
                        .value_parser(parse_duration)
                        .help(*help),
                )
            });
        command.arg(
            Arg::new("grpc_max_connections")
                .long("grpc-max-connections")
                .env(format!("{}_GRPC_MAX_CONNECTIONS", A::ENV_PREFIX))
                .default_value("10000")
                .value_parser(parse_max_connections)
                .help("Most gRPC connections open at once; beyond, a new connection is closed at once (the HTTP server is not affected)"),
        )
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl<A: AppNames> FromArgMatches for GrpcArgs<A> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let duration = |id: &str| {
            matches.get_one::<Duration>(id).copied().ok_or_else(|| {
                clap::Error::raw(
                    ErrorKind::MissingRequiredArgument,
                    format!("no value for {id}\n"),
                )
            })
        };
        let max_connections = matches
            .get_one::<usize>("grpc_max_connections")
            .copied()
            .ok_or_else(|| {
                clap::Error::raw(
                    ErrorKind::MissingRequiredArgument,
                    "no value for grpc_max_connections\n",
                )
            })?;
        Ok(Self {
            limits: GrpcLimits {
                header_timeout: duration("grpc_header_timeout")?,
                idle_timeout: duration("grpc_idle_timeout")?,
                stream_idle_timeout: duration("grpc_stream_idle_timeout")?,
                keepalive_interval: duration("grpc_keepalive_interval")?,
                keepalive_timeout: duration("grpc_keepalive_timeout")?,
                write_timeout: duration("grpc_write_timeout")?,
                max_connections,
            },
            app: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn parse_max_connections(input: &str) -> Result<usize, String> {
    let count = parse_positive(input)?;
    if count > MAX_CONNECTIONS_LIMIT {
        return Err(format!("must be at most {MAX_CONNECTIONS_LIMIT}"));
    }
    usize::try_from(count).map_err(|_| format!("must be at most {MAX_CONNECTIONS_LIMIT}"))
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Clone)]
    struct Demo;

    impl AppNames for Demo {
        const ENV_PREFIX: &'static str = "DEMO";
        const HTTP_ADDR: &'static str = "127.0.0.1:0";
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        grpc: GrpcArgs<Demo>,
    }

    #[test]
    fn every_limit_has_a_default_and_a_flag() {
        let cli = Cli::try_parse_from(["demo"]).expect("defaults");
        assert_eq!(
            cli.grpc.limits(),
            GrpcLimits {
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                stream_idle_timeout: Duration::from_secs(60),
                keepalive_interval: Duration::from_secs(30),
                keepalive_timeout: Duration::from_secs(10),
                write_timeout: Duration::from_secs(30),
                max_connections: 10_000,
            }
        );
        let cli = Cli::try_parse_from([
            "demo",
            "--grpc-stream-idle-timeout",
            "250ms",
            "--grpc-max-connections",
            "3",
        ])
        .expect("set");
        assert_eq!(
            cli.grpc.limits().stream_idle_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(cli.grpc.limits().max_connections, 3);
        assert!(Cli::try_parse_from(["demo", "--grpc-max-connections", "0"]).is_err());
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("DEMO_GRPC_IDLE_TIMEOUT"), "{help}");
    }
}
