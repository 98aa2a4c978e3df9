"""Baselines for DORE under the same API: dense all-reduce SGD and memory-less compression."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim.optimizer import ParamsT

from ._base import _CommunicatingOptimizer, ring_allreduce_bytes
from .compressors import Compressor
from .dore import DORE

__all__ = ["AllReduceSGD", "CompressedSGD"]


class AllReduceSGD(_CommunicatingOptimizer):
    r"""Uncompressed distributed SGD: all-reduce the gradients, then a plain SGD step.

    $$
    x \leftarrow x - \gamma\, \frac1n \sum_{i=1}^n g_i
    $$

    Every rank applies the same update, so the models stay identical. Byte accounting counts the
    volume of a ring all-reduce of the dense gradient ([`ring_allreduce_bytes`][combgrad.distributed.ring_allreduce_bytes]: every rank
    sends and receives `2 (n - 1) / n` of the vector); gloo and NCCL may pick another algorithm
    internally, but none moves fewer bytes in total.

    Args:
        params: iterable of parameters or parameter groups (one dtype and device).
        lr: learning rate $\gamma$.
        process_group: process group (default: the default group).
        timeout: seconds (or a `timedelta`) to wait before raising
            `CommunicationError`.
        broadcast_parameters: copy rank 0's parameters to all ranks at construction.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        *,
        process_group: dist.ProcessGroup | None = None,
        timeout: float | timedelta = 60.0,
        broadcast_parameters: bool = True,
    ) -> None:
        if isinstance(lr, Tensor):
            lr = float(lr)
        if not 0.0 <= lr < float("inf"):
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(
            params,
            {"lr": lr},
            process_group=process_group,
            timeout=timeout,
            broadcast_parameters=broadcast_parameters,
        )

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """All-reduce the gradients and take an SGD step (a collective: all ranks call it)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad = self._flat_grad()
        if not bool(torch.isfinite(grad).all()):
            raise ValueError(
                f"AllReduceSGD step {self.step_count}, rank {self.rank}: the gradient has "
                "non-finite entries"
            )
        if self.world_size > 1:
            work = dist.all_reduce(grad, group=self.process_group, async_op=True)
            self._wait([work], "all_reduce of the gradients")
            sent, received = ring_allreduce_bytes(
                self.numel, self.element_size, self.world_size, self.rank
            )
            self.bytes_sent += sent
            self.bytes_received += received
        grad.div_(self.world_size)
        self._add_to_params(-self._flat_lr() * grad)
        self.step_count += 1
        return loss


class CompressedSGD(DORE):
    r"""Compressed SGD *without* memories, in both directions (QSGD-style baseline).

    Workers send $Q(g_i)$; the master averages them and broadcasts
    $Q(-\gamma \frac1n \sum_i Q(g_i))$; every rank adds it to the model. This is exactly
    [`DORE`][combgrad.distributed.DORE] with `alpha = 0` (no gradient memory), `eta = 0` (no error feedback) and
    `beta = 1`, run through the same code and the same byte accounting. Because the compression
    noise is proportional to $\|g_i\|$, which does not vanish at the optimum when the workers'
    data differ, it stalls at a noise floor of order $\gamma$.

    Args:
        params: iterable of parameters or parameter groups (one dtype and device).
        lr: learning rate $\gamma$.
        compressor: the compressor, used in both directions (default ternary, block 256).
        block_size: block size of the default compressor.
        seed: as in [`DORE`][combgrad.distributed.DORE].
        process_group: as in [`DORE`][combgrad.distributed.DORE].
        timeout: as in [`DORE`][combgrad.distributed.DORE].
        broadcast_parameters: as in [`DORE`][combgrad.distributed.DORE].
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        *,
        compressor: Compressor | None = None,
        block_size: int = 256,
        seed: int | None = None,
        process_group: dist.ProcessGroup | None = None,
        timeout: float | timedelta = 60.0,
        broadcast_parameters: bool = True,
    ) -> None:
        super().__init__(
            params,
            lr,
            alpha=0.0,
            beta=1.0,
            eta=0.0,
            compressor=compressor,
            block_size=block_size,
            seed=seed,
            process_group=process_group,
            timeout=timeout,
            broadcast_parameters=broadcast_parameters,
        )
