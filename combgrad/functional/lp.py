"""The optimal value of an LP / ILP / MILP as a differentiable torch function.

For `z = min { c @ x : A_ub @ x <= b_ub, A_eq @ x == b_eq, lb <= x <= ub }` the generalized
(Clarke) gradient is read off the single forward solve (see docs/conventions.md):

    dz/dc = x*,   dz/db_ub = y_ub*,   dz/db_eq = y_eq*,
    dz/dA_ub = -y_ub* x*^T,   dz/dA_eq = -y_eq* x*^T,

with the duals in the package convention (`y = dz/db`; `y_ub <= 0`). Backward never calls
the solver again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch.autograd.function import once_differentiable

import solvers

from .._autograd import cached_forward_signature
from .._compile import eager_under_compile

__all__ = ["lp_value"]

_TENSOR_ARGS = ("c", "A_ub", "b_ub", "A_eq", "b_eq")
_EXPECTED_NDIM = {"c": 1, "A_ub": 2, "b_ub": 1, "A_eq": 2, "b_eq": 1}


@dataclass
class _Config:
    bounds: Any
    integrality: np.ndarray | None
    backend: str
    options: Mapping[str, Any]
    integer_duals: str | None
    need_duals: bool
    batch: int
    batched: dict[str, bool] = field(default_factory=dict)


def _as_numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().to("cpu", torch.float64).numpy()


def _item(arr: np.ndarray | None, name: str, index: int, cfg: _Config) -> np.ndarray | None:
    if arr is None:
        return None
    return arr[index] if cfg.batched[name] else arr


def _fixed_integer_duals(problem: solvers.LinearProgram, x: np.ndarray, cfg: _Config):
    """Duals of the LP with every integer variable fixed at its optimal value (an approximation)."""
    mask = problem.integrality.astype(bool)
    bounds = problem.bounds.copy()
    bounds[mask, 0] = bounds[mask, 1] = np.round(x[mask])
    fixed = problem.replace(bounds=bounds, integrality=None)
    sol = solvers.solve(fixed, cfg.backend)
    sol.raise_for_status()
    return sol.duals_ub, sol.duals_eq


def _solve_all(arrays: dict[str, np.ndarray | None], cfg: _Config):
    n = arrays["c"].shape[-1]
    m_ub = 0 if arrays["b_ub"] is None else arrays["b_ub"].shape[-1]
    m_eq = 0 if arrays["b_eq"] is None else arrays["b_eq"].shape[-1]
    B = cfg.batch
    values = np.empty(B)
    xs = np.empty((B, n))
    duals_ub = np.zeros((B, m_ub))
    duals_eq = np.zeros((B, m_eq))
    only_costs_vary = not any(cfg.batched[k] for k in _TENSOR_ARGS[1:])
    reusable: solvers.Solver | None = None
    for i in range(B):
        items = {k: _item(arrays[k], k, i, cfg) for k in _TENSOR_ARGS}
        where = f"lp_value: batch item {i}" if B > 1 or cfg.batched["c"] else "lp_value"
        try:
            if only_costs_vary and reusable is not None:
                sol = reusable.solve(items["c"])
                problem = reusable.problem
            else:
                problem = solvers.LinearProgram(
                    **items, bounds=cfg.bounds, integrality=cfg.integrality
                )
                if only_costs_vary and B > 1:
                    reusable = solvers.Solver(problem, cfg.backend, options=cfg.options)
                    sol = reusable.solve()
                else:
                    sol = solvers.solve(problem, cfg.backend, options=cfg.options)
        except ValueError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        if not sol.success:
            try:
                sol.raise_for_status()
            except solvers.SolverError as exc:
                raise type(exc)(f"{where}: {exc}") from None
        values[i] = sol.objective
        xs[i] = sol.x
        if cfg.need_duals:
            if problem.is_mip:
                yu, ye = _fixed_integer_duals(problem, sol.x, cfg)
            else:
                yu, ye = sol.duals_ub, sol.duals_eq
            duals_ub[i], duals_eq[i] = yu, ye
    return values, xs, duals_ub, duals_eq


@cached_forward_signature
class _LPValue(torch.autograd.Function):
    @staticmethod
    def forward(c, A_ub, b_ub, A_eq, b_eq, cfg):  # type: ignore[override]
        arrays = {k: _as_numpy(v) for k, v in zip(_TENSOR_ARGS, (c, A_ub, b_ub, A_eq, b_eq))}
        values, xs, yu, ye = _solve_all(arrays, cfg)

        def out(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=c.dtype).to(c.device)

        return out(values), out(xs), out(yu), out(ye)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, x, y_ub, y_eq = output
        ctx.mark_non_differentiable(x, y_ub, y_eq)  # piecewise constant in the inputs
        ctx.save_for_backward(x, y_ub, y_eq)
        ctx.cfg = inputs[-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z, _gx, _gyu, _gye):
        x, y_ub, y_eq = ctx.saved_tensors
        cfg: _Config = ctx.cfg
        g = grad_z  # (B,)

        def reduce(grad: torch.Tensor, name: str) -> torch.Tensor:
            return grad if cfg.batched[name] else grad.sum(0)

        needs = ctx.needs_input_grad
        grads: list[torch.Tensor | None] = [None] * 6
        if needs[0]:
            grads[0] = reduce(g[:, None] * x, "c")
        if needs[1]:
            grads[1] = reduce(-g[:, None, None] * y_ub[:, :, None] * x[:, None, :], "A_ub")
        if needs[2]:
            grads[2] = reduce(g[:, None] * y_ub, "b_ub")
        if needs[3]:
            grads[3] = reduce(-g[:, None, None] * y_eq[:, :, None] * x[:, None, :], "A_eq")
        if needs[4]:
            grads[4] = reduce(g[:, None] * y_eq, "b_eq")
        return tuple(grads)


def _to_tensor(name: str, value: Any, like: torch.Tensor | None) -> torch.Tensor | None:
    """A tensor from a tensor, an array (read-only ones too), a list or a scipy sparse matrix.

    Arrays are copied, so a read-only array (as `solvers.LinearProgram` stores them) is never
    shared with a writable tensor; sparse matrices are densified (the gradient in `A` is
    dense anyway).
    """
    if value is None:
        return None
    if not isinstance(value, torch.Tensor):
        try:
            array = value.toarray() if sp.issparse(value) else value
            array = np.array(array, dtype=np.float64)  # a writable copy
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"`{name}` must be a tensor, an array of numbers or a scipy sparse matrix; "
                f"got {type(value).__name__}."
            ) from exc
        value = torch.from_numpy(array).to(like.dtype if like is not None else torch.float64)
    if not value.is_floating_point():
        value = value.to(like.dtype if like is not None else torch.get_default_dtype())
    return value


@eager_under_compile  # the solver is not traceable: a graph break under torch.compile
def lp_value(
    c: torch.Tensor,
    A_ub: torch.Tensor | None = None,
    b_ub: torch.Tensor | None = None,
    A_eq: torch.Tensor | None = None,
    b_eq: torch.Tensor | None = None,
    bounds: Any = None,
    integrality: Any = None,
    *,
    backend: str = "highs",
    options: Mapping[str, Any] | None = None,
    integer_duals: Literal["fixed"] | None = None,
    return_solution: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Optimal value of `min c @ x` over a linear (or mixed-integer) program, differentiably.

    Any tensor argument may carry a leading batch dimension `B`; the others are broadcast
    across it. With only `c` batched, one backend model is built and re-solved with each
    item's costs. Backward uses the generalized gradient from the forward solve:
    $\partial z/\partial c = x^*$, $\partial z/\partial b = y^*$,
    $\partial z/\partial A = -y^* x^{*T}$ (duals `y = dz/db`; `y_ub <= 0`).
    Gradients are computed only for the inputs that require them.

    At a degenerate or tied optimum the solver's vertex is returned: it is a valid element
    of the generalized gradient (for `c`, the superdifferential of the concave function
    $c \mapsto z$), chosen deterministically for a given input and backend.

    Under `torch.compile` the call is a graph break: the solve runs eagerly, the model
    around it is compiled, and values and gradients are those of eager mode
    (`tests/combgrad/test_compile.py`); `fullgraph=True` is not supported.

    Args:
        c: costs, shape (n,) or (B, n).
        A_ub: inequality matrix, shape (m_ub, n) or (B, m_ub, n).
        b_ub: inequality right-hand side, shape (m_ub,) or (B, m_ub).
        A_eq: equality matrix, shape (m_eq, n) or (B, m_eq, n).
        b_eq: equality right-hand side, shape (m_eq,) or (B, m_eq).
        bounds: scipy-style bounds shared by the batch (default `x >= 0`); not differentiable.
        integrality: 0/1 per variable (1 = integer), shared by the batch.
        backend: a name from `solvers.available_backends()`.
        options: backend options, as for `solvers.solve`.
        integer_duals: for integer programs, gradients in `b` or `A` are not defined in
            general and raise an error, unless `"fixed"`: then the duals of the LP with
            every integer variable fixed at its optimal value are used (an approximation that
            costs one extra LP solve per item; documented, not exact). `dz/dc = x*` is exact
            for integer programs without it.
        return_solution: also return `x*` (shape (n,) or (B, n)), marked non-differentiable.

    Returns:
        `z` of shape () or (B,) in `c`'s dtype and device; with `return_solution`,
            the pair `(z, x)`. An empty batch (`B == 0`) solves nothing and returns
            empty tensors (shapes (0,) and (0, n)), as the losses do with `reduction="none"`.

    Every constraint argument may also be a numpy array (read-only ones included) or a
    scipy sparse matrix, as the `solvers` builders return them; these are copied (and
    densified) into tensors, which do not require grad.

    Raises:
        ValueError: wrong shapes, NaN/inf, or an unsupported gradient request (message names
            the argument and the batch item).
        solvers.InfeasibleError, solvers.UnboundedError, solvers.SolverError: an item has no
            optimal solution (message names the batch item); never a nan loss.

    Example:
        ```python
        import torch
        from combgrad import lp_value

        c = torch.tensor([-1.0, -2.0], requires_grad=True)
        z = lp_value(c, torch.tensor([[1.0, 1.0]]), torch.tensor([4.0]),
                     torch.tensor([[1.0, -1.0]]), torch.tensor([1.0]))
        z.backward()
        print(c.grad)  # x* = tensor([2.5000, 1.5000])
        ```
    """
    if not isinstance(c, torch.Tensor):
        c = _to_tensor("c", c, None)
    elif not c.is_floating_point():
        c = c.to(torch.get_default_dtype())
    tensors = {"c": c}
    for name, value in zip(_TENSOR_ARGS[1:], (A_ub, b_ub, A_eq, b_eq)):
        tensors[name] = _to_tensor(name, value, c)
    for a_name, b_name in (("A_ub", "b_ub"), ("A_eq", "b_eq")):
        if (tensors[a_name] is None) != (tensors[b_name] is None):
            missing = a_name if tensors[a_name] is None else b_name
            given = b_name if missing == a_name else a_name
            raise ValueError(f"`{missing}` must be given when `{given}` is given.")

    batched: dict[str, bool] = {}
    sizes: dict[str, int] = {}
    for name, t in tensors.items():
        if t is None:
            batched[name] = False
            continue
        base = _EXPECTED_NDIM[name]
        if t.dim() not in (base, base + 1):
            raise ValueError(
                f"`{name}` must have {base} dimension(s), or {base + 1} with a leading batch "
                f"dimension; got shape {tuple(t.shape)}."
            )
        batched[name] = t.dim() == base + 1
        if batched[name]:
            sizes[name] = t.shape[0]
    if len(set(sizes.values())) > 1:
        raise ValueError(f"batch dimensions disagree: {sizes}.")
    B = next(iter(sizes.values()), 1)  # B == 0: an empty batch gives empty results

    integ = None if integrality is None else np.asarray(integrality)
    is_mip = integ is not None and bool(np.any(integ))
    dual_inputs = [
        n for n in _TENSOR_ARGS[1:] if tensors[n] is not None and tensors[n].requires_grad
    ]
    need_duals = bool(dual_inputs) and torch.is_grad_enabled()
    if need_duals and is_mip and integer_duals != "fixed":
        raise ValueError(
            f"gradients with respect to {dual_inputs} are not defined for integer programs "
            "(the optimal value is discontinuous in b and A). Detach them, or pass "
            "`integer_duals='fixed'` to use the duals of the LP with integers fixed at x* "
            "(a documented approximation). dz/dc = x* is exact and always available."
        )
    if integer_duals not in (None, "fixed"):
        raise ValueError(f"`integer_duals` must be None or 'fixed'; got {integer_duals!r}.")
    cfg = _Config(
        bounds=bounds,
        integrality=integ,
        backend=backend,
        options=dict(options or {}),
        integer_duals=integer_duals,
        need_duals=need_duals,
        batch=B,
        batched=batched,
    )
    z, x, _, _ = _LPValue.apply(*(tensors[n] for n in _TENSOR_ARGS), cfg)
    if not sizes:
        z, x = z[0], x[0]
    return (z, x) if return_solution else z
