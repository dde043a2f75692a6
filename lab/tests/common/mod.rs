//! Shared by the tests that run the lab's binaries: `loadlab` itself, run to its end
//! with a liveness bound.

#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::process::ExitStatus;
use std::time::Duration;

use loadlab_fixtures::{binary, program, repository};
use loadlab_supervise::Spec;

/// `loadlab` from the workspace build, in the repository (its topology.toml and
/// monitoring/).
pub fn loadlab() -> Spec {
    program(binary("loadlab")).cwd(repository())
}

/// How a command ended: its status, its stdout, and its log (stderr, and stdout
/// unless the command has its own file for it).
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub log: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `spec` to its end, at most `limit` (a liveness bound far above what is
/// expected): past it, the test fails with what the command said.
pub fn finish(spec: Spec, limit: Duration) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let stdout = dir.path().join("stdout");
    let mut process = spec.stdout_to(&stdout).spawn().unwrap_or_else(|error| panic!("{error}"));
    let Some(status) = process.wait_timeout(limit) else {
        panic!("{} still ran after {limit:?}:\n{}", process.name(), process.output());
    };
    let finished = Finished { status, stdout: read(&stdout), log: process.output() };
    eprintln!("{}", finished.log);
    finished
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
