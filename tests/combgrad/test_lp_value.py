"""`combgrad.lp_value`: exact value, generalized gradients from one solve, batching, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import solvers
from combgrad import lp_value
from combgrad.nn import LPValue
from tests.lp_cases import random_lp

LP_BACKENDS = ["highs", "glop", "cvxpy"]


def tensors(lp: solvers.LinearProgram, requires_grad: bool = True):
    def t(a):
        return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=requires_grad)

    return (
        t(lp.c),
        t(lp.A_ub.toarray()),
        t(lp.b_ub),
        t(lp.A_eq.toarray()),
        t(lp.b_eq),
    )


def nondegenerate_lp(seed: int) -> solvers.LinearProgram:
    """A random LP whose optimal value is differentiable at the drawn point (checked by FD)."""
    for s in range(seed, seed + 50):
        lp = random_lp(s, n=5, m_ub=3, m_eq=1)
        sol = solvers.solve(lp)
        # Nondegenerate: strict complementarity on rows and bounds.
        slack = lp.b_ub - lp.A_ub @ sol.x
        rows_ok = np.all((np.abs(sol.duals_ub) > 1e-6) ^ (slack > 1e-6))
        reduced = sol.info["reduced_costs"]
        at_bound = (sol.x < 1e-6) | (sol.x > 5 - 1e-6)
        cols_ok = np.all((np.abs(reduced) > 1e-6) == at_bound)
        if rows_ok and cols_ok:
            return lp
    raise AssertionError("no nondegenerate LP found")


@pytest.mark.parametrize("backend", LP_BACKENDS)
@pytest.mark.parametrize("seed", [0, 100])
def test_gradcheck_in_c_b_and_A(backend, seed):
    lp = nondegenerate_lp(seed)
    c, A_ub, b_ub, A_eq, b_eq = tensors(lp)

    def f(c, A_ub, b_ub, A_eq, b_eq):
        return lp_value(c, A_ub, b_ub, A_eq, b_eq, bounds=(0, 5), backend=backend)

    assert torch.autograd.gradcheck(f, (c, A_ub, b_ub, A_eq, b_eq), eps=1e-6, atol=1e-5)


def test_gradient_in_c_is_the_solvers_x_and_strong_duality_holds():
    lp = random_lp(3, n=6, m_ub=4, m_eq=2, upper=np.inf)
    c, A_ub, b_ub, A_eq, b_eq = tensors(lp)
    z = lp_value(c, A_ub, b_ub, A_eq, b_eq)
    z.backward()
    sol = solvers.solve(lp)
    np.testing.assert_allclose(c.grad.numpy(), sol.x, atol=1e-9)
    # With bounds x >= 0 only, z = b.y (envelope identity / strong duality).
    dual_value = (b_ub.grad @ b_ub + b_eq.grad @ b_eq).item()
    assert z.item() == pytest.approx(dual_value, rel=1e-7)
    assert z.item() == pytest.approx(float(lp.c @ sol.x), rel=1e-9)
    np.testing.assert_allclose(b_ub.grad.numpy(), sol.duals_ub, atol=1e-9)
    np.testing.assert_allclose(A_ub.grad.numpy(), -np.outer(sol.duals_ub, sol.x), atol=1e-9)


def test_batched_costs_match_item_by_item_and_reuse_one_model():
    lp = random_lp(5, n=4, m_ub=3, m_eq=1)
    _, A_ub, b_ub, A_eq, b_eq = tensors(lp, requires_grad=False)
    C = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    z = lp_value(C, A_ub, b_ub, A_eq, b_eq, bounds=(0, 5))
    assert z.shape == (6,)
    z.sum().backward()
    for i in range(6):
        ci = C[i].detach().clone().requires_grad_()
        zi = lp_value(ci, A_ub, b_ub, A_eq, b_eq, bounds=(0, 5))
        zi.backward()
        assert zi.item() == pytest.approx(z[i].item(), abs=1e-9)
        np.testing.assert_allclose(ci.grad.numpy(), C.grad[i].numpy(), atol=1e-9)


def test_batched_b_and_A_broadcast_and_reduce_unbatched_gradients():
    lp = random_lp(7, n=4, m_ub=2, m_eq=0)
    c, A_ub, b_ub, _, _ = tensors(lp)
    B_ub = torch.stack([b_ub.detach() + d for d in (0.0, 0.1, 0.2)]).requires_grad_()
    z = lp_value(c, A_ub, B_ub, bounds=(0, 5))
    assert z.shape == (3,)
    z.sum().backward()
    expected = torch.zeros_like(c)
    for i in range(3):
        sol = solvers.solve(lp.replace(b_ub=B_ub[i].detach().numpy()))
        assert z[i].item() == pytest.approx(sol.objective, abs=1e-9)
        np.testing.assert_allclose(B_ub.grad[i].numpy(), sol.duals_ub, atol=1e-9)
        expected += torch.tensor(sol.x)
    np.testing.assert_allclose(c.grad.numpy(), expected.numpy(), atol=1e-9)  # summed over batch


def test_integer_program_cost_gradient_is_exact():
    """z(c) of an ILP is concave piecewise linear: x* is its gradient where the optimum is unique."""
    rng = np.random.default_rng(0)
    A = rng.integers(1, 6, size=(3, 6)).astype(float)
    b = np.array([9.0, 11.0, 8.0])
    c = torch.tensor(rng.normal(size=6), requires_grad=True)
    kw = {
        "A_ub": torch.from_numpy(A),
        "b_ub": torch.from_numpy(b),
        "bounds": (0, 3),
        "integrality": np.ones(6),
    }
    z, x = lp_value(c, return_solution=True, **kw)
    z.backward()
    assert torch.equal(c.grad, x)
    assert torch.allclose(x, x.round())
    h = 1e-6
    for j in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[j] = h
        fd = (lp_value(c.detach() + e, **kw) - lp_value(c.detach() - e, **kw)) / (2 * h)
        assert fd.item() == pytest.approx(c.grad[j].item(), abs=1e-6)


def test_integer_program_refuses_gradients_in_b_unless_asked():
    A = torch.tensor([[2.0, 3.0]])
    b = torch.tensor([7.5], requires_grad=True)
    c = torch.tensor([-1.0, -1.4])
    with pytest.raises(ValueError, match="integer_duals='fixed'"):
        lp_value(c, A, b, bounds=(0, 10), integrality=[1, 1])
    z = lp_value(c, A, b, bounds=(0, 10), integrality=[1, 1], integer_duals="fixed")
    z.backward()
    assert torch.isfinite(b.grad).all()
    with torch.no_grad():  # no gradient wanted: no error
        lp_value(c, A, b, bounds=(0, 10), integrality=[1, 1])


def test_ties_return_a_valid_supergradient():
    """At tied costs the returned x* satisfies z(c + d) <= z(c) + d.x* for all d (concavity)."""
    # Assignment LP of a 3x3 all-equal cost matrix: every permutation is optimal.
    lp = solvers.combinatorial.assignment_lp(np.ones((3, 3)))
    c = torch.ones(9, dtype=torch.float64, requires_grad=True)
    A_eq = torch.tensor(lp.A_eq.toarray())
    b_eq = torch.tensor(lp.b_eq)
    z = lp_value(c, A_eq=A_eq, b_eq=b_eq)
    z.backward()
    x = c.grad
    _, x_again = lp_value(c.detach(), A_eq=A_eq, b_eq=b_eq, return_solution=True)
    assert torch.equal(x_again, x)  # deterministic vertex
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        d = torch.randn(9, dtype=torch.float64, generator=g)
        assert lp_value(c.detach() + d, A_eq=A_eq, b_eq=b_eq).item() <= (z + d @ x).item() + 1e-9
    assert torch.allclose(x, x.round()) and x.sum().item() == pytest.approx(3.0)


def test_infeasible_item_names_its_batch_index():
    A = torch.tensor([[1.0, 1.0]])
    B = torch.tensor([[1.0], [2.0], [-1.0]])
    with pytest.raises(solvers.InfeasibleError, match="batch item 2"):
        lp_value(torch.ones(2), A, B)


def test_unbounded_problem_raises_rather_than_returning_nan():
    with pytest.raises(solvers.UnboundedError):
        lp_value(torch.tensor([-1.0, 1.0]), torch.tensor([[-1.0, 1.0]]), torch.tensor([1.0]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"c": torch.tensor([1.0, float("nan")])}, ValueError, "`c` must not contain NaN"),
        ({"c": torch.ones(2, 2, 2)}, ValueError, "`c` must have 1 dimension"),
        ({"b_ub": None}, ValueError, "`b_ub` must be given"),
        ({"b_ub": torch.ones(3)}, ValueError, "`A_ub` must have shape"),
        (
            {"A_ub": torch.tensor([[1.0, float("inf")]])},
            ValueError,
            "`A_ub` must contain only finite",
        ),
        ({"backend": "nope"}, solvers.BackendUnavailableError, "unknown backend"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = {"c": torch.ones(2), "A_ub": torch.ones(1, 2), "b_ub": torch.ones(1)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        lp_value(**args)


def test_nan_in_one_batch_item_names_it():
    C = torch.ones(3, 2)
    C[1, 0] = float("nan")
    with pytest.raises(ValueError, match="batch item 1: `c` must not contain NaN"):
        lp_value(C, torch.ones(1, 2), torch.ones(1))


def test_return_solution_is_marked_non_differentiable_and_dtype_is_kept():
    c = torch.tensor([-1.0, -2.0], dtype=torch.float32, requires_grad=True)
    z, x = lp_value(c, torch.ones(1, 2), torch.tensor([4.0]), return_solution=True)
    assert z.dtype == torch.float32 and x.dtype == torch.float32
    assert z.requires_grad and not x.requires_grad
    assert torch.equal(x, torch.tensor([0.0, 4.0]))


def test_module_with_learnable_b():
    layer = LPValue(
        A_ub=torch.ones(1, 3),
        b_ub=torch.tensor([2.0]),
        bounds=(0, 1),
        learn_b=True,
        dtype=torch.float64,
    )
    z = layer(torch.tensor([[-1.0, -2.0, -3.0], [1.0, -1.0, 0.5]], dtype=torch.float64))
    assert z.tolist() == pytest.approx([-5.0, -1.0])
    z.sum().backward()
    # first item: constraint binding with dual -1 (next-best cost); second: slack, dual 0.
    assert layer.b_ub.grad.tolist() == pytest.approx([-1.0])
    assert isinstance(layer.b_ub, torch.nn.Parameter) and not isinstance(
        layer.A_ub, torch.nn.Parameter
    )


def test_empty_batch_gives_empty_results():
    """B == 0 solves nothing: empty values and solutions (as the losses' reduction='none')."""
    c = torch.ones(0, 2, dtype=torch.float64, requires_grad=True)
    b_ub = torch.ones(1, dtype=torch.float64, requires_grad=True)
    z, x = lp_value(c, torch.ones(1, 2), b_ub, return_solution=True)
    assert z.shape == (0,) and x.shape == (0, 2)
    z.sum().backward()
    assert c.grad.shape == (0, 2)
    assert torch.equal(b_ub.grad, torch.zeros(1, dtype=torch.float64))
    assert LPValue(torch.ones(1, 2), torch.ones(1))(torch.ones(0, 2)).shape == (0,)


def _solvers_problem(integer: bool = False) -> solvers.LinearProgram:
    """What the `solvers` builders return: CSR matrices and read-only arrays."""
    if not integer:
        return random_lp(7, n=5, m_ub=3, m_eq=1)
    return solvers.LinearProgram(  # a small knapsack with one equality: feasible for any c
        c=[-3.0, -2.0, -4.0, -1.0, -2.5],
        A_ub=sp.csr_array([[2.0, 1.0, 3.0, 1.0, 2.0], [1.0, 2.0, 0.0, 1.0, 1.0]]),
        b_ub=[7.5, 4.0],
        A_eq=[[1.0, 0.0, 1.0, 0.0, 0.0]],
        b_eq=[2.0],
        bounds=(0, 3),
        integrality=np.ones(5),
    )


def test_sparse_and_read_only_inputs_equal_dense_tensors():
    lp = _solvers_problem()
    assert sp.issparse(lp.A_ub) and not lp.b_ub.flags.writeable
    c, A_ub, b_ub, A_eq, b_eq = tensors(lp, requires_grad=False)
    expected = lp_value(c, A_ub, b_ub, A_eq, b_eq, bounds=lp.bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "non-writable NumPy array" warning
        got = lp_value(lp.c, lp.A_ub, lp.b_ub, lp.A_eq, lp.b_eq, bounds=lp.bounds)
        layer = LPValue(lp.A_ub, lp.b_ub, lp.A_eq, lp.b_eq, lp.bounds, dtype=torch.float64)
        from_layer = layer(c)
        csc = lp_value(c, sp.csc_matrix(lp.A_ub), b_ub, A_eq, b_eq, bounds=lp.bounds)
    for value in (got, from_layer, csc):
        assert value.item() == pytest.approx(expected.item(), rel=1e-12)
    assert expected.item() == pytest.approx(solvers.solve(lp).objective, rel=1e-9)


@pytest.mark.parametrize("integer", [False, True])
def test_layer_from_problem(integer):
    lp = _solvers_problem(integer)
    layer = LPValue.from_problem(lp, learn_b=not integer, dtype=torch.float64)
    assert layer.c.dtype == torch.float64
    z = layer()  # the problem's own costs
    sol = solvers.solve(lp)
    assert z.item() == pytest.approx(sol.objective, rel=1e-9)
    C = torch.tensor(np.stack([lp.c, -lp.c, lp.c + 1.0]), requires_grad=True)
    values = layer(C)
    for i in range(3):
        expected = solvers.solve(lp.replace(c=C[i].detach().numpy())).objective
        assert values[i].item() == pytest.approx(expected, rel=1e-9)
    values[0].backward()
    np.testing.assert_allclose(C.grad[0].numpy(), sol.x, atol=1e-9)  # dz/dc = x*
    if not integer:
        np.testing.assert_allclose(layer.b_ub.grad.numpy(), sol.duals_ub, atol=1e-9)
        np.testing.assert_allclose(layer.b_eq.grad.numpy(), sol.duals_eq, atol=1e-9)


def test_layer_from_problem_without_rows_and_bad_input():
    lp = solvers.LinearProgram(c=[1.0, -1.0], bounds=(0, 2))
    layer = LPValue.from_problem(lp)
    assert layer.A_ub is None and layer.A_eq is None
    assert layer().item() == pytest.approx(-2.0)
    with pytest.raises(TypeError, match=r"`problem` must be a solvers\.LinearProgram"):
        LPValue.from_problem({"c": [1.0]})
    with pytest.raises(ValueError, match="`c` is required"):
        LPValue(torch.ones(1, 2), torch.ones(1))()
