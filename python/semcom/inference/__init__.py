"""Inference backends: where the neural networks of the link run.

Blocks and apps call a backend object with numpy arrays; they never touch torch models
themselves, so the in-process backend (local.py) and the ZeroMQ side process (server.py,
reached through client.py) are interchangeable: get_backend(server) picks one.
"""

from .local import LocalBackend, get_backend  # noqa: F401
