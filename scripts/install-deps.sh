#!/usr/bin/env bash
# Install what sila-archiver needs to build and test, and nothing else.
# Idempotent and quiet when everything is present: checks each Debian package
# with dpkg-query, runs "apt-get update" once only if something is missing, then
# installs just the missing ones. Finally checks that the python3 on PATH can
# run moto's S3 server and import boto3 (the integration tests and the demo
# need both); pip is only tried as a last resort and may fail offline.
set -euo pipefail

DEB_PKGS=(
    build-essential pkg-config
    libhiredis-dev libcurl4-openssl-dev libarchive-dev libssl-dev
    libjansson-dev libexpat1-dev libmicrohttpd-dev
    check libsubunit-dev
    redis-server zip unzip
    # OpenStack Swift with its S3 API for tests/swift (make check-swift)
    swift-proxy swift-account swift-container swift-object python3-swift
    memcached curl
    # ZIP readers for tests/readers (make check-readers): 7z, bsdtar, Java
    p7zip-full libarchive-tools default-jdk-headless
)

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

deb_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

# The python3 on PATH matters (it may be pyenv's, not Debian's): only ask
# apt for Debian's python3 when there is no python3 at all.
command -v python3 >/dev/null 2>&1 || DEB_PKGS+=(python3 python3-pip)

missing=()
for p in "${DEB_PKGS[@]}"; do
    deb_installed "$p" || missing+=("$p")
done

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            || die "apt-get update failed"
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" \
        || die "apt-get install failed: $*"
}

if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

py_ok() {
    python3 - <<'PY' >/dev/null 2>&1
import boto3, botocore, moto, moto.server  # noqa: F401
major = int(moto.__version__.split(".")[0])
raise SystemExit(0 if major >= 5 else 1)
PY
}

if ! py_ok; then
    py=$(command -v python3)
    say "moto>=5 / boto3 not importable by $py; trying pip"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        die "python3 ($py) has no pip; install moto[server]>=5 and boto3 for it by hand"
    fi
    python3 -m pip install -q 'moto[server]>=5' boto3 \
        || die "pip could not install moto[server]>=5 boto3 for $py (offline?); install them by hand"
    py_ok || die "moto>=5 / boto3 still not importable by $py after pip install"
fi

say "all present"
