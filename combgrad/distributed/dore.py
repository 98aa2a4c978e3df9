"""DORE: double-residual compressed SGD on a torch.distributed parameter server."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim.optimizer import ParamsT

from ._base import _CommunicatingOptimizer
from .compressors import Compressor, TernaryQuantizer

__all__ = ["DORE"]


class DORE(_CommunicatingOptimizer):
    r"""DORE, the DOuble REsidual compression algorithm (Liu, Li, Tang, Yan, AISTATS 2020).

    Rank 0 of the process group is the master (parameter server) *and* a worker; every rank holds
    the model copy $\hat x$ (the parameters), rank $i$ holds a gradient memory
    $h_i$, and the master holds $h = \frac1n\sum_i h_i$ and the model error $e$.
    One `step` after `loss.backward()` on every rank performs, with $Q$ the
    compressor and $\gamma$ the learning rate:

    $$
    \begin{aligned}
    &\textbf{worker } i:\quad \Delta_i = g_i - h_i,\quad \hat\Delta_i = Q(\Delta_i)
        \ \text{(sent to the master)},\quad h_i \leftarrow h_i + \alpha \hat\Delta_i \\
    &\textbf{master}:\quad \hat\Delta = \tfrac1n \textstyle\sum_i \hat\Delta_i,\quad
        \hat g = h + \hat\Delta,\quad h \leftarrow h + \alpha \hat\Delta \\
    &\qquad x = \hat x - \gamma \hat g,\quad q = x - \hat x + \eta e,\quad
        \hat q = Q(q)\ \text{(broadcast)},\quad e \leftarrow q - \hat q \\
    &\textbf{all ranks}:\quad \hat x \leftarrow \hat x + \beta \hat q
    \end{aligned}
    $$

    Both residuals shrink as the iterates converge, so the compression noise vanishes and, on a
    strongly convex problem with full local gradients, the iterates converge linearly to the exact
    optimum, where memory-less compression stalls at a noise floor (see `CompressedSGD`).

    Payloads are real packed bytes (see `combgrad.distributed.compressors`); the sender uses
    the decoded payload, so memories and models stay bit-identical across ranks. Bytes sent and
    received by this rank are counted in `bytes_sent` and `bytes_received`.

    Args:
        params: iterable of parameters or dicts defining parameter groups. All parameters must share
            one dtype and device, and every rank must pass the same shapes in the same order.
        lr: learning rate $\gamma$.
        alpha: gradient-memory step $\alpha \in [0, 1]$. The analysis asks for
            $\alpha \le 1 / (1 + C)$ where $E\|Q(x) - x\|^2 \le C\|x\|^2$; `0.1` fits
            the ternary quantizer with `block_size = 256` ($C = 7.5$).
        beta: model-memory step $\beta \in (0, 1]$.
        eta: weight $\eta \in [0, 1]$ of the master's error feedback.
        compressor: the compressor $Q$, used in both directions. Defaults to
            `TernaryQuantizer(block_size)`.
        block_size: block size of the default compressor (ignored if `compressor` is given).
        seed: seed of this optimizer's random generator (combined with the rank). `None` draws
            it from torch's global generator, so `torch.manual_seed` makes runs reproducible.
        process_group: the process group (default: the default group). Its rank 0 is the master.
        timeout: seconds (or a `timedelta`) to wait for any communication before raising
            `CommunicationError`. Also pass it to `init_process_group`.
        broadcast_parameters: copy the master's parameters to all ranks at construction, as DDP
            does. Those bytes are counted separately, in `setup_bytes_sent`.

    Raises:
        ValueError: for invalid hyperparameters, mixed dtypes or devices, or parameter shapes that
            differ across ranks (raised on every rank).
        RuntimeError: if no process group is initialized.

    Example:
        ```python
        import torch
        import torch.distributed as dist
        from combgrad.distributed import DORE, find_free_port

        # On every rank; here a single process (world size 1) so that the example runs as is.
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{find_free_port()}", rank=0, world_size=1
        )
        model = torch.nn.Linear(10, 1)
        opt = DORE(model.parameters(), lr=0.1, alpha=0.1, beta=1.0, eta=0.5)
        x, y = torch.randn(32, 10), torch.randn(32, 1)  # this rank's data
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
        dist.destroy_process_group()
        ```

    Note:
        Departures from and additions to the paper, which we could only partly verify (its
        Algorithm 1 and defaults were reconstructed from the stated update, see the docs page):

        * The master is also worker 0; its own residual is not sent anywhere.
        * There is no proximal term ($R = 0$): $x = \hat x - \gamma \hat g$.
        * The default `eta` is 0.5, not 1. With the (unbiased, non-contractive) ternary
          quantizer, $E\|e'\|^2$ can grow like $C\eta^2 \|e\|^2$; with `eta = 1` our
          least-squares test diverges, with `eta = 0.5` it converges linearly.
        * All parameters are compressed as one flat vector (blocks may straddle tensors).
"""

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.1,
        beta: float = 1.0,
        eta: float = 0.5,
        *,
        compressor: Compressor | None = None,
        block_size: int = 256,
        seed: int | None = None,
        process_group: dist.ProcessGroup | None = None,
        timeout: float | timedelta = 60.0,
        broadcast_parameters: bool = True,
    ) -> None:
        if isinstance(lr, Tensor):
            lr = float(lr)
        if not 0.0 <= lr < float("inf"):
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Invalid alpha: {alpha} (must be in [0, 1])")
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"Invalid beta: {beta} (must be in (0, 1])")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"Invalid eta: {eta} (must be in [0, 1])")
        if compressor is None:
            compressor = TernaryQuantizer(block_size=block_size)
        elif not isinstance(compressor, Compressor):
            raise TypeError(f"`compressor` must be a Compressor; got {type(compressor).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"`seed` must be an int or None; got {seed!r}")
        self.compressor = compressor
        defaults = {"lr": lr, "alpha": alpha, "beta": beta, "eta": eta}
        super().__init__(
            params,
            defaults,
            process_group=process_group,
            timeout=timeout,
            broadcast_parameters=broadcast_parameters,
        )
        for group in self.param_groups:
            if (group["alpha"], group["beta"], group["eta"]) != (alpha, beta, eta):
                raise ValueError(
                    "alpha, beta and eta must be the same in every parameter group (the residuals "
                    "are compressed as one vector); only lr may differ"
                )
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
        self.seed = seed
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed((seed * 65_537 + self.rank) % 2**63)
        self._fixed_nbytes = compressor.payload_nbytes(self.numel, self.dtype)

    def _init_state(self) -> None:
        for p in self._params():
            state = self.state[p]
            if len(state) == 0:
                state["gradient_memory"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if self.is_master:
                    state["mean_gradient_memory"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format
                    )
                    state["model_error"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Communicate and update the parameters on every rank (a collective: all ranks call it).

        Args:
            closure: optional callable that re-evaluates the local loss and calls `backward`.

        Returns:
            The closure's loss, or `None`.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._init_state()
        group = self.param_groups[0]
        alpha, beta, eta = group["alpha"], group["beta"], group["eta"]

        # Worker part (every rank, including the master): compress the gradient residual.
        grad = self._flat_grad()
        memory = self._flat_state("gradient_memory")
        try:
            payload, residual_hat = self.compressor.compress(grad - memory, self.generator)
        except ValueError as exc:
            raise ValueError(
                f"DORE step {self.step_count}, rank {self.rank}: cannot compress the gradient "
                f"residual: {exc}"
            ) from exc
        self._store_flat_state("gradient_memory", memory.add_(residual_hat, alpha=alpha))
        received = self._gather_payloads_to_master(
            payload, self._fixed_nbytes, "the compressed gradient residual"
        )

        # Master part: aggregate, update, compress the model residual with error feedback.
        model_payload = None
        if self.is_master:
            assert received is not None
            total = residual_hat.clone()
            for worker_payload in received:
                total += self.compressor.decode(worker_payload, self.numel, self.dtype)
            mean_residual = total.div_(self.world_size)
            mean_memory = self._flat_state("mean_gradient_memory")
            grad_estimate = mean_memory + mean_residual
            self._store_flat_state(
                "mean_gradient_memory", mean_memory.add_(mean_residual, alpha=alpha)
            )
            error = self._flat_state("model_error")
            # q = x_{k+1} - x_hat_k + eta e_k with x_{k+1} = x_hat_k - lr * g_hat (no prox term).
            model_residual = error.mul_(eta).sub_(self._flat_lr() * grad_estimate)
            try:
                model_payload, model_residual_hat = self.compressor.compress(
                    model_residual, self.generator
                )
            except ValueError as exc:
                raise ValueError(
                    f"DORE step {self.step_count}, master: cannot compress the model residual "
                    f"(did the iterates diverge? try a smaller lr or eta): {exc}"
                ) from exc
            self._store_flat_state("model_error", model_residual - model_residual_hat)

        # Every rank: receive q_hat and move the model copy.
        model_payload = self._broadcast_payload_from_master(
            model_payload, self._fixed_nbytes, "the compressed model residual"
        )
        if self.is_master:
            update = model_residual_hat
        else:
            update = self.compressor.decode(model_payload, self.numel, self.dtype)
        self._add_to_params(update, alpha=beta)
        self.step_count += 1
        return loss

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["generator_state"] = self.generator.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        generator_state = state_dict.pop("generator_state", None)
        super().load_state_dict(state_dict)
        if generator_state is not None:
            self.generator.set_state(generator_state)
