"""Scoreboard: several schemes' received images against the sent ones, matched by image id
(GNU Radio-free; the bookkeeping of the image_compare_display block, testable without Qt).

Each scheme (a label) gets, over the images it received that match a sent image of the same
id and shape: the running mean PSNR (dB) and SSIM (core.metrics, one image at a time, as the
image sink scores them), the mean NFE where the image PDUs carry "nfe", and how many frames
were lost (the digital baseline's receiver block marks them "lost"). A received image whose
sent image has not come yet is scored when it comes.

row() picks what a display shows: the newest image id that every scheme has delivered (with
the sent image of that id), so that all pictures show the same image; if no id is complete
within `lag` ids of the newest one delivered (a scheme stopped or drops images), the newest
delivered id, with None for the schemes that lack it.

received() returns the ids to acknowledge to the sources (flow control paced by the slowest
scheme, whichever it is): an id once every scheme delivered it, and with it every older id
sent or delivered that is still open (each scheme delivers in order, so a scheme that lacks
an older id dropped it): exactly one acknowledgement per image.
"""

import math
import threading
from collections import OrderedDict, deque

import numpy as np

MAX_SCHEMES = 8     # received ports of a display: more do not fit a screen
KEEP = 256          # images kept per port while waiting for their match
LAG = 16            # ids a complete row may fall behind the newest delivered one


def parse_labels(labels) -> list:
    """"mmse, cddm,dnsc" -> ["mmse", "cddm", "dnsc"]; ValueError (one message) for an empty
    or repeated name, or more than MAX_SCHEMES names."""
    if isinstance(labels, (list, tuple)):
        labels = ",".join(str(l) for l in labels)
    names = [n.strip() for n in str(labels).split(",")]
    problems = []
    if any(not n for n in names):
        problems.append("an empty name")
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        problems.append(f"repeated {', '.join(repeated)}")
    if len(names) > MAX_SCHEMES:
        problems.append(f"{len(names)} names, at most {MAX_SCHEMES}")
    if problems:
        raise ValueError(f"labels must be 1 to {MAX_SCHEMES} distinct comma-separated names (one received "
                         f"port each), got {labels!r}: {'; '.join(problems)}")
    return names


class RunningMean:
    """Mean of the values added, over the last `window` (0: all)."""

    def __init__(self, window: int = 0):
        self.window = int(window)
        self.count = 0
        self._sum = 0.0
        self._last = deque(maxlen=self.window or None)

    def add(self, value: float):
        self.count += 1
        if self.window:
            self._last.append(float(value))
        else:
            self._sum += float(value)

    @property
    def mean(self):
        if not self.count:
            return None
        if self.window:
            return sum(self._last) / len(self._last)
        return self._sum / self.count


def _score(image: np.ndarray, sent: np.ndarray):
    """(PSNR dB, SSIM) of one uint8 image (H, W, C) against the sent one."""
    from .data import to_tensor
    from .metrics import psnr, ssim
    x, ref = to_tensor(image[None]), to_tensor(sent[None])
    return float(psnr(x, ref)[0]), float(ssim(x, ref)[0])


def _bounded(store: OrderedDict, key, value, keep: int):
    store[key] = value
    while len(store) > keep:
        store.popitem(last=False)


class Scoreboard:
    """Running scores of `labels` (parse_labels) against the sent images; thread-safe.
    Image ids are integers (the image source's 0, 1, ...)."""

    def __init__(self, labels, window: int = 0, keep: int = KEEP, lag: int = LAG):
        if int(window) < 0 or int(keep) < 1 or int(lag) < 0:
            raise ValueError(f"window must be >= 0, keep >= 1 and lag >= 0, got {window}, {keep}, {lag}")
        self.labels = parse_labels(labels)
        self.window, self.keep, self.lag = int(window), int(keep), int(lag)
        self._lock = threading.Lock()
        self._sent = OrderedDict()                                   # id -> image
        self._received = {l: OrderedDict() for l in self.labels}     # id -> image (scored)
        self._pending = {l: OrderedDict() for l in self.labels}      # id -> image, no sent image yet
        self._seen = {l: OrderedDict() for l in self.labels}         # ids delivered (duplicates, acks)
        self._open = set()                                           # ids sent or delivered, not acked
        self._acked_upto = None                                      # the newest id acknowledged
        self._psnr = {l: RunningMean(self.window) for l in self.labels}
        self._ssim = {l: RunningMean(self.window) for l in self.labels}
        self._nfe = {l: RunningMean(self.window) for l in self.labels}
        self._counts = {l: {"received": 0, "lost": 0, "duplicates": 0, "mismatched": 0} for l in self.labels}

    @staticmethod
    def _check(image_id, image):
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise ValueError(f"an image id must be an integer, got {image_id!r}")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3) or min(image.shape) < 1:
            raise ValueError(f"an image must be uint8 (H, W, 1 or 3), got {image.dtype} {image.shape}")
        return image

    def sent(self, image_id, image) -> int:
        """The sent image of `image_id` (kept while up to `keep` newer ones come); how many
        received images that waited for it it scored."""
        image = self._check(image_id, image)
        scored = 0
        with self._lock:
            _bounded(self._sent, image_id, image, self.keep)
            self._opens(image_id)
            for label in self.labels:
                waiting = self._pending[label].pop(image_id, None)
                if waiting is not None:
                    self._score(label, image_id, waiting)
                    scored += 1
        return scored

    def received(self, label, image_id, image, nfe=None, lost=False) -> list:
        """One image `label` delivered; the ids to acknowledge now (module docstring). A
        repeated id is counted, not scored again."""
        if label not in self._received:
            raise ValueError(f"unknown label {label!r} (labels: {', '.join(self.labels)})")
        image = self._check(image_id, image)
        with self._lock:
            counts = self._counts[label]
            if image_id in self._seen[label]:
                counts["duplicates"] += 1
                return []
            _bounded(self._seen[label], image_id, True, 16 * self.keep)
            counts["received"] += 1
            counts["lost"] += bool(lost)
            if isinstance(nfe, (int, float)) and not isinstance(nfe, bool) and math.isfinite(nfe):
                self._nfe[label].add(nfe)
            if image_id in self._sent:
                self._score(label, image_id, image)
            else:
                _bounded(self._pending[label], image_id, image, self.keep)
            if not all(image_id in self._seen[l] for l in self.labels):
                self._opens(image_id)
                return []
            if self._acked_upto is not None and image_id <= self._acked_upto:
                return []   # acknowledged already, as dropped by a scheme (delivered out of order)
            acks = sorted({i for i in self._open if i < image_id} | {image_id})
            self._open.difference_update(acks)
            self._acked_upto = image_id if self._acked_upto is None else max(self._acked_upto, image_id)
            return acks

    def _opens(self, image_id):
        """An id sent or delivered that still waits for some scheme (not one acknowledged)."""
        if (self._acked_upto is None or image_id > self._acked_upto) \
                and not all(image_id in self._seen[l] for l in self.labels):
            self._open.add(image_id)
            if len(self._open) > 16 * self.keep:   # a port left unconnected: nothing completes
                self._open.discard(min(self._open))

    def _score(self, label, image_id, image):
        sent = self._sent[image_id]
        if image.shape != sent.shape:
            self._counts[label]["mismatched"] += 1
            return
        p, s = _score(image, sent)
        self._psnr[label].add(p)
        self._ssim[label].add(s)
        _bounded(self._received[label], image_id, image, self.keep)

    def stats(self, label) -> dict:
        """{"images": scored, "psnr_db", "ssim", "nfe" (means; None before any), "received",
        "lost", "duplicates", "mismatched"}."""
        with self._lock:
            return {"images": self._psnr[label].count, "psnr_db": self._psnr[label].mean,
                    "ssim": self._ssim[label].mean, "nfe": self._nfe[label].mean, **self._counts[label]}

    def row(self):
        """(image_id, sent image, {label: its image of that id or None}) to show, or None
        before any image was scored."""
        with self._lock:
            delivered = [set(self._received[l]) & set(self._sent) for l in self.labels]
            anywhere = set().union(*delivered)
            if not anywhere:
                return None
            newest = max(anywhere)
            complete = set.intersection(*delivered)
            image_id = newest
            if complete and max(complete) >= newest - self.lag:
                image_id = max(complete)
            return image_id, self._sent[image_id], {l: self._received[l].get(image_id) for l in self.labels}

    def caption(self, label, image_id=None) -> str:
        """"mmse  #12 / PSNR 24.31 dB  SSIM 0.812 / NFE 5  n = 13" (and lost frames)."""
        s = self.stats(label)
        fmt = lambda v, f: "-" if v is None else format(v, f)
        head = label if image_id is None else f"{label}  #{image_id}"
        tail = f"n = {s['images']}" + (f"  lost {s['lost']}" if s["lost"] else "")
        return (f"{head}\nPSNR {fmt(s['psnr_db'], '.2f')} dB  SSIM {fmt(s['ssim'], '.3f')}\n"
                f"NFE {fmt(s['nfe'], '.3g')}  {tail}")
