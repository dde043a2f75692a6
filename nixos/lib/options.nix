# Option constructors the role modules share, so each option kind is written once:
# a port whose default is the topology's, and a program's `settings` (its long
# options, rendered by nixos/lib/topology.nix's `flags`).
lib: topology: {
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
