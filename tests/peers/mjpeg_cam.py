#!/usr/bin/env python3
"""MJPEG-over-HTTP camera stand-in for the end-to-end tests (stdlib + Debian ffmpeg).
GET /mjpeg         multipart/x-mixed-replace; boundary=frame   (endless JPEG parts)
GET /snapshot.jpg  latest JPEG frame
usage: mjpeg_cam.py [host] [port] [fps]   (default 127.0.0.1 0 10; port 0: the OS picks)
Prints "serving http://HOST:PORT" with the real port. Adapted from the project's recipe."""
import ctypes, signal, subprocess, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

die_with_parent()
HOST, PORT, FPS = (sys.argv[1:2] or ["127.0.0.1"])[0], int((sys.argv[2:3] or [0])[0]), int((sys.argv[3:4] or [10])[0])
ff = subprocess.Popen(["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", f"testsrc=size=640x480:rate={FPS}",
                       "-c:v", "mjpeg", "-q:v", "5", "-f", "mjpeg", "pipe:1"], stdout=subprocess.PIPE,
                      preexec_fn=die_with_parent)
cond, latest = threading.Condition(), [b"", 0]

def reader():
    buf = b""
    while chunk := ff.stdout.read1(65536):
        buf += chunk
        while (end := buf.find(b"\xff\xd9")) >= 0:
            frame, buf = buf[:end + 2], buf[end + 2:]
            start = frame.find(b"\xff\xd8")
            if start >= 0:
                with cond:
                    latest[0], latest[1] = frame[start:], latest[1] + 1
                    cond.notify_all()
threading.Thread(target=reader, daemon=True).start()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_message(self, *a): pass
    def frame_after(self, seq):
        with cond:
            cond.wait_for(lambda: latest[1] > seq, timeout=5)
            return latest[0], latest[1]
    def do_GET(self):
        if self.path.startswith("/snapshot.jpg"):
            img, _ = self.frame_after(0)
            self.send_response(200); self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(img))); self.end_headers(); self.wfile.write(img)
        elif self.path.startswith("/mjpeg"):
            self.send_response(200); self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame"); self.end_headers()
            seq = 0
            try:
                while True:
                    img, seq = self.frame_after(seq)
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(img) + img + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_error(404)

srv = ThreadingHTTPServer((HOST, PORT), H); srv.daemon_threads = True
def stop(*_):
    threading.Thread(target=srv.shutdown).start()
signal.signal(signal.SIGTERM, stop); signal.signal(signal.SIGINT, stop)
print(f"serving http://{HOST}:{srv.server_address[1]}", flush=True)
try:
    srv.serve_forever()
finally:
    ff.terminate(); ff.wait(5)
