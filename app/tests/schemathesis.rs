//! device-api against a client nobody here wrote: schemathesis generates requests from
//! `/openapi.json` (schema-valid ones, and ones that break it) and checks every answer
//! against the document: no 5xx, documented statuses, content types and headers,
//! response bodies that match their schemas, schema-valid requests accepted and
//! invalid ones refused, authentication not ignored. All checks, a fixed seed, a
//! bounded number of cases per operation, and no failure allowed.
//!
//! schemathesis and its dependencies are installed, pinned, into the project's `.venv`
//! by `scripts/python-venv` (from `schemathesis/requirements.txt`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::TestApi;

/// Cases per operation and phase; with the seed, the run is the same every time.
const MAX_EXAMPLES: &str = "100";
const SEED: &str = "13";
/// The whole run takes well under a minute here; this only stops a hang.
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The `.venv` interpreter with schemathesis installed.
fn python() -> PathBuf {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis/requirements.txt");
    let output = std::process::Command::new(workspace().join("scripts/python-venv"))
        .arg(&requirements)
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/python-venv runs");
    assert!(output.status.success(), "scripts/python-venv failed: {}", output.status);
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure() {
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let schemathesis = python.with_file_name("schemathesis");
    let api = TestApi::start().await;
    let device = api.login().await;
    // Hypothesis and schemathesis may write caches and reports into the working directory.
    let scratch = tempfile::tempdir().unwrap();
    let mut run = loadlab_supervise::Spec::new(&schemathesis)
        .arg("run")
        .arg(api.url("/openapi.json"))
        .args(["--checks", "all", "--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--header", &format!("Authorization: Bearer {device}")])
        .args(["--generation-database", "none", "--request-timeout", "10", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis"))
        .cwd(scratch.path())
        .stop(loadlab_supervise::Stop::kill())
        .spawn()
        .expect("schemathesis runs");
    let status = run.wait_timeout_async(RUN_LIMIT).await;
    let output = run.output();
    println!("{output}");
    let status = status.unwrap_or_else(|| panic!("schemathesis still ran after {RUN_LIMIT:?}"));
    assert!(status.success(), "schemathesis failed ({status}):\n{output}");
    api.stop().await;
}
