"""Helpers shared by the combinatorial solvers: engine selection and input validation."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Literal

import numpy as np

from ..errors import BackendUnavailableError

__all__ = ["ENGINE_ENV_VAR", "Engine", "numba_available", "resolve_engine"]

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
