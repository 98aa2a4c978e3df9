"""Decision-focused learning side by side with PyEPO, on PyEPO's own benchmark.

For each problem and seed, PyEPO generates the data (`pyepo.data.shortestpath.genData`
on a 5x5 grid, or `pyepo.data.knapsack.genData`), and its `optDataset` labels it with
true solutions and objectives through PyEPO's OR-Tools model (GLOP for the shortest
path, SCIP for the knapsack: no licence needed). Then the same linear model
(`torch.nn.Linear`, initialised from the same seed), the same optimizer (Adam) and the
same batches (a seeded shuffling `DataLoader`) are trained with each method through

* **PyEPO**: `pyepo.func.SPOPlus`, `perturbedFenchelYoung` (PFYL), `blackboxOpt` (DBB,
  with the L1 objective loss of PyEPO's tutorials), all with `processes=1`;
* **combgrad**: `combgrad.losses.SPOPlusLoss`, `FenchelYoungLoss` and
  `combgrad.argmin.blackbox` (same L1 loss) over the fast oracles of `solvers.oracles`
  (`grid_shortest_path`, `knapsack`; the knapsack maximizes, so combgrad sees negated
  values);

and the two-stage baseline (MSE on the costs, no solver; plain torch). Every trained
model is judged by PyEPO's `pyepo.metric.regret` (normalized) on the test set, through
PyEPO's own model. Seconds per epoch are the wall-clock training time of one epoch
(batch indexing, forward, loss with its solver calls, backward, step), median over
epochs and seeds, one process and one torch thread each; the epochs of the PyEPO and
combgrad models of one seed and method alternate, so that the machine's load hits both.

Targets (issue 11): each combgrad method's mean regret within the seed spread of
PyEPO's (met when `mean_ours <= mean_pyepo + std_pyepo`, std over seeds); and on the
shortest path, seconds per epoch at least 10x lower than PyEPO's (ratio <= 0.1).

Run: ``python -m benchmarks dfl [--quick]`` (needs the `bench` extra: ``pip install
'.[bench]'``); one problem only: ``python -c "from benchmarks import bench_dfl;
bench_dfl.run(problems=('shortest path',))"``. ``--quick`` uses 32 train/test samples, one seed and one epoch.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from ._timing import Row, Target, Timing

__all__ = ["Config", "run"]


@dataclass(frozen=True)
class Config:
    """Sizes and hyperparameters (PyEPO's tutorial settings unless noted)."""

    n_train: int = 1000
    n_test: int = 1000
    n_features: int = 5
    deg: int = 4
    noise: float = 0.5
    seeds: tuple[int, ...] = (0, 1, 2)
    grid: tuple[int, int] = (5, 5)
    knapsack_items: int = 32
    knapsack_dim: int = 1
    knapsack_capacity: float = 20.0
    batch_size: int = 32
    lr: float = 1e-2
    # Knapsack: PyEPO's SCIP solve takes ~10 ms, so its PFYL epoch takes ~30 s or more here.
    epochs: dict[str, int] = field(default_factory=lambda: {"shortest path": 10, "knapsack": 2})
    pfyl_samples: int = 3
    pfyl_sigma: float = 1.0
    dbb_lambda: float = 20.0
    methods: tuple[str, ...] = ("2S (MSE)", "SPO+", "PFYL", "DBB")


QUICK = Config(
    n_train=32,
    n_test=32,
    seeds=(0,),
    epochs={"shortest path": 1, "knapsack": 1},
)


@dataclass
class Result:
    """Per-seed regrets and per-epoch times of one (problem, method, library)."""

    regrets: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def timing(self) -> Timing:
        return Timing(np.asarray(self.wall), np.asarray(self.cpu))


@contextlib.contextmanager
def _quiet():
    """Silence PyEPO's progress bars and prints while it labels data."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        yield


# ------------------------------------------------------------------------------- problems
@dataclass
class Problem:
    name: str
    optmodel: object  # PyEPO's OR-Tools model (labels, PyEPO losses, the regret judge)
    oracle: object  # ours
    sign: float  # +1: PyEPO minimizes; -1: it maximizes (combgrad gets negated costs)
    train: object
    test: object
    n_features: int
    n_costs: int
    seed: int = -1


def _shortest_path(cfg: Config, seed: int) -> Problem:
    import pyepo

    from solvers.oracles import grid_shortest_path

    feats, costs = pyepo.data.shortestpath.genData(
        cfg.n_train + cfg.n_test, cfg.n_features, cfg.grid, deg=cfg.deg,
        noise_width=cfg.noise, seed=seed,
    )  # fmt: skip
    optmodel = pyepo.model.ort.shortestPathModel(cfg.grid)
    return _problem(
        "shortest path", cfg, optmodel, grid_shortest_path(*cfg.grid), 1.0, feats, costs
    )


def _knapsack(cfg: Config, seed: int) -> Problem:
    import pyepo

    from solvers.oracles import knapsack

    weights, feats, costs = pyepo.data.knapsack.genData(
        cfg.n_train + cfg.n_test, cfg.n_features, cfg.knapsack_items, dim=cfg.knapsack_dim,
        deg=cfg.deg, noise_width=cfg.noise, seed=seed,
    )  # fmt: skip
    capacity = [cfg.knapsack_capacity] * cfg.knapsack_dim
    optmodel = pyepo.model.ort.knapsackModel(weights, capacity)
    return _problem("knapsack", cfg, optmodel, knapsack(weights, capacity), -1.0, feats, costs)


def _problem(name, cfg, optmodel, oracle, sign, feats, costs) -> Problem:
    from pyepo.data.dataset import optDataset

    with _quiet():
        train = optDataset(optmodel, feats[: cfg.n_train], costs[: cfg.n_train])
        test = optDataset(optmodel, feats[cfg.n_train :], costs[cfg.n_train :])
    # Warm-up outside the timed epochs: loads (or compiles) the numba kernels.
    oracle.solve(sign * np.asarray(costs[: cfg.batch_size], dtype=np.float64))
    return Problem(name, optmodel, oracle, sign, train, test, feats.shape[1], costs.shape[1])


PROBLEMS: dict[str, Callable[[Config, int], Problem]] = {
    "shortest path": _shortest_path,
    "knapsack": _knapsack,
}


# ------------------------------------------------------------------------------- methods
def _loss_fn(method: str, library: str, prob: Problem, cfg: Config, seed: int):
    """A function (pred, c, w, z) -> scalar loss."""
    l1 = torch.nn.L1Loss()
    if method == "2S (MSE)":
        mse = torch.nn.MSELoss()
        return lambda pred, c, w, z: mse(pred, c)
    if library == "pyepo":
        import pyepo

        if method == "SPO+":
            spo = pyepo.func.SPOPlus(prob.optmodel, processes=1)
            return lambda pred, c, w, z: spo(pred, c, w, z)
        if method == "PFYL":
            pfy = pyepo.func.perturbedFenchelYoung(
                prob.optmodel, n_samples=cfg.pfyl_samples, sigma=cfg.pfyl_sigma,
                processes=1, seed=seed,
            )  # fmt: skip
            return lambda pred, c, w, z: pfy(pred, w)
        if method == "DBB":
            dbb = pyepo.func.blackboxOpt(prob.optmodel, lambd=cfg.dbb_lambda, processes=1)
            return lambda pred, c, w, z: l1((dbb(pred) * c).sum(1, keepdim=True), z)
    else:
        from combgrad.argmin import blackbox
        from combgrad.losses import FenchelYoungLoss, SPOPlusLoss

        # combgrad minimizes: a maximization problem (the knapsack) gets negated costs.
        s = (lambda t: t) if prob.sign > 0 else (lambda t: -t)
        if method == "SPO+":
            spo = SPOPlusLoss(prob.oracle)
            return lambda pred, c, w, z: spo(s(pred), s(c), w)
        if method == "PFYL":
            gen = torch.Generator().manual_seed(seed)
            pfy = FenchelYoungLoss(
                prob.oracle, sigma=cfg.pfyl_sigma, n_samples=cfg.pfyl_samples, generator=gen
            )
            return lambda pred, c, w, z: pfy(s(pred), w)
        if method == "DBB":
            return lambda pred, c, w, z: l1(
                (blackbox(s(pred), prob.oracle, lambda_=cfg.dbb_lambda) * c).sum(1, keepdim=True),
                z,
            )
    raise ValueError(f"unknown method {method!r}")


class _Trainer:
    """One model, optimizer and batch order; `epoch()` trains one epoch and times it.

    Batches index the dataset's tensors with a seeded permutation per epoch (the same
    batches for every library trained from the same seed); this skips the per-item
    Python overhead of a `DataLoader`, which both libraries would pay alike.
    """

    def __init__(self, method: str, library: str, prob: Problem, cfg: Config, seed: int):
        torch.manual_seed(seed)
        self.model = torch.nn.Linear(prob.n_features, prob.n_costs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.loss_fn = _loss_fn(method, library, prob, cfg, seed)
        self.generator = torch.Generator().manual_seed(seed)
        data = prob.train
        self.tensors = (data.feats, data.costs, data.sols, data.objs)
        self.batch_size = cfg.batch_size
        self.prob = prob

    def epoch(self, out: Result) -> None:
        c0, w0 = time.process_time(), time.perf_counter()
        self.model.train()
        perm = torch.randperm(len(self.tensors[0]), generator=self.generator)
        for start in range(0, len(perm), self.batch_size):
            idx = perm[start : start + self.batch_size]
            x, c, w, z = (t[idx] for t in self.tensors)
            loss = self.loss_fn(self.model(x), c, w, z)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        out.wall.append(time.perf_counter() - w0)
        out.cpu.append(time.process_time() - c0)

    def judge(self, out: Result) -> None:
        import pyepo
        from torch.utils.data import DataLoader

        test_loader = DataLoader(self.prob.test, batch_size=256, shuffle=False)
        with _quiet():
            out.regrets.append(
                float(pyepo.metric.regret(self.model, self.prob.optmodel, test_loader))
            )


def _train_and_judge(
    method: str, libraries: list[str], prob: Problem, cfg: Config, seed: int, epochs: int,
    results: dict[tuple[str, str], Result],
) -> None:  # fmt: skip
    """Train one model per library, epochs interleaved (a load spike hits both alike)."""
    trainers = {lib: _Trainer(method, lib, prob, cfg, seed) for lib in libraries}
    outs = {lib: results.setdefault((method, lib), Result()) for lib in libraries}
    for epoch in range(epochs):
        order = libraries if epoch % 2 == 0 else libraries[::-1]
        for lib in order:
            trainers[lib].epoch(outs[lib])
    for lib in libraries:
        trainers[lib].judge(outs[lib])


def _oracle_alone(prob: Problem, cfg: Config) -> str:
    """The combgrad oracle alone on one batch of true costs: median seconds per call."""
    from ._timing import per_call

    costs = prob.sign * prob.train.costs[: cfg.batch_size].numpy().astype(np.float64)
    t = per_call(lambda: prob.oracle.solve(costs), repeats=7, inner=20)
    return (
        f"oracle alone ({prob.oracle.name}, batch of {len(costs)}): "
        f"{t.median * 1e6:.1f} us per call (median of 7 x 20 calls)"
    )


# ------------------------------------------------------------------------------- report
def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std


def _table(
    problem: str, results: dict[tuple[str, str], Result], cfg: Config
) -> tuple[str, list[Row]]:
    speed_target = Target(0.1, "<= 0.1") if problem == "shortest path" else None
    lines = [
        f"== dfl: {problem} ==",
        f"{'method':<10} {'library':<9} {'regret mean ± std':<20} {'s/epoch':>9} "
        f"{'ratio':>7} {'regret target':<28} {'speed target':<14}",
        "-" * 101,
    ]
    rows: list[Row] = []
    for method in cfg.methods:
        libraries = ["torch"] if method == "2S (MSE)" else ["pyepo", "combgrad"]
        for lib in libraries:
            res = results[(method, lib)]
            mean, std = _mean_std(res.regrets)
            sec = res.timing().median
            ratio_txt, regret_txt, speed_txt = "-", "-", "-"
            if lib == "combgrad":
                ref = results[(method, "pyepo")]
                ref_mean, ref_std = _mean_std(ref.regrets)
                row = Row(
                    f"dfl {problem} {method} s/epoch",
                    res.timing(),
                    "pyepo",
                    ref.timing(),
                    speed_target,
                )
                rows.append(row)
                ratio_txt = f"{row.ratio:.3f}"
                ok = mean <= ref_mean + ref_std
                regret_txt = f"{'met' if ok else 'MISSED'} (<= {ref_mean + ref_std:.4f})"
                if speed_target is not None:
                    speed_txt = "met" if row.met else "MISSED"
            lines.append(
                f"{method:<10} {lib:<9} {f'{mean:.4f} ± {std:.4f}':<20} {sec:>9.3f} "
                f"{ratio_txt:>7} {regret_txt:<28} {speed_txt:<14}"
            )
    floor = results[("2S (MSE)", "torch")].timing().median
    over = []
    for method in cfg.methods[1:]:
        ours = results[(method, "combgrad")].timing().median - floor
        ref = results[(method, "pyepo")].timing().median - floor
        over.append(f"{method} {ours / ref:.3f}" if ref > 0 else f"{method} -")
    lines.append(
        f"time over the two-stage epoch ({floor:.3f} s, no solver), combgrad / pyepo: "
        + ", ".join(over)
    )
    lines.append(
        "notes: regret = pyepo.metric.regret (normalized) on the test set; s/epoch = median "
        "wall-clock seconds of a training epoch over epochs and seeds; ratio = combgrad / "
        "pyepo s/epoch; regret target: combgrad mean <= pyepo mean + pyepo std over seeds."
    )
    return "\n".join(lines), rows


def run(
    quick: bool = False, repeats: int | None = None, problems: tuple[str, ...] | None = None
) -> list[Row]:
    """Run the comparison and print one table per problem; return the timing rows.

    ``repeats`` (the suite's option) is ignored: every epoch is one timed sample.
    """
    cfg = QUICK if quick else Config()
    threads = torch.get_num_threads()
    # Tiny models: one torch thread for both libraries (no OpenMP hand-off per op).
    torch.set_num_threads(1)
    try:
        return _run(cfg, problems)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: Config, problems: tuple[str, ...] | None) -> list[Row]:
    print(
        f"== dfl == PyEPO's benchmark: {cfg.n_train} train / {cfg.n_test} test, "
        f"{cfg.n_features} features, deg {cfg.deg}, noise {cfg.noise}, seeds {list(cfg.seeds)}, "
        f"batch {cfg.batch_size}, Adam lr {cfg.lr}, epochs {cfg.epochs}, PFYL "
        f"{cfg.pfyl_samples} samples sigma {cfg.pfyl_sigma}, DBB lambda {cfg.dbb_lambda}; "
        f"knapsack {cfg.knapsack_items} items, dim {cfg.knapsack_dim}, capacity "
        f"{cfg.knapsack_capacity}; torch {torch.get_num_threads()} thread, epochs of the two "
        "libraries interleaved",
        flush=True,
    )
    all_rows: list[Row] = []
    for problem in problems or tuple(PROBLEMS):
        results: dict[tuple[str, str], Result] = {}
        runs = [(seed, method) for seed in cfg.seeds for method in cfg.methods]
        prob = None
        for seed, method in tqdm(runs, desc=f"dfl {problem}", leave=False):
            if prob is None or prob.seed != seed:
                prob = PROBLEMS[problem](cfg, seed)
                prob.seed = seed
            libraries = ["torch"] if method == "2S (MSE)" else ["pyepo", "combgrad"]
            _train_and_judge(method, libraries, prob, cfg, seed, cfg.epochs[problem], results)
        text, rows = _table(problem, results, cfg)
        print(text, flush=True)
        print(_oracle_alone(prob, cfg), flush=True)
        all_rows += rows
    return all_rows


if __name__ == "__main__":
    import sys

    run("--quick" in sys.argv[1:])
