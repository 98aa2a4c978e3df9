"""The backend registry: names, capability flags, and lookup with helpful errors."""

from __future__ import annotations

from ._backends.base import Backend
from ._backends.highs import HighsBackend
from ._backends.ortools import SCIP_LIMITS, OrToolsBackend
from .errors import BackendUnavailableError

__all__ = ["available_backends", "backend_info", "get_backend"]


def _make_registry() -> dict[str, Backend]:
    from ._backends.cvxpy_backend import CvxpyBackend

    backends: list[Backend] = [
        HighsBackend(),
        OrToolsBackend(
            "glop",
            "glop",
            description="OR-Tools GLOP primal/dual simplex (LP only).",
            integer=False,
            duals=True,
        ),
        OrToolsBackend(
            "pdlp",
            "pdlp",
            description="OR-Tools PDLP first-order primal-dual method (LP only).",
            integer=False,
            duals=True,
            exact=False,
            feasibility_tol=1e-5,
            feasibility_per_row=False,  # PDLP bounds the norm of the whole residual
        ),
        OrToolsBackend(
            "scip",
            "scip",
            description="SCIP branch and cut via OR-Tools (MILP; no duals).",
            integer=True,
            numeric_limits=SCIP_LIMITS,
        ),
        OrToolsBackend(
            "cp-sat",
            "sat",
            description="OR-Tools CP-SAT (pure integer programs only).",
            integer=True,
            continuous=False,
        ),
        CvxpyBackend(),
    ]
    return {b.name: b for b in backends}  # dict order is preference order


BACKENDS: dict[str, Backend] = _make_registry()


def available_backends(*, integer: bool = False, duals: bool = False) -> list[str]:
    """Names of installed backends, in preference order.

    Args:
        integer: only backends that handle integer variables.
        duals: only backends that report LP duals.
    """
    return [
        name
        for name, b in BACKENDS.items()
        if b.is_installed()
        and (b.supports_integer or not integer)
        and (b.supports_duals or not duals)
    ]


def backend_info() -> dict[str, dict[str, object]]:
    """Every registered backend with its capability flags and whether it is installed."""
    return {
        name: {**b.capabilities(), "installed": b.is_installed(), "description": b.description}
        for name, b in BACKENDS.items()
    }


def get_backend(name: str) -> Backend:
    """The backend called `name`; raises `BackendUnavailableError` listing what is available."""
    if not isinstance(name, str):
        raise BackendUnavailableError(f"`backend` must be a string; got {type(name).__name__}.")
    backend = BACKENDS.get(name.lower())
    if backend is None:
        raise BackendUnavailableError(
            f"`backend`: unknown backend {name!r}. Available: {available_backends()}."
        )
    if not backend.is_installed():
        raise BackendUnavailableError(
            f"`backend`: {name!r} needs {', '.join(backend.required_modules)}, which is not "
            f"installed. Available: {available_backends()}."
        )
    return backend
