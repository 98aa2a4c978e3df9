r"""Stochastic gradient Langevin dynamics (SGLD).

The update is the Euler–Maruyama discretisation of the overdamped Langevin diffusion
$d\theta_t = -\nabla u(\theta_t)\,dt + \sqrt{2/\beta}\,dW_t$, driven by a stochastic gradient
$H(\theta, X)$ with $\mathbb{E}[H(\theta, X)] = \nabla u(\theta)$:

$$
\theta_{k+1} = \theta_k - \lambda\, H(\theta_k, X_{k+1}) + \sqrt{2\lambda/\beta}\;\xi_{k+1},
\qquad \xi_{k+1} \sim \mathcal{N}(0, I_d).
$$

For small step $\lambda$ the law of $\theta_k$ approaches the Gibbs measure
$\pi_\beta(d\theta) \propto \exp(-\beta\, u(\theta))\,d\theta$, which concentrates on the global
minimisers of $u$ as the inverse temperature $\beta$ grows.

Reference:
    Y. Zhang, Ö. D. Akyildiz, T. Damoulas, S. Sabanis. *Nonasymptotic estimates for stochastic
    gradient Langevin dynamics under local conditions in nonconvex optimization.*
    arXiv:1910.02008; Applied Mathematics & Optimization, 2023. Under a locally Lipschitz
    stochastic gradient and a local dissipativity condition the paper bounds
    $W_1(\mathcal{L}(\theta_n), \pi_\beta)$ by a term decaying exponentially in $\lambda n$ plus a
    step-size bias of order $\lambda^{1/2}$. We implement the standard update stated in the
    abstract; the paper's constants and step-size limit were not checked and are not claimed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer, ParamsT, _default_to_fused_or_foreach

__all__ = ["SGLD", "sgld"]

GeneratorArg = torch.Generator | Iterable[torch.Generator] | None


def _device_key(device: torch.device | str) -> str:
    """Canonical string for a device, with an explicit index for accelerators ("cuda:0")."""
    device = torch.device(device)
    if device.type != "cpu" and device.index is None:
        backend = getattr(torch, device.type, None)
        index = backend.current_device() if backend is not None else 0
        device = torch.device(device.type, index)
    return str(device)


def _generators_by_device(generator: GeneratorArg) -> dict[str, torch.Generator] | None:
    """Normalise the `generator` argument to `{device string: generator}` (or None)."""
    if generator is None:
        return None
    gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
    if not gens:
        raise ValueError(
            "`generator` must be a torch.Generator, a non-empty iterable of them, or None"
        )
    by_device: dict[str, torch.Generator] = {}
    for gen in gens:
        if not isinstance(gen, torch.Generator):
            raise TypeError(
                f"`generator` entries must be torch.Generator, got {type(gen).__name__}"
            )
        key = _device_key(gen.device)
        if key in by_device:
            raise ValueError(f"`generator` has more than one generator for device {key}")
        by_device[key] = gen
    return by_device


def _generator_for(
    device: torch.device, generators: Mapping[str, torch.Generator] | None
) -> torch.Generator | None:
    if generators is None:
        return None  # the device's global default generator (seeded by torch.manual_seed)
    key = _device_key(device)
    gen = generators.get(key)
    if gen is None:
        raise RuntimeError(
            f"SGLD has generators for devices {sorted(generators)} but a parameter lives on {key}; "
            "pass one torch.Generator per device, e.g. "
            f"generator=[torch.Generator('cpu'), torch.Generator('{key}')]"
        )
    return gen


def _check_hyperparameters(lr: float, inverse_temperature: float, weight_decay: float) -> None:
    if not 0.0 <= lr < math.inf:
        raise ValueError(f"Invalid learning rate: {lr}")
    # math.inf is allowed: zero noise, i.e. plain SGD (the beta -> infinity limit).
    if not inverse_temperature > 0.0:
        raise ValueError(f"Invalid inverse_temperature: {inverse_temperature}")
    if not 0.0 <= weight_decay < math.inf:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


class SGLD(Optimizer):
    r"""Stochastic gradient Langevin dynamics: SGD plus Gaussian noise of variance $2\lambda/\beta$.

    Each step applies, to every parameter $\theta$ with gradient $g$,

    $$
    \theta \leftarrow \theta - \lambda\,(g + w\,\theta) + \sqrt{2\lambda/\beta}\;\xi,
    \qquad \xi \sim \mathcal{N}(0, I),
    $$

    with learning rate $\lambda$ (`lr`), inverse temperature $\beta$ (`inverse_temperature`) and
    optional L2 weight decay $w$. With `maximize=True` the gradient is negated (the chain then
    targets $\exp(+\beta u)$). Run many chains in parallel by making one parameter tensor hold all
    of them: the noise is independent per entry.

    Randomness and reproducibility: the noise is drawn with `torch.randn(..., generator=g)`.
    A `torch.Generator` lives on one device, so pass **one generator per device** that holds
    parameters (`generator=[torch.Generator("cpu").manual_seed(0),
    torch.Generator("cuda").manual_seed(0)]`); a single generator is fine when all parameters share
    its device. A parameter on a device without a generator raises `RuntimeError`. With
    `generator=None` the global default generator of each device is used (`torch.manual_seed`).
    Noise is drawn parameter by parameter in `param_groups` order, so the single-tensor and
    `foreach` paths give identical results. The generators' states are saved by `state_dict()`
    (key `"generator_states"`) and restored by `load_state_dict()`, so a resumed run continues with
    exactly the same noise.

    Args:
        params: iterable of parameters or named parameters to optimize, or of dicts defining
            parameter groups.
        lr: step size $\lambda \ge 0$.
        inverse_temperature: $\beta > 0$; `math.inf` gives plain SGD (no noise).
        generator: a `torch.Generator`, an iterable of them (at most one per device), or None.
        weight_decay: L2 penalty $w \ge 0$ added to the gradient.
        maximize: ascend instead of descend.
        foreach: use the multi-tensor (`torch._foreach_*`) implementation; None picks it on CUDA.

    Example:
        ```python
        import torch
        from combgrad.optim import SGLD

        chains = torch.zeros(10_000, requires_grad=True)  # 10k parallel 1-D chains
        opt = SGLD([chains], lr=1e-2, inverse_temperature=3.0,
                   generator=torch.Generator().manual_seed(0))
        for _ in range(100):
            opt.zero_grad()
            (chains**4 / 4 - chains**2 / 2).sum().backward()
            opt.step()
        ```

    Note:
        Departures from the paper: none in the update. Weight decay, `maximize` and the
        `inverse_temperature = inf` limit are conveniences, not part of the analysed scheme.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        inverse_temperature: float = 1.0,
        *,
        generator: GeneratorArg = None,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
    ) -> None:
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        _check_hyperparameters(float(lr), inverse_temperature, weight_decay)
        self._generators = _generators_by_device(generator)
        defaults = {
            "lr": lr,
            "inverse_temperature": inverse_temperature,
            "weight_decay": weight_decay,
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
        _check_hyperparameters(float(lr), merged["inverse_temperature"], merged["weight_decay"])
        super().add_param_group(param_group)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_generators", None)
        for group in self.param_groups:
            group.setdefault("weight_decay", 0.0)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)

    def state_dict(self) -> dict[str, Any]:
        """Optimizer state plus `"generator_states"`: `{device: generator.get_state()}`."""
        state = super().state_dict()
        if self._generators is not None:
            state["generator_states"] = {
                key: gen.get_state() for key, gen in self._generators.items()
            }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load optimizer state and, for each device with a generator, its saved RNG state."""
        state_dict = dict(state_dict)
        generator_states = state_dict.pop("generator_states", None)
        super().load_state_dict(state_dict)
        if generator_states is not None and self._generators is not None:
            for key, rng_state in generator_states.items():
                if key in self._generators:
                    self._generators[key].set_state(rng_state)

    def _init_group(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        params, grads = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("SGLD does not support sparse gradients")
            if torch.is_complex(p):
                raise RuntimeError("SGLD does not support complex parameters")
            params.append(p)
            grads.append(p.grad)
        return params, grads

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform one SGLD step.

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
            params, grads = self._init_group(group)
            sgld(
                params,
                grads,
                lr=group["lr"],
                inverse_temperature=group["inverse_temperature"],
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
                generator=self._generators,
                foreach=group["foreach"],
            )
        return loss


def sgld(
    params: list[Tensor],
    grads: list[Tensor],
    *,
    lr: float | Tensor,
    inverse_temperature: float,
    weight_decay: float = 0.0,
    maximize: bool = False,
    generator: GeneratorArg | Mapping[str, torch.Generator] = None,
    foreach: bool | None = None,
) -> None:
    r"""Functional SGLD: update `params` in place; see [`SGLD`][combgrad.optim.sgld.SGLD].

    Args:
        params: parameters to update in place.
        grads: their (stochastic) gradients, same shapes.
        lr: step size $\lambda \ge 0$.
        inverse_temperature: $\beta > 0$ (`math.inf` means no noise).
        weight_decay: L2 penalty added to the gradient.
        maximize: ascend instead of descend.
        generator: a generator, an iterable of generators (one per device), a mapping
            `{device string: generator}`, or None for the global generators.
        foreach: use the multi-tensor implementation.
    """
    if len(params) != len(grads):
        raise ValueError(f"got {len(params)} params but {len(grads)} grads")
    lr = float(lr)
    _check_hyperparameters(lr, inverse_temperature, weight_decay)
    if isinstance(generator, Mapping):
        generators = {_device_key(key): gen for key, gen in generator.items()}
    else:
        generators = _generators_by_device(generator)
    if not params:
        return
    if foreach is None:
        _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    noise_scale = math.sqrt(2.0 * lr / inverse_temperature)
    # Noise is drawn first, in parameter order, so both paths consume the RNG identically.
    noises = (
        None
        if noise_scale == 0.0
        else [
            torch.randn(
                p.shape,
                generator=_generator_for(p.device, generators),
                dtype=p.dtype,
                device=p.device,
            )
            for p in params
        ]
    )
    impl = _multi_tensor_sgld if foreach else _single_tensor_sgld
    impl(
        params,
        grads,
        noises,
        lr=lr,
        noise_scale=noise_scale,
        weight_decay=weight_decay,
        maximize=maximize,
    )


def _single_tensor_sgld(
    params: list[Tensor],
    grads: list[Tensor],
    noises: list[Tensor] | None,
    *,
    lr: float,
    noise_scale: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    for i, (param, grad) in enumerate(zip(params, grads)):
        grad = -grad if maximize else grad
        if weight_decay != 0.0:
            grad = grad.add(param, alpha=weight_decay)
        param.add_(grad, alpha=-lr)
        if noises is not None:
            param.add_(noises[i], alpha=noise_scale)


def _multi_tensor_sgld(
    params: list[Tensor],
    grads: list[Tensor],
    noises: list[Tensor] | None,
    *,
    lr: float,
    noise_scale: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    tensor_lists: list[list[Tensor | None]] = [params, grads]
    if noises is not None:
        tensor_lists.append(noises)
    grouped = Optimizer._group_tensors_by_device_and_dtype(tensor_lists)
    for (device_params, device_grads, *rest), _ in grouped.values():
        if maximize:
            device_grads = torch._foreach_neg(device_grads)
        if weight_decay != 0.0:
            device_grads = torch._foreach_add(device_grads, device_params, alpha=weight_decay)
        torch._foreach_add_(device_params, device_grads, alpha=-lr)
        if rest:
            torch._foreach_add_(device_params, rest[0], alpha=noise_scale)
