# The monitoring host: Prometheus scraping every target the topology derives (each
# host's node exporter, the services by role) with the rule files of
# monitoring/prometheus/rules; the Pushgateway; Grafana with the Prometheus datasource
# and the dashboards of monitoring/grafana/dashboards provisioned. Grafana's admin
# password and secret key are generated on first boot into /var/lib (never admin/admin,
# never in the store).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab.monitoring;
  topology = config.services.loadlab.topology;
  inherit (topology) ports;
  rulesDir = ../../monitoring/prometheus/rules;
  ruleFiles = map (name: rulesDir + "/${name}") (
    builtins.filter (name: lib.hasSuffix ".yaml" name) (builtins.attrNames (builtins.readDir rulesDir))
  );
  secretsDir = "/var/lib/loadlab-grafana-secrets";
in
{
  imports = [ ./common.nix ];

  options.services.loadlab.monitoring = {
    enable = lib.mkEnableOption "the loadlab monitoring host (Prometheus, Pushgateway, Grafana)";

    retentionTime = lib.mkOption {
      type = lib.types.str;
      default = "30d";
      description = "How long Prometheus keeps samples.";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open Prometheus', the Pushgateway's and Grafana's ports.";
    };
  };

  # systemd.services.* (nixos/lib/systemd-unit-options.nix) and
  # networking.firewall.allowedTCPPorts (nixos/modules/services/networking/firewall.nix)
  # are the only options used here beyond those in reference/nixos.md.
  config = lib.mkIf cfg.enable {
    services.prometheus = {
      enable = true;
      listenAddress = "0.0.0.0";
      port = ports.prometheus;
      inherit (cfg) retentionTime;
      globalConfig = {
        scrape_interval = topology.scrapeInterval;
        evaluation_interval = topology.scrapeInterval;
      };
      scrapeConfigs = lib.mapAttrsToList (
        job: targets:
        {
          job_name = job;
          static_configs = [ { inherit targets; } ];
        }
        # The Pushgateway's series carry the pushing job's labels; keep them.
        // lib.optionalAttrs (job == "pushgateway") { honor_labels = true; }
      ) topology.derived.scrape_jobs;
      inherit ruleFiles;
      pushgateway = {
        enable = true;
        web.listen-address = ":${toString ports.pushgateway}";
      };
    };

    # Secrets on first boot, readable by Grafana only.
    systemd.services.loadlab-grafana-secrets = {
      description = "Generate Grafana's admin password and secret key once";
      wantedBy = [ "grafana.service" ];
      before = [ "grafana.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        StateDirectory = "loadlab-grafana-secrets";
        StateDirectoryMode = "0750";
      };
      script = ''
        umask 077
        for name in admin-password secret-key; do
          if [ ! -s ${secretsDir}/$name ]; then
            ${pkgs.coreutils}/bin/od -An -tx1 -N24 /dev/urandom | ${pkgs.coreutils}/bin/tr -d ' \n' > ${secretsDir}/$name
          fi
        done
        chown -R grafana ${secretsDir}
        echo "Grafana admin password: ${secretsDir}/admin-password"
      '';
    };

    services.grafana = {
      enable = true;
      settings = {
        server = {
          http_addr = "0.0.0.0";
          http_port = ports.grafana;
        };
        security = {
          admin_password = "$__file{${secretsDir}/admin-password}";
          secret_key = "$__file{${secretsDir}/secret-key}";
        };
      };
      provision = {
        enable = true;
        # The same datasource as monitoring/grafana/provisioning/datasources (there
        # with PROMETHEUS_URL from the environment); the dashboards pick it through
        # their $datasource variable.
        datasources.settings = {
          apiVersion = 1;
          datasources = [
            {
              name = "Prometheus";
              type = "prometheus";
              uid = "loadlab-prometheus";
              url = "http://127.0.0.1:${toString ports.prometheus}";
              isDefault = true;
            }
          ];
        };
        dashboards.settings = {
          apiVersion = 1;
          providers = [
            {
              name = "loadlab";
              folder = "loadlab";
              type = "file";
              options.path = ../../monitoring/grafana/dashboards;
            }
          ];
        };
      };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall [
      ports.prometheus
      ports.pushgateway
      ports.grafana
    ];
  };
}
