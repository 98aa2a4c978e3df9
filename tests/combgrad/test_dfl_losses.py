"""SPO+, perturbed Fenchel-Young, NCE and regret: closed forms on enumerable polytopes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

import solvers
from combgrad.argmin import blackbox, perturbed, sample_noise
from combgrad.losses import (
    FenchelYoungLoss,
    NCELoss,
    SPOPlusLoss,
    fenchel_young_loss,
    nce_loss,
    spo_plus_loss,
)
from combgrad.metrics import regret

from ._dfl_oracles import NaNOracle, VertexOracle, box, grid_edges, grid_paths, simplex


def _z(oracle, costs: np.ndarray) -> np.ndarray:
    """Optimal values by exhaustive enumeration."""
    return (costs @ oracle.vertices.T).min(axis=1)


def _grid_lp(height: int, width: int) -> solvers.LinearProgram:
    """The grid shortest path as a flow LP (in - out = -1 at the source, +1 at the sink)."""
    edges = grid_edges(height, width)
    a = np.zeros((height * width, len(edges)))
    for k, (u, v) in enumerate(edges):
        a[u, k] -= 1.0
        a[v, k] += 1.0
    b = np.zeros(height * width)
    b[0], b[-1] = -1.0, 1.0
    return solvers.LinearProgram(np.zeros(len(edges)), A_eq=a, b_eq=b, bounds=(0, 1))


# ---------------------------------------------------------------- SPO+


def test_spo_plus_value_and_subgradient_match_enumeration():
    oracle = grid_paths(3, 4)
    rng = np.random.default_rng(0)
    c = rng.uniform(0.1, 1.0, (6, oracle.n))
    theta = torch.from_numpy(rng.uniform(-0.5, 1.0, (6, oracle.n))).requires_grad_(True)
    loss = spo_plus_loss(theta, torch.from_numpy(c), oracle, reduction="none")
    loss.sum().backward()
    t = theta.detach().numpy()
    y, _ = oracle.solve(c)
    x_w, _ = oracle.solve(2 * t - c)
    expected = -_z(oracle, 2 * t - c) + 2 * (t * y).sum(1) - _z(oracle, c)
    # atol: the loss is computed as w @ (y - x*(w)), exactly 0 where x*(w) = y; the
    # three-term formula here leaves a rounding residue of ~1e-16 there.
    np.testing.assert_allclose(loss.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(theta.grad.numpy(), 2 * (y - x_w))
    assert np.abs(theta.grad.numpy()).sum() > 0


def test_spo_plus_is_zero_with_zero_gradient_at_the_truth_and_bounds_the_regret():
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(1)
    c = torch.from_numpy(rng.uniform(0.1, 1.0, (5, oracle.n)))
    theta = c.clone().requires_grad_(True)
    loss = spo_plus_loss(theta, c, oracle, reduction="sum")
    loss.backward()
    assert abs(float(loss.detach())) < 1e-12 and float(theta.grad.abs().max()) == 0.0
    for _ in range(20):
        pred = torch.from_numpy(rng.normal(size=(5, oracle.n)))
        per_item = spo_plus_loss(pred, c, oracle, reduction="none")
        regrets = [regret(pred[i], c[i], oracle, normalized=False) for i in range(5)]
        assert np.all(per_item.numpy() >= np.array(regrets) - 1e-12)
        assert min(regrets) >= 0


def test_spo_plus_is_convex_subgradient_inequality():
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(2)
    c = torch.from_numpy(rng.uniform(0.1, 1.0, oracle.n))
    for _ in range(30):
        a = torch.from_numpy(rng.normal(size=oracle.n)).requires_grad_(True)
        b = torch.from_numpy(rng.normal(size=oracle.n))
        la = spo_plus_loss(a, c, oracle)
        la.backward()
        la = la.detach()
        lb = spo_plus_loss(b, c, oracle)
        assert float(lb) >= float(la) + float(a.grad @ (b - a.detach())) - 1e-10


def test_spo_plus_gradcheck_in_all_three_inputs():
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(3)
    theta = torch.from_numpy(rng.uniform(0, 1, (2, oracle.n))).requires_grad_(True)
    c = torch.from_numpy(rng.uniform(0, 1, (2, oracle.n))).requires_grad_(True)
    y = torch.from_numpy(oracle.solve(c.detach().numpy())[0]).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t, cc, yy: spo_plus_loss(t, cc, oracle, yy, reduction="none"),
        (theta, c, y),
        eps=1e-6,
    )


def test_spo_plus_given_true_solutions_saves_a_call_and_agrees():
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(4)
    c = torch.from_numpy(rng.uniform(0.1, 1.0, (4, oracle.n)))
    theta = torch.from_numpy(rng.normal(size=(4, oracle.n)))
    y = torch.from_numpy(oracle.solve(c.numpy())[0])
    oracle.calls = 0
    with_y = SPOPlusLoss(oracle)(theta, c, y)
    assert oracle.calls == 1
    without = SPOPlusLoss(oracle)(theta, c)
    assert oracle.calls == 3
    assert float(with_y) == float(without)


# ---------------------------------------------------------------- Fenchel-Young


def test_fenchel_young_gradient_is_target_minus_expected_solution():
    sigma = 0.5
    theta = torch.tensor([[0.0, 0.3, 1.0, -0.2], [1.0, 1.0, 0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    theta.requires_grad_(True)
    loss = fenchel_young_loss(
        theta, y, simplex(4), sigma, 100_000, "gumbel", torch.Generator().manual_seed(0), "sum"
    )
    loss.backward()
    expected = y.numpy() - softmax(-theta.detach().numpy() / sigma, axis=1)
    np.testing.assert_allclose(theta.grad.numpy(), expected, atol=0.006)


def test_fenchel_young_loss_is_nonnegative_and_bounds_the_perturbed_value():
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(5)
    theta = torch.from_numpy(rng.normal(size=(8, oracle.n)))
    y = torch.from_numpy(oracle.solve(rng.uniform(0, 1, (8, oracle.n)))[0])
    sigma, samples = 0.7, 20_000
    loss = fenchel_young_loss(
        theta, y, oracle, sigma, samples, "normal", torch.Generator().manual_seed(1), "none"
    )
    assert loss.shape == (8,) and float(loss.min()) >= 0
    # the same draws: F_hat = theta.y + sigma mean(Z).y - loss must satisfy F_sigma <= z*(theta)
    z = sample_noise((samples, 8, oracle.n), "normal", torch.Generator().manual_seed(1))
    f_hat = ((theta + sigma * z.mean(0)) * y).sum(1) - loss
    assert np.all(f_hat.numpy() <= _z(oracle, theta.numpy()) + 1e-9)
    assert np.all(f_hat.numpy() < _z(oracle, theta.numpy()) - 0.05)  # strictly smoothed


def test_fenchel_young_gradcheck_with_fixed_noise():
    """With the noise fixed, the sample loss is piecewise linear and y - mean x_s its gradient."""
    oracle = grid_paths(3, 3)
    rng = np.random.default_rng(6)
    theta = torch.from_numpy(rng.normal(size=(2, oracle.n))).requires_grad_(True)
    y = torch.from_numpy(oracle.solve(rng.uniform(0, 1, (2, oracle.n)))[0]).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda t, yy: FenchelYoungLoss(
            oracle, 0.5, 3, generator=torch.Generator().manual_seed(2), reduction="none"
        )(t, yy),
        (theta, y),
        eps=1e-6,
    )


# ---------------------------------------------------------------- NCE


def test_nce_value_and_gradient():
    theta = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pool = torch.eye(3)
    loss = nce_loss(theta, y, pool, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [1.0 - 2.0, -1.0 + 0.5 / 3])
    loss.sum().backward()
    np.testing.assert_allclose(theta.grad.numpy(), (y - 1 / 3).numpy())
    best = nce_loss(theta, y, pool, contrast="best", reduction="none")
    np.testing.assert_allclose(best.detach().numpy(), [0.0, 0.0])  # y is optimal and in the pool


def test_nce_pool_grows_with_targets_and_solved_predictions():
    oracle = grid_paths(3, 3)
    targets = torch.from_numpy(oracle.vertices[[0, 1, 1]])
    crit = NCELoss(oracle, solution_pool=targets[:1], solve_ratio=0.0)
    theta = torch.zeros(3, oracle.n, dtype=torch.float64)
    theta[:, :] = torch.from_numpy(oracle.vertices[5]) * -1.0  # x*(theta) = vertex 5
    crit(theta, targets)
    assert len(crit.pool) == 2 and oracle.calls == 0
    crit = NCELoss(oracle, solution_pool=targets, solve_ratio=1.0)
    crit(theta, targets)
    assert len(crit.pool) == 3 and oracle.calls == 1


# ---------------------------------------------------------------- regret


def test_regret_matches_its_definition():
    oracle = simplex(3)
    true = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, -4.0], [1.0, 0.5, 0.7]])
    pred = np.array([[2.0, 1.0, 3.0], [0.0, 1.0, 2.0], [0.0, 1.0, 1.0]])
    # per item: 2 - 1, 2 - (-4), 1 - 0.5; optimal values 1, -4, 0.5
    assert regret(pred, true, oracle, normalized=False) == pytest.approx(7.5)
    assert regret(pred, true, oracle) == pytest.approx(7.5 / 5.5)
    y = torch.from_numpy(oracle.solve(true)[0])
    assert regret(torch.from_numpy(pred), torch.from_numpy(true), oracle, true_solutions=y) == (
        pytest.approx(7.5 / 5.5)
    )
    assert regret(true, true, oracle) == 0.0


def test_maximization_by_negated_costs():
    """Knapsack-like: pick 2 of 4 items of maximal value = minimize negated value."""
    vertices = np.array([v for v in box(4).vertices if v.sum() == 2])
    oracle = VertexOracle(vertices)
    value = np.array([[4.0, 1.0, 3.0, 2.0]])
    pred_value = np.array([[1.0, 4.0, 3.0, 2.0]])  # picks items 1 and 2: true value 4
    best = 7.0  # items 0 and 2
    assert regret(-pred_value, -value, oracle) == pytest.approx((best - 4.0) / best)
    theta = torch.from_numpy(-pred_value).requires_grad_(True)
    spo_plus_loss(theta, torch.from_numpy(-value), oracle).backward()
    # descent lowers the cost (raises the value) of item 0 and raises the cost of item 1
    np.testing.assert_array_equal(theta.grad.numpy(), [[2.0, -2.0, 0.0, 0.0]])


# ---------------------------------------------------------------- training lowers the regret


def _toy_data(oracle, n_items: int, seed: int):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_items, 3))
    weights = rng.normal(size=(3, oracle.n))
    costs = np.exp(0.5 * features @ weights) + 0.1 * rng.uniform(size=(n_items, oracle.n))
    return torch.from_numpy(features), torch.from_numpy(costs)


@pytest.mark.parametrize("method", ["spo+", "pfyl", "nce", "dbb"])
def test_gradient_descent_lowers_the_regret(method):
    oracle = grid_paths(3, 4)
    feats, costs = _toy_data(oracle, 64, seed=7)
    sols = torch.from_numpy(oracle.solve(costs.numpy())[0])
    torch.manual_seed(0)
    model = torch.nn.Linear(3, oracle.n).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(0)
    nce = NCELoss(oracle, solution_pool=sols, contrast="best")

    def loss_fn(pred):
        if method == "spo+":
            return spo_plus_loss(pred, costs, oracle, sols)
        if method == "pfyl":
            return fenchel_young_loss(pred, sols, oracle, sigma=0.5, generator=gen)
        if method == "nce":
            return nce(pred, sols)
        return ((blackbox(pred, oracle, lambda_=5.0) - sols) ** 2).mean()

    before = regret(model(feats), costs, oracle)
    for _ in range(60):
        opt.zero_grad()
        loss_fn(model(feats)).backward()
        opt.step()
    after = regret(model(feats), costs, oracle)
    assert after < 0.5 * before, (before, after)


# ---------------------------------------------------------------- oracles from solvers


def test_lp_oracle_and_enumeration_give_the_same_solutions_and_gradients():
    lp_oracle = solvers.Oracle.from_problem(_grid_lp(3, 3))
    enum_oracle = grid_paths(3, 3)
    rng = np.random.default_rng(8)
    theta = torch.from_numpy(rng.uniform(0.1, 1.0, (5, 12)))
    g = torch.from_numpy(rng.normal(size=(5, 12)))
    grads = []
    for oracle in (lp_oracle, enum_oracle):
        t = theta.clone().requires_grad_(True)
        x = blackbox(t, oracle, lambda_=2.0)
        x.backward(g)
        grads.append((x.detach(), t.grad, spo_plus_loss(theta, theta.flip(0), oracle)))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])
    torch.testing.assert_close(grads[0][2], grads[1][2])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", ["pred_costs", "true_costs", "true_solutions"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_spo_plus_names_a_non_finite_input_on_its_fast_path(bad, value):
    # With true solutions given, values are checked inside the Function (through
    # w = 2 pred - true and the losses); the error must still name the argument.
    o = simplex(3)
    args = {"pred_costs": torch.ones(2, 3), "true_costs": torch.ones(2, 3)}
    args["true_solutions"] = torch.eye(3)[:2]
    args[bad] = args[bad].clone()
    args[bad][1, 2] = value
    with pytest.raises(ValueError, match=f"`{bad}` must be finite"):
        spo_plus_loss(args["pred_costs"], args["true_costs"], o, args["true_solutions"])


def test_bad_loss_inputs_are_clear_errors():
    o = simplex(3)
    a = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"`true_costs` must have the shape of `pred_costs`"):
        spo_plus_loss(a, torch.zeros(3, 3), o)
    with pytest.raises(ValueError, match=r"`true_costs` must be finite; found inf"):
        spo_plus_loss(a, torch.tensor([[0.0, float("inf"), 0.0]] * 2), o)
    with pytest.raises(ValueError, match=r"`pred_costs` must have shape \(B, n\)"):
        SPOPlusLoss(o)(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        SPOPlusLoss(o, reduction="avg")
    with pytest.raises(ValueError, match="`sigma` must be positive"):
        FenchelYoungLoss(o, sigma=-1.0)
    with pytest.raises(ValueError, match=r"`true_solutions` must have the shape"):
        fenchel_young_loss(a, torch.zeros(3), o)
    with pytest.raises(ValueError, match=r"`solve_ratio` must be in \[0, 1\]"):
        NCELoss(o, solve_ratio=2.0)
    with pytest.raises(ValueError, match=r"`pool` must be a \(P, n\) tensor with P >= 1"):
        nce_loss(a, a, torch.zeros(0, 3))
    with pytest.raises(
        ValueError, match=r"`pred_costs` must have shape \(B, n\) or \(n,\) with n = oracle.n = 3"
    ):
        nce_loss(torch.zeros(2, 4), a, torch.eye(3))
    with pytest.raises(ValueError, match="`contrast` must be one of"):
        NCELoss(o, contrast="max")
    with pytest.raises(ValueError, match="non-finite solution for item 1"):
        spo_plus_loss(a, torch.ones(2, 3), NaNOracle())
    with pytest.raises(ValueError, match="optimal values z\\*\\(true_costs\\) are all zero"):
        regret(np.ones((2, 3)), np.zeros((2, 3)), o)
    with pytest.raises(ValueError, match=r"`pred_costs` must be finite; found nan"):
        regret(np.full((1, 3), np.nan), np.ones((1, 3)), o)


def test_infeasible_problem_oracle_raises_its_error_through_every_method():
    lp = solvers.LinearProgram([0.0, 0.0], A_eq=[[1.0, 1.0], [1.0, 1.0]], b_eq=[1.0, 2.0])
    oracle = solvers.Oracle.from_problem(lp)
    costs = torch.ones(2, 2)
    with pytest.raises(solvers.InfeasibleError):
        blackbox(costs, oracle)
    with pytest.raises(solvers.InfeasibleError):
        fenchel_young_loss(costs, torch.zeros(2, 2), oracle)
    with pytest.raises(solvers.InfeasibleError):
        regret(costs, costs, oracle)


def _structures():
    import solvers.oracles as oracles  # (`from solvers import oracles` returns solvers.combinatorial)

    weights = np.array([[3.0, 4.0, 2.0, 5.0, 1.0, 3.0]])
    return {
        "grid": oracles.grid_shortest_path(3, 4),
        "assignment": oracles.assignment(3, 3),
        "top_k": oracles.top_k(6, 2),
        "knapsack": oracles.knapsack(weights, [8.0]),
    }


@pytest.mark.parametrize("name", ["grid", "assignment", "top_k", "knapsack"])
def test_fast_oracles_and_their_lp_path_agree_through_every_method(name):
    """Generic random costs (no ties): both paths give the same decisions and gradients."""
    fast = _structures()[name]
    slow = solvers.Oracle.from_problem(fast.to_problem())
    rng = np.random.default_rng(9)
    sign = -1.0 if name == "knapsack" else 1.0  # knapsack maximizes value: negated costs
    theta = torch.from_numpy(sign * rng.uniform(0.1, 1.0, (4, fast.n)))
    c = torch.from_numpy(sign * rng.uniform(0.1, 1.0, (4, fast.n)))
    g = torch.from_numpy(rng.normal(size=(4, fast.n)))
    results = []
    for oracle in (fast, slow):
        out = []
        for fn in (
            lambda t, o=oracle: blackbox(t, o, lambda_=0.5),
            lambda t, o=oracle: perturbed(t, o, 0.3, 5, generator=torch.Generator().manual_seed(0)),
        ):
            t = theta.clone().requires_grad_(True)
            x = fn(t)
            x.backward(g)
            out += [x.detach(), t.grad]
        t = theta.clone().requires_grad_(True)
        spo_plus_loss(t, c, oracle).backward()
        out += [t.grad, torch.tensor(regret(theta, c, oracle))]
        results.append(out)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-7)
