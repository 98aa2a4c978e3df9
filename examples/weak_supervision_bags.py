"""Weak supervision from unordered label bags (paper setting (a)) on scikit-learn digits.

The training images (70% of ``sklearn.datasets.load_digits``, split by seed) are
partitioned into fixed bags of ``k`` images, each labelled only with the multiset of its
classes. The same small residual CNN, optimizer, batches and epochs are trained with:

- ``matching``: `combgrad.MatchingLoss` (exact bipartite matching, ours);
- ``sinkhorn``: entropic Sinkhorn soft matching of the same cost matrix;
- ``proportion``: bag-level label-proportion cross-entropy (ignores the matching);
- ``supervised``: per-image cross-entropy with the true labels (upper bound);

and, with ``--losses`` naming them, the alternatives of the extended grid:

- ``smoothed``: ``MatchingLoss(sigma=...)``, perturbed smoothing annealed to the exact loss;
- ``sinkhorn_annealed``: Sinkhorn with epsilon annealed geometrically;
- ``proportion_matching``: proportion loss for a warm start, then exact matching.

``--caption partial`` names only a fraction of each bag's images; ``--caption noisy``
replaces a fraction of the names by random classes.

It prints per-image test accuracy (mean +- std over seeds) and seconds per epoch for each
loss and bag size, writes ``results.json`` and a PNG of test accuracy against epoch.

Usage::

    python examples/weak_supervision_bags.py                 # k in {2,4,8}, 3 seeds
    python examples/weak_supervision_bags.py --quick         # seconds; used by the tests
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from combgrad._experiments.bags import CAPTIONS, EXTENDED_LOSSES, LOSSES, run_bags


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bag-sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=EXTENDED_LOSSES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--images-per-batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-train-images", type=int, default=None)
    parser.add_argument("--caption", default="full", choices=CAPTIONS)
    parser.add_argument("--named-fraction", type=float, default=0.75, help="partial captions")
    parser.add_argument("--noise-fraction", type=float, default=0.2, help="noisy captions")
    parser.add_argument("--smooth-sigma", type=float, default=1.0, help="smoothed: start sigma")
    parser.add_argument(
        "--smooth-fraction", type=float, default=0.5, help="smoothed: share of steps to anneal"
    )
    parser.add_argument("--smooth-samples", type=int, default=32, help="smoothed: draws per bag")
    parser.add_argument("--sinkhorn-start", type=float, default=1.0)
    parser.add_argument("--sinkhorn-end", type=float, default=0.03)
    parser.add_argument(
        "--warm-fraction", type=float, default=0.25, help="proportion_matching: warm-up share"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("out/weak_supervision_bags"))
    parser.add_argument("--quick", action="store_true", help="one small setting (seconds)")
    args = parser.parse_args(argv)
    if args.quick:
        args.bag_sizes, args.seeds, args.epochs = [4], [0], 5
        args.losses = ["matching", "supervised"]
        args.max_train_images, args.images_per_batch = 600, 32
    return args


def summarise(results: list[dict]) -> dict:
    """{(loss, k): {"mean", "std", "sec_per_epoch", "curve_mean"}} over seeds."""
    table: dict = {}
    for key in sorted({(r["loss"], r["bag_size"]) for r in results}):
        runs = [r for r in results if (r["loss"], r["bag_size"]) == key]
        finals = np.array([r["test_accuracy"][-1] for r in runs])
        table[key] = {
            "mean": float(finals.mean()),
            "std": float(finals.std(ddof=1)) if len(finals) > 1 else 0.0,
            "sec_per_epoch": float(np.mean([np.mean(r["epoch_seconds"]) for r in runs])),
            "per_seed": finals.tolist(),
            "curve_mean": np.mean([r["test_accuracy"] for r in runs], axis=0).tolist(),
            "seeds": len(runs),
        }
    return table


def print_table(table: dict, losses: list[str], bag_sizes: list[int]) -> None:
    header = "| loss | " + " | ".join(f"k={k} acc" for k in bag_sizes) + " | s/epoch |"
    print(header)
    print("|" + "---|" * (len(bag_sizes) + 2))
    for loss in losses:
        cells = []
        for k in bag_sizes:
            row = table.get((loss, k))
            cells.append(
                "-"
                if row is None
                else f"{row['mean']:.3f} +- {row['std']:.3f} (min {min(row['per_seed']):.3f})"
            )
        seconds = np.mean([table[(loss, k)]["sec_per_epoch"] for k in bag_sizes])
        print(f"| {loss} | " + " | ".join(cells) + f" | {seconds:.2f} |")


def plot(table: dict, losses: list[str], bag_sizes: list[int], path: Path) -> None:
    fig, axes = plt.subplots(1, len(bag_sizes), figsize=(3.6 * len(bag_sizes), 3.0), squeeze=False)
    for ax, k in zip(axes[0], bag_sizes):
        for loss in losses:
            curve = table[(loss, k)]["curve_mean"]
            ax.plot(range(1, len(curve) + 1), curve, label=loss, marker=".")
        ax.set_title(f"bags of k={k}")
        ax.set_xlabel("epoch")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("per-image test accuracy")
    axes[0, -1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = [(k, s, loss) for k in args.bag_sizes for s in args.seeds for loss in args.losses]
    results = []
    bar = tqdm(total=len(settings) * args.epochs, desc="training", file=sys.stderr)
    start = time.perf_counter()
    for k, seed, loss in settings:
        bar.set_postfix_str(f"k={k} seed={seed} {loss}")

        def progress(epoch: int, accuracy: float, k=k, seed=seed, loss=loss) -> None:
            bar.update(1)
            bar.set_postfix_str(f"k={k} seed={seed} {loss} acc={accuracy:.3f}")

        run = run_bags(
            loss, k, seed, epochs=args.epochs, images_per_batch=args.images_per_batch,
            lr=args.lr, max_train_images=args.max_train_images, progress=progress,
            caption=args.caption, named_fraction=args.named_fraction,
            noise_fraction=args.noise_fraction, smooth_sigma=args.smooth_sigma,
            smooth_fraction=args.smooth_fraction, smooth_samples=args.smooth_samples,
            sinkhorn_start=args.sinkhorn_start, sinkhorn_end=args.sinkhorn_end,
            warm_fraction=args.warm_fraction,
        )  # fmt: skip
        results.append(vars(run))
    bar.close()
    table = summarise(results)
    print(
        f"\nper-image test accuracy after {args.epochs} epochs, seeds {args.seeds}, "
        f"captions {args.caption!r}:"
    )
    print_table(table, args.losses, args.bag_sizes)
    print(f"total {time.perf_counter() - start:.0f} s")
    figure = args.out / "accuracy_vs_epoch.png"
    plot(table, args.losses, args.bag_sizes, figure)
    summary = {f"{loss}/k={k}": row for (loss, k), row in table.items()}
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "summary": summary,
                "runs": results,
            },
            indent=1,
        )
    )
    print(f"wrote {figure} and {args.out / 'results.json'}")
    return {"table": table, "runs": results, "figure": figure}


if __name__ == "__main__":
    main()
