# Option constructors the role modules share, so each option kind is written once:
# a port whose default is the topology's, a program's `settings` (its long options,
# rendered by nixos/lib/topology.nix's `flags`), and the database password's file.
lib: topology: rec {
  # Where the VirtualBox guests put the password deploy-vbox hands them.
  defaultPasswordFile = "/run/loadlab-secrets/db-password";

  passwordFile = lib.mkOption {
    type = lib.types.str;
    default = defaultPasswordFile;
    description = ''
      File holding device-api's database password (URL-safe characters, e.g. hex),
      read as a systemd credential; the database and device-api hosts each need a copy.
      Never a store path outside tests: deploy it out of band (`nix run .#deploy-vbox`
      hands it to its VMs; on real hosts, your secrets tool).
    '';
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
