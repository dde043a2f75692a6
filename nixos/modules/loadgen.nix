# The loadgen hosts: one generator made of several machines.
#
# Every loadgen host runs `loadgen agent` (loadlab-loadgen-agent), a long-running
# service that takes work only from a controller showing the lab's token
# (`agentTokenFile`, a systemd credential), listens on the host's lab address (never
# 0.0.0.0 by default), serves /metrics on the loadgen port (Prometheus's job
# "loadgen"), and connects to the targets from its own address. An agent never runs
# a step on its own: it stops when its controller goes silent.
#
# One of them, the first loadgen host of the topology (`controller.enable`), also has
# the run unit (loadlab-loadgen): the controller. It waits until its target,
# Prometheus and every agent answer, runs the plan's breakpoint search once with each
# step split across the agents (one merged verdict), keeps every run under
# /var/lib/loadlab-loadgen/results/<run id>/ and pushes its figures to the Pushgateway.
# `loadlab serve` on the monitoring host drives the same agents.
#
# A run is started by boot (runOnBoot) or by `systemctl restart loadlab-loadgen`, which
# runs the plan again every time (and starts it if it never ran). After a run the unit
# stays "active (exited)" (RemainAfterExit), so a plain `systemctl start` of a unit that
# already ran does nothing, and neither does anything that starts multi-user.target
# again: a load test never starts by accident. For the same reason `nixos-rebuild
# switch` does not restart the unit when its definition changes (restartIfChanged).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab.loadgen;
  inherit (config.services.loadlab) hostName;
  topology = config.services.loadlab.topology;
  args = import ../lib/args.nix { inherit (config.services.loadlab) topologyFile; };
  option = import ../lib/options.nix lib topology;
  plan = topology.plans.${cfg.plan};
  monitor = topology.hostOf "monitoring";
  prometheus = "http://${monitor.address}:${toString topology.ports.prometheus}";
  # This machine's host of the topology, when it is placed in it.
  thisHost = if hostName != null then topology.hostsByName.${hostName} or null else null;
  loadgen = lib.getExe' cfg.package "loadgen";

  agentCommandLine = args.loadgenAgent {
    listen = "${cfg.agent.listenAddress}:${toString cfg.agent.port}";
    metricsListen = "${cfg.agent.listenAddress}:${toString cfg.port}";
    inherit (cfg.agent) sourceAddress;
  };
  agentStart = pkgs.writeShellScript "loadgen-agent-start" ''
    export LOADGEN_AGENT_TOKEN_FILE="$CREDENTIALS_DIRECTORY/agent-token"
    exec ${loadgen} ${lib.escapeShellArgs agentCommandLine}
  '';

  commandLine = args.loadgenBreakpoint {
    target = cfg.target;
    plan = cfg.settings;
    inherit (cfg.controller) agents;
    inherit prometheus;
    pushgateway = "http://${monitor.address}:${toString topology.ports.pushgateway}";
    bottlenecks = "${../../monitoring}/bottlenecks.toml";
  };
  # What must answer before the run starts: the target's readiness, Prometheus and
  # every agent.
  readyUrls = [
    (
      if plan.target == "grpc-stress" then
        "http://${(topology.hostOf "grpc-stress").address}:${toString topology.ports.grpc-stress-metrics}/metrics"
      else
        "${cfg.target}/ready"
    )
    "${prometheus}/-/ready"
  ];
  waitForTargets = pkgs.writeShellScript "loadgen-wait-for-targets" ''
    for url in ${lib.escapeShellArgs readyUrls}; do
      for attempt in $(seq 300); do
        ${lib.getExe pkgs.curl} -fsS -o /dev/null --max-time 2 "$url" && continue 2
        sleep 1
      done
      echo "$url did not answer within 300 s" >&2
      exit 1
    done
    for agent in ${lib.escapeShellArgs cfg.controller.agents}; do
      for attempt in $(seq 300); do
        # Any answer over HTTP/2 (gRPC's) is an agent listening; -f is not wanted.
        ${lib.getExe pkgs.curl} -s -o /dev/null --max-time 2 --http2-prior-knowledge "$agent" && continue 2
        sleep 1
      done
      echo "the loadgen agent $agent did not answer within 300 s" >&2
      exit 1
    done
  '';
  run = pkgs.writeShellScript "loadgen-run" ''
    export LOADGEN_RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
    export LOADGEN_OUT="$STATE_DIRECTORY/results/$LOADGEN_RUN_ID"
    export LOADGEN_AGENT_TOKEN_FILE="$CREDENTIALS_DIRECTORY/agent-token"
    exec ${loadgen} ${lib.escapeShellArgs commandLine}
  '';
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.loadgen = {
    enable = lib.mkEnableOption "a loadgen host: its `loadgen agent`, and on the first loadgen host the run unit that controls every agent";

    package = lib.mkPackageOption pkgs "loadlab" { };

    port = option.port "loadgen" "Port of the agent's `/metrics` (Prometheus's job `loadgen`).";

    agentTokenFile = option.agentTokenFile;

    agent = {
      listenAddress = lib.mkOption {
        type = lib.types.str;
        default = if thisHost != null then thisHost.address else "127.0.0.1";
        defaultText = lib.literalMD "the host's address in the topology (`127.0.0.1` when `services.loadlab.hostName` is not set)";
        description = ''
          Address the agent listens on, for its controller and for `/metrics`: the lab
          network's only, by default.
        '';
      };

      port = option.port "loadgen-agent" "Port the agent takes work on (gRPC, token-checked).";

      sourceAddress = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = if thisHost != null then thisHost.address else null;
        defaultText = lib.literalMD "the host's address in the topology";
        description = "Address the agent connects to the targets from (`null`: the kernel's choice).";
      };
    };

    controller = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = thisHost == null || hostName == (topology.hostOf "loadgen").name;
        defaultText = lib.literalMD "on the first loadgen host of the topology (and when `services.loadlab.hostName` is not set)";
        description = ''
          Have the run unit (`loadlab-loadgen`) on this host: the controller that runs
          the plan through every agent. One loadgen host needs it.
        '';
      };

      agents = lib.mkOption {
        type = lib.types.nonEmptyListOf lib.types.str;
        default =
          if thisHost != null then args.agentUrls else [ "http://${cfg.agent.listenAddress}:${toString cfg.agent.port}" ];
        defaultText = lib.literalMD "the agent of every loadgen host of the topology (`http://address:port`)";
        description = "The agents the run unit drives as one generator, each with its segment of every step.";
      };
    };

    plan = lib.mkOption {
      type = lib.types.str;
      default = topology.defaultPlan;
      defaultText = lib.literalMD "`[lab] default_plan` of the topology";
      description = "Which `[plans.NAME]` of the topology the run unit runs.";
    };

    target = lib.mkOption {
      type = lib.types.str;
      default = args.planTarget plan;
      defaultText = lib.literalMD "device-api or grpc-stress on its topology host, per the plan's `target`";
      description = "Base URL of the system under test.";
    };

    settings = option.settings {
      default = plan.loadgen;
      source = "[plans.<plan>.loadgen]";
      program = "loadgen breakpoint";
    };

    runOnBoot = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Run the plan once at boot (boot reaches multi-user.target when the run ends: the
        unit is a oneshot). Either way, `systemctl restart loadlab-loadgen` runs it
        (again); a plain `start` does nothing once it has run (the unit remains active
        after a run).
      '';
    };
  };

  # systemd.services.* (nixos/lib/systemd-unit-options.nix) and
  # networking.firewall.allowedTCPPorts (nixos/modules/services/networking/firewall.nix)
  # are the only options used here beyond those in reference/nixos.md.
  config = lib.mkIf cfg.enable {
    # nixos/modules/misc/assertions.nix: assertions.
    assertions = [
      {
        assertion = !cfg.controller.enable || builtins.hasAttr cfg.plan topology.plans;
        message = "services.loadlab.loadgen.plan = \"${cfg.plan}\" is not a plan of the topology";
      }
      (option.agentTokenNotInStore cfg.agentTokenFile "services.loadlab.loadgen.agentTokenFile")
    ];

    systemd.services.loadlab-loadgen-agent = {
      description = "loadlab loadgen agent: this host's share of the load, for the lab's controller";
      wantedBy = [ "multi-user.target" ];
      # The lab address must be up before the agent can listen on it; until then it
      # exits and is restarted.
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      serviceConfig = import ../lib/hardening.nix // {
        ExecStart = agentStart;
        LoadCredential = [ "agent-token:${cfg.agentTokenFile}" ];
        Restart = "always";
        # Slower than the default start limit (5 starts in 10 s).
        RestartSec = 5;
        # It ends its step and tells its controller.
        TimeoutStopSec = 30;
      };
    };

    systemd.services.loadlab-loadgen = lib.mkIf cfg.controller.enable {
      description = "loadlab loadgen: plan ${cfg.plan} until the SLO breaks, on ${toString (builtins.length cfg.controller.agents)} agent(s)";
      wantedBy = lib.optional cfg.runOnBoot "multi-user.target";
      wants = [ "network-online.target" ];
      after = [
        "network-online.target"
        "loadlab-loadgen-agent.service"
      ];
      # See the top of this file: a switch never launches a run.
      restartIfChanged = false;
      serviceConfig = import ../lib/hardening.nix // {
        # `systemctl restart` blocks until the run ends; each restart is a new run.
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStartPre = waitForTargets;
        ExecStart = run;
        LoadCredential = [ "agent-token:${cfg.agentTokenFile}" ];
        StateDirectory = "loadlab-loadgen";
        # A plan that broke a threshold (99) is a result, not a failed unit.
        SuccessExitStatus = [ 99 ];
        TimeoutStartSec = "2h";
      };
    };

    networking.firewall.allowedTCPPorts = [
      cfg.port
      cfg.agent.port
    ];
  };
}
