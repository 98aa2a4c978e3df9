"""Reading lines of handwritten digits through the exact alignment loss (paper setting (b)).

Each input is a line of 3-8 handwritten digits: 8x8 images from ``sklearn.datasets.load_digits``
placed side by side on a 12x96 canvas with random gaps (0-3 px), a random start and random
vertical jitter (0-4 px). Train and test lines use disjoint digit images (a 70/30 split of
the 1,797 images, by seed). The target is the digit string.

One encoder-decoder is trained with every loss: a CNN that turns the image into 16 column
features, a bidirectional GRU encoder, and a GRU decoder that emits ``T = 16`` steps of
distributions over 11 symbols (10 digits and a blank/padding symbol). Losses compared, with
the same model, data, optimizer, batches, epochs and seeds:

- ``align``: `combgrad.AlignmentLoss` (ours) with softmax outputs. Each decoder step
  either matches one target digit (cost ``-log p_i(y_j)``) or is left unmatched and should
  say blank (cost ``-log p_i(blank) + gap``); an unmatched target digit costs ``gap``. This
  is an exact global alignment with a position-dependent gap, obtained from the library's
  loss by shifting the costs: ``alignment_loss(log_p - log_p[blank]) + sum_i -log p_i(blank)``
  (for every alignment the two sides are equal, so the minimum and its generalized gradient
  are those of the blank-aware alignment).
- ``align_gumbel``: the same alignment on straight-through Gumbel-softmax samples
  (``hard=True``) with the ``1 - p`` cost, temperature annealed geometrically from 2 to 0.5.
- ``align_gumbel_soft``: the ``-log`` alignment on relaxed (``hard=False``) Gumbel-softmax
  samples, the docstring's first recipe (not in the default grid of docs/results.md).
- ``align_smoothed``: ``align`` with perturbed smoothing: the match costs are perturbed
  with centred Gumbel noise (``sigma`` annealed from ``--smooth-sigma`` to 0, cosine,
  over the first ``--smooth-fraction`` of the steps; ``--smooth-samples`` draws per line),
  so early training averages over many near-optimal alignments instead of locking onto one.
- ``ctc``: ``torch.nn.CTCLoss`` (blank = symbol 10), the standard loss for this task.
- ``ce``: position-wise cross-entropy on targets padded with blank to ``T`` (digit ``j`` at
  decoder step ``j``): the position-aligned baseline.

``--blank-init-prob q`` sets the output layer's blank bias so that every step starts out
predicting blank with probability about ``q`` (the digits share the rest), instead of 1/11.
Without it the alignment loss collapses, within ~20 steps, onto the left-aligned path (digit
``j`` at step ``j``), which is position-wise cross-entropy; with ``q = 0.8`` unmatched steps
are cheap from the start and it learns the task (slowly; see docs/results.md).

``--ctc-warmup-epochs N`` trains the first N epochs with CTC and the rest with the chosen
loss (alignment as a fine-tuning loss on an already aligned model).

Decoding is greedy: argmax per step, then drop blanks (CTC also merges repeats, its rule).
Metrics on held-out lines: sequence exact-match accuracy and character error rate (token
edit distance / target length).

Usage::

    python examples/seq2seq_alignment.py              # all losses x 3 seeds
    python examples/seq2seq_alignment.py --quick      # seconds; used by the tests
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from tqdm.auto import tqdm

from combgrad import alignment_loss
from combgrad.losses import sigma_schedule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sequences import edit_distance, greedy_decode, score  # noqa: F401 (re-exported)

LOSSES = ("align", "align_smoothed", "align_gumbel", "align_gumbel_soft", "ctc", "ce")
BLANK = 10
NUM_SYMBOLS = 11
HEIGHT, WIDTH = 12, 96
MIN_LEN, MAX_LEN = 3, 8


def make_lines(num_lines: int, images: np.ndarray, labels: np.ndarray, seed: int):
    """Render ``num_lines`` digit lines from a pool of 8x8 images.

    Returns:
        x: (N, 1, HEIGHT, WIDTH) float32 images in [0, 1]; targets: (N, MAX_LEN) int64
        padded with BLANK; lengths: (N,) int64.
    """
    rng = np.random.default_rng(seed)
    x = np.zeros((num_lines, 1, HEIGHT, WIDTH), dtype=np.float32)
    targets = np.full((num_lines, MAX_LEN), BLANK, dtype=np.int64)
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, size=num_lines)
    for n, length in enumerate(lengths):
        picks = rng.integers(0, len(labels), size=length)
        gaps = rng.integers(0, 4, size=length - 1)
        span = 8 * length + gaps.sum()
        column = int(rng.integers(0, WIDTH - span + 1))
        for j, pick in enumerate(picks):
            row = int(rng.integers(0, HEIGHT - 8 + 1))
            x[n, 0, row : row + 8, column : column + 8] = images[pick]
            column += 8 + (int(gaps[j]) if j < length - 1 else 0)
        targets[n, :length] = labels[picks]
    return torch.from_numpy(x), torch.from_numpy(targets), torch.from_numpy(lengths)


def make_data(seed: int, num_train: int, num_test: int):
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    num_test_images = round(0.3 * len(images))
    test_idx, train_idx = order[:num_test_images], order[num_test_images:]
    train = make_lines(num_train, images[train_idx], digits.target[train_idx], seed + 1)
    test = make_lines(num_test, images[test_idx], digits.target[test_idx], seed + 2)
    return train, test


class LineReader(nn.Module):
    """CNN + bidirectional GRU encoder, GRU decoder emitting T = WIDTH // 6 steps of logits."""

    def __init__(self, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(2),  # 6 x 48
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels),
            nn.ReLU(), nn.MaxPool2d((2, 3)),  # 3 x 16
        )  # fmt: skip
        self.project = nn.Linear(2 * channels * (HEIGHT // 4), hidden)
        self.encoder = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.decoder = nn.GRU(2 * hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, NUM_SYMBOLS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.cnn(x)  # (B, C, 3, 16)
        B, C, H, W = features.shape
        columns = F.relu(self.project(features.permute(0, 3, 1, 2).reshape(B, W, C * H)))
        encoded, _ = self.encoder(columns)
        decoded, _ = self.decoder(encoded)
        return self.head(decoded)  # (B, T, NUM_SYMBOLS)


def blank_alignment_loss(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    lengths: torch.Tensor,
    gap_cost: float,
    **smoothing,
) -> torch.Tensor:
    """Exact alignment where unmatched steps pay ``-log p(blank) + gap``; mean over items.

    ``smoothing``: ``sigma``, ``n_samples``, ``generator`` for the perturbed variant.
    """
    B, T, _ = log_probs.shape
    return alignment_loss(log_probs, targets, [T] * B, lengths, gap_cost, blank=BLANK, **smoothing)


def gumbel_alignment_loss(
    logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor, gap_cost: float, tau: float
) -> torch.Tensor:
    """`blank_alignment_loss` with the ``1 - p`` cost on straight-through Gumbel samples."""
    B, T, _ = logits.shape
    sample = F.gumbel_softmax(logits, tau=tau, hard=True)  # one-hot forward, soft backward
    blank = sample[..., BLANK : BLANK + 1]
    # cost="prob" charges 1 - exp(lp); exp(lp) = 1 - p(blank) + p(y) (+1e-6 so that log
    # stays finite with an exact gradient) makes a match cost (1 - p(y)) - (1 - p(blank)).
    shifted = torch.log(1.0 - blank + sample + 1e-6)
    with warnings.catch_warnings():  # `shifted` is deliberately not a log-distribution
        warnings.filterwarnings("ignore", message=".*does not look like log-probabilities")
        per_item = alignment_loss(
            shifted, targets, [T] * B, lengths, gap_cost, reduction="none", cost="prob"
        )
    per_item = per_item + (1.0 - blank.squeeze(-1)).sum(1)
    return (per_item / lengths.to(per_item.dtype)).mean()


def compute_loss(name, logits, targets, lengths, *, gap_cost, tau, ctc, smoothing=None):
    B, T, _ = logits.shape
    if name == "align":
        return blank_alignment_loss(logits.log_softmax(-1), targets, lengths, gap_cost)
    if name == "align_smoothed":
        return blank_alignment_loss(
            logits.log_softmax(-1), targets, lengths, gap_cost, **(smoothing or {})
        )
    if name == "align_gumbel":
        return gumbel_alignment_loss(logits, targets, lengths, gap_cost, tau)
    if name == "align_gumbel_soft":
        sample = F.gumbel_softmax(logits, tau=tau, hard=False)
        return blank_alignment_loss(sample.clamp_min(1e-12).log(), targets, lengths, gap_cost)
    if name == "ctc":
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, C)
        return ctc(log_probs, targets, torch.full((B,), T, dtype=torch.long), lengths)
    if name == "ce":
        padded = torch.full((B, T), BLANK, dtype=torch.long)
        padded[:, : targets.shape[1]] = targets  # targets are already BLANK past their length
        return F.cross_entropy(logits.reshape(B * T, -1), padded.reshape(-1))
    raise ValueError(f"`loss` must be one of {LOSSES}; got {name!r}.")


def decode(logits: torch.Tensor, merge_repeats: bool) -> list[list[int]]:
    return greedy_decode(logits, BLANK, merge_repeats)


@torch.no_grad()
def evaluate(model, x, targets, lengths, merge_repeats: bool) -> dict:
    model.eval()
    logits = torch.cat([model(chunk) for chunk in x.split(256)])
    model.train()
    return score(decode(logits, merge_repeats), targets, lengths)


def set_blank_prior(model: LineReader, prob: float) -> None:
    """Shift the blank logit's bias so that the initial p(blank) is about ``prob``.

    The head's logits start near 0, so adding ``log(10 * prob / (1 - prob))`` to the blank
    bias gives ``p(blank) = prob`` and ``(1 - prob) / 10`` to each digit.
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"`prob` must lie in (0, 1); got {prob}.")
    with torch.no_grad():
        model.head.bias[BLANK] += math.log((NUM_SYMBOLS - 1) * prob / (1.0 - prob))


def run(loss: str, seed: int, data, args, progress=None) -> dict:
    (x_train, y_train, n_train), (x_test, y_test, n_test) = data
    torch.manual_seed(seed)
    model = LineReader()
    if args.blank_init_prob is not None:
        set_blank_prior(model, args.blank_init_prob)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    generator = torch.Generator().manual_seed(seed)
    steps = args.epochs * math.ceil(len(n_train) / args.batch_size)
    noise_generator = torch.Generator().manual_seed(seed + 15485863)
    anneal_steps = max(1, round(args.smooth_fraction * steps))
    step = 0
    history = {"loss": loss, "seed": seed, "exact_match": [], "cer": [], "epoch_seconds": []}
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for batch in torch.randperm(len(n_train), generator=generator).split(args.batch_size):
            # Geometric annealing of the Gumbel temperature from tau_start to tau_end.
            tau = args.tau_start * (args.tau_end / args.tau_start) ** (step / max(1, steps - 1))
            current = "ctc" if epoch < args.ctc_warmup_epochs else loss
            smoothing = {
                "sigma": sigma_schedule(step, anneal_steps, args.smooth_sigma),
                "n_samples": args.smooth_samples,
                "generator": noise_generator,
            }
            logits = model(x_train[batch])
            value = compute_loss(
                current, logits, y_train[batch], n_train[batch], gap_cost=args.gap_cost,
                tau=tau, ctc=ctc, smoothing=smoothing,
            )  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            step += 1
        history["epoch_seconds"].append(time.perf_counter() - start)
        metrics = evaluate(model, x_test, y_test, n_test, merge_repeats=current == "ctc")
        history["exact_match"].append(metrics["exact_match"])
        history["cer"].append(metrics["cer"])
        if progress is not None:
            progress(metrics)
    return history


def limit_numba_threads(threads: int) -> None:
    """Give numba's parallel alignment kernel no more threads than torch gets.

    With numba's OpenMP layer, its worker threads busy-wait after every parallel region and
    compete with torch for the cores: measured here, a GRU step took ~6x more CPU time after
    one ``alignment_loss`` call with 2 numba threads. One thread runs the serial kernel.
    """
    try:
        import numba
    except ImportError:  # the numpy engine is used then
        return
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--train-lines", type=int, default=2000)
    parser.add_argument("--test-lines", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--gap-cost", type=float, default=3.0)
    parser.add_argument("--tau-start", type=float, default=2.0)
    parser.add_argument("--tau-end", type=float, default=0.5)
    parser.add_argument(
        "--blank-init-prob",
        type=float,
        default=None,
        help="initial p(blank) of every step, set through the output bias (default: untouched)",
    )
    parser.add_argument(
        "--ctc-warmup-epochs",
        type=int,
        default=0,
        help="train the first N epochs with CTC, then switch to the chosen loss",
    )
    parser.add_argument("--smooth-sigma", type=float, default=1.0, help="align_smoothed")
    parser.add_argument(
        "--smooth-fraction", type=float, default=0.5, help="align_smoothed: share of steps"
    )
    parser.add_argument("--smooth-samples", type=int, default=8, help="align_smoothed: draws")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("out/seq2seq_alignment"))
    parser.add_argument("--quick", action="store_true", help="one small setting (seconds)")
    args = parser.parse_args(argv)
    if args.quick:
        args.losses, args.seeds, args.epochs = ["align", "ce"], [0], 3
        args.train_lines, args.test_lines = 960, 200
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    limit_numba_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    start = time.perf_counter()
    bar = tqdm(total=len(args.seeds) * len(args.losses) * args.epochs, file=sys.stderr)
    for seed in args.seeds:
        data = make_data(seed, args.train_lines, args.test_lines)
        for loss in args.losses:

            def progress(metrics, loss=loss, seed=seed):
                bar.update(1)
                bar.set_postfix_str(
                    f"seed={seed} {loss} exact={metrics['exact_match']:.3f} "
                    f"cer={metrics['cer']:.3f}"
                )

            runs.append(run(loss, seed, data, args, progress))
    bar.close()

    summary = {}
    print(f"\nheld-out lines after {args.epochs} epochs, seeds {args.seeds}:")
    print("| loss | exact match | CER | s/epoch |\n|---|---|---|---|")
    for loss in args.losses:
        mine = [r for r in runs if r["loss"] == loss]
        exact = np.array([r["exact_match"][-1] for r in mine])
        cer = np.array([r["cer"][-1] for r in mine])
        seconds = float(np.mean([np.mean(r["epoch_seconds"]) for r in mine]))
        spread = lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0  # noqa: E731
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
    print(f"total {time.perf_counter() - start:.0f} s")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.0))
    for loss in args.losses:
        epochs = range(1, args.epochs + 1)
        axes[0].plot(epochs, summary[loss]["exact_match_curve"], marker=".", label=loss)
        axes[1].plot(epochs, summary[loss]["cer_curve"], marker=".", label=loss)
    axes[0].set_ylabel("test exact match")
    axes[1].set_ylabel("test character error rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    figure = args.out / "seq2seq_curves.png"
    fig.savefig(figure, dpi=80)
    plt.close(fig)
    (args.out / "results.json").write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary, "runs": runs},
            indent=1,
        )
    )
    print(f"wrote {figure} and {args.out / 'results.json'}")
    return {"summary": summary, "runs": runs, "figure": figure}


if __name__ == "__main__":
    main()
