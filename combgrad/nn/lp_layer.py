"""`LPValue`: a fixed LP/ILP structure whose costs (and optionally b, A) are inputs or parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

import solvers

from ..functional.lp import _to_tensor, lp_value

__all__ = ["LPValue"]


class LPValue(nn.Module):
    r"""Optimal value $z(c) = \min_x \{c^T x : A_{ub} x \le b_{ub}, A_{eq} x = b_{eq}\}$.

    The constraint data are stored once (as buffers, or as learnable parameters when asked)
    and `forward(c)` solves for costs `c` of shape (n,) or (B, n), reusing one backend
    model across the batch. Gradients follow [`lp_value`][combgrad.functional.lp.lp_value].

    Args:
        A_ub: constraint data (tensors, arrays, read-only arrays or scipy sparse matrices),
            shared by every call.
        b_ub: constraint data (tensors or arrays), shared by every call.
        A_eq: constraint data (tensors or arrays), shared by every call.
        b_eq: constraint data (tensors or arrays), shared by every call.
        bounds: as for [`lp_value`][combgrad.functional.lp.lp_value].
        integrality: as for [`lp_value`][combgrad.functional.lp.lp_value].
        learn_b: make `b_ub`/`b_eq` learnable parameters (LPs, or ILPs with
            `integer_duals="fixed"`).
        learn_A: make `A_ub`/`A_eq` learnable parameters.
        backend: passed to [`lp_value`][combgrad.functional.lp.lp_value].
        options: passed to [`lp_value`][combgrad.functional.lp.lp_value].
        integer_duals: passed to [`lp_value`][combgrad.functional.lp.lp_value].

    Example:
        ```python
        import torch
        from combgrad.nn import LPValue

        layer = LPValue(A_eq=torch.ones(1, 3), b_eq=torch.ones(1))  # the simplex
        print(layer(torch.tensor([[0.3, -0.2, 0.5], [1.0, 2.0, 0.0]])))  # [-0.2, 0.0]
        ```
    """

    def __init__(
        self,
        A_ub: Any = None,
        b_ub: Any = None,
        A_eq: Any = None,
        b_eq: Any = None,
        bounds: Any = None,
        integrality: Any = None,
        *,
        learn_b: bool = False,
        learn_A: bool = False,
        backend: str = "highs",
        options: Mapping[str, Any] | None = None,
        integer_duals: Literal["fixed"] | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        for name, value, learn in (
            ("A_ub", A_ub, learn_A),
            ("b_ub", b_ub, learn_b),
            ("A_eq", A_eq, learn_A),
            ("b_eq", b_eq, learn_b),
        ):
            tensor = _to_tensor(name, value, None)
            tensor = None if tensor is None else tensor.detach().to(dtype).clone()
            if tensor is not None and learn:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.bounds = bounds
        self.integrality = integrality
        self.backend = backend
        self.options = dict(options or {})
        self.integer_duals = integer_duals
        self.register_buffer("c", None)  # default costs; set by `from_problem`

    @classmethod
    def from_problem(
        cls,
        problem: solvers.LinearProgram,
        *,
        learn_b: bool = False,
        learn_A: bool = False,
        backend: str = "highs",
        options: Mapping[str, Any] | None = None,
        integer_duals: Literal["fixed"] | None = None,
        dtype: torch.dtype | None = None,
    ) -> LPValue:
        """A layer with the constraints, bounds and integrality of a `solvers.LinearProgram`.

        The problem's costs become the default for `forward` (stored as the buffer `c`),
        so `LPValue.from_problem(lp)()` is the optimal value of `lp` itself.

        Args:
            problem: the program; its sparse matrices and read-only arrays are copied.
            learn_b: as for the constructor.
            learn_A: as for the constructor.
            backend: as for the constructor.
            options: as for the constructor.
            integer_duals: as for the constructor.
            dtype: as for the constructor.

        Returns:
            The layer.
        """
        if not isinstance(problem, solvers.LinearProgram):
            raise TypeError(
                f"`problem` must be a solvers.LinearProgram; got {type(problem).__name__}."
            )

        def rows(A: Any, b: Any) -> tuple[Any, Any]:
            return (A, b) if A.shape[0] else (None, None)

        A_ub, b_ub = rows(problem.A_ub, problem.b_ub)
        A_eq, b_eq = rows(problem.A_eq, problem.b_eq)
        layer = cls(
            A_ub,
            b_ub,
            A_eq,
            b_eq,
            problem.bounds,
            problem.integrality if problem.is_mip else None,
            learn_b=learn_b,
            learn_A=learn_A,
            backend=backend,
            options=options,
            integer_duals=integer_duals,
            dtype=dtype,
        )
        layer.c = _to_tensor("c", problem.c, None).to(dtype or torch.get_default_dtype())
        return layer

    def forward(self, c: torch.Tensor | None = None, *, return_solution: bool = False):
        """Optimal value for costs `c` of shape (n,) or (B, n); see `combgrad.lp_value`.

        `c` may be omitted for a layer built by `from_problem`: the problem's costs are used.
        """
        if c is None:
            if self.c is None:
                raise ValueError("`c` is required (this layer stores no default costs).")
            c = self.c
        return lp_value(
            c,
            self.A_ub,
            self.b_ub,
            self.A_eq,
            self.b_eq,
            self.bounds,
            self.integrality,
            backend=self.backend,
            options=self.options,
            integer_duals=self.integer_duals,
            return_solution=return_solution,
        )

    def extra_repr(self) -> str:
        n = (
            next(t.shape[-1] for t in (self.A_ub, self.A_eq) if t is not None)
            if (self.A_ub is not None or self.A_eq is not None)
            else "?"
        )
        return f"n={n}, backend={self.backend!r}"
