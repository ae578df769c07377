#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 20 s each) from its seed corpus.
# The machine has only the stable toolchain; RUSTC_BOOTSTRAP=1 lets cargo-fuzz use the
# nightly-only flags it needs. No sanitizer: the code has no `unsafe`, so a panic (which
# libFuzzer reports as a crash) is what we look for.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for crate in pairing gateway; do
  for target in $(cd "$crate/fuzz" && cargo fuzz list); do
    echo "== fuzz $crate/$target for ${secs}s"
    (cd "$crate/fuzz" && cargo fuzz run --sanitizer none "$target" -- -max_total_time="$secs" -rss_limit_mb=1024 2>&1 | tail -n 4)
  done
done
