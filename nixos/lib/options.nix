# Option constructors the role modules share, so each option kind is written once:
# a port whose default is the topology's, a program's `settings` (its long options,
# rendered by nixos/lib/topology.nix's `flags`), the database password's file and the
# loadgen agents' token file.
lib: topology: rec {
  # Where the database password is read from by default: under /var/lib, so it
  # survives a reboot. The VirtualBox guests write it there at every boot from the guest
  # property deploy-vbox sets (nixos/vbox/guest.nix); on real hosts it is put there once
  # (or `passwordFile` names what a secrets tool provides, see the README).
  defaultPasswordFile = "/var/lib/loadlab-secrets/db-password";

  passwordFile = lib.mkOption {
    type = lib.types.str;
    default = defaultPasswordFile;
    description = ''
      File holding device-api's database password (URL-safe characters, e.g. hex),
      read as a systemd credential when the unit starts; the database and device-api
      hosts each need a copy. Nothing in these modules creates it: `nix run
      .#deploy-vbox` hands it to its VMs (which write it here at every boot); on real
      hosts put it here once (`install -D -m 0600`, it survives reboots), or point this
      option at the file your secrets tool recreates at each boot (sops-nix:
      `config.sops.secrets.<name>.path`, agenix: `config.age.secrets.<name>.path`).
      Never a store path outside tests.
    '';
  };

  # Where the loadgen agents' shared token is read from by default (beside the
  # database password, and handed in the same ways).
  defaultAgentTokenFile = "/var/lib/loadlab-secrets/agent-token";

  # The token a controller shows the loadgen agents and they check (one line, 16
  # characters or more), read as a systemd credential: every loadgen host and every
  # controller (the first loadgen host's run unit, `loadlab serve`) need a copy.
  agentTokenFile = lib.mkOption {
    type = lib.types.str;
    default = defaultAgentTokenFile;
    description = ''
      File holding the loadgen agents' shared token (its first line, 16 characters or
      more, e.g. 32 hex digits), read as a systemd credential when the unit starts:
      the agents accept work only from a controller that shows it. Every loadgen host
      and every controller (the run unit on the first loadgen host, `loadlab serve`)
      needs a copy. Nothing in these modules creates it: `nix run .#deploy-vbox` hands
      it to its VMs (which write it here at every boot); on real hosts put it here
      once, or point this option at the file your secrets tool recreates at each
      boot. Never a path in the Nix store (the store is world-readable).
    '';
  };

  # The assertion every unit reading the token makes.
  agentTokenNotInStore = file: owner: {
    assertion = !(lib.hasPrefix "${builtins.storeDir}/" (toString file));
    message = "${owner} = \"${toString file}\" is in the Nix store, which every user can read: give a file outside it";
  };

  port =
    service: description:
    lib.mkOption {
      type = lib.types.port;
      default = topology.ports.${service};
      defaultText = lib.literalMD "`[ports] ${service}` of the topology (${toString topology.ports.${service}})";
      inherit description;
    };

  settings =
    {
      default,
      source,
      program,
      example ? { },
    }:
    lib.mkOption {
      type =
        with lib.types;
        attrsOf (oneOf [
          str
          int
          float
          bool
          (listOf str)
        ]);
      inherit default example;
      defaultText = lib.literalMD "`${source}` of the topology";
      description = ''
        Long options of `${program}` (see `${program} --help`): `pool-size = 32` becomes
        `--pool-size 32`, `true` a bare flag, a list repeats the option.
      '';
    };
}
