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
    log="$(mktemp)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" 2>&1 | tee "$log"; then
      # The fuzz engine can end a run with "context deadline exceeded" when
      # the time limit falls inside an input's minimisation; that is not a
      # finding (a real one writes its failing input). Run once more.
      if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
        echo "== fuzz $pkg $target: deadline hit during minimisation, running again"
        go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" || { echo "FAIL: fuzz $pkg $target"; status=1; }
      else
        echo "FAIL: fuzz $pkg $target"
        status=1
      fi
    fi
    rm -f "$log"
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
exit $status
