"""The principal-coordinates sketch of the sparse exact engine: rigorous lower bounds of the costs between two
large point sets off any 8-bit grid (resized images, noisy data) from ``r + 1`` coordinates a point instead of
``d``: its coordinates along ``y``'s leading principal directions and the norm of the rest (:func:`distances`)."""

from __future__ import annotations

import math
import types

import numpy as np
import torch

from wganlab.ot.exact import blocks

#: rows of a set (a sample) used to find its principal directions
PCA_SAMPLE = 4096
#: :func:`near_ranks` orders points along the Z-order curve of their two leading coordinates, each on a grid of
#: ``2^NEAR_BITS`` levels
NEAR_BITS = 6


def distances(x_rows, M: int, y32: np.ndarray, squared: bool, r: int, basis_steps: int = 4,
              basis_sample: int = PCA_SAMPLE, product_terms: int | None = None) -> blocks.Distances:
    """A rigorous lower bound of the costs between ``M`` points ``x`` (``x_rows(s, e)``: rows ``s:e`` centred, as
    float32) and the centred float32 points ``y32 (N, d)``, from ``r + 1`` coordinates instead of ``d``; the
    directions from ``basis_steps`` power steps on ``basis_sample`` rows (:func:`principal_directions`), the
    coordinates from float32 products over ``product_terms`` coordinates at a time (:func:`coordinates`).

    Each centred point ``z = B^T p + q`` is split by ``B (r, d)``, the leading principal directions of ``y``
    (float32, rows orthonormal up to ``E = B B^T - I``): ``p = Bz`` (:func:`coordinates`) rounded to float32, the
    rest ``q`` known by bounds on ``|q|`` and ``|Bq|`` (:func:`coordinates`). Then ``z_x.z_y = p_x.(I + E) p_y +
    p_x.B q_y + q_x.B^T p_y + q_x.q_y`` is at most the float32 product ``s`` of ``(p_x, |q_x|)`` and ``(p_y,
    |q_y|)`` (norms rounded up) plus ``(gamma_{r+1} A^2 + |E| P^2 + 2 P G) |z_x| |z_y|``, with ``A``, ``P``, ``G``
    the largest ratios ``|(p, |q|)| / |z|``, ``|p| / |z|``, ``|B q| / |z|``; so ``|z_x|^2 + |z_y|^2 - 2 s``,
    shrunk as the full blocks are, bounds ``||x - y||^2`` from below. Close to it where the directions hold most of the
    spread, at ``(r + 1) / d`` of the GEMM."""
    basis = principal_directions(y32, r, basis_steps, basis_sample).astype(np.float32)
    b64 = basis.astype(np.float64)
    err_e = float(np.linalg.norm(b64 @ b64.T - np.eye(len(b64)), 2))
    (cx, nx, rx), (cy, ny, ry) = (coordinates(rows, n, basis, product_terms)
                                  for rows, n in ((x_rows, M), (lambda s, e: y32[s:e], len(y32))))
    a2, p2, g2 = np.maximum(rx, ry)
    kappa = (len(b64) + 13) * 2.0**-24 * 1.25 * a2 + err_e * p2 + 2 * math.sqrt(p2 * g2)
    out = blocks.Distances(types.SimpleNamespace(z32=cx, sq32=nx), types.SimpleNamespace(z32=cy, sq32=ny),
                           squared, tau=kappa * (1 + 1e-6) + 1e-12)
    out.kind = "sketch"
    return out


def coordinates(rows, n: int, basis: np.ndarray, product_terms: int | None = None, chunk: int = 256):
    """For ``n`` points (``rows(s, e)``: rows ``s:e`` centred, float32 ``(e - s, d)``) and ``basis (r, d)``
    (float32): ``(coords (n, r + 1) float32, squared norms rounded down (n,), ratios (3,))`` of :func:`distances`,
    ``ratios`` the largest squared ``|coords| / |z|``, ``|p| / |z|``, ``|B q| / |z|`` (rounded up), chunk by chunk.

    ``Bz``: a float64 product (off by ``gamma_d`` of the terms' magnitudes; ``gamma_k = k u / (1 - k u)``, ``u =
    2^-53`` or ``2^-24``), or, given ``product_terms = K`` below ``d``, the float64 sum of float32 products over ``K``
    coordinates at a time (twice float64's speed: both sides of 10,000 x 4,096 onto 128 directions 0.38 -> 0.27 s;
    ``K`` = 128 0.34 s, 1,024 0.26 s), each off by ``gamma32_K``, so ``|bz - Bz|`` is at most ``(gamma32_K + 2
    gamma_{d/K}) sqrt(r) max|b_k| |z|``: about ``1e-3 (|z_x|^2 + |z_y|^2)`` off the bounds at ``K`` = 512, r = 128
    instead of ``1e-5``.
    ``q = z - B^T p`` is never formed: ``|q|^2 = |z|^2 - 2 p.Bz + p.(I + E) p`` and ``Bq = (Bz - p) - E p``, each
    widened by that bound and by their float64 rounding (``E`` is off by at most ``gamma_d`` an entry)."""
    r, d = basis.shape
    coords, sq = np.empty((n, r + 1), np.float32), np.empty(n, np.float32)
    ratios = np.zeros(3)
    b64 = basis.astype(np.float64)
    e64 = b64 @ b64.T - np.eye(r)
    u = 2.0**-53
    g_d, g_r = d * u / (1 - d * u), (r + 2) * u / (1 - (r + 2) * u)
    K = d if product_terms is None else product_terms
    wide = d > K
    g_bz = K * 2.0**-24 / (1 - K * 2.0**-24) + 2 * (-(-d // K) + 1) * u if wide else g_d
    b_max = float(np.linalg.norm(b64, axis=1).max()) * (1 + 1e-12)
    bt, part = np.ascontiguousarray(basis.T), np.empty((min(chunk, n), r), np.float32)
    for s in range(0, n, chunk):
        z = rows(s, min(s + chunk, n))
        if wide:
            bz, out = np.zeros((len(z), r)), part[:len(z)]
            for k in range(0, d, K):
                bz += np.matmul(z[:, k:k + K], bt[k:k + K], out=out)
        else:
            bz = z.astype(np.float64) @ b64.T
        p = bz.astype(np.float32)
        p64 = p.astype(np.float64)
        pe = p64 @ e64
        zn2 = blocks.squared_norms64(z)
        zn, pn, bzn = np.sqrt(zn2), np.linalg.norm(p64, axis=1), np.linalg.norm(bz, axis=1)
        qn2 = zn2 - 2 * np.einsum("ij,ij->i", p64, bz) + pn * pn + np.einsum("ij,ij->i", pe, p64)
        err_bz = b_max * math.sqrt(r) * g_bz * zn  # |Bz - bz|; then the four sums' own rounding
        err_q2 = (g_d * zn2 + 2 * pn * err_bz + g_r * (2 * pn * bzn + pn * pn + pn * np.linalg.norm(pe, axis=1))
                  + 4 * u * (zn2 + 2 * pn * bzn + pn * pn))
        qn = np.sqrt(np.maximum(qn2 + 2 * err_q2, 0.0)) * (1 + 1e-12)
        g = (bz - p64) - pe
        gn = np.linalg.norm(g, axis=1) + 2 * (err_bz + 4 * u * (bzn + pn) + (g_r * np.linalg.norm(e64) + r * g_d) * pn)
        coords[s:s + chunk, :-1] = p
        coords[s:s + chunk, -1] = (qn * (1 + 2.0**-22)).astype(np.float32)
        sq[s:s + chunk] = blocks.round_down32(zn2)
        c64 = coords[s:s + chunk].astype(np.float64)
        den = np.maximum(zn2, 1e-300)
        for k, num in enumerate((np.einsum("ij,ij->i", c64, c64), pn * pn, gn * gn)):
            ratios[k] = max(ratios[k], float((num / den).max()) * (1 + 1e-9))
    return coords, sq, ratios


def principal_directions(Z: np.ndarray, r: int, power_steps: int = 4, sample: int = PCA_SAMPLE) -> np.ndarray:
    """``(min(r, d), d)`` float64, orthonormal rows: the leading principal directions of ``Z (n, d)`` (the top
    eigenvectors of the covariance of a sample of about ``sample`` rows, each signed to have a positive sum). Where
    ``d`` is over four times ``r``, by ``power_steps`` steps of subspace iteration from a seeded random start of
    ``r + 8`` directions and the eigenvectors within that subspace (an ``O(d^3)`` eigensolver took 14 s at
    ``d = 4096``)."""
    d, k = Z.shape[1], min(r, Z.shape[1])
    if d <= 4 * k:
        rows = Z[:: max(1, len(Z) // sample)].astype(np.float64)
        rows -= rows.mean(0)
        top = np.linalg.eigh(rows.T @ rows)[1][:, ::-1][:, :k].T
    else:  # float32 products: any basis will do (the bounds measure how orthonormal it is)
        rows = Z[:: max(1, len(Z) // sample)].astype(np.float32)
        rows -= rows.mean(0)
        q = np.random.default_rng(0).standard_normal((d, k + 8)).astype(np.float32)
        for _ in range(power_steps):
            q = _orthonormal(rows.T @ (rows @ q))
        s = (rows @ q).astype(np.float64)
        top = _orthonormal(q.astype(np.float64) @ np.linalg.eigh(s.T @ s)[1][:, ::-1][:, :k]).T
    return top * np.where(top.sum(1) < 0, -1.0, 1.0)[:, None]


def _orthonormal(a: np.ndarray) -> np.ndarray:
    """The ``Q (n, k)`` of ``a (n, k)``'s reduced QR factorisation, by torch (LAPACK; 4,096 x 136 float32: 9 ms,
    numpy's 32 ms)."""
    return torch.linalg.qr(torch.from_numpy(a))[0].numpy()


def near_ranks(dist: blocks.Distances) -> tuple[np.ndarray, np.ndarray]:
    """``(rank_x (M,), rank_y (N,))`` of a sketch (:func:`distances`): each point's place in the Z-order (Morton
    code) of its two leading principal coordinates, quantised to NEAR_BITS bits each on a grid spanning both sets.
    Near points get near ranks, so pairs taken in rank order read the same images while they are in the caches."""
    lead = (dist.x32[:, :2].astype(np.float64), dist.y32[:, :2].astype(np.float64))
    lo, hi = np.minimum(*(p.min(0) for p in lead)), np.maximum(*(p.max(0) for p in lead))
    top = 2**NEAR_BITS - 1
    ranks = []
    for p in lead:
        q = np.clip((p - lo) / np.maximum(hi - lo, 1e-300) * top, 0, top).astype(np.int64)
        code = np.zeros(len(p), np.int64)
        for bit in range(NEAR_BITS):  # interleave the two coordinates' bits
            code |= ((q[:, 0] >> bit) & 1) << (2 * bit) | ((q[:, 1] >> bit) & 1) << (2 * bit + 1)
        rank = np.empty(len(p), np.int64)
        rank[np.argsort(code, kind="stable")] = np.arange(len(p))
        ranks.append(rank)
    return ranks[0], ranks[1]
