"""`torch.nn.Module` forms of combgrad's layers and losses."""

from __future__ import annotations

from .lp_layer import LPValue

__all__ = ["LPValue"]
