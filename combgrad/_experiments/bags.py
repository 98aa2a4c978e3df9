"""Weak supervision from unordered label bags on the scikit-learn digits (paper setting (a)).

The training images are partitioned once (per seed) into bags of `k` images; a bag is
labelled only with the multiset of its images' classes. A small residual CNN is trained
with one of four losses, and evaluated by per-image test accuracy:

- `matching`: [`combgrad.MatchingLoss`][combgrad.MatchingLoss], the exact minimum-cost bipartite matching
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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import MatchingLoss

__all__ = [
    "LOSSES",
    "BagRunResult",
    "ResidualCNN",
    "load_digit_split",
    "make_bags",
    "run_bags",
]

LOSSES = ("matching", "sinkhorn", "proportion", "supervised")
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
        name: one of `LOSSES`.
        log_probs: (B, k, C) per-image log-probabilities.
        bag_labels: (B, k) the bag's label multiset (its order carries no information:
            it is sorted before this call).
        true_labels: (B, k) per-image labels, used only by `"supervised"`.
        matching: the [`MatchingLoss`][combgrad.MatchingLoss] instance to use.
        sinkhorn_epsilon, sinkhorn_iterations: entropic regularization and iterations.
    """
    B, k, C = log_probs.shape
    if name == "matching":
        return matching(log_probs, bag_labels)
    if name == "sinkhorn":
        # cost[b, l, i] = -log p(label l | image i), the same matrix MatchingLoss solves.
        cost = -log_probs.gather(2, bag_labels[:, None, :].expand(B, k, k)).transpose(1, 2)
        with torch.no_grad():
            plan = sinkhorn_plan(cost, sinkhorn_epsilon, sinkhorn_iterations)
        return (plan * cost).sum() / (B * k)
    if name == "proportion":
        proportions = F.one_hot(bag_labels, C).float().mean(1)  # (B, C)
        mean_log_prob = torch.logsumexp(log_probs, dim=1) - float(np.log(k))  # log mean p
        return -(proportions * mean_log_prob).sum(1).mean()
    if name == "supervised":
        return F.nll_loss(log_probs.reshape(B * k, C), true_labels.reshape(B * k))
    raise ValueError(f"`loss` must be one of {LOSSES}; got {name!r}.")


@dataclass
class BagRunResult:
    """What `run_bags` measured for one (loss, bag size, seed)."""

    loss: str
    bag_size: int
    seed: int
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
    """
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {LOSSES}; got {loss!r}.")
    if bag_size < 1:
        raise ValueError(f"`bag_size` must be positive; got {bag_size}.")
    if epochs < 1:
        raise ValueError(f"`epochs` must be positive; got {epochs}.")
    x_train, y_train, x_test, y_test = load_digit_split(seed)
    if max_train_images is not None:
        x_train, y_train = x_train[:max_train_images], y_train[:max_train_images]
    bags = make_bags(len(y_train), bag_size, seed)
    # The bag's label multiset, sorted so that its order says nothing about the images.
    bag_labels = y_train[bags].sort(dim=1).values
    bags_per_batch = max(1, images_per_batch // bag_size)

    torch.manual_seed(seed)
    model = ResidualCNN(width=width)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(bags) // bags_per_batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    matching = MatchingLoss()
    generator = torch.Generator().manual_seed(seed)
    result = BagRunResult(loss, bag_size, seed)
    for epoch in range(epochs):
        start = time.perf_counter()
        for batch in torch.randperm(len(bags), generator=generator).split(bags_per_batch):
            index = bags[batch]  # (b, k)
            logits = model(x_train[index.reshape(-1)])
            log_probs = logits.log_softmax(-1).view(len(batch), bag_size, -1)
            value = bag_loss(loss, log_probs, bag_labels[batch], y_train[index], matching=matching)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            scheduler.step()
        result.epoch_seconds.append(time.perf_counter() - start)
        result.test_accuracy.append(evaluate(model, x_test, y_test))
        if progress is not None:
            progress(epoch, result.test_accuracy[-1])
    return result
