"""examples/noisy_transcription.py: data generator, blank-aware loss, quick path end to end.

Training asserts improvement over the untrained model and over copying the input, never a
fixed accuracy; the blank-aware alignment loss is checked against brute-force enumeration.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


nt = load_example("noisy_transcription")


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_generator_without_deletions_is_exactly_invertible():
    # With no deletions every corruption is recoverable: the oracle gets every string right,
    # while the raw input (with twins) does not, so the task is not trivial.
    data = nt.make_strings(300, seed=5, p_del=0.0, p_sub=0.3, p_ins=0.4)
    _, input_lengths, targets, target_lengths, deleted = data
    assert deleted == 0
    assert (target_lengths >= nt.MIN_LEN).all() and (target_lengths <= nt.MAX_LEN).all()
    refs = nt.reference_rows(data)
    assert refs["oracle"]["exact_match"] == 1.0 and refs["oracle"]["cer"] == 0.0
    assert refs["copy_input"]["cer"] > 0.1
    assert (input_lengths > target_lengths).float().mean() > 0.5  # insertions shift tokens
    for t, n in zip(targets, target_lengths.tolist()):
        assert (t[1:n] != t[: n - 1]).all()  # no equal neighbours


def test_generator_deletions_are_counted():
    data = nt.make_strings(300, seed=6, p_del=0.2, p_sub=0.0, p_ins=0.0)
    _, input_lengths, _, target_lengths, deleted = data
    # Without insertions the (non-empty-guarded) input is the clean string minus deletions.
    assert deleted == int((target_lengths - input_lengths).clamp(min=0).sum()) > 0


def brute_force(log_probs, n, targets, m, gap):
    """Minimum blank-aware alignment cost of one item over all monotone matchings."""
    best = float("inf")
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.combinations(range(m), k):
                matched = set(rows)
                cost = sum(-log_probs[i, targets[j]] for i, j in zip(rows, cols))
                cost += sum(-log_probs[i, nt.BLANK] + gap for i in range(n) if i not in matched)
                cost += gap * (m - k)
                best = min(best, float(cost))
    return best / m


def test_blank_alignment_loss_matches_brute_force_with_padding():
    torch.manual_seed(0)
    B, S, L = 4, 5, 4
    logits = torch.randn(B, S, nt.NUM_OUTPUTS, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, nt.VOCAB, (B, L))
    input_lengths = torch.tensor([5, 3, 4, 1])
    target_lengths = torch.tensor([3, 4, 2, 2])
    gap = 0.7
    log_probs = logits.log_softmax(-1)
    value = nt.blank_alignment_loss(log_probs, input_lengths, targets, target_lengths, gap)
    expected = (
        sum(
            brute_force(log_probs[b].detach(), int(input_lengths[b]), targets[b], int(m), gap)
            for b, m in enumerate(target_lengths.tolist())
        )
        / B
    )
    assert value.item() == pytest.approx(expected, rel=1e-10)
    # Padding positions must get no gradient; valid ones do.
    (grad,) = torch.autograd.grad(value, logits)
    for b, n in enumerate(input_lengths.tolist()):
        assert (grad[b, n:] == 0).all()
        assert grad[b, :n].abs().max() > 0


def test_quick_path_learns_and_alignment_beats_position_wise_ce(tmp_path):
    result = nt.main(["--quick", "--out", str(tmp_path)])
    assert result["figure"].exists() and (tmp_path / "results.json").exists()
    reference = result["references"][0]
    by_loss = {r["loss"]: r for r in result["runs"]}
    for loss in ("align", "ctc"):
        run = by_loss[loss]
        # Beats the untrained model and the trivial "copy the input" transcription.
        assert run["cer"][-1] < 0.5 * run["untrained"]["cer"]
        assert run["cer"][-1] < reference["copy_input"]["cer"]
        assert run["exact_match"][-1] > run["untrained"]["exact_match"] + 0.2
    # The point of the task: outputs are not aligned with the targets, so a loss that finds
    # the alignment should do far better than position-wise cross-entropy.
    assert by_loss["align"]["cer"][-1] < by_loss["ce"]["cer"][-1] - 0.1
