# The options every loadlab module reads: which topology, which host of it this machine
# is, its lab interface, and the evaluated topology. Declared here once and imported by
# every role module and by host.nix, so each of them works alone; this file imports
# nothing (nixpkgs' pattern: module imports form a tree, and a module never imports one
# of its importers, or the module system recurses forever).
{
  config,
  lib,
  ...
}:
let
  cfg = config.services.loadlab;
in
{
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
        Which host of the topology this machine is. With the `host` module (in
        `nixosModules.default`), sets its host name, its address and the roles it
        plays; `null` leaves all of that to you.
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
      default = import ../lib/topology.nix { inherit (cfg) topologyFile; };
      defaultText = lib.literalExpression "import ./nixos/lib/topology.nix { inherit (config.services.loadlab) topologyFile; }";
      description = "The evaluated topology, for the modules' defaults.";
    };
  };
}
