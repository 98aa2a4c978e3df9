r"""Follow-the-Ridge (FR) for local minimax problems $\min_x \max_y f(x, y)$.

Reference: Y. Wang, G. Zhang, J. Ba, "On Solving Minimax Optimization Locally: A
Follow-the-Ridge Approach", ICLR 2020, arXiv:1910.07512.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

__all__ = ["FollowTheRidge", "hessian_solve"]

_PRECONDITIONERS = (None, "rmsprop")


class FollowTheRidge(Optimizer):
    r"""Follow-the-Ridge (Wang, Zhang & Ba, 2020) for $\min_x \max_y f(x, y)$.

    Gradient descent–ascent (GDA) plus a correction that moves the maximiser $y$ along
    the *ridge* $\{\nabla_y f = 0\}$ as $x$ moves, which cancels the rotation
    that makes GDA cycle or diverge. With $H_{yy} = \nabla^2_{yy} f$ and
    $H_{yx} = \nabla^2_{yx} f$ at $(x_t, y_t)$, preconditioners $P_1, P_2$
    and heavy-ball momentum $\gamma$ (paper, Sec. 4):

    $$
    \begin{aligned}
        &\Delta x_t = -\eta_x P_1 \nabla_x f + \gamma\,(x_t - x_{t-1}) \\
        &\Delta y_t = \eta_y P_2 \nabla_y f + \gamma\,(y_t - y_{t-1})
            - H_{yy}^{-1} H_{yx}\, \Delta x_t \\
        &x_{t+1} = x_t + \Delta x_t, \qquad y_{t+1} = y_t + \Delta y_t .
    \end{aligned}
    $$

    Without preconditioning and momentum this is the paper's basic update
    $y_{t+1} = y_t + \eta_y \nabla_y f + \eta_x H_{yy}^{-1} H_{yx} \nabla_x f$.

    $H_{yx}\,\Delta x$ is one exact Hessian-vector product by double backward. The solve
    with $H_{yy}$ uses no dense Hessian: conjugate gradients on the damped normal
    equations $(H_{yy}^2 + \lambda I)\,u = H_{yy} b$ (two Hessian-vector products per
    iteration; see `hessian_solve`), which is well posed even where $H_{yy}$ is
    indefinite or singular, as in the authors' code.

    Args:
        x_params: parameters $x$ of the minimising player (e.g. a generator).
        y_params: parameters $y$ of the maximising player (e.g. a discriminator).
        lr_x: step size $\eta_x$ (default: 1e-3).
        lr_y: step size $\eta_y$ (default: `lr_x`).
        momentum: heavy-ball coefficient $\gamma \in [0, 1)$ (default: 0). The paper
            notes that FR, unlike GDA, works with positive momentum.
        preconditioner: `None` ($P_1 = P_2 = I$) or `"rmsprop"` (diagonal
            $P = (\sqrt{\hat v} + \epsilon)^{-1}$, $\hat v$ a bias-corrected
            running mean of squared gradients, per player).
        beta: RMSprop decay rate for $v$ (default: 0.999, as in the paper's GAN code).
        eps: RMSprop $\epsilon$ (default: 1e-8).
        damping: $\lambda \ge 0$ in the normal equations (default: 0, the exact
            solve; use a positive value when $H_{yy}$ may be near singular).
        cg_iters: maximum conjugate-gradient iterations per step (default: 10).
        cg_tol: stop CG when the residual norm falls below `cg_tol` times the right-hand
            side's norm (default: 1e-10).
        correction: apply the ridge correction (default: True). `False` gives
            (preconditioned, momentum) GDA with the same hyperparameters, for ablations.

    Example:
        ```python
        import torch
        from combgrad.optim import FollowTheRidge

        x = torch.tensor([5.0], requires_grad=True)
        y = torch.tensor([7.0], requires_grad=True)
        opt = FollowTheRidge([x], [y], lr_x=0.05)
        for _ in range(300):
            _ = opt.step(lambda: (-3 * x**2 - y**2 + 4 * x * y).sum())
        print(bool(x.abs() < 1e-6 and y.abs() < 1e-6))  # True
        ```

    Note:
        Departures from the paper and its code:

        - $H_{yx} \Delta x$ is computed exactly by double backward instead of the code's
          finite difference of discriminator gradients.
        - The damping $\lambda$ is a fixed hyperparameter; the GAN code adapts it
          Levenberg–Marquardt style (initial value 1, capped).
        - RMSprop uses Adam-style bias correction of $v$ (zero initialised), so the
          first steps are not inflated; the momentum form is the paper's heavy ball [R]
          (from a summary of the paper, not checked against its full text).
        - `step` writes the (detached) gradients $\nabla_x f, \nabla_y f$ into
          `p.grad` so that they can be logged.
    """

    def __init__(
        self,
        x_params: Iterable[Tensor],
        y_params: Iterable[Tensor],
        lr_x: float = 1e-3,
        lr_y: float | None = None,
        *,
        momentum: float = 0.0,
        preconditioner: str | None = None,
        beta: float = 0.999,
        eps: float = 1e-8,
        damping: float = 0.0,
        cg_iters: int = 10,
        cg_tol: float = 1e-10,
        correction: bool = True,
    ) -> None:
        lr_y = lr_x if lr_y is None else lr_y
        for name, lr in (("lr_x", lr_x), ("lr_y", lr_y)):
            if isinstance(lr, bool) or not isinstance(lr, (int, float)):
                raise TypeError(f"`{name}` must be a float; got {type(lr).__name__}")
            if not (0.0 <= lr and math.isfinite(lr)):
                raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if preconditioner not in _PRECONDITIONERS:
            raise ValueError(
                f"Invalid preconditioner: {preconditioner!r}; expected one of {_PRECONDITIONERS}"
            )
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta value: {beta}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not (0.0 <= damping and math.isfinite(damping)):
            raise ValueError(f"Invalid damping value: {damping}")
        if isinstance(cg_iters, bool) or not isinstance(cg_iters, int) or cg_iters < 1:
            raise ValueError(f"Invalid cg_iters value: {cg_iters}")
        if not 0.0 <= cg_tol:
            raise ValueError(f"Invalid cg_tol value: {cg_tol}")
        x_list, y_list = _param_list(x_params, "x_params"), _param_list(y_params, "y_params")
        defaults = {
            "lr": lr_x,
            "momentum": momentum,
            "preconditioner": preconditioner,
            "beta": beta,
            "eps": eps,
            "damping": damping,
            "cg_iters": cg_iters,
            "cg_tol": cg_tol,
            "correction": correction,
        }
        groups = [
            {"params": x_list, "role": "x", "lr": lr_x},
            {"params": y_list, "role": "y", "lr": lr_y},
        ]
        super().__init__(groups, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("correction", True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Only the two groups made by the constructor (`x` then `y`) are allowed."""
        if len(self.param_groups) >= 2:
            raise RuntimeError("FollowTheRidge has exactly two parameter groups (x and y)")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        r"""Perform one Follow-the-Ridge step.

        Args:
            closure: re-evaluates and returns the scalar $f(x, y)$ *with its graph*
                (do not call `backward` in it; the optimizer differentiates twice).

        Returns:
            The value $f(x_t, y_t)$, detached.

        Raises:
            ValueError: if the closure does not return a finite scalar that depends on the
                parameters.
        """
        if closure is None or not callable(closure):
            raise ValueError("FollowTheRidge.step needs a closure that returns f(x, y)")
        x_group, y_group = self.param_groups
        xs, ys = list(x_group["params"]), list(y_group["params"])
        use_correction = y_group["correction"] and len(ys) > 0 and len(xs) > 0

        with torch.enable_grad():
            value = closure()
            if not isinstance(value, Tensor) or value.numel() != 1:
                raise ValueError("the closure must return a scalar tensor f(x, y)")
            value = value.reshape(())
            if not torch.isfinite(value):
                raise ValueError(
                    f"the closure returned a non-finite value {value.item()}; "
                    "the iterates have probably diverged (reduce lr_x / lr_y)"
                )
            if not value.requires_grad:
                raise ValueError("the closure's value does not depend on the parameters")
            grads = torch.autograd.grad(
                value, xs + ys, create_graph=use_correction, allow_unused=True
            )
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(xs + ys, grads)]
        grad_x, grad_y = grads[: len(xs)], grads[len(xs) :]
        for p, g in zip(xs + ys, grads):
            p.grad = g.detach().clone()

        delta_x = self._player_step(x_group, [g.detach() for g in grad_x], sign=-1.0)
        delta_y = self._player_step(y_group, [g.detach() for g in grad_y], sign=1.0)
        if use_correction:
            with torch.enable_grad():
                # b = H_yx Δx: differentiate <∇_x f, Δx> (Δx held constant) with respect to y.
                directional = sum((g * d).sum() for g, d in zip(grad_x, delta_x))
                rhs = _grad_or_zeros(directional, ys, retain_graph=True)
                # u = H_yy^{-1} b, then y moves by -u so that ∇_y f stays ~0 as x moves.
                shift = hessian_solve(
                    grad_y,
                    ys,
                    rhs,
                    damping=y_group["damping"],
                    max_iter=y_group["cg_iters"],
                    tol=y_group["cg_tol"],
                )
            for d, u in zip(delta_y, shift):
                d.sub_(u)
        for group, params, deltas in ((x_group, xs, delta_x), (y_group, ys, delta_y)):
            for p, d in zip(params, deltas):
                p.add_(d)
                if group["momentum"] > 0:
                    self.state[p]["momentum_buffer"] = d.clone()  # x_{t+1} - x_t
        return value.detach()

    def _player_step(self, group: dict[str, Any], grads: list[Tensor], sign: float) -> list:
        """Preconditioned gradient step plus heavy-ball term, before any ridge correction."""
        deltas = []
        for p, g in zip(group["params"], grads):
            state = self.state[p]
            state["step"] = state.get("step", 0) + 1
            direction = g
            if group["preconditioner"] == "rmsprop":
                if "square_avg" not in state:
                    state["square_avg"] = torch.zeros_like(p)
                square_avg = state["square_avg"]
                square_avg.mul_(group["beta"]).addcmul_(g, g, value=1.0 - group["beta"])
                bias_correction = 1.0 - group["beta"] ** state["step"]
                denom = (square_avg / bias_correction).sqrt_().add_(group["eps"])
                direction = g / denom
            delta = direction.mul(sign * group["lr"])
            buffer = state.get("momentum_buffer")
            if group["momentum"] > 0 and buffer is not None:
                delta.add_(buffer, alpha=group["momentum"])
            deltas.append(delta)
        return deltas


def hessian_solve(
    grad_y: Sequence[Tensor],
    y_params: Sequence[Tensor],
    rhs: Sequence[Tensor],
    *,
    damping: float = 0.0,
    max_iter: int = 10,
    tol: float = 1e-10,
) -> list[Tensor]:
    r"""Solve $H u = b$ with Hessian-vector products, without forming $H$.

    $H = \nabla_y (\text{grad\_y})$ is the Hessian of the function whose gradient
    `grad_y` was computed with `create_graph=True`. Runs conjugate gradients on the damped
    normal equations

    $$
    (H^2 + \lambda I)\, u = H b,
    $$

    which are symmetric positive (semi)definite for any symmetric $H$, so this works
    for indefinite $H$ too. With $\lambda = 0$ and invertible $H$ the solution
    is $H^{-1} b$; for singular $H$ CG started at 0 tends to the minimum-norm
    least-squares solution. Each iteration costs two Hessian-vector products (double backward).

    Args:
        grad_y: gradients $\nabla_y f$, one per tensor of `y_params`, with graph.
        y_params: the tensors $y$ they were taken with respect to.
        rhs: $b$, shaped like `y_params`.
        damping: $\lambda \ge 0$.
        max_iter: maximum CG iterations (exact after `dim(y)` in exact arithmetic).
        tol: stop when $\|r\| \le \text{tol}\,\|Hb\|$.

    Returns:
        $u$, detached, shaped like `y_params`.
    """
    if len(grad_y) != len(y_params) or len(rhs) != len(y_params):
        raise ValueError("`grad_y`, `y_params` and `rhs` must have one entry per tensor of y")
    for p, b in zip(y_params, rhs):
        if b.shape != p.shape:
            raise ValueError(f"`rhs` entry of shape {tuple(b.shape)} != y shape {tuple(p.shape)}")
    if not damping >= 0.0:
        raise ValueError(f"Invalid damping value: {damping}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"Invalid max_iter value: {max_iter}")

    def hvp(vectors: list[Tensor]) -> list[Tensor]:
        with torch.enable_grad():
            directional = sum((g * v).sum() for g, v in zip(grad_y, vectors))
            return _grad_or_zeros(directional, y_params, retain_graph=True)

    def dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
        return sum((u * v).sum() for u, v in zip(a, b))

    def normal_op(vectors: list[Tensor]) -> list[Tensor]:
        out = hvp(hvp(vectors))
        if damping:
            out = [o.add(v, alpha=damping) for o, v in zip(out, vectors)]
        return out

    rhs = [b.detach() for b in rhs]
    normal_rhs = hvp(rhs)
    solution = [torch.zeros_like(b) for b in rhs]
    residual = [b.clone() for b in normal_rhs]
    direction = [b.clone() for b in normal_rhs]
    residual_sq = dot(residual, residual)
    threshold = (tol**2) * residual_sq
    for _ in range(max_iter):
        if residual_sq <= threshold or residual_sq == 0:
            break
        curvature_vec = normal_op(direction)
        curvature = dot(direction, curvature_vec)
        if not curvature > 0:  # direction in the null space of a singular, undamped system
            break
        alpha = residual_sq / curvature
        for s, d in zip(solution, direction):
            s.add_(d * alpha)
        for r, c in zip(residual, curvature_vec):
            r.sub_(c * alpha)
        new_residual_sq = dot(residual, residual)
        ratio = new_residual_sq / residual_sq
        residual_sq = new_residual_sq
        direction = [r + ratio * d for r, d in zip(residual, direction)]
    return solution


# ---------------------------------------------------------------------- helpers
def _param_list(params: Iterable[Tensor], name: str) -> list[Tensor]:
    if isinstance(params, Tensor):
        raise TypeError(f"`{name}` must be an iterable of tensors, not a tensor")
    if isinstance(params, set):
        raise TypeError(f"`{name}` must be an ordered iterable, not a set")
    result = list(params)
    if not result:
        raise ValueError(f"`{name}` is empty")
    for p in result:
        if not isinstance(p, Tensor):
            raise TypeError(f"`{name}` must contain tensors; got {type(p).__name__}")
        if not p.requires_grad:
            raise ValueError(f"every tensor in `{name}` must require grad")
    return result


def _grad_or_zeros(output: Tensor | int, inputs: Sequence[Tensor], **kwargs: Any) -> list[Tensor]:
    """`torch.autograd.grad` that returns zeros where `output` does not depend on an input."""
    if not isinstance(output, Tensor) or not output.requires_grad:
        return [torch.zeros_like(p) for p in inputs]
    grads = torch.autograd.grad(output, inputs, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(inputs, grads)]
