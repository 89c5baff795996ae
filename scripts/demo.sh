#!/usr/bin/env bash
# Joyride's main job for now: trace a real program's network calls against a
# local server. Installs what is needed, builds, starts an HTTP server on the
# loopback, and runs curl under `joyride trace`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p joyride

www=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$www"' EXIT
echo "hello from a local server" > "$www/index.txt"
port=$((20000 + RANDOM % 20000))
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

echo "== joyride trace -- curl http://127.0.0.1:$port/index.txt"
target/release/joyride trace -- curl -sS "http://127.0.0.1:$port/index.txt"
