r"""Noise for perturbation methods: sampling and score functions, shared by every smoother.

Perturbation-based methods (perturbed optimizers, Fenchel-Young losses, I-MLE) solve the
problem at perturbed costs $\theta + \sigma Z$ for i.i.d. noise $Z$ and need two things from
the noise distribution with density $p$: samples, and the score $\nu'(Z) = -\nabla \log p(Z)$
that turns $\mathbb{E}[x^\star(\theta + \sigma Z)]$ into a Jacobian estimate (Stein's lemma).

Two distributions are available (both standardised, i.e. scale 1):

- `"normal"`: $Z \sim \mathcal{N}(0, I)$, score $Z$.
- `"gumbel"`: $Z = -G$ for standard Gumbel $G$ (the *Gumbel-min* law, density
  $p(z) = \exp(z - e^{z})$), score $e^{Z} - 1$. With this sign, minimization over the
  simplex is the Gumbel-max trick: $P[x^\star(\theta + \sigma Z) = e_i] =
  \mathrm{softmax}(-\theta / \sigma)_i$. Its mean is $-\gamma \approx -0.577$, not 0.

Samples are drawn on the CPU in float64 (the oracles solve on the CPU anyway) from an
optional `torch.Generator`, so a seeded generator reproduces the same noise on any device.
"""

from __future__ import annotations

import torch

__all__ = ["NOISES", "check_noise", "noise_score", "perturb", "sample_noise"]

NOISES = ("normal", "gumbel")


def check_noise(noise: str) -> None:
    """Raise `ValueError` naming `noise` unless it is one of `NOISES`."""
    if noise not in NOISES:
        raise ValueError(f"`noise` must be one of {NOISES}; got {noise!r}.")


def sample_noise(
    shape: tuple[int, ...], noise: str = "normal", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw standard noise of the given shape, float64 on the CPU.

    Args:
        shape: output shape, usually `(n_samples, B, n)`.
        noise: `"normal"` or `"gumbel"` (Gumbel-min, see the module docstring).
        generator: optional `torch.Generator` (CPU or CUDA) for reproducible draws.

    Returns:
        `shape` float64 CPU tensor of samples.
    """
    check_noise(noise)
    device = generator.device if generator is not None else torch.device("cpu")
    if noise == "normal":
        z = torch.randn(shape, generator=generator, dtype=torch.float64, device=device)
    else:
        # Z = -G, G standard Gumbel: G = -log(E) with E ~ Exp(1), so Z = log(E).
        e = torch.empty(shape, dtype=torch.float64, device=device).exponential_(generator=generator)
        z = torch.log(e.clamp_min(torch.finfo(torch.float64).tiny))
    return z.cpu()


def noise_score(z: torch.Tensor, noise: str = "normal") -> torch.Tensor:
    r"""The score $\nu'(z) = -\nabla \log p(z)$ of the noise density, elementwise.

    Args:
        z: samples of any shape.
        noise: `"normal"` (score $z$) or `"gumbel"` (score $e^{z} - 1$).

    Returns:
        Tensor shaped like `z`.
    """
    check_noise(noise)
    if noise == "normal":
        return z
    return torch.expm1(z)


def perturb(
    costs: torch.Tensor,
    sigma: float,
    n_samples: int,
    noise: str = "normal",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Perturbed copies $\theta + \sigma Z_s$ of a batch of costs, ready for one oracle call.

    Args:
        costs: `(B, n)` float64 CPU costs $\theta$.
        sigma: noise scale $\sigma > 0$.
        n_samples: number of samples $S$.
        noise: `"normal"` or `"gumbel"`.
        generator: optional `torch.Generator`.

    Returns:
        `(perturbed, z)`, both `(S, B, n)`: `perturbed = costs + sigma * z`. Reshape
            `perturbed` to `(S * B, n)` to solve every sample of every item in one call.
    """
    z = sample_noise((n_samples, *costs.shape), noise, generator)
    return costs.unsqueeze(0) + sigma * z, z
