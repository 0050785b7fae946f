#!/usr/bin/env bash
# The whole test suite: set-up (idempotent), then pytest on the installed module.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
exec .venv/bin/python -m pytest -q tests "$@"
