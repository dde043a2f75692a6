# The loadgen host: a unit that waits until its target and Prometheus answer, runs the
# plan's breakpoint search once, keeps every run under
# /var/lib/loadlab-loadgen/results/<run id>/, pushes its figures to the Pushgateway,
# and serves /metrics on the loadgen port while it runs.
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
  topology = config.services.loadlab.topology;
  args = import ../lib/args.nix { inherit (config.services.loadlab) topologyFile; };
  option = import ../lib/options.nix lib topology;
  plan = topology.plans.${cfg.plan};
  monitor = topology.hostOf "monitoring";
  prometheus = "http://${monitor.address}:${toString topology.ports.prometheus}";
  commandLine = args.loadgenBreakpoint {
    target = cfg.target;
    plan = cfg.settings;
    listen = "0.0.0.0:${toString cfg.port}";
    inherit prometheus;
    pushgateway = "http://${monitor.address}:${toString topology.ports.pushgateway}";
    bottlenecks = "${../../monitoring}/bottlenecks.toml";
  };
  # What must answer before the run starts: the target's readiness and Prometheus.
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
  '';
  run = pkgs.writeShellScript "loadgen-run" ''
    export LOADGEN_RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
    export LOADGEN_OUT="$STATE_DIRECTORY/results/$LOADGEN_RUN_ID"
    exec ${lib.getExe' cfg.package "loadgen"} ${lib.escapeShellArgs commandLine}
  '';
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.loadgen = {
    enable = lib.mkEnableOption "loadgen, running one of the topology's plans until the system breaks";

    package = lib.mkPackageOption pkgs "loadlab" { };

    plan = lib.mkOption {
      type = lib.types.str;
      default = topology.defaultPlan;
      defaultText = lib.literalMD "`[lab] default_plan` of the topology";
      description = "Which `[plans.NAME]` of the topology to run.";
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

    port = option.port "loadgen" "Port of loadgen's `/metrics` while it runs.";

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
        assertion = builtins.hasAttr cfg.plan topology.plans;
        message = "services.loadlab.loadgen.plan = \"${cfg.plan}\" is not a plan of the topology";
      }
    ];
    systemd.services.loadlab-loadgen = {
      description = "loadlab loadgen: plan ${cfg.plan} until the SLO breaks";
      wantedBy = lib.optional cfg.runOnBoot "multi-user.target";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # See the top of this file: a switch never launches a run.
      restartIfChanged = false;
      serviceConfig = import ../lib/hardening.nix // {
        # `systemctl restart` blocks until the run ends; each restart is a new run.
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStartPre = waitForTargets;
        ExecStart = run;
        StateDirectory = "loadlab-loadgen";
        # A plan that broke a threshold (99) is a result, not a failed unit.
        SuccessExitStatus = [ 99 ];
        TimeoutStartSec = "2h";
      };
    };
    networking.firewall.allowedTCPPorts = [ cfg.port ];
  };
}
