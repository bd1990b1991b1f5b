#!/usr/bin/env bash
# Self-test of scripts/test's step bookkeeping (a second or so): a step that exits 0
# passes, one that exits 77 (a hook that cannot run here, e.g. the fuzz smoke without
# cargo-fuzz) is listed as skipped and never as passed, any other status fails; and
# SPRINGMAIL_TEST_NO_SKIP=1 turns a skip into a failure. Runs scripts/test's own
# run_step and finish (sourced), on stand-in steps.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd -P)

# summary_of NO_SKIP STEP...: the summary scripts/test prints for stand-in steps, each
# NAME=EXIT, and its exit status on the last line.
summary_of() {
    local no_skip="$1"
    shift
    (
        set +e
        (
            export SPRINGMAIL_TEST_NO_SKIP="$no_skip"
            # shellcheck source=scripts/test
            . "$ROOT/scripts/test"
            for s in "$@"; do
                run_step "${s%%=*}" bash -c "echo '${s%%=*}: why it did what it did' >&2; exit ${s##*=}"
            done
            finish
        ) 2>/dev/null
        echo "exit=$?"
    )
}

fail=0
check() { # check WHAT OUTPUT PATTERN: the summary must match PATTERN (grep -E)
    if grep -Eq -- "$3" <<<"$2"; then
        echo "ok: $1"
    else
        echo "FAILED: $1: no /$3/ in:" >&2
        printf '%s\n' "$2" | sed 's/^/    /' >&2
        fail=1
    fi
}
check_not() {
    if grep -Eq -- "$3" <<<"$2"; then
        echo "FAILED: $1: /$3/ in:" >&2
        printf '%s\n' "$2" | sed 's/^/    /' >&2
        fail=1
    else
        echo "ok: $1"
    fi
}

out=$(summary_of 0 build=0 fuzz=77 docs=0)
printf '%s\n' "$out" | sed 's/^/  | /'
check "a step that exits 77 is listed as skipped" "$out" '^skipped \(not run, not passed\): fuzz$'
check_not "a step that exits 77 is not listed as passed" "$out" 'passed: [^;)]*fuzz'
check "the other steps passed, and the run passes" "$out" '^scripts/test: PASS \(passed: build docs; skipped: fuzz\)'
check "exit status 0 with a skip" "$out" '^exit=0$'

out=$(summary_of 1 build=0 fuzz=77)
check "SPRINGMAIL_TEST_NO_SKIP=1: a skip fails the run" "$out" '^scripts/test: FAIL \(failed: skipped-steps; passed: build; skipped: fuzz\)'
check "SPRINGMAIL_TEST_NO_SKIP=1: exit status 1" "$out" '^exit=1$'

out=$(summary_of 0 build=0 tests=3)
check "a step that exits 3 fails the run" "$out" '^scripts/test: FAIL \(failed: tests; passed: build\)'
check_not "no skipped line without skips" "$out" '^skipped'

# The fuzz hook itself, where cargo-fuzz cannot run (a stand-in `cargo` that fails):
# it must say so and exit 77, not 0.
stub=$(mktemp -d "${TMPDIR:-/tmp}/springmail-nofuzz.XXXXXX")
trap 'rm -rf "$stub"' EXIT
printf '#!/bin/sh\nexit 101\n' >"$stub/cargo"
chmod +x "$stub/cargo"
rc=0
said=$(PATH="$stub:$PATH" CI= SPRINGMAIL_FUZZ_SECS=1 bash "$ROOT/scripts/test.d/40-fuzz-smoke.sh" 2>&1 >/dev/null) || rc=$?
check "the fuzz hook without cargo-fuzz exits 77" "exit=$rc" '^exit=77$'
check "the fuzz hook says why it skipped" "$said" 'SKIP: .*cargo-fuzz'
# Under CI=true it skips the live run (time budget), saying so, unless asked for.
rc=0
said=$(CI=true SPRINGMAIL_FUZZ_SECS= bash "$ROOT/scripts/test.d/40-fuzz-smoke.sh" 2>&1 >/dev/null) || rc=$?
check "the fuzz hook under CI exits 77" "exit=$rc" '^exit=77$'
check "the fuzz hook under CI says why" "$said" 'SKIP: .*time budget.*replayed on stable'

exit "$fail"
