"""CDiff's conditional diffusion process (GNU Radio-free maths; ../shared/papers/cdiff.md §2).

A CDiffuSE-style bridge from the clean image x0 (in [-1, 1]) towards the condition y (the
zero-padded, reshaped received latent), with t = 1..T (index t-1 in the tensors below):

    q(x_t | x0, y)      = N( (1 - w_t) sqrt(abar_t) x0 + w_t sqrt(abar_t) y , delta_t I )
    delta_t             = (1 - abar_t) - w_t^2 abar_t
    q(x_t | x_s, y)     = N( r x_s + d_y y , delta_{t|s} I )     for s < t, with
        r               = (1 - w_t) sqrt(abar_t) / ((1 - w_s) sqrt(abar_s))
        d_y             = w_t sqrt(abar_t) - r w_s sqrt(abar_s)
        delta_{t|s}     = delta_t - r^2 delta_s
    (s = t - 1 is the spec's one-step kernel: r = d_x = (1-w_t)/(1-w_{t-1}) sqrt(alpha_t).)

The reverse step from t to s < t is the Gaussian posterior q(x_s | x_t, x0 = x0_hat, y):

    mean = (delta_{t|s} / delta_t) m_s(x0_hat) + (r delta_s / delta_t) (x_t - d_y y),
    var  = delta_{t|s} delta_s / delta_t,
    m_s(x0) = (1 - w_s) sqrt(abar_s) x0 + w_s sqrt(abar_s) y        (m_0 = x0, delta_0 = 0).

With s = t - 1 this is the spec's x0-form of the paper's eq. 7 (the corrected coefficients:
sqrt(abar_{t-1}) in psi_y, sqrt(1 - abar_t) in psi_eps, and the posterior variance
delta_{t|t-1} delta_{t-1} / delta_t, not the printed sqrt(delta_t)); `eps_form_step` is the
paper's psi form, kept so a test can show the two agree. With fewer steps (a subsequence of
1..T) the same formula skips ahead (`sampler="ddpm"`), or the deterministic DDIM form on the
same process x_s = m_s(x0_hat) + sqrt(delta_s) eps_hat, eps_hat = (x_t - m_t(x0_hat)) / sqrt(delta_t)
(`sampler="ddim"`): the fast samplers, whose quality cost the benchmark measures.

Start: w_T = 1, so x_T = sqrt(abar_T) y + sqrt(delta_T) eps; at t = 1 the output is x0_hat.
The network predicts x0 (the paper's x0-MSE loss); its eps is eq. 8's
eps = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t).

Schedules: the paper's T = 200, beta linear 1e-4..0.0095; the CPU default T = 100, beta linear
2e-4..0.019 (spec §5.4); w_t = t / T. Every delta and every skip's delta_{t|s} must be > 0:
the constructor checks the one-step ones and `check_steps` any subsequence (T = 50 with a linear
w_t fails, as the spec warns).
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import torch

# (T, beta_start, beta_end): the paper's and the CPU module's
PAPER_SCHEDULE = (200, 1e-4, 0.0095)
CPU_SCHEDULE = (100, 2e-4, 0.019)


@dataclass(frozen=True)
class CDiffSchedule:
    betas: torch.Tensor   # (T,) float64, beta_1..beta_T
    w: torch.Tensor       # (T,) float64, w_1..w_T (w_T = 1)

    @classmethod
    def linear(cls, steps: int = CPU_SCHEDULE[0], beta_start: float = CPU_SCHEDULE[1],
               beta_end: float = CPU_SCHEDULE[2]) -> "CDiffSchedule":
        """Linear betas and w_t = t / T."""
        if steps < 2:
            raise ValueError(f"need at least 2 steps, got {steps}")
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        w = torch.arange(1, steps + 1, dtype=torch.float64) / steps
        return cls(betas, w)

    def __post_init__(self):
        if self.betas.shape != self.w.shape or self.betas.ndim != 1:
            raise ValueError("betas and w must be two (T,) tensors")
        if not ((self.betas > 0) & (self.betas < 1)).all():
            raise ValueError("betas must lie in (0, 1)")
        self.check_steps(list(range(1, self.num_steps + 1)))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas, 0)

    # -- per-step scalars, t in 0..T (0: the clean image) ------------------------------
    def abar(self, t: int) -> float:
        return 1.0 if t == 0 else float(self.alphas_cumprod[t - 1])

    def w_at(self, t: int) -> float:
        return 0.0 if t == 0 else float(self.w[t - 1])

    def delta(self, t: int) -> float:
        return (1 - self.abar(t)) - self.w_at(t) ** 2 * self.abar(t)

    def mean_coefs(self, t: int):
        """(a, b): the marginal mean is a x0 + b y."""
        s = self.abar(t) ** 0.5
        return (1 - self.w_at(t)) * s, self.w_at(t) * s

    def kernel(self, t: int, s: int):
        """(r, d_y, delta_{t|s}) of q(x_t | x_s, y), s < t."""
        if not 0 <= s < t <= self.num_steps:
            raise ValueError(f"need 0 <= s < t <= T, got s={s}, t={t}")
        a_t, b_t = self.mean_coefs(t)
        a_s, b_s = self.mean_coefs(s)
        r = a_t / a_s
        return r, b_t - r * b_s, self.delta(t) - r * r * self.delta(s)

    def check_steps(self, steps: Sequence[int]):
        """Raise ValueError unless every delta_t and every delta_{t|s} of the descending chain
        through `steps` (ascending, within 1..T) is > 0."""
        steps = list(steps)
        if not steps or steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] > self.num_steps:
            raise ValueError(f"steps must be ascending, distinct, within 1..{self.num_steps}, got {steps}")
        for s, t in zip([0] + steps[:-1], steps):
            if not self.delta(t) > 0:
                raise ValueError(f"delta_{t} = {self.delta(t):.3g} <= 0: this schedule and w_t are inconsistent")
            if not self.kernel(t, s)[2] > 0:
                raise ValueError(f"delta_({t}|{s}) = {self.kernel(t, s)[2]:.3g} <= 0: the chain cannot step {t} -> {s}")

    def timesteps(self, steps: Optional[int] = None) -> List[int]:
        """`steps` evenly spaced steps from 1 to T (all T by default), ascending."""
        n = self.num_steps if steps is None else int(steps)
        if not 1 <= n <= self.num_steps:
            raise ValueError(f"steps must be in 1..{self.num_steps}, got {steps}")
        if n == 1:
            return [self.num_steps]
        out = sorted({round(1 + i * (self.num_steps - 1) / (n - 1)) for i in range(n)})
        self.check_steps(out)
        return out

    # -- training and sampling ---------------------------------------------------------
    def marginal_table(self) -> torch.Tensor:
        """(3, T+1) float64: a_t, b_t (the mean's coefficients of x0 and y) and sqrt(delta_t), t = 0..T."""
        abar = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod])
        w = torch.cat([torch.zeros(1, dtype=torch.float64), self.w])
        root = abar.sqrt()
        return torch.stack([(1 - w) * root, w * root, ((1 - abar) - w.square() * abar).clamp_min(0).sqrt()])

    def q_sample(self, x0: torch.Tensor, y: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = (1 - w_t) sqrt(abar_t) x0 + w_t sqrt(abar_t) y + sqrt(delta_t) eps, t (N,) in 1..T."""
        t = torch.as_tensor(t, dtype=torch.long)
        if t.ndim != 1 or len(t) != len(x0) or int(t.min()) < 1 or int(t.max()) > self.num_steps:
            raise ValueError(f"t must be (N,) steps in 1..{self.num_steps}")
        a, b, d = (row[t].to(x0).view(-1, *([1] * (x0.ndim - 1))) for row in self.marginal_table())
        return a * x0 + b * y + d * eps

    def start(self, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_T = sqrt(abar_T) y + sqrt(delta_T) eps (w_T = 1)."""
        t = self.num_steps
        a, b = self.mean_coefs(t)
        if abs(a) > 1e-12:
            raise ValueError(f"w_T must be 1 for the chain to start from y alone (got w_T = {self.w_at(t)})")
        return b * y + self.delta(t) ** 0.5 * eps

    def step(self, x_t: torch.Tensor, x0_hat: torch.Tensor, y: torch.Tensor, t: int, s: int,
             noise: Optional[torch.Tensor], sampler: str = "ddpm") -> torch.Tensor:
        """One reverse step t -> s < t given the network's x0_hat: the posterior mean plus
        sqrt(var) noise ("ddpm"; noise None gives the mean), or the deterministic "ddim" step.
        At s = 0 the result is x0_hat."""
        if s == 0:
            return x0_hat
        r, d_y, d_ts = self.kernel(t, s)
        a_s, b_s = self.mean_coefs(s)
        m_s = a_s * x0_hat + b_s * y
        if sampler == "ddim":
            a_t, b_t = self.mean_coefs(t)
            eps_hat = (x_t - a_t * x0_hat - b_t * y) / self.delta(t) ** 0.5
            return m_s + self.delta(s) ** 0.5 * eps_hat
        if sampler != "ddpm":
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        d_t, d_s = self.delta(t), self.delta(s)
        mean = (d_ts / d_t) * m_s + (r * d_s / d_t) * (x_t - d_y * y)
        if noise is None:
            return mean
        return mean + (d_ts * d_s / d_t) ** 0.5 * noise

    def posterior_var(self, t: int, s: int) -> float:
        d_ts = self.kernel(t, s)[2]
        return 0.0 if s == 0 else d_ts * self.delta(s) / self.delta(t)

    def eps_from_x0(self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int) -> torch.Tensor:
        """Eq. 8: eps = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t)."""
        return (x_t - self.abar(t) ** 0.5 * x0_hat) / (1 - self.abar(t)) ** 0.5

    def eps_form_step(self, x_t: torch.Tensor, eps: torch.Tensor, y: torch.Tensor, t: int,
                      noise: Optional[torch.Tensor]) -> torch.Tensor:
        """The paper's eq. 7 with the spec's corrected coefficients (one step t -> t-1):
        x_{t-1} = psi_x x_t + psi_y y - psi_eps eps + sqrt(var) z."""
        if t < 2:
            raise ValueError("the eps form is for t >= 2 (t = 1 outputs x0_hat)")
        w_t, w_p = self.w_at(t), self.w_at(t - 1)
        alpha_t = 1 - float(self.betas[t - 1])
        d_t, d_p = self.delta(t), self.delta(t - 1)
        d_tp = self.kernel(t, t - 1)[2]
        ratio = (1 - w_t) / (1 - w_p)
        psi_x = ratio * (d_p / d_t) * alpha_t ** 0.5 + (1 - w_p) * d_tp / (d_t * alpha_t ** 0.5)
        psi_y = (w_p * d_t - w_t * ratio * alpha_t * d_p) * self.abar(t - 1) ** 0.5 / d_t
        psi_eps = (1 - w_p) * (d_tp / d_t) * (1 - self.abar(t)) ** 0.5 / alpha_t ** 0.5
        out = psi_x * x_t + psi_y * y - psi_eps * eps
        return out if noise is None else out + self.posterior_var(t, t - 1) ** 0.5 * noise


def sample(schedule: CDiffSchedule, predict_x0: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
           y: torch.Tensor, steps: Optional[int] = None, sampler: str = "ddpm",
           generator: Optional[torch.Generator] = None, clamp: bool = True) -> torch.Tensor:
    """Run the reverse chain from x_T (drawn from y) through `steps` evenly spaced steps (all T
    by default; NFE = steps): predict_x0(x_t, y, t) gives the network's x0 estimate of x_t at
    step t (an int); x0 estimates are clamped to [-1, 1] (`clamp`), as CDiffuSE does. Returns
    x0_hat of the last step."""
    ts = schedule.timesteps(steps)
    g = generator
    x = schedule.start(y, torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device))
    for i in range(len(ts) - 1, -1, -1):
        t, s = ts[i], (ts[i - 1] if i > 0 else 0)
        x0 = predict_x0(x, y, t)
        if clamp:
            x0 = x0.clamp(-1, 1)
        noise = None if s == 0 or sampler == "ddim" else torch.randn(y.shape, generator=g, dtype=y.dtype, device=y.device)
        x = schedule.step(x, x0, y, t, s, noise, sampler)
    return x
