"""Random LP generators shared by the solver and autograd tests."""

from __future__ import annotations

import numpy as np

from solvers import LinearProgram


def random_lp(seed: int, n: int, m_ub: int, m_eq: int, upper: float = 5.0) -> LinearProgram:
    """A random feasible, bounded LP: feasible by construction around a positive point."""
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(0.5, 2.0, n)
    A_ub = rng.normal(size=(m_ub, n))
    A_eq = rng.normal(size=(m_eq, n))
    return LinearProgram(
        rng.normal(size=n),
        A_ub=A_ub if m_ub else None,
        b_ub=A_ub @ x0 + rng.uniform(0.1, 1.0, m_ub) if m_ub else None,
        A_eq=A_eq if m_eq else None,
        b_eq=A_eq @ x0 if m_eq else None,
        bounds=(0, upper),
    )
