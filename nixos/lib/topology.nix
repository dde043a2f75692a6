# The facts the NixOS side derives from topology.toml: hosts, addresses, roles, the
# ports each host serves (its firewall), what Prometheus scrapes, and the flags each
# program gets. Builtins only (no nixpkgs), so CI evaluates it with Debian's
# nix-instantiate and compares the result with `loadlab topology` (lab/tests/nix.rs):
# the lab and the VM network cannot drift apart.
#
#   import ./topology.nix { topologyFile = ../../topology.toml; }
{
  topologyFile ? ../../topology.toml,
}:
let
  topology = builtins.fromTOML (builtins.readFile topologyFile);
  inherit (topology) ports hosts;

  # Which services each role serves (the lab's Role::services).
  roleServices = {
    database = [ "postgresql" "postgres-exporter" ];
    device-api = [ "device-api" ];
    grpc-stress = [ "grpc-stress" "grpc-stress-metrics" ];
    monitoring = [ "prometheus" "pushgateway" "grafana" ];
    # /metrics, and the agent a controller drives.
    loadgen = [ "loadgen" "loadgen-agent" ];
  };
  # Roles several hosts may play (the lab's Role::several): load generators.
  severalRoles = [ "loadgen" ];
  allRoles = builtins.attrNames roleServices;

  # The Prometheus job of each scraped service; the rules and dashboards in
  # monitoring/ select on these job names.
  scrapeJobOf = {
    device-api = "device-api";
    grpc-stress-metrics = "grpc-stress";
    loadgen = "loadgen";
    prometheus = "prometheus";
    pushgateway = "pushgateway";
    node-exporter = "node";
    postgres-exporter = "postgres";
  };

  hasRole = role: host: builtins.elem role host.roles;
  hostsWith = role: builtins.filter (hasRole role) hosts;
  hostServices = host: builtins.concatMap (role: roleServices.${role}) host.roles ++ [ "node-exporter" ];

  # Checks the Nix side relies on (the lab checks these and more, with friendlier
  # messages: run `loadlab topology` first).
  check =
    let
      names = map (host: host.name) hosts;
      addresses = map (host: host.address) hosts;
      unique = list: builtins.length list == builtins.length (builtins.attrNames (builtins.listToAttrs (map (x: { name = x; value = null; }) list)));
      inNetwork = address: builtins.match "192\\.168\\.56\\.([0-9]+)" address != null;
      badRoles = builtins.filter (role: !(builtins.hasAttr role roleServices)) (builtins.concatMap (host: host.roles) hosts);
      required = builtins.filter (role: role != "grpc-stress") allRoles;
      single = builtins.filter (role: !(builtins.elem role severalRoles)) required;
      missing = builtins.filter (role: builtins.length (hostsWith role) != 1) single;
      unplayed = builtins.filter (role: hostsWith role == [ ]) severalRoles;
      outside = builtins.filter (host: !(inNetwork host.address)) hosts;
    in
    if !(unique names) then throw "topology: duplicate host names in ${toString topologyFile}"
    else if !(unique addresses) then throw "topology: duplicate addresses in ${toString topologyFile}"
    else if badRoles != [ ] then throw "topology: unknown roles ${builtins.toJSON badRoles}"
    else if missing != [ ] then throw "topology: roles ${builtins.toJSON missing} need exactly one host each"
    else if unplayed != [ ] then throw "topology: roles ${builtins.toJSON unplayed} need at least one host each"
    else if outside != [ ] then throw "topology: ${(builtins.head outside).name} is outside 192.168.56.0/24"
    else true;

  # `key = value` as long options, keys sorted: true is a bare flag, false is left
  # out, a list repeats the option (the lab's topology::flags).
  scalar = value: if builtins.isString value then value else if builtins.isFloat value then builtins.toJSON value else toString value;
  flags =
    table:
    builtins.concatMap (
      key:
      let
        value = table.${key};
      in
      if value == true then [ "--${key}" ]
      else if value == false then [ ]
      else if builtins.isList value then builtins.concatMap (item: [ "--${key}" (scalar item) ]) value
      else [ "--${key}" (scalar value) ]
    ) (builtins.attrNames table);

  sortNumbers = builtins.sort builtins.lessThan;

  derivedHost = host: {
    inherit (host) address vcpus memory_mib roles;
    open_tcp_ports = sortNumbers (map (service: ports.${service}) (hostServices host));
  };

  scrapeJobs =
    let
      scraped = builtins.filter (service: builtins.hasAttr service scrapeJobOf) (builtins.attrNames ports);
      targetsOf = service: map (host: "${host.address}:${toString ports.${service}}") (builtins.filter (host: builtins.elem service (hostServices host)) hosts);
      jobs = map (service: { name = scrapeJobOf.${service}; value = targetsOf service; }) scraped;
    in
    builtins.listToAttrs (builtins.filter (job: job.value != [ ]) jobs);

  settings = topology.settings or { };
  plans = topology.plans or { };

  # The host of a role one host plays (of several, the first).
  hostOf = role: builtins.head (hostsWith role);
in
assert check;
{
  inherit topology ports hosts flags hostsWith hasRole hostOf;
  scrapeInterval = topology.lab.scrape_interval;

  # Host name → its derived facts.
  hostsByName = builtins.listToAttrs (map (host: { name = host.name; value = host; }) hosts);

  # What lab/tests/nix.rs compares with `loadlab topology`.
  derived = {
    hosts = builtins.listToAttrs (map (host: { name = host.name; value = derivedHost host; }) hosts);
    scrape_jobs = scrapeJobs;
    settings = builtins.mapAttrs (program: table: flags table) settings;
    plans = builtins.mapAttrs (name: plan: flags plan.loadgen) plans;
  };

  # Program → its flags from [settings.<program>].
  settingsFlags = program: flags (settings.${program} or { });
  # Plan → its `loadgen breakpoint` flags, its description and the role it targets.
  inherit plans;
  defaultPlan = topology.lab.default_plan;
}
