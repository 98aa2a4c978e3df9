r"""`CvxpyLayer`: a parametrized cvxpy LP/MILP as a differentiable torch layer.

The constructor is shaped like cvxpylayers' (``CvxpyLayer(problem, parameters=[...],
variables=[...])``), for the linear and mixed-integer linear programs that cvxpy can
canonicalize under DPP. cvxpy compiles the problem once, in the constructor, into affine
maps from the stacked parameter vector $\theta$ to the data $(c, d, A, b)$ of a
minimisation (see [`ParametricLP`][solvers.cvxpy_parametric.ParametricLP]); every call
only evaluates those maps and solves through `solvers`.

Two outputs:

* `output="value"`: cvxpy's optimal value $V(\theta)$ (`problem.value`) with its exact
  generalized gradient, by the chain rule through the parameter map from
  $\partial z/\partial c = x^\star$, $\partial z/\partial b = y^\star$,
  $\partial z/\partial A = -y^\star x^{\star\top}$. For integer programs the gradient
  with respect to parameters in the objective is exact; parameters in the constraints
  need `integer_duals="fixed"` (as for [`lp_value`][combgrad.functional.lp.lp_value]).
* `output="solution"`: the optimal values of the requested variables, differentiated
  by a method from `combgrad.argmin` (`"perturbed"`, `"blackbox"`,
  `"imle"`, `"nid"`), chosen by the caller. Those methods differentiate a solution
  map through its *costs*, so only parameters of the objective receive gradients.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

import solvers
from solvers.cvxpy_parametric import ParametricLP

from ._autograd import cached_forward_signature

__all__ = ["CvxpyLayer"]

_METHODS = ("perturbed", "blackbox", "imle", "nid")


@dataclass
class _Config:
    plp: ParametricLP
    backend: str
    options: dict[str, Any]
    workers: int | None
    need_duals: bool
    constraints_vary: bool
    stack: int | None
    cache: dict[Any, Any]
    integer_duals: str | None
    threads: int | None = None


def _where(i: int, batched: bool) -> str:
    return f"CvxpyLayer: batch item {i}" if batched else "CvxpyLayer"


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool_in_child() -> None:  # a forked child has the pool object but no threads
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool_in_child)


# Items per stacked LP when the constraints vary (a fresh model every call): building a
# model is Python work that holds the GIL, so fewer, larger stacks win (measured on the
# benchmark's batches of 64: one stack of 64 beat two of 32 on two threads).
_FRESH_STACK = 64


def _thread_width(threads: int | None) -> int:
    return min(threads or os.cpu_count() or 1, 8)


def _kept_stack(batch: int, threads: int | None) -> int:
    """Items per kept stacked model: the batch split evenly over the threads (at most 64).

    Re-solving a kept model is HiGHS work with the GIL released, so the stacks solve at the
    same time, and a smaller LP is more than proportionally cheaper (two stacks of 32 on two
    threads took half the time of one of 64).
    """
    return max(1, min(_FRESH_STACK, -(-batch // _thread_width(threads))))


def _map_threads(fn: Callable[[Any], Any], items: list[Any], threads: int | None) -> list[Any]:
    """`[fn(item) for item in items]`, on up to `threads` threads (None: the CPU count).

    The stacked solves are independent and HiGHS releases the GIL while it solves, so
    two chunks solve at the same time; idle pool threads block, they never spin.
    """
    global _POOL
    width = min(len(items), _thread_width(threads))
    if width <= 1:
        return [fn(item) for item in items]
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < width - 1:
            _POOL = ThreadPoolExecutor(max_workers=width - 1, thread_name_prefix="cvxpy-layer")
        pool = _POOL
    # The calling thread works too, and every thread takes the next item until none is
    # left: `pool.map` alone ran the two stacks one after the other when the executor
    # handed both to one worker thread (measured after other work had left it idle).
    results: list[Any] = [None] * len(items)
    next_item = itertools.count()  # next() on a count is atomic under the GIL

    def take_items() -> None:
        while (i := next(next_item)) < len(items):
            results[i] = fn(items[i])

    futures = [pool.submit(take_items) for _ in range(width - 1)]
    try:
        take_items()
    finally:
        for future in futures:
            future.result()
    return results


def _item_lp(
    plp: ParametricLP, theta: np.ndarray, costs: np.ndarray, i: int, batched: bool
) -> solvers.LinearProgram:
    try:
        return plp.linear_program(theta[i], costs[i])
    except ValueError as exc:
        raise ValueError(f"{_where(i, batched)}: {exc}") from exc


class _Part(NamedTuple):
    """One item's share of a stacked solve (what the layer reads of a `solvers.Solution`)."""

    x: np.ndarray
    objective: float
    duals_ub: np.ndarray
    duals_eq: np.ndarray
    success: bool = True


def _split_stacked(sol: solvers.Solution, costs: np.ndarray) -> list[_Part]:
    """Per-item solutions of a block-diagonal LP (the blocks are independent problems)."""
    k = len(costs)
    xs = sol.x.reshape(k, -1)
    yu = sol.duals_ub.reshape(k, -1)
    ye = sol.duals_eq.reshape(k, -1)
    objectives = np.einsum("bn,bn->b", costs, xs)
    return [_Part(xs[i], float(objectives[i]), yu[i], ye[i]) for i in range(k)]


def _stacked_options(cfg: _Config) -> dict[str, Any]:
    """HiGHS skips presolve on stacked blocks unless the caller chose (2x faster measured)."""
    if cfg.backend == "highs" and "presolve" not in cfg.options:
        return {**cfg.options, "presolve": "off"}
    return cfg.options


def _solve_items(theta: np.ndarray, cfg: _Config, batched: bool) -> list[Any]:
    """Solve every item; raise naming the first item without an optimal solution."""
    plp = cfg.plp
    costs = plp.costs(theta)
    B = theta.shape[0]
    if cfg.constraints_vary:
        stack = cfg.stack or _FRESH_STACK
        if stack > 1 and not plp.is_mip:
            # Stacking items into block-diagonal LPs amortizes the per-solve overhead,
            # which dominates on small LPs; a chunk that fails is re-solved item by item,
            # so that the error names the item.
            starts = list(range(0, B, stack))
            blocks: list[Any] = []
            for lo in starts:
                hi = lo + stack
                try:
                    blocks.append(plp.stacked_linear_program(theta[lo:hi], costs[lo:hi]))
                except ValueError:  # re-built item by item below, naming the item
                    blocks.append(None)
            built = [b for b in blocks if b is not None]
            if cfg.workers is None:
                options = _stacked_options(cfg)
                stacked = _map_threads(
                    lambda block: solvers.solve(block, cfg.backend, options=options),
                    built,
                    cfg.threads,
                )
            else:
                stacked = solvers.solve_batch(
                    built, backend=cfg.backend, workers=cfg.workers, options=_stacked_options(cfg)
                )
            results = iter(stacked)
            sols = []
            for lo, block in zip(starts, blocks):
                hi = min(lo + stack, B)
                sol = None if block is None else next(results)
                if (
                    sol is not None
                    and sol.success
                    and sol.duals_ub is not None
                    and sol.duals_eq is not None
                ):
                    sols += _split_stacked(sol, costs[lo:hi])
                else:
                    sols += solvers.solve_batch(
                        [_item_lp(plp, theta, costs, i, batched) for i in range(lo, hi)],
                        backend=cfg.backend,
                        options=cfg.options,
                    )
        else:
            sols = solvers.solve_batch(
                [_item_lp(plp, theta, costs, i, batched) for i in range(B)],
                backend=cfg.backend,
                workers=cfg.workers,
                options=cfg.options,
            )
    elif (cfg.stack is None or cfg.stack > 1) and not plp.is_mip and cfg.workers is None:
        # One structure, LP: a stacked block-diagonal model per chunk size, kept across
        # calls while the constraint data stay the same, re-solved with the new costs.
        key = plp.constraint_key(theta[0])
        if cfg.cache.get("key") != key:
            cfg.cache.clear()
            cfg.cache["key"] = key
        # One kept model per chunk position (chunks solve at the same time on threads,
        # and a HiGHS instance must not be shared between threads).
        stack = cfg.stack or _kept_stack(B, cfg.threads)
        chunks = []
        for lo in range(0, B, stack):
            part = costs[lo : lo + stack]
            solver = cfg.cache.get((lo, len(part)))
            if solver is None:
                try:
                    block = plp.stacked_linear_program(theta[: len(part)], part)
                except ValueError as exc:
                    raise ValueError(f"CvxpyLayer: {exc}") from exc
                solver = cfg.cache[(lo, len(part))] = solvers.Solver(
                    block, cfg.backend, options=_stacked_options(cfg)
                )
            chunks.append((solver, part))
        solved = _map_threads(lambda chunk: chunk[0].solve(chunk[1].ravel()), chunks, cfg.threads)
        sols = []
        for (_, part), sol in zip(chunks, solved):
            if sol.success and sol.duals_ub is not None and sol.duals_eq is not None:
                sols += _split_stacked(sol, part)
            else:  # name the failing item
                sols += solvers.solve_batch(
                    list(part),
                    structure=plp.linear_program(theta[0], part[0]),
                    backend=cfg.backend,
                    options=cfg.options,
                )
    else:  # one structure: the backend model is built once and re-solved per cost vector
        try:
            structure = plp.linear_program(theta[0], costs[0])
        except ValueError as exc:
            raise ValueError(f"CvxpyLayer: {exc}") from exc
        sols = solvers.solve_batch(
            list(costs),
            structure=structure,
            backend=cfg.backend,
            workers=cfg.workers,
            options=cfg.options,
        )
    for i, sol in enumerate(sols):
        if not sol.success:
            try:
                sol.raise_for_status()
            except solvers.SolverError as exc:
                raise type(exc)(f"{_where(i, batched)}: {exc}") from None
    return sols


def _duals(
    sol: Any, theta_i: np.ndarray, cfg: _Config, where: str
) -> tuple[np.ndarray, np.ndarray]:
    plp = cfg.plp
    if not plp.is_mip:
        return sol.duals_eq, sol.duals_ub
    # integer_duals="fixed": the LP with every integer variable fixed at its optimum.
    lp = plp.linear_program(theta_i)
    mask = lp.integrality.astype(bool)
    bounds = lp.bounds.copy()
    bounds[mask, 0] = bounds[mask, 1] = np.round(sol.x[mask])
    fixed = solvers.solve(lp.replace(bounds=bounds, integrality=None), cfg.backend)
    try:
        fixed.raise_for_status()
    except solvers.SolverError as exc:
        raise type(exc)(f"{where}: the LP with the integers fixed has no duals: {exc}") from None
    return fixed.duals_eq, fixed.duals_ub


@cached_forward_signature
class _CvxpyValue(torch.autograd.Function):
    @staticmethod
    def forward(theta, cfg, batched):  # type: ignore[override]
        th = theta.detach().to("cpu", torch.float64).numpy()
        sols = _solve_items(th, cfg, batched)
        plp = cfg.plp
        x = np.stack([s.x for s in sols])
        values = plp.value(np.array([s.objective for s in sols]), th)
        y_eq = np.zeros((len(sols), plp.n_eq))
        y_ub = np.zeros((len(sols), plp.n_ub))
        if cfg.need_duals:
            for i, sol in enumerate(sols):
                y_eq[i], y_ub[i] = _duals(sol, th[i], cfg, _where(i, batched))

        def out(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=theta.dtype).to(theta.device)

        return out(values), out(x), out(y_eq), out(y_ub)

    @staticmethod
    def setup_context(ctx, inputs, output):
        theta, cfg, _ = inputs
        _, x, y_eq, y_ub = output
        ctx.mark_non_differentiable(x, y_eq, y_ub)  # piecewise constant in the parameters
        ctx.save_for_backward(theta, x, y_eq, y_ub)
        ctx.cfg = cfg

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z, _gx, _gye, _gyu):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        theta, x, y_eq, y_ub = ctx.saved_tensors
        cfg: _Config = ctx.cfg

        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float64).numpy()

        grad = cfg.plp.value_gradient(
            arr(theta), arr(x), arr(y_eq), arr(y_ub), costs_only=not cfg.need_duals
        )
        grad = torch.as_tensor(grad, dtype=theta.dtype).to(theta.device)
        return grad_z[:, None] * grad, None, None


def _fortran_flat(t: torch.Tensor) -> torch.Tensor:
    """(B, *shape) -> (B, prod(shape)), each item flattened column-major (cvxpy's order)."""
    return t.permute(0, *range(t.dim() - 1, 0, -1)).reshape(t.shape[0], -1)


class CvxpyLayer(nn.Module):
    r"""A parametrized cvxpy LP or MILP as a torch layer: optimal value or solution.

    cvxpy canonicalizes the problem once, here; each call evaluates the affine
    parameter-to-data map and solves the batch through `solvers`:
    with only objective parameters batched, one backend model is built and re-solved
    per cost vector.

    Args:
        problem: a DPP `cvxpy.Problem` whose objective and constraints are linear
            after cvxpy's reductions (integer and boolean variables allowed).
        parameters: all of the problem's parameters, in the order of the tensors
            given to `forward`.
        variables: the variables whose optimal values `forward` returns with
            `output="solution"` (and with `return_variables=True` in value mode).
            Default: all of the problem's variables.
        output: `"value"` (cvxpy's optimal value, exact gradient) or
            `"solution"` (the variables, differentiated by `method`).
        method: with `output="solution"`, one of `"perturbed"`, `"blackbox"`
            (DBB), `"imle"`, `"nid"`: the function of that name in
            `combgrad.argmin`, called on the costs of the compiled
            minimisation.
        method_options: keyword arguments for that function (noise scale,
            number of samples, interpolation strength, ...).
        backend: a name from `solvers.available_backends()`.
        options: backend options, as for `solvers.solve`.
        workers: solve the batch in this many worker processes (`solvers.solve_batch`).
        stack: solve up to this many items of a batch as one block-diagonal LP (the blocks
            are independent, so each block's part of the solution and duals is optimal for
            its item); this amortizes the per-solve overhead that dominates on small LPs.
            `1` solves item by item. At a tied optimum the vertex chosen may differ from a
            single-item solve. When only objective parameters are batched, each stack's
            model is kept across calls and re-solved with the new costs. None (default):
            64 when the constraints vary (a fresh model each call, whose building holds the
            GIL: fewer, larger stacks were faster), and the batch split evenly over the
            threads when models are kept (their re-solves run at the same time; on the
            benchmark's batches of 64, two stacks of 32 on two threads took half the time
            of one of 64). With HiGHS, stacked solves skip presolve unless `options` sets
            `presolve` (twice as fast on the benchmark LPs).
        threads: the stacks of a call are solved at the same time on up to this many
            threads (HiGHS releases the GIL while it solves; idle threads block, they
            never spin); None: the number of CPUs (at most 8); 1: one after the other.
            Results do not depend on it.
        integer_duals: for integer programs in value mode, gradients with respect to
            parameters in the constraints raise unless this is `"fixed"`: the duals
            of the LP with the integer variables fixed at their optimum are then used
            (an approximation; objective parameters stay exact).

    Raises:
        TypeError, ValueError: the problem is not a DPP LP/MILP (quadratic or conic
            problems: the message points to cvxpylayers), the parameters or variables
            do not match the problem, or an option is unknown.
        solvers.BackendUnavailableError: unknown or uninstalled backend.
        solvers.CapabilityError: the backend cannot solve the problem (an LP-only
            backend for a MILP) or cannot give the duals a gradient needs.

    Examples:
        ```python
        import cvxpy as cp
        import torch
        from combgrad import CvxpyLayer

        x = cp.Variable(3)
        c = cp.Parameter(3)
        budget = cp.Parameter()
        problem = cp.Problem(cp.Maximize(c @ x), [cp.sum(x) <= budget, x >= 0, x <= 1])
        layer = CvxpyLayer(problem, parameters=[c, budget], variables=[x])

        c_t = torch.tensor([[3.0, 1.0, 2.0], [1.0, 0.8, 0.5]], requires_grad=True)  # (B, 3)
        budget_t = torch.tensor(1.5, requires_grad=True)  # shared by the batch
        value = layer(c_t, budget_t)  # (2,): [4.0, 1.4]
        value.sum().backward()  # c_t.grad = x*, budget_t.grad = 2 + 0.8 (marginal values)
        ```
    """

    def __init__(
        self,
        problem: Any,
        parameters: Sequence[Any],
        variables: Sequence[Any] | None = None,
        *,
        output: Literal["value", "solution"] = "value",
        method: str | None = None,
        method_options: Mapping[str, Any] | None = None,
        backend: str = "highs",
        options: Mapping[str, Any] | None = None,
        workers: int | None = None,
        integer_duals: Literal["fixed"] | None = None,
        stack: int | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if output not in ("value", "solution"):
            raise ValueError(f"`output` must be 'value' or 'solution'; got {output!r}.")
        if output == "solution":
            if method not in _METHODS:
                raise ValueError(
                    f"`method` must be one of {', '.join(map(repr, _METHODS))} with "
                    f"output='solution'; got {method!r}."
                )
        elif method is not None or method_options:
            raise ValueError("`method` and `method_options` apply only to output='solution'.")
        if integer_duals not in (None, "fixed"):
            raise ValueError(f"`integer_duals` must be None or 'fixed'; got {integer_duals!r}.")
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"`workers` must be a positive integer; got {workers!r}.")
        if stack is not None and (
            isinstance(stack, bool) or not isinstance(stack, int) or stack < 1
        ):
            raise ValueError(f"`stack` must be a positive integer or None; got {stack!r}.")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"`threads` must be a positive integer or None; got {threads!r}.")
        self.plp = ParametricLP(problem, parameters)
        info = solvers.backend_info()
        caps = info.get(backend) if isinstance(backend, str) else None
        if caps is None or not caps["installed"]:
            raise solvers.BackendUnavailableError(
                f"`backend`: {backend!r} is unknown or not installed. Available: "
                f"{solvers.available_backends()}."
            )
        if self.plp.is_mip and not caps["integer"]:
            raise solvers.CapabilityError(
                f"`backend`: {backend!r} cannot solve integer programs, and `problem` has "
                "integer or boolean variables."
            )
        if not caps["continuous"] and (
            self.plp.integrality is None or not self.plp.integrality.all()
        ):
            raise solvers.CapabilityError(
                f"`backend`: {backend!r} handles only pure integer programs; `problem` has "
                "continuous variables."
            )
        self._backend_duals = bool(caps["duals"])
        if variables is None:
            variables = problem.variables()
        if not isinstance(variables, list | tuple):
            raise TypeError(
                f"`variables` must be a list or tuple of cvxpy.Variable; got "
                f"{type(variables).__name__}."
            )
        self.variables = list(variables)
        self._var_slices = [self.plp.variable_slice(v) for v in self.variables]
        self.problem = problem
        self.parameters = self.plp.parameters
        self.output = output
        self.method = method
        self.method_options = dict(method_options or {})
        self.backend = backend
        self.options = dict(options or {})
        self.workers = workers
        self.stack = stack
        self.threads = threads
        self._solver_cache: dict[Any, Any] = {}
        self.integer_duals = integer_duals

    def __getstate__(self) -> dict[str, Any]:
        # Backend models and worker pools are rebuilt on demand, never pickled.
        state = super().__getstate__() if hasattr(super(), "__getstate__") else dict(self.__dict__)
        state = dict(state)
        state["_solver_cache"] = {}
        state.pop("_oracle_cache", None)
        state.pop("_cost_map_cache", None)
        return state

    def extra_repr(self) -> str:
        extra = f", method={self.method!r}" if self.method else ""
        return f"{self.plp!r}, output={self.output!r}{extra}, backend={self.backend!r}"

    def _theta(self, params: Sequence[Any]) -> tuple[torch.Tensor, bool, list[bool], list]:
        """Validate the parameter tensors and stack them into theta (B, n_theta)."""
        names = [p.name() for p in self.parameters]
        if len(params) != len(self.parameters):
            raise ValueError(
                f"CvxpyLayer expects one tensor per parameter ({', '.join(names)}): "
                f"{len(self.parameters)} tensors; got {len(params)}."
            )
        tensors = [p for p in params if isinstance(p, torch.Tensor) and p.is_floating_point()]
        dtype = tensors[0].dtype if tensors else torch.get_default_dtype()
        device = tensors[0].device if tensors else torch.device("cpu")
        values: list[torch.Tensor] = []
        batched: list[bool] = []
        sizes: dict[str, int] = {}
        for i, (value, shape, name) in enumerate(zip(params, self.plp.parameter_shapes, names)):
            label = f"parameter {i} ({name!r})"
            if not isinstance(value, torch.Tensor):
                try:
                    value = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)
                except (TypeError, ValueError) as exc:
                    raise TypeError(f"{label} must be a tensor of numbers.") from exc
            if not value.is_floating_point():
                value = value.to(dtype)
            if value.dim() == len(shape) and tuple(value.shape) == shape:
                batched.append(False)
            elif value.dim() == len(shape) + 1 and tuple(value.shape[1:]) == shape:
                batched.append(True)
                sizes[name] = value.shape[0]
            else:
                want = f"{shape}" + (
                    f" or (B, {', '.join(map(str, shape))})" if shape else " or (B,)"
                )
                raise ValueError(f"{label} must have shape {want}; got {tuple(value.shape)}.")
            bad = ~torch.isfinite(value.detach())
            if bad.any():
                where = tuple(int(k) for k in bad.nonzero()[0])
                raise ValueError(
                    f"{label} must be finite; found {value.detach()[where].item()} at index "
                    f"{where}."
                )
            values.append(value.to(dtype=dtype, device=device))
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"CvxpyLayer: the batch dimensions of the parameters disagree: {sizes}."
            )
        B = next(iter(sizes.values()), 1)
        if B == 0:
            raise ValueError("CvxpyLayer: the batch is empty (leading dimension 0).")
        flat = [
            _fortran_flat(v if b else v.unsqueeze(0)).expand(B, -1) for v, b in zip(values, batched)
        ]
        theta = torch.cat(flat, dim=1) if flat else torch.zeros(B, 0, dtype=dtype)
        return theta, bool(sizes), batched, values

    def forward(
        self, *params: torch.Tensor, return_variables: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, ...] | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Solve for the given parameter values.

        Args:
            *params: one tensor per parameter, in the constructor's order, each shaped
                like the parameter or with a leading batch dimension `B` (unbatched
                ones are shared by the batch).
            return_variables: with `output="value"`, also return the requested
                variables' optimal values (not differentiable).

        Returns:
            `output="value"`: the optimal value, shape `()` or `(B,)` (with
                `return_variables`, the pair `(value, variables)`).
                `output="solution"`: a tuple with one tensor per requested variable,
                shaped `variable.shape` or `(B, *variable.shape)`.

        Raises:
            ValueError: wrong number, shape or batch size of the parameters, NaN/inf,
                a gradient that is not defined (integer program, or a constraint
                parameter in solution mode); messages name the parameter.
            solvers.InfeasibleError, solvers.UnboundedError, solvers.SolverError: an
                item has no optimal solution; the message names the batch item.
        """
        theta, any_batched, batched, values = self._theta(params)
        plp = self.plp
        grad_on = torch.is_grad_enabled()
        wants = [grad_on and v.requires_grad for v in values]
        names = [p.name() for p in self.parameters]
        constraints_vary = any(b and cp for b, cp in zip(batched, plp.constraint_params))
        if self.output == "solution":
            return self._solution(theta, any_batched, wants, names, constraints_vary)
        dual_params = [n for n, w, cp in zip(names, wants, plp.constraint_params) if w and cp]
        need_duals = bool(dual_params)
        if need_duals and plp.is_mip and self.integer_duals != "fixed":
            raise ValueError(
                f"gradients with respect to {dual_params} are not defined for integer programs "
                "(the optimal value jumps as constraints move). Detach them, or construct the "
                "layer with `integer_duals='fixed'` to use the duals of the LP with the integer "
                "variables fixed at their optimum (an approximation). Gradients with respect "
                "to objective parameters are exact and always available."
            )
        if need_duals and not self._backend_duals:
            raise solvers.CapabilityError(
                f"`backend`: {self.backend!r} reports no duals, which the gradient with "
                f"respect to {dual_params} needs; use 'highs' or 'glop'."
            )
        cfg = _Config(
            plp=plp,
            backend=self.backend,
            options=self.options,
            workers=self.workers,
            need_duals=need_duals,
            constraints_vary=constraints_vary,
            stack=self.stack,
            cache=self._solver_cache,
            integer_duals=self.integer_duals,
            threads=self.threads,
        )
        z, x, _, _ = _CvxpyValue.apply(theta, cfg, any_batched)
        if not any_batched:
            z, x = z[0], x[0]
        if return_variables:
            return z, self._split(x, any_batched)
        return z

    def _split(self, x: torch.Tensor, batched: bool) -> tuple[torch.Tensor, ...]:
        X = x if batched else x.unsqueeze(0)
        out = []
        for var, sl in zip(self.variables, self._var_slices):
            part = X[:, sl].reshape(X.shape[0], *reversed(var.shape))
            part = part.permute(0, *range(part.dim() - 1, 0, -1))  # column-major -> shape
            out.append(part if batched else part[0])
        return tuple(out)

    def _solution(
        self,
        theta: torch.Tensor,
        batched: bool,
        wants: list[bool],
        names: list[str],
        constraints_vary: bool,
    ) -> tuple[torch.Tensor, ...]:
        from . import argmin

        plp = self.plp
        blocked = [n for n, w, cp in zip(names, wants, plp.constraint_params) if w and cp]
        if blocked:
            raise ValueError(
                f"output='solution' differentiates the solution through the objective only; "
                f"parameter(s) {blocked} enter the constraints and require grad. Detach them "
                "(they are still used to solve), or use output='value' for exact gradients "
                "with respect to constraint parameters."
            )
        jac, const = self._cost_map(theta)
        costs = theta @ jac.T + const  # (B, n): the compiled minimisation's costs
        method = getattr(argmin, self.method)
        th = theta.detach().to("cpu", torch.float64).numpy()
        if constraints_vary:  # one feasible set per item
            rows = []
            for i in range(th.shape[0]):
                oracle = self._oracle(th[i], cache=False)
                try:
                    rows.append(method(costs[i : i + 1], oracle, **self.method_options))
                except solvers.SolverError as exc:
                    raise type(exc)(f"{_where(i, batched)}: {exc}") from None
                finally:
                    oracle.close()
            x = torch.cat(rows, dim=0)
        else:
            oracle = self._oracle(th[0], cache=True)
            try:
                x = method(costs, oracle, **self.method_options)
            except solvers.SolverError as exc:
                raise type(exc)(f"CvxpyLayer: {exc}") from None
        return self._split(x, batched)

    def _cost_map(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map theta -> compiled costs as dense tensors of theta's dtype/device."""
        key = (theta.dtype, theta.device)
        cached = getattr(self, "_cost_map_cache", None)
        if cached is None or cached[0] != key:
            jac = torch.as_tensor(self.plp.cost_jacobian.toarray(), dtype=theta.dtype)
            const = torch.as_tensor(self.plp.cost_constant, dtype=theta.dtype)
            cached = (key, jac.to(theta.device), const.to(theta.device))
            self._cost_map_cache = cached
        return cached[1], cached[2]

    def _oracle(self, theta_i: np.ndarray, *, cache: bool) -> Any:
        """A `solvers.Oracle` over the compiled feasible set at `theta_i`.

        With `cache`, the oracle (and its backend model and worker pool) is kept while
        the constraint data stay the same, so that repeated calls only change costs.
        """
        lp = self.plp.linear_program(theta_i)
        key = self.plp.constraint_key(theta_i)
        held = getattr(self, "_oracle_cache", None)
        if cache and held is not None and held[0] == key:
            return held[1]
        oracle = solvers.Oracle.from_problem(
            lp, backend=self.backend, workers=self.workers, options=self.options
        )
        if cache:
            if held is not None:
                held[1].close()
            self._oracle_cache = (key, oracle)
        return oracle
