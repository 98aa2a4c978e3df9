"""The flagship demo: learning digit classes from bags labelled only with unordered sets.

`python -m combgrad demo` (or `make demo`) partitions the scikit-learn handwritten
digits (shipped with scikit-learn, no download) into bags of 4 images, each labelled only
with the multiset of its classes, and trains the same small residual CNN with four losses:
the exact bipartite-matching loss [`combgrad.MatchingLoss`][combgrad.MatchingLoss], an entropic Sinkhorn
soft matching, a bag-level label-proportion loss, and fully supervised cross-entropy (the
upper bound, which sees per-image labels). It prints per-image test accuracy and seconds
per epoch for each, and saves a plot of test accuracy against epoch.

The full experiment (bag sizes 2, 4, 8; several seeds) is `examples/weak_supervision_bags.py`;
both run the training code in `combgrad._experiments.bags`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the demo's options to `parser` (or a new one) and return it."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m combgrad demo", description=__doc__)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per loss (default 6)")
    parser.add_argument("--bag-size", type=int, default=4, help="images per bag (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="split, bags and init seed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="folder for the PNG (default out/demo)"
    )
    return parser


def run(args: argparse.Namespace) -> dict:
    """Run the demo with parsed `args`; return `{loss: BagRunResult}`."""
    if args.epochs < 1:
        raise SystemExit(f"--epochs must be positive; got {args.epochs}")
    if args.bag_size < 1:
        raise SystemExit(f"--bag-size must be positive; got {args.bag_size}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from tqdm.auto import tqdm

    from ._experiments.bags import LOSSES, run_bags

    torch.set_num_threads(args.threads)
    print(
        f"combgrad demo: digits in bags of {args.bag_size}, labelled only with the unordered "
        f"multiset of their classes; {args.epochs} epochs per loss, seed {args.seed}."
    )
    results = {}
    start = time.perf_counter()
    with tqdm(total=len(LOSSES) * args.epochs, desc="training", file=sys.stderr) as bar:
        for loss in LOSSES:

            def progress(epoch: int, accuracy: float, loss: str = loss) -> None:
                bar.update(1)
                bar.set_postfix_str(f"{loss} test acc={accuracy:.3f}")

            results[loss] = run_bags(
                loss, args.bag_size, args.seed, epochs=args.epochs, progress=progress
            )
    notes = {
        "matching": "combgrad.MatchingLoss (exact)",
        "sinkhorn": "entropic soft matching",
        "proportion": "bag label proportions",
        "supervised": "per-image labels (upper bound)",
    }
    print(f"\n{'loss':<12} {'test accuracy':>13} {'s/epoch':>8}  notes")
    for loss, result in results.items():
        print(
            f"{loss:<12} {result.final_accuracy:>13.3f} {result.seconds_per_epoch:>8.2f}  "
            f"{notes[loss]}"
        )
    print(f"chance accuracy is 0.100; total {time.perf_counter() - start:.0f} s")

    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / "demo_accuracy.png"
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for loss, result in results.items():
        epochs = range(1, len(result.test_accuracy) + 1)
        ax.plot(epochs, result.test_accuracy, marker=".", label=loss)
    ax.set_xlabel("epoch")
    ax.set_ylabel("per-image test accuracy")
    ax.set_title(f"digits from unordered label bags (k={args.bag_size})")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(figure, dpi=80)
    plt.close(fig)
    print(f"plot written to {figure}")
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m combgrad demo`; returns the exit status."""
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
