"""Shared plumbing for the solution maps and DFL losses: validation and the oracle call.

Any object with an integer attribute `n` and a method `solve(costs)` mapping a `(B, n)`
float64 array to `(x, values)` (`x` of shape `(B, n)`, `values` of shape `(B,)`) is an oracle,
e.g. [solvers.Oracle][solvers.oracle.Oracle]. Costs are solved on the CPU in float64; results come
back on the input's device and dtype.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

__all__ = [
    "ArgminOracle",
    "as_batch",
    "check_costs",
    "check_n_samples",
    "check_oracle",
    "check_positive",
    "check_shape",
    "solve",
    "solve_array",
    "to_array64",
    "to_cpu64",
]


class ArgminOracle(Protocol):
    """The oracle contract: `x, values = oracle.solve(costs)` for `(B, n)` costs."""

    n: int

    def solve(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def check_oracle(oracle: Any) -> int:
    """Return `oracle.n` after checking that `oracle` looks like an oracle."""
    solve_fn = getattr(oracle, "solve", None)
    n = getattr(oracle, "n", None)
    if not callable(solve_fn) or not isinstance(n, int | np.integer) or n < 1:
        raise TypeError(
            "`oracle` must have a method `solve(costs)` returning `(x, values)` and a "
            f"positive integer attribute `n` (e.g. a `solvers.Oracle`); got {type(oracle).__name__}."
        )
    return int(n)


def check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite positive number; got {value!r}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be positive; got {value!r}.")
    return float(value)


def check_n_samples(n_samples: int) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 1:
        raise ValueError(f"`n_samples` must be a positive integer; got {n_samples!r}.")
    return int(n_samples)


def check_costs(costs: Any, n: int, name: str = "costs") -> torch.Tensor:
    """A floating `(B, n)` or `(n,)` tensor of finite numbers (returned as given)."""
    check_shape(costs, n, name)
    if _sum_is_finite(costs.detach()):  # one cheap pass: NaN/inf show in the sum
        return costs
    finite = torch.isfinite(costs.detach())
    if not bool(finite.all()):  # (a finite tensor whose sum overflows passes here)
        bad = (~finite).nonzero()[0].tolist()
        value = costs.detach()[tuple(bad)].item()
        raise ValueError(f"`{name}` must be finite; found {value} at index {tuple(bad)}.")
    return costs


def check_shape(costs: Any, n: int, name: str = "costs") -> torch.Tensor:
    """`check_costs` without the finiteness pass (for callers that check values later)."""
    if not isinstance(costs, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(costs).__name__}.")
    if not costs.is_floating_point():
        raise TypeError(f"`{name}` must be floating point; got {costs.dtype}.")
    if costs.dim() not in (1, 2) or costs.shape[-1] != n:
        raise ValueError(
            f"`{name}` must have shape (B, n) or (n,) with n = oracle.n = {n}; "
            f"got {tuple(costs.shape)}."
        )
    if costs.dim() == 2 and costs.shape[0] == 0:
        raise ValueError(
            f"`{name}` must hold at least one cost vector; got shape {tuple(costs.shape)}."
        )
    return costs


def _sum_is_finite(t: torch.Tensor) -> bool:
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        # numpy's sum of a small CPU tensor costs a fraction of torch's per-op dispatch
        return bool(np.isfinite(t.numpy().sum()))
    return bool(torch.isfinite(t.sum()))


def as_batch(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0) if t.dim() == 1 else t


def to_cpu64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(device="cpu", dtype=torch.float64)


def solve(oracle: Any, costs: torch.Tensor, what: str = "costs") -> torch.Tensor:
    """Minimizers `x*(costs)` as a float64 CPU tensor, shape `(B, n)`.

    Args:
        oracle: the oracle.
        costs: `(B, n)` float64 CPU tensor.
        what: which costs these are, for error messages.
    """
    return torch.from_numpy(solve_array(oracle, costs.numpy(), what))


def to_array64(t: torch.Tensor) -> np.ndarray:
    """`t` as a float64 numpy array on the CPU (a view when it already is one)."""
    t = t.detach()
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        # numpy's cast of a small array costs a fraction of torch's per-op dispatch
        return t.numpy().astype(np.float64, copy=False)
    return t.to(device="cpu", dtype=torch.float64).numpy()


def solve_array(oracle: Any, costs: np.ndarray, what: str = "costs") -> np.ndarray:
    """`solve` on a float64 numpy array `(B, n)`: the minimizers as a float64 array."""
    batch, n = costs.shape
    out = oracle.solve(np.ascontiguousarray(costs))
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(
            f"`oracle.solve` must return a tuple `(x, values)`; got {type(out).__name__}."
        )
    x = np.asarray(out[0], dtype=np.float64)
    if x.shape != (batch, n):
        raise ValueError(
            f"`oracle.solve` returned x of shape {x.shape} for {what} of shape {(batch, n)}; "
            f"expected {(batch, n)}."
        )
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        item = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"`oracle.solve` returned a non-finite solution for item {item} of {what} "
            "(is the problem infeasible or unbounded for these costs?)."
        )
    return x
