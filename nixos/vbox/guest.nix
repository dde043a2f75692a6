# What a loadlab host needs as a VirtualBox guest (added to each
# nixosConfigurations.<host>; the VirtualBox image module itself comes from
# `system.build.images.virtualbox`, nixos/modules/image/images.nix): the memory and
# CPUs of the topology, the second adapter on the host-only network with a MAC derived
# from the address, predictable `eth0`/`eth1` names, and the database password handed
# in by `deploy-vbox` as a guest property (never in the store).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.loadlab;
  host = cfg.topology.hostsByName.${cfg.hostName};
  lastOctet = lib.toInt (lib.last (lib.splitString "." host.address));
  secret = (import ../lib/options.nix lib cfg.topology).defaultPasswordFile;
  usesPassword = config.services.loadlab.database.enable || config.services.loadlab.device-api.enable;
in
{
  # nixos/modules/image/images.nix: image.modules.<variant> (a list of modules).
  image.modules.virtualbox = [
    {
      virtualbox = {
        vmName = "loadlab-${cfg.hostName}";
        memorySize = host.memory_mib;
        params = {
          cpus = host.vcpus;
          nic2 = "hostonly";
          hostonlyadapter2 = "vboxnet0";
          macaddress2 = "0800275638" + lib.fixedWidthString 2 "0" (lib.toHexString lastOctet);
        };
      };
    }
  ];

  # The disk layout and boot loader the VirtualBox image has (the same values
  # nixos/modules/virtualisation/virtualbox-image.nix sets inside the image variant),
  # so that `nixos-rebuild switch --flake .#HOST --target-host …` on a running VM
  # builds a system that boots the same way. nixos/modules/tasks/filesystems.nix:
  # fileSystems; nixos/modules/system/boot/loader/grub/grub.nix: boot.loader.grub.device;
  # nixos/modules/system/boot/grow-partition.nix: boot.growPartition;
  # nixos/modules/virtualisation/virtualbox-guest.nix: virtualisation.virtualbox.guest.enable.
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    autoResize = true;
    fsType = "ext4";
  };
  boot.growPartition = true;
  boot.loader.grub.device = "/dev/sda";
  virtualisation.virtualbox.guest.enable = true;

  # nixos/modules/tasks/network-interfaces.nix: networking.usePredictableInterfaceNames.
  networking.usePredictableInterfaceNames = false;
  services.loadlab.interface = "eth1";

  # nixos/modules/services/networking/firewall.nix: networking.firewall.allowedTCPPorts.
  # Root over SSH with the deployer's key (handed in as a guest property, see
  # loadlab-guest-properties below), for `nixos-rebuild --target-host`.
  # nixos/modules/services/networking/ssh/sshd.nix: services.openssh.{enable,settings}.
  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };
  networking.firewall.allowedTCPPorts = [ 22 ];

  # nixos/modules/misc/version.nix: system.stateVersion.
  system.stateVersion = "26.05";

  systemd.services.loadlab-ssh-key = {
    description = "Authorise the deployer's SSH key from the VirtualBox guest property";
    wantedBy = [ "multi-user.target" ];
    before = [ "sshd.service" ];
    serviceConfig.Type = "oneshot";
    script = ''
      value=$(${config.boot.kernelPackages.virtualboxGuestAdditions}/bin/VBoxControl --nologo guestproperty get /loadlab/ssh-key || true)
      case "$value" in
        "Value: "*)
          install -d -m 0700 /root/.ssh
          printf '%s\n' "''${value#Value: }" > /root/.ssh/authorized_keys
          chmod 0600 /root/.ssh/authorized_keys
          ;;
        *) echo "no /loadlab/ssh-key guest property: root login over SSH stays closed" ;;
      esac
    '';
  };

  systemd.services.loadlab-secrets = lib.mkIf usesPassword {
    description = "Fetch the lab's database password from the VirtualBox guest property";
    wantedBy = [ "multi-user.target" ];
    before = [
      "postgresql-setup.service"
      "loadlab-device-api.service"
    ];
    requiredBy = lib.optional config.services.loadlab.database.enable "postgresql-setup.service"
      ++ lib.optional config.services.loadlab.device-api.enable "loadlab-device-api.service";
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      RuntimeDirectory = "loadlab-secrets";
      RuntimeDirectoryMode = "0700";
      RuntimeDirectoryPreserve = true;
    };
    script = ''
      # boot.kernelPackages (nixos/modules/system/boot/kernel.nix) carries the guest
      # additions that virtualisation.virtualbox.guest.enable loads.
      value=$(${config.boot.kernelPackages.virtualboxGuestAdditions}/bin/VBoxControl --nologo guestproperty get /loadlab/db-password)
      case "$value" in
        "Value: "*) ;;
        *) echo "no /loadlab/db-password guest property (deploy with nix run .#deploy-vbox)" >&2; exit 1 ;;
      esac
      umask 077
      printf '%s' "''${value#Value: }" > ${secret}
    '';
  };
}
