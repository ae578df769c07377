#!/bin/sh
# udhcpc-script.sh - busybox udhcpc's event script for the quarantine test's camera:
# configures the lease and prints what the DHCP server handed out on stdout
# ("lease IP/MASK router R dns D ntp N"), which the test reads.
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "$router" dev "$interface"
    echo "lease $ip/$mask router $router dns $dns ntp $ntpsrv"
    ;;
esac
exit 0
