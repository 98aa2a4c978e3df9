"""The dense residual check of small problems equals the general (sparse) one."""

from __future__ import annotations

import numpy as np
import pytest

import solvers
from solvers._checks import primal_residuals


def _random_problem(rng: np.random.Generator) -> solvers.LinearProgram:
    n, m_ub, m_eq = (int(v) for v in rng.integers((1, 0, 0), (8, 4, 3)))
    lb = np.where(rng.random(n) < 0.3, -np.inf, rng.normal(size=n))
    ub = np.where(rng.random(n) < 0.3, np.inf, np.where(np.isinf(lb), 0.0, lb) + rng.random(n))
    return solvers.LinearProgram(
        rng.normal(size=n),
        A_ub=rng.normal(size=(m_ub, n)) if m_ub else None,
        b_ub=100 * rng.normal(size=m_ub) if m_ub else None,
        A_eq=rng.normal(size=(m_eq, n)) if m_eq else None,
        b_eq=rng.normal(size=m_eq) if m_eq else None,
        bounds=list(zip(lb, ub)),
    )


@pytest.mark.parametrize("per_row", [True, False])
def test_dense_and_sparse_residuals_agree(per_row):
    rng = np.random.default_rng(0)
    for _ in range(200):
        problem = _random_problem(rng)
        x = 3 * rng.normal(size=problem.n_vars)
        dense = primal_residuals(problem, x, per_row)
        assert problem.__dict__["_stacked"]["dense_checks"] is not None  # the fast path ran
        problem.__dict__["_stacked"]["dense_checks"] = None  # force the general path
        general = primal_residuals(problem, x, per_row)
        np.testing.assert_allclose(dense, general, rtol=1e-12, atol=1e-15)
