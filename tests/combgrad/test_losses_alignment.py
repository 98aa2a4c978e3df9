"""AlignmentLoss: exact global-alignment cost, its generalized gradient, and the LP path."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers
from combgrad import AlignmentLoss, alignment_loss
from combgrad.losses import _common, perturbation_noise


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
        ({"gap_cost": -0.5}, ValueError, "`gap_cost` must be >= 0"),
        ({"gap_cost": torch.ones(2)}, ValueError, "`gap_cost` must be a scalar"),
        ({"targets": torch.zeros(4, dtype=torch.long)}, ValueError, "sum\\(target_lengths\\)"),
        ({"targets": torch.zeros(3)}, TypeError, "`targets` must hold integer"),
        ({"batch_first": 1}, TypeError, "`batch_first` must be a bool"),
        ({"sigma": -1.0}, ValueError, "`sigma` must be finite and >= 0"),
        ({"n_samples": 0}, ValueError, "`n_samples` must be >= 1"),
        ({"noise": "uniform"}, ValueError, "`noise` must be one of"),
        ({"generator": 1}, TypeError, "`generator` must be a torch.Generator"),
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


# ---------------------------------------------------------------- issue 10 (edge cases)


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.int32])
def test_small_integer_targets_work_like_int64(dtype):
    torch.manual_seed(0)
    lp = torch.randn(3, 5, 4, dtype=torch.float64).log_softmax(-1)
    targets = torch.randint(0, 4, (3, 3))
    lengths = ([5, 4, 5], [3, 2, 1])
    expected = alignment_loss(lp, targets, *lengths, reduction="none")
    got = alignment_loss(lp, targets.to(dtype), *lengths, reduction="none")
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    flat = torch.cat([targets[b, :n] for b, n in enumerate(lengths[1])]).to(dtype)
    torch.testing.assert_close(
        alignment_loss(lp, flat, *lengths, reduction="none"), expected, rtol=0, atol=0
    )


def test_one_element_gap_tensor_keeps_the_output_shape():
    lp = torch.randn(3, 4, 5).log_softmax(-1)
    targets = torch.randint(0, 5, (3, 2))
    args = (lp, targets, [4, 4, 3], [2, 1, 2])
    expected = alignment_loss(*args, gap_cost=0.7, reduction="none")
    for gap in (torch.tensor([[0.7]]), torch.tensor([0.7]), torch.tensor(0.7)):
        got = alignment_loss(*args, gap_cost=gap, reduction="none")
        assert got.shape == (3,)
        torch.testing.assert_close(got, expected)
    assert alignment_loss(*args, gap_cost=torch.tensor([[0.7]])).shape == ()


def test_empty_batch_follows_the_documented_behaviour():
    lp = torch.zeros(0, 3, 4, requires_grad=True)
    targets = torch.zeros(0, 2, dtype=torch.long)
    assert alignment_loss(lp, targets, [], [], reduction="none").shape == (0,)
    total = alignment_loss(lp, targets, [], [], reduction="sum")
    assert total.shape == () and total.item() == 0.0
    total.backward()
    with pytest.raises(ValueError, match="`log_probs` holds an empty batch"):
        alignment_loss(lp, targets, [], [])


def _no_finite_path():
    """Item 1 has no finite alignment: its single position can neither match token 2
    (probability 0) nor be left unmatched (blank 0 has probability 0)."""
    p = torch.tensor([[[0.5, 0.2, 0.3]], [[0.0, 1.0, 0.0]]], dtype=torch.float64)
    return p.log(), torch.tensor([[2], [2]]), [1, 1], [1, 1]


@pytest.mark.parametrize("solver", ["exact", "lp"])
def test_no_finite_path_raises_the_same_error_on_every_solver_naming_the_item(solver):
    lp, targets, n_len, m_len = _no_finite_path()
    with pytest.raises(solvers.InfeasibleError, match="item 1: no alignment has a finite cost"):
        alignment_loss(lp, targets, n_len, m_len, blank=0, solver=solver)


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_zero_infinity_zeroes_the_item_and_its_gradient(sigma):
    lp, targets, n_len, m_len = _no_finite_path()
    lp = lp.clone().requires_grad_(True)
    per_item = alignment_loss(
        lp, targets, n_len, m_len, reduction="none", blank=0, zero_infinity=True, sigma=sigma,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert per_item[1].item() == 0.0 and torch.isfinite(per_item).all()
    (grad,) = torch.autograd.grad(per_item.sum(), lp)
    assert torch.equal(grad[1], torch.zeros_like(grad[1])) and grad[0].abs().sum() > 0
    alone = alignment_loss(lp[:1], targets[:1], [1], [1], reduction="none", blank=0, sigma=sigma,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    if sigma == 0.0:
        torch.testing.assert_close(per_item[:1], alone)


def test_constructor_validates_every_argument():
    for kwargs, match in [
        ({"solver": "greedy"}, "`solver`"),
        ({"cost": "l2"}, "`cost`"),
        ({"gap_cost": -1.0}, "`gap_cost` must be >= 0"),
        ({"gap_cost": float("nan")}, "`gap_cost` must be finite"),
        ({"blank": -1}, "`blank`"),
        ({"sigma": -1.0}, "`sigma`"),
        ({"n_samples": 0}, "`n_samples`"),
    ]:
        with pytest.raises(ValueError, match=match):
            AlignmentLoss(**kwargs)
    with pytest.raises(TypeError, match="`batch_first`"):
        AlignmentLoss(batch_first="yes")


def test_exact_and_lp_paths_at_ties_identical_if_unique_else_both_optimal():
    """Issue 10 item 13 for alignments: both paths return an optimal alignment; identical
    gradients where the optimum is unique."""
    rng = np.random.default_rng(7)
    n_unique = n_tied = 0
    T, L, C, gap = 3, 3, 3, 1.0
    targets = torch.tensor([[0, 1, 2]])  # distinct tokens: columns of the gradient do not mix
    for case in range(40):
        levels = 1 if case % 2 else 30
        lp = torch.tensor(-rng.integers(0, levels + 1, size=(1, T, C)) / 2, dtype=torch.float64)
        sub = -lp[0].numpy()[:, targets[0].numpy()]
        values = {
            a: sum(sub[i, j] for i, j in a) + gap * (T + L - 2 * len(a))
            for a in all_alignments(T, L)
        }
        best = min(values.values())
        optimal = {a for a, v in values.items() if abs(v - best) < 1e-12}
        grads = []
        for solver in ("exact", "lp"):
            x = lp.clone().requires_grad_(True)
            loss = alignment_loss(x, targets, [T], [L], gap, "sum", solver=solver)
            assert loss.item() == pytest.approx(best, abs=1e-9)
            (grad,) = torch.autograd.grad(loss, x)
            match = {(i, j) for i in range(T) for j in range(L) if grad[0, i, j] < -0.5}
            assert match in optimal
            grads.append(grad)
        if len(optimal) == 1:
            n_unique += 1
            assert torch.equal(grads[0], grads[1])
        else:
            n_tied += 1
    assert n_unique > 0 and n_tied > 0


# ---------------------------------------------------------------- CTCLoss layout (issue 14)


def test_ctc_layout_time_first_and_concatenated_targets():
    torch.manual_seed(5)
    T, B, C = 7, 3, 5
    logits = torch.randn(T, B, C, dtype=torch.float64, requires_grad=True)
    input_lengths = torch.tensor([7, 6, 4])
    target_lengths = torch.tensor([3, 2, 4])
    padded = torch.randint(1, C, (B, 4))
    flat = torch.cat([padded[b, :n] for b, n in enumerate(target_lengths.tolist())])
    ctc_style = AlignmentLoss(blank=0, batch_first=False, zero_infinity=True)
    a = ctc_style(logits.log_softmax(2), flat, input_lengths, target_lengths)
    b = alignment_loss(
        logits.log_softmax(2).transpose(0, 1), padded, input_lengths, target_lengths, blank=0
    )
    assert torch.equal(a, b)
    ga = torch.autograd.grad(a, logits)[0]
    gb = torch.autograd.grad(b, logits)[0]
    assert torch.equal(ga, gb)
    # the same call works for torch.nn.CTCLoss
    torch.nn.CTCLoss(blank=0, zero_infinity=True)(
        logits.log_softmax(2), flat, input_lengths, target_lengths
    )


def test_wrong_layout_error_names_the_layout():
    T, B, C = 7, 3, 5
    time_first = torch.randn(T, B, C).log_softmax(-1)
    targets = torch.randint(0, C, (B, 2))
    with pytest.raises(
        ValueError, match=r"layout \(B, T, C\).*looks \(T, B, C\): pass batch_first=False"
    ):
        alignment_loss(time_first, targets, [T] * B, [2] * B)
    with pytest.raises(
        ValueError, match=r"layout \(T, B, C\).*looks \(B, T, C\): pass batch_first=True"
    ):
        alignment_loss(time_first.transpose(0, 1), targets, [T] * B, [2] * B, batch_first=False)
    with pytest.raises(ValueError, match="\\(T, B, C\\) \\(batch_first=False\\)"):
        alignment_loss(torch.zeros(3, 4), targets, [T] * B, [2] * B, batch_first=False)


# ---------------------------------------------------------------- log-probability warnings


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(_common, "_warned_not_log_probs", False)
    monkeypatch.setattr(_common, "_log_prob_checks_left", 100)


def test_warns_once_when_not_log_probs_and_not_on_padding(fresh_warning):
    import warnings

    targets = torch.zeros(2, 2, dtype=torch.long)
    lp = torch.randn(2, 4, 3).log_softmax(-1)
    lp[1, 3] = 2.0  # padding position (input_lengths[1] = 3): may hold anything
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alignment_loss(lp, targets, [4, 3], [2, 2])
    with pytest.warns(UserWarning, match="has entries above 0"):
        alignment_loss(torch.rand(2, 4, 3), targets, [4, 4], [2, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alignment_loss(torch.rand(2, 4, 3), targets, [4, 4], [2, 2])  # once only


# ---------------------------------------------------------------- perturbed smoothing (issue 12)


def _perturbed_alignments(sub, z, n, m, gap, sigma, blank_cost=None):
    """Per sample: the brute-force minimum over alignments of (sub + sigma z) matches + gaps
    (+ blank cost of unmatched rows), and the minimizer's match set."""
    out = []
    for zs in z:
        best, best_a = np.inf, None
        for a in all_alignments(n, m):
            rows = {i for i, _ in a}
            v = sum(sub[i, j] + sigma * zs[i, j] for i, j in a) + gap * (n + m - 2 * len(a))
            if blank_cost is not None:
                v += sum(blank_cost[i] for i in range(n) if i not in rows)
            if v < best:
                best, best_a = v, a
        out.append((best, best_a))
    return out


@pytest.mark.parametrize("noise", ["gumbel", "normal"])
@pytest.mark.parametrize("blank", [None, 0])
@pytest.mark.parametrize("solver", ["exact", "lp"])
def test_smoothed_value_and_gradient_are_sample_means_over_perturbed_optima(noise, blank, solver):
    B, T, L, C, S, sigma, gap = 2, 4, 3, 4, 4, 0.8, 0.6
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(size=(B, T, C)), requires_grad=True)
    targets = torch.tensor(rng.integers(1, C, size=(B, L)))
    n_len, m_len = [4, 3], [3, 2]
    value = alignment_loss(
        logits.log_softmax(-1), targets, n_len, m_len, gap, "none", blank=blank, noise=noise,
        sigma=sigma, n_samples=S, generator=torch.Generator().manual_seed(8), solver=solver,
    )  # fmt: skip
    (grad,) = torch.autograd.grad(value.sum(), logits)
    z = perturbation_noise((B, S, T, L), noise, torch.Generator().manual_seed(8)).numpy()
    lp = logits.detach().log_softmax(-1).numpy()
    expected_grad_lp = np.zeros((B, T, C))
    for b in range(B):
        sub = -lp[b][:, targets[b].numpy()]
        blank_cost = None if blank is None else -lp[b][:, blank]
        samples = _perturbed_alignments(sub, z[b], n_len[b], m_len[b], gap, sigma, blank_cost)
        assert value[b].item() == pytest.approx(np.mean([v for v, _ in samples]), abs=1e-10)
        for _, a in samples:
            rows = {i for i, _ in a}
            for i, j in a:
                expected_grad_lp[b, i, targets[b, j]] -= 1.0 / S
            if blank is not None:
                for i in range(n_len[b]):
                    if i not in rows:
                        expected_grad_lp[b, i, blank] -= 1.0 / S
    # chain rule through log_softmax
    expected = torch.autograd.grad(logits.log_softmax(-1), logits, torch.tensor(expected_grad_lp))[
        0
    ]
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


def test_sigma_zero_is_the_exact_loss_bit_for_bit():
    torch.manual_seed(6)
    logits = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(1, 5, (3, 4))
    args = (targets, [6, 5, 3], [4, 2, 3], 0.7)
    for blank in (None, 0):
        exact = alignment_loss(logits.log_softmax(-1), *args, blank=blank)
        (g_exact,) = torch.autograd.grad(exact, logits)
        zero = alignment_loss(
            logits.log_softmax(-1), *args, blank=blank, sigma=0.0, n_samples=5,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        (g_zero,) = torch.autograd.grad(zero, logits)
        assert torch.equal(zero, exact) and torch.equal(g_zero, g_exact)


def test_gumbel_estimate_converges_to_the_closed_form_for_one_token():
    """One token, T positions, a large gap: the token is matched at exactly one position,
    so F = gap (T - 1) - sigma logsumexp(log p_i(y) / sigma) and the gradient on
    log p_i(y) is -softmax(log p(y) / sigma)_i."""
    T, C, sigma, gap, n = 5, 4, 0.7, 20.0, 20000
    rng = np.random.default_rng(4)
    lp = torch.tensor(rng.normal(size=(1, T, C)) * 1.5).log_softmax(-1)
    x = lp.repeat(n, 1, 1).requires_grad_(True)
    per_item = alignment_loss(
        x, torch.full((n, 1), 2), [T] * n, [1] * n, gap, "none", sigma=sigma,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    (grad,) = torch.autograd.grad(per_item.sum(), x)
    closed = gap * (T - 1) - sigma * torch.logsumexp(lp[0, :, 2] / sigma, 0).item()
    se = per_item.std().item() / n**0.5
    assert abs(per_item.mean().item() - closed) < 5 * se
    p = torch.softmax(lp[0, :, 2] / sigma, 0)
    tolerance = 5 * (p * (1 - p) / n).sqrt() + 1.0 / n
    assert ((-grad[:, :, 2].mean(0) - p).abs() <= tolerance).all()


def test_module_sigma_may_change_between_steps_and_generator_reproduces():
    lp = torch.randn(2, 5, 4, dtype=torch.float64).log_softmax(-1)
    targets = torch.randint(0, 4, (2, 3))
    loss_fn = AlignmentLoss(sigma=1.0, n_samples=3, generator=torch.Generator().manual_seed(0))
    first = loss_fn(lp, targets, [5, 5], [3, 3])
    loss_fn.generator.manual_seed(0)
    assert torch.equal(first, loss_fn(lp, targets, [5, 5], [3, 3]))
    loss_fn.sigma = 0.0
    assert torch.equal(
        loss_fn(lp, targets, [5, 5], [3, 3]), alignment_loss(lp, targets, [5, 5], [3, 3])
    )
    assert "sigma" not in repr(loss_fn) and "sigma=1.0" in repr(AlignmentLoss(sigma=1.0))
