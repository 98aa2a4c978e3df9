r"""Stochastic gradient descent–ascent (SGDA) for min–max problems.

For $\min_x \max_y f(x, y)$, simultaneous (projected) SGDA takes, from stochastic gradients
evaluated at the *same* point $(x_t, y_t)$,

$$
x_{t+1} = \Pi_X\big(x_t - \eta_x\, \nabla_x f(x_t, y_t)\big), \qquad
y_{t+1} = \Pi_Y\big(y_t + \eta_y\, \nabla_y f(x_t, y_t)\big).
$$

This is the training loop analysed by Lei, Lee, Dimakis and Daskalakis, *SGD Learns One-Layer
Networks in WGANs* (ICML 2020, arXiv:1910.07030), whose Algorithm 1 is projected SGDA on a
generator with a quadratic discriminator; see `examples/wgan_one_layer.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT

__all__ = ["SGDA", "project_to_ball", "sgda"]

Projection = Callable[[Tensor], Tensor | None]


def _check_group_values(
    lr: Any, ascent: Any, weight_decay: Any, projection: Any, radius: Any
) -> None:
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    try:
        lr_value = float(lr)
    except (TypeError, ValueError):
        lr_value = math.nan
    if isinstance(lr, bool) or not 0.0 <= lr_value < math.inf:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not isinstance(ascent, bool):
        raise ValueError(f"Invalid ascent flag: {ascent!r} (must be True or False)")
    if (
        isinstance(weight_decay, bool)
        or not isinstance(weight_decay, int | float)
        or not 0.0 <= weight_decay < math.inf
    ):
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if projection is not None and not callable(projection):
        raise ValueError(f"Invalid projection: {projection!r} (must be callable or None)")
    if radius is not None and (
        isinstance(radius, bool)
        or not isinstance(radius, int | float)
        or not 0.0 < radius < math.inf
    ):
        raise ValueError(f"Invalid radius: {radius!r} (must be a positive finite number or None)")
    if projection is not None and radius is not None:
        raise ValueError("Give either `projection` or `radius` for a parameter group, not both")


class SGDA(Optimizer):
    r"""Simultaneous stochastic gradient descent–ascent with optional projection.

    Every parameter group is a *descent* group (default) or an *ascent* group
    (`"ascent": True`). One `step()` updates all groups from the gradients currently stored in
    `.grad`, which were all computed at the same point, so the players move **simultaneously**:

    $$
    p \leftarrow \Pi\big(p - \eta\,(g + w\,p)\big) \ \text{(descent)}, \qquad
    p \leftarrow \Pi\big(p + \eta\,(g - w\,p)\big) \ \text{(ascent)},
    $$

    where $g$ is the gradient of the shared objective $f$, $w$ an optional weight decay (it
    shrinks the parameter for both kinds of group: the ascent player maximises
    $f - \tfrac{w}{2}\|p\|^2$) and $\Pi$ the group's projection:

    * `projection`: a callable applied to each updated parameter tensor; it may modify the tensor
      in place and return None, or return the projected tensor (copied back in place). It runs
      under `torch.no_grad()`.
    * `radius`: project each parameter tensor onto the Frobenius (Euclidean) ball
      $\{p : \|p\| \le r\}$.

    For *alternating* GDA (the discriminator moves first, then the generator sees the new
    discriminator), use one `SGDA` per player and recompute gradients between their steps.

    Args:
        params: iterable of parameters or named parameters, or of dicts defining parameter
            groups; group dicts may set `lr`, `ascent`, `weight_decay`, `projection`, `radius`.
        lr: default step size $\eta \ge 0$.
        ascent: default player kind for groups that do not set it.
        weight_decay: default L2 weight decay $w \ge 0$.
        projection: default projection callable (or None).
        radius: default ball radius (or None). A group may set only one of `projection`,
            `radius`.

    Raises:
        ValueError: for invalid hyperparameters in the defaults or in any group.

    Example:
        ```python
        import torch
        from combgrad.optim import SGDA

        x = torch.ones(2, requires_grad=True)
        y = torch.ones(2, requires_grad=True)
        opt = SGDA([{"params": [x]}, {"params": [y], "ascent": True, "radius": 1.0}], lr=0.1)
        for _ in range(10):
            opt.zero_grad()
            (x @ x - y @ y + 2 * x @ y).backward()  # min over x, max over y
            opt.step()
        ```

    Note:
        Relation to the WGAN paper's Algorithm 1: there the discriminator is set by an exact inner
        step and then the generator moves, with a uniform unit-sphere perturbation of its
        gradient. `examples/wgan_one_layer.py` gets the exact inner step from an ascent group with
        `lr=1` (the discriminator is one step behind, since play is simultaneous) and does not
        add the perturbation.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        *,
        ascent: bool = False,
        weight_decay: float = 0.0,
        projection: Projection | None = None,
        radius: float | None = None,
    ) -> None:
        _check_group_values(lr, ascent, weight_decay, projection, radius)
        defaults = {
            "lr": lr,
            "ascent": ascent,
            "weight_decay": weight_decay,
            "projection": projection,
            "radius": radius,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group, validating its SGDA keys (see the class docstring)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_group_values(
            group["lr"],
            group["ascent"],
            group["weight_decay"],
            group["projection"],
            group["radius"],
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("ascent", False)
            group.setdefault("weight_decay", 0.0)
            group.setdefault("projection", None)
            group.setdefault("radius", None)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one simultaneous descent–ascent step on all groups.

        Args:
            closure: optional callable that re-evaluates the objective (calling `backward`) and
                returns it; evaluated once, before any parameter moves.

        Returns:
            The closure's value, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Gather every update before applying any of them (simultaneous play).
        work = []
        for group in self.param_groups:
            params, grads = [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("SGDA does not support sparse gradients")
                params.append(p)
                grads.append(p.grad)
            work.append((group, params, grads))
        for group, params, grads in work:
            sgda(
                params,
                grads,
                lr=group["lr"],
                ascent=group["ascent"],
                weight_decay=group["weight_decay"],
                projection=group["projection"],
                radius=group["radius"],
            )
        return loss


def project_to_ball(tensor: Tensor, radius: float) -> Tensor:
    """Project `tensor` in place onto the Euclidean ball of `radius` (all entries as one vector).

    Args:
        tensor: any shape; modified in place.
        radius: positive ball radius.

    Returns:
        `tensor`.
    """
    norm = torch.linalg.vector_norm(tensor)
    # torch.where avoids a device sync; the scale is exactly 1 inside the ball.
    scale = torch.where(norm > radius, radius / norm.clamp_min(torch.finfo(norm.dtype).tiny), 1.0)
    return tensor.mul_(scale.to(tensor.dtype))


def sgda(
    params: list[Tensor],
    grads: list[Tensor],
    *,
    lr: float | Tensor,
    ascent: bool = False,
    weight_decay: float = 0.0,
    projection: Projection | None = None,
    radius: float | None = None,
) -> None:
    """Functional SGDA for one player: update `params` in place.

    Args:
        params: the player's parameters.
        grads: gradients of the shared objective with respect to `params`.
        lr: step size.
        ascent: ascend (maximising player) instead of descend.
        weight_decay: L2 weight decay (shrinks `params` for both players).
        projection: callable applied to each updated parameter (in place or by return value).
        radius: project each parameter onto the Euclidean ball of this radius.
    """
    if len(params) != len(grads):
        raise ValueError(f"got {len(params)} params but {len(grads)} grads")
    _check_group_values(lr, ascent, weight_decay, projection, radius)
    lr = float(lr)
    direction = lr if ascent else -lr
    with torch.no_grad():
        for param, grad in zip(params, grads):
            if weight_decay != 0.0:
                param.mul_(1.0 - lr * weight_decay)  # identical for both players: -lr * w * p
            param.add_(grad, alpha=direction)
            if projection is not None:
                projected = projection(param)
                if projected is not None and projected is not param:
                    param.copy_(projected)
            elif radius is not None:
                project_to_ball(param, radius)
