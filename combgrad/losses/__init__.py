"""Exact combinatorial losses (and regularizers) with generalized gradients."""

from __future__ import annotations

from .alignment import AlignmentLoss, alignment_loss
from .matching import MatchingLoss, matching_loss

__all__ = ["AlignmentLoss", "MatchingLoss", "alignment_loss", "matching_loss"]
