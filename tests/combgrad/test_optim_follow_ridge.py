"""Tests for combgrad.optim.FollowTheRidge and its Hessian solve."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from combgrad.optim import FollowTheRidge
from combgrad.optim.follow_ridge import hessian_solve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "follow_ridge_gan.py"
LR = 0.05  # the paper's step size on the quadratics


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """The problems are tiny: one thread avoids thread start-up and contention overheads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def f1(x, y):  # (0, 0) is a local (and global) minimax
    return (-3 * x**2 - y**2 + 4 * x * y).sum()


def f2(x, y):  # (0, 0) is a stationary point but not a local minimax
    return (3 * x**2 + y**2 + 4 * x * y).sum()


def run_quadratic(fn, start, steps, correction, dtype=torch.float64, **kwargs):
    x = torch.tensor([start[0]], dtype=dtype, requires_grad=True)
    y = torch.tensor([start[1]], dtype=dtype, requires_grad=True)
    opt = FollowTheRidge([x], [y], lr_x=LR, correction=correction, **kwargs)
    for _ in range(steps):
        opt.step(lambda: fn(x, y))
    return torch.cat([x.detach(), y.detach()])


# ---------------------------------------------------------------------------- the quadratics
def test_f1_gda_diverges_fr_converges():
    z0 = torch.tensor([5.0, 7.0], dtype=torch.float64)
    fr = run_quadratic(f1, (5.0, 7.0), 300, correction=True)
    gda = run_quadratic(f1, (5.0, 7.0), 300, correction=False)
    # FR's Jacobian has the double eigenvalue 1 - 2*lr = 0.9; GDA's is 1 + 2*lr = 1.1
    assert fr.norm() < 1e-6 * z0.norm()
    assert gda.norm() > 1e6 * z0.norm()


def test_f1_one_step_matches_closed_form():
    """y <- y + lr * grad_y f + lr * H_yy^{-1} H_yx grad_x f = y + lr * (16 x - 10 y)."""
    x0, y0 = 5.0, 7.0
    z = run_quadratic(f1, (x0, y0), 1, correction=True)
    expected_x = x0 - LR * (-6 * x0 + 4 * y0)
    expected_y = y0 + LR * (16 * x0 - 10 * y0)
    torch.testing.assert_close(z, torch.tensor([expected_x, expected_y], dtype=torch.float64))


def test_f2_gda_converges_fr_does_not():
    z0 = torch.tensor([6.0, 5.0], dtype=torch.float64)
    fr = run_quadratic(f2, (6.0, 5.0), 300, correction=True)
    gda = run_quadratic(f2, (6.0, 5.0), 300, correction=False)
    assert gda.norm() < 1e-6 * z0.norm()
    assert fr.norm() > 1e6 * z0.norm()


def test_positive_momentum_keeps_fr_convergent():
    z0 = torch.tensor([5.0, 7.0], dtype=torch.float64)
    fr = run_quadratic(f1, (5.0, 7.0), 300, correction=True, momentum=0.3)
    gda = run_quadratic(f1, (5.0, 7.0), 300, correction=False, momentum=0.3)
    assert fr.norm() < 1e-4 * z0.norm()
    assert gda.norm() > 1e6 * z0.norm()


def test_rmsprop_preconditioned_fr_approaches_minimax():
    z0 = torch.tensor([5.0, 7.0], dtype=torch.float64)
    fr = run_quadratic(f1, (5.0, 7.0), 600, correction=True, preconditioner="rmsprop")
    gda = run_quadratic(f1, (5.0, 7.0), 600, correction=False, preconditioner="rmsprop")
    assert fr.norm() < 0.01 * z0.norm()
    assert gda.norm() > fr.norm()


def test_vector_quadratic_step_matches_dense_formula():
    """Several coordinates, preconditioning and momentum off: one step against dense algebra."""
    gen = torch.Generator().manual_seed(0)
    n, m = 3, 4
    A = torch.randn(n, n, generator=gen, dtype=torch.float64)
    A = A @ A.T + n * torch.eye(n, dtype=torch.float64)
    C = torch.randn(m, m, generator=gen, dtype=torch.float64)
    C = C @ C.T + m * torch.eye(m, dtype=torch.float64)  # f is concave in y: H_yy = -C
    B = torch.randn(n, m, generator=gen, dtype=torch.float64)
    x0 = torch.randn(n, generator=gen, dtype=torch.float64)
    y0 = torch.randn(m, generator=gen, dtype=torch.float64)
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    opt = FollowTheRidge([x], [y], lr_x=0.1, lr_y=0.2, cg_iters=m)
    opt.step(lambda: 0.5 * x @ A @ x + x @ B @ y - 0.5 * y @ C @ y)
    grad_x = A @ x0 + B @ y0
    grad_y = B.T @ x0 - C @ y0
    expected_y = y0 + 0.2 * grad_y + 0.1 * torch.linalg.solve(-C, B.T @ grad_x)
    torch.testing.assert_close(x.detach(), x0 - 0.1 * grad_x)
    torch.testing.assert_close(y.detach(), expected_y)
    torch.testing.assert_close(x.grad, grad_x)  # step() leaves the gradients for logging
    torch.testing.assert_close(y.grad, grad_y)


# ---------------------------------------------------------------------------- the CG solve
def _random_problem(seed: int):
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    ys = [
        torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_(),
        torch.randn(2, generator=gen, dtype=torch.float64).requires_grad_(),
    ]
    M = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    M = M + M.T  # indefinite

    def f(y1, y2):
        y = torch.cat([y1, y2])
        return torch.tanh(W @ y).sum() + 0.5 * y @ M @ y + (y**4).sum() / 12

    return f, ys, gen


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_hessian_solve_matches_dense_solve(damping):
    f, ys, gen = _random_problem(seed=3)
    with torch.enable_grad():
        grad_y = torch.autograd.grad(f(*ys), ys, create_graph=True)
    rhs = [torch.randn(3, generator=gen, dtype=torch.float64),
           torch.randn(2, generator=gen, dtype=torch.float64)]  # fmt: skip
    dense = torch.autograd.functional.hessian(
        lambda y: f(y[:3], y[3:]), torch.cat([p.detach() for p in ys])
    )
    assert torch.linalg.eigvalsh(dense).min() < 0 < torch.linalg.eigvalsh(dense).max()
    b = torch.cat(rhs)
    expected = torch.linalg.solve(dense @ dense + damping * torch.eye(5, dtype=b.dtype), dense @ b)
    solution = hessian_solve(grad_y, ys, rhs, damping=damping, max_iter=20, tol=1e-14)
    torch.testing.assert_close(torch.cat(solution), expected, atol=1e-9, rtol=1e-9)
    if damping == 0.0:
        torch.testing.assert_close(torch.cat(solution), torch.linalg.solve(dense, b))


def test_hessian_solve_handles_y_the_function_ignores():
    y_used = torch.randn(3, dtype=torch.float64, requires_grad=True)
    y_unused = torch.randn(2, dtype=torch.float64, requires_grad=True)
    grad_y = torch.autograd.grad(-(y_used**2).sum() + 0 * y_unused.sum(), [y_used, y_unused],
                                 create_graph=True)  # fmt: skip
    rhs = [torch.ones(3, dtype=torch.float64), torch.ones(2, dtype=torch.float64)]
    u_used, u_unused = hessian_solve(grad_y, [y_used, y_unused], rhs, max_iter=5)
    torch.testing.assert_close(u_used, torch.full((3,), -0.5, dtype=torch.float64))
    torch.testing.assert_close(u_unused, torch.zeros(2, dtype=torch.float64))  # min-norm


def test_hessian_solve_validation():
    y = torch.zeros(2, requires_grad=True)
    grad_y = torch.autograd.grad(-(y**2).sum(), [y], create_graph=True)
    with pytest.raises(ValueError, match="`rhs` entry of shape"):
        hessian_solve(grad_y, [y], [torch.ones(3)])
    with pytest.raises(ValueError, match="one entry per tensor"):
        hessian_solve(grad_y, [y], [])
    with pytest.raises(ValueError, match="Invalid damping"):
        hessian_solve(grad_y, [y], [torch.ones(2)], damping=-1.0)
    with pytest.raises(ValueError, match="Invalid max_iter"):
        hessian_solve(grad_y, [y], [torch.ones(2)], max_iter=0)


# ---------------------------------------------------------------------------- validation
def _params():
    return [torch.zeros(2, requires_grad=True)], [torch.zeros(3, requires_grad=True)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr_x": -0.1}, "Invalid learning rate"),
        ({"lr_y": float("nan")}, "Invalid learning rate"),
        ({"momentum": 1.0}, "Invalid momentum"),
        ({"momentum": -0.1}, "Invalid momentum"),
        ({"preconditioner": "adam"}, "Invalid preconditioner"),
        ({"beta": 1.0}, "Invalid beta"),
        ({"eps": -1.0}, "Invalid epsilon"),
        ({"damping": -1e-3}, "Invalid damping"),
        ({"damping": math.inf}, "Invalid damping"),
        ({"cg_iters": 0}, "Invalid cg_iters"),
        ({"cg_iters": 2.5}, "Invalid cg_iters"),
        ({"cg_tol": -1.0}, "Invalid cg_tol"),
    ],
)
def test_invalid_hyperparameters(kwargs, match):
    xs, ys = _params()
    with pytest.raises(ValueError, match=match):
        FollowTheRidge(xs, ys, **kwargs)


def test_invalid_parameter_lists():
    xs, ys = _params()
    with pytest.raises(ValueError, match="`x_params` is empty"):
        FollowTheRidge([], ys)
    with pytest.raises(TypeError, match="not a tensor"):
        FollowTheRidge(xs[0], ys)
    with pytest.raises(TypeError, match="not a set"):
        FollowTheRidge(xs, set(ys))
    with pytest.raises(ValueError, match="require grad"):
        FollowTheRidge(xs, [torch.zeros(2)])
    with pytest.raises(ValueError, match="more than one parameter group"):
        FollowTheRidge(xs, xs)
    opt = FollowTheRidge(xs, ys)
    with pytest.raises(RuntimeError, match="exactly two parameter groups"):
        opt.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})


def test_bad_closures():
    xs, ys = _params()
    opt = FollowTheRidge(xs, ys)
    with pytest.raises(ValueError, match="scalar"):
        opt.step(lambda: xs[0] * 2)
    with pytest.raises(ValueError, match="non-finite"):
        opt.step(lambda: (xs[0].sum() + ys[0].sum()) * math.inf)
    with pytest.raises(ValueError, match="does not depend"):
        opt.step(lambda: torch.tensor(1.0))
    with pytest.raises(ValueError, match="needs a closure"):
        opt.step(None)


# ---------------------------------------------------------------------------- state, dtypes
def _momentum_run(state_from=None, steps=3):
    x = torch.tensor([5.0, -1.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([7.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = FollowTheRidge([x], [y], lr_x=LR, momentum=0.5, preconditioner="rmsprop")
    if state_from is not None:
        with torch.no_grad():
            x.copy_(state_from[0])
            y.copy_(state_from[1])
        opt.load_state_dict(state_from[2])
    for _ in range(steps):
        opt.step(lambda: f1(x, y))
    return x.detach().clone(), y.detach().clone(), opt.state_dict()


def test_state_dict_round_trip():
    x_a, y_a, state_a = _momentum_run(steps=3)
    assert {"momentum_buffer", "square_avg", "step"} <= set(state_a["state"][0])
    x_full, y_full, _ = _momentum_run(steps=5)  # 3 + 2 steps without interruption
    x_b, y_b, _ = _momentum_run(state_from=(x_a, y_a, state_a), steps=2)
    torch.testing.assert_close(x_b, x_full, atol=0, rtol=0)
    torch.testing.assert_close(y_b, y_full, atol=0, rtol=0)


def test_float32_matches_float64():
    z64 = run_quadratic(f1, (5.0, 7.0), 50, correction=True)
    z32 = run_quadratic(f1, (5.0, 7.0), 50, correction=True, dtype=torch.float32)
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32.double(), z64, atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- the example
def test_example_quick_fr_gradient_norm_below_gda(tmp_path):
    spec = importlib.util.spec_from_file_location("follow_ridge_gan", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    summary = example.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "grad_norm.png").is_file()
    for fr, gda in zip(summary["FR"]["final_grad_norm"], summary["GDA"]["final_grad_norm"]):
        assert fr < gda
