# The grpc-stress server (gRPC on one port, Prometheus metrics on another) as a
# hardened systemd service; its command line comes from nixos/lib/args.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab.grpc-stress;
  topology = config.services.loadlab.topology;
  args = import ../lib/args.nix { inherit (config.services.loadlab) topologyFile; };
  option = import ../lib/options.nix lib topology;
  commandLine = args.grpcStressServer {
    listen = "${cfg.listenAddress}:${toString cfg.port}";
    metricsListen = "${cfg.listenAddress}:${toString cfg.metricsPort}";
    inherit (cfg) settings;
  };
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.grpc-stress = {
    enable = lib.mkEnableOption "the grpc-stress server";

    package = lib.mkPackageOption pkgs "loadlab" { };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "0.0.0.0";
      description = "Address to listen on (gRPC and metrics).";
    };

    port = option.port "grpc-stress" "gRPC port.";

    metricsPort = option.port "grpc-stress-metrics" "Port of `/metrics`.";

    settings = option.settings {
      default = topology.topology.settings.grpc-stress or { };
      source = "[settings.grpc-stress]";
      program = "grpc-stress server";
      example = {
        max-in-flight = 10000;
        max-heap = "1GiB";
      };
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open both ports in the firewall.";
    };
  };

  # systemd.services.* (nixos/lib/systemd-unit-options.nix) and
  # networking.firewall.allowedTCPPorts (nixos/modules/services/networking/firewall.nix)
  # are the only options used here beyond those in reference/nixos.md.
  config = lib.mkIf cfg.enable {
    systemd.services.loadlab-grpc-stress = {
      description = "loadlab grpc-stress server";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      serviceConfig = import ../lib/hardening.nix // {
        ExecStart = "${lib.getExe' cfg.package "grpc-stress"} ${lib.escapeShellArgs commandLine}";
        Restart = "on-failure";
        RestartSec = 2;
      };
    };
    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall [
      cfg.port
      cfg.metricsPort
    ];
  };
}
