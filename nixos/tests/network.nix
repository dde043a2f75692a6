# The whole topology as NixOS test VMs (`nix flake check` runs it as
# checks.<system>.network): one node per host of topology.toml with its roles, memory
# trimmed, the `smoke` plan. It checks that every unit comes up, Prometheus sees every
# target up (every loadgen host's agent among them), Grafana serves the provisioned
# dashboards, loadgen, the controller on the first loadgen host, finds a breaking point
# with every agent taking its share, whose result reaches the Pushgateway and
# Prometheus, and `loadlab serve` answers on the monitoring host and is scraped.
{
  topology,
  module,
}:
{ pkgs, lib, ... }:
let
  # A test-only password: in the store, which is fine for a throwaway test network
  # and nowhere else (deployments hand it in out of band).
  password = pkgs.writeText "loadlab-test-db-password" "0123456789abcdef0123456789abcdef";
  # The agents' token, the same kind of test-only value, written where the modules
  # read it (the way nixos/vbox/guest.nix writes what deploy-vbox hands in), since
  # they refuse a token file in the store.
  agentToken = "fedcba9876543210fedcba9876543210";
  memoryOf = host: lib.min host.memory_mib (if builtins.elem "database" host.roles then 1536 else 1024);
  # A node's Python name in the test script: the test driver's (pythonizeName in
  # nixpkgs' nixos/lib/testing/driver.nix) for host names like `loadgen-2`.
  python = host: lib.replaceStrings [ "-" "." ] [ "_" "_" ] host.name;
  monitor = python (topology.hostOf "monitoring");
  # The controller runs on the first loadgen host; every loadgen host has an agent.
  loadgen = python (topology.hostOf "loadgen");
  generators = map python (topology.hostsWith "loadgen");
  app = python (topology.hostOf "device-api");
  db = python (topology.hostOf "database");
  inherit (topology) ports;
  # Scrape targets: the agents serve the loadgen hosts' /metrics all the time.
  targets = lib.length (lib.flatten (lib.attrValues topology.derived.scrape_jobs));
in
{
  name = "loadlab-network";

  nodes = builtins.listToAttrs (
    map (host: {
      inherit (host) name;
      value =
        { config, ... }:
        let
          readers = lib.concatMap (secret: lib.optionals (secret.name == "agent-token") secret.readers) (
            import ../lib/secrets.nix { inherit lib config; }
          );
        in
        {
        imports = [ module ];
        services.loadlab.hostName = host.name;
        # The test network's interface (the test framework puts its own address on
        # it too; ours is the topology's).
        services.loadlab.interface = "eth1";
        services.loadlab.database.passwordFile = "${password}";
        services.loadlab.device-api.database.passwordFile = "${password}";
        services.loadlab.loadgen = {
          plan = "smoke";
          runOnBoot = false;
        };
        virtualisation.memorySize = memoryOf host;
        virtualisation.cores = host.vcpus;
        # nixos/modules/config/system-path.nix: environment.systemPackages.
        environment.systemPackages = [
          pkgs.curl
          pkgs.jq
        ];
        systemd.services.loadlab-test-agent-token = lib.mkIf (readers != [ ]) {
          description = "Write the test network's loadgen agent token";
          wantedBy = [ "multi-user.target" ];
          before = readers;
          requiredBy = readers;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            StateDirectory = "loadlab-secrets";
            StateDirectoryMode = "0700";
          };
          script = ''
            umask 077
            printf '%s' ${agentToken} > /var/lib/loadlab-secrets/agent-token
          '';
        };
      };
    }) topology.hosts
  );

  testScript = ''
    import json

    start_all()

    with subtest("every unit comes up"):
        ${db}.wait_for_unit("postgresql.target")
        ${db}.wait_for_unit("prometheus-postgres-exporter.service")
        ${app}.wait_for_unit("loadlab-device-api.service")
        ${app}.wait_for_open_port(${toString ports.device-api})
        ${monitor}.wait_for_unit("prometheus.service")
        ${monitor}.wait_for_unit("pushgateway.service")
        ${monitor}.wait_for_unit("grafana.service")
        ${monitor}.wait_for_open_port(${toString ports.grafana})
        for machine in machines:
            machine.wait_for_unit("prometheus-node-exporter.service")
        ${lib.concatStringsSep "\n    " (
          lib.concatMap (generator: [
            ''${generator}.wait_for_unit("loadlab-loadgen-agent.service")''
            "${generator}.wait_for_open_port(${toString ports.loadgen-agent})"
          ]) generators
        )}
        ${app}.wait_until_succeeds("curl -fs http://127.0.0.1:${toString ports.device-api}/ready")

    with subtest("Prometheus sees every target up"):
        ${monitor}.wait_until_succeeds(
            "test $(curl -fs 'http://127.0.0.1:${toString ports.prometheus}/api/v1/query?query=count(up==1)' "
            "| jq -r '.data.result[0].value[1]') -ge ${toString targets}",
            timeout=180,
        )

    with subtest("Grafana serves the provisioned dashboards"):
        dashboards = json.loads(${monitor}.succeed(
            "curl -fs -u admin:$(cat /var/lib/loadlab-grafana-secrets/admin-password) "
            "'http://127.0.0.1:${toString ports.grafana}/api/search?type=dash-db'"
        ))
        titles = [dashboard["title"] for dashboard in dashboards]
        assert len(titles) >= 6, f"provisioned dashboards: {titles}"
        ${monitor}.fail("curl -fs -u admin:admin 'http://127.0.0.1:${toString ports.grafana}/api/search'")

    with subtest("loadgen finds a breaking point, every agent taking its share"):
        # The documented way to run the plan (again): restart blocks until it ends.
        ${loadgen}.succeed("systemctl restart loadlab-loadgen.service")
        summary = json.loads(${loadgen}.succeed("cat /var/lib/loadlab-loadgen/results/*/summary.json"))
        assert summary["breaking_point"]["rate"] is not None, summary["breaking_point"]
        assert summary["bottlenecks"]["verdict"], "no bottleneck verdict"
        assert len(summary["agents"]) == ${toString (lib.length generators)}, summary["agents"]
        for step in summary["steps"]:
            assert [share["completed"] > 0 for share in step["agents"]] == [True] * ${toString (lib.length generators)}, step["agents"]

    with subtest("loadlab serve answers and Prometheus scrapes it"):
        ${monitor}.wait_for_unit("loadlab-serve.service")
        ${monitor}.wait_until_succeeds("curl -fs http://127.0.0.1:8095/openapi.json | jq -e '.paths[\"/runs\"]'")
        ${monitor}.wait_until_succeeds(
            "curl -fs 'http://127.0.0.1:${toString ports.prometheus}/api/v1/query?query=up%7Bjob%3D%22loadlab%22%7D' "
            "| jq -e '.data.result[0].value[1] == \"1\"'",
            timeout=60,
        )

    with subtest("the result reaches the Pushgateway and Prometheus"):
        ${monitor}.succeed("curl -fs http://127.0.0.1:${toString ports.pushgateway}/metrics | grep -q '^loadgen_breaking_point_rate'")
        ${monitor}.wait_until_succeeds(
            "curl -fs 'http://127.0.0.1:${toString ports.prometheus}/api/v1/query?query=loadgen_breaking_point_rate' "
            "| jq -e '.data.result | length > 0'",
            timeout=60,
        )
  '';
}
