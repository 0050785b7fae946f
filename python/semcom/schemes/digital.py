"""digital: the separated system a reader would otherwise build, on the same channel symbols as
every analog scheme (docs/digital.md).

    transmit: image --codec (JPEG or WebP at the highest quality that fits, digital/codec.py)-->
              bytes --length + CRC-32, LDPC (n = 1008), zero fill, scrambler (digital/frame.py)-->
              Gray QAM (digital/qam.py): exactly k symbols, k the analog schemes' budget
              (512 for CIFAR-10, CBR 1/6). The MCS: the best for the SINR the transmitter knows
              (the SNR where no interference is reported; adaptive, digital/mcs.py), or a fixed
              one; signalled as 3 bits of side information.
    receive:  the link's MMSE output, unbiased per symbol (y = zhat / a with a = sqrt(Ps) w h,
              Lemma 1), noise plus interference variance (sigma^2 + Pi) / (Ps |h|^2) -> max-log
              LLRs -> descramble -> min-sum LDPC decoding -> CRC-32 -> codec. A frame that fails
              (CRC, or a payload that does not decode, or nothing that fit the budget) scores the
              dataset's mean image and is counted: extra["success_rate"].

mcs=ideal is the reference no real code reaches: the codec at the byte budget of k channel uses
at capacity (log2(1 + sinr), interference as Gaussian noise, or the ergodic Rayleigh capacity),
delivered without error (the bytes travel as side information; the symbols are not used).
"""

import numpy as np
import torch

from . import register
from .base import Option, Result, Scheme, Transmission, TxContext

MCS_CHOICES = ("adaptive", "ideal", "qpsk-1/2", "qpsk-3/4", "16qam-1/2", "16qam-3/4", "64qam-2/3", "64qam-3/4",
               "64qam-5/6")
MCS_BITS = 3   # the MCS index in the side information


def dataset_mean(shape) -> np.ndarray:
    """The image a lost frame scores: the training set's mean image for CIFAR-10 (32, 32, 3) and
    MNIST-sized (28, 28, 1) images (data/dataset_means.npz), mid-grey otherwise."""
    from pathlib import Path
    shape = tuple(int(v) for v in shape)
    with np.load(Path(__file__).resolve().parent.parent / "data" / "dataset_means.npz") as means:
        for key in means.files:
            if means[key].shape == shape:
                return means[key].copy()
    return np.full(shape, 128, np.uint8)


class Digital(Scheme):
    name = "digital"
    family = "digital"
    description = ("separated digital baseline: JPEG/WebP at the byte budget, CRC-32, LDPC n = 1008, Gray QAM, "
                   "adaptive MCS; a lost frame scores the dataset mean (success_rate)")
    # the adaptive system, the bound, and two fixed MCS whose cliffs the comparison shows
    comparison_series = (("digital", {}), ("digital ideal", {"mcs": "ideal"}),
                         ("digital 16qam-1/2", {"mcs": "16qam-1/2"}), ("digital 64qam-3/4", {"mcs": "64qam-3/4"}))
    options = (
        Option("codec", "webp", "the image codec (digital/codec.py)", choices=("webp", "jpeg")),
        Option("mcs", "adaptive", "adaptive: the best MCS for the transmitter's SNR (measured thresholds); "
               "ideal: the codec at the capacity's byte budget, error-free (a bound); or one fixed MCS",
               choices=MCS_CHOICES),
        Option("k", 0, "complex symbols per image (0: the link model's k, 512 for CIFAR-10; else H W C / 6)",
               minimum=0),
        Option("iterations", 50, "most LDPC decoder iterations", minimum=1),
    )

    def symbols_per_image(self, models, tx, image_shape):
        k = self.option_values(tx.options, tx.channel_type)["k"]
        if k:
            return k
        if tx.model:
            return int(models.info(tx.model)["k"])
        return int(np.prod(image_shape)) // 6

    def _mcs(self, opt, snr_db, channel_type, k):
        from ..digital import mcs
        if opt["mcs"] == "adaptive":
            return mcs.adaptive(float(snr_db), channel_type, k)
        chosen = mcs.get(opt["mcs"])
        if mcs.layout(chosen, k).codewords < 1:
            raise ValueError(f"scheme 'digital': {opt['mcs']} carries no LDPC codeword in {k} symbols")
        return chosen

    # ---------------------------------------------------------------- transmitter
    def transmit(self, models, images, tx: TxContext) -> Transmission:
        from ..digital import chain, codec, ldpc, mcs
        opt = self.option_values(tx.options, tx.channel_type)
        k = self.symbols_per_image(models, tx, images.shape[1:])
        # the SINR where the link reports it (interference as Gaussian noise): CQI feedback's number
        snr_db = min(float(tx.snr_db), float(tx.sinr_db))
        if opt["mcs"] == "ideal":
            budget = mcs.capacity_bytes(snr_db, tx.channel_type, k)
            side = []
            for image in images:
                fit = codec.encode(image, opt["codec"], budget)
                side.append({"payload": fit[0].hex() if fit else ""})
            return Transmission(torch.zeros(len(images), k, dtype=torch.complex64), side, 0)
        chosen = self._mcs(opt, snr_db, tx.channel_type, k)
        if chosen is None:   # below every threshold: nothing is sent
            return Transmission(torch.zeros(len(images), k, dtype=torch.complex64),
                                [{"mcs": "none"} for _ in images], MCS_BITS)
        lay = mcs.layout(chosen, k)
        code = ldpc.load_code(chosen.rate)
        info = [chain.frame_info(image, opt["codec"], lay) for image in images]
        codewords = ldpc.encode(code, np.concatenate(info)).reshape(len(images), lay.codewords, lay.n)
        symbols = chain.codeword_symbols(codewords, lay, chosen.order, tx.power)
        return Transmission(symbols, [{"mcs": chosen.name} for _ in images], MCS_BITS)

    # ---------------------------------------------------------------- receiver
    def check_side_info(self, side_info, options=None):
        if not isinstance(side_info, dict) or not (side_info.get("mcs") in MCS_CHOICES[2:] + ("none",)
                                                   or isinstance(side_info.get("payload"), str)):
            raise ValueError("digital needs each image's MCS as side information ('mcs': one of "
                             f"{', '.join(MCS_CHOICES[2:])} or 'none'; 'payload' hex with mcs=ideal)")

    def receive(self, models, obs) -> Result:
        from ..digital import chain, frame, ldpc, mcs
        opt = self.option_values(obs.options, obs.channel_type)
        shape = self._image_shape(models, obs)
        mean = dataset_mean(shape)
        if len(obs.side_info) != obs.n:
            raise ValueError("digital needs each image's side information (its MCS) from the transmitter")
        for d in obs.side_info:
            self.check_side_info(d)
        payloads = [None] * obs.n
        iterations = []
        if opt["mcs"] == "ideal":
            payloads = [bytes.fromhex(d["payload"]) if d.get("payload") else None for d in obs.side_info]
        else:
            names = [d.get("mcs") for d in obs.side_info]
            for name in sorted(set(names) - {"none", None}):
                idx = [i for i, m in enumerate(names) if m == name]
                chosen = mcs.get(name)
                lay = mcs.layout(chosen, obs.k)
                code = ldpc.load_code(chosen.rate)
                llr = chain.symbol_llrs(obs.zhat[idx], obs.w[idx], obs.h[idx], obs.powers, chosen.order)
                llr = frame.descramble_llr(llr, lay).reshape(-1, lay.n)
                info, ok, iters = self._decode(code, llr, opt["iterations"])
                info = info.reshape(len(idx), lay.codewords, -1)
                ok = ok.reshape(len(idx), lay.codewords)
                for j, i in enumerate(idx):
                    if bool(ok[j].all()):
                        payloads[i] = frame.unpack(info[j], lay)
                iterations.append(iters)
        images, delivered = [], 0
        for payload in payloads:
            image = chain.decode_image(payload, opt["codec"], shape)
            delivered += image is not None
            images.append(mean if image is None else image)
        names = {d.get("mcs", "ideal") for d in obs.side_info}
        extra = {"success_rate": delivered / obs.n, "lost_frames": float(obs.n - delivered),
                 "mcs": ",".join(sorted(names)),
                 "payload_bytes": float(np.mean([len(p) for p in payloads if p] or [0]))}
        if iterations:
            extra["ldpc_iterations"] = float(np.mean(iterations))
        return Result(images=np.stack(images), latents=None, nfe=0.0, extra=extra)

    @staticmethod
    def _decode(code, llr, iterations):
        """(information bits (B, k) uint8, ok (B,) bool, mean iterations) of B codewords' LLRs."""
        from ..digital import ldpc
        out = ldpc.decode(code, llr, max_iter=iterations)
        info = out.bits.cpu().numpy()[:, ldpc.info_positions(code)]
        return info, out.ok.cpu().numpy(), float(out.iterations.float().mean())

    @staticmethod
    def _image_shape(models, obs):
        if obs.model:
            return tuple(models.info(obs.model)["image_shape"])
        return (32, 32, 3)


register(Digital())
