#!/usr/bin/env bash
# netns-upnp.sh - a real UPnP IGD router (Debian's miniupnpd) in three network namespaces,
# for Latchkey's remote-access tests. Adapted from a recipe verified on Debian bookworm.
#
#   [ns $PFX-wan] eth0 $WAN_PEER / 2001:db8:113::2         the internet (a remote phone)
#        |  veth
#   [ns $PFX-rtr] wan0 $WAN_RTR / 2001:db8:113::1           miniupnpd ext_ifname
#                 lan0 192.168.77.1 / 2001:db8:77::1        miniupnpd listening_ip
#        |  veth
#   [ns $PFX-lan] eth0 192.168.77.2 (+ .3, a "camera") / 2001:db8:77::2   the gateway
#
# No address is linked to the host namespace, so no packet leaves the machine. Each test
# passes its own PFX and STATE, so parallel tests never share a namespace.
#
# Usage: netns-upnp.sh up | down | reboot-router | cam-map EXT INT | selftest
# Env:   PFX (namespace prefix, required)  STATE (a directory of this run's files, required)
#        IGD_V1=1   describe itself as IGDv1 (older routers)
#        CGNAT=1    the WAN side is 100.64.0.0/10: the router reports 100.64.0.1
set -euo pipefail

: "${PFX:?set PFX}" "${STATE:?set STATE}"
WAN=$PFX-wan RTR=$PFX-rtr LAN=$PFX-lan
if [ "${CGNAT:-0}" = 1 ]; then WAN_RTR=100.64.0.1 WAN_PEER=100.64.0.2; else WAN_RTR=203.0.113.1 WAN_PEER=203.0.113.2; fi
LAN_RTR=192.168.77.1 LAN_HOST=192.168.77.2 LAN_CAM=192.168.77.3
WAN6_RTR=2001:db8:113::1 WAN6_PEER=2001:db8:113::2
LAN6_RTR=2001:db8:77::1 LAN6_HOST=2001:db8:77::2
HTTP_PORT=5555
log() { echo "[netns-upnp $PFX] $*" >&2; }
inns() { local n=$1; shift; ip netns exec "$n" "$@"; }

need() {
  local c missing=()
  for c in miniupnpd upnpc nft socat curl python3; do command -v "$c" >/dev/null || missing+=("$c"); done
  # A missing router is a failure, never a skip: tests/run-all.sh installs these.
  [ "${#missing[@]}" = 0 ] || { log "missing commands: ${missing[*]} (install miniupnpd-nftables miniupnpc nftables socat curl)"; exit 1; }
}

. "$(dirname "$0")/netns-lib.sh"

down() {
  local n
  for n in "$LAN" "$RTR" "$WAN"; do kill_ns "$n"; done
  log "down"
}

write_files() {
  mkdir -p "$STATE"
  cat >"$STATE/stun.py" <<'PY'
# Minimal STUN binding responder: miniupnpd 2.3.x refuses to forward when its WAN address
# is private or reserved (203.0.113.0/24 is) unless ext_perform_stun confirms a 1:1 NAT.
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2])))
C = 0x2112A442
while True:
    d, (ip, p) = s.recvfrom(2048)
    if len(d) < 20 or d[:2] != b"\x00\x01": continue
    a = socket.inet_aton(ip)
    body = struct.pack("!HHBBH4s", 1, 8, 0, 1, p, a) + struct.pack(
        "!HHBBHI", 0x20, 8, 0, 1, p ^ (C >> 16), struct.unpack("!I", a)[0] ^ C)
    s.sendto(struct.pack("!HH", 0x0101, len(body)) + d[4:20] + body, (ip, p))
PY
  cat >"$STATE/miniupnpd.conf" <<CONF
ext_ifname=wan0
listening_ip=lan0
http_port=$HTTP_PORT
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
notify_interval=30
clean_ruleset_interval=600
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
friendly_name=netns test IGD
force_igd_desc_v1=$([ "${IGD_V1:-0}" = 1 ] && echo yes || echo no)
ext_perform_stun=yes
ext_stun_host=$WAN_PEER
ext_stun_port=3478
allow 1024-65535 192.168.77.0/24 1-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
  # Debian's nft_init.sh is broken in bookworm: load the table and chain names miniupnpd
  # 2.3.1 expects ourselves.
  cat >"$STATE/router.nft" <<'NFT'
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    jump miniupnpd
  }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    oifname "wan0" meta nfproto ipv4 masquerade
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
NFT
}

start_router() {
  local i
  # -d: foreground, logs to stderr; `ip netns exec` execs, so $! is miniupnpd's own PID
  ip netns exec "$RTR" miniupnpd -f "$STATE/miniupnpd.conf" -d -P "$STATE/miniupnpd.pidfile" \
    >>"$STATE/miniupnpd.log" 2>&1 &
  echo $! >"$STATE/miniupnpd.pid"
  for i in $(seq 100); do
    inns "$LAN" curl -sf -m 1 -o /dev/null "http://$LAN_RTR:$HTTP_PORT/rootDesc.xml" && return 0
    sleep 0.1
  done
  log "miniupnpd did not answer"; tail "$STATE/miniupnpd.log" >&2; exit 1
}

up() {
  need
  down 2>/dev/null
  write_files
  local n
  for n in "$WAN" "$RTR" "$LAN"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  ip link add wan0 netns "$RTR" type veth peer name eth0 netns "$WAN"
  ip link add lan0 netns "$RTR" type veth peer name eth0 netns "$LAN"
  ip -n "$RTR" addr add $WAN_RTR/24 dev wan0;  ip -n "$RTR" addr add $WAN6_RTR/64 dev wan0 nodad
  ip -n "$RTR" addr add $LAN_RTR/24 dev lan0;  ip -n "$RTR" addr add $LAN6_RTR/64 dev lan0 nodad
  ip -n "$WAN" addr add $WAN_PEER/24 dev eth0; ip -n "$WAN" addr add $WAN6_PEER/64 dev eth0 nodad
  ip -n "$LAN" addr add $LAN_HOST/24 dev eth0; ip -n "$LAN" addr add $LAN6_HOST/64 dev eth0 nodad
  ip -n "$LAN" addr add $LAN_CAM/24 dev eth0
  ip -n "$RTR" link set wan0 up; ip -n "$RTR" link set lan0 up
  ip -n "$WAN" link set eth0 up; ip -n "$LAN" link set eth0 up
  ip -n "$LAN" route add default via $LAN_RTR src $LAN_HOST
  ip -n "$LAN" -6 route add default via $LAN6_RTR
  ip -n "$WAN" -6 route add 2001:db8:77::/64 via $WAN6_RTR   # the "public" v6 prefix of the home
  inns "$RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  inns "$RTR" nft -f "$STATE/router.nft"
  ip netns exec "$WAN" python3 "$STATE/stun.py" $WAN_PEER 3478 >"$STATE/stun.log" 2>&1 &
  echo $! >"$STATE/stun.pid"
  sleep 0.2
  start_router
  log "up: IGD at http://$LAN_RTR:$HTTP_PORT/rootDesc.xml, external $WAN_RTR"
}

# A router reboot: miniupnpd stops, its rules go, it comes back with an empty table.
reboot_router() {
  local pid i
  pid=$(cat "$STATE/miniupnpd.pid")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  inns "$RTR" nft flush chain inet filter miniupnpd
  inns "$RTR" nft flush chain inet filter prerouting_miniupnpd
  inns "$RTR" nft flush chain inet filter postrouting_miniupnpd
  rm -f "$STATE/leases" "$STATE/leases6"
  start_router
  log "router rebooted"
}

# A camera at $LAN_CAM maps a port to itself, as cheap cameras do (secure mode lets a
# host map only to itself, so the request must come from the camera's address).
cam_map() {
  local ext=$1 int=$2 ctl svc
  if [ "${IGD_V1:-0}" = 1 ]; then svc="urn:schemas-upnp-org:service:WANIPConnection:1"; else svc="urn:schemas-upnp-org:service:WANIPConnection:2"; fi
  ctl=$(inns "$LAN" curl -sf -m 2 "http://$LAN_RTR:$HTTP_PORT/rootDesc.xml" | tr -d '\n' \
        | sed -n 's|.*WANIPConnection:[12]</serviceType>.*\?<controlURL>\([^<]*\)</controlURL>.*|\1|p' | head -1)
  ctl=${ctl:-/ctl/IPConn}
  inns "$LAN" curl -sf -m 3 --interface $LAN_CAM -H "Content-Type: text/xml" \
    -H "SOAPAction: \"$svc#AddPortMapping\"" "http://$LAN_RTR:$HTTP_PORT$ctl" --data-binary \
"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:AddPortMapping xmlns:u=\"$svc\"><NewRemoteHost></NewRemoteHost><NewExternalPort>$ext</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>$int</NewInternalPort><NewInternalClient>$LAN_CAM</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>IPCAM P2P</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>" >/dev/null
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  reboot-router) reboot_router ;;
  cam-map) cam_map "$2" "$3" ;;
  list) inns "$LAN" upnpc -i -u "http://$LAN_RTR:$HTTP_PORT/rootDesc.xml" -l ;;
  *) echo "usage: $0 up|down|reboot-router|cam-map EXT INT|list" >&2; exit 2 ;;
esac
