//! Bad settings: exit code 2 and one line on stderr naming the variable.

use std::process::Command;

use testkit::output_within;

use super::helpers::{BEACON, PATIENCE};

/// Runs `beacon <args>` with only `envs` set; returns the exit code and stderr.
fn run(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    // A configuration accepted by mistake would serve forever: bounded.
    let output = output_within(
        Command::new(BEACON)
            .args(args)
            .env_clear()
            .envs(envs.iter().copied()),
        PATIENCE,
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code(), stderr)
}

fn assert_refused(args: &[&str], envs: &[(&str, &str)], var: &str, mention: &str) {
    let (code, stderr) = run(args, envs);
    assert_eq!(
        code,
        Some(2),
        "{args:?} {envs:?} should exit 2; stderr: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
    assert!(stderr.contains(var), "{stderr} should name {var}");
    assert!(
        stderr.contains(mention),
        "{stderr} should mention {mention:?}"
    );
}

#[test]
fn unparsable_durations() {
    assert_refused(
        &[],
        &[("BEACON_MIN_INTERVAL", "soon")],
        "BEACON_MIN_INTERVAL",
        "soon",
    );
    assert_refused(
        &[],
        &[("BEACON_MAX_INTERVAL", "10")],
        "BEACON_MAX_INTERVAL",
        "duration",
    );
    assert_refused(&["--min-interval", "1x"], &[], "BEACON_MIN_INTERVAL", "1x");
    assert_refused(
        &[],
        &[("BEACON_SHUTDOWN_TIMEOUT", "later")],
        "BEACON_SHUTDOWN_TIMEOUT",
        "later",
    );
}

#[test]
fn connection_limits() {
    for var in [
        "BEACON_HEADER_TIMEOUT",
        "BEACON_IDLE_TIMEOUT",
        "BEACON_WRITE_TIMEOUT",
    ] {
        assert_refused(&[], &[(var, "soon")], var, "soon");
        assert_refused(&[], &[(var, "0s")], var, "greater than zero");
    }
    assert_refused(
        &["--write-timeout=-1s"],
        &[],
        "BEACON_WRITE_TIMEOUT",
        "positive",
    );
    assert_refused(
        &[],
        &[("BEACON_MAX_CLIENTS", "0")],
        "BEACON_MAX_CLIENTS",
        "at least 1",
    );
    assert_refused(
        &["receiver"],
        &[
            ("NATS_URL", "nats://127.0.0.1:1"),
            ("BEACON_MAX_CLIENTS", "many"),
        ],
        "BEACON_MAX_CLIENTS",
        "whole number",
    );
    for prefix in ["_INBOX.>", "_INBOX..x", "_INBOX.", "a b"] {
        assert_refused(
            &[],
            &[("NATS_INBOX_PREFIX", prefix)],
            "NATS_INBOX_PREFIX",
            "NATS_INBOX_PREFIX",
        );
    }
}

#[test]
fn zero_and_negative_durations() {
    assert_refused(
        &[],
        &[("BEACON_MIN_INTERVAL", "0ms")],
        "BEACON_MIN_INTERVAL",
        "greater than zero",
    );
    assert_refused(
        &[],
        &[("BEACON_MAX_INTERVAL", "-3s")],
        "BEACON_MAX_INTERVAL",
        "positive",
    );
}

#[test]
fn min_greater_than_max() {
    assert_refused(
        &[],
        &[("BEACON_MIN_INTERVAL", "5s"), ("BEACON_MAX_INTERVAL", "2s")],
        "BEACON_MIN_INTERVAL",
        "BEACON_MAX_INTERVAL",
    );
    assert_refused(
        &[
            "broadcaster",
            "--min-interval",
            "30ms",
            "--max-interval",
            "20ms",
        ],
        &[("NATS_URL", "nats://127.0.0.1:1")],
        "BEACON_MIN_INTERVAL",
        "20ms",
    );
}

#[test]
fn unusable_addresses() {
    assert_refused(
        &[],
        &[("BEACON_HTTP_ADDR", "localhost")],
        "BEACON_HTTP_ADDR",
        "IP:port",
    );
    // A documentation address: valid syntax, but not on this machine.
    assert_refused(
        &[],
        &[("BEACON_HTTP_ADDR", "192.0.2.1:8080")],
        "BEACON_HTTP_ADDR",
        "cannot listen",
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    assert_refused(
        &[],
        &[("BEACON_HTTP_ADDR", &addr)],
        "BEACON_HTTP_ADDR",
        "cannot listen",
    );
}

#[test]
fn other_settings() {
    assert_refused(&[], &[("LOG_FORMAT", "xml")], "LOG_FORMAT", "json");
    assert_refused(&[], &[("RUST_LOG", "info,[")], "RUST_LOG", "filter");
    assert_refused(
        &[],
        &[("BEACON_WINDOW", "0")],
        "BEACON_WINDOW",
        "at least 1",
    );
    assert_refused(&[], &[("BEACON_MESSAGE", "  ")], "BEACON_MESSAGE", "empty");
    assert_refused(
        &[],
        &[("NATS_URL", "http://nats:4222")],
        "NATS_URL",
        "nats://",
    );
    assert_refused(
        &[],
        &[("BEACON_SUBJECT", "beacon.*")],
        "BEACON_SUBJECT",
        "wildcards",
    );
    assert_refused(
        &[],
        &[("BEACON_STREAM_REPLICAS", "2")],
        "BEACON_STREAM_REPLICAS",
        "1, 3 or 5",
    );
}

#[test]
fn the_split_targets_need_nats() {
    assert_refused(&["receiver"], &[], "NATS_URL", "receiver");
    assert_refused(&["broadcaster"], &[], "NATS_URL", "broadcaster");
    assert_refused(&["provision"], &[], "NATS_URL", "provision");
}

#[test]
fn help_is_not_an_error() {
    let (code, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    let output = output_within(Command::new(BEACON).args(["receiver", "--help"]), PATIENCE);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        help.contains("NATS_URL") && help.contains("BEACON_WINDOW"),
        "{help}"
    );
}
