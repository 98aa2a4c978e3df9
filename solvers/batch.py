"""`solve_batch`: many problems, or one structure with many cost vectors, in order."""

from __future__ import annotations

import itertools
import multiprocessing
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from ._solve import Solver
from .errors import SolverError
from .problem import LinearProgram
from .result import Solution, Status

__all__ = ["solve_batch"]


def _failed(index: int, backend: str, exc: BaseException) -> Solution:
    return Solution(
        Status.ERROR,
        backend=backend,
        message=f"batch item {index}: {type(exc).__name__}: {exc}",
    )


def _lost(index: int, lo: int, hi: int, backend: str, exc: BaseException) -> Solution:
    """The chunk `lo..hi-1` never came back (its worker died, or the executor failed)."""
    return Solution(
        Status.ERROR,
        backend=backend,
        message=(
            f"batch item {index}: the worker solving items {lo}..{hi - 1} was lost before "
            f"returning them ({type(exc).__name__}: {exc}). Items of other chunks are "
            "unaffected; a worker usually dies from running out of memory or a crash in "
            "native solver code."
        ),
    )


def _executor_width(executor: Executor, n_items: int) -> int:
    """How many chunks to cut for `executor`: its worker count where it says so."""
    width = getattr(executor, "_max_workers", None)  # concurrent.futures pools
    client = getattr(executor, "_client", None)  # dask.distributed's ClientExecutor
    if width is None and client is not None:
        try:
            width = sum(client.nthreads().values())
        except Exception:  # an unreachable scheduler: fall back to the default below
            width = None
    if not isinstance(width, int) or width < 1:
        width = 8
    return min(width, n_items)


def _solve_chunk(
    start: int,
    items: Sequence[Any],
    structure: LinearProgram | None,
    backend: str,
    time_limit: float | None,
    options: Mapping[str, Any] | None,
) -> list[Solution]:
    """Solve consecutive items; an item that fails yields an ERROR Solution, never an exception."""
    out: list[Solution] = []
    solver: Solver | None = None
    for offset, item in enumerate(items):
        index = start + offset
        try:
            if structure is not None:
                if solver is None:
                    solver = Solver(structure, backend, time_limit=time_limit, options=options)
                sol = solver.solve(item)
            else:
                if not isinstance(item, LinearProgram):
                    raise TypeError(
                        f"expected a solvers.LinearProgram, got {type(item).__name__} "
                        "(pass `structure=` to give cost vectors)"
                    )
                sol = Solver(item, backend, time_limit=time_limit, options=options).solve()
        except (ValueError, TypeError, SolverError, RuntimeError) as exc:
            sol = _failed(index, backend, exc)
        out.append(sol)
    return out


_UNGUARDED_SCRIPT = (
    "solve_batch(workers={workers}): the worker processes died at start-up; they re-import "
    'the calling script, so put the call under `if __name__ == "__main__":`.'
)


def _main_is_a_script() -> bool:
    """Whether `__main__` is a file that spawned workers re-run (a script or `-m`, no REPL)."""
    return getattr(sys.modules.get("__main__"), "__file__", None) is not None


def solve_batch(
    problems_or_costs: Sequence[Any],
    *,
    structure: LinearProgram | None = None,
    backend: str = "highs",
    workers: int | None = None,
    executor: Executor | None = None,
    time_limit: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Solution]:
    """Solve a batch, preserving order; a failing item is reported in its own `Solution`.

    Args:
        problems_or_costs: `LinearProgram` objects, or, with `structure`, cost
            vectors of shape (n,) (a 2-D array of shape (B, n) works too).
        structure: a problem whose constraints all items share; the backend model
            is then built once per chunk and only the costs change (see `Solver`).
        backend: as for [`solvers.solve`][solvers.solve].
        time_limit: as for [`solvers.solve`][solvers.solve].
        options: as for [`solvers.solve`][solvers.solve].
        workers: solve in this many worker processes (spawned, so that solver
            thread pools are never forked), one contiguous chunk each. Each call
            starts a fresh pool, and each spawned process imports numpy, scipy and
            the backend: about 1-2 s per worker (3.6 s for 2 workers and 8 s for 4
            on a busy 2-core machine, against 0.02 s for the whole 8-item batch in
            the calling process), so it pays off only for batches that take much
            longer. Pass `executor=` to reuse one pool across calls. The workers
            re-import the calling script: from a script, call `solve_batch` under
            `if __name__ == "__main__":` (otherwise a one-line `RuntimeError`
            says so).
        executor: any `concurrent.futures.Executor` to run the chunks on, e.g. a
            dask.distributed `Client(...).get_executor()`; one chunk per worker
            thread it reports (8 when it reports none). Overrides `workers`. A chunk whose
            worker dies comes back as ERROR solutions saying so; the others are kept.

    Returns:
        One `Solution` per item, in input order. Items that raise (bad costs, a
            backend error) come back with `Status.ERROR` and the reason in
            `message`; every other item is still solved.
    """
    if structure is not None and not isinstance(structure, LinearProgram):
        raise TypeError(
            f"`structure` must be a solvers.LinearProgram; got {type(structure).__name__}."
        )
    if isinstance(problems_or_costs, np.ndarray):
        items: list[Any] = list(problems_or_costs)
    else:
        items = list(problems_or_costs)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"`workers` must be a positive integer; got {workers!r}.")
    if not items:
        return []
    if executor is None and (workers is None or workers == 1):
        return _solve_chunk(0, items, structure, backend, time_limit, options)

    n_chunks = (
        min(workers, len(items)) if executor is None else _executor_width(executor, len(items))
    )
    bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
    own_pool = None
    if executor is None:
        own_pool = executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )
    try:
        futures = [
            executor.submit(
                _solve_chunk, int(lo), items[lo:hi], structure, backend, time_limit, options
            )
            for lo, hi in itertools.pairwise(bounds)
        ]
        results: list[Solution] = []
        for (lo, hi), future in zip(itertools.pairwise(bounds), futures):
            try:
                results.extend(future.result())
            except BrokenProcessPool as exc:
                if own_pool is not None and not results and _main_is_a_script():
                    raise RuntimeError(_UNGUARDED_SCRIPT.format(workers=workers)) from exc
                results.extend(_failed(int(i), backend, exc) for i in range(lo, hi))
            except Exception as exc:  # a worker died: lose only its own items
                results.extend(_lost(int(i), int(lo), int(hi), backend, exc) for i in range(lo, hi))
        return results
    finally:
        if own_pool is not None:
            own_pool.shutdown()
