"""Shared validation and reduction for the combinatorial losses."""

from __future__ import annotations

import torch

__all__ = ["check_finite_or_neg_inf", "check_reduction", "reduce_loss"]

REDUCTIONS = ("none", "sum", "mean")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}; got {reduction!r}.")


def check_finite_or_neg_inf(t: torch.Tensor, name: str) -> None:
    """Reject NaN and +inf; -inf (a log-probability of zero) is allowed."""
    total = t.detach().sum()  # one cheap pass: NaN or +inf anywhere shows in the sum
    if not (torch.isnan(total) or torch.isposinf(total)):
        return
    if torch.isnan(t).any():
        raise ValueError(f"`{name}` must not contain NaN.")
    if torch.isposinf(t).any():
        raise ValueError(f"`{name}` must not contain +inf (it holds log-probabilities).")


def reduce_loss(per_item: torch.Tensor, reduction: str, denominators: torch.Tensor) -> torch.Tensor:
    if reduction == "none":
        return per_item
    if reduction == "sum":
        return per_item.sum()
    return per_item.sum() / denominators.sum().clamp(min=1)
