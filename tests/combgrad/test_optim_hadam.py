"""Tests for combgrad.optim.HAdam / hadam: Adam equivalence, the paper's formula, orders."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from combgrad.optim.hadam import HAdam, hadam

EXACT = 1e-12  # float64; the same arithmetic in a different order


def _params(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(4, 3, generator=gen, dtype=dtype).requires_grad_(),
        torch.randn(6, generator=gen, dtype=dtype).requires_grad_(),
    ]


def _set_grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


INVALID_HYPERPARAMETERS = [
    ({"lr": -1e-3}, "Invalid learning rate"),
    ({"lr": math.nan}, "Invalid learning rate"),
    ({"eps": -1e-8}, "Invalid epsilon"),
    ({"betas": (1.0, 0.999)}, "beta parameter at index 0"),
    ({"betas": (0.9, -0.1)}, "beta parameter at index 1"),
    ({"betas": (0.9,)}, "Invalid betas"),
    ({"weight_decay": -0.1}, "Invalid weight_decay"),
    ({"order": 0}, "Invalid order"),
    ({"order": 2.5}, "Invalid order"),
    ({"order": True}, "Invalid order"),
    ({"order": 4, "moment": "cubic"}, "Invalid moment"),
    ({"order": 3}, "odd order=3.*moment='signed'.*moment='absolute'"),
    ({"order": 1}, "odd order=1"),
]


@pytest.mark.parametrize(("kwargs", "match"), INVALID_HYPERPARAMETERS)
def test_invalid_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HAdam(_params(), **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), INVALID_HYPERPARAMETERS)
def test_invalid_group_hyperparameters_raise_when_the_group_is_added(kwargs, match):
    opt = HAdam(_params())
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": _params(), **kwargs})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match=match):
        HAdam([{"params": _params()}, {"params": _params(), **kwargs}])


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 1e-2},
        {"lr": 3e-2, "eps": 1e-3, "weight_decay": 0.1},
        {"lr": 1e-2, "betas": (0.5, 0.9), "eps": 0.0, "maximize": True},
    ],
)
def test_order_two_matches_torch_adam_step_for_step(foreach, kwargs):
    ours, theirs = _params(), _params()
    opt_ours = HAdam(ours, order=2, foreach=foreach, **kwargs)
    opt_theirs = torch.optim.Adam(theirs, foreach=False, **kwargs)
    for t in range(60):
        _set_grads(ours, t)
        _set_grads(theirs, t)
        opt_ours.step()
        opt_theirs.step()
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=EXACT)


def _paper_hadam(theta0, grads, *, lr, betas, eps_paper, order, signed):
    """The paper's formula, eps *before* bias correction, written out in plain float64."""
    beta1, beta2 = betas
    theta, m, v = theta0.clone(), torch.zeros_like(theta0), torch.zeros_like(theta0)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * (g**order if signed else g.abs() ** order)
        root = v.sign() * v.abs() ** (1 / order)
        scale = (1 - beta2**t) ** (1 / order) / (1 - beta1**t)
        theta = theta - lr * scale * m / (root + eps_paper)
    return theta


@pytest.mark.parametrize(
    ("order", "moment"), [(4, None), (6, None), (3, "absolute"), (3, "signed")]
)
def test_matches_paper_formula_with_zero_eps(order, moment):
    gen = torch.Generator().manual_seed(3)
    theta0 = torch.randn(7, generator=gen, dtype=torch.float64)
    grads = [torch.randn(7, generator=gen, dtype=torch.float64) for _ in range(25)]
    expected = _paper_hadam(
        theta0,
        grads,
        lr=0.01,
        betas=(0.9, 0.99),
        eps_paper=0.0,
        order=order,
        signed=moment == "signed",
    )
    theta = theta0.clone().requires_grad_()
    opt = HAdam([theta], lr=0.01, betas=(0.9, 0.99), eps=0.0, order=order, moment=moment)
    for g in grads:
        theta.grad = g.clone()
        opt.step()
    torch.testing.assert_close(theta.detach(), expected, rtol=1e-10, atol=EXACT)


def test_epsilon_placement_differs_from_paper_by_documented_rescaling():
    """With eps > 0 one step equals the paper's step with eps' = eps * (1 - beta2)^(1/k)."""
    order, eps, beta2 = 4, 0.05, 0.99
    theta0 = torch.tensor([0.3, -1.0], dtype=torch.float64)
    g = torch.tensor([0.02, -0.5], dtype=torch.float64)
    theta = theta0.clone().requires_grad_()
    theta.grad = g.clone()
    HAdam([theta], lr=0.1, betas=(0.9, beta2), eps=eps, order=order).step()
    same_eps = _paper_hadam(
        theta0, [g], lr=0.1, betas=(0.9, beta2), eps_paper=eps, order=order, signed=False
    )
    rescaled = _paper_hadam(
        theta0,
        [g],
        lr=0.1,
        betas=(0.9, beta2),
        eps_paper=eps * (1 - beta2) ** (1 / order),
        order=order,
        signed=False,
    )
    torch.testing.assert_close(theta.detach(), rescaled, rtol=0, atol=EXACT)
    assert not torch.allclose(theta.detach(), same_eps, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("order", "moment"), [(4, None), (3, "signed"), (5, "absolute")])
def test_foreach_matches_single_tensor_with_mixed_dtypes(order, moment):
    def run(foreach):
        params = [*_params(torch.float64), *_params(torch.float32, seed=1)]
        opt = HAdam(params, lr=1e-2, order=order, moment=moment, weight_decay=0.01, foreach=foreach)
        for t in range(10):
            _set_grads(params, t)
            opt.step()
        return [p.detach().clone() for p in params]

    for a, b in zip(run(False), run(True)):
        torch.testing.assert_close(a, b, rtol=1e-6 if a.dtype == torch.float32 else 1e-12, atol=0)


def test_param_groups_with_different_orders():
    p_adam, p_h4 = _params()
    ref = p_adam.detach().clone().requires_grad_()
    opt = HAdam([{"params": [p_adam]}, {"params": [p_h4], "order": 4, "lr": 0.05}], lr=0.01)
    opt_ref = torch.optim.Adam([ref], lr=0.01, foreach=False)
    h4_start = p_h4.detach().clone()
    for t in range(5):
        _set_grads([p_adam, p_h4], t)
        ref.grad = p_adam.grad.clone()
        opt.step()
        opt_ref.step()
    torch.testing.assert_close(p_adam.detach(), ref.detach(), rtol=0, atol=EXACT)
    assert opt.param_groups[1]["order"] == 4
    assert opt.state[p_h4]["step"].item() == 5
    assert not torch.allclose(p_h4.detach(), h4_start)


def test_maximize_equals_minimizing_the_negation():
    a, b = _params(), _params()
    opt_a = HAdam(a, lr=0.01, order=4, maximize=True)
    opt_b = HAdam(b, lr=0.01, order=4)
    for t in range(5):
        _set_grads(a, t)
        _set_grads(b, t)
        for p in b:
            p.grad.neg_()
        opt_a.step()
        opt_b.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x.detach(), y.detach(), rtol=0, atol=EXACT)


def test_closure_is_evaluated_and_returned():
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = HAdam([w], lr=0.1, order=4, eps=0.0)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0)
    # First step: m/(1-beta1) = g, v^(1/k)/(1-beta2)^(1/k) = |g|, so the step is lr * sign(g).
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9], dtype=torch.float64))


def test_state_dict_round_trip_continues_identically():
    params = _params()
    opt = HAdam(params, lr=0.01, order=6, weight_decay=0.01)
    for t in range(4):
        _set_grads(params, t)
        opt.step()
    saved_params = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(opt.state_dict())
    for t in range(4, 8):
        _set_grads(params, t)
        opt.step()

    params2 = [s.clone().requires_grad_() for s in saved_params]
    opt2 = HAdam(params2, lr=0.5, order=2)  # hyperparameters come from the state dict
    opt2.load_state_dict(saved_state)
    assert opt2.param_groups[0]["order"] == 6
    for t in range(4, 8):
        _set_grads(params2, t)
        opt2.step()
    for a, b in zip(params2, params):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


def test_functional_checks_list_lengths():
    p = torch.zeros(2)
    with pytest.raises(ValueError, match="equal lengths"):
        hadam([p], [p], [p], [], [torch.tensor(0.0)], lr=0.1, betas=(0.9, 0.99), eps=1e-8, order=2)


def _noisy_quadratic(order, moment=None, *, start=2.0, steps=1500, seed=0):
    """f(theta) = 0.5 sum h_i theta_i^2, h from 0.1 to 10, gradient noise std 0.5, lr 0.05/(1+t/100).

    Returns (f(theta_T) / f(theta_0), max |theta_T|).
    """
    gen = torch.Generator().manual_seed(seed)
    h = torch.logspace(-1, 1, 20, dtype=torch.float64)
    theta = torch.full((20,), start, dtype=torch.float64)
    theta[::2] *= -1  # half the coordinates start on each side: gradients of both signs
    theta.requires_grad_()
    f0 = 0.5 * (h * theta.detach() ** 2).sum()
    opt = HAdam([theta], lr=0.05, order=order, moment=moment)
    for t in range(steps):
        opt.param_groups[0]["lr"] = 0.05 / (1 + t / 100)
        with torch.no_grad():
            theta.grad = h * theta + 0.5 * torch.randn(20, generator=gen, dtype=torch.float64)
        opt.step()
    return (0.5 * (h * theta.detach() ** 2).sum() / f0).item(), theta.detach().abs().max().item()


@pytest.mark.parametrize("order", [2, 4, 6])
def test_even_orders_converge_on_noisy_convex_problem(order):
    ratio, worst = _noisy_quadratic(order)
    assert ratio < 1e-3  # the loss falls by more than three orders of magnitude
    assert worst < 1.0  # every coordinate moved from |theta| = 2 towards 0


def test_odd_order_signed_moment_diverges_and_absolute_converges():
    """The paper's finding for odd orders, via the mechanism: a run of negative gradients makes
    the signed moment and its real root negative, so m / root > 0 and the step goes uphill."""
    signed_ratio, signed_worst = _noisy_quadratic(3, "signed")
    absolute_ratio, _ = _noisy_quadratic(3, "absolute")
    assert absolute_ratio < 1e-3
    assert signed_ratio > 10.0  # the loss grew instead of shrinking
    assert signed_worst > 2.0 + 1.0  # coordinates that started at -2 ran away


def test_orders_example_quick(tmp_path):
    """examples/hadam_orders.py --quick end to end (one seed, short runs)."""
    path = Path(__file__).resolve().parents[2] / "examples" / "hadam_orders.py"
    spec = importlib.util.spec_from_file_location("hadam_orders", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main(["--quick", "--out", str(tmp_path)])
    quad, digits = summary["quadratic_final_ratio"], summary["digits_final_loss"]
    chance = math.log(10)  # cross-entropy of the uniform prediction, about the initial loss
    for name in ("k=2", "k=4", "k=6", "k=3 absolute"):
        assert quad[name][0] < 1e-2
        assert digits[name][0] < 0.25 * chance
    assert quad["k=3 signed"][0] > 1.0
    assert digits["k=3 signed"][0] > chance
    assert (tmp_path / "hadam_orders.png").stat().st_size > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("foreach", [False, True])
def test_cuda_matches_cpu(foreach):
    cpu = _params()
    gpu = [p.detach().cuda().requires_grad_() for p in cpu]
    opt_cpu = HAdam(cpu, lr=1e-2, order=4, foreach=False)
    opt_gpu = HAdam(gpu, lr=1e-2, order=4, foreach=foreach)
    for t in range(5):
        _set_grads(cpu, t)
        for p, q in zip(gpu, cpu):
            p.grad = q.grad.cuda()
        opt_cpu.step()
        opt_gpu.step()
    for p, q in zip(gpu, cpu):
        torch.testing.assert_close(p.detach().cpu(), q.detach(), rtol=1e-10, atol=1e-12)
