"""frame_multipath_cc: multipath for simulating the OFDM PHY whose tap phases are redrawn at
every frame (a "packet_len" tag, as phy_tx emits), as the batch engine draws them
(phy/sim.py: FrameMultipath holds the maths). Stock channel_model keeps one set of taps for
the whole run; put this block between phy_tx and it (with channel_model's taps at [1])."""

import numpy as np
import pmt
from gnuradio import gr

from .phy.sim import FrameMultipath


class frame_multipath_cc(gr.sync_block):
    """Stream in -> the same stream through taps of the given magnitudes (unit total power),
    their phases drawn from `seed` at each `length_tag` tag. Tags pass through."""

    def __init__(self, magnitudes=(1.0,), seed=0, length_tag="packet_len"):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not isinstance(length_tag, str) or not length_tag:
            raise ValueError(f"length_tag must be a non-empty string, got {length_tag!r}")
        self.channel = FrameMultipath(magnitudes, np.random.default_rng(int(seed)))
        gr.sync_block.__init__(self, name="frame_multipath_cc", in_sig=[np.complex64], out_sig=[np.complex64])
        self.length_tag = pmt.intern(length_tag)

    @property
    def frames(self):
        """Frames (tags) seen so far: the taps were redrawn that many times."""
        return self.channel.frames

    @property
    def taps(self):
        """The taps in use (those of the last frame started)."""
        return self.channel.taps.copy()

    def work(self, input_items, output_items):
        n = len(output_items[0])
        start = self.nitems_read(0)
        starts = [t.offset - start for t in self.get_tags_in_window(0, 0, n, self.length_tag)]
        output_items[0][:] = self.channel.apply(input_items[0][:n], starts)
        return n
