"""combgrad: differentiable combinatorial optimization on PyTorch.

The optimal value of a linear or integer program, as a function of its costs (and
constraint data), with the exact generalized gradient from a single forward solve; exact
combinatorial losses (bipartite matching, global sequence alignment) built on it.

Names load lazily, so that `import combgrad.optim` (torch only) does not import the
solver layer.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "lp_value": "combgrad.functional.lp",
    "matching_loss": "combgrad.losses.matching",
    "alignment_loss": "combgrad.losses.alignment",
    "MatchingLoss": "combgrad.losses.matching",
    "AlignmentLoss": "combgrad.losses.alignment",
    "SPOPlusLoss": "combgrad.losses.spo",
    "spo_plus_loss": "combgrad.losses.spo",
    "FenchelYoungLoss": "combgrad.losses.fenchel_young",
    "fenchel_young_loss": "combgrad.losses.fenchel_young",
    "NCELoss": "combgrad.losses.nce",
    "nce_loss": "combgrad.losses.nce",
    "regret": "combgrad.metrics",
    "CvxpyLayer": "combgrad.cvxpy_layer",
}
_SUBMODULES = ("analysis", "distributed", "functional", "losses", "nn", "optim")
_SUBMODULES += ("argmin", "metrics")  # decision-focused learning (issue 11)

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'combgrad' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
