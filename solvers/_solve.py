"""`solve` and `Solver`: the one entry point, and a model kept alive across cost changes."""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._checks import check_costs, check_numeric_range, dual_residual, primal_residuals
from .errors import CapabilityError
from .problem import LinearProgram
from .registry import get_backend
from .result import STATUS_MESSAGES, Solution, Status

__all__ = ["Solver", "solve"]


def _check_request(problem: LinearProgram, backend_name: str, time_limit: float | None):
    if not isinstance(problem, LinearProgram):
        raise TypeError(f"`problem` must be a solvers.LinearProgram; got {type(problem).__name__}.")
    backend = get_backend(backend_name)
    if problem.is_mip and not backend.supports_integer:
        raise CapabilityError(
            f"`backend`: {backend.name!r} cannot solve integer programs (it would silently solve the "
            "LP relaxation). Use one of the integer-capable backends, or pass "
            "`problem.relaxation()` to solve the relaxation on purpose."
        )
    if not backend.supports_continuous and not problem.integrality.all():
        raise CapabilityError(
            f"`backend`: {backend.name!r} handles only pure integer programs; this problem has "
            f"{int((problem.integrality == 0).sum())} continuous variable(s)."
        )
    if time_limit is not None and not (
        isinstance(time_limit, numbers.Real)
        and not isinstance(time_limit, bool)
        and np.isfinite(time_limit)
        and time_limit > 0
    ):
        raise ValueError(f"`time_limit` must be a positive number of seconds; got {time_limit!r}.")
    return backend


def _check_options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(
            "`options` must be a mapping of option names to values, e.g. "
            f"{{'presolve': 'off'}}; got {type(options).__name__} {options!r}."
        )
    bad = [k for k in options if not isinstance(k, str)]
    if bad:
        raise ValueError(f"`options`: option names must be strings; got {bad[0]!r}.")
    return dict(options)


def _amend(sol: Solution, **fields: Any) -> Solution:
    """Set fields of a Solution that no caller has seen yet (cheaper than `replace`)."""
    for name, value in fields.items():
        object.__setattr__(sol, name, value)
    return sol


def _verify(
    problem: LinearProgram,
    sol: Solution,
    feasibility_tol: float,
    solve_time: float,
    per_row: bool = False,
    check_duals: bool = True,
) -> Solution:
    """Re-check what a backend calls optimal: finite, feasible, integral, consistent objective,
    and (for an LP with duals) an optimality certificate.

    Violations are measured as the backend guarantees them (per row relative to
    `1 + |b_i|`, or relative to `1 + max |b|` when `per_row` is False) and must
    stay within ten times `feasibility_tol`. With `check_duals` (backends whose
    duals are not exact vertex duals: PDLP, cvxpy's solvers), an LP's duals must
    certify optimality too. The residuals are reported in `sol.info`
    (`primal_residual`, `relative_primal_residual` and, when checked,
    `dual_residual`). `sol` is fresh from the backend, so it is
    amended in place.
    """
    tol = 10 * feasibility_tol
    if sol.status is Status.TIME_LIMIT and sol.x is not None:
        return _check_incumbent(problem, sol, tol, solve_time, per_row)
    if sol.status is not Status.OPTIMAL:
        return _amend(sol, solve_time=solve_time)
    x = sol.x
    reason = None
    # c @ x is finite exactly when x is (c is finite, and 0 * inf is nan): one product
    # checks x and gives the value the objective is compared with (per-call overhead).
    value = float(problem.c @ x) if x is not None and x.shape == problem.c.shape else np.nan
    if not np.isfinite(value):
        reason = "the reported solution is missing or not finite"
        if not np.isnan(value) and np.isfinite(x).all():
            reason = f"its objective c @ x overflows ({value})"
    else:
        activity = None
        if check_duals and sol.duals_ub is not None and (problem.n_ub or problem.n_eq):
            activity = problem.stacked_constraints("csr") @ x  # shared with the dual check
        absolute, relative = primal_residuals(problem, x, per_row, activity)
        sol.info["primal_residual"] = absolute
        sol.info["relative_primal_residual"] = relative
        if relative > tol:
            reason = (
                f"the reported solution violates a constraint or bound by {absolute:.3g} "
                f"({relative:.3g} relative; the backend guarantees {feasibility_tol:g})"
            )
        elif problem.is_mip:
            xi = x[problem.integrality.astype(bool)]
            frac = float(np.max(np.abs(xi - np.round(xi)), initial=0.0))
            if frac > 1e-5:
                reason = f"an integer variable is fractional by {frac:.3g}"
        if reason is None:
            if not np.isfinite(sol.objective) or abs(value - sol.objective) > 1e-6 * (
                1 + abs(value)
            ) * max(1.0, feasibility_tol / 1e-6):
                reason = f"the reported objective {sol.objective!r} differs from c @ x = {value!r}"
        if reason is None and check_duals and sol.duals_ub is not None and sol.duals_eq is not None:
            gap = dual_residual(problem, x, sol.duals_ub, sol.duals_eq, tol, activity)
            sol.info["dual_residual"] = gap
            if gap > tol:
                reason = (
                    "its duals do not certify optimality (a reduced cost or row dual has the "
                    f"wrong sign by {gap:.3g}, relative)"
                )
    if reason is not None:
        return _amend(
            sol,
            solve_time=solve_time,
            status=Status.NUMERICAL,
            message=(
                f"{STATUS_MESSAGES[Status.NUMERICAL]} {sol.backend} reported OPTIMAL but {reason}. "
                f"Try another backend, or rescale the problem. ({sol.message})"
            ),
        )
    if sol.duals_ub is not None and sol.duals_ub.size and sol.duals_ub.max() > 0:
        # Dual feasibility tolerances let a <= row's dual drift to +1e-9; the convention says <= 0.
        clipped = np.minimum(sol.duals_ub, 0.0)
        clipped.setflags(write=False)
        _amend(sol, duals_ub=clipped)
    return _amend(sol, solve_time=solve_time)


def _check_incumbent(
    problem: LinearProgram, sol: Solution, tol: float, solve_time: float, per_row: bool
) -> Solution:
    """A limited solve's incumbent must be feasible (and integral) too, or it is dropped."""
    x = sol.x
    reason = None
    if x.shape != problem.c.shape or not np.isfinite(x).all():
        reason = "is missing or not finite"
    else:
        absolute, relative = primal_residuals(problem, x, per_row)
        sol.info["primal_residual"] = absolute
        sol.info["relative_primal_residual"] = relative
        xi = x[problem.integrality.astype(bool)]
        if relative > tol:
            reason = f"violates a constraint or bound by {absolute:.3g}"
        elif float(np.max(np.abs(xi - np.round(xi)), initial=0.0)) > 1e-5:
            reason = "is not integral"
    if reason is None:
        return _amend(sol, solve_time=solve_time)
    return _amend(
        sol,
        solve_time=solve_time,
        x=None,
        objective=float("nan"),
        message=f"{sol.message} The incumbent {reason} and was dropped.",
    )


def solve(
    problem: LinearProgram,
    backend: str = "highs",
    *,
    time_limit: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> Solution:
    """Solve a linear or mixed-integer program.

    Args:
        problem: the problem, minimised.
        backend: a name from [`solvers.available_backends`][solvers.available_backends].
        time_limit: seconds; on expiry the status is `Status.TIME_LIMIT` (with the best
            incumbent in `x` for a MILP, if any and feasible). Other solver limits
            (iterations, nodes) give `Status.TIME_LIMIT` too, with the limit named in
            `message`.
        options: backend options (HiGHS option names for "highs"; `{"parameters": text}`
            for OR-Tools; `{"solver": name, ...}` for "cvxpy").

    Returns:
        A `Solution`. Infeasible, unbounded and failed solves are statuses, not
            exceptions; call `raise_for_status()` to turn them into errors.
            Duals follow the package convention: `duals_eq = dz/db_eq` and
            `duals_ub = dz/db_ub <= 0`; they are None for integer programs.

    Raises:
        TypeError: `problem` is not a `LinearProgram`.
        BackendUnavailableError: unknown or uninstalled `backend`.
        CapabilityError: the backend cannot solve this kind of problem, or the
            problem holds numbers the backend would silently change (HiGHS and SCIP
            read $|v| \\ge 10^{20}$ as infinite and drop $|a_{ij}| < 10^{-9}$).
        ValueError: bad `time_limit` or `options` (naming the argument).
    """
    solver = Solver(problem, backend, time_limit=time_limit, options=options)
    try:
        return solver.solve()
    finally:
        solver._release()


class Solver:
    """A backend model kept alive so that re-solving with new costs skips the rebuild.

    Training re-solves one structure with new costs every step; building the backend
    model is often as expensive as solving it. Whether a warm start (the previous
    basis) is used is a per-backend choice measured in `make bench`: for HiGHS,
    re-solving from scratch after all costs change was faster, so the default keeps
    the model but discards the basis (`options={"warm_start": True}` keeps it).

    Args:
        problem: the structure (constraints, bounds, integrality) and initial costs.
        backend: as for [`solve`][solvers.solve].
        time_limit: as for [`solve`][solvers.solve].
        options: as for [`solve`][solvers.solve].

    Examples:
        ```python
        from solvers import LinearProgram, Solver

        lp = LinearProgram([1.0, 2.0], A_eq=[[1.0, 1.0]], b_eq=[1.0])
        solver = Solver(lp)
        print([round(solver.solve(c).objective, 6) for c in ([1.0, 2.0], [3.0, -1.0])])  # [1.0, -1.0]
        ```
    """

    def __init__(
        self,
        problem: LinearProgram,
        backend: str = "highs",
        *,
        time_limit: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.backend = _check_request(problem, backend, time_limit)
        options = _check_options(options)
        self._limits = self.backend.limits(options)
        check_numeric_range(problem, self._limits, self.backend.name)
        self._tol = self.backend.tolerance(problem, options)
        # Simplex duals are exact vertex duals; first-order and interior-point ones are not.
        self._check_duals = not self.backend.exact or self.backend.name == "cvxpy"
        self.problem = problem
        self._build_error: str | None = None
        try:
            self._model = self.backend.build(problem, time_limit=time_limit, options=options)
        except CapabilityError:
            raise  # asked for what the backend cannot do: an error, not a status
        except (RuntimeError, OSError) as exc:
            # The backend refused the model (e.g. HiGHS treats |a_ij| >= 1e15 as infinite):
            # report it as a status, like any other failed solve.
            self._build_error = f"{self.backend.name} could not load the problem: {exc}"

    def _with_costs(self, problem: LinearProgram, c: Any) -> LinearProgram:
        """`problem` with costs `c`, validated (shape, finite, within the backend's range)."""
        limit = None if self._limits is None else self._limits.infinity
        if (
            type(c) is np.ndarray
            and c.dtype == np.float64
            and c.shape == problem.c.shape
            and c.size
            # One pass for both checks: NaN fails the comparison, inf exceeds any limit.
            and float(np.abs(c).max()) < (np.inf if limit is None else limit)
        ):
            return problem._with_checked_costs(c.copy())
        problem = problem.with_costs(c)  # the full checks, with their error messages
        check_costs(problem.c, self._limits, self.backend.name)
        return problem

    def _release(self) -> None:
        """This solver is done (one-shot `solve`): let the backend recycle its model."""
        if self._build_error is None:
            model, self._model = self._model, None
            model.release()

    def solve(self, c: Any = None) -> Solution:
        """Solve with the stored costs, or with new costs `c` of shape (n,)."""
        problem = self.problem
        if c is not None:
            problem = self.problem = self._with_costs(problem, c)
        if self._build_error is not None:
            return Solution(Status.ERROR, backend=self.backend.name, message=self._build_error)
        start = time.perf_counter()
        try:
            sol = self._model.solve(None if c is None else problem.c)
        except (RuntimeError, OSError) as exc:  # a backend call reported an error
            sol = Solution(Status.ERROR, backend=self.backend.name, message=f"{exc}")
        return _verify(
            problem,
            sol,
            self._tol,
            time.perf_counter() - start,
            self.backend.feasibility_per_row,
            self._check_duals,
        )
