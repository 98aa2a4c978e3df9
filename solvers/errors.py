"""Exception hierarchy of `solvers`: everything a solve can raise derives from `SolverError`."""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CapabilityError",
    "InfeasibleError",
    "ProblemFileError",
    "SolverError",
    "TimeLimitError",
    "UnboundedError",
]


class SolverError(RuntimeError):
    """A solve did not produce an optimal solution, or a backend failed."""


class InfeasibleError(SolverError):
    """The problem has no feasible point."""


class UnboundedError(SolverError):
    """The objective is unbounded below on the feasible set."""


class TimeLimitError(SolverError):
    """The time limit was reached before optimality was proven."""


class BackendUnavailableError(SolverError, ValueError):
    """The backend name is unknown, or its package is not installed."""


class CapabilityError(SolverError, ValueError):
    """The backend cannot do what was asked (e.g. integer variables on an LP-only solver)."""


class ProblemFileError(SolverError, ValueError):
    """A problem file could not be read or written, or holds invalid numbers."""
