//! `make bench-fanout` in small: the whole run (broker, receivers, worker
//! processes, publishing, the RESULT line) with 40 clients per transport.
//! Nothing here is timed; it checks that every client got every message.

use std::{path::Path, process::Command, time::Duration};

use serde_json::Value;
use testkit::output_within;

fn run(transport: &str) -> Value {
    let loadgen = Path::new(env!("CARGO_BIN_EXE_beacon-fanout-bench"));
    let beacon = loadgen.with_file_name("beacon");
    assert!(
        beacon.is_file(),
        "{} is missing: build the workspace (cargo build --workspace)",
        beacon.display()
    );
    let mut command = Command::new(loadgen);
    command
        .env("BENCH_CLIENTS", "40")
        .env("BENCH_CLIENTS_PER_WORKER", "15")
        .env("BENCH_RECEIVERS", "2")
        .env("BENCH_RATE", "20")
        .env("BENCH_SECONDS", "1")
        .env("BENCH_TRANSPORT", transport)
        .env("BENCH_OUTPUT", "-")
        .env("BENCH_BEACON", &beacon);
    let output = output_within(&mut command, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "beacon-fanout-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let json = last
        .strip_prefix("RESULT ")
        .unwrap_or_else(|| panic!("the last line is not a RESULT: {stdout}"));
    serde_json::from_str(json).expect("RESULT holds JSON")
}

fn check(result: &Value, transport: &str) {
    assert_eq!(result["transport"], transport);
    assert_eq!(result["clients"], 40, "{result}");
    assert_eq!(result["receivers"], 2);
    assert_eq!(result["messages"], 20);
    assert_eq!(result["complete_clients"], 40, "{result}");
    assert_eq!(result["deliveries_per_s"], 40.0 * 20.0, "{result}");
    assert!(
        result["p50_ms"].as_f64().is_some_and(|p50| p50 > 0.0),
        "{result}"
    );
    assert!(
        result["receiver_rss_mb"]
            .as_f64()
            .is_some_and(|rss| rss > 0.0)
    );
}

#[test]
fn every_sse_client_gets_every_message() {
    check(&run("sse"), "sse");
}

#[test]
fn every_websocket_client_gets_every_message() {
    check(&run("ws"), "ws");
}
