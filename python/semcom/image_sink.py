"""image_sink: matches received images to the originals by image_id; metrics, PNGs, JSON."""

import json
import threading
from pathlib import Path

import numpy as np
import pmt
import torch
from gnuradio import gr

from .core import metrics
from .core.data import to_tensor
from .core.mapping import complex_to_real
from .core.plots import save_image_grid, write_text_atomic
from .schemes import run_record
from .pdu_util import drops_on_error, meta_get, split_image_pdu, split_pdu


class image_sink(gr.basic_block):
    """Collects the link's output and scores it.

    Ports: "pdus" the received (decoded) images, "reference" the originals (from the image
    source), optional "tx_symbols" (the user's mapped symbol PDUs) and "rx_latents" (the
    latents fed to the decoder) for the latent MSE. Publishes each received image's
    metadata on "ack" (connect it to the sources' "ack").

    A received image with no original, or an id seen twice, is counted, not fatal.
    summary() gives the metrics, and under "run" what reproduces the run (run_record of
    `run_info`); with `out_dir`, stop() writes summary.json and grid.png there (and one PNG
    per received image with `save_images`).
    """

    def __init__(self, out_dir="", save_images=False, with_lpips=True, grid_images=8, run_info=None):
        run = run_record(run_info)  # bad receiver options fail here, before the C++ block exists
        gr.basic_block.__init__(self, name="image_sink", in_sig=None, out_sig=None)
        self.run = run
        self.out_dir = str(out_dir)
        self.save_images, self.with_lpips, self.grid_images = bool(save_images), bool(with_lpips), int(grid_images)
        self._lock = threading.Lock()
        self.received, self.reference, self.tx, self.rx = {}, {}, {}, {}
        self.duplicates = 0
        self.malformed = 0
        self._summary = None
        for port, handler in (("pdus", self._on_image), ("reference", self._on_reference),
                              ("tx_symbols", self._on_tx), ("rx_latents", self._on_rx)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)
        self.message_port_register_out(pmt.intern("ack"))

    def _image_id(self, meta):
        value = meta_get(meta, "image_id")
        if not isinstance(value, int):
            with self._lock:
                self.malformed += 1
            self.logger.error("dropped a PDU without an integer image_id")
            return None
        return value

    def set_run_info(self, run_info):
        """GUI callback (sliders change SNR/SINR): never raises; bad options are logged."""
        try:
            run = run_record(run_info)
        except ValueError as exc:
            self.logger.error(f"run info ignored: {exc}")
            return
        with self._lock:
            self.run, self._summary = run, None

    @drops_on_error
    def _on_image(self, msg):
        parts = split_image_pdu(msg, self.logger)
        image_id = None if parts is None else self._image_id(parts[0])
        if image_id is not None:
            with self._lock:
                if image_id in self.received:
                    self.duplicates += 1
                else:
                    self.received[image_id] = parts[1]
                self._summary = None
        if parts is None:
            with self._lock:
                self.malformed += 1
            return
        self.message_port_pub(pmt.intern("ack"), parts[0])

    @drops_on_error
    def _on_reference(self, msg):
        parts = split_image_pdu(msg, self.logger)
        image_id = None if parts is None else self._image_id(parts[0])
        if image_id is not None:
            with self._lock:
                self.reference.setdefault(image_id, parts[1])

    @drops_on_error
    def _on_tx(self, msg):
        parts = split_pdu(msg, "c32", self.logger)
        image_id = None if parts is None else self._image_id(parts[0])
        if image_id is not None:
            with self._lock:
                self.tx.setdefault(image_id, complex_to_real(torch.from_numpy(parts[1])).numpy())

    @drops_on_error
    def _on_rx(self, msg):
        parts = split_pdu(msg, "f32", self.logger)
        image_id = None if parts is None else self._image_id(parts[0])
        if image_id is not None:
            with self._lock:
                self.rx.setdefault(image_id, parts[1])

    def count(self) -> int:
        """Images received that match a reference (cheap: no metrics)."""
        with self._lock:
            return len(set(self.received) & set(self.reference)) if self.reference else len(self.received)

    def summary(self):
        """Metrics over the images matched by id (means; per-image lists under "per_image")."""
        with self._lock:
            if self._summary is not None:
                return self._summary
            ids = sorted(set(self.received) & set(self.reference))
            out = {"images": len(ids), "received": len(self.received),
                   "missing": len(set(self.reference) - set(self.received)),
                   "unmatched": len(set(self.received) - set(self.reference)),
                   "duplicates": self.duplicates, "malformed": self.malformed}
            per = {"image_id": ids}
            if ids:
                x = to_tensor(np.stack([self.received[i] for i in ids]))
                ref = to_tensor(np.stack([self.reference[i] for i in ids]))
                per.update(metrics.image_metrics(x, ref, self.with_lpips))
            lat_ids = [i for i in ids if i in self.tx and i in self.rx]
            if lat_ids:
                per["latent_mse_db"] = metrics.latent_mse_db(
                    torch.from_numpy(np.stack([self.rx[i] for i in lat_ids])),
                    torch.from_numpy(np.stack([self.tx[i] for i in lat_ids]))).tolist()
            for key in metrics.MEAN_KEYS:
                out[key] = metrics.mean_or_none(per.get(key))
            out["frechet_dist"] = per.get("frechet_dist")  # one value per set, not a list
            out["latent_mse_db"] = metrics.db_mean(per.get("latent_mse_db"))
            out["run"] = self.run
            out["per_image"] = per
            self._summary = out
            return out

    def matched_images(self):
        """(ids, originals, received) as uint8 arrays, matched by id."""
        with self._lock:
            ids = sorted(set(self.received) & set(self.reference))
            if not ids:
                return ids, None, None
            return ids, np.stack([self.reference[i] for i in ids]), np.stack([self.received[i] for i in ids])

    def stop(self):
        if self.out_dir:
            try:
                self.write(self.out_dir)
            except Exception as exc:  # a failed write must not hang the flowgraph's stop
                self.logger.error(f"could not write results to {self.out_dir}: {exc}")
        return True

    def write(self, out_dir):
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        summary = self.summary()
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=1) + "\n")
        ids, originals, received = self.matched_images()
        if ids:
            save_image_grid([("sent", originals), ("received", received)], out / "grid.png", self.grid_images)
            if self.save_images:
                from PIL import Image
                for i, img in zip(ids, received):
                    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(out / f"rx_{i:05d}.png")
