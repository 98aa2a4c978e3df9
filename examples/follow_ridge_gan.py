"""A small GAN on a 1-D mixture of Gaussians: Follow-the-Ridge vs gradient descent-ascent.

The data are three Gaussian modes at -4, 0 and 4 with standard deviation 0.1 (the paper's
MOG-1D). Generator and discriminator are tanh MLPs; the objective is the standard (saddle)
GAN value

    f(G, D) = E_data[log D(x)] + E_z[log(1 - D(G(z)))] - (wd / 2) * ||D's weights||^2,

minimised over the generator parameters x and maximised over the discriminator's y. To make
"convergence" well defined the expectations are sample means over a fixed batch of data and
latent codes (``--resample`` draws fresh ones every iteration instead). Both methods use
:class:`combgrad.optim.FollowTheRidge` with the same plain gradient steps (no preconditioning by
default; ``--preconditioner rmsprop`` for the paper's choice); GDA is the same optimizer with
``correction=False``. The script plots the norm of the full
gradient (sqrt(|grad_x f|^2 + |grad_y f|^2)) against the iteration for both, and a histogram of
generated samples.

Usage::

    python examples/follow_ridge_gan.py            # full run: 1000 iterations, 3 seeds
    python examples/follow_ridge_gan.py --quick    # 200 iterations, seed 0 (used by the tests)
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
from torch import nn
from tqdm import tqdm

from combgrad.optim import FollowTheRidge

MODES = (-4.0, 0.0, 4.0)


def mlp(inputs: int, hidden: int, outputs: int) -> nn.Module:
    net = nn.Sequential(
        nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
        nn.Linear(hidden, outputs),
    )  # fmt: skip
    for module in net:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return net


def sample_data(n: int, generator: torch.Generator) -> torch.Tensor:
    modes = torch.tensor(MODES)[torch.randint(len(MODES), (n,), generator=generator)]
    return (modes + 0.1 * torch.randn(n, generator=generator)).unsqueeze(1)


def run(method: str, seed: int, args: argparse.Namespace) -> dict:
    """Train one GAN; return the gradient norms per iteration and final generated samples."""
    torch.manual_seed(seed)
    generator_net = mlp(args.z_dim, args.hidden, 1)
    discriminator = mlp(1, args.hidden, 1)
    rng = torch.Generator().manual_seed(seed + 1000)
    real = sample_data(args.batch_size, rng)
    latent = torch.randn(args.batch_size, args.z_dim, generator=rng)

    def value() -> torch.Tensor:
        d_real = discriminator(real)
        d_fake = discriminator(generator_net(latent))
        # log D(x) = -softplus(-logit); log(1 - D(G(z))) = -softplus(logit)
        f = -nn.functional.softplus(-d_real).mean() - nn.functional.softplus(d_fake).mean()
        penalty = sum(p.pow(2).sum() for p in discriminator.parameters())
        return f - 0.5 * args.weight_decay * penalty

    optimizer = FollowTheRidge(
        generator_net.parameters(),
        discriminator.parameters(),
        lr_x=args.lr,
        lr_y=args.lr,
        preconditioner=None if args.preconditioner == "none" else args.preconditioner,
        damping=args.damping,
        cg_iters=args.cg_iters,
        correction=(method == "FR"),
    )
    params = list(generator_net.parameters()) + list(discriminator.parameters())
    grad_norms = []
    for _ in tqdm(range(args.iterations), desc=f"{method} seed {seed}", file=sys.stderr):
        if args.resample:
            real = sample_data(args.batch_size, rng)
            latent = torch.randn(args.batch_size, args.z_dim, generator=rng)
        optimizer.step(value)
        grad_norms.append(torch.sqrt(sum(p.grad.pow(2).sum() for p in params)).item())
    with torch.no_grad():
        samples = generator_net(torch.randn(2000, args.z_dim, generator=rng)).squeeze(1)
    return {"grad_norm": grad_norms, "samples": samples.tolist()}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run for tests")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--z-dim", type=int, default=4)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--preconditioner", choices=["rmsprop", "none"], default="none")
    parser.add_argument("--damping", type=float, default=1e-3)
    parser.add_argument("--cg-iters", type=int, default=5)
    parser.add_argument("--resample", action="store_true", help="fresh batches every step")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("out/follow_ridge_gan"))
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.seeds = 200, args.seeds[:1]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # tiny networks: extra threads only add overhead
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for method in ("GDA", "FR"):
        start = time.perf_counter()
        results[method] = [run(method, seed, args) for seed in args.seeds]
        seconds = time.perf_counter() - start
        finals = [r["grad_norm"][-1] for r in results[method]]
        print(
            f"{method}: final gradient norm per seed {[f'{v:.2e}' for v in finals]} "
            f"({seconds:.1f} s)"
        )
    summary = {
        method: {
            "final_grad_norm": [r["grad_norm"][-1] for r in runs],
            "median_last_10pct": [
                float(np.median(r["grad_norm"][-max(1, args.iterations // 10) :])) for r in runs
            ],
        }
        for method, runs in results.items()
    }
    save_figure(results, args)
    with open(args.out / "results.json", "w") as handle:
        curves = {method: [r["grad_norm"] for r in runs] for method, runs in results.items()}
        record = {"args": {k: str(v) for k, v in vars(args).items()}, **summary}
        json.dump({**record, "grad_norm_curves": curves}, handle)
    print(f"results written to {args.out / 'results.json'}")
    return summary


def save_figure(results: dict, args: argparse.Namespace) -> None:
    fig, (ax_norm, ax_hist) = plt.subplots(1, 2, figsize=(9, 3.2))
    colors = {"GDA": "tab:red", "FR": "tab:blue"}
    for method, runs in results.items():
        for i, r in enumerate(runs):
            ax_norm.semilogy(
                r["grad_norm"], color=colors[method], alpha=0.8, lw=0.8,
                label=method if i == 0 else None,
            )  # fmt: skip
        ax_hist.hist(
            runs[0]["samples"], bins=80, range=(-6, 6), histtype="step", density=True,
            color=colors[method], label=f"{method} (seed {args.seeds[0]})",
        )  # fmt: skip
    ax_norm.set_xlabel("iteration")
    ax_norm.set_ylabel("gradient norm")
    ax_norm.set_title("norm of (grad_x f, grad_y f)")
    ax_norm.legend()
    for mode in MODES:
        ax_hist.axvline(mode, color="gray", lw=0.5, ls="--")
    ax_hist.set_title("generated samples")
    ax_hist.legend(fontsize=8)
    fig.tight_layout()
    path = args.out / "grad_norm.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main()
