#!/usr/bin/env bash
# make lint's tree check: no build product in git. A tracked file fails it
# when it is a compiled program or library (ELF, Mach-O, PE, a Go archive),
# or when it is larger than 1 MiB and not test data (under a testdata/
# folder). Built binaries belong in bin/ or dist/ (ignored), never in a clone.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue
  magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
  case $magic in
    7f454c46 | cffaedfe | cefaedfe | feedfacf | feedface | 4d5a*)
      bad+=("$f (a compiled program)") ; continue ;;
  esac
  if [ "$(head -c 8 "$f")" = '!<arch>' ]; then
    bad+=("$f (an archive of objects)"); continue
  fi
  case /$f in */testdata/*) continue ;; esac
  size=$(stat -c %s "$f")
  [ "$size" -le 1048576 ] || bad+=("$f ($size bytes; test data goes under testdata/)")
done < <(git ls-files -z)
if [ ${#bad[@]} -gt 0 ]; then
  echo "lint-tree: tracked build products or large files:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "lint-tree: no build product or large file tracked"
