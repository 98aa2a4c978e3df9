r"""`Oracle`: a batched argmin over a fixed feasible set, for decision-focused learning.

An oracle maps cost vectors to minimizers over a fixed feasible set $\mathcal{X}$:

$$
x^\star(c) \in \arg\min_{x \in \mathcal{X}} c^\top x, \qquad z(c) = c^\top x^\star(c),
$$

one call for a whole batch: `x, values = oracle.solve(costs)`. The constraints never
change between calls; only the costs do. Everything is a **minimization**; to maximize
a value $v^\top x$, pass the negated values as costs (`oracle.solve(-v)`) and negate
the returned values.

Constructors:

* [`Oracle.from_problem`][solvers.oracle.Oracle.from_problem]: any
  [`LinearProgram`][solvers.LinearProgram] (LP or MILP) through any backend;
* [`Oracle.from_callable`][solvers.oracle.Oracle.from_callable]: your own solver;
* the fast exact structures of [`solvers.oracles`][solvers.oracles]
  (grid shortest path, assignment, top-k, knapsack).

Torch-free: numpy only (plus whatever the chosen backend or structure needs).
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import numpy as np

from .errors import InfeasibleError, SolverError, TimeLimitError, UnboundedError
from .problem import LinearProgram
from .result import Solution, Status

__all__ = ["Oracle"]


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n!r}.")
    return int(n)


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


class Oracle:
    r"""A batched argmin $c \mapsto x^\star(c) \in \arg\min_{x \in \mathcal{X}} c^\top x$.

    Do not instantiate directly: use
    [`from_problem`][solvers.oracle.Oracle.from_problem],
    [`from_callable`][solvers.oracle.Oracle.from_callable] or a structure of
    [`solvers.oracles`][solvers.oracles]. Subclasses implement `_solve_batch`.

    Attributes:
        n: the number of cost entries (the length of a cost vector).
        name: a short description, used in error messages.

    Examples:
        ```python
        import numpy as np
        import solvers

        # Pick exactly one of three items: the cheapest one.
        lp = solvers.LinearProgram([0.0, 0.0, 0.0], A_eq=[[1, 1, 1]], b_eq=[1], bounds=(0, 1))
        oracle = solvers.Oracle.from_problem(lp)
        x, values = oracle.solve(np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]]))
        # x == [[0, 1, 0], [0, 0, 1]], values == [1, -1]
        ```
    """

    n: int
    name: str

    def __init__(self, n: int, name: str = "oracle") -> None:
        self.n = _check_n(n)
        self.name = name

    # -- public API ----------------------------------------------------------------
    def solve(self, costs: Any) -> tuple[np.ndarray, np.ndarray]:
        r"""Minimizers and optimal values for a batch of cost vectors.

        Args:
            costs: `(B, n)` cost vectors (a batch), or one `(n,)` vector; finite numbers.
                `B = 0` is allowed.

        Returns:
            `(x, values)`: float64 arrays; `x` has the shape of `costs` and
                `values = (costs * x).sum(-1)` has shape `costs.shape[:-1]`, that is
                `(B,)` for a batch and `()` (a 0-d array) for one `(n,)` vector.
                Each `x[b]` is an optimal vertex of the feasible set for `costs[b]`; which
                one, among tied optima, is deterministic (documented per structure).

        Raises:
            ValueError: `costs` has the wrong shape (not 1-D or 2-D, last dimension not
                `n`) or holds NaN or infinity (the message names the first position).
            InfeasibleError, UnboundedError, SolverError: a batch item has no optimum;
                the message names every such item. All other items were solved.
        """
        arr = self._check_costs(costs)
        single = arr.ndim == 1
        batch = arr[None, :] if single else arr
        if batch.shape[0] == 0:
            return np.zeros((0, self.n)), np.zeros(0)
        x, values = self._solve_batch(batch)
        if single:
            return x[0], values[0, ...]
        return x, values

    __call__ = solve

    def _check_costs(self, costs: Any) -> np.ndarray:
        try:
            arr = np.asarray(costs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"`costs` must be a (B, {self.n}) or ({self.n},) array of numbers."
            ) from exc
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.n:
            raise ValueError(
                f"`costs` must have shape (B, {self.n}) or ({self.n},) for {self.name}; "
                f"got {arr.shape}."
            )
        finite = np.isfinite(arr)
        if not finite.all():
            where = _first_bad(~finite)
            raise ValueError(f"`costs` must be finite; found {arr[where]} at index {list(where)}.")
        return arr

    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Solve validated float64 costs of shape (B, n), B >= 1; return (x, values)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, name={self.name!r})"

    # -- constructors --------------------------------------------------------------
    @classmethod
    def from_problem(
        cls,
        lp: LinearProgram,
        backend: str = "highs",
        workers: int | None = None,
        *,
        executor: Executor | None = None,
        time_limit: float | None = None,
        options: Any = None,
    ) -> Oracle:
        r"""An oracle over the feasible set of `lp` (LP or MILP), whose costs `lp.c` vary.

        The backend model is built once (a [`Solver`][solvers.Solver]) and re-solved with
        each new cost vector. With `workers`, batches are split into contiguous chunks
        solved in a process pool that the oracle keeps for its lifetime (spawned on first
        use; call `close()` or use the oracle as a
        context manager to shut it down); each worker builds the model once per chunk.

        Integer variables of a MILP come back rounded to exact integers, and `values` is
        recomputed as `costs @ x` so that the two always agree.

        Args:
            lp: the structure; `lp.c` is ignored (every call passes costs).
            backend: a name from [`available_backends`][solvers.available_backends].
            workers: solve batches in this many processes; None or 1 solves in this process.
            executor: any `concurrent.futures.Executor` to run the chunks on instead
                (e.g. a dask client's); overrides `workers`.
            time_limit: seconds per solve, as for [`solve`][solvers.solve]; an item that
                hits it raises `TimeLimitError`.
            options: backend options, as for [`solve`][solvers.solve].

        Returns:
            An [`Oracle`][solvers.oracle.Oracle] with `n = lp.n_vars`.

        Raises:
            TypeError: `lp` is not a `LinearProgram`.
            BackendUnavailableError, CapabilityError: as for [`Solver`][solvers.Solver].
            ValueError: bad `workers`.
        """
        return ProblemOracle(
            lp, backend, workers, executor=executor, time_limit=time_limit, options=options
        )

    @classmethod
    def from_callable(
        cls, fn: Callable[[np.ndarray], Any], n: int, *, batched: bool = True
    ) -> Oracle:
        r"""An oracle around your own solver.

        Args:
            fn: with `batched=True` (default), called with float64 costs of shape `(B, n)`
                and returning either `x` of shape `(B, n)` or a pair `(x, values)` with
                `values` of shape `(B,)`. With `batched=False`, called once per cost
                vector of shape `(n,)` and returning `x` of shape `(n,)` or `(x, value)`.
                It must minimize; a failure should raise an exception.
            n: the number of cost entries.
            batched: whether `fn` takes a whole batch.

        Returns:
            An [`Oracle`][solvers.oracle.Oracle]. Its output is checked: a wrong shape or a
                non-finite entry raises `SolverError` naming `fn` and the batch item. When
                `fn` returns no values they are computed as `(costs * x).sum(-1)`.

        Raises:
            TypeError: `fn` is not callable.
            ValueError: bad `n`.
        """
        return CallableOracle(fn, n, batched=batched)


# ----------------------------------------------------------------------------------
class CallableOracle(Oracle):
    """The oracle of [`Oracle.from_callable`][solvers.oracle.Oracle.from_callable]."""

    def __init__(self, fn: Callable[[np.ndarray], Any], n: int, *, batched: bool = True) -> None:
        if not callable(fn):
            raise TypeError(f"`fn` must be callable; got {type(fn).__name__}.")
        super().__init__(n, name=f"callable {getattr(fn, '__name__', type(fn).__name__)}")
        self.fn = fn
        self.batched = bool(batched)

    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.batched:
            x, values = self._unpack(self.fn(costs.copy()), costs.shape, "")
        else:
            xs, vs = [], []
            for b in range(costs.shape[0]):
                xb, vb = self._unpack(self.fn(costs[b].copy()), (self.n,), f" for batch item {b}")
                xs.append(xb)
                vs.append(vb)
            x = np.stack(xs)
            values = None if any(v is None for v in vs) else np.array(vs, dtype=np.float64)
        bad = ~np.isfinite(x)
        if bad.any():
            b = _first_bad(bad)[0]
            raise SolverError(f"{self.name} returned a non-finite solution for batch item {b}.")
        if values is None:
            values = np.einsum("bn,bn->b", costs, x)
        elif not np.isfinite(values).all():
            b = int(np.argmax(~np.isfinite(values)))
            raise SolverError(f"{self.name} returned a non-finite value for batch item {b}.")
        return x, values

    def _unpack(self, out: Any, shape: tuple[int, ...], where: str):
        values = None
        if isinstance(out, tuple):
            if len(out) != 2:
                raise SolverError(
                    f"{self.name} must return x or a pair (x, values){where}; "
                    f"got a tuple of length {len(out)}."
                )
            out, values = out
        try:
            x = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SolverError(f"{self.name} returned a non-numeric solution{where}.") from exc
        if x.shape != shape:
            raise SolverError(f"{self.name} must return x of shape {shape}{where}; got {x.shape}.")
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != shape[:-1]:
                raise SolverError(
                    f"{self.name} must return values of shape {shape[:-1]}{where}; "
                    f"got {values.shape}."
                )
        return x, values


def _solve_chunk(
    lp: LinearProgram,
    backend: str,
    time_limit: float | None,
    options: Any,
    costs: np.ndarray,
) -> list[Solution]:
    from ._solve import Solver

    solver = Solver(lp, backend, time_limit=time_limit, options=options)
    return [solver.solve(c) for c in costs]


_ERRORS = {
    Status.INFEASIBLE: InfeasibleError,
    Status.UNBOUNDED: UnboundedError,
    Status.TIME_LIMIT: TimeLimitError,
}


class ProblemOracle(Oracle):
    """The oracle of [`Oracle.from_problem`][solvers.oracle.Oracle.from_problem]."""

    def __init__(
        self,
        lp: LinearProgram,
        backend: str = "highs",
        workers: int | None = None,
        *,
        executor: Executor | None = None,
        time_limit: float | None = None,
        options: Any = None,
    ) -> None:
        from ._solve import Solver

        if not isinstance(lp, LinearProgram):
            raise TypeError(f"`lp` must be a solvers.LinearProgram; got {type(lp).__name__}.")
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ValueError(f"`workers` must be a positive integer or None; got {workers!r}.")
        super().__init__(lp.n_vars, name=f"LinearProgram oracle ({backend})")
        self.lp = lp
        self.backend = backend
        self.workers = workers
        self.time_limit = time_limit
        self.options = dict(options or {})
        # Built now so that a bad backend or capability fails at construction.
        self._solver = Solver(lp, backend, time_limit=time_limit, options=self.options)
        self._lock = threading.Lock()
        self._executor = executor
        self._own_pool: ProcessPoolExecutor | None = None
        self._integer = lp.integrality.astype(bool)

    # -- pool lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Shut down the process pool this oracle started, if any."""
        pool, self._own_pool = self._own_pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ProblemOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - interpreter-dependent timing
        pool = getattr(self, "_own_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __getstate__(self) -> dict[str, Any]:
        # Picklable (for process pools of the caller): the model and pool are rebuilt.
        state = {k: self.__dict__[k] for k in ("lp", "backend", "workers", "time_limit", "options")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(
            state["lp"], state["backend"], state["workers"],
            time_limit=state["time_limit"], options=state["options"],
        )  # fmt: skip

    def _pool(self) -> Executor | None:
        if self._executor is not None:
            return self._executor
        if self.workers is None or self.workers == 1:
            return None
        if self._own_pool is None:
            self._own_pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._own_pool

    # -- solving ---------------------------------------------------------------------
    def _solve_batch(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = costs.shape[0]
        pool = self._pool() if batch > 1 else None
        if pool is None:
            with self._lock:
                sols = [self._solver.solve(c) for c in costs]
        else:
            n_chunks = self.workers or max(1, getattr(pool, "_max_workers", 1) or 1)
            edges = np.linspace(0, batch, min(n_chunks, batch) + 1).astype(int)
            futures = [
                pool.submit(
                    _solve_chunk, self.lp, self.backend, self.time_limit, self.options,
                    costs[lo:hi],
                )
                for lo, hi in itertools.pairwise(edges)
            ]  # fmt: skip
            sols = [sol for f in futures for sol in f.result()]
        failed = [b for b, sol in enumerate(sols) if not sol.success]
        if failed:
            first = sols[failed[0]]
            error = _ERRORS.get(first.status, SolverError)
            more = "" if len(failed) == 1 else f" ({len(failed)} items failed: {failed[:10]})"
            raise error(
                f"{self.name}: batch item {failed[0]} has no optimum{more}: "
                f"{first.status.name}: {first.message}"
            )
        x = np.stack([sol.x for sol in sols])
        if self._integer.any():
            x[:, self._integer] = np.round(x[:, self._integer])
        return x, np.einsum("bn,bn->b", costs, x)
