"""`AlignmentLoss` next to `torch.nn.CTCLoss` on a toy sequence-labelling task.

Each input is a sequence of `T` noisy frames; a frame shows one token (repeated over a few
frames) or nothing. The target is the token sequence, without timing: what `CTCLoss` is made
for. The same per-frame network is trained twice, once with `CTCLoss` and once with the exact
global-alignment loss `combgrad.AlignmentLoss(blank=0)`, where unmatched frames pay the cost
of emitting the blank class, and both are decoded greedily (argmax per frame, merge repeats,
drop blanks). The figure shows the token error rate on held-out sequences.

Training the single best alignment from scratch needs two settings (see the results page): a
gap cost large enough that matching a token is cheaper than leaving it and a position
unmatched (`gap_cost=3`), and output layers that start at the blank frequency the task has
(`p(blank) = 0.8` at every frame, by shifting the blank bias). Both models get the same start.

Two layouts: `CTCLoss` takes time-first log-probabilities `(T, B, C)` and (here) padded
targets; `AlignmentLoss` takes batch-first `(B, T, C)`. Lengths are the same in both.

Run: `python examples/gallery/plot_alignment_vs_ctc.py` (full, about a minute) or with
`--quick` (a few seconds; its numbers are for smoke testing only).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm import tqdm

import combgrad

FIGURE = Path(__file__).resolve().parents[2] / "docs" / "img" / "gallery" / "alignment_vs_ctc.png"
BLANK, N_TOKENS, T, MAX_L, NOISE = 0, 6, 20, 5, 0.3  # classes 1..N_TOKENS are tokens
BLANK_PRIOR, GAP_COST = 0.8, 3.0


def make_data(n: int, gen: torch.Generator):
    """Frames (n, T, C) and padded targets (n, MAX_L) with their lengths."""
    classes = N_TOKENS + 1
    frames = torch.zeros(n, T, classes)
    targets = torch.zeros(n, MAX_L, dtype=torch.long)
    lengths = torch.randint(2, MAX_L + 1, (n,), generator=gen)
    for i in range(n):
        tokens = torch.randint(1, classes, (int(lengths[i]),), generator=gen)
        targets[i, : len(tokens)] = tokens
        t = int(torch.randint(0, 3, (1,), generator=gen))
        for token in tokens:  # each token shows for 1-3 frames, then 0-1 empty frames
            span = int(torch.randint(1, 4, (1,), generator=gen))
            frames[i, t : t + span, token] = 1.0
            t += span + int(torch.randint(0, 2, (1,), generator=gen))
    frames += NOISE * torch.randn(frames.shape, generator=gen)
    return frames, targets, lengths


def greedy_decode(log_probs: torch.Tensor) -> list[list[int]]:
    out = []
    for row in log_probs.argmax(-1).tolist():
        merged = [c for j, c in enumerate(row) if j == 0 or c != row[j - 1]]
        out.append([c for c in merged if c != BLANK])
    return out


def edit_distance(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def token_error_rate(model, frames, targets, lengths) -> float:
    with torch.no_grad():
        decoded = greedy_decode(model(frames).log_softmax(-1))
    errors = sum(edit_distance(d, t[:n].tolist()) for d, t, n in zip(decoded, targets, lengths))
    return errors / int(lengths.sum())


def train(loss_name: str, data, test, epochs: int, seed: int) -> list[float]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(  # per-frame classifier with a little context (conv over time)
        torch.nn.Conv1d(N_TOKENS + 1, 64, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv1d(64, N_TOKENS + 1, 3, padding=1),
    )
    with torch.no_grad():  # start at p(blank) = BLANK_PRIOR at every frame (both losses)
        model[-1].bias[BLANK] += math.log(N_TOKENS * BLANK_PRIOR / (1 - BLANK_PRIOR))
    net = lambda x: model(x.transpose(1, 2)).transpose(1, 2)  # noqa: E731  (B, T, C) -> (B, T, C)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    ctc = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    align = combgrad.AlignmentLoss(gap_cost=GAP_COST, blank=BLANK)
    frames, targets, lengths = data
    input_lengths = torch.full((len(frames),), T)
    history = []
    for _ in tqdm(range(epochs), desc=loss_name, file=sys.stderr):
        for batch in torch.randperm(len(frames)).split(32):
            log_probs = net(frames[batch]).log_softmax(-1)  # (B, T, C)
            if loss_name == "CTCLoss":
                loss = ctc(
                    log_probs.transpose(0, 1),
                    targets[batch],  # CTC wants (T, B, C)
                    input_lengths[batch],
                    lengths[batch],
                )
            else:
                loss = align(log_probs, targets[batch], input_lengths[batch], lengths[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append(token_error_rate(net, *test))
    return history


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds; smoke test only")
    parser.add_argument("--epochs", type=int, default=None, help="default 15 (quick: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=f"figure path (default {FIGURE})")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 15)
    gen = torch.Generator().manual_seed(args.seed)
    data = make_data(200 if args.quick else 600, gen)
    test = make_data(100 if args.quick else 200, gen)
    results = {
        name: train(name, data, test, epochs, args.seed) for name in ("CTCLoss", "AlignmentLoss")
    }

    if args.quick:
        print("quick mode: these numbers are for smoke testing only")
    for name, history in results.items():
        print(f"{name:<14} token error rate after {epochs} epochs: {history[-1]:.3f}")

    out = args.out or (None if args.quick else FIGURE)
    if out is not None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for name, history in results.items():
            ax.plot(range(1, epochs + 1), history, marker=".", label=name)
        ax.set(xlabel="epoch", ylabel="test token error rate (greedy)", ylim=(0, None))
        ax.set_title(f"toy sequence labelling, T={T}, seed {args.seed}")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=80)
        plt.close(fig)
        print(f"figure written to {out}")
    return results


if __name__ == "__main__":
    main()
