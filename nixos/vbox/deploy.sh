# Deploys the lab's hosts as VirtualBox VMs (sourced by `nix run .#deploy-vbox`, which
# sets LOADLAB_HOSTS: one line per host, "name address vcpus memory_mib image", and
# LOADLAB_HEALTH: one line per service, "name url"). Idempotent: a VM whose image is
# unchanged is left as it is (started if stopped); a changed image replaces the VM.

network_ip=192.168.56.1
state_dir="${XDG_STATE_HOME:-$HOME/.local/state}/loadlab"

if ! command -v VBoxManage >/dev/null 2>&1; then
  echo "deploy-vbox: VBoxManage not found. Install VirtualBox (NixOS: virtualisation.virtualbox.host.enable = true) and try again." >&2
  exit 1
fi

# The host-only network: reuse the interface that has 192.168.56.1, else make one.
hostonly_interface() {
  VBoxManage list hostonlyifs | awk -v ip="$network_ip" '
    /^Name:/ { name = $2 }
    /^IPAddress:/ && $2 == ip { print name; exit }'
}
interface=$(hostonly_interface)
if [ -z "$interface" ]; then
  created=$(VBoxManage hostonlyif create 2>&1) || { echo "deploy-vbox: cannot create a host-only network: $created" >&2; exit 1; }
  interface=$(printf '%s\n' "$created" | sed -n "s/.*Interface '\([^']*\)'.*/\1/p")
  if ! error=$(VBoxManage hostonlyif ipconfig "$interface" --ip "$network_ip" --netmask 255.255.255.0 2>&1); then
    echo "deploy-vbox: VirtualBox refused $network_ip/24 on $interface: $error" >&2
    echo "VirtualBox allows host-only addresses in 192.168.56.0/21 only, unless /etc/vbox/networks.conf lists others (e.g. '* 192.168.56.0/21')." >&2
    exit 1
  fi
fi
echo "deploy-vbox: host-only network $interface ($network_ip/24)"

# The database password, the loadgen agents' token and the deployer's SSH key, handed
# to the VMs as guest properties (never in an image or the Nix store).
mkdir -p "$state_dir"
for secret in db-password agent-token; do
  if [ ! -s "$state_dir/$secret" ]; then
    (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$state_dir/$secret")
  fi
done
password=$(cat "$state_dir/db-password")
agent_token=$(cat "$state_dir/agent-token")
ssh_key=""
for candidate in "$HOME/.ssh/id_ed25519.pub" "$HOME/.ssh/id_rsa.pub"; do
  if [ -s "$candidate" ]; then ssh_key=$(cat "$candidate"); break; fi
done

vm_exists() { VBoxManage showvminfo "$1" >/dev/null 2>&1; }
vm_running() { VBoxManage showvminfo "$1" --machinereadable | grep -q '^VMState="running"'; }

power_off() {
  local vm=$1
  if vm_running "$vm"; then
    VBoxManage controlvm "$vm" acpipowerbutton || true
    for _ in $(seq 60); do vm_running "$vm" || return 0; sleep 1; done
    VBoxManage controlvm "$vm" poweroff || true
  fi
}

while read -r name address vcpus memory image; do
  vm="loadlab-$name"
  ova=$(find "$image" -name '*.ova' | head -n 1)
  if [ -z "$ova" ]; then
    echo "deploy-vbox: no .ova in $image" >&2
    exit 1
  fi
  octet=${address##*.}
  mac=$(printf '0800275638%02x' "$octet")
  if vm_exists "$vm"; then
    current=$(VBoxManage getextradata "$vm" loadlab/image | sed -n 's/^Value: //p')
    if [ "$current" != "$ova" ]; then
      echo "deploy-vbox: $vm: new image, replacing the VM"
      power_off "$vm"
      VBoxManage unregistervm "$vm" --delete
    fi
  fi
  if ! vm_exists "$vm"; then
    echo "deploy-vbox: $vm: importing $ova"
    VBoxManage import "$ova" --vsys 0 --vmname "$vm" --memory "$memory" --cpus "$vcpus"
    VBoxManage setextradata "$vm" loadlab/image "$ova"
  fi
  if ! vm_running "$vm"; then
    VBoxManage modifyvm "$vm" --memory "$memory" --cpus "$vcpus" \
      --nic2 hostonly --hostonlyadapter2 "$interface" --macaddress2 "$mac"
  fi
  VBoxManage guestproperty set "$vm" /loadlab/db-password "$password" --flags RDONLYGUEST
  VBoxManage guestproperty set "$vm" /loadlab/agent-token "$agent_token" --flags RDONLYGUEST
  if [ -n "$ssh_key" ]; then
    VBoxManage guestproperty set "$vm" /loadlab/ssh-key "$ssh_key" --flags RDONLYGUEST
  fi
  if ! vm_running "$vm"; then
    echo "deploy-vbox: $vm: starting ($address, $vcpus vCPU, $memory MiB)"
    VBoxManage startvm "$vm" --type headless
  else
    echo "deploy-vbox: $vm: already running ($address)"
  fi
done < "$LOADLAB_HOSTS"

echo "deploy-vbox: waiting for every service (at most 10 minutes)"
deadline=$((SECONDS + 600))
while read -r service url; do
  until curl -fsS -o /dev/null --max-time 2 "$url"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "deploy-vbox: $service ($url) did not answer; look with: VBoxManage startvm <vm> --type separate, or ssh root@<address> journalctl" >&2
      exit 1
    fi
    sleep 2
  done
  printf '  %-28s %s\n' "$service" "$url"
done < "$LOADLAB_HEALTH"

echo
echo "The lab is up. Grafana's admin password: ssh root@<monitor address> cat /var/lib/loadlab-grafana-secrets/admin-password"
echo "loadgen ran the default plan at boot through every loadgen host's agent; its results: /var/lib/loadlab-loadgen/results/ on the first loadgen host (run it again: ssh root@<its address> systemctl restart loadlab-loadgen)."
