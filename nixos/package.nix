# The whole workspace in one build: device-api, grpc-stress, loadgen and loadlab (the
# libraries loadlab-supervise and loadlab-telemetry in them; loadlab-fixtures, a
# dev-dependency, is in the source only because the workspace lists it).
# Nothing beyond Rust is needed at build time: the .proto files are compiled by protox
# (no protoc), sqlx queries are checked at run time (no database), and TLS is rustls
# on ring. The unit tests run in the build; the integration tests need real servers
# (PostgreSQL, Prometheus, …) and run in CI (`scripts/test`) and in the VM test.
{
  lib,
  rustPlatform,
}:
let
  root = ../.;
in
rustPlatform.buildRustPackage {
  pname = "loadlab";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package.version;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../app
      ../fixtures
      ../lab
      ../loadgen
      ../proto
      ../stress
      ../supervise
      ../telemetry
      ../monitoring
      ../topology.toml
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [ "--workspace" "--bins" ];
  cargoTestFlags = [ "--workspace" "--lib" ];

  postInstall = ''
    # The monitoring files loadlab run and loadgen read (rules, bottleneck signals).
    mkdir -p $out/share/loadlab
    cp -r ${../monitoring} $out/share/loadlab/monitoring
    cp ${../topology.toml} $out/share/loadlab/topology.toml
  '';

  meta = {
    description = "A reproducible load-testing lab: device-api, grpc-stress, loadgen and loadlab";
    homepage = "https://github.com/loadlab/loadlab";
    license = with lib.licenses; [
      mit
      asl20
    ];
    platforms = lib.platforms.linux;
    mainProgram = "loadlab";
  };
}
