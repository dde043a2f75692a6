# `nix run .#deploy-vbox` and `nix run .#destroy-vbox`: the scripts in this directory
# with the hosts of the topology. deploy-vbox's hosts file names each host's built
# VirtualBox image (building that app builds every image); destroy-vbox's names the
# hosts only, so deleting the VMs never builds anything. VBoxManage comes from the
# machine's own VirtualBox, whose kernel modules must match it.
{
  lib,
  writeShellApplication,
  writeText,
  coreutils,
  curl,
  findutils,
  gawk,
  gnugrep,
  gnused,
  topology,
  images,
}:
let
  inherit (topology) ports;
  # One line per host: "name address vcpus memory_mib image" (deploy.sh).
  hostsFile = writeText "loadlab-hosts" (
    lib.concatMapStrings (
      host:
      "${host.name} ${host.address} ${toString host.vcpus} ${toString host.memory_mib} ${images.${host.name}}\n"
    ) topology.hosts
  );
  # One line per host: "name address" (destroy.sh); no image, so nothing is built.
  hostNamesFile = writeText "loadlab-host-names" (
    lib.concatMapStrings (host: "${host.name} ${host.address}\n") topology.hosts
  );
  at = role: port: "http://${(topology.hostOf role).address}:${toString port}";
  health = [
    [ "device-api" "${at "device-api" ports.device-api}/ready" ]
    [ "Prometheus" "${at "monitoring" ports.prometheus}/-/ready" ]
    [ "Pushgateway" "${at "monitoring" ports.pushgateway}/-/ready" ]
    [ "Grafana" "${at "monitoring" ports.grafana}/api/health" ]
    [ "postgres-exporter" "${at "database" ports.postgres-exporter}/metrics" ]
  ]
  ++ lib.optional (topology.hostsWith "grpc-stress" != [ ]) [
    "grpc-stress-metrics"
    "${at "grpc-stress" ports.grpc-stress-metrics}/metrics"
  ]
  ++ map (host: [ "loadgen-agent-${host.name}" "http://${host.address}:${toString ports.loadgen}/metrics" ]) (
    topology.hostsWith "loadgen"
  )
  ++ map (host: [ "node-exporter-${host.name}" "http://${host.address}:${toString ports.node-exporter}/metrics" ]) topology.hosts;
  healthFile = writeText "loadlab-health" (lib.concatMapStrings (check: "${lib.concatStringsSep " " check}\n") health);
  runtimeInputs = [
    coreutils
    curl
    findutils
    gawk
    gnugrep
    gnused
  ];
in
{
  deploy = writeShellApplication {
    name = "loadlab-deploy-vbox";
    inherit runtimeInputs;
    text = ''
      LOADLAB_HOSTS=${hostsFile}
      LOADLAB_HEALTH=${healthFile}
    ''
    + builtins.readFile ./deploy.sh;
  };
  destroy = writeShellApplication {
    name = "loadlab-destroy-vbox";
    inherit runtimeInputs;
    text = ''
      LOADLAB_HOSTS=${hostNamesFile}
    ''
    + builtins.readFile ./destroy.sh;
  };
}
