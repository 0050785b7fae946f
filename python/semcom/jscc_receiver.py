"""jscc_receiver (hier): scheme_receiver under its earlier name and parameter order."""

import math

from .schemes import get
from .scheme_receiver import scheme_receiver


class jscc_receiver(scheme_receiver):
    """scheme_receiver(receiver, model, channel_type or the model's channel, k of the model, ...)."""

    def __init__(self, model="jscc_user_awgn_k512", snr_db=10.0, receiver="mmse", server="", device="",
                 sinr_db=math.inf, channel_type="", options="", seed=0):
        from .inference import get_backend
        info = get_backend(server, device).info(model)  # a missing or broken checkpoint fails here
        get(receiver)
        scheme_receiver.__init__(self, receiver, model, channel_type or info["channel"], info["k"], snr_db,
                                 sinr_db, options, seed, server, device)
