#!/usr/bin/env bash
# Runs every test of the workspace, real peers included. Installs the Debian packages the
# peers need when they are missing (apt-get; needs root or sudo), then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real peers: ffmpeg/ffprobe (viewers), gst-rtsp-server through Debian's Python (RTSP
# camera), curl, iproute2 (ss), miniupnpd and friends (a real UPnP router in namespaces),
# Chromium and Node (the admin UI's browser test, Playwright in tests/browser).
# OpenSSH (the relay benchmark's `ssh -L` reference). dnsmasq, busybox (udhcpc) and
# ntpdate for the camera quarantine (its DHCP server, the camera's DHCP and NTP clients).
# libssl-dev and pkg-config: the build is the Debian package's, whose session cipher is
# OpenSSL's (the gateway's `openssl` feature).
packages=(libssl-dev pkg-config ffmpeg curl iproute2 python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad gstreamer1.0-x
  miniupnpd-nftables miniupnpc natpmpc nftables socat tcpdump
  chromium chromium-driver
  openssh-server openssh-client
  dnsmasq-base busybox ntpsec-ntpdate)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js with npm (Playwright drives Chromium from it): use the one on the machine if any.
command -v npm >/dev/null || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing test peers: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Playwright (playwright-core only: it drives Debian's Chromium, downloads no browser).
(cd tests/browser && npm ci --no-audit --no-fund)

# The end-to-end tests run the real `latchkey` and `latchkey-client` binaries, which
# `cargo test` does not build for another package's tests: build them first.
# With the features the Debian package ships (gateway/debian/build-deb.sh), which the
# package test and the benchmark then reuse.
features=(--features latchkey-gateway/openssl)
cargo build --workspace --locked --bins "${features[@]}"
cargo test --workspace --locked "${features[@]}" "$@"
# The protocol core once more with its default cipher, ring's: what a plain `cargo run` of
# the gateway and the phone library use (its tests check it against OpenSSL's too).
cargo test --locked -p latchkey-pairing

# The phone library through its Python bindings (tests/python, pytest): the committed
# bindings checked current against the library, then the tests against the real gateway
# and RTSP camera. pytest comes from pip when the machine has none.
tests/bindings.sh
python3 -c "import pytest" 2>/dev/null || python3 -m pip install --quiet pytest \
  || python3 -m pip install --quiet --break-system-packages pytest
python3 -m pytest -q tests/python
