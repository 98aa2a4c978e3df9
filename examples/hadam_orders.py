"""HAdam moment orders on two convex problems: even orders converge, signed odd orders diverge.

1. Noisy quadratic: f(theta) = 0.5 sum_i h_i theta_i^2 in 20 dimensions, curvatures h from 0.1 to
   10, gradient noise N(0, 0.5^2), half the coordinates starting at +2 and half at -2,
   lr 0.05 / (1 + t/100), 1500 steps.
2. Multinomial logistic regression on scikit-learn's digits (1797 x 64, standardised), minibatch
   64, lr 1e-2, 20 epochs; we report the full training loss.

Orders: 2 (= Adam), 4, 6, 3 with |g|^3 ("absolute", not from the paper) and 3 with the paper's
signed g^3 ("signed"). Several seeds each.

    python examples/hadam_orders.py [--quick] [--out out/hadam_orders]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from combgrad.optim import HAdam

VARIANTS = [(2, None), (4, None), (6, None), (3, "absolute"), (3, "signed")]


def label(order: int, moment: str | None) -> str:
    return f"k={order}" + ("" if moment is None else f" {moment}")


def noisy_quadratic(order: int, moment: str | None, *, steps: int, seed: int) -> np.ndarray:
    """Loss ratio f(theta_t) / f(theta_0) for t = 0..steps."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.logspace(-1, 1, 20, dtype=torch.float64)
    theta = torch.full((20,), 2.0, dtype=torch.float64)
    theta[::2] *= -1
    theta.requires_grad_()
    f0 = 0.5 * (h * theta.detach() ** 2).sum().item()
    opt = HAdam([theta], lr=0.05, order=order, moment=moment)
    curve = [1.0]
    for t in range(steps):
        opt.param_groups[0]["lr"] = 0.05 / (1 + t / 100)
        with torch.no_grad():
            theta.grad = h * theta + 0.5 * torch.randn(20, generator=gen, dtype=torch.float64)
        opt.step()
        curve.append(0.5 * (h * theta.detach() ** 2).sum().item() / f0)
    return np.array(curve)


def digits_logistic(order: int, moment: str | None, *, epochs: int, seed: int) -> np.ndarray:
    """Full training cross-entropy after each epoch of minibatch HAdam on sklearn digits."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    y = torch.tensor(data.target)
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(64, 10, dtype=torch.float64)
    with torch.no_grad():
        model.weight.normal_(0, 0.01, generator=gen)
        model.bias.zero_()
    opt = HAdam(model.parameters(), lr=1e-2, order=order, moment=moment)
    loss_fn = torch.nn.functional.cross_entropy
    with torch.no_grad():
        curve = [loss_fn(model(x), y).item()]
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            curve.append(loss_fn(model(x), y).item())
    return np.array(curve)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run for tests (seconds)")
    parser.add_argument("--out", type=Path, default=Path("out/hadam_orders"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    seeds = [0] if args.quick else [0, 1, 2, 3, 4]
    steps, epochs = (300, 2) if args.quick else (1500, 20)
    quad, digits = {}, {}
    for order, moment in tqdm(VARIANTS, desc="variants", file=sys.stderr):
        name = label(order, moment)
        quad[name] = np.stack([noisy_quadratic(order, moment, steps=steps, seed=s) for s in seeds])
        digits[name] = np.stack(
            [digits_logistic(order, moment, epochs=epochs, seed=s) for s in seeds]
        )
        q_final, d_final = quad[name][:, -1], digits[name][:, -1]
        print(
            f"{name:<12} quadratic f_T/f_0 = {np.median(q_final):.2e} "
            f"[{q_final.min():.2e}, {q_final.max():.2e}]   digits loss = {d_final.mean():.4f} "
            f"+- {d_final.std():.4f}"
        )
    summary = {
        "seeds": seeds,
        "quadratic_final_ratio": {k: v[:, -1].tolist() for k, v in quad.items()},
        "digits_final_loss": {k: v[:, -1].tolist() for k, v in digits.items()},
        "seconds": time.perf_counter() - start,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(quad, digits, args.out)
    print(f"wrote {args.out / 'hadam_orders.png'} ({summary['seconds']:.1f} s)")
    return summary


def _plot(quad: dict, digits: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, curves in quad.items():
        ax0.semilogy(np.median(curves, axis=0), label=name, lw=1)
    ax0.set(xlabel="step", ylabel="$f(\\theta_t)/f(\\theta_0)$", title="noisy quadratic (median)")
    ax0.legend(fontsize=7)
    for name, curves in digits.items():
        ax1.semilogy(curves.mean(axis=0), label=name, lw=1)
    ax1.set(xlabel="epoch", ylabel="training cross-entropy", title="logistic regression, digits")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "hadam_orders.png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
