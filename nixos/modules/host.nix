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
  topology = import ../lib/topology.nix { inherit (cfg) topologyFile; };
  host = topology.hostsByName.${cfg.hostName};
  hasRole = role: builtins.elem role host.roles;
in
{
  # Every role module (each imports this one back; the module system loads each file
  # once): a host enables its roles' modules, so their options must exist.
  imports = [
    ./database.nix
    ./device-api.nix
    ./grpc-stress.nix
    ./loadgen.nix
    ./monitoring.nix
  ];

  options.services.loadlab = {
    topologyFile = lib.mkOption {
      type = lib.types.path;
      default = ../../topology.toml;
      defaultText = lib.literalExpression "./topology.toml (the repository's)";
      description = "The topology this machine is part of: hosts, addresses, roles, ports and plans.";
    };

    hostName = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "app";
      description = ''
        Which host of the topology this machine is. Sets its host name, its address and
        the roles it plays; `null` leaves all of that to you.
      '';
    };

    interface = lib.mkOption {
      type = lib.types.str;
      default = "eth1";
      description = ''
        The network interface on the lab's host-only network (on VirtualBox the second
        adapter; the first is NAT for downloads).
      '';
    };

    topology = lib.mkOption {
      type = lib.types.raw;
      readOnly = true;
      internal = true;
      default = topology;
      defaultText = lib.literalExpression "import ./nixos/lib/topology.nix { inherit (config.services.loadlab) topologyFile; }";
      description = "The evaluated topology, for the role modules' defaults.";
    };
  };

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
