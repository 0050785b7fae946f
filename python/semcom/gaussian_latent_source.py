"""gaussian_latent_source: a stand-in JSCC user emitting N(0, 1) latent PDUs, then done."""

import numpy as np
import pmt

from .pdu_util import make_pdu, paced_pdu_source


class gaussian_latent_source(paced_pdu_source):
    """Emits `count` PDUs of 2k i.i.d. N(0, 1) float32 values, each with an "image_id",
    then tells the flowgraph it is done (the message-passing counterpart of a finite
    vector source). Connect the end of the chain's "ack" port to this block's "ack"
    port: it keeps at most `max_in_flight` PDUs unacknowledged and says "done" only when
    all were acknowledged, so no stock PDU block drops data at the end."""

    def __init__(self, n_symbols=512, count=10, seed=0, max_in_flight=8, ack_timeout=10.0):
        # Validate before the C++ block exists: a half-built Python block left to the
        # garbage collector can bring the scheduler down later.
        if int(n_symbols) < 1 or int(count) < 0:
            raise ValueError(f"need n_symbols >= 1 and count >= 0, got {n_symbols}, {count}")
        paced_pdu_source.__init__(self, "gaussian_latent_source", max_in_flight, ack_timeout)
        self.n_symbols, self.count, self.seed = int(n_symbols), int(count), int(seed)

    def pdus(self):
        rng = np.random.default_rng(self.seed)
        for i in range(self.count):
            latent = rng.standard_normal(2 * self.n_symbols).astype(np.float32)
            yield make_pdu(pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(i)), latent)
