# shellcheck shell=bash
# Shared helpers for scripts/dev-stack and scripts/test. Source it; do not run it.
# Expects the caller to have `set -euo pipefail`.

# Repository root: the parent of scripts/.
SPRINGMAIL_ROOT="${SPRINGMAIL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}"

log() { printf '%s\n' "$*" >&2; }
info() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Seconds since the epoch, with a fraction, for timing steps.
now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (install it by hand, or run as root)"
    fi
}

_APT_UPDATED=0
# ensure_apt_packages PKG... : install Debian packages that are not installed yet.
# Never starts their system services: on a machine without a policy-rc.d, one is put
# in place for the duration of the install and removed afterwards.
ensure_apt_packages() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"
    info "installing Debian packages: ${missing[*]}"
    local t0 policy_added=0
    t0=$(now_s)
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
        policy_added=1
    fi
    local rc=0
    if [ "$_APT_UPDATED" -eq 0 ]; then
        as_root apt-get update -qq || rc=$?
        _APT_UPDATED=1
    fi
    if [ "$rc" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null || rc=$?
    fi
    if [ "$policy_added" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $rc)"
    info "installed ${missing[*]} in $(elapsed_since "$t0")s"
}

# ensure_contracts_npm: contracts/node_modules from the lock file (anvil, solc).
# contracts/ belongs to another engineer: we only read package.json / the lock file.
ensure_contracts_npm() {
    local dir="$SPRINGMAIL_ROOT/contracts"
    [ -f "$dir/package.json" ] || die "contracts/package.json not found"
    command -v npm >/dev/null 2>&1 || die "npm not found (Node.js is expected on this machine)"
    local need=0
    [ -x "$dir/node_modules/.bin/anvil" ] || need=1
    [ -x "$dir/node_modules/.bin/solcjs" ] || need=1
    if [ -f "$dir/package-lock.json" ] && [ -f "$dir/node_modules/.package-lock.json" ] &&
        [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        need=1
    fi
    [ "$need" -eq 1 ] || return 0
    local t0
    t0=$(now_s)
    if [ -f "$dir/package-lock.json" ]; then
        info "npm ci --prefix contracts"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
    else
        info "no contracts/package-lock.json yet: npm install --prefix contracts (creates it)"
        npm install --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
    fi
    [ -x "$dir/node_modules/.bin/anvil" ] || die "npm did not install anvil into contracts/node_modules"
    info "contracts/node_modules ready in $(elapsed_since "$t0")s"
}

# anvil_binary: the native anvil from the platform package (so the PID we record is
# anvil's own, not a node wrapper's), else the npm wrapper script.
anvil_binary() {
    local base="$SPRINGMAIL_ROOT/contracts/node_modules/@foundry-rs" os arch cand
    case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os=unknown ;; esac
    case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=unknown ;; esac
    cand="$base/anvil-$os-$arch/bin/anvil"
    if [ -x "$cand" ]; then
        printf '%s\n' "$cand"
    else
        printf '%s\n' "$SPRINGMAIL_ROOT/contracts/node_modules/.bin/anvil"
    fi
}

# port_is_free PORT: nothing listens on 127.0.0.1:PORT and we could bind it.
port_is_free() {
    python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# free_ports N: N distinct free loopback ports, one per line (held open together
# while choosing so they differ; the kernel picks them from the ephemeral range).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

# pid_alive PID: the process exists and is not a zombie (an exited daemon whose
# parent, often PID 1 here, has not reaped it yet holds no port and no file).
pid_alive() {
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(ps -o stat= -p "$1" 2>/dev/null || true)
    [ -n "$st" ] && [ "${st#Z}" = "$st" ]
}

# group_alive PGID: some non-zombie process is in process group PGID.
group_alive() {
    ps -e -o pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}

# kill_started PID [NAME]: stop a process we started (and its process group, which
# we created for it with setsid): TERM, wait up to 10 s, then KILL. Only the given
# PID and the group it leads are signalled, never anything found by name.
kill_started() {
    local pid="$1" name="${2:-process}" _
    [ -n "$pid" ] || return 0
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            pid_alive "$pid" || break
            sleep 0.1
        done
        if pid_alive "$pid"; then
            warn "$name (pid $pid) did not stop on TERM; sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # Children left in the group we created (e.g. dovecot's imap/lmtp workers).
    if group_alive "$pid"; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            group_alive "$pid" || break
            sleep 0.1
        done
        if group_alive "$pid"; then
            warn "processes left in $name's process group $pid; sending KILL"
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
    fi
    # Reap if it is our child; ignore otherwise.
    wait "$pid" 2>/dev/null || true
}
