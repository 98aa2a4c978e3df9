"""solve_batch on a real dask.distributed cluster (LocalCluster, 2 worker processes).

One cluster serves every test (starting it is the slow part). Worker processes, not
threads, so that a worker can really die: the killed-worker test makes one chunk's
worker exit while it unpickles its task, and checks that only that chunk is lost and
that the failure says so.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from dask import config as dask_config
from distributed import Client, LocalCluster

import solvers
from solvers import Status
from tests.lp_cases import random_lp


class _KillsItsWorker:
    """A cost vector that ends the process reading it, unless it is the test process.

    ``np.asarray`` calls ``__array__`` when the worker validates the costs: the worker
    process exits mid-task, like a crash in native code. (The dask scheduler, which
    runs in this process, unpickles task arguments too, so unpickling cannot be the
    trigger.)
    """

    def __init__(self, n: int) -> None:
        self.pid = os.getpid()
        self.n = n

    def __array__(self, dtype=None, copy=None):
        if os.getpid() != self.pid:
            os._exit(3)
        return np.zeros(self.n, dtype=dtype)


@pytest.fixture(scope="module")
def client():
    # allowed-failures=0: a task whose worker dies fails at once instead of being retried.
    with dask_config.set({"distributed.scheduler.allowed-failures": 0}):
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                worker_dashboard_address=None,
            ) as cluster,
            Client(cluster) as c,
        ):
            c.wait_for_workers(2, timeout=120)
            yield c


def _summary(sols):
    # Rounded: a Solver's re-solves may differ in the last bits with the solve history
    # (HiGHS keeps internal state across cost changes), and chunks change that history.
    return [
        (s.status, None if s.x is None else np.round(s.x, 9).tolist(), repr(round(s.objective, 9)))
        for s in sols
    ]


def test_dask_executor_equals_serial_and_isolates_a_bad_item(client):
    structure = random_lp(11, n=5, m_ub=3, m_eq=1)
    costs = list(np.random.default_rng(0).normal(size=(9, 5)))
    costs[4] = np.array([1.0, np.nan, 0.0, 0.0, 0.0])  # a bad item
    serial = solvers.solve_batch(costs, structure=structure)
    distributed = solvers.solve_batch(costs, structure=structure, executor=client.get_executor())
    assert _summary(distributed) == _summary(serial)
    assert distributed[4].status is Status.ERROR and "batch item 4" in distributed[4].message
    assert [s.status for i, s in enumerate(distributed) if i != 4] == [Status.OPTIMAL] * 8


def test_dask_executor_with_problems(client):
    problems = [random_lp(seed, n=4, m_ub=2, m_eq=1) for seed in range(6)]
    serial = solvers.solve_batch(problems)
    distributed = solvers.solve_batch(problems, executor=client.get_executor())
    assert _summary(distributed) == _summary(serial)


def test_a_killed_worker_loses_only_its_chunk_and_says_so(client):
    structure = random_lp(11, n=5, m_ub=3, m_eq=1)
    costs = list(np.random.default_rng(1).normal(size=(8, 5)))
    items = [*costs[:6], _KillsItsWorker(5), costs[7]]
    sols = solvers.solve_batch(items, structure=structure, executor=client.get_executor())
    assert len(sols) == len(items)
    # Two workers: two chunks, items 0..3 and 4..7; the second one's worker died.
    lost = [i for i, s in enumerate(sols) if s.status is Status.ERROR]
    assert lost == [4, 5, 6, 7]
    for i in lost:
        assert f"batch item {i}" in sols[i].message
        assert "worker solving items 4..7 was lost" in sols[i].message
        assert "KilledWorker" in sols[i].message
    assert _summary(sols[:4]) == _summary(solvers.solve_batch(costs[:4], structure=structure))
    # The cluster recovers (the nanny restarts the worker): the next batch is complete.
    client.wait_for_workers(2, timeout=120)
    again = solvers.solve_batch(costs, structure=structure, executor=client.get_executor())
    assert _summary(again) == _summary(solvers.solve_batch(costs, structure=structure))
