"""cdiff_decoder: received-symbol PDU -> CDiff's conditional diffusion decoder -> image PDU.

The `cdiff` scheme's receiver (schemes/cdiff.py; maths in diffusion/cdiff.py, networks in
nets/cdiff.py) as a block of its own, with the sampler's settings as parameters. It is
diffusion_receiver fixed to that scheme: the same PDU contract, batching, worker thread and
inference backend (in-process or the ZMQ server).
"""

import math

from .diffusion_receiver import diffusion_receiver

SAMPLERS = ("ddpm", "ddim")


class cdiff_decoder(diffusion_receiver):
    """In "pdus": the equalized symbols zhat (c32, k) with metadata "w" and "h" (c32 vectors of
    k), as equalized_to_pdu or phy_rx make them; fewer symbols than the model's k are
    zero-padded (the CBR sweep: set k to the number received). Out "images": uint8 image PDUs,
    metadata kept. CDiff's receiver uses neither the SNR nor the CSI: on AWGN it only undoes
    the equalizer's scalar w, on Rayleigh it takes the MMSE-equalized symbols (a system trained
    with the reliability plane, none shipped, also takes |h| and the SNR).

    `model` empty: cdiff_<channel_type>_k512; `steps` 0: all T of the model's schedule, fewer:
    the fast sampler; `sampler` "ddpm" (the paper's ancestral steps) or "ddim" (deterministic).
    The draws are seeded by `seed` + the image_id of the batch's first packet."""

    BLOCK_NAME = "cdiff_decoder"

    def __init__(self, model="", channel_type="awgn", k=512, steps=0, sampler="ddpm", seed=0, snr_db=10.0,
                 sinr_db=math.inf, server="", device="", max_batch=16):
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if isinstance(steps, float) and not steps.is_integer() or int(steps) < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        diffusion_receiver.__init__(self, "cdiff", channel_type, k, snr_db, sinr_db, 1.0,
                                    f"steps={int(steps)},sampler={sampler}", seed, server, device, max_batch,
                                    model)
