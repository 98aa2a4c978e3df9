"""scipy drop-ins: `linprog` and `milp` with scipy's signatures, results and status codes.

A scipy user changes one import to reach every backend::

    from solvers import linprog, milp   # instead of: from scipy.optimize import linprog, milp
    res = linprog(c, A_ub=A, b_ub=b, backend="glop")

The result is a `scipy.optimize.OptimizeResult` with scipy's fields and status codes
(0 optimal, 1 iteration or time limit, 2 infeasible, 3 unbounded, 4 numerical
difficulties or other failure). Marginals follow scipy's convention, which is also this
package's: `ineqlin.marginals` is the sensitivity of `fun` to `b_ub` (<= 0),
`eqlin.marginals` to `b_eq`, `lower`/`upper.marginals` to the bounds.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, OptimizeWarning

from ._solve import solve
from .problem import LinearProgram
from .registry import get_backend
from .result import Solution, Status

__all__ = ["linprog", "milp"]

# Our statuses as scipy's codes (scipy reports HiGHS' "unbounded or infeasible" as 4).
_SCIPY_STATUS = {
    Status.OPTIMAL: 0,
    Status.TIME_LIMIT: 1,
    Status.INFEASIBLE: 2,
    Status.UNBOUNDED: 3,
    Status.INFEASIBLE_OR_UNBOUNDED: 4,
    Status.NUMERICAL: 4,
    Status.ERROR: 4,
}
_SCIPY_MESSAGE = {
    0: "Optimization terminated successfully.",
    1: "Time limit reached.",
    2: "The problem is infeasible.",
    3: "The problem is unbounded.",
    4: "The solver did not reach a trustworthy answer.",
}
_HIGHS_METHODS = {"highs": None, "highs-ds": "simplex", "highs-ipm": "ipm"}


def _solver_options(
    options: Mapping[str, Any] | None, backend: str, mapping: dict[str, str]
) -> tuple[float | None, dict[str, Any]]:
    """scipy's `options` as `(time_limit, backend options)`; unknown ones warn, as scipy."""
    if options is None:
        return None, {}
    if not isinstance(options, Mapping):
        raise ValueError(f"`options` must be a dict; got {type(options).__name__}.")
    opts = dict(options)
    time_limit = opts.pop("time_limit", None)
    opts.pop("disp", None)  # solvers never print
    out: dict[str, Any] = {}
    if get_backend(backend).name == "highs":
        for name, value in opts.items():
            if name == "presolve":
                out["presolve"] = "on" if value else "off"
            elif name == "maxiter":
                out["simplex_iteration_limit"] = int(value)
                out["ipm_iteration_limit"] = int(value)
            else:
                out[mapping.get(name, name)] = value  # HiGHS option names pass verbatim
        return time_limit, out
    if opts:
        warnings.warn(
            f"Unrecognized options detected: {opts}. Backend {backend!r} takes only "
            "`time_limit`; these are ignored.",
            OptimizeWarning,
            stacklevel=3,
        )
    return time_limit, out


def _status_message(sol: Solution) -> tuple[int, str]:
    code = _SCIPY_STATUS[sol.status]
    head = _SCIPY_MESSAGE[code]
    if sol.status is Status.TIME_LIMIT and "time limit" not in sol.message.lower():
        head = "Iteration or solution limit reached."
    return code, f"{head} ({sol.backend}: {sol.message})"


def _integrality(integrality: Any, n: int) -> np.ndarray | None:
    if integrality is None:
        return None
    arr = (
        np.broadcast_to(np.asarray(integrality), (n,)) if np.ndim(integrality) == 0 else integrality
    )
    arr = np.asarray(arr)
    if np.isin(arr, (2, 3)).any():
        raise ValueError(
            "`integrality`: semi-continuous (2) and semi-integer (3) variables are not "
            "supported; use 0 (continuous) or 1 (integer)."
        )
    return arr


def linprog(
    c: Any,
    A_ub: Any = None,
    b_ub: Any = None,
    A_eq: Any = None,
    b_eq: Any = None,
    bounds: Any = (0, None),
    method: str = "highs",
    callback: Any = None,
    options: Mapping[str, Any] | None = None,
    x0: Any = None,
    integrality: Any = None,
    *,
    backend: str = "highs",
) -> OptimizeResult:
    """`scipy.optimize.linprog` with a choice of backend.

    Arguments, defaults and the result are scipy's; see its documentation. The one
    addition is `backend` (any name from [available_backends][solvers.available_backends]).

    Args:
        c: objective coefficients, shape (n,).
        A_ub: shape (m_ub, n). b_ub: shape (m_ub,).
        A_eq: shape (m_eq, n). b_eq: shape (m_eq,).
        bounds: as scipy (default `(0, None)`).
        method: "highs", "highs-ds" or "highs-ipm" (the latter two choose HiGHS' simplex
            or interior point when `backend="highs"`); the removed scipy methods raise.
        callback: not supported (scipy's HiGHS methods have none either).
        options: scipy's: `time_limit` for every backend; `presolve`, `maxiter`
            and HiGHS option names for "highs"; `disp` is ignored. Others warn.
        x0: ignored with an `OptimizeWarning`, as scipy's HiGHS methods do.
        integrality: 0/1 per variable (or a scalar), as scipy.
        backend: the solver.

    Returns:
        `OptimizeResult` with `x` (shape (n,), or None), `fun`, `slack`, `con`,
            `success`, `status` (0 optimal, 1 limit, 2 infeasible, 3 unbounded, 4 other),
            `message`, `nit`, and for LPs from backends with duals `ineqlin`,
            `eqlin`, `lower` and `upper` (each with `residual` and `marginals`;
            marginals are None without duals); with integer variables also
            `mip_node_count`, `mip_dual_bound` and `mip_gap` where known (else None).

    Raises:
        ValueError: invalid problem data or arguments (naming the argument), as scipy.
        CapabilityError: the backend cannot solve this kind of problem.

    Examples:
        ```python
        from solvers import linprog

        res = linprog([-1, -2], A_ub=[[1, 1]], b_ub=[4], bounds=[(0, 3), (0, 3)], backend="glop")
        print(res.status, res.fun, res.x, res.ineqlin.marginals)  # 0 -7.0 [1. 3.] [-1.]
        ```
    """
    if method not in _HIGHS_METHODS:
        raise ValueError(
            f"`method` must be one of {sorted(_HIGHS_METHODS)} (scipy's other methods were "
            f"removed); got {method!r}. Use `backend=` to choose the solver."
        )
    if callback is not None:
        raise ValueError("`callback` is not supported (nor by scipy's HiGHS methods).")
    if x0 is not None:
        warnings.warn(
            "x0 is used only by scipy's 'revised simplex'; it is ignored.",
            OptimizeWarning,
            stacklevel=2,
        )
    c_arr = np.asarray(c, dtype=np.float64)
    n = c_arr.size if c_arr.ndim else 1
    integ = _integrality(integrality, n)
    problem = LinearProgram(c, A_ub, b_ub, A_eq, b_eq, bounds=bounds, integrality=integ)
    time_limit, opts = _solver_options(options, backend, {})
    if _HIGHS_METHODS[method] is not None and get_backend(backend).name == "highs":
        opts.setdefault("solver", _HIGHS_METHODS[method])
    sol = solve(problem, backend, time_limit=time_limit, options=opts)
    return _linprog_result(problem, sol)


def _linprog_result(problem: LinearProgram, sol: Solution) -> OptimizeResult:
    status, message = _status_message(sol)
    x = None if sol.x is None else np.array(sol.x)
    slack = con = None
    lower_res = upper_res = None
    if x is not None:
        slack = problem.b_ub - problem.A_ub @ x
        con = problem.b_eq - problem.A_eq @ x
        lower_res, upper_res = x - problem.lb, problem.ub - x
    marg = {"ineqlin": None, "eqlin": None, "lower": None, "upper": None}
    if sol.duals_ub is not None and sol.duals_eq is not None and x is not None:
        y = np.concatenate([sol.duals_ub, sol.duals_eq])
        d = problem.c - problem.stacked_constraints("csr").T @ y if y.size else problem.c.copy()
        marg = {
            "ineqlin": np.array(sol.duals_ub),
            "eqlin": np.array(sol.duals_eq),
            "lower": np.maximum(d, 0.0),  # dfun/dlb: a reduced cost >= 0 at a lower bound
            "upper": np.minimum(d, 0.0),
        }
    result = OptimizeResult(
        x=x,
        fun=None if x is None else float(sol.objective),
        slack=slack,
        con=con,
        ineqlin=OptimizeResult(residual=slack, marginals=marg["ineqlin"]),
        eqlin=OptimizeResult(residual=con, marginals=marg["eqlin"]),
        lower=OptimizeResult(residual=lower_res, marginals=marg["lower"]),
        upper=OptimizeResult(residual=upper_res, marginals=marg["upper"]),
        status=status,
        success=status == 0,
        message=message,
        nit=int(sol.info.get("iterations", 0)),
        backend=sol.backend,
    )
    if problem.is_mip:
        result.update(_mip_fields(sol))
    return result


def _mip_fields(sol: Solution) -> dict[str, Any]:
    return {
        "mip_node_count": sol.info.get("mip_node_count"),
        "mip_dual_bound": sol.info.get("mip_dual_bound"),
        "mip_gap": sol.info.get("mip_gap"),
    }


def _constraint_rows(constraints: Any, n: int) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    if constraints is None:
        return []
    if isinstance(constraints, LinearConstraint) or (
        isinstance(constraints, tuple)
        and len(constraints) == 3
        and not isinstance(constraints[0], LinearConstraint | tuple)
    ):
        constraints = [constraints]
    rows = []
    for k, con in enumerate(constraints):
        if not isinstance(con, LinearConstraint):
            try:
                con = LinearConstraint(*con)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"`constraints[{k}]` must be a LinearConstraint or a tuple (A, lb, ub)."
                ) from exc
        A = con.A if sp.issparse(con.A) else np.atleast_2d(np.asarray(con.A, dtype=np.float64))
        m = A.shape[0]
        if A.shape[1] != n:
            raise ValueError(
                f"`constraints[{k}].A` must have len(c) = {n} columns; got shape {A.shape}."
            )
        lb = np.broadcast_to(np.asarray(con.lb, dtype=np.float64), (m,))
        ub = np.broadcast_to(np.asarray(con.ub, dtype=np.float64), (m,))
        rows.append((sp.csr_array(A), lb, ub))
    return rows


def milp(
    c: Any,
    *,
    integrality: Any = None,
    bounds: Any = None,
    constraints: Any = None,
    options: Mapping[str, Any] | None = None,
    backend: str = "highs",
) -> OptimizeResult:
    """`scipy.optimize.milp` with a choice of backend.

    Arguments, defaults and the result are scipy's; see its documentation. The one
    addition is `backend` (an integer-capable name from
    [available_backends][solvers.available_backends], or an LP backend for a problem
    without integer variables).

    Args:
        c: objective coefficients, shape (n,).
        integrality: 0/1 per variable (or a scalar); default all continuous.
        bounds: `scipy.optimize.Bounds` or `(lb, ub)`; default `0 <= x < inf`.
        constraints: a `LinearConstraint`, a tuple `(A, lb, ub)`, or a sequence of them.
        options: scipy's: `time_limit` for every backend; `presolve`,
            `node_limit`, `mip_rel_gap` for "highs"; `disp` is ignored.
        backend: the solver.

    Returns:
        `OptimizeResult` with `x` (shape (n,), or None), `fun`, `success`,
            `status` (0 optimal, 1 limit, 2 infeasible, 3 unbounded, 4 other),
            `message`, and `mip_node_count`, `mip_dual_bound`, `mip_gap` where the
            backend reports them (else None). A time-limited solve keeps its incumbent.

    Examples:
        ```python
        import numpy as np
        from scipy.optimize import LinearConstraint

        from solvers import milp

        res = milp(
            [-1, -1],
            integrality=[1, 1],
            constraints=LinearConstraint([[2, 1], [1, 2]], -np.inf, [4, 4]),
            backend="scip",
        )
        print(res.status, res.fun)  # 0 -2.0
        ```
    """
    c_arr = np.asarray(c, dtype=np.float64)
    n = c_arr.size if c_arr.ndim else 1
    if bounds is None:
        lb, ub = np.zeros(n), np.full(n, np.inf)
    else:
        if not isinstance(bounds, Bounds):
            try:
                bounds = Bounds(*bounds)
            except (TypeError, ValueError) as exc:
                raise ValueError("`bounds` must be a scipy.optimize.Bounds or (lb, ub).") from exc
        lb = np.broadcast_to(np.asarray(bounds.lb, dtype=np.float64), (n,))
        ub = np.broadcast_to(np.asarray(bounds.ub, dtype=np.float64), (n,))
    ub_blocks, ub_rhs, eq_blocks, eq_rhs = [], [], [], []
    for A, lo, hi in _constraint_rows(constraints, n):
        if np.isnan(lo).any() or np.isnan(hi).any():
            raise ValueError("`constraints`: bounds must not contain NaN.")
        eq = lo == hi
        upper = ~eq & np.isfinite(hi)
        lower = ~eq & np.isfinite(lo)
        if eq.any():
            eq_blocks.append(A[np.flatnonzero(eq)])
            eq_rhs.append(hi[eq])
        if upper.any():
            ub_blocks.append(A[np.flatnonzero(upper)])
            ub_rhs.append(hi[upper])
        if lower.any():
            ub_blocks.append(-A[np.flatnonzero(lower)])
            ub_rhs.append(-lo[lower])
    problem = LinearProgram(
        c,
        A_ub=sp.vstack(ub_blocks) if ub_blocks else None,
        b_ub=np.concatenate(ub_rhs) if ub_rhs else None,
        A_eq=sp.vstack(eq_blocks) if eq_blocks else None,
        b_eq=np.concatenate(eq_rhs) if eq_rhs else None,
        bounds=np.column_stack([lb, ub]),
        integrality=_integrality(integrality, n),
    )
    time_limit, opts = _solver_options(options, backend, {"node_limit": "mip_max_nodes"})
    sol = solve(problem, backend, time_limit=time_limit, options=opts)
    status, message = _status_message(sol)
    x = None if sol.x is None else np.array(sol.x)
    return OptimizeResult(
        x=x,
        fun=None if x is None else float(sol.objective),
        status=status,
        success=status == 0,
        message=message,
        backend=sol.backend,
        **_mip_fields(sol),
    )
