"""Functional forms of combgrad's differentiable layers and losses."""

from __future__ import annotations

from ..losses.alignment import alignment_loss
from ..losses.matching import matching_loss
from .lp import lp_value

__all__ = ["alignment_loss", "lp_value", "matching_loss"]
