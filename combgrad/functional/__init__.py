"""Functional forms of combgrad's differentiable layers and losses."""

from __future__ import annotations

from .lp import lp_value

__all__ = ["lp_value"]
