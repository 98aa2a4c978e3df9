"""examples/cvxpy_allocation.py end to end on its quick path, and its SPO+ loss by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example():
    spec = importlib.util.spec_from_file_location(
        "_example_cvxpy_allocation", EXAMPLES / "cvxpy_allocation.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_run_reports_regrets_in_range():
    example = load_example()
    results = example.main(["--quick"])
    for name in ("mse", "spo+"):
        assert len(results[name]) == 1
        assert 0.0 <= results[name][0] <= 1.0  # a regret is a fraction of the optimal reward


def test_value_layer_matches_greedy_fractional_knapsack():
    """The allocation LP is a fractional knapsack: its optimum is the greedy by r / price."""
    from combgrad import CvxpyLayer

    example = load_example()
    rng = np.random.default_rng(0)
    prices = rng.uniform(1.0, 3.0, 6)
    budget = 0.3 * prices.sum()
    problem, r_param, x_var = example.make_problem(prices, budget)
    layer = CvxpyLayer(problem, parameters=[r_param], variables=[x_var])
    r = rng.uniform(0.5, 2.0, (4, 6))
    rt = torch.tensor(r, requires_grad=True)
    v = layer(rt)
    v.sum().backward()
    for i in range(4):
        x = np.zeros(6)
        left = budget
        for j in np.argsort(-r[i] / prices):
            x[j] = min(1.0, left / prices[j])
            left -= x[j] * prices[j]
        assert v[i].item() == pytest.approx(r[i] @ x, rel=1e-9)
        np.testing.assert_allclose(rt.grad[i].numpy(), x, atol=1e-9)  # dV/dr = x*
