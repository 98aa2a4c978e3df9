"""Shared validation and reduction for the combinatorial losses."""

from __future__ import annotations

import warnings

import numpy as np
import torch

__all__ = [
    "check_finite_or_neg_inf",
    "check_index_tensor",
    "check_log_probs",
    "check_reduction",
    "check_solver",
    "empty_batch_loss",
    "reduce_loss",
    "warn_if_not_log_probs",
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
    """A floating (B, ., C) tensor; `layout` names the dimensions for the message."""
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() != 3:
        raise ValueError(
            f"`log_probs` must be a tensor of shape {layout}; got {_shape_of(log_probs)}."
        )
    if not log_probs.is_floating_point():
        raise TypeError(f"`log_probs` must be floating point; got {log_probs.dtype}.")


def check_index_tensor(t: object, name: str, batch: int, what: str) -> None:
    """An integer (B, L) tensor of ids (`what` says which ids, for the message)."""
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.shape[0] != batch:
        raise ValueError(f"`{name}` must have shape (B, L) = ({batch}, L); got {_shape_of(t)}.")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"`{name}` must hold integer {what}; got {t.dtype}.")


def check_finite_or_neg_inf(t: torch.Tensor, name: str) -> bool:
    """Reject NaN and +inf; -inf (a log-probability of zero) is allowed.

    Returns:
        Whether `t` may hold -inf (False guarantees every entry is finite).
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


_warned_not_log_probs = False
_log_prob_checks_left = 100  # a wrong input shows at once; later calls skip the extra pass
# A plainly wrong input (logits, probabilities) is wrong on every row: a spread-out sample
# of rows finds it, at a cost that does not grow with the batch.
_CHECKED_ROWS = 1024


def warn_if_not_log_probs(log_probs: torch.Tensor, valid: torch.Tensor | None, name: str) -> None:
    """Warn (once per process) when `log_probs` is plainly not log-probabilities.

    Plainly not: an entry above 0, or a row whose exponentials do not sum to 1 within a
    tolerance (1e-3, or more for low-precision dtypes). Only the rows where `valid`
    (shape `log_probs.shape[:-1]`) is True are read; padding may hold anything. At most
    about 1024 rows, evenly spaced over the input, are read, and only in the first 100
    calls of a process: the check is for inputs that are wrong everywhere (logits or
    probabilities passed by mistake), not for a single bad row.
    """
    global _warned_not_log_probs, _log_prob_checks_left
    if _warned_not_log_probs or _log_prob_checks_left <= 0:
        return
    _log_prob_checks_left -= 1
    detached = log_probs.detach()
    if detached.device.type == "cpu" and detached.dtype in (torch.float32, torch.float64):
        # numpy, single-threaded: torch's reductions here are OpenMP regions, whose
        # spin-waiting workers make this pass cost more than the solve on a busy machine.
        positive, off = _not_log_probs_numpy(detached.numpy(), valid)
    else:
        positive, off = _not_log_probs_torch(detached, valid)
    if positive or off:
        _warned_not_log_probs = True
        what = "has entries above 0" if positive else "has rows whose exp() does not sum to 1"
        warnings.warn(
            f"`{name}` {what}: it does not look like log-probabilities (apply log_softmax "
            "first, as for NLLLoss); the loss may be negative or meaningless. "
            "This warning is shown once.",
            UserWarning,
            stacklevel=3,
        )


def _not_log_probs_numpy(array: np.ndarray, valid: torch.Tensor | None) -> tuple[bool, bool]:
    """(an entry above 0, a row off a distribution) over the valid rows of `array`."""
    rows = array.reshape(-1, array.shape[-1])
    stride = max(1, -(-rows.shape[0] // _CHECKED_ROWS))
    rows = rows[::stride]
    if valid is not None:
        keep = valid.detach().to("cpu").numpy().reshape(-1)[::stride]
        if not keep.all():
            rows = rows[keep]
    if rows.size == 0:
        return False, False
    tol = max(1e-3, 64 * float(np.finfo(rows.dtype).eps))
    if rows.max() > tol:
        return True, False
    # Every entry is <= tol, so exp() cannot overflow: the plain sum is the row's mass.
    # einsum's row sums are ~5x faster than `.sum(-1)` over short rows; in the input's
    # dtype they are accurate to ~C eps, far inside tol unless the rows are very long.
    exp = np.exp(rows)
    if rows.shape[-1] <= 4096:
        mass = np.einsum("ij->i", exp)
    else:
        mass = exp.sum(-1, dtype=np.float64)
    return False, bool((np.abs(mass - 1.0) > tol).any())


def _not_log_probs_torch(rows: torch.Tensor, valid: torch.Tensor | None) -> tuple[bool, bool]:
    """As `_not_log_probs_numpy`, for other devices and dtypes."""
    with torch.no_grad():
        rows = rows.reshape(-1, rows.shape[-1])
        stride = max(1, -(-rows.shape[0] // _CHECKED_ROWS))
        rows = rows[::stride]
        if valid is not None:
            rows = rows[valid.reshape(-1)[::stride].to(rows.device)]
        if rows.numel() == 0:
            return False, False
        tol = max(1e-3, 64 * torch.finfo(rows.dtype).eps)
        if rows.dtype in (torch.float16, torch.bfloat16):
            rows = rows.float()
        positive = bool((rows > tol).any())
        mass = torch.logsumexp(rows, dim=-1).exp()
        return positive, bool(((mass - 1.0).abs() > tol).any())


def empty_batch_loss(log_probs: torch.Tensor, reduction: str, name: str) -> torch.Tensor:
    """The documented result for an empty batch: (0,) for "none", 0 for "sum", else raise."""
    if reduction == "mean":
        raise ValueError(
            f"`{name}` holds an empty batch (B = 0): reduction='mean' is undefined; "
            "use reduction='sum' (gives 0) or 'none' (gives an empty tensor)."
        )
    per_item = log_probs.reshape(-1)[:0]  # (0,), still attached to the graph
    return per_item if reduction == "none" else per_item.sum()
