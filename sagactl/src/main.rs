//! `sagactl`: parse the command line, run the command, print its output. An error goes to
//! standard error, with its causes and without a backtrace (it is the operator's, not a bug),
//! and exit status 1.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    match run() {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sagactl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<String> {
    let cli = sagactl::Cli::parse();
    Ok(cli.run(&sagactl::process_environment)?)
}
