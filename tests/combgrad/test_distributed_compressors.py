"""In-process tests of the compressors, the byte formulas and argument validation (no spawning)."""

from __future__ import annotations

import math

import pytest
import torch

from combgrad.distributed import (
    DORE,
    AllReduceSGD,
    CompressedSGD,
    Identity,
    TernaryQuantizer,
    TopK,
    launch,
    ring_allreduce_bytes,
)

PACKINGS = TernaryQuantizer.PACKINGS
DTYPES = (torch.float32, torch.float64)


def _heavy_tailed(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=g, dtype=dtype) ** 3) * torch.rand(n, generator=g, dtype=dtype)


@pytest.mark.parametrize("packing", PACKINGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 255, 256, 257, 1000])
def test_ternary_values_and_payload_size(packing, dtype, n):
    q = TernaryQuantizer(block_size=256, packing=packing)
    x = _heavy_tailed(n, seed=n, dtype=dtype)
    payload, decoded = q.compress(x, torch.Generator().manual_seed(0))
    assert payload.dtype == torch.uint8 and payload.dim() == 1
    assert decoded.dtype == dtype and decoded.shape == (n,)
    # Every decoded entry is 0 or +-scale of its block, with the sign of x and scale >= |x|.
    num_blocks = math.ceil(n / 256)
    for b in range(num_blocks):
        xb, db = x[256 * b : 256 * (b + 1)], decoded[256 * b : 256 * (b + 1)]
        scale = xb.abs().max()
        nonzero = db != 0
        assert torch.all(torch.sign(db[nonzero]) == torch.sign(xb[nonzero]))
        if nonzero.any():
            magnitudes = db[nonzero].abs()
            assert torch.all(magnitudes == magnitudes[0])
            assert magnitudes[0] >= scale
            assert magnitudes[0] <= scale * (1 + 2 * torch.finfo(torch.float32).eps)
    # Payload size from the stated layout: float32 scale per block + packed codes.
    nnz = int((decoded != 0).sum())
    expected = {
        "2bit": 4 * num_blocks + math.ceil(n / 4),
        "base3": 4 * num_blocks + math.ceil(n / 5),
        "bitmap": 4 * num_blocks + math.ceil(n / 8) + math.ceil(nnz / 8),
    }[packing]
    assert payload.numel() == expected
    fixed = q.payload_nbytes(n, dtype)
    assert fixed == (None if packing == "bitmap" else expected)
    # Decoding the payload alone (as a receiver does) reproduces the sender's values bit for bit.
    assert torch.equal(q.decode(payload.clone(), n, dtype), decoded)


@pytest.mark.parametrize("packing", PACKINGS)
def test_ternary_is_unbiased_with_bounded_variance(packing):
    block, draws = 16, 10_000
    q = TernaryQuantizer(block_size=block, packing=packing)
    x = _heavy_tailed(2 * block, seed=1)
    # 10^4 independent draws at once: tile x so that blocks line up with copies of x.
    decoded = q.compress(x.repeat(draws), torch.Generator().manual_seed(2))[1].view(draws, -1)
    mean = decoded.mean(dim=0)
    # Exact per-entry variance s|x_i| - x_i^2 gives the standard error of the mean.
    scales = x.view(2, block).abs().amax(dim=1).repeat_interleave(block)
    variance = scales * x.abs() - x**2
    standard_error = (variance / draws).sqrt()
    # The block maxima have zero variance up to the float32 rounding of the scale.
    assert torch.all((mean - x).abs() <= 5 * standard_error + 1e-6 * x.abs())
    empirical = ((decoded - x) ** 2).sum(dim=1).mean()
    assert empirical == pytest.approx(variance.sum().item(), rel=0.05)
    assert empirical <= q.variance_bound() * x.square().sum() * 1.05


def test_ternary_variance_bound_is_attained():
    block = 64
    t = 1 / (math.sqrt(block) + 1)
    x = torch.full((block,), t, dtype=torch.float64)
    x[0] = 1.0
    exact = (x.abs().max() * x.abs().sum() - x.square().sum()) / x.square().sum()
    assert exact.item() == pytest.approx(TernaryQuantizer(block).variance_bound(), rel=1e-12)


def test_ternary_scale_rounds_up_for_float64():
    # 1 + 2^-40 is not a float32; the float32 scale must be rounded up, not to nearest (down).
    x = torch.tensor([1.0 + 2.0**-40, -0.5], dtype=torch.float64)
    q = TernaryQuantizer(block_size=2)
    decoded = q.compress(x, torch.Generator().manual_seed(0))[1]
    assert decoded.abs().max() >= x.abs().max()


def test_ternary_zero_block_and_seeds():
    q = TernaryQuantizer(block_size=4)
    x = torch.zeros(10, dtype=torch.float64)
    x[8:] = torch.tensor([1.0, -2.0], dtype=torch.float64)
    decoded = q.compress(x, torch.Generator().manual_seed(0))[1]
    assert torch.all(decoded[:8] == 0)
    y = _heavy_tailed(500, seed=3)
    a = q.compress(y, torch.Generator().manual_seed(7))[0]
    b = q.compress(y, torch.Generator().manual_seed(7))[0]
    c = q.compress(y, torch.Generator().manual_seed(8))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_is_lossless_and_dense(dtype):
    x = _heavy_tailed(37, seed=4, dtype=dtype)
    payload, decoded = Identity().compress(x)
    assert torch.equal(decoded, x)
    assert payload.numel() == 37 * x.element_size() == Identity().payload_nbytes(37, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_topk_keeps_largest_entries(dtype):
    x = _heavy_tailed(100, seed=5, dtype=dtype)
    q = TopK(ratio=0.05)
    payload, decoded = q.compress(x)
    kept = torch.topk(x.abs(), 5).indices
    expected = torch.zeros_like(x)
    expected[kept] = x[kept]
    assert torch.equal(decoded, expected)
    assert payload.numel() == 5 * (4 + x.element_size()) == q.payload_nbytes(100, dtype)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TernaryQuantizer(block_size=0), "Invalid block_size"),
        (lambda: TernaryQuantizer(packing="3bit"), "Invalid packing"),
        (lambda: TopK(ratio=0.0), "Invalid ratio"),
        (lambda: TopK(ratio=1.5), "Invalid ratio"),
    ],
)
def test_compressor_argument_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.ones(2, 2), "1-D floating"),
        (torch.ones(3, dtype=torch.int64), "1-D floating"),
        (torch.tensor([1.0, float("nan")]), "finite"),
        (torch.tensor([float("inf")]), "finite"),
    ],
)
def test_compress_rejects_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        TernaryQuantizer().compress(x)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("numel", [1, 5, 650, 1001])
def test_ring_allreduce_bytes_total(world, numel):
    per_rank = [ring_allreduce_bytes(numel, 4, world, r) for r in range(world)]
    assert sum(s for s, _ in per_rank) == 2 * (world - 1) * numel * 4
    assert sum(r for _, r in per_rank) == 2 * (world - 1) * numel * 4
    # Balanced up to chunk rounding.
    assert max(s for s, _ in per_rank) - min(s for s, _ in per_rank) <= 2 * 4


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: DORE(p, lr=-1.0), ValueError, "Invalid learning rate"),
        (lambda p: DORE(p, lr=float("nan")), ValueError, "Invalid learning rate"),
        (lambda p: DORE(p, alpha=1.5), ValueError, "Invalid alpha"),
        (lambda p: DORE(p, beta=0.0), ValueError, "Invalid beta"),
        (lambda p: DORE(p, eta=-0.1), ValueError, "Invalid eta"),
        (lambda p: DORE(p, block_size=0), ValueError, "Invalid block_size"),
        (lambda p: DORE(p, compressor="ternary"), TypeError, "Compressor"),
        (lambda p: DORE(p, seed=1.5), TypeError, "seed"),
        (lambda p: DORE(p, timeout=0), ValueError, "Invalid timeout"),
        (lambda p: AllReduceSGD(p, lr=-0.1), ValueError, "Invalid learning rate"),
        (lambda p: CompressedSGD(p, lr=-0.1), ValueError, "Invalid learning rate"),
        (lambda p: DORE(p), RuntimeError, "init_process_group"),
        (lambda p: AllReduceSGD(p), RuntimeError, "init_process_group"),
    ],
)
def test_optimizer_argument_errors(make, error, match):
    params = [torch.nn.Parameter(torch.zeros(3))]
    with pytest.raises(error, match=match):
        make(params)


def test_launch_argument_errors():
    with pytest.raises(ValueError, match="world_size"):
        launch(print, 0)
    with pytest.raises(ValueError, match="join_timeout"):
        launch(print, 1, join_timeout=0)
