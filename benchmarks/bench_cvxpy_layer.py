"""`combgrad.CvxpyLayer` (optimal value) side by side with cvxpylayers, batches of 64.

Three LP families, each a parametrized cvxpy problem given to both layers unchanged:

1. the assignment LP (10x10 costs ``C``; only the objective varies, so our layer re-solves
   one HiGHS model per batch);
2. a random LP ``min c @ x s.t. A x <= b, 0 <= x <= 1`` (20 variables, 15 rows) with every
   one of ``c``, ``A``, ``b`` batched (a new model per item);
3. a resource-allocation LP ``max r @ x s.t. R x <= cap, 0 <= x <= u`` (30 products,
   5 resources) with ``r`` and ``cap`` batched.

Timed, interleaved, medians (forward + backward of the summed optimal values):

* ours: ``CvxpyLayer(problem, parameters, output="value")`` (default backend HiGHS; the
  same with ``backend="glop"`` is printed too, untargeted);
* cvxpylayers (default diffcp): it returns the solution, so the value is the objective
  evaluated at its solution and the gradient is autograd through its layer (what a user
  does with cvxpylayers to get the value's gradient);
* cvxpylayers, duals: the same forward with the constraints' dual variables requested too,
  and the value gradient formed from $(x, y)$ by the envelope formula (forward only; the
  cheaper way, if the user knows it).

Exactness: each gradient against central finite differences of the optimal value (solved
by HiGHS, step 1e-6) on the first ``fd_items`` items, as the max absolute error relative
to the largest gradient entry. Targets: ours at least 20x faster than each cvxpylayers
variant; ours exact (relative error <= 1e-6).

Run: ``python -m benchmarks cvxpy [--quick]``.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import torch

import solvers
from combgrad import CvxpyLayer
from solvers.cvxpy_parametric import ParametricLP

from ._timing import Row, Target, format_table, measure, ratio_row

__all__ = ["main", "run"]

SPEED = Target(0.05, "<= 0.05 (20x faster)")
EXACT_RTOL = 1e-6


@dataclass
class Family:
    """A parametrized LP, a batch of parameter values, and its value in torch terms."""

    name: str
    problem: cp.Problem
    parameters: list[cp.Parameter]
    variables: list[cp.Variable]
    duals: list[cp.Constraint]
    values: list[np.ndarray]  # batched parameter values
    # value(params, xs) evaluated at a solution (autograd through xs); lagrangian(params, xs, ys)
    value: Callable[..., torch.Tensor]
    lagrangian: Callable[..., torch.Tensor]


def assignment(batch: int, k: int, seed: int = 0) -> Family:
    C = cp.Parameter((k, k), name="C")
    X = cp.Variable((k, k), name="X")
    problem = cp.Problem(
        cp.Minimize(cp.sum(cp.multiply(C, X))),
        [cp.sum(X, axis=0) == 1, cp.sum(X, axis=1) == 1, X >= 0],
    )
    rng = np.random.default_rng(seed)
    return Family(
        f"assignment LP {k}x{k} (C batched)",
        problem,
        [C],
        [X],
        [],
        [rng.uniform(0, 1, (batch, k, k))],
        lambda p, xs: (p[0] * xs[0]).sum((1, 2)),
        lambda p, xs, ys: (p[0] * xs[0]).sum((1, 2)),
    )


def random_lp(batch: int, n: int, m: int, seed: int = 1) -> Family:
    c = cp.Parameter(n, name="c")
    A = cp.Parameter((m, n), name="A")
    b = cp.Parameter(m, name="b")
    x = cp.Variable(n, name="x")
    rows = A @ x <= b
    problem = cp.Problem(cp.Minimize(c @ x), [rows, x >= 0, x <= 1])
    rng = np.random.default_rng(seed)
    values = [
        rng.normal(size=(batch, n)),
        rng.uniform(0.0, 1.0, (batch, m, n)),
        rng.uniform(1.0, 3.0, (batch, m)),
    ]

    def lagrangian(p, xs, ys):  # c x + y (A x - b), y >= 0 cvxpy's multiplier
        c_, A_, b_ = p
        x_, y_ = xs[0], ys[0]
        return (c_ * x_).sum(1) + (y_ * (torch.einsum("bmn,bn->bm", A_, x_) - b_)).sum(1)

    return Family(
        f"random LP n={n}, m={m} (c, A, b batched)",
        problem,
        [c, A, b],
        [x],
        [rows],
        values,
        lambda p, xs: (p[0] * xs[0]).sum(1),
        lagrangian,
    )


def allocation(batch: int, n: int, m: int, seed: int = 2) -> Family:
    r = cp.Parameter(n, name="r")
    cap = cp.Parameter(m, name="cap")
    x = cp.Variable(n, name="x")
    rng = np.random.default_rng(seed)
    R = rng.uniform(0.1, 1.0, (m, n))
    u = rng.uniform(1.0, 3.0, n)
    rows = R @ x <= cap
    problem = cp.Problem(cp.Maximize(r @ x), [rows, x >= 0, x <= u])
    values = [rng.uniform(0.5, 2.0, (batch, n)), rng.uniform(5.0, 10.0, (batch, m))]
    R_t = torch.tensor(R)

    def lagrangian(p, xs, ys):  # r x - y (R x - cap) for a maximisation, y >= 0
        r_, cap_ = p
        x_, y_ = xs[0], ys[0]
        return (r_ * x_).sum(1) - (y_ * (x_ @ R_t.T - cap_)).sum(1)

    return Family(
        f"allocation LP {n} products, {m} resources (r, cap batched)",
        problem,
        [r, cap],
        [x],
        [rows],
        values,
        lambda p, xs: (p[0] * xs[0]).sum(1),
        lagrangian,
    )


def fd_gradient(family: Family, item: int, h: float = 1e-6) -> list[np.ndarray]:
    """Central differences of cvxpy's optimal value (compiled once, solved by HiGHS)."""
    plp = ParametricLP(family.problem, family.parameters)
    theta = plp.theta([v[item] for v in family.values])

    def value(t: np.ndarray) -> float:
        sol = solvers.solve(plp.linear_program(t)).raise_for_status()
        return float(plp.value(sol.objective, t))

    grad = np.zeros_like(theta)
    for j in range(theta.size):
        step = np.zeros_like(theta)
        step[j] = h
        grad[j] = (value(theta + step) - value(theta - step)) / (2 * h)
    out = []
    for sl, shape in zip(plp.parameter_slices, plp.parameter_shapes):
        out.append(np.reshape(grad[sl], shape, order="F"))
    return out


def rel_error(grads: list[torch.Tensor], fds: list[list[np.ndarray]]) -> float:
    """Max abs error over the FD items and every parameter, over the largest FD entry."""
    err, scale = 0.0, 0.0
    for i, fd in enumerate(fds):
        for g, f in zip(grads, fd):
            err = max(err, float(np.abs(g[i].numpy() - f).max()))
            scale = max(scale, float(np.abs(f).max()))
    return err / scale


def bench_family(family: Family, repeats: int, fd_items: int) -> tuple[list[Row], list[str]]:
    params = [torch.tensor(v, dtype=torch.float64) for v in family.values]
    ours = CvxpyLayer(family.problem, family.parameters, output="value")
    grads: dict[str, list[torch.Tensor]] = {}

    def leaves() -> list[torch.Tensor]:
        return [p.clone().requires_grad_(True) for p in params]

    def run_ours() -> None:
        p = leaves()
        ours(*p).sum().backward()
        grads["ours"] = [t.grad for t in p]

    glop = CvxpyLayer(family.problem, family.parameters, output="value", backend="glop")

    def run_glop() -> None:
        p = leaves()
        glop(*p).sum().backward()
        grads["ours, glop"] = [t.grad for t in p]

    fns: dict[str, Callable[[], None]] = {"ours": run_ours, "ours, glop": run_glop}
    have_ref = importlib.util.find_spec("cvxpylayers") is not None
    if have_ref:
        from cvxpylayers.torch import CvxpyLayer as ReferenceLayer

        ref = ReferenceLayer(family.problem, family.parameters, family.variables)
        dual_vars = [con.dual_variables[0] for con in family.duals]
        ref_duals = ReferenceLayer(
            family.problem, family.parameters, [*family.variables, *dual_vars]
        )
        n_var = len(family.variables)

        def run_ref() -> None:
            p = leaves()
            xs = ref(*p)
            family.value(p, xs).sum().backward()
            grads["cvxpylayers"] = [t.grad for t in p]

        def run_ref_duals() -> None:
            p = leaves()
            with torch.no_grad():
                out = ref_duals(*p)
            xs, ys = out[:n_var], out[n_var:]
            family.lagrangian(p, xs, ys).sum().backward()
            grads["cvxpylayers, duals"] = [t.grad for t in p]

        fns["cvxpylayers"] = run_ref
        fns["cvxpylayers, duals"] = run_ref_duals
    else:
        print("cvxpylayers is not installed: its comparison is skipped (make bench installs it)")
    times = measure(fns, repeats, warmup=1)
    fds = [fd_gradient(family, i) for i in range(fd_items)]
    errors = {name: rel_error(g, fds) for name, g in grads.items()}
    batch = params[0].shape[0]
    what = f"{family.name}, batch {batch}, fwd+bwd"
    rows = []
    if have_ref:
        for ref_name, how in (
            ("cvxpylayers", "autograd through its solution"),
            ("cvxpylayers, duals", "forward with duals, envelope formula"),
        ):
            rows.append(
                ratio_row(
                    what,
                    times,
                    "ours",
                    ref_name,
                    SPEED,
                    f"vs {ref_name} ({how}); gradient error vs FD: ours "
                    f"{errors['ours']:.1e}, {ref_name} {errors[ref_name]:.1e}",
                )
            )
        rows.append(
            ratio_row(
                f"{what}, backend='glop'",
                times,
                "ours, glop",
                "cvxpylayers",
                None,
                "the same layer with backend='glop' (untargeted: the default is 'highs'); "
                f"gradient error vs FD {errors['ours, glop']:.1e}",
            )
        )
    else:
        rows.append(Row(what, times["ours"], "-", None))
    lines = [
        f"  {('met   ' if err <= EXACT_RTOL else 'MISSED') if name == 'ours' else '      '}"
        f"  {family.name}: {name} gradient rel. error vs FD {err:.1e}"
        + (f" (target <= {EXACT_RTOL:.0e})" if name == "ours" else "")
        for name, err in errors.items()
    ]
    return rows, lines


def run(quick: bool = False, repeats: int | None = None) -> list[Row]:
    """Run the three families and print the timing table and the exactness lines."""
    if quick:
        families = [assignment(4, 4), random_lp(4, 6, 4), allocation(4, 6, 3)]
        reps, fd_items = repeats or 2, 1
    else:
        families = [assignment(64, 10), random_lp(64, 20, 15), allocation(64, 30, 5)]
        reps, fd_items = repeats or 5, 2
    rows: list[Row] = []
    lines = ["gradient error vs finite differences (relative to the largest entry):"]
    for family in families:
        r, ls = bench_family(family, reps, fd_items)
        rows += r
        lines += ls
    print(format_table("== cvxpy ==", rows))
    print("\n".join(lines))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    return run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
