r"""Local elasticity of neural networks: similarity matrices and elastic clustering.

He & Su, "The Local Elasticity of Neural Networks", ICLR 2020 (arXiv 1910.06943).

A model is *locally elastic* when one SGD step taken at a labelled point $x$ changes the
prediction at another point $x'$ a lot if $x'$ is similar to $x$ and little
otherwise. With the step

$$
w^+ = w - \eta \, \nabla_w L(f(x, w), y),
$$

the paper defines the *relative* similarity

$$
S_\text{rel}(x, x') = \frac{|f(x', w^+) - f(x', w)|}{|f(x, w^+) - f(x, w)|}
$$

and the *kernelized* similarity

$$
S_\text{ker}(x, x') = \frac{f(x', w^+) - f(x', w)}{-\eta \, \partial L / \partial f (x, w)}
\xrightarrow[\eta \to 0]{} \langle \nabla_w f(x, w), \nabla_w f(x', w) \rangle,
$$

whose small-step limit is the neural tangent kernel. Both are computed here for every training
point at once: per-sample gradients by `torch.func.vmap` over `torch.func.grad`, and
the predictions of all stepped copies of the model by a second `vmap` over the parameters,
in chunks of training points (never a Python loop over pairs of points).

The clustering pipeline ([`elastic_clustering`][combgrad.analysis.elastic_clustering]) follows the paper's public code: train a
two-layer network with MSE loss to separate a *primary* set (the two classes to be clustered,
both labelled 1) from an *auxiliary* set (labelled 0), build the similarity of the primary points
at the trained weights, symmetrise it, and split it into two clusters with K-means on its rows,
spectral clustering (precomputed affinity) or kernel K-means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

__all__ = [
    "ElasticClusteringResult",
    "cluster_similarity",
    "clustering_accuracy",
    "elastic_clustering",
    "kernel_kmeans",
    "local_elasticity_similarity",
    "neural_tangent_kernel",
    "train_elastic_classifier",
]

SimilarityKind = Literal["relative", "kernel"]
ClusterMethod = Literal["kmeans", "spectral", "kernel_kmeans"]

# Each retry of a point whose step left its own prediction unchanged multiplies its step size
# by this factor, as in the paper's code (float32 round-off can swallow a tiny step).
_LR_GROWTH = 3.0
# Auto chunking keeps about this many parameter values for the stepped copies of the model.
_CHUNK_PARAM_BUDGET = 2**24
_MAX_AUTO_CHUNK = 32


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------
def _check_tensor(name: str, value: object, *, min_dim: int = 1) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() < min_dim:
        raise ValueError(f"`{name}` must have at least {min_dim} dimension(s), got {value.shape}")
    if value.shape[0] == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(value.shape)}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise ValueError(f"`{name}` must contain only finite values (found NaN or inf)")
    return value


def _check_positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"Invalid {name}: {value} (must be a positive finite number)")
    return float(value)


def _split_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Trainable parameters (the SGD step moves these) and everything else the forward needs."""
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    frozen.update({n: b.detach() for n, b in model.named_buffers()})
    if not params:
        raise ValueError("`model` has no parameters with requires_grad=True")
    return params, frozen


def _scalar_model(
    model: nn.Module, frozen: dict[str, Tensor]
) -> Callable[[dict[str, Tensor], Tensor], Tensor]:
    """`f(params, x_batch) -> (batch,)`: the model as a pure function of its parameters."""

    def f(params: dict[str, Tensor], x_batch: Tensor) -> Tensor:
        out = functional_call(model, (params, frozen), (x_batch,))
        return out.reshape(x_batch.shape[0])

    return f


def _check_scalar_output(model: nn.Module, x: Tensor) -> None:
    with torch.no_grad():
        out = model(x[:1])
    if out.numel() != 1:
        raise ValueError(
            "`model` must return one scalar per input (shape (n,) or (n, 1)); "
            f"for a batch of 1 it returned shape {tuple(out.shape)}"
        )


# --------------------------------------------------------------------------------------------
# similarity matrices
# --------------------------------------------------------------------------------------------
def local_elasticity_similarity(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    kind: SimilarityKind = "relative",
    lr: float = 1e-4,
    max_lr_increases: int = 12,
    chunk_size: int | None = None,
    symmetrize: bool = False,
) -> Tensor:
    r"""Local-elasticity similarity of every pair of training points (He & Su, 2020).

    Row `i` is obtained by one plain SGD step of size `lr` on the single point
    `(x[i], y[i])` from the model's current weights $w$, and reading the change
    $\Delta f_i(x_j) = f(x_j, w_i^+) - f(x_j, w)$ of the prediction at every point:

    * `kind="relative"`: $S_{ij} = |\Delta f_i(x_j)| / |\Delta f_i(x_i)|$, so
      $S_{ii} = 1$;
    * `kind="kernel"`: $S_{ij} = \Delta f_i(x_j) / (-\eta\, \ell'_i)$ with
      $\ell'_i = \partial L(f, y_i)/\partial f$ at $f = f(x_i, w)$. As
      `lr -> 0` this tends to the neural tangent kernel
      $\langle \nabla_w f(x_i), \nabla_w f(x_j) \rangle$ (see
      [`neural_tangent_kernel`][combgrad.analysis.neural_tangent_kernel]); the error is $O(\eta)$.

    The model's weights are not modified. When the step at a point leaves that point's own
    prediction exactly unchanged (round-off swallowed it), the step size of that row is
    multiplied by 3 and the row recomputed, up to `max_lr_increases` times, as in the
    authors' code; the kernel form divides by the step actually used.

    Args:
        model: network returning one scalar per input, shape `(n,)` or `(n, 1)` for an input
            batch `(n, ...)`. It must treat samples independently (no batch-norm in training
            mode, no dropout): it is evaluated through `torch.func.functional_call` under
            `torch.func.vmap`. All parameters with `requires_grad=True` take the step.
        loss_fn: per-point loss `loss_fn(prediction, target) -> scalar`, called with a
            prediction of shape `()` and the target `y[i]`, e.g. `torch.nn.MSELoss()`
            (the paper's choice).
        x: inputs, shape `(n, ...)`, finite, on the model's device and dtype.
        y: targets, shape `(n, ...)`; `y[i]` is passed to `loss_fn`.
        kind: `"relative"` or `"kernel"`.
        lr: SGD step size $\eta$ (positive). In float32 keep
            $\eta \cdot \ell' \cdot \|\nabla_w f\|^2$ well above `1e-6` times the
            prediction's magnitude, or round-off dominates the differences.
        max_lr_increases: how many times a row's step may be multiplied by 3 before giving up.
        chunk_size: number of training points whose stepped models are evaluated together
            (memory grows linearly with it); `None` picks one from the parameter count.
        symmetrize: return $(S + S^\top)/2$, as the paper does before clustering.

    Returns:
        Tensor of shape `(n, n)` (row = point where the step was taken, column = point whose
            prediction changed), in the dtype and on the device of the model's output.

    Raises:
        ValueError: on an unknown `kind`, a non-positive `lr`, empty or non-finite inputs,
            mismatched lengths, or a model that does not return one scalar per input.
        RuntimeError: when the step at some point never changes that point's prediction (its
            loss gradient is zero), so that its row is undefined.

    Example:
        ```python
        import torch
        from combgrad.analysis import local_elasticity_similarity

        net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.ReLU(),
                                  torch.nn.Linear(64, 1)).double()
        x, y = torch.randn(10, 3, dtype=torch.float64), torch.ones(10, dtype=torch.float64)
        S = local_elasticity_similarity(net, torch.nn.MSELoss(), x, y, kind="kernel")
        print(S.shape)  # torch.Size([10, 10])
        ```
    """
    if kind not in ("relative", "kernel"):
        raise ValueError(f"`kind` must be 'relative' or 'kernel', got {kind!r}")
    lr = _check_positive("learning rate", lr)
    if not isinstance(max_lr_increases, int) or max_lr_increases < 0:
        raise ValueError(f"`max_lr_increases` must be a non-negative int, got {max_lr_increases}")
    x = _check_tensor("x", x)
    y = _check_tensor("y", y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same length, got {x.shape[0]} and {y.shape[0]}"
        )
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"`chunk_size` must be a positive int or None, got {chunk_size}")
    _check_scalar_output(model, x)

    params, frozen = _split_state(model)
    f = _scalar_model(model, frozen)
    n = x.shape[0]
    if chunk_size is None:
        n_params = sum(p.numel() for p in params.values())
        chunk_size = max(1, min(_MAX_AUTO_CHUNK, _CHUNK_PARAM_BUDGET // n_params, n))

    with torch.no_grad():
        base = f(params, x)

    def point_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return loss_fn(f(p, xi.unsqueeze(0))[0], yi)

    per_sample_grad = vmap(grad(point_loss), in_dims=(None, 0, 0))

    def stepped_predictions(g: dict[str, Tensor], eta: Tensor) -> Tensor:
        # Predictions on all n points of the model after one SGD step with gradient g.
        return f({k: params[k] - eta * g[k] for k in params}, x)

    all_stepped = vmap(stepped_predictions, in_dims=(0, 0))

    # dL/df at every point, for the kernel normalisation -eta * dL/df.
    if kind == "kernel":
        loss_slope = vmap(grad(lambda fi, yi: loss_fn(fi, yi)))(base, y)

    rows = []
    for start in range(0, n, chunk_size):
        idx = torch.arange(start, min(start + chunk_size, n), device=x.device)
        g = per_sample_grad(params, x[idx], y[idx])
        eta = torch.full((idx.numel(),), lr, dtype=base.dtype, device=base.device)
        rows_in_chunk = torch.arange(idx.numel(), device=base.device)
        with torch.no_grad():
            delta = all_stepped(g, eta) - base
            stuck = delta[rows_in_chunk, idx] == 0
            for _ in range(max_lr_increases):
                if not bool(stuck.any()):
                    break
                eta[stuck] *= _LR_GROWTH
                retry = {k: v[stuck] for k, v in g.items()}
                delta[stuck] = all_stepped(retry, eta[stuck]) - base
                stuck = delta[rows_in_chunk, idx] == 0
        if bool(stuck.any()):
            bad = idx[stuck].tolist()
            raise RuntimeError(
                f"an SGD step at training point(s) {bad[:10]} does not change their own "
                f"prediction even with step {lr * _LR_GROWTH**max_lr_increases:g}: their loss "
                "gradient is zero, so their similarity row is undefined"
            )
        if kind == "relative":
            self_change = delta[rows_in_chunk, idx].abs()
            rows.append(delta.abs() / self_change[:, None])
        else:
            rows.append(delta / (-eta * loss_slope[idx])[:, None])
    similarity = torch.cat(rows, dim=0)
    if symmetrize:
        similarity = 0.5 * (similarity + similarity.T)
    return similarity


def neural_tangent_kernel(
    model: nn.Module, x: Tensor, x2: Tensor | None = None, *, chunk_size: int = 256
) -> Tensor:
    r"""Empirical neural tangent kernel $\langle \nabla_w f(x_i), \nabla_w f(x'_j) \rangle$.

    The inner product runs over all parameters with `requires_grad=True`; this is the
    `lr -> 0` limit of `local_elasticity_similarity(..., kind="kernel")`.

    Args:
        model: network returning one scalar per input (see [`local_elasticity_similarity`][combgrad.analysis.local_elasticity_similarity]).
        x: inputs, shape `(n, ...)`.
        x2: second set of inputs, shape `(m, ...)`; defaults to `x`.
        chunk_size: number of per-sample gradients held at once.

    Returns:
        Tensor of shape `(n, m)`.
    """
    x = _check_tensor("x", x)
    x2 = x if x2 is None else _check_tensor("x2", x2)
    if x2.shape[1:] != x.shape[1:]:
        raise ValueError(f"`x2` must have per-sample shape {tuple(x.shape[1:])}, got {x2.shape}")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive int, got {chunk_size}")
    _check_scalar_output(model, x)
    params, frozen = _split_state(model)
    f = _scalar_model(model, frozen)
    jac = vmap(grad(lambda p, xi: f(p, xi.unsqueeze(0))[0]), in_dims=(None, 0))

    def flat_jacobian(inputs: Tensor) -> Tensor:
        blocks = []
        for start in range(0, inputs.shape[0], chunk_size):
            g = jac(params, inputs[start : start + chunk_size])
            blocks.append(torch.cat([v.reshape(v.shape[0], -1) for v in g.values()], dim=1))
        return torch.cat(blocks, dim=0)

    j1 = flat_jacobian(x)
    j2 = j1 if x2 is x else flat_jacobian(x2)
    return (j1 @ j2.T).detach()


# --------------------------------------------------------------------------------------------
# clustering
# --------------------------------------------------------------------------------------------
def _as_numpy_square(name: str, matrix: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(matrix, Tensor):
        matrix = matrix.detach().cpu().numpy()
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"`{name}` must contain only finite values (found NaN or inf)")
    return matrix


def kernel_kmeans(
    kernel: Tensor | np.ndarray,
    n_clusters: int = 2,
    *,
    n_init: int = 10,
    max_iter: int = 100,
    seed: int = 0,
) -> np.ndarray:
    r"""Kernel K-means (Dhillon, Guan & Kulis, KDD 2004) on a precomputed kernel matrix.

    Minimises $\sum_i \|\phi(x_i) - \mu_{c(i)}\|^2$ in the feature space of the kernel,
    using $\|\phi_i - \mu_c\|^2 = K_{ii} - \tfrac{2}{|c|}\sum_{l \in c} K_{il}
    + \tfrac{1}{|c|^2}\sum_{l, m \in c} K_{lm}$. Each restart is seeded by kernel
    K-means++; the restart with the lowest objective is returned. scikit-learn has no kernel
    K-means, hence this small implementation.

    Args:
        kernel: symmetric matrix, shape `(n, n)` (need not be exactly PSD).
        n_clusters: number of clusters, `1 <= n_clusters <= n`.
        n_init: number of restarts.
        max_iter: maximum Lloyd iterations per restart.
        seed: seed of the restarts.

    Returns:
        Integer labels, shape `(n,)`, in `range(n_clusters)`.
    """
    K = _as_numpy_square("kernel", kernel)
    n = K.shape[0]
    if not isinstance(n_clusters, int) or not 1 <= n_clusters <= n:
        raise ValueError(f"`n_clusters` must be an int in [1, {n}], got {n_clusters}")
    if n_init < 1 or max_iter < 1:
        raise ValueError(f"`n_init` and `max_iter` must be >= 1, got {n_init}, {max_iter}")
    rng = np.random.default_rng(seed)
    diag = np.diag(K)
    sq_dist = diag[:, None] + diag[None, :] - 2.0 * K  # feature-space squared distances

    def distances(labels: np.ndarray) -> np.ndarray:
        onehot = np.zeros((n, n_clusters))
        onehot[np.arange(n), labels] = 1.0
        counts = onehot.sum(0)
        counts_safe = np.maximum(counts, 1.0)
        cross = K @ onehot / counts_safe
        within = np.einsum("ic,ij,jc->c", onehot, K, onehot) / counts_safe**2
        dist = diag[:, None] - 2.0 * cross + within[None, :]
        dist[:, counts == 0] = np.inf
        return dist

    best_labels, best_objective = None, np.inf
    for _ in range(n_init):
        # kernel K-means++ seeding
        centers = [int(rng.integers(n))]
        for _ in range(1, n_clusters):
            closest = np.maximum(sq_dist[:, centers].min(axis=1), 0.0)
            total = closest.sum()
            prob = closest / total if total > 0 else np.full(n, 1.0 / n)
            centers.append(int(rng.choice(n, p=prob)))
        labels = sq_dist[:, centers].argmin(axis=1)
        for _ in range(max_iter):
            new_labels = distances(labels).argmin(axis=1)
            if np.array_equal(new_labels, labels):
                break
            labels = new_labels
        objective = distances(labels)[np.arange(n), labels].sum()
        if objective < best_objective:
            best_labels, best_objective = labels, objective
    assert best_labels is not None
    return best_labels


def cluster_similarity(
    similarity: Tensor | np.ndarray,
    n_clusters: int = 2,
    *,
    method: ClusterMethod = "kmeans",
    seed: int = 0,
) -> np.ndarray:
    """Cluster points from a similarity matrix, as in the paper.

    Args:
        similarity: square matrix, shape `(n, n)`; symmetrised as $(S + S^T)/2$ first.
        n_clusters: number of clusters.
        method: `"kmeans"`: `sklearn.cluster.KMeans` on the rows of the matrix (the
            paper's use of the relative similarity); `"spectral"`:
            `sklearn.cluster.SpectralClustering` with the matrix as precomputed affinity
            (negative entries, which the kernel form can have, are clipped to 0 because an
            affinity must be non-negative); `"kernel_kmeans"`: [`kernel_kmeans`][combgrad.analysis.kernel_kmeans] with the
            matrix as kernel (the paper's use of the kernelized similarity).
        seed: random state of the clustering.

    Returns:
        Integer labels, shape `(n,)`.
    """
    S = _as_numpy_square("similarity", similarity)
    S = 0.5 * (S + S.T)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(S)
    if method == "spectral":
        from sklearn.cluster import SpectralClustering

        spectral = SpectralClustering(
            n_clusters=n_clusters,
            affinity="precomputed",
            n_init=100,
            assign_labels="discretize",
            random_state=seed,
        )
        return spectral.fit_predict(np.maximum(S, 0.0))
    if method == "kernel_kmeans":
        return kernel_kmeans(S, n_clusters, seed=seed)
    raise ValueError(f"`method` must be 'kmeans', 'spectral' or 'kernel_kmeans', got {method!r}")


def clustering_accuracy(
    labels_pred: np.ndarray | Tensor, labels_true: np.ndarray | Tensor
) -> float:
    """Accuracy of a clustering under the best matching of cluster ids to classes.

    For two clusters this is the paper's `0.5 + |acc - 0.5|`; for more it uses the Hungarian
    algorithm (`scipy.optimize.linear_sum_assignment`).

    Args:
        labels_pred: predicted cluster ids, shape `(n,)`.
        labels_true: true class ids, shape `(n,)`.

    Returns:
        Fraction of points in `[0, 1]`.
    """
    from scipy.optimize import linear_sum_assignment

    pred = np.asarray(labels_pred.cpu() if isinstance(labels_pred, Tensor) else labels_pred)
    true = np.asarray(labels_true.cpu() if isinstance(labels_true, Tensor) else labels_true)
    if pred.shape != true.shape or pred.ndim != 1 or pred.size == 0:
        raise ValueError(
            f"`labels_pred` and `labels_true` must be non-empty 1-D arrays of equal length, "
            f"got {pred.shape} and {true.shape}"
        )
    _, pred_ids = np.unique(pred, return_inverse=True)
    _, true_ids = np.unique(true, return_inverse=True)
    counts = np.zeros((pred_ids.max() + 1, true_ids.max() + 1))
    np.add.at(counts, (pred_ids, true_ids), 1.0)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / pred.size)


# --------------------------------------------------------------------------------------------
# the paper's pipeline
# --------------------------------------------------------------------------------------------
@dataclass
class ElasticClusteringResult:
    """Output of [`elastic_clustering`][combgrad.analysis.elastic_clustering].

    Attributes:
        labels: cluster id of each primary point, shape `(n_primary,)`.
        similarity: symmetrised similarity matrix of the primary points, `(n_primary,)*2`.
        model: the trained two-layer network.
        train_accuracy: accuracy of the network on primary-vs-auxiliary (threshold 0.5).
    """

    labels: np.ndarray
    similarity: np.ndarray
    model: nn.Module
    train_accuracy: float


def _two_layer_net(in_features: int, hidden_size: int, activation: str) -> nn.Sequential:
    if activation == "relu":
        nonlinearity: nn.Module = nn.ReLU()
    elif activation == "linear":
        nonlinearity = nn.Identity()
    else:
        raise ValueError(f"`activation` must be 'relu' or 'linear', got {activation!r}")
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden_size),
        nonlinearity,
        nn.Linear(hidden_size, 1),
        nn.Flatten(0),
    )


def train_elastic_classifier(
    x_primary: Tensor,
    x_auxiliary: Tensor,
    *,
    activation: Literal["relu", "linear"] = "relu",
    hidden_size: int = 4096,
    epochs: int = 200,
    batch_size: int = 50,
    lr: float | None = None,
    seed: int = 0,
) -> tuple[nn.Module, float]:
    """Train the paper's two-layer network: MSE to 1 on primary points, to 0 on auxiliary ones.

    Plain minibatch SGD, as in the authors' code (there: width 40960, lr 3e-3 for ReLU and 3e-5
    for the linear network, batch 50, 200 epochs).

    Args:
        x_primary: primary inputs, shape `(n_primary, ...)`.
        x_auxiliary: auxiliary inputs, shape `(n_auxiliary, ...)` with the same sample shape.
        activation: `"relu"` or `"linear"` (identity hidden layer: the paper's control).
        hidden_size: width of the hidden layer.
        epochs: passes over the data.
        batch_size: minibatch size.
        lr: SGD step size; `None` means 3e-3 for ReLU and 3e-5 for linear, the paper's values.
        seed: seed of the initialisation and of the shuffling.

    Returns:
        `(model, train_accuracy)`.
    """
    x_primary = _check_tensor("x_primary", x_primary, min_dim=2)
    x_auxiliary = _check_tensor("x_auxiliary", x_auxiliary, min_dim=2)
    if x_primary.shape[1:] != x_auxiliary.shape[1:]:
        raise ValueError(
            "`x_primary` and `x_auxiliary` must have the same sample shape, got "
            f"{tuple(x_primary.shape[1:])} and {tuple(x_auxiliary.shape[1:])}"
        )
    if lr is None:
        lr = 3e-3 if activation == "relu" else 3e-5
    lr = _check_positive("learning rate", lr)
    for name, value in (
        ("hidden_size", hidden_size),
        ("epochs", epochs),
        ("batch_size", batch_size),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value}")

    torch.manual_seed(seed)
    in_features = math.prod(x_primary.shape[1:])
    model = _two_layer_net(in_features, hidden_size, activation)
    model = model.to(device=x_primary.device, dtype=x_primary.dtype)
    inputs = torch.cat([x_primary, x_auxiliary])
    targets = torch.cat(
        [x_primary.new_ones(x_primary.shape[0]), x_primary.new_zeros(x_auxiliary.shape[0])]
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(inputs.shape[0], generator=generator).to(inputs.device)
        for start in range(0, inputs.shape[0], batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = ((model(inputs) >= 0.5).to(targets.dtype) == targets).float().mean().item()
    return model, accuracy


def elastic_clustering(
    x_primary: Tensor,
    x_auxiliary: Tensor,
    *,
    kind: SimilarityKind = "relative",
    method: ClusterMethod | None = None,
    activation: Literal["relu", "linear"] = "relu",
    hidden_size: int = 4096,
    epochs: int = 200,
    batch_size: int = 50,
    train_lr: float | None = None,
    similarity_lr: float = 1e-5,
    n_clusters: int = 2,
    seed: int = 0,
) -> ElasticClusteringResult:
    """Cluster the primary set by the local elasticity of a trained network (He & Su, 2020).

    1. Train a two-layer network ([`train_elastic_classifier`][combgrad.analysis.train_elastic_classifier]) to output 1 on the primary
       set (the two classes to be separated, *with the same label*) and 0 on the auxiliary set.
    2. At the trained weights, compute [`local_elasticity_similarity`][combgrad.analysis.local_elasticity_similarity] (MSE loss, target 1)
       among the primary points and symmetrise it.
    3. Split it with [`cluster_similarity`][combgrad.analysis.cluster_similarity]; by default K-means on the rows for the
       relative similarity and kernel K-means for the kernelized one, the paper's pairing.

    Args:
        x_primary: points to cluster, shape `(n_primary, ...)`.
        x_auxiliary: auxiliary points, shape `(n_auxiliary, ...)`.
        kind: `"relative"` or `"kernel"` similarity.
        method: `"kmeans"`, `"spectral"`, `"kernel_kmeans"` or `None` (see above).
        activation: `"relu"` (the method) or `"linear"` (the paper's control).
        hidden_size: width of the network (the paper: 40960).
        epochs: training epochs (the paper: 200).
        batch_size: training minibatch (the paper: 50).
        train_lr: training step; `None`: 3e-3 (ReLU) / 3e-5 (linear), as in the paper.
        similarity_lr: the single probing step (the paper: 1e-6, multiplied by 3 while the
            prediction does not move).
        n_clusters: number of clusters (the paper: 2).
        seed: seed of training and clustering.

    Returns:
        An [`ElasticClusteringResult`][combgrad.analysis.ElasticClusteringResult].
    """
    model, train_accuracy = train_elastic_classifier(
        x_primary,
        x_auxiliary,
        activation=activation,
        hidden_size=hidden_size,
        epochs=epochs,
        batch_size=batch_size,
        lr=train_lr,
        seed=seed,
    )
    targets = x_primary.new_ones(x_primary.shape[0])
    similarity = local_elasticity_similarity(
        model,
        nn.MSELoss(),
        x_primary,
        targets,
        kind=kind,
        lr=similarity_lr,
        symmetrize=True,
    )
    if method is None:
        method = "kmeans" if kind == "relative" else "kernel_kmeans"
    labels = cluster_similarity(similarity, n_clusters, method=method, seed=seed)
    return ElasticClusteringResult(
        labels=labels,
        similarity=similarity.detach().cpu().numpy(),
        model=model,
        train_accuracy=train_accuracy,
    )
