# `nix run .#lab -- run`: loadlab with every server it starts on its PATH:
# PostgreSQL 17 with TimescaleDB (Apache build; loadlab preloads it when present),
# Prometheus, the Pushgateway, node and postgres exporters, and iproute2/util-linux
# for `--isolation netns`. (nixpkgs names the exporters `node_exporter`, …; loadlab
# looks for both those and Debian's names.)
{
  writeShellApplication,
  loadlab,
  postgresql_17,
  prometheus,
  prometheus-pushgateway,
  prometheus-node-exporter,
  prometheus-postgres-exporter,
  iproute2,
  util-linux,
}:
writeShellApplication {
  name = "loadlab";
  runtimeInputs = [
    loadlab
    (postgresql_17.withPackages (ps: [ ps.timescaledb-apache ]))
    prometheus
    prometheus-pushgateway
    prometheus-node-exporter
    prometheus-postgres-exporter
    iproute2
    util-linux
  ];
  text = ''
    exec loadlab "$@"
  '';
}
