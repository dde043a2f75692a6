{
  description = "loadlab: a reproducible load-testing lab (device-api, grpc-stress, loadgen, Prometheus, Grafana) as a NixOS VM network, on real hosts, or on one machine";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # The topology, read with builtins.fromTOML: the same file `loadlab run` reads.
      topology = import ./nixos/lib/topology.nix { topologyFile = ./topology.toml; };

      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ self.overlays.default ];
        };
      forAllSystems = f: lib.genAttrs systems (system: f (pkgsFor system));

      # One module per role and `host`, which places a machine in the topology and
      # enables its roles. The imports form a tree (nixpkgs' pattern): every role module
      # imports nixos/modules/common.nix, where the shared options are declared once;
      # host.nix imports the role modules it enables; nothing imports its importer. So
      # each output works alone, and `default` brings them all.
      roleModules = {
        host = ./nixos/modules/host.nix;
        database = ./nixos/modules/database.nix;
        device-api = ./nixos/modules/device-api.nix;
        grpc-stress = ./nixos/modules/grpc-stress.nix;
        loadgen = ./nixos/modules/loadgen.nix;
        monitoring = ./nixos/modules/monitoring.nix;
        serve = ./nixos/modules/serve.nix;
      };
      # The modules default their package to `pkgs.loadlab` (the overlay); the flake's
      # outputs default it to this flake's build instead, because inside a NixOS test
      # pkgs is read-only and the overlay cannot be applied. One small module per role
      # with a `package` option, each with a `key`, so the module system applies it once
      # however many outputs are imported, and only beside the role that declares it.
      packagedRoles = [
        "device-api"
        "grpc-stress"
        "loadgen"
        "serve"
      ];
      ourPackage = role: {
        key = "loadlab-flake-package-${role}";
        imports = [
          (
            { lib, pkgs, ... }:
            {
              services.loadlab.${role}.package =
                lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.loadlab;
            }
          )
        ];
      };
      withOurPackage = name: module: {
        imports = [
          module
        ]
        ++ map ourPackage (if name == "host" then packagedRoles else lib.intersectLists [ name ] packagedRoles);
      };

      # A machine of the topology: every role module, placed as `name`.
      mkHost =
        {
          name,
          system ? "x86_64-linux",
          modules ? [ ],
        }:
        lib.nixosSystem {
          inherit system;
          modules = [
            self.nixosModules.default
            { services.loadlab.hostName = name; }
          ]
          ++ modules;
        };
    in
    {
      overlays.default = final: prev: { loadlab = final.callPackage ./nixos/package.nix { }; };

      packages = forAllSystems (
        pkgs:
        let
          program = name: pkgs.loadlab.overrideAttrs (old: { meta = old.meta // { mainProgram = name; }; });
        in
        {
          default = pkgs.loadlab;
          loadlab = pkgs.loadlab;
          device-api = program "device-api";
          grpc-stress = program "grpc-stress";
          loadgen = program "loadgen";
          # `loadlab run` with every server it starts on its PATH.
          lab = pkgs.callPackage ./nixos/lab.nix { };
        }
      );

      nixosModules =
        let
          roles = builtins.mapAttrs withOurPackage roleModules;
        in
        roles // { default.imports = builtins.attrValues roles; };

      # One configuration per host of topology.toml, as a VirtualBox guest (what
      # `nix run .#deploy-vbox` builds; `nixos-rebuild switch --flake .#app
      # --target-host root@192.168.56.102` updates a running VM). For real hardware use
      # `lib.mkHost` with your hardware configuration (see README).
      nixosConfigurations = builtins.listToAttrs (
        map (host: {
          inherit (host) name;
          value = mkHost {
            inherit (host) name;
            modules = [ ./nixos/vbox/guest.nix ];
          };
        }) topology.hosts
      );

      lib = {
        inherit mkHost topology;
      };

      apps = forAllSystems (
        pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
          lab = {
            type = "app";
            program = lib.getExe self.packages.${system}.lab;
            meta.description = "loadlab with PostgreSQL/TimescaleDB, Prometheus and the exporters on its PATH";
          };
          # The VMs are x86_64 guests (nixosConfigurations), for VirtualBox on x86_64.
          vbox = pkgs.callPackage ./nixos/vbox/apps.nix {
            inherit topology;
            images = builtins.mapAttrs (
              name: configuration: configuration.config.system.build.images.virtualbox
            ) self.nixosConfigurations;
          };
        in
        {
          inherit lab;
        }
        // lib.optionalAttrs (system == "x86_64-linux") {
          deploy-vbox = {
            type = "app";
            program = lib.getExe vbox.deploy;
            meta.description = "Build each host's VirtualBox image, import and start the VMs, wait until every service answers";
          };
          destroy-vbox = {
            type = "app";
            program = lib.getExe vbox.destroy;
            meta.description = "Power off and delete the lab's VMs";
          };
        }
      );

      checks = forAllSystems (pkgs: {
        package = pkgs.loadlab;
        network = pkgs.testers.runNixOSTest (
          import ./nixos/tests/network.nix {
            inherit topology;
            module = self.nixosModules.default;
          }
        );
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ pkgs.loadlab ];
          packages = with pkgs; [
            cargo
            clippy
            rustfmt
            rust-analyzer
            postgresql_17
            prometheus
            prometheus-pushgateway
            prometheus-node-exporter
            prometheus-postgres-exporter
            python3
            iproute2
            nixfmt
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
