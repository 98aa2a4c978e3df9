"""A graph break around the solver calls, so that `torch.compile` works with every loss and layer.

The solvers run numpy, scipy, numba and native backends that TorchDynamo cannot trace (and
some that make it crash while trying). The combinatorial losses and [`lp_value`][combgrad.lp_value]
are therefore run eagerly inside a compiled model: Dynamo breaks the graph at their call, the
code before and after is compiled as usual, and autograd connects the pieces, so gradients are
the same as without `torch.compile`. `torch.compile(..., fullgraph=True)` is not supported
(a graph break is unavoidable around a call into an external solver).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["eager_under_compile"]

F = TypeVar("F", bound=Callable[..., object])


def eager_under_compile(fn: F) -> F:
    """Run `fn` (and everything it calls) eagerly when it is reached from compiled code.

    Args:
        fn: a function that calls into a solver.

    Returns:
        `fn`, wrapped by `torch.compiler.disable` (same name, docstring and signature).
    """
    return torch.compiler.disable(fn, recursive=True)  # type: ignore[return-value]
