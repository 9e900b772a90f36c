//! `sagactl`: parse the command line, run the command, print its output. An error goes to
//! standard error, with its causes and without a backtrace (it is the operator's, not a bug),
//! and exit status 1; what the command did before it failed (some services' answers) is still
//! printed on standard output.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = sagactl::Cli::parse();
    match cli.run(&sagactl::process_environment) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            print!("{}", error.output());
            eprintln!("sagactl: {:#}", anyhow::Error::new(error));
            ExitCode::FAILURE
        }
    }
}
