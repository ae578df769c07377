#!/usr/bin/env python3
"""phone_home_cam.py - the misbehaving camera of the quarantine test (stdlib only).

Behaves like the cheap P2P cameras Latchkey was started for (ThroughTek Kalay-style and
similar "cloud" cameras): each round it asks its DNS server (DNS env, from DHCP) for its
vendor's names, asks a hard-coded DNS server (198.51.100.53) behind its owner's back, sends
a UDP hello to its P2P server (203.0.113.50:32100 and [2001:db8:50::50]:32100), opens TCP to its cloud
(198.51.100.7:443), and asks the router for a port mapping of its own (SSDP M-SEARCH, then
TCP to the router's UPnP port, ROUTER env). It also asks for one name full of markup and a
terminal escape. It prints one line per packet it sends ("sent dns NAME", "sent udp ADDR
PORT", "sent tcp ADDR PORT", "sent hostile-dns"): its own log, against which
the gateway's report is checked. FLOOD=N instead sends N distinct names and N UDP packets
to N distinct destinations (from FLOOD_START on), as fast as it can.
"""
import os
import random
import socket
import struct
import sys

DNS = os.environ.get("DNS", "10.79.0.1")
ROUTER = os.environ.get("ROUTER", "10.79.0.1")
ROUNDS = int(os.environ.get("ROUNDS", "3"))
FLOOD = int(os.environ.get("FLOOD", "0"))
FLOOD_START = int(os.environ.get("FLOOD_START", "0"))
NAMES = ["p2p.vendor-cloud.example", "api.vendor-cloud.example", "time.vendor-cloud.example"]
# A name no real vendor uses, to show the report treats names as data (markup, escapes).
HOSTILE = "<b>\x1b[31m.vendor-cloud.example"


def log(line):
    print(line, flush=True)


def query(name):
    qid = random.randrange(65536)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack(">HH", 1, 1)


def ask(server, name, wait=True):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.sendto(query(name), (server, 53))
    if name == HOSTILE:
        log("sent hostile-dns")
    else:
        log(f"sent dns {name}" if server == DNS else f"sent udp {server} 53")
    if wait:
        try:
            data = s.recv(512)
            log(f"answer {name} rcode {data[3] & 0x0F}")
        except OSError:
            log(f"no answer {name}")
    s.close()


def udp(addr, port, payload):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(payload, (addr, port))
    log(f"sent udp {addr} {port}")
    s.close()


def tcp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Half a second: one SYN, before the kernel's first retransmission (1 s).
    s.settimeout(0.5)
    log(f"sent tcp {addr} {port}")
    try:
        s.connect((addr, port))
        s.sendall(b"HELLO cloud, device id LK-TEST-0001\n")
        log(f"connected tcp {addr} {port}")
    except OSError as e:
        log(f"failed tcp {addr} {port} {e}")
    s.close()


def ssdp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
    msg = (
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
        "MX: 1\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
    )
    s.sendto(msg.encode(), ("239.255.255.250", 1900))
    log("sent udp 239.255.255.250 1900")
    s.close()


def flood(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    for i in range(FLOOD_START, FLOOD_START + n):
        try:
            s.sendto(query(f"f{i}.flood.example"), (DNS, 53))
        except BlockingIOError:
            pass
        try:
            s.sendto(b"x", (f"203.0.113.{i % 250 + 1}", 10000 + (i // 250) % 50000))
        except BlockingIOError:
            pass
    log(f"flooded {n}")


def main():
    if FLOOD:
        flood(FLOOD)
        return
    for _ in range(ROUNDS):
        for name in NAMES + [HOSTILE]:
            ask(DNS, name, wait=name != HOSTILE)
        ask("198.51.100.53", "fallback.vendor-cloud.example", wait=False)
        udp("203.0.113.50", 32100, b"\x02\x01KALAY-LIKE-HELLO LK-TEST-0001")
        udp("2001:db8:50::50", 32100, b"\x02\x01KALAY-LIKE-HELLO LK-TEST-0001")
        tcp("198.51.100.7", 443)
        ssdp()
        tcp(ROUTER, 5000)
    log("done")


if __name__ == "__main__":
    sys.exit(main())
