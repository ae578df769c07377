#!/usr/bin/env bash
# onvif-netns.sh - a home LAN in two network namespaces for the ONVIF onboarding tests.
#
#   [ns $PFX-gw]  lan0 10.78.0.1/24  (the gateway; discovery probes go out here)
#                 wan0 198.51.100.2/24, default route via 198.51.100.1 (TEST-NET "internet":
#                 nothing answers there; a capture on it must stay empty of discovery)
#        |  veth
#   [ns $PFX-cam] eth0 10.78.0.2/24  (the RTSP camera and the ONVIF peer)
#
# Nothing is linked to the host namespace. PFX must start with "onv" (this helper's tests).
# Usage: onvif-netns.sh up | down
set -euo pipefail
: "${PFX:?set PFX}"
case "$PFX" in onv*) ;; *) echo "PFX must start with onv" >&2; exit 2 ;; esac
GW=$PFX-gw CAM=$PFX-cam

. "$(dirname "$0")/netns-lib.sh"

down() { kill_ns "$GW"; kill_ns "$CAM"; }

up() {
  down
  ip netns add "$GW"
  ip netns add "$CAM"
  # No IPv6 duplicate-address detection: an address leaving "tentative" a second after
  # the links come up is a network change to Chromium (the browser test runs in $GW), which
  # then aborts its navigation with ERR_NETWORK_CHANGED.
  for n in "$GW" "$CAM"; do
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  ip -n "$GW" link set lo up
  ip -n "$CAM" link set lo up
  ip link add "$PFX-l0" netns "$GW" type veth peer name "$PFX-c0" netns "$CAM"
  ip -n "$GW" link set "$PFX-l0" name lan0
  ip -n "$CAM" link set "$PFX-c0" name eth0
  ip -n "$GW" addr add 10.78.0.1/24 dev lan0
  ip -n "$CAM" addr add 10.78.0.2/24 dev eth0
  ip -n "$GW" link set lan0 up
  ip -n "$CAM" link set eth0 up
  # The "internet" side: a veth whose other end (wan1) stays in the namespace with no
  # address, and a default route through it, so a probe sent the wrong way would be seen
  # by a capture on wan0 and reach nobody.
  ip -n "$GW" link add wan0 type veth peer name wan1
  ip -n "$GW" link set wan1 up
  ip -n "$GW" addr add 198.51.100.2/24 dev wan0
  ip -n "$GW" link set wan0 up
  ip -n "$GW" route add default via 198.51.100.1 dev wan0
  ip -n "$CAM" route add 224.0.0.0/4 dev eth0
  settle "$GW"
  settle "$CAM"
}


case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: onvif-netns.sh up|down" >&2; exit 2 ;;
esac
