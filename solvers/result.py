"""The one result type of `solvers`: `Status` and `Solution`."""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from .errors import InfeasibleError, SolverError, TimeLimitError, UnboundedError

__all__ = ["STATUS_MESSAGES", "Solution", "Status"]


class Status(enum.IntEnum):
    """Outcome of a solve. Only `OPTIMAL` carries a usable solution."""

    OPTIMAL = 0
    INFEASIBLE = 1
    UNBOUNDED = 2
    INFEASIBLE_OR_UNBOUNDED = 3
    TIME_LIMIT = 4
    NUMERICAL = 5
    ERROR = 6


STATUS_MESSAGES: dict[Status, str] = {
    Status.OPTIMAL: "Optimal solution found.",
    Status.INFEASIBLE: "The problem is infeasible.",
    Status.UNBOUNDED: "The problem is unbounded.",
    Status.INFEASIBLE_OR_UNBOUNDED: "The problem is infeasible or unbounded.",
    Status.TIME_LIMIT: "The time limit was reached before optimality was proven.",
    Status.NUMERICAL: "The solver ran into numerical difficulties; the answer is not trustworthy.",
    Status.ERROR: "The solver failed.",
}


def _readonly(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a = np.asarray(a, dtype=np.float64)
        a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Solution:
    r"""Result of one solve, identical in shape for every backend.

    Attributes:
        status: the outcome; only `Status.OPTIMAL` carries a proven optimum.
        x: primal solution, shape (n,), or None when there is none. For a
            `TIME_LIMIT` MILP this is the best incumbent, if any.
        objective: c @ x at the reported solution; +inf when infeasible,
            -inf when unbounded, nan when unknown.
        duals_ub: dz/db_ub, shape (m_ub,), all <= 0 (LP only; None for MILP).
        duals_eq: dz/db_eq, shape (m_eq,) (LP only; None for MILP).
        backend: name of the backend that produced it.
        message: human-readable explanation, including the raw backend status.
        solve_time: wall-clock seconds spent in the backend call.
        info: extra facts. Every backend: `raw_status`; after an `OPTIMAL`
            answer the re-check's residuals `primal_residual` (largest violation of
            a row or bound), `relative_primal_residual` (the same, relative to
            what the backend guarantees) and, for LPs from "pdlp" and "cvxpy"
            (duals that are not exact vertex duals), `dual_residual`.
            For an `INFEASIBLE` LP solved by "highs" (or "cvxpy" with its HiGHS
            solver): `farkas_ub`, shape (m_ub,), and `farkas_eq`, shape (m_eq,),
            an infeasibility certificate in the duals' sign convention: a ray
            $y$ of the dual with $y_{ub} \le 0$ along which the dual objective
            grows ($b^\top y > 0$ and $A^\top y = 0$ when no variable is bounded).
            Other backends give no certificate. Some backends add iteration
            counts or the MIP gap.
    """

    status: Status
    x: np.ndarray | None = None
    objective: float = float("nan")
    duals_ub: np.ndarray | None = None
    duals_eq: np.ndarray | None = None
    backend: str = ""
    message: str = ""
    solve_time: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "x", _readonly(self.x))
        object.__setattr__(self, "duals_ub", _readonly(self.duals_ub))
        object.__setattr__(self, "duals_eq", _readonly(self.duals_eq))
        object.__setattr__(self, "objective", float(self.objective))

    @classmethod
    def _from_fresh_arrays(cls, status: Status, **values: Any) -> Solution:
        """A Solution whose arrays the caller has just made (float64, owned by no one else).

        What `__init__` does, without its conversions: a backend's hot path (per-call
        overhead of small re-solves). `status` must be a `Status`, `objective` a float.
        """
        sol = object.__new__(cls)
        state = sol.__dict__
        state.update(_DEFAULTS)
        state.update(values)
        state["status"] = status
        state["info"] = values.get("info", {})
        for name in ("x", "duals_ub", "duals_eq"):
            array = state[name]
            if array is not None:
                array.setflags(write=False)
        return sol

    @property
    def success(self) -> bool:
        """True exactly when `status` is `Status.OPTIMAL`."""
        return self.status is Status.OPTIMAL

    def raise_for_status(self) -> Solution:
        """Return `self` if optimal, else raise the matching `SolverError` subclass."""
        if self.status is Status.OPTIMAL:
            return self
        text = f"[{self.backend}] {self.message or STATUS_MESSAGES[self.status]}"
        if self.status is Status.INFEASIBLE:
            raise InfeasibleError(text)
        if self.status is Status.UNBOUNDED:
            raise UnboundedError(text)
        if self.status is Status.TIME_LIMIT:
            raise TimeLimitError(text)
        raise SolverError(text)

    def __repr__(self) -> str:
        n = None if self.x is None else self.x.shape[0]
        return (
            f"Solution(status={self.status.name}, objective={self.objective!r}, n={n}, "
            f"backend={self.backend!r}, solve_time={self.solve_time:.3g}s, message={self.message!r})"
        )


_DEFAULTS = {
    f.name: f.default for f in fields(Solution) if f.default is not MISSING and f.name != "info"
}
