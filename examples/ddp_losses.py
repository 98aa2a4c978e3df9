"""Training with the exact combinatorial losses under DistributedDataParallel (torchrun).

Each rank takes its contiguous share of one global batch, computes `MatchingLoss` (bags of
instances and unordered labels) and `AlignmentLoss` (sequences) on it, and DDP averages
the gradients. The losses are ordinary differentiable functions of the model's
log-probabilities: each rank solves its own items' combinatorial problems, and only the
gradients travel (DDP's all-reduce), so nothing in the losses needs to know about the
other ranks.

To get exactly the gradient of the global batch's mean loss, each rank divides its
*summed* loss by the global number of labels and multiplies by the world size (DDP
divides the summed gradients by the world size again). With ``reduction="mean"`` per
rank, the result is the mean of the per-rank means instead, which differs when ranks
hold different numbers of labels.

Run (CPU, gloo):

    torchrun --standalone --nproc_per_node=2 examples/ddp_losses.py --steps 20
    python examples/ddp_losses.py --steps 20          # the same run in one process

``--grads PATH`` saves the first step's gradients (rank 0) for comparison; the test
`tests/combgrad/test_ddp_losses.py` checks that both launches give the same ones.
"""

from __future__ import annotations

import argparse
import gc
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from combgrad.losses import alignment_loss, matching_loss

BAGS, INSTANCES, CLASSES, FEATURES = 16, 6, 5, 8  # matching: global batch of 16 bags
SEQS, T, L = 8, 10, 6  # alignment: global batch of 8 sequences


def make_data(seed: int = 0) -> dict[str, torch.Tensor]:
    """The global batch, identical on every rank (float64 for exact comparisons)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "bags": torch.randn(BAGS, INSTANCES, FEATURES, generator=g, dtype=torch.float64),
        "labels": torch.randint(0, CLASSES, (BAGS, INSTANCES - 1), generator=g),
        "seqs": torch.randn(SEQS, T, FEATURES, generator=g, dtype=torch.float64),
        "targets": torch.randint(0, CLASSES, (SEQS, L), generator=g),
    }


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.Tanh(), nn.Linear(16, CLASSES)).double()


def local_loss(model: nn.Module, data: dict[str, torch.Tensor], rank: int, world: int):
    """This rank's share of the global mean loss, scaled for DDP's gradient averaging."""
    bags = slice(rank * BAGS // world, (rank + 1) * BAGS // world)
    seqs = slice(rank * SEQS // world, (rank + 1) * SEQS // world)
    bag_lp = torch.log_softmax(model(data["bags"][bags]), -1)
    seq_lp = torch.log_softmax(model(data["seqs"][seqs]), -1)
    n_seq = seq_lp.shape[0]
    matching = matching_loss(bag_lp, data["labels"][bags], reduction="sum")
    lengths = torch.full((n_seq,), T), torch.full((n_seq,), L)
    alignment = alignment_loss(seq_lp, data["targets"][seqs], *lengths, 1.0, reduction="sum")
    global_labels = data["labels"].numel() + data["targets"].numel()
    return world * (matching + alignment) / global_labels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1, help="SGD steps")
    parser.add_argument("--grads", default=None, help="save the first step's gradients here")
    args = parser.parse_args(argv)
    distributed = "RANK" in os.environ  # set by torchrun
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    world = dist.get_world_size() if distributed else 1
    model = make_model()
    net = DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    data = make_data()
    for step in range(args.steps):
        optimizer.zero_grad()
        loss = local_loss(net, data, rank, world)
        loss.backward()
        if step == 0 and args.grads and rank == 0:
            torch.save({k: p.grad.clone() for k, p in model.named_parameters()}, args.grads)
        optimizer.step()
        total = loss.detach() / world
        if distributed:
            dist.all_reduce(total)
        if rank == 0 and (step % 5 == 0 or step == args.steps - 1):
            print(f"step {step:3d}  global mean loss {float(total):.6f}", flush=True)
    if distributed:
        # Tear down in order: the DDP wrapper's reducer holds the process group, and if the
        # group is destroyed from the reducer's destructor at exit, gloo's run-loop thread can
        # wait for the GIL that the destructor's thread holds (a deadlock seen in about one
        # torchrun launch in six). Dropping the wrapper first and letting the run loop drain
        # leaves the group's destruction to destroy_process_group.
        del net, optimizer
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
