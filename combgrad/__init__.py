"""combgrad: differentiable combinatorial optimization on PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"
