//! The binary's command line: `certs` writes the private key for its owner only.

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
