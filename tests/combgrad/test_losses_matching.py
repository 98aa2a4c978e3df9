"""MatchingLoss: the exact minimum over label-to-instance assignments, and its gradient."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import solvers
from combgrad import MatchingLoss, matching_loss
from combgrad.losses import _common, perturbation_noise, sigma_schedule

IGNORE = -100


def brute_force_bag(log_probs: np.ndarray, labels: list[int], instances: list[int]) -> float:
    """min over injective maps label -> instance of sum -log p(label | instance)."""
    best = np.inf
    for chosen in itertools.permutations(instances, len(labels)):
        best = min(best, sum(-log_probs[i, y] for y, i in zip(labels, chosen)))
    return 0.0 if not labels else best


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 3),
    k=st.integers(1, 5),
    C=st.integers(1, 4),
    L=st.integers(0, 5),
    seed=st.integers(0, 2**31),
)
def test_value_equals_brute_force_with_padding_masks_and_repeats(B, k, C, L, seed):
    rng = np.random.default_rng(seed)
    lp = torch.log_softmax(torch.tensor(rng.normal(size=(B, k, C))), -1)
    mask = torch.tensor(rng.random((B, k)) < 0.8)
    labels = torch.full((B, L), IGNORE)
    for b in range(B):
        n_real = int(mask[b].sum())
        n_lab = int(rng.integers(0, min(L, n_real) + 1))
        slots = rng.choice(L, size=n_lab, replace=False) if n_lab else []
        for s in slots:
            labels[b, s] = int(rng.integers(0, C))  # repeats allowed
    per_bag = matching_loss(lp, labels, mask, reduction="none")
    for b in range(B):
        inst = [i for i in range(k) if mask[b, i]]
        labs = [int(y) for y in labels[b] if y != IGNORE]
        assert per_bag[b].item() == pytest.approx(
            brute_force_bag(lp[b].numpy(), labs, inst), abs=1e-9
        )
    n_labels = int((labels != IGNORE).sum())
    assert matching_loss(lp, labels, mask, reduction="sum").item() == pytest.approx(
        per_bag.sum().item()
    )
    mean = matching_loss(lp, labels, mask).item()
    assert mean == pytest.approx(per_bag.sum().item() / max(n_labels, 1))


def test_gradient_matches_finite_differences_and_is_the_assignment_indicator():
    torch.manual_seed(0)
    lp = torch.randn(3, 4, 5, dtype=torch.float64).log_softmax(-1).requires_grad_()
    labels = torch.tensor([[0, 1, 2, IGNORE], [3, 3, 1, 0], [4, IGNORE, IGNORE, IGNORE]])
    loss = matching_loss(lp, labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, lp)
    # Gradient entries are 0 or -1: the optimal assignment's indicator on (instance, class).
    assert set(grad.unique().tolist()) <= {0.0, -1.0}
    assert (grad == -1).sum().item() == int((labels != IGNORE).sum())

    def f(x):
        return matching_loss(x, labels, reduction="sum")

    assert torch.autograd.gradcheck(f, (lp,), eps=1e-6, atol=1e-6)


def test_exact_and_lp_solvers_give_identical_values_and_gradients():
    torch.manual_seed(1)
    logits = torch.randn(4, 6, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (4, 5))
    labels[0, 3:] = IGNORE
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 5] = False
    grads = []
    values = []
    for solver in ("exact", "lp"):
        loss = matching_loss(logits.log_softmax(-1), labels, mask, reduction="none", solver=solver)
        values.append(loss.detach())
        grads.append(torch.autograd.grad(loss.sum(), logits)[0])
    torch.testing.assert_close(values[0], values[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def test_ties_give_a_valid_supergradient():
    """All-equal scores: every assignment is optimal; the gradient is one optimal indicator,
    and the (concave) bag value satisfies l(S + D) <= l(S) + <D, grad>."""
    lp = torch.full((1, 3, 3), -1.0, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[0, 1, 2]])
    loss = matching_loss(lp, labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, lp)
    again = torch.autograd.grad(matching_loss(lp, labels, reduction="sum"), lp)[0]
    assert torch.equal(grad, again)  # deterministic
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        d = torch.randn(1, 3, 3, dtype=torch.float64, generator=g)
        perturbed = matching_loss(lp.detach() + d, labels, reduction="sum").item()
        assert perturbed <= loss.item() + (d * grad).sum().item() + 1e-12


def test_module_and_leftover_instances_cost_nothing():
    loss_fn = MatchingLoss(reduction="none")
    lp = torch.log(torch.tensor([[[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]]]))
    # one label: it picks the instance that likes it most; the other two are free.
    assert loss_fn(lp, torch.tensor([[1]])).item() == pytest.approx(-np.log(0.8))
    assert "reduction='none'" in repr(loss_fn)


def test_neg_inf_log_probs_forbid_pairs():
    lp = torch.log(torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))
    assert matching_loss(lp, torch.tensor([[0, 1]]), reduction="sum").item() == 0.0
    with pytest.raises(solvers.InfeasibleError, match="bag 0: its labels cannot all be matched"):
        matching_loss(lp, torch.tensor([[0, 0]]))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(2, 3),), ValueError, "`log_probs` must be a tensor of shape \\(B, k, C\\)"),
        ((torch.zeros(2, 3, 4, dtype=torch.long),), TypeError, "`log_probs` must be floating"),
        (
            (torch.zeros(2, 3, 4), torch.zeros(3, 2, dtype=torch.long)),
            ValueError,
            "`labels` must have shape",
        ),
        ((torch.zeros(2, 3, 4), torch.zeros(2, 2)), TypeError, "`labels` must hold integer"),
        ((torch.zeros(2, 3, 4), torch.tensor([[0, 4], [0, 1]])), ValueError, "outside \\[0, 4\\)"),
        (
            (torch.full((2, 3, 4), float("nan")), torch.zeros(2, 2, dtype=torch.long)),
            ValueError,
            "NaN",
        ),
        (
            (torch.full((2, 3, 4), float("inf")), torch.zeros(2, 2, dtype=torch.long)),
            ValueError,
            "\\+inf",
        ),
        (
            (torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long)),
            ValueError,
            "bag 0 has 4 labels but only 3",
        ),
        (
            (torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2)),
            ValueError,
            "`mask` must have shape",
        ),
    ],
)
def test_bad_input(args, error, match):
    labels = torch.zeros(2, 2, dtype=torch.long)
    full = (*args, labels)[:2] if len(args) == 1 else args
    with pytest.raises(error, match=match):
        matching_loss(*full)


def test_bad_reduction_and_solver():
    with pytest.raises(ValueError, match="`reduction`"):
        MatchingLoss(reduction="avg")
    with pytest.raises(ValueError, match="`solver`"):
        matching_loss(torch.zeros(1, 1, 1), torch.zeros(1, 1, dtype=torch.long), solver="greedy")


def test_training_with_bag_labels_learns_instance_labels():
    """A linear classifier trained only on bag label multisets recovers per-instance labels."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 6, generator=g) * 3
    y = torch.randint(0, 4, (256, 3), generator=g)
    x = centers[y] + torch.randn(256, 3, 6, generator=g)
    model = torch.nn.Linear(6, 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        loss = matching_loss(model(x).log_softmax(-1), y[:, torch.randperm(3, generator=g)])
        loss.backward()
        opt.step()
    accuracy = (model(x).argmax(-1) == y).float().mean().item()
    assert accuracy > 0.9  # chance is 0.25; labels were never tied to instances


# ---------------------------------------------------------------- issue 10 (edge cases)


@pytest.mark.parametrize("solver", ["exact", "lp"])
def test_infeasible_bag_raises_the_same_error_on_every_solver_naming_the_bag(solver):
    lp = torch.log(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]]))
    labels = torch.tensor([[0, 1], [0, 1]])  # bag 1: nobody can be class 1
    with pytest.raises(solvers.InfeasibleError, match="bag 1: its labels cannot all be matched"):
        matching_loss(lp, labels, solver=solver)


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.int32, torch.int8])
def test_small_integer_labels_work_like_int64(dtype):
    torch.manual_seed(0)
    lp = torch.randn(3, 4, 5, dtype=torch.float64).log_softmax(-1)
    labels = torch.randint(0, 5, (3, 4))
    expected = matching_loss(lp, labels, reduction="none")
    torch.testing.assert_close(
        matching_loss(lp, labels.to(dtype), reduction="none"), expected, rtol=0, atol=0
    )


def test_zero_instances_and_zero_labels():
    lp = torch.zeros(2, 0, 4, requires_grad=True)
    loss = matching_loss(lp, torch.full((2, 1), IGNORE), reduction="none")
    assert loss.shape == (2,) and torch.equal(loss, torch.zeros(2))
    loss.sum().backward()
    with pytest.raises(ValueError, match="bag 0 has 1 labels but only 0 real instances"):
        matching_loss(lp, torch.zeros(2, 1, dtype=torch.long))
    lp = torch.randn(2, 3, 4).log_softmax(-1)
    assert matching_loss(lp, torch.zeros(2, 0, dtype=torch.long), reduction="sum").item() == 0.0


def test_empty_batch_follows_the_documented_behaviour():
    lp = torch.zeros(0, 3, 4, requires_grad=True)
    labels = torch.zeros(0, 2, dtype=torch.long)
    none = matching_loss(lp, labels, reduction="none")
    assert none.shape == (0,)
    total = matching_loss(lp, labels, reduction="sum")
    assert total.shape == () and total.item() == 0.0
    total.backward()
    with pytest.raises(ValueError, match="`log_probs` holds an empty batch"):
        matching_loss(lp, labels)


def test_constructor_validates_every_argument():
    with pytest.raises(ValueError, match="`solver`"):
        MatchingLoss(solver="greedy")
    with pytest.raises(ValueError, match="`sigma`"):
        MatchingLoss(sigma=-1.0)
    with pytest.raises(ValueError, match="`noise`"):
        MatchingLoss(noise="uniform")
    with pytest.raises(TypeError, match="`backend`"):
        MatchingLoss(backend=3)


def _tie_heavy_case(rng, levels):
    B, k, C = 1, 4, 3
    lp = torch.tensor(rng.integers(-levels, 1, size=(B, k, C)), dtype=torch.float64)
    labels = torch.tensor(rng.integers(0, C, size=(B, k)))
    return lp, labels


def test_exact_and_lp_paths_at_ties_identical_if_unique_else_both_optimal():
    """Issue 10 item 13: identical where the optimum is unique; at ties, both gradients are
    indicators of optimal assignments (valid elements of the generalized gradient)."""
    rng = np.random.default_rng(5)
    n_unique = n_tied = 0
    for case in range(60):
        lp, labels = _tie_heavy_case(rng, 2 if case % 2 else 40)  # few levels: many ties
        labs = labels[0].tolist()
        costs = {
            perm: sum(-lp[0, i, y].item() for y, i in zip(labs, perm))
            for perm in itertools.permutations(range(4))
        }
        best = min(costs.values())
        optimal = [p for p, c in costs.items() if c == best]
        # Distinct optimal indicators (swapping two equal labels changes nothing).
        distinct = {frozenset(zip(perm, labs)) for perm in optimal}
        grads = []
        for solver in ("exact", "lp"):
            x = lp.clone().requires_grad_(True)
            value = matching_loss(x, labels, reduction="sum", solver=solver)
            assert value.item() == pytest.approx(best, abs=1e-9)
            (grad,) = torch.autograd.grad(value, x)
            # -grad[i, y] counts the labels y matched to instance i: one optimal assignment.
            indicator = -grad[0]
            assert any(
                all(indicator[i, y] >= 1 - 1e-9 for y, i in zip(labs, perm))
                and indicator.sum().item() == pytest.approx(4)
                for perm in optimal
            )
            grads.append(grad)
        if len(distinct) == 1:
            n_unique += 1
            assert torch.equal(grads[0], grads[1])
        else:
            n_tied += 1
    assert n_unique > 0 and n_tied > 0  # both regimes exercised


# ---------------------------------------------------------------- log-probability warnings


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(_common, "_warned_not_log_probs", False)
    monkeypatch.setattr(_common, "_log_prob_checks_left", 100)


def test_warns_once_on_positive_entries(fresh_warning):
    labels = torch.zeros(2, 2, dtype=torch.long)
    with pytest.warns(UserWarning, match="does not look like log-probabilities"):
        matching_loss(torch.rand(2, 3, 4) + 0.5, labels)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matching_loss(torch.rand(2, 3, 4) + 0.5, labels)  # once only


def test_warns_on_rows_that_are_not_distributions(fresh_warning):
    with pytest.warns(UserWarning, match="exp\\(\\) does not sum to 1"):
        matching_loss(torch.full((2, 3, 4), -3.0), torch.zeros(2, 2, dtype=torch.long))


def test_a_large_batch_is_checked_on_a_spread_out_sample_of_rows(fresh_warning):
    # 64 x 100 rows: the check reads about 1024 of them, spread over the whole batch,
    # so logits anywhere in it (here: only the second half of the bags) are noticed...
    lp = torch.randn(64, 100, 5).log_softmax(-1)
    logits = lp.clone()
    logits[32:] = torch.randn(32, 100, 5)
    labels = torch.zeros(64, 3, dtype=torch.long)
    with pytest.warns(UserWarning, match="does not look like log-probabilities"):
        matching_loss(logits, labels)


def test_the_sampled_check_reads_only_valid_rows(fresh_warning):
    import warnings

    # ...and masked-out instances, however many and wherever the sample falls, are not.
    lp = torch.randn(64, 100, 5).log_softmax(-1)
    lp[:, 50:] = 7.0
    mask = torch.arange(100)[None, :].expand(64, 100) < 50
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matching_loss(lp, torch.zeros(64, 3, dtype=torch.long), mask)
        matching_loss(lp.to(torch.bfloat16), torch.zeros(64, 3, dtype=torch.long), mask)


def test_no_warning_on_log_softmax_and_padding_is_not_read(fresh_warning):
    import warnings

    lp = torch.randn(2, 3, 4).log_softmax(-1)
    lp[1, 2] = 5.0  # a masked-out instance may hold anything
    mask = torch.tensor([[True, True, True], [True, True, False]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matching_loss(lp, torch.zeros(2, 2, dtype=torch.long), mask)
        matching_loss(lp[:1].to(torch.bfloat16), torch.zeros(1, 2, dtype=torch.long))


# ---------------------------------------------------------------- perturbed smoothing (issue 12)


def _perturbed_brute_force(lp: np.ndarray, labels: np.ndarray, z: np.ndarray, sigma: float):
    """Per sample s: the minimum over permutations of sum_l (cost + sigma z_s)[l, perm(l)]
    and its minimizer's indicator on (instance, class). lp (k, C), labels (L,), z (S, L, k)."""
    k = lp.shape[0]
    L = len(labels)
    cost = -lp[:, labels].T  # (L, k)
    values, indicators = [], []
    for zs in z:
        perturbed = cost + sigma * zs
        best, best_perm = np.inf, None
        for perm in itertools.permutations(range(k), L):
            v = sum(perturbed[l, i] for l, i in enumerate(perm))
            if v < best:
                best, best_perm = v, perm
        ind = np.zeros_like(lp)
        for l, i in enumerate(best_perm):
            ind[i, labels[l]] += 1.0
        values.append(best)
        indicators.append(ind)
    return np.array(values), np.array(indicators)


@pytest.mark.parametrize("noise", ["gumbel", "normal"])
@pytest.mark.parametrize("solver", ["exact", "lp"])
def test_smoothed_value_and_gradient_are_sample_means_over_perturbed_optima(noise, solver):
    B, k, C, L, S, sigma = 2, 4, 3, 3, 5, 0.7
    rng = np.random.default_rng(11)
    lp = torch.tensor(rng.normal(size=(B, k, C))).log_softmax(-1).requires_grad_(True)
    labels = torch.tensor(rng.integers(0, C, size=(B, L)))
    value = matching_loss(
        lp, labels, reduction="none", sigma=sigma, n_samples=S, noise=noise,
        generator=torch.Generator().manual_seed(3), solver=solver,
    )  # fmt: skip
    (grad,) = torch.autograd.grad(value.sum(), lp)
    z = perturbation_noise((B, S, L, k), noise, torch.Generator().manual_seed(3)).numpy()
    for b in range(B):
        values, indicators = _perturbed_brute_force(
            lp[b].detach().numpy(), labels[b].numpy(), z[b], sigma
        )
        assert value[b].item() == pytest.approx(values.mean(), abs=1e-10)
        np.testing.assert_allclose(grad[b].numpy(), -indicators.mean(0), atol=1e-12)


def test_smoothed_with_padding_masks_and_forbidden_pairs():
    B, k, C, S, sigma = 2, 4, 3, 6, 0.5
    rng = np.random.default_rng(2)
    lp = torch.tensor(rng.normal(size=(B, k, C))).log_softmax(-1)
    lp[0, 0, :] = -float("inf")  # instance 0 of bag 0 can be no class
    lp = lp.requires_grad_(True)
    labels = torch.tensor([[0, 2, IGNORE], [1, 1, 0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    value = matching_loss(
        lp, labels, mask, reduction="none", sigma=sigma, n_samples=S,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    (grad,) = torch.autograd.grad(value.sum(), lp)
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    # Per bag: valid labels first, real instances first (the compaction the loss applies).
    z = perturbation_noise((B, S, 3, k), "gumbel", torch.Generator().manual_seed(0)).numpy()
    for b, (labs, inst) in enumerate([([0, 2], [0, 1, 2]), ([1, 1, 0], [0, 1, 2, 3])]):
        sub_lp = lp[b, inst].detach().numpy()
        with np.errstate(invalid="ignore"):
            values, indicators = _perturbed_brute_force(
                sub_lp, np.array(labs), z[b][:, : len(labs), : len(inst)], sigma
            )
        assert value[b].item() == pytest.approx(values.mean(), abs=1e-10)
        expected = np.zeros((k, C))
        expected[inst] = -indicators.mean(0)
        np.testing.assert_allclose(grad[b].numpy(), expected, atol=1e-12)
    assert grad[0, 0].abs().sum() == 0 and grad[0, 3].abs().sum() == 0


def test_sigma_zero_is_the_exact_loss_bit_for_bit():
    torch.manual_seed(4)
    logits = torch.randn(5, 6, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (5, 4))
    labels[1, 2:] = IGNORE
    mask = torch.ones(5, 6, dtype=torch.bool)
    mask[2, 4:] = False
    exact = matching_loss(logits.log_softmax(-1), labels, mask)
    (g_exact,) = torch.autograd.grad(exact, logits)
    for noise in ("gumbel", "normal"):
        zero = matching_loss(
            logits.log_softmax(-1), labels, mask, sigma=0.0, n_samples=7, noise=noise,
            generator=torch.Generator().manual_seed(1),
        )  # fmt: skip
        (g_zero,) = torch.autograd.grad(zero, logits)
        assert torch.equal(zero, exact) and torch.equal(g_zero, g_exact)
    module = MatchingLoss(sigma=0.8, n_samples=3)
    module.sigma = 0.0  # a schedule that reached 0
    assert torch.equal(module(logits.log_softmax(-1), labels, mask), exact)


def test_generator_makes_the_estimate_reproducible():
    lp = torch.randn(3, 5, 4, dtype=torch.float64).log_softmax(-1)
    labels = torch.randint(0, 4, (3, 5))

    def draw(seed):
        return matching_loss(
            lp, labels, reduction="none", sigma=1.0, n_samples=4,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    module = MatchingLoss(sigma=1.0, n_samples=4, generator=torch.Generator().manual_seed(0))
    first = module(lp, labels)
    assert not torch.equal(first, module(lp, labels))  # the generator advances
    module.generator.manual_seed(0)
    assert torch.equal(first, module(lp, labels))


def _mc(lp, labels, sigma, noise, n, seed=0):
    """n independent one-sample estimates (a batch of n copies): their mean and std error."""
    B = lp.shape[0]
    x = lp.repeat(n, 1, 1).requires_grad_(True)
    per_bag = matching_loss(
        x, labels.repeat(n, 1), reduction="none", sigma=sigma, noise=noise,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    (grad,) = torch.autograd.grad(per_bag.sum(), x)
    per_bag = per_bag.view(n, B)
    grad = grad.view(n, *lp.shape)
    return per_bag.mean(0), per_bag.std(0) / n**0.5, grad.mean(0), grad.std(0) / n**0.5


def _binomial_tolerance(expected: torch.Tensor, n: int) -> torch.Tensor:
    """5 standard errors of a frequency with mean |expected| over n draws (plus 1/n)."""
    p = expected.abs()
    return 5 * (p * (1 - p) / n).sqrt() + 1.0 / n


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_gumbel_estimate_converges_to_the_closed_form_for_one_label(sigma):
    """One label among k instances: F = -sigma * logsumexp(log p(y | i) / sigma) and the
    gradient is minus softmax(log p(y | .) / sigma) on the label's column."""
    rng = np.random.default_rng(0)
    lp = torch.tensor(rng.normal(size=(1, 5, 3)) * 1.5).log_softmax(-1)
    labels = torch.tensor([[2]])
    mean, se, grad, _ = _mc(lp, labels, sigma, "gumbel", 20000)
    closed = -sigma * torch.logsumexp(lp[0, :, 2] / sigma, 0)
    assert abs(mean.item() - closed.item()) < 5 * se.item()
    expected = torch.zeros(5, 3, dtype=torch.float64)
    expected[:, 2] = -torch.softmax(lp[0, :, 2] / sigma, 0)
    assert ((grad[0] - expected).abs() <= _binomial_tolerance(expected, 20000)).all()
    assert closed.item() <= matching_loss(lp, labels, reduction="sum").item()  # F_sigma <= F_0


def test_normal_estimate_converges_to_the_closed_form_on_two_by_two():
    """2 labels, 2 instances: the two permutations' perturbed costs differ by
    N(mu, (2 sigma)^2), which gives F and P(identity) in closed form."""
    from math import erf, exp, pi, sqrt

    sigma = 0.8
    lp = torch.log(torch.tensor([[[0.7, 0.3], [0.4, 0.6]]], dtype=torch.float64))
    labels = torch.tensor([[0, 1]])  # cost[l, i] = -log p(l | i)
    a = -(lp[0, 0, 0] + lp[0, 1, 1]).item()  # identity: label 0 -> inst 0, label 1 -> inst 1
    b = -(lp[0, 1, 0] + lp[0, 0, 1]).item()
    mu, s = a - b, 2 * sigma
    cdf = 0.5 * (1 + erf(-mu / s / sqrt(2)))  # P(identity wins) = Phi(-mu / s)
    pdf = exp(-0.5 * (mu / s) ** 2) / sqrt(2 * pi)
    closed = b + mu * cdf - s * pdf
    mean, se, grad, _ = _mc(lp, labels, sigma, "normal", 20000)
    assert abs(mean.item() - closed) < 5 * se.item()
    expected = -torch.tensor([[cdf, 1 - cdf], [1 - cdf, cdf]], dtype=torch.float64)
    assert ((grad[0] - expected).abs() <= _binomial_tolerance(expected, 20000)).all()


def test_n_samples_estimate_equals_the_mean_of_single_draws_in_distribution():
    """n_samples draws per bag give the same estimator as n single-draw bags (same target)."""
    rng = np.random.default_rng(1)
    lp = torch.tensor(rng.normal(size=(1, 4, 3))).log_softmax(-1)
    labels = torch.tensor([[0, 2, 2]])
    many = matching_loss(
        lp, labels, reduction="sum", sigma=1.0, n_samples=20000,
        generator=torch.Generator().manual_seed(9),
    )  # fmt: skip
    mean, se, *_ = _mc(lp, labels, 1.0, "gumbel", 20000, seed=10)
    assert abs(many.item() - mean.item()) < 5 * 2**0.5 * se.item()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sigma": -0.1}, ValueError, "`sigma` must be finite and >= 0"),
        ({"sigma": float("nan")}, ValueError, "`sigma` must be finite"),
        ({"sigma": "big"}, TypeError, "`sigma` must be a non-negative number"),
        ({"n_samples": 0}, ValueError, "`n_samples` must be >= 1"),
        ({"n_samples": 2.0}, TypeError, "`n_samples` must be an int"),
        ({"n_samples": True}, TypeError, "`n_samples` must be an int"),
        ({"noise": "uniform"}, ValueError, "`noise` must be one of"),
        ({"generator": 0}, TypeError, "`generator` must be a torch.Generator"),
    ],
)
def test_bad_smoothing_arguments(kwargs, error, match):
    lp = torch.randn(1, 2, 3).log_softmax(-1)
    with pytest.raises(error, match=match):
        matching_loss(lp, torch.zeros(1, 2, dtype=torch.long), **kwargs)
    with pytest.raises(error, match=match):
        MatchingLoss(**kwargs)


def test_sigma_schedule():
    assert sigma_schedule(0, 10, 2.0) == 2.0
    assert sigma_schedule(5, 10, 2.0) == pytest.approx(1.0)
    assert sigma_schedule(10, 10, 2.0) == 0.0 and sigma_schedule(99, 10, 2.0) == 0.0
    assert sigma_schedule(5, 10, 2.0, kind="linear") == pytest.approx(1.0)
    assert sigma_schedule(5, 10, 1.0, end=0.01, kind="geometric") == pytest.approx(0.1)
    values = [sigma_schedule(s, 10, 1.0) for s in range(12)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    with pytest.raises(ValueError, match="`kind`"):
        sigma_schedule(0, 10, 1.0, kind="step")
    with pytest.raises(ValueError, match="geometric"):
        sigma_schedule(0, 10, 1.0, kind="geometric")
    with pytest.raises(ValueError, match="`total_steps`"):
        sigma_schedule(0, 0, 1.0)


def test_smoothed_training_with_annealed_sigma_learns_instance_labels():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 6, generator=g) * 3
    y = torch.randint(0, 4, (256, 3), generator=g)
    x = centers[y] + torch.randn(256, 3, 6, generator=g)
    model = torch.nn.Linear(6, 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = MatchingLoss(sigma=1.0, n_samples=2, generator=torch.Generator().manual_seed(0))
    for step in range(60):
        loss_fn.sigma = sigma_schedule(step, 40, 1.0)
        opt.zero_grad()
        loss_fn(model(x).log_softmax(-1), y[:, torch.randperm(3, generator=g)]).backward()
        opt.step()
    accuracy = (model(x).argmax(-1) == y).float().mean().item()
    assert accuracy > 0.9
