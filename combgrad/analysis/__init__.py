"""Analysis tools from gradient-method papers.

Needs only torch (and scikit-learn / scipy for clustering, imported when used); never imports
`solvers`.
"""

from __future__ import annotations

from .local_elasticity import (
    ElasticClusteringResult,
    cluster_similarity,
    clustering_accuracy,
    elastic_clustering,
    kernel_kmeans,
    local_elasticity_similarity,
    neural_tangent_kernel,
    train_elastic_classifier,
)

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
