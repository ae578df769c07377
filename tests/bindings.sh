#!/usr/bin/env bash
# Regenerates the Swift, Kotlin and Python bindings of clients/ffi from the built library
# (UniFFI library mode) and fails if they differ from the committed ones, so the bindings
# never drift from the Rust interface. Leaves target/debug/liblatchkey_mobile.so built
# for tests/python. `--write` regenerates without failing (then commit the result).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
# One build with the generator: the library and the bin share it, so nothing builds twice.
cargo build --locked -p latchkey-mobile --features bindgen --lib --bin uniffi-bindgen
out=clients/ffi/bindings
for lang in swift kotlin python; do
  rm -rf "${out:?}/$lang"
  "$target/debug/uniffi-bindgen" generate --no-format "$target/debug/liblatchkey_mobile.so" \
    --language "$lang" --out-dir "$out/$lang" >/dev/null
done
[ "${1:-}" = "--write" ] && exit 0
if ! git diff --quiet --exit-code -- "$out" || [ -n "$(git status --porcelain -- "$out")" ]; then
  git status --short -- "$out"
  echo "bindings: clients/ffi/bindings differ from the library's interface; run tests/bindings.sh --write and commit"
  exit 1
fi
echo "bindings: current"
