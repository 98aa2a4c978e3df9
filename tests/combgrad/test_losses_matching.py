"""MatchingLoss: the exact minimum over label-to-instance assignments, and its gradient."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from combgrad import MatchingLoss, matching_loss

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
    with pytest.raises(ValueError, match="bag 0: its labels cannot all be matched"):
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
