#!/usr/bin/env bash
# make test's runner: runs each step (a make target) in order, stops at the
# first that fails, and prints every step's time at the end (also when one
# failed), so that the suite's growth shows in every run's log.
set -uo pipefail
MAKE=${MAKE:-make}
names=()
secs=()
status=0
failed=
for step in "$@"; do
  start=$(date +%s)
  "$MAKE" --no-print-directory "$step"
  rc=$?
  names+=("$step")
  secs+=($(($(date +%s) - start)))
  if [ "$rc" -ne 0 ]; then
    status=$rc
    failed=$step
    break
  fi
done
echo "make test: step times"
total=0
for i in "${!names[@]}"; do
  printf '  %-14s %5ss\n' "${names[$i]}" "${secs[$i]}"
  total=$((total + secs[i]))
done
printf '  %-14s %5ss\n' total "$total"
if [ "$status" -ne 0 ]; then
  echo "make test: step $failed failed" >&2
fi
exit "$status"
