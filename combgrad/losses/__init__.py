"""Exact combinatorial losses (and regularizers) with generalized gradients.

Names load lazily: the combinatorial losses need the solver layer, the regularizers only torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AlignmentLoss": "alignment",
    "alignment_loss": "alignment",
    "MatchingLoss": "matching",
    "matching_loss": "matching",
    "perturbation_noise": "smoothing",
    "sigma_schedule": "smoothing",
    "RobustIBLoss": "robust_ib",
    "robust_ib_loss": "robust_ib",
    "RobustIBTerms": "robust_ib",
    "fisher_information_penalty": "robust_ib",
    "score_fisher_information": "robust_ib",
    "gaussian_kl_to_standard_normal": "robust_ib",
    "SPOPlusLoss": "spo",
    "spo_plus_loss": "spo",
    "FenchelYoungLoss": "fenchel_young",
    "fenchel_young_loss": "fenchel_young",
    "NCELoss": "nce",
    "nce_loss": "nce",
    "SolutionPool": "nce",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'combgrad.losses' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
