"""Start local worker processes on the loopback interface, with timeouts everywhere.

[`launch`][combgrad.distributed.launch] is the plain-python alternative to `torchrun` for one machine: it picks a free
port on 127.0.0.1 at run time, spawns `world_size` processes, initializes a process group in each
(with a collective timeout), runs `fn(rank, world_size, *args)` and returns the per-rank results.
Every process is joined with a deadline and killed if it overstays, so nothing hangs.
"""

from __future__ import annotations

import os
import pickle
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["find_free_port", "init_from_env", "launch"]

LOOPBACK = "127.0.0.1"


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (chosen by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _loopback_interface() -> str | None:
    names = {name for _, name in socket.if_nameindex()}
    for candidate in ("lo", "lo0"):
        if candidate in names:
            return candidate
    return None


def _pin_gloo_to_loopback() -> None:
    """Make gloo open its peer connections on the loopback interface (unless told otherwise)."""
    if "GLOO_SOCKET_IFNAME" not in os.environ:
        interface = _loopback_interface()
        if interface is not None:
            os.environ["GLOO_SOCKET_IFNAME"] = interface


def init_from_env(backend: str | None = None, timeout: float = 60.0) -> tuple[int, int]:
    """Initialize the default process group from torchrun's environment variables.

    Args:
        backend: `"gloo"` or `"nccl"`; default `"nccl"` if CUDA is available, else gloo.
        timeout: collective timeout in seconds.

    Returns:
        `(rank, world_size)`.
    """
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    return dist.get_rank(), dist.get_world_size()


#: Seconds to wait, after a failure report, for reports of earlier failures from other ranks.
_FAILURE_GRACE = 0.5

_PRELOAD = ["torch", "torch.distributed", "torch._dynamo", "combgrad.distributed"]


def _context(start_method: str | None) -> Any:
    if start_method is None:
        start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    if start_method not in ("spawn", "forkserver"):
        raise ValueError(
            f"Invalid start_method: {start_method!r} (expected 'spawn' or 'forkserver'; 'fork' "
            "is unsafe once torch has started threads)"
        )
    context = mp.get_context(start_method)
    if start_method == "forkserver":
        # torch.optim.Optimizer imports torch._dynamo on first use; preload it once for all.
        context.set_forkserver_preload(_PRELOAD)
    return context


def _worker(
    rank: int,
    fn: Callable[..., Any],
    world_size: int,
    port: int,
    backend: str,
    timeout: float,
    args: tuple[Any, ...],
    results: Any,
) -> None:
    _pin_gloo_to_loopback()
    torch.set_num_threads(1)  # one intra-op thread per process: the processes share the cores
    initialized = False
    try:
        dist.init_process_group(
            backend,
            init_method=f"tcp://{LOOPBACK}:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout),
        )
        initialized = True
        result = fn(rank, world_size, *args)
        # Plain pickle, by value: torch.multiprocessing's queue would share a tensor's storage
        # through a file descriptor that dies with this process, before the parent reads it.
        report = (rank, True, time.time(), pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except BaseException:
        report = (rank, False, time.time(), traceback.format_exc())
    # Report before leaving the process group: a failing rank's peers fail in turn when it
    # leaves, and the failure that caused theirs must reach the parent first.
    results.put(report)
    results.close()
    results.join_thread()
    if initialized:
        dist.destroy_process_group()
    if not report[1]:
        raise SystemExit(1)


def _raise_first_failure(results: Any, failure: tuple[float, int, str]) -> None:
    """Raise for the earliest failure among `failure` and those reported just after it.

    A rank that fails makes its peers fail in turn (their collectives lose a member); reports
    arriving within a short grace period are compared by the time each failure happened.
    """
    failures = [failure]
    grace = time.monotonic() + _FAILURE_GRACE
    while True:
        remaining = grace - time.monotonic()
        if remaining <= 0:
            break
        try:
            rank, ok, when, value = results.get(timeout=remaining)
        except queue_module.Empty:
            break
        if not ok:
            failures.append((when, rank, value))
    when, rank, value = min(failures)
    others = sorted(r for _, r, _ in failures if r != rank)
    also = f" (then rank(s) {others} failed too)" if others else ""
    raise RuntimeError(f"launch: rank {rank} raised first{also}:\n{value}")


def launch(
    fn: Callable[..., Any],
    world_size: int,
    args: tuple[Any, ...] = (),
    *,
    backend: str = "gloo",
    timeout: float = 60.0,
    join_timeout: float = 300.0,
    allow_missing: bool = False,
    start_method: str | None = None,
) -> list[Any]:
    """Run `fn(rank, world_size, *args)` in `world_size` spawned local processes.

    `fn` must be picklable (defined at module top level). Its return values must be picklable;
    they are pickled by value (tensors included, CPU or not), so they outlive the worker.

    Args:
        fn: the per-rank function; the default process group is initialized when it runs.
        world_size: number of processes, at least 1.
        args: extra positional arguments for `fn`.
        backend: `"gloo"` (CPU) or `"nccl"` (one GPU per process).
        timeout: collective timeout in seconds, passed to `init_process_group`.
        join_timeout: seconds after which all processes are killed and `TimeoutError` raised.
        allow_missing: return `None` for ranks that exited without a result (e.g. killed)
            instead of raising.
        start_method: `"spawn"` or `"forkserver"`. The default, `"forkserver"` where
            available, imports torch once in a server process and forks the workers from it,
            which saves each worker several seconds of imports.

    Returns:
        The return values of `fn`, indexed by rank.

    Raises:
        RuntimeError: if a process raised (the message carries the traceback of the rank that
            failed first, and names the ranks that failed after it; the others are killed at
            once) or exited without a result.
        TimeoutError: if the processes did not finish within `join_timeout` seconds.
    """
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"Invalid world_size: {world_size} (must be a positive int)")
    if not join_timeout > 0:
        raise ValueError(f"Invalid join_timeout: {join_timeout}")
    context = _context(start_method)
    results = context.Queue()
    port = find_free_port()
    processes = []
    for rank in range(world_size):
        process = context.Process(
            target=_worker,
            args=(rank, fn, world_size, port, backend, timeout, tuple(args), results),
            daemon=True,
        )
        process.start()
        processes.append(process)
    deadline = time.monotonic() + join_timeout
    collected: dict[int, Any] = {}
    try:
        while len(collected) < world_size:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"launch: {world_size - len(collected)} of {world_size} processes did not "
                    f"finish within join_timeout={join_timeout:g} s (ranks done: "
                    f"{sorted(collected)}); all were killed"
                )
            all_exited = not any(p.is_alive() for p in processes)
            try:
                # Once every process has exited, whatever they reported is already in the pipe.
                rank, ok, when, value = results.get(timeout=0.05 if all_exited else 0.2)
            except queue_module.Empty:
                if all_exited:
                    break
                continue
            if not ok:
                _raise_first_failure(results, (when, rank, value))
            collected[rank] = pickle.loads(value)
        missing = [r for r in range(world_size) if r not in collected]
        if missing and not allow_missing:
            raise RuntimeError(
                f"launch: rank(s) {missing} exited without a result (exit codes "
                f"{[processes[r].exitcode for r in missing]})"
            )
        for process in processes:
            process.join(max(0.1, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
        results.close()
        results.join_thread()
    return [collected.get(rank) for rank in range(world_size)]
