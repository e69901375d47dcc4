//! `beacon [all|broadcaster|receiver|provision]`: parse and check the configuration
//! (a bad value exits 2 with one line naming it), then serve until SIGTERM, or
//! provision the stream and exit.

use std::time::Duration;

use beacon::{Application, Cli, cli::Plan};
use platform::{
    bus,
    config::{exit_with, parse_args_or_exit},
    limits, shutdown, telemetry,
};

/// What the runtime's teardown may add to the shutdown deadline: blocking
/// work still running then (a DNS lookup of a broker that does not answer)
/// is abandoned, not waited for.
const TEARDOWN: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(run());
    runtime.shutdown_timeout(TEARDOWN);
    outcome
}

async fn run() -> anyhow::Result<()> {
    let cli: Cli = parse_args_or_exit();
    match cli.plan().unwrap_or_else(|err| exit_with(&err)) {
        Plan::Serve(config) => {
            telemetry::init(&config.log);
            // Each client is an open file: allow as many as the operator's
            // hard limit, not the usual soft default of 1024.
            match limits::raise_open_files_limit() {
                Ok(limit) => {
                    tracing::info!(soft = limit.soft, hard = limit.hard, "open files limit")
                }
                Err(err) => tracing::warn!(error = %err, "cannot raise the open files limit"),
            }
            let app = Application::build(*config)
                .await
                .unwrap_or_else(|err| exit_with(&err));
            app.run_until_stopped(shutdown::on_signal()).await?;
        }
        Plan::Provision(provision) => {
            telemetry::init(&provision.log);
            let streams = std::slice::from_ref(&provision.stream);
            let shutdown = shutdown::on_signal();
            if !bus::provision(
                &provision.urls,
                &provision.nats,
                "beacon-provision",
                streams,
                &shutdown,
            )
            .await
            {
                anyhow::bail!("stopped before the stream was provisioned");
            }
        }
    }
    Ok(())
}
