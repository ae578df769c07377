# netns-lib.sh - shell functions the namespace scripts share (sourced, not run):
# onvif-netns.sh, quarantine-netns.sh and netns-upnp.sh.

# Stops every process in namespace $1, then deletes it (its veths and nft state go with
# it). Every process in a namespace these scripts created was started there by the test.
kill_ns() {
  local n=$1 p
  ip netns list 2>/dev/null | grep -qw "^$n" || return 0
  for p in $(ip netns pids "$n" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 30); do [ -z "$(ip netns pids "$n" 2>/dev/null)" ] && break; sleep 0.1; done
  for p in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  ip netns del "$n" 2>/dev/null || true
}

# Waits (up to 5 s) until no address in namespace $1 is still tentative, so the network is
# quiet before any test peer starts in it (Chromium aborts a navigation on an address
# change with ERR_NETWORK_CHANGED).
settle() {
  for _ in $(seq 50); do
    [ -z "$(ip -n "$1" addr show tentative)" ] && return 0
    sleep 0.1
  done
  echo "addresses in $1 still tentative after 5 s" >&2
  return 1
}
