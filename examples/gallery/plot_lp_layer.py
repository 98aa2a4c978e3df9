"""An LP layer inside a network: predict the value of a resource-allocation LP from features.

A factory makes `n` products from `m` resources: product `j` uses `A[i, j]` units of resource
`i`, at most `b[i]` units of each resource are available, and the profit per unit of each
product depends on the day's market features `f`. The best production plan earns
`-z(c) = -min { c @ x : A x <= b, 0 <= x <= 1 }` with costs `c = -profit(f)`.

The network maps `f` to predicted profits; `combgrad.nn.LPValue` (an `nn.Module` with the LP's
constraints as buffers) turns them into the optimal value, and the model is trained on observed
optimal earnings only. The gradient of the layer is `dz/dc = x*`, the optimal plan.

Run: `python examples/gallery/plot_lp_layer.py` (full, about a minute) or with `--quick`
(a few seconds; its numbers are for smoke testing only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

from combgrad.nn import LPValue

FIGURE = Path(__file__).resolve().parents[2] / "docs" / "img" / "gallery" / "lp_layer.png"


class ProfitToEarnings(torch.nn.Module):
    """features (B, d) -> predicted profits (B, n) -> optimal earnings (B,) through the LP."""

    def __init__(self, d: int, A: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        n = A.shape[1]
        self.profit = torch.nn.Sequential(
            torch.nn.Linear(d, 32), torch.nn.Tanh(), torch.nn.Linear(32, n)
        )
        self.lp = LPValue(A_ub=A, b_ub=b, bounds=(0.0, 1.0))  # min c @ x, A x <= b, 0 <= x <= 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return -self.lp(-self.profit(features))  # earnings = -min(-profit @ x)


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--epochs", type=int, default=None, help="default 40 (quick: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"figure path (default {FIGURE})")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 40)
    torch.manual_seed(args.seed)
    torch.set_default_dtype(torch.float64)

    d, n, m = 5, 8, 3
    n_train, n_test = (64, 32) if args.quick else (256, 128)
    A = torch.rand(m, n) + 0.1
    b = A.sum(1) / 3  # about a third of the products fit
    W = torch.randn(d, n)
    truth = LPValue(A_ub=A, b_ub=b, bounds=(0.0, 1.0))

    def sample(k: int):
        f = torch.randn(k, d)
        profit = f @ W + 0.1 * torch.randn(k, n)  # the unknown market -> profit map
        with torch.no_grad():
            return f, -truth(-profit)  # only the optimal earnings are observed

    (f_tr, y_tr), (f_te, y_te) = sample(n_train), sample(n_test)
    model = ProfitToEarnings(d, A, b)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history: dict[str, list[float]] = {"test_mse": []}
    for _ in tqdm(range(epochs), desc="epochs", file=sys.stderr):
        for batch in torch.randperm(n_train).split(32):
            loss = torch.nn.functional.mse_loss(model(f_tr[batch]), y_tr[batch])
            opt.zero_grad()
            loss.backward()  # through the LP: d earnings / d profit = the optimal plan x*
            opt.step()
        with torch.no_grad():
            history["test_mse"].append(torch.nn.functional.mse_loss(model(f_te), y_te).item())

    baseline = ((y_te - y_tr.mean()) ** 2).mean().item()
    if args.quick:
        print("quick mode: these numbers are for smoke testing only")
    print(
        f"test MSE of the optimal earnings: {history['test_mse'][-1]:.4f} "
        f"(predicting the mean: {baseline:.4f})"
    )

    out = args.out or (None if args.quick else FIGURE)
    if out is not None:
        with torch.no_grad():
            pred = model(f_te)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
        ax1.semilogy(range(1, epochs + 1), history["test_mse"], marker=".", label="LP layer")
        ax1.axhline(baseline, color="gray", ls=":", label="predict the mean")
        ax1.set(xlabel="epoch", ylabel="test MSE of optimal earnings")
        ax1.grid(alpha=0.3)
        ax1.legend()
        ax2.scatter(y_te, pred, s=10)
        lo, hi = float(y_te.min()), float(y_te.max())
        ax2.plot([lo, hi], [lo, hi], color="gray", ls=":")
        ax2.set(xlabel="true optimal earnings", ylabel="predicted")
        fig.suptitle(f"LPValue inside a network ({n} products, {m} resources, seed {args.seed})")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(f"figure written to {out}")
    return history


if __name__ == "__main__":
    main()
