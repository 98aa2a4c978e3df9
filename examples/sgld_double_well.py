"""SGLD on a double-well potential: the chains' law against the exact Gibbs density.

Potential u(x) = x^4/4 - x^2/2 (minima at +-1, barrier 1/4), stochastic gradient
H(x, X) = x^3 - x + X with X ~ N(0, 0.5^2). Many chains run in parallel as one tensor parameter of
``combgrad.optim.SGLD``. The target pi_beta ~ exp(-beta u) is computed by quadrature on a fine
grid, and W1 is ``scipy.stats.wasserstein_distance`` between the (symmetrised) chains and that
grid law. The potential is symmetric, so we compare the law of {x_i} U {-x_i}: this removes the
binomial noise in the two wells' populations, which otherwise hides the small-step bias.

    python examples/sgld_double_well.py [--quick] [--out out/sgld_double_well]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from tqdm import tqdm

from combgrad.optim import SGLD

GRAD_NOISE_STD = 0.5
GRID = np.linspace(-3.5, 3.5, 20001)


def potential(x):
    """u(x) = x^4/4 - x^2/2."""
    return x**4 / 4 - x**2 / 2


def gibbs_weights(beta: float) -> np.ndarray:
    """Quadrature weights of exp(-beta u)/Z on GRID (they sum to one)."""
    w = np.exp(-beta * (potential(GRID) - potential(GRID).min()))
    return w / w.sum()


def run_chains(lr: float, beta: float, n_chains: int, time_horizon: float, seed: int) -> np.ndarray:
    """Run `n_chains` SGLD chains from 0 for `time_horizon / lr` steps; return the final states."""
    gen = torch.Generator().manual_seed(seed)
    chains = torch.zeros(n_chains, dtype=torch.float64, requires_grad=True)
    opt = SGLD([chains], lr=lr, inverse_temperature=beta, generator=gen)
    for _ in range(round(time_horizon / lr)):
        with torch.no_grad():
            noise = torch.randn(n_chains, generator=gen, dtype=torch.float64)
            chains.grad = chains**3 - chains + GRAD_NOISE_STD * noise
        opt.step()
    return chains.detach().numpy()


def w1_to_gibbs(samples: np.ndarray, beta: float, *, symmetrise: bool = True) -> float:
    """1-Wasserstein distance between the samples' law and pi_beta (quadrature on GRID)."""
    if symmetrise:
        samples = np.concatenate([samples, -samples])
    return float(wasserstein_distance(samples, GRID, v_weights=gibbs_weights(beta)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run for tests (seconds)")
    parser.add_argument("--out", type=Path, default=Path("out/sgld_double_well"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # element-wise work on one tensor: threads barely help
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    beta = 3.0
    if args.quick:
        n_chains, horizon, lrs, betas = 5000, 10.0, [0.1, 0.025], [1.0, 100.0]
    else:
        n_chains, horizon, lrs = 100_000, 20.0, [0.1, 0.05, 0.025, 0.0125, 0.00625]
        betas = [1.0, 10.0, 100.0]

    rows, samples_by_lr = [], {}
    for lr in tqdm(lrs, desc="step sizes", file=sys.stderr):
        samples = run_chains(lr, beta, n_chains, horizon, args.seed)
        samples_by_lr[lr] = samples
        rows.append(
            {
                "lr": lr,
                "w1_symmetrised": w1_to_gibbs(samples, beta),
                "w1_raw": w1_to_gibbs(samples, beta, symmetrise=False),
            }
        )
        print(
            f"beta={beta} lr={lr:<8} W1 (symmetrised) = {rows[-1]['w1_symmetrised']:.4f}   "
            f"W1 (raw) = {rows[-1]['w1_raw']:.4f}"
        )
    lr_arr = np.array([r["lr"] for r in rows])
    w1_arr = np.array([r["w1_symmetrised"] for r in rows])
    slope = float(np.polyfit(np.log(lr_arr), np.log(w1_arr), 1)[0])
    print(f"fitted log-log slope of W1 against lr: {slope:.2f} (the theorem bounds it by lr^0.5)")

    dist = np.minimum(np.abs(GRID - 1), np.abs(GRID + 1))
    concentration = []
    for b in betas:
        samples = run_chains(0.01, b, n_chains // 5, 10.0, args.seed + 1)
        d_chains = float(np.mean(np.minimum(np.abs(samples - 1), np.abs(samples + 1))))
        d_exact = float(dist @ gibbs_weights(b))
        concentration.append({"beta": b, "chains": d_chains, "exact": d_exact})
        print(f"beta={b:<6} E dist(x, {{-1, 1}}): chains {d_chains:.4f}, exact {d_exact:.4f}")

    summary = {
        "beta": beta,
        "n_chains": n_chains,
        "time_horizon": horizon,
        "w1": rows,
        "slope": slope,
        "concentration": concentration,
        "seconds": time.perf_counter() - start,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(samples_by_lr, rows, beta, args.out)
    print(f"wrote {args.out / 'sgld_double_well.png'} ({summary['seconds']:.1f} s)")
    return summary


def _plot(samples_by_lr: dict, rows: list, beta: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
    density = gibbs_weights(beta) / (GRID[1] - GRID[0])
    ax0.plot(GRID, density, "k", lw=1.5, label=r"$e^{-\beta u}/Z$ (quadrature)")
    for lr in (min(samples_by_lr), max(samples_by_lr)):
        ax0.hist(
            samples_by_lr[lr],
            bins=120,
            range=(-2.5, 2.5),
            density=True,
            histtype="step",
            label=f"SGLD chains, lr={lr}",
        )
    ax0.set(xlabel="x", ylabel="density", title=f"double well, beta={beta}")
    ax0.legend(fontsize=7)
    lr = np.array([r["lr"] for r in rows])
    w1 = np.array([r["w1_symmetrised"] for r in rows])
    ax1.loglog(lr, w1, "o-", label="W1 (symmetrised chains)")
    ax1.loglog(lr, w1[0] * (lr / lr[0]) ** 0.5, "--", color="0.5", label=r"$\propto \lambda^{1/2}$")
    ax1.loglog(lr, w1[0] * (lr / lr[0]), ":", color="0.5", label=r"$\propto \lambda$")
    ax1.set(xlabel=r"step $\lambda$", ylabel="$W_1$", title="bias against step size")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sgld_double_well.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
