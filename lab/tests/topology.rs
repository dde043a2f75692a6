//! topology.toml: the shipped file is valid and separates the roles, flags render as
//! the programs expect, and every validation rule refuses what it should with an error
//! that names the problem.

use loadlab::topology::{BUILT_IN, Flags, Role, Topology, TopologyError, flags};

fn edited(from: &str, to: &str) -> Result<Topology, TopologyError> {
    assert!(BUILT_IN.contains(from), "the built-in topology contains `{from}`");
    Topology::parse(&BUILT_IN.replacen(from, to, 1), "test.toml")
}

#[test]
fn the_shipped_topology_is_valid_and_separates_the_roles() {
    let topology = Topology::parse(BUILT_IN, "topology.toml").unwrap();
    let host_of = |role| topology.host_with(role).unwrap().name.clone();
    assert_eq!(host_of(Role::Loadgen), "loadgen");
    assert_eq!(host_of(Role::DeviceApi), "app");
    assert_eq!(host_of(Role::Database), "db");
    assert_eq!(host_of(Role::Monitoring), "monitor");
    let derived = topology.derived();
    assert_eq!(derived.hosts["db"].open_tcp_ports, vec![5432, 9100, 9187]);
    assert_eq!(derived.scrape_jobs["node"].len(), 4);
    assert_eq!(derived.scrape_jobs["postgres"], vec!["192.168.56.103:9187"]);
    assert_eq!(derived.scrape_jobs["grpc-stress"], vec!["192.168.56.102:50052"]);
    assert!(derived.plans["default"].windows(2).any(|pair| pair == ["--slo-quantile", "0.99"]));
}

#[test]
fn flags_are_sorted_bare_for_true_and_repeated_for_lists() {
    let table: Flags = toml::from_str("b = 2\na = true\nc = false\nd = [\"x\", \"y\"]\ne = 0.5").unwrap();
    assert_eq!(flags(&table), ["--a", "--b", "2", "--d", "x", "--d", "y", "--e", "0.5"]);
}

#[test]
fn every_validation_error_names_the_problem() {
    let cases: Vec<(&str, &str, TopologyError)> = vec![
        ("name = \"app\"", "name = \"loadgen\"", TopologyError::DuplicateHost("loadgen".into())),
        ("name = \"app\"", "name = \"App\"", TopologyError::BadHostName("App".into())),
        (
            "192.168.56.102",
            "192.168.56.101",
            TopologyError::DuplicateAddress {
                address: "192.168.56.101".parse().unwrap(),
                first: "loadgen".into(),
                second: "app".into(),
            },
        ),
        (
            "192.168.56.102",
            "10.0.0.2",
            TopologyError::AddressOutsideNetwork { host: "app".into(), address: "10.0.0.2".parse().unwrap() },
        ),
        (
            "192.168.56.102",
            "192.168.56.1",
            TopologyError::AddressOutsideNetwork { host: "app".into(), address: "192.168.56.1".parse().unwrap() },
        ),
        ("roles = [\"database\"]", "roles = []", TopologyError::MissingRole(Role::Database)),
        (
            "roles = [\"monitoring\"]",
            "roles = [\"monitoring\", \"database\"]",
            TopologyError::RoleOnSeveralHosts { role: Role::Database, hosts: vec!["db".into(), "monitor".into()] },
        ),
        (
            "roles = [\"loadgen\"]",
            "roles = [\"loadgen\", \"loadgen\"]",
            TopologyError::DuplicateRole { host: "loadgen".into(), role: Role::Loadgen },
        ),
        (
            "grafana = 3000",
            "grafana = 9090",
            TopologyError::PortClash { port: 9090, first: "prometheus", second: "grafana" },
        ),
        ("grafana = 3000", "grafana = 0", TopologyError::ZeroPort { name: "grafana" }),
        ("vcpus = 1", "vcpus = 0", TopologyError::TooSmall { host: "loadgen".into(), what: "vcpus", least: 1 }),
        ("scrape_interval = \"1s\"", "scrape_interval = \"often\"", TopologyError::BadInterval("often".into())),
        (
            "default_plan = \"default\"",
            "default_plan = \"nope\"",
            TopologyError::UnknownDefaultPlan(
                "nope".into(),
                vec!["default".into(), "devices".into(), "grpc".into(), "smoke".into()],
            ),
        ),
        (
            "target = \"grpc-stress\"",
            "target = \"database\"",
            TopologyError::BadPlanTarget { plan: "grpc".into(), target: Role::Database },
        ),
        (
            "devices = 200",
            "devices = 200\nprometheus = \"http://elsewhere\"",
            TopologyError::ReservedOption { plan: "default".into(), option: "prometheus".into() },
        ),
        (
            "pool-size = 16",
            "pool-size = { min = 1 }",
            TopologyError::BadFlagValue { table: "[settings.device-api]".into(), key: "pool-size".into() },
        ),
        ("[settings.grpc-stress]", "[settings.grafana]", TopologyError::UnknownSettings("grafana".into())),
    ];
    for (from, to, expected) in cases {
        assert_eq!(edited(from, to).unwrap_err(), expected, "editing `{from}` to `{to}`");
        assert!(!expected.to_string().is_empty());
    }
    // grpc-stress may be absent, but then no plan may target it.
    let without_grpc = edited("roles = [\"device-api\", \"grpc-stress\"]", "roles = [\"device-api\"]");
    assert_eq!(
        without_grpc.unwrap_err(),
        TopologyError::PlanTargetMissing { plan: "grpc".into(), target: Role::GrpcStress }
    );
}

#[test]
fn unknown_roles_keys_and_syntax_errors_name_the_place() {
    for (from, to, expected) in [
        ("roles = [\"database\"]", "roles = [\"cache\"]", "unknown variant `cache`"),
        ("vcpus = 1", "vcpus = 1\ncpus = 1", "unknown field `cpus`"),
        ("grafana = 3000", "grafana = ", "string values must be quoted"),
    ] {
        let TopologyError::Parse { file, message } = edited(from, to).unwrap_err() else { panic!("{to}") };
        assert_eq!(file, "test.toml");
        assert!(message.contains(expected), "{message}");
        assert!(message.contains("line"), "{message}");
    }
}
