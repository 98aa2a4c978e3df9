"""The losses' exact path reads costs through the gather kernels: same optima as the dense path.

`matching_loss` and `alignment_loss` with `sigma = 0` and `solver="exact"` hand the
`(B, k, C)` / `(B, T, C)` tables to `solvers.assignment_batch_gather` /
`solvers.alignment_batch_gather` and pick the matched entries with `gather_rows`. These
tests pin that the gradient is exactly the optimal vertex the dense-cost kernels
(`solvers.assignment_batch`, `solvers.alignment_batch` on the float64 costs) return, for
float32 and float64 inputs, with padding, masks, blank and `-inf` entries.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import solvers
from combgrad import alignment_loss, matching_loss
from combgrad.losses._gather import gather_rows

# The -inf entries make some rows sum to less than 1, which the losses warn about once.
pytestmark = pytest.mark.filterwarnings("ignore:`log_probs` has rows:UserWarning")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gather_rows_forward_and_backward(dtype):
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(3, 7, generator=gen, dtype=dtype, requires_grad=True)
    index = torch.tensor([[0, 3, -1], [6, -1, -1], [2, 1, 5]])
    weights = torch.randn(3, 3, generator=gen, dtype=dtype)
    out = gather_rows(table, index)
    valid = index >= 0
    expected = table.detach().gather(1, index.clamp(min=0)).masked_fill(~valid, 0.0)
    assert out.dtype == dtype and torch.equal(out.detach(), expected)
    (out * weights).sum().backward()
    grad = torch.zeros(3, 7, dtype=dtype)
    for b, l in valid.nonzero().tolist():
        grad[b, index[b, l]] += weights[b, l]
    assert torch.equal(table.grad, grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("padded", [False, True])
def test_matching_gradient_is_the_dense_kernels_assignment(dtype, padded):
    rng = np.random.default_rng(1 + padded)
    B, k, C, L = 12, 7, 4, 6  # repeated labels: ties between equal cost rows
    log_probs = torch.randn(B, k, C, dtype=torch.float64).log_softmax(-1).to(dtype)
    log_probs[torch.from_numpy(rng.random((B, k, C)) < 0.15)] = -float("inf")
    labels = torch.from_numpy(rng.integers(0, C, (B, L)))
    mask = None
    n_labels, n_inst = np.full(B, L), np.full(B, k)
    if padded:
        n_labels = rng.integers(0, L + 1, B)
        n_inst = np.maximum(n_labels, rng.integers(0, k + 1, B))
        labels[torch.arange(L)[None, :] >= torch.from_numpy(n_labels)[:, None]] = -100
        mask = torch.arange(k)[None, :] < torch.from_numpy(n_inst)[:, None]
    # Reference: each bag's dense float64 cost block, through the dense batch kernel.
    lp64 = log_probs.double().numpy()
    cost = np.zeros((B, L, k))
    for b in range(B):
        block = -lp64[b, : n_inst[b]][:, labels[b, : n_labels[b]].numpy()].T
        cost[b, : n_labels[b], : n_inst[b]] = block
    values, matched = solvers.assignment_batch(
        cost, row_counts=n_labels, col_counts=n_inst, return_indices=True
    )
    feasible = np.isfinite(values)
    assert feasible.sum() >= B // 2  # the -inf entries leave most bags matchable
    keep = torch.from_numpy(feasible)
    x = log_probs[keep].clone().requires_grad_(True)
    loss = matching_loss(x, labels[keep], None if mask is None else mask[keep], "none")
    loss.sum().backward()
    expected = torch.zeros(x.shape, dtype=dtype)
    for row, b in enumerate(np.flatnonzero(feasible)):
        for l in range(n_labels[b]):
            expected[row, matched[b, l], labels[b, l]] -= 1.0
    assert torch.equal(x.grad, expected)
    assert np.allclose(loss.detach().double().numpy(), values[feasible], rtol=1e-6, atol=1e-9)
    if not feasible.all():
        b = int(np.flatnonzero(~feasible)[0])
        with pytest.raises(solvers.InfeasibleError, match=f"bag {b}"):
            matching_loss(log_probs, labels, mask)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("blank", [None, 0])
def test_alignment_gradient_is_the_dense_kernels_path(dtype, blank):
    rng = np.random.default_rng(3)
    B, T, C, L, gap = 10, 9, 5, 7, 0.7
    log_probs = torch.randn(B, T, C, dtype=torch.float64).log_softmax(-1).to(dtype)
    log_probs[torch.from_numpy(rng.random((B, T, C)) < 0.1)] = -float("inf")
    targets = torch.from_numpy(rng.integers(0, C, (B, L)))
    n_len, m_len = rng.integers(0, T + 1, B), rng.integers(0, L + 1, B)
    # Reference: the dense float64 (B, T, L) costs through the dense batch kernel, with
    # -inf read as the losses' forbidden cost.
    table = -log_probs.double().numpy()
    table[np.isposinf(table)] = 1e30
    sub = np.take_along_axis(table, targets.numpy()[:, None, :], 2)
    gap_arg = gap if blank is None else (gap + table[..., blank], gap)
    values, match, _, _ = solvers.alignment_batch(sub, gap_arg, n_len, m_len)
    x = log_probs.clone().requires_grad_(True)
    loss = alignment_loss(
        x, targets, n_len.tolist(), m_len.tolist(), gap, "none", blank=blank, zero_infinity=True
    )
    loss.sum().backward()
    expected = torch.zeros(B, T, C, dtype=dtype)
    infinite = np.zeros(B, dtype=bool)
    for b, i, j in zip(*np.nonzero(match), strict=True):
        expected[b, i, targets[b, j]] -= 1.0
        infinite[b] |= sub[b, i, j] >= 1e30
    if blank is not None:
        unmatched = (np.arange(T)[None, :] < n_len[:, None]) & ~match.any(2)
        for b, i in zip(*np.nonzero(unmatched), strict=True):
            expected[b, i, blank] -= 1.0
            infinite[b] |= table[b, i, blank] >= 1e30
    expected[torch.from_numpy(infinite)] = 0.0  # zero_infinity: no gradient
    assert torch.equal(x.grad, expected)
    assert not infinite.all()
    if blank is not None:  # a -inf blank where no match is possible: an infinite item
        assert infinite.any()
    got = loss.detach().double().numpy()
    assert np.all(got[infinite] == 0.0)
    assert np.allclose(got[~infinite], values[~infinite], rtol=1e-6, atol=1e-9)
