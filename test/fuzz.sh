#!/usr/bin/env bash
# Runs one fuzz target briefly: fuzz.sh PACKAGE TARGET ITERATIONS.
# A count (-fuzztime Nx) rather than a duration, and one retry when the
# fuzzing engine itself fails with "context deadline exceeded" while saving
# no failing input: that is the engine timing out a worker at the end of a
# run, not a finding. Any real failure saves its input under testdata/fuzz
# and fails.
set -uo pipefail
pkg=$1 target=$2 n=$3
GO=${GO:-go}
corpus="$pkg/testdata/fuzz/$target"
# Inputs saved in the corpus (a failing one adds a file).
saved() { find "$corpus" -maxdepth 1 -type f 2>/dev/null | wc -l; }
for attempt in 1 2; do
  before=$(saved)
  out=$("$GO" test -run '^$' -fuzz "^$target\$" -fuzztime "${n}x" "$pkg" 2>&1)
  status=$?
  echo "$out"
  [ $status -eq 0 ] && exit 0
  after=$(saved)
  if [ "$attempt" = 1 ] && [ "$after" = "$before" ] && grep -q "context deadline exceeded" <<<"$out"; then
    echo "fuzz.sh: the fuzzing engine timed out a worker (no failing input saved); running $target again" >&2
    continue
  fi
  exit $status
done
