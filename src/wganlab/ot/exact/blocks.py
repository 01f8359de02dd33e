"""Float32 distance blocks of the sparse exact OT engine and the numba kernels that read them: rigorous lower
bounds of the costs, each column's cheapest rows and each row's nearest columns, and the pairs kept per column (a
pricing pass's check of the pairs they cannot settle is :func:`wganlab.ot.exact.pricing.violations`)."""

from __future__ import annotations

import types

import numba as nb
import numpy as np
import torch

from wganlab.ot.exact.ssp import column_order

#: float32 elements in one block of distances (64 MB)
BLOCK_ELEMENTS = 16 * 1024 * 1024
#: blocks of at most this many rows are computed transposed (faster GEMM for thin blocks)
THIN_BLOCK = 128
#: keep all float32 distance blocks between the candidate pass and the pricing passes below this size
CACHE_BYTES = 512 * 1024 * 1024
#: the kernels below test this many columns of a row at once (one vectorised test) and scan them only on a hit: a
#: pricing pass's screen (:func:`wganlab.ot.exact.pricing.violations`), and each column's cheapest rows and each
#: row's nearest columns (:func:`keep_smallest`, :func:`row_smallest`: more frequent hits; at the optimal prices of
#: 10,000 x 10,000 images, k = 8: 10 % of 32-column chunks)
SCREEN_CHUNK, KEEP_CHUNK = 256, 64


class Distances:
    """Float32 squared distances between ``x`` and ``y`` (centred on ``y``'s shift), block by block, with a
    rigorous lower bound of the exact costs; blocks are cached when the whole matrix is small (and, when
    one block holds every row, also its transpose)."""

    def __init__(self, X, Y, squared: bool, tau: float | None = None):
        """``X``, ``Y``: :class:`wganlab.ot.exact.points.Points` (their centred float32 copies ``z32 (n, d)`` and
        squared norms ``sq32``); ``tau``: the relative shrink of the norms' sum that makes the bound rigorous
        (default: for a float32 GEMM of ``d`` terms)."""
        self.setup(len(X.z32), len(Y.z32), X.z32.shape[1], squared)
        self.x32, self.y32, self.nx32, self.ny32 = X.z32, Y.z32, X.sq32, Y.sq32
        self.tau = (X.z32.shape[1] + 8) * 2.0**-24 * 1.25 if tau is None else tau

    #: which bound: "float32" (the GEMM of the points), "sketch" (:func:`wganlab.ot.exact.sketch.distances`) or "grid"
    #: (:class:`wganlab.ot.exact.grid.GridDistances`)
    kind = "float32"

    def setup(self, M: int, N: int, dims: int, squared: bool) -> None:
        """The sizes (``dims``: coordinates the bound reads), the block length and an empty cache."""
        self.M, self.N, self.dims, self.squared = M, N, dims, squared
        self.step = max(1, min(M, BLOCK_ELEMENTS // max(N, 1)))
        self.cache: dict[int, np.ndarray] | None = {} if cacheable(M, N) else None
        self.all_t: np.ndarray | None = None

    def blocks(self, rows: np.ndarray | None = None):
        """``(start, lower bound of the costs of rows start:start+len)`` for every row block (of
        ``rows[start:start+len]`` when an index array is given; those blocks are not cached)."""
        if rows is None:
            for s in range(0, self.M, self.step):
                yield s, self.lower(s, slice(s, s + self.step))
        else:
            for s in range(0, len(rows), self.step):
                yield s, self.lower(None, rows[s:s + self.step])

    def lower(self, key, rows) -> np.ndarray:
        """Lower bound of ``c(x_rows, y)`` (float32, ``(len(rows), N)``); cached under ``key``. Up to
        THIN_BLOCK rows the bounds are made as ``(N, len(rows))`` (for the GEMM ``y @ x_rows^T``, faster so)
        and transposed (few rows keep both orientations)."""
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        thin = (len(range(self.M)[rows]) if isinstance(rows, slice) else len(rows)) <= THIN_BLOCK
        g = self.bounds_of(rows, thin)
        lo = transposed_copy(g) if thin else g
        if self.cache is not None and isinstance(key, int):
            self.cache[key] = lo
            if len(lo) == self.M and thin:
                self.all_t = g
        return lo

    def bounds_of(self, rows, thin: bool) -> np.ndarray:
        """The bounds of the rows ``rows`` (a slice or indices) from the float32 GEMM, ``(N, B)`` if ``thin`` else
        ``(B, N)``."""
        xr, nx = self.x32[rows], self.nx32[rows]
        if thin:
            g = self.y32 @ xr.T
            finish_lower(g, self.ny32, nx, 1 - self.tau, self.squared)
        else:
            g = xr @ self.y32.T
            finish_lower(g, nx, self.ny32, 1 - self.tau, self.squared)
        return g

    def seed(self, lo: np.ndarray) -> None:
        """Use ``lo (M, N)``, float32 lower bounds of every pair's cost, as the cached blocks (no GEMM)."""
        self.cache = {s: lo[s:s + self.step] for s in range(0, self.M, self.step)}
        self.all_t = None

    def cached_all(self) -> np.ndarray | None:
        """The cached lower bounds of all pairs ``(M, N)``, or None unless every block is cached."""
        if self.cache is None or any(s not in self.cache for s in range(0, self.M, self.step)):
            return None
        parts = [self.cache[s] for s in range(0, self.M, self.step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def columns(self, cols: np.ndarray) -> Distances:
        """The same bounds for the columns ``cols`` only (not cached)."""
        y = types.SimpleNamespace(z32=self.y32[cols], sq32=self.ny32[cols])
        out = Distances(types.SimpleNamespace(z32=self.x32, sq32=self.nx32), y, self.squared, self.tau)
        out.cache = None
        return out

    def transposed(self) -> np.ndarray:
        """The lower bounds of all pairs as ``(N, M)`` (for few rows: one cached block)."""
        if self.all_t is None:
            parts = [blk for _, blk in self.blocks()]
            if self.all_t is None:  # (:meth:`lower` keeps it where one block holds every row)
                self.all_t = transposed_copy(parts[0] if len(parts) == 1 else np.concatenate(parts))
        return self.all_t


class CostBounds:
    """Float32 lower bounds ``lo (M, N)`` of the costs ``||x_i - y_j||`` (or their squares) between points
    ``x (M, d)`` and a target set, kept by a solve for the next solve against the same target (OT-Means: the
    same data, centroids that moved a little)."""

    def __init__(self, x: np.ndarray, lo: np.ndarray, squared: bool):
        self.x, self.lo, self.squared = np.array(x, dtype=np.float64), lo, squared

    @classmethod
    def kept(cls, dist: Distances, x: np.ndarray, rows, cols, costs) -> CostBounds | None:
        """The bounds ``dist`` holds for every pair (None unless all its blocks are cached) for the points ``x``,
        raised to the exact float64 ``costs`` of the pairs ``(rows, cols)`` (rounded down to float32)."""
        if (lo := dist.cached_all()) is None:
            return None
        lo[rows, cols] = np.maximum(lo[rows, cols], round_down32(costs))
        return cls(x, lo, dist.squared)

    def shift_into(self, dist: Distances, x: np.ndarray, u, v, max_checks: int) -> bool:
        """Seed ``dist``'s blocks with these bounds :meth:`shifted` to the points ``x``, when they are bounds for
        as many points and at the potentials ``u``, ``v`` at most ``max_checks`` pairs fall below them (each
        would need its exact cost); returns whether it did."""
        if (self.squared != dist.squared or self.x.shape != np.shape(x) or self.lo.shape[1] != len(v)
                or dist.cache is None):
            return False
        lo, below = self.shifted(x, np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64))
        if below > max_checks:
            return False
        dist.seed(lo)
        return True

    def shifted(self, x: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, int]:
        """``(bounds (M, N), below)``: lower bounds of the costs for the points moved to ``x (M, d)``, ``||x'_i - y||
        >= ||x_i - y|| - ||x'_i - x_i||`` (triangle inequality), in float64 with the shift rounded up, rounded down
        to float32; ``below``: how many are below ``u_i + v_j`` (float64 potentials ``u (M,)``, ``v (N,)``)."""
        shift = np.linalg.norm(np.asarray(x, dtype=np.float64) - self.x, axis=1) * (1 + 1e-12)
        return shifted_bounds(self.lo, shift, self.squared, u, v)


@nb.njit(cache=True)
def shifted_bounds(lo, shift, squared, u, v):
    """:meth:`CostBounds.shifted` in one pass over ``lo (M, N)``: each bound as a distance (the square root of a
    squared one) times ``1 - 1e-15`` (the root's rounding, before the difference can make it large relative to the
    distance), less ``shift_i``, at least 0, squared again, rounded down to float32 (:func:`round_down_one32`); and
    the count of those below ``u_i + v_j``."""
    M, N = lo.shape
    out = np.empty((M, N), np.float32)
    below = 0
    for i in range(M):
        s, ui = shift[i], u[i]
        for j in range(N):
            d = np.float64(lo[i, j])
            if squared:
                d = np.sqrt(d)
            d = max(d * (1 - 1e-15) - s, 0.0)
            if squared:
                d *= d
            f = round_down_one32(d)
            out[i, j] = f
            below += np.float64(f) < ui + v[j]
    return out, below


def cacheable(M: int, N: int) -> bool:
    """Whether the float32 bounds of all ``M x N`` pairs are small enough to keep (CACHE_BYTES)."""
    return 4 * M * N <= CACHE_BYTES


def transposed_copy(a: np.ndarray) -> np.ndarray:
    """``a.T`` of a writable 2-D array as a C-contiguous array, by torch's blocked transpose (10,000 x 64 float32:
    0.54 ms, numpy's copy 2.96 ms; one thread)."""
    return torch.from_numpy(a).t().contiguous().numpy()


def round_down32(v: np.ndarray) -> np.ndarray:
    """Non-negative float64 ``v`` as float32 values no larger than ``v``: shrunk by ``2^-22`` (relative) and
    ``1e-40`` (beyond float32's subnormal spacing) before rounding to nearest, clipped at 0."""
    w = v * (1 - 2.0**-22)
    w -= 1e-40
    np.maximum(w, 0.0, out=w)
    return w.astype(np.float32)


@nb.njit(cache=True, inline="always")
def round_down_one32(v):
    """:func:`round_down32` of one non-negative float64 ``v`` (the same bits), for the kernels."""
    return np.float32(max(v * (1 - 2.0**-22) - 1e-40, 0.0))


@nb.njit(cache=True)
def _any_below_shifted(a, s, b):
    """Whether ``a[t] - s < b[t]`` for some ``t < KEEP_CHUNK`` (1-D slices from the chunk's start: numba vectorises
    and unrolls it; on a loop over a range of a whole row with computed bounds it did not, 4-5x slower, and over
    slices of computed length it took 1.6x as long)."""
    hit = False
    for t in range(KEEP_CHUNK):
        hit |= a[t] - s < b[t]
    return hit


#: :func:`smallest` keeps this many running minima (one AVX-512 vector of float64)
LANES = 8


@nb.njit(cache=True, fastmath={"nnan", "nsz"})
def smallest(w, n, lanes):
    """The smallest of ``w[:n]``, where ``w[n:n + LANES]`` holds ``inf``: LANES running minima (``lanes``, scratch,
    of ``w``'s type), which the compiler vectorises (a scalar minimum over ``w`` it does not)."""
    for t in range(LANES):
        lanes[t] = w[t]
    for q in range(LANES, n, LANES):
        for t in range(LANES):
            lanes[t] = np.minimum(lanes[t], w[q + t])
    x = lanes[0]
    for t in range(1, LANES):
        x = np.minimum(x, lanes[t])
    return x


@nb.njit(cache=True)
def column_smallest(lo_t, u32, k):
    """The rows ``(N, k)`` of each column's ``k <= M`` smallest values of ``lo_t[j, i] - u32[i]`` (``lo_t (N, M)``,
    each column's bounds in a row; float32), ascending, the first of equal values first: :func:`keep_smallest`'s
    rows from scratch, by a vectorised scan of each column (few rows: 0.9 against 1.9 ms on 64 x 10,000)."""
    N, M = lo_t.shape
    idx = np.empty((N, k), np.int64)
    w = np.full(M + LANES, np.inf, np.float32)
    lanes = np.empty(LANES, np.float32)
    for j in range(N):
        for i in range(M):
            w[i] = lo_t[j, i] - u32[i]
        for t in range(k):
            b = smallest(w, M, lanes)
            q = 0
            while w[q] != b:
                q += 1
            idx[j, t] = q
            w[q] = np.inf
    return idx


@nb.njit(cache=True)
def keep_smallest(lo, u, row0, val, idx, cap):
    """Merge the rows of the block ``lo (B, N)`` into each column's ``k`` smallest values of ``lo[i, j] -
    u[row0 + i]``: ``val (N, k)`` (ascending, ``inf`` where empty) and their rows ``idx (N, k)``, in place. Only
    values below ``cap (N,)`` enter: a cap above each column's ``k``-th smallest value (known from ``k`` or more of
    its rows, :func:`wganlab.ot.exact.candidates.column_caps`) skips the rows that cannot, from the first row on."""
    B, N = lo.shape
    k = val.shape[1]
    worst = np.empty(N, val.dtype)  # contiguous (a strided copy did not vectorise the chunks' test)
    for j in range(N):
        worst[j] = min(val[j, k - 1], cap[j])
    full = N - N % KEEP_CHUNK
    for i in range(B):
        ui = u[row0 + i]
        li = lo[i]
        for j0 in range(0, full, KEEP_CHUNK):
            if _any_below_shifted(li[j0:], ui, worst[j0:]):
                _merge_row(li, ui, row0 + i, j0, j0 + KEEP_CHUNK, val, idx, worst, cap)
        _merge_row(li, ui, row0 + i, full, N, val, idx, worst, cap)  # the last columns, fewer than a chunk


@nb.njit(cache=True)
def row_smallest(lo, k):
    """Columns ``(B, k)`` of the ``k <= N`` smallest values of each row of ``lo (B, N)``, in ascending order of
    value (the first of equal values first)."""
    B, N = lo.shape
    out = np.empty((B, k), np.int64)
    val = np.empty(k, lo.dtype)
    for i in range(B if k > 0 else 0):
        li, oi = lo[i], out[i]
        for j in range(k):
            insert_sorted(val, oi, j, li[j], j)
        for j0 in range(k, N, KEEP_CHUNK):
            j1 = min(j0 + KEEP_CHUNK, N)
            if _any_less(li[j0:j1], val[k - 1]):
                for j in range(j0, j1):
                    if li[j] < val[k - 1]:
                        insert_sorted(val, oi, k - 1, li[j], j)
    return out


@nb.njit(cache=True)
def _any_less(a, s):
    """Whether ``a[t] < s`` for some ``t`` (vectorised as :func:`_any_below_shifted`)."""
    hit = False
    for t in range(len(a)):
        hit |= a[t] < s
    return hit


@nb.njit(cache=True)
def insert_sorted(val, pos, t, w, j):
    """Insert value ``w`` of index ``j`` into the ascending ``val[:t + 1]`` (and ``pos``), dropping ``val[t]``; after
    equal values."""
    while t > 0 and val[t - 1] > w:
        val[t], pos[t] = val[t - 1], pos[t - 1]
        t -= 1
    val[t], pos[t] = w, j


@nb.njit(cache=True)
def _merge_row(li, ui, r, j0, j1, val, idx, worst, cap):
    """:func:`keep_smallest` for row ``r`` (bounds ``li``, price ``ui``) on the columns ``j0:j1``."""
    k = val.shape[1]
    for j in range(j0, j1):
        w = li[j] - ui
        if w < worst[j]:
            insert_sorted(val[j], idx[j], k - 1, w, r)
            worst[j] = min(val[j, k - 1], cap[j])


@nb.njit(cache=True, fastmath=True)
def centred_copy(Z, mu, z32):
    """``sq32``: the squared row norms of ``Z - mu`` (summed in float64, rounded to float32) for points ``Z (n, d)``
    (float32 or float64), in one pass that writes ``z32 (n, d)`` (float32): ``Z - mu`` (computed in ``Z``'s
    precision, rounded once: :func:`wganlab.ot.exact.points.centred32`'s values). ``z32`` comes from numpy, which
    asks the kernel for huge pages: in fresh memory this pass took 45 ms into numpy's array, 78 ms into numba's own
    (10,000 x 4,096 float32, one thread)."""
    n, d = Z.shape
    sq32 = np.empty(n, np.float32)
    m = mu.astype(Z.dtype)
    for i in range(n):
        row, out = Z[i], z32[i]
        s = 0.0
        for j in range(d):
            c = np.float32(row[j] - m[j])
            out[j] = c
            s += np.float64(c) * np.float64(c)
        sq32[i] = s
    return sq32


@nb.njit(cache=True, fastmath=True)
def squared_norms64(z):
    """``||z_i||^2 (n,)`` of the rows of ``z (n, d)``: squares and sums in float64 (exact squares of float32 values,
    the sum in any order: within ``gamma_d`` of it)."""
    n, d = z.shape
    out = np.empty(n)
    for i in range(n):
        s = 0.0
        for t in range(d):
            v = np.float64(z[i, t])
            s += v * v
        out[i] = s
    return out


@nb.njit(cache=True)
def finish_lower(g, n_rows, n_cols, shrink, squared):
    """In place, the products ``g[i, j] = a_i . b_j`` (float32) of two centred sets with squared norms
    ``n_rows``, ``n_cols`` become ``max(0, shrink (n_rows_i + n_cols_j) - 2 g[i, j])`` (the lower bound of
    the squared distance), or its square root unless ``squared``: one vectorised pass, float32 as separate
    operations round it (the sum of the norms is symmetric, so ``g`` may hold either orientation)."""
    B, N = g.shape
    s = np.float32(shrink)
    two = np.float32(2.0)
    zero = np.float32(0.0)
    for i in range(B):
        a = s * n_rows[i]
        gi = g[i]
        for j in range(N):
            t = max(zero, (a + s * n_cols[j]) - two * gi[j])
            gi[j] = t if squared else np.sqrt(t)


@nb.njit(cache=True)
def smallest_per_column(cols, key, N, k):
    """Positions of at most ``k`` entries per column ``cols[e] < N``, those of smallest ``key`` (a counting
    sort by column, then a partial sort of the columns with more than ``k``)."""
    ptr, order = column_order(cols, N)
    keep = np.empty(min(len(cols), N * k), dtype=np.int64)
    n = 0
    for j in range(N):
        s, e = ptr[j], ptr[j + 1]
        if e - s <= k:
            for q in range(s, e):
                keep[n] = order[q]
                n += 1
        else:
            mine = order[s:e]
            best = mine[np.argsort(key[mine])[:k]]
            keep[n:n + k] = best
            n += k
    return keep[:n]
