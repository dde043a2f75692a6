//! The binary's command line: `certs` writes the private key for its owner only, and
//! every invalid option is refused before anything runs, with exit code 2 and one
//! line naming the option, the value and what is allowed.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_grpc-stress");

fn grpc_stress(args: &[&str]) -> Output {
    Command::new(BINARY).args(args).output().unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn certs_keeps_the_private_key_and_a_new_directory_to_its_owner() {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("new/certs");
    let output = grpc_stress(&["certs", "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(mode(&out.join("server.key")), 0o600, "server.key");
    assert_eq!(mode(&out), 0o700, "the output directory");
    assert_eq!(mode(&parent.path().join("new")), 0o700, "a parent it created");
    assert_eq!(mode(&out.join("ca.pem")), 0o644, "certificates are public");

    // A key left readable by an older version is narrowed when written again.
    std::fs::set_permissions(out.join("server.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let again = grpc_stress(&["certs", "--out", out.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(mode(&out.join("server.key")), 0o600, "server.key rewritten");
    // An existing directory is the user's: left as it was.
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(grpc_stress(&["certs", "--out", out.to_str().unwrap()]).status.success());
    assert_eq!(mode(&out), 0o755);
}

/// Asserts exit code 2 and a one-line error that contains each of `expected`.
fn refused(args: &[&str], expected: &[&str]) {
    let output = grpc_stress(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?} exits 2:\n{stderr}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{args:?}: {stderr}");
    for text in expected {
        assert!(first.contains(text), "{args:?}: the first line lacks `{text}`:\n{stderr}");
    }
    let rest: Vec<&str> = stderr.lines().skip(1).filter(|line| !line.trim().is_empty()).collect();
    assert!(
        rest.iter().all(|line| line.starts_with("For more information")),
        "{args:?}: one line of error, not {stderr}"
    );
}

#[test]
fn invalid_driver_options_are_refused_with_the_option_value_and_range() {
    refused(&["driver", "--sample-interval", "0s"], &["--sample-interval", "'0s'", "more than 0"]);
    refused(&["driver", "--base-port", "65534"], &["--base-port", "'65534'", "1 to 65532"]);
    refused(&["driver", "--base-port", "0"], &["--base-port", "'0'", "1 to 65532"]);
    refused(&["driver", "--patterns", "bogus"], &["--patterns", "'bogus'", "bidi-many"]);
    refused(&["driver", "--patterns", "bidi-many,bogus"], &["--patterns", "'bogus'", "unary-many-calls"]);
    refused(&["driver", "--servers", "nope"], &["--servers", "'nope'", "secure-stable"]);
    refused(&["driver", "--client-stabilities", "wobbly"], &["--client-stabilities", "'wobbly'", "stable, unstable"]);
    refused(&["driver", "--kill-interval", "0s..1s"], &["--kill-interval", "'0s..1s'", "more than 0"]);
    refused(&["driver", "--kill-interval", "3s..1s"], &["--kill-interval", "'3s..1s'", "low end"]);
    refused(&["driver", "--server-ceiling", "0"], &["--server-ceiling", "'0'", "more than 0"]);
    refused(&["driver", "--duration", "0s"], &["--duration", "'0s'", "more than 0"]);
}

#[test]
fn invalid_client_options_are_refused_with_the_option_value_and_range() {
    let kind = "--non-streaming";
    refused(&["client", "--target", "ftp://x:1", kind], &["--target", "'ftp://x:1'", "http://host:port"]);
    refused(&["client", "--target", "http://127.0.0.1", kind], &["--target", "http://host:port"]);
    refused(&["client", "--target", "http://127.0.0.1:1"], &["no RPC kind", "--non-streaming", "--bidi-streaming"]);
    refused(
        &["client", "--target", "https://127.0.0.1:1", kind],
        &["https", "--ca", "--system-roots", "--no-server-validation"],
    );
    refused(&["client", "--ca", "/nonexistent/ca.pem", kind], &["--ca", "'/nonexistent/ca.pem'", "PEM"]);
    let empty = tempfile::NamedTempFile::new().unwrap();
    let empty = empty.path().to_str().unwrap();
    refused(&["client", "--ca", empty, kind], &["--ca", empty, "no PEM certificate"]);
    refused(&["client", "--num-connections", "0", kind], &["--num-connections", "'0'", "from 1"]);
    refused(&["client", "--call-timeout", "0s", kind], &["--call-timeout", "'0s'", "more than 0"]);
    refused(&["client", kind, "--group", "--num-connections 2"], &["--group", "no RPC kind"]);
    refused(&["client", kind, "--group", "--bogus"], &["--group", "'--bogus'"]);
}

#[test]
fn invalid_server_options_are_refused_with_the_option_value_and_range() {
    refused(&["server", "--chat-ping-interval", "0s"], &["--chat-ping-interval", "'0s'", "more than 0"]);
    refused(&["server", "--max-in-flight", "0"], &["--max-in-flight", "'0'", "from 1"]);
    refused(&["server", "--max-concurrent-streams", "0"], &["--max-concurrent-streams", "'0'", "from 1"]);
    refused(&["server", "--keepalive-interval", "0s"], &["--keepalive-interval", "'0s'", "more than 0"]);
    refused(&["server", "--report-heap", "0s"], &["--report-heap", "'0s'", "more than 0"]);
}
