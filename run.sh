#!/usr/bin/env bash
# One entry point for a fresh machine: sets up .venv (torch CPU wheel first), then
#   ./run.sh trial      runs the main job: `biofluxopt trial --preset quick` into runs/trial-quick
#                       (a rerun reuses its finished stages)
#   ./run.sh demo       simulates one protocol (an omnivore on 1000 µg/day) into runs/demo
#   ./run.sh test       runs ruff and the test suite without the tests marked slow (CI)
#   ./run.sh test-all   runs ruff and every test, slow ones included
# Extra arguments go to pytest: `./run.sh test -m slow` runs only the slow tests (a later -m
# replaces the default one), `./run.sh test tests/sim -k steady` a subset.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.biofluxopt-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned: a newer or unbounded torch would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,rl-parity,sbml]"
  touch "$stamp"
fi
case "${1:-trial}" in
  trial)
    shift || true
    .venv/bin/biofluxopt trial --preset quick --out runs/trial-quick "$@"
    ;;
  demo)
    shift || true
    .venv/bin/biofluxopt simulate "$(.venv/bin/python -c 'import biofluxopt.sim as s; print(s.example_protocol("omnivore_oral_1000ug"))')" --out runs/demo --overwrite "$@"
    ;;
  test|test-all)
    mode=$1
    shift || true
    .venv/bin/ruff check src tests benchmarks
    .venv/bin/ruff format --check src tests benchmarks
    if [ "$mode" = test ]; then
      .venv/bin/python -m pytest -q -n 2 -m "not slow" "$@"
    else
      .venv/bin/python -m pytest -q -n 2 "$@"
    fi
    ;;
  *)
    echo "usage: ./run.sh [trial|demo|test|test-all] [extra args]" >&2
    exit 2
    ;;
esac
