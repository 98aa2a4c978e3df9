"""`LinearProgram` validates on construction with messages that name the argument."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from solvers import LinearProgram


def test_defaults_follow_scipy():
    lp = LinearProgram([1.0, 2.0])
    np.testing.assert_array_equal(lp.bounds, [[0.0, np.inf], [0.0, np.inf]])
    assert lp.n_ub == lp.n_eq == 0 and not lp.is_mip


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ((None, None), [[-np.inf, np.inf]] * 2),
        ((-1, 3), [[-1, 3]] * 2),
        ([(0, 1), (None, 5)], [[0, 1], [-np.inf, 5]]),
        (np.array([[0.0, 1.0], [2.0, 3.0]]), [[0, 1], [2, 3]]),
        ([(0, 1)], [[0, 1]] * 2),
    ],
)
def test_bounds_forms(bounds, expected):
    np.testing.assert_array_equal(LinearProgram([1.0, 1.0], bounds=bounds).bounds, expected)


def test_scipy_bounds_object():
    from scipy.optimize import Bounds

    lp = LinearProgram([1.0, 1.0], bounds=Bounds([0, -1], [1, np.inf]))
    np.testing.assert_array_equal(lp.bounds, [[0, 1], [-1, np.inf]])


def test_sparse_and_dense_agree():
    A = np.array([[1.0, 0.0], [2.0, 3.0]])
    dense = LinearProgram([1, 1], A_ub=A, b_ub=[1, 2])
    sparse = LinearProgram([1, 1], A_ub=sp.csc_matrix(A), b_ub=[1, 2])
    np.testing.assert_array_equal(dense.A_ub.toarray(), sparse.A_ub.toarray())


def test_arrays_are_read_only():
    lp = LinearProgram([1.0, 2.0], A_eq=[[1.0, 1.0]], b_eq=[1.0])
    with pytest.raises(ValueError):
        lp.c[0] = 5.0
    with pytest.raises(AttributeError):
        lp.c = np.zeros(2)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c": []}, "`c` must be non-empty"),
        ({"c": [[1.0, 2.0]]}, "`c` must be one-dimensional"),
        ({"c": [1.0, np.nan]}, "`c` must not contain NaN"),
        ({"c": [1.0, np.inf]}, "`c` must contain only finite"),
        ({"c": ["a", 1]}, "`c` must be a one-dimensional array"),
        ({"A_ub": [[1.0, 1.0]]}, "`b_ub` must be given"),
        ({"b_ub": [1.0]}, "`A_ub` must be given"),
        ({"A_ub": [[1.0, 1.0, 1.0]], "b_ub": [1.0]}, "`A_ub` must have len\\(c\\) = 2 columns"),
        ({"A_ub": [[1.0, 1.0]], "b_ub": [1.0, 2.0]}, "`A_ub` must have shape \\(len\\(b_ub\\)"),
        ({"A_ub": [[1.0, np.nan]], "b_ub": [1.0]}, "`A_ub` must not contain NaN"),
        ({"A_eq": [[1.0, np.inf]], "b_eq": [1.0]}, "`A_eq` must contain only finite"),
        ({"A_eq": [[1.0, 1.0]], "b_eq": [np.nan]}, "`b_eq` must not contain NaN"),
        ({"A_ub": [[1.0, 1.0]], "b_ub": [np.inf]}, "`b_ub` must contain only finite"),
        ({"A_eq": sp.csr_matrix([[1.0, np.nan]]), "b_eq": [1.0]}, "`A_eq` must not contain NaN"),
        ({"A_eq": np.ones((1, 1, 2)), "b_eq": [1.0]}, "`A_eq` must be two-dimensional"),
        ({"bounds": [(0, 1), (0, 1), (0, 1)]}, "`bounds` must be a \\(lb, ub\\) pair"),
        ({"bounds": (0, np.nan)}, "`bounds` must not contain NaN"),
        ({"bounds": (2, 1)}, "lower bound exceeds upper bound"),
        ({"bounds": (np.inf, None)}, "lower bound of variable 0 is \\+inf"),
        ({"bounds": (None, -np.inf)}, "upper bound of variable 0 is -inf"),
        ({"bounds": [(0, "x"), (0, 1)]}, "`bounds` must hold numbers or None"),
        ({"integrality": [1, 2]}, "`integrality` must contain only 0"),
        ({"integrality": [1, 0, 1]}, "`integrality` must have shape"),
    ],
)
def test_invalid_input_names_the_argument(kwargs, match):
    args = {"c": [1.0, 1.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        LinearProgram(**args)


def test_with_costs_validates_and_shares_matrices():
    lp = LinearProgram([1.0, 2.0], A_ub=[[1.0, 1.0]], b_ub=[1.0])
    other = lp.with_costs([3.0, 4.0])
    assert other.A_ub is lp.A_ub
    np.testing.assert_array_equal(other.c, [3.0, 4.0])
    with pytest.raises(ValueError, match="`c` must have shape"):
        lp.with_costs([1.0])
    with pytest.raises(ValueError, match="NaN"):
        lp.with_costs([np.nan, 1.0])


def test_residuals_measure_the_worst_violation():
    lp = LinearProgram([1.0, 1.0], A_ub=[[1.0, 1.0]], b_ub=[1.0], A_eq=[[1.0, -1.0]], b_eq=[0.0])
    assert lp.residuals([0.5, 0.5]) == 0.0
    assert lp.residuals([1.0, 1.0]) == pytest.approx(1.0)
    assert lp.residuals([-0.25, -0.25]) == pytest.approx(0.25)


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.none(),
    st.integers(-5, 5),
)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 4),
    m=st.integers(0, 3),
    data=st.data(),
)
def test_fuzzed_arguments_give_a_problem_or_a_clear_error(n, m, data):
    """Random shapes and NaN/inf placements: never a crash, only a valid problem or ValueError."""
    c = data.draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
    rows = data.draw(st.integers(0, 3))
    cols = data.draw(st.sampled_from([n, max(n - 1, 0), n + 1]))
    A = data.draw(
        st.lists(
            st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=cols, max_size=cols),
            min_size=rows,
            max_size=rows,
        )
    )
    b = data.draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=m, max_size=m))
    bounds = data.draw(
        st.one_of(
            st.none(),
            st.tuples(_numbers, _numbers),
            st.lists(st.tuples(_numbers, _numbers), max_size=5),
        )
    )
    integrality = data.draw(
        st.one_of(st.none(), st.lists(st.integers(-1, 2), min_size=n, max_size=n))
    )
    try:
        lp = LinearProgram(
            c,
            A_ub=A if rows else None,
            b_ub=b if rows else None,
            bounds=bounds,
            integrality=integrality,
        )
    except ValueError as exc:
        assert "`" in str(exc), f"message does not name the argument: {exc}"
        return
    assert np.isfinite(lp.c).all() and np.isfinite(lp.A_ub.data).all()
    assert np.isfinite(lp.b_ub).all() and not np.isnan(lp.bounds).any()
    assert (lp.lb <= lp.ub).all()


def test_the_callers_arrays_stay_writable():
    c, b_ub, b_eq = np.array([1.0, 2.0]), np.array([3.0]), np.array([1.0])
    lp = LinearProgram(c, A_ub=[[1.0, 1.0]], b_ub=b_ub, A_eq=[[1.0, 0.0]], b_eq=b_eq)
    new_c = np.array([0.5, 0.5])
    lp.with_costs(new_c)
    for arr in (c, b_ub, b_eq, new_c):
        assert arr.flags.writeable
    c[0] = 7.0  # and the problem keeps its own copy
    assert lp.c[0] == 1.0 and not lp.c.flags.writeable
