r"""Orthogonal Gradient Descent (OGD) for continual learning.

Reference: M. Farajtabar, N. Azizan, A. Mott, A. Li, "Orthogonal Gradient Descent for
Continual Learning", AISTATS 2020, arXiv:1910.07104.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.optimizer import Optimizer, ParamsT

__all__ = ["OGD", "ogd"]

_VARIANTS = ("GTL", "AVE", "ALL")


class OGD(Optimizer):
    r"""Orthogonal Gradient Descent (Farajtabar et al., 2020).

    OGD keeps an orthonormal basis $U \in \mathbb{R}^{P \times r}$ of gradients of the
    model's *outputs* (logits) $\nabla_w f_j(x; w)$ on samples of earlier tasks, and moves
    only in the orthogonal complement of its span, so that, to first order, the outputs on the
    remembered samples do not change:

    $$
    \begin{aligned}
        &\Delta_t = -\eta\, \nabla_w L(w_t)
            \quad(\text{per parameter group } \eta) \\
        &\tilde\Delta_t = \Delta_t - U\,(U^\top \Delta_t) \\
        &w_{t+1} = w_t + \tilde\Delta_t .
    \end{aligned}
    $$

    After training on a task, call `remember` with samples of that task. It computes the
    per-sample output gradients (vectorised with `torch.func.vmap`), removes their
    components along the current basis (block classical Gram–Schmidt, applied twice), and
    appends an orthonormal basis of what remains (rank-revealing thin SVD). Which outputs are
    remembered is the paper's *variant*:

    - `"GTL"` (ground-truth logit): $\nabla_w f_{y_i}(x_i)$; one vector per sample. The
      paper's experiments use this one.
    - `"AVE"` (average): $\nabla_w \tfrac1c \sum_j f_j(x_i)$; one vector per sample.
    - `"ALL"`: $\nabla_w f_j(x_i)$ for every logit $j$; `c` vectors per sample.

    The basis is kept per parameter as a block `state[p]["ogd_basis"]` of shape
    `(p.numel(), r)`; stacked, the blocks form the `(P, r)` matrix $U$ (see
    `basis`). The projection is two matrix products per parameter, with no loop over the
    stored vectors. Memory is `P * r` numbers: with `m` samples per task, `r` grows by at
    most `m` (`c * m` for `"ALL"`) per task.

    Args:
        params: iterable of parameters or named_parameters to optimize, or iterable of dicts
            defining parameter groups. The basis spans *all* of them jointly.
        lr: learning rate $\eta$ (default: 1e-3, the paper's value).
        variant: which output gradients `remember` stores: `"GTL"`, `"AVE"` or
            `"ALL"` (default: `"GTL"`).
        maximize: maximize the objective instead of minimizing (default: False).

    Example:
        ```python
        import torch
        from torch import nn
        from combgrad.optim import OGD

        model = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
        opt = OGD(model.parameters(), lr=1e-2, variant="GTL")
        tasks = [(torch.randn(256, 64), torch.randint(0, 10, (256,))) for _ in range(2)]
        for x, y in tasks:  # the tasks arrive one after another
            for xb, yb in zip(x.split(32), y.split(32)):
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
            opt.remember(model, x, y, m=200)  # later steps keep these outputs fixed
        ```

    Note:
        Departures from the paper and choices it leaves open:

        - The *step* $-\eta g$ is projected rather than the gradient $g$. With one
          learning rate this is the same; with several parameter groups with different learning
          rates it keeps the remembered outputs fixed to first order, which projecting `g`
          would not.
        - Parameters whose `grad` is `None` count as having a zero gradient once a basis
          exists: the projection can still move them, as it must to stay orthogonal.
        - Frozen parameters (`requires_grad=False`) are left out: `remember` stores zero
          blocks for them and `step` never moves them, so the protection holds in the space
          of the trainable parameters. Freeze or unfreeze parameters before `remember` (or
          call `reset_basis` and remember again): a parameter frozen later keeps its part of
          the stored directions, and leaving it still weakens the protection.
        - New vectors are orthonormalised as a block (two passes of classical Gram–Schmidt
          against the stored basis, then a thin SVD) instead of one at a time. The span is the
          same as sequential Gram–Schmidt; directions whose residual is below
          `rtol * (largest new vector's norm)` are dropped, since they are (numerically)
          already in the span.
        - No momentum or weight decay: the paper uses plain SGD, and both would move the
          parameters along remembered directions.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        *,
        variant: str = "GTL",
        maximize: bool = False,
    ) -> None:
        if isinstance(lr, Tensor):
            if lr.numel() != 1:
                raise ValueError("Tensor lr must be 1-element")
            lr = float(lr)
        if not (0.0 <= lr and math.isfinite(lr)):
            raise ValueError(f"Invalid learning rate: {lr}")
        _check_variant(variant)
        defaults = {"lr": lr, "variant": variant, "maximize": maximize}
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a parameter group; validates its `lr` and `variant`.

        If a basis is already stored, the new parameters get zero blocks: the stored output
        gradients did not involve them, so they may move freely.
        """
        lr = param_group.get("lr", self.defaults["lr"])
        if not (0.0 <= lr and math.isfinite(lr)):
            raise ValueError(f"Invalid learning rate: {lr}")
        _check_variant(param_group.get("variant", self.defaults["variant"]))
        size = self.basis_size if self.param_groups else 0
        super().add_param_group(param_group)
        if size:
            for p in self.param_groups[-1]["params"]:
                self.state[p]["ogd_basis"] = p.new_zeros(p.numel(), size)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("variant", "GTL")
            group.setdefault("maximize", False)

    # ------------------------------------------------------------------ basis access
    def _all_params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _blocks(self) -> list[Tensor] | None:
        """Per-parameter basis blocks `(p.numel(), r)`, or None before any `remember`."""
        params = self._all_params()
        if not params or "ogd_basis" not in self.state.get(params[0], {}):
            return None
        return [self.state[p]["ogd_basis"] for p in params]

    @property
    def basis_size(self) -> int:
        """Number `r` of stored orthonormal directions."""
        blocks = self._blocks()
        return 0 if blocks is None else int(blocks[0].shape[1])

    def basis(self) -> Tensor:
        """The stored orthonormal basis as one matrix.

        Returns:
            Tensor of shape `(P, r)`, with `P` the total number of elements of all
                parameters, in parameter-group order. It is a copy; `r` may be 0.
        """
        blocks = self._blocks()
        if blocks is None:
            params = self._all_params()
            total = sum(p.numel() for p in params)
            like = params[0]
            return torch.zeros(total, 0, dtype=like.dtype, device=like.device)
        return torch.cat(blocks, dim=0)

    def reset_basis(self) -> None:
        """Forget all stored directions (the next step is plain SGD)."""
        for p in self._all_params():
            self.state[p].pop("ogd_basis", None)

    # ------------------------------------------------------------------ memory
    @torch.no_grad()
    def remember(
        self,
        model: nn.Module,
        inputs: Tensor,
        targets: Tensor | None = None,
        *,
        m: int | None = None,
        variant: str | None = None,
        generator: torch.Generator | None = None,
        chunk_size: int = 64,
        rtol: float | None = None,
    ) -> int:
        r"""Store the output gradients of `model` on samples of a finished task.

        Args:
            model: the network being trained. `model(x)` must return logits of shape
                `(batch, c)`. Gradients are taken with respect to those of the optimizer's
                trainable parameters (`requires_grad=True`) that belong to `model` (the
                others get zero gradient); the model's other parameters and buffers stay fixed. Put the model in `eval()` mode if it
                has dropout or batch norm: samples are processed one at a time under
                `torch.func.vmap`.
            inputs: samples of the finished task, shape `(N, *input_shape)`.
            targets: integer class labels, shape `(N,)`; required for `"GTL"`.
            m: how many of the `N` samples to use, drawn without replacement with
                `generator` (default: all of them). The paper uses 200.
            variant: overrides the optimizer's `variant` for this call.
            generator: random generator for drawing the `m` samples.
            chunk_size: samples per vectorised batch; bounds the temporary memory at
                `chunk_size * c_out * P` numbers (`c_out = c` for `"ALL"`, else 1).
            rtol: residual directions with norm below `rtol` times the largest new vector's
                norm are dropped (default: `max(P, k) * eps` of the dtype, as
                `torch.linalg.matrix_rank`, with `k` the number of new vectors).

        Returns:
            The number of directions added to the basis.

        Raises:
            ValueError: on empty or non-finite `inputs`, mismatched or out-of-range
                `targets`, a bad `m`, `variant` or `chunk_size`, model outputs that are
                not `(batch, c)`, or a model that shares no trainable parameter with the
                optimizer.
        """
        variant = self._resolve_variant(variant)
        if not isinstance(inputs, Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
            raise ValueError("`inputs` must be a tensor of shape (N, ...) with N >= 1")
        if inputs.is_floating_point() and not torch.isfinite(inputs).all():
            raise ValueError("`inputs` contains NaN or infinite values")
        num_samples = inputs.shape[0]
        if targets is not None:
            if not isinstance(targets, Tensor) or targets.shape != (num_samples,):
                raise ValueError(
                    f"`targets` must be a tensor of shape (N,) = ({num_samples},); got "
                    f"{tuple(targets.shape) if isinstance(targets, Tensor) else type(targets)}"
                )
            if targets.is_floating_point() or targets.is_complex():
                raise ValueError("`targets` must hold integer class labels")
            targets = targets.to(inputs.device)
        elif variant == "GTL":
            raise ValueError("variant 'GTL' needs `targets` (the ground-truth labels)")
        if m is not None:
            if isinstance(m, bool) or not isinstance(m, int) or m < 1:
                raise ValueError(f"`m` must be a positive int; got {m!r}")
            if m < num_samples:
                index = torch.randperm(num_samples, generator=generator)[:m].to(inputs.device)
                inputs = inputs[index]
                targets = None if targets is None else targets[index]
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"`chunk_size` must be a positive int; got {chunk_size!r}")

        params = self._all_params()
        new = _output_gradients(model, params, inputs, targets, variant, chunk_size)  # (P, k)
        if not torch.isfinite(new).all():
            raise ValueError("the model's output gradients contain NaN or infinite values")
        if rtol is None:
            rtol = max(new.shape) * torch.finfo(new.dtype).eps
        elif not (0.0 <= rtol < 1.0):
            raise ValueError(f"Invalid rtol: {rtol}")

        blocks = self._blocks()
        added = _orthonormal_extension(blocks, new, rtol)  # (P, k')
        offsets = _offsets(params)
        for p, start, stop in zip(params, offsets[:-1], offsets[1:]):
            new_block = added[start:stop].to(dtype=p.dtype, device=p.device)
            if not p.requires_grad:  # exact zeros (the SVD leaves rounding noise in zero rows)
                new_block = torch.zeros_like(new_block)
            old = self.state[p].get("ogd_basis")
            self.state[p]["ogd_basis"] = (
                new_block.contiguous() if old is None else torch.cat([old, new_block], dim=1)
            )
        return int(added.shape[1])

    def _resolve_variant(self, variant: str | None) -> str:
        if variant is None:
            variants = {group["variant"] for group in self.param_groups}
            if len(variants) != 1:
                raise ValueError(
                    f"parameter groups disagree on `variant` ({sorted(variants)}); pass "
                    "`variant=` to remember()"
                )
            variant = variants.pop()
        _check_variant(variant)
        return variant

    # ------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Perform one projected SGD step.

        Args:
            closure: optional closure that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        blocks = self._blocks()
        params: list[Tensor] = []
        grads: list[Tensor | None] = []
        lrs: list[float] = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    raise RuntimeError("OGD does not support sparse gradients")
                if not p.requires_grad or (p.grad is None and blocks is None):
                    continue  # frozen parameters never move
                params.append(p)
                grads.append(p.grad)
                lrs.append(group["lr"])
        if not params:
            return loss
        maximize = self.param_groups[0]["maximize"]
        if any(group["maximize"] != maximize for group in self.param_groups):
            raise ValueError("all parameter groups of OGD must share `maximize`")
        bases = None if blocks is None else [self.state[p]["ogd_basis"] for p in params]
        ogd(params, grads, bases, lr=lrs, maximize=maximize)
        return loss


def ogd(
    params: list[Tensor],
    grads: list[Tensor | None],
    bases: list[Tensor] | None,
    *,
    lr: float | Sequence[float],
    maximize: bool = False,
) -> None:
    r"""Functional OGD step; see `OGD`. Updates `params` in place.

    Args:
        params: parameters $w$.
        grads: their gradients (`None` means zero), same order.
        bases: per-parameter orthonormal basis blocks, `bases[i]` of shape
            `(params[i].numel(), r)`, together orthonormal; or None for no projection.
        lr: learning rate, one for all or one per parameter.
        maximize: ascend instead of descend.
    """
    lrs = [lr] * len(params) if isinstance(lr, (int, float)) else list(lr)
    if len(lrs) != len(params) or len(grads) != len(params):
        raise ValueError("`params`, `grads` and `lr` must have the same length")
    sign = 1.0 if maximize else -1.0
    steps = []
    for p, g, rate in zip(params, grads, lrs):
        steps.append(torch.zeros_like(p) if g is None else g.mul(sign * rate))
    if bases is not None:
        if len(bases) != len(params):
            raise ValueError("`bases` must have one block per parameter")
        # coefficients U^T Δ summed over parameter blocks, then Δ -= U (U^T Δ)
        coeffs = sum(u.T @ d.reshape(-1) for u, d in zip(bases, steps))
        for u, d in zip(bases, steps):
            d.sub_((u @ coeffs).view_as(d))
    for p, d in zip(params, steps):
        p.add_(d)


# ---------------------------------------------------------------------- helpers
def _check_variant(variant: Any) -> None:
    if variant not in _VARIANTS:
        raise ValueError(f"Invalid variant: {variant!r}; expected one of {_VARIANTS}")


def _offsets(params: Sequence[Tensor]) -> list[int]:
    offsets = [0]
    for p in params:
        offsets.append(offsets[-1] + p.numel())
    return offsets


def _output_gradients(
    model: nn.Module,
    params: Sequence[Tensor],
    inputs: Tensor,
    targets: Tensor | None,
    variant: str,
    chunk_size: int,
) -> Tensor:
    """Per-sample output gradients stacked as columns: `(P, k)`.

    Columns follow the samples (and, for "ALL", the logits of each sample in order).
    """
    names = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(tensor), name)
    # Frozen parameters get zero rows: the step does not move them, so the stored directions
    # must not involve them either.
    owned = [(i, names[id(p)]) for i, p in enumerate(params) if id(p) in names and p.requires_grad]
    if not owned:
        raise ValueError("`model` contains none of the optimizer's trainable parameters")
    like = params[0]
    offsets = _offsets(params)

    def outputs(weights: dict[str, Tensor], x: Tensor) -> Tensor:
        out = torch.func.functional_call(model, weights, (x.unsqueeze(0),))
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != 1:
            raise ValueError(
                "`model(inputs)` must return logits of shape (batch, c); got "
                f"{tuple(out.shape) if isinstance(out, Tensor) else type(out)}"
            )
        return out[0]

    def gtl(weights: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return outputs(weights, x).gather(0, y.reshape(1))[0]

    def ave(weights: dict[str, Tensor], x: Tensor) -> Tensor:
        return outputs(weights, x).mean()

    weights = {name: params[i].detach() for i, name in owned}
    if variant == "GTL":
        assert targets is not None
        num_classes = model(inputs[:1]).shape[-1]
        if targets.min() < 0 or targets.max() >= num_classes:
            raise ValueError(f"`targets` must lie in [0, {num_classes}) (the logits' width)")
        per_sample = torch.func.vmap(torch.func.grad(gtl), in_dims=(None, 0, 0))
    elif variant == "AVE":
        per_sample = torch.func.vmap(torch.func.grad(ave), in_dims=(None, 0))
    else:
        per_sample = torch.func.vmap(torch.func.jacrev(outputs), in_dims=(None, 0))

    columns: list[Tensor] = []
    with torch.enable_grad():
        for start in range(0, inputs.shape[0], chunk_size):
            stop = start + chunk_size
            if variant == "GTL":
                grads = per_sample(weights, inputs[start:stop], targets[start:stop])
            else:
                grads = per_sample(weights, inputs[start:stop])
            # name -> (n, *shape), or (n, c, *shape) for "ALL": flatten to (columns, numel)
            flat = {name: grads[name].detach().flatten(0, -1 - params[i].ndim) for i, name in owned}
            block = torch.zeros(
                offsets[-1],
                next(iter(flat.values())).shape[0],
                dtype=like.dtype,
                device=like.device,
            )
            for i, name in owned:
                block[offsets[i] : offsets[i + 1]] = flat[name].reshape(block.shape[1], -1).T
            columns.append(block)
    return torch.cat(columns, dim=1)


def _orthonormal_extension(blocks: list[Tensor] | None, new: Tensor, rtol: float) -> Tensor:
    """Orthonormal basis of the part of span(`new`) orthogonal to the stored basis.

    Args:
        blocks: stored per-parameter basis blocks (stacked: `(P, r)`, orthonormal) or None.
        new: candidate vectors as columns, `(P, k)`.
        rtol: drop residual directions with singular value below `rtol * max column norm`.

    Returns:
        `(P, k')` with orthonormal columns, orthogonal to the stored basis, `k' <= k`.
    """
    scale = new.norm(dim=0).max() if new.numel() else new.new_zeros(())
    if new.shape[1] == 0 or scale == 0:
        return new[:, :0]
    residual = new.clone()
    if blocks is not None and blocks[0].shape[1] > 0:
        offsets = [0]
        for b in blocks:
            offsets.append(offsets[-1] + b.shape[0])
        # "twice is enough": two passes of block classical Gram–Schmidt keep the residual
        # orthogonal to the basis to working precision even when it is much shorter than `new`.
        for _ in range(2):
            coeffs = sum(
                b.T @ residual[s:e] for b, s, e in zip(blocks, offsets[:-1], offsets[1:])
            )  # (r, k)
            for b, s, e in zip(blocks, offsets[:-1], offsets[1:]):
                residual[s:e] -= b @ coeffs
    # rank-revealing orthonormalisation: left singular vectors with non-negligible singular
    # values span the residual up to the tolerance (QR without pivoting would not reveal rank).
    left, singular, _ = torch.linalg.svd(residual, full_matrices=False)
    keep = singular > rtol * scale
    return left[:, keep].contiguous()
