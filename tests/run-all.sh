#!/usr/bin/env bash
# Runs every test of the workspace, real peers included. Installs the Debian packages the
# peers need when they are missing (apt-get; needs root or sudo), then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real peers: ffmpeg/ffprobe (viewers), gst-rtsp-server through Debian's Python (RTSP
# camera), curl, iproute2 (ss), miniupnpd and friends (a real UPnP router in namespaces),
# OpenSSH (the relay benchmark's `ssh -L` reference).
packages=(ffmpeg curl iproute2 python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad gstreamer1.0-x
  miniupnpd-nftables miniupnpc natpmpc nftables socat tcpdump
  openssh-server openssh-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing test peers: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo test --workspace --locked "$@"
