"""A budgeted allocation LP, written in cvxpy, as a layer whose rewards come from a network.

Each of ``products`` products has a price and an unknown reward that depends on a feature
vector; we buy fractions ``0 <= x <= 1`` of products within a budget to maximise the
reward:

    maximise r @ x   subject to   price @ x <= budget,  0 <= x <= 1.

A small network predicts ``r`` from the features. Two ways to train it on (features,
true rewards) pairs, with the same network, optimizer and epochs:

- ``mse``: regress the rewards (the optimisation problem is ignored in training);
- ``spo+``: the decision-focused SPO+ loss (Elmachtoub & Grigas, 2022), written with the
  optimal value of the cvxpy problem, ``V(r) = max_x r @ x``, from
  ``combgrad.CvxpyLayer(..., output="value")``:
  ``SPO+(r_hat, r) = V(2 r_hat - r) - 2 r_hat @ x*(r) + V(r)``, whose gradient is
  exact: ``dV/dr = x*``.

It prints the test *regret* of each, the reward lost by acting on the prediction,
``(V(r) - r @ x*(r_hat)) / V(r)``, averaged over the test set (mean +- std over seeds).

Usage::

    python examples/cvxpy_allocation.py            # 3 seeds, 20 epochs
    python examples/cvxpy_allocation.py --quick    # seconds; used by the tests
"""

from __future__ import annotations

import argparse
import sys

import cvxpy as cp
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from combgrad import CvxpyLayer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.test, args.epochs, args.seeds = 64, 32, 3, [0]
    return args


def make_problem(prices: np.ndarray, budget: float) -> tuple[cp.Problem, cp.Parameter, cp.Variable]:
    """The allocation LP with the rewards as a cvxpy parameter."""
    x = cp.Variable(len(prices), name="x")
    r = cp.Parameter(len(prices), name="r")
    problem = cp.Problem(cp.Maximize(r @ x), [prices @ x <= budget, x >= 0, x <= 1])
    return problem, r, x


def make_data(n: int, features: int, weights: np.ndarray, rng: np.random.Generator):
    """Features z ~ N(0, I); rewards r = (1 + (z W / sqrt(p) + 3)^2 / 4) * noise (nonlinear)."""
    z = rng.normal(size=(n, features))
    r = (1 + (z @ weights / np.sqrt(features) + 3) ** 2 / 4) * rng.uniform(
        0.8, 1.2, (n, len(weights.T))
    )
    return torch.tensor(z), torch.tensor(r)


def run(args: argparse.Namespace, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    prices = rng.uniform(1.0, 3.0, args.products)
    budget = 0.3 * prices.sum()
    weights = rng.normal(size=(args.features, args.products))
    z_train, r_train = make_data(args.train, args.features, weights, rng)
    z_test, r_test = make_data(args.test, args.features, weights, rng)

    problem, r_param, x_var = make_problem(prices, budget)
    value = CvxpyLayer(problem, parameters=[r_param], variables=[x_var], output="value")

    def best(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Optimal value V(r) and decision x*(r), shapes (B,) and (B, products)."""
        with torch.no_grad():
            v, (x,) = value(r, return_variables=True)
        return v, x

    v_test, _ = best(r_test)
    _, x_train = best(r_train)
    results = {}
    for loss_name in ("mse", "spo+"):
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Linear(args.features, 32), nn.ReLU(), nn.Linear(32, args.products)
        ).double()
        opt = torch.optim.Adam(net.parameters(), lr=args.lr)
        for _ in tqdm(range(args.epochs), desc=f"seed {seed} {loss_name}", leave=False):
            order = torch.randperm(args.train)
            for start in range(0, args.train, args.batch):
                idx = order[start : start + args.batch]
                r_hat, r = net(z_train[idx]), r_train[idx]
                if loss_name == "mse":
                    loss = ((r_hat - r) ** 2).mean()
                else:  # SPO+ from the optimal value: exact gradient 2 x*(2 r_hat - r) - 2 x*(r)
                    v_r = (r * x_train[idx]).sum(1)
                    loss = (value(2 * r_hat - r) - 2 * (r_hat * x_train[idx]).sum(1) + v_r).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            _, x_hat = best(net(z_test))
        regret = (v_test - (r_test * x_hat).sum(1)) / v_test
        results[loss_name] = float(regret.mean())
    return results


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    args = parse_args(argv)
    per_loss: dict[str, list[float]] = {"mse": [], "spo+": []}
    for seed in args.seeds:
        for name, regret in run(args, seed).items():
            per_loss[name].append(regret)
    print(
        f"test regret, {args.products} products, {args.train} training samples, {args.epochs} epochs"
    )
    for name, regrets in per_loss.items():
        print(
            f"  {name:5s} {100 * np.mean(regrets):6.2f}% +- {100 * np.std(regrets):.2f}% "
            f"(seeds {args.seeds})"
        )
    return per_loss


if __name__ == "__main__":
    main(sys.argv[1:])
