# The database host: PostgreSQL 17 with TimescaleDB, the device_api database and role
# (password from a file, set by postgresql-setup.service), TCP access for that role
# only from the topology's device-api host, and the postgres exporter.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab.database;
  topology = config.services.loadlab.topology;
  app = topology.hostOf "device-api";
  option = import ../lib/options.nix lib topology;
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.database = {
    enable = lib.mkEnableOption "the loadlab database (PostgreSQL 17, TimescaleDB, postgres exporter)";

    package = lib.mkPackageOption pkgs "postgresql_17" { };

    timescaledb = lib.mkOption {
      type = lib.types.enum [
        "apache"
        "tsl"
        "none"
      ];
      default = "apache";
      description = ''
        Which TimescaleDB build to load. `apache` (`timescaledb-apache`, Apache-2.0)
        has hypertables, which is all device-api needs. `tsl` (`timescaledb`) adds
        compression, continuous aggregates and policies under the Timescale License,
        which nixpkgs marks unfree: allow it where nixpkgs is imported, e.g.
        `nixpkgs.config.allowUnfreePredicate = pkg: lib.getName pkg == "timescaledb";`
        (in a NixOS test, where the node's pkgs are read-only, in the nixpkgs the test
        is built from). `none`: plain PostgreSQL; device-api then makes native daily
        partitions.
      '';
    };

    port = option.port "postgresql" "PostgreSQL port.";

    name = lib.mkOption {
      type = lib.types.str;
      default = "device_api";
      description = "Database (and owning role) for device-api.";
    };

    passwordFile = option.passwordFile;

    allowedHosts = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ app.address ];
      defaultText = lib.literalMD "the address of the topology's device-api host";
      description = "Addresses allowed to log in as the role over TCP (password, scram-sha-256).";
    };

    exporter.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Run the postgres exporter (scraped by the monitoring host).";
    };
  };

  # systemd.services.* (nixos/lib/systemd-unit-options.nix) and
  # networking.firewall.allowedTCPPorts (nixos/modules/services/networking/firewall.nix)
  # are the only options used here beyond those in reference/nixos.md.
  config = lib.mkIf cfg.enable {
    services.postgresql = {
      enable = true;
      inherit (cfg) package;
      extensions =
        ps:
        lib.optional (cfg.timescaledb == "apache") ps.timescaledb-apache
        ++ lib.optional (cfg.timescaledb == "tsl") ps.timescaledb;
      enableTCPIP = true;
      settings = {
        inherit (cfg) port;
        shared_preload_libraries = lib.optional (cfg.timescaledb != "none") "timescaledb";
        max_connections = 200;
      };
      authentication = lib.concatMapStrings (
        address: "host ${cfg.name} ${cfg.name} ${address}/32 scram-sha-256\n"
      ) cfg.allowedHosts;
      ensureDatabases = [ cfg.name ];
      ensureUsers = [
        {
          inherit (cfg) name;
          ensureDBOwnership = true;
          ensureClauses.login = true;
        }
      ];
    };

    # Ensured roles have no password (reference/nixos.md): set it from the file, read
    # as a credential so the postgres user never needs access to the secret's path.
    # `\set` with backquotes keeps it off psql's command line.
    systemd.services.postgresql-setup = {
      serviceConfig.LoadCredential = [ "db-password:${cfg.passwordFile}" ];
      # The extension first (it needs a superuser; device-api, the database's owner,
      # then finds it and makes a hypertable), the password last: device-api cannot log
      # in before everything is ready.
      script = lib.mkAfter (
        lib.optionalString (cfg.timescaledb != "none") ''
          psql -d ${cfg.name} -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS timescaledb'
        ''
        + ''
          psql -d postgres -v ON_ERROR_STOP=1 <<'SQL'
          \set password `cat "$CREDENTIALS_DIRECTORY/db-password"`
          ALTER ROLE ${cfg.name} WITH LOGIN PASSWORD :'password';
          SQL
        ''
      );
    };

    services.prometheus.exporters.postgres = lib.mkIf cfg.exporter.enable {
      enable = true;
      port = topology.ports.postgres-exporter;
      runAsLocalSuperUser = true;
      openFirewall = true;
      # The same extra queries as the lab (active backends by wait event). Upstream
      # marks --extend.query-path deprecated (postgres_exporter 0.13.0, #811) but
      # still parses and applies it, with a warning at start: it is declared in
      # cmd/postgres_exporter/main.go of every release nixpkgs 26.05 can carry
      # (pkgs/by-name/pr/prometheus-postgres-exporter/package.nix: 0.19-0.20) and of
      # upstream's main branch after them. The way off it is upstream's stat_activity
      # collector (pg_stat_activity_count with state, backend_type and
      # wait_event_type labels; collector/pg_stat_activity.go), which needs the
      # rules, dashboards and bottleneck signals in monitoring/ and the lab to move
      # together: not done here.
      extraFlags = [ "--extend.query-path=${../../monitoring/postgres-exporter/queries.yaml}" ];
    };

    networking.firewall.allowedTCPPorts = [ cfg.port ];
  };
}
