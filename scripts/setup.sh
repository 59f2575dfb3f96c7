#!/usr/bin/env bash
# Set up a fresh CPU machine for SVU: ffmpeg, torch (pinned CPU wheel first), then the package.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ffmpeg >/dev/null 2>&1; then
  (apt-get install -y -q ffmpeg || (apt-get update -q && apt-get install -y -q ffmpeg)) >/dev/null
fi
# Pinned first: an unpinned torch resolves to a multi-GB CUDA build.
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test,benchmarks]"
