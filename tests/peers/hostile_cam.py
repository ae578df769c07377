#!/usr/bin/env python3
"""A hostile camera for the end-to-end tests: one TCP port per misbehaviour (stdlib only).
Prints one line per mode, "serving MODE PORT", then serves until the test ends.
Modes:
  rtsp-garbage   answers any RTSP request with random bytes
  rtsp-bad-sdp   a well-formed RTSP dialogue whose DESCRIBE carries a nonsense SDP
  rtsp-huge      a DESCRIBE answer announcing a 2 GB body, then a trickle
  rtsp-stall     accepts and never says a word
  mjpeg-lies     HTTP multipart whose parts lie about Content-Length and are not JPEGs
"""
import ctypes, os, signal, socket, threading, time

ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # die with the test

def rtsp_reply(conn, body, cseq, extra=""):
    conn.sendall((f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body)

def cseq_of(req):
    for line in req.split(b"\r\n"):
        if line.lower().startswith(b"cseq:"):
            return line.split(b":", 1)[1].strip().decode(errors="replace")
    return "1"

def handle(mode, conn):
    try:
        conn.settimeout(30)
        if mode == "rtsp-stall":
            time.sleep(60)
            return
        if mode == "mjpeg-lies":
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            for i in range(200):
                junk = os.urandom(300)
                conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 99999999\r\n\r\n" + junk + b"\r\n")
                conn.sendall(b"--frame\r\nContent-Length: 10\r\n\r\n" + b"not a jpeg at all" + b"\r\n")
                time.sleep(0.05)
            return
        while True:
            req = conn.recv(65536)
            if not req:
                return
            cseq = cseq_of(req)
            if mode == "rtsp-garbage":
                conn.sendall(os.urandom(4096))
            elif mode == "rtsp-huge":
                conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: 2000000000\r\n\r\n".encode())
                for _ in range(100):
                    conn.sendall(b"v=0\r\n" * 100)
                    time.sleep(0.05)
            elif req.startswith(b"OPTIONS"):
                rtsp_reply(conn, b"", cseq, "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n")
            elif req.startswith(b"DESCRIBE"):
                sdp = b"v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=!!!!,@@@@;profile-level-id=zz\r\na=control:\xff\xfe\r\n"
                rtsp_reply(conn, sdp, cseq, "Content-Type: application/sdp\r\nContent-Base: rtsp://127.0.0.1/\r\n")
            else:
                conn.sendall(b"RTSP/1.0 200 OK\r\nCSeq: " + cseq.encode() + b"\r\nTransport: nonsense\r\nSession: ;;;\r\n\r\n" + os.urandom(512))
    except OSError:
        pass
    finally:
        conn.close()

def serve(mode):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print(f"serving {mode} {s.getsockname()[1]}", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(mode, conn), daemon=True).start()

modes = ["rtsp-garbage", "rtsp-bad-sdp", "rtsp-huge", "rtsp-stall", "mjpeg-lies"]
for m in modes:
    threading.Thread(target=serve, args=(m,), daemon=True).start()
    time.sleep(0.05)
while True:
    time.sleep(3600)
