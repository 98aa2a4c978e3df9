"""The exact combinatorial losses (forward + backward) against solver loops and smooth surrogates.

Cases (ratios are ``ours / reference`` of wall-clock medians from the same run):

* `MatchingLoss`, 256 bags of 50 instances, 50 classes, 50 labels per bag, forward +
  backward into a leaf tensor of log-probabilities (the model's ``log_softmax`` is not
  timed), against

  - a bare ``scipy.optimize.linear_sum_assignment`` loop over the same cost matrices
    (target: at most 1.3x);
  - cvxpylayers on the same assignment LP (when installed; a few bags are timed and the
    time is scaled to the whole batch, labelled *extrapolated*);
  - 100 iterations of log-domain Sinkhorn in torch, forward + backward (target: ours
    faster, and ours is exact);

* `AlignmentLoss`, batch 64, T = L = 100, C = 30, forward + backward, against

  - a torch soft-DP (soft-min Needleman-Wunsch on the same costs, vectorised over
    anti-diagonals, backward by autograd; target: ours faster);
  - the same loss with ``solver="lp"`` (each item's lattice LP through HiGHS; a few
    items timed, extrapolated);
  - the compiled-loop limit: the numba DP alone (``solvers.alignment_batch``) on the
    same batch of costs, with no torch around it.

Run: ``python -m benchmarks losses [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import solvers
from combgrad.losses import AlignmentLoss, MatchingLoss
from combgrad.losses.alignment import alignment_loss

from ._timing import Row, Target, format_table, measure

__all__ = ["main", "run", "sinkhorn_cost", "soft_alignment_cost"]

FASTER = Target(1.0, "< 1 (faster)")


@dataclass(frozen=True)
class Sizes:
    bags: int = 256
    instances: int = 50
    classes: int = 50
    cvxpy_bags: int = 4  # timed bags of cvxpylayers, scaled to `bags`
    items: int = 64
    length: int = 100  # T = L
    tokens: int = 30
    lp_items: int = 2  # timed items of the lattice LP, scaled to `items`
    large_items: int = 16
    large_length: int = 1000  # T = L of the large alignment case
    repeats: int = 15
    slow_repeats: int = 3  # for the extrapolated (slow) references


QUICK = Sizes(
    bags=8,
    instances=6,
    classes=6,
    cvxpy_bags=1,
    items=4,
    length=8,
    tokens=5,
    lp_items=1,
    large_items=2,
    large_length=30,
    repeats=3,
    slow_repeats=1,
)


# --------------------------------------------------------------------------- references
def sinkhorn_cost(cost: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """Entropic optimal-transport cost of a batch of square cost matrices, log domain.

    Args:
        cost: (B, n, n); both marginals uniform.
        epsilon: entropic regularisation (in cost units).
        iterations: Sinkhorn iterations (each updates both potentials).

    Returns:
        (B,) values ``n * <P, cost>`` (scaled like an assignment of n pairs).
    """
    B, n, m = cost.shape
    log_a, log_b = -np.log(n), -np.log(m)
    f = cost.new_zeros(B, n)
    g = cost.new_zeros(B, m)
    for _ in range(iterations):
        f = epsilon * (log_a - torch.logsumexp((g[:, None, :] - cost) / epsilon, dim=2))
        g = epsilon * (log_b - torch.logsumexp((f[:, :, None] - cost) / epsilon, dim=1))
    plan = torch.exp((f[:, :, None] + g[:, None, :] - cost) / epsilon)
    return n * (plan * cost).sum((1, 2))


def soft_alignment_cost(sub_cost: torch.Tensor, gap: float, gamma: float) -> torch.Tensor:
    """Soft-min Needleman-Wunsch value of full-length items, swept over anti-diagonals.

    ``D[i, j] = softmin_gamma(D[i-1, j-1] + S[i-1, j-1], D[i-1, j] + gap, D[i, j-1] + gap)``
    with ``softmin_gamma(v) = -gamma * logsumexp(-v / gamma)``; every cell of one
    anti-diagonal ``i + j = k`` is computed at once, so the loop has T + L steps.

    Args:
        sub_cost: (B, T, L) match costs.
        gap: cost of one gap.
        gamma: smoothing temperature (gamma -> 0 gives the exact DP).

    Returns:
        (B,) soft alignment costs ``D[T, L]``.
    """
    B, T, L = sub_cost.shape
    big = 1e10  # stands for +inf: finite, so logsumexp and its gradient stay NaN-free
    padded = torch.nn.functional.pad(sub_cost, (1, 0, 1, 0), value=big)  # (B, T+1, L+1)
    rows = torch.arange(T + 1, device=sub_cost.device)
    diagonals = torch.arange(T + L + 1, device=sub_cost.device)
    cols = diagonals[:, None] - rows[None, :]  # (K, T+1): column j of cell (i, k - i)
    valid = (cols >= 0) & (cols <= L)
    match_costs = padded[:, rows[None, :].expand_as(cols), cols.clamp(0, L)]  # (B, K, T+1)
    full = sub_cost.new_full((B, 1), big)

    def shift(d: torch.Tensor) -> torch.Tensor:  # d[i - 1] at position i
        return torch.cat([full, d[:, :-1]], dim=1)

    before = sub_cost.new_full((B, T + 1), big)  # diagonal k - 2
    current = torch.where(rows == 0, 0.0, big).expand(B, T + 1).to(sub_cost.dtype)  # k = 0
    for k in range(1, T + L + 1):
        candidates = torch.stack(
            [shift(before) + match_costs[:, k], shift(current) + gap, current + gap]
        )
        soft = -gamma * torch.logsumexp(candidates / -gamma, dim=0)
        before, current = current, torch.where(valid[k], soft, big)
    return current[:, T]


# --------------------------------------------------------------------------- matching
def bench_matching(s: Sizes) -> list[Row]:
    torch.manual_seed(0)
    B, k, C = s.bags, s.instances, s.classes
    # The loss's input: log-probabilities from a score tensor, a leaf so that only the
    # loss itself (not the model's log_softmax) is timed, forward and backward.
    log_probs = torch.log_softmax(torch.randn(B, k, C), -1).requires_grad_(True)
    labels = torch.randint(0, C, (B, k))  # k labels per bag: every instance is matched
    loss_fn = MatchingLoss(reduction="sum")

    def cost_of(lp: torch.Tensor) -> torch.Tensor:  # (B, L, k): -log p(label l | instance i)
        n = lp.shape[0]
        return -lp.gather(2, labels[:n, None, :].expand(n, k, k)).transpose(1, 2)

    cost_np = cost_of(log_probs).detach().double().numpy()

    def ours() -> float:
        log_probs.grad = None
        loss = loss_fn(log_probs, labels)
        loss.backward()
        return loss.item()

    def bare_loop() -> float:
        total = 0.0
        for cost in cost_np:
            r, c = linear_sum_assignment(cost)
            total += cost[r, c].sum()
        return total

    lapjv = _lapjv()

    def lap_loop() -> float:
        return sum(lapjv(cost)[0] for cost in cost_np)

    def sinkhorn() -> float:
        log_probs.grad = None
        loss = sinkhorn_cost(cost_of(log_probs), epsilon=0.1, iterations=100).sum()
        loss.backward()
        return loss.item()

    exact, bare_value, smooth = ours(), bare_loop(), sinkhorn()
    agree = abs(exact - bare_value) <= 1e-4 * abs(bare_value)
    fns = {"ours": ours, "bare": bare_loop, "sinkhorn": sinkhorn}
    if lapjv is not None:
        lap_value = lap_loop()
        fns["lap"] = lap_loop
    times = measure(fns, s.repeats)
    what = f"MatchingLoss fwd+bwd, {B} bags x {k} inst, {C} classes"
    rows = []
    if lapjv is not None:
        rows.append(
            Row(
                what,
                times["ours"],
                "lap.lapjv loop (LAPJV, solve only)",
                times["lap"],
                Target(1.0, "<= 1.0"),
                f"loss {exact:.4f} vs lap {lap_value:.4f}; ours: validation, solve, loss and "
                "backward into the log-probabilities; the loop only solves precomputed float64 "
                "cost matrices",
            )
        )
    rows += [
        Row(
            what,
            times["ours"],
            "linear_sum_assignment loop",
            times["bare"],
            None,
            f"loss {exact:.4f} vs bare loop {bare_value:.4f} ({'agree' if agree else 'DIFFER'})",
        ),
        Row(
            what,
            times["ours"],
            "Sinkhorn 100 it, fwd+bwd",
            times["sinkhorn"],
            FASTER,
            f"log domain, epsilon 0.1, float32; its value {smooth:.4f} vs the exact {exact:.4f}",
        ),
    ]
    rows += _matching_ragged(s, lapjv)
    rows += _matching_cvxpylayers(s, log_probs, cost_of, times["ours"])
    return rows


def _lapjv():
    """``lap.lapjv`` (the bench extra), or None when the package is missing."""
    if importlib.util.find_spec("lap") is None:
        print("lap is not installed: its comparison is skipped (pip install lap)")
        return None
    import lap

    return lap.lapjv


def _matching_ragged(s: Sizes, lapjv) -> list[Row]:
    """Bags of 25..50 instances (as many labels), padded to 50 with a mask and ignore_index."""
    if lapjv is None:
        return []
    rng = np.random.default_rng(2)
    B, k, C = s.bags, s.instances, s.classes
    sizes = rng.integers(max(1, k // 2), k + 1, B)
    log_probs = torch.log_softmax(torch.randn(B, k, C), -1).requires_grad_(True)
    labels = torch.from_numpy(rng.integers(0, C, (B, k)))
    real = torch.arange(k)[None, :] < torch.from_numpy(sizes)[:, None]
    labels = labels.masked_fill(~real, -100)
    loss_fn = MatchingLoss(reduction="sum")
    lp_np = log_probs.detach().double().numpy()
    costs = [
        np.ascontiguousarray(-lp_np[b, :n][:, labels[b, :n].numpy()].T)
        for b, n in enumerate(sizes.tolist())
    ]

    def ours() -> float:
        log_probs.grad = None
        loss = loss_fn(log_probs, labels, real)
        loss.backward()
        return loss.item()

    def lap_loop() -> float:
        return sum(lapjv(cost)[0] for cost in costs)

    exact, reference = ours(), lap_loop()
    times = measure({"ours": ours, "lap": lap_loop}, s.repeats)
    return [
        Row(
            f"MatchingLoss fwd+bwd, {B} ragged bags of {sizes.min()}..{sizes.max()} (padded)",
            times["ours"],
            "lap.lapjv loop on the unpadded blocks",
            times["lap"],
            Target(1.0, "<= 1.0"),
            f"loss {exact:.4f} vs lap {reference:.4f}; mask and ignore_index padding",
        )
    ]


def _matching_cvxpylayers(s: Sizes, log_probs, cost_of, ours_time) -> list[Row]:
    what = f"MatchingLoss fwd+bwd, {s.bags} bags x {s.instances} inst, {s.classes} classes"
    if importlib.util.find_spec("cvxpylayers") is None:
        print("cvxpylayers is not installed: its comparison is skipped (pip install cvxpylayers)")
        return []
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    k, n_bags = s.instances, s.cvxpy_bags
    weights = cp.Parameter((k, k))
    plan = cp.Variable((k, k), nonneg=True)
    problem = cp.Problem(
        cp.Minimize(cp.sum(cp.multiply(weights, plan))),
        [cp.sum(plan, axis=0) == 1, cp.sum(plan, axis=1) == 1],
    )
    layer = CvxpyLayer(problem, parameters=[weights], variables=[plan])
    part = log_probs[:n_bags].detach().double().requires_grad_(True)

    def cvxpylayers_bags() -> float:
        part.grad = None
        cost = cost_of(part)
        (x,) = layer(cost)
        loss = (cost * x).sum()
        loss.backward()
        return loss.item()

    value = cvxpylayers_bags()
    exact = sum(c[linear_sum_assignment(c)].sum() for c in cost_of(part).detach().numpy())
    times = measure({"cvxpylayers": cvxpylayers_bags}, s.slow_repeats, warmup=0)
    scale = s.bags / n_bags
    return [
        Row(
            what,
            ours_time,
            f"cvxpylayers (extrapolated x{scale:g})",
            times["cvxpylayers"].scaled(scale),
            None,
            f"EXTRAPOLATED: {n_bags} of {s.bags} bags timed (batched in one layer call), "
            f"time x{scale:g}; diffcp default solver; its value {value:.6f} vs exact "
            f"{exact:.6f} on those bags",
        )
    ]


# --------------------------------------------------------------------------- alignment
def bench_alignment(s: Sizes) -> list[Row]:
    torch.manual_seed(1)
    B, T, C = s.items, s.length, s.tokens
    L, gap = T, 2.0
    log_probs = torch.log_softmax(torch.randn(B, T, C), -1).requires_grad_(True)  # a leaf
    targets = torch.randint(0, C, (B, L))
    lengths = torch.full((B,), T)
    loss_fn = AlignmentLoss(gap_cost=gap, reduction="sum")

    def sub_cost_of(lp: torch.Tensor) -> torch.Tensor:  # (B, T, L): -log p_i(y_j)
        n = lp.shape[0]
        return -lp.gather(2, targets[:n, None, :].expand(n, T, L))

    sub_np = np.ascontiguousarray(sub_cost_of(log_probs).detach().double().numpy())

    def ours() -> float:
        log_probs.grad = None
        loss = loss_fn(log_probs, targets, lengths, lengths)
        loss.backward()
        return loss.item()

    def soft_dp() -> float:
        log_probs.grad = None
        loss = soft_alignment_cost(sub_cost_of(log_probs), gap, gamma=0.1).sum()
        loss.backward()
        return loss.item()

    engine = "numba" if solvers.combinatorial.numba_available() else "numpy"

    def dp_alone() -> float:
        return float(solvers.alignment_batch(sub_np, gap, engine=engine)[0].sum())

    exact, soft, limit = ours(), soft_dp(), dp_alone()
    agree = abs(exact - limit) <= 1e-4 * abs(limit)
    times = measure({"ours": ours, "soft": soft_dp, "dp": dp_alone}, s.repeats)

    n_lp = s.lp_items
    part = log_probs[:n_lp].detach().clone().requires_grad_(True)

    def lattice_lp() -> float:
        part.grad = None
        loss = alignment_loss(
            part,
            targets[:n_lp],
            lengths[:n_lp],
            lengths[:n_lp],
            gap,
            "sum",
            solver="lp",
            backend="highs",
        )
        loss.backward()
        return loss.item()

    lp_value = lattice_lp()
    lp_exact = float(solvers.alignment_batch(sub_np[:n_lp], gap, engine=engine)[0].sum())
    lp_time = measure({"lp": lattice_lp}, s.slow_repeats, warmup=0)["lp"]
    scale = B / n_lp
    what = f"AlignmentLoss fwd+bwd, {B} x {T}x{L}, C={C}"
    return [
        Row(
            what,
            times["ours"],
            "torch soft-DP, fwd+bwd",
            times["soft"],
            FASTER,
            f"soft-min NW, gamma 0.1, {T + L} anti-diagonal steps, float32; its value "
            f"{soft:.3f} vs the exact {exact:.3f}",
        ),
        Row(
            what,
            times["ours"],
            f"lattice LP, HiGHS (extrapolated x{scale:g})",
            lp_time.scaled(scale),
            None,
            f"EXTRAPOLATED: {n_lp} of {B} items timed through alignment_loss(solver='lp'), "
            f"time x{scale:g}; LP value {lp_value:.6f} vs DP {lp_exact:.6f}",
        ),
        Row(
            what,
            times["ours"],
            f"{engine} DP alone (the kernel)",
            times["dp"],
            Target(1.5, "<= 1.5"),
            f"solvers.alignment_batch on precomputed float64 costs, same threads; loss "
            f"{exact:.4f} vs DP {limit:.4f} ({'agree' if agree else 'DIFFER'})",
        ),
    ]


_PEAK_SCRIPT = """
import sys, numpy as np, torch
import solvers
from combgrad.losses import AlignmentLoss
B, T, C = {B}, {T}, {C}
torch.manual_seed(1)
def inputs(B, T):
    lp = torch.log_softmax(torch.randn(B, T, C), -1).requires_grad_(True)
    return lp, torch.randint(0, C, (B, T)), torch.full((B,), T)
def loss(lp, tg, n):
    AlignmentLoss(gap_cost=2.0, reduction="sum")(lp, tg, n, n).backward()
def dense(lp, tg, n):  # the former input path: (B, T, L) gather, float64 copy, DP
    sub = -lp.detach().gather(2, tg[:, None, :].expand(-1, lp.shape[1], -1))
    solvers.alignment_batch(sub.double().numpy(), 2.0, n.numpy(), n.numpy())
run = {{"loss": loss, "dense": dense}}[sys.argv[1]]
def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
run(*inputs(2, 8))  # warm-up: numba cache, torch allocator
args = inputs(B, T)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
before = status_kib("VmRSS:")
run(*args)
print((status_kib("VmHWM:") - before) / 1024)
"""


def _peak_mib(variant: str, B: int, T: int, C: int) -> float:
    """Peak resident memory (MiB) one call adds, in a fresh process (Linux: the peak is
    reset through /proc/self/clear_refs just before the call)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT.format(B=B, T=T, C=C), variant],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def bench_alignment_large(s: Sizes) -> list[Row]:
    """16 x 1000x1000 (T = L): time against the kernel alone, and peak memory of both paths."""
    B, T, C = (s.large_items, s.large_length, s.tokens)
    torch.manual_seed(3)
    log_probs = torch.log_softmax(torch.randn(B, T, C), -1).requires_grad_(True)
    targets = torch.randint(0, C, (B, T))
    lengths = torch.full((B,), T)
    loss_fn = AlignmentLoss(gap_cost=2.0, reduction="sum")
    sub_np = np.ascontiguousarray(
        -log_probs.detach().gather(2, targets[:, None, :].expand(B, T, T)).double().numpy()
    )

    def ours() -> float:
        log_probs.grad = None
        loss = loss_fn(log_probs, targets, lengths, lengths)
        loss.backward()
        return loss.item()

    def dp_alone() -> float:
        return float(solvers.alignment_batch(sub_np, 2.0)[0].sum())

    exact, limit = ours(), dp_alone()
    times = measure({"ours": ours, "dp": dp_alone}, max(3, s.repeats // 3))
    peak_ours, peak_dense = _peak_mib("loss", B, T, C), _peak_mib("dense", B, T, C)
    return [
        Row(
            f"AlignmentLoss fwd+bwd, {B} x {T}x{T}, C={C}",
            times["ours"],
            "DP alone (the kernel)",
            times["dp"],
            Target(1.5, "<= 1.5"),
            f"loss {exact:.3f} vs DP {limit:.3f}; peak memory added by one call (fresh process, "
            f"VmHWM - VmRSS): loss fwd+bwd {peak_ours:.1f} MiB, vs {peak_dense:.1f} MiB for the "
            "former input path alone (dense (B, T, L) gather, float64 copy, DP)",
        )
    ]


_STEP_SCRIPT = """
import json, sys, time, numpy as np, torch
from torch import nn
torch.manual_seed(0)
B, T, F, C, H = 32, {T}, 32, 11, {H}
enc = nn.GRU(F, H, batch_first=True, bidirectional=True)
dec = nn.GRU(2 * H, H, batch_first=True)
head = nn.Linear(H, C)
params = [*enc.parameters(), *dec.parameters(), *head.parameters()]
opt = torch.optim.Adam(params, lr=1e-3)
x = torch.randn(B, T, F)
y = torch.randint(0, C, (B, T))
def step():  # one seq2seq training step, no combgrad code involved
    opt.zero_grad()
    out, _ = dec(enc(x)[0])
    loss = nn.functional.cross_entropy(head(out).reshape(-1, C), y.reshape(-1))
    loss.backward()
    opt.step()
def median_step(n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    return float(np.median(times))
for _ in range(3):
    step()
before = median_step({n})
from combgrad.losses import AlignmentLoss, MatchingLoss  # first loss calls
lp = torch.log_softmax(torch.randn(64, 100, 30), -1).requires_grad_(True)
tg = torch.randint(0, 30, (64, 100)); n = torch.full((64,), 100)
AlignmentLoss()(lp, tg, n, n).backward()
bags = torch.log_softmax(torch.randn(256, 50, 50), -1).requires_grad_(True)
MatchingLoss()(bags, torch.randint(0, 50, (256, 50))).backward()
after = median_step({n})
print(json.dumps({{"before": before, "after": after}}))
"""


def bench_training_step(s: Sizes) -> list[Row]:
    """A seq2seq training step before and after the first loss calls, in a fresh process.

    Guards against the library leaving threads behind that compete with torch (e.g.
    spinning OpenMP/numba workers): the same step must not get slower.
    """
    import json
    import subprocess
    import sys

    from ._timing import Timing

    T, H, n = (16, 32, 5) if s.repeats <= 3 else (32, 128, 40)
    done = subprocess.run(
        [sys.executable, "-c", _STEP_SCRIPT.format(T=T, H=H, n=n)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    nan = np.array([np.nan])

    def timing(seconds: float) -> Timing:
        return Timing(np.array([seconds]), nan)

    return [
        Row(
            f"seq2seq training step (GRU {H}, T={T}) after the first loss calls",
            timing(result["after"]),
            "the same step before any loss call",
            timing(result["before"]),
            Target(1.1, "<= 1.1 (no slowdown)"),
            f"median of {n} steps each, fresh process, torch {torch.get_num_threads()} "
            "threads, OMP_WAIT_POLICY as in the environment",
        )
    ]


def run(quick: bool = False, repeats: int | None = None) -> list[Row]:
    """Run every loss case and print its table; returns the rows."""
    sizes = QUICK if quick else Sizes()
    if repeats is not None:
        sizes = Sizes(**{**sizes.__dict__, "repeats": repeats})
    rows = bench_matching(sizes) + bench_alignment(sizes) + bench_alignment_large(sizes)
    rows += bench_training_step(sizes)
    print(format_table("== losses ==", rows))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    """Command-line entry: ``--quick`` for a fast smoke run, ``--repeats N``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per variant")
    args = parser.parse_args(argv)
    return run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
