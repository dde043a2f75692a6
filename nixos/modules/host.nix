# Every loadlab host: which host of topology.toml this machine is, its static address
# on the host-only network, the roles the topology gives it (each enables its role
# module), a node exporter, a firewall open only for the ports its roles serve, and the
# kernel settings load tests need (as the original network had: fs.file-max 100000).
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.loadlab;
  inherit (cfg) topology;
  host = topology.hostsByName.${cfg.hostName};
  hasRole = role: builtins.elem role host.roles;
in
{
  # host.nix enables the role modules, so it imports them (each imports common.nix,
  # where the options read here are declared); no role module imports host.nix.
  imports = [
    ./common.nix
    ./database.nix
    ./device-api.nix
    ./grpc-stress.nix
    ./loadgen.nix
    ./monitoring.nix
    ./serve.nix
  ];

  config = lib.mkIf (cfg.hostName != null) {
    # nixos/modules/misc/assertions.nix: assertions.
    assertions = [
      {
        assertion = builtins.hasAttr cfg.hostName topology.hostsByName;
        message = "services.loadlab.hostName = \"${cfg.hostName}\" is not a host of ${toString cfg.topologyFile}";
      }
    ];

    # nixos/modules/tasks/network-interfaces.nix: networking.hostName,
    # networking.interfaces.<name>.ipv4.addresses; nixos/modules/config/networking.nix:
    # networking.hosts.
    networking.hostName = cfg.hostName;
    networking.interfaces.${cfg.interface}.ipv4.addresses = [
      {
        inherit (host) address;
        prefixLength = 24;
      }
    ];
    networking.hosts = builtins.listToAttrs (
      map (other: {
        name = other.address;
        value = [ other.name ];
      }) topology.hosts
    );

    # The roles of this host, each its own module.
    services.loadlab.database.enable = lib.mkDefault (hasRole "database");
    services.loadlab.device-api.enable = lib.mkDefault (hasRole "device-api");
    services.loadlab.grpc-stress.enable = lib.mkDefault (hasRole "grpc-stress");
    services.loadlab.monitoring.enable = lib.mkDefault (hasRole "monitoring");
    services.loadlab.loadgen.enable = lib.mkDefault (hasRole "loadgen");
    # The standing service runs beside Prometheus, which scrapes it.
    services.loadlab.serve.enable = lib.mkDefault (hasRole "monitoring");

    services.prometheus.exporters.node = {
      enable = true;
      port = topology.ports.node-exporter;
      enabledCollectors = [
        "systemd"
        "processes"
        "conntrack"
        "filefd"
        "netstat"
        "pressure"
      ];
      openFirewall = true;
    };

    # nixos/modules/services/networking/firewall.nix: networking.firewall.enable.
    # Each role module opens only its own ports.
    networking.firewall.enable = true;

    # nixos/modules/config/sysctl.nix: boot.kernel.sysctl.
    boot.kernel.sysctl = {
      "fs.file-max" = 100000;
      "net.core.somaxconn" = 4096;
      "net.ipv4.tcp_max_syn_backlog" = 4096;
      "net.ipv4.ip_local_port_range" = "1024 65000";
      "net.ipv4.tcp_tw_reuse" = 1;
    };
  };
}
