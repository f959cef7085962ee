#!/usr/bin/env bash
# make lint's shell check: shellcheck over every shell script the repository
# holds, found by name (*.sh) or by a first line that names a shell (such as
# .ci/run), so a new script is checked without being listed anywhere. A
# finding is fixed, or disabled inline with the reason beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
SHELLCHECK=${SHELLCHECK:-shellcheck}
scripts=()
while IFS= read -r f; do
  case $f in
    *.sh) scripts+=("$f") ;;
    *) [ -f "$f" ] && head -n 1 "$f" | grep -qE '^#!(/usr/bin/env |/bin/|/usr/bin/)(ba|da)?sh( |$)' && scripts+=("$f") ;;
  esac
done < <(git ls-files)
[ ${#scripts[@]} -gt 0 ] || { echo "lint-shell: found no shell script (run from a git checkout)" >&2; exit 1; }
"$SHELLCHECK" "${scripts[@]}"
echo "lint-shell: shellcheck clean: ${scripts[*]}"
