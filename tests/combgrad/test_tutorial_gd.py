"""Tests for examples/gradient_descent_tutorial.py: closed form, regimes, torch.optim.SGD twin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gradient_descent_tutorial.py"
REL = 1e-12


@pytest.fixture(scope="module")
def gd():
    spec = importlib.util.spec_from_file_location("gradient_descent_tutorial", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("alpha", [0.05, 0.3, 0.5, 0.75, 0.99, 1.0, 1.05, 1.5])
@pytest.mark.parametrize("w0", [1.0, 4.2, -7.0])
def test_iterates_match_closed_form(gd, alpha, w0):
    n_steps = 40
    w = gd.gradient_descent(w0, alpha, n_steps)
    assert w.shape == (n_steps + 1,)
    expected = gd.closed_form(w0, alpha, np.arange(n_steps + 1))
    scale = np.maximum(1.0, np.abs(expected))  # relative for the diverging runs
    assert np.all(np.abs(w - expected) <= REL * scale * 10)  # a few roundings per step
    assert w[0] == w0


@given(
    w0=st.floats(-100, 100, allow_nan=False),
    alpha=st.floats(0.0, 2.0, allow_nan=False),
    t=st.integers(0, 25),
)
@settings(max_examples=60, deadline=None)
def test_closed_form_property(gd, w0, alpha, t):
    w = gd.gradient_descent(w0, alpha, t)[-1]
    expected = gd.closed_form(w0, alpha, t)
    assert w == pytest.approx(expected, rel=1e-9, abs=1e-9 * max(1.0, abs(w0)))


def test_gradient_matches_finite_differences(gd):
    w = np.linspace(-2.0, 6.0, 17)
    h = 1e-6
    numeric = (gd.cost(w + h) - gd.cost(w - h)) / (2 * h)
    np.testing.assert_allclose(gd.gradient(w), numeric, rtol=1e-7, atol=1e-7)
    assert gd.cost(3.0) == 0.0 and gd.gradient(3.0) == 0.0  # the minimum: w = 3, J = 0


def _steps_for_factor(alpha, factor):
    """Steps after which the error has changed by `factor` (from |w_t - 3| = |1 - 2a|^t |w0 - 3|)."""
    return int(np.ceil(np.log(factor) / np.log(abs(1 - 2 * alpha))))


@pytest.mark.parametrize("alpha", [0.01, 0.2, 0.49, 0.51, 0.8, 0.99])
def test_converges_for_alpha_between_zero_and_one(gd, alpha):
    w = gd.gradient_descent(1.0, alpha, _steps_for_factor(alpha, 1e-10))
    err = np.abs(w - 3.0)
    assert err[-1] < 1e-8
    resolved = err[:-1] > 1e-12  # above rounding level near w = 3
    assert np.all(err[1:][resolved] < err[:-1][resolved])  # the error shrinks at every step


@pytest.mark.parametrize("alpha", [1.01, 1.2, 2.0])
def test_diverges_for_alpha_above_one(gd, alpha):
    w = gd.gradient_descent(1.0, alpha, _steps_for_factor(alpha, 1e10))
    err = np.abs(w - 3.0)
    assert np.all(err[1:] > err[:-1])
    assert err[-1] > 1e9 * err[0]


def test_step_size_regimes(gd):
    w0 = 1.0
    monotone = gd.gradient_descent(w0, 0.3, 20)
    assert np.all(np.diff(monotone) > 0) and np.all(monotone < 3.0)  # approaches from one side
    oscillating = gd.gradient_descent(w0, 0.75, 20) - 3.0
    assert np.all(np.sign(oscillating[1:]) == -np.sign(oscillating[:-1]))  # overshoots each step
    assert gd.gradient_descent(w0, 0.5, 1)[1] == 3.0  # exact in one step
    cycling = gd.gradient_descent(w0, 1.0, 6)
    np.testing.assert_array_equal(cycling, [1.0, 5.0, 1.0, 5.0, 1.0, 5.0, 1.0])
    assert gd.regime(0.3) == "monotone convergence"
    assert gd.regime(0.75) == "oscillating convergence"
    assert gd.regime(1.0).startswith("cycles")
    assert gd.regime(1.05) == "diverges"


@pytest.mark.parametrize("alpha", [0.1, 0.75, 1.0, 1.05])
def test_torch_sgd_with_autograd_matches_numpy(gd, alpha):
    w_np = gd.gradient_descent(1.0, alpha, 25)
    w_torch = gd.torch_gradient_descent(1.0, alpha, 25)
    np.testing.assert_allclose(w_torch, w_np, rtol=REL, atol=REL)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((float("nan"), 0.1, 3), "`w0`"),
        ((1.0, float("inf"), 3), "`alpha`"),
        ((1.0, 0.1, -1), "`n_steps`"),
    ],
)
def test_invalid_inputs_raise(gd, args, match):
    with pytest.raises(ValueError, match=match):
        gd.gradient_descent(*args)
    with pytest.raises(ValueError, match=match):
        gd.torch_gradient_descent(*args)


def test_main_writes_figures(gd, tmp_path, capsys):
    results = gd.main(["--out", str(tmp_path), "--steps", "8"])
    assert set(results) == set(gd.DEFAULT_ALPHAS)
    for name in ("gd_regimes.png", "gd_error.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
