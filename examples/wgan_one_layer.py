"""Reproduce "SGD Learns One-Layer Networks in WGANs" (Lei, Lee, Dimakis, Daskalakis, ICML 2020).

Generator x = phi(A z), z ~ N(0, I_k); target x = phi(A* z). Quadratic discriminator
D_V(x) = x^T V x, objective

    f(A, V) = <Sigma_real - Sigma_fake(A), V> - ||V||_F^2 / 2,
    Sigma_real = (1/n) sum_i x_i x_i^T (fixed data set), Sigma_fake(A) = (1/m) sum_j phi(A z_j) phi(A z_j)^T,

with m fresh z per step. We train it with ``combgrad.optim.SGDA``: A is a descent group, V an ascent
group with step 1, so V's step lands exactly on the inner maximiser Sigma_real - Sigma_fake, as in
the paper's Algorithm 1 (there V is set first and A then moves; here both move simultaneously, so
A sees the discriminator of the previous batch). The recovery error is the paper's
||A A^T - A* A*^T||_F; we also print it relative to ||A* A*^T||_F.

Two checks, as in the paper's simulations:

* Fig. 2 setting: k = 1, d = 2, A* = [1, 1]^T, tanh (and leaky ReLU 0.2 in the full run),
  unconstrained A from several random starts: A converges to +-[1, 1].
* Fig. 1 setting: k = 2, d = 5, rows of A projected to the row norms of A* (the constraint set C of
  Algorithm 1); the error falls as the sample count n = m grows.

Run ``python examples/wgan_one_layer.py`` (full) or with ``--quick`` (a few seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from combgrad.optim import SGDA

Activation = Callable[[torch.Tensor], torch.Tensor]
ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "leaky_relu": lambda u: torch.nn.functional.leaky_relu(u, 0.2),
}


def recover(
    a_star: torch.Tensor,
    *,
    n: int,
    m: int,
    steps: int,
    lr: float,
    runs: int,
    activation: str = "tanh",
    project: bool = False,
    decay_steps: float = 200.0,
    seed: int = 0,
    record_every: int = 0,
) -> dict[str, torch.Tensor]:
    """Train `runs` independent generators at once (one batched parameter) with SGDA.

    Args:
        a_star: true generator matrix, shape (d, k).
        n: number of real samples (a fixed data set per run).
        m: fresh generator samples per step.
        steps: SGDA steps.
        lr: initial generator step size; step t uses lr / (1 + t / decay_steps).
        runs: number of independent random starts, trained in parallel.
        activation: "tanh" or "leaky_relu" (slope 0.2).
        project: project each row of A onto the sphere of radius ||a*_i|| (the set C of the
            paper's Algorithm 1) after every step.
        decay_steps: time scale of the 1/t step decay (inf for a constant step).
        seed: seed of the torch.Generator used for all sampling.
        record_every: if > 0, also return the iterates A every this many steps.

    Returns:
        dict with "error" (runs,) = ||A A^T - A* A*^T||_F, "relative_error" (runs,),
        "A" (runs, d, k) final iterates, "A0" (runs, d, k) starts and, if recorded,
        "trajectory" (records, runs, d, k).
    """
    if a_star.ndim != 2:
        raise ValueError(f"`a_star` must have shape (d, k), got {tuple(a_star.shape)}")
    if min(n, m, steps, runs) < 1:
        raise ValueError("`n`, `m`, `steps` and `runs` must be positive")
    if activation not in ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    phi = ACTIVATIONS[activation]
    dtype = a_star.dtype
    gen = torch.Generator().manual_seed(seed)
    d, k = a_star.shape
    # Each run gets its own real data set, so the spread over runs shows the sampling error.
    x_real = phi(torch.randn(runs, n, k, generator=gen, dtype=dtype) @ a_star.T)  # (runs, n, d)
    sigma_real = x_real.transpose(1, 2) @ x_real / n  # (runs, d, d)
    row_norms = torch.linalg.vector_norm(a_star, dim=1)  # (d,)

    def project_rows(a: torch.Tensor) -> None:
        a.mul_(row_norms[:, None] / torch.linalg.vector_norm(a, dim=2, keepdim=True))

    a0 = torch.randn(runs, d, k, generator=gen, dtype=dtype)
    if project:
        project_rows(a0)
    a = a0.clone().requires_grad_()
    v = torch.zeros(runs, d, d, dtype=dtype, requires_grad=True)
    opt = SGDA(
        [
            {"params": [a], "projection": project_rows if project else None},
            {"params": [v], "ascent": True, "lr": 1.0},  # exact inner maximisation
        ],
        lr=lr,
    )
    trajectory = [a0.clone()]
    for t in range(steps):
        opt.param_groups[0]["lr"] = lr / (1.0 + t / decay_steps)
        z = torch.randn(runs, m, k, generator=gen, dtype=dtype)
        x_fake = phi(z @ a.transpose(1, 2))  # (runs, m, d)
        sigma_fake = x_fake.transpose(1, 2) @ x_fake / m  # (runs, d, d)
        objective = ((sigma_real - sigma_fake) * v).sum() - 0.5 * v.square().sum()
        opt.zero_grad()
        objective.backward()
        opt.step()
        if record_every and (t + 1) % record_every == 0:
            trajectory.append(a.detach().clone())
    a_final = a.detach()
    z_star = a_star @ a_star.T
    error = torch.linalg.matrix_norm(a_final @ a_final.transpose(1, 2) - z_star)
    result = {
        "error": error,
        "relative_error": error / torch.linalg.matrix_norm(z_star),
        "A": a_final,
        "A0": a0,
    }
    if record_every:
        result["trajectory"] = torch.stack(trajectory)
    return result


def unit_row_matrix(d: int, k: int, seed: int) -> torch.Tensor:
    """A Gaussian (d, k) matrix with rows rescaled to unit norm (our choice of A*)."""
    a = torch.randn(d, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a / torch.linalg.vector_norm(a, dim=1, keepdim=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run for tests (seconds)")
    parser.add_argument("--out", type=Path, default=Path("out/wgan_one_layer"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # The tensors are small: one thread avoids oversubscription on shared machines.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()

    if args.quick:
        fig2_acts, fig2_runs, fig2_steps = ["tanh"], 5, 150
        dims, sample_sizes, fig1_runs, fig1_steps = [5], [200, 5000], 4, 150
    else:
        fig2_acts, fig2_runs, fig2_steps = ["tanh", "leaky_relu"], 8, 1000
        dims, sample_sizes, fig1_runs, fig1_steps = (
            [3, 5, 7],
            [200, 500, 1000, 2000, 5000, 10000],
            20,
            600,
        )

    # Fig. 2 setting: k = 1, d = 2, A* = [1, 1]^T, unconstrained, several random starts.
    a_star_2 = torch.ones(2, 1, dtype=torch.float64)
    fig2 = {}
    for act in tqdm(fig2_acts, desc="Fig. 2 activations", file=sys.stderr):
        res = recover(
            a_star_2,
            n=5000,
            m=5000,
            steps=fig2_steps,
            lr=0.5,
            runs=fig2_runs,
            activation=act,
            seed=args.seed,
            record_every=5,
        )
        fig2[act] = res
        print(
            f"[k=1, d=2, {act}] n=m=5000, {fig2_steps} steps, {fig2_runs} starts: "
            f"error ||AA^T - Z*||_F = {[round(e, 4) for e in res['error'].tolist()]}, "
            f"relative max {res['relative_error'].max():.4f}"
        )

    # Fig. 1 setting: k = 2, error against n = m for several d, projected rows.
    fig1: dict[int, list[tuple[int, float, float]]] = {}
    for d in tqdm(dims, desc="Fig. 1 dimensions", file=sys.stderr):
        a_star = unit_row_matrix(d, 2, seed=100 + d)
        rows = []
        for n in sample_sizes:
            res = recover(
                a_star,
                n=n,
                m=n,
                steps=fig1_steps,
                lr=0.5,
                runs=fig1_runs,
                project=True,
                seed=args.seed + n,
            )
            err = res["error"]
            rows.append((n, float(err.median()), float(err.mean())))
            print(
                f"[k=2, d={d}] n=m={n:>5}: median error {rows[-1][1]:.4f}, "
                f"mean {rows[-1][2]:.4f} over {fig1_runs} runs"
            )
        fig1[d] = rows

    summary = {
        "fig2_relative_error": {a: r["relative_error"].tolist() for a, r in fig2.items()},
        "fig2_final_A": {a: r["A"].squeeze(-1).tolist() for a, r in fig2.items()},
        "fig2_start_A": {a: r["A0"].squeeze(-1).tolist() for a, r in fig2.items()},
        "fig1": {str(d): rows for d, rows in fig1.items()},
        "seconds": time.perf_counter() - start,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(fig2, fig1, args.out)
    print(
        f"wrote {args.out / 'wgan_one_layer.png'} and {args.out / 'summary.json'} "
        f"({summary['seconds']:.1f} s)"
    )
    return summary


def _plot(fig2: dict, fig1: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fig2) + 1, figsize=(4.2 * (len(fig2) + 1), 3.8))
    for ax, (act, res) in zip(axes, fig2.items()):
        traj = res["trajectory"][..., 0]  # (records, runs, 2)
        for r in range(traj.shape[1]):
            ax.plot(traj[:, r, 0], traj[:, r, 1], lw=1)
            ax.plot(traj[0, r, 0], traj[0, r, 1], "o", ms=4, color="gray")
        ax.plot([1, -1], [1, -1], "r*", ms=12, label="$\\pm A^*$")
        ax.set(title=f"k=1, d=2, {act}: SGDA iterates", xlabel="$a_1$", ylabel="$a_2$")
        ax.set_aspect("equal")
        ax.legend(loc="lower right")
    ax = axes[-1]
    for d, rows in fig1.items():
        ns, med, _ = zip(*rows)
        ax.plot(ns, med, "o-", label=f"d={d}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="n = m",
        ylabel="median $\\|AA^T - Z^*\\|_F$",
        title="k=2, projected SGDA",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "wgan_one_layer.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
