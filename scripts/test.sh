#!/usr/bin/env bash
# What `make test` runs once the virtualenv is ready: throwaway PostgreSQL and
# Redis, ruff, import-linter, mypy, then the whole pytest suite (browser tests included).
# Every step runs even when an earlier one fails; the services stop however
# the run ends (unless they were running before: then they are reused and left
# running); the exit status is non-zero if any step failed.
#   MYPY_PATHS  what mypy checks (default: backend worker tests scripts)
#   extra arguments go to pytest
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

py=.venv/bin/python
mypy_paths=${MYPY_PATHS:-backend worker tests scripts}
scratch=$(mktemp -d -t maskroom-test.XXXXXX)

started_services=yes
scripts/services.sh running && started_services=no

cleanup() {
  [ "$started_services" = yes ] && { scripts/services.sh stop || true; }
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! exports=$(scripts/services.sh start); then
  echo "make test: could not start PostgreSQL and Redis" >&2
  exit 1
fi
eval "$exports"
export DATABASE_URL REDIS_URL
# Anything that falls back to the default home writes here, not into the checkout.
export MASKROOM_HOME="$scratch/home"
# The settings' development defaults (a fixed key, no HTTPS); the tests that
# need production or `make run` settings set their own.
export DEBUG=true

failed=()
echo "== ruff check"
"$py" -m ruff check . || failed+=(ruff)
echo "== import-linter (layers and cycles: pyproject.toml)"
.venv/bin/lint-imports || failed+=(import-linter)
echo "== mypy $mypy_paths"
# shellcheck disable=SC2086 # a list of paths
"$py" -m mypy $mypy_paths || failed+=(mypy)
echo "== pytest"
DB_CONN_MAX_AGE=0 MASKROOM_REQUIRE_SERVICES=1 "$py" -m pytest --durations=10 "$@" 2>&1 | tee "$scratch/pytest.log"
pytest_status=${PIPESTATUS[0]}
[ "$pytest_status" = 0 ] || failed+=("pytest (exit $pytest_status)")

echo
if [ ${#failed[@]} -gt 0 ]; then
  echo "make test: FAILED: ${failed[*]}"
else
  echo "make test: ruff, import-linter, mypy and pytest passed"
fi
# pytest's own summary line comes last, where log readers look for it.
grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* in [0-9.]+s.* =+$' \
  "$scratch/pytest.log" | tail -n 1
[ ${#failed[@]} -eq 0 ]
