//! What a stream is called and keeps, and how each application names the
//! settings of its streams.
//!
//! An application declares each of its streams once, as a [`StreamSpec`]:
//! the stream's default name and subject, its retention, and the prefixes of
//! its env vars and flags. [`StreamArgs<S>`] turns that into command-line
//! settings (`BEACON_STREAM`/`--stream` for Beacon's hello stream,
//! `UDACONNECT_LOCATIONS_STREAM`/`--locations-stream` for another app's),
//! and [`StreamArgs::settings`] into the [`StreamSettings`] the bus uses.

use std::{fmt, marker::PhantomData, time::Duration};

use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, error::ErrorKind};

use crate::config::{parse_duration, parse_positive};

/// What the stream is for, which decides what happens when it is full and
/// when a message is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// A replayable history: every reader sees every message; the oldest go
    /// once the stream reaches its age or count limit.
    Log,
    /// Work to be done once: a message goes when a consumer acknowledges
    /// it; a full stream refuses new messages instead of dropping old ones.
    WorkQueue,
}

/// One stream as the bus creates and reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The JetStream stream name.
    pub name: String,
    /// The subject it captures, which messages are published on.
    pub subject: String,
    /// Messages older than this are removed.
    pub max_age: Duration,
    /// At most this many messages are kept.
    pub max_messages: u64,
    /// Copies kept by a NATS cluster.
    pub replicas: usize,
    /// What it is for.
    pub retention: Retention,
}

impl StreamSettings {
    /// A replayable history keeping a day's worth, at most `max_messages`,
    /// on one server.
    pub fn log(name: &str, subject: &str, max_messages: u64) -> Self {
        Self {
            name: name.to_owned(),
            subject: subject.to_owned(),
            max_age: Duration::from_secs(24 * 3600),
            max_messages,
            replicas: 1,
            retention: Retention::Log,
        }
    }
}

/// An application's declaration of one of its streams.
pub trait StreamSpec: fmt::Debug + Clone + Send + Sync + 'static {
    /// Env var prefix: `BEACON` gives `BEACON_STREAM`, `BEACON_SUBJECT`,
    /// `BEACON_STREAM_MAX_AGE`, ...
    const ENV_PREFIX: &'static str;
    /// Flag prefix: `""` gives `--stream`, `--subject`,
    /// `--stream-max-age`; `"locations-"` gives `--locations-stream`, ...
    const FLAG_PREFIX: &'static str;
    /// What the stream holds, for `--help` (e.g. "the hello messages").
    const HOLDS: &'static str;
    /// Default stream name.
    const NAME: &'static str;
    /// Default subject.
    const SUBJECT: &'static str;
    /// Default maximum age (`24h`).
    const MAX_AGE: &'static str;
    /// Default maximum count.
    const MAX_MESSAGES: &'static str;
    /// What the stream is for.
    const RETENTION: Retention;
}

/// The settings of the stream `S` declares, read from env vars and flags.
#[derive(Debug, Clone)]
pub struct StreamArgs<S> {
    /// JetStream stream name.
    pub stream: String,
    /// Subject the messages are published on.
    pub subject: String,
    /// Messages older than this are removed from the stream.
    pub stream_max_age: Duration,
    /// The stream keeps at most this many messages.
    pub stream_max_messages: u64,
    /// Copies of the stream kept by a NATS cluster (1, 3 or 5).
    pub stream_replicas: usize,
    spec: PhantomData<S>,
}

impl<S: StreamSpec> StreamArgs<S> {
    /// What the bus needs to create and read the stream.
    pub fn settings(&self) -> StreamSettings {
        StreamSettings {
            name: self.stream.clone(),
            subject: self.subject.clone(),
            max_age: self.stream_max_age,
            max_messages: self.stream_max_messages,
            replicas: self.stream_replicas,
            retention: S::RETENTION,
        }
    }

    /// The argument ids, unique per stream so that several streams'
    /// settings sit side by side in one command.
    fn id(field: &str) -> String {
        format!("{}{field}", S::FLAG_PREFIX.replace('-', "_"))
    }

    fn env(name: &str) -> String {
        format!("{}_{name}", S::ENV_PREFIX)
    }

    fn flag(name: &str) -> String {
        format!("{}{name}", S::FLAG_PREFIX)
    }
}

impl<S: StreamSpec> Args for StreamArgs<S> {
    fn augment_args(command: Command) -> Command {
        command
            .arg(
                Arg::new(Self::id("stream"))
                    .long(Self::flag("stream"))
                    .env(Self::env("STREAM"))
                    .default_value(S::NAME)
                    .value_parser(parse_stream_name)
                    .help(format!("JetStream stream holding {}", S::HOLDS)),
            )
            .arg(
                Arg::new(Self::id("subject"))
                    .long(Self::flag("subject"))
                    .env(Self::env("SUBJECT"))
                    .default_value(S::SUBJECT)
                    .value_parser(parse_subject)
                    .help(format!("Subject {} are published on", S::HOLDS)),
            )
            .arg(
                Arg::new(Self::id("stream_max_age"))
                    .long(Self::flag("stream-max-age"))
                    .env(Self::env("STREAM_MAX_AGE"))
                    .default_value(S::MAX_AGE)
                    .value_parser(parse_duration)
                    .help("Messages older than this are removed from the stream"),
            )
            .arg(
                Arg::new(Self::id("stream_max_messages"))
                    .long(Self::flag("stream-max-messages"))
                    .env(Self::env("STREAM_MAX_MESSAGES"))
                    .default_value(S::MAX_MESSAGES)
                    .value_parser(parse_positive)
                    .help(match S::RETENTION {
                        Retention::Log => {
                            "The stream keeps at most this many messages, removing the oldest"
                        }
                        Retention::WorkQueue => {
                            "The stream holds at most this many messages; beyond, publishes are refused"
                        }
                    }),
            )
            .arg(
                Arg::new(Self::id("stream_replicas"))
                    .long(Self::flag("stream-replicas"))
                    .env(Self::env("STREAM_REPLICAS"))
                    .default_value("1")
                    .value_parser(parse_replicas)
                    .help("Copies of the stream kept by a NATS cluster (1, 3 or 5)"),
            )
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl<S: StreamSpec> FromArgMatches for StreamArgs<S> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        fn value<T: Clone + Send + Sync + 'static>(
            matches: &ArgMatches,
            id: &str,
        ) -> Result<T, clap::Error> {
            matches.get_one::<T>(id).cloned().ok_or_else(|| {
                clap::Error::raw(
                    ErrorKind::MissingRequiredArgument,
                    format!("no value for {id}\n"),
                )
            })
        }
        Ok(Self {
            stream: value(matches, &Self::id("stream"))?,
            subject: value(matches, &Self::id("subject"))?,
            stream_max_age: value(matches, &Self::id("stream_max_age"))?,
            stream_max_messages: value(matches, &Self::id("stream_max_messages"))?,
            stream_replicas: value(matches, &Self::id("stream_replicas"))?,
            spec: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn parse_stream_name(input: &str) -> Result<String, String> {
    let name = input.trim();
    if name.is_empty() || name.len() > 255 {
        return Err("must be 1 to 255 characters".to_owned());
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err("must not contain whitespace or any of . * > / \\".to_owned());
    }
    Ok(name.to_owned())
}

fn parse_subject(input: &str) -> Result<String, String> {
    let subject = input.trim();
    let valid = !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty()
                && !token
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '*' | '>'))
        });
    if valid {
        Ok(subject.to_owned())
    } else {
        Err(
            "expected dot-separated tokens without spaces or wildcards, such as beacon.hello"
                .to_owned(),
        )
    }
}

fn parse_replicas(input: &str) -> Result<usize, String> {
    match input.trim().parse::<usize>() {
        Ok(replicas @ (1 | 3 | 5)) => Ok(replicas),
        _ => Err("must be 1, 3 or 5".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{ArgsError, parse_args};

    #[derive(Debug, Clone)]
    struct Jobs;

    impl StreamSpec for Jobs {
        const ENV_PREFIX: &'static str = "DEMO_JOBS";
        const FLAG_PREFIX: &'static str = "jobs-";
        const HOLDS: &'static str = "the jobs";
        const NAME: &'static str = "JOBS";
        const SUBJECT: &'static str = "demo.jobs";
        const MAX_AGE: &'static str = "1h";
        const MAX_MESSAGES: &'static str = "500";
        const RETENTION: Retention = Retention::WorkQueue;
    }

    #[derive(Debug, Clone)]
    struct Log;

    impl StreamSpec for Log {
        const ENV_PREFIX: &'static str = "DEMO";
        const FLAG_PREFIX: &'static str = "";
        const HOLDS: &'static str = "the log";
        const NAME: &'static str = "LOG";
        const SUBJECT: &'static str = "demo.log";
        const MAX_AGE: &'static str = "24h";
        const MAX_MESSAGES: &'static str = "1000";
        const RETENTION: Retention = Retention::Log;
    }

    #[derive(Debug, Parser)]
    struct Demo {
        #[command(flatten)]
        jobs: StreamArgs<Jobs>,
        #[command(flatten)]
        log: StreamArgs<Log>,
    }

    #[test]
    fn two_streams_side_by_side_with_their_defaults() {
        let Ok(demo) =
            parse_args::<Demo, _, _>(["demo", "--jobs-stream", "WORK", "--subject", "a.b"])
        else {
            panic!("valid arguments");
        };
        let jobs = demo.jobs.settings();
        assert_eq!(jobs.name, "WORK");
        assert_eq!(jobs.subject, "demo.jobs");
        assert_eq!(jobs.max_age, Duration::from_secs(3600));
        assert_eq!(jobs.max_messages, 500);
        assert_eq!(jobs.retention, Retention::WorkQueue);
        let log = demo.log.settings();
        assert_eq!((log.name.as_str(), log.subject.as_str()), ("LOG", "a.b"));
        assert_eq!(log.retention, Retention::Log);
    }

    #[test]
    fn a_bad_value_names_the_stream_setting() {
        let Err(ArgsError::Invalid(err)) =
            parse_args::<Demo, _, _>(["demo", "--jobs-stream-replicas", "2"])
        else {
            panic!("refused");
        };
        assert_eq!(err.var, "DEMO_JOBS_STREAM_REPLICAS");
        assert_eq!(err.flag, "--jobs-stream-replicas");
        assert!(err.problem.contains("1, 3 or 5"), "{err}");
    }

    #[test]
    fn names_and_subjects_are_checked() {
        assert!(parse_stream_name("HELLO").is_ok());
        assert!(parse_stream_name("HEL.LO").is_err());
        assert!(parse_subject("beacon.hello").is_ok());
        assert!(parse_subject("beacon.*").is_err());
        assert!(parse_subject("beacon..hello").is_err());
        assert_eq!(parse_replicas("3"), Ok(3));
        assert!(parse_replicas("2").is_err());
    }
}
