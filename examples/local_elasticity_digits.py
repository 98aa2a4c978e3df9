"""Local-elasticity clustering (He & Su, ICLR 2020) on scikit-learn digits.

For each of the paper's MNIST pairs (primary classes, auxiliary classes) it clusters the primary
images into two groups with

* K-means on the raw pixels, and PCA + K-means (baselines);
* the paper's pipeline with a two-layer ReLU network: relative similarity + K-means on its rows,
  relative similarity + spectral clustering, kernelized similarity + kernel K-means;
* the same pipeline with a two-layer *linear* network (the paper's control),

and prints the clustering accuracy (best matching of clusters to classes) of each.

Usage::

    python examples/local_elasticity_digits.py            # full table (docs/analysis/...)
    python examples/local_elasticity_digits.py --quick    # one pair, small net; used by tests
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
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from torch import nn
from tqdm import tqdm

from combgrad.analysis import (
    cluster_similarity,
    clustering_accuracy,
    local_elasticity_similarity,
    train_elastic_classifier,
)

# (primary pair, auxiliary classes), from the authors' MNIST scripts.
PAIRS = [
    ((5, 8), (9, 3)),
    ((4, 9), (5, 7)),
    ((7, 9), (5, 4)),
    ((3, 5), (8, 9)),
    ((3, 8), (5,)),
]
METHODS = [
    "pixels K-means",
    "PCA + K-means",
    "ReLU rel. + K-means",
    "ReLU rel. + spectral",
    "ReLU ker. + kernel K-means",
    "linear rel. + K-means",
    "linear ker. + kernel K-means",
]


def load_pair(primary: tuple[int, ...], auxiliary: tuple[int, ...], max_per_class: int | None):
    digits = load_digits()
    x = digits.data.astype(np.float32) / 8.0 - 1.0  # pixels in [-1, 1], as the paper's MNIST
    y = digits.target

    def take(cls: int) -> np.ndarray:
        idx = np.flatnonzero(y == cls)
        return idx if max_per_class is None else idx[:max_per_class]

    prim_idx = np.concatenate([take(c) for c in primary])
    aux_idx = np.concatenate([take(c) for c in auxiliary])
    labels = (y[prim_idx] == primary[1]).astype(int)
    return torch.from_numpy(x[prim_idx]), torch.from_numpy(x[aux_idx]), labels


def neural_scores(
    x_prim: torch.Tensor, x_aux: torch.Tensor, labels: np.ndarray, activation: str, args
) -> dict[str, float]:
    model, train_acc = train_elastic_classifier(
        x_prim,
        x_aux,
        activation=activation,
        hidden_size=args.hidden,
        epochs=args.epochs,
        batch_size=50,
        seed=args.seed,
        lr=args.lr_relu if activation == "relu" else args.lr_linear,
    )
    targets = x_prim.new_ones(x_prim.shape[0])
    name = "ReLU" if activation == "relu" else "linear"
    scores = {f"{name} train acc": train_acc}
    for kind in tqdm(("relative", "kernel"), desc=f"{name} similarities", file=sys.stderr):
        similarity = local_elasticity_similarity(
            model, nn.MSELoss(), x_prim, targets, kind=kind, lr=args.similarity_lr, symmetrize=True
        )
        if kind == "relative":
            methods = ["kmeans", "spectral"] if activation == "relu" else ["kmeans"]
        else:
            methods = ["kernel_kmeans"]
        for method in methods:
            pred = cluster_similarity(similarity, 2, method=method, seed=args.seed)
            key = {
                "kmeans": f"{name} rel. + K-means",
                "spectral": f"{name} rel. + spectral",
                "kernel_kmeans": f"{name} ker. + kernel K-means",
            }[method]
            scores[key] = clustering_accuracy(pred, labels)
    return scores


def plot(rows: list[dict], figure: Path) -> None:
    """Grouped bars: clustering accuracy of every method on every pair."""
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / len(METHODS)
    for m_index, method in enumerate(METHODS):
        ax.bar(
            np.arange(len(rows)) + m_index * width,
            [row[method] for row in rows],
            width,
            label=method,
        )
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [row["pair"] for row in rows])
    lowest = min(row[m] for row in rows for m in METHODS)
    ax.set_ylim(max(0.5, np.floor(lowest * 20) / 20 - 0.05), 1.0)
    ax.set_ylabel("clustering accuracy")
    ax.legend(fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    fig.savefig(figure, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one pair, small network")
    parser.add_argument("--out", type=Path, default=Path("out/local_elasticity_digits"))
    parser.add_argument("--hidden", type=int, default=None, help="hidden width (paper: 40960)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (paper: 200)")
    parser.add_argument("--similarity-lr", dest="similarity_lr", type=float, default=1e-5)
    parser.add_argument("--pca", type=int, default=10, help="PCA components of the baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--lr-relu", dest="lr_relu", type=float, default=None, help="default 3e-3 (the paper's)"
    )
    parser.add_argument(
        "--lr-linear",
        dest="lr_linear",
        type=float,
        default=None,
        help="default 3e-5 (the paper's; too small to train in a quick run: --quick uses 3e-3)",
    )
    parser.add_argument("--max-per-class", dest="max_per_class", type=int, default=None)
    parser.add_argument(
        "--pairs", nargs="+", default=None, help="subset of pairs to run, e.g. 5v8 3v5"
    )
    args = parser.parse_args(argv)
    if args.hidden is None:
        args.hidden = 512 if args.quick else 4096
    if args.epochs is None:
        args.epochs = 30 if args.quick else 200
    if args.quick and args.max_per_class is None:
        args.max_per_class = 60
    if args.lr_relu is None:
        args.lr_relu = 3e-3
    if args.lr_linear is None:
        args.lr_linear = 3e-3 if args.quick else 3e-5
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small problems: one thread is fastest and reproducible
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    pairs = PAIRS[:1] if args.quick else PAIRS
    if args.pairs is not None:
        pairs = [p for p in PAIRS if f"{p[0][0]}v{p[0][1]}" in args.pairs]
        if not pairs:
            raise SystemExit(f"--pairs: none of {args.pairs} is one of the paper's pairs")

    rows = []
    start = time.perf_counter()
    for primary, auxiliary in pairs:
        x_prim, x_aux, labels = load_pair(primary, auxiliary, args.max_per_class)
        pixels = x_prim.numpy()
        row: dict[str, object] = {"pair": f"{primary[0]} v {primary[1]}", "aux": list(auxiliary)}
        row["n_primary"] = int(pixels.shape[0])
        row["pixels K-means"] = clustering_accuracy(
            KMeans(2, n_init=10, random_state=args.seed).fit_predict(pixels), labels
        )
        reduced = PCA(args.pca, random_state=args.seed).fit_transform(pixels)
        row["PCA + K-means"] = clustering_accuracy(
            KMeans(2, n_init=10, random_state=args.seed).fit_predict(reduced), labels
        )
        for activation in ("relu", "linear"):
            row.update(neural_scores(x_prim, x_aux, labels, activation, args))
        rows.append(row)
        print(row, flush=True)
    elapsed = time.perf_counter() - start

    print("| pair [aux] | " + " | ".join(METHODS) + " |")
    print("|" + "---|" * (len(METHODS) + 1))
    for row in rows:
        aux = ", ".join(str(a) for a in row["aux"])
        cells = [f"{row[m]:.3f}" for m in METHODS]
        print(f"| {row['pair']} [{aux}] | " + " | ".join(cells) + " |")
    print(f"(width {args.hidden}, {args.epochs} epochs, seed {args.seed}, {elapsed:.0f} s)")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2)
    )
    figure = args.out / "local_elasticity_digits.png"
    plot(rows, figure)
    print(f"wrote {figure} and {args.out / 'results.json'}")
    return {"rows": rows, "figure": str(figure)}


if __name__ == "__main__":
    main()
