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
fn several_hosts_may_generate_load_each_with_its_agent_and_metrics() {
    let second = "[[hosts]]\nname = \"loadgen-2\"\naddress = \"192.168.56.105\"\nvcpus = 1\nmemory_mib = 1536\n\
                  roles = [\"loadgen\"]\n\n[[hosts]]\nname = \"app\"";
    let topology = edited("[[hosts]]\nname = \"app\"", second).unwrap();
    let generators: Vec<&str> = topology.hosts_with(Role::Loadgen).map(|host| host.name.as_str()).collect();
    assert_eq!(generators, ["loadgen", "loadgen-2"]);
    let derived = topology.derived();
    // /metrics (Prometheus scrapes it) and the agent's port (the controller drives it).
    for host in generators {
        assert_eq!(derived.hosts[host].open_tcp_ports, vec![8089, 8091, 9100], "{host}");
    }
    assert_eq!(derived.scrape_jobs["loadgen"], vec!["192.168.56.101:8089", "192.168.56.105:8089"]);
    assert_eq!(derived.scrape_jobs["node"].len(), 5);
    // Only load generators come in numbers.
    let second_database =
        second.replace("loadgen-2", "db-2").replace("roles = [\"loadgen\"]", "roles = [\"database\"]");
    let refused = edited("[[hosts]]\nname = \"app\"", &second_database).unwrap_err();
    assert_eq!(
        refused,
        TopologyError::RoleOnSeveralHosts { role: Role::Database, hosts: vec!["db-2".into(), "db".into()] }
    );
}

#[test]
fn flags_are_sorted_bare_for_true_and_repeated_for_lists() {
    let table: Flags = toml::from_str("b = 2\na = true\nc = false\nd = [\"x\", \"y\"]\ne = 0.5").unwrap();
    assert_eq!(flags(&table), ["--a", "--b", "2", "--d", "x", "--d", "y", "--e", "0.5"]);
}

/// One refused edit: the built-in topology with `from` replaced by `to` must fail
/// with `error`, which must read `text`.
struct Case {
    from: &'static str,
    to: &'static str,
    error: TopologyError,
    text: &'static str,
}

#[test]
fn every_validation_error_names_the_problem() {
    let case = |from, to, error, text| Case { from, to, error, text };
    let cases = vec![
        case(
            "name = \"app\"",
            "name = \"loadgen\"",
            TopologyError::DuplicateHost("loadgen".into()),
            "host name `loadgen` appears more than once",
        ),
        case(
            "name = \"app\"",
            "name = \"App\"",
            TopologyError::BadHostName("App".into()),
            "host name `App`: use 1–20 lowercase letters, digits and dashes, starting with a letter",
        ),
        case(
            "192.168.56.102",
            "192.168.56.101",
            TopologyError::DuplicateAddress {
                address: "192.168.56.101".parse().unwrap(),
                first: "loadgen".into(),
                second: "app".into(),
            },
            "address 192.168.56.101 is given to both `loadgen` and `app`",
        ),
        case(
            "192.168.56.102",
            "10.0.0.2",
            TopologyError::AddressOutsideNetwork { host: "app".into(), address: "10.0.0.2".parse().unwrap() },
            "host `app`: address 10.0.0.2 is outside the host-only network 192.168.56.0/24 (usable: .2–.254)",
        ),
        case(
            "192.168.56.102",
            "192.168.56.1",
            TopologyError::AddressOutsideNetwork { host: "app".into(), address: "192.168.56.1".parse().unwrap() },
            "host `app`: address 192.168.56.1 is outside the host-only network 192.168.56.0/24 (usable: .2–.254)",
        ),
        case(
            "roles = [\"database\"]",
            "roles = []",
            TopologyError::MissingRole(Role::Database),
            "no host has role `database`; the lab needs exactly one",
        ),
        case(
            "roles = [\"loadgen\"]",
            "roles = []",
            TopologyError::MissingRole(Role::Loadgen),
            "no host has role `loadgen`; the lab needs at least one",
        ),
        case(
            "roles = [\"monitoring\"]",
            "roles = [\"monitoring\", \"database\"]",
            TopologyError::RoleOnSeveralHosts { role: Role::Database, hosts: vec!["db".into(), "monitor".into()] },
            "role `database` is given to [\"db\", \"monitor\"]; the lab runs one database",
        ),
        case(
            "roles = [\"loadgen\"]",
            "roles = [\"loadgen\", \"loadgen\"]",
            TopologyError::DuplicateRole { host: "loadgen".into(), role: Role::Loadgen },
            "host `loadgen` lists role `loadgen` twice",
        ),
        case(
            "grafana = 3000",
            "grafana = 9090",
            TopologyError::PortClash { port: 9090, first: "prometheus", second: "grafana" },
            "port 9090 is used by both prometheus and grafana",
        ),
        case(
            "grafana = 3000",
            "grafana = 0",
            TopologyError::ZeroPort { name: "grafana" },
            "port grafana is 0; give a fixed port",
        ),
        case(
            "vcpus = 1",
            "vcpus = 0",
            TopologyError::TooSmall { host: "loadgen".into(), what: "vcpus", least: 1 },
            "host `loadgen`: vcpus must be at least 1",
        ),
        case(
            "scrape_interval = \"1s\"",
            "scrape_interval = \"often\"",
            TopologyError::BadInterval("often".into()),
            "[lab] scrape_interval `often` is not a duration (e.g. \"5s\")",
        ),
        case(
            "default_plan = \"default\"",
            "default_plan = \"nope\"",
            TopologyError::UnknownDefaultPlan(
                "nope".into(),
                vec!["default".into(), "devices".into(), "grpc".into(), "smoke".into()],
            ),
            "[lab] default_plan `nope` is not one of the plans: [\"default\", \"devices\", \"grpc\", \"smoke\"]",
        ),
        case(
            "target = \"grpc-stress\"",
            "target = \"database\"",
            TopologyError::BadPlanTarget { plan: "grpc".into(), target: Role::Database },
            "plan `grpc`: target `database` is not a role that serves load (device-api or grpc-stress)",
        ),
        case(
            "devices = 200",
            "devices = 200\nprometheus = \"http://elsewhere\"",
            TopologyError::ReservedOption { plan: "default".into(), option: "prometheus".into() },
            "plan `default`: option `prometheus` is set by the lab itself; remove it",
        ),
        case(
            "pool-size = 16",
            "pool-size = { min = 1 }",
            TopologyError::BadFlagValue { table: "[settings.device-api]".into(), key: "pool-size".into() },
            "[settings.device-api]: `pool-size` must be a string, number, boolean or a list of those",
        ),
        case(
            "[settings.grpc-stress]",
            "[settings.grafana]",
            TopologyError::UnknownSettings("grafana".into()),
            "[settings.grafana] is not a program the lab runs (device-api, grpc-stress)",
        ),
        // grpc-stress may be absent, but then no plan may target it.
        case(
            "roles = [\"device-api\", \"grpc-stress\"]",
            "roles = [\"device-api\"]",
            TopologyError::PlanTargetMissing { plan: "grpc".into(), target: Role::GrpcStress },
            "plan `grpc`: its target `grpc-stress` has no host",
        ),
    ];
    for Case { from, to, error, text } in cases {
        let refused = edited(from, to).unwrap_err();
        assert_eq!(refused, error, "editing `{from}` to `{to}`");
        assert_eq!(refused.to_string(), text, "the message for editing `{from}` to `{to}`");
    }
}

#[test]
fn every_option_the_lab_sets_is_refused_in_a_plan() {
    for option in loadgen::launch::LAB_SET {
        let refused = edited("devices = 200", &format!("devices = 200\n{option} = \"x\"")).unwrap_err();
        assert_eq!(refused, TopologyError::ReservedOption { plan: "default".into(), option: option.into() });
    }
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
