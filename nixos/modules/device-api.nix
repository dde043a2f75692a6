# device-api, the model IoT collection API, as a hardened systemd service. Its
# command line comes from nixos/lib/args.nix (checked against the program's own parser
# in CI); the database password is read from a file at start (LoadCredential), never
# put in the Nix store or on the command line.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab.device-api;
  topology = config.services.loadlab.topology;
  args = import ../lib/args.nix { inherit (config.services.loadlab) topologyFile; };
  option = import ../lib/options.nix lib topology;
  database = topology.hostOf "database";
  commandLine = args.deviceApi {
    listen = "${cfg.listenAddress}:${toString cfg.port}";
    inherit (cfg) settings;
  };
  start = pkgs.writeShellScript "device-api-start" ''
    password=$(< "$CREDENTIALS_DIRECTORY/db-password")
    export DEVICE_API_DATABASE_URL="postgres://${cfg.database.user}:$password@${cfg.database.host}:${toString cfg.database.port}/${cfg.database.name}"
    exec ${lib.getExe' cfg.package "device-api"} ${lib.escapeShellArgs commandLine}
  '';
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.device-api = {
    enable = lib.mkEnableOption "device-api, loadlab's model IoT device-collection API";

    package = lib.mkPackageOption pkgs "loadlab" { };

    listenAddress = lib.mkOption {
      type = lib.types.str;
      default = "0.0.0.0";
      description = "Address to listen on.";
    };

    port = option.port "device-api" "Port to listen on.";

    database = {
      host = lib.mkOption {
        type = lib.types.str;
        default = database.address;
        defaultText = lib.literalMD "the address of the topology's database host";
        description = "PostgreSQL host.";
      };
      port = option.port "postgresql" "PostgreSQL port.";
      name = lib.mkOption {
        type = lib.types.str;
        default = "device_api";
        description = "Database name.";
      };
      user = lib.mkOption {
        type = lib.types.str;
        default = "device_api";
        description = "Database role.";
      };
      passwordFile = option.passwordFile;
    };

    settings = option.settings {
      default = topology.topology.settings.device-api or { };
      source = "[settings.device-api]";
      program = "device-api";
      example = {
        pool-size = 32;
        writers = 4;
      };
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open the port in the firewall.";
    };
  };

  # systemd.services.* (nixos/lib/systemd-unit-options.nix) and
  # networking.firewall.allowedTCPPorts (nixos/modules/services/networking/firewall.nix)
  # are the only options used here beyond those in reference/nixos.md.
  config = lib.mkIf cfg.enable {
    systemd.services.loadlab-device-api = {
      description = "loadlab device-api";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      serviceConfig = import ../lib/hardening.nix // {
        ExecStart = start;
        LoadCredential = [ "db-password:${cfg.database.passwordFile}" ];
        Restart = "on-failure";
        RestartSec = 2;
        # device-api drains in-flight requests on SIGTERM.
        TimeoutStopSec = 30;
      };
    };
    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall cfg.port;
  };
}
