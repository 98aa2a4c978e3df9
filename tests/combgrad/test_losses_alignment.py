"""AlignmentLoss: exact global-alignment cost, its generalized gradient, and the LP path."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from combgrad import AlignmentLoss, alignment_loss


def all_alignments(n: int, m: int):
    """Every monotone alignment of n rows with m columns, as sets of matched (i, j)."""

    @functools.cache
    def paths(i: int, j: int) -> tuple[frozenset, ...]:
        if i == n and j == m:
            return (frozenset(),)
        out = []
        if i < n and j < m:
            out += [p | {(i, j)} for p in paths(i + 1, j + 1)]
        if i < n:
            out += list(paths(i + 1, j))
        if j < m:
            out += list(paths(i, j + 1))
        return tuple(out)

    return paths(0, 0)


def brute_force(sub: np.ndarray, n: int, m: int, gap: float) -> float:
    best = np.inf
    for matches in all_alignments(n, m):
        value = sum(sub[i, j] for i, j in matches) + gap * (n + m - 2 * len(matches))
        best = min(best, value)
    return best


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 4),
    L=st.integers(1, 4),
    C=st.integers(1, 5),
    gap=st.floats(0.1, 3.0),
    cost=st.sampled_from(["nll", "prob"]),
    seed=st.integers(0, 2**31),
)
def test_value_equals_enumeration_over_all_alignments(B, T, L, C, gap, cost, seed):
    rng = np.random.default_rng(seed)
    lp = torch.log_softmax(torch.tensor(rng.normal(size=(B, T, C)) * 2), -1)
    targets = torch.tensor(rng.integers(0, C, size=(B, L)))
    n_len = rng.integers(0, T + 1, size=B)
    m_len = rng.integers(0, L + 1, size=B)
    per_item = alignment_loss(lp, targets, n_len.tolist(), m_len.tolist(), gap, "none", cost=cost)
    for b in range(B):
        p = lp[b].exp().numpy()
        picked = p[:, targets[b].numpy()]
        sub = -np.log(picked) if cost == "nll" else 1.0 - picked
        assert per_item[b].item() == pytest.approx(
            brute_force(sub, n_len[b], m_len[b], gap), abs=1e-9
        )


def test_reductions_follow_ctc_conventions():
    torch.manual_seed(0)
    lp = torch.randn(3, 6, 4).log_softmax(-1)
    targets = torch.randint(0, 4, (3, 5))
    lengths = ([6, 4, 5], [5, 2, 0])
    per_item = alignment_loss(lp, targets, *lengths, reduction="none")
    assert alignment_loss(lp, targets, *lengths, reduction="sum").item() == pytest.approx(
        per_item.sum().item()
    )
    expected_mean = (per_item / torch.tensor([5.0, 2.0, 1.0])).mean().item()
    assert alignment_loss(lp, targets, *lengths).item() == pytest.approx(expected_mean)
    assert per_item[2].item() == pytest.approx(5.0)  # empty target: every output position is a gap


def test_gradient_matches_finite_differences():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 4, (2, 4))

    def f(x):
        return alignment_loss(x.log_softmax(-1), targets, [5, 4], [4, 3], gap_cost=0.7)

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-6)


def test_learnable_gap_cost_gets_the_gap_count_as_gradient():
    loss_fn = AlignmentLoss(gap_cost=0.5, reduction="sum", learnable_gap=True)
    lp = torch.log(torch.tensor([[[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]]]))
    targets = torch.tensor([[1]])
    loss = loss_fn(lp, targets, [3], [1])
    loss.backward()
    # best: match position 2 with token 1 (cost -log 0.9), positions 0 and 1 are gaps.
    assert loss.item() == pytest.approx(-np.log(0.9) + 2 * 0.5)
    assert loss_fn.gap_cost.grad.item() == pytest.approx(2.0)


def test_exact_and_lp_solvers_agree_on_values_and_gradients():
    torch.manual_seed(2)
    logits = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 5, (3, 4))
    values, grads = [], []
    for solver in ("exact", "lp"):
        loss = alignment_loss(
            logits.log_softmax(-1), targets, [6, 3, 5], [4, 4, 1], 0.8, "none", solver=solver
        )
        values.append(loss.detach())
        grads.append(torch.autograd.grad(loss.sum(), logits)[0])
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def test_ties_give_a_valid_supergradient():
    """Uniform outputs: many optimal alignments. The returned match indicator must be one of
    them, and the concave value must satisfy v(S + D) <= v(S) + <D, indicator>."""
    T, L, C = 4, 3, 3
    lp = torch.full((1, T, C), -np.log(C), dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 1, 2]])
    loss = alignment_loss(lp, targets, [T], [L], gap_cost=0.6, reduction="sum")
    (grad,) = torch.autograd.grad(loss, lp)
    match = torch.zeros(T, L, dtype=torch.float64)
    for j in range(L):
        match[:, j] = -grad[0, :, targets[0, j]]  # distinct tokens: columns do not mix
    optimal = [
        a
        for a in all_alignments(T, L)
        if abs(len(a) * np.log(C) + 0.6 * (T + L - 2 * len(a)) - loss.item()) < 1e-9
    ]
    assert {(i, j) for i, j in zip(*np.nonzero(match.numpy()))} in optimal
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        d = torch.randn(T, L, dtype=torch.float64, generator=g)
        sub = np.log(C) + d.numpy()
        assert brute_force(sub, T, L, 0.6) <= loss.item() + (d * match).sum().item() + 1e-12


def test_gumbel_softmax_recipe_trains():
    """Soft and straight-through Gumbel-softmax outputs feed the loss; training lowers it."""
    torch.manual_seed(0)
    targets = torch.tensor([[1, 2, 3, 1]])
    for hard, cost in ((False, "nll"), (True, "prob")):
        logits = torch.zeros(1, 6, 5, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=0.1)
        history = []
        for step in range(80):
            tau = max(0.5, 2.0 * 0.97**step)
            y = F.gumbel_softmax(logits, tau=tau, hard=hard)
            loss = alignment_loss(
                y.clamp_min(1e-12).log(), targets, [6], [4], gap_cost=0.5, cost=cost
            )
            opt.zero_grad()
            loss.backward()
            assert torch.isfinite(logits.grad).all()
            opt.step()
            history.append(loss.item())
        assert np.mean(history[-10:]) < np.mean(history[:10]) - 0.1
        with torch.no_grad():
            trained = alignment_loss(logits.log_softmax(-1), targets, [6], [4], gap_cost=0.5)
            untrained = alignment_loss(
                torch.zeros(1, 6, 5).log_softmax(-1), targets, [6], [4], gap_cost=0.5
            )
        assert trained.item() < untrained.item() - 0.2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"log_probs": torch.zeros(2, 3)}, ValueError, "`log_probs` must be a tensor of shape"),
        ({"targets": torch.zeros(3, 2, dtype=torch.long)}, ValueError, "`targets` must have shape"),
        ({"targets": torch.zeros(2, 2)}, TypeError, "`targets` must hold integer"),
        ({"input_lengths": [4, 1]}, ValueError, "`input_lengths` must lie in \\[0, 3\\]"),
        ({"target_lengths": [1]}, ValueError, "`target_lengths` must have shape"),
        ({"target_lengths": [1.0, 2.0]}, TypeError, "`target_lengths` must hold integers"),
        ({"targets": torch.tensor([[0, 7], [0, 0]])}, ValueError, "outside \\[0, 4\\)"),
        ({"log_probs": torch.full((2, 3, 4), float("nan"))}, ValueError, "NaN"),
        ({"gap_cost": float("inf")}, ValueError, "`gap_cost` must be finite"),
        ({"reduction": "avg"}, ValueError, "`reduction`"),
        ({"cost": "l2"}, ValueError, "`cost`"),
    ],
)
def test_bad_input(kwargs, error, match):
    args = {
        "log_probs": torch.zeros(2, 3, 4),
        "targets": torch.zeros(2, 2, dtype=torch.long),
        "input_lengths": [3, 2],
        "target_lengths": [2, 1],
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        alignment_loss(**args)


def test_padding_may_hold_anything():
    lp = torch.randn(2, 4, 3).log_softmax(-1)
    targets = torch.tensor([[0, 1, -5], [2, 99, 99]])  # out-of-range ids only in padding
    a = alignment_loss(lp, targets, [4, 2], [2, 1], reduction="none")
    b = alignment_loss(lp, targets.clamp(0, 2), [4, 2], [2, 1], reduction="none")
    torch.testing.assert_close(a, b)


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 4),
    L=st.integers(1, 4),
    gap=st.floats(0.0, 2.0),
    cost=st.sampled_from(["nll", "prob"]),
    seed=st.integers(0, 2**31),
)
def test_blank_makes_unmatched_positions_pay_for_emitting_blank(T, L, gap, cost, seed):
    rng = np.random.default_rng(seed)
    C = 4
    lp = torch.log_softmax(torch.tensor(rng.normal(size=(2, T, C)) * 2), -1)
    targets = torch.tensor(rng.integers(1, C, size=(2, L)))  # class 0 is the blank
    n_len, m_len = [T, max(T - 1, 0)], [L, max(L - 1, 0)]
    values = alignment_loss(lp, targets, n_len, m_len, gap, "none", cost=cost, blank=0)
    for b in range(2):
        p = lp[b].exp().numpy()
        sub = p[:, targets[b].numpy()]
        sub = -np.log(sub) if cost == "nll" else 1.0 - sub
        blank_cost = -np.log(p[:, 0]) if cost == "nll" else 1.0 - p[:, 0]
        n, m = n_len[b], m_len[b]
        best = np.inf
        for matches in all_alignments(n, m):
            rows = {i for i, _ in matches}
            total = sum(sub[i, j] for i, j in matches) + gap * (n + m - 2 * len(matches))
            best = min(best, total + sum(blank_cost[i] for i in range(n) if i not in rows))
        assert values[b].item() == pytest.approx(best, abs=1e-9)


def test_blank_gradients_match_finite_differences_and_the_lp_path():
    torch.manual_seed(3)
    logits = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(1, 4, (2, 3))

    def f(x, solver="exact"):
        return alignment_loss(
            x.log_softmax(-1), targets, [5, 4], [3, 2], 0.5, blank=0, solver=solver
        )

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-6)
    g_exact = torch.autograd.grad(f(logits), logits)[0]
    g_lp = torch.autograd.grad(f(logits, "lp"), logits)[0]
    torch.testing.assert_close(g_exact, g_lp, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="`blank`"):
        alignment_loss(logits.log_softmax(-1), targets, [5, 4], [3, 2], blank=4)


def test_lp_path_handles_impossible_cells_within_solver_ranges():
    # -inf log-probabilities become 1e30 costs, which HiGHS refuses (it reads >= 1e20 as
    # infinite); the LP path must still agree with the exact DP.
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(2, 5, 4, dtype=torch.float64), -1)
    log_probs[0, 1, 2] = -float("inf")
    log_probs[0, 2, 1] = -float("inf")
    targets = torch.tensor([[2, 1, 3], [1, 2, 0]])
    exact, lp = (
        alignment_loss(log_probs, targets, [5, 4], [3, 2], solver=s, reduction="sum")
        for s in ("exact", "lp")
    )
    assert torch.isfinite(exact) and float(lp) == pytest.approx(float(exact), rel=1e-9)
