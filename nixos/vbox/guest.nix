# What a loadlab host needs as a VirtualBox guest (added to each
# nixosConfigurations.<host>; the VirtualBox image module itself comes from
# `system.build.images.virtualbox`, nixos/modules/image/images.nix): the memory and
# CPUs of the topology, the second adapter on the host-only network with a MAC derived
# from the address, predictable `eth0`/`eth1` names, and the secrets the host reads
# (nixos/lib/secrets.nix: the database password, the loadgen agents' token) handed in
# by `deploy-vbox` as guest properties (never in the store or the image), written at
# every boot to the paths the modules read by default.
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
  # The secrets this host reads and the units that read them.
  secrets = import ../lib/secrets.nix { inherit lib config; };
  consumers = lib.unique (lib.concatMap (secret: secret.readers) secrets);
  # boot.kernelPackages (nixos/modules/system/boot/kernel.nix) carries the guest
  # additions that virtualisation.virtualbox.guest.enable installs and loads.
  vboxControl = "${config.boot.kernelPackages.virtualboxGuestAdditions}/bin/VBoxControl";
  # VBoxControl talks to the host through /dev/vboxguest (the guest driver; upstream's
  # udev rule tags it for systemd) next to VBoxService (`virtualbox.service`), both
  # from nixos/modules/virtualisation/virtualbox-guest.nix. A unit that reads a guest
  # property starts after both.
  afterGuestAdditions = {
    requires = [ "dev-vboxguest.device" ];
    wants = [ "virtualbox.service" ];
    after = [
      "dev-vboxguest.device"
      "virtualbox.service"
    ];
  };
  # `VBoxControl guestproperty get NAME`: prints the value, or nothing when the host
  # has no such property ("No value set!"). Any other failure (the guest driver or
  # service not answering yet) is retried for up to a minute, then reported on stderr.
  getProperty = pkgs.writeShellScript "loadlab-guest-property" ''
    for _ in $(seq 60); do
      output=$(${vboxControl} --nologo guestproperty get "$1" 2>&1) || true
      case "$output" in
        "Value: "*) printf '%s' "''${output#Value: }"; exit 0 ;;
        *"No value set!"*) exit 0 ;;
      esac
      sleep 1
    done
    echo "VBoxControl guestproperty get $1 failed for 60 s: $output" >&2
  '';
in
{
  # nixos/modules/image/images.nix: image.modules.<variant> (attrsOf deferredModule),
  # merged with upstream's own virtualbox variant module.
  image.modules.virtualbox = {
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
  };

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
  # loadlab-ssh-key below), for `nixos-rebuild --target-host`. (openssh's own
  # openFirewall opens 22 as well; stated here because the lab relies on it.)
  # nixos/modules/services/networking/ssh/sshd.nix: services.openssh.{enable,settings}.
  services.openssh = {
    enable = true;
    settings.PasswordAuthentication = false;
  };
  networking.firewall.allowedTCPPorts = [ 22 ];

  # nixos/modules/misc/version.nix: system.stateVersion.
  system.stateVersion = "26.05";

  systemd.services.loadlab-ssh-key = afterGuestAdditions // {
    description = "Authorise the deployer's SSH key from the VirtualBox guest property";
    wantedBy = [ "multi-user.target" ];
    before = [ "sshd.service" ];
    serviceConfig.Type = "oneshot";
    script = ''
      key=$(${getProperty} /loadlab/ssh-key)
      if [ -n "$key" ]; then
        install -d -m 0700 /root/.ssh
        printf '%s\n' "$key" > /root/.ssh/authorized_keys
        chmod 0600 /root/.ssh/authorized_keys
      else
        echo "no /loadlab/ssh-key guest property: root login over SSH stays closed"
      fi
    '';
  };

  # Before the units that read the secrets as credentials (PostgreSQL's setup,
  # device-api, the loadgen agent and run unit, loadlab serve), which are bound to this
  # unit: if a property is missing, they do not start, and this unit's journal says why.
  systemd.services.loadlab-secrets = lib.mkIf (consumers != [ ]) (
    afterGuestAdditions
    // {
      description = "Fetch the lab's secrets (${lib.concatMapStringsSep ", " (secret: secret.name) secrets}) from the VirtualBox guest properties";
      wantedBy = [ "multi-user.target" ];
      before = consumers;
      requiredBy = consumers;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        StateDirectory = "loadlab-secrets";
        StateDirectoryMode = "0700";
      };
      script = ''
        umask 077
      ''
      + lib.concatMapStrings (secret: ''
        value=$(${getProperty} /loadlab/${secret.name})
        if [ -z "$value" ]; then
          echo "no /loadlab/${secret.name} guest property for this VM (or VBoxControl could not read it, see above): deploy with nix run .#deploy-vbox, which sets it" >&2
          exit 1
        fi
        printf '%s' "$value" > ${secret.file}
      '') secrets;
    }
  );
}
