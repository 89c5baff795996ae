#!/usr/bin/env bash
# Joyride's main job: unmodified programs on the user-space TCP/IP stack,
# over the embedded default network (a veth pair, host end joyride0 with
# 10.77.0.1, the stack on 10.77.0.2 through DPDK's net_af_xdp).
#
# Installs what is needed, builds, then:
#  1. curl under `joyride exec` downloads a 50 MB file from a web server on
#     the host (the kernel's stack) and the SHA-256 is compared;
#  2. Python's http.server runs under `joyride exec` and the host's curl
#     downloads the same file from it;
#  3. `joyride trace` shows curl's network calls, served by the kernel.
# Each run prints the stack's counters (--stats).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p joyride
joyride=target/release/joyride
py=/usr/bin/python3

www=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$www"
}
trap cleanup EXIT
head -c 50000000 /dev/urandom > "$www/file"
want=$(sha256sum < "$www/file" | cut -d' ' -f1)
port=$((20000 + RANDOM % 20000))

# A server on the host, on every address, so joyride0's is one of them.
"$py" -m http.server "$port" --directory "$www" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

echo "== 1. joyride exec -- curl http://10.77.0.1:$port/file (the host's server)"
"$joyride" exec --stats -- curl -sS -o "$www/got" \
    --retry 20 --retry-connrefused --retry-delay 0 "http://10.77.0.1:$port/file"
got=$(sha256sum < "$www/got" | cut -d' ' -f1)
[ "$got" = "$want" ] && echo "sha256 matches: $got" || { echo "sha256 differs: $got"; exit 1; }

echo
echo "== 2. joyride exec -- python3 -m http.server, fetched by the host's curl"
"$joyride" exec --stats -- "$py" -m http.server "$((port + 1))" --directory "$www" >/dev/null &
server=$!
pids+=($server)
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://10.77.0.2:$((port + 1))/" 2>/dev/null && break
    sleep 0.1
done
curl -sS -f -o "$www/got2" -w "%{http_code} %{size_download} bytes\n" "http://10.77.0.2:$((port + 1))/file"
got=$(sha256sum < "$www/got2" | cut -d' ' -f1)
[ "$got" = "$want" ] && echo "sha256 matches: $got" || { echo "sha256 differs: $got"; exit 1; }
kill -TERM "$server"
wait "$server" || true

echo
echo "== 3. joyride trace -- curl http://127.0.0.1:$port/ (the kernel serves, Joyride prints)"
"$joyride" trace -- curl -sS -o /dev/null "http://127.0.0.1:$port/"
