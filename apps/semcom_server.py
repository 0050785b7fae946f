#!/usr/bin/env python3
"""The gr-semcom inference side process (same as `python -m gnuradio.semcom.inference.server`).

  .venv/bin/python apps/semcom_server.py [--bind tcp://127.0.0.1:5557] [--device cuda]
See docs/server.md.
"""

import sys

from gnuradio.semcom.inference.server import main

if __name__ == "__main__":
    sys.exit(main())
