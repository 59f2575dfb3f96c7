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
# torch pinned first, the CPU build: an unpinned torch from PyPI is a multi-GB CUDA build, and torchcodec 0.13
# (a core dependency) loads with torch 2.13 only. Taken from TORCH_INDEX_URL when set (e.g.
# https://download.pytorch.org/whl/cu128 on a GPU machine), else from a wheel this machine already has (pip's
# find-links; its dependencies come with the package below), else from PyTorch's CPU wheel index.
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  python -m pip install -q torch==2.13.0 --index-url "$TORCH_INDEX_URL"
elif ! python -m pip install -q --no-index --no-deps torch==2.13.0 2>/dev/null; then
  python -m pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
fi
python -m pip install -q -e ".[test,benchmarks]"
# Lyrics beam search (modeling_svu/ctc.py): pyctcdecode 0.5 pins numpy<2, which its code does not need (it runs on
# numpy 2 here); installed without its dependencies so that pip does not downgrade numpy for every package.
python -m pip install -q --no-deps "pyctcdecode==0.5.0" "pygtrie>=2.1,<3"
