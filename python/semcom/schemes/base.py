"""The scheme contract (GNU Radio-free): a scheme is a named transmitter + receiver pair.

    scheme.transmit(models, images, TxContext)  -> Transmission (power-normalised symbols + side info)
    scheme.receive(models, Observation)         -> Result (images always; latents when it has
                                                   them; the network evaluations it used)

`models` is whatever runs the networks (inference.local.LocalBackend: `encode`,
`decode`, `prior(name)`, `device`); a scheme never loads a file itself, so the same scheme runs
in-process, in the inference server and on a GPU box. Options are typed `Option`s (one clear
ValueError per bad value); run_link's --help, the GRC yml and the server read them from here.

TxContext, Observation and Result each have one wire form (`to_wire` -> (params, arrays);
`from_wire` validates), used by the batch engine, the blocks and the inference server alike.
"""

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

import numpy as np
import torch

from ..core.channel import CHANNEL_TYPES, LinkPowers, check_coherence
from ..core.mapping import complex_to_real

CSI_SOURCES = ("genie", "estimated", "none")   # where the receiver's (or transmitter's) h comes from
SNR_SOURCES = ("given", "estimated")           # where the receiver's SNR/SINR come from
POWER_POLICY = "per-image"                     # mean |z|^2 = P per image; the receiver is not told the scale


# ---------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One typed option of a scheme: its type is that of `default`."""
    name: str
    default: object
    help: str = ""
    choices: tuple = ()
    minimum: Optional[float] = None
    channel_defaults: tuple = ()   # ((channel type, default there), ...) where it differs

    def default_for(self, channel_type: Optional[str]):
        return dict(self.channel_defaults).get(channel_type, self.default)

    def coerce(self, scheme: str, value):
        """The value as this option's type, checked; ValueError naming scheme and option."""
        kind = type(self.default)
        try:
            if kind is bool:
                if isinstance(value, str) and value.lower() in ("0", "1", "true", "false", "yes", "no"):
                    out = value.lower() in ("1", "true", "yes")
                elif isinstance(value, bool):
                    out = value
                else:
                    raise ValueError
            else:
                if kind is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError
                if kind in (int, float) and isinstance(value, bool):
                    raise ValueError
                out = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"scheme {scheme!r} option {self.name!r} must be a {kind.__name__}, "
                             f"got {value!r}") from None
        if isinstance(out, float) and not math.isfinite(out):
            raise ValueError(f"scheme {scheme!r} option {self.name!r} must be finite, got {value!r}")
        if self.choices and out not in self.choices:
            raise ValueError(f"scheme {scheme!r} option {self.name!r} must be one of "
                             f"{', '.join(map(str, self.choices))}, got {out!r}")
        if self.minimum is not None and out < self.minimum:
            raise ValueError(f"scheme {scheme!r} option {self.name!r} must be >= {self.minimum}, got {out}")
        return out

    def describe(self) -> dict:
        """JSON-able spec (the server's info, the GRC yml test, --help)."""
        out = {"type": type(self.default).__name__, "default": self.default, "help": self.help}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.channel_defaults:
            out["channel_defaults"] = dict(self.channel_defaults)
        return out


def parse_options(text: str) -> dict:
    """"steps=20,zeta_x=0.5" -> {"steps": "20", "zeta_x": "0.5"} (values typed by the scheme)."""
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"receiver option {part!r} is not NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


# ---------------------------------------------------------------- what crosses the link
@dataclass
class TxContext:
    """What the transmitter knows: the SNR there (adaptive schemes), the channel type, the
    model to use ("" = the scheme's default), the symbol power, and CSI at the transmitter
    when the scheme asks for it (`csi` (N, k) complex, `csi_source` genie/estimated); the SINR
    where a link reports it (the batch engine does; inf: no interference known)."""
    snr_db: float
    channel_type: str = "awgn"
    model: str = ""
    power: float = 1.0
    csi: Optional[torch.Tensor] = None
    csi_source: str = "none"
    options: dict = field(default_factory=dict)
    seed: int = 0
    sinr_db: float = math.inf

    def to_wire(self):
        params = {"snr_db": float(self.snr_db), "channel_type": self.channel_type, "model": self.model,
                  "power": float(self.power), "csi_source": self.csi_source, "options": dict(self.options),
                  "seed": int(self.seed)}
        if math.isfinite(self.sinr_db):  # inf (no interferer) is not JSON: left out
            params["sinr_db"] = float(self.sinr_db)
        arrays = [] if self.csi is None else [("csi", _c64(self.csi))]
        return params, arrays

    @classmethod
    def from_wire(cls, params: dict, arrays: dict) -> "TxContext":
        p = Params(params, "transmit")
        csi = arrays.get("csi")
        if csi is not None and (csi.dtype != np.complex64 or csi.ndim != 2):
            raise ValueError("transmit: 'csi' must be complex64 (N, k)")
        ctx = cls(snr_db=p.number("snr_db"), channel_type=p.choice("channel_type", CHANNEL_TYPES, "awgn"),
                  model=p.string("model", ""), power=p.number("power", 1.0, low=0, open_low=True),
                  csi=None if csi is None else torch.from_numpy(np.array(csi, np.complex64)),
                  csi_source=p.choice("csi_source", CSI_SOURCES, "none"), options=p.dict("options"),
                  seed=p.seed(), sinr_db=p.number("sinr_db", math.inf, finite=False))
        if ctx.sinr_db == -math.inf or (math.isfinite(ctx.sinr_db) and ctx.sinr_db > ctx.snr_db):
            raise ValueError("transmit: 'params.sinr_db' must be a dB value not above 'params.snr_db' (left out: "
                             "no interference)")
        if (csi is None) != (ctx.csi_source == "none"):
            raise ValueError("transmit: 'csi' is sent exactly when 'params.csi_source' is not 'none'")
        return ctx


@dataclass
class Transmission:
    """A transmitter's output: power-normalised complex symbols (N, k) and, per image, the side
    information it sends besides them (`side_info`: empty, or N JSON-able dicts; its size per
    image in `side_info_bits`, to be counted with the symbols)."""
    symbols: torch.Tensor
    side_info: list = field(default_factory=list)
    side_info_bits: int = 0

    def __post_init__(self):
        if self.side_info and len(self.side_info) != len(self.symbols):
            raise ValueError(f"side information for {len(self.side_info)} images, symbols for {len(self.symbols)}")

    def to_wire(self):
        return {"side_info": list(self.side_info), "side_info_bits": int(self.side_info_bits)}, \
            [("symbols", _c64(self.symbols))]

    @classmethod
    def from_wire(cls, result: dict, arrays: dict) -> "Transmission":
        return cls(torch.from_numpy(np.array(arrays["symbols"])), list(result.get("side_info", [])),
                   int(result.get("side_info_bits", 0)))


@dataclass
class Observation:
    """What a real receiver has, for a batch of N images of k symbols each.

    zhat (N, k) complex: the MMSE-equalized symbols, w_i y_i; w, h (N, k) complex: the weights
    applied and the user's CSI (genie in simulation, pilot estimates over the air: csi_source);
    powers: signal power, noise variance and the interference power the SINR implies;
    snr_db/sinr_db (given, or estimated: snr_source); channel_type and its coherence (Rayleigh
    gains held for that many consecutive symbols; 1 = i.i.d.); the model and options of
    the scheme; the seed of the receiver's own draws; the transmitter's side information
    (`side_info`: empty, or one dict per image, as Transmission.side_info).
    The symbols were normalised per image (mean |z|^2 = P), and the receiver is not told the
    scale (power_policy)."""
    zhat: torch.Tensor
    w: torch.Tensor
    h: torch.Tensor
    powers: LinkPowers
    snr_db: float
    sinr_db: float = math.inf
    channel_type: str = "awgn"
    options: dict = field(default_factory=dict)
    seed: int = 0
    coherence: int = 1
    model: str = ""
    csi_source: str = "genie"
    snr_source: str = "given"
    side_info: list = field(default_factory=list)
    power_policy: str = POWER_POLICY

    def __post_init__(self):
        if self.zhat.ndim != 2 or self.w.shape != self.zhat.shape or self.h.shape != self.zhat.shape:
            raise ValueError(f"an observation needs zhat, w and h of one shape (N, k), got "
                             f"{tuple(self.zhat.shape)}, {tuple(self.w.shape)}, {tuple(self.h.shape)}")
        self.coherence = check_coherence(self.coherence)
        if self.side_info and len(self.side_info) != self.zhat.shape[0]:
            raise ValueError(f"side information for {len(self.side_info)} images, symbols for {self.zhat.shape[0]}")

    @property
    def n(self) -> int:
        return self.zhat.shape[0]

    @property
    def k(self) -> int:
        return self.zhat.shape[1]

    @property
    def xhat(self) -> torch.Tensor:
        """The equalized symbols in real form [Re; Im] (N, 2k), float32 (Lemma 1's x-hat)."""
        return complex_to_real(self.zhat).float()

    def take(self, index) -> "Observation":
        """The observation of some of the images (a slice or an index tensor)."""
        side_info = [self.side_info[i] for i in range(self.n)[index]] if self.side_info else []
        return replace(self, zhat=self.zhat[index], w=self.w[index], h=self.h[index], side_info=side_info)

    def to_wire(self):
        p = self.powers
        params = {"snr_db": float(self.snr_db), "signal_power": p.signal_power, "noise_var": p.noise_var,
                  "interference_power": p.interference_power, "channel_type": self.channel_type,
                  "options": dict(self.options), "seed": int(self.seed), "coherence": int(self.coherence),
                  "model": self.model,
                  "csi_source": self.csi_source, "snr_source": self.snr_source, "side_info": list(self.side_info),
                  "power_policy": self.power_policy}
        if math.isfinite(self.sinr_db):  # inf (no interferer) is not JSON: left out
            params["sinr_db"] = float(self.sinr_db)
        return params, [("xhat", self.xhat.cpu().numpy()), ("w", _c64(self.w)), ("h", _c64(self.h))]

    @staticmethod
    def params_from_wire(params: dict) -> dict:
        """The fields of an observation's JSON params, checked (ValueError naming the field)."""
        p = Params(params, "receive")
        if p.string("power_policy", POWER_POLICY) != POWER_POLICY:
            raise ValueError(f"'params.power_policy' must be {POWER_POLICY!r}")
        powers = LinkPowers(p.number("signal_power", low=0, open_low=True), p.number("noise_var", low=0),
                            p.number("interference_power", low=0))
        return dict(powers=powers, snr_db=p.number("snr_db"), sinr_db=p.number("sinr_db", math.inf, finite=False),
                    channel_type=p.choice("channel_type", CHANNEL_TYPES, "awgn"), options=p.dict("options"),
                    seed=p.seed(), coherence=p.coherence(), model=p.string("model", ""), csi_source=p.choice("csi_source", CSI_SOURCES, "genie"),
                    snr_source=p.choice("snr_source", SNR_SOURCES, "given"), side_info=p.side_info())

    @classmethod
    def from_wire(cls, params: dict, arrays: dict) -> "Observation":
        """ValueError (one line) for anything a receiver could not use: the params first
        (params_from_wire), then the arrays."""
        fields = cls.params_from_wire(params)
        x, w, h = arrays.get("xhat"), arrays.get("w"), arrays.get("h")
        if (set(arrays) != {"xhat", "w", "h"} or x.dtype != np.float32 or x.ndim != 2 or x.shape[0] < 1
                or x.shape[1] < 2 or x.shape[1] % 2 or w.dtype != np.complex64
                or w.shape != (x.shape[0], x.shape[1] // 2) or h.dtype != np.complex64 or h.shape != w.shape):
            raise ValueError("receive needs 'xhat' float32 (N, 2k), 'w' and 'h' complex64 (N, k)")
        k = x.shape[1] // 2
        zhat = torch.complex(torch.from_numpy(np.array(x[:, :k])), torch.from_numpy(np.array(x[:, k:])))
        return cls(zhat=zhat, w=torch.from_numpy(np.array(w)), h=torch.from_numpy(np.array(h)), **fields)


@dataclass
class Result:
    """A receiver's output: images uint8 (N, H, W, C) always; latents float32 (N, 2k) when the
    scheme has them (for the latent MSE); the network evaluations per image it used (averaged
    over the batch where images start at different steps); and anything else worth a column
    (JSON-able)."""
    images: np.ndarray
    latents: Optional[np.ndarray] = None
    nfe: float = 0
    extra: dict = field(default_factory=dict)

    def to_wire(self):
        arrays = [("images", np.ascontiguousarray(self.images, np.uint8))]
        if self.latents is not None:
            arrays.append(("latents", np.ascontiguousarray(self.latents, np.float32)))
        return {"nfe": float(self.nfe), "extra": self.extra}, arrays

    @classmethod
    def from_wire(cls, result: dict, arrays: dict) -> "Result":
        latents = arrays.get("latents")
        return cls(images=np.array(arrays["images"]), latents=None if latents is None else np.array(latents),
                   nfe=float(result.get("nfe", 0)), extra=dict(result.get("extra", {})))


def _shipped(name: str) -> bool:
    """A shipped checkpoint of that name, or a checkpoint at that path (NAME.safetensors + NAME.json)."""
    from ..core.checkpoint import CheckpointError, checkpoint_paths
    from ..core.models import checkpoint_for
    try:
        return all(p.is_file() for p in checkpoint_paths(checkpoint_for(name)))
    except CheckpointError:
        return False


def _c64(t) -> np.ndarray:
    t = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return np.ascontiguousarray(t, np.complex64)


class Params:
    """Typed reads of a request's JSON params; ValueError naming the field ('params.KEY')."""

    def __init__(self, params, op):
        if not isinstance(params, dict):
            raise ValueError(f"{op}: 'params' must be an object")
        self.p = params

    def number(self, key, default=None, low=-math.inf, finite=True, open_low=False):
        v = self.p.get(key, default)
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)
              and (math.isfinite(v) or not finite) and (v > low if open_low else v >= low))
        if not ok:
            what = ("a finite number" if finite else "a number") + \
                (f" {'>' if open_low else '>='} {low:g}" if low > -math.inf else "")
            raise ValueError(f"'params.{key}' must be {what}")
        return float(v)

    def string(self, key, default):
        v = self.p.get(key, default)
        if not isinstance(v, str) or len(v) > 256:
            raise ValueError(f"'params.{key}' must be a string")
        return v

    def choice(self, key, allowed, default):
        v = self.p.get(key, default)
        if not isinstance(v, str) or v not in allowed:
            raise ValueError(f"'params.{key}' must be one of {', '.join(allowed)}")
        return v

    def dict(self, key):
        v = self.p.get(key, {})
        if not isinstance(v, dict):
            raise ValueError(f"'params.{key}' must be an object")
        return v

    def side_info(self):
        v = self.p.get("side_info", [])
        if not isinstance(v, list) or not all(isinstance(d, dict) for d in v):
            raise ValueError("'params.side_info' must be a list of objects (one per image)")
        return v

    def coherence(self):
        v = self.p.get("coherence", 1)
        if not (isinstance(v, int) and not isinstance(v, bool)) or not 1 <= v < 2 ** 31:
            raise ValueError("'params.coherence' must be an integer >= 1")
        return v

    def seed(self):
        v = self.p.get("seed", 0)
        if not (isinstance(v, int) and not isinstance(v, bool)) or not 0 <= v < 2 ** 63:
            raise ValueError("'params.seed' must be an integer >= 0")
        return v


# ---------------------------------------------------------------- the scheme
class Scheme:
    """Base of every scheme. Subclasses set name, description, options (and cbr_of if their
    symbol count is not the model's k) and implement checkpoints(), transmit(), receive()."""
    name: str = ""
    description: str = ""
    family: str = ""
    options: Tuple[Option, ...] = ()
    needs_csit: bool = False      # the transmitter needs the fading the channel will apply
    train_apps: str = "apps/train_prior.py or apps/train_jscc.py"   # named when a checkpoint is missing
    takes_fewer_symbols: bool = False   # its receiver zero-pads fewer than the model's k (a CBR sweep)
    model_options: Tuple[str, ...] = ()   # options whose value names a checkpoint (a server checks them)
    # The lines it draws in the every-scheme comparison (bench/bench_schemes.py): (label, options)
    # pairs; default one line, the scheme's defaults; () leaves an ablation out of that table.
    comparison_series: Optional[Tuple[Tuple[str, dict], ...]] = None

    def series(self) -> Tuple[Tuple[str, dict], ...]:
        """comparison_series, or one line of the defaults named after the scheme."""
        return ((self.name, {}),) if self.comparison_series is None else self.comparison_series

    @property
    def defaults(self) -> dict:
        return {o.name: o.default for o in self.options}

    def option_values(self, given: Optional[dict] = None, channel_type: Optional[str] = None) -> dict:
        """The defaults (those of `channel_type` where they differ) with `given` applied;
        unknown names or bad values raise ValueError."""
        specs = {o.name: o for o in self.options}
        out = {o.name: o.default_for(channel_type) for o in self.options}
        for key, value in (given or {}).items():
            if key not in specs:
                known = ", ".join(sorted(specs)) or "none"
                raise ValueError(f"scheme {self.name!r} has no option {key!r} (options: {known})")
            out[key] = specs[key].coerce(self.name, value)
        return out

    def max_nfe(self, given: Optional[dict] = None, channel_type: Optional[str] = None) -> int:
        """The most network evaluations per image these options can cost in the receiver
        (0 without a network). ValueError as for option_values()."""
        self.option_values(given, channel_type)
        return 0

    def max_tx_nfe(self, given: Optional[dict] = None, channel_type: Optional[str] = None) -> int:
        """The most network evaluations per image these options can cost the transmitter
        beyond its encoder (0 for most: jscna-ad's DDIM inversion runs its prior there)."""
        self.option_values(given, channel_type)
        return 0

    def default_model(self, channel_type: str, k: Optional[int], image_shape=None) -> str:
        """The model it uses when none is named ("" for a scheme without one)."""
        return ""

    def checkpoints(self, channel_type: str, k: Optional[int], model: str = "", image_shape=None) -> list:
        """The names (or paths) of the checkpoints this scheme needs there; `k` None: the
        transmitter's alone (k follows from its model)."""
        return []

    def csit_needed(self, options: Optional[dict] = None, channel_type: Optional[str] = None) -> bool:
        """Whether the transmitter needs the fading the channel will apply, with these options
        on this channel (default: `needs_csit`)."""
        return self.needs_csit

    def symbols_per_image(self, models, tx: "TxContext", image_shape) -> int:
        """k, before transmitting: what a scheme that needs CSI at the transmitter
        (`needs_csit`) must say, so that the channel can be drawn first."""
        raise NotImplementedError(f"scheme {self.name!r} needs CSIT but does not say its k")

    def check_checkpoints(self, channel_type: str, k: int, model: str = "", image_shape=None,
                          available=None):
        """CheckpointError naming every missing checkpoint (`available`: the names a server
        has; default: those shipped with this module)."""
        from ..core.checkpoint import CheckpointError
        need = self.checkpoints(channel_type, k, model, image_shape)
        missing = [n for n in need if not (n in available if available is not None else _shipped(n))]
        if missing:
            where = ("which the server does not have" if available is not None else
                     f"no shipped diffusion prior or model by that name (train one with {self.train_apps})")
            at = f"{channel_type}, k = {k}" if k else channel_type
            raise CheckpointError(f"scheme {self.name!r} ({at}) needs checkpoint(s) {', '.join(missing)}: {where}")

    def check_model(self, channel_type: str, k: Optional[int], model: str = "", image_shape=None):
        """ValueError where the (present) checkpoint cannot serve this scheme at k; run where the
        files are (in-process) when a block is made. Default: nothing beyond check_checkpoints."""

    def check_side_info(self, side_info: dict, options: Optional[dict] = None):
        """ValueError if one image's side information (from its transmitter) is unusable
        with these options: a receiver block drops that image alone, not its batch."""

    def transmit(self, models, images: np.ndarray, tx: TxContext) -> Transmission:
        raise NotImplementedError

    def receive(self, models, obs: Observation) -> Result:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"description": self.description, "family": self.family, "needs_csit": self.needs_csit,
                "options": {o.name: o.describe() for o in self.options}}
