"""combgrad: differentiable combinatorial optimization on PyTorch.

The optimal value of a linear or integer program, as a function of its costs (and
constraint data), with the exact generalized gradient from a single forward solve; exact
combinatorial losses (bipartite matching, global sequence alignment) built on it.
"""

from __future__ import annotations

from . import functional, losses, nn
from .functional import alignment_loss, lp_value, matching_loss
from .losses import AlignmentLoss, MatchingLoss

__version__ = "0.1.0"

__all__ = [
    "AlignmentLoss",
    "MatchingLoss",
    "alignment_loss",
    "functional",
    "losses",
    "lp_value",
    "matching_loss",
    "nn",
]
