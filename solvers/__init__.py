"""solvers: one solver-agnostic LP/ILP/MILP layer (numpy + scipy; backends load lazily)."""

from __future__ import annotations

from .errors import (
    BackendUnavailableError,
    CapabilityError,
    InfeasibleError,
    ProblemFileError,
    SolverError,
    TimeLimitError,
    UnboundedError,
)
from .problem import LinearProgram
from .result import Solution, Status

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "CapabilityError",
    "InfeasibleError",
    "LinearProgram",
    "ProblemFileError",
    "Solution",
    "SolverError",
    "Status",
    "TimeLimitError",
    "UnboundedError",
]

from ._solve import Solver, solve
from .registry import available_backends, backend_info

__all__ += ["Solver", "available_backends", "backend_info", "solve"]

# Heavier parts load on first use so that `import solvers` stays light.
_LAZY = {
    "read": "files",
    "write": "files",
    "from_cvxpy": "cvxpy_frontend",
    "CvxpyMapping": "cvxpy_frontend",
    "solve_batch": "batch",
    "linprog": "scipy_api",
    "milp": "scipy_api",
    "assignment": "combinatorial",
    "assignment_lp": "combinatorial",
    "assignment_batch": "combinatorial",
    "assignment_batch_gather": "combinatorial",
    "alignment": "combinatorial",
    "alignment_lp": "combinatorial",
    "alignment_batch": "combinatorial",
    "alignment_batch_gather": "combinatorial",
    "shortest_path": "combinatorial",
    "shortest_path_lp": "combinatorial",
    "Oracle": "oracle",
}
__all__ += sorted(_LAZY)


def __getattr__(name: str):
    import importlib

    if name in ("combinatorial", "oracles"):
        return importlib.import_module(f".{name}", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solvers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
