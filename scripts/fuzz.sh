#!/usr/bin/env bash
# Runs every Go fuzz target in the module for a bounded time each.
set -euo pipefail
fuzztime="${1:-20s}"
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
    echo "== fuzz $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg"; then
      echo "FAIL: fuzz $pkg $target"
      status=1
    fi
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
exit $status
