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
    # Real programs and peers of the `joyride exec` acceptance tests
    # (tests/tests/exec.rs); dnsmasq-base has no service, redis-server has.
    wrk iperf3 dnsmasq-base bind9-dnsutils redis-server redis-tools
)
# nginx-light where the release still has it (bookworm), nginx otherwise.
if apt-cache show nginx-light >/dev/null 2>&1; then
    packages+=(nginx-light)
else
    packages+=(nginx)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Packages that ship services (nginx, redis-server, iperf3) must install
    # without systemd and must not start anything: policy-rc.d refuses every
    # service start during the install (an existing policy is kept).
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if [ "$own_policy" -eq 1 ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: Rust (cargo) is not installed; install Rust 1.80 or newer with rustup" >&2
    exit 1
fi
