"""The one diffusion core of gr-semcom (GNU Radio-free, torch only).

- schedule.py: VP noise schedules, q(x_t | x_0), Tweedie estimates, the step whose noise
  level matches a channel's effective noise.
- samplers.py: DDPM/DDIM steps and a UniPC multistep predictor-corrector (bh1/bh2, order k,
  any start step). Samplers never call a network: callers pass model outputs (or a model
  function) in, so guidance and joint chains (ICDM) compose outside the sampler.
- guidance.py: ICDM's Gaussian-prior likelihood guidance for the joint (signal,
  interference) chains on the Lemma-1 observation xhat = A x + B i + C e, and the
  ablations' ways (PiGDM, DPS, projection).
- matched_start.py: a chain's start from the observation at the step matching its noise.
- icdm.py: the joint UniPC sampler of ICDM (guided predictor, unguided corrector).
- cddm.py: CDDM's sampler (signal prior only, from the matched step).
- dit.py: the small latent DiT used as a prior, its eps loss, and its checkpoints
  (trained by apps/train_prior.py).
"""
