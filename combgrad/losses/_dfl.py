"""Shared checks for the decision-focused losses (SPO+, Fenchel-Young, NCE)."""

from __future__ import annotations

from typing import Any

import torch

from ..argmin._common import as_batch, check_costs, check_shape

__all__ = ["check_pair", "reduce_mean"]


def check_pair(
    first: torch.Tensor, second: Any, n: int, names: tuple[str, str], values: bool = True
) -> torch.Tensor:
    """Check `second` (a tensor) against `first`'s batch shape; both `(B, n)` or `(n,)`.

    `values=False` checks the shape only (the caller checks finiteness later).
    """
    (check_costs if values else check_shape)(second, n, names[1])
    if as_batch(second).shape != as_batch(first).shape:
        raise ValueError(
            f"`{names[1]}` must have the shape of `{names[0]}`, {tuple(first.shape)}; "
            f"got {tuple(second.shape)}."
        )
    return second


def reduce_mean(per_item: torch.Tensor, reduction: str, single: bool) -> torch.Tensor:
    """Reduce `(B,)` per-item losses: `"mean"` over items, `"sum"`, or `"none"`.

    `reduction` has been validated by the caller.
    """
    if reduction == "none":
        return per_item[0] if single else per_item
    if reduction == "sum":
        return per_item.sum()
    return per_item.mean()
