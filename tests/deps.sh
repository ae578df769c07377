#!/usr/bin/env bash
# Checks the crate graph's rules (ARCHITECTURE.md, "Architecture invariants"): the daemon
# never embeds the phone library, the phone library carries no CLI dependencies, no OpenSSL
# and never the gateway, and the protocol core stays sans-IO (no tokio, no sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

deps() { cargo tree --locked -p "$1" -e normal --prefix none | awk '{print $1}' | sort -u; }
fail=0
forbid() { # crate, then the names it must not depend on
  local crate=$1; shift
  local have; have=$(deps "$crate")
  for bad in "$@"; do
    if grep -qx "$bad" <<<"$have"; then
      echo "crate graph: $crate depends on $bad (see ARCHITECTURE.md, Architecture invariants)"
      fail=1
    fi
  done
}
# openssl-sys only with the gateway's `openssl` feature (the Debian build; the tests and
# the benchmark through a dev-dependency): the README's `cargo run` needs nothing but Rust.
forbid latchkey-gateway latchkey-client latchkey-client-cli latchkey-mobile uniffi rqrr image openssl-sys
# The phone side keeps ring's cipher (no system OpenSSL on iOS or Android): the `openssl`
# backend is the gateway's alone.
forbid latchkey-client latchkey-gateway latchkey-client-cli latchkey-cli-kit uniffi clap rqrr image openssl-sys
forbid latchkey-mobile latchkey-gateway latchkey-client-cli latchkey-cli-kit clap openssl-sys
forbid latchkey-channel latchkey-gateway latchkey-client clap rqrr image
forbid latchkey-pairing tokio mio socket2 latchkey-channel
# clap in the daemon only through its own command line: the binary and the shared CLI kit
# (and clap's own helper crates).
others=$(cargo tree --locked -p latchkey-gateway -e normal -i clap --depth 1 --prefix depth \
  | sed -n 's/^1\([^ ]*\) .*/\1/p' | grep -vxE 'latchkey-gateway|latchkey-cli-kit|clap_complete|clap_mangen' || true)
if [ -n "$others" ]; then
  echo "crate graph: clap reaches latchkey-gateway through $others"; fail=1
fi
[ "$fail" -eq 0 ] && echo "crate graph: ok"
exit "$fail"
