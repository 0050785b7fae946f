"""What the link expects of an inference backend when it fails (GNU Radio-free)."""


class BackendError(RuntimeError):
    """A backend could not serve a request (server dead, stalled or refusing it).

    Callers treat the items of that request as lost and carry on; any other exception is
    a bug and propagates."""
