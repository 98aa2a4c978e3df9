"""Tests for combgrad.optim.SGDA / sgda, and the WGAN one-layer example end to end."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from combgrad.optim.sgda import SGDA, project_to_ball, sgda

EXACT = 1e-12
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_example(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quadratic_game(a=1.0, b=2.0, c=1.0):
    """f(x, y) = a/2 x^2 + b x y - c/2 y^2 (min over x, max over y); saddle at (0, 0)."""

    def f(x, y):
        return 0.5 * a * x.square().sum() + b * (x * y).sum() - 0.5 * c * y.square().sum()

    return f


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, "Invalid learning rate"),
        ({"lr": math.inf}, "Invalid learning rate"),
        ({"weight_decay": -1.0}, "Invalid weight_decay"),
        ({"radius": 0.0}, "Invalid radius"),
        ({"radius": math.nan}, "Invalid radius"),
        ({"projection": "ball"}, "Invalid projection"),
        ({"ascent": 1}, "Invalid ascent"),
        ({"projection": lambda p: p, "radius": 1.0}, "not both"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SGDA([torch.zeros(2, requires_grad=True)], **{"lr": 0.1, **kwargs})


def test_invalid_group_values_raise():
    x = torch.zeros(2, requires_grad=True)
    y = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid ascent"):
        SGDA([{"params": [x]}, {"params": [y], "ascent": "yes"}], lr=0.1)
    with pytest.raises(ValueError, match="Invalid radius"):
        SGDA([{"params": [x]}, {"params": [y], "radius": -2.0}], lr=0.1)


def test_one_step_is_simultaneous_descent_ascent_float64():
    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.5, 3.0], dtype=torch.float64, requires_grad=True)
    f = _quadratic_game()
    x0, y0 = x.detach().clone(), y.detach().clone()
    opt = SGDA([{"params": [x]}, {"params": [y], "ascent": True, "lr": 0.2}], lr=0.1)
    opt.zero_grad()
    f(x, y).backward()
    opt.step()
    # Both gradients at the old point (x0, y0): grad_x = a x + b y, grad_y = b x - c y.
    torch.testing.assert_close(x.detach(), x0 - 0.1 * (x0 + 2 * y0), rtol=0, atol=EXACT)
    torch.testing.assert_close(y.detach(), y0 + 0.2 * (2 * x0 - y0), rtol=0, atol=EXACT)
    assert x.dtype == y.dtype == torch.float64


def test_converges_on_strongly_convex_strongly_concave_game_at_linear_rate():
    """z_{t+1} = M z_t exactly, with M = [[1 - a lr, -b lr], [b lr, 1 - c lr]]."""
    lr, a, b, c = 0.1, 1.0, 2.0, 1.0
    x = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([-1.0], dtype=torch.float64, requires_grad=True)
    f = _quadratic_game(a, b, c)
    opt = SGDA([{"params": [x]}, {"params": [y], "ascent": True}], lr=lr)
    M = torch.tensor([[1 - a * lr, -b * lr], [b * lr, 1 - c * lr]], dtype=torch.float64)
    z = torch.tensor([3.0, -1.0], dtype=torch.float64)
    for _ in range(200):
        opt.zero_grad()
        f(x, y).backward()
        opt.step()
        z = M @ z
    torch.testing.assert_close(torch.cat([x.detach(), y.detach()]), z, rtol=1e-10, atol=EXACT)
    assert z.norm() < 1e-6 * math.sqrt(10.0)  # spectral radius sqrt(0.81 + 0.04) < 1


def test_bilinear_game_spirals_out_and_radius_projection_bounds_it():
    """On f = x y simultaneous GDA multiplies |z| by sqrt(1 + lr^2) per step (a known failure);
    a norm-ball projection keeps every iterate inside the ball."""
    lr = 0.1

    def run(radius):
        x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
        y = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
        groups = [
            {"params": [x], "radius": radius},
            {"params": [y], "ascent": True, "radius": radius},
        ]
        opt = SGDA(groups, lr=lr)
        for _ in range(100):
            opt.zero_grad()
            (x * y).sum().backward()
            opt.step()
        return x.item(), y.item()

    x, y = run(None)
    assert math.hypot(x, y) == pytest.approx((1 + lr**2) ** 50, rel=1e-10)
    x, y = run(1.5)
    assert abs(x) <= 1.5 + EXACT and abs(y) <= 1.5 + EXACT


def test_callable_projection_in_place_or_returned():
    p = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    opt = SGDA(
        [
            {"params": [p], "projection": lambda t: t.clamp_(min=-1.0, max=1.0)},
            {"params": [q], "projection": lambda t: t / t.norm()},  # returns a new tensor
        ],
        lr=0.5,
    )
    p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    q.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([1.0, -1.0], dtype=torch.float64))
    expected = torch.tensor([2.5, -4.5], dtype=torch.float64)
    torch.testing.assert_close(q.detach(), expected / expected.norm())


def test_project_to_ball_keeps_inside_points():
    inside = torch.tensor([0.3, 0.4])
    torch.testing.assert_close(project_to_ball(inside.clone(), 1.0), inside)
    outside = torch.tensor([[3.0], [4.0]])
    torch.testing.assert_close(project_to_ball(outside, 2.0), torch.tensor([[1.2], [1.6]]))


def test_weight_decay_shrinks_both_players():
    x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    x.grad = torch.zeros(1, dtype=torch.float64)
    y.grad = torch.zeros(1, dtype=torch.float64)
    SGDA([{"params": [x]}, {"params": [y], "ascent": True}], lr=0.1, weight_decay=0.5).step()
    assert x.item() == pytest.approx(1.9) and y.item() == pytest.approx(1.9)


def test_closure_runs_once_before_any_update():
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = SGDA([{"params": [x]}, {"params": [y], "ascent": True}], lr=0.1)
    calls = []

    def closure():
        opt.zero_grad()
        value = (x * y).sum() + x.square().sum()
        value.backward()
        calls.append(value.item())
        return value

    assert opt.step(closure).item() == pytest.approx(2.0)
    assert calls == [2.0]
    assert x.item() == pytest.approx(1.0 - 0.1 * 3.0) and y.item() == pytest.approx(1.1)


def test_state_dict_round_trip_continues_identically():
    f = _quadratic_game()

    def make(x0, y0):
        x = x0.clone().requires_grad_()
        y = y0.clone().requires_grad_()
        opt = SGDA(
            [{"params": [x], "radius": 5.0}, {"params": [y], "ascent": True, "lr": 0.05}],
            lr=0.1,
            weight_decay=0.01,
        )
        return x, y, opt

    def run(x, y, opt, n):
        for _ in range(n):
            opt.zero_grad()
            f(x, y).backward()
            opt.step()

    x, y, opt = make(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5]))
    run(x, y, opt, 3)
    saved = (x.detach().clone(), y.detach().clone(), copy.deepcopy(opt.state_dict()))
    run(x, y, opt, 4)
    x2, y2, opt2 = make(saved[0], saved[1])
    opt2.param_groups[1]["lr"] = 123.0  # overwritten by the load
    opt2.load_state_dict(saved[2])
    assert opt2.param_groups[1]["ascent"] is True and opt2.param_groups[1]["lr"] == 0.05
    run(x2, y2, opt2, 4)
    torch.testing.assert_close(x2.detach(), x.detach(), rtol=0, atol=0)
    torch.testing.assert_close(y2.detach(), y.detach(), rtol=0, atol=0)


def test_functional_sgda_matches_class():
    p = torch.tensor([1.0, 2.0])
    sgda([p], [torch.tensor([0.5, -1.0])], lr=0.2, ascent=True, radius=2.0)
    expected = torch.tensor([1.1, 1.8])
    torch.testing.assert_close(p, expected * min(1.0, 2.0 / expected.norm().item()))


@pytest.fixture(scope="module")
def wgan_quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("wgan")
    summary = _load_example("wgan_one_layer").main(["--quick", "--out", str(out)])
    return out, summary


def test_wgan_example_recovers_generator_in_two_dimensions(wgan_quick):
    """Paper's Fig. 2 setting (k=1, d=2, tanh, A* = [1, 1]^T) from 5 random starts."""
    out, summary = wgan_quick
    relative = summary["fig2_relative_error"]["tanh"]
    assert len(relative) == 5 and max(relative) < 0.05
    for a in summary["fig2_final_A"]["tanh"]:  # each run converged to +-[1, 1]
        assert abs(abs(a[0]) - 1) < 0.05 and abs(abs(a[1]) - 1) < 0.05 and a[0] * a[1] > 0
    assert (out / "wgan_one_layer.png").stat().st_size > 0
    assert (
        json.loads((out / "summary.json").read_text())["fig2_relative_error"]
        == summary["fig2_relative_error"]
    )


def test_wgan_example_error_falls_with_sample_count(wgan_quick):
    """Paper's Fig. 1 setting (k=2, d=5): more samples n = m give a smaller recovery error."""
    _, summary = wgan_quick
    (n_small, median_small, _), (n_large, median_large, _) = summary["fig1"]["5"]
    assert n_small < n_large
    assert median_large < 0.5 * median_small


def test_wgan_recovery_starts_far_from_the_target():
    """Guard against a vacuous check: the random starts are far from A* A*^T."""
    example = _load_example("wgan_one_layer")
    res = example.recover(
        torch.ones(2, 1, dtype=torch.float64), n=100, m=100, steps=1, lr=0.0, runs=5, seed=0
    )
    a0 = res["A0"]
    start_error = torch.linalg.matrix_norm(a0 @ a0.transpose(1, 2) - torch.ones(2, 2))
    assert start_error.min() > 0.2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_step_with_radius_projection():
    x = torch.tensor([3.0, 4.0], dtype=torch.float64, device="cuda", requires_grad=True)
    y = torch.tensor([1.0], dtype=torch.float64, device="cuda", requires_grad=True)
    opt = SGDA([{"params": [x], "radius": 1.0}, {"params": [y], "ascent": True}], lr=0.1)
    x.grad = torch.zeros_like(x)
    y.grad = torch.ones_like(y)
    opt.step()
    torch.testing.assert_close(x.detach().cpu(), torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert y.item() == pytest.approx(1.1)
