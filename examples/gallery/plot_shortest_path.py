"""A differentiable shortest path: learn edge costs from observed travel times.

`solvers.shortest_path_lp(graph, s, t)` writes the shortest path from `s` to `t` as a unit-flow
LP, `min c @ x` subject to `A_eq @ x = b_eq`, `x >= 0`. `combgrad.lp_value` returns its
optimal value `z(c)`, the length of the shortest path, and the exact gradient
`dz/dc = x*`: the 0/1 indicator of the shortest path's edges.

The task: a grid of roads with unknown travel times; we observe the shortest travel time
between some pairs of crossings (not the routes) and fit the edge costs so that the shortest
paths reproduce them. Each step solves one LP per pair; backward reuses the forward solutions.

Run: `python examples/gallery/plot_shortest_path.py` (full, about a minute) or with `--quick`
(a few seconds; its numbers are for smoke testing only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import torch
from tqdm import tqdm

import combgrad
import solvers

FIGURE = Path(__file__).resolve().parents[2] / "docs" / "img" / "gallery" / "shortest_path.png"


def dense(a) -> np.ndarray:
    return a.toarray() if hasattr(a, "toarray") else np.asarray(a)


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--steps", type=int, default=None, help="default 150 (quick: 5)")
    parser.add_argument("--grid", type=int, default=None, help="grid side (default 5, quick 3)")
    parser.add_argument("--pairs", type=int, default=None, help="observed pairs (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"figure path (default {FIGURE})")
    args = parser.parse_args(argv)
    steps = args.steps or (5 if args.quick else 150)
    side = args.grid or (3 if args.quick else 5)
    n_pairs = args.pairs or (6 if args.quick else 30)
    rng = np.random.default_rng(args.seed)

    graph = nx.grid_2d_graph(side, side).to_directed()  # roads both ways
    edges = list(graph.edges)
    true_cost = rng.uniform(1.0, 5.0, len(edges))
    nodes = list(graph.nodes)
    pairs = [tuple(rng.choice(len(nodes), 2, replace=False)) for _ in range(n_pairs)]
    pairs = [(nodes[i], nodes[j]) for i, j in pairs]

    # The hidden truth, used only to produce the observations.
    nx.set_edge_attributes(graph, dict(zip(edges, true_cost)), "weight")
    # One LP per pair, all in the same edge order; we keep only their constraints and give
    # every LP the same learned cost vector.
    problems = [solvers.shortest_path_lp(graph, s, t) for s, t in pairs]
    A = [torch.tensor(dense(p.A_eq)) for p in problems]
    b = [torch.tensor(dense(p.b_eq)) for p in problems]
    observed = torch.tensor([solvers.shortest_path(graph, s, t).objective for s, t in pairs])

    theta = torch.zeros(len(edges), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.05)
    history: dict[str, list[float]] = {"loss": []}
    for _ in tqdm(range(steps), desc="steps", file=sys.stderr):
        cost = 1.0 + torch.nn.functional.softplus(theta)  # positive edge costs
        z = torch.stack([combgrad.lp_value(cost, A_eq=a, b_eq=bb) for a, bb in zip(A, b)])
        loss = ((z - observed) ** 2).mean()  # dz/dcost = the shortest path's edge indicator
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())

    learned = (1.0 + torch.nn.functional.softplus(theta)).detach().numpy()
    if args.quick:
        print("quick mode: these numbers are for smoke testing only")
    print(
        f"mean squared error of the {n_pairs} travel times: {history['loss'][0]:.3f} -> "
        f"{history['loss'][-1]:.4f} after {steps} steps"
    )

    out = args.out or (None if args.quick else FIGURE)
    if out is not None:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
        ax1.semilogy(history["loss"])
        ax1.set(xlabel="Adam step", ylabel="MSE of observed travel times")
        ax1.grid(alpha=0.3)
        ax2.scatter(true_cost, learned, s=10)
        ax2.plot([1, 5], [1, 5], color="gray", ls=":")
        ax2.set(xlabel="true edge cost", ylabel="learned edge cost")
        ax2.set_title(
            f"{n_pairs} path lengths do not determine {len(edges)} edge costs", fontsize=8
        )
        fig.suptitle(f"{side}x{side} grid, {n_pairs} observed pairs, seed {args.seed}")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(f"figure written to {out}")
    return history


if __name__ == "__main__":
    main()
