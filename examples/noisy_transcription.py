"""Cleaning up noisy token strings: targets that are not position-aligned with the outputs.

A text-only task where the alignment between outputs and targets must be found. A clean
string of 5-15 tokens over ``VOCAB = 12`` symbols (no two neighbours equal) is corrupted,
token by token and with a fixed-seed generator, into the model's input:

- deletion (probability ``--p-del``): the token is dropped. It cannot be recovered, so it
  sets a floor on the error (reported as the ``oracle`` row);
- substitution (``--p-sub``): the token ``k`` is written as its "misspelled" twin
  ``VOCAB + k``, which a model can learn to map back;
- insertion (``--p-ins``, after every kept token and at the start): a distractor symbol
  from ``NOISE = 4`` extra symbols is inserted.

Insertions and deletions shift every later token, so clean token ``j`` sits at a varying
input position: position-wise targets are misaligned with the outputs.

One model is trained with every loss: an embedding (32 dims), a bidirectional GRU (64 units
per direction) over the noisy input, and a linear head emitting one distribution per *input*
position over ``VOCAB + 1`` symbols (the clean symbols and a blank), so the outputs are
aligned with the noisy input, not with the target. Losses, with the same model, data,
optimizer, batches, epochs and seeds:

- ``align``: :func:`combgrad.alignment_loss` (ours) with the blank construction of
  ``examples/seq2seq_alignment.py``: an output position either matches one target token
  (cost ``-log p_i(y_j)``) or is left unmatched and should say blank (cost
  ``-log p_i(blank) + gap``); an unmatched target token costs ``gap``. It is the library
  loss on the shifted costs ``log p - log p[blank]`` plus ``sum_i -log p_i(blank)``.
- ``ctc``: ``torch.nn.CTCLoss`` (blank = symbol ``VOCAB``, ``zero_infinity=True``: an item
  with more deletions than insertions has fewer outputs than targets and is skipped).
- ``ce``: position-wise cross-entropy on the clean target padded with blank to the input
  length (token ``j`` at output position ``j``): the position-aligned baseline.

Decoding is greedy: argmax per position, drop blanks (CTC also merges repeats, its rule;
clean strings have no equal neighbours, so merging costs it nothing). Metrics on held-out
strings: exact-match accuracy and character error rate (token edit distance / target length).
Two fixed references are printed with them: ``copy_input`` (the input with the distractors
dropped and the twins left as they are) and ``oracle`` (distractors dropped and twins mapped
back: every error left is a deletion, the best any model can do).

Usage::

    python examples/noisy_transcription.py            # all losses x 3 seeds
    python examples/noisy_transcription.py --quick    # seconds; used by the tests
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tqdm.auto import tqdm

from combgrad import alignment_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sequences import greedy_decode, score

LOSSES = ("align", "ctc", "ce")
VOCAB = 12  # clean symbols 0..11
NOISE = 4  # distractor symbols, inserted
BLANK = VOCAB  # output symbol 12
NUM_OUTPUTS = VOCAB + 1
PAD_INPUT = 2 * VOCAB + NOISE  # input ids: clean 0..11, twins 12..23, noise 24..27, pad 28
MIN_LEN, MAX_LEN = 5, 15
IGNORE = -100


def corrupt(clean: list[int], rng: np.random.Generator, p_del, p_sub, p_ins) -> list[int]:
    """Apply deletions, twin substitutions and distractor insertions to one clean string."""
    noisy = []
    if rng.random() < p_ins:
        noisy.append(2 * VOCAB + int(rng.integers(NOISE)))
    for token in clean:
        if rng.random() < p_del:
            continue
        noisy.append(VOCAB + token if rng.random() < p_sub else token)
        if rng.random() < p_ins:
            noisy.append(2 * VOCAB + int(rng.integers(NOISE)))
    return noisy


def make_strings(num: int, seed: int, p_del: float, p_sub: float, p_ins: float):
    """Draw ``num`` (noisy, clean) pairs.

    Returns:
        inputs: (N, S) int64 noisy ids padded with PAD_INPUT; input_lengths: (N,) int64
        (at least 1); targets: (N, MAX_LEN) int64 padded with BLANK; target_lengths: (N,);
        deleted: total number of deleted clean tokens (the unrecoverable ones).
    """
    rng = np.random.default_rng(seed)
    pairs, deleted = [], 0
    for _ in range(num):
        length = int(rng.integers(MIN_LEN, MAX_LEN + 1))
        clean = [int(rng.integers(VOCAB))]
        while len(clean) < length:  # no two equal neighbours: CTC's repeat rule is then free
            clean.append((clean[-1] + 1 + int(rng.integers(VOCAB - 1))) % VOCAB)
        noisy = corrupt(clean, rng, p_del, p_sub, p_ins) or [2 * VOCAB]  # never empty
        deleted += len(clean) - sum(1 for t in noisy if t < 2 * VOCAB)
        pairs.append((noisy, clean))
    width = max(len(noisy) for noisy, _ in pairs)
    inputs = torch.full((num, width), PAD_INPUT, dtype=torch.long)
    targets = torch.full((num, MAX_LEN), BLANK, dtype=torch.long)
    for n, (noisy, clean) in enumerate(pairs):
        inputs[n, : len(noisy)] = torch.tensor(noisy)
        targets[n, : len(clean)] = torch.tensor(clean)
    input_lengths = torch.tensor([len(noisy) for noisy, _ in pairs])
    target_lengths = torch.tensor([len(clean) for _, clean in pairs])
    return inputs, input_lengths, targets, target_lengths, deleted


class Transcriber(nn.Module):
    """Embedding + bidirectional GRU + linear head: one distribution per input position."""

    def __init__(self, embed: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(PAD_INPUT + 1, embed, padding_idx=PAD_INPUT)
        self.encoder = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, NUM_OUTPUTS)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Packing keeps the backward direction from reading the padding first.
        packed = pack_padded_sequence(
            self.embed(inputs), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        encoded, _ = self.encoder(packed)
        encoded, _ = pad_packed_sequence(encoded, batch_first=True, total_length=inputs.shape[1])
        return self.head(encoded)  # (B, S, NUM_OUTPUTS); rows past a length are padding


def blank_alignment_loss(
    log_probs: torch.Tensor,
    input_lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    gap_cost: float,
) -> torch.Tensor:
    """Exact alignment where unmatched positions pay ``-log p(blank) + gap``; mean over items."""
    return alignment_loss(log_probs, targets, input_lengths, target_lengths, gap_cost, blank=BLANK)


def compute_loss(name, logits, input_lengths, targets, target_lengths, *, gap_cost, ctc):
    B, S, _ = logits.shape
    if name == "align":
        return blank_alignment_loss(
            logits.log_softmax(-1), input_lengths, targets, target_lengths, gap_cost
        )
    if name == "ctc":
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (S, B, C)
        return ctc(log_probs, targets, input_lengths, target_lengths)
    if name == "ce":
        # Clean token j at output j, blank after the target, ignored past the input; target
        # tokens beyond the input length (more deletions than insertions) cannot be placed.
        padded = torch.full((B, S), BLANK, dtype=torch.long)
        width = min(S, targets.shape[1])
        padded[:, :width] = targets[:, :width]  # targets are already BLANK past their length
        padded[torch.arange(S)[None, :] >= input_lengths[:, None]] = IGNORE
        return F.cross_entropy(logits.reshape(B * S, -1), padded.reshape(-1), ignore_index=IGNORE)
    raise ValueError(f"`loss` must be one of {LOSSES}; got {name!r}.")


def decode(logits: torch.Tensor, lengths: torch.Tensor, merge_repeats: bool) -> list[list[int]]:
    return greedy_decode(logits, BLANK, merge_repeats, lengths)


@torch.no_grad()
def evaluate(model, data, merge_repeats: bool) -> dict:
    inputs, input_lengths, targets, target_lengths, _ = data
    model.eval()
    logits = model(inputs, input_lengths)
    model.train()
    return score(decode(logits, input_lengths, merge_repeats), targets, target_lengths)


def reference_rows(data) -> dict:
    """Two fixed references on the test set: copying the input, and the deletion-only oracle."""
    inputs, input_lengths, targets, target_lengths, _ = data
    rows = [r[:n].tolist() for r, n in zip(inputs, input_lengths.tolist())]
    copy = [[t for t in r if t < 2 * VOCAB] for r in rows]  # drop distractors, keep twins
    # The oracle undoes every recoverable corruption: maps twins back, drops distractors.
    oracle = [[t % VOCAB for t in r if t < 2 * VOCAB] for r in rows]
    return {
        "copy_input": score(copy, targets, target_lengths),
        "oracle": score(oracle, targets, target_lengths),
    }


def run(loss: str, seed: int, train, test, args, progress=None) -> dict:
    inputs, input_lengths, targets, target_lengths, _ = train
    torch.manual_seed(seed)
    model = Transcriber()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    generator = torch.Generator().manual_seed(seed)
    merge = loss == "ctc"
    history = {"loss": loss, "seed": seed, "untrained": evaluate(model, test, merge)}
    history.update(exact_match=[], cer=[], epoch_seconds=[])
    for _ in range(args.epochs):
        start = time.perf_counter()
        for batch in torch.randperm(len(inputs), generator=generator).split(args.batch_size):
            lengths = input_lengths[batch]
            width = int(lengths.max())
            logits = model(inputs[batch, :width], lengths)
            value = compute_loss(
                loss, logits, lengths, targets[batch], target_lengths[batch],
                gap_cost=args.gap_cost, ctc=ctc,
            )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
        history["epoch_seconds"].append(time.perf_counter() - start)
        metrics = evaluate(model, test, merge)
        history["exact_match"].append(metrics["exact_match"])
        history["cer"].append(metrics["cer"])
        if progress is not None:
            progress(metrics)
    return history


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--train-strings", type=int, default=4000)
    parser.add_argument("--test-strings", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--gap-cost", type=float, default=3.0)
    parser.add_argument("--p-del", type=float, default=0.05)
    parser.add_argument("--p-sub", type=float, default=0.15)
    parser.add_argument("--p-ins", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("out/noisy_transcription"))
    parser.add_argument("--quick", action="store_true", help="one small setting (seconds)")
    args = parser.parse_args(argv)
    for name in ("p_del", "p_sub", "p_ins"):
        if not 0.0 <= getattr(args, name) < 1.0:
            parser.error(f"--{name.replace('_', '-')} must lie in [0, 1)")
    if args.quick:
        args.seeds, args.epochs = [0], 3
        args.train_strings, args.test_strings = 1000, 300
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # numba's spinning OpenMP workers slow torch down (see seq2seq_alignment.py)
        import numba

        numba.set_num_threads(max(1, min(args.threads, numba.config.NUMBA_NUM_THREADS)))
    except ImportError:
        pass
    args.out.mkdir(parents=True, exist_ok=True)
    noise = (args.p_del, args.p_sub, args.p_ins)
    runs, references = [], []
    start = time.perf_counter()
    bar = tqdm(total=len(args.seeds) * len(args.losses) * args.epochs, file=sys.stderr)
    for seed in args.seeds:
        train = make_strings(args.train_strings, 1000 * seed + 1, *noise)
        test = make_strings(args.test_strings, 1000 * seed + 2, *noise)
        references.append(reference_rows(test))
        for loss in args.losses:

            def progress(metrics, loss=loss, seed=seed):
                bar.update(1)
                bar.set_postfix_str(
                    f"seed={seed} {loss} exact={metrics['exact_match']:.3f} "
                    f"cer={metrics['cer']:.3f}"
                )

            runs.append(run(loss, seed, train, test, args, progress))
    bar.close()

    def spread(a: np.ndarray) -> float:
        return float(a.std(ddof=1)) if len(a) > 1 else 0.0

    summary = {}
    print(f"\nheld-out strings after {args.epochs} epochs, seeds {args.seeds}:")
    print("| loss | exact match | CER | s/epoch |\n|---|---|---|---|")
    for loss in args.losses:
        mine = [r for r in runs if r["loss"] == loss]
        exact = np.array([r["exact_match"][-1] for r in mine])
        cer = np.array([r["cer"][-1] for r in mine])
        seconds = float(np.mean([np.mean(r["epoch_seconds"]) for r in mine]))
        summary[loss] = {
            "exact_match_mean": float(exact.mean()), "exact_match_std": spread(exact),
            "cer_mean": float(cer.mean()), "cer_std": spread(cer), "sec_per_epoch": seconds,
            "exact_match_curve": np.mean([r["exact_match"] for r in mine], 0).tolist(),
            "cer_curve": np.mean([r["cer"] for r in mine], 0).tolist(),
        }  # fmt: skip
        row = summary[loss]
        print(
            f"| {loss} | {row['exact_match_mean']:.3f} +- {row['exact_match_std']:.3f} | "
            f"{row['cer_mean']:.3f} +- {row['cer_std']:.3f} | {seconds:.1f} |"
        )
    for name in ("copy_input", "oracle"):
        exact = np.array([r[name]["exact_match"] for r in references])
        cer = np.array([r[name]["cer"] for r in references])
        summary[name] = {
            "exact_match_mean": float(exact.mean()), "exact_match_std": spread(exact),
            "cer_mean": float(cer.mean()), "cer_std": spread(cer),
        }  # fmt: skip
        print(
            f"| {name} (reference) | {exact.mean():.3f} +- {spread(exact):.3f} | "
            f"{cer.mean():.3f} +- {spread(cer):.3f} | - |"
        )
    print(f"total {time.perf_counter() - start:.0f} s")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.0))
    for loss in args.losses:
        epochs = range(1, args.epochs + 1)
        axes[0].plot(epochs, summary[loss]["exact_match_curve"], marker=".", label=loss)
        axes[1].plot(epochs, summary[loss]["cer_curve"], marker=".", label=loss)
    for ax, key in zip(axes, ("exact_match", "cer")):
        ax.axhline(summary["oracle"][f"{key}_mean"], color="gray", ls="--", lw=1, label="oracle")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test exact match")
    axes[1].set_ylabel("test character error rate")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    figure = args.out / "noisy_curves.png"
    fig.savefig(figure, dpi=80)
    plt.close(fig)
    (args.out / "results.json").write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "runs": runs},
            indent=1,
        )
    )
    print(f"wrote {figure} and {args.out / 'results.json'}")
    return {"summary": summary, "runs": runs, "references": references, "figure": figure}


if __name__ == "__main__":
    main()
