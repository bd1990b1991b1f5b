#!/usr/bin/env bash
# Smoke runs of two benchmarks, debug build, proving they still run end to end against
# the current watcher; their figures mean nothing in a debug build and are not checked.
#
#   pipeline (bench/src/bin/pipeline.rs): 200 generated claim mails, a few seconds;
#            every mail authenticated, verified, journaled, claimed and answered.
#   load     (bench/src/bin/load.rs): 100 claims delivered at once over the dev stack
#            (scripts/test runs hooks with .dev-stack/env sourced), about 15 s; fails
#            unless every deposit is claimed exactly once and every claim answered.
#
# The real measurements are `scripts/bench` (release build, full sizes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export SPRINGMAIL_BENCH_DIR="${SPRINGMAIL_BENCH_DIR:-$PWD/target/bench-smoke}"
export SPRINGMAIL_BENCH_SMOKE=1
# Built as the cargo-test step builds (every target of the workspace, so the same
# dependency features): a no-op after it. `cargo run -p springmail-bench` would resolve
# the features of that package alone and rebuild much of the tree.
cargo build -q --workspace --all-targets
BIN="${CARGO_TARGET_DIR:-target}/debug"
"$BIN/pipeline" --mails 200 --runs 1 --providers 4
"$BIN/load" --claims 100
