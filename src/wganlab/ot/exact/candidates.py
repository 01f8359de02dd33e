"""Candidate arcs of the sparse exact OT engine (:mod:`wganlab.ot.exact.sparse`): each row's nearest columns and
each column's cheapest rows at the row prices ``u`` (``c_ij - u_i``), found on the float32 lower bounds of
:class:`wganlab.ot.exact.blocks.Distances` block by block, and the links that free rows stuck without a
feasible flow. Candidates only guide the solver: pricing every pair is what makes the result exact."""

from __future__ import annotations

import numba as nb
import numpy as np

from wganlab.ot.exact import blocks


def by_bound(dist: blocks.Distances, k_row: int, k_col: int, N: int, rows=None, cols=None, u=None, cap=None):
    """``(rows, cols)`` of the ``k_row`` nearest columns of every row (row by row) and then the ``k_col`` rows
    of every column (column by column) with the smallest ``lo_ij - u_i`` (``lo``: the bounds of ``dist``,
    ``u``: row prices or None for 0; duplicates possible). ``rows``/``cols``: index arrays that restrict the
    search (the result then indexes into them). ``cap (N,)``: above each column's ``k_col``-th smallest value
    (:func:`column_caps`), or None."""
    row_blocks = dist.blocks() if rows is None else dist.blocks(rows)
    u32 = np.zeros(dist.M if rows is None else len(rows), np.float32) if u is None else u.astype(np.float32)
    k_col = min(k_col, len(u32))
    # few rows: each column's rows from the bounds' transpose (:meth:`blocks.Distances.transposed`), if made
    by_column = rows is None and cols is None and dist.all_t is not None
    val, idx = np.full((N, k_col), np.inf, np.float32), np.zeros((N, k_col), np.int64)
    cap = np.full(N, np.inf, np.float32) if cap is None else cap
    out_r, out_c = [], []
    for s, lo in row_blocks if k_row > 0 or not by_column else ():
        if cols is not None:
            lo = np.ascontiguousarray(lo[:, cols])
        if k_row > 0:
            j = blocks.row_smallest(lo, min(k_row, lo.shape[1]))
            out_r.append(np.repeat(np.arange(s, s + len(lo)), j.shape[1]))
            out_c.append(j.reshape(-1))
        if not by_column:
            blocks.keep_smallest(lo, u32, s, val, idx, cap)
    # column by column: each point of y is read once when the costs are computed
    out_r.append((blocks.column_smallest(dist.all_t, u32, k_col) if by_column else idx).reshape(-1))
    out_c.append(np.repeat(np.arange(N), k_col))
    return np.concatenate(out_r), np.concatenate(out_c)


def by_cost(dist: blocks.Distances, costs, k_row: int, k_col: int, over: int, u: np.ndarray, cap=None):
    """``(rows, cols, costs)``: :func:`by_bound`'s ``k_row`` per row and ``k_col`` per column (listed last, column
    by column), chosen among ``over`` times as many by their exact costs ``costs(rows, cols)``: ``c_ij`` (rows),
    ``c_ij - u_i`` (columns). ``over > 1`` where the bound is loose (:func:`sketch.distances`). ``cap``: see
    :func:`by_bound` (for ``k_col * over`` rows)."""
    M, N = len(u), dist.N
    rows, cols = by_bound(dist, k_row * over, k_col * over, N, u=u, cap=cap)
    cost = costs(rows, cols)
    if over == 1:
        return rows, cols, cost
    per_row, per_col = min(k_row * over, N), min(k_col * over, M)
    head = len(rows) - N * per_col
    keep = np.concatenate([best_in_groups(cost[:head], per_row, k_row),
                           head + best_in_groups(cost[head:] - u[rows[head:]], per_col, k_col)])
    return rows[keep], cols[keep], cost[keep]


def column_caps(col_ptr, rows, cost, u: np.ndarray, k: int) -> np.ndarray:
    """``(N,)`` float32 caps for :func:`by_bound` from the arcs ``(col_ptr (N+1), rows (E), cost (E))`` (column-major,
    one arc per pair): the ``k``-th smallest ``c_ij - u_i`` over each column's arcs (``inf`` where it has fewer),
    widened by ``2^-16`` of the largest ``|c| + |u|`` (the float32 test of the bounds is off by about ``2^-24`` of
    it). Since ``lo_ij <= c_ij``, at least ``k`` rows of each column have ``lo_ij - u_i`` below its cap. (From all
    arcs rather than the ``k`` rows found the round before: after the auction's first rounds those caps were ~2
    above the k-th value, 500-700 rows below them per column on 10,000^2 images.)"""
    scale = float(np.abs(cost).max(initial=0.0) + np.abs(u).max(initial=0.0))
    return (_kth_of_columns(col_ptr, rows, cost, u, k) + 2.0**-16 * scale).astype(np.float32)


@nb.njit(cache=True)
def _kth_of_columns(col_ptr, rows, cost, u, k):
    """The ``k``-th smallest ``cost[e] - u[rows[e]]`` over each column's arcs ``col_ptr[j]:col_ptr[j + 1]``."""
    N = len(col_ptr) - 1
    out = np.full(N, np.inf)
    val, arc = np.empty(k), np.empty(k, np.int64)
    for j in range(N):
        val[:] = np.inf
        for e in range(col_ptr[j], col_ptr[j + 1]):
            w = cost[e] - u[rows[e]]
            if w < val[k - 1]:
                blocks.insert_sorted(val, arc, k - 1, w, e)
        out[j] = val[k - 1]
    return out


def best_in_groups(w: np.ndarray, size: int, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest values of every consecutive group of ``size`` in ``w``."""
    if size <= k or not len(w):
        return np.arange(len(w))
    best = np.argpartition(w.reshape(-1, size), k - 1, axis=1)[:, :k]
    return (best + size * np.arange(len(w) // size)[:, None]).reshape(-1)


def link_stuck(dist: blocks.Distances, stuck: np.ndarray, free: np.ndarray, k: int):
    """``(rows, cols)`` linking the ``stuck`` rows and the ``free`` columns (demand left) by distance: each
    stuck row to its ``k`` nearest free columns, each free column to its ``k`` nearest stuck rows. (By
    distance, not reduced cost: reduced costs would send every link to the same few rows.)"""
    rows, cols = by_bound(dist, k, k, len(free), rows=stuck, cols=free)
    return stuck[rows], free[cols]
