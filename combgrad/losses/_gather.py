"""A row-wise gather whose backward writes the gradient without a dense zero-fill in torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from .._autograd import cached_forward_signature

__all__ = ["gather_rows"]


@cached_forward_signature
class _GatherRows(torch.autograd.Function):
    """`out[b, l] = table[b, index[b, l]]`, or 0 where `index[b, l] < 0`."""

    @staticmethod
    def forward(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        valid = index >= 0
        picked = table.gather(1, index.clamp(min=0))
        return picked.masked_fill(~valid, 0.0)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, torch.Tensor], output: Any) -> None:
        table, index = inputs
        ctx.save_for_backward(index)
        ctx.table_shape = table.shape
        ctx.table_dtype = table.dtype
        ctx.mark_non_differentiable()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        (index,) = ctx.saved_tensors
        if grad_out.device.type == "cpu" and grad_out.dtype in (torch.float32, torch.float64):
            # numpy's zeros come from calloc (pages zeroed lazily by the kernel) and the
            # scatter touches only the picked entries: no torch fill over the whole table,
            # so no OpenMP region (whose spin-waiting workers cost ~5x on a busy machine).
            index_np = index.numpy()
            row, col = np.nonzero(index_np >= 0)
            grad = np.zeros(ctx.table_shape, dtype=grad_out.numpy().dtype)
            grad[row, index_np[row, col]] = grad_out.numpy()[row, col]
            return torch.from_numpy(grad), None
        grad = grad_out.new_zeros(ctx.table_shape)
        valid = index >= 0
        grad.scatter_(1, index.clamp(min=0), grad_out.masked_fill(~valid, 0.0))
        return grad, None


def gather_rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick `table[b, index[b, l]]` for every `(b, l)`; 0 where `index[b, l] < 0`.

    The picked positions of one row must be distinct (each is the cell of one matched
    pair), so the gradient is a scatter, not an accumulation.

    Args:
        table: (B, N) values, any floating dtype and device.
        index: (B, L) int64 positions in [0, N), or negative for "none".

    Returns:
        (B, L) picked values, differentiable in `table`.
    """
    return _GatherRows.apply(table, index)
