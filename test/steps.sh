#!/usr/bin/env bash
# make test's runner: runs each step (a make target) in order, stops at the
# first that fails, and prints every step's time at the end (also when one
# failed), so that the suite's growth shows in every run's log.
#
# A step written "&name" starts in the background, in a process group of
# its own, and the next steps go on meanwhile: for steps that share nothing
# with them (the Engine 29 passes, in the engine's own namespaces, beside
# the host engine's) and mostly wait on dockerd. The step "wait" waits for
# every background step; the end does too. A background step's output is
# printed when it is waited for; one that failed fails the run. If a step
# fails, background steps are stopped.
set -uo pipefail
MAKE=${MAKE:-make}
names=()
secs=()
status=0
failed=
bg_names=()
bg_pids=()
bg_starts=()
bg_logs=()
began=$(date +%s)

finish_background() {
  local i rc
  [ "${#bg_pids[@]}" -gt 0 ] || return 0
  for i in "${!bg_pids[@]}"; do
    if [ "$status" -ne 0 ]; then
      kill -- "-${bg_pids[$i]}" 2>/dev/null
    fi
    wait "${bg_pids[$i]}"
    rc=$?
    echo "make test: background step ${bg_names[$i]} ended (status $rc); its output:"
    cat "${bg_logs[$i]}"
    rm -f "${bg_logs[$i]}"
    names+=("${bg_names[$i]} (bg)")
    secs+=($(($(date +%s) - bg_starts[i])))
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
      status=$rc
      failed="${bg_names[$i]} (background)"
    fi
  done
  bg_names=() bg_pids=() bg_starts=() bg_logs=()
}

for step in "$@"; do
  if [ "$step" = wait ]; then
    finish_background
    [ "$status" -eq 0 ] || break
    continue
  fi
  if [ "${step#&}" != "$step" ]; then
    name=${step#&}
    log=$(mktemp)
    setsid "$MAKE" --no-print-directory "$name" >"$log" 2>&1 &
    bg_pids+=($!)
    bg_names+=("$name")
    bg_starts+=("$(date +%s)")
    bg_logs+=("$log")
    echo "make test: $name started in the background (output at its end)"
    continue
  fi
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
finish_background
echo "make test: step times"
for i in "${!names[@]}"; do
  printf '  %-18s %5ss\n' "${names[$i]}" "${secs[$i]}"
done
printf '  %-18s %5ss\n' "total (wall clock)" "$(($(date +%s) - began))"
if [ "$status" -ne 0 ]; then
  echo "make test: step $failed failed" >&2
fi
exit "$status"
