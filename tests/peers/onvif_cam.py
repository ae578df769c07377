#!/usr/bin/env python3
"""An ONVIF camera of the project's own for the end-to-end tests (stdlib only).

WS-Discovery on 239.255.255.250:3702 (answers the dn:NetworkVideoTransmitter probe, the
tds:Device probe and an empty probe; unicast probes too), and the ONVIF device and media
services over HTTP (SOAP 1.2): GetSystemDateAndTime (no auth), GetDeviceInformation (no
auth unless ONVIF_STRICT=1, as many Hikvision/Dahua firmwares answer it openly),
GetCapabilities, GetProfiles, GetStreamUri, GetSnapshotUri, all others with WS-Security
UsernameToken *digest* auth checked against the camera's own (skewed) clock, nonces not
reusable. It points at the gst-rtsp-server camera given in ONVIF_RTSP.

Quirks it models: a clock ONVIF_SKEW seconds off (default 3 h 17 min ahead: tokens made
on the gateway's clock are refused); three profiles listed smallest first, one of them
JPEG; the main stream's URI names host 0.0.0.0 (as cameras behind NAT do); media service
on its own path (/onvif/media_service) given by GetCapabilities.

Env: ONVIF_ADDR (IP to serve and join multicast on, required) ONVIF_PORT (HTTP, 0: any)
     ONVIF_USER ONVIF_PASS  ONVIF_RTSP (rtsp://ip:port/path of the real camera)
     ONVIF_SKEW (seconds)  ONVIF_STRICT=1
Prints "serving http://ADDR:PORT/onvif/device_service" once both services are up, and
"probe FROM TO TYPES" for each probe it answers (TO: the multicast group or its own
address for a unicast probe; the test checks both kinds and both ways arrived).
"""
import base64, ctypes, datetime, hashlib, os, re, signal, socket, struct, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree as ET

ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # die with the test

E = os.environ
ADDR = E["ONVIF_ADDR"]
USER, PASS = E.get("ONVIF_USER", "admin"), E.get("ONVIF_PASS", "")
RTSP = E.get("ONVIF_RTSP", "rtsp://127.0.0.1:8554/cam1")
SKEW = int(E.get("ONVIF_SKEW", str(3 * 3600 + 17 * 60)))
STRICT = E.get("ONVIF_STRICT") == "1"
ENDPOINT = "urn:uuid:" + str(uuid.uuid4())
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "d": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
ENV_OPEN = ('<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
            'xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:ter="http://www.onvif.org/ver10/error">')
seen_nonces = set()
lock = threading.Lock()


def cam_now():
    return time.time() + SKEW


def envelope(body, header=""):
    return (ENV_OPEN + "<s:Header>" + header + "</s:Header><s:Body>" + body + "</s:Body></s:Envelope>").encode()


def fault(sub, text):
    return envelope('<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code>'
                    '<s:Reason><s:Text xml:lang="en">%s</s:Text></s:Reason></s:Fault>' % (sub, text))


def authorized(root):
    tok = root.find(".//wsse:UsernameToken", NS)
    if tok is None:
        return False
    user = tok.findtext("wsse:Username", "", NS)
    pw = tok.find("wsse:Password", NS)
    nonce = tok.findtext("wsse:Nonce", "", NS)
    created = tok.findtext("wsu:Created", "", NS)
    if pw is None or "PasswordDigest" not in (pw.get("Type") or "") or user != USER:
        return False
    try:
        when = datetime.datetime.strptime(created.strip(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
        raw_nonce = base64.b64decode(nonce)
    except ValueError:
        return False
    if abs(when.timestamp() - cam_now()) > 300:
        sys.stderr.write("token created %s is more than 5 min off the camera clock\n" % created)
        return False
    want = base64.b64encode(hashlib.sha1(raw_nonce + created.strip().encode() + PASS.encode()).digest()).decode()
    with lock:
        if nonce in seen_nonces:
            return False
        seen_nonces.add(nonce)
    return want == (pw.text or "").strip()


def profiles_xml():
    out = []
    for token, name, enc, w, h in (("sub", "SubStream", "H264", 320, 240), ("jpeg", "Jpeg", "JPEG", 1280, 960),
                                   ("main", "MainStream", "H264", 640, 480)):
        out.append('<trt:Profiles token="%s" fixed="true"><tt:Name>%s</tt:Name><tt:VideoEncoderConfiguration token="v%s">'
                   '<tt:Name>v</tt:Name><tt:Encoding>%s</tt:Encoding><tt:Resolution><tt:Width>%d</tt:Width>'
                   '<tt:Height>%d</tt:Height></tt:Resolution></tt:VideoEncoderConfiguration></trt:Profiles>'
                   % (token, name, token, enc, w, h))
    return "".join(out)


def stream_uri(token):
    if token == "main":
        return re.sub(r"^rtsp://[^/:]+", "rtsp://0.0.0.0", RTSP)  # the NAT quirk
    return RTSP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("onvif http: " + fmt % args + "\n")

    def reply(self, code, data):
        self.send_response(code)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/snapshot.jpg":
            self.reply(404, b"")
        else:
            self.reply(404, b"")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n > 65536:
            return self.reply(413, b"")
        try:
            root = ET.fromstring(self.rfile.read(n))
        except ET.ParseError:
            return self.reply(400, fault("ter:InvalidArgVal", "bad XML"))
        body = root.find("s:Body", NS)
        if body is None or len(body) == 0:
            return self.reply(400, fault("ter:InvalidArgVal", "no body"))
        op = body[0].tag.split("}")[-1]
        if op == "GetSystemDateAndTime":
            t = time.gmtime(cam_now())
            return self.reply(200, envelope(
                '<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>'
                '<tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>%d</tt:Hour><tt:Minute>%d</tt:Minute>'
                '<tt:Second>%d</tt:Second></tt:Time><tt:Date><tt:Year>%d</tt:Year><tt:Month>%d</tt:Month><tt:Day>%d</tt:Day></tt:Date>'
                '</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>'
                % (t.tm_hour, t.tm_min, t.tm_sec, t.tm_year, t.tm_mon, t.tm_mday)))
        open_info = op == "GetDeviceInformation" and not STRICT and root.find(".//wsse:Security", NS) is None
        if not open_info and not authorized(root):
            return self.reply(400, fault("ter:NotAuthorized", "Sender not Authorized"))
        if op == "GetDeviceInformation":
            return self.reply(200, envelope(
                '<tds:GetDeviceInformationResponse><tds:Manufacturer>Latchkey Test Optics</tds:Manufacturer>'
                '<tds:Model>LK-ONVIF-1</tds:Model><tds:FirmwareVersion>V5.7.3 build 251130</tds:FirmwareVersion>'
                '<tds:SerialNumber>LK0001</tds:SerialNumber><tds:HardwareId>1.0</tds:HardwareId></tds:GetDeviceInformationResponse>'))
        host = "http://%s:%d" % (ADDR, self.server.server_address[1])
        if op == "GetCapabilities":
            return self.reply(200, envelope(
                '<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>%s/onvif/media_service</tt:XAddr>'
                '</tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse>' % host))
        if op == "GetProfiles":
            return self.reply(200, envelope("<trt:GetProfilesResponse>%s</trt:GetProfilesResponse>" % profiles_xml()))
        token = body[0].findtext("{http://www.onvif.org/ver10/media/wsdl}ProfileToken", "").strip()
        if op in ("GetStreamUri", "GetSnapshotUri") and token not in ("main", "sub", "jpeg"):
            return self.reply(400, fault("ter:NoProfile", "no such profile"))
        if op == "GetStreamUri":
            return self.reply(200, envelope(
                '<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>%s</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>'
                '<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>'
                % stream_uri(token)))
        if op == "GetSnapshotUri":
            return self.reply(200, envelope(
                '<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>%s/snapshot.jpg?profile=%s</tt:Uri></trt:MediaUri></trt:GetSnapshotUriResponse>'
                % (host, token)))
        return self.reply(400, fault("ter:ActionNotSupported", "not supported"))


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; older Pythons lack the name


def discovery():
    try:
        serve_discovery()
    except Exception as e:  # a dead responder must fail the test, not hide
        sys.stderr.write("ws-discovery responder died: %r\n" % (e,))
        os._exit(1)


def serve_discovery():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 3702))
    mreq = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(ADDR))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    while True:
        data, anc, _, src = sock.recvmsg(65536, 1024)
        dst = "?"
        for level, kind, cdata in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12:
                dst = socket.inet_ntoa(cdata[8:12])  # struct in_pktinfo: ifindex, spec_dst, addr
        try:
            root = ET.fromstring(data)
        except ET.ParseError:
            continue
        if root.find("s:Body/d:Probe", NS) is None:
            continue
        msg_id = root.findtext("s:Header/a:MessageID", "", NS).strip()
        types = (root.findtext("s:Body/d:Probe/d:Types", "", NS) or "").strip()
        if types and not any(t.split(":")[-1] in ("NetworkVideoTransmitter", "Device") for t in types.split()):
            continue
        print("probe %s %s %s" % (src[0], dst, types or "(any)"), flush=True)
        reply = (
            '<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
            'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
            '<s:Header><a:MessageID>uuid:%s</a:MessageID><a:RelatesTo>%s</a:RelatesTo>'
            '<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>'
            '<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action></s:Header>'
            '<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>%s</a:Address></a:EndpointReference>'
            '<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>'
            '<d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/Latchkey%%20Test%%20Optics '
            'onvif://www.onvif.org/hardware/LK-ONVIF-1</d:Scopes><d:XAddrs>http://%s:%d/onvif/device_service</d:XAddrs>'
            '<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>'
            % (uuid.uuid4(), msg_id.replace("<", ""), ENDPOINT, ADDR, http.server_address[1]))
        sock.sendto(reply.encode(), src)


http = ThreadingHTTPServer((ADDR, int(E.get("ONVIF_PORT", "0"))), Handler)
threading.Thread(target=discovery, daemon=True).start()
print("serving http://%s:%d/onvif/device_service" % (ADDR, http.server_address[1]), flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
http.serve_forever()
