"""image_source: one PDU per image from a dataset, then done."""

import numpy as np
import pmt

from .core.datasets import load_dataset
from .pdu_util import AckPacer, image_pdu, paced_pdu_source


class image_source(paced_pdu_source):
    """Emits `count` images of `dataset` (0 = all) as uint8 PDUs with "image_id" (0, 1, ...),
    "dataset_index", "height", "width", "channels"; order "forward" starts at `offset`,
    "reverse" walks back from the end (a different image stream for an interferer).
    With more images asked than the set holds, it cycles.

    Flow control and the end of the flowgraph as in gaussian_latent_source: connect the
    image sink's "ack" port to this block's "ack" port.
    """

    def __init__(self, dataset="sample", count=0, offset=0, order="forward",
                 max_in_flight=8, ack_timeout=30.0):
        # Everything that can fail happens before the C++ block exists.
        if order not in ("forward", "reverse"):
            raise ValueError(f"order must be 'forward' or 'reverse', got {order!r}")
        if int(count) < 0 or int(offset) < 0:
            raise ValueError(f"count and offset must be >= 0, got {count}, {offset}")
        AckPacer.validate(max_in_flight, ack_timeout)
        images = load_dataset(dataset).images
        n = len(images)
        idx = (int(offset) + np.arange(int(count) or n)) % n
        paced_pdu_source.__init__(self, "image_source", max_in_flight, ack_timeout)
        self.indices = idx if order == "forward" else (n - 1 - idx)
        self.images = images
        self.image_shape = images.shape[1:]

    def pdus(self):
        for image_id, index in enumerate(self.indices):
            meta = pmt.dict_add(pmt.make_dict(), pmt.intern("image_id"), pmt.from_long(image_id))
            meta = pmt.dict_add(meta, pmt.intern("dataset_index"), pmt.from_long(int(index)))
            yield image_pdu(meta, self.images[index])
