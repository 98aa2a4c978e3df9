"""Gradient descent on J(w) = (w - 3)^2: by hand, in closed form, and with torch.optim.SGD.

The companion page is ``docs/tutorials/gradient_descent.md``. Run

    python examples/gradient_descent_tutorial.py [--out out/gradient_descent_tutorial]

to print the iterates for four step sizes and write two figures:

* ``gd_regimes.png``: the parabola on ``np.linspace(1, 5, 100)`` with the iterates of each regime;
* ``gd_error.png``: |w_t - 3| against t, on a log scale, with the closed form |1 - 2 alpha|^t.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

W_STAR = 3.0  # the minimiser of J
W_PLOT = np.linspace(1, 5, 100)  # where the tutorial draws the parabola
DEFAULT_ALPHAS = (0.1, 0.75, 1.0, 1.05)  # monotone, oscillating, cycling, diverging


def cost(w: float | np.ndarray) -> float | np.ndarray:
    """J(w) = (w - 3)^2."""
    return (w - W_STAR) ** 2


def gradient(w: float | np.ndarray) -> float | np.ndarray:
    """dJ/dw = 2 (w - 3)."""
    return 2.0 * (w - W_STAR)


def _check(w0: float, alpha: float, n_steps: int) -> None:
    if not math.isfinite(w0):
        raise ValueError(f"`w0` must be a finite number, got {w0}")
    if not math.isfinite(alpha):
        raise ValueError(f"`alpha` must be a finite number, got {alpha}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"`n_steps` must be a non-negative integer, got {n_steps!r}")


def gradient_descent(w0: float, alpha: float, n_steps: int) -> np.ndarray:
    """Run w <- w - alpha * dJ/dw for `n_steps` steps.

    Args:
        w0: starting point.
        alpha: learning rate (step size).
        n_steps: number of updates.

    Returns:
        The iterates w_0, ..., w_{n_steps}, shape (n_steps + 1,).
    """
    _check(w0, alpha, n_steps)
    iterates = [float(w0)]
    w = float(w0)
    for _ in range(n_steps):
        w = w - alpha * gradient(w)
        iterates.append(w)
    return np.array(iterates)


def closed_form(w0: float, alpha: float, t: int | np.ndarray) -> float | np.ndarray:
    """w_t = 3 + (1 - 2 alpha)^t (w0 - 3): each step multiplies the error by (1 - 2 alpha)."""
    return W_STAR + (1.0 - 2.0 * alpha) ** np.asarray(t, dtype=float) * (w0 - W_STAR)


def regime(alpha: float) -> str:
    """Name the behaviour of gradient descent on J for step size `alpha`."""
    if alpha <= 0:
        return "no progress" if alpha == 0 else "moves uphill (diverges)"
    if alpha < 0.5:
        return "monotone convergence"
    if alpha == 0.5:
        return "exact in one step"
    if alpha < 1:
        return "oscillating convergence"
    if alpha == 1:
        return "cycles between w0 and 6 - w0"
    return "diverges"


def torch_gradient_descent(w0: float, alpha: float, n_steps: int) -> np.ndarray:
    """The same iteration with autograd and ``torch.optim.SGD`` (float64).

    Args:
        w0: starting point.
        alpha: learning rate.
        n_steps: number of SGD steps.

    Returns:
        The iterates w_0, ..., w_{n_steps}, shape (n_steps + 1,).
    """
    import torch

    _check(w0, alpha, n_steps)
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=alpha)
    iterates = [w.item()]
    for _ in range(n_steps):
        optimizer.zero_grad()
        loss = (w - W_STAR) ** 2  # J(w), built from tensor operations
        loss.backward()  # autograd fills w.grad with dJ/dw = 2 (w - 3)
        optimizer.step()  # w <- w - lr * w.grad
        iterates.append(w.item())
    return np.array(iterates)


def plot(w0: float, alphas: tuple[float, ...], n_steps: int, out: Path) -> list[Path]:
    """Write the two tutorial figures to `out`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.2 * len(alphas), 3.0), sharey=False)
    for ax, alpha in zip(np.atleast_1d(axes), alphas):
        w = gradient_descent(w0, alpha, n_steps)
        lo, hi = min(W_PLOT[0], w.min()), max(W_PLOT[-1], w.max())
        if lo < W_PLOT[0] or hi > W_PLOT[-1]:  # iterates leave the plotted range: widen, faintly
            wide = np.linspace(lo, hi, 200)
            ax.plot(wide, cost(wide), color="0.8", lw=1)
        ax.plot(W_PLOT, cost(W_PLOT), color="k", lw=1.5, label="$J(w)=(w-3)^2$")
        ax.plot(w, cost(w), "o-", color="tab:red", ms=3, lw=0.8, label="iterates")
        ax.plot(w[0], cost(w[0]), "s", color="tab:blue", ms=5, label="$w_0$")
        ax.set(title=f"$\\alpha={alpha}$: {regime(alpha)}", xlabel="$w$")
        ax.title.set_fontsize(9)
    np.atleast_1d(axes)[0].set_ylabel("$J(w)$")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    regimes_png = out / "gd_regimes.png"
    fig.savefig(regimes_png, dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    t = np.arange(n_steps + 1)
    for alpha in (*alphas, 0.5):
        err = np.abs(gradient_descent(w0, alpha, n_steps) - W_STAR)
        if alpha == 0.5:  # exact after one step: nothing to draw on a log scale after t = 0
            continue
        ax.semilogy(t, err, "o", ms=3, label=f"$\\alpha={alpha}$")
        ax.semilogy(t, np.abs(closed_form(w0, alpha, t) - W_STAR), "-", lw=0.8, color="0.5")
    ax.set(
        xlabel="step $t$",
        ylabel="$|w_t - 3|$",
        title="dots: iterates, lines: $|1-2\\alpha|^t|w_0-3|$",
    )
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    error_png = out / "gd_error.png"
    fig.savefig(error_png, dpi=80)
    plt.close(fig)
    return [regimes_png, error_png]


def main(argv: list[str] | None = None) -> dict[float, np.ndarray]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--w0", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--alphas", type=float, nargs="+", default=list(DEFAULT_ALPHAS))
    parser.add_argument("--out", type=Path, default=Path("out/gradient_descent_tutorial"))
    parser.add_argument(
        "--quick", action="store_true", help="accepted for uniformity; already fast"
    )
    args = parser.parse_args(argv)

    results = {}
    for alpha in args.alphas:
        w = gradient_descent(args.w0, alpha, args.steps)
        w_torch = torch_gradient_descent(args.w0, alpha, args.steps)
        results[alpha] = w
        print(f"alpha={alpha:<5} ({regime(alpha)}): w = {np.array2string(w, precision=3)}")
        print(f"{'':13}torch.optim.SGD agrees to {np.max(np.abs(w - w_torch)):.1e}")
    paths = plot(args.w0, tuple(args.alphas), args.steps, args.out)
    print("wrote " + " and ".join(str(p) for p in paths))
    return results


if __name__ == "__main__":
    main()
