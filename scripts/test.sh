#!/usr/bin/env bash
# The full test suite, from a clean checkout: installs what it needs (scripts/setup.sh --test),
# type-checks, lints, then runs unit, integration and end-to-end tests (real Redis, real Docker,
# the real agent CLIs against the simulated provider). Extra arguments go to vitest, e.g.
#   bash scripts/test.sh test/unit
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh --test

echo "== typecheck"
npx --no-install tsc -p tsconfig.json --noEmit
npx --no-install tsc -p src/web/tsconfig.json --noEmit
echo "== lint"
npx --no-install biome check --error-on-warnings src test bench

echo "== tests"
mkdir -p test-results
rc=0
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json=test-results/vitest.json "$@" || rc=$?
node scripts/test-summary.mjs test-results/vitest.json || rc=${rc:-1}
exit "$rc"
