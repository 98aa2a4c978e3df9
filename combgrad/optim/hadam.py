r"""HAdam: Adam with a higher-order moment estimate and its k-th root.

Reference:
    Z. Jiang, A. Balu, S. Y. Tan, Y. M. Lee, C. Hegde, S. Sarkar. *On Higher-order Moments in
    Adam.* arXiv:1910.06878 (NeurIPS 2019 workshop). The paper replaces Adam's second moment by
    the EMA of $g^k$ and the square root by the $k$-th root; $k = 2$ is Adam. It reports that
    "odd-order moments lead to the divergence of Adam" and that some even orders improve on
    Adam. Its experiments, best order and numbers could not be checked, so nothing here
    claims them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor
from torch.optim.optimizer import (
    Optimizer,
    ParamsT,
    _default_to_fused_or_foreach,
    _get_scalar_dtype,
)

__all__ = ["HAdam", "hadam"]

MomentKind = Literal["signed", "absolute"]
_MOMENT_KINDS = ("signed", "absolute")


def _check_hyperparameters(
    lr: float,
    betas: tuple[float, float],
    eps: float,
    order: int,
    weight_decay: float,
    moment: str | None,
) -> None:
    if not 0.0 <= lr < math.inf:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps < math.inf:
        raise ValueError(f"Invalid epsilon value: {eps}")
    if len(betas) != 2:
        raise ValueError(f"Invalid betas: {betas} (expected two values)")
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
    if not 0.0 <= weight_decay < math.inf:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"Invalid order: {order!r} (must be an integer >= 1)")
    if moment is not None and moment not in _MOMENT_KINDS:
        raise ValueError(f"Invalid moment: {moment!r} (expected None, 'signed' or 'absolute')")
    if order % 2 == 1 and moment is None:
        raise ValueError(
            f"HAdam with odd order={order}: the paper (Jiang et al., 2019) reports that odd-order "
            "moments make Adam diverge, because the moving average of g^k can turn negative. "
            "Pass moment='signed' to run the paper's update anyway (expected to diverge), or "
            "moment='absolute' to average |g|^k instead (a well-defined variant, not from the paper)."
        )


class HAdam(Optimizer):
    r"""Higher-order Adam: the EMA of the $k$-th power of the gradient and its $k$-th root.

    With gradient $g_t$ (plus weight decay $w\theta_{t-1}$), step count $t$ and order $k$:

    $$
    \begin{aligned}
    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^{\,k}
        \quad (\text{or } |g_t|^k \text{ with } \texttt{moment="absolute"}),\\
    \theta_t &= \theta_{t-1} - \eta\, \frac{m_t / (1-\beta_1^t)}
        {\sqrt[k]{v_t}\,/\,(1-\beta_2^t)^{1/k} + \epsilon}.
    \end{aligned}
    $$

    $k = 2$ is Adam. **Epsilon placement:** as in `torch.optim.Adam`, $\epsilon$ is added *after*
    the bias correction of the root, so `order=2` reproduces `torch.optim.Adam` (without amsgrad)
    step for step, for every `eps`. The paper writes the same step as
    $\eta\,\frac{(1-\beta_2^t)^{1/k}}{1-\beta_1^t}\,\frac{m_t}{\sqrt[k]{v_t} + \epsilon'}$, i.e.
    $\epsilon$ added *before* the bias correction; the two agree exactly for $\epsilon = 0$ and
    otherwise differ only by the rescaling $\epsilon' = \epsilon\,(1-\beta_2^t)^{1/k}$.

    **Odd orders.** For odd $k$ the paper's signed moment $g^k$ can make $v_t$ negative, and the
    paper reports that odd orders make Adam diverge. Odd orders therefore raise `ValueError`
    unless `moment` says which variant to run:

    * `moment="signed"`: the paper's $v_t$ = EMA of $g^k$, with the real $k$-th root
      $\operatorname{sign}(v)\,|v|^{1/k}$. The denominator can then approach zero or turn
      negative, so steps blow up or point uphill: this reproduces the reported divergence.
    * `moment="absolute"`: $v_t$ = EMA of $|g|^k$ (not from the paper); always non-negative, and
      behaves like the even orders.

    For even $k$ both choices are the same update and `moment` may be left at None.

    Args:
        params: iterable of parameters or named parameters to optimize, or of dicts defining
            parameter groups.
        lr: step size $\eta \ge 0$.
        betas: $(\beta_1, \beta_2)$, each in $[0, 1)$.
        eps: $\epsilon \ge 0$ added to the bias-corrected root.
        order: the moment order $k$, an integer $\ge 1$.
        weight_decay: L2 penalty $w \ge 0$ added to the gradient (as in Adam, not AdamW).
        moment: None, `"signed"` or `"absolute"`; required for odd `order` (see above).
        maximize: ascend instead of descend.
        foreach: use the multi-tensor (`torch._foreach_*`) implementation; None picks it on CUDA.

    Example:
        ```python
        import torch
        from combgrad.optim import HAdam

        w = torch.zeros(3, requires_grad=True)
        opt = HAdam([w], lr=1e-2, order=4)
        for _ in range(10):
            opt.zero_grad()
            ((w - 1.0) ** 2).sum().backward()
            opt.step()
        ```

    Note:
        Precision: $g^k$ under- or overflows sooner than $g^2$. In float32 with $k = 6$,
        gradient entries below about $4\times10^{-7}$ in magnitude underflow to a zero moment (the
        step then divides by $\epsilon$ alone) and entries above about $2\times10^{6}$ overflow.
        Use float64 parameters, or keep gradients in range, for high orders.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        order: int = 2,
        weight_decay: float = 0.0,
        *,
        moment: MomentKind | None = None,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        _check_hyperparameters(float(lr), tuple(betas), eps, order, weight_decay, moment)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "order": order,
            "weight_decay": weight_decay,
            "moment": moment,
            "maximize": maximize,
            "foreach": foreach,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group, validating its hyperparameters (as the constructor does)."""
        merged = {**self.defaults, **param_group}
        lr = merged["lr"]
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        _check_hyperparameters(
            float(lr),
            tuple(merged["betas"]),
            merged["eps"],
            merged["order"],
            merged["weight_decay"],
            merged["moment"],
        )
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("order", 2)
            group.setdefault("moment", None)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)

    def _init_group(
        self, group: dict[str, Any]
    ) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
        params, grads, exp_avgs, exp_avg_pows, steps = [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("HAdam does not support sparse gradients")
            if torch.is_complex(p):
                raise RuntimeError("HAdam does not support complex parameters")
            state = self.state[p]
            if len(state) == 0:  # lazy state initialisation, as in torch.optim.Adam
                state["step"] = torch.tensor(0.0, dtype=_get_scalar_dtype())
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_pow"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_pows.append(state["exp_avg_pow"])
            steps.append(state["step"])
        return params, grads, exp_avgs, exp_avg_pows, steps

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one HAdam step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_pows, steps = self._init_group(group)
            hadam(
                params,
                grads,
                exp_avgs,
                exp_avg_pows,
                steps,
                lr=group["lr"],
                betas=group["betas"],
                eps=group["eps"],
                order=group["order"],
                weight_decay=group["weight_decay"],
                moment=group["moment"],
                maximize=group["maximize"],
                foreach=group["foreach"],
            )
        return loss


def hadam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_pows: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float | Tensor,
    betas: tuple[float, float],
    eps: float,
    order: int,
    weight_decay: float = 0.0,
    moment: MomentKind | None = None,
    maximize: bool = False,
    foreach: bool | None = None,
) -> None:
    r"""Functional HAdam: update `params` and the state lists in place.

    See [`HAdam`][combgrad.optim.hadam.HAdam] for the update. `state_steps` holds one scalar
    tensor per parameter, incremented here.

    Args:
        params: parameters to update in place.
        grads: their gradients.
        exp_avgs: first-moment EMAs $m$ (same shapes as `params`).
        exp_avg_pows: $k$-th-moment EMAs $v$ (same shapes as `params`).
        state_steps: step counters (0-dim tensors).
        lr: step size.
        betas: $(\beta_1, \beta_2)$.
        eps: added to the bias-corrected root.
        order: the moment order $k$.
        weight_decay: L2 penalty added to the gradient.
        moment: None, `"signed"` or `"absolute"` (required for odd `order`).
        maximize: ascend instead of descend.
        foreach: use the multi-tensor implementation.
    """
    lists = (params, grads, exp_avgs, exp_avg_pows, state_steps)
    if len({len(x) for x in lists}) != 1:
        raise ValueError(
            "params, grads, exp_avgs, exp_avg_pows and state_steps must have equal lengths, "
            f"got {[len(x) for x in lists]}"
        )
    lr = float(lr)
    betas = (float(betas[0]), float(betas[1]))
    _check_hyperparameters(lr, betas, eps, order, weight_decay, moment)
    if not params:
        return
    if foreach is None:
        _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    # Even orders: g^k == |g|^k. Only odd orders with moment="signed" keep the sign.
    signed = order % 2 == 1 and moment == "signed"
    impl = _multi_tensor_hadam if foreach else _single_tensor_hadam
    impl(
        params,
        grads,
        exp_avgs,
        exp_avg_pows,
        state_steps,
        lr=lr,
        betas=betas,
        eps=eps,
        order=order,
        weight_decay=weight_decay,
        signed=signed,
        maximize=maximize,
    )


def _single_tensor_hadam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_pows: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    order: int,
    weight_decay: float,
    signed: bool,
    maximize: bool,
) -> None:
    beta1, beta2 = betas
    for param, grad, exp_avg, exp_avg_pow, step_t in zip(
        params, grads, exp_avgs, exp_avg_pows, state_steps
    ):
        grad = -grad if maximize else grad
        if weight_decay != 0.0:
            grad = grad.add(param, alpha=weight_decay)
        step_t += 1
        step = float(step_t.item())
        exp_avg.lerp_(grad, 1.0 - beta1)
        powered = grad.pow(order) if signed else grad.abs().pow(order)
        exp_avg_pow.mul_(beta2).add_(powered, alpha=1.0 - beta2)
        bias_correction1 = 1.0 - beta1**step
        bias_correction2_root = (1.0 - beta2**step) ** (1.0 / order)
        root = exp_avg_pow.abs().pow(1.0 / order)
        if signed:
            root.mul_(exp_avg_pow.sign())  # real k-th root of a possibly negative moment
        denom = root.div_(bias_correction2_root).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)


def _multi_tensor_hadam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_pows: list[Tensor],
    state_steps: list[Tensor],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    order: int,
    weight_decay: float,
    signed: bool,
    maximize: bool,
) -> None:
    beta1, beta2 = betas
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        [params, grads, exp_avgs, exp_avg_pows, state_steps]
    )
    for (dev_params, dev_grads, dev_exp_avgs, dev_exp_avg_pows, dev_steps), _ in grouped.values():
        if maximize:
            dev_grads = torch._foreach_neg(dev_grads)
        if weight_decay != 0.0:
            dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=weight_decay)
        torch._foreach_add_(dev_steps, 1.0)
        torch._foreach_lerp_(dev_exp_avgs, dev_grads, 1.0 - beta1)
        base = dev_grads if signed else torch._foreach_abs(dev_grads)
        powered = torch._foreach_pow(base, order)
        torch._foreach_mul_(dev_exp_avg_pows, beta2)
        torch._foreach_add_(dev_exp_avg_pows, powered, alpha=1.0 - beta2)
        roots = torch._foreach_pow(torch._foreach_abs(dev_exp_avg_pows), 1.0 / order)
        if signed:
            torch._foreach_mul_(roots, torch._foreach_sign(dev_exp_avg_pows))
        # Steps can differ between parameters (e.g. a parameter that had no gradient once).
        step_sizes, root_corrections = [], []
        for step_t in dev_steps:
            step = float(step_t.item())
            step_sizes.append(-lr / (1.0 - beta1**step))
            root_corrections.append((1.0 - beta2**step) ** (1.0 / order))
        torch._foreach_div_(roots, root_corrections)
        torch._foreach_add_(roots, eps)
        torch._foreach_addcdiv_(dev_params, dev_exp_avgs, roots, step_sizes)
