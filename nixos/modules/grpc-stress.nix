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
  commandLine = args.grpcStressServer {
    listen = "${cfg.listenAddress}:${toString cfg.port}";
    metricsListen = "${cfg.listenAddress}:${toString cfg.metricsPort}";
    inherit (cfg) settings;
  };
in
{
  imports = [ ./host.nix ];

  options.services.loadlab.grpc-stress = {
    enable = lib.mkEnableOption "the grpc-stress server";

    package = lib.mkPackageOption pkgs "loadlab" { };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "0.0.0.0";
      description = "Address to listen on (gRPC and metrics).";
    };

    port = lib.mkOption {
      type = lib.types.port;
      default = topology.ports.grpc-stress;
      defaultText = lib.literalMD "`[ports] grpc-stress` of the topology (50051)";
      description = "gRPC port.";
    };

    metricsPort = lib.mkOption {
      type = lib.types.port;
      default = topology.ports.grpc-stress-metrics;
      defaultText = lib.literalMD "`[ports] grpc-stress-metrics` of the topology (50052)";
      description = "Port of `/metrics`.";
    };

    settings = lib.mkOption {
      type = with lib.types; attrsOf (oneOf [ str int float bool (listOf str) ]);
      default = topology.topology.settings.grpc-stress or { };
      defaultText = lib.literalMD "`[settings.grpc-stress]` of the topology";
      example = {
        max-in-flight = 10000;
        max-heap = "1GiB";
      };
      description = "Long options of `grpc-stress server` (`grpc-stress server --help`).";
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
