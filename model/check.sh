#!/usr/bin/env bash
# check.sh: model-check delivery.pml with spin, the correct model and each
# deliberately broken variant, and print one line per run.
#
# The correct model must show 0 errors for every property; each broken
# variant must show an error for the property it breaks. The script exits
# non-zero if any run does not meet its expectation, or if spin or gcc is
# missing. Runs in a temporary directory; needs spin and gcc on PATH.
#
# Usage: model/check.sh [-v]   (-v: print each failing run's pan output)
set -u

verbose=0
[ "${1:-}" = "-v" ] && verbose=1

for tool in spin gcc; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "check.sh: $tool is not on PATH (apt-get install -y spin gcc)" >&2
		exit 2
	fi
done

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build NAME MODE DEFINES...: a pan binary for the model built with DEFINES;
# MODE is safety (-DSAFETY) or liveness (acceptance cycles, weak fairness).
build() {
	local name=$1 mode=$2
	shift 2
	local dir="$work/$name.$mode"
	[ -x "$dir/pan" ] && return 0
	mkdir -p "$dir"
	cp "$here/delivery.pml" "$dir/"
	local cflags="-O2 -DSAFETY"
	[ "$mode" = liveness ] && cflags="-O2 -DNFAIR=3"
	(cd "$dir" && spin -a "$@" delivery.pml >spin.out 2>&1 &&
		gcc $cflags -DMEMLIM=4096 -w -o pan pan.c >gcc.out 2>&1) || {
		echo "check.sh: cannot build $name ($mode):" >&2
		cat "$dir/spin.out" "$dir/gcc.out" >&2
		return 1
	}
}

jobs=${CHECK_JOBS:-2}

# throttle: wait until fewer than $jobs background jobs run.
throttle() {
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n
	done
}

# The runs: variant, property, expectation (ok: 0 errors; error: a
# counterexample), and the defines of the variant.
runs=()
add() { runs+=("$*"); }

# The correct model: a saga (two forward steps, b after a, and their
# compensations), and a plain message of two steps; two workers, two
# faults in a run (MAXF), two attempts per delivery, one replay.
for p in p1_stored p1_final p2 p3_failed p3_only p3_order p3_complete p4; do
	add saga "$p" ok
done
for p in p1_stored p1_final p2; do
	add plain "$p" ok -DPLAIN
done
# The plain message again, with four faults (crashes or slow workers) in a run.
for p in p1_stored p1_final p2; do
	add plain-4-faults "$p" ok -DPLAIN -DMAXF=4
done
# Each broken variant must be caught by the property it breaks.
add ACK_BEFORE_COMMIT p1_stored error -DPLAIN -DACK_BEFORE_COMMIT
add NO_RECLAIM p1_final error -DPLAIN -DNO_RECLAIM
add NO_FENCING p2 error -DPLAIN -DNO_FENCING
add NO_LEASE_CHECK p2 error -DPLAIN -DNO_LEASE_CHECK
add COMP_ON_SUCCESS p3_failed error -DCOMP_ON_SUCCESS
add COMP_ALL p3_only error -DCOMP_ALL
add COMP_ANY_ORDER p3_order error -DCOMP_ANY_ORDER
add NO_MAYBE p3_complete error -DNO_MAYBE
add MAYBE_LAST_ONLY p3_complete error -DMAYBE_LAST_ONLY
add MAYBE_NO_RECLAIM p3_complete error -DMAYBE_NO_RECLAIM
add REPLAY_AFTER_COMP p4 error -DREPLAY_AFTER_COMP

mode() {
	case "$1" in
	p1_final) echo liveness ;;
	*) echo safety ;;
	esac
}

# check I NAME PROPERTY EXPECT DEFINES...: run pan for one never claim in
# its own directory and write the result line to $work/result.I.
check() {
	local i=$1 name=$2 prop=$3 expect=$4 mode flags=""
	mode=$(mode "$prop")
	[ "$mode" = liveness ] && flags="-a -f"
	local dir="$work/run.$i" out
	mkdir -p "$dir"
	out=$(cd "$dir" && "$work/$name.$mode/pan" $flags -N "$prop" -m20000 2>&1)
	local errors states depth secs verdict
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
	states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' <<<"$out" | tail -1)
	depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' <<<"$out" | tail -1)
	secs=$(sed -n 's/.*elapsed time \([0-9.e+]*\) seconds.*/\1/p' <<<"$out" | tail -1)
	verdict=pass
	if [ -z "$errors" ]; then
		verdict="FAIL (no result)"
	elif grep -q 'max search depth too small' <<<"$out"; then
		verdict="FAIL (depth limit hit)"
	elif [ "$expect" = ok ] && [ "$errors" != 0 ]; then
		verdict="FAIL (expected 0 errors)"
	elif [ "$expect" = error ] && [ "$errors" = 0 ]; then
		verdict="FAIL (the broken variant was not caught)"
	fi
	printf '%-18s %-12s %-6s %6s %10s %6s %8s  %s\n' "$name" "$prop" "$expect" "${errors:--}" "${states:--}" "${depth:--}" "${secs:--}" "$verdict" >"$work/result.$i"
	if [ "$verdict" != pass ] && [ "$verbose" = 1 ]; then
		printf '%s\n' "$out" >>"$work/result.$i"
	fi
}

start=$SECONDS

# Build each variant once per mode, then run every check; $jobs at a time.
declare -A built=()
for r in "${runs[@]}"; do
	set -- $r
	name=$1 prop=$2
	shift 3
	key="$name.$(mode "$prop")"
	[ -n "${built[$key]:-}" ] && continue
	built[$key]=1
	throttle
	build "$name" "$(mode "$prop")" "$@" &
done
wait
fails=0
for key in "${!built[@]}"; do
	if [ ! -x "$work/$key/pan" ]; then
		fails=$((fails + 1))
	fi
done
[ "$fails" = 0 ] || exit 1

i=0
for r in "${runs[@]}"; do
	throttle
	check "$i" $r &
	i=$((i + 1))
done
wait

printf '%-18s %-12s %-6s %6s %10s %6s %8s  %s\n' variant property expect errors states depth seconds verdict
for ((j = 0; j < i; j++)); do
	cat "$work/result.$j"
	grep -q '  pass$' "$work/result.$j" || fails=$((fails + 1))
done
echo "total: $((SECONDS - start))s wall, $jobs at a time; $fails run(s) not as expected"
[ "$fails" = 0 ]
