//! `udaconnect [all|api|ingest|writer|meetings|simulate|migrate|generate|meetings-backfill|provision]`: parse and check the
//! configuration (a bad value exits 2 with one line naming it), then serve
//! until SIGTERM, or do the one-shot job and exit.

use platform::{
    bus,
    config::{exit_with, parse_args_or_exit},
    limits, shutdown, telemetry,
};
use udaconnect::{Application, Cli, cli::Plan, tools};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = parse_args_or_exit();
    match cli.plan().unwrap_or_else(|err| exit_with(&err)) {
        Plan::Serve(config) => {
            telemetry::init(&config.log);
            if let Err(err) = limits::raise_open_files_limit() {
                tracing::warn!(error = %err, "cannot raise the open files limit");
            }
            let app = Application::build(*config)
                .await
                .unwrap_or_else(|err| exit_with(&err));
            app.run_until_stopped(shutdown::on_signal()).await?;
        }
        Plan::Migrate(args) => {
            telemetry::init(&args.log);
            tools::migrate(&args, shutdown::on_signal()).await?;
        }
        Plan::Generate(args) => {
            telemetry::init(&args.log);
            tools::generate(&args).await?;
        }
        Plan::MeetingsBackfill(backfill) => {
            telemetry::init(&backfill.args.log);
            tools::backfill_meetings(&backfill, shutdown::on_signal()).await?;
        }
        Plan::Simulate(args) => {
            telemetry::init(&args.log);
            let report = udaconnect::simulate::run(&args, shutdown::on_signal()).await?;
            println!("SUMMARY {}", report.to_json());
        }
        Plan::Provision(config) => {
            telemetry::init(&config.log);
            let shutdown = shutdown::on_signal();
            if !bus::provision(
                &config.urls,
                &config.nats,
                "udaconnect-provision",
                &config.streams,
                &shutdown,
            )
            .await
            {
                anyhow::bail!("stopped before the streams were provisioned");
            }
        }
    }
    Ok(())
}
