#!/usr/bin/env bash
# README command (b): set up a fresh machine, then the whole test suite (pytest exits 5 on zero tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# No arguments: the whole suite (pyproject testpaths = tests); arguments select tests (e.g. one file).
# Two workers (pytest-xdist) on a 2-core machine, one test file per worker at a time (tests/conftest.py);
# SVU_TEST_WORKERS=0 runs in one process.
python -m pytest -q -p no:cacheprovider -n "${SVU_TEST_WORKERS:-2}" --dist loadgroup "$@"
