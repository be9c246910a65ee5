#!/usr/bin/env bash
# The Debian packages the test suite talks to (real peers for interop tests) — the one list that
# `npm test` and `.ci/run` both install from.
#
#   bash scripts/peers.sh list      print the packages, one per line
#   bash scripts/peers.sh missing   print the packages not installed (exit 0 either way)
#   bash scripts/peers.sh install   install the missing ones: apt-get as root, sudo otherwise;
#                                   when neither works, one line naming them and exit 1
set -uo pipefail

PEERS=(
  python3 python3-numpy python3-pyepics python3-zmq python3-cbor2 python3-lz4 bitshuffle # Python peers
  libca-dev gcc libc6-dev       # C client linked with EPICS's libca
  binutils                      # nm (symbols of the Harp stand-in library)
  libsixel-bin imagemagick      # sixel decoders for the viewer tests
  systemd                       # systemd-analyze verify of the unit file
  aravis-tools aravis-tools-cli # GigE Vision fake camera and arv-tool
  git                           # version stamp (git describe)
)

missing() {
  local p
  for p in "${PEERS[@]}"; do
    # "ii" = installed; a removed package whose config files remain reports "rc".
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | cut -c1-2)" = "ii" ] || echo "$p"
  done
}

fail() {
  echo "diss-ioc tests: missing Debian packages: $* — install them with: sudo apt-get install -y $*" >&2
  exit 1
}

install_missing() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    fail "${PEERS[@]}"
  fi
  local need
  need=$(missing | tr '\n' ' ')
  need=${need% }
  [ -z "$need" ] && return 0
  local run=()
  if [ "$(id -u)" -eq 0 ]; then
    run=()
  elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    run=(sudo)
  else
    fail $need
  fi
  echo "diss-ioc tests: installing Debian packages: $need" >&2
  local log
  log=$(mktemp)
  # apt's own chatter goes to a file, shown only when the installation fails.
  # shellcheck disable=SC2086
  if ! "${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 ||
    ! "${run[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $need >>"$log" 2>&1; then
    tail -n 5 "$log" >&2
    rm -f "$log"
    fail $need
  fi
  rm -f "$log"
  need=$(missing | tr '\n' ' ')
  [ -z "$need" ] || fail ${need% }
}

case "${1:-}" in
  list) printf '%s\n' "${PEERS[@]}" ;;
  missing) missing ;;
  install) install_missing ;;
  *) echo "usage: bash scripts/peers.sh list|missing|install" >&2; exit 2 ;;
esac
