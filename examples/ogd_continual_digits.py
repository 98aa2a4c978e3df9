"""Continual learning on permuted and rotated scikit-learn digits: OGD vs SGD vs EWC.

Each task is the 8x8 digits data set (``sklearn.datasets.load_digits``) under a fixed pixel
permutation (permuted digits) or a fixed rotation (rotated digits). One MLP (64-100-100-10,
ReLU, a single shared head) is trained on the tasks in sequence with the same learning rate,
batch size and number of epochs for every method:

- ``SGD``: plain SGD, the forgetting baseline.
- ``EWC``: SGD plus an elastic weight consolidation penalty (Kirkpatrick et al., 2017) with a
  diagonal empirical Fisher estimated on the same ``m`` samples per task that OGD remembers.
  It is the standard replay-free regulariser, and stores ``2 P`` numbers per task instead of
  OGD's up to ``m P``.
- ``OGD-GTL`` and ``OGD-AVE``: :class:`combgrad.optim.OGD` with ``m`` remembered samples per
  task.

After the last task it prints the test accuracy on every task (rows: methods, columns:
tasks), averaged over the seeds, and saves a figure of task-1 accuracy across training.

Usage::

    python examples/ogd_continual_digits.py            # full run, 5 tasks, 3 seeds
    python examples/ogd_continual_digits.py --quick    # a few seconds (used by the tests)
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
from scipy.ndimage import rotate
from sklearn.datasets import load_digits
from torch import nn
from tqdm import tqdm

from combgrad.optim import OGD

METHODS = ("SGD", "EWC", "OGD-GTL", "OGD-AVE")


def make_tasks(kind: str, num_tasks: int, seed: int, rotation_step: float):
    """Return ``[(x_train, y_train, x_test, y_test), ...]``; task 1 is the unmodified data."""
    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0  # (1797, 8, 8) in [0, 1]
    # one global shift and scale (not per pixel, which would differ between rotations)
    mean, std = images.mean(), images.std()
    labels = digits.target
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    num_train = int(0.7 * len(labels))
    train_idx, test_idx = order[:num_train], order[num_train:]
    tasks = []
    for t in range(num_tasks):
        if kind == "permuted":
            perm = np.arange(64) if t == 0 else rng.permutation(64)
            x = images.reshape(-1, 64)[:, perm]
        elif kind == "rotated":
            angle = rotation_step * t
            x = rotate(images, angle, axes=(1, 2), reshape=False, order=1, mode="constant")
            x = x.reshape(-1, 64)
        else:
            raise ValueError(f"unknown benchmark {kind!r}")
        x = torch.tensor((x - mean) / std, dtype=torch.float32)
        y = torch.tensor(labels, dtype=torch.long)
        tasks.append((x[train_idx], y[train_idx], x[test_idx], y[test_idx]))
    return tasks


def make_model(hidden: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    )  # fmt: skip


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(dim=1) == y).float().mean().item()


class EWCPenalty:
    """Sum over past tasks of ``lam/2 * sum_i F_i (w_i - w*_i)^2`` (diagonal empirical Fisher)."""

    def __init__(self, lam: float) -> None:
        self.lam = lam
        self.fisher: list[list[torch.Tensor]] = []
        self.anchor: list[list[torch.Tensor]] = []

    def consolidate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        params = {name: p.detach() for name, p in model.named_parameters()}

        def loss(weights, xi, yi):
            logits = torch.func.functional_call(model, weights, (xi.unsqueeze(0),))
            return nn.functional.cross_entropy(logits, yi.unsqueeze(0))

        grads = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, y)
        self.fisher.append([grads[name].pow(2).mean(0) for name in params])
        self.anchor.append([p.clone() for p in params.values()])

    def __call__(self, model: nn.Module) -> torch.Tensor:
        total = torch.zeros(())
        for fisher, anchor in zip(self.fisher, self.anchor):
            for p, f, a in zip(model.parameters(), fisher, anchor):
                total = total + (f * (p - a).pow(2)).sum()
        return 0.5 * self.lam * total


def run_method(method: str, tasks, args, seed: int) -> np.ndarray:
    """Train on the tasks in order; ``acc[i, j]`` = test accuracy on task j after task i."""
    torch.manual_seed(seed)
    model = make_model(args.hidden)
    if method.startswith("OGD"):
        optimizer = OGD(model.parameters(), lr=args.lr, variant=method.split("-")[1])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    ewc = EWCPenalty(args.ewc_lambda) if method == "EWC" else None
    generator = torch.Generator().manual_seed(seed)
    acc = np.zeros((len(tasks), len(tasks)))
    for i, (x, y, _, _) in tqdm(enumerate(tasks), total=len(tasks), desc="tasks", file=sys.stderr):
        for _ in range(args.epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), args.batch_size):
                batch = order[start : start + args.batch_size]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                if ewc is not None and ewc.fisher:
                    loss = loss + ewc(model)
                loss.backward()
                optimizer.step()
        memory = torch.randperm(len(y), generator=generator)[: args.memory]
        if i < len(tasks) - 1:  # nothing to protect after the last task
            if isinstance(optimizer, OGD):
                optimizer.remember(model, x[memory], y[memory])
            if ewc is not None:
                ewc.consolidate(model, x[memory], y[memory])
        acc[i] = [accuracy(model, xt, yt) for _, _, xt, yt in tasks]
    return acc


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run for tests")
    parser.add_argument("--benchmarks", nargs="+", default=["permuted", "rotated"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per task")
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--memory", type=int, default=200, help="samples remembered per task")
    parser.add_argument("--ewc-lambda", type=float, default=10.0)
    parser.add_argument("--rotation-step", type=float, default=15.0, help="degrees per task")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (--quick: 0)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("out/ogd_continual_digits"))
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.quick:
        args.tasks = 3
        args.methods = [m for m in args.methods if m != "OGD-AVE"]  # keep the tests fast
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # tiny matrices: extra threads only add overhead
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for kind in args.benchmarks:
        results[kind] = {}
        for method in args.methods:
            start = time.perf_counter()
            runs = [
                run_method(
                    method, make_tasks(kind, args.tasks, seed, args.rotation_step), args, seed
                )
                for seed in args.seeds
            ]
            results[kind][method] = {
                "acc": np.mean(runs, axis=0).tolist(),
                "acc_std": np.std(runs, axis=0).tolist(),
                "final_per_seed": [run[-1].tolist() for run in runs],
                "seconds": time.perf_counter() - start,
            }
        print_table(kind, results[kind], args)
    save_figure(results, args)
    with open(args.out / "results.json", "w") as handle:
        json.dump(results, handle, indent=1)
    print(f"results written to {args.out / 'results.json'}")
    return results


def print_table(kind: str, results: dict, args) -> None:
    num_tasks = args.tasks
    print(
        f"\n{kind} digits: test accuracy (%) on each task after training on all {num_tasks} "
        f"(mean ± std over seeds {args.seeds})"
    )
    header = "| method | " + " | ".join(f"task {j + 1}" for j in range(num_tasks))
    print(header + " | average | task-1 drop | time (s) |")
    print("|---" * (num_tasks + 4) + "|")
    for method, res in results.items():
        acc, std = np.array(res["acc"]), np.array(res["acc_std"])
        cells = [f"{100 * a:.1f} ± {100 * s:.1f}" for a, s in zip(acc[-1], std[-1])]
        drop = 100 * (acc[0, 0] - acc[-1, 0])
        avg = 100 * acc[-1].mean()
        print(
            f"| {method} | " + " | ".join(cells) + f" | {avg:.1f} | {drop:.1f} | "
            f"{res['seconds']:.1f} |"
        )


def save_figure(results: dict, args) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.2), squeeze=False)
    for ax, (kind, per_method) in zip(axes[0], results.items()):
        for method, res in per_method.items():
            acc = 100 * np.array(res["acc"])
            ax.plot(range(1, len(acc) + 1), acc[:, 0], marker="o", label=method)
        ax.set_title(f"{kind} digits")
        ax.set_xlabel("tasks trained")
        ax.set_ylabel("task-1 test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    path = args.out / "task1_accuracy.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main()
