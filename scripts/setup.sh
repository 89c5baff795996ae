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
    # PostgreSQL 15 under `joyride exec` with pgbench from a kernel peer
    # (tests/tests/postgres.rs); postgresql-15 ships postgres, initdb,
    # pg_isready, psql and pgbench under /usr/lib/postgresql/15/bin.
    # postgresql-common creates a default cluster (port 5432) at install
    # time; the policy below keeps it from starting and the test uses its
    # own data directory and port.
    postgresql postgresql-15 postgresql-client-15
    # CPython's own test_socket and test_selectors for /usr/bin/python3
    # (tests/tests/cpython.rs), openssl for the HTTPS server's certificate.
    libpython3.11-testsuite openssl
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
    # without systemd and must not start anything: a policy-rc.d that refuses
    # every service action during the install, removed after it (a policy
    # that was there before is put back).
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then
        saved="$(mktemp)"
        cp -p "$policy" "$saved"
    fi
    restore_policy() {
        if [ -n "$saved" ]; then
            mv -f "$saved" "$policy"
        else
            rm -f "$policy"
        fi
    }
    trap restore_policy EXIT
    printf '#!/bin/sh\n# joyride scripts/setup.sh: no service starts during the install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    restore_policy
    trap - EXIT
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup.sh: Rust (cargo) is not installed; install Rust 1.80 or newer with rustup" >&2
    exit 1
fi
