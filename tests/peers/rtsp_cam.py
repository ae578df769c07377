#!/usr/bin/python3
"""RTSP camera stand-in for the end-to-end tests: GStreamer's gst-rtsp-server through Debian's
python3-gi, serving an H.264 (or H.265) test pattern with a clock on rtsp://HOST:PORT/PATH.

Adapted from the project's recipe; run by tests/tests/streaming.rs, installed by rtsp-cam.sh.
Env: RTSP_HOST=127.0.0.1 RTSP_PORT=0 (0: the OS picks) RTSP_PATH=/cam1 WIDTH=640 HEIGHT=480 FPS=15
     CODEC=h264|h265 AUDIO=0|1 (PCMA track) RTSP_USER= RTSP_PASS= (digest auth when both set)
Prints "serving rtsp://HOST:PORT/PATH" with the real port once it accepts connections.
One shared encoder like a real camera; CLOCK_AND_OFFSET stops gst-rtsp-server from restarting
the shared stream for everyone when a new viewer's PLAY carries "Range: npt=0.000-"."""
import ctypes, os, signal, sys
import gi
gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0"); gi.require_version("GstRtsp", "1.0")
from gi.repository import Gst, GstRtspServer, GstRtsp, GLib

# Die with the test process even if it is killed with SIGKILL.
ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

Gst.init(None)
e = os.environ
host, port, path = e.get("RTSP_HOST", "127.0.0.1"), e.get("RTSP_PORT", "0"), e.get("RTSP_PATH", "/cam1")
w, h, fps = e.get("WIDTH", "640"), e.get("HEIGHT", "480"), e.get("FPS", "15")
launch = ("( videotestsrc is-live=true pattern=smpte ! video/x-raw,width=%s,height=%s,framerate=%s/1 "
          "! timeoverlay font-desc=\"Sans 24\" ! " % (w, h, fps))
if e.get("CODEC") == "h265":
    # I420 -> Main profile; closed GOP -> IDR key frames.
    launch += ("video/x-raw,format=I420 ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=%s bitrate=1000 "
               "option-string=open-gop=0 ! video/x-h265,profile=main ! h265parse "
               "! rtph265pay name=pay0 pt=96 config-interval=1 " % (int(fps) * 2))
else:
    launch += ("x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%s bitrate=1000 "
               "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 " % (int(fps) * 2))
if e.get("AUDIO") == "1":
    launch += "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8 "
launch += ")"
server = GstRtspServer.RTSPServer()
server.set_address(host); server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(launch)
factory.set_shared(True)
factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)
factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
if e.get("RTSP_USER") and e.get("RTSP_PASS"):
    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    tok = GstRtspServer.RTSPToken()
    tok.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_digest(e["RTSP_USER"], e["RTSP_PASS"], tok)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory(path, factory)
if server.attach(None) == 0:
    sys.exit("cannot bind %s:%s" % (host, port))
loop = GLib.MainLoop()
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
print("serving rtsp://%s:%d%s" % (host, server.get_bound_port(), path), flush=True)
loop.run()
