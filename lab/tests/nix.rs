//! The Nix side, checked without nixpkgs (nothing can be built here; Debian's
//! nix-instantiate can parse and evaluate). The modules and every flake output are
//! evaluated with nixpkgs' module system by `../shared/nix-eval/run.sh`, which
//! `scripts/test` runs; these tests check what that cannot:
//! - every `.nix` file of the repository parses;
//! - the pure topology functions (`nixos/lib/topology.nix`, builtins only) derive the
//!   same hosts, open ports, scrape jobs and program flags as `loadlab topology`, for
//!   the shipped topology and for a different one;
//! - every command line the modules give our programs (`nixos/lib/args.nix`) is
//!   accepted by that program's own argument parser, and every environment variable
//!   they set is one the program reads.

use std::path::{Path, PathBuf};
use std::process::Command;

use loadlab_fixtures::{binary, repository};

fn nix_instantiate() -> Command {
    let found = loadlab_supervise::which("nix-instantiate").is_some();
    assert!(found, "nix-instantiate is missing: scripts/install-deps installs it (Debian package nix-bin)");
    let mut command = Command::new("nix-instantiate");
    command.current_dir(repository());
    command
}

/// `nix-instantiate --eval --strict --json` of `file` (attribute `attribute`).
fn evaluate(file: &str, topology: &Path, attribute: Option<&str>) -> Result<serde_json::Value, String> {
    let mut command = nix_instantiate();
    command.args(["--eval", "--strict", "--json", "--arg", "topologyFile"]).arg(topology);
    if let Some(attribute) = attribute {
        command.args(["-A", attribute]);
    }
    let output = command.arg(file).output().unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).unwrap())
}

fn loadlab_derives(topology: &Path) -> serde_json::Value {
    let output = Command::new(binary("loadlab")).arg("topology").arg("--topology").arg(topology).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn nix_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() && !name.starts_with('.') && name != "target" && name != "results" {
            nix_files(&path, found);
        } else if name.ends_with(".nix") {
            found.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&repository(), &mut files);
    assert!(files.len() >= 10, "expected the flake and the modules, found {files:?}");
    assert!(files.iter().any(|file| file.ends_with("flake.nix")));
    for file in files {
        let output = nix_instantiate().arg("--parse").arg(&file).output().unwrap();
        assert!(output.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    }
}

/// A topology unlike the shipped one: seven hosts, grpc-stress alone, three load
/// generators, settings of every value kind, a float in a plan.
fn other_topology(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repository().join("topology.toml")).unwrap();
    let generators = (2..=3)
        .map(|n| {
            format!(
                "[[hosts]]\nname = \"loadgen-{n}\"\naddress = \"192.168.56.{}\"\nvcpus = 1\nmemory_mib = 1024\n\
                 roles = [\"loadgen\"]\n\n",
                110 + n
            )
        })
        .collect::<String>();
    let text = text
        .replace("roles = [\"device-api\", \"grpc-stress\"]", "roles = [\"device-api\"]")
        .replace(
            "[settings.device-api]",
            &format!(
                "[[hosts]]\nname = \"grpc\"\naddress = \"192.168.56.20\"\nvcpus = 4\nmemory_mib = 4096\n\
                 roles = [\"grpc-stress\"]\n\n{generators}[settings.device-api]\nwriters = 2\nbatch-max-wait = \"5ms\""
            ),
        )
        .replace("max-heap = \"512MiB\"", "max-heap = \"1GiB\"\nmax-in-flight = 5000")
        .replace("slo-quantile = 0.99", "slo-quantile = 0.995\nslo-errors-percent = 0.5")
        .replace("scenario = \"devices\"\ndevices = 50", "scenario = \"devices\"\ndevices = 50\nh2c = false")
        .replace("grafana = 3000", "grafana = 3300");
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn nix_derives_what_the_lab_derives() {
    let dir = tempfile::tempdir().unwrap();
    for topology in [repository().join("topology.toml"), other_topology(dir.path())] {
        let from_nix = evaluate("nixos/lib/derived.nix", &topology, None).unwrap();
        let from_lab = loadlab_derives(&topology);
        assert_eq!(from_nix, from_lab, "Nix and loadlab disagree on {}", topology.display());
    }
    // The different topology really is different where it matters.
    let other = loadlab_derives(&other_topology(dir.path()));
    assert_eq!(other["hosts"]["grpc"]["open_tcp_ports"], serde_json::json!([9100, 50051, 50052]));
    assert_eq!(other["hosts"]["monitor"]["open_tcp_ports"], serde_json::json!([3300, 9090, 9091, 9100]));
    assert_eq!(other["hosts"]["loadgen-3"]["open_tcp_ports"], serde_json::json!([8089, 8091, 9100]));
    assert_eq!(
        other["scrape_jobs"]["loadgen"],
        serde_json::json!(["192.168.56.101:8089", "192.168.56.112:8089", "192.168.56.113:8089"])
    );
    assert!(other["plans"]["default"].as_array().unwrap().contains(&serde_json::json!("0.995")));
    // The run unit drives the agent of every loadgen host, in the topology's order.
    let agents = evaluate("nixos/lib/args.nix", &other_topology(dir.path()), Some("agentUrls")).unwrap();
    assert_eq!(
        agents,
        serde_json::json!(["http://192.168.56.101:8091", "http://192.168.56.112:8091", "http://192.168.56.113:8091"])
    );
    let plan = evaluate("nixos/lib/args.nix", &other_topology(dir.path()), Some("defaults.loadgen.default")).unwrap();
    let plan: Vec<&str> = plan.as_array().unwrap().iter().map(|word| word.as_str().unwrap()).collect();
    let at = plan.iter().position(|word| *word == "--agents").expect("the run unit names its agents");
    assert_eq!(
        plan[at + 1],
        agents.as_array().unwrap().iter().map(|url| url.as_str().unwrap()).collect::<Vec<_>>().join(",")
    );
}

#[test]
fn nix_refuses_a_topology_without_a_database_or_a_load_generator() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repository().join("topology.toml")).unwrap();
    let path = dir.path().join("topology.toml");
    std::fs::write(&path, text.replace("roles = [\"database\"]", "roles = []")).unwrap();
    let error = evaluate("nixos/lib/derived.nix", &path, None).unwrap_err();
    assert!(error.contains("topology: roles [\"database\"] need exactly one host each"), "{error}");
    std::fs::write(&path, text.replace("roles = [\"loadgen\"]", "roles = []")).unwrap();
    let error = evaluate("nixos/lib/derived.nix", &path, None).unwrap_err();
    assert!(error.contains("topology: roles [\"loadgen\"] need at least one host each"), "{error}");
}

/// Runs `program args… --help`: clap parses (and checks) every argument before it
/// reaches `--help`, so exit 0 means every flag and value was accepted.
fn accepted(program: &str, args: &[String]) -> Result<(), String> {
    let output = Command::new(binary(program)).args(args).arg("--help").output().unwrap();
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
}

#[test]
fn every_flag_a_module_passes_is_accepted_by_its_program() {
    let dir = tempfile::tempdir().unwrap();
    for topology in [repository().join("topology.toml"), other_topology(dir.path())] {
        let defaults = evaluate("nixos/lib/args.nix", &topology, Some("defaults")).unwrap();
        let list = |value: &serde_json::Value| -> Vec<String> {
            value.as_array().unwrap().iter().map(|arg| arg.as_str().unwrap().to_string()).collect()
        };
        accepted("device-api", &list(&defaults["device-api"])).unwrap();
        accepted("grpc-stress", &list(&defaults["grpc-stress"])).unwrap();
        accepted("loadgen", &list(&defaults["loadgen-agent"])).unwrap();
        accepted("loadlab", &list(&defaults["loadlab-serve"])).unwrap();
        let plans = defaults["loadgen"].as_object().unwrap();
        assert!(plans.len() >= 2);
        for (plan, args) in plans {
            accepted("loadgen", &list(args)).unwrap_or_else(|error| panic!("plan {plan}: {error}"));
        }

        // Each environment variable a module sets is one its program reads.
        // (the module's program, the binary and its words)
        for (module, program, help_args) in [
            ("device-api", "device-api", vec!["--help"]),
            ("grpc-stress", "grpc-stress", vec!["server", "--help"]),
            ("loadgen", "loadgen", vec!["breakpoint", "--help"]),
            ("loadgen-agent", "loadgen", vec!["agent", "--help"]),
            ("loadlab-serve", "loadlab", vec!["serve", "--help"]),
        ] {
            let help = Command::new(binary(program)).args(&help_args).output().unwrap();
            let help = String::from_utf8_lossy(&help.stdout);
            for name in defaults["environment"][module].as_array().unwrap() {
                let name = name.as_str().unwrap();
                assert!(help.contains(&format!("[env: {name}=")), "{module} does not read {name}");
            }
        }
    }
    // And the check can fail: a flag the program lacks is refused.
    let error = accepted("device-api", &["--pool-size".into(), "16".into(), "--no-such-flag".into()]).unwrap_err();
    assert!(error.contains("--no-such-flag"), "{error}");
    let error = accepted("loadgen", &["breakpoint".into(), "--start-rate".into(), "fast".into()]).unwrap_err();
    assert!(error.contains("invalid value"), "{error}");
}

#[test]
fn the_virtualbox_scripts_pass_shellcheck_as_the_flake_wraps_them() {
    // writeShellApplication runs shellcheck on its text: bash, strict mode, and the
    // variables nixos/vbox/apps.nix sets first.
    for (script, variables) in
        [("deploy.sh", "LOADLAB_HOSTS=/x\nLOADLAB_HEALTH=/y\n"), ("destroy.sh", "LOADLAB_HOSTS=/x\n")]
    {
        let text = std::fs::read_to_string(repository().join("nixos/vbox").join(script)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wrapped = dir.path().join(script);
        std::fs::write(
            &wrapped,
            format!("#!/usr/bin/env bash\nset -o errexit -o nounset -o pipefail\n{variables}{text}"),
        )
        .unwrap();
        let output =
            Command::new("shellcheck").arg(&wrapped).output().expect("shellcheck (scripts/install-deps installs it)");
        assert!(output.status.success(), "{script}:\n{}", String::from_utf8_lossy(&output.stdout));
    }
}

/// The Nix package builds from a fileset: a workspace member missing from it would
/// build here and fail on every Nix machine.
#[test]
fn the_package_fileset_holds_every_workspace_member() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let package = std::fs::read_to_string(root.join("nixos/package.nix")).unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    assert!(!members.is_empty());
    for member in members {
        let member = member.as_str().unwrap();
        assert!(
            package.lines().any(|line| line.trim() == format!("../{member}")),
            "nixos/package.nix lacks ../{member}"
        );
    }
}
