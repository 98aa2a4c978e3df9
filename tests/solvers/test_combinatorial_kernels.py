"""The compiled kernels: assignment engines, the gather variants, threads, no OpenMP pool."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from solvers.combinatorial import (
    alignment_batch,
    alignment_batch_gather,
    assignment,
    assignment_batch,
    assignment_batch_gather,
)

ENGINES = ("numba", "numpy")


def _scipy_value(cost: np.ndarray) -> float:
    try:
        rows, cols = linear_sum_assignment(cost)
    except ValueError:  # no complete matching through the allowed pairs
        return np.inf
    return float(cost[rows, cols].sum())


@pytest.mark.parametrize("kind", ["uniform", "ties", "forbidden", "wide"])
def test_numba_kernel_is_optimal_against_scipy(kind):
    rng = np.random.default_rng(["uniform", "ties", "forbidden", "wide"].index(kind))
    for _ in range(25):
        n = int(rng.integers(1, 60))
        m = n if kind != "wide" else int(rng.integers(1, 60))
        cost = rng.integers(0, 3, (n, m)).astype(float) if kind == "ties" else rng.random((n, m))
        if kind == "forbidden":
            cost[rng.random(cost.shape) < 0.6] = np.inf
        values, indicator = assignment_batch(cost[None], engine="numba")
        expected = _scipy_value(cost)
        if np.isinf(expected):
            assert values[0] == np.inf and not indicator.any()
            continue
        assert values[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        matched = indicator[0]
        assert (matched.sum(0) <= 1).all() and (matched.sum(1) <= 1).all()
        assert matched.sum() == min(n, m)
        assert values[0] == pytest.approx(cost[matched].sum(), rel=1e-12)


@pytest.mark.parametrize("maximize", [False, True])
def test_engines_agree_and_single_equals_batch(maximize):
    rng = np.random.default_rng(5)
    costs = rng.integers(0, 4, (12, 7, 9)).astype(float)  # many ties
    counts = rng.integers(0, 8, 12), rng.integers(0, 10, 12)
    by_engine = {
        e: assignment_batch(
            costs, maximize=maximize, row_counts=counts[0], col_counts=counts[1], engine=e
        )
        for e in ENGINES
    }
    assert np.array_equal(by_engine["numba"][0], by_engine["numpy"][0])
    values, indicator = by_engine["numba"]
    for b in range(12):
        n, m = counts[0][b], counts[1][b]
        if n == 0 or m == 0:
            assert values[b] == 0 and not indicator[b].any()
            continue
        single = assignment(costs[b, :n, :m], maximize=maximize, engine="numba")
        assert single.objective == values[b]  # same kernel, same sum order: bit for bit
        assert np.array_equal(single.x.reshape(n, m), indicator[b, :n, :m])


def test_threads_do_not_change_results_and_are_validated():
    rng = np.random.default_rng(2)
    costs = rng.random((40, 12, 12))
    one = assignment_batch(costs, threads=1, return_indices=True)
    three = assignment_batch(costs, threads=3, return_indices=True)
    assert np.array_equal(one[0], three[0]) and np.array_equal(one[1], three[1])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="`threads`"):
            assignment_batch(costs, threads=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("engine", ENGINES)
def test_assignment_gather_equals_dense_batch(dtype, engine):
    rng = np.random.default_rng(3)
    B, K, C, L = 10, 7, 5, 6
    scores = np.log(rng.dirichlet(np.ones(C), (B, K))).astype(dtype)
    scores[0, 2, :] = -np.inf  # instance 2 of bag 0 is impossible for every class
    labels = rng.integers(0, C, (B, L))
    instances = np.stack([rng.permutation(K) for _ in range(B)])
    rows = rng.integers(0, L + 1, B)
    cols = np.maximum(rows, rng.integers(0, K + 1, B))
    values, matched, status = assignment_batch_gather(
        scores, labels, instances, row_counts=rows, col_counts=cols, engine=engine
    )
    dense = -np.take_along_axis(
        np.take_along_axis(scores, instances[:, :, None], 1).astype(np.float64),
        labels[:, None, :],
        2,
    ).transpose(0, 2, 1)
    ref_values, ref_matched = assignment_batch(
        dense, row_counts=rows, col_counts=cols, return_indices=True, engine=engine
    )
    assert np.array_equal(values, ref_values)
    assert np.array_equal(matched, ref_matched)
    assert np.array_equal(status, (~np.isfinite(values)).astype(np.int8))


@pytest.mark.parametrize("kind", ["uniform", "ties", "forbidden"])
def test_repeated_labels_share_searches_without_changing_the_matching(kind):
    # Few classes and many labels: most rows of each item repeat another; the gather
    # kernel expands one row per repeated label in its augmenting-path searches.
    rng = np.random.default_rng(["uniform", "ties", "forbidden"].index(kind))
    B, K, C = 40, 30, 4
    if kind == "ties":
        scores = -rng.integers(0, 3, (B, K, C)).astype(np.float64)
    else:
        scores = np.log(rng.dirichlet(np.ones(C), (B, K)))
    if kind == "forbidden":
        scores[rng.random(scores.shape) < 0.3] = -np.inf
    labels = rng.integers(0, C, (B, K))
    rows = rng.integers(K // 2, K + 1, B)
    values, matched, _ = assignment_batch_gather(scores, labels, row_counts=rows)
    dense = -np.take_along_axis(scores, labels[:, None, :], 2).transpose(0, 2, 1)
    ref_values, ref_matched = assignment_batch(
        np.ascontiguousarray(dense), row_counts=rows, return_indices=True
    )
    assert np.array_equal(matched, ref_matched)
    assert np.array_equal(values, ref_values)
    for b in range(B):
        expected = _scipy_value(dense[b, : rows[b]])
        assert values[b] == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_assignment_gather_infeasible_and_bad_inputs():
    scores = np.zeros((2, 3, 4), dtype=np.float32)
    scores[1, :, 2] = -np.inf  # label 2 is impossible everywhere in bag 1
    labels = np.array([[0, 1], [2, 0]])
    values, matched, status = assignment_batch_gather(scores, labels)
    assert values[0] == 0 and values[1] == np.inf
    assert status.tolist() == [0, 1] and (matched[1] == -1).all()
    bad = scores.copy()
    bad[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"`scores`.*item 0"):
        assignment_batch_gather(bad, labels)
    with pytest.raises(ValueError, match="`labels`: item 1 position 0 holds 9"):
        assignment_batch_gather(scores, np.array([[0, 1], [9, 0]]))
    with pytest.raises(ValueError, match="`instances`"):
        assignment_batch_gather(scores, labels, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="`scores` must be 3-D"):
        assignment_batch_gather(scores[0], labels)


@pytest.mark.parametrize("engine", ENGINES)
def test_alignment_gather_equals_dense_batch_bit_for_bit(engine):
    rng = np.random.default_rng(4)
    B, T, C, L = 9, 8, 4, 7
    table = rng.integers(0, 3, (B, T, C)).astype(np.float32)  # ties everywhere
    targets = rng.integers(0, C, (B, L))
    n_len, m_len = rng.integers(0, T + 1, B), rng.integers(0, L + 1, B)
    row_gap = rng.random((B, T))
    dense = np.take_along_axis(table, targets[:, None, :], 2).astype(np.float64)
    for gap in (0.5, (row_gap, 0.75)):
        values, match, rows, cols = alignment_batch(dense, gap, n_len, m_len, engine=engine)
        got = alignment_batch_gather(table, targets, gap, n_len, m_len, engine=engine)
        assert np.array_equal(got[0], values)
        assert np.array_equal(got[1], np.where(match.any(2), match.argmax(2), -1))
        assert np.array_equal(got[2], rows) and np.array_equal(got[3], cols)


def test_alignment_gather_bad_inputs():
    table = np.zeros((2, 3, 4))
    targets = np.array([[0, 1], [3, 0]])
    with pytest.raises(ValueError, match="`targets`: item 1 position 0 holds 4"):
        alignment_batch_gather(table, np.array([[0, 1], [4, 0]]))
    bad = table.copy()
    bad[1, 2, 3] = np.inf
    with pytest.raises(ValueError, match=r"`token_costs`.*item 1"):
        alignment_batch_gather(bad, targets)
    # Entries no item reads (padding rows, tokens absent from the targets) may hold anything.
    bad[1, 2, :] = np.nan
    alignment_batch_gather(bad, targets, 1.0, [3, 2])
    with pytest.raises(ValueError, match="`targets` must have shape"):
        alignment_batch_gather(table, targets[0])


_NO_POOL_SCRIPT = """
import numpy as np
from numba.np.ufunc import parallel
from solvers.combinatorial import alignment_batch, alignment_batch_gather, assignment_batch
rng = np.random.default_rng(0)
assignment_batch(rng.random((64, 30, 30)), threads=2)
alignment_batch(rng.random((64, 30, 30)), 1.0, parallel=True)
alignment_batch_gather(rng.random((64, 30, 5)), rng.integers(0, 5, (64, 30)))
from solvers.oracles import grid_shortest_path, knapsack
grid_shortest_path(5, 5).solve(rng.random((8192, 40)))  # large enough for several threads
knapsack(rng.integers(1, 10, 32), 20).solve(rng.random((4096, 32)))
print(parallel._is_initialized)
"""


def test_no_numba_thread_pool_is_started():
    """The kernels (and the oracles' DPs) run on Python threads that sleep when idle: numba's parallel (OpenMP/TBB)
    pool, whose workers spin between calls and take cores from torch, is never launched.
    (In a fresh process: anything that asks numba for its thread count starts the pool.)"""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _NO_POOL_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "False"


def test_thread_pool_works_in_a_forked_child():
    """A child forked after the pool exists must not wait on the parent's (absent) threads."""
    import multiprocessing

    rng = np.random.default_rng(1)
    costs = rng.random((64, 30, 30))
    expected = assignment_batch(costs, threads=2)[0]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_batch_values_with_threads, (costs,)).get(timeout=120)
    assert np.array_equal(got, expected)


def _batch_values_with_threads(costs: np.ndarray) -> np.ndarray:
    return assignment_batch(costs, threads=2)[0]
