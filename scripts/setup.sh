#!/usr/bin/env bash
# Set up a fresh CPU machine for SVU: ffmpeg, torch (pinned CPU wheel first), then the package.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  (apt-get install -y -q ffmpeg || (apt-get update -q && apt-get install -y -q ffmpeg)) >/dev/null
fi
# Chromium + its driver for the Space's browser test (tests/test_space_browser.py skips, saying why, without them).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  (apt-get install -y -q chromium chromium-driver || (apt-get update -q && apt-get install -y -q chromium chromium-driver)) \
    >/dev/null 2>&1 || echo "setup: chromium could not be installed; the browser test will be skipped" >&2
fi
# Pinned first, from PyTorch's CPU wheel index: an unpinned torch from PyPI is a multi-GB CUDA build, and
# torchcodec 0.13 (a core dependency) loads with torch 2.13 only. TORCH_INDEX_URL picks another index
# (e.g. https://download.pytorch.org/whl/cu128 for a GPU machine).
python -m pip install -q torch==2.13.0 --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
python -m pip install -q -e ".[test,benchmarks]"
