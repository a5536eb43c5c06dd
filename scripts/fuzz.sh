#!/bin/sh
# fuzz.sh DURATION: run every native fuzz target in the module for DURATION
# each, one after another, and print the executions each one made.
set -eu
dur=${1:-5m}
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		echo "fuzz: $pkg $target for $dur"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$dur" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
			status=1
			cat /tmp/fuzz.$$.log
		fi
		tail -n 2 /tmp/fuzz.$$.log
		execs=$(grep -o 'execs: [0-9]*' /tmp/fuzz.$$.log | tail -n 1 | sed 's/execs: //')
		echo "fuzz: $pkg $target: ${execs:-?} executions"
	done
done
rm -f /tmp/fuzz.$$.log
exit $status
