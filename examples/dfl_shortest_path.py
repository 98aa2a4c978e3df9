"""Decision-focused learning on PyEPO-style shortest-path data, with every combgrad method.

The task of PyEPO's shortest-path benchmark (Tang and Khalil, *PyEPO*): on a 5 x 5 grid of
nodes, find the cheapest top-left to bottom-right path along the 40 edges (right and down),
but the edge costs are unknown and must be predicted from 5 features. The data follow
``pyepo.data.shortestpath.genData`` (re-implemented here with numpy, same random draws in
the same order, so the same seed gives the same data; PyEPO is not needed):

    B ~ Bernoulli(0.5)^(40 x 5),  x ~ N(0, I_5),
    c = ((x B^T / sqrt(5) + 3)^deg + 1) / 3.5^deg * eps,  eps ~ U[1 - noise, 1 + noise]

Each model (a linear map and a small MLP) is trained with the same data, optimizer (Adam),
batches and epochs through each method:

- ``2s-mse``: two-stage baseline, mean squared error on the costs;
- ``spo+``: [SPOPlusLoss] (Elmachtoub and Grigas), with the true solutions cached;
- ``pfyl``: [FenchelYoungLoss] (perturbed Fenchel-Young, Berthet et al.), sigma 1, 1 sample;
- ``dbb``: [blackbox] (Vlastelica et al., lambda 10), Hamming loss to the true path;
- ``nid``: [nid] (negative identity, Sahoo et al.), Hamming loss to the true path;
- ``imle``: [imle] (Niepert et al., lambda 10, Gumbel noise, sigma 1), Hamming loss;
- ``dpo``: [perturbed] (Berthet et al., sigma 1, 8 samples), squared error to the true path;
- ``nce``: [NCELoss] (Mulamba et al.), NCE-MAP with a growing solution pool.

Every method calls one batched oracle, ``solvers.oracles.grid_shortest_path(5, 5)`` (a
compiled DP). Printed per model and method: normalized test regret (PyEPO's definition,
``combgrad.metrics.regret``) and seconds per training epoch (solver time included), as
the median over seeds (with min-max).

Usage::

    python examples/dfl_shortest_path.py                 # 1,000 train / 1,000 test, 3 seeds
    python examples/dfl_shortest_path.py --quick         # seconds; used by the tests
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import solvers.oracles
from combgrad.argmin import blackbox, imle, nid, perturbed
from combgrad.losses import FenchelYoungLoss, NCELoss, SPOPlusLoss
from combgrad.metrics import regret

METHODS = ("2s-mse", "spo+", "pfyl", "dbb", "nid", "imle", "dpo", "nce")
MODELS = ("linear", "mlp")


def shortest_path_data(
    num_data: int, num_features: int, grid: tuple[int, int], deg: int, noise_width: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features `(num_data, p)` and edge costs `(num_data, d)` as PyEPO's genData draws them."""
    rng = np.random.RandomState(seed)
    d = (grid[0] - 1) * grid[1] + (grid[1] - 1) * grid[0]
    mapping = rng.binomial(1, 0.5, (d, num_features))
    features = rng.normal(0, 1, (num_data, num_features))
    costs = ((features @ mapping.T / np.sqrt(num_features) + 3) ** deg + 1) / 3.5**deg
    costs = costs * rng.uniform(1 - noise_width, 1 + noise_width, (num_data, d))
    return features, costs.astype(np.float32)


def make_model(kind: str, p: int, d: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(p, d)
    return nn.Sequential(nn.Linear(p, 64), nn.ReLU(), nn.Linear(64, d))


def make_step(
    method: str, oracle, pool: torch.Tensor, generator: torch.Generator
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of a batch: `loss(pred_costs, true_costs, true_solutions)`."""
    if method == "2s-mse":
        return lambda pred, c, y: ((pred - c) ** 2).mean()
    if method == "spo+":
        spo = SPOPlusLoss(oracle)
        return lambda pred, c, y: spo(pred, c, y)
    if method == "pfyl":
        fy = FenchelYoungLoss(oracle, sigma=1.0, n_samples=1, generator=generator)
        return lambda pred, c, y: fy(pred, y)
    if method == "nce":
        nce = NCELoss(oracle, solution_pool=pool, solve_ratio=1.0, contrast="best")
        return lambda pred, c, y: nce(pred, y)
    if method == "dpo":
        return lambda pred, c, y: (
            (perturbed(pred, oracle, 1.0, 8, generator=generator) - y) ** 2
        ).mean()
    maps = {
        "dbb": lambda pred: blackbox(pred, oracle, lambda_=10.0),
        "nid": lambda pred: nid(pred, oracle),
        "imle": lambda pred: imle(pred, oracle, lambda_=10.0, sigma=1.0, generator=generator),
    }
    # Hamming (L1) distance to the true path, summed over the batch, not averaged: the
    # interpolation of DBB and I-MLE moves the costs by lambda_ * g, so g must be O(1) per
    # item whatever the batch size (Adam makes the step size independent of the loss scale).
    return lambda pred, c, y: (maps[method](pred) - y).abs().sum()


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    grid = (args.grid, args.grid)
    oracle = solvers.oracles.grid_shortest_path(*grid)
    results: dict = {}
    for seed in args.seeds:
        feats, costs = shortest_path_data(
            args.n_train + args.n_test, args.features, grid, args.deg, args.noise, seed
        )
        x_tr, x_te = torch.from_numpy(feats[: args.n_train]).float(), feats[args.n_train :]
        c_tr, c_te = torch.from_numpy(costs[: args.n_train]), costs[args.n_train :]
        y_tr = torch.from_numpy(oracle.solve(c_tr.double().numpy())[0]).float()
        y_te = oracle.solve(c_te.astype(np.float64))[0]
        x_te = torch.from_numpy(x_te).float()
        for kind in args.models:
            for method in args.methods:
                torch.manual_seed(seed)
                model = make_model(kind, args.features, oracle.n)
                opt = torch.optim.Adam(model.parameters(), lr=args.lr)
                gen = torch.Generator().manual_seed(seed)
                loss_fn = make_step(method, oracle, y_tr, gen)
                order = torch.Generator().manual_seed(seed)
                with torch.no_grad():
                    initial = regret(model(x_te), c_te, oracle, true_solutions=y_te)
                epoch_seconds = []
                bar = tqdm(range(args.epochs), desc=f"{kind:6} {method:6} seed {seed}", leave=False)
                for _ in bar:
                    start = time.perf_counter()
                    perm = torch.randperm(args.n_train, generator=order)
                    for i in range(0, args.n_train, args.batch_size):
                        idx = perm[i : i + args.batch_size]
                        opt.zero_grad()
                        loss_fn(model(x_tr[idx]), c_tr[idx], y_tr[idx]).backward()
                        opt.step()
                    epoch_seconds.append(time.perf_counter() - start)
                with torch.no_grad():
                    final = regret(model(x_te), c_te, oracle, true_solutions=y_te)
                row = results.setdefault(f"{kind}/{method}", {"regret": [], "s_per_epoch": []})
                row.setdefault("untrained_regret", []).append(initial)
                row["regret"].append(final)
                row["s_per_epoch"].append(float(np.median(epoch_seconds)))
    return results


def report(results: dict, args: argparse.Namespace) -> None:
    print(
        f"\nshortest path {args.grid}x{args.grid}, {args.features} features, deg {args.deg}, "
        f"noise {args.noise}, {args.n_train} train / {args.n_test} test, {args.epochs} epochs, "
        f"batch {args.batch_size}, Adam lr {args.lr}, seeds {args.seeds}"
    )
    print(f"{'model/method':16} {'test regret (median [min, max])':>34} {'s/epoch (median)':>18}")
    for key, row in results.items():
        r = np.array(row["regret"])
        spread = f"{np.median(r):.4f} [{r.min():.4f}, {r.max():.4f}]"
        print(f"{key:16} {spread:>34} {np.median(row['s_per_epoch']):>18.4f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", type=int, default=5)
    ap.add_argument("--features", type=int, default=5)
    ap.add_argument("--deg", type=int, default=4)
    ap.add_argument("--noise", type=float, default=0.5)
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (tiny models)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--quick", action="store_true", help="200/200 items, 3 epochs, 1 seed")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.seeds, args.lr = 200, 200, 3, [0], 0.05
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results = run(args)
    report(results, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
