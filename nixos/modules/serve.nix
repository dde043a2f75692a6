# `loadlab serve` on the monitoring host: the lab as a standing service. It runs the
# experiments given here on their schedules against the topology's hosts (`--lab
# network`; the loadgen hosts' agents send the load, driven from here with the
# agents' token, `agentTokenFile`, read as a systemd credential), keeps every run in
# its store under /var/lib/loadlab-serve, and serves its web UI (/ui/), API and
# /metrics on localhost (reach it with an SSH tunnel; starting runs is not for the
# whole network); the UI links each run to Grafana's dashboards over the run's time
# range. Prometheus on the same host scrapes it as job "loadlab", and the alert rules
# of monitoring/prometheus/rules/experiments.yaml (loaded with
# every other rule file by monitoring.nix) fire on a regression it finds. The
# experiments file is checked by `loadlab serve --check-config` when the system is
# built, so a bad one fails the build, not the service.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab.serve;
  inherit (config.services.loadlab) topologyFile;
  args = import ../lib/args.nix { inherit topologyFile; };
  toml = pkgs.formats.toml { };
  experimentsFile = toml.generate "loadlab-experiments.toml" { experiments = cfg.experiments; };
  # The file, once `loadlab serve --check-config` has accepted it with this topology.
  checkedExperiments = pkgs.runCommand "loadlab-experiments-checked.toml" { } ''
    ${lib.getExe' cfg.package "loadlab"} ${
      lib.escapeShellArgs (
        args.loadlabServe {
          inherit (cfg) listen;
          data = "/tmp/unused";
          experiments = "${experimentsFile}";
          topology = "${topologyFile}";
          monitoring = "${cfg.package}/share/loadlab/monitoring";
          inherit (cfg) grafana;
        }
      )
    } --check-config
    cp ${experimentsFile} $out
  '';
  stateDir = "/var/lib/loadlab-serve";
  option = import ../lib/options.nix lib config.services.loadlab.topology;
  start = pkgs.writeShellScript "loadlab-serve-start" ''
    export LOADLAB_AGENT_TOKEN_FILE="$CREDENTIALS_DIRECTORY/agent-token"
    exec ${lib.getExe' cfg.package "loadlab"} ${
      lib.escapeShellArgs (
        args.loadlabServe {
          inherit (cfg) listen;
          data = stateDir;
          experiments = "${checkedExperiments}";
          topology = "${topologyFile}";
          monitoring = "${cfg.package}/share/loadlab/monitoring";
          inherit (cfg) grafana;
        }
      )
    }
  '';
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.serve = {
    enable = lib.mkEnableOption "`loadlab serve` (results server, run history, scheduled experiments, regression alerts)";

    package = lib.mkPackageOption pkgs "loadlab" { };

    listen = lib.mkOption {
      type = lib.types.str;
      default = "127.0.0.1:8095";
      description = "Address of the API and /metrics (localhost: reach it through an SSH tunnel).";
    };

    agentTokenFile = option.agentTokenFile;

    grafana = lib.mkOption {
      type = lib.types.str;
      default = args.grafanaUrl;
      defaultText = lib.literalExpression ''"http://<monitoring host>:<ports.grafana>" of the topology'';
      description = "Grafana's URL as the web UI's users reach it: each run links to the dashboards over its time range.";
    };

    experiments = lib.mkOption {
      inherit (toml) type;
      default = { };
      example = lib.literalExpression ''
        {
          nightly = {
            plan = "default";
            daily = "02:30";
            timeout = "30m";
            reference-rate = 1600;
          };
        }
      '';
      description = ''
        The experiments `loadlab serve` runs, each a table of its experiments file
        (`[experiments.NAME]`): `plan` (a plan of the topology) or `target` and
        `loadgen` (options against a target of its own), `interval` or `daily`
        (HH:MM, UTC), `timeout`, `reference-rate` (whose p99 is tracked), `threshold`
        (the smallest relative change reported) and `p-value`. Checked at build time.
      '';
    };
  };

  # systemd.services.* (nixos/lib/systemd-unit-options.nix) and
  # services.prometheus.scrapeConfigs (.../monitoring/prometheus/default.nix) are the
  # only options used here beyond those in reference/nixos.md.
  config = lib.mkIf cfg.enable {
    # nixos/modules/misc/assertions.nix: assertions.
    assertions = [ (option.agentTokenNotInStore cfg.agentTokenFile "services.loadlab.serve.agentTokenFile") ];

    systemd.services.loadlab-serve = {
      description = "loadlab serve: results server, run history, scheduled experiments";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      serviceConfig = import ../lib/hardening.nix // {
        ExecStart = start;
        LoadCredential = [ "agent-token:${cfg.agentTokenFile}" ];
        StateDirectory = "loadlab-serve";
        # A stop cancels the run in progress and records it; loadgen's grace and the
        # store's commit fit in this.
        TimeoutStopSec = "2min";
        Restart = "on-failure";
        RestartSec = "5s";
      };
    };

    services.prometheus.scrapeConfigs = lib.mkIf (config.services.loadlab.monitoring.enable or false) [
      {
        job_name = "loadlab";
        static_configs = [ { targets = [ cfg.listen ]; } ];
      }
    ];
  };
}
