#!/bin/sh
# fuzz.sh DURATION: run every native fuzz target in the module for DURATION
# each, one after another, and print the executions each one made.
#
# It runs the fuzzer with Go 1.27.3: Go 1.26's fuzzing coordinator can fail
# a target with a bare "context deadline exceeded" when -fuzztime ends
# (golang/go#75804, fixed in Go 1.27). The module itself stays on Go 1.26;
# set FUZZ_GOTOOLCHAIN=local to use the installed Go anyway.
set -eu
dur=${1:-5m}
export GOTOOLCHAIN="${FUZZ_GOTOOLCHAIN:-go1.27.3}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
summary=""
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $target for $dur"
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$dur" "$pkg" >"$log" 2>&1; then
			result=ok
		else
			result=FAILED
			status=1
			tail -n 40 "$log"
		fi
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -n 1 | sed 's/execs: //')
		echo "fuzz: $pkg $target: ${execs:-?} executions, $result"
		summary="$summary
$target	${execs:-?}	$result	$pkg"
	done
done
echo
echo "fuzz summary (target, executions in $dur, result, package):$summary"
exit $status
