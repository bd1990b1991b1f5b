#!/usr/bin/env bash
# The long run of the escrow property test (sdk/tests/escrow_proptest.rs): random
# sequences of deposits, claims, refunds and clock moves against a model of the escrow.
# `cargo test` runs 256 (fixed seed); this runs 10,000 (about three minutes on two cores,
# debug build; 3,000 under CI=true). Override with PROPTEST_CASES=N. It prints how often each outcome was reached.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# Under CI=true 3,000 (about a minute; CI's 30-minute budget), else 10,000.
if [ "${CI:-}" = "true" ]; then
    export PROPTEST_CASES="${PROPTEST_CASES:-3000}"
else
    export PROPTEST_CASES="${PROPTEST_CASES:-10000}"
fi
echo "escrow property test: $PROPTEST_CASES sequences" >&2
# --workspace, as the cargo-test step: `-p springmail-sdk` alone resolves other
# dependency features and rebuilds a third of the tree (minutes in CI).
exec cargo test --workspace --test escrow_proptest -- --nocapture
