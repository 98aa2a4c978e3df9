r"""Robust information bottleneck: IB objective plus a Fisher-information penalty.

Pensia, Jog & Loh, "Extracting robust and accurate features via Robust Information
Bottleneck", IEEE JSAIT 1(1), 2020 (arXiv 1910.06893).

The robust IB adds to the information bottleneck a penalty on the statistical Fisher
information of the features $T$ "parametrized by the inputs",

$$
\Phi(T \mid X) = \mathbb{E}_{x}\, \mathbb{E}_{t \sim p(t \mid x)}
    \big\| \nabla_x \log p(t \mid x) \big\|^2 ,
$$

so that small changes of $x$ move the distribution of $T$ little. The problem
$\min_{p(t|x)} -I(Y;T) + \beta I(X;T) + \alpha \Phi(T|X)$ is trained here in the
variational (VIB) form, with a stochastic encoder
$p(t \mid x) = \mathcal{N}(\mu(x), \operatorname{diag}(\sigma^2))$, a decoder
$q(y \mid t)$ and the prior $r(t) = \mathcal{N}(0, I)$:

$$
\mathcal{L} = \mathbb{E}\big[-\log q(y \mid t)\big]
    + \beta\, \mathbb{E}_x \operatorname{KL}\big(p(t \mid x) \,\|\, r(t)\big)
    + \alpha\, \mathbb{E}_x \sum_k \frac{\|\nabla_x \mu_k(x)\|^2}{\sigma_k^2}.
$$

For a Gaussian with input-independent covariance,
$\nabla_x \log p(t|x) = J_\mu(x)^\top \Sigma^{-1} (t - \mu(x))$, whose expected squared
norm is $\operatorname{tr}(J_\mu^\top \Sigma^{-1} J_\mu)$: the last term is exactly
$\Phi(T|X)$. It is computed

* exactly (`fisher="exact"`), with one backward pass per feature dimension (the default when
  `dim t <= max_exact_dim`), or
* by a Hutchinson estimate (`fisher="hutchinson"`): for Rademacher $v$ (independent
  entries $\pm 1$), $\mathbb{E}_v \|J_\mu^\top \Sigma^{-1/2} v\|^2 =
  \operatorname{tr}(J_\mu^\top \Sigma^{-1} J_\mu)$, one backward pass per probe, unbiased for
  any number of probes; or
* by the score-function definition (`fisher="monte_carlo"`): draw $t \sim p(t|x)$ and
  average $\|\nabla_x \log p(t|x)\|^2$; also unbiased, with more variance.

All three are differentiable (`create_graph=True`), so the penalty trains the encoder by double
backward.

Note:
    The paper's exact placement of the multipliers and its experimental settings could not be
    checked (no public code); the variational form above is derived from the stated objective.
    The Fisher identity holds when $\sigma$ does not depend on $x$; a learned,
    input-dependent scale would add the Fisher information of the scale, which is not
    implemented. The encoder must treat samples independently (no batch-norm in training mode),
    because per-sample Jacobians are read from the gradient of a batch sum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from .._compile import eager_under_compile

__all__ = [
    "RobustIBLoss",
    "RobustIBTerms",
    "fisher_information_penalty",
    "gaussian_kl_to_standard_normal",
    "robust_ib_loss",
    "score_fisher_information",
]

FisherMethod = Literal["auto", "exact", "hutchinson", "monte_carlo"]
_METHODS = ("auto", "exact", "hutchinson", "monte_carlo")


class RobustIBTerms(NamedTuple):
    """The loss and its parts (each a scalar tensor averaged over the batch)."""

    loss: Tensor
    cross_entropy: Tensor
    kl: Tensor
    fisher: Tensor


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_input(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() < 1 or value.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty batch (n, ...), got shape {value.shape}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"`{name}` must contain only finite values (found NaN or inf)")
    return value


def _check_sigma(sigma: float | Tensor) -> float | Tensor:
    if isinstance(sigma, Tensor):
        if sigma.dim() > 1 or not bool(torch.isfinite(sigma).all()) or not bool((sigma > 0).all()):
            raise ValueError(
                "Invalid sigma: must be a positive finite float or a 1-D tensor of positive "
                f"finite values (one per feature), got {sigma}"
            )
        return sigma
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"Invalid sigma: {sigma}")
    return float(sigma)


def _check_nonnegative(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"Invalid {name}: {value}")
    return float(value)


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"`fisher` must be one of {_METHODS}, got {method!r}")


def _check_mean(mu: Tensor, n: int, sigma: float | Tensor) -> None:
    if mu.dim() != 2 or mu.shape[0] != n:
        raise ValueError(
            f"the encoder must return means of shape (n, dim_t) = ({n}, dim_t), "
            f"got {tuple(mu.shape)}"
        )
    if isinstance(sigma, Tensor) and sigma.dim() == 1 and sigma.shape[0] != mu.shape[1]:
        raise ValueError(
            f"`sigma` has {sigma.shape[0]} entries but the features have dim_t = {mu.shape[1]}"
        )


def _requires_grad_input(x: Tensor) -> Tensor:
    """A leaf copy of `x` that autograd can differentiate with respect to."""
    return x.detach().requires_grad_(True)


# --------------------------------------------------------------------------------------------
# Fisher information
# --------------------------------------------------------------------------------------------
def _random(
    sampler: Callable[..., Tensor],
    like: Tensor,
    generator: torch.Generator | None,
    *args: int,
    shape: tuple[int, ...] | None = None,
) -> Tensor:
    """Draw on the generator's device (or `like`'s without one), return on `like`'s."""
    device = generator.device if generator is not None else like.device
    out = sampler(*args, shape or like.shape, generator=generator, device=device,
                  dtype=like.dtype)  # fmt: skip
    return out.to(like.device)


@eager_under_compile
def _call_eagerly(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return fn(x)


def _per_sample_sq_norm(g: Tensor) -> Tensor:
    return g.pow(2).reshape(g.shape[0], -1).sum(dim=1)


@eager_under_compile  # double backward: not through aot_autograd (torch.compile)
def _fisher_from_mean(
    mu: Tensor,
    x: Tensor,
    sigma: float | Tensor,
    *,
    method: FisherMethod,
    num_probes: int,
    max_exact_dim: int,
    probes: Tensor | None,
    generator: torch.Generator | None,
    create_graph: bool,
) -> Tensor:
    """Per-sample `sum_k ||d mu_k / dx||^2 / sigma_k^2`, shape `(n,)`."""
    n, dim_t = mu.shape
    inv_sigma = (1.0 / torch.as_tensor(sigma, dtype=mu.dtype, device=mu.device)).expand(dim_t)
    if method == "auto":
        method = "exact" if dim_t <= max_exact_dim else "hutchinson"

    if method == "exact":
        # mu[i, k] depends on x[i] only, so the gradient of the column sum mu[:, k].sum() holds
        # every sample's row k of the Jacobian at once: dim_t backward passes in all, batched
        # into one vmapped backward when every op supports it.
        basis = torch.eye(dim_t, dtype=mu.dtype, device=mu.device) * inv_sigma[:, None]
        basis = basis.unsqueeze(1).expand(dim_t, n, dim_t)
        try:
            (g,) = torch.autograd.grad(
                mu, x, basis, is_grads_batched=True, create_graph=create_graph, retain_graph=True
            )
            return g.pow(2).reshape(dim_t, n, -1).sum(dim=(0, 2))
        except RuntimeError:  # an op without a batching rule for its backward
            total = mu.new_zeros(n)
            for k in range(dim_t):
                (g,) = torch.autograd.grad(
                    mu, x, basis[k], create_graph=create_graph, retain_graph=True
                )
                total = total + _per_sample_sq_norm(g)
            return total

    if probes is not None:
        if probes.shape[1:] != mu.shape:
            raise ValueError(
                f"`probes` must have shape (num_probes, {n}, {dim_t}), got {tuple(probes.shape)}"
            )
        num_probes = probes.shape[0]
    total = mu.new_zeros(n)
    for p in range(num_probes):
        if probes is not None:
            v = probes[p].to(mu)
        elif method == "hutchinson":
            v = _random(torch.randint, mu, generator, 0, 2) * 2 - 1
        else:  # monte_carlo: t - mu = sigma * eps, score = J^T (t - mu) / sigma^2
            v = _random(torch.randn, mu, generator)
        # Hutchinson: ||J^T diag(1/sigma) v||^2 with Rademacher v;
        # Monte Carlo: ||J^T diag(1/sigma^2) (t - mu)||^2 = ||J^T diag(1/sigma) eps||^2.
        (g,) = torch.autograd.grad(
            (mu * (v * inv_sigma)).sum(), x, create_graph=create_graph, retain_graph=True
        )
        total = total + _per_sample_sq_norm(g)
    return total / num_probes


@eager_under_compile  # double backward: not through aot_autograd (torch.compile)
def fisher_information_penalty(
    encoder_mean: Callable[[Tensor], Tensor],
    x: Tensor,
    sigma: float | Tensor = 1.0,
    *,
    method: FisherMethod = "auto",
    num_probes: int = 1,
    max_exact_dim: int = 16,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
    create_graph: bool = True,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> Tensor:
    r"""Fisher information $\Phi(T|X)$ of a Gaussian encoder with input-free covariance.

    For $p(t \mid x) = \mathcal{N}(\mu(x), \operatorname{diag}(\sigma^2))$,
    $\mathbb{E}_t\|\nabla_x \log p(t|x)\|^2 = \sum_k \|\nabla_x \mu_k(x)\|^2/\sigma_k^2$.

    Args:
        encoder_mean: maps a batch `(n, ...)` to means `(n, dim_t)`, each row depending only
            on its own input.
        x: inputs, shape `(n, ...)`.
        sigma: noise scale, a positive float or a tensor `(dim_t,)` (one per feature).
        method: `"exact"` (`dim_t` backward passes), `"hutchinson"` (Rademacher probes,
            unbiased), `"monte_carlo"` (sampled score, unbiased) or `"auto"` (exact when
            `dim_t <= max_exact_dim`, else Hutchinson).
        num_probes: probes per sample for the stochastic methods.
        max_exact_dim: threshold of `"auto"`.
        probes: optional explicit probe vectors `(num_probes, n, dim_t)` for the stochastic
            methods (`v` for Hutchinson, `eps` with `t = mu + sigma * eps` for Monte Carlo).
        generator: random generator for the probes.
        create_graph: keep the graph so the penalty can be back-propagated (for training).
        reduction: `"mean"` or `"sum"` over the batch, or `"none"` for shape `(n,)`.

    Returns:
        The penalty: a scalar, or shape `(n,)` with `reduction="none"`.
    """
    x = _check_input("x", x)
    sigma = _check_sigma(sigma)
    _check_method(method)
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"`num_probes` must be a positive int, got {num_probes}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}")
    x_leaf = _requires_grad_input(x)
    with torch.enable_grad():
        mu = encoder_mean(x_leaf)
        _check_mean(mu, x.shape[0], sigma)
        per_sample = _fisher_from_mean(
            mu,
            x_leaf,
            sigma,
            method=method,
            num_probes=num_probes,
            max_exact_dim=max_exact_dim,
            probes=probes,
            generator=generator,
            create_graph=create_graph,
        )
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


@eager_under_compile  # double backward: not through aot_autograd (torch.compile)
def score_fisher_information(
    log_prob: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor
) -> Tensor:
    r"""Monte-Carlo Fisher information $\frac1n \sum_i \|\nabla_x \log p(t_i \mid x_i)\|^2$.

    The definition of $\Phi(T|X)$ for any differentiable encoder density: with
    $t_i \sim p(\cdot \mid x_i)$ it is an unbiased estimate. Use it to check a closed form
    or for encoders that are not isotropic Gaussians.

    Args:
        log_prob: `log_prob(t, x) -> (n,)`, the log-density of each `t[i]` given `x[i]`.
        x: inputs, shape `(n, ...)`.
        t: samples, shape `(n, ...)`, drawn from the encoder (treated as constants).

    Returns:
        Scalar tensor (no graph is kept).
    """
    x = _check_input("x", x)
    t = _check_input("t", t)
    if t.shape[0] != x.shape[0]:
        raise ValueError(f"`x` and `t` must have the same length, got {x.shape[0]}, {t.shape[0]}")
    x_leaf = _requires_grad_input(x)
    with torch.enable_grad():
        lp = log_prob(t.detach(), x_leaf)
        if lp.shape != (x.shape[0],):
            raise ValueError(f"`log_prob` must return shape ({x.shape[0]},), got {lp.shape}")
        (score,) = torch.autograd.grad(lp.sum(), x_leaf)
    return _per_sample_sq_norm(score).mean().detach()


# --------------------------------------------------------------------------------------------
# the loss
# --------------------------------------------------------------------------------------------
def gaussian_kl_to_standard_normal(mu: Tensor, sigma: float | Tensor) -> Tensor:
    r"""Per-sample $\operatorname{KL}(\mathcal{N}(\mu, \operatorname{diag}\sigma^2) \|
    \mathcal{N}(0, I)) = \tfrac12 \sum_k (\sigma_k^2 + \mu_k^2 - 1 - \log \sigma_k^2)$.

    Args:
        mu: means, shape `(n, dim_t)`.
        sigma: positive float or tensor `(dim_t,)`.

    Returns:
        Shape `(n,)`.
    """
    var = torch.as_tensor(sigma, dtype=mu.dtype, device=mu.device).pow(2).expand(mu.shape[1])
    return 0.5 * (var + mu.pow(2) - 1.0 - var.log()).sum(dim=1)


def robust_ib_loss(
    encoder_mean: Callable[[Tensor], Tensor],
    decoder: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    sigma: float | Tensor = 1.0,
    beta: float = 1e-3,
    alpha: float = 0.0,
    fisher: FisherMethod = "auto",
    num_probes: int = 1,
    max_exact_dim: int = 16,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    return_terms: bool = False,
) -> Tensor | RobustIBTerms:
    r"""Robust IB loss $\mathrm{CE} + \beta\,\mathrm{KL} + \alpha\,\Phi$ (batch mean).

    The features are sampled by reparameterisation, $t = \mu(x) + \sigma \odot \epsilon$,
    `num_samples` times per input; the decoder returns class logits and the relevance term is
    their cross-entropy. With `alpha = 0` this is the variational information bottleneck.

    Args:
        encoder_mean: maps `x` `(n, ...)` to means `(n, dim_t)`.
        decoder: maps features `(m, dim_t)` to logits `(m, n_classes)`.
        x: inputs, shape `(n, ...)`.
        y: class indices, shape `(n,)`.
        sigma: encoder noise scale (float or `(dim_t,)`), fixed (not a function of `x`).
        beta: weight of the KL (compression) term, `>= 0`.
        alpha: weight of the Fisher-information (robustness) term, `>= 0`.
        fisher: how $\Phi$ is computed, see [`fisher_information_penalty`][combgrad.losses.fisher_information_penalty].
        num_probes: probes for the stochastic Fisher estimates.
        max_exact_dim: `fisher="auto"` is exact up to this feature dimension.
        num_samples: feature samples per input for the cross-entropy.
        generator: random generator for the feature noise and the probes.
        return_terms: return a [`RobustIBTerms`][combgrad.losses.RobustIBTerms] instead of the scalar loss.

    Returns:
        Scalar loss, or [`RobustIBTerms`][combgrad.losses.RobustIBTerms].
    """
    x = _check_input("x", x)
    y = _check_input("y", y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"`y` must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    sigma = _check_sigma(sigma)
    beta = _check_nonnegative("beta", beta)
    alpha = _check_nonnegative("alpha", alpha)
    _check_method(fisher)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples}")
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"`num_probes` must be a positive int, got {num_probes}")

    x_in = _requires_grad_input(x) if alpha > 0 else x
    grad_enabled = torch.is_grad_enabled()
    # The penalty differentiates mu with respect to x, so mu needs a graph even when the loss
    # is only evaluated (under torch.no_grad()); the graph is then not kept.
    with torch.set_grad_enabled(grad_enabled or alpha > 0):
        # The penalty trains the encoder by double backward, which graphs compiled by
        # aot_autograd do not support: under torch.compile the encoder then runs eagerly.
        mu = _call_eagerly(encoder_mean, x_in) if alpha > 0 else encoder_mean(x_in)
    _check_mean(mu, x.shape[0], sigma)
    n, dim_t = mu.shape
    scale = torch.as_tensor(sigma, dtype=mu.dtype, device=mu.device).expand(dim_t)
    noise = _random(torch.randn, mu, generator, shape=(num_samples, n, dim_t))
    t = (mu.unsqueeze(0) + scale * noise).reshape(num_samples * n, dim_t)
    logits = decoder(t)
    cross_entropy = nn.functional.cross_entropy(logits, y.repeat(num_samples))
    kl = gaussian_kl_to_standard_normal(mu, sigma).mean()
    if alpha > 0:
        with torch.enable_grad():
            fisher_term = _fisher_from_mean(
                mu,
                x_in,
                sigma,
                method=fisher,
                num_probes=num_probes,
                max_exact_dim=max_exact_dim,
                probes=None,
                generator=generator,
                create_graph=grad_enabled,
            ).mean()
        if not grad_enabled:
            fisher_term = fisher_term.detach()
    else:
        fisher_term = mu.new_zeros(())
    loss = cross_entropy + beta * kl + alpha * fisher_term
    if return_terms:
        return RobustIBTerms(loss, cross_entropy, kl, fisher_term)
    return loss


class RobustIBLoss(nn.Module):
    r"""Robust information bottleneck loss (Pensia, Jog & Loh, 2020) as a module.

    $$
    \mathcal{L} = \mathbb{E}[-\log q(y \mid t)]
        + \beta\, \operatorname{KL}\big(\mathcal{N}(\mu(x), \sigma^2 I) \,\|\, \mathcal{N}(0, I)\big)
        + \alpha\, \sum_k \|\nabla_x \mu_k(x)\|^2 / \sigma_k^2,
    $$

    the last term being the Fisher information
    $\mathbb{E}\|\nabla_x \log p(t|x)\|^2$ of the encoder. It is exact for
    `dim t <= max_exact_dim` and an unbiased Hutchinson estimate beyond (`fisher="auto"`);
    see `combgrad.losses.robust_ib` for the derivation.

    Args:
        sigma: encoder noise scale, positive float or tensor `(dim_t,)`.
        beta: weight of the KL term (`>= 0`).
        alpha: weight of the Fisher penalty (`>= 0`); 0 gives the VIB.
        fisher: `"auto"`, `"exact"`, `"hutchinson"` or `"monte_carlo"`.
        num_probes: probes for the stochastic estimates.
        max_exact_dim: feature dimension up to which `"auto"` is exact.
        num_samples: feature samples per input for the cross-entropy.

    Example:
        ```python
        import torch
        from combgrad.losses import RobustIBLoss

        enc, dec = torch.nn.Linear(64, 8), torch.nn.Linear(8, 10)
        criterion = RobustIBLoss(sigma=0.5, beta=1e-3, alpha=0.1)
        loss = criterion(enc, dec, torch.randn(32, 64), torch.randint(0, 10, (32,)))
        loss.backward()
        ```
    """

    def __init__(
        self,
        sigma: float | Tensor = 1.0,
        beta: float = 1e-3,
        alpha: float = 0.0,
        *,
        fisher: FisherMethod = "auto",
        num_probes: int = 1,
        max_exact_dim: int = 16,
        num_samples: int = 1,
    ) -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma)
        self.beta = _check_nonnegative("beta", beta)
        self.alpha = _check_nonnegative("alpha", alpha)
        _check_method(fisher)
        self.fisher = fisher
        if not isinstance(num_probes, int) or num_probes < 1:
            raise ValueError(f"`num_probes` must be a positive int, got {num_probes}")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive int, got {num_samples}")
        self.num_probes = num_probes
        self.max_exact_dim = max_exact_dim
        self.num_samples = num_samples

    def forward(
        self,
        encoder_mean: Callable[[Tensor], Tensor],
        decoder: Callable[[Tensor], Tensor],
        x: Tensor,
        y: Tensor,
        *,
        generator: torch.Generator | None = None,
        return_terms: bool = False,
    ) -> Tensor | RobustIBTerms:
        """Loss of a batch; see [`robust_ib_loss`][combgrad.losses.robust_ib_loss] for the arguments."""
        return robust_ib_loss(
            encoder_mean,
            decoder,
            x,
            y,
            sigma=self.sigma,
            beta=self.beta,
            alpha=self.alpha,
            fisher=self.fisher,
            num_probes=self.num_probes,
            max_exact_dim=self.max_exact_dim,
            num_samples=self.num_samples,
            generator=generator,
            return_terms=return_terms,
        )

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, beta={self.beta}, alpha={self.alpha}, fisher={self.fisher!r}"
