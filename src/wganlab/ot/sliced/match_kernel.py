"""Numba kernels of the sliced distances' 1-D work on float32 rows: a radix sort (values alone, or packed with
their positions, see :func:`wganlab.ot.sliced.kernels.sort_values` and ``_packed_sort``) and the matching of two
equal-size uniform samples in one pass from a packed sort (:func:`wganlab.ot.sliced.kernels.equal_match`): the
value ``sum_j |v_(j) - w_j|^p`` and the slopes put back in the unsorted order, without the gather / abs /
scatter passes of the numpy path."""

from __future__ import annotations

import numba as nb
import numpy as np

#: the radix sorts take a float32 key's 32 bits in three stable passes of at most 11 bits (2,048 counts each)
RADIX_BITS = 11
_RADIX = 1 << RADIX_BITS
_SIGN, _ALL = np.uint32(0x80000000), np.uint32(0xFFFFFFFF)
_NOT_FINITE = np.uint32(0x7F800000)  # |bits| at least this: an inf or a nan


@nb.njit(cache=True)
def _key(u):
    """float32 bits ``u`` (uint32) as a uint32 in the float order: a negative's bits all flipped, any other's
    sign bit set (so -0 sorts just before +0)."""
    return u ^ (_ALL if u >> np.uint32(31) else _SIGN)


@nb.njit(cache=True)
def _unkey(key):
    """The float32 bits that :func:`_key` turned into ``key``."""
    return key ^ (_SIGN if key >> np.uint32(31) else _ALL)


@nb.njit(cache=True)
def _count_digits(key, counts):
    counts[0, key & np.uint32(_RADIX - 1)] += 1
    counts[1, (key >> np.uint32(RADIX_BITS)) & np.uint32(_RADIX - 1)] += 1
    counts[2, key >> np.uint32(2 * RADIX_BITS)] += 1


@nb.njit(cache=True, inline="always")
def _digit_pass(src, dst, n, c, s, mask):
    """One stable LSD pass: ``dst[:n]`` := ``src[:n]`` ordered by the digit ``(x >> s) & mask``, whose histogram
    ``c`` is made offsets in place. False, with nothing moved, if one digit holds all ``n``."""
    if c[(src[0] >> s) & mask] == n:
        return False
    total = 0
    for q in range(len(c)):
        t = c[q]
        c[q] = total
        total += t
    for j in range(n):
        x = src[j]
        d = (x >> s) & mask
        dst[c[d]] = x
        c[d] += 1
    return True


@nb.njit(cache=True)
def _radix_passes(a, b, n, counts, shifts, mask):
    """Stable LSD radix passes over ``a[:n]`` (uint keys; ``b`` the same size, scratch): pass ``p`` orders by
    the digit ``(x >> shifts[p]) & mask``, whose histogram is ``counts[p]`` (:func:`_digit_pass`; skipped where
    one digit holds all). Returns the array holding the sorted keys (``a`` or ``b``)."""
    src, dst = a, b
    for p in range(len(shifts)):
        if _digit_pass(src, dst, n, counts[p], shifts[p], mask):
            src, dst = dst, src
    return src


#: rows of at least this many values (past the cache: the three passes' scatters wait on memory) are sorted
#: bucket first: one scatter of the keys into up to 2^MSD_BUCKET_BITS buckets of equal key range, then each bucket,
#: now in the cache, by LSD passes of MSD_DIGIT_BITS over the bits below its range
MSD_MIN = 1 << 21
MSD_BUCKET_BITS, MSD_DIGIT_BITS = 14, 10


@nb.njit(cache=True)
def _bucket_sort_row(vrow, orow, tmp, starts, fill, counts):
    """The float32 bits ``vrow (n,)`` sorted into ``orow (n,)`` (which may be ``vrow``) bucket first
    (:data:`MSD_MIN`): keys less the row's least key ``kmin``, bucket ``(key - kmin) >> shift`` with the
    least ``shift`` that leaves at most 2^MSD_BUCKET_BITS buckets, each bucket then ordered by LSD passes over
    its ``shift`` low bits (a pass whose digit is the same for all the bucket skipped). ``tmp (n,)`` uint32,
    ``starts``, ``fill`` ``(2^MSD_BUCKET_BITS + 2,)``, ``counts (2^MSD_DIGIT_BITS,)`` int64: scratch. False if
    the row holds a nan."""
    n = len(vrow)
    kmin, kmax = np.uint32(0xFFFFFFFF), np.uint32(0)
    for j in range(n):
        u = vrow[j]
        if u & ~_SIGN > _NOT_FINITE:
            return False
        key = _key(u)
        kmin = min(kmin, key)
        kmax = max(kmax, key)
    shift = np.uint32(0)
    while (kmax - kmin) >> shift >= np.uint32(1 << MSD_BUCKET_BITS):
        shift += np.uint32(1)
    buckets = int((kmax - kmin) >> shift) + 1
    starts[:buckets] = 0
    for j in range(n):
        starts[(_key(vrow[j]) - kmin) >> shift] += 1
    total = 0
    for b in range(buckets):
        t = starts[b]
        starts[b] = fill[b] = total
        total += t
    starts[buckets] = n
    for j in range(n):
        x = _key(vrow[j]) - kmin
        b = x >> shift
        tmp[fill[b]] = x
        fill[b] += 1
    mask = np.uint32((1 << MSD_DIGIT_BITS) - 1)
    for b in range(buckets):
        lo, hi = starts[b], starts[b + 1]
        size = hi - lo
        src, dst = tmp[lo:hi], orow[lo:hi]
        if size > 1:
            low = np.uint32(0)
            while low < shift:
                counts[:] = 0
                for i in range(size):
                    counts[(src[i] >> low) & mask] += 1
                if _digit_pass(src, dst, size, counts, low, mask):
                    src, dst = dst, src
                low += np.uint32(MSD_DIGIT_BITS)
        out = orow[lo:hi]
        for i in range(size):
            out[i] = _unkey(src[i] + kmin)
    return True


@nb.njit(cache=True)
def radix_sort(v, out):
    """``out (k, n)`` float32 := each row of ``v (k, n)`` float32 sorted ascending (-0 before +0), the order
    numpy's sort gives but for the signs of zeros (``out`` may be ``v``; rows of at least :data:`MSD_MIN` values
    bucket first, :func:`_bucket_sort_row`). False (``out`` unspecified) if ``v`` holds a nan."""
    k, n = v.shape
    vb, ob = v.view(np.uint32), out.view(np.uint32)
    if n >= MSD_MIN:
        tmp = np.empty(n, dtype=np.uint32)
        starts, fill = np.empty((2, (1 << MSD_BUCKET_BITS) + 2), dtype=np.int64)
        counts = np.empty(1 << MSD_DIGIT_BITS, dtype=np.int64)
        for r in range(k):
            if not _bucket_sort_row(vb[r], ob[r], tmp, starts, fill, counts):
                return False
        return True
    a, b = np.empty(n, dtype=np.uint32), np.empty(n, dtype=np.uint32)
    counts = np.zeros((3, _RADIX), dtype=np.int64)
    shifts = np.array([0, RADIX_BITS, 2 * RADIX_BITS], dtype=np.uint32)
    for r in range(k):
        counts[:] = 0
        for j in range(n):
            u = vb[r, j]
            if u & ~_SIGN > _NOT_FINITE:
                return False
            key = _key(u)
            a[j] = key
            _count_digits(key, counts)
        keys = _radix_passes(a, b, n, counts, shifts, np.uint32(_RADIX - 1))
        for j in range(n):
            ob[r, j] = _unkey(keys[j])
    return True


@nb.njit(cache=True)
def _pack_row(vb, r, a, counts, shift):
    """``a (B * L,)`` := row ``r`` of the float32 bits ``vb (B, k, L)`` (any strides), read in the order ``(b, l)``,
    as the packed keys ``key << 32 | b << shift | l`` (negatives from the back: a stable sort then keeps their ties
    in descending position), ``counts`` their three digits' histograms. False if the row holds an inf or a nan."""
    nblocks, _, L = vb.shape
    counts[:] = 0
    front, back = 0, nblocks * L - 1
    for b in range(nblocks):
        tag = np.uint64(b) << np.uint64(shift)
        for j in range(L):
            u = vb[b, r, j]
            if u & ~_SIGN >= _NOT_FINITE:
                return False
            key = _key(u)
            neg = np.int64(u >> np.uint32(31))
            a[back if neg else front] = (np.uint64(key) << np.uint64(32)) | tag | np.uint64(j)
            back -= neg
            front += 1 - neg
            _count_digits(key, counts)
    return True


@nb.njit(cache=True)
def _packed_value(x):
    """The float32 value of a packed key ``x`` (:func:`_pack_row`)."""
    return np.uint32(_unkey(np.uint32(x >> np.uint64(32)))).view(np.float32)


#: the packed keys' three digits (above the 32 position bits)
_PACKED_SHIFTS = np.array([32, 32 + RADIX_BITS, 32 + 2 * RADIX_BITS], dtype=np.uint64)


@nb.njit(cache=True)
def packed_radix_sort(v, out, low):
    """``out (k, n)`` float64 := :func:`pack_positions` of ``v (k, n)`` float32 (C-contiguous), each row sorted:
    the same array as numpy's sort of the packed copies (positions break ties, descending among negatives), by a
    stable radix sort of ``key << 32 | position``. False (``out`` unspecified) if ``v`` holds an inf or a nan."""
    k, n = v.shape
    vb, ob = v.view(np.uint32).reshape(1, k, n), out.view(np.uint64)
    a, b = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    counts = np.zeros((3, _RADIX), dtype=np.int64)
    for r in range(k):
        if not _pack_row(vb, r, a, counts, 0):
            return False
        keys = _radix_passes(a, b, n, counts, _PACKED_SHIFTS, np.uint64(_RADIX - 1))
        for j in range(n):
            x = keys[j]
            ob[r, j] = np.float64(_packed_value(x)).view(np.uint64) | (x & low)
    return True


@nb.njit(cache=True)
def _pp_term(d, p):
    """``(|d|^p in float64, its slope p |d|^(p-1) sign(d) in float32, 0 at 0)`` of a float32 difference ``d``."""
    a = abs(d)
    if p == 1.0:
        return np.float64(a), np.float32(0.0) if d == 0 else (np.float32(1.0) if d > 0 else np.float32(-1.0))
    if p == 2.0:
        return np.float64(d) * d, np.float32(2.0) * d
    return np.float64(a) ** p, np.float32(0.0) if d == 0 else np.float32(np.copysign(p * np.float64(a) ** (p - 1.0), d))


@nb.njit(cache=True)
def sort_match(v, w, p, total, slope, shift):
    """:func:`packed_radix_sort` and :func:`match_sorted` fused, row by row, with no packed copy of ``v``:
    ``total (k,)`` and ``slope (B, k, L)`` float32 := match_sorted's for ``v (B, k, L)`` float32 (row ``r``:
    ``v[:, r, :]`` in the order ``(b, l)``, positions ``b << shift | l``) against the sorted ``w (k, B * L)``, the
    same bits. ``slope`` may be ``v`` itself (each row is read whole before it is written). Returns which rows
    hold an inf or a nan (bool ``(k,)``): those are left as they were in ``total`` and ``slope``."""
    nblocks, k, L = v.shape
    n = nblocks * L
    vb = v.view(np.uint32)
    a, b = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    counts = np.zeros((3, _RADIX), dtype=np.int64)
    pos, sh = np.uint64(0xFFFFFFFF), np.uint64(shift)
    lmask = (np.uint64(1) << sh) - np.uint64(1)
    bad = np.zeros(k, dtype=np.bool_)
    for r in range(k):
        if not _pack_row(vb, r, a, counts, shift):
            bad[r] = True
            continue
        keys = _radix_passes(a, b, n, counts, _PACKED_SHIFTS, np.uint64(_RADIX - 1))
        acc = 0.0
        for j in range(n):
            x = keys[j]
            term, s = _pp_term(_packed_value(x) - w[r, j], p)
            acc += term
            at = x & pos
            slope[at >> sh, r, at & lmask] = s
        total[r] = acc
    return bad


@nb.njit(cache=True)
def match_sorted(packed, low, w, p, shift, bad, total, slope):
    """Rows ``r`` of the packed sort ``packed (k, n)`` (uint64 bits of float64 copies of float32 values, each
    holding its original position ``b << shift | l`` in the bits ``low``) and sorted targets ``w (k, n)``
    (float32), rows where ``bad (k,)`` is set skipped: ``total[r] = sum_j |d_j|^p`` with ``d_j = v_(j) - w[r, j]``
    in float32, and the slope ``p |d_j|^(p-1) sign(d_j)`` (0 at 0) at ``v_(j)``'s original position, in
    ``slope[b, r, l]`` (``slope (B, k, L)`` float32, any strides)."""
    k, n = packed.shape
    bits = np.empty(1, dtype=np.uint64)
    value = bits.view(np.float64)  # the position's bits cleared, read back as the float64 copy
    sh = np.uint64(shift)
    lmask = (np.uint64(1) << sh) - np.uint64(1)
    for r in range(k):
        if bad[r]:
            continue
        acc = 0.0
        for j in range(n):
            x = packed[r, j]
            bits[0] = x & ~low
            term, s = _pp_term(np.float32(value[0]) - w[r, j], p)
            acc += term
            at = x & low
            slope[at >> sh, r, at & lmask] = s
        total[r] = acc


@nb.njit(cache=True)
def pack_positions(v, out, shift):
    """``out (k, B * L)`` float64 := the float32 ``v (B, k, L)`` (any strides; row ``r``: ``v[:, r, :]`` in the
    order ``(b, l)``), each copy holding its position ``b << shift | l`` in its low mantissa bits (zero in an exact
    float32 copy): one pass for :func:`wganlab.ot.sliced.kernels._packed_sort`. Returns which rows hold an inf or
    a nan (bool ``(k,)``: their copies do not sort)."""
    bits = out.view(np.uint64)
    nblocks, k, L = v.shape
    vb = v.view(np.uint32)
    bad = np.zeros(k, dtype=np.bool_)
    for r in range(k):
        top = np.uint32(0)  # the largest |bits|: an inf or a nan if at least _NOT_FINITE
        for b in range(nblocks):
            tag, at = np.uint64(b) << np.uint64(shift), b * L
            for j in range(L):
                out[r, at + j] = v[b, r, j]
                bits[r, at + j] |= tag | np.uint64(j)
                top = max(top, vb[b, r, j] & ~_SIGN)
        bad[r] = top >= _NOT_FINITE
    return bad
