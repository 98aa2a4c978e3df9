"""The adapter contract every backend implements.

An adapter translates a `LinearProgram` once, in matrix form, runs the solver,
checks every returned status, and hands back a `Solution` whose duals already
follow the package convention (duals = dz/db). Feasibility re-checks and timing
are done once, in `solvers._solve`, for every backend alike.
"""

from __future__ import annotations

import abc
import importlib.util
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import NumericLimits
from ..problem import LinearProgram
from ..result import Solution

__all__ = ["Backend", "Model"]


class Model(abc.ABC):
    """A backend model kept alive so that new costs do not rebuild it."""

    @abc.abstractmethod
    def solve(self, c: np.ndarray | None = None) -> Solution:
        """Solve, optionally with new costs `c` (same shape as the original)."""

    def release(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """The model will not be solved again: the backend may recycle its resources."""


class Backend(abc.ABC):
    """One solver behind the common interface.

    Class attributes are the capability flags read by the registry.
    """

    name: str = ""
    description: str = ""
    supports_integer: bool = False
    supports_continuous: bool = True
    supports_duals: bool = False
    exact: bool = True  # False for first-order methods (PDLP): answers to a looser tolerance
    # The feasibility the solver guarantees: per row, relative to 1 + |b_i| (simplex, branch
    # and cut), or, when `feasibility_per_row` is False, relative to 1 + max |b| (PDLP bounds
    # a norm of the whole residual). Answers are re-checked at ten times this tolerance.
    feasibility_tol: float = 1e-6
    feasibility_per_row: bool = True
    # Numbers the solver would silently change (read as infinite, dropped); None: no limit.
    numeric_limits: NumericLimits | None = None
    required_modules: tuple[str, ...] = ()

    def is_installed(self) -> bool:
        """Whether the backend's packages can be imported (checked without importing them)."""
        return all(importlib.util.find_spec(m) is not None for m in self.required_modules)

    @abc.abstractmethod
    def build(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> Model:
        """Translate `problem` into a live backend model."""

    def limits(self, options: Mapping[str, Any]) -> NumericLimits | None:
        """The numeric limits that apply with these `options`."""
        return self.numeric_limits

    def tolerance(self, problem: LinearProgram, options: Mapping[str, Any]) -> float:
        """The feasibility tolerance this backend guarantees on `problem` with `options`."""
        return self.feasibility_tol

    def capabilities(self) -> dict[str, bool]:
        """The capability flags as a dict."""
        return {
            "integer": self.supports_integer,
            "continuous": self.supports_continuous,
            "duals": self.supports_duals,
            "exact": self.exact,
        }
