"""Checks shared by every backend: numeric ranges before a solve, certificates after it.

`check_numeric_range` refuses a problem whose numbers a backend would silently change
(HiGHS and SCIP read |v| >= 1e20 as infinite and drop |a_ij| < 1e-9). `primal_residuals`
and `dual_residuals` re-check what a backend calls optimal, per row and per column, to
the tolerance that backend guarantees; `solvers._solve` turns a failed check into
`Status.NUMERICAL`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import CapabilityError
from .problem import LinearProgram

__all__ = [
    "NumericLimits",
    "check_costs",
    "check_numeric_range",
    "dual_residual",
    "primal_residuals",
]


@dataclass(frozen=True)
class NumericLimits:
    """What a backend can represent without changing the problem.

    Attributes:
        infinity: magnitudes at or above this are read as infinite (costs, right-hand
            sides, finite bounds); None when the backend has no such threshold.
        min_coefficient: nonzero matrix entries below this magnitude are dropped.
        max_coefficient: matrix entries at or above this magnitude are refused or
            read as infinite.
        solver: the name used in messages ("HiGHS", "SCIP").
        infinity_text: what the solver does at `infinity`, for messages.
    """

    infinity: float | None = None
    min_coefficient: float | None = None
    max_coefficient: float | None = None
    solver: str = ""
    infinity_text: str = "reads |values| >= {limit:g} as infinite"


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_costs(c: np.ndarray, limits: NumericLimits | None, backend: str) -> None:
    """Raise `CapabilityError` when a cost is at or above the backend's infinity."""
    if limits is None or limits.infinity is None or c.size == 0:
        return
    if float(np.max(np.abs(c))) >= limits.infinity:
        j = _first(np.abs(c) >= limits.infinity)
        raise CapabilityError(
            f"`c`: {limits.solver} (backend {backend!r}) "
            f"{limits.infinity_text.format(limit=limits.infinity)}, so c[{j}] = {c[j]:g} would "
            "silently change the problem. Rescale the problem, or use a backend without this "
            "limit (e.g. 'glop')."
        )


def check_numeric_range(problem: LinearProgram, limits: NumericLimits | None, backend: str) -> None:
    """Raise `CapabilityError` naming the argument and the limit when `problem` is out of range.

    Args:
        problem: the problem to be solved.
        limits: the backend's limits (None: nothing to check).
        backend: the backend's name, for the message.
    """
    if limits is None:
        return
    check_costs(problem.c, limits, backend)
    who = f"{limits.solver} (backend {backend!r})"
    if limits.infinity is not None:
        inf = limits.infinity
        for name, values in (("b_ub", problem.b_ub), ("b_eq", problem.b_eq)):
            big = np.abs(values) >= inf
            if big.any():
                i = _first(big)
                raise CapabilityError(
                    f"`{name}`: {who} {limits.infinity_text.format(limit=inf)}, so {name}[{i}] = "
                    f"{values[i]:g} would silently drop or change that constraint. Rescale the "
                    "problem, or use a backend without this limit (e.g. 'glop')."
                )
        finite = np.isfinite(problem.bounds)
        big = finite & (np.abs(problem.bounds) >= inf)
        if big.any():
            j, k = np.argwhere(big)[0]
            raise CapabilityError(
                f"`bounds`: {who} {limits.infinity_text.format(limit=inf)}, so the "
                f"{('lower', 'upper')[k]} bound {problem.bounds[j, k]:g} of variable {j} would "
                "silently be dropped. Pass None or +-inf for 'no bound', or rescale the problem."
            )
    data = np.abs(problem.stacked_constraints("csr").data)
    if data.size == 0:
        return
    if limits.min_coefficient is not None and float(data.min()) < limits.min_coefficient:
        name, i, j, value = _locate(
            problem, lambda a: (a != 0) & (np.abs(a) < limits.min_coefficient)
        )
        raise CapabilityError(
            f"`{name}`: {who} drops matrix entries with |a_ij| < {limits.min_coefficient:g}, so "
            f"{name}[{i}, {j}] = {value:g} would silently become 0 (changing the problem). Rescale "
            "the rows or columns, or use a backend without this limit (e.g. 'glop')."
        )
    if limits.max_coefficient is not None and float(data.max()) >= limits.max_coefficient:
        name, i, j, value = _locate(problem, lambda a: np.abs(a) >= limits.max_coefficient)
        raise CapabilityError(
            f"`{name}`: {who} cannot represent matrix entries with |a_ij| >= "
            f"{limits.max_coefficient:g}; {name}[{i}, {j}] = {value:g}. Rescale the problem."
        )


def _locate(problem: LinearProgram, predicate) -> tuple[str, int, int, float]:
    for name in ("A_ub", "A_eq"):
        mat = getattr(problem, name).tocoo()
        hit = predicate(mat.data)
        if hit.any():
            k = _first(hit)
            return name, int(mat.row[k]), int(mat.col[k]), float(mat.data[k])
    raise AssertionError("unreachable: no matrix entry matched")  # pragma: no cover


def _structure(problem: LinearProgram) -> dict:
    """Per-structure arrays for the checks, cached beside the stacked matrix.

    The cache is shared by every problem derived with `with_costs`, so re-solves with new
    costs pay for these once.
    """
    cache = problem.__dict__.setdefault("_stacked", {})
    found = cache.get("checks")
    if found is None:
        A = problem.stacked_constraints("csr")
        lb, ub = problem.lb, problem.ub
        b = np.concatenate([problem.b_ub, problem.b_eq])
        with np.errstate(invalid="ignore"):
            found = {
                "At": A.T.tocsr(),
                "absAt": abs(A).T.tocsr(),
                "lb_scale": 1 + np.abs(lb),  # +inf where unbounded: the violation is <= 0 there
                "ub_scale": 1 + np.abs(ub),
                "row_scale": 1 + np.abs(b),
                "lb_finite": np.isfinite(lb),
                "ub_finite": np.isfinite(ub),
            }
        cache["checks"] = found
    return found


def _dense_residual_system(problem: LinearProgram) -> tuple[np.ndarray, ...] | None:
    """`(M, r, scale)` with `max(M @ x - r, 0)` every violation, for small problems.

    Built on `LinearProgram`'s own dense system (bounds, `<=` rows, both sides of each
    equality); `scale` is what each row's violation is measured against per row
    (`1 + |bound|` or `1 + |b_i|`). Checking a small re-solve's answer is then three numpy
    calls instead of a sparse product and a dozen reductions (per-call overhead).
    """
    cache = problem.__dict__.setdefault("_stacked", {})
    if "dense_checks" not in cache:
        system = problem._residual_system()
        found = None
        if system is not None:
            b = np.concatenate([problem.b_ub, problem.b_eq, problem.b_eq])
            scale = 1 + np.abs(np.concatenate([problem.lb, problem.ub, b]))
            # An infinite bound's row can never be violated (its excess is -inf); scale 1
            # keeps -inf / scale from becoming nan.
            scale[~np.isfinite(scale)] = 1.0
            found = (*system, scale)
        cache["dense_checks"] = found
    return cache["dense_checks"]


def primal_residuals(
    problem: LinearProgram, x: np.ndarray, per_row: bool, activity: np.ndarray | None = None
) -> tuple[float, float]:
    """The largest violation at `x`: absolute, and relative to what a backend guarantees.

    Args:
        problem: the problem.
        x: a point, shape (n,).
        per_row: True to scale each row's (and bound's) violation by `1 + |b_i|`
            (simplex and branch-and-cut solvers guarantee feasibility row by row);
            False to scale every violation by `1 + max |b|` (first-order methods
            such as PDLP bound a norm of the whole residual).

    Returns:
        `(absolute, relative)`: the worst violation of any row or bound, and the
            worst violation divided by its scale.
        activity: `[A_ub; A_eq] @ x` when already computed.
    """
    dense = _dense_residual_system(problem) if activity is None else None
    if dense is not None:  # small problem: one dense product covers every row and bound
        matrix, rhs, scale = dense
        excess = matrix @ x
        excess -= rhs  # a violation where positive; scale > 0, so the signs carry over
        absolute = max(float(excess.max()), 0.0)
        if per_row:
            return absolute, max(float((excess / scale).max()), 0.0)
        return absolute, absolute / problem.rhs_scale()
    s = _structure(problem)
    viol_lb = np.maximum(problem.lb - x, 0.0)  # 0 where lb = -inf
    viol_ub = np.maximum(x - problem.ub, 0.0)
    absolute = max(float(viol_lb.max()), float(viol_ub.max()))
    relative = 0.0
    if per_row:
        relative = max(
            float((viol_lb / s["lb_scale"]).max()), float((viol_ub / s["ub_scale"]).max())
        )
    if problem.n_ub or problem.n_eq:
        row = problem.stacked_constraints("csr") @ x if activity is None else activity.copy()
        row[: problem.n_ub] -= problem.b_ub
        np.maximum(row[: problem.n_ub], 0.0, out=row[: problem.n_ub])
        row[problem.n_ub :] = np.abs(row[problem.n_ub :] - problem.b_eq)
        absolute = max(absolute, float(row.max()))
        if per_row:
            relative = max(relative, float((row / s["row_scale"]).max()))
    if not per_row:
        relative = absolute / problem.rhs_scale()
    return absolute, relative


def dual_residual(
    problem: LinearProgram,
    x: np.ndarray,
    duals_ub: np.ndarray,
    duals_eq: np.ndarray,
    tol: float,
    activity: np.ndarray | None = None,
) -> float:
    """How far `(x, duals)` is from an LP optimality certificate (0 for an exact one).

    With the package's sign convention (duals are $\\partial z/\\partial b$), the reduced
    costs are $d = c - A^\\top y$. A certificate needs $y_{ub} \\le 0$, zero duals on
    inactive rows, and each reduced cost of the sign its variable's position allows
    ($d_j \\ge 0$ unless $x_j$ is at its upper bound, $d_j \\le 0$ unless at its lower
    bound). Violations are relative: a reduced cost to $1 + |c_j| + (|A|^\\top |y|)_j$,
    a row dual to $1 + \\max |c|$.

    Args:
        problem: an LP.
        x: the primal point, shape (n,).
        duals_ub: shape (m_ub,).
        duals_eq: shape (m_eq,).
        tol: relative distance within which a variable or row counts as at its bound.
        activity: `[A_ub; A_eq] @ x` when already computed.

    Returns:
        The largest relative violation.
    """
    s = _structure(problem)
    c = problem.c
    y = duals_ub if not problem.n_eq else np.concatenate([duals_ub, duals_eq])
    if not np.isfinite(y).all():
        return float("inf")
    if y.size:
        d = c - s["At"] @ y
        scale = 1 + np.abs(c) + s["absAt"] @ np.abs(y)
    else:
        d = c
        scale = 1 + np.abs(c)
    # A reduced cost of the wrong sign is allowed only where x sits at that bound.
    at_lower = s["lb_finite"] & (x - problem.lb <= tol * s["lb_scale"])
    at_upper = s["ub_finite"] & (problem.ub - x <= tol * s["ub_scale"])
    wrong = np.maximum(d, 0.0) * ~at_lower + np.maximum(-d, 0.0) * ~at_upper
    worst = float((wrong / scale).max())
    if problem.n_ub:
        if activity is None:
            activity = problem.stacked_constraints("csr") @ x
        slack = problem.b_ub - activity[: problem.n_ub]
        inactive = slack > tol * s["row_scale"][: problem.n_ub]
        row_wrong = np.maximum(duals_ub, 0.0) + np.abs(duals_ub) * inactive
        worst = max(worst, float(row_wrong.max()) / (1 + float(np.abs(c).max())))
    return worst
