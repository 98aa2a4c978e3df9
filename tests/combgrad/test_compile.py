"""`torch.compile` works with every combinatorial loss and LP layer (a graph break around the solve).

Each case runs a small model plus the loss or layer eagerly and under `torch.compile` with the
given Dynamo backend, and compares the values and the gradients of every input and parameter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from combgrad import lp_value
from combgrad.losses import (
    AlignmentLoss,
    MatchingLoss,
    RobustIBLoss,
    alignment_loss,
    matching_loss,
    robust_ib_loss,
)
from combgrad.nn import LPValue

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-12


def _lp_data():
    g = torch.Generator().manual_seed(0)
    A_ub = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.1
    b_ub = torch.rand(3, generator=g, dtype=torch.float64) + 1.0
    A_eq = torch.ones(1, 4, dtype=torch.float64)
    b_eq = torch.ones(1, dtype=torch.float64)
    return A_ub, b_ub, A_eq, b_eq


def _case_lp_value(x, weight):
    A_ub, b_ub, A_eq, b_eq = _lp_data()
    c = torch.tanh(x @ weight)  # (B, 4) costs from a small model
    return lp_value(c, A_ub, b_ub * (1 + weight.sum()), A_eq, b_eq, bounds=(0, 1)).sum()


def _case_lp_value_unbatched(x, weight):
    A_ub, b_ub, A_eq, b_eq = _lp_data()
    c = torch.tanh(x[0] @ weight)
    return lp_value(c, A_ub * weight.mean(), b_ub, A_eq, b_eq, bounds=(0, 1))


def _case_lp_layer(x, weight):
    A_ub, b_ub, A_eq, b_eq = _lp_data()
    layer = LPValue(A_ub, b_ub, A_eq, b_eq, bounds=(0, 1), dtype=torch.float64)
    return layer(torch.sin(x @ weight)).mean()


def _case_alignment(x, weight, solver="exact"):
    log_probs = torch.log_softmax((x @ weight).reshape(2, 3, 4).repeat(1, 2, 1), -1)  # (2, 6, 4)
    targets = torch.tensor([[1, 2, 3, 0], [3, 3, 0, 0]])
    return alignment_loss(log_probs, targets, [6, 5], [4, 2], gap_cost=0.7, solver=solver)


def _case_alignment_lp(x, weight):
    return _case_alignment(x, weight, solver="lp")


def _case_alignment_module(x, weight):
    log_probs = torch.log_softmax((x @ weight).reshape(2, 3, 4).repeat(1, 2, 1), -1)
    targets = torch.tensor([[1, 2, 0, 0], [3, 1, 2, 0]])
    loss = AlignmentLoss(gap_cost=1.5, blank=0, reduction="sum")
    return loss(log_probs, targets, [6, 6], [2, 3])


def _case_matching(x, weight):
    log_probs = torch.log_softmax((x @ weight).reshape(2, 3, 4), -1)  # (2, 3, 4)
    labels = torch.tensor([[3, 0, 2], [1, 1, -100]])
    return matching_loss(log_probs, labels)


def _case_matching_module(x, weight):
    log_probs = torch.log_softmax((x @ weight).reshape(2, 3, 4), -1)
    labels = torch.tensor([[0, 1], [2, 3]])
    return MatchingLoss(reduction="sum", solver="lp")(log_probs, labels)


def _case_robust_ib(x, weight):
    g = torch.Generator().manual_seed(3)
    decoder = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        decoder.weight.copy_(torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4))
        decoder.bias.zero_()
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    return robust_ib_loss(
        lambda inp: torch.tanh(inp @ weight), decoder, x, y, sigma=0.5, alpha=0.3, generator=g
    )


def _case_robust_ib_module(x, weight):
    decoder = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        decoder.weight.copy_(torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(3, 4))
        decoder.bias.zero_()
    y = torch.tensor([0, 1, 2, 1, 0, 2])
    # sigma large and alpha > 0 with the exact Fisher term: no sampling enters the gradient
    # of the penalty, and the noise is drawn from a seeded generator inside the call.
    criterion = RobustIBLoss(sigma=0.5, beta=0.1, alpha=0.3, fisher="exact")
    torch.manual_seed(5)
    return criterion(lambda inp: torch.tanh(inp @ weight), decoder, x, y)


CASES = {
    "lp_value": _case_lp_value,
    "lp_value_unbatched": _case_lp_value_unbatched,
    "LPValue": _case_lp_layer,
    "alignment_loss": _case_alignment,
    "alignment_loss_lp": _case_alignment_lp,
    "AlignmentLoss": _case_alignment_module,
    "matching_loss": _case_matching,
    "MatchingLoss": _case_matching_module,
    "robust_ib_loss": _case_robust_ib,
    "RobustIBLoss": _case_robust_ib_module,
}


def _inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 4, generator=g, dtype=torch.float64)
    return x, weight


def _value_and_grads(fn, x, weight):
    x = x.clone().requires_grad_()
    weight = weight.clone().requires_grad_()
    out = fn(x, weight)
    out.backward()
    return out.detach(), x.grad, weight.grad


# aot_eager (Dynamo + AOTAutograd) for every case, Dynamo alone for lp_value; the exact
# alignment DP is checked in a fresh process below (its crash needed numba's first compilation).
PAIRS = [(case, "aot_eager") for case in CASES if case != "alignment_loss"]
PAIRS.append(("lp_value", "eager"))


@pytest.mark.slow  # Dynamo tracing: several seconds per case on 2 busy cores
@pytest.mark.parametrize(("case", "compile_backend"), PAIRS)
def test_compiled_matches_eager(case, compile_backend):
    fn = CASES[case]
    x, weight = _inputs()
    torch._dynamo.reset()
    compiled = torch.compile(fn, backend=compile_backend)
    expected = _value_and_grads(fn, x, weight)
    for _ in range(2):  # the second call runs the cached graphs
        got = _value_and_grads(compiled, x, weight)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=TOL, atol=TOL)


def test_fisher_information_penalty_compiled_matches_eager():
    from combgrad.losses import fisher_information_penalty

    def fn(x, weight):
        return fisher_information_penalty(lambda inp: torch.tanh(inp @ weight), x, 0.5)

    x, weight = _inputs()
    torch._dynamo.reset()
    expected = _value_and_grads(fn, x, weight)
    got = _value_and_grads(torch.compile(fn, backend="aot_eager"), x, weight)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=TOL, atol=TOL)


@pytest.mark.slow
def test_in_a_fresh_process():
    """A new process: the alignment DP's first numba compilation happens under torch.compile."""
    script = textwrap.dedent(
        """
        import torch
        from tests.combgrad.test_compile import CASES, _inputs, _value_and_grads
        for backend in ("eager", "aot_eager"):
            torch._dynamo.reset()
            fn = CASES["alignment_loss"]
            x, weight = _inputs()
            got = _value_and_grads(torch.compile(fn, backend=backend), x, weight)
            expected = _value_and_grads(fn, x, weight)
            for e, g in zip(expected, got):
                torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
