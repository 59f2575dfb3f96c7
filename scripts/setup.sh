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
# Pinned first: an unpinned torch resolves to a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,benchmarks]"
