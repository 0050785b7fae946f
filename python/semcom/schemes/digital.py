"""digital: the separated system a reader would otherwise build, on the same channel symbols as
every analog scheme (docs/digital.md).

    transmit: image --codec (JPEG or WebP at the highest quality that fits; auto: per image the
              closer of the two, digital/codec.py)-->
              bytes --length + CRC-32, LDPC (n = 1008), zero fill, scrambler (digital/frame.py)-->
              Gray QAM (digital/qam.py): exactly k symbols, k the analog schemes' budget
              (512 for CIFAR-10, CBR 1/6). The MCS: the best for the SINR the transmitter knows
              (the SNR where no interference is reported; adaptive, digital/mcs.py), or a fixed
              one; signalled as 3 bits of side information (and the codec as 1 with auto).
    receive:  the link's MMSE output, unbiased per symbol (y = zhat / a with a = sqrt(Ps) w h,
              Lemma 1), noise plus interference variance (sigma^2 + Pi) / (Ps |h|^2) -> max-log
              LLRs -> descramble -> min-sum LDPC decoding -> CRC-32 -> codec. A frame that fails
              (CRC, or a payload that does not decode, or nothing that fit the budget) scores the
              dataset's mean image and is counted: extra["success_rate"]. What the receiver does
              follows each image's side information (its MCS, its codec, ideal bytes), not
              the receiver's own options; unusable side information loses that image alone.

mcs=ideal is the reference no real code reaches: the codec at the byte budget of k channel uses
at capacity (log2(1 + sinr), interference as Gaussian noise, or the ergodic Rayleigh capacity),
delivered without error (the bytes travel as side information; the symbols are not used).
"""

import numpy as np
import torch

from ..digital.chain import dataset_mean
from . import register
from .base import Option, Result, Scheme, Transmission, TxContext

MCS_CHOICES = ("adaptive", "ideal", "qpsk-1/2", "qpsk-3/4", "16qam-1/2", "16qam-3/4", "64qam-2/3", "64qam-3/4",
               "64qam-5/6")
MCS_BITS = 3   # the MCS index in the side information


class Digital(Scheme):
    name = "digital"
    family = "digital"
    description = ("separated digital baseline: JPEG/WebP at the byte budget, CRC-32, LDPC n = 1008, Gray QAM, "
                   "adaptive MCS; a lost frame scores the dataset mean (success_rate)")
    # the adaptive system, the bound, and two fixed MCS whose cliffs the comparison shows
    comparison_series = (("digital", {}), ("digital ideal", {"mcs": "ideal"}),
                         ("digital 16qam-1/2", {"mcs": "16qam-1/2"}), ("digital 64qam-3/4", {"mcs": "64qam-3/4"}))
    options = (
        Option("codec", "auto", "the image codec (digital/codec.py); auto: per image the closer of JPEG and WebP "
               "at the budget (1 bit of side information)", choices=("auto", "webp", "jpeg")),
        Option("mcs", "adaptive", "adaptive: the best MCS for the transmitter's SINR (its SNR where no "
               "interference is reported; measured thresholds); "
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
        try:
            return mcs.fixed(opt["mcs"], k)
        except ValueError as exc:
            raise ValueError(f"scheme 'digital': {exc}") from None

    # ---------------------------------------------------------------- transmitter
    def transmit(self, models, images, tx: TxContext) -> Transmission:
        from ..digital import chain, codec, ldpc, mcs
        opt = self.option_values(tx.options, tx.channel_type)
        k = self.symbols_per_image(models, tx, images.shape[1:])
        # the SINR where the link reports it (interference as Gaussian noise): CQI feedback's number
        snr_db = min(float(tx.snr_db), float(tx.sinr_db))
        codec_bits = 1 if opt["codec"] == "auto" else 0
        if opt["mcs"] == "ideal":
            budget = mcs.capacity_bytes(snr_db, tx.channel_type, k)
            side = []
            for image in images:
                fit = codec.encode_best(image, opt["codec"], budget)
                side.append({"payload": fit[0].hex(), "codec": fit[2]} if fit else {"payload": ""})
            return Transmission(torch.zeros(len(images), k, dtype=torch.complex64), side, codec_bits)
        chosen = self._mcs(opt, snr_db, tx.channel_type, k)
        if chosen is None:   # below every threshold: nothing is sent
            return Transmission(torch.zeros(len(images), k, dtype=torch.complex64),
                                [{"mcs": "none"} for _ in images], MCS_BITS)
        lay = mcs.layout(chosen, k)
        code = ldpc.load_code(chosen.rate)
        framed = [chain.frame_info(image, opt["codec"], lay) for image in images]
        codewords = ldpc.encode(code, np.concatenate([info for info, _ in framed]))
        symbols = chain.codeword_symbols(codewords.reshape(len(images), lay.codewords, lay.n), lay, chosen.order,
                                         tx.power)
        side = [{"mcs": chosen.name, **({"codec": used} if used else {})} for _, used in framed]
        return Transmission(symbols, side, MCS_BITS + codec_bits)

    # ---------------------------------------------------------------- receiver
    def check_side_info(self, side_info, options=None):
        from ..digital.codec import CODECS
        if not isinstance(side_info, dict) or not (side_info.get("mcs") in MCS_CHOICES[2:] + ("none",)
                                                   or isinstance(side_info.get("payload"), str)) \
                or side_info.get("codec", CODECS[0]) not in CODECS:
            raise ValueError("digital needs each image's MCS as side information ('mcs': one of "
                             f"{', '.join(MCS_CHOICES[2:])} or 'none'; 'payload' hex with mcs=ideal; "
                             f"'codec' one of {', '.join(CODECS)} where given)")

    def receive(self, models, obs) -> Result:
        from ..digital import chain, frame, ldpc, mcs
        opt = self.option_values(obs.options, obs.channel_type)
        shape = self._image_shape(models, obs)
        mean = dataset_mean(shape)
        if len(obs.side_info) != obs.n:
            raise ValueError("digital needs each image's side information (its MCS) from the transmitter")
        sides = []
        for d in obs.side_info:   # unusable side information loses that image alone
            try:
                self.check_side_info(d)
                sides.append(d)
            except ValueError:
                sides.append({})
        payloads = [None] * obs.n
        iterations = []
        for i, d in enumerate(sides):   # the ideal reference: its bytes came without error
            if "payload" in d:
                try:
                    payloads[i] = bytes.fromhex(d["payload"]) or None
                except ValueError:
                    payloads[i] = None   # garbled side information loses this image alone
        # the coded frames, grouped by MCS (from the side information, not this receiver's options)
        names = [d.get("mcs") for d in sides]
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
        for payload, d in zip(payloads, sides):
            image = chain.decode_image(payload, chain.frame_codec(d, opt["codec"]), shape)
            delivered += image is not None
            images.append(mean if image is None else image)
        names = {d.get("mcs", "ideal") for d in sides if d}
        extra = {"success_rate": delivered / obs.n, "mcs": ",".join(sorted(names)),
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
