# `nix-instantiate --eval --strict --json --arg topologyFile ./topology.toml nixos/lib/derived.nix`
# prints what the NixOS side derives from a topology; `loadlab topology --topology PATH`
# prints what the lab derives. lab/tests/nix.rs checks they are equal.
{
  topologyFile ? ../../topology.toml,
}:
(import ./topology.nix { inherit topologyFile; }).derived
