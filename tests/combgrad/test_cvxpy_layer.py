"""`combgrad.CvxpyLayer` (value mode) and `solvers.cvxpy_parametric.ParametricLP`.

Values are checked against cvxpy's own solve, gradients against central finite
differences of cvxpy's optimal value (``torch.autograd.gradcheck``) on random LPs whose
optimum is nondegenerate (checked), in every parameter position.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

import solvers
from combgrad import CvxpyLayer
from solvers.cvxpy_parametric import ParametricLP

VALUE_RTOL = 1e-7
GRAD_ATOL = 1e-5


def random_family(sense=cp.Minimize, n: int = 5, m: int = 3):
    """An LP with parameters in c, b and A, and one parameter `e` used in several places.

    minimise (or maximise the negation of) c @ x + 2 e x_0 + e
    s.t. A x <= b, sum(x) == 1 + e, x >= 0, x <= 2 (+ a box so it is always bounded).
    """
    x = cp.Variable(n, name="x")
    c = cp.Parameter(n, name="c")
    A = cp.Parameter((m, n), name="A")
    b = cp.Parameter(m, name="b")
    e = cp.Parameter(name="e")
    objective = c @ x + 2 * e * x[0] + e
    if sense is cp.Maximize:
        objective = -objective
    constraints = [A @ x <= b, cp.sum(x) == 1 + e, x >= 0, x <= 2]
    return cp.Problem(sense(objective), constraints), x, [c, A, b, e]


def draw(rng: np.random.Generator, n: int = 5, m: int = 3, batch: int | None = None):
    shape = () if batch is None else (batch,)
    return [
        rng.normal(size=(*shape, n)),
        rng.uniform(0.2, 1.0, size=(*shape, m, n)),
        rng.uniform(1.0, 2.0, size=(*shape, m)),
        rng.uniform(0.2, 0.6, size=shape),
    ]


def cvxpy_value(problem, params, values) -> float:
    for p, v in zip(params, values):
        p.value = np.asarray(v, dtype=float)
    problem.solve(cp.HIGHS)
    assert problem.status == cp.OPTIMAL
    return problem.value


def nondegenerate_draws(plp: ParametricLP, seed: int, count: int):
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(200):
        values = draw(rng)
        if strictly_complementary(plp, values):
            found.append(values)
            if len(found) == count:
                return found
    raise AssertionError("no nondegenerate draw found")


def strictly_complementary(plp: ParametricLP, values) -> bool:
    """A unique, nondegenerate optimum of the compiled LP (so FD of the value is valid)."""
    theta = plp.theta(values)
    lp = plp.linear_program(theta)
    sol = solvers.solve(lp)
    if not sol.success:
        return False
    slack = lp.b_ub - lp.A_ub @ sol.x
    tight = slack <= 1e-7
    lb, ub = lp.bounds[:, 0], lp.bounds[:, 1]
    at_bound = (sol.x - lb <= 1e-7) | (ub - sol.x <= 1e-7)
    # Strict complementarity on rows and bounds, and the active constraints (tight rows,
    # equalities, variables at a bound) determine x: exactly n of them, independent.
    if np.any(tight != (np.abs(sol.duals_ub) > 1e-7)):
        return False
    if np.any(at_bound != (np.abs(sol.info["reduced_costs"]) > 1e-7)):
        return False
    active = np.vstack([lp.A_ub.toarray()[tight], lp.A_eq.toarray(), np.eye(lp.n_vars)[at_bound]])
    return active.shape[0] == lp.n_vars and np.linalg.matrix_rank(active) == lp.n_vars


def as_tensors(values, requires_grad: bool = True):
    return [
        torch.tensor(np.asarray(v), dtype=torch.float64, requires_grad=requires_grad)
        for v in values
    ]


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize("sense", [cp.Minimize, cp.Maximize])
def test_values_match_cvxpy(sense):
    problem, _, params = random_family(sense)
    layer = CvxpyLayer(problem, parameters=params)
    rng = np.random.default_rng(0)
    for _ in range(5):
        values = draw(rng)
        z = layer(*as_tensors(values, requires_grad=False))
        assert z.shape == ()
        assert z.item() == pytest.approx(cvxpy_value(problem, params, values), rel=VALUE_RTOL)


def test_return_variables_match_cvxpy_with_matrix_variable():
    X = cp.Variable((2, 3), name="X")
    C = cp.Parameter((2, 3), name="C")
    r = cp.Parameter(2, name="r")
    problem = cp.Problem(
        cp.Minimize(cp.sum(cp.multiply(C, X))), [cp.sum(X, axis=1) == r, X >= 0, X <= 1]
    )
    layer = CvxpyLayer(problem, parameters=[C, r], variables=[X])
    Cv = np.array([[1.0, -2.0, 0.5], [3.0, 0.1, -1.0]])
    rv = np.array([1.5, 0.7])
    z, (Xt,) = layer(torch.tensor(Cv), torch.tensor(rv), return_variables=True)
    assert z.item() == pytest.approx(cvxpy_value(problem, [C, r], [Cv, rv]), rel=VALUE_RTOL)
    np.testing.assert_allclose(Xt.numpy(), X.value, atol=1e-8)
    assert Xt.shape == (2, 3)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("sense", [cp.Minimize, cp.Maximize])
@pytest.mark.parametrize("seed", [0, 1])
def test_value_gradient_matches_finite_differences(sense, seed):
    problem, _, params = random_family(sense)
    layer = CvxpyLayer(problem, parameters=params)
    (values,) = nondegenerate_draws(layer.plp, seed, 1)
    inputs = tuple(as_tensors(values))
    assert torch.autograd.gradcheck(lambda *p: layer(*p), inputs, atol=GRAD_ATOL)


def test_gradient_against_cvxpy_finite_differences_every_position():
    """Each entry of each parameter, against FD of cvxpy's own optimal value."""
    problem, _, params = random_family(cp.Minimize)
    layer = CvxpyLayer(problem, parameters=params)
    (values,) = nondegenerate_draws(layer.plp, 7, 1)
    inputs = as_tensors(values)
    layer(*inputs).backward()
    h = 1e-6
    for k, (p, v) in enumerate(zip(params, values)):
        v = np.asarray(v, dtype=float)
        fd = np.zeros(v.shape)
        for idx in np.ndindex(v.shape):
            plus = [np.asarray(w, dtype=float).copy() for w in values]
            minus = [np.asarray(w, dtype=float).copy() for w in values]
            plus[k][idx] += h
            minus[k][idx] -= h
            fd[idx] = (cvxpy_value(problem, params, plus) - cvxpy_value(problem, params, minus)) / (
                2 * h
            )
        np.testing.assert_allclose(
            inputs[k].grad.numpy(), fd, atol=GRAD_ATOL, err_msg=f"parameter {p.name()}"
        )


def test_batched_gradcheck_with_shared_parameter():
    """Batched c and A, shared (unbatched) b and e: their gradients sum over the batch."""
    problem, _, params = random_family(cp.Minimize)
    layer = CvxpyLayer(problem, parameters=params)
    draws = nondegenerate_draws(layer.plp, 3, 3)
    # Keep b and e from the first draw; check the others stay nondegenerate with them.
    b, e = draws[0][2], draws[0][3]
    items = [d for d in draws if strictly_complementary(layer.plp, [d[0], d[1], b, e])]
    assert len(items) >= 2
    c = np.stack([d[0] for d in items])
    A = np.stack([d[1] for d in items])
    inputs = tuple(as_tensors([c, A, b, e]))
    assert torch.autograd.gradcheck(lambda *p: layer(*p).sum(), inputs, atol=GRAD_ATOL)


def test_parameter_in_several_places():
    """`e` enters the objective twice, the constant, and an equality's right-hand side."""
    problem, _, params = random_family(cp.Minimize)
    layer = CvxpyLayer(problem, parameters=params)
    assert layer.plp.cost_params == [True, False, False, True]
    assert layer.plp.constraint_params == [False, True, True, True]
    (values,) = nondegenerate_draws(layer.plp, 11, 1)
    inputs = as_tensors(values)
    e = inputs[3]
    assert torch.autograd.gradcheck(
        lambda e_: layer(inputs[0].detach(), inputs[1].detach(), inputs[2].detach(), e_), (e,)
    )


def test_only_needed_gradients_and_no_grad_mode():
    problem, _, params = random_family(cp.Minimize)
    layer = CvxpyLayer(problem, parameters=params)
    (values,) = nondegenerate_draws(layer.plp, 5, 1)
    c, A, b, e = as_tensors(values)
    A.requires_grad_(False)
    layer(c, A, b, e).backward()
    assert A.grad is None and c.grad is not None and b.grad is not None
    with torch.no_grad():
        z = layer(c, A, b, e)
    assert not z.requires_grad


# ----------------------------------------------------------------------------- batching


@pytest.mark.parametrize("batched", ["costs", "all"])
def test_batch_equals_loop(batched):
    problem, _, params = random_family(cp.Minimize)
    layer = CvxpyLayer(problem, parameters=params)
    rng = np.random.default_rng(4)
    B = 4
    batch = draw(rng, batch=B)
    if batched == "costs":  # only c varies: one backend model, re-solved per cost vector
        batch = [batch[0], batch[1][0], batch[2][0], batch[3][0]]
    inputs = as_tensors(batch)
    z = layer(*inputs)
    z.sum().backward()
    for i in range(B):
        item = [v[i] if v.ndim > p.ndim else v for v, p in zip(batch, params)]
        item_inputs = as_tensors(item)
        zi = layer(*item_inputs)
        zi.backward()
        assert z[i].item() == pytest.approx(zi.item(), rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(
            inputs[0].grad[i].numpy(), item_inputs[0].grad.numpy(), atol=1e-9
        )


def test_workers_match_serial():
    problem, _, params = random_family(cp.Minimize)
    serial = CvxpyLayer(problem, parameters=params)
    parallel = CvxpyLayer(problem, parameters=params, workers=2)
    batch = as_tensors(draw(np.random.default_rng(8), batch=4), requires_grad=False)
    torch.testing.assert_close(serial(*batch), parallel(*batch))


@pytest.mark.parametrize("backend", ["glop", "cvxpy"])
def test_other_backends_agree(backend):
    problem, _, params = random_family(cp.Minimize)
    (values,) = nondegenerate_draws(ParametricLP(problem, params), 2, 1)
    grads = []
    for name in ("highs", backend):
        inputs = as_tensors(values)
        layer = CvxpyLayer(problem, parameters=params, backend=name)
        z = layer(*inputs)
        z.backward()
        grads.append((z.item(), [t.grad for t in inputs]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-7)
    for g0, g1 in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(g0, g1, atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- MILP


def knapsack():
    x = cp.Variable(4, boolean=True, name="x")
    v = cp.Parameter(4, name="v")
    cap = cp.Parameter(name="cap")
    w = np.array([3.0, 4.0, 2.0, 5.0])
    problem = cp.Problem(cp.Maximize(v @ x), [w @ x <= cap])
    return problem, x, v, cap, w


def test_milp_value_and_cost_gradient_by_enumeration():
    problem, x, v, cap, w = knapsack()
    layer = CvxpyLayer(problem, parameters=[v, cap], variables=[x])
    rng = np.random.default_rng(0)
    V = rng.uniform(1, 5, size=(3, 4))
    vt = torch.tensor(V, requires_grad=True)
    z = layer(vt, torch.tensor(8.0))
    z.sum().backward()
    for i in range(3):
        best, arg = -np.inf, None
        for bits in np.ndindex(2, 2, 2, 2):
            sel = np.array(bits, dtype=float)
            if w @ sel <= 8.0 and V[i] @ sel > best:
                best, arg = V[i] @ sel, sel
        assert z[i].item() == pytest.approx(best, rel=1e-9)
        assert z[i].item() == pytest.approx(cvxpy_value(problem, [v, cap], [V[i], 8.0]), rel=1e-9)
        np.testing.assert_allclose(vt.grad[i].numpy(), arg)  # dV/dv = x*


def test_milp_constraint_gradient_needs_fixed_duals():
    problem, _, v, cap, _ = knapsack()
    layer = CvxpyLayer(problem, parameters=[v, cap])
    capt = torch.tensor(8.0, requires_grad=True)
    with pytest.raises(ValueError, match=r"\['cap'\] are not defined for integer programs"):
        layer(torch.ones(4), capt)
    # Detached, it works; with integer_duals="fixed" the fixed-integer LP's duals are used.
    assert layer(torch.ones(4), capt.detach()).item() == pytest.approx(2.0)
    fixed = CvxpyLayer(problem, parameters=[v, cap], integer_duals="fixed")
    z = fixed(torch.tensor([1.0, 2.0, 3.0, 1.0]), capt)
    z.backward()
    # x* = items {1, 2} (weight 6 of 8, value 5): with the integers fixed the capacity row
    # is slack, so its dual, the gradient, is 0.
    assert z.item() == pytest.approx(5.0)
    assert capt.grad.item() == 0.0


# ----------------------------------------------------------------------------- errors


def test_out_of_scope_problems_point_to_cvxpylayers():
    x = cp.Variable(2)
    p = cp.Parameter(2)
    q = cp.Parameter()
    with pytest.raises(ValueError, match="cvxpylayers"):
        CvxpyLayer(cp.Problem(cp.Minimize(cp.sum_squares(x - p))), parameters=[p])
    with pytest.raises(ValueError, match=r"second-order.*cvxpylayers"):
        CvxpyLayer(cp.Problem(cp.Minimize(p @ x), [cp.norm(x, 2) <= 1]), parameters=[p])
    with pytest.raises(ValueError, match="not DPP"):
        CvxpyLayer(cp.Problem(cp.Minimize(q * p @ x), [cp.abs(x) <= 1]), parameters=[p, q])
    with pytest.raises(ValueError, match="DCP"):
        CvxpyLayer(cp.Problem(cp.Maximize(cp.abs(x[0]) + p @ x), [x <= 1]), parameters=[p])


def test_parameters_and_variables_must_match_problem():
    problem, _, params = random_family()
    with pytest.raises(ValueError, match="missing: e"):
        CvxpyLayer(problem, parameters=params[:3])
    other = cp.Parameter(name="other")
    with pytest.raises(ValueError, match="not in the problem: other"):
        CvxpyLayer(problem, parameters=[*params, other])
    with pytest.raises(TypeError, match="`parameters` must be a list"):
        CvxpyLayer(problem, parameters=set(params))
    with pytest.raises(ValueError, match="'y' is not a variable"):
        CvxpyLayer(problem, parameters=params, variables=[cp.Variable(name="y")])


def test_bad_options():
    problem, _, params = random_family()
    with pytest.raises(ValueError, match="`output`"):
        CvxpyLayer(problem, parameters=params, output="x")
    with pytest.raises(ValueError, match="`method` must be one of"):
        CvxpyLayer(problem, parameters=params, output="solution", method="magic")
    with pytest.raises(solvers.BackendUnavailableError, match="gurobi"):
        CvxpyLayer(problem, parameters=params, backend="gurobi")
    milp = knapsack()[0]
    with pytest.raises(solvers.CapabilityError, match="integer"):
        CvxpyLayer(milp, parameters=milp.parameters(), backend="glop")


def test_parameter_shapes_and_values():
    problem, _, params = random_family()
    layer = CvxpyLayer(problem, parameters=params)
    good = as_tensors(draw(np.random.default_rng(0)), requires_grad=False)
    with pytest.raises(ValueError, match="one tensor per parameter"):
        layer(*good[:3])
    with pytest.raises(ValueError, match=r"parameter 1 \('A'\) must have shape \(3, 5\)"):
        layer(good[0], good[1].T, good[2], good[3])
    bad = good[0].clone()
    bad[2] = float("nan")
    with pytest.raises(ValueError, match=r"parameter 0 \('c'\) must be finite; found nan"):
        layer(bad, *good[1:])
    with pytest.raises(ValueError, match="batch dimensions of the parameters disagree"):
        layer(good[0].expand(2, -1), good[1].expand(3, -1, -1), good[2], good[3])
    with pytest.raises(ValueError, match="batch is empty"):
        layer(good[0][None][:0], *good[1:])


def test_infeasible_and_unbounded_items_are_named():
    problem, _, params = random_family()
    layer = CvxpyLayer(problem, parameters=params)
    batch = draw(np.random.default_rng(1), batch=3)
    # Item 2: A x <= b < 0 with A >= 0 and x >= 0 has no solution.
    batch[2][2] = -np.ones(3)
    inputs = as_tensors(batch, requires_grad=False)
    with pytest.raises(solvers.InfeasibleError, match="batch item 2"):
        layer(*inputs)
    x = cp.Variable(2)
    c = cp.Parameter(2)
    unbounded = CvxpyLayer(cp.Problem(cp.Minimize(c @ x), [x >= 0]), parameters=[c])
    with pytest.raises(solvers.UnboundedError, match="batch item 1"):
        unbounded(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
    with pytest.raises(solvers.UnboundedError, match="CvxpyLayer"):
        unbounded(torch.tensor([1.0, -1.0]))


# ----------------------------------------------------------------------------- solution mode


def selection_problem(sense=cp.Minimize):
    """Choose 2 of 4 items (an LP with integral vertices); the cap k enters the constraints."""
    x = cp.Variable(4, name="x")
    c = cp.Parameter(4, name="c")
    k = cp.Parameter(name="k")
    problem = cp.Problem(sense(c @ x), [cp.sum(x) == 2, x >= 0, x <= k])
    return problem, x, c, k


METHOD_OPTIONS = {
    "perturbed": {"sigma": 0.5, "n_samples": 16},
    "blackbox": {"lambda_": 2.0},
    "imle": {"lambda_": 2.0, "n_samples": 2},
    "nid": {},
}


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
@pytest.mark.parametrize("sense", [cp.Minimize, cp.Maximize])
def test_solution_mode_is_the_argmin_method_on_the_compiled_costs(method, sense):
    """The layer = combgrad.argmin.<method>(compiled costs, Oracle over the feasible set)."""
    from combgrad import argmin

    problem, x, c, k = selection_problem(sense)
    C = torch.tensor([[0.3, -1.0, 2.0, 0.1], [1.0, 0.2, -0.5, 3.0]], dtype=torch.float64)
    options = dict(METHOD_OPTIONS[method])
    if method in ("perturbed", "imle"):
        options["generator"] = torch.Generator().manual_seed(3)
    layer = CvxpyLayer(
        problem, [c, k], [x], output="solution", method=method, method_options=options
    )
    ct = C.clone().requires_grad_(True)
    (xs,) = layer(ct, torch.tensor(1.0))
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    (xs * weights).sum().backward()

    plp = ParametricLP(problem, [c, k])
    lp = plp.linear_program(plp.theta([C[0].numpy(), np.array(1.0)]))
    if method in ("perturbed", "imle"):
        options["generator"] = torch.Generator().manual_seed(3)
    compiled = (C if sense is cp.Minimize else -C).clone().requires_grad_(True)
    ref = getattr(argmin, method)(compiled, solvers.Oracle.from_problem(lp), **options)
    (ref * weights).sum().backward()
    torch.testing.assert_close(xs, ref.detach())
    sign = 1.0 if sense is cp.Minimize else -1.0
    torch.testing.assert_close(ct.grad, sign * compiled.grad)
    if method in ("blackbox", "nid"):  # their forward is the exact solution: cvxpy's
        for i in range(2):
            cvxpy_value(problem, [c, k], [C[i].numpy(), 1.0])
            np.testing.assert_allclose(xs[i].detach().numpy(), x.value, atol=1e-8)


def test_solution_mode_with_per_item_constraints_matches_loop():
    problem, x, c, k = selection_problem()
    layer = CvxpyLayer(problem, [c, k], [x], output="solution", method="blackbox")
    C = torch.tensor([[0.3, -1.0, 2.0, 0.1], [1.0, 0.2, -0.5, 3.0]], requires_grad=True)
    K = torch.tensor([0.5, 1.0])
    (xs,) = layer(C, K)
    (xs[:, 0] - xs[:, 2]).sum().backward()
    for i in range(2):
        ci = C[i].detach().clone().requires_grad_(True)
        (xi,) = layer(ci, K[i])
        (xi[0] - xi[2]).backward()
        torch.testing.assert_close(xs[i].detach(), xi.detach())
        torch.testing.assert_close(C.grad[i], ci.grad)
    cvxpy_value(problem, [c, k], [C[0].detach().numpy(), 0.5])
    np.testing.assert_allclose(xs[0].detach().numpy(), x.value, atol=1e-8)


def test_solution_mode_refuses_constraint_parameter_gradients():
    problem, x, c, k = selection_problem()
    layer = CvxpyLayer(problem, [c, k], [x], output="solution", method="nid")
    with pytest.raises(ValueError, match=r"\['k'\] enter the constraints"):
        layer(torch.zeros(4, requires_grad=True), torch.tensor(1.0, requires_grad=True))
    # A parameter in both the objective and the constraints is refused too.
    y = cp.Variable(2)
    p = cp.Parameter(name="p")
    both = cp.Problem(cp.Minimize(p * y[0] - y[1]), [y >= 0, y <= p, cp.sum(y) <= 1.5])
    layer = CvxpyLayer(both, [p], [y], output="solution", method="nid")
    with pytest.raises(ValueError, match=r"\['p'\] enter the constraints"):
        layer(torch.tensor(1.0, requires_grad=True))
    (ys,) = layer(torch.tensor(1.0))  # detached: solved, not differentiated
    np.testing.assert_allclose(ys.numpy(), [0.0, 1.0], atol=1e-9)


def test_solution_mode_infeasible_item_is_named():
    problem, x, c, k = selection_problem()
    layer = CvxpyLayer(problem, [c, k], [x], output="solution", method="blackbox")
    with pytest.raises(solvers.InfeasibleError, match="batch item 1"):
        layer(torch.zeros(2, 4), torch.tensor([1.0, 0.25]))  # sum(x) == 2 with x <= 0.25


def test_stacked_block_lp_matches_item_by_item():
    """stack=k solves k items as one block-diagonal LP; same values and gradients."""
    problem, _, params = random_family(cp.Minimize)
    batch = draw(np.random.default_rng(12), batch=5)
    results = []
    for stack in (1, 2, 64):
        layer = CvxpyLayer(problem, parameters=params, stack=stack)
        inputs = as_tensors(batch)
        z = layer(*inputs)
        z.sum().backward()
        results.append((z.detach(), [t.grad for t in inputs]))
    for z, grads in results[1:]:
        torch.testing.assert_close(z, results[0][0], rtol=1e-9, atol=1e-9)
        for g, g0 in zip(grads, results[0][1]):
            torch.testing.assert_close(g, g0, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="`stack` must be a positive integer"):
        CvxpyLayer(problem, parameters=params, stack=0)


def test_constant_single_variable_rows_become_bounds_parametric_ones_stay_rows():
    x = cp.Variable(3, name="x")
    c = cp.Parameter(3, name="c")
    k = cp.Parameter(name="k")
    problem = cp.Problem(
        cp.Minimize(c @ x), [x >= -1, 2 * x[0] <= 3, x[1] <= k, cp.sum(x) == 1, -x[2] >= -2]
    )
    plp = ParametricLP(problem, [c, k])
    np.testing.assert_allclose(plp.bounds, [[-1, 1.5], [-1, np.inf], [-1, 2]])
    assert plp.n_ub == 1 and plp.n_eq == 1  # only x[1] <= k is left as a row
    layer = CvxpyLayer(problem, parameters=[c, k])
    ct = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    kt = torch.tensor(1.2, dtype=torch.float64, requires_grad=True)
    assert layer(ct, kt).item() == pytest.approx(
        cvxpy_value(problem, [c, k], [ct.detach().numpy(), 1.2]), rel=VALUE_RTOL
    )
    assert torch.autograd.gradcheck(layer, (ct, kt))


# ----------------------------------------------------------------------------- docs


def _python_blocks(text: str) -> list[str]:
    import re
    import textwrap

    return [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", text, re.S)]


def test_docs_page_code_blocks_run_and_print_what_they_claim(capsys):
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "cvxpy.md"
    blocks = _python_blocks(page.read_text())
    assert len(blocks) == 4
    spaces = []
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, str(page), "exec"), namespace)
        spaces.append(namespace)
    first = spaces[0]
    torch.testing.assert_close(first["v"].detach(), torch.tensor([4.0, 1.4]))
    torch.testing.assert_close(first["c_t"].grad, torch.tensor([[1, 0, 0.5], [1, 0.5, 0]]))
    assert first["budget_t"].grad.item() == pytest.approx(2.8)
    last = spaces[3]
    assert last["solution"].objective == pytest.approx(-7.0)
    assert last["mapping"].objective(last["solution"]) == pytest.approx(8.0)
    assert float(last["mapping"].duals(last["solution"])[last["budget"]]) == pytest.approx(1.0)


def test_docstring_examples_run():
    import combgrad.cvxpy_layer
    import solvers.cvxpy_parametric

    for doc in (combgrad.cvxpy_layer.CvxpyLayer.__doc__, solvers.cvxpy_parametric.__doc__):
        (block,) = _python_blocks(doc)
        namespace: dict = {}
        exec(block, namespace)
    torch.testing.assert_close(
        namespace["plp"].value_gradient(
            namespace["theta"], namespace["sol"].x, namespace["sol"].duals_eq, None
        ),
        np.array([3.0, 0.0, 1.0]),
    )


def test_kept_stacked_model_follows_changed_constraint_data():
    """Only c batched: the stacked model is kept across calls, and rebuilt when b changes."""
    problem, _, params = random_family(cp.Minimize)
    layer = CvxpyLayer(problem, parameters=params)
    rng = np.random.default_rng(21)
    c = rng.normal(size=(3, 5))
    for _ in range(2):
        _, A, b, e = draw(rng)
        for repeat in range(2):  # the second call re-solves the kept model
            z = layer(*as_tensors([c, A, b, e], requires_grad=False))
            for i in range(3):
                expected = cvxpy_value(problem, params, [c[i], A, b, e])
                assert z[i].item() == pytest.approx(expected, rel=VALUE_RTOL), repeat


def test_problem_without_parameters():
    x = cp.Variable(2)
    layer = CvxpyLayer(cp.Problem(cp.Minimize(x[0] + 2 * x[1] + 3), [cp.sum(x) == 1, x >= 0]), [])
    z, (xv,) = layer(return_variables=True)
    assert z.item() == pytest.approx(4.0)
    np.testing.assert_allclose(xv.numpy(), [1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("vary", ["objective", "constraints"])
def test_stacks_solved_on_threads_give_the_serial_results(vary):
    """Several stacks per call, solved at the same time on threads: the same values and
    gradients as one after the other, call after call (kept models, one per stack)."""
    problem, _, params = random_family(cp.Minimize)
    batch = draw(np.random.default_rng(31), batch=7)
    if vary == "objective":  # only c batched: the kept stacked models are re-solved
        batch = [batch[0]] + [b[0] for b in batch[1:]]
    results = {}
    for threads in (1, 2, 4):
        layer = CvxpyLayer(problem, parameters=params, stack=2, threads=threads)
        for call in range(2):
            inputs = as_tensors(batch)
            z = layer(*inputs)
            z.sum().backward()
            results[threads, call] = (z.detach(), [t.grad for t in inputs])
    serial_z, serial_grads = results[1, 0]
    for z, grads in results.values():
        torch.testing.assert_close(z, serial_z, rtol=0, atol=0)
        for g, g0 in zip(grads, serial_grads):
            torch.testing.assert_close(g, g0, rtol=0, atol=0)
    for i in range(7):
        item = [batch[0][i]] + [b if vary == "objective" else b[i] for b in batch[1:]]
        assert serial_z[i].item() == pytest.approx(
            cvxpy_value(problem, params, item), rel=VALUE_RTOL
        )
    with pytest.raises(ValueError, match="`threads` must be a positive integer or None"):
        CvxpyLayer(problem, parameters=params, threads=0)
