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

    def sinkhorn() -> float:
        log_probs.grad = None
        loss = sinkhorn_cost(cost_of(log_probs), epsilon=0.1, iterations=100).sum()
        loss.backward()
        return loss.item()

    exact, bare_value, smooth = ours(), bare_loop(), sinkhorn()
    agree = abs(exact - bare_value) <= 1e-4 * abs(bare_value)
    fns = {"ours": ours, "bare": bare_loop, "sinkhorn": sinkhorn}
    times = measure(fns, s.repeats)
    what = f"MatchingLoss fwd+bwd, {B} bags x {k} inst, {C} classes"
    rows = [
        Row(
            what,
            times["ours"],
            "linear_sum_assignment loop",
            times["bare"],
            Target(1.3, "<= 1.3"),
            f"loss {exact:.4f} vs bare loop {bare_value:.4f} ({'agree' if agree else 'DIFFER'}); "
            "ours: gather, solve, loss and backward into the log-probabilities; the loop "
            "only solves",
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
    rows += _matching_cvxpylayers(s, log_probs, cost_of, times["ours"])
    return rows


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
            f"{engine} DP alone (the limit)",
            times["dp"],
            None,
            f"solvers.alignment_batch on precomputed float64 costs; loss {exact:.4f} vs DP "
            f"{limit:.4f} ({'agree' if agree else 'DIFFER'})",
        ),
    ]


def run(quick: bool = False, repeats: int | None = None) -> list[Row]:
    """Run every loss case and print its table; returns the rows."""
    sizes = QUICK if quick else Sizes()
    if repeats is not None:
        sizes = Sizes(**{**sizes.__dict__, "repeats": repeats})
    rows = bench_matching(sizes) + bench_alignment(sizes)
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
