"""Shared machinery for optimizers that own their communication.

`_CommunicatingOptimizer` holds the process group, the flat-parameter layout, the byte
counters, the timeout handling and the cross-rank consistency checks used by `DORE` and the
baselines. Only torch is imported.
"""

from __future__ import annotations

import atexit
import zlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["CommunicationError", "ring_allreduce_bytes"]

#: Size of the ``int32`` header that precedes every variable-size payload.
HEADER_NBYTES = 4
MASTER_RANK = 0


class CommunicationError(RuntimeError):
    """A collective or point-to-point operation failed or timed out.

    Raised instead of hanging when a peer rank died, hung or left the process group. The message
    names the optimizer, the step, this rank, the operation and the timeout.
    """


def _to_timedelta(timeout: float | timedelta) -> timedelta:
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise TypeError(f"`timeout` must be seconds (float) or a timedelta; got {timeout!r}")
    if not seconds > 0.0 or seconds == float("inf"):
        raise ValueError(f"Invalid timeout: {timeout} (must be a positive, finite duration)")
    return timedelta(seconds=seconds)


_EXIT_HOOK_REGISTERED = False


def _destroy_gloo_group_at_exit() -> None:
    """Leave a gloo default process group that is still up when the interpreter exits.

    Without `destroy_process_group`, gloo's worker threads can still hold the last reference to
    a finished asynchronous work (and its tensors) while the interpreter is torn down; releasing
    it then aborts the process (`terminate called without an active exception`), at random.
    Destroying the group while Python is still alive joins those threads first. It is local (no
    collective) for gloo, and a no-op if the program already called `destroy_process_group`.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "gloo":
        dist.destroy_process_group()


def _register_exit_hook() -> None:
    global _EXIT_HOOK_REGISTERED
    if not _EXIT_HOOK_REGISTERED:
        atexit.register(_destroy_gloo_group_at_exit)
        _EXIT_HOOK_REGISTERED = True


class _CommunicatingOptimizer(Optimizer):
    """Base class: flat parameter layout, byte counters, timeouts and consistency checks.

    Subclasses implement `step`. All parameters must share one dtype and one device; they are
    treated as one flat vector (in `param_groups` order), the way DDP treats a bucket.
    """

    def __init__(
        self,
        params: Any,
        defaults: dict[str, Any],
        *,
        process_group: dist.ProcessGroup | None,
        timeout: float | timedelta,
        broadcast_parameters: bool,
    ) -> None:
        self.timeout = _to_timedelta(timeout)
        super().__init__(params, defaults)
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                f"{type(self).__name__} needs an initialized torch.distributed process group: call "
                "torch.distributed.init_process_group(...) first (torchrun sets the environment), "
                "or start the workers with combgrad.distributed.launch(...)"
            )
        _register_exit_hook()
        self.process_group = process_group
        self.rank = dist.get_rank(process_group)
        self.world_size = dist.get_world_size(process_group)
        self._global_master = (
            dist.get_global_rank(process_group, MASTER_RANK)
            if (process_group is not None)
            else MASTER_RANK
        )
        params_flat = self._params()
        if not params_flat:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        dtypes = {p.dtype for p in params_flat}
        devices = {p.device for p in params_flat}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ValueError(
                "All parameters must share one dtype and one device; got dtypes "
                f"{sorted(map(str, dtypes))} and devices {sorted(map(str, devices))}"
            )
        if not params_flat[0].is_floating_point():
            raise ValueError(f"Parameters must be floating point; got {params_flat[0].dtype}")
        self.dtype = params_flat[0].dtype
        self.device = params_flat[0].device
        self.numel = sum(p.numel() for p in params_flat)
        self.element_size = params_flat[0].element_size()
        #: Bytes this rank sent / received in ``step`` (payloads and size headers).
        self.bytes_sent = 0
        self.bytes_received = 0
        #: Bytes this rank sent / received while setting up (shape check, initial broadcast).
        self.setup_bytes_sent = 0
        self.setup_bytes_received = 0
        self.step_count = 0
        self._check_same_parameters(params_flat)
        if broadcast_parameters:
            self._broadcast_initial_parameters(params_flat)

    # -- layout ---------------------------------------------------------------------------------
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _flat_grad(self) -> Tensor:
        """Concatenated gradients, shape `(numel,)`; a missing `.grad` counts as zeros."""
        return torch.cat(
            [
                p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1)
                for p in self._params()
            ]
        )

    def _flat_lr(self) -> Tensor | float:
        """The learning rate: a float, or a `(numel,)` tensor if param groups differ."""
        rates = {float(group["lr"]) for group in self.param_groups}
        if len(rates) == 1:
            return rates.pop()
        parts = [
            torch.full((p.numel(),), float(group["lr"]), dtype=self.dtype, device=self.device)
            for group in self.param_groups
            for p in group["params"]
        ]
        return torch.cat(parts)

    def _add_to_params(self, flat: Tensor, alpha: float = 1.0) -> None:
        """`p += alpha * flat[slice of p]` for every parameter."""
        offset = 0
        for p in self._params():
            n = p.numel()
            p.add_(flat[offset : offset + n].view_as(p), alpha=alpha)
            offset += n

    def _flat_state(self, key: str) -> Tensor:
        return torch.cat([self.state[p][key].reshape(-1) for p in self._params()])

    def _store_flat_state(self, key: str, flat: Tensor) -> None:
        offset = 0
        for p in self._params():
            n = p.numel()
            self.state[p][key].copy_(flat[offset : offset + n].view_as(p))
            offset += n

    # -- communication helpers ------------------------------------------------------------------
    @property
    def is_master(self) -> bool:
        """`True` on rank 0 of the process group, which acts as the parameter server."""
        return self.rank == MASTER_RANK

    def _global(self, group_rank: int) -> int:
        if self.process_group is None:
            return group_rank
        return dist.get_global_rank(self.process_group, group_rank)

    def _wait(self, works: Sequence[Any], what: str) -> None:
        """Wait for async works, turning failures and timeouts into [`CommunicationError`][combgrad.distributed.CommunicationError]."""
        try:
            for work in works:
                if work is not None:
                    work.wait(self.timeout)
        except Exception as exc:
            raise CommunicationError(
                f"{type(self).__name__} step {self.step_count}, rank {self.rank}/{self.world_size}:"
                f" '{what}' failed or timed out (timeout {self.timeout.total_seconds():g} s). A peer"
                f" rank probably died, hung or diverged from this one. Original error: {exc}"
            ) from exc

    def _gather_payloads_to_master(
        self, payload: Tensor, fixed_nbytes: int | None, what: str
    ) -> list[Tensor] | None:
        """Point-to-point: every worker sends `payload` to the master.

        Variable-size payloads (`fixed_nbytes is None`) are preceded by an `int32` size header.

        Returns:
            On the master, the payloads of ranks `1 .. n-1` in rank order; `None` on workers.
        """
        if self.world_size == 1:
            return [] if self.is_master else None
        if not self.is_master:
            works = []
            if fixed_nbytes is None:
                header = torch.tensor([payload.numel()], dtype=torch.int32, device=self.device)
                works.append(dist.isend(header, self._global_master, self.process_group, tag=1))
                self.bytes_sent += HEADER_NBYTES
            elif payload.numel() != fixed_nbytes:
                raise RuntimeError(f"payload has {payload.numel()} bytes, expected {fixed_nbytes}")
            works.append(dist.isend(payload, self._global_master, self.process_group, tag=2))
            self._wait(works, f"send {what} to the master (rank {MASTER_RANK})")
            self.bytes_sent += payload.numel()
            return None
        workers = range(1, self.world_size)
        if fixed_nbytes is None:
            headers = {r: torch.empty(1, dtype=torch.int32, device=self.device) for r in workers}
            works = [
                dist.irecv(headers[r], self._global(r), self.process_group, tag=1) for r in workers
            ]
            self._wait(works, f"receive the size headers of {what} from ranks 1..{len(workers)}")
            self.bytes_received += HEADER_NBYTES * len(workers)
            sizes = {r: int(headers[r].item()) for r in workers}
        else:
            sizes = dict.fromkeys(workers, fixed_nbytes)
        buffers = [torch.empty(sizes[r], dtype=torch.uint8, device=self.device) for r in workers]
        works = [
            dist.irecv(buf, self._global(r), self.process_group, tag=2)
            for r, buf in zip(workers, buffers)
        ]
        self._wait(works, f"receive {what} from ranks 1..{len(workers)}")
        self.bytes_received += sum(sizes.values())
        return buffers

    def _broadcast_payload_from_master(
        self, payload: Tensor | None, fixed_nbytes: int | None, what: str
    ) -> Tensor:
        """Broadcast the master's `payload` (`None` on workers); returns it on every rank.

        The master is counted as sending one copy to each of the `n - 1` workers.
        """
        if self.world_size == 1:
            if payload is None:
                raise RuntimeError("a single-rank group has no master payload to broadcast")
            return payload
        copies = self.world_size - 1
        if fixed_nbytes is None:
            header = torch.tensor(
                [payload.numel() if payload is not None else 0],
                dtype=torch.int32,
                device=self.device,
            )
            work = dist.broadcast(header, self._global_master, self.process_group, async_op=True)
            self._wait([work], f"broadcast the size header of {what}")
            nbytes = int(header.item())
            self._count_broadcast(HEADER_NBYTES, copies)
        else:
            nbytes = fixed_nbytes
        if payload is None:
            payload = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
        elif payload.numel() != nbytes:
            raise RuntimeError(f"payload has {payload.numel()} bytes, expected {nbytes}")
        work = dist.broadcast(payload, self._global_master, self.process_group, async_op=True)
        self._wait([work], f"broadcast {what}")
        self._count_broadcast(nbytes, copies)
        return payload

    def _count_broadcast(self, nbytes: int, copies: int) -> None:
        if self.is_master:
            self.bytes_sent += nbytes * copies
        else:
            self.bytes_received += nbytes

    def _check_same_parameters(self, params: list[Tensor]) -> None:
        """Raise `ValueError` on every rank if the parameter lists differ across ranks."""
        shapes = [(tuple(p.shape), str(p.dtype)) for p in params]
        signature = torch.tensor(
            [len(params), self.numel, zlib.crc32(repr(shapes).encode())],
            dtype=torch.int64,
            device=self.device,
        )
        gathered = [torch.empty_like(signature) for _ in range(self.world_size)]
        work = dist.all_gather(gathered, signature, group=self.process_group, async_op=True)
        self._wait([work], "all_gather of the parameter-shape signatures")
        nbytes = signature.numel() * signature.element_size()
        self.setup_bytes_sent += nbytes * (self.world_size - 1)
        self.setup_bytes_received += nbytes * (self.world_size - 1)
        rows = [g.tolist() for g in gathered]
        if any(row != rows[0] for row in rows):
            described = "; ".join(
                f"rank {r}: {row[0]} tensors, {row[1]} elements, shape hash {row[2]:#010x}"
                for r, row in enumerate(rows)
            )
            raise ValueError(
                f"{type(self).__name__}: parameter shapes differ across ranks ({described}). "
                f"This rank ({self.rank}) has shapes {[s for s, _ in shapes]}. Every rank must "
                "pass the same parameters in the same order."
            )

    def _broadcast_initial_parameters(self, params: list[Tensor]) -> None:
        """Copy the master's parameters to every rank so that all start from the same point."""
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in params])
            work = dist.broadcast(
                flat, src=self._global_master, group=self.process_group, async_op=True
            )
            self._wait([work], "broadcast of the initial parameters")
            offset = 0
            for p in params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()
        nbytes = self.numel * self.element_size
        if self.is_master:
            self.setup_bytes_sent += nbytes * (self.world_size - 1)
        else:
            self.setup_bytes_received += nbytes

    # -- reporting ------------------------------------------------------------------------------
    def dense_bytes_per_step(self) -> int:
        """Bytes this rank sends plus receives per step in uncompressed ring all-reduce SGD.

        This is the reference of `bytes_ratio`: a bandwidth-optimal all-reduce of the dense
        gradient (`numel` entries of `element_size` bytes) moves `2 (n - 1) / n` of the
        vector out of and into every rank (exact chunk sizes, see [`ring_allreduce_bytes`][combgrad.distributed.ring_allreduce_bytes]).
        """
        sent, received = ring_allreduce_bytes(
            self.numel, self.element_size, self.world_size, self.rank
        )
        return sent + received

    @property
    def bytes_ratio(self) -> float:
        """`(bytes_sent + bytes_received) / (steps * dense_bytes_per_step())` on this rank.

        Per rank the parameter-server topology is unbalanced (the master moves `n - 1` times a
        worker's traffic); summed over all ranks, uncompressed SGD moves the same total in both
        topologies, so the ratio of totals (see `gather_byte_counts`) is the fair figure.
        """
        reference = self.step_count * self.dense_bytes_per_step()
        if reference == 0:
            return float("nan")
        return (self.bytes_sent + self.bytes_received) / reference

    def gather_byte_counts(self) -> dict[str, int | float]:
        """Collective: sum the byte counters over all ranks (every rank must call it).

        Returns:
            `{"steps", "bytes_sent", "bytes_received", "dense_bytes", "bytes_ratio"}`, where the
                sums run over ranks, `dense_bytes` is what uncompressed all-reduce SGD sends in total
                over the same steps and `bytes_ratio = bytes_sent / dense_bytes`. These counts are
                not added to the counters.
        """
        dense_sent = (
            self.step_count
            * ring_allreduce_bytes(self.numel, self.element_size, self.world_size, self.rank)[0]
        )
        counts = torch.tensor(
            [self.bytes_sent, self.bytes_received, dense_sent],
            dtype=torch.int64,
            device=self.device,
        )
        work = dist.all_reduce(counts, group=self.process_group, async_op=True)
        self._wait([work], "all_reduce of the byte counters")
        sent, received, dense = (int(v) for v in counts.tolist())
        return {
            "steps": self.step_count,
            "bytes_sent": sent,
            "bytes_received": received,
            "dense_bytes": dense,
            "bytes_ratio": sent / dense if dense else float("nan"),
        }

    # -- state_dict -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["communication"] = {
            "step_count": self.step_count,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "setup_bytes_sent": self.setup_bytes_sent,
            "setup_bytes_received": self.setup_bytes_received,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        communication = state_dict.pop("communication", None)
        super().load_state_dict(state_dict)
        if communication is not None:
            for key, value in communication.items():
                setattr(self, key, int(value))


def ring_allreduce_bytes(
    numel: int, element_size: int, world_size: int, rank: int
) -> tuple[int, int]:
    """Bytes `(sent, received)` by `rank` in one ring all-reduce of `numel` entries.

    The vector is split into `world_size` chunks as `torch.tensor_split` does. In each of
    the `n - 1` reduce-scatter steps rank `r` sends chunk `(r - s) mod n` and receives chunk
    `(r - s - 1) mod n`; in each of the `n - 1` all-gather steps it sends chunk
    `(r + 1 - s) mod n` and receives chunk `(r - s) mod n`. Summed over ranks this is
    `2 (n - 1) numel` entries, the minimum for any all-reduce.
    """
    n = world_size
    if n == 1:
        return 0, 0
    base, extra = divmod(numel, n)
    chunk = [base + (1 if c < extra else 0) for c in range(n)]
    sent = received = 0
    for s in range(n - 1):
        sent += chunk[(rank - s) % n] + chunk[(rank + 1 - s) % n]
        received += chunk[(rank - s - 1) % n] + chunk[(rank - s) % n]
    return sent * element_size, received * element_size
