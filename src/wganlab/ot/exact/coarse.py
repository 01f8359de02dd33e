"""Multiscale row prices for the sparse engine: solve a coarsened problem, carry its dual back.

Each set is cut into clusters of at most LEAF points by a k-d tree on its leading principal coordinates
(every node split at the median of its widest coordinate), so clusters follow the data's own dimension: on a
curve they are short arcs, on a plane small patches. The clusters' centroids, weighted by the clusters'
masses, form a problem with about ``1 / LEAF`` of the points, solved exactly (and itself coarsened while it is
large). Its column potentials ``V`` give every fine row a price by the c-transform over the coarse columns,

    ``u_i = min_J c(x_i, y_J) - V_J``   (``y_J`` the centroid of column cluster ``J``),

within about a cluster's diameter of the fine optimum's (for W1, potentials are 1-Lipschitz). An auction from
scratch cannot get there where a point's optimal partner lies far beyond its nearest neighbours and prices must
travel that far bid by bid: on data of low intrinsic dimension (about ``sqrt(n)`` neighbours away on a curve,
:func:`intrinsic_dimension`) and between sets far apart against their own point spacing (a translation, one
set shrunk against the other: :func:`separation`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from wganlab.ot.exact import arc_costs
from wganlab.ot.exact.sketch import PCA_SAMPLE, principal_directions
from wganlab.ot.sliced.oned import wasserstein_1d

#: points per cluster at most
LEAF = 4
#: principal coordinates the tree splits on
TREE_DIMS = 8


def intrinsic_dimension(Xs: np.ndarray, Y: np.ndarray, approx: np.ndarray, k: tuple[int, int] = (16, 128)) -> float:
    """The dimension ``m`` at which the data look like a uniform sample at the scale of a point's ``k[0]``-th
    to ``k[1]``-th nearest neighbours, from how the distance of a point of ``Xs (s, d)`` to its ``k``-th nearest
    point of ``Y (N, d)`` grows with ``k`` (``r_k ~ k^(1/m)``): ``log(k1 / k0) / median log(r_k1 / r_k0)``.
    ``approx (s, N)``: any increasing function of the distances, roughly (the float32 costs); the ``2 k1``
    nearest by it are measured again in float64 (:func:`arc_costs.pair_costs`: no float64 copy of the points, 26 -> 3 ms
    for 16 rows against 10,000 images)."""
    k0, k1 = min(k[0], approx.shape[1]), min(k[1], approx.shape[1])
    near = torch.topk(torch.from_numpy(approx), min(2 * k1, approx.shape[1]), dim=1, largest=False).indices.numpy()
    rows = np.repeat(np.arange(len(Xs)), near.shape[1])
    r = np.sort(arc_costs.pair_costs(Xs, Y, rows, near.reshape(-1), False).reshape(near.shape), axis=1)
    ratio = float(np.median(np.log(r[:, k1 - 1] / r[:, k0 - 1])))
    return math.log(k1 / k0) / ratio if ratio > 0 else math.inf


def separation(X: np.ndarray, Y: np.ndarray, a: np.ndarray, b: np.ndarray, samples: int = 16) -> float:
    """``L / s`` for the sets ``X (M, d)``, ``Y (N, d)`` with weights ``a (M,)``, ``b (N,)`` summing to 1: ``L``
    a lower bound of ``W1(x, y)`` (so of ``W2``), the larger 1-D W1 of two 1-Lipschitz maps of the points (the
    coordinate along the difference of the means, and the distance to their midpoint ``c``: a translation and a
    set shrunk against the other), ``s`` the smaller of the two sets' median distance from a point (``samples``
    of each) to its nearest other point of its set. From about 1, optimal partners lie beyond a point's nearest
    neighbours (0.01-0.06 between train and test Fashion-MNIST images or two Gaussian samples; 1.4 for
    Gaussians in d = 10 two standard deviations apart). Computed in the sets' own precision: a measurement."""
    sets = [_Summary(torch.from_numpy(Z), torch.from_numpy(w)) for Z, w in ((X, a), (Y, b))]
    dm = sets[0].mean - sets[1].mean
    e = dm / torch.linalg.vector_norm(dm).clamp_min(torch.finfo(dm.dtype).tiny)
    c = (sets[0].mean + sets[1].mean) / 2
    along = wasserstein_1d(*(s.Z @ e.to(s.Z.dtype) for s in sets), a, b)
    radial = wasserstein_1d(*(s.distance_to(c) for s in sets), a, b)
    bound = max(float(along), float(radial))
    spacing = min(s.spacing(samples) for s in sets)
    if bound == 0:
        return 0.0
    return bound / spacing if spacing > 0 else math.inf


class _Summary:
    """A weighted set ``Z (n, d)``, ``w (n,)``: its mean (float64) and squared norms, for :func:`separation`."""

    def __init__(self, Z: torch.Tensor, w: torch.Tensor):
        self.Z = Z
        self.mean = Z.T @ w.to(Z.dtype)
        self.sq = torch.linalg.vector_norm(Z, dim=1).square_()

    def distance_to(self, c: torch.Tensor) -> torch.Tensor:
        """``||z_i - c|| (n,)`` from ``||z||^2 - 2 z.c + ||c||^2`` (no ``(n, d)`` temporary)."""
        c = c.to(self.Z.dtype)
        return (self.sq - 2 * (self.Z @ c) + c @ c).clamp_min_(0).sqrt_()

    def spacing(self, samples: int) -> float:
        """The median (the lower middle one) over ``samples`` evenly spaced points of the distance to the nearest
        other point."""
        idx = torch.arange(0, len(self.Z), max(1, len(self.Z) // samples))[:samples]
        sq = self.sq[idx, None] + self.sq[None] - 2 * (self.Z[idx] @ self.Z.T)
        sq[torch.arange(len(idx)), idx] = math.inf
        return sq.amin(1).clamp_min_(0).sqrt_().median().item()


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
