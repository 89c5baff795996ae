#!/usr/bin/env bash
# Installs what Joyride needs to build and test on Debian 12. Idempotent.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (it installs packages)" >&2
    exit 1
fi

packages=(
    build-essential pkg-config gcc-multilib
    libseccomp-dev
    libclang-dev clang dpdk-dev libdpdk-dev
    iproute2 procps util-linux
    curl busybox-static golang-go python3 strace socat iputils-ping iputils-tracepath traceroute ethtool
    hping3
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: Rust (cargo) is not installed; install Rust 1.80 or newer with rustup" >&2
    exit 1
fi
