"""combgrad: differentiable combinatorial optimization on PyTorch.

The optimal value of a linear or integer program, as a function of its costs (and
constraint data), with the exact generalized gradient from a single forward solve; exact
combinatorial losses (bipartite matching, global sequence alignment) built on it.
"""

from __future__ import annotations

from . import functional, nn
from .functional import lp_value

__version__ = "0.1.0"

__all__ = ["functional", "lp_value", "nn"]
