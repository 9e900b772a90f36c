//! `loadgen`: parse the command line, run the load, print the table, exit 0 when every created
//! order ended as intended and 1 otherwise (or when the run could not be made).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let config = loadgen::Config::parse();
    let report = loadgen::run(config)
        .await
        .context("loadgen could not run")?;
    print!("{}", loadgen::report::table(&report));
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
