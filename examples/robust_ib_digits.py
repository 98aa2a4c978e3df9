"""Robust information bottleneck on scikit-learn digits: the accuracy / robustness trade-off.

Trains a stochastic encoder p(t|x) = N(mu(x), sigma^2 I) with a linear decoder under
:class:`combgrad.losses.robust_ib.RobustIBLoss` for several Fisher weights ``alpha``
(``alpha = 0`` is the plain variational information bottleneck) and reports, on a held-out
split and averaged over seeds:

* clean accuracy of the mean prediction decoder(mu(x));
* input sensitivity: mean Frobenius norm of the encoder Jacobian ||d mu / d x||_F;
* accuracy under FGSM perturbations x + eps * sign(grad_x CE), clipped to the pixel range.

Usage::

    python examples/robust_ib_digits.py            # full run (table in docs/analysis/robust_ib.md)
    python examples/robust_ib_digits.py --quick    # seconds; used by the tests
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
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

from combgrad.losses.robust_ib import RobustIBLoss, fisher_information_penalty


def load_data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0  # pixels in [0, 1]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    dtype = torch.get_default_dtype()  # the dtype nn.Linear creates its weights in
    return (
        torch.from_numpy(x_tr).to(dtype),
        torch.from_numpy(y_tr),
        torch.from_numpy(x_te).to(dtype),
        torch.from_numpy(y_te),
    )


def make_models(dim_t: int, hidden: int) -> tuple[nn.Module, nn.Module]:
    encoder = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, dim_t))
    decoder = nn.Linear(dim_t, 10)
    return encoder, decoder


def train(
    alpha: float, seed: int, data: tuple, args: argparse.Namespace
) -> tuple[nn.Module, nn.Module]:
    x_tr, y_tr, _, _ = data
    torch.manual_seed(seed)
    encoder, decoder = make_models(args.dim_t, args.hidden)
    criterion = RobustIBLoss(sigma=args.sigma, beta=args.beta, alpha=alpha, fisher="auto")
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=args.lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(args.epochs):
        order = torch.randperm(x_tr.shape[0], generator=generator)
        for start in range(0, x_tr.shape[0], args.batch_size):
            batch = order[start : start + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(encoder, decoder, x_tr[batch], y_tr[batch], generator=generator)
            loss.backward()
            optimizer.step()
    return encoder, decoder


def fgsm_accuracy(
    encoder: nn.Module, decoder: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float
) -> float:
    """Accuracy of decoder(mu(x)) on x + eps * sign(grad_x CE), clipped to [0, 1]."""
    x_adv = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(decoder(encoder(x_adv)), y)
    (grad_x,) = torch.autograd.grad(loss, x_adv)
    x_adv = (x + eps * grad_x.sign()).clamp(0.0, 1.0)
    with torch.no_grad():
        return (decoder(encoder(x_adv)).argmax(1) == y).float().mean().item()


def evaluate(encoder: nn.Module, decoder: nn.Module, data: tuple, eps_list: list[float]) -> dict:
    _, _, x_te, y_te = data
    with torch.no_grad():
        clean = (decoder(encoder(x_te)).argmax(1) == y_te).float().mean().item()
    # ||J_mu||_F^2 per sample, exactly (sigma = 1 so the penalty is the plain Jacobian norm).
    jac_sq = fisher_information_penalty(
        encoder, x_te, 1.0, method="exact", create_graph=False, reduction="none"
    )
    return {
        "clean": clean,
        "sensitivity": jac_sq.sqrt().mean().item(),
        "fgsm": {str(eps): fgsm_accuracy(encoder, decoder, x_te, y_te, eps) for eps in eps_list},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    parser.add_argument("--out", type=Path, default=Path("out/robust_ib_digits"))
    parser.add_argument("--alphas", type=float, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--beta", type=float, default=1e-3)
    parser.add_argument("--dim-t", dest="dim_t", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if args.alphas is None:
        args.alphas = [0.0, 0.03] if args.quick else [0.0, 0.003, 0.01, 0.03, 0.1, 0.3]
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    if args.epochs is None:
        args.epochs = 6 if args.quick else 60
    if args.quick:
        args.batch_size, args.dim_t, args.hidden, args.lr = 64, 8, 64, 5e-3
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small problems: one thread is fastest and reproducible
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict:
    results: dict[str, list[dict]] = {str(a): [] for a in args.alphas}
    start = time.perf_counter()
    for seed in tqdm(range(args.seeds), desc="seeds", file=sys.stderr):
        data = load_data(seed)
        for alpha in args.alphas:
            encoder, decoder = train(alpha, seed, data, args)
            results[str(alpha)].append(evaluate(encoder, decoder, data, args.eps))
    elapsed = time.perf_counter() - start

    summary = []
    for alpha in args.alphas:
        runs = results[str(alpha)]
        row = {
            "alpha": alpha,
            "clean": float(np.mean([r["clean"] for r in runs])),
            "sensitivity": float(np.mean([r["sensitivity"] for r in runs])),
        }
        for eps in args.eps:
            row[f"fgsm_{eps}"] = float(np.mean([r["fgsm"][str(eps)] for r in runs]))
        row["per_seed"] = runs  # clean, sensitivity and fgsm of each seed
        summary.append(row)

    header = "| alpha | clean acc | sensitivity E‖J_mu‖_F | " + " | ".join(
        f"FGSM acc, eps={eps}" for eps in args.eps
    )
    print(header + " |")
    print("|" + "---|" * (3 + len(args.eps)))
    for row in summary:
        cells = [f"{row['alpha']:g}", f"{row['clean']:.3f}", f"{row['sensitivity']:.2f}"]
        cells += [f"{row[f'fgsm_{eps}']:.3f}" for eps in args.eps]
        print("| " + " | ".join(cells) + " |")
    print(f"({args.seeds} seed(s), {args.epochs} epochs, {elapsed:.0f} s)")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {"config": {k: str(v) for k, v in vars(args).items()}, "summary": summary}, indent=2
        )
    )
    fig, ax = plt.subplots(1, 2, figsize=(8.5, 3.2))
    alphas = [max(row["alpha"], 1e-4) for row in summary]
    ax[0].plot(alphas, [r["clean"] for r in summary], "o-", label="clean")
    for eps in args.eps:
        ax[0].plot(alphas, [r[f"fgsm_{eps}"] for r in summary], "s--", label=f"FGSM eps={eps}")
    ax[0].set_xscale("log")
    ax[0].set_xlabel("alpha (alpha = 0 drawn at 1e-4)")
    ax[0].set_ylabel("test accuracy")
    ax[0].legend(fontsize=7)
    ax[1].plot(
        [r["sensitivity"] for r in summary], [r["clean"] for r in summary], "o-", label="clean"
    )
    for eps in args.eps:
        ax[1].plot(
            [r["sensitivity"] for r in summary],
            [r[f"fgsm_{eps}"] for r in summary],
            "s--",
            label=f"FGSM eps={eps}",
        )
    ax[1].set_xlabel("input sensitivity E‖J_mu‖_F")
    ax[1].set_ylabel("test accuracy")
    fig.suptitle("Robust IB on digits: trade-off as alpha grows", fontsize=9)
    fig.tight_layout()
    figure = args.out / "robust_ib_tradeoff.png"
    fig.savefig(figure, dpi=90)
    plt.close(fig)
    print(f"wrote {figure} and {args.out / 'results.json'}")
    return {"summary": summary, "figure": str(figure)}


if __name__ == "__main__":
    main()
