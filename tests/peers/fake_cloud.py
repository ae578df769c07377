#!/usr/bin/env python3
"""fake_cloud.py - the vendor's cloud of the quarantine test, in the `wan` namespace
(stdlib only): a P2P server on UDP 203.0.113.50:32100 and [2001:db8:50::50]:32100, a cloud on TCP 198.51.100.7:443 and
a DNS server on UDP 198.51.100.53:53. Prints "got udp|tcp ADDR PORT from SRC" for every
packet or connection, and "ready" once all listen."""
import socket
import sys
import threading

LOCK = threading.Lock()


def log(line):
    # One write per line under a lock: print() from threads can interleave two lines.
    with LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def udp(s, addr, port):
    while True:
        _, src = s.recvfrom(2048)
        log(f"got udp {addr} {port} from {src[0]}")


def tcp(s, addr, port):
    while True:
        c, src = s.accept()
        log(f"got tcp {addr} {port} from {src[0]}")
        c.close()


def main():
    for f, a, p in [(udp, "203.0.113.50", 32100), (udp, "2001:db8:50::50", 32100),
                    (udp, "198.51.100.53", 53), (tcp, "198.51.100.7", 443)]:
        fam = socket.AF_INET6 if ":" in a else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM if f is udp else socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a, p))
        if f is tcp:
            s.listen(16)
        threading.Thread(target=f, args=(s, a, p), daemon=True).start()
    log("ready")
    threading.Event().wait()


if __name__ == "__main__":
    main()
