#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after another, in one process each
# (no -jobs/-workers), and prints one summary line per target:
#
#   fuzz/run.sh [SECONDS]
#
# Environment:
#   FUZZ_TARGETS="digest_header json_bodies"  run only these targets
#   FUZZ_TOOLCHAIN=nightly                     cargo +nightly (default: the default toolchain;
#                                              stable works, as no sanitizer is used)
#   FUZZ_CMIN=1                                minimise each target's corpus after its run
#
# New inputs go to fuzz/corpus/<target>; fuzz/seeds/<target> is read only. A failing input is
# saved in fuzz/artifacts/<target>/ and makes the script exit 1 after all targets have run.
# Full libFuzzer logs: fuzz/target/fuzz-logs/<target>.log.
set -euo pipefail

seconds="${1:-600}"
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")"
targets=(${FUZZ_TARGETS:-digest_header customer_ca_bundle json_bodies query_params ocsp_request})
cargo=(cargo)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    cargo=(cargo "+$FUZZ_TOOLCHAIN")
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# -s none: no sanitizer, so the stable toolchain works. Without -O, cargo-fuzz builds optimised
# code with debug assertions and overflow checks on.
"${cargo[@]}" fuzz build -s none

mkdir -p target/fuzz-logs
summary=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    # Room for a few certificates in a bundle; real query strings are short.
    case "$t" in
    customer_ca_bundle) max_len=8192 ;;
    query_params) max_len=1024 ;;
    *) max_len=4096 ;;
    esac
    log="target/fuzz-logs/$t.log"
    before=$(find "corpus/$t" -type f | wc -l)
    echo "fuzzing $t for ${seconds}s (log: fuzz/$log)" >&2
    rc=0
    "${cargo[@]}" fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
        -dict="dict/$t.dict" -max_total_time="$seconds" -max_len="$max_len" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    last=$(grep -E ' cov: [0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    after=$(find "corpus/$t" -type f | wc -l)
    if [ "${FUZZ_CMIN:-0}" = 1 ] && [ "$rc" = 0 ]; then
        "${cargo[@]}" fuzz cmin -s none "$t" "corpus/$t" -- -max_len="$max_len" \
            >>"$log" 2>&1
    fi
    minimised=$(find "corpus/$t" -type f | wc -l)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    rate=0
    if [ -n "${execs:-}" ] && [ "${secs:-0}" -gt 0 ]; then
        rate=$((execs / secs))
    fi
    status=ok
    if [ "$rc" != 0 ]; then
        status="FAILED (exit $rc, see fuzz/$log and fuzz/artifacts/$t/)"
        failed=1
    fi
    summary+=("$(printf '%-19s %s: %ss, %s execs (%s/s), cov %s ft %s, corpus %s -> %s files (after cmin %s), artifacts %s' \
        "$t" "$status" "${secs:-?}" "${execs:-?}" "$rate" "${cov:-?}" "${ft:-?}" \
        "$before" "$after" "$minimised" "$crashes")")
    echo "${summary[-1]}" >&2
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
