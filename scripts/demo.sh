#!/usr/bin/env bash
# The main job: set-up (idempotent), then the headless link demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python apps/demo_channel.py "$@"
