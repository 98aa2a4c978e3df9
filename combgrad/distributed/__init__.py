"""Communication-compressed distributed optimizers on `torch.distributed`.

Depends only on torch. The optimizers own their communication: call `step()` on every rank after
`loss.backward()`. Rank 0 of the process group is the parameter server (and also a worker).

* [`DORE`][combgrad.distributed.DORE]: double-residual compression (Liu et al., AISTATS 2020).
* [`AllReduceSGD`][combgrad.distributed.AllReduceSGD]: uncompressed all-reduce SGD (the reference for byte ratios).
* [`CompressedSGD`][combgrad.distributed.CompressedSGD]: compression in both directions without memories (QSGD-style).
* Compressors: [`TernaryQuantizer`][combgrad.distributed.TernaryQuantizer], [`TopK`][combgrad.distributed.TopK], [`Identity`][combgrad.distributed.Identity].
* [`launch`][combgrad.distributed.launch]: spawn local workers on 127.0.0.1 with timeouts (the plain-python torchrun).
"""

from ._base import CommunicationError, ring_allreduce_bytes
from ._launch import find_free_port, init_from_env, launch
from .baselines import AllReduceSGD, CompressedSGD
from .compressors import Compressor, Identity, TernaryQuantizer, TopK
from .dore import DORE

__all__ = [
    "DORE",
    "AllReduceSGD",
    "CommunicationError",
    "CompressedSGD",
    "Compressor",
    "Identity",
    "TernaryQuantizer",
    "TopK",
    "find_free_port",
    "init_from_env",
    "launch",
    "ring_allreduce_bytes",
]
