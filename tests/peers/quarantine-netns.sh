#!/usr/bin/env bash
# quarantine-netns.sh - a camera port, a camera and a fake internet in three namespaces
# for the camera quarantine test (tests/tests/quarantine.rs).
#
#   [ns $PFX-cam]  eth0 (MAC 02:00:00:00:79:02): the misbehaving camera. Its address comes
#                  from DHCP on the camera port, or `static` gives it 10.79.0.2/24; `v6`
#                  gives it 2001:db8:79::2/64 (static gives it too).
#        |  veth
#   [ns $PFX-gw]   cam0 10.79.0.1/24 2001:db8:79::1/64 (the camera port), wan0
#                  198.51.100.2/24 2001:db8:100::2/64, default routes to the wan side;
#                  IPv4 and IPv6 forwarding on (a router, as the gateway's box is)
#        |  veth
#   [ns $PFX-wan]  wan1 198.51.100.1/24 2001:db8:100::1/64, the fake cloud's addresses
#                  203.0.113.50 and 2001:db8:50::50 (P2P server), 198.51.100.7 (cloud),
#                  198.51.100.53 (hard-coded DNS) on lo; routes back through the gateway.
#
# Nothing is linked to the host namespace. PFX must start with "qr" (this helper's tests).
# Usage: quarantine-netns.sh up | down | static | router
set -euo pipefail
: "${PFX:?set PFX}"
case "$PFX" in qr*) ;; *) echo "PFX must start with qr" >&2; exit 2 ;; esac
GW=$PFX-gw CAM=$PFX-cam WAN=$PFX-wan

. "$(dirname "$0")/netns-lib.sh"

down() { kill_ns "$CAM"; kill_ns "$GW"; kill_ns "$WAN"; }

up() {
  down
  for n in "$GW" "$CAM" "$WAN"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  ip link add "$PFX-c" netns "$GW" type veth peer name "$PFX-e" netns "$CAM"
  ip -n "$GW" link set "$PFX-c" name cam0
  ip -n "$CAM" link set "$PFX-e" name eth0
  ip -n "$CAM" link set eth0 address 02:00:00:00:79:02
  ip -n "$GW" addr add 10.79.0.1/24 dev cam0
  ip -n "$GW" link set cam0 up
  ip -n "$CAM" link set eth0 up
  ip link add "$PFX-w" netns "$GW" type veth peer name "$PFX-x" netns "$WAN"
  ip -n "$GW" link set "$PFX-w" name wan0
  ip -n "$WAN" link set "$PFX-x" name wan1
  ip -n "$GW" addr add 198.51.100.2/24 dev wan0
  ip -n "$WAN" addr add 198.51.100.1/24 dev wan1
  ip -n "$GW" link set wan0 up
  ip -n "$WAN" link set wan1 up
  ip -n "$GW" route add default via 198.51.100.1 dev wan0
  ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1
  for a in 203.0.113.50 198.51.100.7 198.51.100.53; do ip -n "$WAN" addr add "$a/32" dev lo; done
  ip -n "$WAN" route add 10.79.0.0/24 via 198.51.100.2 dev wan1
  # IPv6 too (documentation prefix 2001:db8::/32): the camera port, the wan link and the
  # P2P server's IPv6 address.
  ip netns exec "$GW" sysctl -qw net.ipv6.conf.all.forwarding=1
  ip -n "$GW" addr add 2001:db8:79::1/64 dev cam0 nodad
  ip -n "$GW" addr add 2001:db8:100::2/64 dev wan0 nodad
  ip -n "$WAN" addr add 2001:db8:100::1/64 dev wan1 nodad
  ip -n "$GW" -6 route add default via 2001:db8:100::1 dev wan0
  ip -n "$WAN" addr add 2001:db8:50::50/128 dev lo nodad
  ip -n "$WAN" -6 route add 2001:db8:79::/64 via 2001:db8:100::2 dev wan1
  ip -n "$CAM" route add 224.0.0.0/4 dev eth0
}

# The camera with a fixed address and the gateway's box as its router (no camera port).
static() {
  ip -n "$CAM" addr flush dev eth0
  ip -n "$CAM" addr add 10.79.0.2/24 dev eth0
  ip -n "$CAM" route replace default via 10.79.0.1 dev eth0
  v6
}

# The camera's IPv6 address and route, fixed as some firmwares have them (the gateway
# sends no router advertisements on the camera port).
v6() {
  ip -n "$CAM" addr replace 2001:db8:79::2/64 dev eth0 nodad
  ip -n "$CAM" -6 route replace default via 2001:db8:79::1 dev eth0
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  static) static ;;
  v6) v6 ;;
  *) echo "usage: quarantine-netns.sh up|down|static|v6" >&2; exit 2 ;;
esac
