"""Optimizers from gradient-method papers, in the style of `torch.optim`.

Needs only torch (never imports `solvers`). Names load lazily so that importing
one optimizer does not import the others. The functional twins live in the modules,
e.g. `from combgrad.optim.sgld import sgld` (a package attribute of that name would be
shadowed by the submodule).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SGLD": "sgld",
    "HAdam": "hadam",
    "OGD": "ogd",
    "FollowTheRidge": "follow_ridge",
    "SGDA": "sgda",
    "hessian_solve": "follow_ridge",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'combgrad.optim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
