#!/usr/bin/env bash
# Make sure `node` (>= 18) and `npm` are on PATH for the Node client's tests
# (make deps runs it after scripts/install-deps.sh). Quiet and idempotent
# when both are there, from whatever source (Debian's nodejs + npm,
# NodeSource's nodejs, which carries npm); otherwise installs Debian's
# `nodejs` and `npm` with apt-get (Debian 12: Node 18). Only commands are
# checked, never package names, so a NodeSource install is not replaced.
set -euo pipefail

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]} (Node client tests)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install failed: ${missing[*]}"
fi
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || die "node $(node --version) is too old: the client needs Node >= 18"
