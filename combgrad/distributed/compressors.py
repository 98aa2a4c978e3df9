"""Pluggable compressors that turn a flat tensor into real packed bytes.

Every compressor maps a 1-D floating tensor `x` of `numel` elements to a 1-D `torch.uint8`
*payload* (the bytes that travel over the network) and back. The sender always uses the decoded
payload, never `x` itself, so that sender and receivers hold bit-identical values; this is what
keeps the memories of DORE consistent across ranks.

Three families are provided:

* [`TernaryQuantizer`][combgrad.distributed.TernaryQuantizer]: the blockwise infinity-norm stochastic ternary quantizer of DORE,
  `Q(x) = ||x_B||_inf * sign(x) * b` with `b_i ~ Bernoulli(|x_i| / ||x_B||_inf)` in each block
  `B`. It is unbiased, `E[Q(x)] = x`. Three byte layouts are available: `"2bit"` (four codes per
  byte), `"base3"` (five codes per byte, `3**5 = 243 <= 256`) and `"bitmap"` (a bitmap of the
  nonzero codes plus one sign bit per nonzero; variable size).
* [`TopK`][combgrad.distributed.TopK]: the `k` largest magnitudes with their `int32` indices (biased, deterministic).
* [`Identity`][combgrad.distributed.Identity]: the raw bytes of `x` (lossless, dense).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Compressor", "Identity", "TernaryQuantizer", "TopK"]

# Ternary codes as stored in the packed formats.
_ZERO, _PLUS, _MINUS = 0, 1, 2


def _as_bytes(x: Tensor) -> Tensor:
    """Reinterpret a contiguous 1-D tensor as its raw bytes (native byte order)."""
    return x.contiguous().view(torch.uint8)


def _from_bytes(payload: Tensor, dtype: torch.dtype) -> Tensor:
    """Inverse of `_as_bytes`; copies so that the result owns aligned memory."""
    return payload.clone().view(dtype)


def _pack_bits(bits: Tensor) -> Tensor:
    """Pack a 1-D bool tensor into `ceil(n / 8)` bytes, least significant bit first."""
    n = bits.numel()
    padded = torch.zeros(8 * math.ceil(n / 8), dtype=torch.uint8, device=bits.device)
    padded[:n] = bits.to(torch.uint8)
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    return (padded.view(-1, 8) << shifts).sum(dim=1, dtype=torch.uint8)


def _unpack_bits(packed: Tensor, n: int) -> Tensor:
    """Inverse of `_pack_bits`: the first `n` bits as a bool tensor."""
    shifts = torch.arange(8, dtype=torch.uint8, device=packed.device)
    return ((packed.view(-1, 1) >> shifts) & 1).view(-1)[:n].bool()


class Compressor(ABC):
    """Base class: encode a flat tensor into a `uint8` payload and decode it back.

    Subclasses implement `encode`, `decode` and `payload_nbytes`.
    """

    #: ``True`` when ``E[decode(encode(x))] = x`` for every ``x``.
    unbiased: bool = False

    @abstractmethod
    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Compress `x`.

        Args:
            x: 1-D floating tensor of shape `(numel,)` with finite entries.
            generator: random generator for stochastic compressors (ignored otherwise).

        Returns:
            1-D `torch.uint8` tensor on `x.device`: the packed payload.
        """

    @abstractmethod
    def decode(self, payload: Tensor, numel: int, dtype: torch.dtype) -> Tensor:
        """Decompress a payload produced by `encode`.

        Args:
            payload: 1-D `torch.uint8` tensor.
            numel: number of elements of the original tensor.
            dtype: floating dtype of the result.

        Returns:
            1-D tensor of shape `(numel,)` and dtype `dtype` on `payload.device`.
        """

    @abstractmethod
    def payload_nbytes(self, numel: int, dtype: torch.dtype) -> int | None:
        """Payload size in bytes for a tensor of `numel` elements, or `None` if it varies.

        Variable-size payloads are preceded on the wire by a 4-byte `int32` size header.
        """

    def compress(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encode `x` and return `(payload, decoded)`.

        `decoded` is what every receiver will reconstruct from `payload`, bit for bit.

        Raises:
            ValueError: if `x` is not a 1-D floating tensor or has non-finite entries.
        """
        if x.dim() != 1 or not x.is_floating_point():
            raise ValueError(
                f"`x` must be a 1-D floating tensor; got shape {tuple(x.shape)}, dtype {x.dtype}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("`x` must have finite entries (found NaN or inf)")
        payload = self.encode(x, generator)
        return payload, self.decode(payload, x.numel(), x.dtype)


class Identity(Compressor):
    """Lossless "compression": the payload is the raw bytes of `x` in its own dtype."""

    unbiased = True

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return _as_bytes(x)

    def decode(self, payload: Tensor, numel: int, dtype: torch.dtype) -> Tensor:
        return _from_bytes(payload, dtype)

    def payload_nbytes(self, numel: int, dtype: torch.dtype) -> int:
        return numel * torch.empty((), dtype=dtype).element_size()

    def __repr__(self) -> str:
        return "Identity()"


class TopK(Compressor):
    """Keep the `k = max(1, ceil(ratio * numel))` entries of largest magnitude.

    Payload: `k` `int32` indices followed by the `k` values in the tensor's own dtype, so
    its size is fixed, `k * (4 + element_size)` bytes. Top-k is biased and deterministic.

    Args:
        ratio: fraction of entries kept, in `(0, 1]`.
    """

    unbiased = False

    def __init__(self, ratio: float = 0.01) -> None:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"Invalid ratio: {ratio} (must be in (0, 1])")
        self.ratio = float(ratio)

    def _k(self, numel: int) -> int:
        return min(numel, max(1, math.ceil(self.ratio * numel)))

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        k = self._k(x.numel())
        # Sorted indices make the payload independent of topk's tie-breaking order.
        indices = torch.topk(x.abs(), k, sorted=False).indices.sort().values
        return torch.cat([_as_bytes(indices.to(torch.int32)), _as_bytes(x[indices])])

    def decode(self, payload: Tensor, numel: int, dtype: torch.dtype) -> Tensor:
        k = self._k(numel)
        indices = _from_bytes(payload[: 4 * k], torch.int32).long()
        values = _from_bytes(payload[4 * k :], dtype)
        out = torch.zeros(numel, dtype=dtype, device=payload.device)
        out[indices] = values
        return out

    def payload_nbytes(self, numel: int, dtype: torch.dtype) -> int:
        return self._k(numel) * (4 + torch.empty((), dtype=dtype).element_size())

    def __repr__(self) -> str:
        return f"TopK(ratio={self.ratio})"


class TernaryQuantizer(Compressor):
    r"""Blockwise infinity-norm stochastic ternary quantizer (DORE's compressor).

    For each block $B$ of `block_size` consecutive entries (the last block may be shorter)

    $$
    Q(x)_i = s_B \operatorname{sign}(x_i)\, b_i, \qquad
    b_i \sim \operatorname{Bernoulli}(|x_i| / s_B), \qquad s_B \ge \|x_B\|_\infty,
    $$

    where $s_B$ is $\|x_B\|_\infty$ rounded *up* to the nearest `float32` (it is sent
    as one `float32` per block; rounding up keeps $|x_i| / s_B \le 1$ and the quantizer
    exactly unbiased, $E[Q(x)] = x$). Its variance is
    $E\|Q(x) - x\|^2 = \sum_B (s_B \|x_B\|_1 - \|x_B\|_2^2)$, at most
    `variance_bound` times $\|x\|_2^2$.

    Packed layouts (`numel = n`, `m = ceil(n / block_size)` blocks, payload starts with the
    `m` `float32` scales):

    * `"2bit"`: four 2-bit codes per byte: `4 m + ceil(n / 4)` bytes (2.125 bits per entry at
      `block_size = 256`, 93.4 % less than `float32`).
    * `"base3"`: five base-3 digits per byte: `4 m + ceil(n / 5)` bytes (1.725 bits per entry).
    * `"bitmap"`: one bit per entry marking nonzeros, then one sign bit per nonzero:
      `4 m + ceil(n / 8) + ceil(nnz / 8)` bytes, variable (sent after a 4-byte size header).
      The expected size is `1 + p` bits per entry (plus the scales), where `p` is the fraction of nonzero codes,
      `p = E|x_i| / s_B`, typically 0.1-0.3 for gradients.

    Args:
        block_size: number of entries sharing one scale (the paper uses 256).
        packing: `"2bit"`, `"base3"` or `"bitmap"`.
    """

    unbiased = True
    PACKINGS = ("2bit", "base3", "bitmap")

    def __init__(self, block_size: int = 256, packing: str = "bitmap") -> None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"Invalid block_size: {block_size} (must be a positive int)")
        if packing not in self.PACKINGS:
            raise ValueError(f"Invalid packing: {packing!r} (expected one of {self.PACKINGS})")
        self.block_size = block_size
        self.packing = packing

    def __repr__(self) -> str:
        return f"TernaryQuantizer(block_size={self.block_size}, packing={self.packing!r})"

    def variance_bound(self) -> float:
        r"""Worst-case constant $C$ in $E\|Q(x) - x\|^2 \le C \|x\|^2$.

        Per block, $E\|Q(x) - x\|^2 = s\|x\|_1 - \|x\|_2^2$; the ratio to
        $\|x\|_2^2$ is largest for $x = (1, t, \dots, t)$ with
        $t = 1 / (\sqrt{b} + 1)$, where it equals $(\sqrt{b} - 1) / 2$
        (7.5 for `block_size = 256`). Float32 rounding of the scale is ignored here.
        """
        b = self.block_size
        # max over x of (||x||_inf ||x||_1 - ||x||_2^2) / ||x||_2^2: with x = (1, t, ..., t),
        # the maximum is (sqrt(b) - 1) / 2, reached at t = 1 / (sqrt(b) + 1).
        return (math.sqrt(b) - 1.0) / 2.0

    # -- helpers ---------------------------------------------------------------------------------
    def _num_blocks(self, numel: int) -> int:
        return math.ceil(numel / self.block_size)

    def _scales(self, x: Tensor) -> Tensor:
        """Per-block infinity norms rounded up to float32, shape `(num_blocks,)`."""
        n, b = x.numel(), self.block_size
        padded = torch.zeros(self._num_blocks(n) * b, dtype=x.dtype, device=x.device)
        padded[:n] = x.abs()
        max_abs = padded.view(-1, b).amax(dim=1)
        scales = max_abs.to(torch.float32)
        # Round up where float32 rounding went below the true maximum (float64 inputs).
        too_small = scales.to(x.dtype) < max_abs
        if bool(too_small.any()):
            up = torch.nextafter(scales, torch.full_like(scales, math.inf))
            scales = torch.where(too_small, up, scales)
        return scales

    def _codes(self, x: Tensor, scales: Tensor, generator: torch.Generator | None) -> Tensor:
        """Sample ternary codes in {0: zero, 1: plus, 2: minus}, shape `(numel,)`, uint8."""
        n = x.numel()
        per_entry = scales.to(x.dtype).repeat_interleave(self.block_size)[:n]
        # A zero scale means a zero block, where |x| / tiny = 0: no division by zero.
        prob = x.abs() / per_entry.clamp_min(torch.finfo(x.dtype).tiny)
        uniform = torch.rand(n, generator=generator, dtype=x.dtype, device=x.device)
        keep = (uniform < prob).to(torch.uint8)
        codes = keep * ((x < 0).to(torch.uint8) + 1)  # _PLUS = 1, _MINUS = 2
        return codes

    # -- Compressor API --------------------------------------------------------------------------
    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        scales = self._scales(x)
        codes = self._codes(x, scales, generator)
        n = codes.numel()
        if self.packing == "2bit":
            padded = torch.zeros(4 * math.ceil(n / 4), dtype=torch.uint8, device=x.device)
            padded[:n] = codes
            quads = padded.view(-1, 4)
            body = quads[:, 0] | (quads[:, 1] << 2) | (quads[:, 2] << 4) | (quads[:, 3] << 6)
        elif self.packing == "base3":
            padded = torch.zeros(5 * math.ceil(n / 5), dtype=torch.uint8, device=x.device)
            padded[:n] = codes
            powers = torch.tensor([1, 3, 9, 27, 81], dtype=torch.uint8, device=x.device)
            body = (padded.view(-1, 5) * powers).sum(dim=1, dtype=torch.uint8)
        else:  # bitmap
            nonzero = codes != _ZERO
            body = torch.cat([_pack_bits(nonzero), _pack_bits(codes[nonzero] == _MINUS)])
        return torch.cat([_as_bytes(scales), body])

    def decode(self, payload: Tensor, numel: int, dtype: torch.dtype) -> Tensor:
        m = self._num_blocks(numel)
        scales = _from_bytes(payload[: 4 * m], torch.float32).to(dtype)
        body = payload[4 * m :]
        if self.packing == "2bit":
            shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8, device=payload.device)
            codes = ((body.view(-1, 1) >> shifts) & 3).view(-1)[:numel]
            signs = (codes == _PLUS).to(dtype) - (codes == _MINUS).to(dtype)
        elif self.packing == "base3":
            digits = body.view(-1, 1).long()
            powers = torch.tensor([1, 3, 9, 27, 81], device=payload.device)
            codes = ((digits // powers) % 3).view(-1)[:numel]
            signs = (codes == _PLUS).to(dtype) - (codes == _MINUS).to(dtype)
        else:  # bitmap
            mask_nbytes = math.ceil(numel / 8)
            nonzero = _unpack_bits(body[:mask_nbytes], numel)
            negative = _unpack_bits(body[mask_nbytes:], int(nonzero.sum()))
            signs = torch.zeros(numel, dtype=dtype, device=payload.device)
            signs[nonzero] = 1.0 - 2.0 * negative.to(dtype)
        return signs * scales.repeat_interleave(self.block_size)[:numel]

    def payload_nbytes(self, numel: int, dtype: torch.dtype) -> int | None:
        header = 4 * self._num_blocks(numel)
        if self.packing == "2bit":
            return header + math.ceil(numel / 4)
        if self.packing == "base3":
            return header + math.ceil(numel / 5)
        return None
