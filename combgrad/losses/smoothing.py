r"""Perturbed smoothing of the combinatorial losses: noise sampling and a `sigma` schedule.

With `sigma > 0`, [matching_loss][combgrad.losses.matching.matching_loss] and
[alignment_loss][combgrad.losses.alignment.alignment_loss] return the Monte-Carlo estimate of

$$F_\sigma(\theta) = \mathbb{E}_Z\bigl[\min_{x} (\theta + \sigma Z)^\top x\bigr]$$

(Berthet et al. 2020, "Learning with differentiable perturbed optimizers"), whose gradient
$\nabla F_\sigma(\theta) = \mathbb{E}_Z[x^\star(\theta + \sigma Z)]$ is estimated by the mean
of the perturbed minimizers. This module holds the two pieces the losses share: the noise
sampler and a schedule that anneals `sigma` to 0 (the exact loss).
"""

from __future__ import annotations

import math

import torch

from ..argmin._noise import sample_noise

__all__ = ["NOISES", "check_smoothing", "perturbation_noise", "sigma_schedule"]

NOISES = ("gumbel", "normal")
EULER_GAMMA = 0.5772156649015329
SCHEDULES = ("cosine", "linear", "geometric")


def check_smoothing(
    sigma: object, n_samples: object, noise: object, generator: object
) -> tuple[float, int]:
    """Validate the smoothing options; returns `(float(sigma), int(n_samples))`."""
    try:
        sigma_value = float(sigma)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"`sigma` must be a non-negative number; got {sigma!r}.") from exc
    if not math.isfinite(sigma_value) or sigma_value < 0.0:
        raise ValueError(f"`sigma` must be finite and >= 0; got {sigma_value}.")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int):
        raise TypeError(f"`n_samples` must be an int; got {type(n_samples).__name__}.")
    if n_samples < 1:
        raise ValueError(f"`n_samples` must be >= 1; got {n_samples}.")
    if noise not in NOISES:
        raise ValueError(f"`noise` must be one of {NOISES}; got {noise!r}.")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None; got {type(generator).__name__}."
        )
    return sigma_value, n_samples


def perturbation_noise(
    shape: tuple[int, ...],
    noise: str = "gumbel",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Centred noise $Z$ for perturbed smoothing, as a float64 CPU tensor of `shape`.

    - `"normal"`: $Z \sim \mathcal{N}(0, 1)$ entrywise.
    - `"gumbel"`: $Z = \gamma - G$ with $G$ a standard Gumbel variable and $\gamma$ the
      Euler-Mascheroni constant, so that $\mathbb{E}[Z] = 0$ (variance $\pi^2 / 6$). The sign
      makes the perturbed *minimizer* of a choice among $n$ costs $\theta_i$ follow
      $\operatorname{softmax}(-\theta / \sigma)$ (the Gumbel-max trick); with costs
      $-\log p_i$ and $\sigma = 1$ it picks $i$ with probability $p_i$.

    Centring changes neither the perturbed minimizers nor, for problems whose solutions
    all have the same number of ones (every complete matching), anything but a constant in
    the value; it makes $F_\sigma \le F_0$ (Jensen) and $F_\sigma \to F_0$ as $\sigma \to 0$.

    Args:
        shape: the shape of the draw.
        noise: `"gumbel"` or `"normal"`.
        generator: a `torch.Generator` for reproducible draws (on any device; the draw is
            made on the generator's device and moved to the CPU).

    Returns:
        `shape` float64 tensor on the CPU.
    """
    z = sample_noise(shape, noise, generator)  # "gumbel" there: -G, the uncentred draw
    return z.add_(EULER_GAMMA) if noise == "gumbel" else z


def sigma_schedule(
    step: int,
    total_steps: int,
    start: float,
    *,
    end: float = 0.0,
    kind: str = "cosine",
) -> float:
    r"""Noise scale at `step` of a schedule that anneals `sigma` from `start` to `end`.

    With $t = \min(\text{step} / \text{total\_steps}, 1)$:

    - `"cosine"`: $\sigma = e + (s - e)\,(1 + \cos \pi t) / 2$;
    - `"linear"`: $\sigma = s + (e - s)\, t$;
    - `"geometric"`: $\sigma = s\,(e / s)^t$ (needs `end > 0`).

    After `total_steps` it stays at `end`. With `end = 0` (the default) the loss is the
    exact loss from then on.

    Args:
        step: the current step (>= 0).
        total_steps: steps over which to anneal (>= 1).
        start: the initial `sigma` (>= 0).
        end: the final `sigma` (>= 0).
        kind: `"cosine"`, `"linear"` or `"geometric"`.

    Returns:
        The `sigma` to use at `step`.

    Examples:
        ```python
        import torch
        from combgrad.losses import MatchingLoss, sigma_schedule

        loss_fn = MatchingLoss(sigma=1.0)
        for step in range(100):
            loss_fn.sigma = sigma_schedule(step, 80, start=1.0)   # exact after step 80
            log_probs = torch.randn(4, 5, 10, requires_grad=True).log_softmax(-1)
            loss_fn(log_probs, torch.randint(0, 10, (4, 5))).backward()
        ```
    """
    if kind not in SCHEDULES:
        raise ValueError(f"`kind` must be one of {SCHEDULES}; got {kind!r}.")
    if total_steps < 1:
        raise ValueError(f"`total_steps` must be >= 1; got {total_steps}.")
    if step < 0:
        raise ValueError(f"`step` must be >= 0; got {step}.")
    if not (math.isfinite(start) and start >= 0.0):
        raise ValueError(f"`start` must be finite and >= 0; got {start}.")
    if not (math.isfinite(end) and end >= 0.0):
        raise ValueError(f"`end` must be finite and >= 0; got {end}.")
    t = min(step / total_steps, 1.0)
    if kind == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))
    if kind == "linear":
        return start + (end - start) * t
    if end <= 0.0 or start <= 0.0:
        raise ValueError(f"`kind='geometric'` needs start > 0 and end > 0; got {start}, {end}.")
    return start * (end / start) ** t
