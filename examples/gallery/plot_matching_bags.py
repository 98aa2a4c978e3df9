"""Train a classifier from bags of images labelled only with the multiset of their classes.

Your data: bags of `k` instances (the faces in a photo, the objects in a scene), each bag
labelled with the unordered multiset of its instances' classes, never with which instance has
which label. `combgrad.MatchingLoss` is the exact loss for that supervision: the minimum, over
assignments of the bag's labels to its instances, of the summed negative log-likelihoods. Its
gradient is cross-entropy on the currently best-matching pseudo-labels.

Here the instances are scikit-learn's 8x8 digits, grouped into bags of 4; we measure the
per-image test accuracy the classifier reaches without ever seeing a per-image label.

Run: `python examples/gallery/plot_matching_bags.py` (full, about a minute on one core) or with
`--quick` (a few seconds; its numbers are for smoke testing only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tqdm import tqdm

import combgrad

FIGURE = Path(__file__).resolve().parents[2] / "docs" / "img" / "gallery" / "matching_bags.png"


def make_bags(x: torch.Tensor, y: torch.Tensor, k: int, generator: torch.Generator):
    """Shuffle and cut into bags: images (B, k, 64) and each bag's labels (B, k), order lost."""
    order = torch.randperm(len(x), generator=generator)
    n_bags = len(x) // k
    order = order[: n_bags * k]
    images = x[order].reshape(n_bags, k, -1)
    labels = y[order].reshape(n_bags, k)
    labels = labels.sort(dim=1).values  # a multiset: the order inside the bag carries nothing
    return images, labels


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--epochs", type=int, default=None, help="default 30 (quick: 2)")
    parser.add_argument("--bag-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"figure path (default {FIGURE})")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 30)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=args.seed)
    if args.quick:
        x_tr, y_tr = x_tr[:400], y_tr[:400]

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = combgrad.MatchingLoss()
    history: dict[str, list[float]] = {"loss": [], "test_accuracy": []}

    for _ in tqdm(range(epochs), desc="epochs", file=sys.stderr):
        images, labels = make_bags(x_tr, y_tr, args.bag_size, gen)  # new bags every epoch
        total = 0.0
        for batch in torch.arange(len(images)).split(32):
            log_probs = model(images[batch]).log_softmax(-1)  # (B, k, 10)
            loss = loss_fn(log_probs, labels[batch])  # labels (B, k): the bag's multiset
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        with torch.no_grad():
            accuracy = (model(x_te).argmax(-1) == y_te).float().mean().item()
        history["loss"].append(total / len(images))
        history["test_accuracy"].append(accuracy)

    if args.quick:
        print("quick mode: these numbers are for smoke testing only")
    print(f"per-image test accuracy after {epochs} epochs: {history['test_accuracy'][-1]:.3f}")
    print("(chance is 0.100; the model never saw a per-image label)")

    out = args.out or (None if args.quick else FIGURE)
    if out is not None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(range(1, epochs + 1), history["test_accuracy"], marker=".")
        ax.axhline(0.1, color="gray", ls=":", label="chance")
        ax.set(xlabel="epoch", ylabel="per-image test accuracy", ylim=(0, 1))
        ax.set_title(f"MatchingLoss on bags of {args.bag_size} digits (seed {args.seed})")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(f"figure written to {out}")
    return history


if __name__ == "__main__":
    main()
