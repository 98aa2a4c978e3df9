"""HiGHS through highspy: LP (simplex/IPM) and MILP (branch and cut)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._checks import NumericLimits
from ..problem import LinearProgram
from ..result import STATUS_MESSAGES, Solution, Status
from .base import Backend, Model

__all__ = ["HighsBackend"]

_STATUS_MAP = {
    "kOptimal": Status.OPTIMAL,
    "kInfeasible": Status.INFEASIBLE,
    "kUnbounded": Status.UNBOUNDED,
    "kUnboundedOrInfeasible": Status.INFEASIBLE_OR_UNBOUNDED,
    # Every limit HiGHS stops at is a limit status (its message names the limit).
    "kTimeLimit": Status.TIME_LIMIT,
    "kIterationLimit": Status.TIME_LIMIT,
    "kSolutionLimit": Status.TIME_LIMIT,
    "kObjectiveBound": Status.TIME_LIMIT,
    "kObjectiveTarget": Status.TIME_LIMIT,
    "kInterrupt": Status.ERROR,
    "kMemoryLimit": Status.ERROR,
    "kUnknown": Status.NUMERICAL,
}

_banner_silenced = False


@contextlib.contextmanager
def _quiet_stdout():
    """Swallow what the C++ library writes to fd 1 (HiGHS prints a banner on its first construction).

    The banner goes to file descriptor 1 whatever `sys.stdout` is (a redirect, a notebook),
    so fd 1 itself is pointed at /dev/null for the duration.
    """
    for stream in (sys.stdout, sys.__stdout__):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _new_highs():
    import highspy

    global _banner_silenced
    if _banner_silenced:
        h = highspy.Highs()
    else:
        with _quiet_stdout():
            h = highspy.Highs()
        _banner_silenced = True
    return h


# One idle Highs instance per thread, recycled by one-shot solves (`solvers.solve`):
# constructing and destroying a Highs object cost more than a 10-variable solve's own
# bookkeeping (per-call overhead, measured in `make bench`). Only instances whose options
# were never changed from the defaults (bar output_flag) are recycled.
_IDLE = threading.local()


def _take_highs():
    h = getattr(_IDLE, "highs", None)
    if h is None:
        return _new_highs()
    _IDLE.highs = None
    return h


def _check(call_status: Any, what: str) -> None:
    import highspy

    if call_status == highspy.HighsStatus.kError:
        raise RuntimeError(f"HiGHS {what} returned kError")


def _lp_arrays(problem: LinearProgram) -> tuple[np.ndarray, ...]:
    """The constraint arrays HiGHS takes (CSC start/index/value, row bounds), built once.

    Cached next to the stacked matrix, which problems derived with `with_costs` share,
    so a batch of cost vectors converts the structure once (per-call overhead).
    """
    cache = problem.__dict__.setdefault("_stacked", {})
    arrays = cache.get("highs")
    if arrays is None:
        A = problem.stacked_constraints("csc")
        arrays = (
            A.indptr.astype(np.int32),
            A.indices.astype(np.int32),
            np.asarray(A.data, dtype=np.float64),
            np.concatenate([np.full(problem.n_ub, -np.inf), problem.b_eq]),
            np.concatenate([problem.b_ub, problem.b_eq]),
        )
        cache["highs"] = arrays
    return arrays


_OBJECTIVE_WITHOUT_SOLUTION = {Status.INFEASIBLE: np.inf, Status.UNBOUNDED: -np.inf}
_MESSAGES: dict[tuple[Status, str, str], str] = {}


def _message(status: Status, raw_name: str, raw: str) -> str:
    """The Solution's message for HiGHS' status `raw_name` (`raw`: HiGHS' own wording)."""
    key = (status, raw_name, raw)
    message = _MESSAGES.get(key)
    if message is None:
        summary = STATUS_MESSAGES[status]
        if status is Status.TIME_LIMIT and raw_name != "kTimeLimit":
            summary = f"HiGHS stopped at a limit ({raw}) before optimality was proven."
        message = _MESSAGES[key] = f"{summary} (HiGHS {raw_name}: {raw})"
    return message


# HiGHS' MatrixFormat.kColwise and ObjSense.kMinimize, as passModel's array form takes them.
_COLUMN_WISE = 1
_MINIMIZE = 1


def _float_buffer(a: np.ndarray) -> np.ndarray:
    """A C-contiguous float64 array (e.g. the bounds are a strided column of a 2-D array)."""
    return np.ascontiguousarray(a, dtype=np.float64)


_STATUS_BY_VALUE: dict[int, tuple[str, Status]] = {}


def _status_of(model_status: Any) -> tuple[str, Status]:
    """(HiGHS' name of `model_status`, our Status), through a table keyed by its value.

    The enum's `.name` costs about 1 us in pybind11 (per-call overhead of re-solves).
    """
    found = _STATUS_BY_VALUE.get(model_status.value)
    if found is None:
        name = model_status.name
        found = _STATUS_BY_VALUE[model_status.value] = (name, _STATUS_MAP.get(name, Status.ERROR))
    return found


class HighsModel(Model):
    def __init__(
        self,
        problem: LinearProgram,
        *,
        time_limit: float | None,
        options: Mapping[str, Any],
        warm_start: bool,
    ) -> None:
        import highspy

        self.problem = problem
        self.warm_start = warm_start
        settings: dict[str, Any] = {"output_flag": False}
        if time_limit is not None:
            settings["time_limit"] = float(time_limit)
        settings.update(options)
        # Default options only: such an instance can be recycled after a one-shot solve.
        self._recyclable = len(settings) == 1
        self.highs = h = _take_highs() if self._recyclable else _new_highs()
        for name, value in settings.items():
            if h.setOptionValue(name, value) == highspy.HighsStatus.kError:
                raise ValueError(f"`options`: HiGHS rejected option {name}={value!r}.")
        self._presolve = settings.get("presolve", "choose")
        # Re-solves with new costs skip presolve unless the caller chose: on the small
        # structures of training it cost more than the solve (measured in `make bench`).
        self._resolve_presolve = None if "presolve" in settings else "off"

        n = problem.n_vars
        start, index, value, row_lower, row_upper = _lp_arrays(problem)
        self._is_mip = problem.is_mip
        # passModel's array form (the C API's Highs_passMip): numpy buffers are read as
        # they are, where filling a HighsLp converts every entry through Python (1.9 ms
        # against 0.24 ms for a 1920-variable LP). Integrality 0 marks a continuous
        # variable, so an all-zero vector is an LP.
        integrality = np.ascontiguousarray(problem.integrality, dtype=np.int32)
        _check(
            h.passModel(
                n,
                row_lower.shape[0],
                value.shape[0],
                _COLUMN_WISE,
                _MINIMIZE,
                0.0,
                _float_buffer(problem.c),
                _float_buffer(problem.lb),
                _float_buffer(problem.ub),
                row_lower,
                row_upper,
                start,
                index,
                value,
                integrality,
            ),
            "passModel",
        )
        self._indices = np.arange(n, dtype=np.int32)

    def solve(self, c: np.ndarray | None = None) -> Solution:
        import highspy

        h = self.highs
        if c is not None:
            _check(
                h.changeColsCost(len(c), self._indices, np.asarray(c, np.float64)), "changeColsCost"
            )
            if not self.warm_start:
                h.clearSolver()  # a cold solve beat a warm start after changing all costs
            if self._resolve_presolve and not self._is_mip:
                self._recyclable = False
                h.setOptionValue("presolve", self._resolve_presolve)
                self._presolve, self._resolve_presolve = self._resolve_presolve, None
        start = time.perf_counter()
        run_status = h.run()
        elapsed = time.perf_counter() - start
        if run_status == highspy.HighsStatus.kError:
            return Solution(
                Status.ERROR,
                backend="highs",
                solve_time=elapsed,
                message=(
                    "HiGHS run() returned kError. If the `threads` option was changed after an "
                    "earlier solve in this process, HiGHS refuses to run: its thread pool is shared "
                    "per process."
                ),
            )
        model_status = h.getModelStatus()
        raw = h.modelStatusToString(model_status)
        raw_name, status = _status_of(model_status)
        if status is Status.INFEASIBLE_OR_UNBOUNDED and self._presolve != "off":
            # Presolve cannot tell the two apart; a run without it can.
            self._recyclable = False
            h.setOptionValue("presolve", "off")
            h.clearSolver()
            h.run()
            h.setOptionValue("presolve", self._presolve)
            raw_name, status = _status_of(h.getModelStatus())
            raw = h.modelStatusToString(h.getModelStatus())
            elapsed = time.perf_counter() - start
        # Single getInfoValue calls: getInfo() copies the whole HighsInfo struct, which cost
        # more than all the rest of a small re-solve's bookkeeping (per-call overhead).
        info_value = h.getInfoValue
        message = _message(status, raw_name, raw)
        problem = self.problem
        is_mip = self._is_mip
        x = duals_ub = duals_eq = None
        objective = _OBJECTIVE_WITHOUT_SOLUTION.get(status, np.nan)
        extra: dict[str, Any] = {"raw_status": raw_name}
        has_primal = info_value("primal_solution_status")[1] == 2  # kSolutionStatusFeasible
        if status is Status.OPTIMAL or (status is Status.TIME_LIMIT and has_primal):
            sol = h.getSolution()
            x = np.array(sol.col_value, dtype=np.float64)
            objective = float(info_value("objective_function_value")[1])
            if is_mip:
                extra["mip_gap"] = float(info_value("mip_gap")[1])
                extra["mip_dual_bound"] = float(info_value("mip_dual_bound")[1])
                extra["mip_node_count"] = int(info_value("mip_node_count")[1])
            elif status is Status.OPTIMAL and sol.dual_valid:
                # HiGHS row duals are already dz/d(row bound) for a minimisation.
                row_dual = np.array(sol.row_dual, dtype=np.float64)
                duals_ub = row_dual[: problem.n_ub]
                duals_eq = row_dual[problem.n_ub :]
                extra["reduced_costs"] = np.array(sol.col_dual, dtype=np.float64)
        if not is_mip:
            extra["iterations"] = int(info_value("simplex_iteration_count")[1]) + int(
                info_value("ipm_iteration_count")[1]
            )
            if status is Status.INFEASIBLE:
                _add_farkas(h, problem, extra)
        return Solution._from_fresh_arrays(
            status,
            x=x,
            objective=objective,
            duals_ub=duals_ub,
            duals_eq=duals_eq,
            backend="highs",
            message=message,
            solve_time=elapsed,
            info=extra,
        )

    def release(self) -> None:
        """Hand the Highs instance to the next one-shot solve on this thread (if clean)."""
        h, self.highs = self.highs, None
        if h is not None and self._recyclable and getattr(_IDLE, "highs", None) is None:
            _IDLE.highs = h


# HiGHS' defaults: infinite_cost, infinite_bound, small_matrix_value, large_matrix_value.
HIGHS_LIMITS = NumericLimits(
    infinity=1e20, min_coefficient=1e-9, max_coefficient=1e15, solver="HiGHS"
)


def highs_limits(options: Mapping[str, Any]) -> NumericLimits:
    """HiGHS' numeric limits, with any of its range options that `options` changes."""
    if not any(k in options for k in ("infinite_cost", "infinite_bound", "small_matrix_value")):
        return HIGHS_LIMITS
    try:
        return NumericLimits(
            infinity=min(
                float(options.get("infinite_cost", 1e20)),
                float(options.get("infinite_bound", 1e20)),
            ),
            min_coefficient=float(options.get("small_matrix_value", 1e-9)),
            max_coefficient=float(options.get("large_matrix_value", 1e15)),
            solver="HiGHS",
        )
    except (TypeError, ValueError):
        return HIGHS_LIMITS  # HiGHS itself rejects the malformed option, naming it


def _add_farkas(h: Any, problem: LinearProgram, extra: dict[str, Any]) -> None:
    """HiGHS' dual ray as `info["farkas_ub"]`/`info["farkas_eq"]` (see `Solution`)."""
    try:
        _, has_ray, ray = h.getDualRay()
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - older highspy
        return
    if has_ray:
        ray = np.array(ray, dtype=np.float64)
        extra["farkas_ub"] = ray[: problem.n_ub]
        extra["farkas_eq"] = ray[problem.n_ub :]


class HighsBackend(Backend):
    name = "highs"
    description = "HiGHS via highspy: dual simplex / IPM for LP, branch and cut for MILP."
    supports_integer = True
    supports_duals = True
    required_modules = ("highspy",)
    numeric_limits = HIGHS_LIMITS

    def limits(self, options: Mapping[str, Any]) -> NumericLimits:
        return highs_limits(options)

    def tolerance(self, problem: LinearProgram, options: Mapping[str, Any]) -> float:
        # primal_feasibility_tolerance (LP) and mip_feasibility_tolerance, HiGHS' defaults.
        name = "mip_feasibility_tolerance" if problem.is_mip else "primal_feasibility_tolerance"
        try:
            return max(float(options.get(name, 1e-6 if problem.is_mip else 1e-7)), 1e-9)
        except (TypeError, ValueError):
            return 1e-6

    def build(
        self, problem: LinearProgram, *, time_limit: float | None, options: Mapping[str, Any]
    ) -> HighsModel:
        opts = dict(options)
        warm_start = bool(opts.pop("warm_start", False))
        return HighsModel(problem, time_limit=time_limit, options=opts, warm_start=warm_start)
