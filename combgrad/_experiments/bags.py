"""Weak supervision from unordered label bags on the scikit-learn digits (paper setting (a)).

The training images are partitioned once (per seed) into bags of `k` images; a bag is
labelled only with the multiset of its images' classes. A small residual CNN is trained
with one of four losses, and evaluated by per-image test accuracy:

- `matching`: `combgrad.MatchingLoss`, the exact minimum-cost bipartite matching
  of the bag's labels to its images (gradient: cross-entropy on the optimal assignment).
- `sinkhorn`: the entropic (Sinkhorn) relaxation of the same matching. The transport
  plan `P_eps` with uniform marginals is computed by log-domain Sinkhorn iterations and
  the loss is `<P_eps, C>` with `P_eps` held fixed, so the gradient is `P_eps` itself
  (the envelope-theorem gradient of entropic optimal transport).
- `proportion`: a bag-level loss that ignores the matching: cross-entropy between the
  bag's label proportions (counts / k) and the mean predicted distribution over the bag
  (learning from label proportions, DLLP-style).
- `supervised`: per-image cross-entropy with the true labels (upper bound; it sees
  labels the other losses do not).

Extended grid (`EXTENDED_LOSSES`, not in the demo):

- `smoothed`: `combgrad.MatchingLoss` with perturbed smoothing, `sigma` annealed
  from `smooth_sigma` to 0 (cosine) over the first `smooth_fraction` of the steps, then
  the exact loss.
- `sinkhorn_annealed`: Sinkhorn with `epsilon` annealed geometrically from
  `sinkhorn_start` to `sinkhorn_end` over training.
- `proportion_matching`: the proportion loss for the first `warm_fraction` of the
  epochs, then the exact matching loss (a warm start a user would try).

Captions (`caption`): `"full"` names every image of the bag; `"partial"` names only
`round(named_fraction * k)` of them (a fixed random subset per bag; the others are
unnamed); `"noisy"` replaces each name, with probability `noise_fraction`, by a
uniformly random class (fixed per bag). The proportion loss then uses the named labels'
proportions, which is mis-specified for partial captions (it cannot say "some images are
unnamed"); Sinkhorn pads the cost matrix with zero-cost rows for the unnamed images.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import MatchingLoss, sigma_schedule

__all__ = [
    "CAPTIONS",
    "EXTENDED_LOSSES",
    "LOSSES",
    "BagRunResult",
    "ResidualCNN",
    "load_digit_split",
    "make_bags",
    "run_bags",
]

LOSSES = ("matching", "sinkhorn", "proportion", "supervised")
EXTENDED_LOSSES = (
    "matching",
    "smoothed",
    "sinkhorn",
    "sinkhorn_annealed",
    "proportion",
    "proportion_matching",
    "supervised",
)
CAPTIONS = ("full", "partial", "noisy")
NUM_CLASSES = 10


def load_digit_split(seed: int, test_fraction: float = 0.3):
    """Digits as float tensors (N, 1, 8, 8) in [0, 1], split into train/test by `seed`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = np.random.default_rng(seed).permutation(len(labels))
    num_test = round(test_fraction * len(labels))
    test_idx, train_idx = order[:num_test], order[num_test:]
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def make_bags(num_images: int, bag_size: int, seed: int) -> torch.Tensor:
    """Partition `range(num_images)` into fixed random bags: (num_bags, bag_size) indices.

    The remainder (fewer than `bag_size` images) is dropped. Bags are fixed for the
    whole run, as in a real weakly labelled data set (the same photo always comes with the
    same caption).
    """
    order = torch.from_numpy(np.random.default_rng(seed + 7919).permutation(num_images))
    num_bags = num_images // bag_size
    return order[: num_bags * bag_size].view(num_bags, bag_size)


class _ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResidualCNN(nn.Module):
    """A small ResNet for 8x8 inputs: stem, three residual blocks, global pooling, linear.

    Shape:
        - Input: (N, 1, 8, 8). Output: (N, num_classes) logits.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(
            _ResidualBlock(width, width),
            _ResidualBlock(width, 2 * width, stride=2),  # 8x8 -> 4x4
            _ResidualBlock(2 * width, 2 * width),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x)).mean((2, 3))
        return self.head(features)


def sinkhorn_plan(cost: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Entropic transport plan between uniform marginals, (B, k, k) -> (B, k, k).

    Log-domain Sinkhorn: `P = diag(u) exp(-C / eps) diag(v)` with row and column sums
    `1 / k`; returned scaled by `k` so that each row sums to one (a soft assignment).
    """
    k = cost.shape[-1]
    log_kernel = -cost / epsilon
    log_marginal = -float(np.log(k))
    log_u = torch.zeros_like(cost[..., 0])
    log_v = torch.zeros_like(cost[..., 0])
    for _ in range(iterations):
        log_u = log_marginal - torch.logsumexp(log_kernel + log_v[:, None, :], dim=2)
        log_v = log_marginal - torch.logsumexp(log_kernel + log_u[:, :, None], dim=1)
    return torch.exp(log_u[:, :, None] + log_kernel + log_v[:, None, :]) * k


def bag_loss(
    name: str,
    log_probs: torch.Tensor,
    bag_labels: torch.Tensor,
    true_labels: torch.Tensor,
    *,
    matching: MatchingLoss,
    sinkhorn_epsilon: float = 0.1,
    sinkhorn_iterations: int = 30,
) -> torch.Tensor:
    """The training loss `name` for one batch of bags.

    Args:
        name: one of `LOSSES` (`"smoothed"` is `"matching"` with the
            `matching` instance's `sigma`; the schedules live in `run_bags`).
        log_probs: (B, k, C) per-image log-probabilities.
        bag_labels: (B, L) the bag's label multiset, L <= k (its order carries no
            information: it is sorted before this call).
        true_labels: (B, k) per-image labels, used only by `"supervised"`.
        matching: the `combgrad.MatchingLoss` instance to use.
        sinkhorn_epsilon, sinkhorn_iterations: entropic regularization and iterations.
    """
    B, k, C = log_probs.shape
    L = bag_labels.shape[1]
    if name in ("matching", "smoothed"):
        return matching(log_probs, bag_labels)
    if name == "sinkhorn":
        # cost[b, l, i] = -log p(label l | image i), the same matrix MatchingLoss solves;
        # unnamed images (L < k) are matched to k - L zero-cost rows.
        cost = -log_probs.gather(2, bag_labels[:, None, :].expand(B, k, L)).transpose(1, 2)
        if L < k:
            cost = torch.cat([cost, cost.new_zeros(B, k - L, k)], 1)
        with torch.no_grad():
            plan = sinkhorn_plan(cost, sinkhorn_epsilon, sinkhorn_iterations)
        return (plan[:, :L] * cost[:, :L]).sum() / (B * L)
    if name == "proportion":
        proportions = F.one_hot(bag_labels, C).float().mean(1)  # (B, C)
        mean_log_prob = torch.logsumexp(log_probs, dim=1) - float(np.log(k))  # log mean p
        return -(proportions * mean_log_prob).sum(1).mean()
    if name == "supervised":
        return F.nll_loss(log_probs.reshape(B * k, C), true_labels.reshape(B * k))
    raise ValueError(f"`loss` must be one of {EXTENDED_LOSSES}; got {name!r}.")


def make_captions(
    true_bag_labels: torch.Tensor,
    caption: str,
    seed: int,
    *,
    named_fraction: float = 0.75,
    noise_fraction: float = 0.2,
) -> torch.Tensor:
    """The bags' captions (sorted label multisets) from their images' true labels.

    Args:
        true_bag_labels: (num_bags, k) true classes of each bag's images.
        caption: one of `CAPTIONS`.
        seed: fixes which names are dropped or replaced.
        named_fraction: `"partial"`: fraction of the k images that are named.
        noise_fraction: `"noisy"`: probability that a name is replaced by a random class.

    Returns:
        (num_bags, L) sorted captions, L = k (`"full"`, `"noisy"`) or
            `max(1, round(named_fraction * k))` (`"partial"`).
    """
    if caption not in CAPTIONS:
        raise ValueError(f"`caption` must be one of {CAPTIONS}; got {caption!r}.")
    generator = torch.Generator().manual_seed(seed + 104729)
    labels = true_bag_labels.clone()
    num_bags, k = labels.shape
    if caption == "partial":
        named = max(1, round(named_fraction * k))
        keep = torch.rand(num_bags, k, generator=generator).argsort(1)[:, :named]
        labels = labels.gather(1, keep)
    elif caption == "noisy":
        replace = torch.rand(num_bags, k, generator=generator) < noise_fraction
        random = torch.randint(0, NUM_CLASSES, (num_bags, k), generator=generator)
        labels = torch.where(replace, random, labels)
    return labels.sort(dim=1).values


@dataclass
class BagRunResult:
    """What `run_bags` measured for one (loss, bag size, seed)."""

    loss: str
    bag_size: int
    seed: int
    caption: str = "full"
    test_accuracy: list[float] = field(default_factory=list)  # after each epoch
    epoch_seconds: list[float] = field(default_factory=list)
    chance_accuracy: float = 0.1

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1]

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean(self.epoch_seconds))


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    predictions = torch.cat([model(chunk).argmax(1) for chunk in images.split(512)])
    model.train()
    return float((predictions == labels).float().mean())


def run_bags(
    loss: str,
    bag_size: int,
    seed: int,
    *,
    epochs: int = 20,
    images_per_batch: int = 64,
    lr: float = 2e-3,
    width: int = 16,
    max_train_images: int | None = None,
    progress: Callable[[int, float], None] | None = None,
    caption: str = "full",
    named_fraction: float = 0.75,
    noise_fraction: float = 0.2,
    smooth_sigma: float = 1.0,
    smooth_fraction: float = 0.5,
    smooth_samples: int = 32,
    sinkhorn_start: float = 1.0,
    sinkhorn_end: float = 0.03,
    warm_fraction: float = 0.25,
) -> BagRunResult:
    """Train the residual CNN with `loss` on bags of `bag_size` and record test accuracy.

    Every loss sees the same split, bags, batches (`images_per_batch // bag_size` bags per
    step), initialisation, optimizer (Adam, cosine-annealed `lr`) and epochs.

    Args:
        loss: one of `LOSSES`.
        bag_size: images per bag `k`.
        seed: fixes the split, the bags, the initialisation and the batch order.
        epochs: passes over the training bags.
        images_per_batch: images per optimizer step (rounded down to whole bags).
        lr: peak learning rate.
        width: channels of the first residual stage.
        max_train_images: use only this many training images (for quick runs).
        progress: called as `progress(epoch, test_accuracy)` after every epoch.
        caption: `"full"`, `"partial"` or `"noisy"` (see `make_captions`).
        named_fraction, noise_fraction: as for `make_captions`.
        smooth_sigma, smooth_fraction, smooth_samples: `"smoothed"`: initial `sigma`,
            fraction of the steps over which it is annealed to 0, noise draws per bag.
        sinkhorn_start, sinkhorn_end: `"sinkhorn_annealed"`: epsilon schedule.
        warm_fraction: `"proportion_matching"`: fraction of the epochs trained with the
            proportion loss before switching to the exact matching loss.
    """
    if loss not in EXTENDED_LOSSES:
        raise ValueError(f"`loss` must be one of {EXTENDED_LOSSES}; got {loss!r}.")
    if bag_size < 1:
        raise ValueError(f"`bag_size` must be positive; got {bag_size}.")
    if epochs < 1:
        raise ValueError(f"`epochs` must be positive; got {epochs}.")
    x_train, y_train, x_test, y_test = load_digit_split(seed)
    if max_train_images is not None:
        x_train, y_train = x_train[:max_train_images], y_train[:max_train_images]
    bags = make_bags(len(y_train), bag_size, seed)
    # The bag's label multiset, sorted so that its order says nothing about the images.
    bag_labels = make_captions(
        y_train[bags], caption, seed, named_fraction=named_fraction, noise_fraction=noise_fraction
    )
    bags_per_batch = max(1, images_per_batch // bag_size)

    torch.manual_seed(seed)
    model = ResidualCNN(width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(bags) // bags_per_batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    total_steps = epochs * steps_per_epoch
    noise_generator = torch.Generator().manual_seed(seed + 15485863)
    if loss == "smoothed":
        matching = MatchingLoss(
            sigma=smooth_sigma, n_samples=smooth_samples, generator=noise_generator
        )
    else:
        matching = MatchingLoss()
    warm_epochs = round(warm_fraction * epochs)
    generator = torch.Generator().manual_seed(seed)
    result = BagRunResult(loss, bag_size, seed, caption)
    step = 0
    for epoch in range(epochs):
        start = time.perf_counter()
        for batch in torch.randperm(len(bags), generator=generator).split(bags_per_batch):
            index = bags[batch]  # (b, k)
            logits = model(x_train[index.reshape(-1)])
            log_probs = logits.log_softmax(-1).view(len(batch), bag_size, -1)
            current, epsilon = loss, 0.1
            if loss == "smoothed":
                anneal_steps = max(1, round(smooth_fraction * total_steps))
                matching.sigma = sigma_schedule(step, anneal_steps, smooth_sigma)
            elif loss == "sinkhorn_annealed":
                current = "sinkhorn"
                t = step / max(1, total_steps - 1)
                epsilon = sinkhorn_start * (sinkhorn_end / sinkhorn_start) ** t
            elif loss == "proportion_matching":
                current = "proportion" if epoch < warm_epochs else "matching"
            value = bag_loss(
                current, log_probs, bag_labels[batch], y_train[index], matching=matching,
                sinkhorn_epsilon=epsilon,
            )  # fmt: skip
            step += 1
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            scheduler.step()
        result.epoch_seconds.append(time.perf_counter() - start)
        result.test_accuracy.append(evaluate(model, x_test, y_test))
        if progress is not None:
            progress(epoch, result.test_accuracy[-1])
    return result
