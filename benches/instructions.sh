#!/usr/bin/env bash
# Instructions per small request in the local proxy and the gateway, counted by callgrind.
#
# Run with: benches/instructions.sh [small1|small32]   (from the workspace root; ~1 min)
#      or:  BENCH_LOW=1 BENCH_HIGH=3 benches/instructions.sh large   (instructions per large list)
#
# Runs `proxy_path` twice with a fixed number of small-list requests (BENCH_REQUESTS, low then
# high) with the two proxies under callgrind, and divides the difference of their instruction
# totals by the difference of the request counts: start-up, TLS handshakes and warm-up are the
# same in both runs and cancel out. Instruction counts do not depend on how busy the machine is.
# Prints one line per target ((c) JSON-lines audit, (d) null audit) and process.
set -eu
phase=${1:-small1}
low=${BENCH_LOW:-400}
high=${BENCH_HIGH:-1200}
out=${BENCH_OUT:-$(mktemp -d)}
# BENCH_REUSE=1: only recount the profiles already in $BENCH_OUT.
[ -n "${BENCH_REUSE:-}" ] || for n in "$low" "$high"; do
    mkdir -p "$out/$n"
    BENCH_QUICK=1 BENCH_PHASES=$phase BENCH_REQUESTS=$n KUBECTL=/nonexistent \
    BENCH_NODE_WRAP="valgrind --tool=callgrind --callgrind-out-file=$out/$n/%q{BENCH_NODE_ROLE}.%p.out" \
    BENCH_NODE_WRAP_ROLES=gateway,local-proxy \
        cargo bench -q -p kms-pam-benches --bench proxy_path >"$out/$n/log" 2>&1 ||
        { echo "proxy_path failed; see $out/$n/log" >&2; exit 1; }
done
# The total of one callgrind output file (its `totals:` line; the first event is Ir).
total() { awk '/^totals:/ {print $2}' "$1"; }
for role in local-proxy gateway; do
    # Oldest first: (c) stops, writing its profile, before (d) starts (pids may wrap).
    lows=$(ls -tr "$out/$low/$role".*.out)
    highs=$(ls -tr "$out/$high/$role".*.out)
    set -- c d
    for pair in $(paste -d, <(echo "$lows") <(echo "$highs")); do
        a=${pair%,*}
        b=${pair#*,}
        per=$((($(total "$b") - $(total "$a")) / (high - low)))
        echo "($1) $role: $per instructions per request ($phase, $low vs $high requests)"
        shift
    done
done
echo "profiles in $out"
