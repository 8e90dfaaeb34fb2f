#!/usr/bin/env bash
# Coverage-guided fuzzing of every reader of untrusted input (cargo-fuzz / libFuzzer).
#
#   scripts/fuzz.sh [-j N] [--sanitizer address|none] SECONDS [TARGET...]
#
# Builds the targets of fuzz/ once, then runs each TARGET (all of them by default) for
# SECONDS, N targets at a time (default 1: one after another). Per target it prints the
# run time, libFuzzer's executions (stat::number_of_executed_units from
# -print_final_stats=1), and whether it found a crash, a panic, an out-of-memory or a
# timeout, with the path of the input that triggers it. A summary table follows; the
# exit status is 1 when any target found something.
#
# Targets: toprt_file torch_pickle zs_pt safetensors config_json cli_jsonl capi_run.
# Their bodies are in tests/harness/ (the test suite runs them too).
#
# Corpora: each run reads the committed seeds in fuzz/corpus/<target>/ and writes what
# it discovers to fuzz/corpus-run/<target>/ (git-ignored), so fuzzing never dirties the
# checkout. Crashing inputs land in fuzz/artifacts/<target>/, logs in fuzz/logs/.
# To reproduce one: fuzz/target/<host>/release/<target> fuzz/artifacts/<target>/<file>
# (then minimise it, fix the reader and commit the input under
# tests/fixtures/fuzz-regressions/<target>/, where tests/tests/fuzz_regressions.rs runs it).
#
# cargo-fuzz needs nightly-only compiler flags (-Zsanitizer, sancov). With only a
# stable toolchain installed this script sets RUSTC_BOOTSTRAP=1, which lets stable
# rustc accept them; with a nightly toolchain as default it is harmless. cargo-fuzz
# itself is installed with `cargo install cargo-fuzz --locked` when it is missing.
#
# Limits per input: -timeout=${TOPRT_FUZZ_TIMEOUT:-10} seconds and
# -rss_limit_mb=${TOPRT_FUZZ_RSS_MB:-2048} (also the largest single allocation), so
# a reader that allocates what a file claims instead of what it has is reported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL_TARGETS=(toprt_file torch_pickle zs_pt safetensors config_json cli_jsonl capi_run)
JOBS=1
SANITIZER=address
TIMEOUT=${TOPRT_FUZZ_TIMEOUT:-10}
RSS_MB=${TOPRT_FUZZ_RSS_MB:-2048}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-2}"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        -j) JOBS=${2:?-j needs a number}; shift 2 ;;
        -j*) JOBS=${1#-j}; shift ;;
        --sanitizer) SANITIZER=${2:?--sanitizer needs a value}; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || usage
SECONDS_EACH=$1
shift
[[ "$SECONDS_EACH" =~ ^[0-9]+$ && "$SECONDS_EACH" -ge 1 ]] || { echo "fuzz.sh: SECONDS must be a positive integer" >&2; exit 2; }
[[ "$JOBS" =~ ^[0-9]+$ && "$JOBS" -ge 1 ]] || { echo "fuzz.sh: -j needs a positive integer" >&2; exit 2; }
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== building ${TARGETS[*]} (sanitizer: $SANITIZER)"
for t in "${TARGETS[@]}"; do
    cargo fuzz build --sanitizer "$SANITIZER" "$t"
done
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR=fuzz/target/$HOST/release
mkdir -p fuzz/logs

# Runs one target and writes "target|seconds|executions|exec/s|result" to its .result.
run_one() {
    local t=$1 log=fuzz/logs/$1.log res=fuzz/logs/$1.result
    mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
    local start end rc=0
    start=$(date +%s)
    "$BIN_DIR/$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout="$TIMEOUT" \
        -rss_limit_mb="$RSS_MB" -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
    end=$(date +%s)
    local execs rate artifact what result
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | tail -n 1)
    if [[ -n "$artifact" ]]; then
        what=$(grep -a -o -m1 -E 'panicked at [^ ]+|libFuzzer: (out-of-memory|timeout|deadly signal)|ERROR: AddressSanitizer: [a-z-]+' "$log" || echo crash)
        result="FOUND ($what): $artifact"
    elif [[ $rc -ne 0 ]]; then
        result="FAILED (exit $rc, see $log)"
    else
        result=ok
    fi
    echo "$t|$((end - start))|${execs:-?}|${rate:-?}|$result" >"$res"
    printf '%-13s %5ss  %12s execs  %7s/s  %s\n' "$t" "$((end - start))" "${execs:-?}" "${rate:-?}" "$result"
}

echo "== fuzzing ${#TARGETS[@]} target(s) for ${SECONDS_EACH}s each, $JOBS at a time"
rm -f fuzz/logs/*.result
running=0
for t in "${TARGETS[@]}"; do
    if [[ $JOBS -eq 1 ]]; then
        run_one "$t"
    else
        run_one "$t" &
        running=$((running + 1))
        if [[ $running -ge $JOBS ]]; then
            wait -n || true
            running=$((running - 1))
        fi
    fi
done
wait

echo
echo "== summary"
printf '| %-12s | %7s | %12s | %8s | %s\n' target seconds executions "exec/s" result
printf '|%s|%s|%s|%s|%s\n' -------------- --------- -------------- ---------- --------
found=0
for t in "${TARGETS[@]}"; do
    IFS='|' read -r name secs execs rate result <"fuzz/logs/$t.result"
    printf '| %-12s | %7s | %12s | %8s | %s\n' "$name" "$secs" "$execs" "$rate" "$result"
    [[ "$result" == ok ]] || found=1
done
exit $found
