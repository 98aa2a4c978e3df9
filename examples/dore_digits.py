"""DORE vs uncompressed SGD vs memory-less compression on scikit-learn digits.

Logistic regression and a small MLP (64-64-10, tanh) are trained data-parallel: the 1347 training
images are shuffled once and dealt to the workers, every worker takes minibatches from its own
shard, and the optimizer's ``step()`` does all the communication. Three optimizers from
:mod:`combgrad.distributed` run from the same initial model and the same data order:

* ``sgd``: :class:`AllReduceSGD`, dense float32 gradients (the byte reference);
* ``memoryless``: :class:`CompressedSGD`, ternary compression in both directions, no memories;
* ``dore``: :class:`DORE` with the same compressor (``alpha=0.1, beta=1, eta=0.5``).

``--split label`` gives each worker a slice of the data sorted by class (two or three digits
each), so the workers' gradients differ strongly. The compressor is the blockwise ternary
quantizer (block 256, ``--packing bitmap`` by default). At the end rank 0 prints the test accuracy and the total bytes sent by all ranks in both
directions (workers to master and master to workers), writes ``results.json`` and a figure to
``--out``.

Usage::

    torchrun --nproc_per_node=4 examples/dore_digits.py     # torch's launcher
    python examples/dore_digits.py --nproc 4                 # spawns 4 local workers itself
    python examples/dore_digits.py --quick                   # a few seconds (used by the tests)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from combgrad.distributed import (
    DORE,
    AllReduceSGD,
    CompressedSGD,
    TernaryQuantizer,
    init_from_env,
    launch,
)

METHODS = ("sgd", "memoryless", "dore")
MODELS = ("logreg", "mlp")


def load_data(seed: int) -> tuple[torch.Tensor, ...]:
    """Standardized digits, split 1347 train / 450 test with a fixed seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=450, random_state=seed, stratify=digits.target
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    to_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return to_x(x_train), to_y(y_train), to_x(x_test), to_y(y_test)


def make_model(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "logreg":
        return nn.Linear(64, 10)
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def make_optimizer(method: str, params, args: argparse.Namespace, seed: int):
    compressor = TernaryQuantizer(block_size=args.block_size, packing=args.packing)
    common = {"timeout": args.timeout}
    if method == "sgd":
        return AllReduceSGD(params, lr=args.lr, **common)
    if method == "memoryless":
        return CompressedSGD(params, lr=args.lr, compressor=compressor, seed=seed, **common)
    return DORE(
        params, lr=args.lr, alpha=args.alpha, beta=args.beta, eta=args.eta,
        compressor=compressor, seed=seed, **common,
    )  # fmt: skip


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(dim=1) == y).float().mean())


def train(
    rank: int, world: int, kind: str, method: str, data: tuple, args: argparse.Namespace
) -> dict:
    """Train one model with one optimizer on this rank's shard; returns rank-0-style results."""
    x_train, y_train, x_test, y_test = data
    shuffle = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))
    if args.split == "iid":
        shard = shuffle[rank::world]
    else:  # "label": sort by class, give each worker a contiguous slice (2-3 classes each)
        by_label = shuffle[torch.argsort(y_train[shuffle], stable=True)]
        shard = torch.tensor_split(by_label, world)[rank]
    x_local, y_local = x_train[shard], y_train[shard]
    model = make_model(kind, args.seed)
    opt = make_optimizer(method, model.parameters(), args, seed=args.seed)
    batches_per_epoch = len(x_train) // (world * args.batch_size)
    order = torch.Generator().manual_seed(args.seed + 1 + rank)
    curve = []
    start = time.perf_counter()
    epochs = tqdm(range(args.epochs), desc=f"{kind} {method}", disable=rank != 0, file=sys.stderr)
    for epoch in epochs:
        perm = torch.randperm(len(x_local), generator=order)
        for b in range(batches_per_epoch):
            idx = perm[(b * args.batch_size) % len(perm) :][: args.batch_size]
            model.zero_grad()
            nn.functional.cross_entropy(model(x_local[idx]), y_local[idx]).backward()
            opt.step()
        counts = opt.gather_byte_counts()
        curve.append(
            {"epoch": epoch + 1, "test_accuracy": accuracy(model, x_test, y_test),
             "bytes_sent": counts["bytes_sent"]}
        )  # fmt: skip
    totals = opt.gather_byte_counts()
    return {
        "model": kind,
        "method": method,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": opt.step_count,
        "train_accuracy": accuracy(model, x_train, y_train),
        "test_accuracy": accuracy(model, x_test, y_test),
        "total_bytes": totals["bytes_sent"],
        "dense_bytes": totals["dense_bytes"],
        "bytes_ratio": totals["bytes_ratio"],
        "seconds": time.perf_counter() - start,
        "curve": curve,
    }


def run_rank(
    rank: int, world: int, args: argparse.Namespace, data: tuple | None = None
) -> list[dict]:
    """Everything one rank does: both models, all three optimizers."""
    torch.set_num_threads(1)
    if data is None:
        data = load_data(args.seed)
    return [train(rank, world, kind, method, data, args) for kind in MODELS for method in METHODS]


def report(results: list[dict], world: int, args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"workers: {world}, split: {args.split}, epochs: {args.epochs}, batch per worker: "
        f"{args.batch_size}, lr: {args.lr}, compressor: TernaryQuantizer({args.block_size}, "
        f"{args.packing!r}), DORE alpha={args.alpha}, beta={args.beta}, eta={args.eta}"
    )
    header = f"{'model':7s} {'method':11s} {'test acc':>8s} {'total bytes':>12s} {'vs SGD':>8s}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['model']:7s} {r['method']:11s} {100 * r['test_accuracy']:7.2f}% "
            f"{r['total_bytes']:12,d} {100 * r['bytes_ratio']:7.2f}%"
        )
    payload = {"world_size": world, "args": vars(args), "results": results}
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    figure = out / "dore_digits.png"
    plot(results, figure)
    print(f"wrote {out / 'results.json'} and {figure}")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODELS), figsize=(8, 3.2), sharey=True)
    for ax, kind in zip(axes, MODELS):
        for r in results:
            if r["model"] != kind:
                continue
            megabytes = [c["bytes_sent"] / 1e6 for c in r["curve"]]
            acc = [100 * c["test_accuracy"] for c in r["curve"]]
            ax.plot(megabytes, acc, marker=".", label=r["method"])
        ax.set_xscale("log")
        ax.set_title(kind)
        ax.set_xlabel("total MB sent (all ranks)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=4, help="workers for a plain python launch")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16, help="minibatch per worker")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--packing", choices=TernaryQuantizer.PACKINGS, default="bitmap")
    parser.add_argument(
        "--split", choices=("iid", "label"), default="iid",
        help="iid shards, or shards sorted by label (heterogeneous workers)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="communication timeout (s)")
    parser.add_argument("--out", default="out/dore_digits/")
    parser.add_argument("--quick", action="store_true", help="2 workers, 2 epochs")
    args = parser.parse_args(argv)
    if args.quick:
        args.nproc, args.epochs = 2, 2
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by torchrun
        rank, world = init_from_env("gloo", timeout=args.timeout)
        try:
            results = run_rank(rank, world, args)
        finally:
            dist.destroy_process_group()
    else:
        world = args.nproc
        # Load the data once here and ship it, so the workers need not import scikit-learn.
        data = load_data(args.seed)
        results = launch(run_rank, world, (args, data), timeout=args.timeout, join_timeout=3600)
        results = results[0]
    if "RANK" not in os.environ or int(os.environ["RANK"]) == 0:
        report(results, world, args)


if __name__ == "__main__":
    main()
