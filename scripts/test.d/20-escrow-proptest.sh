#!/usr/bin/env bash
# The long run of the escrow property test (sdk/tests/escrow_proptest.rs): random
# sequences of deposits, claims, refunds and clock moves against a model of the escrow.
# `cargo test` runs 64 sequences; this runs 10,000 (about a minute on two cores, debug
# build). Override with PROPTEST_CASES=N. It prints how often each outcome was reached.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PROPTEST_CASES="${PROPTEST_CASES:-10000}"
echo "escrow property test: $PROPTEST_CASES sequences" >&2
exec cargo test -p springmail-sdk --test escrow_proptest -- --nocapture
