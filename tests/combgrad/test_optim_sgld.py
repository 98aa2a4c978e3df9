"""Tests for combgrad.optim.SGLD / sgld: exact update, RNG handling, and the Gibbs-law check."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from combgrad.optim.sgld import SGLD, sgld

EXACT = 1e-12  # float64, same operations in a different order


def _params(dtype=torch.float64):
    gen = torch.Generator().manual_seed(1)
    return [
        torch.randn(4, 3, generator=gen, dtype=dtype).requires_grad_(),
        torch.randn(5, generator=gen, dtype=dtype).requires_grad_(),
    ]


def _set_grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def _expected_step(params, lr, beta, noise_gen, *, weight_decay=0.0, maximize=False):
    """theta - lr * (+-g + wd theta) + sqrt(2 lr / beta) xi, with xi drawn in parameter order."""
    out = []
    for p in params:
        g = -p.grad if maximize else p.grad
        g = g + weight_decay * p.detach()
        xi = torch.randn(p.shape, generator=noise_gen, dtype=p.dtype)
        out.append(p.detach() - lr * g + math.sqrt(2 * lr / beta) * xi)
    return out


INVALID_HYPERPARAMETERS = [
    ({"lr": -0.1}, "Invalid learning rate"),
    ({"lr": math.nan}, "Invalid learning rate"),
    ({"lr": math.inf}, "Invalid learning rate"),
    ({"inverse_temperature": 0.0}, "Invalid inverse_temperature"),
    ({"inverse_temperature": -1.0}, "Invalid inverse_temperature"),
    ({"inverse_temperature": math.nan}, "Invalid inverse_temperature"),
    ({"weight_decay": -1.0}, "Invalid weight_decay"),
    ({"generator": []}, "generator"),
    ({"generator": [torch.Generator(), torch.Generator()]}, "more than one generator"),
]


@pytest.mark.parametrize(("kwargs", "match"), INVALID_HYPERPARAMETERS)
def test_invalid_hyperparameters_raise(kwargs, match):
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        SGLD(_params(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        case
        for case in INVALID_HYPERPARAMETERS
        if "generator" not in case[0]  # one generator per optimizer, not per group
    ],
)
def test_invalid_group_hyperparameters_raise_when_the_group_is_added(kwargs, match):
    opt = SGLD(_params(), lr=0.1)
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": _params(), **kwargs})
    assert len(opt.param_groups) == 1
    with pytest.raises(ValueError, match=match):
        SGLD([{"params": _params()}, {"params": _params(), **kwargs}], lr=0.1)


def test_generator_of_wrong_type_raises():
    with pytest.raises(TypeError, match=r"torch\.Generator"):
        SGLD(_params(), lr=0.1, generator=[123])


@pytest.mark.parametrize("foreach", [False, True])
def test_step_matches_formula_float64(foreach):
    params = _params()
    _set_grads(params, seed=2)
    lr, beta = 0.03, 2.5
    expected = _expected_step(params, lr, beta, torch.Generator().manual_seed(7))
    opt = SGLD(
        params,
        lr=lr,
        inverse_temperature=beta,
        foreach=foreach,
        generator=torch.Generator().manual_seed(7),
    )
    opt.step()
    for p, e in zip(params, expected):
        assert p.dtype == torch.float64
        torch.testing.assert_close(p.detach(), e, rtol=0, atol=EXACT)


def test_weight_decay_and_maximize():
    params = _params()
    _set_grads(params, seed=3)
    lr, beta, wd = 0.02, 4.0, 0.3
    expected = _expected_step(
        params, lr, beta, torch.Generator().manual_seed(5), weight_decay=wd, maximize=True
    )
    opt = SGLD(
        params,
        lr=lr,
        inverse_temperature=beta,
        weight_decay=wd,
        maximize=True,
        generator=torch.Generator().manual_seed(5),
    )
    opt.step()
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=0, atol=EXACT)


def test_foreach_matches_single_tensor_with_mixed_dtypes():
    def run(foreach):
        gen = torch.Generator().manual_seed(0)
        params = [
            torch.ones(3, dtype=torch.float32, requires_grad=True),
            torch.ones(2, 2, dtype=torch.float64, requires_grad=True),
            torch.ones(4, dtype=torch.float32, requires_grad=True),
        ]
        opt = SGLD(
            params,
            lr=0.1,
            inverse_temperature=2.0,
            weight_decay=0.1,
            foreach=foreach,
            generator=gen,
        )
        for seed in range(3):
            _set_grads(params, seed)
            opt.step()
        return [p.detach().clone() for p in params]

    for a, b in zip(run(False), run(True)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_infinite_inverse_temperature_is_sgd_and_draws_no_noise():
    params = _params()
    _set_grads(params, seed=4)
    before = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(3)
    rng_state = gen.get_state()
    SGLD(params, lr=0.1, inverse_temperature=math.inf, generator=gen).step()
    for p, b in zip(params, before):
        torch.testing.assert_close(p.detach(), b - 0.1 * p.grad, rtol=0, atol=EXACT)
    assert torch.equal(gen.get_state(), rng_state)


def test_global_rng_is_used_without_generator():
    def run():
        torch.manual_seed(11)
        params = _params()
        _set_grads(params, seed=1)
        SGLD(params, lr=0.1).step()
        return [p.detach().clone() for p in params]

    first, second = run(), run()
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_param_groups_use_their_own_hyperparameters():
    p1, p2 = _params()
    _set_grads([p1, p2], seed=6)
    noise_gen = torch.Generator().manual_seed(9)
    (e1,) = _expected_step([p1], 0.1, 1.0, noise_gen)
    (e2,) = _expected_step([p2], 0.01, 50.0, noise_gen)
    opt = SGLD(
        [{"params": [p1]}, {"params": [p2], "lr": 0.01, "inverse_temperature": 50.0}],
        lr=0.1,
        generator=torch.Generator().manual_seed(9),
    )
    opt.step()
    torch.testing.assert_close(p1.detach(), e1, rtol=0, atol=EXACT)
    torch.testing.assert_close(p2.detach(), e2, rtol=0, atol=EXACT)


def test_closure_is_evaluated_with_grad_and_returned():
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = SGLD([w], lr=0.1, inverse_temperature=math.inf)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    torch.testing.assert_close(w.detach(), torch.tensor([0.8, -1.6], dtype=torch.float64))


def test_state_dict_round_trip_continues_identically():
    def make(seed):
        params = _params()
        return params, SGLD(
            params,
            lr=0.05,
            inverse_temperature=3.0,
            weight_decay=0.01,
            generator=torch.Generator().manual_seed(seed),
        )

    params, opt = make(seed=0)
    for s in range(3):
        _set_grads(params, s)
        opt.step()
    saved_params = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(opt.state_dict())
    assert "generator_states" in saved_state
    for s in range(3, 6):
        _set_grads(params, s)
        opt.step()
    reference = [p.detach().clone() for p in params]

    params2, opt2 = make(seed=12345)  # a different seed: the loaded RNG state must win
    with torch.no_grad():
        for p, s in zip(params2, saved_params):
            p.copy_(s)
    opt2.load_state_dict(saved_state)
    for s in range(3, 6):
        _set_grads(params2, s)
        opt2.step()
    for a, b in zip(params2, reference):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


def test_missing_generator_for_device_raises():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one torch\.Generator per device"):
        sgld(
            [p],
            [torch.ones(3)],
            lr=0.1,
            inverse_temperature=1.0,
            generator={"cuda:0": torch.Generator()},
        )


def test_sparse_gradients_raise():
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        SGLD([p], lr=0.1).step()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_parameters_with_per_device_generators():
    cpu = torch.zeros(1000, dtype=torch.float64, requires_grad=True)
    gpu = torch.zeros(1000, dtype=torch.float64, device="cuda", requires_grad=True)
    gens = [torch.Generator().manual_seed(0), torch.Generator("cuda").manual_seed(0)]
    opt = SGLD([cpu, gpu], lr=0.5, inverse_temperature=1.0, generator=gens)
    cpu.grad, gpu.grad = torch.zeros_like(cpu), torch.zeros_like(gpu)
    opt.step()
    assert gpu.device.type == "cuda"
    assert gpu.std().item() == pytest.approx(1.0, rel=0.15)  # sqrt(2 * 0.5 / 1) = 1


# --- The distributional check: double-well potential u(x) = x^4/4 - x^2/2 ------------------------
BETA = 3.0
GRAD_NOISE_STD = 0.5  # stochastic gradient H(x, X) = x^3 - x + X, X ~ N(0, 0.5^2)


def _gibbs_grid(beta):
    grid = np.linspace(-3.5, 3.5, 20001)
    weights = np.exp(-beta * (grid**4 / 4 - grid**2 / 2))
    return grid, weights / weights.sum()


def _run_chains(lr, beta, n_chains, time_horizon, seed):
    gen = torch.Generator().manual_seed(seed)
    chains = torch.zeros(n_chains, dtype=torch.float64, requires_grad=True)
    opt = SGLD([chains], lr=lr, inverse_temperature=beta, generator=gen)
    for _ in range(round(time_horizon / lr)):
        with torch.no_grad():
            noise = torch.randn(n_chains, generator=gen, dtype=torch.float64)
            chains.grad = chains**3 - chains + GRAD_NOISE_STD * noise
        opt.step()
    return chains.detach().numpy()


def test_w1_to_gibbs_law_shrinks_with_step_size():
    """W1(law of 20k chains, exp(-beta u)/Z by quadrature) falls as the step shrinks.

    The potential is symmetric, so we compare the symmetrised empirical law (samples and their
    negatives); this removes the binomial noise in the well populations, which would otherwise
    dominate the small-step errors.
    """
    grid, weights = _gibbs_grid(BETA)
    w1 = []
    for lr in (0.1, 0.04, 0.016):
        samples = _run_chains(lr, BETA, n_chains=20_000, time_horizon=15.0, seed=0)
        sym = np.concatenate([samples, -samples])
        w1.append(wasserstein_distance(sym, grid, v_weights=weights))
    assert w1[0] > 0.015  # the step-size bias at lr = 0.1 is visible above Monte-Carlo noise
    assert w1[1] < 0.75 * w1[0]
    assert w1[2] < 0.5 * w1[0]
    assert w1[2] < w1[1]


def test_large_inverse_temperature_concentrates_at_global_minima():
    grid = np.linspace(-3.5, 3.5, 20001)
    dist_to_minima = np.minimum(np.abs(grid - 1), np.abs(grid + 1))
    results = {}
    for beta in (1.0, 100.0):
        samples = _run_chains(0.01, beta, n_chains=4000, time_horizon=10.0, seed=1)
        _, weights = _gibbs_grid(beta)
        results[beta] = (
            np.mean(np.minimum(np.abs(samples - 1), np.abs(samples + 1))),
            float(dist_to_minima @ weights),
        )
    (hot, hot_exact), (cold, cold_exact) = results[1.0], results[100.0]
    assert cold < 0.1 and cold < 0.25 * hot
    assert cold == pytest.approx(cold_exact, rel=0.2)
    assert hot == pytest.approx(hot_exact, rel=0.1)


def test_double_well_example_quick(tmp_path):
    """examples/sgld_double_well.py --quick end to end: smaller step, smaller W1; colder, tighter."""
    path = Path(__file__).resolve().parents[2] / "examples" / "sgld_double_well.py"
    spec = importlib.util.spec_from_file_location("sgld_double_well", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main(["--quick", "--out", str(tmp_path)])
    w1 = [row["w1_symmetrised"] for row in summary["w1"]]
    assert len(w1) == 2 and w1[1] < 0.6 * w1[0]
    hot, cold = summary["concentration"][0], summary["concentration"][-1]
    assert cold["beta"] > hot["beta"] and cold["chains"] < 0.25 * hot["chains"]
    assert (tmp_path / "sgld_double_well.png").stat().st_size > 0
