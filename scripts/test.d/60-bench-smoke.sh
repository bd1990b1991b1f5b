#!/usr/bin/env bash
# Smoke run of the throughput benchmark (bench/src/bin/pipeline.rs) on 200 generated
# claim mails, debug build, a few seconds: proves the benchmark still runs end to end
# against the current watcher (every mail authenticated, verified, journaled, claimed
# and answered). Its figures mean nothing in a debug build and are not checked; the
# real measurement is `scripts/bench` (release build, 10,000 mails, one core).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export SPRINGMAIL_BENCH_DIR="${SPRINGMAIL_BENCH_DIR:-$PWD/target/bench-smoke}"
export SPRINGMAIL_BENCH_SMOKE=1
exec cargo run -q -p springmail-bench --bin pipeline -- --mails 200 --runs 1 --providers 4
