"""Inference backends: where the neural networks of the link run.

Blocks and apps call a backend object with numpy arrays; they never touch torch models
themselves, so an in-process backend and the ZMQ side process are interchangeable.
"""

from .local import LocalBackend, get_backend  # noqa: F401
