#!/usr/bin/env python3
"""A hostile camera on the camera port that speaks DHCP with MACs of its own choosing
(raw Ethernet frames on one interface, stdlib only), to take leases by the dozen.

  dhcp_churn.py IFACE GW_MAC churn ADDRESS N
      N rounds: a new MAC takes ADDRESS, waits until the gateway can have bound it, and
      releases it (the address passes from MAC to MAC).
  dhcp_churn.py IFACE GW_MAC hold N
      N new MACs each take a lease and keep it; then each sends one UDP packet from its
      lease (its address, its MAC) to 203.0.113.(i+1) port 5000 through the gateway.

  dhcp_churn.py IFACE GW_MAC named HEX... N
      a new MAC per hostname (hex bytes), each sent as the DHCP hostname and client id.

Prints "lease MAC ADDRESS" per lease taken and "done N" at the end.
"""
import ctypes, os, signal, socket, struct, sys, time

ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # die with the test

IFACE, GW_MAC = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
MODE, N = sys.argv[3], int(sys.argv[-1])
GW = "10.83.0.1"
BIND_WAIT = 0.8  # the gateway re-reads the lease file every 250 ms

raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
raw.bind((IFACE, 0))
raw.settimeout(0.5)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src_mac, dst_mac, src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return dst_mac + src_mac + b"\x08\x00" + hdr + udp


def bootp(mac, xid, kind, ciaddr="0.0.0.0", opts=b""):
    b = struct.pack("!BBBBIHH4s4s4s4s", 1, 1, 6, 0, xid, 0, 0x8000,
                    socket.inet_aton(ciaddr), bytes(4), bytes(4), bytes(4))
    b += mac + bytes(10) + bytes(192) + b"\x63\x82\x53\x63"
    return b + bytes([53, 1, kind]) + opts + b"\xff"


def reply(xid, want):
    """The server's DHCP message of type `want` for `xid`: (yiaddr, server id)."""
    end = time.time() + 10
    while time.time() < end:
        try:
            f = raw.recv(2048)
        except socket.timeout:
            continue
        ip = f[14:]
        if len(ip) < 28 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        if struct.unpack("!H", udp[2:4])[0] != 68:
            continue
        b = udp[8:]
        if len(b) < 240 or struct.unpack("!I", b[4:8])[0] != xid:
            continue
        opts, i, kind, server = b[240:], 0, None, None
        while i + 1 < len(opts) and opts[i] != 255:
            if opts[i] == 0:
                i += 1
                continue
            code, ln = opts[i], opts[i + 1]
            val = opts[i + 2:i + 2 + ln]
            if code == 53 and val:
                kind = val[0]
            elif code == 54 and ln == 4:
                server = socket.inet_ntoa(val)
            i += 2 + ln
        if kind == want:
            return socket.inet_ntoa(b[16:20]), server
        if kind == 6:  # NAK
            return None, None
    return None, None


def lease(mac, want=None, extra=b""):
    xid = int.from_bytes(os.urandom(4), "big")
    bcast = b"\xff" * 6
    req = extra + (b"" if want is None else bytes([50, 4]) + socket.inet_aton(want))
    raw.send(frame(mac, bcast, "0.0.0.0", "255.255.255.255", 68, 67, bootp(mac, xid, 1, opts=req)))
    addr, server = reply(xid, 2)
    if addr is None:
        return None
    opts = extra + bytes([50, 4]) + socket.inet_aton(addr) + bytes([54, 4]) + socket.inet_aton(server)
    raw.send(frame(mac, bcast, "0.0.0.0", "255.255.255.255", 68, 67, bootp(mac, xid, 3, opts=opts)))
    addr, _ = reply(xid, 5)
    if addr:
        print("lease", mac.hex(":"), addr, flush=True)
    return addr


def release(mac, addr):
    xid = int.from_bytes(os.urandom(4), "big")
    msg = bootp(mac, xid, 7, ciaddr=addr, opts=bytes([54, 4]) + socket.inet_aton(GW))
    raw.send(frame(mac, GW_MAC, addr, GW, 68, 67, msg))


def mac(i):
    return bytes([0x02, 0xC4, 0, 0, i >> 8, i & 0xFF])


if MODE == "churn":
    want = sys.argv[4]
    for i in range(N):
        m = mac(i)
        addr = lease(m, want)
        if addr is None:
            sys.exit(f"round {i}: no lease")
        time.sleep(BIND_WAIT)
        release(m, addr)
        time.sleep(BIND_WAIT)
elif MODE == "hold":
    held = []
    for i in range(N):
        m = mac(0x100 + i)
        addr = lease(m)
        if addr is None:
            sys.exit(f"lease {i}: none")
        held.append((m, addr))
    time.sleep(BIND_WAIT * 2)
    for i, (m, addr) in enumerate(held):
        raw.send(frame(m, GW_MAC, addr, f"203.0.113.{i + 1}", 40000, 5000, b"x"))
elif MODE == "named":
    # One lease per hostname (hex), sent as DHCP option 12 (hostname) and 61 (client id).
    for i, name in enumerate(sys.argv[4:-1]):
        name = bytes.fromhex(name)[:255]
        extra = bytes([12, len(name)]) + name + bytes([61, len(name)]) + name
        if lease(mac(0x200 + i), extra=extra) is None:
            sys.exit(f"name {i}: no lease")
else:
    sys.exit(f"unknown mode {MODE}")
print("done", N, flush=True)
