"""Tests of combgrad.losses.robust_ib (Pensia, Jog & Loh, robust information bottleneck)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
import torch
from torch import nn

from combgrad.losses.robust_ib import (
    RobustIBLoss,
    fisher_information_penalty,
    gaussian_kl_to_standard_normal,
    robust_ib_loss,
    score_fisher_information,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "robust_ib_digits.py"
DTYPE = torch.float64
MC_RTOL = 0.02  # the tolerance for Monte-Carlo estimates of the closed form
EXACT_TOL = 1e-10


def _tanh_encoder(d_in: int = 5, dim_t: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 7), nn.Tanh(), nn.Linear(7, dim_t)).to(DTYPE)


def _jacobian_sq_norms(encoder: nn.Module, x: torch.Tensor, inv_var: torch.Tensor):
    """sum_k ||d mu_k / dx||^2 / sigma_k^2 per sample, from torch.autograd.functional.jacobian."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda z: encoder(z[None])[0], xi)
        out.append((jac.pow(2).sum(1) * inv_var).sum())
    return torch.stack(out)


# ------------------------------------------------------------------------------------------
# the Fisher information against its closed form
# ------------------------------------------------------------------------------------------
def test_monte_carlo_fisher_matches_linear_gaussian_closed_form():
    """T = A X + xi, xi ~ N(0, Sigma): E||grad_x log p(t|x)||^2 = tr(A^T Sigma^-1 A)."""
    g = torch.Generator().manual_seed(0)
    dim_x, dim_t, n = 5, 3, 40_000
    A = torch.randn(dim_t, dim_x, generator=g, dtype=DTYPE)
    L = torch.randn(dim_t, dim_t, generator=g, dtype=DTYPE).tril()
    L.diagonal().abs_().add_(0.5)
    Sigma = L @ L.T  # a full (non-diagonal) noise covariance
    closed_form = torch.trace(A.T @ torch.linalg.solve(Sigma, A))

    x = torch.randn(n, dim_x, generator=g, dtype=DTYPE)
    t = x @ A.T + torch.randn(n, dim_t, generator=g, dtype=DTYPE) @ L.T

    def log_prob(t_, x_):
        return torch.distributions.MultivariateNormal(x_ @ A.T, scale_tril=L).log_prob(t_)

    estimate = score_fisher_information(log_prob, x, t)
    assert abs(estimate / closed_form - 1) < MC_RTOL


def test_isotropic_encoder_penalty_closed_form_all_methods():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(3, 6, generator=g, dtype=DTYPE)
    sigma = torch.tensor([0.5, 1.0, 2.0], dtype=DTYPE)
    closed_form = torch.trace(A.T @ torch.diag(sigma**-2) @ A)
    x = torch.randn(4000, 6, generator=g, dtype=DTYPE)

    def encoder(z):
        return z @ A.T + 0.3

    exact = fisher_information_penalty(encoder, x, sigma, method="exact")
    torch.testing.assert_close(exact, closed_form, rtol=EXACT_TOL, atol=0)
    for method in ("hutchinson", "monte_carlo"):
        estimate = fisher_information_penalty(
            encoder, x, sigma, method=method, num_probes=4, generator=g
        )
        assert abs(estimate / closed_form - 1) < MC_RTOL, method
    # the score-function definition agrees with the same diagonal-Gaussian encoder
    t = encoder(x) + sigma * torch.randn(x.shape[0], 3, generator=g, dtype=DTYPE)

    def log_prob(t_, x_):
        return torch.distributions.Normal(encoder(x_), sigma).log_prob(t_).sum(-1)

    assert abs(score_fisher_information(log_prob, x, t) / closed_form - 1) < MC_RTOL


def test_exact_penalty_matches_jacobian_of_nonlinear_encoder():
    encoder = _tanh_encoder()
    x = torch.randn(6, 5, dtype=DTYPE)
    sigma = torch.tensor([0.7, 1.3, 0.4], dtype=DTYPE)
    expected = _jacobian_sq_norms(encoder, x, sigma**-2)
    got = fisher_information_penalty(encoder, x, sigma, method="exact", reduction="none")
    torch.testing.assert_close(got, expected, rtol=EXACT_TOL, atol=0)
    torch.testing.assert_close(
        fisher_information_penalty(encoder, x, sigma, method="exact", reduction="sum"),
        expected.sum(),
    )


def test_hutchinson_is_unbiased_exactly_over_all_sign_vectors():
    """Averaging over all 2^dim_t Rademacher vectors gives the trace exactly (no sampling)."""
    encoder = _tanh_encoder(dim_t=4, seed=2)
    x = torch.randn(5, 5, dtype=DTYPE)
    sigma = 0.8
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=DTYPE)
    probes = signs[:, None, :].expand(16, 5, 4)
    exact = fisher_information_penalty(encoder, x, sigma, method="exact", reduction="none")
    averaged = fisher_information_penalty(
        encoder, x, sigma, method="hutchinson", probes=probes, reduction="none"
    )
    torch.testing.assert_close(averaged, exact, rtol=EXACT_TOL, atol=0)
    # a single sign vector is not exact: the estimate really is random
    single = fisher_information_penalty(
        encoder, x, sigma, method="hutchinson", probes=probes[:1], reduction="none"
    )
    assert not torch.allclose(single, exact)


def test_hutchinson_sample_mean_is_within_statistical_error():
    encoder = _tanh_encoder(dim_t=5, seed=3)
    x = torch.randn(1, 5, dtype=DTYPE)
    exact = fisher_information_penalty(encoder, x, 1.0, method="exact")
    g = torch.Generator().manual_seed(4)
    draws = torch.stack(
        [
            fisher_information_penalty(encoder, x, 1.0, method="hutchinson", generator=g)
            for _ in range(1000)
        ]
    )
    standard_error = draws.std() / draws.numel() ** 0.5
    assert standard_error > 0
    assert abs(draws.mean() - exact) < 4 * standard_error


def test_penalty_gradient_matches_finite_differences():
    """Double backward through the penalty, for each method with fixed probes."""
    x = torch.randn(4, 3, dtype=DTYPE)
    w1 = torch.randn(5, 3, dtype=DTYPE, requires_grad=True)
    w2 = torch.randn(2, 5, dtype=DTYPE, requires_grad=True)
    probes = torch.randn(2, 4, 2, dtype=DTYPE)

    def encoder(z):
        return torch.tanh(z @ w1.T) @ w2.T

    for method, extra in (("exact", {}), ("hutchinson", {"probes": probes})):

        def penalty(a, b, method=method, extra=extra):
            return fisher_information_penalty(
                lambda z: torch.tanh(z @ a.T) @ b.T, x, 0.9, method=method, **extra
            )

        assert torch.autograd.gradcheck(penalty, (w1, w2))
    assert encoder(x).shape == (4, 2)


# ------------------------------------------------------------------------------------------
# the loss
# ------------------------------------------------------------------------------------------
def test_loss_terms_match_manual_computation():
    encoder = _tanh_encoder(d_in=4, dim_t=3, seed=5)
    decoder = nn.Linear(3, 4).to(DTYPE)
    x = torch.randn(8, 4, dtype=DTYPE)
    y = torch.randint(0, 4, (8,))
    sigma, beta, alpha = 0.6, 0.01, 0.2
    terms = robust_ib_loss(
        encoder, decoder, x, y, sigma=sigma, beta=beta, alpha=alpha,
        num_samples=3, generator=torch.Generator().manual_seed(9), return_terms=True,
    )  # fmt: skip
    mu = encoder(x)
    noise = torch.randn((3, 8, 3), generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    t = (mu + sigma * noise).reshape(24, 3)
    ce = nn.functional.cross_entropy(decoder(t), y.repeat(3))
    p = torch.distributions.Normal(mu, sigma)
    r = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl = torch.distributions.kl_divergence(p, r).sum(1).mean()
    fisher = _jacobian_sq_norms(encoder, x, torch.full((3,), sigma**-2, dtype=DTYPE)).mean()
    torch.testing.assert_close(terms.cross_entropy, ce)
    torch.testing.assert_close(terms.kl, kl)
    torch.testing.assert_close(terms.fisher, fisher)
    torch.testing.assert_close(terms.loss, ce + beta * kl + alpha * fisher)
    torch.testing.assert_close(
        gaussian_kl_to_standard_normal(mu, sigma), torch.distributions.kl_divergence(p, r).sum(1)
    )


def test_module_backward_and_no_grad_evaluation():
    encoder = _tanh_encoder(d_in=4, dim_t=20, seed=6)  # dim_t > 16: "auto" uses Hutchinson
    decoder = nn.Linear(20, 3).to(DTYPE)
    x = torch.randn(10, 4, dtype=DTYPE)
    y = torch.randint(0, 3, (10,))
    criterion = RobustIBLoss(sigma=0.5, beta=1e-3, alpha=0.1)
    loss = criterion(encoder, decoder, x, y, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())
    with torch.no_grad():
        value = criterion(encoder, decoder, x, y, generator=torch.Generator().manual_seed(0))
    assert not value.requires_grad
    torch.testing.assert_close(value, loss.detach())
    # "auto" above max_exact_dim is stochastic, below it is exact and deterministic
    draws = {
        criterion(encoder, decoder, x, y, generator=torch.Generator().manual_seed(s),
                  return_terms=True).fisher.item()
        for s in range(3)
    }  # fmt: skip
    assert len(draws) == 3
    exact = RobustIBLoss(sigma=0.5, alpha=0.1, max_exact_dim=20)
    fisher = {
        exact(encoder, decoder, x, y, generator=torch.Generator().manual_seed(s),
              return_terms=True).fisher.item()
        for s in range(3)
    }  # fmt: skip
    assert len(fisher) == 1


def test_alpha_zero_is_vib_and_penalty_lowers_jacobian():
    encoder = _tanh_encoder(d_in=4, dim_t=2, seed=7)
    decoder = nn.Linear(2, 2).to(DTYPE)
    x = torch.randn(64, 4, dtype=DTYPE)
    y = (x[:, 0] > 0).long()
    terms = robust_ib_loss(encoder, decoder, x, y, alpha=0.0, return_terms=True)
    assert terms.fisher.item() == 0.0
    torch.testing.assert_close(terms.loss, terms.cross_entropy + 1e-3 * terms.kl)
    # a few steps on the penalty alone shrink the encoder's input sensitivity
    before = fisher_information_penalty(encoder, x, 1.0, method="exact")
    opt = torch.optim.SGD(encoder.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        fisher_information_penalty(encoder, x, 1.0, method="exact").backward()
        opt.step()
    assert fisher_information_penalty(encoder, x, 1.0, method="exact") < 0.5 * before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": 0.0}, "Invalid sigma"),
        ({"sigma": torch.tensor([1.0, -1.0])}, "Invalid sigma"),
        ({"beta": -1.0}, "Invalid beta"),
        ({"alpha": float("inf")}, "Invalid alpha"),
        ({"fisher": "diagonal"}, "`fisher`"),
        ({"num_probes": 0}, "`num_probes`"),
        ({"num_samples": 0}, "`num_samples`"),
    ],
)
def test_invalid_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RobustIBLoss(**kwargs)


def test_invalid_inputs():
    encoder = nn.Linear(4, 3).to(DTYPE)
    decoder = nn.Linear(3, 2).to(DTYPE)
    x = torch.randn(5, 4, dtype=DTYPE)
    y = torch.zeros(5, dtype=torch.long)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="`x` must contain only finite"):
        robust_ib_loss(encoder, decoder, bad, y, alpha=1.0)
    with pytest.raises(ValueError, match="`y` must have shape"):
        robust_ib_loss(encoder, decoder, x, y[:4])
    with pytest.raises(ValueError, match="dim_t"):
        robust_ib_loss(encoder, decoder, x, y, sigma=torch.ones(2, dtype=DTYPE))
    with pytest.raises(ValueError, match="shape \\(n, dim_t\\)"):
        fisher_information_penalty(lambda z: z.sum(1), x, 1.0)
    with pytest.raises(ValueError, match="`probes` must have shape"):
        fisher_information_penalty(encoder, x, 1.0, method="hutchinson", probes=torch.ones(2, 5, 4))


@pytest.mark.slow
def test_example_quick_tradeoff_on_every_seed(tmp_path):
    """The docs' trade-off, seed by seed (quick: alpha 0 vs 0.03, 6 epochs, seeds 0-2).

    Measured: sensitivity ratio 0.10-0.11, FGSM gains +0.18..+0.27 (eps 0.1) and +0.17..+0.25
    (eps 0.2), clean accuracy 0.90-0.94 (VIB) and 0.74-0.82 (robust).
    """
    spec = importlib.util.spec_from_file_location("robust_ib_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick", "--seeds", "3", "--out", str(tmp_path), "--eps", "0.1", "0.2"])
    base, robust = out["summary"]
    assert (base["alpha"], robust["alpha"]) == (0.0, 0.03)
    assert Path(out["figure"]).is_file()
    assert len(base["per_seed"]) == len(robust["per_seed"]) == 3
    for seed, (b, r) in enumerate(zip(base["per_seed"], robust["per_seed"])):
        assert b["clean"] > 0.85 and r["clean"] > 0.65, seed  # chance is 0.1
        assert r["sensitivity"] < 0.2 * b["sensitivity"], seed
        for eps in ("0.1", "0.2"):
            assert r["fgsm"][eps] >= b["fgsm"][eps] + 0.1, (seed, eps)
