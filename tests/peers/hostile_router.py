#!/usr/bin/env python3
"""A hostile UPnP router for the end-to-end tests (stdlib only): answers SSDP M-SEARCH on
the LAN and serves a broken device description, one misbehaviour per run.
usage: hostile_router.py LAN_IP MODE LOG   (each request for the description is logged to
LOG, so a test can tell that the gateway really fetched it), with MODE one of
  huge       a description that never ends (gigabytes of XML)
  garbage    random bytes instead of XML
  slow       one byte per second
  badxml     XML with the wrong namespaces and broken nesting
  redirect   a 302 to an address outside the LAN
Prints "serving MODE" once ready."""
import ctypes, os, signal, socket, struct, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # die with the test
LAN_IP, MODE, LOG, PORT = sys.argv[1], sys.argv[2], sys.argv[3], 5555

class Desc(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        with open(LOG, "a") as f:
            f.write(f"GET {self.path}\n")
        if MODE == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://198.51.100.7/rootDesc.xml")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.end_headers()
        try:
            if MODE == "huge":
                self.wfile.write(b'<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device>')
                chunk = b"<x>" + b"A" * 65536 + b"</x>"
                for _ in range(40000):
                    self.wfile.write(chunk)
            elif MODE == "garbage":
                for _ in range(64):
                    self.wfile.write(os.urandom(65536))
            elif MODE == "slow":
                for b in b'<?xml version="1.0"?><root><device><deviceType>':
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(1)
            elif MODE == "badxml":
                self.wfile.write(b'<?xml version="1.0"?><root xmlns="urn:evil"><device><deviceType>'
                                 b'urn:schemas-upnp-org:device:InternetGatewayDevice:2</serviceType>'
                                 b'<serviceList><service><controlURL>/ctl/IPConn<<</controlURL>'
                                 b'</device></root></root>' + b"<a>" * 100000)
        except OSError:
            pass

def ssdp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 1900))
    mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(LAN_IP))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    while True:
        data, peer = s.recvfrom(4096)
        if b"M-SEARCH" not in data:
            continue
        st = b"urn:schemas-upnp-org:device:InternetGatewayDevice:1"
        for line in data.split(b"\r\n"):
            if line.upper().startswith(b"ST:"):
                st = line.split(b":", 1)[1].strip()
        answer = (b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: " + st +
                  b"\r\nUSN: uuid:hostile::" + st + b"\r\nEXT:\r\nSERVER: hostile/1 UPnP/1.1\r\n"
                  b"LOCATION: http://" + LAN_IP.encode() + b":%d/rootDesc.xml\r\n\r\n" % PORT)
        s.sendto(answer, peer)

server = ThreadingHTTPServer((LAN_IP, PORT), Desc)
threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Thread(target=ssdp, daemon=True).start()
print(f"serving {MODE}", flush=True)
while True:
    time.sleep(3600)
