#!/usr/bin/env python3
"""The gr-semcom inference side process (same as `python -m gnuradio.semcom.inference.server`).

  .venv/bin/python apps/semcom_server.py [--bind tcp://127.0.0.1:5557] [--device cuda] [--max-nfe 200]
  .venv/bin/python apps/semcom_server.py --bind tcp://0.0.0.0:5557 \
      --curve-secret-key keys/server.key_secret --curve-clients keys/clients
See docs/server.md (limits, client authentication, start-up errors).
"""

import sys

from gnuradio.semcom.inference.server import main

if __name__ == "__main__":
    sys.exit(main())
