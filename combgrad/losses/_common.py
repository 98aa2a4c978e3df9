"""Shared validation and reduction for the combinatorial losses."""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "check_finite_or_neg_inf",
    "check_index_tensor",
    "check_log_probs",
    "check_reduction",
    "check_solver",
    "reduce_loss",
]

REDUCTIONS = ("none", "sum", "mean")


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {REDUCTIONS}; got {reduction!r}.")


def check_solver(solver: str) -> None:
    if solver not in ("exact", "lp"):
        raise ValueError(f"`solver` must be 'exact' or 'lp'; got {solver!r}.")


def _shape_of(t: object) -> object:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t)


def check_log_probs(log_probs: object, layout: str) -> None:
    """A floating (B, ., C) tensor; ``layout`` names the dimensions for the message."""
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() != 3:
        raise ValueError(
            f"`log_probs` must be a tensor of shape {layout}; got {_shape_of(log_probs)}."
        )
    if not log_probs.is_floating_point():
        raise TypeError(f"`log_probs` must be floating point; got {log_probs.dtype}.")


def check_index_tensor(t: object, name: str, batch: int, what: str) -> None:
    """An integer (B, L) tensor of ids (``what`` says which ids, for the message)."""
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != batch:
        raise ValueError(f"`{name}` must have shape (B, L) = ({batch}, L); got {_shape_of(t)}.")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold integer {what}; got {t.dtype}.")


def check_finite_or_neg_inf(t: torch.Tensor, name: str) -> bool:
    """Reject NaN and +inf; -inf (a log-probability of zero) is allowed.

    Returns:
        Whether ``t`` may hold -inf (False guarantees every entry is finite).
    """
    detached = t.detach()
    if detached.device.type == "cpu" and detached.dtype in (torch.float32, torch.float64):
        # numpy's single-threaded sum: a torch reduction is an OpenMP region, and its
        # spin-waiting workers make it ~20x slower on a machine whose cores are busy.
        total = float(np.sum(detached.numpy()))
    else:
        total = float(detached.sum())
    if np.isfinite(total):  # one cheap pass: NaN or +inf anywhere shows in the sum
        return False
    if torch.isnan(t).any():
        raise ValueError(f"`{name}` must not contain NaN.")
    if torch.isposinf(t).any():
        raise ValueError(f"`{name}` must not contain +inf (it holds log-probabilities).")
    return True


def reduce_loss(per_item: torch.Tensor, reduction: str, denominators: torch.Tensor) -> torch.Tensor:
    if reduction == "none":
        return per_item
    if reduction == "sum":
        return per_item.sum()
    return per_item.sum() / denominators.sum().clamp(min=1)
