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

  # loadgen agent on a loadgen host: takes work from a controller on `listen`, serves
  # /metrics on `metricsListen`, connects to the targets from `sourceAddress`. Its
  # token file comes from the environment (LOADGEN_AGENT_TOKEN_FILE, a credential).
  loadgenAgent =
    { listen, metricsListen, sourceAddress }:
    [ "agent" "--listen" listen "--metrics-listen" metricsListen ]
    ++ (if sourceAddress == null then [ ] else [ "--source-address" sourceAddress ])
    ++ [ "--log-format" "json" ];

  # loadgen as the agents' controller: one breakpoint search of a plan, the load sent
  # by `agents` (their token file from the environment, LOADGEN_AGENT_TOKEN_FILE).
  # The agents serve the loadgen hosts' /metrics, so the controller serves none. The
  # unit adds --out and --run-id per run.
  loadgenBreakpoint =
    { target, plan, agents, prometheus, pushgateway, bottlenecks }:
    [ "breakpoint" "--target" target ]
    ++ flags plan
    ++ [
      "--listen" "none"
      "--agents" (builtins.concatStringsSep "," agents)
      "--prometheus" prometheus
      "--pushgateway" pushgateway
      "--bottlenecks" bottlenecks
      "--log-format" "json"
    ];

  # Every loadgen host's agent, as a controller names them.
  agentUrls = map (host: "http://${host.address}:${toString ports.loadgen-agent}") (topology.hostsWith "loadgen");

  # loadlab serve on the monitoring host: the topology's hosts are running (`--lab
  # network`, their agents driven with the token of LOADLAB_AGENT_TOKEN_FILE, a
  # credential), the store in `data`, the monitoring files from the package; its web
  # UI links runs to `grafana`'s dashboards.
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
    loadgen = [ "LOADGEN_OUT" "LOADGEN_RUN_ID" "LOADGEN_AGENT_TOKEN_FILE" ];
    loadgen-agent = [ "LOADGEN_AGENT_TOKEN_FILE" ];
    loadlab-serve = [ "LOADLAB_AGENT_TOKEN_FILE" ];
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
        agents = agentUrls;
        prometheus = url "monitoring" ports.prometheus;
        pushgateway = url "monitoring" ports.pushgateway;
        bottlenecks = "monitoring/bottlenecks.toml";
      }
    ) topology.plans;
    loadgen-agent = loadgenAgent {
      listen = "${(hostOf "loadgen").address}:${toString ports.loadgen-agent}";
      metricsListen = "${(hostOf "loadgen").address}:${toString ports.loadgen}";
      sourceAddress = (hostOf "loadgen").address;
    };
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
