#!/usr/bin/env bash
# The Debian package end to end, on this machine, as root (issue 15): build the .deb,
# `dpkg -i` it, check files, user, group, modes and the unit (systemd-analyze verify, the
# security score <= 2.0), run the daemon as the unit's user with the unit's directories
# (no systemd as PID 1 here: setpriv does what the unit says), the camera port's drop-in
# (shipped, scored, and the daemon's camera port without and with its capabilities in a
# namespace), pair a phone, upgrade to a
# higher version (the phone is still admitted), back up, wipe, restore (the phone is
# admitted again), then remove (state kept) and purge (state deleted, after saying so).
# Builds with the dev profile to reuse the test build (cargo-deb warns that it prefers
# release); the README's route builds release.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never DEBIAN_FRONTEND=noninteractive
CARGO_DEB_VERSION=3.8.0
MAX_EXPOSURE=2.0
PASSED=0
say() { echo "== package: $*"; }
ok() { PASSED=$((PASSED + 1)); echo "   ok: $*"; }
fail() { echo "package.sh: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg -i, a system user, setpriv)"

# --- tools
missing=()
# man-db: systemd-analyze verify checks the unit's Documentation=man:latchkey(1).
# nftables, dnsmasq-base, iproute2: the camera port run with the drop-in's capabilities.
for p in systemd adduser util-linux passwd binutils dpkg-dev procps man-db nftables dnsmasq-base iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

work=$(mktemp -d /tmp/latchkey-package.XXXXXX)
chmod 755 "$work"
daemon_pid=
stop_daemon() {
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid"
        for _ in $(seq 100); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$daemon_pid" 2>/dev/null && fail "the daemon did not stop on SIGTERM within 10 s"
    fi
    daemon_pid=
}
cleanup() {
    stop_daemon || true
    ip netns del lkpkg-camport 2>/dev/null || true
    dpkg-query -W latchkey >/dev/null 2>&1 && dpkg -P latchkey >/dev/null 2>&1 || true
    id lkowner >/dev/null 2>&1 && userdel lkowner || true
    rm -rf "$work"
}
trap cleanup EXIT
# A clean machine: an earlier run's package goes first.
dpkg-query -W latchkey >/dev/null 2>&1 && dpkg -P latchkey >/dev/null

# --- build two packages: this version and a higher one
say "building the .deb (dev profile)"
deb1=$(gateway/debian/build-deb.sh --profile dev --output "$work/v1")
v1=$(dpkg-deb -f "$deb1" Version)
v2="$v1+upgrade1"
deb2=$(gateway/debian/build-deb.sh --profile dev --output "$work/v2" --deb-version "$v2")
dpkg --compare-versions "$v2" gt "$v1" || fail "$v2 is not higher than $v1"
ok "built $(basename "$deb1") and $(basename "$deb2")"

# --- install and check
say "dpkg -i $(basename "$deb1")"
dpkg -i "$deb1"
for f in /usr/bin/latchkey /usr/bin/latchkey-client; do
    [ "$(stat -c %a "$f")" = 755 ] || fail "$f is not 0755"
done
man=$(dpkg -L latchkey | grep '/man1/latchkey\.1')
case "$man" in *.gz) page=$(zcat "$man") ;; *) page=$(cat "$man") ;; esac
grep -q '^\.TH latchkey 1' <<<"$page" || fail "$man is not a man page"
for sub in backup restore doctor pair; do grep -q "$sub" <<<"$page" || fail "the man page lacks $sub"; done
grep -q generate-assets <<<"$page" && fail "the man page shows the hidden generate-assets"
for f in /usr/share/bash-completion/completions/latchkey /usr/share/zsh/vendor-completions/_latchkey \
    /usr/share/fish/vendor_completions.d/latchkey.fish; do
    grep -q doctor "$f" || fail "$f does not complete doctor"
done
for f in /usr/share/bash-completion/completions/latchkey-client /usr/share/zsh/vendor-completions/_latchkey-client \
    /usr/share/fish/vendor_completions.d/latchkey-client.fish; do
    grep -q snapshot "$f" || fail "$f does not complete snapshot"
done
zcat /usr/share/man/man1/latchkey-client.1.gz | grep -q '^\.TH latchkey-client 1' || fail "no latchkey-client man page"
for f in /usr/share/bash-completion/completions/latchkey /usr/share/bash-completion/completions/latchkey-client; do
    bash -n "$f" || fail "$f does not parse"
done
ok "binaries, man pages ($man, latchkey-client.1.gz) and completions for bash, zsh and fish"
getent passwd latchkey >/dev/null || fail "no latchkey user"
getent group latchkey >/dev/null || fail "no latchkey group"
[ "$(getent passwd latchkey | cut -d: -f7)" = /usr/sbin/nologin ] || fail "the latchkey user has a login shell"
[ "$(id -gn latchkey)" = latchkey ] || fail "the latchkey user's group is not latchkey"
ok "system user and group latchkey"
[ "$(stat -c '%a %U %G' /var/lib/latchkey)" = "700 latchkey latchkey" ] || fail "/var/lib/latchkey is $(stat -c '%a %U %G' /var/lib/latchkey)"
[ "$(stat -c '%a %U %G' /etc/latchkey/latchkey.toml)" = "640 root latchkey" ] || fail "the config is $(stat -c '%a %U %G' /etc/latchkey/latchkey.toml)"
dpkg-query -W -f='${Conffiles}' latchkey | grep -q /etc/latchkey/latchkey.toml || fail "the config is not a conffile"
ok "/var/lib/latchkey 0700 latchkey:latchkey; /etc/latchkey/latchkey.toml 0640 root:latchkey, a conffile"

unit=$(dpkg -L latchkey | grep '/systemd/system/latchkey\.service$')
verify=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $verify"
# systemd before 254 does not know the back-off keys and says it ignores them.
unexpected=$(grep -v -e "Unknown key 'RestartSteps'" -e "Unknown key 'RestartMaxDelaySec'" <<<"$verify" | grep . || true)
[ -z "$unexpected" ] || fail "systemd-analyze verify: $unexpected"
ok "systemd-analyze verify $unit"
security=$(systemd-analyze security --offline=true "$unit" 2>/dev/null)
score=$(sed -n 's/.*Overall exposure level for latchkey.service: \([0-9.]*\).*/\1/p' <<<"$security")
[ -n "$score" ] || fail "no score in: $security"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || fail "security exposure $score > $MAX_EXPOSURE"
ok "systemd-analyze security --offline=true: exposure $score (at most $MAX_EXPOSURE)"

# --- run it as the unit says
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
user=$(unit_value User) group=$(unit_value Group)
state=/var/lib/$(unit_value StateDirectory) runtime=/run/$(unit_value RuntimeDirectory)
read -r -a exec_start <<<"$(unit_value ExecStart)"
mapfile -t unit_env < <(sed -n 's/^Environment=//p' "$unit")
start_daemon() {
    install -d -o "$user" -g "$group" -m "$(unit_value StateDirectoryMode)" "$state"
    install -d -o "$user" -g "$group" -m "$(unit_value RuntimeDirectoryMode)" "$runtime"
    (umask "$(unit_value UMask)"
     exec setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
        env -i PATH=/usr/bin:/bin "${unit_env[@]}" "${exec_start[@]}") >>"$work/daemon.log" 2>&1 &
    daemon_pid=$!
    for _ in $(seq 100); do [ -S "$runtime/admin.sock" ] && break; sleep 0.1; done
    [ -S "$runtime/admin.sock" ] || fail "the daemon did not open $runtime/admin.sock: $(tail -n 20 "$work/daemon.log")"
}
owner() { runuser -u lkowner -- "$@"; }
phone() { latchkey-client --state "$work/phone" "$@"; }
admitted() {
    local out
    out=$(timeout 60 latchkey-client --state "$work/phone" cameras 2>&1) || fail "$1: the phone is not admitted: $out"
    grep -q '^demo ' <<<"$out" || fail "$1: the phone sees no camera: $out"
    ok "$1: the phone is admitted and lists the demo camera"
}

say "starting the daemon as $user (${exec_start[*]})"
start_daemon
[ "$(stat -c '%U %G' "/proc/$daemon_pid")" = "$user $group" ] || fail "the daemon does not run as $user:$group"
[ "$(stat -c '%a %U %G' "$runtime/admin.sock")" = "660 $user $group" ] || fail "the admin socket is $(stat -c '%a %U %G' "$runtime/admin.sock")"
[ "$(stat -c '%a %U' "$state/latchkey.db")" = "600 $user" ] || fail "the store is $(stat -c '%a %U' "$state/latchkey.db")"
ok "daemon runs as $user:$group; admin socket 0660 $user:$group; store 0600"

id lkowner >/dev/null 2>&1 || useradd --no-create-home --home-dir "$work/nohome" --groups latchkey lkowner
refused=$(runuser -u nobody -- latchkey devices 2>&1) && fail "user nobody used the admin socket: $refused"
[ "$(wc -l <<<"$refused")" = 1 ] || fail "an error is more than one line: $refused"
ok "a user outside the latchkey group is refused: $refused"
uri=$(owner latchkey pair --auto-confirm --uri-only) || fail "a latchkey group member could not open a pairing window"
phone pair --name ci-phone "$uri" >/dev/null
owner latchkey devices | grep -q 'ci-phone.*active' || fail "the phone is not an active device: $(owner latchkey devices)"
ok "a latchkey group member paired a phone through the admin socket"
admitted "first install"
doctor=$(latchkey --state "$state" doctor) || fail "latchkey doctor failed: $doctor"
grep -q '^ok   version .*Debian package' <<<"$doctor" || fail "doctor did not see the package: $doctor"
ok "latchkey doctor passes: $(grep -c '^ok' <<<"$doctor") ok, $(grep -c '^warn' <<<"$doctor") warnings"

# --- errors are one line whatever RUST_BACKTRACE says
err=$(RUST_BACKTRACE=full latchkey --state "$work/nothing" backup "$work/x.db" 2>&1) && fail "a backup of nothing succeeded"
[ "$(wc -l <<<"$err")" = 1 ] || fail "an error is more than one line: $err"
err=$(RUST_BACKTRACE=1 latchkey-client --state "$work/phone2" cameras 2>&1) && fail "an unpaired client connected"
[ "$(wc -l <<<"$err")" = 1 ] || fail "a client error is more than one line: $err"
ok "errors are one line under RUST_BACKTRACE: $err"

# --- upgrade
say "upgrading to $v2"
stop_daemon
# Root reading a stopped service's store must leave nothing the service cannot open.
latchkey --state "$state" doctor >/dev/null || true
latchkey --state "$state" backup "$work/stopped.db" 2>/dev/null
foreign=$(find "$state" ! -user "$user")
[ -z "$foreign" ] || fail "root's doctor or backup left files the service cannot use: $foreign"
ok "doctor and backup as root leave every file of $state to $user"
dpkg -i "$deb2"
[ "$(dpkg-query -W -f='${Version}' latchkey)" = "$v2" ] || fail "the upgrade did not install $v2"
start_daemon
admitted "after the upgrade to $v2"

# --- backup while running, wipe, restore
say "backup, wipe, restore"
backup_err=$(latchkey --state "$state" backup "$work/backup.db" 2>&1 >/dev/null)
grep -q "private key" <<<"$backup_err" || fail "the backup did not warn about the private key: $backup_err"
[ "$(stat -c %a "$work/backup.db")" = 600 ] || fail "the backup is mode $(stat -c %a "$work/backup.db")"
ok "backup taken while the gateway runs: mode 0600, with the warning"
err=$(latchkey --state "$state" restore "$work/backup.db" 2>&1) && fail "restore ran under a running gateway"
ok "restore refuses a running gateway: $err"
stop_daemon
find "$state" -mindepth 1 -delete
start_daemon
out=$(timeout 60 latchkey-client --state "$work/phone" cameras 2>&1) && fail "the wiped gateway still admitted the phone: $out"
ok "the wiped gateway does not know the phone"
stop_daemon
latchkey --state "$state" restore "$work/backup.db"
[ "$(stat -c '%U' "$state/latchkey.db")" = "$user" ] || fail "the restored store belongs to $(stat -c %U "$state/latchkey.db")"
start_daemon
admitted "after the restore"
stop_daemon

# --- the camera port: its privileges come from a drop-in, shipped as an example
say "the camera port's drop-in"
dropin=/usr/share/doc/latchkey/examples/camera-port.conf
[ -f "$dropin" ] || fail "the camera port's drop-in $dropin is not shipped"
root="$work/root"
mkdir -p "$root/etc/systemd/system/latchkey.service.d"
cp "$unit" "$root/etc/systemd/system/"
cp "$dropin" "$root/etc/systemd/system/latchkey.service.d/"
security=$(systemd-analyze security --offline=true --root="$root" latchkey.service 2>/dev/null)
grep -q '✗ CapabilityBoundingSet=~CAP_NET_ADMIN' <<<"$security" || fail "systemd-analyze did not apply the drop-in: $security"
with=$(sed -n 's/.*Overall exposure level for latchkey.service: \([0-9.]*\).*/\1/p' <<<"$security")
[ -n "$with" ] || fail "no score in: $security"
awk -v s="$with" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' || fail "security exposure with the drop-in $with > $MAX_EXPOSURE"
ok "$dropin shipped; exposure with it $with, without it $score (at most $MAX_EXPOSURE)"

# The daemon as the unit's user, in a namespace with a camera port: without the drop-in's
# capabilities it stops with one line naming the drop-in; with them (as ambient
# capabilities, passed on to nft and dnsmasq) the port is on.
caps=$(sed -n 's/^AmbientCapabilities=//p' "$dropin" | tr ' ' '\n' | sed 's/^CAP_/+/' | tr 'A-Z' 'a-z' | paste -sd, -)
[ -n "$caps" ] || fail "no AmbientCapabilities= in $dropin"
ns=lkpkg-camport
ip netns del "$ns" 2>/dev/null || true
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add cam0 type veth peer name cam1
ip -n "$ns" addr add 10.85.0.1/24 dev cam0
ip -n "$ns" link set cam0 up
ip -n "$ns" link set cam1 up
cam_state="$work/camport"
install -d -o "$user" -g "$group" -m 0700 "$cam_state"
printf '[camera_port]\ninterface = "cam0"\n' >"$work/camport.toml"
chmod 644 "$work/camport.toml"
camport_run() {
    exec ip netns exec "$ns" setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs "$@" \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LATCHKEY_SOCKET="$cam_state/admin.sock" \
        /usr/bin/latchkey --state "$cam_state" run --config "$work/camport.toml"
}
err=$(camport_run 2>&1 >/dev/null) && { ip netns del "$ns"; fail "the camera port started without the drop-in's capabilities"; }
last=$(grep . <<<"$err" | tail -n 1)
grep -q 'camera-port.conf' <<<"$last" || { ip netns del "$ns"; fail "the error does not name the drop-in: $err"; }
ok "without the drop-in: $last"
camport_run --inh-caps="$caps" --ambient-caps="$caps" --bounding-set=-all,"$caps" >"$work/camport.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do grep -q '^camera port cam0' "$work/camport.log" && break; sleep 0.1; done
listening=$(ip netns exec "$ns" ss -Hlun)
tables=$(ip netns exec "$ns" nft list tables 2>&1)
stop_daemon
ip netns del "$ns"
grep -q '^camera port cam0 10.85.0.1/24' "$work/camport.log" || fail "the camera port did not start with $caps: $(tail -n 5 "$work/camport.log")"
for port in 53 67 123; do grep -q "%cam0:$port " <<<"$listening" || fail "nothing serves UDP $port on the camera port: $listening"; done
grep -q 'latchkey_quarantine' <<<"$tables" || fail "no camera port table: $tables"
ok "with the drop-in's capabilities ($caps): DNS, DHCP and NTP served on the camera port, its nftables table in place"

# --- remove keeps the state, purge deletes it after saying so
say "remove, then purge"
dpkg -r latchkey
[ ! -e /usr/bin/latchkey ] || fail "remove left /usr/bin/latchkey"
[ -f "$state/latchkey.db" ] || fail "remove deleted the state"
ok "remove keeps $state"
purge=$(dpkg -P latchkey 2>&1)
grep -q "deleting $state" <<<"$purge" || fail "purge did not say it deletes the state: $purge"
[ ! -e "$state" ] || fail "purge left $state"
ok "purge deletes $state after saying so"
echo "package: $PASSED passed, 0 failed"
