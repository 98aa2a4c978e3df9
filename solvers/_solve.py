"""`solve` and `Solver`: the one entry point, and a model kept alive across cost changes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

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
    if time_limit is not None and not (np.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"`time_limit` must be a positive number of seconds; got {time_limit!r}.")
    return backend


def _amend(sol: Solution, **fields: Any) -> Solution:
    """Set fields of a Solution that no caller has seen yet (cheaper than `replace`)."""
    for name, value in fields.items():
        object.__setattr__(sol, name, value)
    return sol


def _verify(
    problem: LinearProgram, sol: Solution, feasibility_tol: float, solve_time: float
) -> Solution:
    """Re-check what a backend calls optimal: finite, feasible, integral, consistent objective.

    ``sol`` is fresh from the backend, so it is amended in place.
    """
    if sol.status is not Status.OPTIMAL:
        return _amend(sol, solve_time=solve_time)
    x = sol.x
    reason = None
    if x is None or x.shape != problem.c.shape or not np.isfinite(x).all():
        reason = "the reported solution is missing or not finite"
    else:
        violation = problem.residuals(x)
        if violation > feasibility_tol * problem.rhs_scale() * 10:
            reason = f"the reported solution violates a constraint or bound by {violation:.3g}"
        elif problem.is_mip:
            xi = x[problem.integrality.astype(bool)]
            frac = float(np.max(np.abs(xi - np.round(xi)), initial=0.0))
            if frac > 1e-5:
                reason = f"an integer variable is fractional by {frac:.3g}"
        if reason is None:
            value = float(problem.c @ x)
            if not np.isfinite(sol.objective) or abs(value - sol.objective) > 1e-6 * (
                1 + abs(value)
            ) * max(1.0, feasibility_tol / 1e-6):
                reason = f"the reported objective {sol.objective!r} differs from c @ x = {value!r}"
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
    if sol.duals_ub is not None and (sol.duals_ub > 0).any():
        # Dual feasibility tolerances let a <= row's dual drift to +1e-9; the convention says <= 0.
        clipped = np.minimum(sol.duals_ub, 0.0)
        clipped.setflags(write=False)
        _amend(sol, duals_ub=clipped)
    return _amend(sol, solve_time=solve_time)


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
        backend: a name from :func:`solvers.available_backends`.
        time_limit: seconds; on expiry the status is `Status.TIME_LIMIT` (with the best
            incumbent in ``x`` for a MILP, if any).
        options: backend options (HiGHS option names for "highs"; ``{"parameters": text}``
            for OR-Tools; ``{"solver": name, ...}`` for "cvxpy").

    Returns:
        A `Solution`. Infeasible, unbounded and failed solves are statuses, not
        exceptions; call ``raise_for_status()`` to turn them into errors.
        Duals follow the package convention: ``duals_eq = dz/db_eq`` and
        ``duals_ub = dz/db_ub <= 0``; they are None for integer programs.

    Raises:
        TypeError: ``problem`` is not a `LinearProgram`.
        BackendUnavailableError: unknown or uninstalled ``backend``.
        CapabilityError: the backend cannot solve this kind of problem.
        ValueError: bad ``time_limit`` or ``options``.
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
    basis) is used is a per-backend choice measured in ``make bench``: for HiGHS,
    re-solving from scratch after all costs change was faster, so the default keeps
    the model but discards the basis (``options={"warm_start": True}`` keeps it).

    Args:
        problem: the structure (constraints, bounds, integrality) and initial costs.
        backend: as for :func:`solve`.
        time_limit: as for :func:`solve`.
        options: as for :func:`solve`.

    Examples:
        >>> lp = LinearProgram([1.0, 2.0], A_eq=[[1.0, 1.0]], b_eq=[1.0])
        >>> solver = Solver(lp)
        >>> [round(solver.solve(c).objective, 6) for c in ([1.0, 2.0], [3.0, -1.0])]
        [1.0, -1.0]
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
        self.problem = problem
        self._build_error: str | None = None
        try:
            self._model = self.backend.build(
                problem, time_limit=time_limit, options=dict(options or {})
            )
        except (RuntimeError, OSError) as exc:
            # The backend refused the model (e.g. HiGHS treats |a_ij| >= 1e15 as infinite):
            # report it as a status, like any other failed solve.
            self._build_error = f"{self.backend.name} could not load the problem: {exc}"

    def _release(self) -> None:
        """This solver is done (one-shot `solve`): let the backend recycle its model."""
        if self._build_error is None:
            model, self._model = self._model, None
            model.release()

    def solve(self, c: Any = None) -> Solution:
        """Solve with the stored costs, or with new costs ``c`` of shape (n,)."""
        problem = self.problem
        if c is not None:
            problem = self.problem = problem.with_costs(c)
        if self._build_error is not None:
            return Solution(Status.ERROR, backend=self.backend.name, message=self._build_error)
        start = time.perf_counter()
        try:
            sol = self._model.solve(None if c is None else problem.c)
        except (RuntimeError, OSError) as exc:  # a backend call reported an error
            sol = Solution(Status.ERROR, backend=self.backend.name, message=f"{exc}")
        return _verify(problem, sol, self.backend.feasibility_tol, time.perf_counter() - start)
