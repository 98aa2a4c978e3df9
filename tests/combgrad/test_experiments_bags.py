"""The extended weak-supervision grid: captions and the added training schedules."""

from __future__ import annotations

import pytest
import torch

from combgrad._experiments import bags


def test_partial_captions_name_a_fixed_subset_of_each_bag():
    true = torch.randint(0, 10, (50, 8), generator=torch.Generator().manual_seed(0))
    captions = bags.make_captions(true, "partial", seed=1, named_fraction=0.75)
    assert captions.shape == (50, 6)
    for named, labels in zip(captions.tolist(), true.tolist()):
        remaining = list(labels)
        for y in named:  # a sub-multiset of the bag's true labels
            remaining.remove(y)
    assert torch.equal(captions, bags.make_captions(true, "partial", seed=1))
    assert torch.equal(bags.make_captions(true, "full", seed=1), true.sort(1).values)


def test_noisy_captions_replace_about_the_requested_fraction():
    true = torch.randint(0, 10, (2000, 4), generator=torch.Generator().manual_seed(0))
    captions = bags.make_captions(true, "noisy", seed=0, noise_fraction=0.2)
    # A replaced label is a uniform class, so it differs from the true one 90% of the time;
    # compare as multisets (captions are sorted).
    changed = (captions != true.sort(1).values).any(1).float().mean().item()
    expected = 1 - (1 - 0.2 * 0.9) ** 4
    assert abs(changed - expected) < 0.05
    with pytest.raises(ValueError, match="`caption`"):
        bags.make_captions(true, "missing", seed=0)


def test_sinkhorn_with_unnamed_instances_pads_zero_cost_rows():
    lp = torch.randn(3, 5, 10, dtype=torch.float64).log_softmax(-1)
    labels = torch.randint(0, 10, (3, 3))
    value = bags.bag_loss(
        "sinkhorn", lp, labels, labels, matching=None, sinkhorn_epsilon=0.01,
        sinkhorn_iterations=500,
    )  # fmt: skip
    from combgrad import matching_loss

    exact = matching_loss(lp, labels, reduction="sum") / 9  # mean over the named labels
    assert value.item() == pytest.approx(exact.item(), abs=0.05)


@pytest.mark.parametrize("loss", ["smoothed", "sinkhorn_annealed", "proportion_matching"])
def test_new_schedules_run_end_to_end(loss):
    """Smoke test (the learning itself is measured by the example, not here)."""
    run = bags.run_bags(
        loss, 4, 0, epochs=2, max_train_images=120, images_per_batch=32, caption="partial",
        smooth_samples=4, warm_fraction=0.5,
    )  # fmt: skip
    assert run.caption == "partial" and len(run.test_accuracy) == 2
    assert all(0.0 <= a <= 1.0 for a in run.test_accuracy)
    with pytest.raises(ValueError, match="`loss` must be one of"):
        bags.run_bags("nope", 4, 0)
