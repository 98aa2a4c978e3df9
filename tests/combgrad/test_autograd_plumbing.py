"""combgrad's autograd Functions bind their arguments without re-inspecting `forward`."""

from __future__ import annotations

import importlib
import inspect

import pytest
import torch

from combgrad._autograd import cached_forward_signature

FUNCTIONS = [
    ("combgrad.argmin.perturbed", "Perturbed"),
    ("combgrad.argmin.blackbox", "Blackbox"),
    ("combgrad.argmin.imle", "IMLE"),
    ("combgrad.argmin.nid", "NegativeIdentity"),
    ("combgrad.functional.lp", "_LPValue"),
    ("combgrad.losses.fenchel_young", "FenchelYoung"),
    ("combgrad.cvxpy_layer", "_CvxpyValue"),
]


@pytest.mark.parametrize(("module", "name"), FUNCTIONS)
def test_forward_signature_is_precomputed(module, name):
    forward = getattr(importlib.import_module(module), name).forward
    assert isinstance(forward.__dict__.get("__signature__"), inspect.Signature)
    assert forward.__signature__ == inspect.signature(forward, follow_wrapped=False)


def test_defaults_are_still_bound():
    @cached_forward_signature
    class Scale(torch.autograd.Function):
        @staticmethod
        def forward(x, factor=3.0):
            return x * factor

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.factor = inputs[1]

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.factor, None

    x = torch.ones(2, requires_grad=True)
    Scale.apply(x).sum().backward()
    assert torch.equal(x.grad, torch.full((2,), 3.0))
