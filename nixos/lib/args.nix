# The command lines the NixOS modules give our programs, as functions of the module
# options, and those command lines for the defaults the topology gives. Builtins only:
# lab/tests/nix.rs evaluates `defaults` and runs each program's own argument parser
# on every list (and checks every environment variable name against its --help), so
# a module can never pass a flag a program does not accept.
#
#   nix-instantiate --eval --strict --json --arg topologyFile ./topology.toml -A defaults nixos/lib/args.nix
{
  topologyFile ? ../../topology.toml,
}:
let
  topology = import ./topology.nix { inherit topologyFile; };
  inherit (topology) flags ports hostOf;
  url = role: port: "http://${(hostOf role).address}:${toString port}";
in
rec {
  # device-api: the database URL (with its password) comes from the environment
  # (DEVICE_API_DATABASE_URL), never the command line or the store.
  deviceApi = { listen, settings }: [ "--listen" listen "--log-format" "json" ] ++ flags settings;

  grpcStressServer =
    { listen, metricsListen, settings }:
    [ "server" "--listen" listen "--metrics-listen" metricsListen "--log-format" "json" ] ++ flags settings;

  # loadgen: one breakpoint search of a plan. The unit adds --out and --run-id per run.
  loadgenBreakpoint =
    { target, plan, listen, prometheus, pushgateway, bottlenecks }:
    [ "breakpoint" "--target" target ]
    ++ flags plan
    ++ [
      "--listen" listen
      "--prometheus" prometheus
      "--pushgateway" pushgateway
      "--bottlenecks" bottlenecks
      "--log-format" "json"
    ];

  # loadlab serve on the monitoring host: the topology's hosts are running (`--lab
  # network`), the store in `data`, the monitoring files from the package; its web UI
  # links runs to `grafana`'s dashboards.
  loadlabServe =
    { listen, data, experiments, topology, monitoring, grafana }:
    [
      "serve"
      "--listen" listen
      "--data" data
      "--lab" "network"
      "--experiments" experiments
      "--topology" topology
      "--monitoring" monitoring
      "--grafana" grafana
    ];

  # Grafana on the monitoring host, as a browser on the lab network reaches it.
  grafanaUrl = url "monitoring" ports.grafana;

  # The environment variables each module sets for each program.
  environment = {
    device-api = [ "DEVICE_API_DATABASE_URL" ];
    grpc-stress = [ ];
    loadgen = [ "LOADGEN_OUT" "LOADGEN_RUN_ID" ];
  };

  # The plan's target URL: device-api or the grpc-stress server on its host.
  planTarget =
    plan:
    if plan.target == "grpc-stress" then url "grpc-stress" ports.grpc-stress else url "device-api" ports.device-api;

  # Every command line with the topology's defaults, as the modules produce them.
  defaults = {
    device-api = deviceApi {
      listen = "0.0.0.0:${toString ports.device-api}";
      settings = topology.topology.settings.device-api or { };
    };
    grpc-stress = grpcStressServer {
      listen = "0.0.0.0:${toString ports.grpc-stress}";
      metricsListen = "0.0.0.0:${toString ports.grpc-stress-metrics}";
      settings = topology.topology.settings.grpc-stress or { };
    };
    loadgen = builtins.mapAttrs (
      name: plan:
      loadgenBreakpoint {
        target = planTarget plan;
        plan = plan.loadgen;
        listen = "0.0.0.0:${toString ports.loadgen}";
        prometheus = url "monitoring" ports.prometheus;
        pushgateway = url "monitoring" ports.pushgateway;
        bottlenecks = "monitoring/bottlenecks.toml";
      }
    ) topology.plans;
    loadlab-serve = loadlabServe {
      listen = "127.0.0.1:8095";
      data = "/var/lib/loadlab-serve";
      experiments = "experiments.toml";
      topology = "topology.toml";
      monitoring = "monitoring";
      grafana = grafanaUrl;
    };
    inherit environment;
  };
}
