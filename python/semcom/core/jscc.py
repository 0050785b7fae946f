"""Deep JSCC image encoder/decoder with SNR-adaptive attention (GNU Radio-free, torch only).

Models
------
`JSCC` = `Encoder` + `Decoder`, both built from a `JSCCConfig` (JSON-serialisable):

    image (N, C, H, W) in [0, 1] --Encoder(x, snr_db)--> s (N, 2k) real, NOT normalised
    link: mapping.to_symbols(s, P) -> channel.transmit -> equalizer.mmse_equalize
    decoder input x_hat = [Re zhat; Im zhat] (N, 2k), in the unit-power symbol domain
    x_hat --Decoder(x_hat, snr_db)--> image (N, C, H, W) in [0, 1]

The encoder is a DeepJSCC-style conv stack (two stride-2 stages, residual blocks at H/4 x W/4,
a linear conv to 2k / (H/4 * W/4) latent channels, flattened channel-major so s[:k] are the
first half of the latent channels). The decoder mirrors it with sub-pixel (PixelShuffle) or
transposed-conv upsampling and a sigmoid (or straight-through clamp) output. After every stage an ADJSCC attention-feature
(AF) module rescales the channels by sigmoid(MLP([global mean of the features, snr_db / 20])),
so ONE model serves every SNR of its channel type (AWGN and Rayleigh get separate checkpoints:
an i.i.d. Rayleigh MMSE output has per-symbol shrinkage and heavy-tailed noise, which a
decoder told only the SNR cannot infer from an AWGN-trained model).

Decoder input (a documented choice): the decoder sees the MMSE-equalized symbols in the
power-normalised domain, i.e. `from_symbols(zhat, 1.0)`, NOT divided by the transmitter's
per-image scale: a receiver is not told that scale. The encoder output scale is therefore
irrelevant to the link; only its direction matters.

Two default architectures, both from this one builder: the *user* (wide, 5x5 stride-2 convs,
PReLU, PixelShuffle upsampling) and the *interferer* (narrower, 3x3 convs, GELU, transposed-conv
upsampling, more residual blocks), trained on disjoint CIFAR-10 splits with their own seeds.
See `user_config` / `interferer_config`; apps/train_jscc.py overrides either (the shipped k = 512
interferer is of the user's family with its own SNR-attention width; docs/models.md).

Training (`train`) puts the channel in the loop: per-image SNR ~ U[snr_min, snr_max] dB,
P = 1 per image, no interferer, MSE loss, Adam with warm-up + cosine decay, seeded. What a run
carries from epoch to epoch is one `TrainState` (optimizer, the data and channel generators,
epoch, step, history): `train` continues from the one it is given (apps/train_jscc.py restores
it from resume files, core/resume.py) and hands it to a per-epoch callback after every epoch,
so an interrupted run resumes to the very weights of an uninterrupted one.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .channel import CHANNEL_TYPES, transmit
from .equalizer import mmse_equalize
from .lr_schedule import warmup_cosine_lr
from .mapping import complex_to_real, to_symbols

ACTIVATIONS = ("prelu", "gelu", "relu")
UPSAMPLERS = ("pixelshuffle", "convtranspose")
OUTPUTS = ("sigmoid", "clamp")
ROLES = ("user", "interferer")
SNR_SCALE_DB = 20.0  # AF modules see snr_db / SNR_SCALE_DB


# --------------------------------------------------------------------------- config

@dataclass
class JSCCConfig:
    """Everything needed to rebuild a model (and nothing else)."""
    image_shape: Tuple[int, int, int] = (3, 32, 32)  # (C, H, W)
    k: int = 512                                     # complex channel symbols per image
    width: int = 64                                  # feature channels
    kernel: int = 5                                  # kernel of the stride-2 convs
    res_blocks: int = 1                              # residual blocks at H/4 x W/4
    activation: str = "prelu"
    upsample: str = "pixelshuffle"
    af_hidden: int = 16                              # hidden units of each AF MLP
    output: str = "sigmoid"                          # sigmoid | clamp (see Decoder)
    channel_type: str = "awgn"                       # channel the model is trained for
    role: str = "user"                               # user | interferer (informational)
    arch: str = "deepjscc-af"                        # builder name (one for now)

    def __post_init__(self):
        self.image_shape = tuple(int(v) for v in self.image_shape)
        self.validate()

    # derived ---------------------------------------------------------------
    @property
    def source_dim(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    @property
    def cbr(self) -> float:
        """Channel uses (complex symbols) per real source value: k / (C H W)."""
        return self.k / self.source_dim

    @property
    def latent_hw(self) -> Tuple[int, int]:
        _, h, w = self.image_shape
        return (-(-h // 4), -(-w // 4))

    @property
    def latent_channels(self) -> int:
        lh, lw = self.latent_hw
        return 2 * self.k // (lh * lw)

    def validate(self):
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {self.image_shape}")
        c, h, w = self.image_shape
        if c not in (1, 3) or h % 4 or w % 4 or h < 4 or w < 4:
            raise ValueError(f"image_shape must be (1 or 3, H, W) with H, W multiples of 4, "
                             f"got {self.image_shape}")
        if int(self.k) != self.k or self.k < 1:
            raise ValueError(f"k must be a positive integer, got {self.k}")
        lh, lw = h // 4, w // 4
        if (2 * self.k) % (lh * lw):
            raise ValueError(f"2k = {2 * self.k} must be a multiple of the latent grid "
                             f"{lh}x{lw} = {lh * lw} for image shape {self.image_shape}")
        for name in ("width", "af_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and >= 1, got {self.kernel}")
        if self.res_blocks < 0:
            raise ValueError(f"res_blocks must be >= 0, got {self.res_blocks}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.upsample not in UPSAMPLERS:
            raise ValueError(f"upsample must be one of {UPSAMPLERS}, got {self.upsample!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.channel_type not in CHANNEL_TYPES:
            raise ValueError(f"channel_type must be one of {CHANNEL_TYPES}, "
                             f"got {self.channel_type!r}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.arch != "deepjscc-af":
            raise ValueError(f"unknown arch {self.arch!r} (expected 'deepjscc-af')")

    # serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "JSCCConfig":
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "JSCCConfig":
        return cls.from_dict(json.loads(text))


def user_config(k: int = 512, channel_type: str = "awgn",
                image_shape=(3, 32, 32), **overrides) -> JSCCConfig:
    """The user's model: 5x5 stride-2 convs, PReLU, PixelShuffle decoder."""
    d = dict(image_shape=image_shape, k=k, width=96, kernel=5, res_blocks=2,
             activation="prelu", upsample="pixelshuffle", af_hidden=24,
             channel_type=channel_type, role="user")
    d.update(overrides)
    return JSCCConfig(**d)


def interferer_config(k: int = 512, channel_type: str = "awgn",
                      image_shape=(3, 32, 32), **overrides) -> JSCCConfig:
    """The interfering user's model: a different architecture (narrower, 3x3, GELU,
    transposed-conv decoder, more residual blocks)."""
    d = dict(image_shape=image_shape, k=k, width=48, kernel=3, res_blocks=3,
             activation="gelu", upsample="convtranspose", af_hidden=12,
             channel_type=channel_type, role="interferer")
    d.update(overrides)
    return JSCCConfig(**d)


# --------------------------------------------------------------------------- layers

def _act(name: str, ch: int) -> nn.Module:
    if name == "prelu":
        return nn.PReLU(ch)
    if name == "gelu":
        return nn.GELU()
    return nn.ReLU(inplace=True)


def _snr_column(snr_db, n: int, device, dtype) -> torch.Tensor:
    """SNR in dB (scalar, list or tensor of n) -> (n, 1) tensor scaled by 1/20."""
    snr = torch.as_tensor(snr_db, dtype=dtype, device=device)
    if snr.ndim == 0:
        snr = snr.expand(n)
    snr = snr.reshape(-1)
    if snr.shape[0] != n:
        raise ValueError(f"got {snr.shape[0]} SNR values for a batch of {n}")
    if not torch.all(torch.isfinite(snr)):
        raise ValueError("SNR must be finite (dB) for the model's attention modules")
    return (snr / SNR_SCALE_DB).unsqueeze(1)


class AFModule(nn.Module):
    """ADJSCC attention feature: channel gains from (global mean, SNR)."""

    def __init__(self, ch: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(ch + 1, hidden)
        self.fc2 = nn.Linear(hidden, ch)

    def forward(self, x: torch.Tensor, snr: torch.Tensor) -> torch.Tensor:
        ctx = torch.cat([x.mean(dim=(2, 3)), snr], dim=1)
        gain = torch.sigmoid(self.fc2(F.relu(self.fc1(ctx))))
        return x * gain[:, :, None, None]


class ResBlock(nn.Module):
    def __init__(self, ch: int, act: str):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act1 = _act(act, ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act2 = _act(act, ch)

    def forward(self, x):
        return self.act2(x + self.conv2(self.act1(self.conv1(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: JSCCConfig):
        super().__init__()
        c, _, _ = cfg.image_shape
        w, k, a = cfg.width, cfg.kernel, cfg.activation
        self.cfg = cfg
        self.down1 = nn.Conv2d(c, w, k, stride=2, padding=k // 2)
        self.act1 = _act(a, w)
        self.af1 = AFModule(w, cfg.af_hidden)
        self.down2 = nn.Conv2d(w, w, k, stride=2, padding=k // 2)
        self.act2 = _act(a, w)
        self.af2 = AFModule(w, cfg.af_hidden)
        self.res = nn.ModuleList(ResBlock(w, a) for _ in range(cfg.res_blocks))
        self.res_af = nn.ModuleList(AFModule(w, cfg.af_hidden) for _ in range(cfg.res_blocks))
        self.out = nn.Conv2d(w, cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, snr_db) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] -> real latents s (N, 2k), not normalised."""
        c, h, w = self.cfg.image_shape
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise ValueError(f"encoder expects images (N, {c}, {h}, {w}), "
                             f"got {tuple(x.shape)}")
        snr = _snr_column(snr_db, x.shape[0], x.device, x.dtype)
        x = self.af1(self.act1(self.down1(x)), snr)
        x = self.af2(self.act2(self.down2(x)), snr)
        for blk, af in zip(self.res, self.res_af):
            x = af(blk(x), snr)
        return self.out(x).flatten(1)


class Decoder(nn.Module):
    def __init__(self, cfg: JSCCConfig):
        super().__init__()
        c, _, _ = cfg.image_shape
        w, k, a = cfg.width, cfg.kernel, cfg.activation
        self.cfg = cfg
        self.inp = nn.Conv2d(cfg.latent_channels, w, 3, padding=1)
        self.act0 = _act(a, w)
        self.af0 = AFModule(w, cfg.af_hidden)
        self.res = nn.ModuleList(ResBlock(w, a) for _ in range(cfg.res_blocks))
        self.res_af = nn.ModuleList(AFModule(w, cfg.af_hidden) for _ in range(cfg.res_blocks))
        if cfg.upsample == "pixelshuffle":
            self.up1 = nn.Sequential(nn.Conv2d(w, 4 * w, 3, padding=1), nn.PixelShuffle(2))
            self.up2 = nn.Sequential(nn.Conv2d(w, 4 * c, 3, padding=1), nn.PixelShuffle(2))
        else:
            self.up1 = nn.ConvTranspose2d(w, w, k + 1, stride=2, padding=k // 2)
            self.up2 = nn.ConvTranspose2d(w, c, k + 1, stride=2, padding=k // 2)
        self.act1 = _act(a, w)
        self.af1 = AFModule(w, cfg.af_hidden)

    def forward(self, latent: torch.Tensor, snr_db) -> torch.Tensor:
        """Equalized latents (N, 2k) (unit-power symbol domain) -> images (N, C, H, W)."""
        if latent.ndim != 2 or latent.shape[1] != 2 * self.cfg.k:
            raise ValueError(f"decoder expects latents (N, {2 * self.cfg.k}), "
                             f"got {tuple(latent.shape)}")
        snr = _snr_column(snr_db, latent.shape[0], latent.device, latent.dtype)
        lh, lw = self.cfg.latent_hw
        x = latent.reshape(latent.shape[0], self.cfg.latent_channels, lh, lw)
        x = self.af0(self.act0(self.inp(x)), snr)
        for blk, af in zip(self.res, self.res_af):
            x = af(blk(x), snr)
        x = self.af1(self.act1(self.up1(x)), snr)
        x = self.up2(x)
        if self.cfg.output == "sigmoid":
            return torch.sigmoid(x)
        # "clamp": 0.5 + x clipped to [0, 1] with a straight-through gradient. A sigmoid can
        # saturate on mostly-black images (MNIST) and get stuck outputting black.
        y = x + 0.5
        return y + (y.clamp(0.0, 1.0) - y).detach()


class JSCC(nn.Module):
    """Encoder + decoder of one JSCC user."""

    def __init__(self, cfg: JSCCConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, images, snr_db):
        return self.encoder(images, snr_db)

    def decode(self, latent, snr_db):
        return self.decoder(latent, snr_db)

    def forward(self, images, snr_db, generator=None, power: float = 1.0):
        """End to end over this model's channel (no interferer)."""
        s = self.encoder(images, snr_db)
        xhat = link(s, snr_db, self.cfg.channel_type, generator=generator, power=power)
        return self.decoder(xhat, snr_db)


def build_model(cfg: Union[JSCCConfig, dict]) -> JSCC:
    if isinstance(cfg, dict):
        cfg = JSCCConfig.from_dict(cfg)
    return JSCC(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- link

def link(s: torch.Tensor, snr_db, channel_type: str = "awgn",
         generator: Optional[torch.Generator] = None, power: float = 1.0,
         coherence: int = 1) -> torch.Tensor:
    """Latents s (N, 2k) -> MMSE-equalized latents (N, 2k) in the unit-power domain.

    to_symbols(P per image) -> transmit (no interferer) -> mmse_equalize -> [Re; Im].
    snr_db is one value for the whole batch or one per image (each image its own call to
    channel.transmit, so the draws come from `generator` in image order). Differentiable
    with respect to s. "No interferer" is passed as SINR = SNR (interference power exactly
    0), which channel.link_powers accepts whatever its handling of SINR = inf.
    """
    z, _scale = to_symbols(s, power)
    snr = torch.as_tensor(snr_db, dtype=torch.float64).reshape(-1)
    if snr.numel() == 1:
        out = transmit(z, None, float(snr[0]), float(snr[0]), channel_type=channel_type,
                       coherence=coherence, signal_power=power, generator=generator)
        zhat, _ = mmse_equalize(out.y, out.h, out.powers.signal_power, out.powers.noise_var)
        return complex_to_real(zhat)
    if snr.numel() != z.shape[0]:
        raise ValueError(f"got {snr.numel()} SNR values for a batch of {z.shape[0]}")
    rows = []
    for i in range(z.shape[0]):
        out = transmit(z[i], None, float(snr[i]), float(snr[i]), channel_type=channel_type,
                       coherence=coherence, signal_power=power, generator=generator)
        zhat, _ = mmse_equalize(out.y, out.h, out.powers.signal_power, out.powers.noise_var)
        rows.append(zhat)
    return complex_to_real(torch.stack(rows))


# --------------------------------------------------------------------------- metrics

def psnr_per_image(x: torch.Tensor, ref: torch.Tensor, max_val: float = 1.0) -> torch.Tensor:
    """PSNR (dB) of each image of a batch (N, C, H, W): metrics.psnr, the module's one PSNR."""
    from .metrics import psnr  # torch-only module; imported here to keep jscc's imports minimal
    return psnr(x, ref, max_val)


@torch.no_grad()
def evaluate_psnr(model: JSCC, images: torch.Tensor, snr_db: float,
                  channel_type: Optional[str] = None, seed: int = 1234,
                  batch_size: int = 250) -> float:
    """Mean per-image PSNR (dB) over `images` (float NCHW in [0, 1]) at one SNR.

    The channel draws come from torch.Generator seeded with `seed` (reproducible).
    Decoded images are quantised to 8 bits first, as an image sink would.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    ct = channel_type or model.cfg.channel_type
    vals = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size]
        s = model.encoder(x, snr_db)
        xhat = link(s, snr_db, ct, generator=gen)
        rec = model.decoder(xhat, snr_db).mul(255).round().div(255)
        vals.append(psnr_per_image(rec, x))
    model.train(was_training)
    return float(torch.cat(vals).mean())


# --------------------------------------------------------------------------- training

@dataclass
class TrainSettings:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    min_lr_ratio: float = 0.02     # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 0.0         # max global gradient norm (0: no clipping)
    snr_min: float = 0.0
    snr_max: float = 20.0
    seed: int = 0
    flip: bool = True              # random horizontal flips
    eval_snr: float = 10.0
    max_steps_per_epoch: int = 0   # 0: full epochs (a smaller value is for smoke tests)


def _lr_at(step: int, total: int, st: TrainSettings) -> float:
    return warmup_cosine_lr(step, total, st.warmup_steps, st.lr, st.min_lr_ratio)


@dataclass
class TrainState:
    """Everything a training run carries from one epoch to the next besides the model's
    weights: the optimizer, the generators of the data (order, flips) and of the channel
    (SNRs, noise), the last finished epoch, the step count, the time trained so far and the
    per-epoch history. `start_training` makes the state of a fresh run."""
    optimizer: torch.optim.Optimizer
    data_gen: torch.Generator
    chan_gen: torch.Generator
    epoch: int = 0            # last finished epoch (0: none yet)
    step: int = 0             # optimizer steps taken
    elapsed_s: float = 0.0    # wall time of the finished epochs (all sessions)
    history: Dict = field(default_factory=lambda: {"epoch": [], "loss": [], "test_psnr_db": [],
                                                   "seconds": []})

    @property
    def generators(self) -> Dict[str, torch.Generator]:
        """The generators by name (as core/resume.py saves and restores them)."""
        return {"data": self.data_gen, "channel": self.chan_gen}


def start_training(model: JSCC, settings: TrainSettings) -> TrainState:
    """The state of a fresh run of `settings` on `model`: Adam on its parameters and the
    generators seeded from settings.seed (+1 data, +2 channel)."""
    st = settings
    return TrainState(
        optimizer=torch.optim.Adam(model.parameters(), lr=st.lr, weight_decay=st.weight_decay),
        data_gen=torch.Generator().manual_seed(st.seed + 1),
        chan_gen=torch.Generator().manual_seed(st.seed + 2))


def train(model: JSCC, train_images: np.ndarray, test_images: torch.Tensor,
          settings: TrainSettings, log: Callable[[str], None] = print,
          progress: bool = True, state: Optional[TrainState] = None,
          on_epoch: Optional[Callable[[TrainState], None]] = None,
          stop_after: int = 0) -> Dict:
    """Train `model` with its channel in the loop. Returns a history dict.

    train_images: uint8 NHWC array; test_images: float NCHW tensor in [0, 1] (the per-epoch
    PSNR at settings.eval_snr is measured on it, channel seed fixed).

    state: where to continue (the model holding the weights of its last finished epoch);
    None starts afresh (`start_training`). It is updated in place; after each epoch
    `on_epoch(state)` is called (e.g. to write resume files). stop_after: end after this many
    epochs of this call (0: run to settings.epochs); state.epoch says where it stopped.
    The returned history (state.history plus "steps" and "wall_time_s", both over all
    sessions) is that of the epochs finished so far.
    """
    from tqdm import tqdm  # only the training loop needs it

    st = settings
    cfg = model.cfg
    if tuple(train_images.shape[1:]) != (cfg.image_shape[1], cfg.image_shape[2],
                                          cfg.image_shape[0]):
        raise ValueError(f"training images {train_images.shape[1:]} (H, W, C) do not match "
                         f"the model's image shape {cfg.image_shape} (C, H, W)")
    if stop_after < 0:
        raise ValueError(f"stop_after must be >= 0, got {stop_after}")
    n = train_images.shape[0]
    steps_per_epoch = n // st.batch_size
    if st.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, st.max_steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"{n} training images are fewer than one batch of {st.batch_size}")
    total = steps_per_epoch * st.epochs

    if state is None:
        state = start_training(model, st)
    if state.step != state.epoch * steps_per_epoch:
        raise ValueError(f"the state to continue is at step {state.step} after epoch {state.epoch}, "
                         f"not {state.epoch * steps_per_epoch} ({steps_per_epoch} steps per epoch)")
    opt, data_gen, chan_gen, history = state.optimizer, state.data_gen, state.chan_gen, state.history
    all_images = torch.from_numpy(np.ascontiguousarray(train_images))  # uint8 NHWC
    step = state.step
    last = st.epochs if not stop_after else min(st.epochs, state.epoch + stop_after)
    elapsed_before = state.elapsed_s
    t0 = time.time()
    model.train()
    for epoch in range(state.epoch + 1, last + 1):
        perm = torch.randperm(n, generator=data_gen)
        running, count = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{st.epochs}",
                   disable=not progress, leave=False, dynamic_ncols=True, mininterval=2.0)
        for b in bar:
            idx = perm[b * st.batch_size:(b + 1) * st.batch_size]
            x = all_images[idx].float().div_(255.0).permute(0, 3, 1, 2).contiguous()
            if st.flip:
                flip = torch.rand(x.shape[0], generator=data_gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            snr = st.snr_min + (st.snr_max - st.snr_min) * torch.rand(x.shape[0],
                                                                       generator=chan_gen)
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, st)
            s = model.encoder(x, snr)
            xhat = link(s, snr, cfg.channel_type, generator=chan_gen)
            rec = model.decoder(xhat, snr)
            loss = F.mse_loss(rec, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if st.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), st.grad_clip)
            opt.step()
            step += 1
            running += float(loss.detach()) * x.shape[0]
            count += x.shape[0]
            if b % 20 == 0:
                bar.set_postfix(loss=f"{running / count:.5f}",
                                psnr=f"{-10 * math.log10(running / count):.2f}")
        bar.close()
        test_psnr = evaluate_psnr(model, test_images, st.eval_snr, seed=st.seed + 3)
        elapsed = elapsed_before + time.time() - t0
        epoch_loss = running / count
        history["epoch"].append(epoch)
        history["loss"].append(epoch_loss)
        history["test_psnr_db"].append(test_psnr)
        history["seconds"].append(elapsed)
        state.epoch, state.step, state.elapsed_s = epoch, step, elapsed
        log(f"epoch {epoch}/{st.epochs}  steps {step}  loss {epoch_loss:.6f} "
            f"(train PSNR {-10 * math.log10(epoch_loss):.2f} dB @ SNR U[{st.snr_min:g},"
            f"{st.snr_max:g}])  test PSNR {test_psnr:.2f} dB @ {st.eval_snr:g} dB  "
            f"lr {_lr_at(step - 1, total, st):.2e}  {elapsed:.0f} s")
        if on_epoch is not None:
            on_epoch(state)
    state.elapsed_s = elapsed_before + time.time() - t0
    return dict(history, steps=step, wall_time_s=state.elapsed_s)
