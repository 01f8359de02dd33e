"""Multiscale row prices for the sparse engine: solve a coarsened problem, carry its dual back.

Each set is cut into clusters of at most LEAF points by a k-d tree on its leading principal coordinates
(every node split at the median of its widest coordinate), so clusters follow the data's own dimension: on a
curve they are short arcs, on a plane small patches. The clusters' centroids, weighted by the clusters'
masses, form a problem with about ``1 / LEAF`` of the points, solved exactly (and itself coarsened while it is
large). Its column potentials ``V`` give every fine row a price by the c-transform over the coarse columns,

    ``u_i = min_J c(x_i, y_J) - V_J``   (``y_J`` the centroid of column cluster ``J``),

within about a cluster's diameter of the fine optimum's (for W1, potentials are 1-Lipschitz). On data of low
intrinsic dimension an auction from scratch cannot get there: the optimal partner of a point lies about
``sqrt(n)`` neighbours away on a curve, and prices must travel that far bid by bid.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wganlab.ot.exact.blocks import PCA_SAMPLE, principal_directions

#: points per cluster at most
LEAF = 4
#: principal coordinates the tree splits on
TREE_DIMS = 8


def intrinsic_dimension(Xs: np.ndarray, Y: np.ndarray, approx: np.ndarray, k: tuple[int, int] = (16, 128)) -> float:
    """The dimension ``m`` at which the data look like a uniform sample at the scale of a point's ``k[0]``-th
    to ``k[1]``-th nearest neighbours, from how the distance of a point of ``Xs (s, d)`` to its ``k``-th nearest
    point of ``Y (N, d)`` grows with ``k`` (``r_k ~ k^(1/m)``): ``log(k1 / k0) / median log(r_k1 / r_k0)``.
    ``approx (s, N)``: any increasing function of the distances, roughly (the float32 costs); the ``2 k1``
    nearest by it are measured again in float64."""
    k0, k1 = min(k[0], approx.shape[1]), min(k[1], approx.shape[1])
    near = torch.topk(torch.from_numpy(approx), min(2 * k1, approx.shape[1]), dim=1, largest=False).indices
    diff = torch.from_numpy(Y[near.numpy()].astype(np.float64)) - torch.from_numpy(Xs.astype(np.float64))[:, None]
    r = torch.linalg.vector_norm(diff, dim=2).sort(dim=1).values
    ratio = torch.log(r[:, k1 - 1] / r[:, k0 - 1]).median().item()
    return math.log(k1 / k0) / ratio if ratio > 0 else math.inf


def clusters(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(order (n,), starts (K + 1,))``: cluster ``k`` holds the points ``order[starts[k]:starts[k+1]]``
    (at most LEAF each), the leaves of a k-d tree on ``Z (n, d)``'s leading principal coordinates."""
    n = len(Z)
    Zc = Z - Z[:: max(1, n // PCA_SAMPLE)].mean(0, dtype=np.float64)
    P = Zc.astype(np.float64) @ principal_directions(Zc, TREE_DIMS).T  # (n, r)
    order = np.arange(n)
    sizes = np.array([n])
    while sizes.max() > LEAF:
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        Po = P[order]
        widths = np.maximum.reduceat(Po, starts, axis=0) - np.minimum.reduceat(Po, starts, axis=0)  # (K, r)
        node = np.repeat(np.arange(len(sizes)), sizes)
        along = Po[np.arange(n), np.argmax(widths, axis=1)[node]]
        order = order[np.lexsort((along, node))]
        first = np.where(sizes > LEAF, LEAF * -(-sizes // (2 * LEAF)), sizes)  # whole leaves on the left
        sizes = np.stack([first, sizes - first], axis=1).reshape(-1)
        sizes = sizes[sizes > 0]
    return order, np.concatenate([[0], np.cumsum(sizes)])


def coarsen(Z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(centroids (K, d) float64, masses (K,))`` of the weighted set ``Z (n, d)``, ``w (n,)``: each cluster's
    mean and total weight (all clusters but the last hold LEAF points; the means are unweighted, a price's
    approximation either way, and defined for clusters of weight 0)."""
    order, starts = clusters(Z)
    counts = np.diff(starts)[:, None]
    return np.add.reduceat(Z[order].astype(np.float64), starts[:-1], axis=0) / counts, \
        np.add.reduceat(w[order], starts[:-1])


def c_transform(X: np.ndarray, Yc: np.ndarray, V: np.ndarray, squared: bool, block: int = 2048) -> np.ndarray:
    """``u_i = min_J c(x_i, y_J) - V_J`` for ``X (M, d)``, ``Yc (K, d)``, ``V (K,)`` with ``c`` the Euclidean
    distance (``squared``: its square), in float32 blocks of rows (prices, not a certificate)."""
    mu = Yc.mean(0)
    Y = torch.from_numpy(np.ascontiguousarray(Yc - mu, dtype=np.float32))
    Vt = torch.from_numpy(np.asarray(V, dtype=np.float32))
    out = np.empty(len(X))
    for s in range(0, len(X), block):
        xb = torch.from_numpy(np.asarray(X[s:s + block] - mu, dtype=np.float32))
        dist = torch.cdist(xb, Y)
        out[s:s + block] = ((dist.square_() if squared else dist) - Vt).amin(1).numpy()
    return out
