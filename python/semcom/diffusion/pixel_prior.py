"""The pixel-space diffusion prior of `jscna-ad-pixel` (GNU Radio-free; spec
../shared/papers/jscna_ad.md §5.1-5.2, "JSCNA-pixel").

eps(x_t, t) = eps_G(x_t, t) + r_theta(x_t, t) on 32x32 RGB images in [-1, 1], flattened
channel-major to (N, 3072), VP linear schedule (beta 1e-4..0.02, T = 1000), eps prediction:

- eps_G, the Gaussian base: the exact eps of a Gaussian fitted to the training pixels, the
  mean image mu plus a stationary covariance (circulant over the 32x32 grid: one Hermitian 3x3
  colour covariance P(f) per 2-D frequency, of the orthonormal FFT of x - mu), stored in the
  checkpoint itself (18 k numbers instead of a 38 MB dense 3072 x 3072 covariance). Measured as
  a Wiener denoiser on 500 CIFAR-10 test images it is within 0.3 dB of the dense fit (-0.12 /
  +0.11 / +0.30 dB at noise 0.0027 / 0.027 / 0.27 per pixel, fits on 8000 training images),
  while a rank-128 principal-component model loses 3 dB. With P(f) = U diag(lambda) U^H,
  E[eps | x_t] = sigma F^H U diag(1 / (abar lambda + sigma^2)) U^H F (x_t - alpha mu). It is the
  prior's strongest simple control (`base_eps`; the scheme's prior=gaussian).
- r_theta, a U-Net (nets/cdiff.py's ConditionalUNet with an empty condition) whose output
  convolution starts at zero, so training starts AT the fitted Gaussian.

Trained for t < cfg.t_max only (the matched start steps of the channel SNRs the scheme serves:
t_max = 400 is about -12 dB at the mean CIFAR-10 image power); `check_step` refuses later steps.

Patches are the classifier's 4x4-pixel cells: `to_tokens` (N, 3072) -> (N, 64, 48), so that
the per-patch reverse process (diffusion/jscna.py adaptive_ddim) runs on the same 64 patches
the attention scores. A convolutional network cannot take a token subset as the latent DiT
does; `crop_eps` runs it on a crop around the active patches (jscna-ad-pixel's crop option).

Checkpoint kind "pixel-prior" (core/checkpoint.py): config PixelPriorConfig, the schedule as
data, tensors = the U-Net's and the base's (base_mean (3072,), base_spectrum (32, 32, 3, 3, 2):
P(f) as real and imaginary parts).
"""

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..core.checkpoint import register_kind
from ..nets.cdiff import ConditionalUNet, UNetConfig
from .dit import LINEAR_SCHEDULE, schedule_from_data
from .schedule import VPSchedule

KIND = "pixel-prior"
PATCH = 4   # pixels per patch side: the classifier's patches (nets/classifier.py)


@dataclass(frozen=True)
class PixelPriorConfig:
    unet: UNetConfig = field(default_factory=lambda: UNetConfig(dim=16, mults=(1, 2, 4), in_channels=3))
    t_max: int = 400           # trained on t < t_max
    image_shape: tuple = (3, 32, 32)

    def __post_init__(self):
        unet = self.unet if isinstance(self.unet, UNetConfig) else UNetConfig.from_dict(self.unet)
        object.__setattr__(self, "unet", unet)
        object.__setattr__(self, "image_shape", tuple(int(v) for v in self.image_shape))
        c, h, w = self.image_shape
        if unet.in_channels != c or unet.out_channels != c:
            raise ValueError(f"the U-Net maps {c} channels to {c}, got in {unet.in_channels}, out {unet.out_channels}")
        if h % PATCH or w % PATCH:
            raise ValueError(f"image sides must be multiples of the {PATCH}-pixel patch, got {h}x{w}")
        if not 1 <= self.t_max:
            raise ValueError(f"t_max must be >= 1, got {self.t_max}")

    @property
    def dim(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    # what the link reads of a source model (inference/local.py info): the pixels as 2k reals
    @property
    def k(self) -> int:
        return self.dim // 2

    @property
    def cbr(self) -> float:
        return self.k / self.dim

    role = "pixels"

    @property
    def tokens(self) -> int:
        return self.image_shape[1] * self.image_shape[2] // PATCH ** 2

    def to_dict(self):
        return {"unet": self.unet.to_dict(), "t_max": self.t_max,
                "image_shape": list(self.image_shape)}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict) or set(d) - {"unet", "t_max", "image_shape"}:
            raise ValueError(f"a pixel-prior config has the fields unet, t_max, image_shape; got {d!r}")
        return cls(**d)


class PixelPrior(nn.Module):
    """eps_theta(x_t, t) for images x_t (N, 3072) in [-1, 1] units (module docstring)."""

    def __init__(self, cfg: PixelPriorConfig = PixelPriorConfig()):
        super().__init__()
        self.cfg = cfg
        self.unet = ConditionalUNet(cfg.unet)
        nn.init.zeros_(self.unet.out.weight)
        nn.init.zeros_(self.unet.out.bias)
        c, h, w = cfg.image_shape
        self.register_buffer("base_mean", torch.zeros(cfg.dim))
        spectrum = torch.zeros(h, w, c, c, 2)
        spectrum[..., 0] = torch.eye(c)
        self.register_buffer("base_spectrum", spectrum)
        self.attach_schedule(schedule_from_data(LINEAR_SCHEDULE))

    # ---- the Gaussian base
    @torch.no_grad()
    def fit_base(self, x: torch.Tensor, chunk: int = 1000):
        """Fit the mean image and the stationary colour spectrum P(f) to images x (N, D) in
        [-1, 1] (float64 accumulation; P(f) = sum over images of X(f) X(f)^H / (N - 1), X the
        orthonormal FFT of x - mu, made exactly Hermitian: the sample covariance's circulant
        part)."""
        if x.ndim != 2 or x.shape[1] != self.cfg.dim or x.shape[0] < 2:
            raise ValueError(f"fit_base needs images (N >= 2, {self.cfg.dim}), got {tuple(x.shape)}")
        mean = torch.zeros(self.cfg.dim, dtype=torch.float64)
        for s in range(0, len(x), chunk):
            mean += x[s:s + chunk].double().sum(0)
        mean /= len(x)
        c, h, w = self.cfg.image_shape
        p = torch.zeros(h, w, c, c, dtype=torch.complex128)
        for s in range(0, len(x), chunk):
            f = torch.fft.fft2((x[s:s + chunk].double() - mean).reshape(-1, c, h, w), norm="ortho")
            p += torch.einsum("nahw,nbhw->hwab", f, f.conj())
        p /= len(x) - 1
        p = (p + p.conj().transpose(-1, -2)) / 2
        self.base_mean.copy_(mean)
        self.base_spectrum.copy_(torch.view_as_real(p).float())
        return self

    def _spectral(self):
        """(eigenvalues (h, w, c), eigenvectors (h, w, c, c)) of P(f), float64, cached per
        spectrum tensor version."""
        key = (self.base_spectrum.data_ptr(), self.base_spectrum._version, self.base_spectrum.device)
        if getattr(self, "_eig_key", None) != key:
            p = torch.view_as_complex(self.base_spectrum.double().contiguous())
            values, vectors = torch.linalg.eigh(p)
            self._eig, self._eig_key = (values.clamp_min(0), vectors), key
        return self._eig

    def _spectral_apply(self, r: torch.Tensor, gain) -> torch.Tensor:
        """F^H U diag(gain(lambda)) U^H F r for r (N, D) float64; gain maps eigenvalues (1, h, w, c)
        to per-image gains (N, h, w, c)."""
        c, h, w = self.cfg.image_shape
        values, vectors = self._spectral()
        f = torch.fft.fft2(r.reshape(-1, c, h, w), norm="ortho").permute(0, 2, 3, 1)
        coef = torch.einsum("hwcd,nhwc->nhwd", vectors.conj(), f) * gain(values[None])
        out = torch.einsum("hwcd,nhwd->nhwc", vectors, coef).permute(0, 3, 1, 2)
        return torch.fft.ifft2(out, norm="ortho").real.reshape(r.shape)

    def base_covariance(self) -> torch.Tensor:
        """The base's dense covariance (D, D), float64 (for tests and references)."""
        eye = torch.eye(self.cfg.dim, dtype=torch.float64, device=self.base_mean.device)
        return self._spectral_apply(eye, lambda v: v.to(torch.complex128))

    def base_variance(self) -> torch.Tensor:
        """The base's per-pixel variance (D,): a stationary covariance's diagonal is, per
        channel, the mean over frequencies of P(f)'s diagonal."""
        c, h, w = self.cfg.image_shape
        per_channel = self.base_spectrum[..., 0].diagonal(dim1=-2, dim2=-1).double().mean((0, 1))
        return per_channel.clamp_min(0).repeat_interleave(h * w)

    def attach_schedule(self, schedule: VPSchedule):
        self.register_buffer("abar", schedule.alphas_cumprod.double().to(self.base_mean.device), persistent=False)
        return self

    def _abar(self, t, n: int, device) -> torch.Tensor:
        t = torch.as_tensor(t, device=device).reshape(-1).expand(n).long()
        return self.abar.to(device)[t]

    def base_eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """The fitted Gaussian's exact E[eps | x_t] at steps t (a number or (N,)), float64 inside."""
        abar = self._abar(t, x_t.shape[0], x_t.device)[:, None]
        sigma2 = 1 - abar
        r = x_t.double() - abar.sqrt() * self.base_mean.double()
        a, s2 = abar[:, :, None, None], sigma2[:, :, None, None]
        return self._spectral_apply(r, lambda v: (s2.sqrt() / (a * v + s2)).to(torch.complex128)).to(x_t.dtype)

    # ---- the network
    def check_step(self, t):
        latest = int(torch.as_tensor(t).max())
        if latest >= self.cfg.t_max:
            raise ValueError(f"the pixel prior was trained on steps t < {self.cfg.t_max}; step "
                             f"{latest} asked (an SNR below what it serves)")

    def residual_image(self, x_img: torch.Tensor, t) -> torch.Tensor:
        """r_theta on images (N, 3, h, w) of any size whose sides halve at every resolution but
        the last (multiples of 4 for mults (1, 2, 4)): a crop."""
        t = torch.as_tensor(t, device=x_img.device).reshape(-1).expand(x_img.shape[0])
        return self.unet(x_img, x_img.new_zeros(x_img.shape[0], 0, *x_img.shape[2:]), t)

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.cfg.dim:
            raise ValueError(f"expected images (N, {self.cfg.dim}), got {tuple(x_t.shape)}")
        self.check_step(t)
        residual = self.residual_image(x_t.reshape(-1, *self.cfg.image_shape), t).reshape(x_t.shape)
        return self.base_eps(x_t, t) + residual

    # ---- patches
    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C*H*W) channel-major -> (N, P, C*4*4): the 4x4 patches in raster order."""
        c, h, w = self.cfg.image_shape
        n = x.shape[0]
        x = x.reshape(n, c, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(n, self.cfg.tokens, c * PATCH * PATCH)

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        c, h, w = self.cfg.image_shape
        n = tokens.shape[0]
        x = tokens.reshape(n, h // PATCH, w // PATCH, c, PATCH, PATCH).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(n, c * h * w)


def to_pixels(images) -> torch.Tensor:
    """uint8 images (N, H, W, C) -> (N, C*H*W) channel-major in [-1, 1]: the prior's variable
    (what a pixel-space scheme sends)."""
    from ..core.data import to_tensor
    return (to_tensor(images) * 2 - 1).reshape(len(images), -1)


def from_pixels(x: torch.Tensor, image_shape=(3, 32, 32)):
    """to_pixels' inverse: uint8 images (N, H, W, C), rounded and clipped."""
    from ..core.data import to_uint8
    return to_uint8((x.float().cpu().reshape(-1, *image_shape) + 1) / 2)


def _link(model: PixelPrior, cfg, doc, weights):
    model.attach_schedule(schedule_from_data(doc["schedule"]))


register_kind(KIND, PixelPrior, PixelPriorConfig.from_dict, config_to_dict=PixelPriorConfig.to_dict,
              describe=lambda cfg: {"image_shape": list(cfg.image_shape), "t_max": cfg.t_max},
              check_schedule=schedule_from_data, link=_link)


def crop_eps(prior: PixelPrior, x: torch.Tensor, t, active: torch.Tensor, margin: int = 1,
             sides=(16, 24, 32)):
    """(eps (N, P, d) of the active patches (N, P) bool, pixels (h x w) the network ran on per
    image (N,)): the network runs on one square crop per
    image: the smallest side in `sides` (pixels) holding the active patches' bounding box grown
    by `margin` patches, placed inside the image; images with the same side go in one call.
    The base is exact everywhere; the network's output is read on active patches only (others
    are zero). Rows with no active patch take no call. t: one step, or one per image (N,).
    sides=(32,) (the image's side): the network on whole images, read on the active patches."""
    c, h, w = prior.cfg.image_shape
    grid_w = w // PATCH
    n = x.shape[0]
    images = x.reshape(n, c, h, w)
    out = torch.zeros(n, c, h, w, dtype=x.dtype, device=x.device)
    rows, cols = torch.div(torch.arange(prior.cfg.tokens, device=x.device), grid_w, rounding_mode="floor"), \
        torch.arange(prior.cfg.tokens, device=x.device) % grid_w
    steps = torch.as_tensor(t, device=x.device).reshape(-1).expand(n)
    depth = 2 ** (len(prior.cfg.unet.mults) - 1)   # a crop's side must halve that often
    plans, pixels = {}, torch.zeros(n)
    for i in torch.nonzero(active.any(1)).flatten().tolist():
        a = active[i]
        # the active patches' box grown by the margin, inside the image
        r0, r1 = max(int(rows[a].min()) - margin, 0), min(int(rows[a].max()) + margin + 1, h // PATCH)
        c0, c1 = max(int(cols[a].min()) - margin, 0), min(int(cols[a].max()) + margin + 1, grid_w)
        need = PATCH * max(r1 - r0, c1 - c0)
        side = next((s for s in sides if s >= need and s % depth == 0), max(h, w))
        side_h, side_w = min(side, h), min(side, w)
        top = min(max(PATCH * r0 + (PATCH * (r1 - r0) - side_h) // 2, 0), h - side_h)
        left = min(max(PATCH * c0 + (PATCH * (c1 - c0) - side_w) // 2, 0), w - side_w)
        top, left = top - top % PATCH, left - left % PATCH
        plans.setdefault((side_h, side_w), []).append((i, top, left))
        pixels[i] = side_h * side_w
    for (sh, sw), plan in plans.items():
        crops = torch.stack([images[i, :, tp:tp + sh, lf:lf + sw] for i, tp, lf in plan])
        res = prior.residual_image(crops, steps[[p[0] for p in plan]])
        for j, (i, tp, lf) in enumerate(plan):
            out[i, :, tp:tp + sh, lf:lf + sw] = res[j]
    eps = prior.base_eps(x, t) + out.reshape(n, -1)
    return torch.where(active[..., None], prior.to_tokens(eps), 0.0), pixels
