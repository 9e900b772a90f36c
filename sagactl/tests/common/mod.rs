//! Runs the real `sagactl` binary, with the variables it reads taken out of the environment
//! and those of a test case put in.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// What a run printed, and whether it succeeded.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit status 0.
    pub(crate) succeeded: bool,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Whether sagactl reads `name` (so that the developer's own environment cannot leak into a
/// case).
fn read_by_sagactl(name: &str) -> bool {
    name.starts_with("AUTH_JWT_") || name.starts_with("BROKER_") || name == "AMQP_PRODUCER_USERS"
}

/// Runs `sagactl arguments…` with `environment` (and PATH, HOME, … of this process).
pub(crate) fn sagactl(arguments: &[&str], environment: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sagactl"));
    command.args(arguments);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(read_by_sagactl) {
            command.env_remove(&name);
        }
    }
    command.envs(environment.iter().copied());
    let output = command.output().expect("run sagactl");
    Run {
        succeeded: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A file of the repository.
pub(crate) fn repository_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}
