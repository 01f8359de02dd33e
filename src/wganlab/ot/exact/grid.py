"""Integer bounds of the sparse engine's costs for point sets on a grid of 256 levels (8-bit images, whatever
their scaling): each point ``z (d,)`` written as ``o + s q + r`` with ``q`` int8 codes on the grid of step ``s``
spanning the target set's range, and the residual ``r`` (float rounding of the data; large off the grid). Then

    ``||x - y|| >= s ||q_x - q_y|| - ||r_x|| - ||r_y||``  (triangle inequality),

where ``||q_x - q_y||^2 = |q_x|^2 + |q_y|^2 - 2 q_x.q_y`` is an exact integer: one int8 GEMM (``torch._int_mm``,
int32 sums; 7-8 times the float32 GEMM's speed on one core of an Intel Xeon with AMX) gives every pair's bound,
within the residuals (``~1e-6`` for float32 8-bit images, 2,500 times tighter than the float32 GEMM's bound at
d = 784) of the cost. Used where every residual is below GRID_MAX_RESIDUAL grid steps. Against such a target, a
set off the grid but within its range (generated images, OT-Means' centroids) gets a second digit, ``o + s (q +
q2 / 256)``: two int8 GEMMs, a bound within the fine grid's rounding (``~0.3 sqrt(d) s / 256``). Elsewhere the
float32 GEMM bounds serve."""

from __future__ import annotations

import types

import numba as nb
import numpy as np
import torch

from wganlab.ot.exact import blocks

#: a set is on the grid when every point's residual norm is below this many grid steps (float32 8-bit images at
#: d = 784: ~1e-4; any other data: of the order of ``0.3 sqrt(d)``)
GRID_MAX_RESIDUAL = 0.01
#: a set off the grid gets a second digit when its residual norm is below this many fine steps (``s / 256``) times
#: ``sqrt(d)``: the rounding of points within the grid's range (about 0.29), not of points outside it (clipped)
FINE_MAX_RESIDUAL = 1.0
#: rows of a set whose residuals are checked before the whole set is coded
SAMPLE_ROWS = 256
#: rows of x whose products one int8 GEMM call makes (into a reused buffer; 1,677 rows at once ran at a third of the
#: speed on 10,000 x 784 codes)
SUB_ROWS = 192
#: int32 sums of ``d`` products of int8 codes stay exact up to this many coordinates
MAX_DIM = (2**31 - 1) // (4 * 128 * 128)


def available() -> bool:
    """Whether torch has the int8 GEMM on the CPU (``torch._int_mm``) and the CPU has int8 dot-product instructions
    (VNNI; AMX on the Intel Xeon of the README's tables): without them the int8 GEMM is slower than float32's."""
    try:
        a = torch.zeros((8, 8), dtype=torch.int8)
        return bool((torch._int_mm(a, a) == 0).all()) and bool(torch.cpu._is_vnni_supported())
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


AVAILABLE = available()


def step_of(hi: float, lo: float) -> tuple[float, float] | None:
    """``(o, s)``: the grid of 256 levels ``o + s q``, ``q = -128..127``, spanning ``[lo, hi]`` (None for a step
    outside ``(1e-12, 1e12)``: sets far from unit scale are rescaled before they get here)."""
    s = hi / 255 - lo / 255
    if s == 0:
        return lo + 128.0, 1.0
    if not (1e-12 < s < 1e12):  # float32 bounds: squared costs of at most 1e33, steps well above the subnormals
        return None
    return lo + 128 * s, s


class Codes(types.SimpleNamespace):
    """A set's grid codes ``q (n, d)`` int8, ``res (n,)`` float32 (``||r||`` rounded up), and either ``sq (n,)``
    int32 (``|q|^2``) with ``q2`` None, or a second digit ``q2 (n, d)`` int8 (the point ``o + s (q + q2 / 256)``)
    with ``sq (n,)`` float64 (``|256 q + q2|^2``, exact)."""


def codes(Z: np.ndarray, o: float, s: float, limit: float) -> Codes | None:
    """The codes of ``Z (n, d)`` on the grid ``(o, s)``, or None when some point's residual exceeds ``limit`` (a
    sample of SAMPLE_ROWS rows checked first)."""
    if Z.shape[1] > MAX_DIM:
        return None
    sample = np.ascontiguousarray(Z[::max(1, len(Z) // SAMPLE_ROWS)][:SAMPLE_ROWS])  # one kernel signature
    for rows in (sample, Z) if len(sample) < len(Z) else (Z,):
        q = np.empty(rows.shape, np.int8)
        sq, res = quantize(rows, o, s, q)
        if not res.max(initial=0.0) <= limit:
            return None
    return Codes(q=q, q2=None, sq=sq.astype(np.int32), res=(res * (1 + 2.0**-22)).astype(np.float32))


def fine_codes(Z: np.ndarray, o: float, s: float, limit: float) -> Codes | None:
    """Two-digit codes of ``Z (n, d)`` on the grid ``(o, s)`` (:func:`refine`), or None when some point's residual
    exceeds ``limit``."""
    if Z.shape[1] > MAX_DIM:
        return None
    q, q2 = np.empty(Z.shape, np.int8), np.empty(Z.shape, np.int8)
    sq, res = refine(Z, o, s, q, q2)
    if not res.max(initial=0.0) <= limit:
        return None
    return Codes(q=q, q2=q2, sq=sq, res=(res * (1 + 2.0**-22)).astype(np.float32))


@nb.njit(cache=True, fastmath={"reassoc", "contract", "nsz"})
def quantize(Z, o, s, q):
    """``(sq, res)`` of points ``Z (n, d)`` written into ``q (n, d)`` (int8): ``q`` the nearest level to
    ``(z - o) / s`` (in float32: any ``q`` makes a valid bound, and on the grid it is the nearest), ``sq = |q|^2``
    and ``res >= ||z - (o + s q)||``, the float64 residual widened by its rounding (each coordinate off by at most
    ``4u (|z| + |o| + |o + s q|) <= 4u (2 |z| + |o| + |r|)``, ``u = 2^-53``; norms summed within ``(d + 2) u``)."""
    n, d = Z.shape
    sq, res = np.empty(n), np.empty(n)
    u = 2.0**-53
    o32, inv32, half, top, zero = np.float32(o), np.float32(1.0 / s), np.float32(128.5), np.float32(255), np.float32(0)
    grow = 1 + (d + 4) * u
    for i in range(n):
        row, out = Z[i], q[i]
        for k in range(d):  # the codes in float32, then the sums in float64: two loops vectorise (6.4 -> 4.8 ms)
            out[k] = np.int8(np.int32(min(max(np.float32(row[k] - o32) * inv32 + half, zero), top)) - 128)  # w >= 0
        a = r2 = z2 = 0.0
        for k in range(d):
            t = np.float64(out[k])
            a += t * t
            v = np.float64(row[k])
            r = v - (o + s * t)
            r2 += r * r
            z2 += v * v
        rn = np.sqrt(r2) * grow
        res[i] = (rn + 4 * u * (2 * np.sqrt(z2) * grow + np.sqrt(d) * abs(o) + rn)) * (1 + 8 * u)
        sq[i] = a
    return sq, res


@nb.njit(cache=True, fastmath={"reassoc", "contract", "nsz"})
def refine(Z, o, s, q, q2):
    """``(sq, res)`` of points ``Z (n, d)`` written as two digits into ``q``, ``q2 (n, d)`` (int8): ``q`` the nearest
    level to ``(z - o) / s`` (in float64, not as :func:`quantize`: its float32 rounding can miss the nearest level
    by several far from the origin, more than a second digit can take back), ``q2`` the nearest to ``256 r1 / s``
    (``r1 = z - (o + s q)``), ``sq = |256 q + q2|^2`` (float64, exact) and ``res >= ||z - (o + s q + (s / 256)
    q2)||``, the float64 residual widened by its rounding (each coordinate off by at most ``6u (|z| + |o| + |o + s
    q|)``; norms summed within ``(d + 2) u``)."""
    n, d = Z.shape
    sq, res = np.empty(n), np.empty(n)
    u = 2.0**-53
    inv, fine = 1.0 / s, s / 256
    grow = 1 + (d + 4) * u
    for i in range(n):
        row, out, out2 = Z[i], q[i], q2[i]
        a = r2 = z2 = e2 = 0.0
        for k in range(d):
            v = np.float64(row[k])
            t = np.float64(np.int32(min(max((v - o) * inv + 128.5, 0.0), 255.0)) - 128)  # rounded (w >= 0)
            r1 = v - (o + s * t)
            t2 = np.float64(np.int32(min(max(r1 * (256 * inv) + 128.5, 0.0), 255.0)) - 128)
            out[k], out2[k] = np.int8(t), np.int8(t2)
            c = 256 * t + t2
            a += c * c
            r = r1 - fine * t2
            r2 += r * r
            z2 += v * v
            e2 += r1 * r1
        rn = np.sqrt(r2) * grow
        # sum |o + s q| <= |z| + |r1|: the error's norm is at most 6u (2 ||z|| + sqrt(d) |o| + ||r1||)
        res[i] = (rn + 6 * u * (2 * np.sqrt(z2) * grow + np.sqrt(d) * abs(o) + np.sqrt(e2) * grow)) * (1 + 8 * u)
        sq[i] = a
    return sq, res


@nb.njit(cache=True, fastmath={"nsz", "contract"}, inline="always")
def lower32(t, r, squared):
    """The float32 bound from ``t`` (within ``2^-22`` of the codes' distance) and the residuals' sum ``r`` (rounded
    up): ``t - r - 2^-20 (t + r)``, at least 0; squared, shrunk by ``2^-21`` for the rounding of the square; less
    ``1e-40`` (beyond float32's subnormal spacing)."""
    zero = np.float32(0)
    lo = max(t - r - np.float32(2.0**-20) * (t + r), zero)
    return max((lo * lo * np.float32(1 - 2.0**-21) if squared else lo) - np.float32(1e-40), zero)


@nb.njit(cache=True, fastmath={"nsz", "contract"})
def finish(g, sq_rows, sq_cols, res_rows, res_cols, s, squared, out):
    """``out[i, j]`` (float32) = a lower bound of ``||x - y||`` (``squared``: its square) from the int32 products
    ``g[i, j] = q_i.q_j`` of one-digit codes: :func:`lower32` of ``t = s sqrt(sq_i + sq_j - 2 g)`` (the integer exact
    in int32, then float32) and ``r = res_i + res_j``. Float32 throughout (a float64 root took 2.6 times as long)."""
    B, N = g.shape
    s32, two = np.float32(s), np.int32(2)
    for i in range(B):
        a, ra = sq_rows[i], res_rows[i]
        gi, oi = g[i], out[i]
        for j in range(N):
            oi[j] = lower32(s32 * np.sqrt(np.float32(a + sq_cols[j] - two * gi[j])), ra + res_cols[j], squared)


@nb.njit(cache=True, fastmath={"nsz", "contract"})
def finish2(g, g2, at2, sq_rows, sq_cols, res_rows, res_cols, s, squared, out):
    """:func:`finish` where one side has two digits: ``g[i, j] = q_i.q_j``, ``g2[i, at2 + j]`` the products of its
    second digits with the other side's codes (``g2`` may be ``g``, both digits' products side by side), ``sq`` both
    sides' ``|256 q + q2|^2`` (float64; ``q2 = 0`` on the one-digit side), so ``t = (s / 256) sqrt(sq_i + sq_j - 2
    (65536 g + 256 g2))`` (the integer exact in float64)."""
    B, N = out.shape
    s32 = np.float32(s / 256)
    for i in range(B):
        a, ra = sq_rows[i], res_rows[i]
        gi, g2i, oi = g[i], g2[i, at2:], out[i]
        for j in range(N):
            c = 65536.0 * np.float64(gi[j]) + 256.0 * np.float64(g2i[j])
            oi[j] = lower32(s32 * np.sqrt(np.float32(a + sq_cols[j] - 2.0 * c)), ra + res_cols[j], squared)


class GridDistances(blocks.Distances):
    """:class:`blocks.Distances` whose bounds come from grid codes (module docstring) instead of float32 GEMMs."""

    kind = "grid"

    def __init__(self, xc: Codes, yc: Codes, s: float, squared: bool):
        """``xc``: one or two digits; ``yc``: one."""
        self.setup(len(xc.q), len(yc.q), xc.q.shape[1], squared)
        self.xc, self.yc, self.s = xc, yc, s
        #: ``y``'s squares in units of ``(s / 256)^2`` where ``x`` has two digits
        self.ysq = None if xc.q2 is None else 65536.0 * yc.sq

    def bounds_of(self, rows, thin: bool) -> np.ndarray:
        xc, yc = self.xc, self.yc
        xq, yq = torch.from_numpy(xc.q[rows]), torch.from_numpy(yc.q)
        xq2 = None if xc.q2 is None else torch.from_numpy(xc.q2[rows])
        a, ra = xc.sq[rows], xc.res[rows]
        b = yc.sq if xq2 is None else self.ysq
        if thin:  # (N, B), as the float32 blocks
            out = np.empty((self.N, len(a)), np.float32)
            if xq2 is None:
                finish(torch._int_mm(yq, xq.t()).numpy(), b, a, yc.res, ra, self.s, self.squared, out)
            else:  # both digits in one GEMM: y's codes read once (64 x 10,000 x 784: 2.0-2.3 -> 1.6 ms)
                g = torch._int_mm(yq, torch.cat([xq, xq2]).t()).numpy()
                finish2(g, g, len(a), b, a, yc.res, ra, self.s, self.squared, out)
            return out
        out = np.empty((len(a), self.N), np.float32)
        g, g2 = (torch.empty((min(SUB_ROWS, len(a)), self.N), dtype=torch.int32) for _ in range(2))  # reused
        for i in range(0, len(a), SUB_ROWS):
            e = min(i + SUB_ROWS, len(a))
            torch._int_mm(xq[i:e], yq.t(), out=g[:e - i])
            if xq2 is None:
                finish(g[:e - i].numpy(), a[i:e], b, ra[i:e], yc.res, self.s, self.squared, out[i:e])
            else:
                torch._int_mm(xq2[i:e], yq.t(), out=g2[:e - i])
                finish2(g[:e - i].numpy(), g2[:e - i].numpy(), 0, a[i:e], b, ra[i:e], yc.res, self.s, self.squared,
                        out[i:e])
        return out

    def columns(self, cols: np.ndarray) -> GridDistances:
        yc = Codes(q=self.yc.q[cols], q2=None, sq=self.yc.sq[cols], res=self.yc.res[cols])
        out = GridDistances(self.xc, yc, self.s, self.squared)
        out.cache = None
        return out


def distances(X: np.ndarray, Yp, squared: bool) -> GridDistances | None:
    """Grid bounds between ``X (M, d)`` and the prepared set ``Yp`` (:class:`wganlab.ot.exact.points.Points`) on the
    grid spanning ``Yp``'s range, or None where torch has no int8 GEMM or either set is off it. ``X`` off the grid
    gets two digits where its residuals then stay below FINE_MAX_RESIDUAL fine steps per coordinate, as for any
    point within the range (generated images, OT-Means' centroids); one-digit codes check a sample first."""
    step = Yp.grid_step() if AVAILABLE and not Yp.off_grid else None
    if step is None:
        return None
    xc = codes(X, *step, GRID_MAX_RESIDUAL * step[1] / 2)
    yc = Yp.grid_codes()  # before x's second digit: a target off the grid ends it at a sample's cost
    if yc is not None and xc is None:
        xc = fine_codes(X, *step, FINE_MAX_RESIDUAL * step[1] / 256 * np.sqrt(X.shape[1]))
    return None if yc is None or xc is None else GridDistances(xc, yc, step[1], squared)
