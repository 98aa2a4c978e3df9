"""Helpers shared by the combinatorial solvers: engine selection and input validation."""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from ..errors import BackendUnavailableError

__all__ = ["ENGINE_ENV_VAR", "Engine", "numba_available", "resolve_engine", "run_chunks"]

Engine = Literal["auto", "numba", "numpy"]

#: Environment variable that sets the default engine ("auto", "numba" or "numpy").
ENGINE_ENV_VAR = "SOLVERS_COMBINATORIAL_ENGINE"

_ENGINES = ("auto", "numba", "numpy")


def numba_available() -> bool:
    """True when numba can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a stubbed-out sys.modules["numba"] = None
        return False


def resolve_engine(engine: str | None) -> str:
    """Map `engine` (or, when None, the `SOLVERS_COMBINATORIAL_ENGINE` variable) to a concrete one.

    `"auto"` means numba when it is installed, else numpy.

    Raises:
        ValueError: for an unknown engine name.
        BackendUnavailableError: when `"numba"` is asked for and numba is missing.
    """
    source = "`engine`"
    if engine is None:
        engine = os.environ.get(ENGINE_ENV_VAR, "auto") or "auto"
        source = f"environment variable {ENGINE_ENV_VAR}"
    engine = str(engine).lower()
    if engine not in _ENGINES:
        raise ValueError(f"{source} must be one of {_ENGINES}; got {engine!r}.")
    if engine == "auto":
        return "numba" if numba_available() else "numpy"
    if engine == "numba" and not numba_available():
        raise BackendUnavailableError(
            "engine='numba' was requested but numba is not installed; "
            "`pip install numba` or use engine='numpy'."
        )
    return engine


def as_float_array(value: Any, name: str, ndim: int) -> np.ndarray:
    """`value` as a float64 array with exactly `ndim` dimensions, else ValueError naming it."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`{name}` must be a {ndim}-D array of numbers.") from exc
    if arr.ndim != ndim:
        raise ValueError(f"`{name}` must be {ndim}-D; got shape {arr.shape}.")
    return arr


def as_lengths(value: Any, name: str, batch: int, upper: int) -> np.ndarray:
    """Validate per-item lengths: shape (batch,), integers in [0, upper]; None means all `upper`."""
    if value is None:
        return np.full(batch, upper, dtype=np.int64)
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(batch, arr)
    if arr.shape != (batch,):
        raise ValueError(f"`{name}` must have shape ({batch},); got {arr.shape}.")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(f"`{name}` must hold integers; got dtype {arr.dtype}.")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"`{name}` must hold integers; got {arr}.")
    out = arr.astype(np.int64)
    bad = (out < 0) | (out > upper)
    if bad.any():
        b = int(bad.argmax())
        raise ValueError(f"`{name}` must lie in [0, {upper}]; item {b} has {int(out[b])}.")
    return out


# Below this much work (cells of cost matrices) per thread, the hand-off costs more than it saves.
_MIN_CELLS_PER_THREAD = 50_000
_MAX_THREADS = 8
_SLICES_PER_THREAD = 8
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool_in_child() -> None:
    # A forked child inherits the pool object but none of its threads: submitting to it
    # would wait forever. The child builds its own pool on first use.
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="combinatorial")
        return _POOL


def run_chunks(
    kernel: Callable[[int, int], object],
    batch: int,
    cells_per_item: int,
    threads: int | None = None,
) -> None:
    """Call `kernel(lo, hi)` on contiguous slices covering `range(batch)`.

    The kernels release the GIL, so the slices run at the same time in a small pool
    of Python threads (the calling thread is one of them). Each thread takes the next
    free slice until none is left (up to 8 slices per thread), so a thread slowed by
    another process or by torch's spinning OpenMP workers does not hold up the call.
    Idle pool threads block on a queue: unlike OpenMP or numba's parallel workers they
    never spin, so they take no CPU from torch between calls.

    Args:
        kernel: writes the results of items `lo..hi-1` in place.
        batch: number of items.
        cells_per_item: work per item (e.g. cost-matrix cells), to size the slices.
        threads: number of threads; None picks up to `os.cpu_count()` (at most 8),
            at least `50_000` cells per thread; 1 runs serially.

    Raises:
        ValueError: naming `threads` when it is not a positive integer or None.
    """
    if threads is None:
        threads = max(1, batch * cells_per_item // _MIN_CELLS_PER_THREAD)
        if threads > 1:  # os.cpu_count() reads sysfs: only when the batch could use it
            threads = min(threads, os.cpu_count() or 1, _MAX_THREADS)
    elif isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")
    threads = max(1, min(threads, batch))
    if threads == 1:
        kernel(0, batch)
        return
    # More slices than threads, taken in turn: a thread that shares its core (e.g. with
    # torch's OpenMP workers, which spin for milliseconds after each parallel region)
    # takes fewer slices instead of holding up the others.
    n_slices = min(batch, threads * _SLICES_PER_THREAD)
    edges = np.linspace(0, batch, n_slices + 1).astype(int).tolist()
    slices = list(itertools.pairwise(edges))
    next_slice = itertools.count()  # next() on a count is atomic under the GIL

    def take_slices() -> None:
        while (s := next(next_slice)) < n_slices:
            kernel(*slices[s])

    pool = _thread_pool(threads - 1)
    futures = [pool.submit(take_slices) for _ in range(threads - 1)]
    try:
        take_slices()
    finally:
        for future in futures:
            future.result()
