"""The losses on a GPU: the same calls with their inputs on CUDA, against the CPU.

The solvers run on the CPU whatever the input's device (the costs go to the host, the
answers come back), so a CUDA loss pays two transfers and a synchronisation on top of the
CPU work. This section times, forward + backward, each loss with a leaf input on the
device and the same loss with the input on the CPU, and prints the ratio device / CPU
(no target: it shows what the transfers cost). Rows:

* `MatchingLoss`, 256 bags x 50 instances, 50 classes;
* `AlignmentLoss`, 64 x 100x100, C = 30;
* SPO+ on PyEPO's 5x5 grid shortest path, a batch of 32 (`grid_shortest_path` oracle);
* `FenchelYoungLoss` on the same grid, 3 perturbed samples.

Device timings synchronise before reading the clock. With no CUDA device the section
prints one line and returns (CI has none); ``run(device="cpu")`` runs the same code on the
CPU against itself (the smoke test does, so the section cannot rot).

Run: ``python -m benchmarks cuda [--quick]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from combgrad.losses import AlignmentLoss, FenchelYoungLoss, MatchingLoss, SPOPlusLoss
from solvers.oracles import grid_shortest_path

from ._timing import Row, format_table, measure

__all__ = ["run"]


@dataclass(frozen=True)
class Sizes:
    bags: int = 256
    instances: int = 50
    items: int = 64
    length: int = 100
    tokens: int = 30
    dfl_batch: int = 32
    repeats: int = 15


QUICK = Sizes(bags=8, instances=6, items=4, length=8, tokens=5, dfl_batch=4, repeats=2)


def _on(device: torch.device, fn: Callable[[torch.device], Callable[[], object]]):
    """`fn(device)`'s call, followed by a synchronisation when the device is a GPU."""
    call = fn(device)
    if device.type != "cuda":
        return call

    def synced() -> object:
        out = call()
        torch.cuda.synchronize(device)
        return out

    return synced


def _matching(s: Sizes) -> Callable[[torch.device], Callable[[], object]]:
    gen = torch.Generator().manual_seed(0)
    B, k = s.bags, s.instances
    scores = torch.randn(B, k, k, generator=gen)
    labels = torch.randint(0, k, (B, k), generator=gen)
    loss_fn = MatchingLoss(reduction="sum")

    def make(device: torch.device) -> Callable[[], object]:
        lp = torch.log_softmax(scores, -1).to(device).requires_grad_(True)
        lab = labels.to(device)

        def call() -> object:
            lp.grad = None
            loss = loss_fn(lp, lab)
            loss.backward()
            return loss

        return call

    return make


def _alignment(s: Sizes) -> Callable[[torch.device], Callable[[], object]]:
    gen = torch.Generator().manual_seed(1)
    B, T, C = s.items, s.length, s.tokens
    scores = torch.randn(B, T, C, generator=gen)
    targets = torch.randint(0, C, (B, T), generator=gen)
    lengths = torch.full((B,), T)
    loss_fn = AlignmentLoss(gap_cost=2.0, reduction="sum")

    def make(device: torch.device) -> Callable[[], object]:
        lp = torch.log_softmax(scores, -1).to(device).requires_grad_(True)
        tg = targets.to(device)

        def call() -> object:
            lp.grad = None
            loss = loss_fn(lp, tg, lengths, lengths)
            loss.backward()
            return loss

        return call

    return make


def _dfl(s: Sizes, which: str) -> Callable[[torch.device], Callable[[], object]]:
    oracle = grid_shortest_path(5, 5)
    gen = torch.Generator().manual_seed(2)
    true_costs = torch.rand(s.dfl_batch, oracle.n, generator=gen, dtype=torch.float64)
    pred = torch.rand(s.dfl_batch, oracle.n, generator=gen, dtype=torch.float64)
    sols = torch.from_numpy(oracle.solve(true_costs.numpy())[0])
    if which == "SPO+":
        loss_fn = SPOPlusLoss(oracle)
    else:
        loss_fn = FenchelYoungLoss(oracle, n_samples=3, generator=torch.Generator().manual_seed(3))

    def make(device: torch.device) -> Callable[[], object]:
        theta = pred.to(device).requires_grad_(True)
        c, y = true_costs.to(device), sols.to(device)

        def call() -> object:
            theta.grad = None
            loss = loss_fn(theta, c, y) if which == "SPO+" else loss_fn(theta, y)
            loss.backward()
            return loss

        return call

    return make


def run(quick: bool = False, repeats: int | None = None, device: str | None = None) -> list[Row]:
    """Time every loss on `device` (default: the first CUDA device) against the CPU."""
    if device is None:
        if not torch.cuda.is_available():
            print("== cuda == no CUDA device: skipped (the losses' CUDA paths are timed on a GPU)")
            return []
        device = "cuda"
    dev = torch.device(device)
    s = QUICK if quick else Sizes()
    reps = repeats or s.repeats
    cases = {
        f"MatchingLoss fwd+bwd, {s.bags} bags x {s.instances}": _matching(s),
        f"AlignmentLoss fwd+bwd, {s.items} x {s.length}x{s.length}": _alignment(s),
        f"SPO+ fwd+bwd, 5x5 grid, batch {s.dfl_batch}": _dfl(s, "SPO+"),
        f"FenchelYoungLoss fwd+bwd, 5x5 grid, batch {s.dfl_batch}": _dfl(s, "PFYL"),
    }
    rows = []
    for name, make in cases.items():
        times = measure({"device": _on(dev, make), "cpu": make(torch.device("cpu"))}, reps)
        rows.append(Row(f"{name} on {dev}", times["device"], "the same on the CPU", times["cpu"]))
    label = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    print(format_table(f"== cuda == {label}", rows))
    return rows
