//! `beacon [all|broadcaster|receiver]`: parse and check the configuration
//! (a bad value exits 2 with one line naming it), then run until SIGTERM.

use beacon::{Application, Cli};
use beacon_platform::{
    config::{exit_with, parse_args_or_exit},
    shutdown, telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = parse_args_or_exit();
    let config = cli.config().unwrap_or_else(|err| exit_with(&err));
    telemetry::init(&config.log);
    let app = Application::build(config)
        .await
        .unwrap_or_else(|err| exit_with(&err));
    app.run_until_stopped(shutdown::on_signal()).await?;
    Ok(())
}
