"""combgrad.argmin: every estimator against its closed form on enumerable polytopes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import norm

from combgrad.argmin import blackbox, imle, nid, noise_score, perturbed, sample_noise

from ._dfl_oracles import NaNOracle, RaisingOracle, box, grid_paths, simplex

METHODS = {
    "perturbed": lambda c, o: perturbed(
        c, o, n_samples=4, generator=torch.Generator().manual_seed(0)
    ),
    "blackbox": blackbox,
    "imle": lambda c, o: imle(c, o, generator=torch.Generator().manual_seed(0)),
    "nid": nid,
}


def _vjp(fn, theta: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    theta = theta.clone().requires_grad_(True)
    out = fn(theta)
    (grad,) = torch.autograd.grad(out, theta, g)
    return out.detach(), grad


# ---------------------------------------------------------------- noise


def test_gumbel_noise_is_gumbel_min_with_its_score():
    z = sample_noise((200_000,), "gumbel", torch.Generator().manual_seed(0))
    assert z.dtype == torch.float64
    assert float(z.mean()) == pytest.approx(-np.euler_gamma, abs=0.01)  # mean of -Gumbel
    # E[score] = 0 and E[score * Z] = 1 for any density (integration by parts)
    s = noise_score(z, "gumbel")
    assert float(s.mean()) == pytest.approx(0.0, abs=0.01)
    assert float((s * z).mean()) == pytest.approx(1.0, abs=0.02)


def test_noise_is_reproducible_from_a_generator():
    a = sample_noise((3, 2, 4), "normal", torch.Generator().manual_seed(7))
    b = sample_noise((3, 2, 4), "normal", torch.Generator().manual_seed(7))
    assert a.shape == (3, 2, 4) and torch.equal(a, b)


# ---------------------------------------------------------------- perturbed


def test_perturbed_gumbel_on_simplex_is_softmax_and_its_jacobian():
    sigma, samples = 0.5, 200_000
    theta = torch.tensor([[0.0, 0.3, 1.0, -0.2], [1.0, 1.0, 0.0, 2.0]], dtype=torch.float64)
    g = torch.tensor([[1.0, -0.5, 0.2, 0.0], [0.0, 1.0, -1.0, 0.5]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    x, grad = _vjp(lambda t: perturbed(t, simplex(4), sigma, samples, "gumbel", gen), theta, g)
    p = softmax(-theta.numpy() / sigma, axis=1)
    np.testing.assert_allclose(x.numpy(), p, atol=0.006)  # ~5 standard errors
    # d softmax(-theta/sigma) / d theta = -(diag(p) - p p^T) / sigma (symmetric)
    expected = np.stack(
        [-(np.diag(pb) - np.outer(pb, pb)) @ gb / sigma for pb, gb in zip(p, g.numpy())]
    )
    np.testing.assert_allclose(grad.numpy(), expected, atol=0.03)
    assert np.abs(expected).max() > 0.3  # the check is not vacuous


def test_perturbed_normal_on_box_matches_the_normal_cdf():
    sigma, samples = 0.7, 100_000
    theta = torch.tensor([0.4, -0.3, 0.0], dtype=torch.float64)
    g = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    x, grad = _vjp(lambda t: perturbed(t, box(3), sigma, samples, "normal", gen), theta, g)
    assert x.shape == (3,)
    # x*_i = 1[theta_i + sigma Z_i < 0]: E = Phi(-theta/sigma), d/dtheta = -phi(theta/sigma)/sigma
    t = theta.numpy()
    np.testing.assert_allclose(x.numpy(), norm.cdf(-t / sigma), atol=0.008)
    np.testing.assert_allclose(grad.numpy(), -norm.pdf(t / sigma) / sigma * g.numpy(), atol=0.04)


def test_perturbed_on_grid_paths_matches_enumeration():
    """Exhaustive enumeration of the 6 paths of a 3x3 grid, independent Monte Carlo."""
    oracle = grid_paths(3, 3)
    sigma = 0.5
    rng = np.random.default_rng(3)
    theta = rng.uniform(0.5, 1.5, oracle.n)
    z = rng.standard_normal((400_000, oracle.n))

    def expectation(t):  # common random numbers across t
        values = (t + sigma * z) @ oracle.vertices.T
        return oracle.vertices[values.argmin(axis=1)].mean(0)

    h = 0.05
    jac = np.stack(
        [
            (expectation(theta + h * e) - expectation(theta - h * e)) / (2 * h)
            for e in np.eye(oracle.n)
        ],
        axis=1,
    )  # (n, n): d E[x_i] / d theta_j
    g = rng.standard_normal(oracle.n)
    gen = torch.Generator().manual_seed(4)
    x, grad = _vjp(
        lambda t: perturbed(t, oracle, sigma, 200_000, "normal", gen),
        torch.from_numpy(theta)[None],
        torch.from_numpy(g)[None],
    )
    np.testing.assert_allclose(x[0].numpy(), expectation(theta), atol=0.01)
    np.testing.assert_allclose(grad[0].numpy(), jac.T @ g, atol=0.08 * np.abs(g).max())


def test_perturbed_solves_all_samples_in_one_oracle_call():
    oracle = simplex(3)
    theta = torch.zeros(5, 3, requires_grad=True)
    x = perturbed(theta, oracle, n_samples=7)
    x.sum().backward()
    assert oracle.calls == 1 and x.shape == (5, 3)


def test_perturbed_keeps_dtype():
    theta = torch.zeros(2, 3, dtype=torch.float32, requires_grad=True)
    x = perturbed(theta, simplex(3), n_samples=3)
    x.sum().backward()
    assert x.dtype == torch.float32 and theta.grad.dtype == torch.float32


# ---------------------------------------------------------------- blackbox, nid, imle


def test_blackbox_forward_is_argmin_and_backward_is_the_dbb_formula():
    oracle = grid_paths(3, 4)
    rng = np.random.default_rng(5)
    theta = torch.from_numpy(rng.uniform(0.1, 1.0, (4, oracle.n)))
    g = torch.from_numpy(rng.standard_normal((4, oracle.n)))
    lam = 3.0
    x, grad = _vjp(lambda t: blackbox(t, oracle, lambda_=lam), theta, g)
    x_star, _ = oracle.solve(theta.numpy())
    x_shift, _ = oracle.solve(theta.numpy() + lam * g.numpy())
    np.testing.assert_array_equal(x.numpy(), x_star)
    np.testing.assert_allclose(grad.numpy(), (x_shift - x_star) / lam)
    assert np.abs(grad.numpy()).sum() > 0


@pytest.mark.parametrize("method", ["blackbox", "imle", "nid"])
def test_squared_loss_gradient_moves_the_solution_toward_the_target(method):
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(6)
    target = torch.from_numpy(oracle.vertices[[0, 5]])
    theta = torch.from_numpy(rng.uniform(0.5, 1.5, (2, oracle.n))).requires_grad_(True)
    fns = {
        "blackbox": lambda t: blackbox(t, oracle, lambda_=2.0),
        "imle": lambda t: imle(
            t, oracle, lambda_=2.0, sigma=0.05, generator=torch.Generator().manual_seed(0)
        ),
        "nid": lambda t: nid(t, oracle),
    }
    with torch.no_grad():
        assert float(((fns[method](theta) - target) ** 2).sum()) > 0  # starts elsewhere
    opt = torch.optim.SGD([theta], lr=0.2)
    for _ in range(30):
        opt.zero_grad()
        x = fns[method](theta)
        ((x - target) ** 2).sum().backward()
        opt.step()
    with torch.no_grad():
        x_final = fns[method](theta)  # for imle: the sample under the same noise draw
    torch.testing.assert_close(x_final, target)


def test_nid_backward_is_negative_identity():
    theta = torch.tensor([[0.2, 0.1, 0.5]])
    g = torch.tensor([[1.0, -2.0, 3.0]])
    x, grad = _vjp(lambda t: nid(t, simplex(3)), theta, g)
    assert torch.equal(x, torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(grad, -g)


@pytest.mark.parametrize("noise", ["gumbel", "normal"])
def test_imle_uses_the_same_noise_in_both_solves(noise):
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(8)
    theta = torch.from_numpy(rng.uniform(0.5, 1.5, (3, oracle.n)))
    g = torch.from_numpy(rng.standard_normal((3, oracle.n)))
    lam, sigma, samples = 2.0, 0.3, 5
    x, grad = _vjp(
        lambda t: imle(t, oracle, lam, sigma, samples, noise, torch.Generator().manual_seed(9)),
        theta,
        g,
    )
    z = sample_noise((samples, 3, oracle.n), noise, torch.Generator().manual_seed(9)).numpy()
    t = theta.numpy()
    xs = np.stack([oracle.solve(t + sigma * zs)[0] for zs in z])
    xs_shift = np.stack([oracle.solve(t + lam * g.numpy() + sigma * zs)[0] for zs in z])
    np.testing.assert_allclose(x.numpy(), xs.mean(0))
    np.testing.assert_allclose(grad.numpy(), (xs_shift - xs).mean(0) / lam)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("method", sorted(METHODS))
def test_wrong_n_is_a_clear_error(method):
    with pytest.raises(ValueError, match=r"`costs` must have shape \(B, n\).*n = oracle.n = 3"):
        METHODS[method](torch.zeros(2, 4), simplex(3))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_nan_costs_are_a_clear_error(method):
    costs = torch.zeros(2, 3)
    costs[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"`costs` must be finite; found nan at index \(1, 2\)"):
        METHODS[method](costs, simplex(3))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_infeasible_item_from_the_oracle_is_a_clear_error(method):
    with pytest.raises(ValueError, match="non-finite solution for item 1"):
        METHODS[method](torch.zeros(2, 3), NaNOracle())
    with pytest.raises(RuntimeError, match="batch item 0 is infeasible"):
        METHODS[method](torch.zeros(2, 3), RaisingOracle())


def test_other_bad_arguments():
    c = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="`oracle` must have a method `solve"):
        blackbox(c, object())
    with pytest.raises(TypeError, match=r"`costs` must be a torch\.Tensor"):
        blackbox(np.zeros((2, 3)), simplex(3))
    with pytest.raises(TypeError, match="`costs` must be floating point"):
        nid(torch.zeros(2, 3, dtype=torch.long), simplex(3))
    with pytest.raises(ValueError, match="at least one cost vector"):
        nid(torch.zeros(0, 3), simplex(3))
    with pytest.raises(ValueError, match="`sigma` must be positive"):
        perturbed(c, simplex(3), sigma=0.0)
    with pytest.raises(ValueError, match="`n_samples` must be a positive integer"):
        perturbed(c, simplex(3), n_samples=0)
    with pytest.raises(ValueError, match="`noise` must be one of"):
        imle(c, simplex(3), noise="gamma")
    with pytest.raises(ValueError, match="`lambda_` must be a finite positive number"):
        blackbox(c, simplex(3), lambda_=float("inf"))
