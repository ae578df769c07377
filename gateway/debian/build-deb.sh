#!/usr/bin/env bash
# Builds the latchkey .deb: the two binaries, the man page and completions generated from
# the CLI's clap definitions, then `cargo deb` (cargo install cargo-deb --locked).
#   gateway/debian/build-deb.sh                      release build (what to install)
#   gateway/debian/build-deb.sh --profile dev        reuse the test build (CI)
#   ... --deb-version 0.1.1-1                        override the package version
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=release
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --deb-version|--output|-o) extra+=("$1" "$2"); shift 2 ;;
        *) echo "build-deb.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
    esac
done
dir=$profile
[ "$profile" = dev ] && dir=debug
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
# --workspace and the `openssl` cipher: the same feature set as the test build
# (tests/run-all.sh), so CI reuses it. The package links libcrypto 3 (its Depends say so).
cargo build --locked --profile "$profile" --workspace --bins --features latchkey-gateway/openssl >&2
rm -rf "$target/$dir/assets"
for b in latchkey latchkey-client; do
    "$target/$dir/$b" generate-assets "$target/$dir/assets"
    gzip -9n "$target/$dir/assets/$b.1"
done
# cargo-deb calls the dev profile unsupported (a warning): CI accepts that to reuse the
# test build instead of compiling everything again with optimisations.
cargo deb --locked -p latchkey-gateway --no-build --profile "$profile" "${extra[@]}" 2>&1 >/tmp/build-deb.$$ | grep -v '^$' >&2 || true
deb=$(tail -n 1 /tmp/build-deb.$$); rm -f /tmp/build-deb.$$
[ -f "$deb" ] || { echo "build-deb.sh: cargo deb made no package" >&2; exit 1; }
echo "$deb"
