# systemd hardening shared by loadlab's own units (device-api, grpc-stress, loadgen):
# no privileges, a read-only system, private /tmp and devices, no kernel access, only
# the address families a network service needs. Each unit adds its own state
# directory (StateDirectory) when it writes anything. Builtins only.
{
  DynamicUser = true;
  NoNewPrivileges = true;
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateDevices = true;
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  ProtectProc = "invisible";
  RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
  RestrictNamespaces = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  LockPersonality = true;
  MemoryDenyWriteExecute = true;
  SystemCallArchitectures = "native";
  SystemCallFilter = [ "@system-service" "~@privileged" ];
  CapabilityBoundingSet = "";
  UMask = "0077";
  # Load tests open many sockets (the original API unit had 40000).
  LimitNOFILE = 65536;
}
