# Powers off and deletes the lab's VMs (sourced by `nix run .#destroy-vbox`, which sets
# LOADLAB_HOSTS: one line per host, "name address"; no images, so destroying builds
# nothing). The host-only network and the password in ~/.local/state/loadlab stay, so
# a later deploy-vbox reuses them.
if ! command -v VBoxManage >/dev/null 2>&1; then
  echo "destroy-vbox: VBoxManage not found; nothing to do." >&2
  exit 1
fi
while read -r name _; do
  vm="loadlab-$name"
  if VBoxManage showvminfo "$vm" >/dev/null 2>&1; then
    VBoxManage controlvm "$vm" poweroff >/dev/null 2>&1 || true
    VBoxManage unregistervm "$vm" --delete
    echo "destroy-vbox: removed $vm"
  else
    echo "destroy-vbox: $vm does not exist"
  fi
done < "$LOADLAB_HOSTS"
