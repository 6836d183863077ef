#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after the other.
# Fails on the first crash, leak or timeout; prints the executions of every target.
#
#   scripts/fuzz.sh 120                    # every target, 120 s each
#   FUZZ_TARGETS="flow" scripts/fuzz.sh 600
#   FUZZ_JOBS=2 scripts/fuzz.sh 300        # two workers per target
#   FUZZ_SEED=1 scripts/fuzz.sh 60          # the same mutations every run (CI)
#
# New inputs found along the way are written to fuzz/corpus/<target>/ (see fuzz/README.md
# before committing any); crashes to fuzz/artifacts/<target>/.
set -euo pipefail

seconds="${1:-60}"
jobs="${FUZZ_JOBS:-1}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
# The crate has no unsafe code: without a sanitizer the targets run several times faster.
# Debug assertions stay on so that integer overflow panics instead of wrapping.
sanitizer="${FUZZ_SANITIZER:-none}"
cd "$(dirname "$0")/.."

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

targets="${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list)}"

# Build flags per target. The parsers keep comparison tracing: it is how the fuzzer learns
# the strings and numbers they look for. `flow` decodes a structured input with `arbitrary`
# (choices among a few values, bounded integers): nothing there for the recorded operands of
# comparisons to find, and the hooks on every comparison of the flow, the fake server, JSON
# and Debug took a third of its time. It is built without them, in a target directory of its
# own so that the two builds do not rebuild each other.
flags_of() {
    case "$1" in
        flow) echo "--no-trace-compares --target-dir fuzz/target/no-trace-compares" ;;
        *) echo "" ;;
    esac
}

for target in $targets; do
    # shellcheck disable=SC2086 # the flags are words
    cargo "+$toolchain" fuzz build -O -a -s "$sanitizer" $(flags_of "$target") "$target"
done

declare -A execs
declare -A rates
declare -A durations
status=0
for target in $targets; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/artifacts/$target/last-run.log"
    echo "== $target: ${seconds}s" >&2
    started=$SECONDS
    args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    if [ -n "${FUZZ_SEED:-}" ]; then
        args+=(-seed="$FUZZ_SEED")
    fi
    if [ "$jobs" -gt 1 ]; then
        args+=(-jobs="$jobs" -workers="$jobs")
    fi
    # shellcheck disable=SC2086 # the flags are words
    if ! cargo "+$toolchain" fuzz run -O -a -s "$sanitizer" $(flags_of "$target") "$target" -- \
        "${args[@]}" >"$log" 2>&1; then
        echo "!! $target failed; see $log and fuzz/artifacts/$target/" >&2
        tail -n 40 "$log" >&2
        status=1
        execs[$target]="crashed"
        rates[$target]="-"
        break
    fi
    # With several workers libFuzzer writes one fuzz-N.log per worker.
    stats=$(cat "$log" fuzz-*.log 2>/dev/null || true)
    execs[$target]=$(awk '/stat::number_of_executed_units/ { s += $2 } END { print s + 0 }' <<<"$stats")
    rates[$target]=$(awk '/stat::average_exec_per_sec/ { s += $2 } END { print s + 0 }' <<<"$stats")
    durations[$target]=$((SECONDS - started))
    rm -f fuzz-*.log
done

printf '\n%-18s %14s %12s %10s\n' target executions exec/s seconds
for target in $targets; do
    [ -n "${execs[$target]:-}" ] || continue
    printf '%-18s %14s %12s %10s\n' "$target" "${execs[$target]}" "${rates[$target]}" \
        "${durations[$target]:--}"
done
exit "$status"
