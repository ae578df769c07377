#!/usr/bin/env bash
# install.sh - installs what the real camera peers of the end-to-end tests need (Debian):
# gst-rtsp-server through python3-gi for rtsp_cam.py, ffmpeg for mjpeg_cam.py and the viewers,
# curl and ss (iproute2) for the checks. Idempotent; meant to be called from .ci/run.
set -euo pipefail
have() {
  /usr/bin/python3 -c 'import gi, sys; gi.require_version("Gst", "1.0"); gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst; Gst.init(None)
sys.exit(not all(Gst.ElementFactory.find(e) for e in ("x264enc", "x265enc", "timeoverlay", "rtph264pay")))' 2>/dev/null \
    && command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null \
    && command -v curl >/dev/null && command -v ss >/dev/null
}
have && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-gi \
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-x ffmpeg curl iproute2 >/dev/null
have
