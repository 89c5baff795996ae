#!/usr/bin/env bash
# Installs what is needed, builds everything and runs the whole test suite.
# Needs root: the end-to-end tests create network namespaces and veth pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --all-targets
# A hung test fails the run within 40 minutes instead of stalling it.
timeout --kill-after=30 2400 cargo test --workspace -- --test-threads=2
