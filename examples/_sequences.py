"""Greedy decoding and error rates shared by the sequence examples (not part of the library)."""

from __future__ import annotations

import torch

__all__ = ["edit_distance", "greedy_decode", "score"]


def greedy_decode(
    logits: torch.Tensor,
    blank: int,
    merge_repeats: bool,
    lengths: torch.Tensor | None = None,
) -> list[list[int]]:
    """Arg-max symbol per position, repeats merged (CTC-style) if asked, blanks dropped.

    Args:
        logits: (B, T, C) scores per output position.
        blank: the blank class.
        merge_repeats: merge runs of the same symbol first (how CTC outputs are read).
        lengths: (B,) valid positions per item; None = all T.
    """
    rows = logits.argmax(-1).tolist()
    if lengths is not None:
        rows = [row[:n] for row, n in zip(rows, lengths.tolist())]
    outputs = []
    for row in rows:
        if merge_repeats:
            row = [s for i, s in enumerate(row) if i == 0 or s != row[i - 1]]
        outputs.append([s for s in row if s != blank])
    return outputs


def edit_distance(a: list[int], b: list[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, token in enumerate(a, 1):
        current = [i]
        for j, other in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (token != other))
            )
        previous = current
    return previous[-1]


def score(predictions: list[list[int]], targets: torch.Tensor, lengths: torch.Tensor) -> dict:
    """Sequence exact-match rate and character error rate against padded ``targets``."""
    truths = [t[:n].tolist() for t, n in zip(targets, lengths.tolist())]
    errors = sum(edit_distance(p, t) for p, t in zip(predictions, truths))
    exact = sum(p == t for p, t in zip(predictions, truths))
    return {"exact_match": exact / len(truths), "cer": errors / int(lengths.sum())}
