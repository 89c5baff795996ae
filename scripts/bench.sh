#!/usr/bin/env bash
# Joyride against the kernel stack: every workload of the performance
# targets (bulk TCP, request/response latency, connection rate, UDP, nginx,
# system calls, CPU per GB, idle), the same programs on the same veth link,
# alternating stacks round by round. Prints the table, writes
# target/bench/joyride-bench.json and target/bench/joyride-bench.svg.
#
# Installs what is needed and builds in release mode first. Extra arguments
# go to joyride-bench (e.g. --runs 5, --quick, --only 2; see --help).
# Needs root: it creates network namespaces and runs `joyride exec`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p joyride -p joyride-benches --bins
exec target/release/joyride-bench "$@"
