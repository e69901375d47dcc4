//! Configuration parsing shared by every target: typed values from env vars
//! and flags, and the one-line error an operator gets for a bad one.
//!
//! Every setting is an env var that is also a CLI flag (clap's `env`). Values
//! are parsed and cross-checked before anything starts; a bad value ends the
//! process with [`EXIT_USAGE`] and a single line on stderr that names the
//! variable, so that `kubectl logs` of a crash-looping pod says what to fix.

use std::{error::Error as _, ffi::OsString, fmt, net::SocketAddr, time::Duration};

use clap::{
    Command, Parser,
    error::{ContextKind, ContextValue, ErrorKind},
};

/// Exit code for invalid configuration, as for any usage error.
pub const EXIT_USAGE: i32 = 2;

/// How an application on the platform names the settings every service
/// has (listen address, shutdown deadline): `BEACON_HTTP_ADDR` for one app,
/// `UDACONNECT_HTTP_ADDR` for another, with the same flags.
pub trait AppNames: fmt::Debug + Clone + Send + Sync + 'static {
    /// Prefix of the env vars: `BEACON` gives `BEACON_HTTP_ADDR`.
    const ENV_PREFIX: &'static str;
    /// Where the app listens unless told otherwise.
    const HTTP_ADDR: &'static str;
}

/// A setting that cannot be used, named by its env var and its flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The env var, e.g. `BEACON_MIN_INTERVAL`.
    pub var: String,
    /// The flag, e.g. `--min-interval`.
    pub flag: String,
    /// What is wrong, without the names.
    pub problem: String,
}

impl ConfigError {
    /// A problem with the setting read from env var `var` or flag `flag`.
    pub fn new(var: &str, flag: &str, problem: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            flag: flag.to_owned(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.var.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{} ({}): {}", self.var, self.flag, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Parses the process arguments (and env) into `T`. Help and version are
/// printed as clap renders them; anything invalid becomes one line on stderr
/// and exit code [`EXIT_USAGE`].
pub fn parse_args_or_exit<T: Parser>() -> T {
    match parse_args(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(ArgsError::Display(err)) => err.exit(),
        Err(ArgsError::Invalid(err)) => exit_with(&err),
    }
}

/// Prints `err` as the single line operators see and exits with [`EXIT_USAGE`].
pub fn exit_with(err: &ConfigError) -> ! {
    eprintln!("{}: {err}", bin_name());
    std::process::exit(EXIT_USAGE)
}

fn bin_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .and_then(|arg| std::path::Path::new(arg).file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "this program".to_owned())
}

/// Why arguments were not turned into a configuration.
#[derive(Debug)]
pub enum ArgsError {
    /// `--help` or `--version`: not an error, print it and exit 0.
    Display(clap::Error),
    /// A value that cannot be used.
    Invalid(ConfigError),
}

/// Parses `args` (the first one is the program name) and the environment.
pub fn parse_args<T, I, A>(args: I) -> Result<T, ArgsError>
where
    T: Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    T::try_parse_from(args).map_err(|err| match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ArgsError::Display(err),
        _ => ArgsError::Invalid(describe(&err, &T::command())),
    })
}

/// Turns clap's multi-line error into a [`ConfigError`] naming the env var.
fn describe(err: &clap::Error, command: &Command) -> ConfigError {
    let flags: Vec<String> = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => vec![arg.clone()],
        Some(ContextValue::Strings(args)) => args.clone(),
        _ => Vec::new(),
    };
    let Some(first) = flags.first() else {
        return ConfigError::new("", "", first_line(err));
    };
    let flag = long_flag(first).unwrap_or(first.as_str());
    let var = env_var_for(command, flag).unwrap_or_default();
    let problem = match err.kind() {
        ErrorKind::MissingRequiredArgument => "is required but not set".to_owned(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = match err.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(value)) => value.as_str(),
                _ => "",
            };
            let reason = match (err.source(), err.get(ContextKind::ValidValue)) {
                (Some(source), _) => source.to_string(),
                (None, Some(ContextValue::Strings(valid))) => {
                    format!("expected one of: {}", valid.join(", "))
                }
                _ => first_line(err),
            };
            format!("invalid value {value:?}: {reason}")
        }
        _ => first_line(err),
    };
    if var.is_empty() {
        return ConfigError::new("", "", format!("{flag}: {problem}"));
    }
    ConfigError::new(&var, flag, problem)
}

/// `--min-interval <BEACON_MIN_INTERVAL>` → `--min-interval`.
fn long_flag(rendered: &str) -> Option<&str> {
    rendered
        .split_whitespace()
        .find(|word| word.starts_with("--"))
}

fn env_var_for(command: &Command, flag: &str) -> Option<String> {
    let long = flag.trim_start_matches("--");
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|var| var.to_string_lossy().into_owned())
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| env_var_for(sub, flag))
        })
}

fn first_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let line = rendered.lines().next().unwrap_or_default();
    line.trim_start_matches("error: ").to_owned()
}

/// Parses a positive duration such as `250ms`, `10s` or `1m 30s`, to the
/// millisecond. Zero, negative, fractional-millisecond and unparsable values
/// are refused with a reason an operator can act on.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let trimmed = input.trim();
    if trimmed.starts_with('-') {
        return Err("must be positive".to_owned());
    }
    let duration = humantime::parse_duration(trimmed)
        .map_err(|_| "expected a duration such as 250ms, 10s or 1m".to_owned())?;
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err("must be a whole number of milliseconds".to_owned());
    }
    Ok(duration)
}

/// Parses `IP:port` for a listening socket (`0.0.0.0:8080`, `[::1]:0`).
pub fn parse_socket_addr(input: &str) -> Result<SocketAddr, String> {
    input
        .trim()
        .parse()
        .map_err(|_| "expected IP:port, such as 127.0.0.1:8080 or 0.0.0.0:8080".to_owned())
}

/// Parses a count that must be at least 1.
pub fn parse_positive(input: &str) -> Result<u64, String> {
    match input.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(value) => Ok(value),
        Err(_) => Err("expected a whole number such as 1000".to_owned()),
    }
}

/// Parses a non-empty text, trimmed of surrounding whitespace, of at most
/// `max` bytes.
pub fn parse_text(input: &str, max: usize) -> Result<String, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if text.len() > max {
        return Err(format!("must be at most {max} bytes, got {}", text.len()));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, env = "DEMO_DELAY", value_parser = parse_duration, default_value = "1s")]
        delay: Duration,
        #[arg(long, env = "DEMO_FORMAT", value_parser = ["json", "plain"], default_value = "plain")]
        format: String,
        #[arg(long = "url", env = "DEMO_URL")]
        url: String,
    }

    fn invalid(args: &[&str]) -> ConfigError {
        match parse_args::<Demo, _, _>(args.iter().copied()) {
            Err(ArgsError::Invalid(err)) => err,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn durations_to_the_millisecond() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1500us").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_flag() {
        let err = invalid(&["demo", "--url", "x", "--delay", "soon"]);
        assert_eq!(err.var, "DEMO_DELAY");
        assert_eq!(err.flag, "--delay");
        assert!(err.problem.contains("\"soon\""), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }

    #[test]
    fn a_value_outside_the_choices_lists_them() {
        let err = invalid(&["demo", "--url", "x", "--format", "xml"]);
        assert_eq!(err.var, "DEMO_FORMAT");
        assert!(err.problem.contains("json, plain"), "{err}");
    }

    #[test]
    fn a_missing_value_names_the_variable() {
        let err = invalid(&["demo"]);
        assert_eq!(err.var, "DEMO_URL");
        assert!(err.problem.contains("required"), "{err}");
    }

    #[test]
    fn an_unknown_flag_is_one_line() {
        let err = invalid(&["demo", "--url", "x", "--nope"]);
        assert!(err.to_string().contains("--nope"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
