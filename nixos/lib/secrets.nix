# The secrets a loadlab host reads, each with the units that read it (as a systemd
# credential, from its default path): the database password (the database and
# device-api hosts) and the loadgen agents' token (every loadgen host, and the
# monitoring host's `loadlab serve`, their controllers). Whoever hands the secrets in
# writes each one this host needs, before its readers start: the VirtualBox guests
# from guest properties (nixos/vbox/guest.nix), the VM test from test values
# (nixos/tests/network.nix).
#
#   import ./secrets.nix { inherit lib config; }   →   [ { name; file; readers; } ]
#   (the secrets this host has readers of)
{ lib, config }:
let
  cfg = config.services.loadlab;
  option = import ./options.nix lib cfg.topology;
  enabled = role: (cfg.${role} or { }).enable or false;
  inherit (lib) optional;
  secrets = [
    {
      name = "db-password";
      file = option.defaultPasswordFile;
      readers =
        optional (enabled "database") "postgresql-setup.service"
        ++ optional (enabled "device-api") "loadlab-device-api.service";
    }
    {
      name = "agent-token";
      file = option.defaultAgentTokenFile;
      readers =
        optional (enabled "loadgen") "loadlab-loadgen-agent.service"
        ++ optional (enabled "loadgen" && cfg.loadgen.controller.enable) "loadlab-loadgen.service"
        ++ optional (enabled "serve") "loadlab-serve.service";
    }
  ];
in
lib.filter (secret: secret.readers != [ ]) secrets
