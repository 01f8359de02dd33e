"""The 1-D kernels of the sliced distances: sorting (numpy's vectorised sort or a radix sort, whichever is faster
on this CPU), the run-based merge of two uniform quantile functions (:class:`UniformPlan`) and ``W_p^p`` between
sorted samples, block by block. See :mod:`wganlab.ot.sliced` for the formulas."""

from __future__ import annotations

import functools
import itertools
import math
import time

import numpy as np
import torch

try:
    from wganlab.ot.sliced import match_kernel
except ImportError:  # numba missing or broken: the numpy / torch path runs everywhere
    match_kernel = None

#: projected values (times rows) one block of the uniform 1-D kernel works on: ~1 MB in float32, so its
#: temporaries stay in the CPU cache (faster than passes over whole rows of millions of patches)
BLOCK_ELEMENTS = 1 << 18


#: rows shorter than this are sorted by numpy (the radix sort's 3 x 2,048 counts per row cost more than it saves)
RADIX_MIN = 1 << 12


@functools.cache
def _radix_wins(packed: bool) -> bool:
    """Whether the radix sort (:mod:`match_kernel`; ``packed``: with positions) beats numpy's on this CPU: best
    of three sorts of 16 rows of 2^13 random float32 values each way, once per process (about 0.2 s, mostly
    loading the kernels from numba's cache). numpy's AVX-512 sort runs 4-6x slower on an AMD Zen 4 (its
    memory-destination compress is microcoded there) than on an Intel Xeon, where it took about what the radix
    sort takes on the Zen 4 (the radix sort was not timed there): the measurement decides. The packed sorts
    give the same array either way, the plain ones the same values (zeros' signs aside), so the choice changes
    no result."""
    v = np.random.default_rng(0).standard_normal((16, RADIX_MIN * 2)).astype(np.float32)
    out = np.empty(v.shape, dtype=np.float64 if packed else np.float32)

    def radix():
        if packed:
            match_kernel.packed_radix_sort(v, out, _LOW)
        else:
            match_kernel.radix_sort(v, out)

    def numpy_sort():
        if packed:
            match_kernel.pack_positions(v.reshape(1, *v.shape), out, 0)
        else:
            out[...] = v
        out.sort(axis=-1)

    radix()  # compiled or loaded from numba's cache first
    return _best_time(radix) < _best_time(numpy_sort)


def _best_time(f, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def sort_choice() -> str:
    """The sort that float32 rows of at least RADIX_MIN values get in this process, as ``"plain / packed"``:
    ``"radix"`` or ``"numpy"`` each (bench tables print it beside the machine)."""
    if match_kernel is None:
        return "numpy / numpy (no numba)"
    return " / ".join("radix" if _radix_wins(packed) else "numpy" for packed in (False, True))


def _use_radix(a: np.ndarray, packed: bool) -> bool:
    return match_kernel is not None and a.shape[-1] >= RADIX_MIN and a.size > 0 and _radix_wins(packed)


def sort_values(v: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``v`` sorted along the last dimension, without gradient. ``inplace``: ``v`` is a temporary that
    may be overwritten (no copy on the CPU)."""
    if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64):
        a = v.detach().numpy()
        if not (inplace and a.flags.c_contiguous and a.flags.writeable):
            a = np.array(a, order="C")
        if v.dtype == torch.float32 and _use_radix(a, packed=False):
            rows = a.reshape(-1, a.shape[-1])
            if match_kernel.radix_sort(rows, rows):  # each row is read whole before it is written
                return torch.from_numpy(a)
        a.sort(axis=-1)
        return torch.from_numpy(a)
    return torch.sort(v.detach(), dim=-1).values


#: low mantissa bits that a float32 value's float64 copy leaves zero (52 - 23): room for its position
PACK_BITS = 29
_LOW = np.uint64((1 << PACK_BITS) - 1)


def _packable(v: torch.Tensor) -> bool:
    """Whether :func:`_packed_sort` (and :func:`match_kernel.sort_match`) apply: float32 on the CPU, rows of 1 to
    ``2^PACK_BITS`` values."""
    return v.device.type == "cpu" and v.dtype == torch.float32 and 0 < v.shape[-1] <= 1 << PACK_BITS


def _packed_sort(v: torch.Tensor) -> np.ndarray | None:
    """ONE float64 sort that orders float32 ``v (..., n)`` and carries its permutation: each value's float64
    copy (exact) holds its position in its ``PACK_BITS`` zero low mantissa bits, which order ties only (2x
    faster than numpy's argsort, and no gather). None where it does not apply: not float32 on the CPU, too
    long a last dimension, or an inf or nan in ``v`` (their copies are not ordered)."""
    if not _packable(v):
        return None
    a = v.detach().numpy()
    if _use_radix(a, packed=True):
        f = np.empty(a.shape, dtype=np.float64)
        n = a.shape[-1]
        ok = match_kernel.packed_radix_sort(np.ascontiguousarray(a).reshape(-1, n), f.reshape(-1, n), _LOW)
        return f if ok else None
    if match_kernel is None:
        f = a.astype(np.float64)
        f.view(np.uint64)[...] |= np.arange(v.shape[-1], dtype=np.uint64)
        bad = np.isnan(f).any()  # a nan, or an inf made one by its position's bits
    else:
        f = np.empty(a.shape, dtype=np.float64)
        bad = match_kernel.pack_positions(a.reshape(1, -1, a.shape[-1]), f.reshape(-1, a.shape[-1]), 0).any()
    if bad:
        return None
    f.sort(axis=-1)
    return f


def _split_packed(f: np.ndarray) -> np.ndarray:
    """The permutation carried by :func:`_packed_sort`'s result (uint64), cleared from it in place."""
    bits = f.view(np.uint64)
    order = bits & _LOW
    bits &= ~_LOW
    return order


def _plain_argsort(v: torch.Tensor) -> torch.Tensor:
    if numpy_ok(v):
        return torch.from_numpy(np.argsort(v.detach().numpy(), axis=-1))
    return torch.argsort(v.detach(), dim=-1)


def argsort_values(v: torch.Tensor) -> torch.Tensor:
    """The permutation that sorts ``v`` along the last dimension (ties in any order): :func:`_packed_sort`
    where it applies, else numpy's or torch's argsort."""
    f = _packed_sort(v)
    return _plain_argsort(v) if f is None else torch.from_numpy(_split_packed(f).astype(np.intp))


def sort_with_order(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v sorted along the last dimension, the permutation)`` without gradient: ``values == v.gather(-1,
    order)`` (ties in any order)."""
    return _sorted_from(v, _packed_sort(v))


def _sorted_from(v: torch.Tensor, f: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sort_with_order` from ``f``, the result of ``_packed_sort(v)`` (None: an argsort)."""
    if f is None:
        order = _plain_argsort(v)
        return v.detach().gather(-1, order), order
    order = _split_packed(f)
    return torch.from_numpy(f.astype(np.float32)), torch.from_numpy(order.astype(np.intp))


def equal_match(v: torch.Tensor, w: torch.Tensor, p: float,
                overwrite: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean_j |v_(j) - w_j|^p, slopes)`` for unsorted ``v (..., n)`` and sorted ``w (..., n)``, no gradient:
    the slopes ``p |d_j|^(p-1) sign(d_j)`` of ``d_j = v_(j) - w_j`` (0 at 0) put back in ``v``'s order.
    Float32 on the CPU: :func:`match_blocks` (with ``overwrite``, a temporary ``v`` receives the slopes); rows
    holding an inf or a nan, and other dtypes or devices, in torch."""
    n, done = v.shape[-1], None
    if _packable(v) and w.dtype == v.dtype:
        rows = v.detach().numpy().reshape(1, -1, n)
        ws = np.ascontiguousarray(w.detach().numpy()).reshape(-1, n)
        slope = rows if overwrite else np.empty(rows.shape, dtype=np.float32)
        done = match_blocks([(0, rows)], ws, p, slope)
    if done is None:
        return _torch_match(v, w, p, _packed_sort(v))
    pp, slope_t = _mean_and_slope(done[0], slope, v)
    bad = np.flatnonzero(done[1])
    if len(bad):  # rows holding an inf or a nan: their own values, left there by the kernels
        pp_bad, slope_bad = _torch_match(torch.from_numpy(rows[0, bad]), torch.from_numpy(ws[bad]), p, None)
        slope[0, bad] = slope_bad.numpy()
        pp.view(-1)[torch.from_numpy(bad)] = pp_bad
    return pp, slope_t


def match_blocks(parts, w: np.ndarray, p: float, slope: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Row sums ``total (k,)`` float64 of ``|v_(j) - w_j|^p`` for float32 values ``v`` given by groups of rows, and
    the slopes ``p |d_j|^(p-1) sign(d_j)`` (0 at 0) put back in ``v``'s layout ``slope (B, k, L)`` float32 (any
    strides); ``v_(j)`` is a row's ``j``-th smallest value and ``d_j = v_(j) - w_j``.

    ``parts`` yields ``(r0, values (B, kk, L))`` float32: rows ``r0 : r0 + kk`` of ``v``, row ``r`` being
    ``values[:, r - r0, :]`` read in the order ``(b, l)`` (a convolution's ``(images, projections, locations)``
    output is matched as it comes, with no transposed copy); ``w (k, B * L)`` float32, sorted. Per group, one
    packed sort (:func:`_packed_sort`'s, or where the radix sort wins fused with the matching,
    :func:`match_kernel.sort_match`) and one pass. ``slope`` may be the values themselves (a group is read whole
    before its slopes are written). Returns ``(total, bad)``, ``bad (k,)`` the rows holding an inf or a nan (left
    as they were); None without numba or if the positions ``b << shift | l`` do not fit in :data:`PACK_BITS`."""
    nblocks, k, L = slope.shape
    shift = max(L - 1, 0).bit_length()
    if match_kernel is None or nblocks << shift > 1 << PACK_BITS:
        return None
    total, bad = np.zeros(k), np.zeros(k, dtype=bool)
    radix = nblocks * L >= RADIX_MIN and _radix_wins(True)
    for r0, values in parts:
        rows = slice(r0, r0 + values.shape[1])
        if radix:
            bad[rows] = match_kernel.sort_match(values, w[rows], float(p), total[rows], slope[:, rows], shift)
            continue
        f = np.empty((values.shape[1], nblocks * L))
        bad[rows] = match_kernel.pack_positions(values, f, shift)
        f.sort(axis=-1)
        match_kernel.match_sorted(f.view(np.uint64), _LOW, w[rows], float(p), shift, bad[rows], total[rows],
                                  slope[:, rows])
    return total, bad


def _torch_match(v: torch.Tensor, w: torch.Tensor, p: float, f: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`equal_match` in torch, from ``f``, the result of ``_packed_sort(v)`` (None: an argsort)."""
    vs, order = _sorted_from(v, f)
    d = vs.sub_(w)
    return abs_pow(d, p).mean(-1), torch.empty_like(d).scatter_(-1, order, dabs_pow(d, p))


def _mean_and_slope(total: np.ndarray, slope: np.ndarray, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`equal_match`'s result from a numba pass's row sums ``total`` and slopes (rows of ``v``)."""
    return (torch.from_numpy(total / v.shape[-1]).to(v.dtype).reshape(v.shape[:-1]),
            torch.from_numpy(slope).reshape(v.shape))


def sort_side(v: torch.Tensor, w: torch.Tensor | None, inplace: bool = False):
    """Sorted values (differentiable when ``v`` is) and cumulative weights (float64, or None if uniform).

    ``w`` is ``(n,)`` or broadcastable to ``v``; the last cumulative weight is set to exactly 1.
    """
    if w is None:
        if v.requires_grad:
            return v.gather(-1, argsort_values(v)), None
        return sort_values(v, inplace), None
    idx = argsort_values(v)
    vs = v.gather(-1, idx)
    cw = torch.cumsum(w.expand(v.shape).gather(-1, idx), dim=-1)
    cw[..., -1] = 1.0
    return vs, cw


def uniform_cum(n: int, shape, device) -> torch.Tensor:
    c = torch.arange(1, n + 1, device=device, dtype=torch.float64) / n
    c[-1] = 1.0
    return c.expand(*shape, n)


def abs_pow(d: torch.Tensor, p: float) -> torch.Tensor:
    if p == 1:
        return d.abs()
    if p == 2:
        return d * d
    return d.abs() ** p


class UniformPlan:
    """Merged breakpoints of two uniform measures with ``n`` and ``m`` atoms (integer arithmetic).

    After ordering so that ``n <= m`` (``swap``), the ``y`` piece ``j`` (quantile levels ``(j/m, (j+1)/m]``)
    starts in ``x`` piece ``a_j = floor(j n / m)``; it is split by an ``x`` breakpoint iff
    ``(a_j + 1) m < (j + 1) n``, and then its last ``((j+1) n - (a_j+1) m) / (n m)`` of mass meets
    ``x`` piece ``a_j + 1``. All from ``O(n)`` integers: ``x`` piece ``i``'s run of ``y`` pieces starts at
    ``ceil(i m / n)``, and the breakpoint ``(i+1)/n`` splits piece ``floor((i+1) m / n)`` unless ``n`` divides
    ``(i+1) m`` (an ``x`` piece is no shorter than a ``y`` piece, so none holds two).
    """

    def __init__(self, n: int, m: int, device):
        self.swap = n > m
        if self.swap:
            n, m = m, n
        self.n, self.m, self.device = n, m, device
        self.equal = n == m
        if self.equal:
            return
        i = np.arange(n + 1, dtype=np.int64)
        ends = -(-(i * m) // n)  # ceil(i m / n): where x piece i's run starts, then m
        self.runs = np.diff(ends)
        self.starts = ends[:-1]
        self.blocks: dict[int, list] = {}
        reach = i[1:n] * m  # (i+1) m for the breakpoints i = 0..n-2
        inside = reach % n != 0
        self.js = torch.from_numpy(reach[inside] // n).to(device)
        self.ja = torch.from_numpy(i[:n - 1][inside]).to(device)
        self.len_b = ((self.js + 1) * n - (self.ja + 1) * m).to(torch.float64) / (n * m)

    @functools.cached_property
    def a(self) -> torch.Tensor:
        """``(m,)`` ``a_j``, each ``x`` piece repeated over its run (for the paths off the CPU)."""
        return torch.repeat_interleave(torch.arange(self.n, device=self.device),
                                       torch.from_numpy(self.runs).to(self.device))


def numpy_ok(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def gather_runs(us: torch.Tensor, plan: UniformPlan) -> torch.Tensor:
    """``us[..., plan.a]`` as a new tensor (no gradient). ``plan.a`` repeats each ``x`` atom over its run
    of ``y`` pieces, so on the CPU this is ``numpy.repeat`` (faster than ``index_select`` over
    millions of pieces)."""
    if numpy_ok(us):
        return torch.from_numpy(np.repeat(us.detach().numpy(), plan.runs, axis=-1))
    return us.detach().index_select(-1, plan.a)


def sum_runs(g: torch.Tensor, plan: UniformPlan) -> torch.Tensor:
    """``out[..., i] = sum_{j: a_j = i} g[..., j]``, the adjoint of :func:`gather_runs` (``(..., n)``)."""
    if numpy_ok(g):
        return torch.from_numpy(np.add.reduceat(g.numpy(), plan.starts, axis=-1))
    out = torch.zeros((*g.shape[:-1], plan.n), dtype=g.dtype, device=g.device)
    return out.index_add_(-1, plan.a, g)


def dabs_pow(d: torch.Tensor, p: float) -> torch.Tensor:
    """``d/dd |d|^p``, in place on ``d`` (0 at 0 for p = 1, the subgradient the sort's gradient uses)."""
    if p == 1:
        return d.sign_()
    if p == 2:
        return d.mul_(2.0)
    return d.sign().mul_(d.abs_().pow_(p - 1.0)).mul_(p)


def sum_abs_pow(d: torch.Tensor, p: float, inplace: bool) -> torch.Tensor:
    """``sum |d|^p`` over the last dimension (torch's cascade summation: float32 sums of millions of terms
    stay accurate to ~1e-7, unlike ``linalg.vector_norm``'s), overwriting ``d`` when ``inplace``."""
    if not inplace:
        return abs_pow(d, p).sum(-1)
    if p == 1:
        return d.abs_().sum(-1)
    if p == 2:
        return d.square_().sum(-1)
    return d.abs_().pow_(p).sum(-1)


def run_blocks(plan: UniformPlan, rows: int) -> list[tuple[int, int, int, int]]:
    """``(i0, i1, j0, j1)``: blocks of whole runs, ``x`` atoms ``i0:i1`` and their ``y`` pieces ``j0:j1``,
    about ``BLOCK_ELEMENTS / rows`` pieces each."""
    width = max(1, BLOCK_ELEMENTS // max(rows, 1))
    if width not in plan.blocks:
        cuts = np.unique(np.append(np.searchsorted(plan.starts, np.arange(0, plan.m, width)), plan.n))
        ends = np.append(plan.starts, plan.m)
        plan.blocks = {width: [(int(i0), int(i1), int(ends[i0]), int(ends[i1]))
                               for i0, i1 in itertools.pairwise(cuts)]}
    return plan.blocks[width]


def blocked_main(us: torch.Tensor, vs: torch.Tensor, p: float, plan: UniformPlan, want_du: bool):
    """The main term ``(1/m) sum_j |u_{a_j} - v_j|^p`` over CPU float arrays, block by block (no
    ``(..., m)`` temporary), and with ``want_du`` the per-run sums ``sum_{j: a_j = i} d/du |u_i - v_j|^p``
    (``(..., n)``) that the gradient with respect to ``us`` needs. Block sums are added in float64."""
    u, v = us.detach().numpy(), vs.detach().numpy()
    total = torch.zeros(u.shape[:-1], dtype=torch.float64)
    du = np.empty(u.shape, dtype=u.dtype) if want_du else None
    for i0, i1, j0, j1 in run_blocks(plan, math.prod(u.shape[:-1])):
        d = np.repeat(u[..., i0:i1], plan.runs[i0:i1], axis=-1)
        d -= v[..., j0:j1]
        dt = torch.from_numpy(d)
        if want_du:
            du[..., i0:i1] = np.add.reduceat(dabs_pow(dt.clone(), p).numpy(), plan.starts[i0:i1] - j0, axis=-1)
        total += sum_abs_pow(dt, p, inplace=True)
    return (total / plan.m).to(us.dtype), (None if du is None else torch.from_numpy(du))
