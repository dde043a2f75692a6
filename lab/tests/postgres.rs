//! The private PostgreSQL instance: it starts (as the `postgres` user when we are
//! root), answers queries, survives stop/restart, leaves nothing behind when
//! dropped, and a missing installation is a clear error naming the package. With
//! TimescaleDB preloaded it is just as private.

use std::process::Command;

use loadlab::{PostgresError, PostgresInstance};

fn psql(instance: &PostgresInstance, sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-X", "-At", "-d", &instance.url("postgres"), "-c", sql])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "psql failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Running, as opposed to gone or a zombie waiting for a parent (pg_ctl's daemon is
/// re-parented, and not every init reaps promptly).
fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

#[test]
fn starts_answers_restarts_and_cleans_up() {
    let instance = PostgresInstance::start().expect("starts");
    let dir = instance.dir_path().unwrap().to_path_buf();
    assert_eq!(psql(&instance, "SELECT 1"), "1");
    assert_eq!(psql(&instance, "SHOW listen_addresses"), "127.0.0.1");

    // Not the machine's cluster: our own data directory.
    let data_directory = psql(&instance, "SHOW data_directory");
    assert!(data_directory.starts_with(dir.to_str().unwrap()), "{data_directory} is inside {}", dir.display());

    // Runs as the postgres user when we are root (PostgreSQL refuses root). Checked
    // on the postmaster: a psql session's backend may be gone before we look.
    let first_postmaster: i32 =
        std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap().lines().next().unwrap().parse().unwrap();
    let owner = std::fs::metadata(format!("/proc/{first_postmaster}"))
        .map(|meta| std::os::unix::fs::MetadataExt::uid(&meta))
        .unwrap();
    if nix::unistd::Uid::effective().is_root() {
        let postgres_user = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        assert_eq!(owner, postgres_user.uid.as_raw());
    } else {
        assert_eq!(owner, nix::unistd::Uid::effective().as_raw());
    }

    instance.create_database("second").unwrap();
    psql(&instance, "SELECT 1");
    instance.stop().unwrap();
    let refused =
        Command::new("psql").args(["-X", "-At", "-d", &instance.url("postgres"), "-c", "SELECT 1"]).output().unwrap();
    assert!(!refused.status.success(), "stopped instance still answers");
    instance.restart().unwrap();
    assert_eq!(psql(&instance, "SELECT count(*) FROM pg_database WHERE datname = 'second'"), "1", "data survives");

    let postmaster: i32 =
        std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap().lines().next().unwrap().parse().unwrap();
    assert!(process_alive(postmaster));
    drop(instance);
    assert!(!process_alive(postmaster), "server still running after drop");
    assert!(!dir.exists(), "data directory left behind");
}

#[test]
fn missing_installation_names_the_package() {
    let empty = tempfile::tempdir().unwrap();
    // SAFETY of the environment change: this test binary runs this one test that
    // reads LOADLAB_PG_BIN; the other test does not depend on it being unset because
    // it is read only at the start of `start_with`, so run it in a child process.
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_reports_missing_installation", "--nocapture", "--include-ignored"])
        .env("LOADLAB_PG_BIN", empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("apt-get install postgresql"), "{stdout}");
}

#[test]
#[ignore = "run by missing_installation_names_the_package in a child process"]
fn child_reports_missing_installation() {
    let error = PostgresInstance::start().expect_err("no binaries in LOADLAB_PG_BIN");
    assert!(matches!(error, PostgresError::NotInstalled));
    println!("{error}");
}

#[test]
fn preloads_timescaledb_and_stays_private() {
    let instance = PostgresInstance::start_timescaledb().expect("starts with TimescaleDB (scripts/install-deps)");
    let dir = instance.dir_path().unwrap().to_path_buf();
    assert_eq!(psql(&instance, "SHOW shared_preload_libraries"), "timescaledb");
    assert_eq!(psql(&instance, "SHOW timescaledb.telemetry_level"), "off");
    assert!(psql(&instance, "SHOW data_directory").starts_with(dir.to_str().unwrap()));
    assert_eq!(psql(&instance, "SHOW unix_socket_directories"), dir.to_str().unwrap());
    assert_eq!(psql(&instance, "SHOW listen_addresses"), "127.0.0.1");
    assert_ne!(instance.port(), 5432);
    instance.create_database("tsdb").unwrap();
    let url = instance.url("tsdb");
    let output = Command::new("psql")
        .args(["-X", "-At", "-d", &url, "-c", "CREATE EXTENSION timescaledb", "-c"])
        .arg("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!String::from_utf8_lossy(&output.stdout).trim().is_empty());
    drop(instance);
    assert!(!dir.exists(), "data directory left behind");
}

#[test]
fn timescaledb_missing_is_a_clear_error() {
    // A server directory with PostgreSQL's programs but no library directory beside it.
    let bin = tempfile::tempdir().unwrap();
    let real = loadlab::postgres::server_binary().expect("PostgreSQL installed");
    let real_bin = real.parent().unwrap();
    for program in ["initdb", "postgres"] {
        std::os::unix::fs::symlink(real_bin.join(program), bin.path().join(program)).unwrap();
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_reports_missing_timescaledb", "--nocapture", "--include-ignored"])
        .env("LOADLAB_PG_BIN", bin.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("TimescaleDB was asked for") && stdout.contains("scripts/install-deps"), "{stdout}");
}

#[test]
#[ignore = "run by timescaledb_missing_is_a_clear_error in a child process"]
fn child_reports_missing_timescaledb() {
    let error = PostgresInstance::start_timescaledb().expect_err("no timescaledb.so beside LOADLAB_PG_BIN");
    assert!(matches!(error, PostgresError::TimescaledbNotInstalled(_)), "{error}");
    println!("{error}");
}
